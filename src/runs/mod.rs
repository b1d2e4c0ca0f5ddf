//! The model of a run, and the one place that decides which journal lines
//! are whose:
//!
//! - [`history`]: a unit's runs, from the service manager's messages;
//! - [`attrib`]: the rule that says which entries are one run's lines;
//! - [`lines`]: the one reader every route and the CLI take lines from,
//!   where lines are neutralised and redacted.
//!
//! Entries come from the journal's one interface, `crate::journal`.
#![forbid(unsafe_code)]

pub mod attrib;
pub mod history;
pub mod lines;

use std::io;
use std::sync::Arc;
use std::time::Duration;

use crate::journal::streams::Streams;
use crate::journal::{Entries, JournalSource};
use crate::names::{JobName, RunId};
use crate::redact::Redactions;
pub use history::{Mark, Run, Wanted};
pub use lines::{now_us, FromEnd, Last, Picker, Replay, RunReader, Shown, Tail};

/// How long after a run's end journald may still be storing its last lines:
/// the manager's end message and the job's output reach it on different
/// sockets, and the output can come second (seen: over 100 ms under load).
pub const JOURNAL_SETTLE: Duration = Duration::from_secs(1);
/// [`JOURNAL_SETTLE`] in microseconds, as journal times are.
pub const SETTLE_US: u64 = JOURNAL_SETTLE.as_micros() as u64;
/// How long a run's end waits at most for journald to store the last lines
/// of the streams that have ended (a hostile job cannot hold one open past
/// its run, but journald may be slow under load).
pub const LINES_IN_WAIT: Duration = Duration::from_secs(30);
/// A run that ended longer ago than this has its lines in: its reads wait
/// for nothing.
pub const LINES_IN_RECENT: Duration = Duration::from_secs(60);

/// Runs and their lines, read from one journal source, shown through one
/// set of redaction rules.
pub struct Runs {
    source: Arc<dyn JournalSource>,
    redactions: Redactions,
    streams: Streams,
}

impl Runs {
    pub fn new(source: Arc<dyn JournalSource>, redactions: Redactions) -> Runs {
        Runs { source, redactions, streams: Streams::default() }
    }

    /// The same runs, their lines shown through `redactions`.
    pub fn with_redactions(self, redactions: Redactions) -> Runs {
        Runs { redactions, ..self }
    }

    /// The journal the runs are read from.
    pub fn journal(&self) -> &dyn JournalSource {
        self.source.as_ref()
    }

    /// Waits until the lines of a run that ended at `finished` (µs since
    /// the epoch) are in the journal; see [`lines::lines_in`].
    pub fn lines_in(&self, finished: u64) -> bool {
        lines::lines_in(&self.streams, finished)
    }

    /// The runs of `job` that `wanted` names, newest first; see
    /// [`history::history`] for `current`.
    pub fn history(
        &self,
        job: &JobName,
        wanted: Wanted<'_>,
        current: &mut dyn FnMut() -> Option<RunId>,
    ) -> io::Result<Vec<Run>> {
        self.history_from(self.events(job)?, wanted, current)
    }

    /// Begins reading `job`'s manager messages, for [`Runs::history_from`]:
    /// started early, the read gets going while other work is done.
    pub fn events(&self, job: &JobName) -> io::Result<Entries> {
        self.source.manager_events(&job.unit())
    }

    /// [`Runs::history`] from a read begun by [`Runs::events`].
    pub fn history_from(
        &self,
        mut events: Entries,
        wanted: Wanted<'_>,
        current: &mut dyn FnMut() -> Option<RunId>,
    ) -> io::Result<Vec<Run>> {
        history::history(events.as_mut(), wanted, current)
    }

    /// The reader of `job`'s lines.
    pub fn reader(&self, job: &JobName) -> RunReader<'_> {
        let redactor = self.redactions.for_job(job);
        RunReader { source: self.source.as_ref(), unit: job.unit(), redactor, streams: &self.streams }
    }
}

/// Journals made up in tests: entries, and a source that reads them as
/// journalctl would.
#[cfg(test)]
pub mod testing {
    use std::collections::VecDeque;
    use std::io;
    use std::time::Duration;

    use crate::journal::{Entries, Entry, JournalSource, Listed, Messages};
    use crate::names::{Place, RunId, UnitName};
    use crate::systemd::argv::{EntryRead, Seek};

    pub const RUN_A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    pub const RUN_B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
    pub const RUN_C: &str = "cccccccccccccccccccccccccccccccc";

    /// Entry `number` of the journal, written at `number` tenths of a second.
    fn at(number: u64) -> (String, Place) {
        let place = Place { sequence: 1, number, realtime: number * 100_000 };
        (format!("s=1;i={number:x};t={:x}", place.realtime), place)
    }

    /// A message of the service manager about the unit.
    pub fn manager(number: u64, run: &str, message_id: &str) -> Entry {
        let (cursor, place) = at(number);
        Entry {
            cursor,
            place,
            realtime: place.realtime,
            run: RunId::parse(run),
            from_manager: true,
            message_id: message_id.to_string(),
            pid: Some(1),
            ..Entry::default()
        }
    }

    /// A line the unit wrote, tagged with `run` or not, by `pid`.
    pub fn line(number: u64, message: &str, run: Option<&str>, pid: u32) -> Entry {
        let (cursor, place) = at(number);
        Entry {
            message: message.to_string(),
            cursor,
            place,
            realtime: place.realtime,
            run: run.and_then(RunId::parse),
            pid: Some(pid),
            ..Entry::default()
        }
    }

    /// A journal of one unit, in journal order, read as journalctl reads.
    pub struct Journal(pub Vec<Entry>);

    impl JournalSource for Journal {
        fn manager_events(&self, _unit: &UnitName) -> io::Result<Entries> {
            Ok(Box::new(Listed(self.0.iter().rev().filter(|e| e.from_manager).cloned().collect())))
        }

        fn unit_entries(&self, read: EntryRead<'_>, _timeout: Duration) -> io::Result<Entries> {
            let seek = |e: &Entry| match read.seek {
                Seek::Edge => true,
                Seek::After(cursor) => {
                    let place = cursor.place().expect("a test cursor");
                    if read.backward {
                        e.place.is_before(&place)
                    } else {
                        place.is_before(&e.place)
                    }
                }
                Seek::Since(us) => e.realtime >= us,
            };
            let mut entries: VecDeque<Entry> =
                self.0.iter().filter(|e| (read.manager || !e.from_manager) && seek(e)).cloned().collect();
            if read.backward {
                entries = entries.into_iter().rev().collect();
            }
            Ok(Box::new(Listed(entries)))
        }

        fn unit_messages(&self, _unit: &UnitName, since: u64, until: u64) -> io::Result<Messages> {
            let mut text = String::new();
            for e in self.0.iter().filter(|e| !e.from_manager && (since..=until).contains(&e.realtime)) {
                text.push_str(&e.message);
                text.push('\n');
            }
            Ok(Box::new(io::Cursor::new(text.into_bytes())))
        }

        fn probe(&self) -> io::Result<String> {
            Ok("journal made up for a test".into())
        }
    }
}
