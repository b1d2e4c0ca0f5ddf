//! The jobgate operations on units (jobs, start, stop, state), and the
//! run questions that need the unit's state (which run, how it ended), on
//! validated names through a [`Runner`]. Which lines are a run's is
//! decided in `runs`. Shared by the HTTP core and the admin CLI; knows
//! nothing of HTTP or tokens.
#![forbid(unsafe_code)]

mod reads;

use std::collections::HashSet;
use std::fmt;
use std::io;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::journal::{self, Entries};
use crate::names::{JobName, Prefix, RunId, RunSelector, UnitName};
use crate::redact::Redactions;
use crate::runs::{now_us, Run, Runs, Wanted};
use crate::systemd::argv::{Call, Probe, Tools};
use crate::systemd::bus::SystemBus;
use crate::systemd::parse::{self, Listing, UnitState};
use crate::systemd::run::{program_name, Output, Runner};
pub use reads::{RunLogs, RunTail, TAIL_HOLD};

/// How long `start` waits to see the run it began.
pub const START_WAIT: Duration = Duration::from_secs(3);
/// Most runs one `runs` answer lists.
pub const MAX_RUNS: usize = 100;

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

/// The jobs under one prefix: their units, through the runner, and their
/// runs, through [`Runs`].
pub struct Jobs {
    prefix: Prefix,
    tools: Tools,
    runner: Arc<dyn Runner>,
    runs: Runs,
    /// The jobs whose unit held no run when last asked.
    unloaded: Unloaded,
    /// Where `start` takes a lock per job (see [`Jobs::with_start_locks`]).
    start_locks: Option<std::path::PathBuf>,
    /// Where unit state and jobs are read first (see [`Jobs::with_bus`]).
    bus: Option<SystemBus>,
}

/// Which jobs' units held no run (finished, unloaded) when last asked: a
/// guess for the next `state`, kept for a bounded number of jobs.
#[derive(Default)]
struct Unloaded(Mutex<HashSet<String>>);

impl Unloaded {
    /// Most jobs remembered; past it the memory starts again.
    const MAX_JOBS: usize = 4096;

    fn guess(&self, job: &JobName) -> bool {
        self.0.lock().is_ok_and(|set| set.contains(job.as_str()))
    }

    fn note(&self, job: &JobName, unloaded: bool) {
        let Ok(mut set) = self.0.lock() else { return };
        if !unloaded {
            set.remove(job.as_str());
            return;
        }
        if set.len() >= Self::MAX_JOBS {
            set.clear();
        }
        set.insert(job.as_str().to_string());
    }
}

impl Jobs {
    /// Jobs whose runs are read from the journal as `tools` say.
    pub fn new(prefix: Prefix, tools: Tools, runner: Arc<dyn Runner>) -> Jobs {
        let runs = Runs::new(journal::system(&tools, &runner), Redactions::default());
        Jobs { prefix, tools, runner, runs, unloaded: Unloaded::default(), start_locks: None, bus: None }
    }

    /// The same jobs with `redactions` applied to every line shown.
    pub fn with_redactions(self, redactions: Redactions) -> Jobs {
        Jobs { runs: self.runs.with_redactions(redactions), ..self }
    }

    /// The same jobs, with `start` holding a lock file per job under `dir`
    /// from its check to the new run: of concurrent starts of an idle job,
    /// in one process or several, exactly one starts it.
    pub fn with_start_locks(self, dir: std::path::PathBuf) -> Jobs {
        Jobs { start_locks: Some(dir), ..self }
    }

    /// The same jobs, with unit state and the list of jobs read over `bus`,
    /// and through systemctl only when the bus cannot say.
    pub fn with_bus(self, bus: SystemBus) -> Jobs {
        Jobs { bus: Some(bus), ..self }
    }

    /// The bus state and jobs are read over, if any.
    pub fn bus(&self) -> Option<&SystemBus> {
        self.bus.as_ref()
    }

