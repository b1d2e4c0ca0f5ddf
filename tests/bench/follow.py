#!/usr/bin/env python3
"""make bench (follow), run inside the sandbox by follow.sh.

1. Latency: a job writes a line with its clock every 50 ms; a client of
   `GET /api/job/JOB/follow` through serve notes when each line arrives.
2. Throughput and memory: runs of 100,000 and 1,000,000 lines; the finished
   run read by plain `journalctl -o cat` (the bare cost), by
   `jobgate follow` and `jobgate logs` (CLI), and by `GET follow` through
   serve. Peak resident memory is jobgate's own (VmHWM, sampled), without
   the journalctl it runs."""
import http.client, os, statistics, subprocess, sys, threading, time

serve, token, binary = sys.argv[1:4]
# The fields jobgate asks journalctl for (src/systemd/argv.rs).
FIELDS = "--output-fields=MESSAGE,_PID,_STREAM_ID,_SYSTEMD_UNIT,_SYSTEMD_INVOCATION_ID,UNIT,INVOCATION_ID,MESSAGE_ID,UNIT_RESULT,EXIT_STATUS"
host, port = serve.rsplit(":", 1)
auth = {"Authorization": "Bearer " + token}

def follow_stream(job, on_line):
    c = http.client.HTTPConnection(host, int(port), timeout=600)
    c.request("GET", f"/api/job/{job}/follow", headers=auth)
    r = c.getresponse()
    assert r.status == 200, (r.status, r.read())
    last = b""
    n = 0
    while True:
        line = r.readline()
        if not line:
            break
        n += 1
        last = line
        last_at[0] = time.time_ns()
        on_line(line)
    return n, last.decode().strip()

last_at = [0]  # when the newest stream's last line arrived (ns since the epoch)

def vm_hwm_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for l in f:
                if l.startswith("VmHWM:"):
                    return int(l.split()[1])
    except OSError:
        return None

def timed(cmd, watch=True):
    """Wall seconds, lines out, and the peak VmHWM of the process itself."""
    t = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    peak = [0]
    def sample():
        while p.poll() is None:
            h = vm_hwm_kib(p.pid)
            if h:
                peak[0] = max(peak[0], h)
            time.sleep(0.02)
    s = threading.Thread(target=sample)
    s.start()
    n = 0
    for chunk in iter(lambda: p.stdout.read(1 << 16), b""):
        n += chunk.count(b"\n")
    p.wait()
    s.join()
    return time.perf_counter() - t, n, peak[0]

def serve_pid():
    out = subprocess.run(["systemctl", "show", "-p", "MainPID", "--value", "jobgate-bench"], capture_output=True, text=True)
    return int(out.stdout.strip())

# 1. Latency, beside `journalctl -f` reading the same run.
clock_lines = []

def noter(delays, keep=None):
    def note(line):
        parts = line.split()
        if len(parts) == 2 and parts[0] == b"written":
            delays.append(time.time_ns() - int(parts[1]))
            if keep is not None:
                keep.append(line)
    return note

def report(name, delays):
    delays = sorted(d / 1e6 for d in delays)
    p99 = delays[max(0, int(len(delays) * 0.99) - 1)]
    print(f"  {name:26} {len(delays)} lines: median {statistics.median(delays):6.1f} ms, p99 {p99:6.1f} ms, max {delays[-1]:6.1f} ms")

bare = subprocess.Popen(["journalctl", "-f", "-n", "0", "-o", "cat", "-u", "ci-test-clock.service"], stdout=subprocess.PIPE)
bare_delays = []
def read_bare():
    for line in bare.stdout:
        noter(bare_delays)(line)
threading.Thread(target=read_bare, daemon=True).start()
time.sleep(0.5)
subprocess.run(["systemctl", "start", "--no-block", "ci-test-clock"], check=True)
time.sleep(0.3)
delays = []
n, last = follow_stream("ci-test-clock", noter(delays, clock_lines))
bare.terminate()
print("follow latency, from a line's write to its arrival (200 lines, 50 ms apart):")
report("GET follow through serve", delays)
report("journalctl -f -o cat", bare_delays)
print(f"  last line: {last}")
last_written = max(int(l.split()[1]) for l in clock_lines) if clock_lines else 0
if last_written:
    print(f"  the end line reached the client {(last_at[0] - last_written) / 1e6:6.0f} ms after the run's last line was written"
          " (jobgate ends it once the manager says the run ended and journald has read its streams)")

