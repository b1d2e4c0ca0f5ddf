//! Issue 22: a run's end and its lines are certain. A run is said to have
//! ended (state, runs, follow) only once all of its lines are readable,
//! and then every route gives all of them and none of another run's, also
//! for a burst journald stores seconds after the run's end, for runs
//! started back to back, with other units writing meanwhile; and nothing a
//! job writes to the journal (forged manager messages, sent with pid 1's
//! credentials by a job running as root) ends a run or sets its result.

use std::time::Duration;

use serde_json::Value;

use super::client::{get, post};
use super::{wait_until, World};
use crate::Test;

pub const TESTS: &[Test] = &[
    ("a_run_said_to_have_ended_has_all_its_lines", a_run_said_to_have_ended_has_all_its_lines),
    ("runs_back_to_back_have_exactly_their_own_lines", runs_back_to_back_have_exactly_their_own_lines),
    ("a_root_job_forges_neither_its_end_nor_another_jobs", a_root_job_forges_neither_its_end_nor_another_jobs),
    ("a_finished_remain_after_exit_run_is_read_at_once", a_finished_remain_after_exit_run_is_read_at_once),
];

/// Lines of a burst: each names its run, so another run's line shows.
const BURST_LINES: usize = 100_000;

fn burst_unit() -> String {
    format!(
        "[Unit]\nStartLimitIntervalSec=0\n[Service]\nType=oneshot\n\
         ExecStart=/bin/sh -c 'seq 1 {BURST_LINES} | sed \"s/^/$INVOCATION_ID big-/\"'\n"
    )
}

/// 10,000 lines of 2 KB each: 20 MB. (`%%` is systemd's `%`.)
const WIDE_UNIT: &str = "[Unit]\nStartLimitIntervalSec=0\n[Service]\nType=oneshot\n\
    ExecStart=/usr/bin/awk 'BEGIN { pad = sprintf(\"%%2000s\", \"\"); gsub(/ /, \"w\", pad); \
    for (i = 1; i <= 10000; i++) print ENVIRON[\"INVOCATION_ID\"] \" wide-\" i \" \" pad }'\n";

/// Another unit writing all the while.
const CHATTER_UNIT: &str =
    "[Service]\nExecStart=/bin/sh -c 'while :; do seq 1 300 | sed s/^/chatter-/; sleep 0.05; done'\n";

/// Starts `job` and waits until `state` says the run it began has ended,
/// polling as fast as a client would; the run's id.
fn start_and_poll(w: &World, job: &str) -> String {
    let started = post(&w.addr, &format!("/api/job/{job}"), &w.rw);
    assert_eq!(started.status, 200, "start {job}: {}", started.body);
    let run = started.json()["run"].as_str().expect("start names its run").to_string();
    wait_until(&format!("{job}: state says {run} ended"), Duration::from_secs(120), || {
        let state = w.state(job);
        state["run"] == run.as_str() && state["finished"].is_string()
    });
    run
}

/// The lines of `run` that name it, in order; panics at a line of another.
fn own_lines(lines: &[String], run: &str, what: &str) -> Vec<String> {
    let foreign: Vec<&String> = lines.iter().filter(|l| !l.starts_with(run)).collect();
    assert!(
        foreign.is_empty(),
        "{what}: {} lines of another run, the first {:?}",
        foreign.len(),
        &foreign[..foreign.len().min(3)]
    );
    lines.to_vec()
}

/// The numbers the lines carry after `word`, as (first, last, count, in
/// order without a gap): short enough to show when a test fails.
fn numbers(lines: &[String], word: &str) -> (usize, usize, usize, bool) {
    let n: Vec<usize> = lines
        .iter()
        .filter_map(|l| l.split_once(word).and_then(|(_, rest)| rest.split(' ').next()?.parse().ok()))
        .collect();
    let in_order = n.windows(2).all(|p| p[1] == p[0] + 1);
    (n.first().copied().unwrap_or(0), n.last().copied().unwrap_or(0), n.len(), in_order)
}

/// What [`numbers`] gives for the lines `first..=last`.
fn span(first: usize, last: usize) -> (usize, usize, usize, bool) {
    (first, last, last + 1 - first, true)
}

