#!/bin/sh
# make demo: boots a private systemd (tests/sandbox/boot.sh) with the example
# jobs from contrib/systemd, installs the shipped sudo rule there, makes a
# demo token, and runs `jobgate serve` on 127.0.0.1:8000 as an unprivileged
# user, as a real deployment would. Ctrl-C powers the sandbox off and leaves
# nothing running. Needs root (namespaces, mounts, a system user).
set -eu

bin=$(realpath "${1:-target/debug/jobgate}")
top=$(cd "$(dirname "$0")/../.." && pwd)
user=jobgate-demo
listen=${JOBGATE_DEMO_LISTEN:-127.0.0.1:8000}

if [ "$(id -u)" != 0 ]; then
    echo "make demo needs root: it boots systemd in namespaces (try: sudo make demo)" >&2
    exit 1
fi
id "$user" >/dev/null 2>&1 ||
    useradd --system --user-group --no-create-home --shell /usr/sbin/nologin -G systemd-journal "$user"

. "$top/tests/sandbox/lib.sh"
stop() {
    echo
    echo "stopping the sandbox..."
    sandbox_stop
    echo "stopped; nothing is left running"
}
sandbox_boot
trap stop INT TERM EXIT

# Everything below lives in the sandbox's own /run and /etc/sudoers.d.
# The sandbox's /tmp is its own: files come in through sandbox_put.
sandbox_put 0755 /run/jobgate/bin/jobgate < "$bin"
for unit in "$top"/contrib/systemd/ci-test-*.service; do
    sandbox_put 0644 "/run/systemd/system/$(basename "$unit")" < "$unit"
done
sed "/^[[:space:]]*#/!s/jobgate/$user/g" "$top/contrib/sudoers.d/jobgate" | sandbox_put 0440 /etc/sudoers.d/jobgate
inside sh -c "mkdir -p /run/jobgate/state && chown $user:$user /run/jobgate/state && systemctl daemon-reload &&
    visudo -qcf /etc/sudoers.d/jobgate"
token=$(inside /run/jobgate/bin/jobgate --tokens /run/jobgate/tokens token add demo --scope rw 2>/dev/null)
inside sh -c "chown root:$user /run/jobgate/tokens && chmod 0640 /run/jobgate/tokens"
inside systemd-run --quiet --unit=jobgate --uid="$user" --gid="$user" -p SupplementaryGroups=systemd-journal \
    /run/jobgate/bin/jobgate --tokens /run/jobgate/tokens --state-dir /run/jobgate/state serve --listen "$listen"
i=0
until curl -fsS "http://$listen/" >/dev/null 2>&1; do
    i=$((i + 1)); [ $i -lt 100 ] || { echo "jobgate did not answer on $listen" >&2; exit 1; }; sleep 0.1
done

url=http://$listen
cat <<EOT

jobgate is serving on $url as the unprivileged user $user, inside a private
systemd with three example jobs: ci-test-hello, ci-test-fail, ci-test-deploy@BRANCH.
Paste these into another terminal:

  TOKEN=$token
  curl -s -H "Authorization: Bearer \$TOKEN" $url/api/jobs
  curl -s -X POST -H "Authorization: Bearer \$TOKEN" $url/api/job/ci-test-hello
  curl -s -H "Authorization: Bearer \$TOKEN" $url/api/job/ci-test-hello/state
  curl -s -H "Authorization: Bearer \$TOKEN" "$url/api/job/ci-test-hello/logs?format=text"
  curl -s -H "Authorization: Bearer \$TOKEN" $url/api/job/ci-test-hello/runs
  curl -s -X POST -H "Authorization: Bearer \$TOKEN" $url/api/job/ci-test-deploy@main
  curl -sN -H "Authorization: Bearer \$TOKEN" $url/api/job/ci-test-deploy@main/follow   # live, to its end
  JOBGATE_URL=$url JOBGATE_TOKEN=\$TOKEN sh $top/contrib/github/jobgate-run ci-test-hello; echo "exit \$?"
  curl -s -X POST -H "Authorization: Bearer \$TOKEN" $url/api/job/ci-test-fail
  curl -s -H "Authorization: Bearer \$TOKEN" $url/api/job/ci-test-fail/state
  curl -s -X POST -H "Authorization: Bearer \$TOKEN" "$url/api/job/ci-test-a;id"     # 400 Invalid job

jobgate's own log:  nsenter -t $sandbox_pid -m -p -u journalctl -f -u jobgate
Press Ctrl-C to stop everything.
EOT
while kill -0 "$unshare_pid" 2>/dev/null; do sleep 1; done
