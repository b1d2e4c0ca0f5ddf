//! One journal file, whatever its bytes, read in-process (`journal::Native`)
//! as jobgate reads a unit: its entries forward and backward, with and
//! without the manager's messages, the manager's messages alone, and the
//! text of its lines. An error is a fine outcome; otherwise:
//! - nothing panics, and every read ends (bounded in entries and bytes);
//! - every entry is about ci-test-a.service: a manager's message (pid 1)
//!   only where those were asked for, and the manager's messages read
//!   alone are nothing else;
//! - every cursor is of journalctl's full form, reads back through
//!   `parse_cursor` and is written again the same by `format_cursor`, and
//!   the entry's time and place are its cursor's;
//! - the entries of a read are in journalctl's order: within one sequence
//!   (`s=`), sequence numbers never go back in the read's direction (the
//!   whole order is not transitive, and entries passed over come between);
//! - a read backward gives what the same read forward gives, reversed,
//!   when both end well.
//!
//! The reader refuses a DATA object whose payload does not match its stored
//! hash, which a mutation almost never keeps: unless bit 0 of the header's
//! reserved byte 17 is set, each uncompressed DATA object's hash is made
//! right first, so that mutated payloads reach what reads them.
#![no_main]

use std::cmp::Ordering;
use std::io::{self, BufRead};
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use jobgate::journal::native::hash::{jenkins_hash64, siphash24};
use jobgate::journal::native::{format_cursor, parse_cursor, Location, Native};
use jobgate::journal::{Entries, Entry, JournalSource};
use jobgate::names::{Cursor, JobName, Place, Prefix, UnitName};
use jobgate::systemd::argv::{EntryRead, Seek};
use libfuzzer_sys::fuzz_target;

const UNIT: &str = "ci-test-a.service";
/// Reads stop after this many entries, or this many bytes of text.
const MAX_ENTRIES: usize = 10_000;
const MAX_TEXT: usize = 16 << 20;
const TIMEOUT: Duration = Duration::from_secs(1);

/// This process's directory, made for each input with the one file in it
/// and removed after.
fn dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| std::env::temp_dir().join(format!("jobgate-fuzz-{}", std::process::id())))
}

fn unit() -> UnitName {
    let prefix = Prefix::parse("ci-test-").expect("a prefix");
    JobName::parse(&prefix, "ci-test-a").expect("a job").unit()
}

fuzz_target!(|data: &[u8]| {
    std::fs::create_dir_all(dir()).expect("a temporary directory");
    let data = if data.get(17).is_some_and(|b| b & 1 == 1) { data.to_vec() } else { rehashed(data) };
    std::fs::write(dir().join("x.journal"), &data).expect("the input written");
    let native = Native::from_dirs(vec![dir().clone()]);
    let unit = unit();
    assert_eq!(unit.as_str(), UNIT);

    for manager in [false, true] {
        let read = |backward| {
            let read = EntryRead { unit: &unit, seek: Seek::Edge, backward, follow: false, manager };
            let began = Instant::now();
            let entries = read_all(native.unit_entries(read, TIMEOUT), backward, manager);
            // A read the deadline may have cut short proves nothing.
            entries.filter(|_| began.elapsed() < TIMEOUT)
        };
        let forward = read(false);
        let backward = read(true);
        if let (Some(forward), Some(mut backward)) = (forward, backward) {
            backward.reverse();
            assert!(forward == backward, "read backward, not the entries read forward:\n{forward:#?}\n{backward:#?}");
        }
    }

    if let Some(events) = read_all(native.manager_events(&unit), true, true) {
        assert!(events.iter().all(|e| e.from_manager), "a line of the unit among the manager's messages");
    }

    if let Ok(mut text) = native.unit_messages(&unit, 0, u64::MAX) {
        let mut read = 0;
        while read < MAX_TEXT {
            match text.fill_buf() {
                Ok([]) | Err(_) => break,
                Ok(bytes) => {
                    let n = bytes.len();
                    read += n;
                    text.consume(n);
                }
            }
        }
    }
    std::fs::remove_dir_all(dir()).expect("the temporary directory removed");
});

/// A read's entries, each checked as it comes; None if it failed (an error
/// midway too) or was cut at the bound.
fn read_all(entries: io::Result<Entries>, backward: bool, manager: bool) -> Option<Vec<Entry>> {
    let mut entries = entries.ok()?;
    let mut read: Vec<Entry> = Vec::new();
    let mut last: Option<Location> = None;
    while read.len() < MAX_ENTRIES {
        let Some(entry) = entries.next_entry().ok()? else { return Some(read) };
        let at = check(&entry, manager);
        if let Some(last) = last.filter(|last| last.seqnum_id == at.seqnum_id) {
            let wanted = if backward { Ordering::Less } else { Ordering::Greater };
            let by_seqnum = at.seqnum.cmp(&last.seqnum);
            assert!(
                by_seqnum == wanted || by_seqnum == Ordering::Equal,
                "{} out of order after {}",
                entry.cursor,
                format_cursor(&last)
            );
        }
        last = Some(at);
        read.push(entry);
    }
    None
}

/// Checks one entry handed out; where it stands.
fn check(entry: &Entry, manager: bool) -> Location {
    let cursor = Cursor::parse(&entry.cursor).unwrap_or_else(|| panic!("not a cursor: {:?}", entry.cursor));
    let at = parse_cursor(&cursor).unwrap_or_else(|e| panic!("cursor {:?}: {e}", entry.cursor));
    assert_eq!(format_cursor(&at), entry.cursor, "the cursor written again");
    assert_eq!(entry.realtime, at.realtime, "time not the cursor's");
    let place = Place { sequence: u128::from_be_bytes(at.seqnum_id), number: at.seqnum, realtime: at.realtime };
    assert_eq!(entry.place, place, "place not the cursor's");
    if entry.from_manager {
        assert!(manager, "a manager's message in a read of the unit's own lines: {entry:?}");
        assert_eq!(entry.pid, Some(1), "a manager's message not from pid 1: {entry:?}");
    }
    at
}

/// The file with the stored hash of each uncompressed DATA object that
/// lies whole in it made that of its payload, walking the objects from the
/// header's end as they follow each other.
fn rehashed(data: &[u8]) -> Vec<u8> {
    let mut out = data.to_vec();
    let le64 = |b: &[u8], at: usize| {
        let word = b.get(at..at.checked_add(8)?)?;
        usize::try_from(u64::from_le_bytes(word.try_into().expect("8 bytes"))).ok()
    };
    if !data.starts_with(b"LPKSHHRH") || data.len() < 208 {
        return out;
    }
    let incompatible = data[12];
    let (keyed, compact) = (incompatible & 4 != 0, incompatible & 16 != 0);
    let file_id: [u8; 16] = data[24..40].try_into().expect("16 bytes");
    let payload_at = if compact { 72 } else { 64 };
    let Some(mut at) = le64(data, 88) else { return out };
    while let Some(size) = at.checked_add(8).and_then(|i| le64(data, i)).filter(|&size| size >= 16) {
        let end = at.saturating_add(size);
        if data[at] == 1 && data[at + 1] == 0 && size >= payload_at && end <= data.len() {
            let payload = &data[at + payload_at..end];
            let hash = if keyed { siphash24(&file_id, payload) } else { jenkins_hash64(payload) };
            out[at + 16..at + 24].copy_from_slice(&hash.to_le_bytes());
        }
        match end.checked_add(7) {
            Some(next) => at = next & !7,
            None => break,
        }
    }
    out
}
