//! Issue 12: unit state and the list of jobs over the system bus, with
//! `systemctl show`, `list-units` and `list-unit-files` as the fallback.
//! The state served over the bus equals the one read through `systemctl
//! show` for every kind of unit, and the jobs listed over it those listed
//! through systemctl; neither needs systemctl at all while the bus is up;
//! and when the bus goes away both are read through systemctl, until the
//! bus is back and used again.

use std::time::Duration;

use serde_json::Value;

use super::client::get;
use super::{now_us, wait_until, World, BIN, STATE, TOKENS, USER};
use crate::Test;

pub const TESTS: &[Test] = &[
    ("bus_state_equals_systemctl_show_for_every_kind_of_unit", bus_state_equals_systemctl_show_for_every_kind_of_unit),
    ("bus_state_needs_no_systemctl", bus_state_needs_no_systemctl),
    ("bus_jobs_equal_systemctl_listings", bus_jobs_equal_systemctl_listings),
    ("bus_jobs_need_no_systemctl", bus_jobs_need_no_systemctl),
    ("bus_stopped_then_started_falls_back_then_reconnects", bus_stopped_then_started_falls_back_then_reconnects),
];

/// A D-Bus address with no bus behind it: a jobgate given it reads every
/// state through systemctl (whose environment jobgate clears).
const NO_BUS: &str = "DBUS_SYSTEM_BUS_ADDRESS=unix:path=/run/jobgate-test/no-bus";
/// What jobgate logs when it turns to systemctl, once per failure streak.
const FALLBACK_LINE: &str = "asking systemctl instead";

const UNITS: &[(&str, &str)] = &[
    ("ci-test-bus-active", "[Service]\nExecStart=/bin/sleep infinity\n"),
    ("ci-test-bus-done", "[Service]\nType=oneshot\nExecStart=/bin/echo done\n"),
    ("ci-test-bus-failed", "[Service]\nType=oneshot\nExecStart=/bin/sh -c 'echo failing; exit 3'\n"),
    ("ci-test-bus-remain", "[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=/bin/echo remains\n"),
    ("ci-test-bus-never", "[Service]\nType=oneshot\nExecStart=/bin/echo never\n"),
];

/// Installs the units above once and brings each into its state: running,
/// finished (and unloaded), failed, exited but active, never run; and a
/// finished template instance. The jobs, in that order.
fn units(w: &World) -> Vec<&'static str> {
    if w.sb.sh("systemctl cat ci-test-bus-active.service").status.success() {
        return jobs();
    }
    for (job, text) in UNITS {
        w.sb.install_unit(&format!("{job}.service"), text);
    }
    w.sb.sh_ok("systemctl start ci-test-bus-active ci-test-bus-remain ci-test-bus-done");
    let _ = w.sb.sh("systemctl start ci-test-bus-failed");
    w.run_to_end("ci-test-deploy@bus");
    jobs()
}

fn jobs() -> Vec<&'static str> {
    let mut jobs: Vec<&str> = UNITS.iter().map(|(job, _)| *job).collect();
    jobs.push("ci-test-deploy@bus");
    jobs
}

/// `jobgate --json ARGS… state JOB` as the service user, with `env` set:
/// its answer (Null if it failed) and its log.
fn cli_state(w: &World, env: &[&str], args: &[&str], job: &str) -> (Value, String) {
    let out =
        w.sb.command_as(USER, "/usr/bin/env")
            .args(env)
            .args([BIN, "--tokens", TOKENS, "--state-dir", STATE, "--json"])
            .args(args)
            .args(["state", job])
            .output()
            .expect("run jobgate");
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    let answer = if out.status.success() { serde_json::from_slice(&out.stdout).expect("JSON") } else { Value::Null };
    (answer, log)
}

/// `systemctl show`'s properties of `job`'s unit, as the service user.
fn show(w: &World, job: &str) -> Value {
    let out =
        w.sb.command_as(USER, "/usr/bin/systemctl")
            .args(["show", "-p", "ActiveState,SubState,InvocationID", "--", &format!("{job}.service")])
            .output()
            .expect("systemctl show");
    let text = String::from_utf8_lossy(&out.stdout);
    let props: serde_json::Map<String, Value> = text
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
        .collect();
    Value::Object(props)
}

fn serve_log_since(w: &World, unit: &str, since_us: u64) -> String {
    w.sb.sh_ok(&format!(
        "journalctl --no-pager -o cat -u {unit} --since @{}.{:06}",
        since_us / 1_000_000,
        since_us % 1_000_000
    ))
}

