#!/bin/sh
# make bench (front ends): boots the sandbox, runs serve, the inetd socket
# units and nginx + fcgiwrap with the shipped configuration (as root, on
# loopback), and runs frontends.py inside it.
set -eu
bin=$(realpath "${1:-target/release/jobgate}")
top=$(cd "$(dirname "$0")/../.." && pwd)
[ "$(id -u)" = 0 ] || { echo "bench needs root (it boots systemd in namespaces)" >&2; exit 1; }
command -v nginx >/dev/null && [ -x /usr/sbin/fcgiwrap ] || { echo "bench needs nginx and fcgiwrap" >&2; exit 1; }
. "$top/tests/sandbox/lib.sh"
sandbox_boot
d=/run/bench
sandbox_put 0755 $d/jobgate < "$bin"
sed -e "s|/usr/bin/jobgate --tokens /etc/jobgate/tokens|$d/jobgate --tokens $d/tokens --state-dir $d|" -e '/^User=/d; /^Group=/d; /^StateDirectory/d' \
    "$top/contrib/systemd/jobgate@.service" | sandbox_put 0644 /run/systemd/system/jobgate@.service
sed 's|127.0.0.1:8000|127.0.0.1:18602|' "$top/contrib/systemd/jobgate.socket" | sandbox_put 0644 /run/systemd/system/jobgate.socket
sed -e "s|/usr/bin/jobgate|$d/jobgate|; s|/etc/jobgate/tokens|$d/tokens|; s|/var/lib/jobgate|$d|" "$top/contrib/cgi/jobgate.cgi" | sandbox_put 0755 $d/jobgate.cgi
sed -e 's|listen 443 ssl;|listen 127.0.0.1:18603 ssl;|; /listen \[::\]/d' -e "s|/etc/ssl/certs/ci.example.org.pem|$d/tls.pem|; s|/etc/ssl/private/ci.example.org.key|$d/tls.key|" \
    -e "s|/var/log/nginx/jobgate.access.log|$d/nginx/access.log|; s|/usr/local/lib/jobgate/jobgate.cgi|$d/jobgate.cgi|; s|include fastcgi_params;|include /etc/nginx/fastcgi_params;|" \
    -e 's|limit_req zone|# limit_req zone|; s|^limit_req_zone|# limit_req_zone|' "$top/contrib/nginx/jobgate-cgi.conf" | sandbox_put 0644 $d/nginx/cgi.conf
# jobgate's own fcgiwrap as shipped, as root here like the rest of the bench.
for u in jobgate-fcgiwrap.socket jobgate-fcgiwrap.service; do
    sed -e '/^User=/d; /^Group=/d; /^StateDirectory/d' "$top/contrib/systemd/$u" | sandbox_put 0644 /run/systemd/system/$u
done
inside sh -c "printf '[Service]\nExecStart=/bin/sleep infinity\n' > /run/systemd/system/ci-test-bench.service
systemctl daemon-reload && systemctl start ci-test-bench.service jobgate.socket
$d/jobgate --tokens $d/tokens token add bench --scope ro > $d/token 2>/dev/null
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 -subj /CN=localhost -keyout $d/tls.key -out $d/tls.pem 2>/dev/null
printf 'user www-data;\npid $d/nginx/pid;\nerror_log $d/nginx/error.log;\nevents {}\nhttp {\nclient_body_temp_path $d/nginx/b;\nproxy_temp_path $d/nginx/p;\nfastcgi_temp_path $d/nginx/f;\nuwsgi_temp_path $d/nginx/u;\nscgi_temp_path $d/nginx/s;\ninclude $d/nginx/cgi.conf;\n}\n' > $d/nginx/nginx.conf
systemctl daemon-reload && systemctl restart jobgate-fcgiwrap.socket
systemd-run --quiet --unit=nginx-bench nginx -c $d/nginx/nginx.conf -g 'daemon off;'
systemd-run --quiet --unit=jobgate-bench $d/jobgate --tokens $d/tokens --state-dir $d serve --listen 127.0.0.1:18601"
sleep 1
inside /usr/bin/python3 - "${N:-200}" 127.0.0.1:18601 127.0.0.1:18602 127.0.0.1:18603 "$(inside cat $d/token)" $d/jobgate \
    < "$top/tests/bench/frontends.py"
