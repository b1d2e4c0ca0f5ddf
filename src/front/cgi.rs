//! `jobgate cgi`: one request from the CGI environment (RFC 3875), behind
//! any CGI-capable web server (nginx + fcgiwrap, lighttpd, Apache).
//!
//! The path is taken raw from `REQUEST_URI` (less `SCRIPT_NAME`) where the
//! server sets it, since `PATH_INFO` comes percent-decoded and would turn
//! `%2F` into a path separator; `PATH_INFO` and `QUERY_STRING` otherwise.
#![forbid(unsafe_code)]

use std::io::{self, Read, Write};
use std::time::Instant;

use crate::api::http::{Request, Response, MAX_BODY};
use crate::api::{Api, Reject};
use crate::front::exchange::{self, Wire};
use crate::front::http1::{self, Framing};

pub fn run(api: &Api) -> io::Result<()> {
    let started = Instant::now();
    let request = request_from_env(std::env::vars(), &mut io::stdin().lock());
    // The web server frames a streamed body; a client that leaves is seen
    // only when a write fails (CGI has no way to ask sooner).
    let wire = Wire { out: &mut io::stdout().lock(), write_head, framing: Framing::Close, gone: &mut || false };
    exchange::exchange(api, request, wire, started)
}

/// The request a CGI environment describes; the body read from `stdin`,
/// `CONTENT_LENGTH` bytes at most [`MAX_BODY`].
pub fn request_from_env(vars: impl Iterator<Item = (String, String)>, stdin: &mut dyn Read) -> Result<Request, Reject> {
    let vars: Vec<(String, String)> = vars.collect();
    let var = |name: &str| vars.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
    let method = var("REQUEST_METHOD").filter(|m| !m.is_empty()).ok_or(Reject::new(400, "Bad request"))?;
    let target = match (var("REQUEST_URI"), var("SCRIPT_NAME").unwrap_or("")) {
        (Some(uri), script) => uri.strip_prefix(script).filter(|rest| rest.starts_with('/')).unwrap_or(uri).to_string(),
        (None, _) => {
            let path = var("PATH_INFO").filter(|p| !p.is_empty()).unwrap_or("/");
            match var("QUERY_STRING").filter(|q| !q.is_empty()) {
                Some(query) => format!("{path}?{query}"),
                None => path.to_string(),
            }
        }
    };
    let mut req = Request::new(method, &target);
    for (name, value) in &vars {
        if let Some(header) = name.strip_prefix("HTTP_") {
            req.headers.push((header.replace('_', "-"), value.clone()));
        }
    }
    if let Some(content_type) = var("CONTENT_TYPE") {
        req.headers.push(("Content-Type".into(), content_type.into()));
    }
    req.remote = var("REMOTE_ADDR").and_then(|a| a.parse().ok());
    let length = match var("CONTENT_LENGTH").filter(|l| !l.is_empty()) {
        None => 0,
        Some(l) => l.trim().parse::<u64>().map_err(|_| Reject::new(400, "Bad request"))?,
    };
    if length > MAX_BODY {
        return Err(Reject::new(413, "Request body too large"));
    }
    stdin.take(length).read_to_end(&mut req.body).map_err(|_| Reject::new(400, "Bad request"))?;
    if req.body.len() as u64 != length {
        return Err(Reject::new(400, "Bad request"));
    }
    Ok(req)
}

/// A CGI answer: `Status:` and the headers, then the body.
fn write_head(out: &mut dyn Write, response: &Response, framing: Framing) -> io::Result<()> {
    let mut head = format!("Status: {} {}\r\n", response.status, http1::reason(response.status));
    http1::push_headers(&mut head, response, framing);
    head.push_str("\r\n");
    out.write_all(head.as_bytes())?;
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Record;
    use crate::front::exchange::{answer, Wire};
    use std::time::Instant;

    fn env(pairs: &[(&str, &str)]) -> impl Iterator<Item = (String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<Vec<_>>().into_iter()
    }

    #[test]
    fn raw_request_uri_wins_over_decoded_path_info() {
        let vars = env(&[
            ("REQUEST_METHOD", "GET"),
            ("REQUEST_URI", "/cgi-bin/jobgate/api/job/ci-test-a%2F..%2Fx/state?lines=2"),
            ("SCRIPT_NAME", "/cgi-bin/jobgate"),
            ("PATH_INFO", "/api/job/ci-test-a/../x/state"),
            ("QUERY_STRING", "lines=2"),
            ("HTTP_AUTHORIZATION", "Bearer t"),
            ("HTTP_X_FORWARDED_FOR", "192.0.2.1"),
            ("REMOTE_ADDR", "127.0.0.1"),
        ]);
        let req = request_from_env(vars, &mut io::empty()).expect("request");
        assert_eq!((req.path.as_str(), req.query.as_str()), ("/api/job/ci-test-a%2F..%2Fx/state", "lines=2"));
        assert_eq!(req.header("authorization"), Some("Bearer t"));
        assert_eq!(req.header("x-forwarded-for"), Some("192.0.2.1"));
        assert_eq!(req.remote.map(|r| r.to_string()).as_deref(), Some("127.0.0.1"));
    }

    #[test]
    fn path_info_when_there_is_no_request_uri() {
        let vars = env(&[("REQUEST_METHOD", "POST"), ("PATH_INFO", "/api/job/ci-test-a"), ("CONTENT_LENGTH", "2")]);
        let req = request_from_env(vars, &mut io::Cursor::new(b"{}".to_vec())).expect("request");
        assert_eq!(
            (req.method.as_str(), req.path.as_str(), req.body.as_slice()),
            ("POST", "/api/job/ci-test-a", &b"{}"[..])
        );
    }

    #[test]
    fn limits() {
        let status = |pairs: &[(&str, &str)]| {
            request_from_env(env(pairs), &mut io::empty()).err().map(|r| r.into_response().status)
        };
        assert_eq!(status(&[("PATH_INFO", "/")]), Some(400), "no method");
        assert_eq!(status(&[("REQUEST_METHOD", "POST"), ("CONTENT_LENGTH", "65537")]), Some(413));
        assert_eq!(status(&[("REQUEST_METHOD", "POST"), ("CONTENT_LENGTH", "x")]), Some(400));
        assert_eq!(
            status(&[("REQUEST_METHOD", "POST"), ("CONTENT_LENGTH", "10")]),
            Some(400),
            "body shorter than said"
        );
    }

    #[test]
    fn answers_with_a_status_header() {
        let mut out = Vec::new();
        let wire = Wire { out: &mut out, write_head, framing: Framing::Close, gone: &mut || false };
        answer(Response::error(425, "Job is already active"), &Record::unread(), wire, Instant::now()).expect("write");
        let text = String::from_utf8(out).expect("utf8");
        assert!(text.starts_with("Status: 425 Too Early\r\nContent-Type: application/json\r\n"), "{text}");
    }
}
