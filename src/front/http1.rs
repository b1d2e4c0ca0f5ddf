//! Reading one HTTP/1.0 or 1.1 request and writing one answer, for the
//! front ends that own their connection (`serve`, `inetd`): the request head
//! is parsed by `httparse`, every read is bounded, a read timeout is a 408,
//! and the answer always closes the connection.
#![forbid(unsafe_code)]

use std::io::{self, Read, Write};
use std::time::{Duration, Instant};

use crate::api::http::{Request, Response, Sink, MAX_BODY};
use crate::api::Reject;

/// Most bytes of request line and headers.
pub const MAX_HEAD: usize = 8 << 10;
/// Most headers in one request.
const MAX_HEADERS: usize = 64;
/// How long a client may take to send its whole request (head and body),
/// from its connection's start; past it the answer is 408.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A socket whose reads can be given a time limit.
pub trait TimedRead: Read {
    /// Makes each following read wait at most `limit` (never zero) for data.
    fn set_read_limit(&mut self, limit: Duration) -> io::Result<()>;

    /// The time now; a test gives a clock of its own.
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// Reads from `socket` that all end by `until`. A socket's read timeout
/// bounds one read, not their sum: a client sending a byte every few
/// seconds would hold its connection for hours. So before each read the
/// timeout is set to the time left, and once none is left the read fails
/// as timed out, which [`read_request`] answers with 408.
pub struct Deadline<'a, S: TimedRead> {
    pub socket: &'a mut S,
    pub until: Instant,
}

impl<S: TimedRead> Read for Deadline<'_, S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.until.saturating_duration_since(self.socket.now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        self.socket.set_read_limit(left)?;
        self.socket.read(buf)
    }
}

/// Reads one request from `input`: the head up to [`MAX_HEAD`] bytes (431
/// past it), then a `Content-Length` body up to [`MAX_BODY`] (413 past it,
/// and nothing of it is read). Never reads beyond the request. A read that
/// times out (a socket's timeout, a [`Deadline`]) is a 408.
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
            Err(e) => return Err(read_failed(&e)),
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
    let length = body_length(&req)?;
    if length > MAX_BODY {
        return Err(Reject::new(413, "Request body too large"));
    }
    let mut body = Vec::with_capacity(length as usize);
    input.take(length).read_to_end(&mut body).map_err(|e| read_failed(&e))?;
    if body.len() as u64 != length {
        return Err(Reject::new(400, "Bad request"));
    }
    req.body = body;
    Ok(req)
}

/// The length of `req`'s body, from its one `Content-Length` (0 without).
/// Where a proxy in front and jobgate could disagree on where a body ends
/// (two lengths, even equal ones; a length and chunked; `+5`, `0x5`), the
/// rest of a body could pass for a second request: all of those are 400.
/// Clients of this API send small bodies with a length, so no chunked ones.
fn body_length(req: &Request) -> Result<u64, Reject> {
    let bad = || Reject::new(400, "Bad request");
    if req.header("Transfer-Encoding").is_some() {
        return Err(bad());
    }
    let mut lengths = req.headers.iter().filter(|(name, _)| name.eq_ignore_ascii_case("Content-Length"));
    match (lengths.next(), lengths.next()) {
        (None, _) => Ok(0),
        // httparse has trimmed the spaces around the value. Digits too many
        // for a u64 are too large a body all the same (413).
        (Some((_, value)), None) if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
            Ok(value.parse().unwrap_or(u64::MAX))
        }
        _ => Err(bad()),
    }
}

/// What a failed read answers: 408 when the client was too slow (a
/// socket's read timeout, a [`Deadline`] passed), else 400.
fn read_failed(e: &io::Error) -> Reject {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => Reject::new(408, "Request timeout"),
        _ => Reject::new(400, "Bad request"),
    }
}