/// Runs `test` with journald's rate limit off (it would drop most of a
/// burst; a unit's LogRateLimitIntervalSec= needs cgroup xattrs, which this
/// machine's cgroup v1 may not have) and other units writing meanwhile.
fn with_chatter(w: &World, test: impl FnOnce()) {
    w.sb.sh_ok(
        "mkdir -p /run/systemd/journald.conf.d && printf '[Journal]\\nRateLimitIntervalSec=0\\n' \
         > /run/systemd/journald.conf.d/exact.conf && systemctl restart systemd-journald",
    );
    w.sb.install_unit("noise-chatter.service", CHATTER_UNIT);
    w.sb.sh_ok("systemctl start noise-chatter.service");
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(test));
    w.sb.sh_ok("systemctl stop noise-chatter.service");
    w.sb.sh_ok("rm -f /run/systemd/journald.conf.d/exact.conf && systemctl restart systemd-journald");
    if let Err(e) = outcome {
        std::panic::resume_unwind(e);
    }
}

/// Poll, then fetch: the moment `state` says the run ended, `logs` gives
/// its last lines, up to its very last one; 20 tries each of a burst of
/// 100,000 lines and of 20 MB of 2 KB lines.
fn a_run_said_to_have_ended_has_all_its_lines(w: &World) {
    w.sb.install_unit("ci-test-burst.service", &burst_unit());
    w.sb.install_unit("ci-test-wide.service", WIDE_UNIT);
    with_chatter(w, || {
        for attempt in 0..20 {
            let run = start_and_poll(w, "ci-test-burst");
            let (lines, _) = w.logs("/api/job/ci-test-burst/logs?lines=20000");
            let what = format!("burst {attempt}: logs the moment it ended");
            let lines = own_lines(&lines, &run, &what);
            assert_eq!(numbers(&lines, " big-"), span(BURST_LINES - 19_999, BURST_LINES), "{what}");

            let run = start_and_poll(w, "ci-test-wide");
            let (lines, _) = w.logs("/api/job/ci-test-wide/logs?lines=20000");
            let what = format!("wide {attempt}: logs the moment it ended");
            let lines = own_lines(&lines, &run, &what);
            assert_eq!(numbers(&lines, " wide-"), span(1, 10_000), "{what}");
        }
    });
}

/// The same burst run 10 times back to back, each started the moment the
/// one before is said to have ended: every route gives each run exactly
/// its own lines, never one of the run before.
fn runs_back_to_back_have_exactly_their_own_lines(w: &World) {
    w.sb.install_unit("ci-test-burst.service", &burst_unit());
    with_chatter(w, || {
        let runs: Vec<String> = (0..10).map(|_| start_and_poll(w, "ci-test-burst")).collect();
        let (all, last) = (span(1, BURST_LINES), span(BURST_LINES - 19_999, BURST_LINES));
        for (i, run) in runs.iter().enumerate() {
            let what = format!("run {i} ({run})");
            let (lines, value) = w.logs(&format!("/api/job/ci-test-burst/logs?lines=20000&run={run}"));
            assert_eq!(value["run"].as_str(), Some(run.as_str()), "{what}");
            assert_eq!(numbers(&own_lines(&lines, run, &what), " big-"), last, "{what}: logs?run=");
            let (lines, _) = w.logs(&format!("/api/job/ci-test-burst/runs/{run}/logs?lines=20000"));
            assert_eq!(numbers(&own_lines(&lines, run, &what), " big-"), last, "{what}: runs/RUN/logs");
            let answer = get(&w.addr, &format!("/api/job/ci-test-burst/follow?run={run}"), &w.ro);
            assert_eq!(answer.status, 200, "{what}: follow");
            let mut lines: Vec<String> = answer.body.lines().map(str::to_string).collect();
            let end = lines.pop().unwrap_or_default();
            assert_eq!(end, format!("jobgate: {run} finished result=success exit_status=0"), "{what}");
            assert_eq!(numbers(&own_lines(&lines, run, &what), " big-"), all, "{what}: follow");
        }
        // The newest run through tail, from its start, a page at a time.
        let newest = runs.last().expect("runs");
        let mut seen = Vec::new();
        let mut cursor = String::new();
        loop {
            let target = if cursor.is_empty() {
                "/api/job/ci-test-burst/tail".to_string()
            } else {
                format!("/api/job/ci-test-burst/tail?cursor={}", urlencode(&cursor))
            };
            let tail = get(&w.addr, &target, &w.rw).json();
            let page: Vec<String> =
                tail["logs"].as_array().expect("logs").iter().filter_map(|l| l.as_str().map(str::to_string)).collect();
            if page.is_empty() {
                break;
            }
            seen.extend(own_lines(&page, newest, "tail"));
            cursor = tail["cursor"].as_str().expect("cursor").to_string();
        }
        assert_eq!(numbers(&seen, " big-"), all, "tail of the newest run");
    });
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            b => format!("%{b:02X}"),
        })
        .collect()
}

