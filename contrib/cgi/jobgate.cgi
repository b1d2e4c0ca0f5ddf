#!/bin/sh
# The CGI program a web server runs for each request: jobgate with its
# options, answering from the CGI environment. CGI servers (fcgiwrap,
# Apache, lighttpd) start a program without arguments, hence this wrapper.
# Install as /usr/local/lib/jobgate/jobgate.cgi, mode 0755.
#
# Under CGI a follow stream learns that its client left only when a write
# fails, which for a quiet job can take until the stream's time limit: keep
# that short here (clients such as contrib/github/jobgate-run reconnect
# after their last line at no cost).
exec /usr/bin/jobgate --tokens /etc/jobgate/tokens --state-dir /var/lib/jobgate --max-follow-secs 300 cgi
