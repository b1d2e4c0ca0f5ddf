#!/bin/sh
# tests/sudoers-check.sh USER: checks the sudo rule installed for USER (from
# contrib/sudoers.d/jobgate) against an allow/deny table, without running
# anything: each row asks `sudo -u USER sudo -n -l ARGV...`, which exits 0
# if USER may run ARGV and 1 if not.
#
# Run it as root (or as USER itself). Environment:
#   SYSTEMCTL  the path in the rule   (default /usr/bin/systemctl)
#   PREFIX     jobgate's --prefix     (default ci-test-)
#
# Output: one line per row,
#   ok   allow  ARGV      allowed, as it should be
#   ok   deny   ARGV      refused, as it should be
#   FAIL allow! ARGV      should be allowed, sudo refused
#   FAIL DENY!  ARGV      should be refused, sudo allowed
#   note ...   ARGV       sudo's answer, either one is safe (not counted)
# then `N passed, N failed`; the exit status is 1 if any row failed.
# Arguments are shown in [brackets]; a newline shows as \n, a tab as \t.

set -u

if [ $# -ne 1 ] || [ -z "$1" ]; then
    echo "usage: $0 USER" >&2
    exit 2
fi
user=$1
sc=${SYSTEMCTL:-/usr/bin/systemctl}
p=${PREFIX:-ci-test-}

if ! id "$user" >/dev/null 2>&1; then
    echo "$0: no such user: $user" >&2
    exit 2
fi
me=$(id -un)
if [ "$me" != "$user" ] && [ "$(id -u)" -ne 0 ]; then
    echo "$0: run this as root or as $user" >&2
    exit 2
fi

# sudo -l as USER: 0 allowed, 1 refused (or no rule at all).
ask() {
    if [ "$me" = "$user" ]; then
        sudo -n -l "$@" >/dev/null 2>&1
    else
        sudo -u "$user" sudo -n -l "$@" >/dev/null 2>&1
    fi
}

# ARGV in brackets, control characters made visible.
show() {
    out=
    for a in "$@"; do
        a=$(printf '%s|' "$a" | awk 'BEGIN { ORS = "" } { gsub(/\t/, "\\t"); if (NR > 1) print "\\n"; print }')
        out="$out[${a%|}]"
    done
    printf '%s' "$out"
}

passed=0
failed=0
# row allow|deny|either ARGV...
row() {
    want=$1
    shift
    if ask "$@"; then got=allow; else got=deny; fi
    case $want/$got in
        allow/allow) printf '%s\n' "ok   allow  $(show "$@")"; passed=$((passed + 1)) ;;
        deny/deny) printf '%s\n' "ok   deny   $(show "$@")"; passed=$((passed + 1)) ;;
        allow/deny) printf '%s\n' "FAIL allow! $(show "$@")"; failed=$((failed + 1)) ;;
        deny/allow) printf '%s\n' "FAIL DENY!  $(show "$@")"; failed=$((failed + 1)) ;;
        either/*) printf '%s\n' "note $got  $(show "$@")" ;;
    esac
}

# Listing one's own rules needs no password when they are NOPASSWD.
if [ "$me" = "$user" ]; then sudo -n -l >/dev/null 2>&1; else sudo -u "$user" sudo -n -l >/dev/null 2>&1; fi ||
    echo "# note: 'sudo -n -l' as $user fails: no rule for $user? (visudo -c; ls /etc/sudoers.d)"

nl=$(printf '\nx')
nl=${nl%x}
tab=$(printf '\t')
i64=$(printf '%064d' 0 | tr 0 a)
i65=$(printf '%065d' 0 | tr 0 a)
long=$(printf '%0200d' 0 | tr 0 a)

echo "# sudo rule for $user: $sc start|stop --no-block -- ${p}NAME[@INSTANCE].service"

# What jobgate runs.
for verb in start stop; do
    row allow "$sc" $verb --no-block -- "${p}a.service"
    row allow "$sc" $verb --no-block -- "${p}deploy@main.service"
    row allow "$sc" $verb --no-block -- "${p}x_y-Z9@v1.2_3.service"
done
row allow "$sc" start --no-block -- "${p}hello.service"
row allow "$sc" start --no-block -- "${p}0.service"
row allow "$sc" start --no-block -- "${p}deploy@$i64.service"
row allow "$sc" start --no-block -- "${p}deploy@_x.service"
row allow "$sc" start --no-block -- "${p}deploy@a.b.c.service"
row allow "$sc" start --no-block -- "${p}deploy@a..service"

# Another unit, a second unit, no prefix.
for verb in start stop; do
    row deny "$sc" $verb --no-block -- "${p}a.service" "${p}b.service"
    row deny "$sc" $verb --no-block -- "${p}a.service ${p}b.service"
    row deny "$sc" $verb --no-block -- ssh.service
done
row deny "$sc" start --no-block -- systemd-journald.service
row deny "$sc" start --no-block -- -.mount
row deny "$sc" start --no-block -- "$(printf '%s' "$p" | tr a-z A-Z)a.service"
row deny "$sc" start --no-block -- "x${p}a.service"
row deny "$sc" start --no-block -- "${p%-}.service"
row deny "$sc" start --no-block -- "${p}.service"

# Other verbs.
for verb in restart try-restart reload reload-or-restart enable disable mask unmask \
    kill set-property edit isolate reset-failed show cat revert link; do
    row deny "$sc" $verb --no-block -- "${p}a.service"
done
row deny "$sc" set-property --no-block -- "${p}a.service" CPUQuota=1%
row deny "$sc" START --no-block -- "${p}a.service"
row deny "$sc" daemon-reload
row deny "$sc"
row deny "$sc" --no-block -- "${p}a.service"

# Missing, moved or extra options.
row deny "$sc" start -- "${p}a.service"
row deny "$sc" start --no-block "${p}a.service"
row deny "$sc" start "${p}a.service"
row deny "$sc" --no-block start -- "${p}a.service"
row deny "$sc" start -- --no-block "${p}a.service"
row deny "$sc" start --no-block --no-block -- "${p}a.service"
row deny "$sc" start --no-block --now -- "${p}a.service"
row deny "$sc" start --no-block --force -- "${p}a.service"
row deny "$sc" start --no-block --user -- "${p}a.service"
row deny "$sc" start --no-block --job-mode=isolate -- "${p}a.service"
row deny "$sc" start --no-block -H root@203.0.113.1 -- "${p}a.service"
row deny "$sc" start --no-block --host=203.0.113.1 -- "${p}a.service"
row deny "$sc" start --no-block -M other -- "${p}a.service"
row deny "$sc" start --no-block --root=/tmp -- "${p}a.service"
row deny "$sc" start --no-block -- -- "${p}a.service"

# An extra argument after the unit.
row deny "$sc" start --no-block -- "${p}a.service" extra
row deny "$sc" start --no-block -- "${p}a.service" --force
row deny "$sc" start --no-block -- "${p}a.service" ""
row deny "$sc" start --no-block -- "" "${p}a.service"
row deny "$sc" stop --no-block -- "${p}a.service" ssh.service

# Not a name: traversal, spaces and control characters, other unit types.
row deny "$sc" start --no-block -- "${p}../x.service"
row deny "$sc" start --no-block -- "${p}a/../b.service"
row deny "$sc" start --no-block -- "${p}a b.service"
row deny "$sc" start --no-block -- "${p}a${tab}b.service"
row deny "$sc" start --no-block -- "${p}a.service${nl}"
row deny "$sc" start --no-block -- "${p}a.service${nl}ssh.service"
row deny "$sc" start --no-block -- "${p}a${nl}.service"
row deny "$sc" start --no-block -- "${p}a.socket"
row deny "$sc" start --no-block -- "${p}a.timer"
row deny "$sc" start --no-block -- "${p}a"
row deny "$sc" start --no-block -- "${p}a.service.service"
row deny "$sc" start --no-block -- "${p}a.servicex"
row deny "$sc" start --no-block -- "${p}a.Service"
row deny "$sc" start --no-block -- "${p}*.service"
row deny "$sc" start --no-block -- "${p}?.service"
row deny "$sc" start --no-block -- "${p}a;id.service"
row deny "$sc" start --no-block -- "${p}a\$(id).service"
row deny "$sc" start --no-block -- "${p}a\\x2d.service"
row deny "$sc" start --no-block -- "${p}a,b.service"
row deny "$sc" start --no-block -- "${p}a#.service"
row deny "$sc" start --no-block -- "${p}$(printf '\320\265').service"
row deny "$sc" start --no-block -- "ci-t$(printf '\320\265')st-a.service"
row deny "$sc" start --no-block -- "${p}$(printf '\357\275\201').service"
row deny "$sc" start --no-block -- "${p}a$(printf '\342\200\213').service"

# Instance tricks.
row deny "$sc" start --no-block -- "${p}deploy@.service"
row deny "$sc" start --no-block -- "${p}deploy@.x.service"
row deny "$sc" start --no-block -- "${p}deploy@-x.service"
row deny "$sc" start --no-block -- "${p}deploy@..service"
row deny "$sc" start --no-block -- "${p}deploy@a..b.service"
row deny "$sc" start --no-block -- "${p}deploy@a-..-..-etc.service"
row deny "$sc" stop --no-block -- "${p}deploy@a...service"
row deny "$sc" start --no-block -- "${p}deploy@$i65.service"
row deny "$sc" start --no-block -- "${p}deploy@main@x.service"
row deny "$sc" start --no-block -- "${p}deploy@a/b.service"
row deny "$sc" start --no-block -- "${p}deploy@a b.service"
row deny "$sc" start --no-block -- "${p}@main.service"

# Other programs, other paths to systemctl.
row deny /usr/bin/journalctl
row deny /usr/bin/journalctl -u "${p}a.service"
row deny /usr/bin/journalctl --no-pager -n 1
row deny /bin/sh -c id
row deny /usr/bin/systemd-run -- /bin/sh
row deny /usr/bin/env "$sc" start --no-block -- "${p}a.service"
# /bin/systemctl: sudo allows another path only if its directory resolves
# to the rule's directory (and it is the same file); on a usr-merged system
# /bin is a link to usr/bin, so it does.
name=${sc##*/}
dir=$(cd -P "${sc%/*}" 2>/dev/null && pwd -P)
for other in /bin /usr/local/bin /sbin; do
    [ "$other/$name" = "$sc" ] && continue
    odir=$(cd -P "$other" 2>/dev/null && pwd -P)
    if [ -n "$odir" ] && [ "$odir" = "$dir" ] && [ -e "$other/$name" ]; then
        row allow "$other/$name" start --no-block -- "${p}a.service"
    else
        row deny "$other/$name" start --no-block -- "${p}a.service"
    fi
done

# sudo matches the arguments joined with spaces, so these argv shapes match
# too; systemctl refuses them itself (unknown verb or option), so either
# answer is safe. Shown, not counted.
row either "$sc" "start --no-block -- ${p}a.service"
row either "$sc" start "--no-block --" "${p}a.service"
row either "$sc" start --no-block "-- ${p}a.service"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
