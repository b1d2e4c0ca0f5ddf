#!/bin/sh
# make install into a scratch DESTDIR with a custom PREFIX, check what
# landed where, then make uninstall and check that nothing is left.
set -eu
dest=$(mktemp -d)
trap 'rm -rf "$dest"' EXIT
make -s install DESTDIR="$dest" PREFIX=/opt/jg >/dev/null
for f in /opt/jg/bin/jobgate /opt/jg/share/man/man8/jobgate.8 /opt/jg/share/man/man5/jobgate-tokens.5 \
    /opt/jg/share/jobgate/sudoers.d/jobgate /opt/jg/share/jobgate/systemd/jobgate.service \
    /opt/jg/share/jobgate/systemd/ci-test-.service.d/10-jobgate-defaults.conf; do
    [ -f "$dest$f" ] || { echo "install: $f missing"; exit 1; }
done
[ -x "$dest/opt/jg/bin/jobgate" ] || { echo "install: the binary is not executable"; exit 1; }
[ -x "$dest/opt/jg/share/jobgate/github/jobgate-run" ] || { echo "install: jobgate-run is not executable"; exit 1; }
[ ! -x "$dest/opt/jg/share/jobgate/github/action.yml" ] || { echo "install: action.yml is executable"; exit 1; }
"$dest/opt/jg/bin/jobgate" --version >/dev/null
grep -q '^ExecStart=/opt/jg/bin/jobgate ' "$dest/opt/jg/share/jobgate/systemd/jobgate.service" ||
    { echo "install: jobgate.service does not run /opt/jg/bin/jobgate"; exit 1; }
grep -q '^exec /opt/jg/bin/jobgate ' "$dest/opt/jg/share/jobgate/cgi/jobgate.cgi" ||
    { echo "install: jobgate.cgi does not run /opt/jg/bin/jobgate"; exit 1; }
[ ! -e "$dest/etc/sudoers.d" ] || { echo "install: the sudo rule must not be put in place by default"; exit 1; }
installed=$(find "$dest" -type f | wc -l)
make -s uninstall DESTDIR="$dest" PREFIX=/opt/jg
left=$(find "$dest" -type f | wc -l)
[ "$left" = 0 ] || { echo "uninstall left $left files:"; find "$dest" -type f; exit 1; }
echo "install: $installed files into DESTDIR, uninstall: 0 left"
