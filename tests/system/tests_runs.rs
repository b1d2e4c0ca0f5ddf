//! Issue 15: runs of every kind of unit a user writes, over every route
//! that reads them: two runs in a row (the second one failing), each with
//! exactly its own lines, its result and exit status in `state`, `runs`
//! and follow's last line.

use std::time::Duration;

use serde_json::Value;

use super::client::{get, post};
use super::{wait_until, World};
use crate::Test;

pub const TESTS: &[Test] = &[
    ("every_unit_type_over_every_route", every_unit_type_over_every_route),
    ("each_restart_is_its_own_run", each_restart_is_its_own_run),
];

/// While this file exists, the jobs below fail (exit 3) after their lines.
const FAIL_FLAG: &str = "/run/jobgate-test/fail";
/// A user whose jobs' output journald keeps in a file of its own
/// (user-UID.journal, for uids from 1000), apart from the manager's
/// messages in system.journal.
const JOB_USER: &str = "jobgate-tjob";
const JOB_UID: u32 = 23_456;

/// The job every unit runs: three lines naming its run, then, if the flag
/// is there, exit status 3.
fn main_script(kind: &str) -> String {
    format!(
        "echo \"{kind} one $INVOCATION_ID\"; echo \"{kind} two $INVOCATION_ID\"; sleep 0.4; \
         echo \"{kind} three $INVOCATION_ID\"; if [ -e {FAIL_FLAG} ]; then exit 3; fi"
    )
}

struct Kind {
    name: &'static str,
    service: String,
    /// Lines besides the main three: ExecStartPre/Post output.
    extra: &'static [&'static str],
    /// The unit stays active after a successful run.
    remains: bool,
}

fn kinds() -> Vec<Kind> {
    let head = "[Unit]\nStartLimitIntervalSec=0\n[Service]\nTimeoutStartSec=20\n";
    let plain = |name: &'static str, extra: &str| Kind {
        name,
        service: format!("{head}{extra}ExecStart=/bin/sh -c '{}'\n", main_script(name)),
        extra: &[],
        remains: false,
    };
    vec![
        // No Type=: simple, the default, the only type without "Starting".
        plain("simple", ""),
        plain("idle", "Type=idle\n"),
        Kind {
            name: "exec",
            service: format!(
                "{head}Type=exec\nExecStartPre=/bin/sh -c 'echo \"pre $INVOCATION_ID\"'\n\
                 ExecStart=/bin/sh -c '{}'\nExecStartPost=/bin/sh -c 'echo \"post $INVOCATION_ID\"'\n",
                main_script("exec")
            ),
            extra: &["pre", "post"],
            remains: false,
        },
        Kind {
            name: "notify",
            service: format!(
                "{head}Type=notify\nNotifyAccess=all\nExecStart=/bin/sh -c '{}; systemd-notify --ready; sleep 0.3'\n",
                main_script("notify")
            ),
            extra: &[],
            remains: false,
        },
        Kind {
            name: "forking",
            service: format!("{head}Type=forking\nExecStart=/bin/sh -c '({}) & sleep 0.1'\n", main_script("forking")),
            extra: &[],
            remains: false,
        },
        plain("oneshot", "Type=oneshot\n"),
        Kind { remains: true, ..plain("remain", "Type=oneshot\nRemainAfterExit=yes\n") },
        plain("user", &format!("User={JOB_USER}\n")),
    ]
}

fn lines_of(kind: &Kind, run: &str) -> Vec<String> {
    let mut lines: Vec<String> = ["one", "two", "three"].iter().map(|n| format!("{} {n} {run}", kind.name)).collect();
    lines.extend(kind.extra.iter().map(|e| format!("{e} {run}")));
    lines.sort();
    lines
}

fn sorted(mut lines: Vec<String>) -> Vec<String> {
    lines.sort();
    lines
}

fn json_lines(value: &Value) -> Vec<String> {
    value["logs"]
        .as_array()
        .map(|a| a.iter().filter_map(|l| l.as_str().map(str::to_string)).collect())
        .unwrap_or_default()
}

