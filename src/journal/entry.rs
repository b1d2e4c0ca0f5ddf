//! One journal entry as jobgate reads it, whichever reader read it: the
//! fields it uses, whose unit it is about, and the manager's message ids.
#![forbid(unsafe_code)]

use crate::journal::export::RawEntry;
use crate::names::{Cursor, Place, RunId};

/// One journal entry, with the fields jobgate uses.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Entry {
    pub message: String,
    pub cursor: String,
    /// Where the entry stands in the journal (from its cursor).
    pub place: Place,
    /// Microseconds since the epoch.
    pub realtime: u64,
    /// The run this entry names, if it names one for `unit`.
    pub run: Option<RunId>,
    /// A message of the service manager about the unit (start, result),
    /// not a line the job wrote.
    pub from_manager: bool,
    pub message_id: String,
    pub unit_result: Option<String>,
    pub exit_status: Option<i64>,
    /// The writer's pid; for a job's output, the process that opened the
    /// stream (its main process), shared by every line of that stream.
    pub pid: Option<u32>,
    /// The stdout stream the line came on (`_STREAM_ID`): one per
    /// connection to journald, so one run's, whoever of its processes
    /// wrote; `None` for lines not written to stdout.
    pub stream: Option<u128>,
}

/// Who wrote a line, as far as the journal tells: its stdout stream, else
/// its pid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriterId {
    Stream(u128),
    Pid(u32),
}

impl Entry {
    pub fn writer(&self) -> WriterId {
        match self.stream {
            Some(stream) => WriterId::Stream(stream),
            None => WriterId::Pid(self.pid.unwrap_or(0)),
        }
    }
}

/// A journal id (`_STREAM_ID`, 32 lowercase hex digits) as a number.
fn journal_id(value: &str) -> Option<u128> {
    let hex = value.len() == 32 && value.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    hex.then(|| u128::from_str_radix(value, 16).ok()).flatten()
}

/// Systemd's catalog ids for the manager's messages about a unit.
pub mod message_ids {
    /// "Starting UNIT...": a run begins. Its INVOCATION_ID is not to be
    /// trusted: when a still-loaded unit is started again it carries the
    /// previous run's.
    pub const STARTING: &str = "7d4958e842da4a758f6c1cdc7b36dcc5";
    /// "Started UNIT." (or "Finished UNIT." for a oneshot unit): the start
    /// job is done. A `Type=simple` or `idle` run has no "Starting", so for
    /// those this is the run's first message.
    pub const STARTED: &str = "39f53479d3a045ac8e11786248231fbf";
    pub const DEACTIVATED: &str = "7ad2d189f7e94e70a38c781354912448";
    pub const FAILED_RESULT: &str = "d9b373ed55a64feb8242e02dbe79a49c";
    pub const PROCESS_EXIT: &str = "98e322203f7a4ed290d09fe03c09fe15";
}

/// Reads one journal entry about `unit`. The entry's run is taken only from
/// fields that tie it to `unit` itself (its own output's `_SYSTEMD_UNIT`, or
/// the manager's `UNIT`), so a stray entry of another unit never lends its id.
pub fn journal_entry(unit: &str, raw: &RawEntry) -> Option<Entry> {
    journal_entry_placed(unit, raw, None)
}

