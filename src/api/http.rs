//! jobgate's own request and response types, filled by each front end in
//! one function; the core never sees sockets, stdin or CGI. Pure.
#![forbid(unsafe_code)]

use std::net::IpAddr;

pub use crate::follow::Sink;

/// Most bytes of request body any front end reads.
pub const MAX_BODY: u64 = 64 << 10;

pub struct Request {
    pub method: String,
    /// The raw path, never percent-decoded.
    pub path: String,
    /// The raw query string, without `?`.
    pub query: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The peer's address.
    pub remote: Option<IpAddr>,
    /// An HTTP/1.0 request: a streamed answer cannot be chunked.
    pub http10: bool,
}

impl Request {
    /// Splits a request target into path and query.
    pub fn new(method: &str, target: &str) -> Request {
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        Request {
            method: method.to_string(),
            path: path.to_string(),
            query: query.to_string(),
            headers: Vec::new(),
            body: Vec::new(),
            remote: None,
            http10: false,
        }
    }

    #[cfg(test)]
    pub fn with_header(mut self, name: &str, value: &str) -> Request {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// The first header called `name`, case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// A body sent as it is produced, after the head (`follow`). The front end
/// frames it: chunked in `serve` (HTTP/1.1), else ended by closing.
pub trait StreamBody: Send {
    fn send_to(self: Box<Self>, sink: &mut dyn Sink);
}

pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
    /// Sent instead of `body` when set.
    pub stream: Option<Box<dyn StreamBody>>,
}

pub const JSON: &str = "application/json";
pub const TEXT: &str = "text/plain; charset=utf-8";

impl Response {
    pub fn json(status: u16, value: &serde_json::Value) -> Response {
        let mut body = value.to_string().into_bytes();
        body.push(b'\n');
        Response::bytes(status, JSON, body)
    }

    pub fn bytes(status: u16, content_type: &'static str, body: Vec<u8>) -> Response {
        Response { status, content_type, headers: Vec::new(), body, stream: None }
    }

    /// A 200 whose body is `stream`, sent unbuffered by any proxy.
    pub fn streamed(content_type: &'static str, stream: Box<dyn StreamBody>) -> Response {
        Response { stream: Some(stream), ..Response::bytes(200, content_type, Vec::new()) }
            .with_header("Cache-Control", "no-store".into())
            .with_header("X-Accel-Buffering", "no".into())
    }

    /// An error answer: `{"msg": …}`.
    pub fn error(status: u16, msg: &str) -> Response {
        Response::json(status, &serde_json::json!({ "msg": msg }))
    }

    pub fn with_header(mut self, name: &'static str, value: String) -> Response {
        self.headers.push((name, value));
        self
    }
}

/// A query string that is not well-formed percent-encoded UTF-8.
#[derive(Debug, PartialEq, Eq)]
pub struct InvalidQuery;

/// Strict query parsing: `k=v` pairs split on `&`, each percent-decoded;
/// a bad escape or non-UTF-8 result is an error, an empty pair is skipped.
pub fn parse_query(query: &str) -> Result<Vec<(String, String)>, InvalidQuery> {
    let mut pairs = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        pairs.push((percent_decode(key)?, percent_decode(value)?));
    }
    Ok(pairs)
}

fn percent_decode(s: &str) -> Result<String, InvalidQuery> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3).ok_or(InvalidQuery)?;
                let hex = std::str::from_utf8(hex).map_err(|_| InvalidQuery)?;
                out.push(u8::from_str_radix(hex, 16).map_err(|_| InvalidQuery)?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| InvalidQuery)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries() {
        assert_eq!(
            parse_query("lines=5&run=last"),
            Ok(vec![("lines".into(), "5".into()), ("run".into(), "last".into())])
        );
        assert_eq!(parse_query("token=a%2Bb&&x"), Ok(vec![("token".into(), "a+b".into()), ("x".into(), "".into())]));
        assert_eq!(parse_query(""), Ok(vec![]));
        for bad in ["a=%", "a=%4", "a=%zz", "a=%ff"] {
            assert_eq!(parse_query(bad), Err(InvalidQuery), "DENY! {bad}");
        }
    }

    #[test]
    fn targets_split_once() {
        let r = Request::new("GET", "/api/job/x/logs?lines=1?x").with_header("Authorization", "Bearer t");
        assert_eq!((r.path.as_str(), r.query.as_str()), ("/api/job/x/logs", "lines=1?x"));
        assert_eq!(r.header("authorization"), Some("Bearer t"));
    }
}
