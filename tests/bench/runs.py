#!/usr/bin/env python3
"""make bench (runs), run inside the sandbox by runs.sh as the service user.

Each figure sets jobgate beside the plain call a peer makes for the same
lines, run alternately A B A B ..., and gives the medians and the median of
the ratios of each pair. Through serve, one client, requests one after the
other: requests/s beside runs/s of the plain call. Last, serve's peak
resident memory (VmHWM) across a 20,000-line `logs` of 2 KB lines."""
import http.client, statistics, subprocess, sys, time

pairs, serve, token, binary = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
host, port = serve.rsplit(":", 1)

def run(cmd):
    t = time.perf_counter()
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t, p.stdout.count(b"\n")

def request(target):
    t = time.perf_counter()
    c = http.client.HTTPConnection(host, int(port), timeout=600)
    c.request("GET", target, headers={"Authorization": "Bearer " + token})
    r = c.getresponse()
    body = r.read()
    assert r.status == 200, (target, r.status, body[:200])
    return time.perf_counter() - t, body.count(b"\n")

def pair(name, a, b, lines=None):
    """`lines`: how many lines A must give (checked, so that no figure
    comes from an answer cut short)."""
    _, got = a(); b()  # warm-up
    if lines is not None and got != lines:
        raise SystemExit(f"{name}: {got} lines, expected {lines}")
    xa, xb, ratios = [], [], []
    for _ in range(pairs):
        ta, _ = a()
        tb, _ = b()
        xa.append(ta); xb.append(tb); ratios.append(ta / tb)
    ma, mb = statistics.median(xa), statistics.median(xb)
    print(f"  {name:58} {ma * 1000:9.1f} ms vs {mb * 1000:9.1f} ms   ratio {statistics.median(ratios):5.2f}"
          f"  ({1 / ma:6.1f}/s vs {1 / mb:6.1f}/s)")

def wait_for(job, lines):
    for _ in range(1200):
        out = subprocess.run(["journalctl", "_SYSTEMD_UNIT=" + job + ".service", "-o", "cat", "-n", "1", "--no-pager"], capture_output=True, text=True).stdout
        state = subprocess.run(["systemctl", "show", "-p", "ActiveState", "--value", job], capture_output=True, text=True).stdout.strip()
        if str(lines) in out and state != "active":
            return
        time.sleep(0.25)
    raise SystemExit(f"{job} did not finish")

def invocation(job):
    out = subprocess.run([binary, "--json", "runs", job, "--limit", "1"], capture_output=True, text=True).stdout
    import json
    return json.loads(out)["runs"][0]["run"]

def vm_hwm_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for l in f:
            if l.startswith("VmHWM:"):
                return int(l.split()[1])

for job, n in [("ci-test-lines5000", 5000), ("ci-test-lines100000", 100000), ("ci-test-lines1000000", 1000000),
               ("ci-test-wide", 20000), ("ci-test-huge", 500), ("ci-test-hostile", 8999)]:
    wait_for(job, n)
time.sleep(1.2)  # past the settle time
run100k = invocation("ci-test-lines100000")
run1m = invocation("ci-test-lines1000000")
through_journalctl = [binary, "--journal-reader", "journalctl"]
unit = lambda job: job + ".service"
show = ["systemctl", "show", "--timestamp=unix", "-p",
        "LoadState,ActiveState,SubState,Result,ExecMainStatus,InvocationID,ExecMainStartTimestamp,ExecMainExitTimestamp"]

print(f"jobgate beside the plain call, {pairs} alternating pairs (medians; ratio = median of A/B per pair)")
print(" CLI (one process each):")
pair("logs --lines 1000 of a 5,000-line run / journalctl -n 1000 -o cat",
     lambda: run([binary, "logs", "ci-test-lines5000", "--lines", "1000"]),
     lambda: run(["journalctl", "-u", unit("ci-test-lines5000"), "-n", "1000", "-o", "cat", "--no-pager"]), 1000)
pair("follow of a finished 100,000-line run / journalctl _SYSTEMD_INVOCATION_ID=",
     lambda: run([binary, "follow", "ci-test-lines100000"]),
     lambda: run(["journalctl", "_SYSTEMD_INVOCATION_ID=" + run100k, "-o", "cat", "--no-pager"]), 100001)
pair("follow of a finished 1,000,000-line run / journalctl _SYSTEMD_INVOCATION_ID=",
     lambda: run([binary, "follow", "ci-test-lines1000000"]),
     lambda: run(["journalctl", "_SYSTEMD_INVOCATION_ID=" + run1m, "-o", "cat", "--no-pager"]), 1000001)
pair("logs --lines 1000: journal files read in-process / --journal-reader journalctl",
     lambda: run([binary, "logs", "ci-test-lines5000", "--lines", "1000"]),
     lambda: run(through_journalctl + ["logs", "ci-test-lines5000", "--lines", "1000"]), 1000)
pair("follow, 100,000 lines: in-process / --journal-reader journalctl",
     lambda: run([binary, "follow", "ci-test-lines100000"]),
     lambda: run(through_journalctl + ["follow", "ci-test-lines100000"]), 100001)
pair("state of an active job / systemctl show",
     lambda: run([binary, "state", "ci-test-active"]),
     lambda: run(show + ["--", unit("ci-test-active")]))
pair("state of a finished job / systemctl show",
     lambda: run([binary, "state", "ci-test-lines5000"]),
     lambda: run(show + ["--", unit("ci-test-lines5000")]))
print(" through serve (requests one after another) beside the plain call:")
pair("GET logs?lines=1000 (5,000-line run) / journalctl -n 1000 -o cat",
     lambda: request("/api/job/ci-test-lines5000/logs?lines=1000&format=text"),
     lambda: run(["journalctl", "-u", unit("ci-test-lines5000"), "-n", "1000", "-o", "cat", "--no-pager"]), 1000)
