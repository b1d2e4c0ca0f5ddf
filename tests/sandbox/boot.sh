#!/bin/sh
# Boots a real systemd in private PID, mount and UTS namespaces, for the
# integration tests and `make demo`. The one source of the recipe: the
# caller spawns this script, which becomes `unshare`; systemd is its child.
#
#   sh tests/sandbox/boot.sh &          # then: pgrep -P $! is systemd
#   nsenter -t SYSTEMD_PID -m -p -u systemctl is-system-running
#   nsenter -t SYSTEMD_PID -m -p -u systemctl poweroff
#
# Private tmpfs on /run, /tmp, /var/tmp and /var/log/journal: without the
# private /tmp, systemd's boot-time tmpfiles cleanup would empty the host's
# /tmp. /etc/sudoers.d and /etc/polkit-1/rules.d are private too, so tests
# install sudo and polkit rules without touching the host's. The journal directory belongs to systemd-journal
# (setgid), so that group's members can read it. Units that would change
# the host (sysctl, binfmt, modules, remount, tmpfiles) are masked.
# --kill-child: if unshare dies, so does the whole namespace.
set -eu

if [ "$(id -u)" != 0 ]; then
    echo "boot.sh: must run as root (it creates namespaces and mounts)" >&2
    exit 1
fi
journal_gid=$(getent group systemd-journal | cut -d: -f3)
if [ -z "$journal_gid" ]; then
    echo "boot.sh: no group systemd-journal on this machine" >&2
    exit 1
fi

exec unshare --fork --kill-child=SIGKILL --pid --mount --uts --propagation private \
    sh -c '
        set -e
        mount -t proc proc /proc
        for dir in /run /tmp /var/tmp; do mount -t tmpfs -o mode=1777 tmpfs "$dir"; done
        chmod 0755 /run
        mount -t tmpfs -o "mode=2755,gid=$1" tmpfs /var/log/journal
        mount -t tmpfs -o mode=0755 tmpfs /etc/sudoers.d
        if [ -d /etc/polkit-1/rules.d ]; then
            mount -t tmpfs -o mode=0700 tmpfs /etc/polkit-1/rules.d
            chown polkitd /etc/polkit-1/rules.d 2>/dev/null || true
        fi
        hostname jobgate-sandbox
        exec /lib/systemd/systemd --system --unit=basic.target \
            systemd.mask=systemd-tmpfiles-setup.service \
            systemd.mask=systemd-tmpfiles-setup-dev.service \
            systemd.mask=systemd-tmpfiles-clean.timer \
            systemd.mask=systemd-sysctl.service \
            systemd.mask=systemd-binfmt.service \
            systemd.mask=systemd-modules-load.service \
            systemd.mask=systemd-remount-fs.service
    ' boot.sh "$journal_gid"
