#!/usr/bin/env python3
"""make bench (front ends): GET state through serve, through inetd (one
process per connection) and through nginx + fcgiwrap + cgi, beside the bare
`systemctl show` each request runs; and jobgate's own start-to-exit time in
inetd mode for a GET /; GET state requests/s through serve with 1 and 4
clients; and GET /healthz polled through serve. Run inside the sandbox by
frontends.sh. Prints median and p99 per way, and ratios to the bare command."""
import http.client, multiprocessing, socket, ssl, statistics, subprocess, sys, time

N = int(sys.argv[1]) if len(sys.argv) > 1 else 200
serve, inetd, cgi, token, binary = sys.argv[2:7]
path = "/api/job/ci-test-bench/state"

def stats(xs):
    xs = sorted(xs)
    return statistics.median(xs) * 1000, xs[max(0, int(len(xs) * 0.99) - 1)] * 1000

def over_http(addr, tls=False, keep_alive=True, path=path):
    """Like a polling client: one connection for all requests where the
    front end keeps it open (serve, nginx); inetd closes after each."""
    host, port = addr.rsplit(":", 1)
    out = []
    context = ssl._create_unverified_context() if tls else None
    connect = lambda: http.client.HTTPSConnection(host, int(port), context=context) if tls else http.client.HTTPConnection(host, int(port))
    c = connect()
    for _ in range(N):
        t = time.perf_counter()
        if not keep_alive:
            c = connect()
        c.request("GET", path, headers={"Authorization": "Bearer " + token})
        r = c.getresponse(); r.read()
        if not keep_alive:
            c.close()
        out.append(time.perf_counter() - t)
        assert r.status == 200, r.status
    return out

def bare():
    cmd = ["systemctl", "show", "--timestamp=unix", "-p",
           "LoadState,ActiveState,SubState,Result,ExecMainStatus,InvocationID,ExecMainStartTimestamp,ExecMainExitTimestamp",
           "--", "ci-test-bench.service"]
    out = []
    for _ in range(N):
        t = time.perf_counter(); subprocess.run(cmd, stdout=subprocess.DEVNULL, check=True); out.append(time.perf_counter() - t)
    return out

def inetd_process():
    out = []
    for _ in range(N):
        t = time.perf_counter()
        subprocess.run([binary, "--tokens", "/run/bench/tokens", "--state-dir", "/run/bench", "inetd"], input=b"GET / HTTP/1.1\r\n\r\n",
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        out.append(time.perf_counter() - t)
    return out

base = stats(bare())
print(f"{N} requests each, GET state of an active job (ms: median, p99)")
print(f"  bare systemctl show          {base[0]:7.2f} {base[1]:7.2f}")
for name, xs in [("serve", over_http(serve)), ("inetd (socket unit)", over_http(inetd, keep_alive=False)), ("nginx + fcgiwrap + cgi", over_http(cgi, tls=True))]:
    m, p = stats(xs)
    print(f"  {name:28} {m:7.2f} {p:7.2f}   ratio {m / base[0]:.2f}, +{m - base[0]:.2f} ms")
def requests_per_second(clients):
    """GET state through serve from `clients` processes at once, each on
    its own kept connection, N requests each: answers per second."""
    with multiprocessing.Pool(clients) as pool:
        t = time.perf_counter()
        pool.map(over_http, [serve] * clients)
        return clients * N / (time.perf_counter() - t)

for clients in (1, 4):
    print(f"GET state through serve, {clients} client(s) at once: {requests_per_second(clients):7.0f} requests/s")
m, p = stats(inetd_process())
print(f"jobgate inetd, GET /, process start to exit: median {m:.2f} ms, p99 {p:.2f} ms")
# /healthz runs two calls (systemctl show, journalctl --lines=0) at most
# every 2 s and answers from memory in between: what polling it costs.
m, p = stats(over_http(serve, path="/healthz"))
print(f"GET /healthz through serve, {N} polls back to back: median {m:.2f} ms, p99 {p:.2f} ms")