    fn call(&self, call: Call) -> Result<Output, OpError> {
        let argv = call.argv(&self.tools);
        self.runner.call(&argv).map_err(|e| OpError::Failed(format!("{}: {e}", program_name(&argv))))
    }

    /// The unit's state, over the bus if it answers, else from `systemctl
    /// show`; [`OpError::UnknownJob`] if systemd has no such unit.
    pub fn state(&self, job: &JobName) -> Result<UnitState, OpError> {
        let unit = job.unit();
        let state = match self.bus.as_ref().and_then(|bus| bus.unit_state(&unit)) {
            Some(state) => state,
            None => self.show(&unit)?,
        };
        if !state.loaded {
            return Err(OpError::UnknownJob);
        }
        Ok(state)
    }

    fn show(&self, unit: &UnitName) -> Result<UnitState, OpError> {
        let out = self.call(Call::Show(unit))?;
        if !out.success {
            return Err(failure("systemctl show", &out));
        }
        Ok(parse::unit_state(&out.stdout))
    }

    /// The state as a person means it: when systemd holds no run for the
    /// unit (a finished unit is unloaded and forgets its last run), the
    /// run, times, result and exit status of the journal's last run.
    ///
    /// Where the unit held no run the last time it was asked, the journal
    /// read begins at once, beside `systemctl show` (a polled finished job
    /// then costs no more than the one call); the guess is wrong at most
    /// once per change.
    pub fn state_with_last_run(&self, job: &JobName) -> Result<UnitState, OpError> {
        let early = self.unloaded.guess(job).then(|| self.runs.events(job).ok()).flatten();
        let mut state = self.state(job)?;
        let unloaded = state.run.is_none() && !state.is_running();
        self.unloaded.note(job, unloaded);
        if unloaded {
            let last = self.journal_last_run(job, early).map_err(|e| journal_failure(job, e))?;
            let mut runs: Vec<Run> = last.into_iter().collect();
            self.confirm(&mut runs, &state);
            if let Some(last) = runs.pop() {
                state.run = Some(last.run);
                state.started = Some(last.started / 1_000_000);
                state.finished = last.finished.map(|f| f / 1_000_000);
                state.result = last.result.unwrap_or(state.result);
                state.exit_status = last.exit_status;
            }
        } else if state.run_over() {
            // Said to have ended only once its lines are in.
            self.runs.lines_in(state.finished.map_or_else(now_us, |s| s * 1_000_000));
        }
        Ok(state)
    }

