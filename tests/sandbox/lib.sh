# Shell helpers around boot.sh, for `make demo`, `make bench` and `make package-test`:
#   top=REPO; . "$top/tests/sandbox/lib.sh"; sandbox_boot; inside systemctl ...; (sandbox_stop on exit)
# Sets $sandbox_pid (systemd, for nsenter) and $unshare_pid.
# `sandbox_boot --overlay` passes the option to boot.sh: / inside is an
# overlay whose changes vanish with the sandbox (for dpkg; tests/package.sh).

# The caller sets $top, the checkout.
# shellcheck disable=SC2154
sandbox_boot() {
    setpriv --pdeathsig KILL sh "$top/tests/sandbox/boot.sh" "$@" </dev/null >/dev/null &
    unshare_pid=$!
    sandbox_pid=
    trap sandbox_stop INT TERM EXIT
    i=0
    until sandbox_pid=$(tr -d ' ' <"/proc/$unshare_pid/task/$unshare_pid/children" 2>/dev/null) && [ -n "$sandbox_pid" ]; do
        i=$((i + 1)); [ $i -lt 100 ] || { echo "systemd did not start" >&2; exit 1; }; sleep 0.1
    done
    i=0
    until state=$(inside systemctl is-system-running 2>&1) || [ "$state" = degraded ]; do
        i=$((i + 1)); [ $i -lt 300 ] || { echo "systemd did not come up (state: $state)" >&2; exit 1; }; sleep 0.1
    done
}

# -n: the sandbox's network namespace, its own with --overlay (without,
# the host's, and entering it changes nothing).
inside() {
    nsenter -t "$sandbox_pid" -m -p -u -n "$@"
}

# sandbox_put MODE PATH < FILE: a file of the host into the sandbox. Its
# /tmp and /run are its own, so a checkout under /tmp is not seen inside:
# what the sandbox needs from it comes in this way, never by its path.
sandbox_put() {
    # shellcheck disable=SC2016 # expanded by the inner sh
    inside sh -c 'mkdir -p "$(dirname "$2")" && cat > "$2" && chmod "$1" "$2"' sandbox_put "$1" "$2"
}

sandbox_stop() {
    trap - INT TERM EXIT
    if [ -n "${sandbox_pid:-}" ]; then inside systemctl poweroff --no-block >/dev/null 2>&1 || true; fi
    i=0
    while kill -0 "$unshare_pid" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.2; i=$((i + 1)); done
    kill -KILL "$unshare_pid" 2>/dev/null || true
    wait "$unshare_pid" 2>/dev/null || true
}
