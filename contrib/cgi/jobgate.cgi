#!/bin/sh
# The CGI program a web server runs for each request: jobgate with its
# options, answering from the CGI environment. CGI servers (fcgiwrap,
# Apache, lighttpd) start a program without arguments, hence this wrapper.
# Install as /usr/local/lib/jobgate/jobgate.cgi, mode 0755.
exec /usr/local/bin/jobgate --tokens /etc/jobgate/tokens --state-dir /var/lib/jobgate cgi
