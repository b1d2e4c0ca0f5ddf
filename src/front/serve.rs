//! `jobgate serve`: a small blocking HTTP server. One thread per connection,
//! so a slow client never holds up the others; each connection carries one
//! request (read by `http1` under its limits, with a 10 s read timeout that
//! answers 408) and one answer, then closes.
//!
//! tiny_http was the first choice, but it reads a request line or header of
//! any length and never times a client out (tiny-http#56); jobgate's own
//! bounded reader, shared with `inetd`, does both.
#![forbid(unsafe_code)]

use std::io::{self, Read, Write};
use std::net::{IpAddr, Shutdown, TcpListener, TcpStream};
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crate::api::http::{Response, StreamBody};
use crate::api::{access_log, Api, Reject};
use crate::front::http1::{self, BodySink, Framing};
use crate::front::inetd::REQUEST_TIMEOUT;

/// Connections served at once; past it the answer is 503.
pub const MAX_IN_FLIGHT: usize = 64;
/// How long writing an answer may stall before the client is dropped.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// A listening socket: TCP, or a Unix socket systemd passed.
pub enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener),
}

impl Listener {
    pub fn describe(&self) -> String {
        match self {
            Listener::Tcp(l) => l.local_addr().map(|a| a.to_string()).unwrap_or_else(|_| "?".into()),
            Listener::Unix(l) => l
                .local_addr()
                .ok()
                .and_then(|a| a.as_pathname().map(|p| p.display().to_string()))
                .unwrap_or_else(|| "a Unix socket".into()),
        }
    }

    fn accept(&self) -> io::Result<(Connection, Option<IpAddr>)> {
        match self {
            Listener::Tcp(l) => l.accept().map(|(s, addr)| (Connection::Tcp(s), Some(addr.ip()))),
            Listener::Unix(l) => l.accept().map(|(s, _)| (Connection::Unix(s), None)),
        }
    }
}

enum Connection {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Connection {
    fn set_timeouts(&self) -> io::Result<()> {
        match self {
            Connection::Tcp(s) => {
                s.set_read_timeout(Some(REQUEST_TIMEOUT)).and(s.set_write_timeout(Some(WRITE_TIMEOUT)))
            }
            Connection::Unix(s) => {
                s.set_read_timeout(Some(REQUEST_TIMEOUT)).and(s.set_write_timeout(Some(WRITE_TIMEOUT)))
            }
        }
    }

    /// A second handle on the socket, whose reads wait at most
    /// [`http1::PROBE_TIMEOUT`]: for seeing that a client has left.
    fn probe(&self) -> io::Result<Connection> {
        let probe = match self {
            Connection::Tcp(s) => Connection::Tcp(s.try_clone()?),
            Connection::Unix(s) => Connection::Unix(s.try_clone()?),
        };
        match &probe {
            Connection::Tcp(s) => s.set_read_timeout(Some(http1::PROBE_TIMEOUT))?,
            Connection::Unix(s) => s.set_read_timeout(Some(http1::PROBE_TIMEOUT))?,
        }
        Ok(probe)
    }

    fn close(&self) {
        let _ = match self {
            Connection::Tcp(s) => s.shutdown(Shutdown::Both),
            Connection::Unix(s) => s.shutdown(Shutdown::Both),
        };
    }
}

impl Read for Connection {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Connection::Tcp(s) => s.read(buf),
            Connection::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Connection {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Connection::Tcp(s) => s.write(buf),
            Connection::Unix(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Connection::Tcp(s) => s.flush(),
            Connection::Unix(s) => s.flush(),
        }
    }
}

/// Serves on the socket systemd passed (`passed`), or else binds `listen`.
pub fn serve(api: Arc<Api>, passed: Option<Listener>, listen: &str) -> Result<(), String> {
    let listener = match passed {
        Some(listener) => {
            log::info!("listening on {}, passed by systemd", listener.describe());
            listener
        }
        None => {
            let listener = TcpListener::bind(listen).map_err(|e| format!("cannot listen on {listen}: {e}"))?;
            log::info!("listening on {listen}");
            Listener::Tcp(listener)
        }
    };
    let in_flight = Arc::new(AtomicUsize::new(0));
    loop {
        let (connection, remote) = match listener.accept() {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of descriptors and the like: pause rather than spin.
                log::error!("accepting a connection: {e}");
                thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        let busy = in_flight.fetch_add(1, Ordering::SeqCst) >= MAX_IN_FLIGHT;
        let api = Arc::clone(&api);
        let counted = Arc::clone(&in_flight);
        let spawned = thread::Builder::new().name("connection".into()).spawn(move || {
            handle(&api, connection, remote, busy);
            counted.fetch_sub(1, Ordering::SeqCst);
        });
        if let Err(e) = spawned {
            in_flight.fetch_sub(1, Ordering::SeqCst);
            log::error!("cannot start a connection thread: {e}");
        }
    }
}

fn handle(api: &Api, mut connection: Connection, remote: Option<IpAddr>, busy: bool) {
    let started = Instant::now();
    if let Err(e) = connection.set_timeouts() {
        log::error!("setting socket timeouts: {e}");
        return;
    }
    let (method, mut response, http10) = if busy {
        (String::from("-"), Response::error(503, "Too many requests"), false)
    } else {
        match http1::read_request(&mut connection) {
            Ok(mut req) => {
                req.remote = remote;
                (req.method.clone(), api.handle(&req), req.http10)
            }
            Err(reject) => (String::from("-"), Reject::into_response(reject), false),
        }
    };
    let written = match response.stream.take() {
        None => http1::write_response(&mut connection, &response),
        Some(stream) => {
            let framing = if http10 { Framing::Close } else { Framing::Chunked };
            send_stream(&mut connection, &response, stream, framing)
        }
    };
    if let Err(e) = written {
        log::debug!("writing the answer: {e}");
    }
    access_log::log(&method, &response, started.elapsed());
    connection.close();
}

fn send_stream(
    connection: &mut Connection,
    response: &Response,
    stream: Box<dyn StreamBody>,
    framing: Framing,
) -> io::Result<()> {
    let mut probe = connection.probe()?;
    http1::write_head(connection, response, framing)?;
    let mut sink = BodySink { out: connection, framing, gone: move || http1::peer_closed(&mut probe) };
    stream.send_to(&mut sink);
    sink.finish()
}
