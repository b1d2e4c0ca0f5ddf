//! Which of a unit's journal entries are one run's lines: the one rule,
//! used reading forwards (`RunFilter`) and backwards (`Writers` alone).
//!
//! journald tags a line with its run (`_SYSTEMD_INVOCATION_ID`) only while
//! it can see the writing process's cgroup, so a fast job's lines often
//! come untagged, and it may store them after the manager's end messages,
//! even after the next run's first message (seen in the sandbox). A line's
//! writer ties them together: its stdout stream (`_STREAM_ID`, one per
//! connection to journald, so never shared by two runs), or for lines not
//! written to stdout its `_PID`:
//!
//! - a line tagged with a run is that run's, and its writer is noted as
//!   that run's;
//! - an untagged line is the run's unless its writer is known to write for
//!   another run, or it comes before the run's first message (there it is
//!   the previous run's, whose writer is noted).
//!
//! A run is read from shortly before its first message (the previous run's
//! late lines are within [`JOURNAL_SETTLE`](super::JOURNAL_SETTLE) of it)
//! up to the next run's first message; the lines of other units never
//! reach here (see `source`). The manager's messages are journal entries
//! that a job running as root can forge, so for the run the manager holds
//! as the unit's current one (`Run::current`), a message that seems to
//! begin a later run does not end it: past such a message only the lines
//! of writers known to be the run's are its own. Limits: a run's untagged
//! lines on a stream first stored before its own first message are counted
//! to the previous run.
#![forbid(unsafe_code)]

use crate::journal::{message_ids, Entry, WriterId};
use crate::names::{Place, RunId};
use crate::runs::history::Run;

/// Writers known to have written one run's lines, or another run's.
#[derive(Default)]
pub struct Writers {
    ours: Vec<WriterId>,
    others: Vec<WriterId>,
}

/// Whose an untagged line is, by what is known of its writer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Writer {
    Ours,
    Others,
    Unknown,
}

impl Writers {
    /// Whether `line` (not a manager message) is `run`'s. Untagged lines
    /// are another run's where `untagged_are_others` says so.
    pub fn owns(&mut self, run: &RunId, line: &Entry, untagged_are_others: bool) -> bool {
        match self.whose(run, line) {
            Writer::Ours => true,
            Writer::Others => false,
            Writer::Unknown if untagged_are_others => {
                self.others.push(line.writer());
                false
            }
            Writer::Unknown => true,
        }
    }

    /// Whose `line` is by its tag or, untagged, by its writer; noting the
    /// writer of a tagged line.
    pub fn whose(&mut self, run: &RunId, line: &Entry) -> Writer {
        let writer = line.writer();
        match &line.run {
            Some(id) => {
                let (whose, list) =
                    if id == run { (Writer::Ours, &mut self.ours) } else { (Writer::Others, &mut self.others) };
                if !list.contains(&writer) {
                    list.push(writer);
                }
                whose
            }
            None if self.others.contains(&writer) => Writer::Others,
            None if self.ours.contains(&writer) => Writer::Ours,
            None => Writer::Unknown,
        }
    }
}

/// Whether the manager's `entry` begins a run after the run `run` that
/// began at `start`: a "Starting" (which may carry `run`'s id) or a message
/// of another run, after `run`'s own first message. Used reading forwards
/// ([`RunFilter`]) and backwards (`lines::RunReader::last`).
pub fn begins_a_later_run(run: &RunId, start: &Place, entry: &Entry) -> bool {
    let later = entry.place != *start && !entry.place.is_before(start);
    let another = entry.message_id == message_ids::STARTING || entry.run.as_ref().is_some_and(|id| id != run);
    later && another
}

/// What one entry is to the run a [`RunFilter`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// A line this run wrote.
    Line,
    /// The manager says this run has ended (its last lines may still come).
    RunEnded,
    /// Past the run: no later entry can be this run's.
    Past,
    /// The manager's message of a later run, in the current run's read:
    /// the manager is to be asked whether the run has ended (the read goes
    /// on, with only lines of the run's known writers).
    LaterRun,
    /// Anything else.
    Other,
}

/// Where a [`RunFilter`] stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Before the run's first message: untagged lines are another run's.
    BeforeRun,
    InRun,
    /// After a later run's message that the manager did not confirm.
    AfterLater,
    Past,
}

/// The rule, forwards: entries in journal order from any point before or
/// inside the run.
pub struct RunFilter {
    run: RunId,
    start: Place,
    next: Option<Place>,
    phase: Phase,
    writers: Writers,
    current: bool,
}

impl RunFilter {
    /// A filter for `run`, whose read begins at `from` (the first entry's
    /// place, or `None` for a read from before the run).
    pub fn new(run: &Run, from: Option<Place>) -> RunFilter {
        let inside = from.is_some_and(|from| !from.is_before(&run.start.place));
        RunFilter {
            run: run.run.clone(),
            start: run.start.place,
            next: run.next.as_ref().map(|n| n.place),
            phase: if inside { Phase::InRun } else { Phase::BeforeRun },
            writers: Writers::default(),
            current: run.current,
        }
    }

    pub fn see(&mut self, entry: &Entry) -> Seen {
        if self.phase == Phase::BeforeRun && !entry.place.is_before(&self.start) {
            self.phase = Phase::InRun;
        }
        if self.next.is_some_and(|next| !entry.place.is_before(&next)) {
            self.phase = Phase::Past;
        }
        if self.phase == Phase::Past {
            return Seen::Past;
        }
        if !entry.from_manager {
            let untagged_are_others = matches!(self.phase, Phase::BeforeRun | Phase::AfterLater);
            return if self.writers.owns(&self.run, entry, untagged_are_others) { Seen::Line } else { Seen::Other };
        }
        if self.phase != Phase::BeforeRun && begins_a_later_run(&self.run, &self.start, entry) {
            if self.current {
                self.phase = Phase::AfterLater;
                return Seen::LaterRun;
            }
            self.phase = Phase::Past;
            return Seen::Past;
        }
        let ours = entry.run.as_ref() == Some(&self.run);
        let ended = matches!(entry.message_id.as_str(), message_ids::DEACTIVATED | message_ids::FAILED_RESULT);
        if ours && ended {
            Seen::RunEnded
        } else {
            Seen::Other
        }
    }
}
