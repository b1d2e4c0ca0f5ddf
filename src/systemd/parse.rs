//! Parsing what `systemctl` and `journalctl` print into typed values. Pure
//! over bytes: no I/O, so it is unit-tested and fuzzed directly.
#![forbid(unsafe_code)]

use crate::names::{Cursor, JobName, Place, Prefix, RunId};
use crate::systemd::export::RawEntry;

/// What `systemctl show` says of a unit.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UnitState {
    pub loaded: bool,
    pub active_state: String,
    pub sub_state: String,
    pub result: String,
    pub exit_status: Option<i64>,
    /// How many times Restart= started the unit again since it was last
    /// started by hand (systemd's NRestarts; 252 shows 0 again once a
    /// restarted run ends well).
    pub restarts: Option<u64>,
    pub run: Option<RunId>,
    /// Seconds since the epoch, from `--timestamp=unix` (`@N`).
    pub started: Option<u64>,
    pub finished: Option<u64>,
}

impl UnitState {
    /// `active` or `activating` (or reloading): a start now would be a no-op.
    pub fn is_running(&self) -> bool {
        matches!(self.active_state.as_str(), "active" | "activating" | "reloading")
    }

    /// The unit's run (`run`) is over: the unit is inactive or failed,
    /// stays active after it (`exited`: a oneshot with RemainAfterExit=), or
    /// waits to start it again (`auto-restart`: Restart=; the next attempt
    /// is a run of its own). Not while it stops (`deactivating`: ExecStop=
    /// and the like still run).
    pub fn run_over(&self) -> bool {
        matches!(self.active_state.as_str(), "inactive" | "failed")
            || matches!(self.sub_state.as_str(), "exited" | "auto-restart")
    }
}

/// The state `systemctl show --timestamp=unix` prints (`KEY=VALUE` lines).
pub fn unit_state(show: &[u8]) -> UnitState {
    let text = String::from_utf8_lossy(show);
    unit_state_from(text.lines().filter_map(|line| line.split_once('=')))
}

/// The state from its properties, each value as `systemctl show
/// --timestamp=unix` prints it: the one rule for its output and for the
/// values read over the bus (`systemd::bus`).
pub fn unit_state_from<'a>(properties: impl IntoIterator<Item = (&'a str, &'a str)>) -> UnitState {
    let mut state = UnitState::default();
    for (key, value) in properties {
        match key {
            "LoadState" => state.loaded = value == "loaded",
            "ActiveState" => state.active_state = value.to_string(),
            "SubState" => state.sub_state = value.to_string(),
            "Result" => state.result = value.to_string(),
            "ExecMainStatus" => state.exit_status = value.parse().ok(),
            "NRestarts" => state.restarts = value.parse().ok(),
            "InvocationID" => state.run = RunId::parse(value),
            "ExecMainStartTimestamp" => state.started = unix_timestamp(value),
            "ExecMainExitTimestamp" => state.finished = unix_timestamp(value),
            _ => {}
        }
    }
    if state.started.is_none() {
        // Never ran: systemd's 0 is not an exit status.
        state.exit_status = None;
    }
    state
}

fn unit_timestamp_digits(value: &str) -> Option<&str> {
    value.strip_prefix('@').filter(|d| !d.is_empty())
}

fn unix_timestamp(value: &str) -> Option<u64> {
    unit_timestamp_digits(value)?.parse().ok().filter(|&n| n > 0)
}

/// What the service manager lists of the jobs under a prefix, from
/// systemctl's output or over the bus.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Listing {
    /// The loaded units (`list-units --all`), with their active state.
    pub units: Vec<(JobName, Option<String>)>,
    /// The unit files (`list-unit-files`).
    pub files: Vec<JobName>,
}

/// The job a listed unit or unit file is, if it is one: a service whose
/// name is a valid job under the prefix (a template, `NAME@.service`, is
/// not). The one rule for systemctl's listings and the bus's.
pub fn listed_job(prefix: &Prefix, unit: &str) -> Option<JobName> {
    JobName::parse(prefix, unit.strip_suffix(".service")?).ok()
}