pair("GET follow (finished 100,000-line run) / journalctl _SYSTEMD_INVOCATION_ID=",
     lambda: request("/api/job/ci-test-lines100000/follow"),
     lambda: run(["journalctl", "_SYSTEMD_INVOCATION_ID=" + run100k, "-o", "cat", "--no-pager"]), 100001)
pair("GET state (active job) / systemctl show",
     lambda: request("/api/job/ci-test-active/state"),
     lambda: run(show + ["--", unit("ci-test-active")]))
pair("GET state (finished job) / systemctl show",
     lambda: request("/api/job/ci-test-lines5000/state"),
     lambda: run(show + ["--", unit("ci-test-lines5000")]))
# A run that ended over a minute ago is not asked whether its lines are in
# (runs::lines, LINES_IN_RECENT): it costs what any finished state costs.
# (Its end as jobgate's runs say: systemd may have unloaded the unit, and
# systemctl show then has no exit time.)
def ended(job):
    import calendar, json
    out = subprocess.run([binary, "--json", "runs", job, "--limit", "1"], capture_output=True, text=True).stdout
    return calendar.timegm(time.strptime(json.loads(out)["runs"][0]["finished"], "%Y-%m-%dT%H:%M:%SZ"))
time.sleep(max(0, ended("ci-test-lines5000") + 61 - time.time()))
pair("GET state (a run ended over a minute ago) / systemctl show",
     lambda: request("/api/job/ci-test-lines5000/state"),
     lambda: run(show + ["--", unit("ci-test-lines5000")]))
pair("GET logs (hostile: 9,000 entries of distinct fields) / journalctl -o cat",
     lambda: request("/api/job/ci-test-hostile/logs?lines=9000&format=text"),
     lambda: run(["journalctl", "-u", unit("ci-test-hostile"), "-n", "9000", "-o", "cat", "--no-pager"]), 9000)

pid = int(subprocess.run(["systemctl", "show", "-p", "MainPID", "--value", "jobgate-bench"], capture_output=True, text=True).stdout)
for job, what in [("ci-test-wide", "20,000 lines of 2 KB"), ("ci-test-huge", "500 lines of 48 KiB")]:
    before = vm_hwm_kib(pid)
    took, lines = request(f"/api/job/{job}/logs?lines=20000&format=text")
    after = vm_hwm_kib(pid)
    print(f" serve, GET logs?lines=20000 of a run of {what}: {lines:,} lines in {took:.2f} s,"
          f" serve's peak RSS {after / 1024:.1f} MiB (was {before / 1024:.1f} MiB before)")

import collections, threading
# 64 logs of the hostile job at once (serve's most connections): each
# read's field cache is bounded in bytes (journal::read), so serve's peak
# stays within the shipped unit's MemoryMax and its own budget per request.
statuses = collections.Counter()
def hostile(statuses):
    try:
        c = http.client.HTTPConnection(host, int(port), timeout=300)
        c.request("GET", "/api/job/ci-test-hostile/logs?lines=9000&format=text", headers={"Authorization": "Bearer " + token})
        r = c.getresponse(); body = r.read()
        statuses[(r.status, body.count(b"\n"))] += 1
    except Exception as e:
        statuses[type(e).__name__] += 1
before = vm_hwm_kib(pid)
readers = [threading.Thread(target=hostile, args=(statuses,)) for _ in range(64)]
t = time.perf_counter()
for c in readers: c.start()
for c in readers: c.join()
print(f" serve, 64 GET logs of the hostile job at once: answers {dict(statuses)} in {time.perf_counter() - t:.1f} s;"
      f" peak RSS {vm_hwm_kib(pid) / 1024:.1f} MiB (was {before / 1024:.1f} MiB; shipped MemoryMax=656M)")

# Under load: 200 state requests at once, 16 follows with one token (all
# 16 may stream: a token alone takes its fair share, every stream), 8
# logs?lines=20000 of 2 KB lines at once.
def load_request(target, statuses):
    try:
        c = http.client.HTTPConnection(host, int(port), timeout=120)
        c.request("GET", target, headers={"Authorization": "Bearer " + token})
        r = c.getresponse(); r.read()
        statuses[r.status] += 1
    except Exception as e:
        statuses[type(e).__name__] += 1
def status_field(name):
    with open(f"/proc/{pid}/status") as f:
        for l in f:
            if l.startswith(name + ":"):
                return int(l.split()[1])
subprocess.run(["systemctl", "start", "ci-test-lines100000"], capture_output=True)  # a run to follow
peak = {"threads": 0}
done = threading.Event()
def sample():
    while not done.is_set():
        peak["threads"] = max(peak["threads"], status_field("Threads") or 0)
        time.sleep(0.01)
sampler = threading.Thread(target=sample); sampler.start()
statuses = collections.Counter()
targets = ["/api/job/ci-test-active/state"] * 200 + ["/api/job/ci-test-lines100000/follow"] * 16 + ["/api/job/ci-test-wide/logs?lines=20000"] * 8
clients = [threading.Thread(target=load_request, args=(t, statuses)) for t in targets]
t = time.perf_counter()
for c in clients: c.start()
for c in clients: c.join()
took = time.perf_counter() - t
done.set(); sampler.join()
time.sleep(0.5)
print(f" serve under load ({len(targets)} requests at once: 200 state, 16 follows with one token, 8 logs of 40 MB): "
      f"answers {dict(statuses)} in {took:.1f} s; peak RSS {status_field('VmHWM') / 1024:.1f} MiB, "
      f"peak threads {peak['threads']}, threads after {status_field('Threads')}")