/// Sends the service manager's messages for `unit`, over the native
/// protocol with pid 1's credentials (root may claim any pid): a later
/// run that succeeded, and the real run's (`$2`) success.
const FORGE: &str = r#"
import os, socket, struct, sys
unit, real = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
creds = [(socket.SOL_SOCKET, socket.SCM_CREDENTIALS, struct.pack("iII", 1, 0, 0))]
def send(fields):
    data = b"".join(k.encode() + b"=" + v.encode() + b"\n" for k, v in fields)
    s.sendmsg([data], creds, 0, "/run/systemd/journal/socket")
common = [("UNIT", unit), ("SYSLOG_IDENTIFIER", "systemd"), ("CODE_FILE", "src/core/unit.c")]
fake = "f" * 32
for mid, msg in (("7d4958e842da4a758f6c1cdc7b36dcc5", "Starting"), ("39f53479d3a045ac8e11786248231fbf", "Started"),
                 ("7ad2d189f7e94e70a38c781354912448", "Deactivated successfully")):
    send(common + [("MESSAGE_ID", mid), ("INVOCATION_ID", fake), ("MESSAGE", unit + ": " + msg + " (forged)")])
if real:
    send(common + [("MESSAGE_ID", "98e322203f7a4ed290d09fe03c09fe15"), ("INVOCATION_ID", real), ("EXIT_CODE", "exited"),
                   ("EXIT_STATUS", "0"), ("MESSAGE", unit + ": exited status=0 (forged)")])
    send(common + [("MESSAGE_ID", "7ad2d189f7e94e70a38c781354912448"), ("INVOCATION_ID", real),
                   ("MESSAGE", unit + ": Deactivated successfully (forged)")])
"#;

