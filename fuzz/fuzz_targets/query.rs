//! Query parsing never panics, and the typed parameters built from its
//! values hold only what their grammar allows.
#![no_main]

use jobgate::api::http::parse_query;
use jobgate::names::{Cursor, Lines, RunSelector, MAX_LINES};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(pairs) = parse_query(text) else { return };
    for (_, value) in pairs {
        if let Some(lines) = Lines::parse(&value) {
            assert!((1..=MAX_LINES).contains(&lines.get()));
        }
        if let Some(cursor) = Cursor::parse(&value) {
            assert!(cursor.as_str().bytes().all(|b| b.is_ascii_alphanumeric() || b == b'=' || b == b';'));
            assert!(!cursor.as_str().starts_with('-'));
        }
        if let Some(RunSelector::Id(run)) = RunSelector::parse(&value) {
            assert!(run.as_str().len() == 32 && run.as_str().bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        }
    }
});
