//! `jobgate serve`: a small blocking HTTP server. One thread per connection,
//! so a slow client never holds up the others; each connection carries one
//! request (read by `http1` under its limits, all of it within 10 s of the
//! accept, else 408) and one answer, then closes.
//!
//! tiny_http was the first choice, but it reads a request line or header of
//! any length and never times a client out (tiny-http#56); jobgate's own
//! bounded reader, shared with `inetd`, does both.
#![forbid(unsafe_code)]

use std::io;
use std::net::{IpAddr, Shutdown, TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use crate::api::http::{Request, Response};
use crate::api::{Api, Record, Reject};
use crate::front::exchange::{self, Wire};
use crate::front::http1::{self, Deadline, Framing, TimedRead, REQUEST_TIMEOUT};

/// Connections served at once; past it the answer is 503.
pub const MAX_IN_FLIGHT: usize = crate::limits::MAX_CONNECTIONS;
/// How long writing an answer may stall before the client is dropped.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// The answer past [`MAX_IN_FLIGHT`], or when the system refuses a thread.
fn too_busy() -> Response {
    Response::error(503, "Too many requests")
}

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
            Listener::Tcp(l) => l.accept().map(|(s, addr)| (s, Some(addr.ip()))),
            // `TcpStream` is only the wrapper of the descriptor: its reads,
            // writes, timeouts and shutdown work on a socket of any family.
            Listener::Unix(l) => l.accept().map(|(s, _)| (TcpStream::from(OwnedFd::from(s)), None)),
        }
    }
}

/// A client's connection, TCP or Unix (see [`Listener::accept`]).
type Connection = TcpStream;

impl TimedRead for TcpStream {
    fn set_read_limit(&mut self, limit: Duration) -> io::Result<()> {
        self.set_read_timeout(Some(limit))
    }
}

/// A second handle on the socket, whose reads wait at most
/// [`http1::PROBE_TIMEOUT`]: for seeing that a client has left.
fn probe(connection: &Connection) -> io::Result<Connection> {
    let probe = connection.try_clone()?;
    probe.set_read_timeout(Some(http1::PROBE_TIMEOUT))?;
    Ok(probe)
}

fn close(connection: &Connection) {
    let _ = connection.shutdown(Shutdown::Both);
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
        let accepted = Instant::now();
        let (slot, busy) = Slot::take(&in_flight);
        let api = Arc::clone(&api);
        let builder = thread::Builder::new().name("connection".into());
        start_thread(builder, connection, slot, accepted, move |connection| {
            handle(&api, connection, remote, busy, accepted)
        });
    }
}

/// A connection's place among the [`MAX_IN_FLIGHT`], given back when it is
/// dropped: so also when its thread panics, or never starts.
struct Slot(Arc<AtomicUsize>);

