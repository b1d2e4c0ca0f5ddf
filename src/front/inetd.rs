//! `jobgate inetd`: one connection on stdin and stdout, as a socket unit
//! with `Accept=yes` starts it (each connection its own `jobgate@.service`).
//! One request, one answer, `Connection: close`.
#![forbid(unsafe_code)]

use std::io::{self, Write};
use std::net::TcpStream;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::Instant;

use crate::api::http::{Response, StreamBody};
use crate::api::{access_log, Api, Reject};
use crate::front::http1::{self, BodySink, Framing, REQUEST_TIMEOUT};

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
            let response = Reject::new(408, "Request timeout").into_response();
            access_log::log("-", &response, started.elapsed());
            let _ = http1::write_response(&mut io::stdout().lock(), &response);
            std::process::exit(0);
        }
    });
    if let Err(e) = watchdog {
        // Without it a slow client could hold this process for ever: refuse
        // the request rather than read it unbounded.
        log::error!("cannot start the request watchdog: {e}");
        let response = Response::error(503, "Too many requests");
        access_log::log("-", &response, started.elapsed());
        return ignore_broken_pipe(http1::write_response(&mut io::stdout().lock(), &response));
    }
    let request = http1::read_request(&mut io::stdin().lock());
    let _ = got_request.send(());
    if answered.swap(true, Ordering::SeqCst) {
        return Ok(()); // the watchdog answered already
    }
    let (method, mut response) = match request {
        Ok(mut req) => {
            // systemd sets REMOTE_ADDR for Accept=yes sockets (TCP only).
            req.remote = std::env::var("REMOTE_ADDR").ok().and_then(|a| a.parse().ok());
            (req.method.clone(), api.handle(&req))
        }
        Err(reject) => (String::from("-"), reject.into_response()),
    };
    let mut out = io::stdout().lock();
    let written = match response.stream.take() {
        None => http1::write_response(&mut out, &response),
        Some(stream) => send_stream(&mut out, &response, stream),
    };
    access_log::log(&method, &response, started.elapsed());
    ignore_broken_pipe(written)
}

/// A client that left before its answer is no error of jobgate's.
fn ignore_broken_pipe(written: io::Result<()>) -> io::Result<()> {
    match written {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        result => result,
    }
}

/// A streamed body, ended by closing the connection (the process's exit).
fn send_stream(out: &mut dyn Write, response: &Response, stream: Box<dyn StreamBody>) -> io::Result<()> {
    http1::write_head(out, response, Framing::Close)?;
    let mut probe = stdin_socket();
    let gone = move || probe.as_mut().is_some_and(http1::peer_closed);
    let mut sink = BodySink { out, framing: Framing::Close, gone };
    stream.send_to(&mut sink);
    sink.finish()
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
