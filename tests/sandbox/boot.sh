#!/bin/sh
# Boots a real systemd in private PID, mount and UTS namespaces, for the
# integration tests (tests/system/sandbox.rs) and the shell scripts
# (tests/sandbox/lib.sh). The one source of the recipe. This script execs
# `unshare`, so the caller's child IS unshare, and unshare's only child is
# the sandbox's systemd (pid 1 of the new PID namespace):
#
#   setpriv --pdeathsig KILL sh tests/sandbox/boot.sh </dev/null >LOG 2>&1 &
#   pid=$(cat /proc/$!/task/$!/children)     # or: pgrep -P $!  (systemd)
#   nsenter -t $pid -m -p -u systemctl is-system-running   # poll: running|degraded
#   nsenter -t $pid -m -p -u systemctl poweroff --no-block # then wait for $!
#
# Until it execs unshare this script starts no process of its own (no
# `id -u`), so the caller's child never has a child that is not systemd.
#
# Private tmpfs on /run, /tmp, /var/tmp and /var/log/journal: without the
# private /tmp, systemd's boot-time tmpfiles cleanup would empty the host's
# /tmp. The journal directory belongs to group systemd-journal (setgid), so
# that group's members can read the journal. /etc/sudoers.d and
# /etc/polkit-1/rules.d are private too, so tests install sudo and polkit
# rules without touching the host's. Units that would change the host
# (sysctl, binfmt, modules, remount, tmpfiles, /dev nodes) are masked.
# systemd sets the hostname (a `hostname` call here would be undone by
# /etc/hostname). --kill-child: if unshare dies, even by SIGKILL, so does
# the whole namespace.
#
# `boot.sh --overlay`: a machine of its own for installing packages
# (dpkg, apt-get, systemd-sysusers): / is an overlay of the host's / whose
# changes go to a tmpfs (the upper dir), so the host's files stay as they
# were and the changes vanish with the sandbox, and the network namespace
# is its own too (a loopback that systemd brings up, nothing else: enter it
# with nsenter -n as well; apt-get inside reaches no archive, and a server
# inside takes no host port). /dev and /sys are the host's (bound); the
# host's other mounts are not seen inside. The upper dir is shown read-only
# at /run/sandbox-overlay: every file the sandbox added or changed, and a
# character device 0/0 for each it removed. The mounts below are then made
# in the overlay, as without the option.
set -eu

case "$*" in
    '') overlay=no ;;
    --overlay) overlay=yes ;;
    *) echo "boot.sh: unknown arguments '$*' (only --overlay)" >&2; exit 2 ;;
esac
# The namespaces unshare makes below.
if [ $overlay = yes ]; then
    set -- --pid --mount --uts --net
else
    set -- --pid --mount --uts
fi

# `-O /`: / belongs to this process's effective uid, i.e. we are root.
if ! [ -O / ]; then
    echo "boot.sh: must run as root (it creates namespaces and mounts)" >&2
    exit 1
fi

# shellcheck disable=SC2016 # the script is expanded by the inner sh
exec unshare --fork --kill-child=SIGKILL "$@" --propagation private \
    sh -c '
        set -eu
        journal_gid=$(getent group systemd-journal | cut -d: -f3)
        if [ -z "$journal_gid" ]; then
            echo "boot.sh: no group systemd-journal on this machine" >&2
            exit 1
        fi
        if [ "$1" = yes ]; then
            mount -t tmpfs -o mode=0700 tmpfs /tmp
            mkdir /tmp/upper /tmp/work /tmp/root
            mount -t overlay -o lowerdir=/,upperdir=/tmp/upper,workdir=/tmp/work overlay /tmp/root
            mount --rbind /dev /tmp/root/dev
            mount --rbind /sys /tmp/root/sys
            mkdir /tmp/root/.oldroot
            cd /tmp/root
            pivot_root . .oldroot
            cd /
            # No DNS in its network: its own name resolves from the file.
            printf "127.0.1.1\tjobgate-sandbox\n" >>/etc/hosts
        fi
        mount -t proc proc /proc
        mount -t tmpfs -o mode=0755 tmpfs /run
        for dir in /tmp /var/tmp; do mount -t tmpfs -o mode=1777 tmpfs "$dir"; done
        mount -t tmpfs -o "mode=2755,gid=$journal_gid" tmpfs /var/log/journal
        mount -t tmpfs -o mode=0755 tmpfs /etc/sudoers.d
        if [ -d /etc/polkit-1/rules.d ]; then
            mount -t tmpfs -o mode=0700 tmpfs /etc/polkit-1/rules.d
            chown polkitd /etc/polkit-1/rules.d 2>/dev/null || true
        fi
        if [ "$1" = yes ]; then
            mkdir /run/sandbox-overlay
            mount --bind -o ro /.oldroot/tmp/upper /run/sandbox-overlay
            umount -l /.oldroot
            rmdir /.oldroot
        fi
        exec /lib/systemd/systemd --system --unit=basic.target systemd.hostname=jobgate-sandbox \
            systemd.mask=systemd-tmpfiles-setup.service \
            systemd.mask=systemd-tmpfiles-setup-dev.service \
            systemd.mask=systemd-tmpfiles-clean.timer \
            systemd.mask=systemd-sysctl.service \
            systemd.mask=systemd-binfmt.service \
            systemd.mask=systemd-modules-load.service \
            systemd.mask=systemd-remount-fs.service
    ' boot.sh "$overlay"
