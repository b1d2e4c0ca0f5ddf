//! The jobgate operations (jobs, start, stop, state, runs, logs, tail) on
//! validated names, through a [`Runner`]. Shared by the HTTP core and the
//! admin CLI; knows nothing of HTTP or tokens.
#![forbid(unsafe_code)]

use std::collections::VecDeque;
use std::fmt;
use std::io::{self, BufRead};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::names::{Cursor, JobName, Lines, Prefix, RunId, RunSelector};
use crate::redact::Redactions;
use crate::systemd::argv::{Call, Probe, Tools};
use crate::systemd::export::{self, RawEntry};
use crate::systemd::parse::{self, message_ids, Entry, UnitState};
use crate::systemd::run::{Held, Output, Runner, StopOnDrop, STREAM_TIMEOUT};

/// How long after a run's end journald may still be storing its last lines:
/// the manager's end message and the job's output reach it on different
/// sockets, and the output can come second (seen: over 100 ms under load).
pub const JOURNAL_SETTLE: Duration = Duration::from_secs(1);
/// How long `start` waits to see the run it began.
pub const START_WAIT: Duration = Duration::from_secs(3);
/// Most runs one `runs` answer lists.
pub const MAX_RUNS: usize = 100;
/// Most bytes of log text one `tail` answer carries (it is collected, since
/// its cursor comes last); the client's next `tail` goes on from there.
pub const MAX_TAIL_BYTES: usize = 8 << 20;

#[derive(Debug)]
pub enum OpError {
    /// The unit does not exist (or, for an instance, its template does not).
    UnknownJob,
    /// Start refused: the job is active or activating.
    AlreadyActive,
    /// A command failed or could not run; the text is for the log and the
    /// admin, never for an HTTP client.
    Failed(String),
}

impl fmt::Display for OpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpError::UnknownJob => f.write_str("unknown job"),
            OpError::AlreadyActive => f.write_str("job is already active"),
            OpError::Failed(why) => f.write_str(why),
        }
    }
}

/// One job as `jobs` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobSummary {
    pub job: JobName,
    pub state: String,
}

/// One run, from the service manager's journal messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    pub run: RunId,
    /// The manager's first message of this run ("Starting …").
    pub start: Cursor,
    /// The previous run's "Starting" message: reading begins there, since
    /// journald can store a fast job's first lines before its "Starting".
    /// `None` for the oldest run in the journal.
    pub previous: Option<Cursor>,
    /// The next run's "Starting" message, which ends this run's lines;
    /// `None` for the newest run.
    pub next: Option<Cursor>,
    /// Microseconds since the epoch.
    pub started: u64,
    pub finished: Option<u64>,
    pub result: Option<String>,
    pub exit_status: Option<i64>,
}

/// The lines of a run after a cursor, and the cursor to go on from.
#[derive(Debug, Default)]
pub struct Tail {
    pub lines: Vec<String>,
    pub cursor: Option<Cursor>,
}

pub struct Systemd {
    pub prefix: Prefix,
    pub tools: Tools,
    runner: Arc<dyn Runner>,
    /// Applied to every line any operation returns.
    redactions: Redactions,
}

impl Systemd {
    pub fn new(prefix: Prefix, tools: Tools, runner: Arc<dyn Runner>) -> Systemd {
        Systemd { prefix, tools, runner, redactions: Redactions::default() }
    }

    pub fn with_redactions(self, redactions: Redactions) -> Systemd {
        Systemd { redactions, ..self }
    }

    fn call(&self, call: Call) -> Result<Output, OpError> {
        let argv = call.argv(&self.tools);
        self.runner.call(&argv).map_err(|e| OpError::Failed(format!("{}: {e}", program_name(&argv))))
    }

    /// A journal read, ended when the reader is dropped.
    fn stream(&self, call: Call) -> Result<Box<dyn BufRead + Send>, OpError> {
        let (output, stop) = self.stream_until(call, STREAM_TIMEOUT)?;
        Ok(Box::new(Held { output, _stop: stop }))
    }