    /// Starts the job and returns the run it began, once systemd shows it
    /// (within [`START_WAIT`]; `None` if it has not begun by then, e.g.
    /// while it waits for another unit). Refused while the job is running.
    pub fn start(&self, job: &JobName) -> Result<Option<RunId>, OpError> {
        let _lock = self.start_lock(job)?;
        let state = self.state(job)?;
        if state.is_running() {
            return Err(OpError::AlreadyActive);
        }
        // The run before has its lines in (find_run waits for them) before
        // the next begins: none of them is stored after the new run's start.
        let before = self.find_run(job, &RunSelector::Last)?.map(|r| r.run);
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
                if let Ok(Some(last)) = self.journal_last_run(job, None) {
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

    /// The journal's newest run of `job`, named by its messages alone,
    /// from `events` if that read has begun already.
    fn journal_last_run(&self, job: &JobName, events: Option<Entries>) -> io::Result<Option<Run>> {
        let events = match events {
            Some(events) => events,
            None => self.runs.events(job)?,
        };
        Ok(self.runs.history_from(events, Wanted { limit: 1, only: None }, &mut || None)?.pop())
    }

    fn start_lock(&self, job: &JobName) -> Result<Option<std::fs::File>, OpError> {
        let Some(dir) = &self.start_locks else { return Ok(None) };
        let locked =
            std::fs::create_dir_all(dir).and_then(|()| crate::secure_file::lock_beside(&dir.join(job.as_str())));
        locked.map(Some).map_err(|e| OpError::Failed(format!("locking the start of {job} in {}: {e}", dir.display())))
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
    /// Listed over the bus if it answers, else by `systemctl list-units`
    /// and `list-unit-files`.
    pub fn jobs(&self) -> Result<Vec<JobSummary>, OpError> {
        let listing = match self.bus.as_ref().and_then(|bus| bus.listed_jobs(&self.prefix)) {
            Some(listing) => listing,
            None => self.list_by_systemctl()?,
        };
        Ok(summaries(listing))
    }

    fn list_by_systemctl(&self) -> Result<Listing, OpError> {
        let files = self.listing(Call::ListUnitFiles(&self.prefix), "systemctl list-unit-files")?;
        let units = self.listing(Call::ListUnits(&self.prefix), "systemctl list-units")?;
        Ok(parse::listing(&self.prefix, &units, &files))
    }

    /// Whether jobgate can do its reads: the service manager answers (over
    /// the bus, as state is read, else through `systemctl show`) and the
    /// journal can be opened; what reads the journal, in a line. The
    /// reason, if not, is short and fixed (for an unauthenticated client);
    /// the detail goes to the log.
    pub fn health(&self) -> Result<String, &'static str> {
        let works = |call: Call, what: &str| match self.call(call) {
            Ok(out) if out.success => true,
            Ok(out) => {
                log::warn!("health: {}", failure(what, &out));
                false
            }
            Err(e) => {
                log::warn!("health: {e}");
                false
            }
        };
        let over_bus = self.bus.as_ref().is_some_and(|bus| bus.probe().is_ok());
        if !over_bus && !works(Call::ManagerVersion, "systemctl show") {
            return Err("The service manager does not answer");
        }
        self.journal_probe().map_err(|e| {
            log::warn!("health: {e}");
            "The journal cannot be read"
        })
    }

    /// Whether the journal can be read, and what reads it, in a line.
    pub fn journal_probe(&self) -> io::Result<String> {
        self.runs.journal().probe()
    }

    /// Whether `job`'s runs can be read as every read makes it (for
    /// `check`: group membership is not enough where the journal's
    /// directory does not let the group in).
    pub fn journal_readable(&self, job: &JobName) -> io::Result<()> {
        self.runs.history(job, Wanted { limit: 1, only: None }, &mut || None).map(drop)
    }

    /// Waits until the lines of a run that ended at `finished` (µs since
    /// the epoch) are in the journal; see `runs::lines::lines_in`.
    pub fn lines_in(&self, finished: u64) -> bool {
        self.runs.lines_in(finished)
    }

    /// The prefix every job's unit name has.
    pub fn prefix(&self) -> &Prefix {
        &self.prefix
    }

    /// The programs run, and how.
    pub fn tools(&self) -> &Tools {
        &self.tools
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

    /// The newest `limit` runs, newest first, as the manager confirms them
    /// ([`Jobs::confirm`]).
    pub fn runs(&self, job: &JobName, limit: usize) -> Result<Vec<Run>, OpError> {
        let (mut runs, state) = self.runs_and_state(job, Wanted { limit, only: None })?;
        let missing = state.run.as_ref().filter(|c| !runs.is_empty() && !runs.iter().any(|r| r.run == **c));
        if let Some(current) = missing {
            // The manager's run is not among them: the newer ones are forged.
            if let Some(run) = self.run_by_id(job, current, &state)? {
                runs.insert(0, run);
            }
        }
        self.confirm(&mut runs, &state);
        Ok(runs)
    }

    /// The run a request means: the newest one (the current one while the
    /// unit is active), or one by id; as the manager confirms it
    /// ([`Jobs::confirm`]).
    pub fn find_run(&self, job: &JobName, which: &RunSelector) -> Result<Option<Run>, OpError> {
        let only = match which {
            RunSelector::Last => None,
            RunSelector::Id(id) => Some(id),
        };
        let (mut runs, state) = self.runs_and_state(job, Wanted { limit: 1, only })?;
        let other = state.run.as_ref().filter(|c| only.is_none() && runs.first().is_some_and(|r| r.run != **c));
        if let Some(current) = other {
            // The journal's newest run is not the manager's: where the
            // manager's is in the journal, the newer ones are forged.
            if let Some(theirs) = self.run_by_id(job, current, &state)? {
                runs = vec![theirs];
            }
        }
        self.confirm(&mut runs, &state);
        Ok(runs.pop())
    }

    /// The one place a run's end and result are decided. The journal's
    /// runs come from the manager's messages, which a job running as root
    /// can forge; the manager's own word (`state`: its current invocation,
    /// active state, result, exit status) is what counts wherever it
    /// remembers the run:
    ///
    /// - a run the journal shows after the manager's current one never
    ///   began (it is dropped), and none has begun since the current one;
    /// - the current run has ended only once the manager says so
    ///   ([`UnitState::run_over`]), with the manager's result and exit
    ///   status;
    /// - a run the manager has forgotten (an older one, or the unit's last
    ///   once the unit is unloaded) is as the journal records it, except
    ///   that none is going on while the unit runs nothing.
    ///
    /// A newest run that has ended is given only once its lines are in
    /// ([`Runs::lines_in`]). `runs` is newest first.
    pub fn confirm(&self, runs: &mut Vec<Run>, state: &UnitState) {
        let current = state.run.as_ref().and_then(|c| runs.iter().position(|r| r.run == *c));
        if let Some(at) = current {
            if at > 0 {
                log::warn!("the journal shows {at} run(s) after the manager's current one: not runs, left out");
                runs.drain(..at);
            }
            let run = &mut runs[0];
            run.current = true;
            run.next = None;
            if state.run_over() {
                let exited = state.finished.map(|s| s * 1_000_000);
                // The end message's time (to the microsecond) where it is in
                // the second the manager says the main process exited in,
                // else the exit's: a job running as root can send end
                // messages for another job's run later.
                run.finished = match (run.finished, exited) {
                    (Some(logged), Some(exited)) if logged / 1_000_000 == exited / 1_000_000 => Some(logged),
                    (logged, exited) => exited.or(logged).or_else(|| Some(now_us())),
                };
                run.result = Some(state.result.clone());
                run.exit_status = state.exit_status;
            } else {
                (run.finished, run.result, run.exit_status) = (None, None, None);
            }
        } else if state.run.is_none() && !state.is_running() {
            // The manager holds no run: none is going on.
            if let Some(newest) = runs.first_mut().filter(|r| r.finished.is_none()) {
                newest.finished = Some(newest.started);
            }
        }
        if let Some(finished) = runs.first().and_then(|r| r.finished) {
            self.runs.lines_in(finished);
        }
    }

    /// The journal's runs that `wanted` names, and the unit's state (one
    /// question to the manager; the journal's read begins first, and goes on
    /// meanwhile); [`OpError::UnknownJob`] if systemd has no such unit.
    fn runs_and_state(&self, job: &JobName, wanted: Wanted<'_>) -> Result<(Vec<Run>, UnitState), OpError> {
        let events = self.runs.events(job).map_err(|e| journal_failure(job, e))?;
        let state = self.state(job)?;
        let runs = self.runs.history_from(events, wanted, &mut || state.run.clone());
        Ok((runs.map_err(|e| journal_failure(job, e))?, state))
    }

    /// The journal's run `id`.
    fn run_by_id(&self, job: &JobName, id: &RunId, state: &UnitState) -> Result<Option<Run>, OpError> {
        let runs = self.runs.history(job, Wanted { limit: 1, only: Some(id) }, &mut || state.run.clone());
        Ok(runs.map_err(|e| journal_failure(job, e))?.pop())
    }
}

/// The jobs of a listing, by name: each loaded unit with its state, and
/// each unit file not loaded as `inactive`.
fn summaries(listing: Listing) -> Vec<JobSummary> {
    let mut jobs: Vec<JobSummary> = listing
        .units
        .into_iter()
        .map(|(job, state)| JobSummary { job, state: state.unwrap_or_else(|| "unknown".into()) })
        .collect();
    for job in listing.files {
        if !jobs.iter().any(|j| j.job == job) {
            jobs.push(JobSummary { job, state: "inactive".into() });
        }
    }
    jobs.sort_by(|a, b| a.job.cmp(&b.job));
    jobs
}

fn failure(what: &str, out: &Output) -> OpError {
    let stderr = String::from_utf8_lossy(&out.stderr);
    OpError::Failed(format!("{what} failed: {}", stderr.trim()))
}

/// A failed journal read of `job`, for the log.
pub fn journal_failure(job: &JobName, e: io::Error) -> OpError {
    OpError::Failed(format!("reading the journal of {}: {e}", job.unit()))
}

/// Tools that read the journal through journalctl only: for tests whose
/// fake runner plays journalctl.
#[cfg(test)]
pub fn journalctl_tools() -> Tools {
    Tools { journal_reader: crate::systemd::argv::JournalReader::Journalctl, ..Tools::default() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::systemd::run::RecordingRunner;

    const RUN_B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    fn jobs(runner: RecordingRunner) -> (Jobs, Arc<RecordingRunner>) {
        let runner = Arc::new(runner);
        let prefix = Prefix::parse("ci-test-").expect("prefix");
        (Jobs::new(prefix, journalctl_tools(), runner.clone()), runner)
    }

    fn job(name: &str) -> JobName {
        JobName::parse(&Prefix::parse("ci-test-").expect("prefix"), name).expect("job")
    }

    #[test]
    fn no_matching_unit_is_an_empty_list() {
        // systemctl list-unit-files exits 1, silently, when nothing matches.
        let (jobs, _) = jobs(RecordingRunner::default().answer(&["list-unit-files"], false, ""));
        assert_eq!(jobs.jobs().expect("an empty list"), []);
    }

    #[test]
    fn start_refuses_an_active_job_without_calling_sudo() {
        let (jobs, runner) =
            jobs(RecordingRunner::default().answer(&["show"], true, "LoadState=loaded\nActiveState=activating\n"));
        assert!(matches!(jobs.start(&job("ci-test-a")), Err(OpError::AlreadyActive)));
        assert!(runner.recorded().iter().all(|argv| !argv.contains(&"start".to_string())));
    }

    #[test]
    fn start_of_an_unknown_unit_runs_nothing_privileged() {
        let (jobs, runner) = jobs(RecordingRunner::default().answer(&["show"], true, "LoadState=not-found\n"));
        assert!(matches!(jobs.start(&job("ci-test-a")), Err(OpError::UnknownJob)));
        assert_eq!(runner.recorded().len(), 1);
    }

    #[test]
    fn start_runs_exactly_one_sudo_call_and_names_the_new_run() {
        let show = format!("LoadState=loaded\nActiveState=inactive\nInvocationID={RUN_B}\n");
        let (jobs, runner) = jobs(RecordingRunner::default().answer(&["show"], true, &show));
        assert_eq!(jobs.start(&job("ci-test-a")).expect("started").map(|r| r.to_string()), Some(RUN_B.to_string()));
        let sudo: Vec<_> = runner.recorded().into_iter().filter(|argv| argv[0] == "/usr/bin/sudo").collect();
        assert_eq!(
            sudo,
            [["/usr/bin/sudo", "-n", "/usr/bin/systemctl", "start", "--no-block", "--", "ci-test-a.service"]]
        );
    }

    #[test]
    fn state_falls_back_to_systemctl_show_when_the_bus_does_not_answer() {
        let show = format!("LoadState=loaded\nActiveState=active\nInvocationID={RUN_B}\n");
        let (jobs, runner) = jobs(RecordingRunner::default().answer(&["show"], true, &show));
        let nowhere = std::env::temp_dir().join(format!("jobgate-no-bus-{}", std::process::id()));
        let jobs = jobs.with_bus(SystemBus::at(nowhere));
        for _ in 0..2 {
            let state = jobs.state(&job("ci-test-a")).expect("state through systemctl show");
            assert_eq!(state.run.map(|r| r.to_string()), Some(RUN_B.to_string()));
        }
        assert_eq!(runner.recorded().len(), 2, "one systemctl show per request");
    }

    #[test]
    fn jobs_over_the_bus_run_no_systemctl() {
        fn lists(call: &crate::systemd::bus::wire::Message) -> Vec<Vec<u8>> {
            use crate::systemd::bus::wire::build::reply;
            let listing = match call.member {
                Some("ListUnitsByPatterns") => reply(call.serial, "a(ssssssouso)", |w| {
                    w.array(8, |w| {
                        w.pad(8);
                        for s in ["ci-test-b@x.service", "B", "loaded", "failed", "failed", "", "/x"] {
                            w.string(s);
                        }
                        w.u32(0);
                        w.string("");
                        w.string("/");
                    })
                }),
                _ => reply(call.serial, "a(ss)", |w| {
                    w.array(8, |w| {
                        for path in ["/etc/systemd/system/ci-test-a.service", "/etc/systemd/system/ci-test-b@.service"]
                        {
                            w.pad(8);
                            w.string(path);
                            w.string("static");
                        }
                    })
                }),
            };
            vec![listing]
        }
        let fake = crate::systemd::bus::fake::FakeBus::start(1, lists);
        let (jobs, runner) = jobs(RecordingRunner::default());
        let jobs = jobs.with_bus(fake.bus());
        let listed: Vec<(String, String)> =
            jobs.jobs().expect("jobs").into_iter().map(|j| (j.job.to_string(), j.state)).collect();
        assert_eq!(
            listed,
            [("ci-test-a".to_string(), "inactive".to_string()), ("ci-test-b@x".into(), "failed".into())]
        );
        assert_eq!(runner.recorded(), Vec::<Vec<String>>::new());
    }

    #[test]
    fn jobs_fall_back_to_systemctl_when_the_bus_does_not_answer() {
        let runner = RecordingRunner::default()
            .answer(&["list-unit-files"], true, "ci-test-a.service static -\nci-test-b@.service static -\n")
            .answer(&["list-units"], true, "ci-test-b@x.service loaded failed failed B\n");
        let (jobs, runner) = jobs(runner);
        let nowhere = std::env::temp_dir().join(format!("jobgate-no-bus-{}", std::process::id()));
        let jobs = jobs.with_bus(SystemBus::at(nowhere));
        let listed: Vec<(String, String)> =
            jobs.jobs().expect("jobs").into_iter().map(|j| (j.job.to_string(), j.state)).collect();
        assert_eq!(
            listed,
            [("ci-test-a".to_string(), "inactive".to_string()), ("ci-test-b@x".into(), "failed".into())]
        );
        assert_eq!(runner.recorded().len(), 2, "list-unit-files and list-units");
    }

    #[test]
    fn a_job_without_runs_is_known_or_unknown_by_its_unit() {
        let (jobs, _) = jobs(RecordingRunner::default().answer(&["show"], true, "LoadState=loaded\n"));
        assert!(jobs.find_run(&job("ci-test-a"), &RunSelector::Last).expect("no run").is_none());
        let (jobs, _) = self::jobs(RecordingRunner::default().answer(&["show"], true, "LoadState=not-found\n"));
        assert!(matches!(jobs.find_run(&job("ci-test-a"), &RunSelector::Last), Err(OpError::UnknownJob)));
    }
}
