//! Reading one HTTP/1.0 or 1.1 request and writing one answer, for the
//! front ends that own their connection (`serve`, `inetd`): the request head
//! is parsed by `httparse`, every read is bounded, a read timeout is a 408,
//! and the answer always closes the connection.
#![forbid(unsafe_code)]

use std::io::{self, Read, Write};

use crate::api::http::{Request, Response, Sink, MAX_BODY};
use crate::api::Reject;

/// Most bytes of request line and headers.
pub const MAX_HEAD: usize = 8 << 10;
/// Most headers in one request.
const MAX_HEADERS: usize = 64;

/// Reads one request from `input`: the head up to [`MAX_HEAD`] bytes (431
/// past it), then a `Content-Length` body up to [`MAX_BODY`] (413 past it,
/// and nothing of it is read). Never reads beyond the request.
pub fn read_request(input: &mut dyn Read) -> Result<Request, Reject> {
    let mut head = Vec::with_capacity(1024);
    let mut byte = [0u8; 1];
    // Byte by byte: the head's end is found without reading past it, so a
    // body (or a second request) stays unread. The head is small.
    while !head.ends_with(b"\r\n\r\n") && !head.ends_with(b"\n\n") {
        if head.len() >= MAX_HEAD {
            return Err(Reject::new(431, "Request header fields too large"));
        }
        match input.read(&mut byte) {
            Ok(0) => return Err(Reject::new(400, "Bad request")),
            Ok(_) => head.push(byte[0]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            // A socket's read timeout: the client went quiet.
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                return Err(Reject::new(408, "Request timeout"))
            }
            Err(_) => return Err(Reject::new(400, "Bad request")),
        }
    }
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut headers);
    match parsed.parse(&head) {
        Ok(httparse::Status::Complete(_)) => {}
        Err(httparse::Error::TooManyHeaders) => return Err(Reject::new(431, "Request header fields too large")),
        _ => return Err(Reject::new(400, "Bad request")),
    }
    let (Some(method), Some(target)) = (parsed.method, parsed.path) else {
        return Err(Reject::new(400, "Bad request"));
    };
    let mut req = Request::new(method, target);
    req.http10 = parsed.version == Some(0);
    for header in parsed.headers.iter() {
        let value = std::str::from_utf8(header.value).map_err(|_| Reject::new(400, "Bad request"))?;
        req.headers.push((header.name.to_string(), value.to_string()));
    }
    if req.header("Transfer-Encoding").is_some() {
        // Clients of this API send small bodies with a length.
        return Err(Reject::new(411, "Length required"));
    }
    let length = match req.header("Content-Length") {
        None => 0,
        Some(value) => value.trim().parse::<u64>().map_err(|_| Reject::new(400, "Bad request"))?,
    };
    if length > MAX_BODY {
        return Err(Reject::new(413, "Request body too large"));
    }
    let mut body = Vec::with_capacity(length as usize);
    input.take(length).read_to_end(&mut body).map_err(|_| Reject::new(400, "Bad request"))?;
    if body.len() as u64 != length {
        return Err(Reject::new(400, "Bad request"));
    }
    req.body = body;
    Ok(req)
}

/// Writes `response` as HTTP/1.1 with `Connection: close`.
pub fn write_response(out: &mut dyn Write, response: &Response) -> io::Result<()> {
    write_head(out, response, Framing::Length)?;
    out.write_all(&response.body)?;
    out.flush()
}

/// Writes the head of an answer whose body is framed as `framing` says.
pub fn write_head(out: &mut dyn Write, response: &Response, framing: Framing) -> io::Result<()> {
    let mut head = format!("HTTP/1.1 {} {}\r\n", response.status, reason(response.status));
    push_headers(&mut head, response, framing);
    head.push_str("Connection: close\r\n\r\n");
    out.write_all(head.as_bytes())?;
    out.flush()
}

/// How the end of a body is told.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// `Content-Length`.
    Length,
    /// `Transfer-Encoding: chunked` (streams to HTTP/1.1 clients).
    Chunked,
    /// By closing the connection (streams to HTTP/1.0 clients, from
    /// `inetd`, and from `cgi`, where the web server frames it).
    Close,
}