fn bus_state_equals_systemctl_show_for_every_kind_of_unit(w: &World) {
    let since = now_us();
    for job in units(w) {
        let served = w.state(job);
        let (through_systemctl, log) = cli_state(w, &[NO_BUS], &[], job);
        assert!(log.contains(FALLBACK_LINE), "the CLI read {job} through systemctl: {log}");
        assert_eq!(served, through_systemctl, "{job}: over the bus, then through systemctl show");
        let shown = show(w, job);
        assert_eq!((&served["state"], &served["sub_state"]), (&shown["ActiveState"], &shown["SubState"]), "{job}");
        if shown["InvocationID"] != "" {
            assert_eq!(served["run"], shown["InvocationID"], "{job}");
        }
    }
    let expected = [
        ("ci-test-bus-active", "active", "running"),
        ("ci-test-bus-done", "inactive", "dead"),
        ("ci-test-bus-failed", "failed", "failed"),
        ("ci-test-bus-remain", "active", "exited"),
        ("ci-test-bus-never", "inactive", "dead"),
        ("ci-test-deploy@bus", "inactive", "dead"),
    ];
    for (job, state, sub_state) in expected {
        let served = w.state(job);
        assert_eq!((served["state"].as_str(), served["sub_state"].as_str()), (Some(state), Some(sub_state)), "{job}");
    }
    assert_eq!(w.state("ci-test-bus-failed")["exit_status"], 3);
    assert!(w.state("ci-test-bus-done")["run"].is_string(), "a finished unit's last run, from the journal");
    let unknown = w.get("/api/job/ci-test-bus-nosuch/state");
    assert_eq!(unknown.status, 404, "{}", unknown.body);
    assert_eq!(cli_state(w, &[NO_BUS], &[], "ci-test-bus-nosuch").0, Value::Null);
    let log = serve_log_since(w, "jobgate-test", since);
    assert!(!log.contains(FALLBACK_LINE), "serve read every state over the bus: {log}");
}

fn bus_state_needs_no_systemctl(w: &World) {
    units(w);
    for job in ["ci-test-bus-active", "ci-test-bus-failed", "ci-test-bus-done"] {
        let served = w.state(job);
        for systemctl in ["/run/jobgate-test/no-such-systemctl", "/bin/false"] {
            let (answer, log) = cli_state(w, &[], &["--systemctl", systemctl], job);
            assert_eq!(answer, served, "{job} with --systemctl {systemctl}: {log}");
        }
        // Without the bus, the same command has nothing to read state with.
        let (answer, log) = cli_state(w, &[NO_BUS], &["--systemctl", "/bin/false"], job);
        assert_eq!(answer, Value::Null, "{job} without the bus and systemctl: {log}");
    }
    // `check` says which way state and jobs are read.
    for (env, says) in [
        ("RUST_LOG=warn", "ok   state and jobs are read over the system bus (/run/dbus/system_bus_socket)\n"),
        (NO_BUS, "ok   warning: the system bus (/run/jobgate-test/no-bus) does not answer"),
    ] {
        let out =
            w.sb.command_as(USER, "/usr/bin/env")
                .args([env, BIN, "--tokens", TOKENS, "check"])
                .output()
                .expect("check");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains(says), "{text}");
    }
}

/// A serve whose systemctl writes each call to a file before it runs.
/// As root: an unprivileged systemctl needs the bus too (only root's
/// reaches the manager without it, on its private socket), so only a
/// root jobgate still has a state to show while the bus is down.
const COUNTED: &str = "/run/jobgate-test/systemctl-counted";
const CALLS: &str = "/run/jobgate-test/systemctl-calls";

/// Starts the bus again, whatever happened, and stops the root serve.
struct Restore<'a>(&'a World);

impl Drop for Restore<'_> {
    fn drop(&mut self) {
        let _ = self.0.sb.sh("systemctl start dbus.socket dbus.service; systemctl stop jobgate-bus-root");
        let _ = self.0.sb.sh(&format!("rm -f {COUNTED} {CALLS}"));
    }
}

fn shows_so_far(w: &World) -> usize {
    calls_so_far(w, "show ")
}

/// The counted systemctl's calls so far whose arguments begin with `verb`.
fn calls_so_far(w: &World, verb: &str) -> usize {
    let calls = w.sb.sh(&format!("cat {CALLS} 2>/dev/null")).stdout;
    String::from_utf8_lossy(&calls).lines().filter(|l| l.starts_with(verb)).count()
}