impl Slot {
    /// Takes a place in `in_flight`; `true` when all were taken already.
    fn take(in_flight: &Arc<AtomicUsize>) -> (Slot, bool) {
        let busy = in_flight.fetch_add(1, Ordering::SeqCst) >= MAX_IN_FLIGHT;
        (Slot(Arc::clone(in_flight)), busy)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Runs `work` on `connection` on a thread of its own, made by `builder`,
/// which holds `slot` until it ends. A thread the system refuses is a 503
/// to that client, not a panic, and the slot is given back.
fn start_thread(
    builder: thread::Builder,
    connection: Connection,
    slot: Slot,
    accepted: Instant,
    work: impl FnOnce(Connection) + Send + 'static,
) -> Option<thread::JoinHandle<()>> {
    // The connection is handed over once the thread runs: a spawn that
    // fails drops its closure, and the connection must stay here to answer.
    let (hand_over, receive) = mpsc::channel::<Connection>();
    let spawned = builder.spawn(move || {
        let _slot = slot;
        if let Ok(connection) = receive.recv() {
            work(connection);
        }
    });
    match spawned {
        Ok(thread) => {
            let _ = hand_over.send(connection);
            Some(thread)
        }
        Err(e) => {
            log::error!("cannot start a connection thread: {e}");
            // A new socket's send buffer takes this small answer at once:
            // the accept loop does not wait on the client.
            let written = connection.set_write_timeout(Some(WRITE_TIMEOUT)).and_then(|()| {
                let (mut out, gone) = (&connection, &mut || false);
                let wire = Wire { out: &mut out, write_head: http1::write_head, framing: Framing::Close, gone };
                exchange::answer(too_busy(), &Record::unread(), wire, accepted)
            });
            if let Err(e) = written {
                log::debug!("writing the answer: {e}");
            }
            close(&connection);
            None
        }
    }
}

fn handle(api: &Api, mut connection: Connection, remote: Option<IpAddr>, busy: bool, accepted: Instant) {
    if let Err(e) = connection.set_write_timeout(Some(WRITE_TIMEOUT)) {
        log::error!("setting socket timeouts: {e}");
        return;
    }
    let request = if busy {
        Err(Reject::new(503, "Too many requests"))
    } else {
        // The whole request within REQUEST_TIMEOUT of the accept, however
        // slowly its bytes come.
        let until = accepted + REQUEST_TIMEOUT;
        http1::read_request(&mut Deadline { socket: &mut connection, until }).map(|req| Request { remote, ..req })
    };
    let framing = match &request {
        Ok(req) if req.http10 => Framing::Close,
        _ => Framing::Chunked,
    };
    // The probe is made only once a stream asks (a stream is long; most
    // answers are not).
    let mut probed: Option<Connection> = None;
    let gone = &mut || {
        if probed.is_none() {
            probed = probe(&connection).ok();
        }
        probed.as_mut().is_some_and(http1::peer_closed)
    };
    let mut out = &connection;
    let wire = Wire { out: &mut out, write_head: http1::write_head, framing, gone };
    if let Err(e) = exchange::exchange(api, request, wire, accepted) {
        log::debug!("writing the answer: {e}");
    }
    close(&connection);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;

    #[test]
    fn a_panic_gives_the_slot_back() {
        let in_flight = Arc::new(AtomicUsize::new(0));
        let panicked = std::panic::catch_unwind(|| {
            let (_slot, busy) = Slot::take(&in_flight);
            assert_eq!((in_flight.load(Ordering::SeqCst), busy), (1, false));
            panic!("a bug in a handler");
        });
        assert!(panicked.is_err());
        assert_eq!(in_flight.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn slots_past_the_cap_are_busy() {
        let in_flight = Arc::new(AtomicUsize::new(0));
        let held: Vec<(Slot, bool)> = (0..MAX_IN_FLIGHT).map(|_| Slot::take(&in_flight)).collect();
        assert!(held.iter().all(|(_, busy)| !busy));
        let (extra, busy) = Slot::take(&in_flight);
        assert!(busy);
        drop((held, extra));
        assert_eq!(in_flight.load(Ordering::SeqCst), 0);
    }

    /// A connection to hand to `start_thread`, and its client's end.
    fn pair() -> (Connection, UnixStream) {
        let (server, client) = UnixStream::pair().expect("socket pair");
        client.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
        (TcpStream::from(OwnedFd::from(server)), client)
    }

    #[test]
    fn a_panicking_connection_thread_gives_its_slot_back() {
        let in_flight = Arc::new(AtomicUsize::new(0));
        let (connection, mut client) = pair();
        let (slot, _) = Slot::take(&in_flight);
        let thread = start_thread(thread::Builder::new(), connection, slot, Instant::now(), |_| panic!("a bug"));
        assert!(thread.expect("started").join().is_err(), "it panicked");
        assert_eq!(in_flight.load(Ordering::SeqCst), 0);
        let mut answer = Vec::new();
        client.read_to_end(&mut answer).expect("closed");
        assert!(answer.is_empty());
    }

    #[test]
    fn a_thread_refused_is_a_503() {
        let in_flight = Arc::new(AtomicUsize::new(0));
        let (connection, mut client) = pair();
        let (slot, _) = Slot::take(&in_flight);
        // A stack larger than the address space: the system refuses it.
        let refused = thread::Builder::new().stack_size(1 << (usize::BITS - 2));
        let thread = start_thread(refused, connection, slot, Instant::now(), |_| unreachable!("never runs"));
        assert!(thread.is_none());
        assert_eq!(in_flight.load(Ordering::SeqCst), 0);
        let mut answer = String::new();
        client.read_to_string(&mut answer).expect("answered and closed");
        assert!(answer.starts_with("HTTP/1.1 503 Service Unavailable\r\n"), "{answer}");
        assert!(answer.ends_with("{\"msg\":\"Too many requests\"}\n"), "{answer}");
    }

    #[test]
    fn a_trickling_client_is_cut_off_at_the_deadline() {
        // The same reading as `handle`'s, on a real socket, with a shorter deadline.
        let (mut connection, mut client) = pair();
        let writer = thread::Builder::new()
            .spawn(move || {
                for &byte in b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" {
                    if client.write_all(&[byte]).is_err() {
                        break;
                    }
                    thread::sleep(Duration::from_millis(50));
                }
            })
            .expect("thread");
        let started = Instant::now();
        let until = started + Duration::from_millis(300);
        let read = http1::read_request(&mut Deadline { socket: &mut connection, until });
        let elapsed = started.elapsed();
        assert_eq!(read.err().map(|r| r.into_response().status), Some(408));
        assert!(elapsed >= Duration::from_millis(300) && elapsed < Duration::from_secs(1), "{elapsed:?}");
        close(&connection);
        writer.join().expect("writer");
    }
}
