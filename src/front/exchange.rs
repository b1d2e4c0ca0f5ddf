//! One request's exchange, the same for `serve`, `inetd` and `cgi`: the
//! API's answer written whole or streamed, then the access line, once. The
//! front ends differ only in their [`Wire`]: how the head is written, how a
//! streamed body is framed, how a client that left is seen.
#![forbid(unsafe_code)]

use std::io::{self, Write};
use std::time::Instant;

use crate::api::http::{Request, Response};
use crate::api::{access_log, Api, Record, Reject};
use crate::front::http1::{BodySink, Framing};

/// Writes an answer's head (status and headers) for a body framed so.
pub type WriteHead = fn(&mut dyn Write, &Response, Framing) -> io::Result<()>;

/// One front end's connection to its client.
pub struct Wire<'a> {
    pub out: &'a mut dyn Write,
    /// HTTP/1.1's status line (`http1::write_head`) or CGI's `Status:`.
    pub write_head: WriteHead,
    /// How a streamed body is framed.
    pub framing: Framing,
    /// Whether the client has left, asked between a stream's pieces.
    pub gone: &'a mut dyn FnMut() -> bool,
}

/// Answers `request` (or why it could not be read) on `wire` and logs the
/// access line. A client that left before its answer is no error.
pub fn exchange(api: &Api, request: Result<Request, Reject>, wire: Wire<'_>, started: Instant) -> io::Result<()> {
    let (response, record) = match request {
        Ok(req) => api.handle(&req),
        Err(reject) => (reject.into_response(), Record::unread()),
    };
    answer(response, &record, wire, started)
}

/// Writes `response` on `wire` and logs `record` with it: also for answers
/// made without the API (too busy, too slow).
pub fn answer(mut response: Response, record: &Record, wire: Wire<'_>, started: Instant) -> io::Result<()> {
    let Wire { out, write_head, framing, gone } = wire;
    let written = match response.stream.take() {
        None => write_head(out, &response, Framing::Length).and_then(|()| {
            out.write_all(&response.body)?;
            out.flush()
        }),
        Some(stream) => write_head(out, &response, framing).and_then(|()| {
            let mut sink = BodySink { out: &mut *out, framing, gone };
            stream.send_to(&mut sink);
            sink.finish()
        }),
    };
    access_log::log(record, response.status, started.elapsed());
    match written {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        result => result,
    }
}