/// A unit that wants one without a file: systemd keeps that one loaded
/// as `not-found`, and lists it among the units (issue 12's second part).
const WANTING: (&str, &str) =
    ("ci-test-bus-wanting", "[Unit]\nWants=ci-test-bus-ghost.service\n[Service]\nExecStart=/bin/sleep infinity\n");

/// The units of [`units`], and [`WANTING`] running.
fn listed_units(w: &World) {
    units(w);
    if !w.sb.sh(&format!("systemctl cat {}.service", WANTING.0)).status.success() {
        w.sb.install_unit(&format!("{}.service", WANTING.0), WANTING.1);
    }
    w.sb.sh_ok(&format!("systemctl start {}", WANTING.0));
}

/// `jobgate --json ARGS… jobs` as the service user, with `env` set: its
/// answer (Null if it failed) and its log.
fn cli_jobs(w: &World, env: &[&str], args: &[&str]) -> (Value, String) {
    let out =
        w.sb.command_as(USER, "/usr/bin/env")
            .args(env)
            .args([BIN, "--tokens", TOKENS, "--state-dir", STATE, "--json"])
            .args(args)
            .arg("jobs")
            .output()
            .expect("run jobgate");
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    let answer = if out.status.success() { serde_json::from_slice(&out.stdout).expect("JSON") } else { Value::Null };
    (answer, log)
}

/// The listed jobs with their states.
fn job_states(jobs: &Value) -> Vec<(String, String)> {
    let list = jobs["jobs"].as_array().map(Vec::as_slice).unwrap_or_default();
    list.iter()
        .map(|j| {
            (j["job"].as_str().unwrap_or_default().to_string(), j["state"].as_str().unwrap_or_default().to_string())
        })
        .collect()
}

/// The listed jobs of this file's units only: other tests' may change
/// state meanwhile.
fn own_jobs(jobs: &Value) -> Vec<(String, String)> {
    let mut jobs = job_states(jobs);
    jobs.retain(|(job, _)| job.starts_with("ci-test-bus-"));
    jobs
}

fn bus_jobs_equal_systemctl_listings(w: &World) {
    listed_units(w);
    let since = now_us();
    // Other tests' units may change state in between: the three are read
    // again until they are read while nothing changed.
    let mut last = (Value::Null, Value::Null, Value::Null);
    for _ in 0..5 {
        let (over_bus, log) = cli_jobs(w, &[], &[]);
        assert!(!log.contains(FALLBACK_LINE), "the CLI listed the jobs over the bus: {log}");
        let (through_systemctl, log) = cli_jobs(w, &[NO_BUS], &[]);
        assert!(log.contains(FALLBACK_LINE), "the CLI listed the jobs through systemctl: {log}");
        let served = w.get("/api/jobs");
        assert_eq!(served.status, 200, "{}", served.body);
        last = (over_bus, through_systemctl, served.json());
        if last.0 == last.1 && last.1 == last.2 {
            break;
        }
    }
    let (over_bus, through_systemctl, served) = last;
    assert_eq!(over_bus, through_systemctl, "over the bus, then through systemctl list-units and list-unit-files");
    assert_eq!(served, over_bus, "served over the bus, and by the CLI");

    let listed = job_states(&over_bus);
    let state_of = |job: &str| listed.iter().find(|(j, _)| j == job).map(|(_, state)| state.as_str());
    for (job, state) in [
        ("ci-test-bus-active", "active"),
        ("ci-test-bus-failed", "failed"),
        ("ci-test-bus-remain", "active"),
        ("ci-test-bus-never", "inactive"),
        ("ci-test-bus-wanting", "active"),
        // Loaded without a file: as systemctl list-units --all shows it.
        ("ci-test-bus-ghost", "inactive"),
    ] {
        assert_eq!(state_of(job), Some(state), "{job} in {listed:?}");
    }
    assert!(!listed.iter().any(|(j, _)| j.ends_with('@') || j == "noise"), "no template, no other unit: {listed:?}");
    let log = serve_log_since(w, "jobgate-test", since);
    assert!(!log.contains(FALLBACK_LINE), "serve listed the jobs over the bus: {log}");
}

