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
//!   another run, or it comes before the run's first message and the unit
//!   had a run before (there it is that run's, whose writer is noted; the
//!   first run's early lines are its own: they come to journald on another
//!   socket than the manager's message, and may be stored first).
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
//! to the previous run, where the unit had one.
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

/// Whether an untagged line of a writer not yet seen, at `place`, is
/// another run's by its place alone: before `run`'s first message, where
/// the previous run's last lines are, if it had a previous run.
pub fn before_the_run(run: &Run, place: &Place) -> bool {
    run.previous.is_some() && place.is_before(&run.start.place)
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
    /// The unit had a run before this one.
    previous: bool,
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
            previous: run.previous.is_some(),
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
            let untagged_are_others = match self.phase {
                Phase::BeforeRun => self.previous,
                _ => self.phase == Phase::AfterLater,
            };
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::message_ids::{DEACTIVATED, STARTED, STARTING};
    use crate::names::Cursor;
    use crate::runs::history::Mark;
    use crate::runs::testing::{line, manager, RUN_A, RUN_B};

    /// Run A, begun by entry 10 after a run begun by entry 1; `next`: where
    /// run B begins.
    fn run_a(next: Option<u64>, current: bool) -> Run {
        let mark = |number| {
            let entry = manager(number, RUN_A, STARTED);
            Mark { cursor: Cursor::parse(&entry.cursor).expect("a test cursor"), place: entry.place }
        };
        Run {
            run: RunId::parse(RUN_A).expect("a run id"),
            start: mark(10),
            previous: Some(mark(1)),
            next: next.map(mark),
            started: 0,
            finished: None,
            result: None,
            exit_status: None,
            current,
        }
    }

    /// A case: its name, run B's first entry, whether the manager holds A
    /// as current, entries in journal order, and what each is to run A.
    type Case = (&'static str, Option<u64>, bool, Vec<Entry>, &'static [Seen]);

    #[test]
    fn each_entry_is_seen_as_the_rule_says() {
        use Seen::*;
        let table: &[Case] = &[
            ("a tagged line is its run's", None, true, vec![line(11, "a", Some(RUN_A), 7)], &[Line]),
            (
                "an untagged line of an unknown writer in the run is the run's",
                None,
                true,
                vec![line(11, "a", None, 7)],
                &[Line],
            ),
            (
                "a line tagged with another run is not, nor its writer's untagged ones",
                None,
                true,
                vec![line(11, "b", Some(RUN_B), 8), line(12, "b", None, 8), line(13, "a", None, 7)],
                &[Other, Other, Line],
            ),
            (
                "before the run's first message an untagged line is the previous run's, and so is its writer",
                None,
                true,
                vec![
                    line(9, "late", None, 6),
                    manager(10, RUN_A, STARTED),
                    line(11, "late", None, 6),
                    line(12, "a", None, 7),
                ],
                &[Other, Other, Other, Line],
            ),
            (
                "a writer that tagged a line as the run's keeps it after the run's end",
                None,
                true,
                vec![line(11, "a", Some(RUN_A), 7), manager(12, RUN_A, DEACTIVATED), line(13, "a", None, 7)],
                &[Line, RunEnded, Line],
            ),
            (
                "the manager's end of another run is not this run's end",
                None,
                true,
                vec![manager(11, RUN_B, DEACTIVATED)],
                &[LaterRun],
            ),
            (
                "for a run no longer current, a later Starting is past it",
                None,
                false,
                vec![manager(11, RUN_A, STARTING), line(12, "a", Some(RUN_A), 7)],
                &[Past, Past],
            ),
            (
                "for the current run, a later Starting only asks the manager: then only known writers are the run's",
                None,
                true,
                vec![
                    line(11, "a", Some(RUN_A), 7),
                    manager(12, RUN_A, STARTING),
                    line(13, "a", None, 7),
                    line(14, "forged?", None, 9),
                ],
                &[Line, LaterRun, Line, Other],
            ),
            (
                "from the next run's first message on, everything is past",
                Some(20),
                false,
                vec![line(19, "a", None, 7), line(20, "b", None, 7), line(21, "a", Some(RUN_A), 7)],
                &[Line, Past, Past],
            ),
        ];
        for (case, next, current, entries, want) in table {
            let mut filter = RunFilter::new(&run_a(*next, *current), None);
            let seen: Vec<Seen> = entries.iter().map(|e| filter.see(e)).collect();
            assert_eq!(seen, *want, "{case}");
        }
    }

    #[test]
    fn the_first_runs_early_lines_are_its_own() {
        // journald may store a job's first lines before the manager's
        // message that begins its run (another socket): with no run before
        // it, they can be no other's.
        let first = Run { previous: None, ..run_a(None, true) };
        let mut filter = RunFilter::new(&first, None);
        let entries = [line(8, "early", None, 7), manager(10, RUN_A, STARTED), line(11, "a", None, 7)];
        let seen: Vec<Seen> = entries.iter().map(|e| filter.see(e)).collect();
        assert_eq!(seen, [Seen::Line, Seen::Other, Seen::Line]);
        assert!(!before_the_run(&first, &entries[0].place));
        assert!(before_the_run(&run_a(None, true), &entries[0].place), "after a run, the previous run's");
    }

    #[test]
    fn writers_by_tag_then_by_what_was_noted() {
        let a = RunId::parse(RUN_A).expect("a run id");
        let mut writers = Writers::default();
        let table: &[(Entry, Writer)] = &[
            (line(1, "x", None, 7), Writer::Unknown),
            (line(2, "x", Some(RUN_A), 7), Writer::Ours),
            (line(3, "x", None, 7), Writer::Ours),
            (line(4, "x", Some(RUN_B), 8), Writer::Others),
            (line(5, "x", None, 8), Writer::Others),
            (line(6, "x", Some(RUN_A), 8), Writer::Ours),
            // Noted as another run's first: it stays so for untagged lines.
            (line(7, "x", None, 8), Writer::Others),
        ];
        for (entry, want) in table {
            assert_eq!(writers.whose(&a, entry), *want, "entry {}", entry.place.number);
        }
    }
}
