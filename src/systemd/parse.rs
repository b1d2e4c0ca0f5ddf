//! Parsing what `systemctl` prints into typed values. Pure
//! over bytes: no I/O, so it is unit-tested and fuzzed directly.
#![forbid(unsafe_code)]

use crate::names::{JobName, Prefix, RunId};

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

    #[test]
    fn timestamps() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1795394165), "2026-11-23T00:36:05Z");
        assert_eq!(rfc3339(951782400), "2000-02-29T00:00:00Z");
    }
}
