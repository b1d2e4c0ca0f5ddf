//! The request readers of `inetd` and `cgi` never panic, never read past
//! their limits, and what they accept is within them.
#![no_main]

use std::io::{Cursor, Read};

use jobgate::api::http::MAX_BODY;
use jobgate::front::{cgi, http1};
use libfuzzer_sys::fuzz_target;

/// A reader that counts what is taken from it.
struct Counting<'a> {
    inner: Cursor<&'a [u8]>,
}

impl Read for Counting<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.inner.read(buf)
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Counting { inner: Cursor::new(data) };
    if let Ok(req) = http1::read_request(&mut input) {
        assert!(req.body.len() as u64 <= MAX_BODY);
    }
    let read = input.inner.position() as usize;
    assert!(read <= http1::MAX_HEAD + MAX_BODY as usize, "read {read} bytes");

    // The same bytes as a CGI environment: NAME=VALUE lines, then a body.
    let text = String::from_utf8_lossy(data);
    let (env, body) = text.split_once("\n\n").unwrap_or((&text, ""));
    let vars = env.lines().filter_map(|l| l.split_once('=')).map(|(k, v)| (k.to_string(), v.to_string()));
    let mut stdin = Cursor::new(body.as_bytes());
    if let Ok(req) = cgi::request_from_env(vars, &mut stdin) {
        assert!(req.body.len() as u64 <= MAX_BODY);
    }
    assert!(stdin.position() <= MAX_BODY);
});
