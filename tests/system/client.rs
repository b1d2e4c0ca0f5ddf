//! A raw-bytes HTTP client for the integration tests: requests are written
//! as bytes (so malformed ones can be sent as they are), answers parsed by
//! hand, chunked bodies decoded.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }

    pub fn msg(&self) -> String {
        self.json()["msg"].as_str().unwrap_or_default().to_string()
    }
}

/// Sends `raw` as it is and reads the answer until the server closes.
pub fn send_raw(addr: &str, raw: &[u8]) -> Answer {
    let mut stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    stream.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
    stream.write_all(raw).expect("write request");
    let mut bytes = Vec::new();
    let _ = stream.read_to_end(&mut bytes);
    parse(&bytes)
}

/// A well-formed request with `Connection: close`.
pub fn request(addr: &str, method: &str, target: &str, token: Option<&str>) -> Answer {
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    let body_len = if method == "POST" { "Content-Length: 0\r\n" } else { "" };
    let raw = format!("{method} {target} HTTP/1.1\r\nHost: {addr}\r\n{auth}{body_len}Connection: close\r\n\r\n");
    send_raw(addr, raw.as_bytes())
}

pub fn get(addr: &str, target: &str, token: &str) -> Answer {
    request(addr, "GET", target, Some(token))
}

pub fn post(addr: &str, target: &str, token: &str) -> Answer {
    request(addr, "POST", target, Some(token))
}

fn parse(bytes: &[u8]) -> Answer {
    let Some(split) = bytes.windows(4).position(|w| w == b"\r\n\r\n") else {
        // No answer at all (or a broken one): status 0, the bytes as body.
        return Answer { status: 0, headers: Vec::new(), body: String::from_utf8_lossy(bytes).into_owned() };
    };
    let head = String::from_utf8_lossy(&bytes[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let headers: Vec<(String, String)> =
        lines.filter_map(|l| l.split_once(':')).map(|(n, v)| (n.trim().to_string(), v.trim().to_string())).collect();
    let raw_body = &bytes[split + 4..];
    let chunked = headers.iter().any(|(n, v)| n.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    let body = if chunked { dechunk(raw_body) } else { raw_body.to_vec() };
    Answer { status, headers, body: String::from_utf8_lossy(&body).into_owned() }
}

fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = raw.windows(2).position(|w| w == b"\r\n") else { return out };
        let size_text = String::from_utf8_lossy(&raw[..eol]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("0").trim(), 16).unwrap_or(0);
        if size == 0 {
            return out;
        }
        let start = eol + 2;
        let end = (start + size).min(raw.len());
        out.extend_from_slice(&raw[start..end]);
        raw = raw.get(end + 2..).unwrap_or_default();
    }
}
