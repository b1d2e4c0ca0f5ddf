//! The read use cases that take a run's lines: `logs` and `tail`, each
//! once, for the HTTP core and the admin CLI alike; they turn the answers
//! into bytes and nothing more. (`follow` is `crate::follow`, over
//! [`Jobs::reader`].)
#![forbid(unsafe_code)]

use std::io;
use std::time::Duration;

use super::{journal_failure, Jobs, OpError};
use crate::names::{Cursor, JobName, RunSelector};
use crate::runs::{Last, Run, RunReader, Tail};
use crate::systemd::parse::UnitState;
use crate::tail_state::TailState;

/// How long after a run's end a cursorless `tail` reader that has not yet
/// been given its last lines sees it as still active (`tail-pending`).
pub const TAIL_HOLD: Duration = Duration::from_secs(10);

/// A run's last lines, as `logs` answers: held, or too many to hold and
/// read again in order as they are sent ([`Jobs::each_log_line`]).
pub struct RunLogs {
    pub job: JobName,
    pub run: Run,
    last: Last,
}

impl RunLogs {
    /// The lines, where they are few enough to be held.
    pub fn held(&self) -> Option<&[String]> {
        match &self.last {
            Last::Held(lines) => Some(lines),
            Last::Replay(_) => None,
        }
    }
}

/// What `tail` answers: the run read and its lines after the cursor.
pub struct RunTail {
    pub run: Run,
    pub tail: Tail,
}

impl Jobs {
    /// The reader of `job`'s lines, the one every line shown passes through.
    pub fn reader(&self, job: &JobName) -> RunReader<'_> {
        self.runs.reader(job)
    }

    /// The last `lines` lines of the run `which` names; `None` if there is
    /// no such run.
    pub fn logs(&self, job: &JobName, which: &RunSelector, lines: usize) -> Result<Option<RunLogs>, OpError> {
        let reader = self.reader(job);
        // The newest run's last lines: their read runs while the run is found.
        let from_end = (*which == RunSelector::Last).then(|| reader.read_from_end().ok()).flatten();
        let Some(run) = self.find_run(job, which)? else { return Ok(None) };
        let last = reader.last(&run, lines, from_end).map_err(|e| journal_failure(job, e))?;
        Ok(Some(RunLogs { job: job.clone(), run, last }))
    }

    /// Hands every line of `logs` to `line`, in order. A failure midway
    /// (of the read or of `line`) cuts the lines short.
    pub fn each_log_line(&self, logs: &RunLogs, line: &mut dyn FnMut(&str) -> io::Result<()>) -> io::Result<()> {
        match &logs.last {
            Last::Held(lines) => lines.iter().try_for_each(|l| line(l)),
            Last::Replay(replay) => {
                let reader = self.reader(&logs.job);
                for shown in reader.replay(&logs.run, replay)? {
                    line(&shown?)?;
                }
                Ok(())
            }
        }
    }

    /// The newest run's lines after `cursor`; without one, after where the
    /// reader `who` (a token's name) left off in this run, which `tails`
    /// then keeps. `None` if the job has no run.
    pub fn tail(
        &self,
        job: &JobName,
        cursor: Option<&Cursor>,
        who: &str,
        tails: &TailState,
    ) -> Result<Option<RunTail>, OpError> {
        let Some(run) = self.find_run(job, &RunSelector::Last)? else { return Ok(None) };
        if let Some(cursor) = cursor {
            let tail = self.reader(job).tail(&run, Some(cursor)).map_err(|e| journal_failure(job, e))?;
            return Ok(Some(RunTail { run, tail }));
        }
        // Holding off this reader's other cursorless tails meanwhile.
        let _lock = tails
            .lock(who, job)
            .map_err(|e| OpError::Failed(format!("locking the tail cursor of token {who} for {job}: {e}")))?;
        let stored = tails.load(who, job).filter(|(r, _)| *r == run.run).map(|(_, c)| c);
        let tail = self.reader(job).tail(&run, stored.as_ref()).map_err(|e| journal_failure(job, e))?;
        // Nothing of the run in the journal yet: its lines will all come
        // after its first message, and the reader is known to be reading it.
        let upto = tail.cursor.as_ref().or(stored.as_ref()).unwrap_or(&run.start.cursor);
        tails
            .save(who, job, &run.run, upto)
            .map_err(|e| OpError::Failed(format!("saving the tail cursor of token {who} for {job}: {e}")))?;
        Ok(Some(RunTail { run, tail }))
    }

    /// Whether the reader `who` reads `job` with a cursorless `tail` and
    /// has not yet been given the last lines of a run that ended moments
    /// ago (`state`, seen in `state`).
    ///
    /// The original API's follow script calls `tail`, then `state`, and
    /// stops once the state is no longer active: lines written between the
    /// two calls would never be read. So for such a reader, a run that
    /// ended less than [`TAIL_HOLD`] ago shows as `active` (sub-state
    /// `tail-pending`) until its tail is empty; the next loop reads them.
    /// Only a reader whose last `tail` of the job was of this run is held.
    pub fn tail_pending(
        &self,
        job: &JobName,
        who: &str,
        state: &UnitState,
        tails: &TailState,
    ) -> Result<bool, OpError> {
        let (Some(run), Some(finished)) = (&state.run, state.finished) else { return Ok(false) };
        let Some((_, cursor)) = tails.load(who, job).filter(|(tailed, _)| tailed == run) else {
            return Ok(false);
        };
        if crate::runs::now_us() / 1_000_000 > finished + TAIL_HOLD.as_secs() {
            return Ok(false);
        }
        let Some(run) = self.find_run(job, &RunSelector::Id(run.clone()))? else { return Ok(false) };
        let tail = self.reader(job).tail(&run, Some(&cursor)).map_err(|e| journal_failure(job, e))?;
        Ok(!tail.lines.is_empty())
    }
}