/// A job running as root forges the manager's messages for another job and
/// for itself: neither job's state, runs, logs or follow changes.
fn a_root_job_forges_neither_its_end_nor_another_jobs(w: &World) {
    w.sb.write_file("/run/jobgate-test/forge.py", FORGE.as_bytes(), 0o644, "root");
    w.sb.install_unit(
        "ci-test-victim.service",
        "[Service]\nType=oneshot\nExecStart=/bin/sh -c 'echo victim line one; echo victim line two; exit 3'\n",
    );
    // Root with every capability (its own drop-in undoes the shipped
    // defaults for jobs): it forges for the victim's last run and for its
    // own, then goes on and fails.
    w.sb.write_file(
        "/run/systemd/system/ci-test-forger.service.d/99-root.conf",
        b"[Service]\nDynamicUser=no\nUser=root\nCapabilityBoundingSet=~\nSystemCallFilter=\nRestrictAddressFamilies=\n",
        0o644,
        "root",
    );
    w.sb.install_unit(
        "ci-test-forger.service",
        "[Service]\nExecStart=/bin/sh -c 'echo forger begins; \
         python3 /run/jobgate-test/forge.py ci-test-victim.service \"$(cat /run/jobgate-test/victim-run)\"; \
         python3 /run/jobgate-test/forge.py ci-test-forger.service $INVOCATION_ID; \
         sleep 2; echo forger still here; exit 7'\n",
    );
    let victim = w.run_to_end("ci-test-victim");
    let victim_run = victim["run"].as_str().expect("victim run").to_string();
    w.sb.write_file("/run/jobgate-test/victim-run", victim_run.as_bytes(), 0o644, "root");
    let victim_runs = get(&w.addr, "/api/job/ci-test-victim/runs", &w.ro).json();

    let started = post(&w.addr, "/api/job/ci-test-forger", &w.rw);
    assert_eq!(started.status, 200, "{}", started.body);
    let forger = started.json()["run"].as_str().expect("forger run").to_string();
    let followed = get(&w.addr, "/api/job/ci-test-forger/follow", &w.ro);
    let mut lines: Vec<&str> = followed.body.lines().collect();
    let end = lines.pop().unwrap_or_default();
    assert_eq!(end, format!("jobgate: {forger} finished result=exit-code exit_status=7"), "{}", followed.body);
    assert_eq!(lines, ["forger begins", "forger still here"], "the forger's own follow");
    let forged = w.sb.sh_ok("journalctl --no-pager -o cat _PID=1 | grep -c '(forged)' || true");
    assert!(forged.trim().parse::<u32>().unwrap_or(0) >= 8, "the forged messages are in the journal: {forged}");

    // The victim: the same state, runs and lines as before the forgery.
    let state = w.state("ci-test-victim");
    assert_eq!((state["run"].as_str(), state["result"].as_str()), (Some(victim_run.as_str()), Some("exit-code")));
    assert_eq!(state["exit_status"].as_i64(), Some(3), "{state}");
    let runs = get(&w.addr, "/api/job/ci-test-victim/runs", &w.ro).json();
    assert_eq!(runs, victim_runs, "the victim's runs");
    let (logs, value) = w.logs("/api/job/ci-test-victim/logs");
    assert_eq!(
        (logs, value["run"].as_str()),
        (vec!["victim line one".into(), "victim line two".into()], Some(victim_run.as_str()))
    );
    let followed = get(&w.addr, "/api/job/ci-test-victim/follow", &w.ro);
    assert_eq!(
        followed.body.lines().last(),
        Some(format!("jobgate: {victim_run} finished result=exit-code exit_status=3").as_str())
    );
    // The forger: its real end, in state and runs.
    let state = w.state("ci-test-forger");
    assert_eq!((state["run"].as_str(), state["exit_status"].as_i64()), (Some(forger.as_str()), Some(7)), "{state}");
    let runs = get(&w.addr, "/api/job/ci-test-forger/runs", &w.ro).json();
    let newest: &Value = &runs["runs"][0];
    assert_eq!(
        (newest["run"].as_str(), newest["result"].as_str()),
        (Some(forger.as_str()), Some("exit-code")),
        "{runs}"
    );
    assert!(!runs.to_string().contains(&"f".repeat(32)), "no forged run: {runs}");
    for job in ["ci-test-victim", "ci-test-forger"] {
        assert_eq!(post(&w.addr, &format!("/api/job/{job}/stop"), &w.rw).status, 200);
    }
}

/// A oneshot with RemainAfterExit=yes stays `active (exited)` after its
/// run and the manager writes no end message: its run has ended all the
/// same, and its follow returns at once with its result.
fn a_finished_remain_after_exit_run_is_read_at_once(w: &World) {
    let job = "ci-test-remains";
    w.sb.install_unit(
        &format!("{job}.service"),
        "[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=/bin/sh -c 'seq 1 20000 | sed s/^/remains-/'\n",
    );
    let started = post(&w.addr, &format!("/api/job/{job}"), &w.rw);
    assert_eq!(started.status, 200, "{}", started.body);
    let run = started.json()["run"].as_str().expect("run").to_string();
    wait_until("active (exited)", Duration::from_secs(60), || {
        let state = w.state(job);
        state["run"] == run.as_str() && state["sub_state"] == "exited" && state["finished"].is_string()
    });
    // How long it takes is for `make bench` to show (tests/bench/follow.sh).
    for route in ["follow", &format!("follow?run={run}")] {
        let followed = get(&w.addr, &format!("/api/job/{job}/{route}"), &w.ro);
        let mut lines: Vec<&str> = followed.body.lines().collect();
        let end = lines.pop().unwrap_or_default();
        assert_eq!(end, format!("jobgate: {run} finished result=success exit_status=0"), "{route}");
        assert_eq!(numbers(&lines.iter().map(|l| l.to_string()).collect::<Vec<_>>(), "remains-"), span(1, 20_000));
    }
    let runs = get(&w.addr, &format!("/api/job/{job}/runs"), &w.ro).json();
    assert_eq!(runs["runs"][0]["result"].as_str(), Some("success"), "{runs}");
    assert_eq!(post(&w.addr, &format!("/api/job/{job}/stop"), &w.rw).status, 200);
}
