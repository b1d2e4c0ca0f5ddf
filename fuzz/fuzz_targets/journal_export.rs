//! Reading `journalctl -o export` output never panics, never keeps an
//! entry over the limit, and never hands on an entry of another unit.
#![no_main]

use std::io::Cursor;

use jobgate::journal::entry::journal_entry;
use jobgate::journal::export::{read_entry, RawEntry, MAX_ENTRY_BYTES};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut source = Cursor::new(data);
    let mut raw = RawEntry::default();
    while let Ok(true) = read_entry(&mut source, &mut raw) {
        if let Some(entry) = journal_entry("ci-test-a.service", &raw) {
            assert!(entry.message.len() <= MAX_ENTRY_BYTES * 3, "over the limit");
            let ours = Some(&b"ci-test-a.service"[..]);
            assert!(raw.field("_SYSTEMD_UNIT") == ours || raw.field("UNIT") == ours, "another unit's entry");
        }
    }
});
