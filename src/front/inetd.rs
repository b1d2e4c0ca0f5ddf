//! `jobgate inetd`: one connection on stdin and stdout, as a socket unit
//! with `Accept=yes` starts it (each connection its own `jobgate@.service`).
//! One request, one answer, `Connection: close`.
#![forbid(unsafe_code)]

use std::io;
use std::net::TcpStream;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::Instant;

use crate::api::http::{Request, Response};
use crate::api::{Api, Record, Reject};
use crate::front::exchange::{self, Wire};
use crate::front::http1::{self, Framing, REQUEST_TIMEOUT};

pub fn run(api: &Api) -> io::Result<()> {
    let started = Instant::now();
    let answered = Arc::new(AtomicBool::new(false));
    let (got_request, waiting) = mpsc::channel::<()>();
    let watchdog_answered = Arc::clone(&answered);
    // A watchdog, since stdin may be a pipe, which has no read timeout.
    let watchdog = thread::Builder::new().name("watchdog".into()).spawn(move || {
        if waiting.recv_timeout(REQUEST_TIMEOUT) == Err(mpsc::RecvTimeoutError::Timeout)
            && !watchdog_answered.swap(true, Ordering::SeqCst)
        {
            // The client is too slow: answer 408 and end the process, which
            // also ends the read the main thread is blocked in.
            let _ = answer_directly(Reject::new(408, "Request timeout").into_response(), started);
            std::process::exit(0);
        }
    });
    if let Err(e) = watchdog {
        // Without it a slow client could hold this process for ever: refuse
        // the request rather than read it unbounded.
        log::error!("cannot start the request watchdog: {e}");
        return answer_directly(Response::error(503, "Too many requests"), started);
    }
    let request = http1::read_request(&mut io::stdin().lock());
    let _ = got_request.send(());
    if answered.swap(true, Ordering::SeqCst) {
        return Ok(()); // the watchdog answered already
    }
    // systemd sets REMOTE_ADDR for Accept=yes sockets (TCP only).
    let remote = std::env::var("REMOTE_ADDR").ok().and_then(|a| a.parse().ok());
    let request = request.map(|req| Request { remote, ..req });
    // The probe is made only once a stream asks.
    let mut probe = None;
    let gone = &mut move || probe.get_or_insert_with(stdin_socket).as_mut().is_some_and(http1::peer_closed);
    // A streamed body is ended by closing the connection (the process's exit).
    let wire = Wire { out: &mut io::stdout().lock(), write_head: http1::write_head, framing: Framing::Close, gone };
    exchange::exchange(api, request, wire, started)
}

/// An answer made without the API (too slow, too busy).
fn answer_directly(response: Response, started: Instant) -> io::Result<()> {
    let wire = Wire {
        out: &mut io::stdout().lock(),
        write_head: http1::write_head,
        framing: Framing::Close,
        gone: &mut || false,
    };
    exchange::answer(response, &Record::unread(), wire, started)
}

/// stdin, when it is the connection's socket (as under `Accept=yes`), with
/// a short read timeout, to see the client leave; `None` for a pipe. A
/// duplicate of the descriptor, taken without `unsafe`; `TcpStream` is
/// only the wrapper: its reads and timeout work on a socket of any family.
fn stdin_socket() -> Option<TcpStream> {
    let fd = io::stdin().as_fd().try_clone_to_owned().ok()?;
    let socket = TcpStream::from(fd);
    socket.set_read_timeout(Some(http1::PROBE_TIMEOUT)).ok()?;
    Some(socket)
}
