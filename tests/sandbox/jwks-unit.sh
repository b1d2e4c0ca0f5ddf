#!/bin/sh
# Runs contrib/systemd/jobgate-jwks@.service for real in the sandbox, against
# an HTTPS server on its 127.0.0.1 (openssl s_server with a throwaway CA), and
# checks what it leaves in /var/lib/jobgate/jwks: a good download renamed
# into place (0600), and nothing but the last good file after a bad
# document, an oversized answer without a length, plain http, a URL that
# looks like an option, and an instance that is not an issuer name.
#
#   sh tests/sandbox/jwks-unit.sh [JOBGATE GOOD-JWKS]   (root; needs openssl)
#
# Without arguments `jobgate trust check-jwks` is a stub that wants a
# "keys" member; with them, the real binary and a JWKS document it accepts.
# The sandbox boots on an overlay of / (boot.sh --overlay), so the binary
# goes to the unit's own path, /usr/bin/jobgate, without touching the host;
# /var/lib/jobgate is an empty tmpfs there, the HTTPS server runs inside
# (the overlay sandbox has a network of its own), and a drop-in sets the
# test user, the URL files and the CA: everything else is the shipped unit.
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
user=jobgate-test
port=$(awk 'BEGIN { srand(); print 20000 + int(rand() * 20000) }')
work=$(mktemp -d)
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
    rm -rf "$work"
}
trap cleanup EXIT
# The system tests' user, made as they make it (tests/system/sandbox.rs).
id "$user" >/dev/null 2>&1 ||
    useradd --system --user-group --no-create-home --shell /usr/sbin/nologin -G systemd-journal "$user"

openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost -addext subjectAltName=DNS:localhost \
    -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
mkdir "$work/www"
if [ $# -ge 2 ]; then
    cp "$2" "$work/www/good.json"
else
    echo '{"keys":[{"kty":"RSA","kid":"k1","alg":"RS256","n":"AQAB","e":"AQAB"}]}' >"$work/www/good.json"
fi
echo '<html>a login page, not keys</html>' >"$work/www/bad.json"
# 100 KiB; s_server -WWW sends no Content-Length, so only LimitFSIZE= stops it.
{ printf '{"keys":[]'; head -c 102400 /dev/zero | tr '\0' ' '; printf '}\n'; } >"$work/www/big.json"
# shellcheck source=tests/sandbox/lib.sh
. "$top/tests/sandbox/lib.sh"
sandbox_boot --overlay
trap 'sandbox_stop; cleanup' EXIT
inside sh -c 'mkdir -p /var/lib/jobgate && mount -t tmpfs tmpfs /var/lib/jobgate'
for name in good bad big; do sandbox_put 0644 "/run/jwks-test/www/$name.json" <"$work/www/$name.json"; done
sandbox_put 0644 /run/jwks-test/cert.pem <"$work/cert.pem"
sandbox_put 0600 /run/jwks-test/key.pem <"$work/key.pem"
inside systemd-run --quiet --unit=jwks-https -p WorkingDirectory=/run/jwks-test/www \
    openssl s_server -quiet -WWW -accept "$port" -cert /run/jwks-test/cert.pem -key /run/jwks-test/key.pem
i=0
until inside curl -fsS --cacert /run/jwks-test/cert.pem -o /dev/null "https://localhost:$port/good.json" 2>/dev/null; do
    i=$((i + 1)); [ $i -lt 50 ] || { echo "jwks-unit: openssl s_server does not answer on $port" >&2; exit 1; }; sleep 0.1
done
if [ $# -ge 1 ]; then
    sandbox_put 0755 /usr/bin/jobgate <"$1"
else
    sandbox_put 0755 /usr/bin/jobgate <<'STUB'
#!/bin/sh
[ "$1 $2" = "trust check-jwks" ] || { echo "stub: unexpected arguments: $*" >&2; exit 2; }
grep -q '"keys"' "$3" || { echo "stub: $3: not a JWKS" >&2; exit 1; }
STUB
fi
sandbox_put 0644 /run/jwks-test/ca.pem <"$work/cert.pem"
for name in good bad big; do
    echo "JWKS_URL=https://localhost:$port/$name.json" | sandbox_put 0644 "/run/jwks-test/$name.conf"
done
echo "JWKS_URL=http://localhost:$port/good.json" | sandbox_put 0644 /run/jwks-test/plain.conf
echo "JWKS_URL=--config /etc/passwd" | sandbox_put 0644 /run/jwks-test/option.conf
sandbox_put 0644 /run/jwks-test/a.b.conf </dev/null
sandbox_put 0644 "/run/systemd/system/jobgate-jwks@.service" <"$top/contrib/systemd/jobgate-jwks@.service"
sandbox_put 0644 "/run/systemd/system/jobgate-jwks@.timer" <"$top/contrib/systemd/jobgate-jwks@.timer"
printf '[Service]\nUser=%s\nGroup=%s\nEnvironmentFile=\nEnvironmentFile=/run/jwks-test/%%i.conf\nEnvironment=CURL_CA_BUNDLE=/run/jwks-test/ca.pem\n' \
    "$user" "$user" | sandbox_put 0644 "/run/systemd/system/jobgate-jwks@.service.d/test.conf"
inside systemctl daemon-reload

failed=0
check() { # what expected-exit-status instance
    got=0
    inside systemctl start "jobgate-jwks@$3.service" 2>/dev/null || got=$?
    files=$(inside ls -A /var/lib/jobgate/jwks | tr '\n' ' ')
    if [ "$got" -eq "$2" ] && [ "$files" = "good.json " ]; then
        echo "ok: $1"
    else
        echo "FAILED: $1 (systemctl start: $got, left: $files)"
        inside journalctl --no-pager -o cat -n 5 -u "jobgate-jwks@$3.service"
        failed=1
    fi
}
check "a good download is renamed into place" 0 good
mode=$(inside stat -c '%a %U' /var/lib/jobgate/jwks/good.json)
[ "$mode" = "600 $user" ] || { echo "FAILED: good.json is $mode"; failed=1; }
inside cmp -s /var/lib/jobgate/jwks/good.json - <"$work/www/good.json" || { echo "FAILED: good.json differs"; failed=1; }
check "a document jobgate refuses is not used" 1 bad
check "an answer over 64 KiB without a length is cut off" 1 big
check "plain http is refused" 1 plain
check "a URL like an option is a URL" 1 option
check "an instance that is not an issuer name is refused" 1 a.b
check "the next good download replaces the file" 0 good
inside systemctl start jobgate-jwks@good.timer
inside systemctl is-active --quiet jobgate-jwks@good.timer || { echo "FAILED: the timer"; failed=1; }
inside systemd-analyze security --no-pager jobgate-jwks@good.service | tail -n 1
exit $failed
