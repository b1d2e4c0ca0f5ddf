#!/bin/sh
# make package-test: the Debian package as an operator meets it. Needs root,
# lintian, and jobgate_*.deb from `make deb` in the checkout.
#
# lintian finds no error and no warning. Then, in a sandbox booted on an
# overlay of / (tests/sandbox/boot.sh --overlay: dpkg's changes vanish with
# it, the host is not changed; a network of its own, so no archive is
# reached and port 8000 is free):
#  1. apt-get install ./jobgate_*.deb: the user, the directories and the
#     units are there, no unit is enabled or running, and no one may start
#     a unit.
#  2. The README's steps (sudo rule from the examples, a token, the socket
#     enabled) give a passing `jobgate check`, and a job started over HTTP
#     and followed to its end.
#  3. apt-get purge leaves no path named jobgate behind: no new one in the
#     overlay's upper dir (every change since boot); the user stays.
#  4. A lower version with a token, state and the service running; an
#     upgrade keeps the token file and the state and restarts the service;
#     remove stops it and keeps both; purge again leaves nothing.
# The scripts run in the sandbox are in single quotes: its shell expands them.
# shellcheck disable=SC2016
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
set -- "$top"/jobgate_*_*.deb
if [ $# != 1 ] || [ ! -f "$1" ]; then
    echo "package-test: need one jobgate_*.deb in $top (make deb)" >&2
    exit 1
fi
deb=$1
version=$(dpkg-deb -f "$deb" Version)
arch=$(dpkg-deb -f "$deb" Architecture)
old_version=$version~old
started=$(date +%s)
# What the test would change on the host if the overlay leaked (other
# sessions may install packages or add users meanwhile: only jobgate's).
host_jobgate() {
    getent passwd jobgate || true
    dpkg-query -W -f '${Status} ${Version}\n' jobgate 2>/dev/null || true
    ls -d /usr/bin/jobgate /etc/jobgate /var/lib/jobgate /usr/lib/systemd/system/jobgate* 2>/dev/null || true
}
host_before=$(host_jobgate)

fail() {
    echo "package-test: $*" >&2
    exit 1
}

echo "lintian $(basename "$deb")"
lintian --fail-on error,warning "$deb" 2>/dev/null || fail "lintian reports an error or a warning (lintian $deb)"

# shellcheck source=tests/sandbox/lib.sh
. "$top/tests/sandbox/lib.sh"
sandbox_boot --overlay
work=
cleanup() {
    sandbox_stop
    if [ -n "$work" ]; then rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 1' INT TERM
work=$(mktemp -d)

# The lower version: the same files, only the version changed.
dpkg-deb -R "$deb" "$work/old"
sed -i "s/^Version: .*/Version: $old_version/" "$work/old/DEBIAN/control"
dpkg-deb --root-owner-group -b "$work/old" "$work/jobgate_${old_version}_$arch.deb" >/dev/null
sandbox_put 0644 "/tmp/pkg/jobgate_${version}_$arch.deb" <"$deb"
sandbox_put 0644 "/tmp/pkg/old/jobgate_${old_version}_$arch.deb" <"$work/jobgate_${old_version}_$arch.deb"

# A script in the sandbox as root, in /tmp/pkg (its own tmpfs, not in the
# overlay); it fails the test when it fails. `no WHY` fails it with a reason.
in_sandbox() {
    inside sh -euc "no() { echo \"\$*\" >&2; exit 1; }; cd /tmp/pkg; $1" || fail "in the sandbox: $(echo "$1" | head -n 1) ..."
}
apt() {
    in_sandbox "DEBIAN_FRONTEND=noninteractive apt-get -q -y $* >apt.log 2>&1 || { cat apt.log; exit 1; }"
}
http() {
    inside curl -sS --max-time 30 -H "Authorization: Bearer $token" "$@" || fail "curl $*"
}
answering() {
    in_sandbox 'i=0; until curl -fs -o /dev/null http://127.0.0.1:8000/; do
        i=$((i + 1)); [ $i -lt 100 ] || no "nothing answers on 127.0.0.1:8000"; sleep 0.1; done'
}
# After a purge: no path named jobgate among every change made to / since
# the boot (the overlay's upper dir) but those made before the install
# (the baseline, below), no rule in the sandbox's own
# /etc/sudoers.d, no jobgate unit loaded; the user stays. The example job
# and its drop-in that the operator copied to /etc/systemd/system are the
# operator's files, which a purge rightly leaves.
nothing_left() {
    left=$(inside find /run/sandbox-overlay -name '*jobgate*' ! -path '*/etc/systemd/system/ci-test-*')
    [ "$left" = "$baseline" ] || fail "$1 left: $left (before the install: $baseline)"
    in_sandbox '[ ! -e /etc/sudoers.d/jobgate ] || no "/etc/sudoers.d/jobgate is left"
        [ -z "$(systemctl list-units --all --no-legend "jobgate*")" ] || no "units left: $(systemctl list-units --all "jobgate*")"
        getent passwd jobgate >/dev/null || no "the user jobgate is gone"'
}

# A machine without jobgate: none installed, no user, /etc/jobgate or
# /var/lib/jobgate left from before (their removal is in the upper dir now,
# the baseline of what a purge may leave). And none of a Docker image's
# /usr/sbin/policy-rc.d, which forbids maintainer scripts to stop or
# restart services (deb-systemd-invoke asks it).
in_sandbox 'if dpkg -s jobgate >/dev/null 2>&1; then dpkg --purge jobgate >/dev/null; fi
    if getent passwd jobgate >/dev/null; then userdel jobgate; fi
    rm -rf /etc/jobgate /var/lib/jobgate /usr/sbin/policy-rc.d'
baseline=$(inside find /run/sandbox-overlay -name '*jobgate*')

echo "1. install $(basename "$deb")"
apt install "./jobgate_${version}_$arch.deb"
in_sandbox 'id -nG jobgate | grep -qw systemd-journal || no "jobgate is not in systemd-journal"
    for want in /etc/jobgate:750:root:jobgate /etc/jobgate/tokens:640:root:jobgate /var/lib/jobgate:700:jobgate:jobgate; do
        have=$(stat -c %n:%a:%U:%G "${want%%:*}") && [ "$have" = "$want" ] || no "want $want, have $have"
    done
    jobgate --version | grep -q "^jobgate " || no "jobgate --version"
    for f in /usr/share/man/man8/jobgate.8.gz /usr/share/man/man5/jobgate-tokens.5.gz \
        /usr/share/bash-completion/completions/jobgate /usr/share/zsh/vendor-completions/_jobgate \
        /usr/share/doc/jobgate/copyright /usr/share/doc/jobgate/changelog.Debian.gz; do
        [ -f "$f" ] || no "no $f"
    done
    for unit in jobgate.service jobgate.socket jobgate@.service jobgate-http.service jobgate-http.socket \
        jobgate-polkit.service jobgate-fcgiwrap.service jobgate-fcgiwrap.socket; do
        [ -f "/usr/lib/systemd/system/$unit" ] || no "no unit $unit"
        case $(systemctl is-enabled "$unit") in disabled | static | indirect) ;; *) no "$unit is enabled" ;; esac
        case $unit in *@.service) ;; *) if systemctl --quiet is-active "$unit"; then no "$unit is active"; fi ;; esac
    done
    [ -z "$(find /run/sandbox-overlay/etc/systemd -name "*jobgate*" 2>/dev/null)" ] || no "a unit is enabled"
    if dpkg -L jobgate | grep -e "^/etc" -e "^/usr/share/polkit-1"; then no "files in /etc or polkit rules"; fi
    [ -z "$(find /etc/sudoers.d /etc/polkit-1/rules.d -mindepth 1 2>/dev/null)" ] || no "a sudo or polkit rule"
    sudo -l -U jobgate | grep -q "is not allowed to run sudo" || no "jobgate may run sudo"'