/// Writes `response` as HTTP/1.1 with `Connection: close`.
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
    use crate::api::Record;
    use crate::front::exchange::{answer, Wire};
    use std::time::Instant;

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
    }

    /// Reads `raw` as a request: its status if refused, and how many bytes
    /// were taken from `raw`.
    fn refused(raw: &[u8]) -> (Option<u16>, u64) {
        let mut input = io::Cursor::new(raw.to_vec());
        let status = read_request(&mut input).err().map(|r| r.into_response().status);
        (status, input.position())
    }

    #[test]
    fn one_plain_content_length_or_nothing() {
        let head = |headers: &str| format!("POST / HTTP/1.1\r\nHost: x\r\n{headers}\r\nhello");
        for headers in [
            "Content-Length: 0\r\nContent-Length: 5\r\n",
            "Content-Length: 5\r\nContent-Length: 5\r\n",
            "Content-Length: 5\r\ncontent-length: 5\r\n",
            "Content-Length: 5\r\nX-A: b\r\nContent-Length: 0\r\n",
        ] {
            let raw = head(headers);
            assert_eq!(refused(raw.as_bytes()), (Some(400), raw.len() as u64 - 5), "{headers:?}: no body read");
        }
        // The response is JSON, like the other errors.
        let response = read_request(&mut io::Cursor::new(head("Content-Length: 5\r\nContent-Length: 5\r\n")))
            .err()
            .map(Reject::into_response)
            .expect("refused");
        assert_eq!(response.body, b"{\"msg\":\"Bad request\"}\n");
    }

    #[test]
    fn no_transfer_encoding_at_all() {
        for headers in [
            "Transfer-Encoding: chunked\r\n",
            "Transfer-Encoding: identity\r\n",
            "transfer-encoding: chunked\r\nContent-Length: 5\r\n",
            "Content-Length: 5\r\nTransfer-Encoding: gzip, chunked\r\n",
        ] {
            let raw = format!("POST / HTTP/1.1\r\n{headers}\r\n5\r\nhello\r\n0\r\n\r\n");
            let head_len = raw.find("\r\n\r\n").expect("head") as u64 + 4;
            assert_eq!(refused(raw.as_bytes()), (Some(400), head_len), "{headers:?}: no body read");
        }
    }

    #[test]
    fn content_length_of_plain_digits_only() {
        for value in ["+5", "-5", "0x5", "5.0", "5 5", "5,5", "\u{663}", "\"5\"", ""] {
            let raw = format!("POST / HTTP/1.1\r\nContent-Length: {value}\r\n\r\nhello");
            assert_eq!(refused(raw.as_bytes()), (Some(400), raw.len() as u64 - 5), "{value:?}: no body read");
        }
        let ok = read(b"POST / HTTP/1.1\r\nContent-Length:  005 \r\n\r\nhello").expect("spaces around, leading zeros");
        assert_eq!(ok.body, b"hello");
        let huge = format!("POST / HTTP/1.1\r\nContent-Length: {}\r\n\r\n", "9".repeat(30));
        assert_eq!(refused(huge.as_bytes()), (Some(413), huge.len() as u64));
    }

    /// A client that sends one byte every `gap`, by a clock of its own; it
    /// keeps the read limits it was given, and like a socket, a read given
    /// less time than its next byte needs waits that long and times out.
    struct Trickle {
        bytes: Vec<u8>,
        sent: usize,
        gap: Duration,
        now: Instant,
        limit: Duration,
        limits: Vec<Duration>,
    }

    impl Trickle {
        fn new(bytes: &[u8], gap: Duration) -> Trickle {
            let now = Instant::now();
            Trickle { bytes: bytes.to_vec(), sent: 0, gap, now, limit: Duration::MAX, limits: Vec::new() }
        }

        fn read_by_deadline(&mut self) -> Result<Request, u16> {
            let until = self.now + REQUEST_TIMEOUT;
            read_request(&mut Deadline { socket: self, until }).map_err(|r| r.into_response().status)
        }
    }

    impl Read for Trickle {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.gap > self.limit {
                self.now += self.limit;
                return Err(io::ErrorKind::WouldBlock.into());
            }
            self.now += self.gap;
            match (self.bytes.get(self.sent), buf.first_mut()) {
                (Some(&byte), Some(slot)) => {
                    *slot = byte;
                    self.sent += 1;
                    Ok(1)
                }
                _ => Ok(0),
            }
        }
    }

    impl TimedRead for Trickle {
        fn set_read_limit(&mut self, limit: Duration) -> io::Result<()> {
            self.limit = limit;
            self.limits.push(limit);
            Ok(())
        }

        fn now(&self) -> Instant {
            self.now
        }
    }

    #[test]
    fn a_whole_request_within_the_deadline() {
        let mut client = Trickle::new(b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello", Duration::from_millis(100));
        let req = client.read_by_deadline().expect("in time");
        assert_eq!(req.body, b"hello");
        assert_eq!(client.limits.first(), Some(&REQUEST_TIMEOUT), "the time left, not a fixed timeout");
        assert!(client.limits.windows(2).all(|w| w[1] < w[0]), "{:?}", client.limits);
    }

    #[test]
    fn a_trickling_head_times_out_at_the_deadline() {
        // A byte every 3 s: each read alone is quick enough, the whole is not.
        let mut client = Trickle::new(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", Duration::from_secs(3));
        let start = client.now;
        assert_eq!(client.read_by_deadline().err(), Some(408));
        assert_eq!(client.sent, 3, "bytes at 3, 6 and 9 s");
        let secs: Vec<u64> = client.limits.iter().map(Duration::as_secs).collect();
        assert_eq!(secs, [10, 7, 4, 1], "each read waits only for the time left");
        assert_eq!(client.now - start, REQUEST_TIMEOUT, "answered at the deadline, not later");
    }

    #[test]
    fn a_trickling_body_times_out_at_the_deadline() {
        // The head (38 bytes) is in after 9.5 s, the body would be after 10.75 s.
        let raw = b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello";
        let mut client = Trickle::new(raw, Duration::from_millis(250));
        assert_eq!(client.read_by_deadline().err(), Some(408));
        assert_eq!(client.sent, 40, "the head and two bytes of the body");
    }

    #[test]
    fn a_deadline_passed_reads_nothing() {
        let mut client = Trickle::new(b"GET / HTTP/1.1\r\n\r\n", Duration::ZERO);
        let until = client.now;
        let mut deadline = Deadline { socket: &mut client, until };
        assert_eq!(deadline.read(&mut [0u8; 1]).map_err(|e| e.kind()), Err(io::ErrorKind::TimedOut));
        assert_eq!((client.sent, client.limits.len()), (0, 0));
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
        let wire = Wire { out: &mut out, write_head, framing: Framing::Close, gone: &mut || false };
        answer(Response::error(404, "Not found"), &Record::unread(), wire, Instant::now()).expect("write");
        let text = String::from_utf8(out).expect("utf8");
        assert!(
            text.starts_with("HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: 20\r\n"),
            "{text}"
        );
        assert!(text.ends_with("Connection: close\r\n\r\n{\"msg\":\"Not found\"}\n"), "{text}");
    }
}