/// The body of a follow, without its last line, and that last line.
fn follow(w: &World, job: &str, run: Option<&str>) -> (Vec<String>, String) {
    let target = match run {
        Some(run) => format!("/api/job/{job}/follow?run={run}"),
        None => format!("/api/job/{job}/follow"),
    };
    let answer = get(&w.addr, &target, &w.ro);
    assert_eq!(answer.status, 200, "{target}: {}", answer.body);
    let mut lines: Vec<String> = answer.body.lines().map(str::to_string).collect();
    let last = lines.pop().unwrap_or_default();
    (lines, last)
}

fn ensure_job_user(w: &World) {
    if super::sandbox::user_ids(JOB_USER).is_none() {
        let out = std::process::Command::new("useradd")
            .args(["--no-create-home", "--shell", "/usr/sbin/nologin", "-u", &JOB_UID.to_string(), JOB_USER])
            .output()
            .expect("useradd");
        assert!(super::sandbox::user_ids(JOB_USER).is_some(), "useradd: {}", String::from_utf8_lossy(&out.stderr));
    }
    let _ = w;
}

fn every_unit_type_over_every_route(w: &World) {
    ensure_job_user(w);
    w.sb.sh_ok(&format!("rm -f {FAIL_FLAG}"));
    for kind in kinds() {
        let job = format!("ci-test-kind-{}", kind.name);
        w.sb.install_unit(&format!("{job}.service"), &kind.service);
        let mut previous: Option<(String, Vec<String>)> = None;
        for failing in [false, true] {
            if failing {
                w.sb.sh_ok(&format!("touch {FAIL_FLAG}"));
                if kind.remains {
                    assert_eq!(post(&w.addr, &format!("/api/job/{job}/stop"), &w.rw).status, 200);
                }
            }
            let what = format!("{job} ({})", if failing { "failing" } else { "succeeding" });
            let started = post(&w.addr, &format!("/api/job/{job}"), &w.rw);
            assert_eq!(started.status, 200, "{what}: {}", started.body);
            let run = started.json()["run"].as_str().expect("start names its run").to_string();
            // Followed live from its start (the first run) or after its end.
            let live = (!failing).then(|| {
                let (w_addr, ro, job) = (w.addr.clone(), w.ro.clone(), job.clone());
                std::thread::spawn(move || get(&w_addr, &format!("/api/job/{job}/follow"), &ro))
            });
            let (state, sub) = match (failing, kind.remains) {
                (true, _) => ("failed", "failed"),
                (false, true) => ("active", "exited"),
                (false, false) => ("inactive", "dead"),
            };
            let mut now = Value::Null;
            wait_until(&format!("{what}: run {run} is over"), Duration::from_secs(20), || {
                now = w.state(&job);
                now["run"] == run.as_str() && now["state"] == state && now["sub_state"] == sub
            });
            let (result, status) = if failing { ("exit-code", 3) } else { ("success", 0) };
            assert_eq!(
                (now["result"].as_str(), now["exit_status"].as_i64()),
                (Some(result), Some(status)),
                "{what}: {now}"
            );
            assert!(now["started"].is_string(), "{what}: {now}");
            let want = lines_of(&kind, &run);
            let last_line = format!("jobgate: {run} finished result={result} exit_status={status}");

            // logs, runs/RUN/logs, tail, follow: exactly this run's lines.
            let (logs, value) = w.logs(&format!("/api/job/{job}/logs"));
            assert_eq!((sorted(logs), value["run"].as_str()), (want.clone(), Some(run.as_str())), "{what}: logs");
            let (by_id, _) = w.logs(&format!("/api/job/{job}/runs/{run}/logs"));
            assert_eq!(sorted(by_id), want, "{what}: runs/RUN/logs");
            let tail = get(&w.addr, &format!("/api/job/{job}/tail"), &w.rw).json();
            assert_eq!(
                (sorted(json_lines(&tail)), tail["run"].as_str()),
                (want.clone(), Some(run.as_str())),
                "{what}: tail"
            );
            let (followed, last) = follow(w, &job, Some(&run));
            assert_eq!((sorted(followed), last.as_str()), (want.clone(), last_line.as_str()), "{what}: follow");
            if let Some(live) = live {
                let answer = live.join().expect("live follow");
                let mut lines: Vec<String> = answer.body.lines().map(str::to_string).collect();
                let last = lines.pop().unwrap_or_default();
                assert_eq!((sorted(lines), last.as_str()), (want.clone(), last_line.as_str()), "{what}: live follow");
            }
            // runs: this run first, with its result, then the previous one.
            let runs = get(&w.addr, &format!("/api/job/{job}/runs"), &w.ro).json();
            let newest = &runs["runs"][0];
            assert_eq!(newest["run"].as_str(), Some(run.as_str()), "{what}: {runs}");
            assert_eq!(
                (newest["result"].as_str(), newest["exit_status"].as_i64()),
                (Some(result), Some(status)),
                "{what}: {runs}"
            );
            assert!(newest["finished"].is_string(), "{what}: {runs}");
            if let Some((before, before_lines)) = &previous {
                assert_eq!(runs["runs"][1]["run"].as_str(), Some(before.as_str()), "{what}: {runs}");
                let (old, _) = w.logs(&format!("/api/job/{job}/runs/{before}/logs"));
                assert_eq!(&sorted(old), before_lines, "{what}: the previous run's logs");
                let (old_followed, _) = follow(w, &job, Some(before));
                assert_eq!(&sorted(old_followed), before_lines, "{what}: the previous run followed");
            }
            previous = Some((run, want));
        }
        w.sb.sh_ok(&format!("rm -f {FAIL_FLAG}"));
        if kind.remains {
            assert_eq!(post(&w.addr, &format!("/api/job/{job}/stop"), &w.rw).status, 200);
        }
    }
    // The user's lines came from a journal file of their own.
    let files = w.sb.sh_ok(&format!("ls /var/log/journal/*/ | grep -c 'user-{JOB_UID}' || true"));
    assert_ne!(files.trim(), "0", "journald kept the User= job's lines apart");
}