    /// A journal read that runs at most `timeout`, with its own stop handle.
    pub(crate) fn stream_until(
        &self,
        call: Call,
        timeout: Duration,
    ) -> Result<(Box<dyn BufRead + Send>, StopOnDrop), OpError> {
        let argv = call.argv(&self.tools);
        self.runner.stream(&argv, timeout).map_err(|e| OpError::Failed(format!("{}: {e}", program_name(&argv))))
    }

    /// The redaction rules for `job`'s lines.
    pub fn redactions_for(&self, job: &JobName) -> crate::redact::Redactor<'_> {
        self.redactions.for_job(job)
    }

    /// The unit's state; [`OpError::UnknownJob`] if systemd has no such unit.
    pub fn state(&self, job: &JobName) -> Result<UnitState, OpError> {
        let unit = job.unit();
        let out = self.call(Call::Show(&unit))?;
        if !out.success {
            return Err(failure("systemctl show", &out));
        }
        let state = parse::unit_state(&out.stdout);
        if !state.loaded {
            return Err(OpError::UnknownJob);
        }
        Ok(state)
    }

    /// The state as a person means it: when systemd holds no run for the
    /// unit (a finished oneshot unit is unloaded and forgets its last run),
    /// the run, times, result and exit status of the journal's last run.
    pub fn state_with_last_run(&self, job: &JobName) -> Result<UnitState, OpError> {
        let mut state = self.state(job)?;
        if state.run.is_none() && !state.is_running() {
            if let Some(last) = self.find_run(job, &RunSelector::Last, None)? {
                state.run = Some(last.run);
                state.started = Some(last.started / 1_000_000);
                state.finished = last.finished.map(|f| f / 1_000_000);
                state.result = last.result.unwrap_or(state.result);
                state.exit_status = last.exit_status;
            }
        }
        Ok(state)
    }

    /// Starts the job and returns the run it began, once systemd shows it
    /// (within [`START_WAIT`]; `None` if it has not begun by then, e.g.
    /// while it waits for another unit). Refused while the job is running.
    pub fn start(&self, job: &JobName) -> Result<Option<RunId>, OpError> {
        let state = self.state(job)?;
        if state.is_running() {
            return Err(OpError::AlreadyActive);
        }
        let before = self.find_run(job, &RunSelector::Last, state.run.as_ref())?.map(|r| r.run);
        let out = self.call(Call::Start(&job.unit()))?;
        if !out.success {
            return Err(failure("systemctl start", &out));
        }
        Ok(self.wait_for_new_run(job, before.as_ref()))
    }

    /// A `--no-block` start only queues the job: until systemd runs it, the
    /// unit still shows the previous run, and a client polling the state
    /// would take that run's result for its own. So wait for a new run id:
    /// the unit's invocation, or, if the run is already over and the unit
    /// unloaded, the journal's newest run.
    fn wait_for_new_run(&self, job: &JobName, before: Option<&RunId>) -> Option<RunId> {
        let deadline = Instant::now() + START_WAIT;
        let mut pause = Duration::from_millis(2);
        loop {
            let state = self.state(job).ok()?;
            if let Some(run) = state.run.as_ref().filter(|run| Some(*run) != before) {
                return Some(run.clone());
            }
            if !state.is_running() {
                if let Some(last) = self.find_run(job, &RunSelector::Last, None).ok().flatten() {
                    if Some(&last.run) != before {
                        return Some(last.run);
                    }
                }
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(100));
        }
    }

    pub fn stop(&self, job: &JobName) -> Result<(), OpError> {
        self.state(job)?;
        let out = self.call(Call::Stop(&job.unit()))?;
        if out.success {
            Ok(())
        } else {
            Err(failure("systemctl stop", &out))
        }
    }

    /// Every job under the prefix: unit files (templates left out) and the
    /// loaded units, such as running instances, with their active state.
    pub fn jobs(&self) -> Result<Vec<JobSummary>, OpError> {
        let files = self.listing(Call::ListUnitFiles(&self.prefix), "systemctl list-unit-files")?;
        let units = self.listing(Call::ListUnits(&self.prefix), "systemctl list-units")?;
        let mut jobs: Vec<JobSummary> = parse::listed_jobs(&self.prefix, &units)
            .into_iter()
            .map(|(job, state)| JobSummary { job, state: state.unwrap_or_else(|| "unknown".into()) })
            .collect();
        for (job, _) in parse::listed_jobs(&self.prefix, &files) {
            if !jobs.iter().any(|j| j.job == job) {
                jobs.push(JobSummary { job, state: "inactive".into() });
            }
        }
        jobs.sort_by(|a, b| a.job.cmp(&b.job));
        Ok(jobs)
    }

    /// Whether sudo would run `probe` (`sudo -n -l …`: nothing is run).
    pub fn sudo_allows(&self, probe: Probe) -> bool {
        self.call(Call::SudoProbe(probe, &self.prefix)).is_ok_and(|out| out.success)
    }

    /// A listing's output. `list-unit-files` exits 1 when no unit matches
    /// the pattern: a failure that says nothing is an empty list.
    fn listing(&self, call: Call, what: &str) -> Result<Vec<u8>, OpError> {
        let out = self.call(call)?;
        if out.success || (out.stdout.is_empty() && out.stderr.is_empty()) {
            Ok(out.stdout)
        } else {
            Err(failure(what, &out))
        }
    }

    /// The newest `limit` runs, newest first, read from the manager's
    /// messages about the unit; stops reading once it has them. `current`
    /// is the unit's invocation now (from `state`), which names a run that
    /// has only just begun.
    pub fn runs(&self, job: &JobName, limit: usize, current: Option<&RunId>) -> Result<Vec<Run>, OpError> {
        self.scan_runs(job, limit, None, current)
    }

    /// The run a request means: the newest one in the journal (the current
    /// one while the unit is active), or one by id.
    pub fn find_run(
        &self,
        job: &JobName,
        which: &RunSelector,
        current: Option<&RunId>,
    ) -> Result<Option<Run>, OpError> {
        let only = match which {
            RunSelector::Last => None,
            RunSelector::Id(id) => Some(id),
        };
        Ok(self.scan_runs(job, 1, only, current)?.pop())
    }

    /// Reads the manager's messages about the unit, newest first. A run
    /// spans from one "Starting" message to the next; its id is the one its
    /// other messages carry (the "Starting" message's own may be the
    /// previous run's), or, for a run with no other message yet, `current`.
    fn scan_runs(
        &self,
        job: &JobName,
        limit: usize,
        only: Option<&RunId>,
        current: Option<&RunId>,
    ) -> Result<Vec<Run>, OpError> {
        let unit = job.unit();
        let mut events = self.stream(Call::ManagerEvents(&unit))?;
        let mut runs: Vec<Run> = Vec::new();
        let mut span = Outcome::default();
        // Only the newest run can be the current one.
        let mut current = current.cloned();
        // The newest "Starting" seen so far: the next run's, to the one at hand.
        let mut newer_start: Option<Cursor> = None;
        let mut raw = RawEntry::default();
        let mut done = false;
        while export::read_entry(&mut events, &mut raw).map_err(io_failure)? {
            let Some(entry) = parse::journal_entry(unit.as_str(), &raw) else { continue };
            if entry.message_id != message_ids::STARTING {
                if span.run.is_none() {
                    span.run = entry.run.clone();
                }
                span.apply(&entry);
                continue;
            }
            let Some(start) = Cursor::parse(&entry.cursor) else { continue };
            let next = newer_start.replace(start.clone());
            // This "Starting" is the previous run's to the run found last.
            if let Some(newer) = runs.last_mut().filter(|r| r.previous.is_none()) {
                newer.previous = Some(start.clone());
            }
            if done {
                break;
            }
            let outcome = std::mem::take(&mut span);
            let Some(id) = outcome.run.or(current.take()).or(entry.run) else { continue };
            current = None;
            if only.is_some_and(|only| *only != id) || runs.iter().any(|r| r.run == id) {
                continue;
            }
            runs.push(Run {
                run: id,
                start,
                previous: None,
                next,
                started: entry.realtime,
                finished: outcome.finished,
                result: outcome.result,
                exit_status: outcome.exit_status,
            });
            // Go on to the next "Starting", which bounds this run's lines.
            done = runs.len() >= limit || only.is_some();
        }
        Ok(runs)
    }

    /// The lines `run` wrote, oldest first, from its start or, with `after`,
    /// from that cursor on. Streamed, never collected. A run that ended
    /// moments ago is read only once [`JOURNAL_SETTLE`] has passed since.
    pub fn run_output(&self, job: &JobName, run: &Run, after: Option<&Cursor>) -> Result<EntryStream, OpError> {
        if let Some(finished) = run.finished {
            settle_after(finished);
        }
        let unit = job.unit();
        let (from, filter) = reading_point(run, after);
        let source = self.stream(Call::UnitEntries { unit: &unit, after: from, follow: false })?;
        Ok(EntryStream { source, unit: unit.to_string(), filter, raw: RawEntry::default() })
    }

    /// The last `lines` lines of `run` as they may be shown (counted after
    /// redaction); only that many are held at a time. Read from the run's
    /// end where that is exact, else from its start.
    pub fn last_lines(&self, job: &JobName, run: &Run, lines: Lines) -> Result<Vec<String>, OpError> {
        let keep = lines.get() as usize;
        if let Some(last) = self.last_lines_from_end(job, run, keep)? {
            return Ok(last);
        }
        let redactor = self.redactions.for_job(job);
        let mut last = VecDeque::with_capacity(keep.min(1024));
        for entry in self.run_output(job, run, None)? {
            let Some(line) = redactor.apply(entry.map_err(io_failure)?.message) else { continue };
            if last.len() == keep {
                last.pop_front();
            }
            last.push_back(line);
        }
        Ok(last.into())
    }

    /// The last `keep` lines of `run`, read newest first from its end, so a
    /// long run costs no more than those lines. `None` when the read comes
    /// within [`JOURNAL_SETTLE`] of the run's start: only there can the
    /// previous run's last untagged lines be (its processes are gone once
    /// this run starts), and telling them apart needs the forward read.
    fn last_lines_from_end(&self, job: &JobName, run: &Run, keep: usize) -> Result<Option<Vec<String>>, OpError> {
        if let Some(finished) = run.finished {
            settle_after(finished);
        }
        let unit = job.unit();
        let settled = run.started.saturating_add(JOURNAL_SETTLE.as_micros() as u64);
        let redactor = self.redactions.for_job(job);
        let mut source = self.stream(Call::UnitEntriesBackward { unit: &unit, before: run.next.as_ref() })?;
        let mut raw = RawEntry::default();
        let mut other_writers: Vec<u32> = Vec::new();
        let mut last = Vec::with_capacity(keep.min(1024));
        while export::read_entry(&mut source, &mut raw).map_err(io_failure)? {
            let Some(entry) = parse::journal_entry(unit.as_str(), &raw) else { continue };
            if entry.realtime <= settled || entry.cursor == run.start.as_str() {
                return Ok(None);
            }
            if entry.from_manager {
                continue;
            }
            let writer = entry.pid.unwrap_or(0);
            let ours = match &entry.run {
                Some(id) if *id != run.run => {
                    other_writers.push(writer);
                    false
                }
                Some(_) => true,
                None => !other_writers.contains(&writer),
            };
            if let Some(line) = redactor.apply(entry.message).filter(|_| ours) {
                last.push(line);
                if last.len() == keep {
                    last.reverse();
                    return Ok(Some(last));
                }
            }
        }
        Ok(None)
    }

    /// The lines of `run` after `after` (all of them without), collected up
    /// to [`MAX_LINES`](crate::names::MAX_LINES) lines or [`MAX_TAIL_BYTES`].
    pub fn tail(&self, job: &JobName, run: &Run, after: Option<&Cursor>) -> Result<Tail, OpError> {
        let mut tail = Tail { lines: Vec::new(), cursor: after.cloned() };
        let redactor = self.redactions.for_job(job);
        let mut bytes = 0;
        for entry in self.run_output(job, run, after)? {
            let entry = entry.map_err(io_failure)?;
            // The cursor moves past skipped lines too, so they are not read again.
            tail.cursor = Cursor::parse(&entry.cursor).or(tail.cursor);
            let Some(line) = redactor.apply(entry.message) else { continue };
            bytes += line.len();
            tail.lines.push(line);
            if tail.lines.len() >= crate::names::MAX_LINES as usize || bytes >= MAX_TAIL_BYTES {
                break;
            }
        }
        Ok(tail)
    }
}