/// The header lines every front end sends: type, framing and the answer's own.
pub fn push_headers(head: &mut String, response: &Response, framing: Framing) {
    head.push_str(&format!("Content-Type: {}\r\n", response.content_type));
    match framing {
        Framing::Length => head.push_str(&format!("Content-Length: {}\r\n", response.body.len())),
        Framing::Chunked => head.push_str("Transfer-Encoding: chunked\r\n"),
        Framing::Close => {}
    }
    for (name, value) in &response.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
}

/// A streamed body on its way to the client: each send is written (as one
/// chunk when chunked) and flushed at once. `gone` tells whether the
/// client has left.
pub struct BodySink<W: Write, G: FnMut() -> bool> {
    pub out: W,
    pub framing: Framing,
    pub gone: G,
}

impl<W: Write, G: FnMut() -> bool> Sink for BodySink<W, G> {
    fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        if bytes.is_empty() {
            return Ok(()); // an empty chunk would end the body
        }
        if self.framing == Framing::Chunked {
            write!(self.out, "{:x}\r\n", bytes.len())?;
            self.out.write_all(bytes)?;
            self.out.write_all(b"\r\n")?;
        } else {
            self.out.write_all(bytes)?;
        }
        self.out.flush()
    }

    fn gone(&mut self) -> bool {
        (self.gone)()
    }
}

impl<W: Write, G: FnMut() -> bool> BodySink<W, G> {
    /// Ends the body (the last chunk, when chunked).
    pub fn finish(mut self) -> io::Result<()> {
        if self.framing == Framing::Chunked {
            self.out.write_all(b"0\r\n\r\n")?;
        }
        self.out.flush()
    }
}

/// Whether the peer of a connected socket has closed it, by a read that
/// `socket`'s read timeout (set short by the caller) keeps from blocking.
/// The request has been read already: whatever else arrives is dropped.
pub fn peer_closed(mut socket: impl Read) -> bool {
    let mut scratch = [0u8; 512];
    match socket.read(&mut scratch) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted),
    }
}

/// The read timeout for [`peer_closed`]'s probe.
pub const PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(1);

pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Content Too Large",
        425 => "Too Early",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(raw: &[u8]) -> Result<Request, u16> {
        read_request(&mut io::Cursor::new(raw.to_vec())).map_err(|r| r.into_response().status)
    }

    #[test]
    fn requests_of_both_versions() {
        let req = read(b"GET /api/jobs?token=x HTTP/1.0\r\n\r\n").expect("1.0");
        assert_eq!((req.method.as_str(), req.path.as_str(), req.query.as_str()), ("GET", "/api/jobs", "token=x"));
        let req = read(b"POST /api/job/ci-test-a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello").expect("1.1");
        assert_eq!((req.header("host"), req.body.as_slice()), (Some("x"), &b"hello"[..]));
        assert!(read(b"GET / HTTP/1.1\n\n").is_ok(), "bare newlines, as old clients send");
    }

    #[test]
    fn limits_and_malformed_requests() {
        let long = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(MAX_HEAD));
        assert_eq!(read(long.as_bytes()).err(), Some(431));
        let many: String = (0..70).map(|i| format!("X-{i}: y\r\n")).collect();
        assert_eq!(read(format!("GET / HTTP/1.1\r\n{many}\r\n").as_bytes()).err(), Some(431));
        let big = format!("POST / HTTP/1.1\r\nContent-Length: {}\r\n\r\n", MAX_BODY + 1);
        assert_eq!(read(big.as_bytes()).err(), Some(413));
        for bad in [
            &b""[..],
            b"GET / HTTP/1.1\r\n",
            b"\x00\x01\x02\r\n\r\n",
            b"GET / HTTP/2.0\r\n\r\n",
            b"GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: 9\r\n\r\nshort",
        ] {
            assert_eq!(read(bad).err(), Some(400), "{bad:?}");
        }
        assert_eq!(read(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n").err(), Some(411));
    }

    #[test]
    fn reads_nothing_past_the_request() {
        let mut input = io::Cursor::new(b"GET / HTTP/1.1\r\n\r\nEXTRA".to_vec());
        read_request(&mut input).expect("request");
        assert_eq!(input.position(), 18);
    }

    #[test]
    fn answers_close_the_connection() {
        let mut out = Vec::new();
        write_response(&mut out, &Response::error(404, "Not found")).expect("write");
        let text = String::from_utf8(out).expect("utf8");
        assert!(
            text.starts_with("HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: 20\r\n"),
            "{text}"
        );
        assert!(text.ends_with("Connection: close\r\n\r\n{\"msg\":\"Not found\"}\n"), "{text}");
    }
}