/// Restart=on-failure: each attempt is a run of its own, with its lines
/// and its result; the last one succeeds.
fn each_restart_is_its_own_run(w: &World) {
    let job = "ci-test-kind-restart";
    // The job's own runtime directory, kept across its attempts: the
    // prefix drop-in's ProtectSystem=strict leaves no other place to write.
    let counter = "/run/jobgate-restarts/count";
    w.sb.sh_ok(&format!("rm -f {counter}"));
    let script = format!(
        "n=$(cat {counter} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {counter}; \
         echo \"attempt $n $INVOCATION_ID\"; sleep 0.3; [ $n -ge 3 ] || exit 4"
    );
    let unit = format!(
        "[Unit]\nStartLimitIntervalSec=0\n[Service]\nRestart=on-failure\nRestartSec=200ms\n\
         RuntimeDirectory=jobgate-restarts\nRuntimeDirectoryPreserve=yes\nExecStart=/bin/sh -c '{script}'\n"
    );
    w.sb.install_unit(&format!("{job}.service"), &unit);
    let started = post(&w.addr, &format!("/api/job/{job}"), &w.rw);
    assert_eq!(started.status, 200, "{}", started.body);
    let first = started.json()["run"].as_str().expect("run").to_string();
    let mut runs = Value::Null;
    wait_until("three attempts", Duration::from_secs(20), || {
        runs = get(&w.addr, &format!("/api/job/{job}/runs"), &w.ro).json();
        runs["runs"].as_array().is_some_and(|r| r.len() == 3 && r[0]["result"] == "success")
    });
    let list = runs["runs"].as_array().expect("runs");
    assert_eq!(list[2]["run"].as_str(), Some(first.as_str()), "{runs}");
    for (i, run) in list.iter().enumerate() {
        let id = run["run"].as_str().expect("id");
        let attempt = 3 - i;
        let (result, status) = if attempt == 3 { ("success", 0) } else { ("exit-code", 4) };
        assert_eq!((run["result"].as_str(), run["exit_status"].as_i64()), (Some(result), Some(status)), "{runs}");
        let (lines, _) = w.logs(&format!("/api/job/{job}/runs/{id}/logs"));
        assert_eq!(lines, [format!("attempt {attempt} {id}")], "attempt {attempt}");
        let (followed, last) = follow(w, job, Some(id));
        assert_eq!(followed, [format!("attempt {attempt} {id}")]);
        assert_eq!(last, format!("jobgate: {id} finished result={result} exit_status={status}"));
    }
    let state = w.state(job);
    assert_eq!(
        (state["run"].as_str(), state["result"].as_str()),
        (list[0]["run"].as_str(), Some("success")),
        "{state}"
    );
}
