//! Issue 22: the shipped example jobs run unprivileged. The prefix drop-in
//! `contrib/systemd/ci-test-.service.d/` (installed in setup, as an
//! operator installs it) gives every job a dynamic user and the rest of its
//! safe defaults: a job running as root could forge the service manager's
//! journal messages, and do anything else on the host.

use serde_json::Value;

use super::World;
use crate::Test;

pub const TESTS: &[Test] = &[
    ("the_shipped_jobs_run_as_a_dynamic_user", the_shipped_jobs_run_as_a_dynamic_user),
    ("systemd_analyze_security_rates_the_shipped_jobs_low", systemd_analyze_security_rates_the_shipped_jobs_low),
];

/// The shipped jobs, a template as one of its instances.
const SHIPPED_JOBS: &[&str] = &["ci-test-hello", "ci-test-fail", "ci-test-deploy@main"];

/// The highest `systemd-analyze security` exposure accepted for a shipped
/// job (9.6 "UNSAFE" without the drop-in, 1.2 with it on systemd 252).
const MAX_EXPOSURE: f64 = 5.0;

/// Each shipped job's run ran as a dynamic user: systemd says so, and every
/// line of its stdout and stderr was written by a uid other than 0.
fn the_shipped_jobs_run_as_a_dynamic_user(w: &World) {
    for job in SHIPPED_JOBS {
        let unit = format!("{job}.service");
        let dynamic = w.sb.sh_ok(&format!("systemctl show -P DynamicUser -- {unit}"));
        assert_eq!(dynamic.trim(), "yes", "{unit}: DynamicUser");
        let state = w.run_to_end(job);
        let run = state["run"].as_str().unwrap_or_else(|| panic!("{job}: a run: {state}"));
        let entries = w.sb.sh_ok(&format!(
            "journalctl -q --no-pager -o json --output-fields=_UID,MESSAGE _SYSTEMD_UNIT={unit} \
             _SYSTEMD_INVOCATION_ID={run} _TRANSPORT=stdout"
        ));
        let uids: Vec<String> = entries
            .lines()
            .map(|line| {
                let entry: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{job}: {e}: {line}"));
                entry["_UID"].as_str().unwrap_or_else(|| panic!("{job}: no _UID: {line}")).to_string()
            })
            .collect();
        assert!(!uids.is_empty(), "{job}: run {run} wrote lines");
        assert!(uids.iter().all(|uid| uid != "0"), "{job}: run {run} ran as root: {uids:?}\n{entries}");
    }
}

/// `systemd-analyze security` of each shipped job, as the sandbox's
/// systemd has loaded it (the unit and the drop-in), is below MAX_EXPOSURE.
fn systemd_analyze_security_rates_the_shipped_jobs_low(w: &World) {
    for job in SHIPPED_JOBS {
        let unit = format!("{job}.service");
        let report = w.sb.sh_ok(&format!("systemd-analyze security --no-pager -- {unit}"));
        let exposure =
            overall_exposure(&report, &unit).unwrap_or_else(|| panic!("{unit}: no overall level:\n{report}"));
        assert!(exposure < MAX_EXPOSURE, "{unit}: exposure {exposure} (at most {MAX_EXPOSURE}):\n{report}");
    }
}

/// The number of `→ Overall exposure level for UNIT: 1.2 OK 🙂`.
fn overall_exposure(report: &str, unit: &str) -> Option<f64> {
    let prefix = format!("Overall exposure level for {unit}: ");
    report.lines().find_map(|line| {
        let rest = &line[line.find(&prefix)? + prefix.len()..];
        rest.split_whitespace().next()?.parse().ok()
    })
}
