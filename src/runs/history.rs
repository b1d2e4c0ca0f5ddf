//! A unit's runs, read from the service manager's messages about it.
//!
//! Every message the manager writes about a run carries the run's id
//! (`INVOCATION_ID`), except that "Starting …" may carry the previous run's
//! (when the unit was still loaded). So, read newest first, a run is a span
//! of messages with one id, and begins at its first message: its
//! "Starting" where it has one (exec, notify, forking, oneshot), else its
//! first message with its id ("Started" for `Type=simple` and `idle`, or
//! any other: a restart begins with "Started"). A run known only by its
//! "Starting" (it has only just begun) takes that message's id, unless the
//! run before has the same id: then it is the unit's current invocation,
//! asked for only in that case.
#![forbid(unsafe_code)]

use std::io;

use crate::journal::{message_ids, Entry, EntryStream};
use crate::names::{Cursor, Place, RunId};

/// A journal entry that marks a place: a cursor and where it stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mark {
    pub cursor: Cursor,
    pub place: Place,
}

/// One run, from the service manager's messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    pub run: RunId,
    /// The manager's first message of this run.
    pub start: Mark,
    /// The previous run's first message; `None` for the oldest run in the
    /// journal.
    pub previous: Option<Mark>,
    /// The next run's first message, where this run's lines end; `None`
    /// for the newest run.
    pub next: Option<Mark>,
    /// Microseconds since the epoch.
    pub started: u64,
    pub finished: Option<u64>,
    pub result: Option<String>,
    pub exit_status: Option<i64>,
    /// The service manager holds this run as the unit's invocation now
    /// (`ops` asks it): no run has begun since, whatever the journal shows.
    pub current: bool,
}

/// What the manager said of one run's end.
#[derive(Debug, Default, Clone)]
struct Outcome {
    finished: Option<u64>,
    result: Option<String>,
    exit_status: Option<i64>,
}

impl Outcome {
    /// Folds in one manager message; messages come newest first. The run's
    /// end is its oldest end message: a job running as root can send more
    /// of them later, with pid 1's credentials, but not before the real one.
    fn apply(&mut self, entry: &Entry) {
        match entry.message_id.as_str() {
            message_ids::DEACTIVATED => {
                self.finished = Some(entry.realtime);
                self.result.get_or_insert_with(|| "success".into());
                self.exit_status.get_or_insert(0);
            }
            message_ids::FAILED_RESULT => {
                self.finished = Some(entry.realtime);
                if let Some(result) = &entry.unit_result {
                    self.result.get_or_insert_with(|| result.clone());
                }
            }
            message_ids::PROCESS_EXIT => {
                if let Some(status) = entry.exit_status {
                    self.exit_status.get_or_insert(status);
                }
            }
            _ => {}
        }
    }
}

/// The messages of one run, as they are read (newest first).
struct Span {
    /// The id its messages carry; `None` while only its "Starting" is known.
    id: Option<RunId>,
    /// The id its "Starting" carried, which may be the previous run's.
    starting_id: Option<RunId>,
    /// Its oldest message so far.
    first: Mark,
    started: u64,
    /// Its "Starting" has been read: older messages are another run's.
    begun: bool,
    /// Its oldest message so far is one a run begins with ("Starting", or
    /// "Started" for `Type=simple`).
    opened: bool,
    outcome: Outcome,
}

/// Which runs a history read keeps.
pub struct Wanted<'a> {
    pub limit: usize,
    /// Only this run.
    pub only: Option<&'a RunId>,
}