echo "2. the README's steps: sudo rule, token, socket; check, start, follow"
examples=/usr/share/doc/jobgate/examples
in_sandbox "visudo -qcf $examples/sudoers.d/jobgate && install -m 0440 $examples/sudoers.d/jobgate /etc/sudoers.d/jobgate
    cp -R $examples/systemd/ci-test-hello.service $examples/systemd/ci-test-.service.d /etc/systemd/system/
    systemctl daemon-reload
    [ \"\$(systemctl show -P DynamicUser ci-test-hello.service)\" = yes ] || { echo 'the drop-in gives no dynamic user' >&2; exit 1; }
    systemctl enable --quiet --now jobgate.socket"
token=$(inside jobgate token add ci --scope rw 2>/dev/null) || fail "jobgate token add"
in_sandbox 'sudo -u jobgate jobgate check >check.log || { cat check.log; exit 1; }'
http -X POST http://127.0.0.1:8000/api/job/ci-test-hello | grep -q '"Job started"' || fail "start ci-test-hello"
followed=$(http -N http://127.0.0.1:8000/api/job/ci-test-hello/follow)
case $followed in
    *"hello from ci-test-hello"*"finished result=success exit_status=0"*) ;;
    *) fail "follow ci-test-hello: $followed" ;;
esac

