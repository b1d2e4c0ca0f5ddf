#!/bin/sh
# make bench (follow): boots the sandbox (journald's rate limit off), runs
# serve, and runs follow.py inside it: how soon a written line reaches a
# follow client, and the throughput and peak memory of follow and logs on
# runs of 100,000 and 1,000,000 lines beside plain journalctl.
set -eu
bin=$(realpath "${1:-target/release/jobgate}")
top=$(cd "$(dirname "$0")/../.." && pwd)
[ "$(id -u)" = 0 ] || { echo "bench needs root (it boots systemd in namespaces)" >&2; exit 1; }
. "$top/tests/sandbox/lib.sh"
sandbox_boot
d=/run/bench
# journald's own rate limit would drop most of a big run (see redact.sh).
inside sh -c "mkdir -p /run/systemd/journald.conf.d && printf '[Journal]\nRateLimitIntervalSec=0\n' >/run/systemd/journald.conf.d/bench.conf && systemctl restart systemd-journald"
sandbox_put 0755 $d/jobgate < "$bin"
inside sh -c "for n in 100000 1000000; do
cat > /run/systemd/system/ci-test-lines\$n.service <<UNIT
[Service]
Type=oneshot
ExecStart=/bin/sh -c 'seq 1 \$n | sed \"s|.*|line & of a run, as a build or deploy would print it: status=ok|\"'
UNIT
done
cat > /run/systemd/system/ci-test-remains100000.service <<UNIT
[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/sh -c 'seq 1 100000 | sed \"s|.*|line & of a run, as a build or deploy would print it: status=ok|\"'
UNIT
cat > /run/systemd/system/ci-test-clock.service <<'UNIT'
[Unit]
StartLimitIntervalSec=0
[Service]
Type=oneshot
ExecStart=/bin/sh -c 'sleep 1; for i in \$(seq 1 200); do echo \"written \$(date +%%s%%N)\"; sleep 0.05; done'
UNIT
systemctl daemon-reload
$d/jobgate --tokens $d/tokens token add bench --scope ro > $d/token 2>/dev/null
systemd-run --quiet --unit=jobgate-bench $d/jobgate --tokens $d/tokens --state-dir $d serve --listen 127.0.0.1:18611"
inside /usr/bin/python3 - 127.0.0.1:18611 "$(inside cat $d/token)" $d/jobgate < "$top/tests/bench/follow.py"