/// What the manager said of one run: its id and how it ended.
#[derive(Default)]
struct Outcome {
    run: Option<RunId>,
    finished: Option<u64>,
    result: Option<String>,
    exit_status: Option<i64>,
}

impl Outcome {
    /// Folds in one manager message; messages come newest first.
    fn apply(&mut self, entry: &Entry) {
        match entry.message_id.as_str() {
            message_ids::DEACTIVATED => {
                self.finished.get_or_insert(entry.realtime);
                self.result.get_or_insert_with(|| "success".into());
                self.exit_status.get_or_insert(0);
            }
            message_ids::FAILED_RESULT => {
                self.finished.get_or_insert(entry.realtime);
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

/// Which run a unit's journal entry belongs to, seen in journal order.
///
/// journald tags a line with its run (`_SYSTEMD_INVOCATION_ID`) only while
/// it can see the process's cgroup, so a fast job's lines often come
/// untagged, and it may store them after the manager's end messages (seen
/// in the sandbox). So a run is read from the previous run's "Starting":
/// untagged lines before this run's "Starting" are the previous run's, and
/// their writer (one stream, one pid) is noted; after it, lines tagged with
/// this run or written by a writer not seen before are this run's, until
/// the next "Starting". Lines of other units are dropped whatever
/// journalctl matched. A job that writes and exits at once and is started
/// again at once can still have its last lines counted to the next run.
pub struct RunFilter {
    run: RunId,
    /// The cursor of this run's "Starting".
    start: String,
    phase: Phase,
    /// Writers of the previous run's lines.
    previous_pids: Vec<u32>,
}

/// What one entry is to the run a [`RunFilter`] looks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// A line this run wrote.
    Line,
    /// The manager says this run has ended (its last lines may still come).
    RunEnded,
    /// Past the run: no later entry can be this run's.
    Past,
    /// Anything else.
    Other,
}

/// Where a [`RunFilter`] stands.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Before this run's "Starting": the previous run's writers are noted.
    Previous,
    /// Reading from a cursor, or from the journal's start for the oldest
    /// run: this run's lines, up to the next "Starting".
    Gap,
    /// In this run.
    This,
    Ended,
}

impl RunFilter {
    /// A filter for `run`, read from the previous run's "Starting"
    /// (`from_previous`), or else from a cursor inside the run or from the
    /// journal's first entry.
    pub fn new(run: &Run, from_previous: bool) -> RunFilter {
        RunFilter {
            run: run.run.clone(),
            start: run.start.as_str().to_string(),
            phase: if from_previous { Phase::Previous } else { Phase::Gap },
            previous_pids: Vec::new(),
        }
    }

    pub fn see(&mut self, entry: &Entry) -> Seen {
        if self.phase == Phase::Ended {
            return Seen::Past;
        }
        if entry.from_manager {
            let ours = entry.run.as_ref() == Some(&self.run);
            self.phase = match self.phase {
                _ if entry.cursor == self.start => Phase::This,
                Phase::Gap if entry.message_id == message_ids::STARTING => Phase::Ended,
                Phase::This if entry.message_id == message_ids::STARTING => Phase::Ended,
                Phase::This if entry.run.is_some() && !ours => Phase::Ended,
                phase => phase,
            };
            let ended = matches!(entry.message_id.as_str(), message_ids::DEACTIVATED | message_ids::FAILED_RESULT);
            return match self.phase {
                Phase::Ended => Seen::Past,
                _ if ours && ended => Seen::RunEnded,
                _ => Seen::Other,
            };
        }
        let writer = entry.pid.unwrap_or(0);
        let others = match &entry.run {
            Some(run) => *run != self.run,
            None => self.phase == Phase::Previous || self.previous_pids.contains(&writer),
        };
        if !others {
            return Seen::Line;
        }
        // Another run's line: its writer's untagged lines are that run's too.
        if !self.previous_pids.contains(&writer) {
            self.previous_pids.push(writer);
        }
        Seen::Other
    }
}

/// A run's own lines, parsed and filtered (see [`RunFilter`]) as they are
/// read from the unit's entries; ends at the run's end or the source's.
pub struct EntryStream {
    source: Box<dyn BufRead + Send>,
    unit: String,
    filter: RunFilter,
    raw: RawEntry,
}

impl Iterator for EntryStream {
    type Item = io::Result<Entry>;

    fn next(&mut self) -> Option<io::Result<Entry>> {
        loop {
            match export::read_entry(&mut self.source, &mut self.raw) {
                Err(e) => return Some(Err(e)),
                Ok(false) => return None,
                Ok(true) => {}
            }
            let Some(entry) = parse::journal_entry(&self.unit, &self.raw) else { continue };
            match self.filter.see(&entry) {
                Seen::Line => return Some(Ok(entry)),
                Seen::Past => return None,
                Seen::RunEnded | Seen::Other => {}
            }
        }
    }
}

/// Waits until [`JOURNAL_SETTLE`] has passed since `finished` (µs since
/// the epoch), so that a run's last lines are in the journal.
fn settle_after(finished: u64) {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .saturating_sub(Duration::from_micros(finished));
    thread::sleep(JOURNAL_SETTLE.saturating_sub(since));
}

/// Where reading `run` begins, and the filter for it: a cursor inside the
/// run, else the previous run's start, else the journal's first entry for
/// the oldest run. (A run's lines may come before its own "Starting": a
/// cursor of this run is one after the previous run's start.)
pub fn reading_point<'a>(run: &'a Run, after: Option<&'a Cursor>) -> (Option<&'a Cursor>, RunFilter) {
    let this_run = |c: &&Cursor| run.previous.as_ref().is_none_or(|p| c.is_at_or_after(p));
    match after.filter(this_run) {
        Some(cursor) => (Some(cursor), RunFilter::new(run, false)),
        None => (run.previous.as_ref(), RunFilter::new(run, run.previous.is_some())),
    }
}

fn program_name(argv: &[std::ffi::OsString]) -> String {
    argv.iter()
        .map(|a| a.to_string_lossy())
        .find(|a| !a.ends_with("sudo") && !a.starts_with('-'))
        .map(|a| a.rsplit('/').next().unwrap_or_default().to_string())
        .unwrap_or_default()
}

fn failure(what: &str, out: &Output) -> OpError {
    let stderr = String::from_utf8_lossy(&out.stderr);
    OpError::Failed(format!("{what} failed: {}", stderr.trim()))
}

fn io_failure(e: io::Error) -> OpError {
    OpError::Failed(format!("reading the journal: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::systemd::run::RecordingRunner;

    const RUN_A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const RUN_B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    fn systemd(runner: RecordingRunner) -> (Systemd, Arc<RecordingRunner>) {
        let runner = Arc::new(runner);
        let prefix = Prefix::parse("ci-test-").expect("prefix");
        (Systemd::new(prefix, Tools::default(), runner.clone()), runner)
    }

    fn job(name: &str) -> JobName {
        JobName::parse(&Prefix::parse("ci-test-").expect("prefix"), name).expect("job")
    }

    #[test]
    fn no_matching_unit_is_an_empty_list() {
        // systemctl list-unit-files exits 1, silently, when nothing matches.
        let (sd, _) = systemd(RecordingRunner::default().answer(&["list-unit-files"], false, ""));
        assert_eq!(sd.jobs().expect("an empty list"), []);
    }

    #[test]
    fn start_refuses_an_active_job_without_calling_sudo() {
        let (sd, runner) =
            systemd(RecordingRunner::default().answer(&["show"], true, "LoadState=loaded\nActiveState=activating\n"));
        assert!(matches!(sd.start(&job("ci-test-a")), Err(OpError::AlreadyActive)));
        assert!(runner.recorded().iter().all(|argv| !argv.contains(&"start".to_string())));
    }

    #[test]
    fn start_of_an_unknown_unit_runs_nothing_privileged() {
        let (sd, runner) = systemd(RecordingRunner::default().answer(&["show"], true, "LoadState=not-found\n"));
        assert!(matches!(sd.start(&job("ci-test-a")), Err(OpError::UnknownJob)));
        assert_eq!(runner.recorded().len(), 1);
    }

    #[test]
    fn start_runs_exactly_one_sudo_call_and_names_the_new_run() {
        let show = format!("LoadState=loaded\nActiveState=inactive\nInvocationID={RUN_B}\n");
        let (sd, runner) = systemd(RecordingRunner::default().answer(&["show"], true, &show));
        assert_eq!(sd.start(&job("ci-test-a")).expect("started").map(|r| r.to_string()), Some(RUN_B.to_string()));
        let sudo: Vec<_> = runner.recorded().into_iter().filter(|argv| argv[0] == "/usr/bin/sudo").collect();
        assert_eq!(
            sudo,
            [["/usr/bin/sudo", "-n", "/usr/bin/systemctl", "start", "--no-block", "--", "ci-test-a.service"]]
        );
    }

    fn manager(run: &str, id: &str, ts: u64, extra: &str) -> String {
        format!(
            r#"{{"_PID":"1","UNIT":"ci-test-a.service","INVOCATION_ID":"{run}","MESSAGE_ID":"{id}","__REALTIME_TIMESTAMP":"{ts}","__CURSOR":"s=1;i={ts:x}"{extra}}}"#
        )
    }

    #[test]
    fn runs_newest_first_with_results() {
        // Run B was started while the unit still held run A: its "Starting"
        // message carries A's id (seen on systemd 252).
        let journal = [
            manager(RUN_B, message_ids::FAILED_RESULT, 40, r#","UNIT_RESULT":"exit-code""#),
            manager(RUN_B, message_ids::PROCESS_EXIT, 39, r#","EXIT_STATUS":"3""#),
            manager(RUN_A, message_ids::STARTING, 30, ""),
            manager(RUN_A, message_ids::DEACTIVATED, 20, ""),
            manager(RUN_A, message_ids::STARTING, 10, ""),
        ]
        .join("\n");
        let (sd, _) = systemd(RecordingRunner::default().answer(&["_PID=1"], true, &export::from_json_lines(&journal)));
        let runs = sd.runs(&job("ci-test-a"), 10, None).expect("runs");
        assert_eq!(runs.len(), 2);
        assert_eq!((runs[0].run.as_str(), runs[0].started, runs[0].finished), (RUN_B, 30, Some(40)));
        assert_eq!(runs[0].start.as_str(), "s=1;i=1e", "B begins at its Starting message, whatever id that holds");
        assert_eq!((runs[0].result.as_deref(), runs[0].exit_status), (Some("exit-code"), Some(3)));
        assert_eq!((runs[1].run.as_str(), runs[1].start.as_str()), (RUN_A, "s=1;i=a"));
        assert_eq!((runs[1].result.as_deref(), runs[1].exit_status), (Some("success"), Some(0)));
        assert_eq!(sd.runs(&job("ci-test-a"), 1, None).expect("runs").len(), 1);
        let only_a = sd.find_run(&job("ci-test-a"), &RunSelector::Id(runs[1].run.clone()), None).expect("find");
        assert_eq!(only_a.map(|r| r.start), Some(runs[1].start.clone()));
    }

    #[test]
    fn a_run_that_has_just_begun_is_named_by_the_current_invocation() {
        let journal = [
            manager(RUN_A, message_ids::STARTING, 30, ""),
            manager(RUN_A, message_ids::DEACTIVATED, 20, ""),
            manager(RUN_A, message_ids::STARTING, 10, ""),
        ]
        .join("\n");
        let (sd, _) = systemd(RecordingRunner::default().answer(&["_PID=1"], true, &export::from_json_lines(&journal)));
        let current = RunId::parse(RUN_B).expect("run");
        let runs = sd.runs(&job("ci-test-a"), 10, Some(&current)).expect("runs");
        let ids: Vec<&str> = runs.iter().map(|r| r.run.as_str()).collect();
        assert_eq!(ids, [RUN_B, RUN_A]);
    }

    fn own(message: &str, run: Option<&str>, pid: u32) -> String {
        let run = run.map(|r| format!(r#","_SYSTEMD_INVOCATION_ID":"{r}""#)).unwrap_or_default();
        format!(
            r#"{{"MESSAGE":"{message}","_SYSTEMD_UNIT":"ci-test-a.service","_PID":"{pid}","__CURSOR":"s=1;i={pid}"{run}}}"#
        )
    }

    #[test]
    fn last_lines_from_the_end_of_a_long_run() {
        let line = |message: &str, run: Option<&str>, pid: u32, secs: u64| {
            let run = run.map(|r| format!(r#","_SYSTEMD_INVOCATION_ID":"{r}""#)).unwrap_or_default();
            format!(
                r#"{{"MESSAGE":"{message}","_SYSTEMD_UNIT":"ci-test-a.service","_PID":"{pid}","__CURSOR":"s=1;i={secs}","__REALTIME_TIMESTAMP":"{}"{run}}}"#,
                secs * 1_000_000
            )
        };
        // Newest first, as `journalctl -r` gives them; run B began at 1 s.
        let newest_first = [
            line("b: 3, untagged", None, 20, 12),
            line("a stray line of run A", Some(RUN_A), 10, 11),
            line("a: untagged, by A's writer", None, 10, 10),
            line("b: 2", Some(RUN_B), 20, 9),
            line("b: 1", Some(RUN_B), 20, 8),
            line("b: 0, near the start", Some(RUN_B), 20, 2),
        ]
        .join("\n");
        let runner = RecordingRunner::default().answer(&["-r", "--all"], true, &export::from_json_lines(&newest_first));
        let (sd, runner) = systemd(runner);
        let run = Run {
            run: RunId::parse(RUN_B).expect("run"),
            start: Cursor::parse("s=1;i=1").expect("cursor"),
            previous: None,
            next: None,
            started: 1_000_000,
            finished: None,
            result: None,
            exit_status: None,
        };
        let last = |n: u32| sd.last_lines_from_end(&job("ci-test-a"), &run, n as usize).expect("read");
        assert_eq!(last(2), Some(vec!["b: 2".to_string(), "b: 3, untagged".into()]));
        assert_eq!(last(3).map(|l| l.len()), Some(3));
        assert_eq!(last(4), None, "the next line is within a second of the start: read forward");
        assert!(runner.recorded().iter().any(|argv| argv.contains(&"-r".to_string())));
    }

    #[test]
    fn run_output_by_position_and_writer() {
        // Run A (pid 10) was before; run B (pid 20) is read. journald stored
        // A's last lines after A ended, even after B's "Starting", and most
        // lines untagged, as it does with fast jobs.
        let journal = [
            own("a: first", Some(RUN_A), 10),
            own("a: second, untagged", None, 10),
            manager(RUN_A, message_ids::DEACTIVATED, 3, ""),
            own("a: late, untagged", None, 10),
            manager(RUN_B, message_ids::STARTING, 5, ""),
            own("a: later still, untagged", None, 10),
            own("b: first, untagged", None, 20),
            own("b: tagged", Some(RUN_B), 20),
            format!(r#"{{"MESSAGE":"other unit","_SYSTEMD_UNIT":"ssh.service","_SYSTEMD_INVOCATION_ID":"{RUN_B}"}}"#),
            own("b: last, untagged", None, 20),
            manager(RUN_B, message_ids::DEACTIVATED, 7, ""),
            manager(RUN_B, message_ids::STARTING, 9, ""),
            own("the next run's", None, 30),
        ]
        .join("\n");
        let journal = export::from_json_lines(&journal);
        let (sd, runner) = systemd(RecordingRunner::default().answer(&["--after-cursor=s=1;i=0"], true, &journal));
        let run = Run {
            run: RunId::parse(RUN_B).expect("run"),
            start: Cursor::parse("s=1;i=5").expect("cursor"),
            previous: Cursor::parse("s=1;i=0"),
            next: Cursor::parse("s=1;i=9"),
            started: 0,
            finished: None,
            result: None,
            exit_status: None,
        };
        let tail = sd.tail(&job("ci-test-a"), &run, None).expect("tail");
        assert_eq!(tail.lines, ["b: first, untagged", "b: tagged", "b: last, untagged"]);
        // A cursor from before the run reads from the previous run's start.
        let old = Cursor::parse("s=0;i=9").expect("cursor");
        assert_eq!(sd.tail(&job("ci-test-a"), &run, Some(&old)).expect("tail").lines.len(), 3);
        assert!(runner.recorded().iter().all(|argv| argv.contains(&"--after-cursor=s=1;i=0".to_string())));
    }
}