/// The runs of a unit, newest first, from its manager messages read newest
/// first; reading stops once the wanted runs and the start of the run
/// before the oldest of them are known. `current` gives the unit's current
/// invocation; it is called at most once, and only when a run that has
/// just begun cannot be named otherwise.
pub fn history(
    events: &mut dyn EntryStream,
    wanted: Wanted<'_>,
    current: &mut dyn FnMut() -> Option<RunId>,
) -> io::Result<Vec<Run>> {
    let mut history =
        History { runs: Vec::new(), opened: Vec::new(), spans_seen: 0, awaiting_previous: None, newer: None };
    let mut span: Option<Span> = None;
    while let Some(entry) = events.next_entry()? {
        if !entry.from_manager {
            continue;
        }
        let Some(cursor) = Cursor::parse(&entry.cursor) else { continue };
        let mark = Mark { cursor, place: entry.place };
        if entry.message_id == message_ids::STARTING {
            match span.as_mut().filter(|s| !s.begun) {
                Some(s) => {
                    s.first = mark;
                    s.started = entry.realtime;
                    s.begun = true;
                    s.opened = true;
                    s.starting_id = entry.run;
                }
                None => {
                    history.close(span.take(), &wanted, current);
                    let started = entry.realtime;
                    span = Some(Span {
                        id: None,
                        starting_id: entry.run,
                        first: mark,
                        started,
                        begun: true,
                        opened: true,
                        outcome: Outcome::default(),
                    });
                }
            }
        } else if let Some(id) = entry.run.clone() {
            match span.as_mut() {
                Some(s) if !s.begun && s.id.as_ref() == Some(&id) => {
                    s.outcome.apply(&entry);
                    s.first = mark;
                    s.started = entry.realtime;
                    s.opened = entry.message_id == message_ids::STARTED;
                }
                _ => {
                    if let Some(s) = span.as_mut().filter(|s| s.id.is_none() && s.starting_id.as_ref() == Some(&id)) {
                        // Its "Starting" carried this, the previous run's, id.
                        s.starting_id = None;
                    }
                    history.close(span.take(), &wanted, current);
                    let mut outcome = Outcome::default();
                    outcome.apply(&entry);
                    let started = entry.realtime;
                    let opened = entry.message_id == message_ids::STARTED;
                    span = Some(Span {
                        id: Some(id),
                        starting_id: None,
                        first: mark,
                        started,
                        begun: false,
                        opened,
                        outcome,
                    });
                }
            }
        }
        if history.complete(&wanted) {
            return Ok(history.runs);
        }
    }
    history.close(span.take(), &wanted, current);
    Ok(history.runs)
}

struct History {
    runs: Vec<Run>,
    /// For each run, whether its oldest message read is one a run begins
    /// with; a run without one may go on in older messages.
    opened: Vec<bool>,
    spans_seen: usize,
    /// The run (an index into `runs`) whose previous run's start is next.
    awaiting_previous: Option<usize>,
    /// The first message of the span closed last: the next run's start to
    /// the span being read.
    newer: Option<Mark>,
}

impl History {
    fn close(&mut self, span: Option<Span>, wanted: &Wanted<'_>, current: &mut dyn FnMut() -> Option<RunId>) {
        let Some(span) = span else { return };
        let newest = self.spans_seen == 0;
        self.spans_seen += 1;
        if let Some(newer) = self.awaiting_previous.take() {
            self.runs[newer].previous = Some(span.first.clone());
        }
        let next = self.newer.replace(span.first.clone());
        let id = match span.id {
            Some(id) => Some(id),
            None if newest => span.starting_id.or_else(current),
            None => span.starting_id,
        };
        let Some(id) = id else { return };
        if let Some(k) = self.runs.iter().position(|r| r.run == id) {
            // Messages of one run on both sides of other runs' messages:
            // runs are one after another, so those between are not runs
            // (forged: a job running as root can write the manager's
            // messages), and this is where the run begins.
            self.runs.truncate(k + 1);
            self.opened.truncate(k + 1);
            let run = &mut self.runs[k];
            (run.start, run.started) = (span.first, span.started);
            run.finished = run.finished.or(span.outcome.finished);
            run.result = run.result.take().or(span.outcome.result);
            run.exit_status = run.exit_status.or(span.outcome.exit_status);
            self.opened[k] = span.opened;
            self.awaiting_previous = Some(k);
            return;
        }
        if wanted.only.is_some_and(|only| *only != id) || self.runs.len() >= wanted.limit {
            return;
        }
        self.runs.push(Run {
            run: id,
            start: span.first,
            previous: None,
            next,
            started: span.started,
            finished: span.outcome.finished,
            result: span.outcome.result,
            exit_status: span.outcome.exit_status,
            current: false,
        });
        self.opened.push(span.opened);
        self.awaiting_previous = Some(self.runs.len() - 1);
    }