fn bus_jobs_need_no_systemctl(w: &World) {
    listed_units(w);
    let (over_bus, log) = cli_jobs(w, &[], &[]);
    assert!(own_jobs(&over_bus).len() >= 7, "{over_bus} {log}");
    for systemctl in ["/run/jobgate-test/no-such-systemctl", "/bin/false"] {
        let (answer, log) = cli_jobs(w, &[], &["--systemctl", systemctl]);
        assert_eq!(own_jobs(&answer), own_jobs(&over_bus), "with --systemctl {systemctl}: {log}");
    }
    // Without the bus, the same command has nothing to list the jobs with
    // (and a systemctl that fails silently lists none: as one that finds
    // no unit file).
    let (answer, log) = cli_jobs(w, &[NO_BUS], &["--systemctl", "/run/jobgate-test/no-such-systemctl"]);
    assert_eq!(answer, Value::Null, "without the bus and systemctl: {log}");
    let (answer, log) = cli_jobs(w, &[NO_BUS], &["--systemctl", "/bin/false"]);
    assert_eq!(job_states(&answer), [], "without the bus, with a silent systemctl: {log}");
}

fn bus_stopped_then_started_falls_back_then_reconnects(w: &World) {
    units(w);
    let _restore = Restore(w);
    let script = format!("#!/bin/sh\necho \"$*\" >> {CALLS}\nexec /usr/bin/systemctl \"$@\"\n");
    w.sb.write_file(COUNTED, script.as_bytes(), 0o755, "root");
    let addr = format!("127.0.0.1:{}", super::free_port());
    let since = now_us();
    w.sb.sh_ok(&format!(
        "mkdir -p /run/jobgate-test/state-root && systemd-run --quiet --unit=jobgate-bus-root -E RUST_LOG=info {BIN} --tokens {TOKENS} \
         --state-dir /run/jobgate-test/state-root --systemctl {COUNTED} serve --listen {addr}"
    ));
    wait_until("the root serve answers", Duration::from_secs(10), || std::net::TcpStream::connect(&addr).is_ok());
    let target = "/api/job/ci-test-bus-active/state";
    let state = |what: &str| {
        let answer = get(&addr, target, &w.ro);
        assert_eq!(answer.status, 200, "{what}: {}", answer.body);
        let value = answer.json();
        assert_eq!((value["state"].as_str(), value["sub_state"].as_str()), (Some("active"), Some("running")), "{what}");
        value
    };
    let jobs = |what: &str| {
        let answer = get(&addr, "/api/jobs", &w.ro);
        assert_eq!(answer.status, 200, "{what}: {}", answer.body);
        let jobs = own_jobs(&answer.json());
        assert!(jobs.contains(&("ci-test-bus-active".into(), "active".into())), "{what}: {jobs:?}");
        jobs
    };
    let before = state("bus up");
    for _ in 0..4 {
        state("bus up");
        jobs("bus up");
    }
    assert_eq!(shows_so_far(w), 0, "state over the bus runs no systemctl");
    assert_eq!(calls_so_far(w, "list-"), 0, "jobs over the bus run no systemctl");
    let listed = jobs("bus up");

    w.sb.sh_ok("systemctl stop dbus.socket dbus.service");
    for _ in 0..5 {
        assert_eq!(state("bus down")["run"], before["run"]);
    }
    assert!(shows_so_far(w) >= 5, "each state read through systemctl while the bus is down");
    assert_eq!(jobs("bus down"), listed, "listed through systemctl while the bus is down");
    assert_eq!(calls_so_far(w, "list-units "), 1);
    assert_eq!(calls_so_far(w, "list-unit-files "), 1);
    let log = serve_log_since(w, "jobgate-bus-root", since);
    assert_eq!(log.matches(FALLBACK_LINE).count(), 1, "logged once for the streak: {log}");

    w.sb.sh_ok("systemctl start dbus.socket dbus.service");
    wait_until("state is read over the bus again", Duration::from_secs(20), || {
        let shows = shows_so_far(w);
        state("bus back");
        shows_so_far(w) == shows
    });
    let shows = shows_so_far(w);
    for _ in 0..5 {
        assert_eq!(state("bus back")["run"], before["run"]);
        assert_eq!(jobs("bus back"), listed);
    }
    assert_eq!(shows_so_far(w), shows, "no systemctl once the bus is back");
    assert_eq!(calls_so_far(w, "list-"), 2, "no listing through systemctl once the bus is back");
    let log = serve_log_since(w, "jobgate-bus-root", since);
    assert_eq!(log.matches("the system bus answers again").count(), 1, "{log}");

    // The service user's serve lost its connections too: it connects anew.
    assert_eq!(w.state("ci-test-bus-active")["run"], before["run"]);
}