echo "3. purge"
apt purge jobgate
nothing_left "apt-get purge"

echo "4. install $old_version, upgrade to $version, remove, purge"
apt install "./old/jobgate_${old_version}_$arch.deb"
in_sandbox "install -m 0440 $examples/sudoers.d/jobgate /etc/sudoers.d/jobgate && systemctl enable --quiet --now jobgate.service"
token=$(inside jobgate token add ci --scope rw 2>/dev/null) || fail "jobgate token add"
answering
http -X POST http://127.0.0.1:8000/api/job/ci-test-hello >/dev/null
http -N http://127.0.0.1:8000/api/job/ci-test-hello/follow >/dev/null
# The run's lines, given to this token once: its cursor is state.
http http://127.0.0.1:8000/api/job/ci-test-hello/tail | grep -q "hello from ci-test-hello" || fail "tail before the upgrade"
kept='find /etc/jobgate /var/lib/jobgate -type f -exec sha256sum {} + | sort; systemctl show -P MainPID jobgate.service'
before=$(inside sh -c "$kept")
apt install "./jobgate_${version}_$arch.deb"
after=$(inside sh -c "$kept")
[ "$(echo "$before" | sed '$d')" = "$(echo "$after" | sed '$d')" ] || fail "the upgrade changed the token file or the state: $before / $after"
[ "$(echo "$before" | tail -n 1)" != "$(echo "$after" | tail -n 1)" ] || fail "the upgrade did not restart jobgate.service"
in_sandbox "[ \"\$(dpkg-query -W -f '\${Version}' jobgate)\" = '$version' ] || no 'not upgraded'"
answering
# Nothing new for this token: its cursor was kept.
[ -z "$(http "http://127.0.0.1:8000/api/job/ci-test-hello/tail?format=text")" ] || fail "tail after the upgrade gave lines again"
apt remove jobgate
in_sandbox 'if systemctl --quiet is-active jobgate.service; then no "jobgate.service runs after remove"; fi
    [ ! -e /usr/bin/jobgate ] || no "/usr/bin/jobgate after remove"
    [ -s /etc/jobgate/tokens ] && [ -d /var/lib/jobgate ] && [ -e /etc/sudoers.d/jobgate ] || no "remove took the configuration"'
apt purge jobgate
nothing_left "apt-get purge after remove"

cleanup
trap - EXIT
[ "$(host_jobgate)" = "$host_before" ] || fail "the host changed: $host_before / $(host_jobgate)"
echo "package-test: 4 passed, 0 failed ($(($(date +%s) - started)) s)"
