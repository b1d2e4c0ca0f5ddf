#!/bin/sh
# make bench (runs): boots the sandbox (journald's rate limit off), makes
# runs of 5,000 and 100,000 lines, 20,000 lines of 2 KB and 500 of 48 KiB, runs
# serve as an unprivileged member of systemd-journal, and runs runs.py
# inside it as that user: jobgate's reads beside the plain call a peer
# makes for the same lines, alternating, with medians and ratios.
set -eu
bin=$(realpath "${1:-target/release/jobgate}")
top=$(cd "$(dirname "$0")/../.." && pwd)
[ "$(id -u)" = 0 ] || { echo "bench needs root (it boots systemd in namespaces)" >&2; exit 1; }
user=jobgate-test
id "$user" >/dev/null 2>&1 || useradd --system --user-group --no-create-home --shell /usr/sbin/nologin -G systemd-journal "$user"
. "$top/tests/sandbox/lib.sh"
sandbox_boot
d=/run/bench
inside sh -c "mkdir -p /run/systemd/journald.conf.d && printf '[Journal]\nRateLimitIntervalSec=0\n' >/run/systemd/journald.conf.d/bench.conf && systemctl restart systemd-journald"
unit() { inside sh -c "cat > /run/systemd/system/$1.service"; }
for n in 5000 100000 1000000; do
    printf '[Service]\nExecStart=/bin/sh -c "seq 1 %s | sed s/^/line:/; sleep 0.2"\n' "$n" | unit "ci-test-lines$n"
done
wide=$(printf '%2000s' '' | tr ' ' x)
printf '[Service]\nExecStart=/bin/sh -c "seq 1 20000 | sed s/$/:%s/; sleep 0.2"\n' "$wide" | unit ci-test-wide
# journald's longest line (LineMax=) is 48 KiB.
huge=$(printf '%49000s' '' | tr ' ' y)
printf '[Service]\nExecStart=/bin/sh -c "seq 1 500 | sed s/$/:%s/; sleep 0.2"\n' "$huge" | unit ci-test-huge
printf '[Service]\nExecStart=/bin/sleep infinity\n' | unit ci-test-active
# A hostile job (the audit's finding 1): 9,000 native entries, each with
# distinct values of fields the reader links (UNIT=, INVOCATION_ID=,
# MESSAGE_ID=) and a 2 KB field of its own.
printf '%s\n' 'import os, socket' 's = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)' \
    'for n in range(9000):' \
    '    f = [f"MESSAGE=hostile {n}", f"UNIT=u-{n}.service", "INVOCATION_ID=" + os.urandom(16).hex(),' \
    '         "MESSAGE_ID=" + os.urandom(16).hex(), "X_PAD=" + os.urandom(1000).hex()]' \
    '    s.sendto(("\n".join(f) + "\n").encode(), "/run/systemd/journal/socket")' | sandbox_put 0644 $d/hostile.py
printf '[Service]\nExecStart=/usr/bin/python3 %s/hostile.py\n' "$d" | unit ci-test-hostile
sandbox_put 0755 $d/jobgate < "$bin"
inside sh -c "systemctl daemon-reload
systemctl start ci-test-active
$d/jobgate --tokens $d/tokens token add bench --scope ro > $d/token 2>/dev/null
chown -R $user $d
systemd-run --quiet --unit=jobgate-bench --uid=$user -p SupplementaryGroups=systemd-journal $d/jobgate --tokens $d/tokens --state-dir $d serve --listen 127.0.0.1:18621"
for job in ci-test-lines5000 ci-test-lines100000 ci-test-lines1000000 ci-test-wide ci-test-huge ci-test-hostile; do inside systemctl start "$job"; done
inside setpriv --reuid="$user" --regid="$user" --init-groups --reset-env \
    /usr/bin/python3 - "${PAIRS:-9}" 127.0.0.1:18621 "$(inside cat $d/token)" $d/jobgate < "$top/tests/bench/runs.py"