/// As [`journal_entry`], with the entry's place given where the reader
/// knows it (the in-process one, which wrote the cursor), rather than read
/// back from its cursor.
pub fn journal_entry_placed(unit: &str, raw: &RawEntry, known: Option<Place>) -> Option<Entry> {
    let field = |name: &str| raw.field(name).and_then(|v| std::str::from_utf8(v).ok());
    let own_output = field("_SYSTEMD_UNIT") == Some(unit);
    let about_unit = field("UNIT") == Some(unit) && field("_PID") == Some("1");
    let run = if own_output {
        field("_SYSTEMD_INVOCATION_ID").and_then(RunId::parse)
    } else if about_unit {
        field("INVOCATION_ID").and_then(RunId::parse)
    } else {
        return None;
    };
    let cursor = field("__CURSOR").unwrap_or_default();
    let place = known.unwrap_or_else(|| {
        let realtime = field("__REALTIME_TIMESTAMP").and_then(|t| t.parse().ok()).unwrap_or(0);
        let place = Cursor::parse(cursor).and_then(|c| c.place()).unwrap_or_default();
        Place { realtime, ..place }
    });
    let realtime = place.realtime;
    Some(Entry {
        message: String::from_utf8_lossy(raw.field("MESSAGE").unwrap_or_default()).into_owned(),
        cursor: cursor.to_string(),
        place,
        realtime,
        run,
        from_manager: !own_output,
        message_id: field("MESSAGE_ID").unwrap_or_default().to_string(),
        unit_result: field("UNIT_RESULT").map(str::to_string),
        exit_status: field("EXIT_STATUS").and_then(|s| s.parse().ok()),
        pid: field("_PID").and_then(|p| p.parse().ok()),
        stream: field("_STREAM_ID").and_then(journal_id),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const RUN: &str = "8677056ddd1a4b2f83a5660a4a4c1c38";

    fn entry(fields: &[(&str, &str)]) -> RawEntry {
        let mut raw = RawEntry::default();
        let bytes = crate::journal::export::render(&[fields]);
        assert!(crate::journal::export::read_entry(&mut std::io::Cursor::new(bytes), &mut raw).expect("entry"));
        raw
    }

    #[test]
    fn journal_entries_belong_to_their_unit_only() {
        let unit = "ci-test-fail.service";
        let own = entry(&[
            ("__CURSOR", "s=1"),
            ("__REALTIME_TIMESTAMP", "1795394165020452"),
            ("MESSAGE", "failing"),
            ("_SYSTEMD_UNIT", unit),
            ("_SYSTEMD_INVOCATION_ID", RUN),
        ]);
        let parsed = journal_entry(unit, &own).expect("own output");
        assert_eq!(parsed.message, "failing");
        assert_eq!(parsed.run.as_ref().map(RunId::as_str), Some(RUN));
        assert_eq!(parsed.realtime, 1795394165020452);

        let manager = entry(&[
            ("MESSAGE", "x"),
            ("_PID", "1"),
            ("UNIT", unit),
            ("INVOCATION_ID", RUN),
            ("UNIT_RESULT", "exit-code"),
            ("MESSAGE_ID", "d9b373ed55a64feb8242e02dbe79a49c"),
        ]);
        let parsed = journal_entry(unit, &manager).expect("manager message");
        assert_eq!(parsed.unit_result.as_deref(), Some("exit-code"));

        let other = entry(&[("MESSAGE", "secret"), ("_SYSTEMD_UNIT", "ssh.service"), ("_SYSTEMD_INVOCATION_ID", RUN)]);
        assert_eq!(journal_entry(unit, &other), None);
        let spoofed = entry(&[("MESSAGE", "x"), ("_PID", "4242"), ("UNIT", unit), ("INVOCATION_ID", RUN)]);
        assert_eq!(journal_entry(unit, &spoofed), None);
    }

    #[test]
    fn binary_and_multi_line_messages() {
        let raw = entry(&[("MESSAGE", "two\nlines"), ("_SYSTEMD_UNIT", "u.service")]);
        assert_eq!(journal_entry("u.service", &raw).map(|e| e.message), Some("two\nlines".into()));
        let mut bytes = b"_SYSTEMD_UNIT=u.service\nMESSAGE\n".to_vec();
        bytes.extend_from_slice(&3u64.to_le_bytes());
        bytes.extend_from_slice(b"hi\xff\n\n");
        let mut raw = RawEntry::default();
        assert!(crate::journal::export::read_entry(&mut std::io::Cursor::new(bytes), &mut raw).expect("entry"));
        assert_eq!(journal_entry("u.service", &raw).map(|e| e.message), Some("hi\u{fffd}".into()));
    }
}
