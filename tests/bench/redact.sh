#!/bin/sh
# make bench (redaction): the cost of ten --redact rules on a 100,000-line
# run, as a ratio to the same run without redaction. Boots the sandbox, runs
# a job that prints 100,000 lines, then times `jobgate logs` (which reads the
# whole run and keeps the last 20,000 lines) with and without the rules,
# RUNS times each, as root inside the sandbox. Prints medians and the ratio.
set -eu
bin=$(realpath "${1:-target/release/jobgate}")
top=$(cd "$(dirname "$0")/../.." && pwd)
runs=${RUNS:-7}
[ "$(id -u)" = 0 ] || { echo "bench needs root (it boots systemd in namespaces)" >&2; exit 1; }
. "$top/tests/sandbox/lib.sh"
sandbox_boot

# journald's own rate limit (10,000 lines a burst, scaled by free space)
# would drop most of the run; the unit's LogRateLimitIntervalSec= reaches
# journald through a cgroup xattr that cgroup v1 machines lack.
inside sh -c "mkdir -p /run/systemd/journald.conf.d && printf '[Journal]\nRateLimitIntervalSec=0\n' >/run/systemd/journald.conf.d/bench.conf && systemctl restart systemd-journald"
sandbox_put 0755 /run/bench/jobgate < "$bin"
inside sh -c "cat > /run/systemd/system/ci-test-bench.service <<'UNIT'
[Service]
Type=oneshot
ExecStart=/bin/sh -c 'seq 1 100000 | sed \"s|.*|line & user=alice token=abc&def path=/home/alice/work/& took 12ms status=ok|\"'
UNIT
cat > /run/bench/redact <<'RULES'
skip ^DEBUG
skip ^TRACE
strip /home/[a-z]+
mask token=[^ ]+
mask password=[^ ]+
mask (?i)authorization: *bearer +[^ ]+
mask AKIA[0-9A-Z]{16}
mask ghp_[A-Za-z0-9]{36}
mask -----BEGIN [A-Z ]*PRIVATE KEY-----
mask [0-9]{4}-[0-9]{4}-[0-9]{4}-[0-9]{4}
RULES
chmod 0600 /run/bench/redact
systemctl daemon-reload && systemctl start ci-test-bench.service"
# systemctl start returns when the job exits; journald ingests its output
# on its own time. Wait until the journal holds every line.
i=0
until lines=$(inside journalctl -u ci-test-bench.service -o cat --no-pager | grep -c '^line ') && [ "$lines" -ge 100000 ]; do
    i=$((i + 1)); [ $i -lt 240 ] || { echo "the journal holds only $lines lines" >&2; exit 1; }; sleep 0.5
done
echo "run of $lines lines; ten rules; jobgate logs --lines 20000, median of $runs"

median_ms() { # command...: the median wall time of $runs runs, in ms
    i=0; : >/tmp/jobgate-bench.$$
    while [ $i -lt "$runs" ]; do
        start=$(date +%s%N); "$@" >/dev/null; end=$(date +%s%N)
        echo $(((end - start) / 1000000)) >>/tmp/jobgate-bench.$$; i=$((i + 1))
    done
    sort -n /tmp/jobgate-bench.$$ | sed -n "$(((runs + 1) / 2))p"; rm -f /tmp/jobgate-bench.$$
}
plain=$(median_ms inside /run/bench/jobgate logs ci-test-bench --lines 20000)
redacted=$(median_ms inside /run/bench/jobgate --redact /run/bench/redact logs ci-test-bench --lines 20000)
journal=$(median_ms inside journalctl -u ci-test-bench.service -o cat --no-pager)
echo "journalctl -o cat, same run:   ${journal} ms"
echo "jobgate logs, no redaction:   ${plain} ms"
echo "jobgate logs, ten rules:      ${redacted} ms"
awk -v a="$redacted" -v b="$plain" 'BEGIN { printf "redaction ratio:              %.2fx (target < 1.3x)\n", a / b }'
sample=$(inside /run/bench/jobgate --redact /run/bench/redact logs ci-test-bench --lines 1)
echo "a redacted line:              $sample"
