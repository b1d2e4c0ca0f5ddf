//! Token-file parsing never panics, and what it accepts renders back to a
//! file that parses to the same entries.
#![no_main]

use jobgate::auth::TokenFile;
use jobgate::redact::Redactions;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(file) = TokenFile::parse("tokens", text) {
        let again = TokenFile::parse("tokens", &file.render()).expect("a rendered file parses");
        assert_eq!(again.entries, file.entries);
        for entry in &file.entries {
            assert!(!entry.name.is_empty() && !entry.name.contains(char::is_whitespace));
        }
    }
    let _ = Redactions::parse("redact", text);
});