    /// Whether the wanted runs, where each begins, and the start of the
    /// run before the oldest of them, are known.
    fn complete(&self, wanted: &Wanted<'_>) -> bool {
        let found = self.runs.len() >= wanted.limit || (wanted.only.is_some() && !self.runs.is_empty());
        found && self.awaiting_previous.is_none() && self.opened.iter().all(|&o| o)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::message_ids::{DEACTIVATED, FAILED_RESULT, PROCESS_EXIT, STARTED, STARTING};
    use crate::journal::Listed;
    use crate::runs::testing::{line, manager, RUN_A, RUN_B, RUN_C};

    /// The runs of a journal given oldest first, as `history` reads it.
    fn runs_of(journal: Vec<Entry>, limit: usize, current: Option<&str>) -> (Vec<Run>, bool) {
        let mut newest_first = Listed(journal.into_iter().rev().collect());
        let mut asked = false;
        let mut current = || {
            asked = true;
            current.and_then(RunId::parse)
        };
        let runs = history(&mut newest_first, Wanted { limit, only: None }, &mut current).expect("history");
        (runs, asked)
    }

    fn ids(runs: &[Run]) -> Vec<&str> {
        runs.iter().map(|r| r.run.as_str()).collect()
    }

    #[test]
    fn a_runs_end_is_its_first_end_message_not_a_later_forged_one() {
        let journal =
            vec![manager(10, RUN_A, STARTED), manager(20, RUN_A, DEACTIVATED), manager(50, RUN_A, DEACTIVATED)];
        let (runs, _) = runs_of(journal, 10, None);
        assert_eq!(runs[0].finished, Some(2_000_000));
    }

    #[test]
    fn runs_newest_first_with_results() {
        // Run B was started while the unit still held run A: its "Starting"
        // message carries A's id (seen on systemd 252).
        let mut failed = manager(40, RUN_B, FAILED_RESULT);
        failed.unit_result = Some("exit-code".into());
        let mut exited = manager(39, RUN_B, PROCESS_EXIT);
        exited.exit_status = Some(3);
        let journal = vec![
            manager(10, RUN_A, STARTING),
            manager(20, RUN_A, DEACTIVATED),
            manager(30, RUN_A, STARTING),
            exited,
            failed,
        ];
        let (runs, asked) = runs_of(journal.clone(), 10, None);
        assert!(!asked);
        assert_eq!(ids(&runs), [RUN_B, RUN_A]);
        assert_eq!((runs[0].started, runs[0].finished), (3_000_000, Some(4_000_000)));
        assert_eq!(runs[0].start.place.number, 30, "B begins at its Starting, whatever id that holds");
        assert_eq!((runs[0].result.as_deref(), runs[0].exit_status), (Some("exit-code"), Some(3)));
        assert_eq!(runs[0].previous.as_ref().map(|m| m.place.number), Some(10));
        assert_eq!(runs[1].next.as_ref().map(|m| m.place.number), Some(30));
        assert_eq!((runs[1].result.as_deref(), runs[1].exit_status), (Some("success"), Some(0)));
        assert_eq!(runs_of(journal, 1, None).0.len(), 1);
    }

    #[test]
    fn simple_units_begin_with_started() {
        // Type=simple and idle: no "Starting"; a restart begins with "Started".
        let journal = vec![
            line(9, "a: early, before its Started", Some(RUN_A), 10),
            manager(10, RUN_A, STARTED),
            manager(12, RUN_A, PROCESS_EXIT),
            manager(13, RUN_A, FAILED_RESULT),
            manager(14, RUN_A, "5eb03494b6584870a536b337290809b3"),
            manager(15, RUN_B, STARTED),
            manager(17, RUN_B, DEACTIVATED),
            manager(20, RUN_C, STARTED),
        ];
        let (runs, asked) = runs_of(journal, 10, None);
        assert!(!asked);
        assert_eq!(ids(&runs), [RUN_C, RUN_B, RUN_A]);
        let starts: Vec<u64> = runs.iter().map(|r| r.start.place.number).collect();
        assert_eq!(starts, [20, 15, 10]);
        assert_eq!(runs[0].finished, None, "C is running");
        assert_eq!(runs[1].finished, Some(1_700_000));
        assert_eq!(runs[2].next.as_ref().map(|m| m.place.number), Some(15));
        assert_eq!(runs[2].previous, None);
    }

    #[test]
    fn a_run_that_has_just_begun() {
        // Its "Starting" carries the previous run's id: the unit names it.
        let journal = vec![manager(10, RUN_A, STARTING), manager(20, RUN_A, DEACTIVATED), manager(30, RUN_A, STARTING)];
        let (runs, asked) = runs_of(journal.clone(), 10, Some(RUN_B));
        assert!(asked);
        assert_eq!(ids(&runs), [RUN_B, RUN_A]);
        // Its "Starting" carries its own id: nothing to ask.
        let mut own = journal;
        own[2] = manager(30, RUN_B, STARTING);
        let (runs, asked) = runs_of(own, 10, None);
        assert!(!asked);
        assert_eq!(ids(&runs), [RUN_B, RUN_A]);
    }

    #[test]
    fn one_run_by_id_and_the_start_of_the_one_before() {
        let journal = vec![
            manager(10, RUN_A, STARTED),
            manager(11, RUN_A, DEACTIVATED),
            manager(20, RUN_B, STARTED),
            manager(21, RUN_B, DEACTIVATED),
            manager(30, RUN_C, STARTED),
        ];
        let mut newest_first = Listed(journal.into_iter().rev().collect());
        let b = RunId::parse(RUN_B).expect("run");
        let runs = history(&mut newest_first, Wanted { limit: 1, only: Some(&b) }, &mut || None).expect("history");
        assert_eq!(ids(&runs), [RUN_B]);
        assert_eq!(runs[0].previous.as_ref().map(|m| m.place.number), Some(10));
        assert_eq!(runs[0].next.as_ref().map(|m| m.place.number), Some(30));
    }
}