/// Job names from `systemctl list-units`/`list-unit-files` output: the first
/// column of each line, kept only if it is a job ([`listed_job`]).
pub fn listed_jobs(prefix: &Prefix, listing: &[u8]) -> Vec<(JobName, Option<String>)> {
    let text = String::from_utf8_lossy(listing);
    text.lines()
        .filter_map(|line| {
            let mut columns = line.split_whitespace();
            let job = listed_job(prefix, columns.next()?)?;
            // list-units: UNIT LOAD ACTIVE SUB …; list-unit-files: UNIT STATE PRESET
            let active = columns.nth(1).map(str::to_string);
            Some((job, active))
        })
        .collect()
}

/// The listing in the output of `systemctl list-units --all` (`units`) and
/// `systemctl list-unit-files` (`files`).
pub fn listing(prefix: &Prefix, units: &[u8], files: &[u8]) -> Listing {
    Listing {
        units: listed_jobs(prefix, units),
        files: listed_jobs(prefix, files).into_iter().map(|(job, _)| job).collect(),
    }
}

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

/// Formats seconds since the epoch as RFC 3339 UTC (`2026-11-23T00:36:05Z`).
pub fn rfc3339(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    const RUN: &str = "8677056ddd1a4b2f83a5660a4a4c1c38";

    #[test]
    fn show_output() {
        let show = b"Result=exit-code\nExecMainStartTimestamp=@1795394165\nExecMainExitTimestamp=@1795394166\n\
ExecMainStatus=3\nLoadState=loaded\nActiveState=failed\nSubState=failed\nInvocationID=8677056ddd1a4b2f83a5660a4a4c1c38\n";
        let state = unit_state(show);
        assert!(state.loaded);
        assert_eq!(state.active_state, "failed");
        assert_eq!(state.result, "exit-code");
        assert_eq!(state.exit_status, Some(3));
        assert_eq!(state.run.as_ref().map(RunId::as_str), Some(RUN));
        assert_eq!((state.started, state.finished), (Some(1795394165), Some(1795394166)));
        assert!(!state.is_running());
    }

    #[test]
    fn show_of_a_missing_or_never_run_unit() {
        let state = unit_state(
            b"LoadState=not-found\nActiveState=inactive\nExecMainStatus=0\nInvocationID=\nExecMainStartTimestamp=\n",
        );
        assert!(!state.loaded);
        assert_eq!(state.run, None);
        assert_eq!(state.exit_status, None);
    }

    #[test]
    fn listings() {
        let prefix = Prefix::parse("ci-test-").expect("prefix");
        let files = b"ci-test-deploy@.service static -\nci-test-hello.service static -\nssh.service enabled enabled\nci-test-x;y.service static -\n";
        let jobs: Vec<String> = listed_jobs(&prefix, files).into_iter().map(|(j, _)| j.to_string()).collect();
        assert_eq!(jobs, ["ci-test-hello"]);
        let units = b"ci-test-fail.service loaded failed failed ci-test-fail.service\n";
        let listed = listed_jobs(&prefix, units);
        assert_eq!(listed[0].1.as_deref(), Some("failed"));
    }

    fn entry(fields: &[(&str, &str)]) -> RawEntry {
        let mut raw = RawEntry::default();
        let bytes = crate::systemd::export::render(&[fields]);
        assert!(crate::systemd::export::read_entry(&mut std::io::Cursor::new(bytes), &mut raw).expect("entry"));
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
        assert!(crate::systemd::export::read_entry(&mut std::io::Cursor::new(bytes), &mut raw).expect("entry"));
        assert_eq!(journal_entry("u.service", &raw).map(|e| e.message), Some("hi\u{fffd}".into()));
    }

    #[test]
    fn timestamps() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1795394165), "2026-11-23T00:36:05Z");
        assert_eq!(rfc3339(951782400), "2000-02-29T00:00:00Z");
    }
}