# 2. Throughput and memory.
for n in (100000, 1000000):
    job = f"ci-test-lines{n}"
    subprocess.run(["systemctl", "start", job], check=True)
    for _ in range(600):  # journald ingests on its own time
        if int(subprocess.run(f"journalctl -u {job}.service -o cat --no-pager | grep -c '^line '", shell=True,
                              capture_output=True, text=True).stdout or 0) >= n:
            break
        time.sleep(0.5)
    time.sleep(1.2)
    print(f"run of {n:,} lines (finished): whole run, lines/s of the run and % of journalctl -o cat")
    bare = None
    for name, cmd in [
        ("journalctl -o cat", ["journalctl", "-u", f"{job}.service", "-o", "cat", "--no-pager"]),
        ("journalctl -o export (1)", ["journalctl", "--no-pager", "--all", "-o", "export", FIELDS, "-u", f"{job}.service"]),
        ("jobgate follow (CLI)", [binary, "follow", job]),
    ]:
        wall, lines, peak = timed(cmd)
        rate = n / wall
        bare = bare or rate
        print(f"  {name:28} {wall:6.2f} s  {rate:10,.0f} lines/s  {100 * rate / bare:5.0f}%  peak RSS {peak / 1024:5.1f} MiB")
    before = vm_hwm_kib(serve_pid())
    t = time.perf_counter()
    count, last = follow_stream(job, lambda line: None)
    wall = time.perf_counter() - t
    after = vm_hwm_kib(serve_pid())
    print(f"  {'GET follow through serve':28} {wall:6.2f} s  {n / wall:10,.0f} lines/s  {100 * n / wall / bare:5.0f}%  serve peak RSS {after / 1024:5.1f} MiB (was {before / 1024:.1f})")
    print(f"    last line: {last}")
    print("  the last 20,000 lines:")
    tail_bare = None
    for name, cmd in [
        ("journalctl -o cat -n 20000", ["journalctl", "-u", f"{job}.service", "-o", "cat", "-n", "20000", "--no-pager"]),
        ("jobgate logs --lines 20000", [binary, "logs", job, "--lines", "20000"]),
    ]:
        wall, lines, peak = timed(cmd)
        tail_bare = tail_bare or wall
        print(f"  {name:28} {wall:6.2f} s  {lines:,} lines  {100 * tail_bare / wall:5.0f}% of journalctl's speed  peak RSS {peak / 1024:5.1f} MiB")
print("(1) the read jobgate itself makes: the same run with the fields it needs (run, writer, cursor);")
print("    journalctl writes them at about half the rate of -o cat, which shows the message only.")

# 3. A finished run of a unit that stays active after it (RemainAfterExit=yes,
# `active (exited)`; the manager writes no end message): follow returns at
# once, beside journalctl reading the same run by its id. Alternating, medians.
job = "ci-test-remains100000"
subprocess.run(["systemctl", "start", job], check=True)
run_id = subprocess.run(["systemctl", "show", "-P", "InvocationID", job], capture_output=True, text=True).stdout.strip()
for _ in range(600):
    if int(subprocess.run(f"journalctl _SYSTEMD_INVOCATION_ID={run_id} -o cat --no-pager | grep -c '^line '", shell=True,
                          capture_output=True, text=True).stdout or 0) >= 100000:
        break
    time.sleep(0.5)
ours, theirs = [], []
for _ in range(7):
    ours.append(timed([binary, "follow", job])[0])
    theirs.append(timed(["journalctl", f"_SYSTEMD_INVOCATION_ID={run_id}", "-o", "cat", "--no-pager"])[0])
ratios = sorted(a / b for a, b in zip(ours, theirs))
print("finished RemainAfterExit=yes run of 100,000 lines (active (exited)), 7 alternating pairs:")
print(f"  jobgate follow (CLI)               median {statistics.median(ours):6.3f} s")
print(f"  journalctl _SYSTEMD_INVOCATION_ID=ID -o cat  median {statistics.median(theirs):6.3f} s")
print(f"  ratio (median of pairs) {statistics.median(ratios):.2f}x (target <= 0.5x)")
