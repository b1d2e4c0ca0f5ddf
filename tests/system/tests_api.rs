//! The integration tests of the HTTP API, the CLI and the shipped files.
//! Each makes the runs it reads, so that it passes alone as well as in
//! order (`cargo test --test system NAME`).

use std::io::Write;
use std::time::{Duration, Instant};

use super::client::{get, post, request, send_raw, Answer};
use super::{now_us, wait_until, World, BIN, SENTINEL, STATE, TOKENS, USER};
use crate::Test;

pub const TESTS: &[Test] = &[
    ("describe_without_token", describe_without_token),
    ("jobs_lists_the_prefix_only", jobs_lists_the_prefix_only),
    ("start_runs_a_job_and_state_reports_it", start_runs_a_job_and_state_reports_it),
    ("failed_job_state_and_runs", failed_job_state_and_runs),
    ("start_while_active_is_425_and_stop_ends_it", start_while_active_is_425_and_stop_ends_it),
    (
        "logs_are_exactly_the_last_run_after_invocation_id_is_gone",
        logs_are_exactly_the_last_run_after_invocation_id_is_gone,
    ),
    ("logs_of_a_job_that_never_ran_leak_nothing", logs_of_a_job_that_never_ran_leak_nothing),
    ("logs_lines_and_text_format", logs_lines_and_text_format),
    ("runs_history_and_run_logs", runs_history_and_run_logs),
    ("tail_with_cursor_and_per_token_cursor", tail_with_cursor_and_per_token_cursor),
    ("template_instances", template_instances),
    ("status_codes", status_codes),
    ("token_in_query_and_patterns", token_in_query_and_patterns),
    ("injection_corpus_over_http_starts_nothing", injection_corpus_over_http_starts_nothing),
    ("injection_corpus_in_the_cli_starts_nothing", injection_corpus_in_the_cli_starts_nothing),
    ("slow_client_does_not_block_others", slow_client_does_not_block_others),
    ("sudo_rule_allows_exactly_start_and_stop", sudo_rule_allows_exactly_start_and_stop),
    ("admin_cli_as_the_service_user", admin_cli_as_the_service_user),
    ("check_passes_as_the_service_user", check_passes_as_the_service_user),
    ("token_file_permissions_and_admin", token_file_permissions_and_admin),
    ("a_revoked_token_stays_revoked_when_the_edit_has_a_typo", a_revoked_token_stays_revoked_when_the_edit_has_a_typo),
    ("access_log_names_tokens_never_shows_them", access_log_names_tokens_never_shows_them),
    ("redaction_in_every_route_and_the_cli", redaction_in_every_route_and_the_cli),
    ("audit_lines_for_every_start_and_stop", audit_lines_for_every_start_and_stop),
    ("check_finds_a_wildcard_sudo_rule", check_finds_a_wildcard_sudo_rule),
    ("polkit_instead_of_sudo", polkit_instead_of_sudo),
    ("same_answers_from_serve_inetd_and_cgi", same_answers_from_serve_inetd_and_cgi),
    ("limits_in_every_front_end", limits_in_every_front_end),
    ("through_nginx_to_serve_and_to_cgi", through_nginx_to_serve_and_to_cgi),
    ("redaction_file_errors_stop_the_start", redaction_file_errors_stop_the_start),
    ("signed_webhooks_start_jobs", signed_webhooks_start_jobs),
];

fn describe_without_token(w: &World) {
    let answer = request(&w.addr, "GET", "/", None);
    assert_eq!(answer.status, 200);
    assert_eq!(answer.header("Content-Type"), Some("application/json"));
    let value = answer.json();
    assert_eq!(value["name"], "jobgate");
    assert!(value["endpoints"].is_object());
}

fn jobs_lists_the_prefix_only(w: &World) {
    let answer = w.get("/api/jobs");
    assert_eq!(answer.status, 200, "{}", answer.body);
    let jobs: Vec<String> = answer.json()["jobs"]
        .as_array()
        .expect("jobs")
        .iter()
        .map(|j| j["job"].as_str().unwrap_or_default().to_string())
        .collect();
    for want in ["ci-test-hello", "ci-test-fail", "ci-test-count", "ci-test-slow"] {
        assert!(jobs.contains(&want.to_string()), "{want} missing from {jobs:?}");
    }
    assert!(!jobs.iter().any(|j| j == "noise" || j.ends_with('@')), "{jobs:?}");
}

fn start_runs_a_job_and_state_reports_it(w: &World) {
    let started = post(&w.addr, "/api/job/ci-test-hello", &w.rw);
    assert_eq!(started.status, 200, "{}", started.body);
    let value = started.json();
    assert_eq!((value["msg"].as_str(), value["job"].as_str()), (Some("Job started"), Some("ci-test-hello")));
    assert_eq!(value["unit"], "ci-test-hello.service");
    // The answer names the run it began, and state already shows that run.
    let run = value["run"].as_str().expect("run id");
    assert_eq!(w.state("ci-test-hello")["run"].as_str(), Some(run));
    let state = w.run_to_end("ci-test-count");
    assert_eq!(state["state"], "inactive");
    assert_eq!(state["result"], "success");
    assert_eq!(state["exit_status"], 0);
    for field in ["state", "sub_state", "result", "exit_status", "run", "started", "finished"] {
        assert!(state.get(field).is_some(), "state lacks {field}: {state}");
    }
    assert!(state["started"].as_str().is_some_and(|s| s.ends_with('Z')), "{state}");
}

fn failed_job_state_and_runs(w: &World) {
    let state = w.run_to_end("ci-test-fail");
    assert_eq!(state["state"], "failed", "{state}");
    assert_eq!(state["result"], "exit-code");
    assert_eq!(state["exit_status"], 3);
    let runs = w.get("/api/job/ci-test-fail/runs").json();
    let last = &runs["runs"][0];
    assert_eq!((last["result"].as_str(), last["exit_status"].as_i64()), (Some("exit-code"), Some(3)), "{runs}");
    assert_eq!(last["run"], state["run"]);
}

fn start_while_active_is_425_and_stop_ends_it(w: &World) {
    let first = post(&w.addr, "/api/job/ci-test-slow", &w.rw);
    assert_eq!(first.status, 200, "{}", first.body);
    wait_until("ci-test-slow is activating", Duration::from_secs(10), || {
        w.state("ci-test-slow")["state"] == "activating"
    });
    let second = post(&w.addr, "/api/job/ci-test-slow", &w.rw);
    assert_eq!((second.status, second.msg().as_str()), (425, "Job is already active"));
    let stopped = post(&w.addr, "/api/job/ci-test-slow/stop", &w.rw);
    assert_eq!((stopped.status, stopped.msg().as_str()), (200, "Job stopped"), "{}", stopped.body);
    wait_until("ci-test-slow has stopped", Duration::from_secs(10), || {
        !matches!(w.state("ci-test-slow")["state"].as_str(), Some("activating" | "deactivating"))
    });
}

/// The original CI API returned the whole machine's journal once a oneshot
/// unit had finished and its InvocationID was empty; jobgate must return
/// exactly the last run's lines.
fn logs_are_exactly_the_last_run_after_invocation_id_is_gone(w: &World) {
    w.sb.sh_ok("systemctl start noise.service");
    w.run_to_end("ci-test-count");
    let state = w.run_to_end("ci-test-count");
    w.sb.sh_ok("systemctl start noise.service");
    let (lines, value) = w.logs("/api/job/ci-test-count/logs");
    let run = value["run"].as_str().expect("the last run's id");
    assert_eq!(state["run"].as_str(), Some(run), "state names the run it describes: {state}");
    let invocation = w.sb.sh_ok("systemctl show -p InvocationID --value ci-test-count.service");
    assert_eq!(invocation.trim(), "", "systemd itself no longer knows the run");
    let want: Vec<String> = (1..=5).map(|i| format!("run {run} line {i}")).collect();
    assert_eq!(lines, want);
    let runs = w.get("/api/job/ci-test-count/runs").json();
    assert_eq!(runs["runs"][0]["run"].as_str(), Some(run));
}

fn logs_of_a_job_that_never_ran_leak_nothing(w: &World) {
    w.sb.sh_ok("systemctl start noise.service");
    let (lines, value) = w.logs("/api/job/ci-test-never/logs");
    assert!(lines.is_empty(), "{lines:?}");
    assert_eq!(value["run"], serde_json::Value::Null);
    let text = w.get("/api/job/ci-test-never/logs?format=text");
    assert_eq!((text.status, text.body.as_str()), (200, ""));
    let runs = w.get("/api/job/ci-test-never/runs").json();
    assert_eq!(runs["runs"], serde_json::json!([]));
    let tail = w.get("/api/job/ci-test-never/tail");
    assert!(!tail.body.contains(SENTINEL));
}

fn logs_lines_and_text_format(w: &World) {
    w.run_to_end("ci-test-count");
    let (lines, _) = w.logs("/api/job/ci-test-count/logs?lines=2");
    assert_eq!(lines.len(), 2);
    assert!(lines[1].ends_with("line 5") && lines[0].ends_with("line 4"), "{lines:?}");
    let text = w.get("/api/job/ci-test-count/logs?lines=3&format=text");
    assert_eq!(text.status, 200);
    assert!(text.header("Content-Type").is_some_and(|c| c.starts_with("text/plain")));
    assert_eq!(text.body.lines().count(), 3, "{}", text.body);
    let accept = send_raw(
        &w.addr,
        format!("GET /api/job/ci-test-count/logs?lines=1 HTTP/1.1\r\nAuthorization: Bearer {}\r\nAccept: text/plain\r\nConnection: close\r\n\r\n", w.ro)
            .as_bytes(),
    );
    assert!(accept.body.ends_with("line 5\n"), "{}", accept.body);
    let http10 = send_raw(
        &w.addr,
        format!("GET /api/job/ci-test-count/logs?lines=1&token={} HTTP/1.0\r\n\r\n", w.ro).as_bytes(),
    );
    assert_eq!(http10.status, 200);
    assert!(http10.body.contains("line 5"), "{}", http10.body);
}

fn runs_history_and_run_logs(w: &World) {
    // Runs of its own, so that it stands alone.
    for job in ["ci-test-count", "ci-test-count", "ci-test-fail"] {
        w.run_to_end(job);
    }
    let runs = w.get("/api/job/ci-test-count/runs?limit=2").json();
    let list = runs["runs"].as_array().expect("runs");
    assert_eq!(list.len(), 2, "{runs}");
    assert!(list[0]["started"].as_str() >= list[1]["started"].as_str(), "newest first: {runs}");
    for run in list {
        assert_eq!((run["result"].as_str(), run["exit_status"].as_i64()), (Some("success"), Some(0)), "{run}");
        let id = run["run"].as_str().expect("id");
        let (by_path, _) = w.logs(&format!("/api/job/ci-test-count/runs/{id}/logs"));
        let (by_query, _) = w.logs(&format!("/api/job/ci-test-count/logs?run={id}"));
        assert_eq!(by_path, by_query);
        assert_eq!(by_path.len(), 5, "the job writes 5 lines a run: {id} of {runs}: {by_path:?}");
        assert!(by_path.iter().all(|l| l.contains(id)), "{by_path:?}");
    }
    // Another job's run id through this job's route shows nothing of it.
    let fail_run =
        w.get("/api/job/ci-test-fail/runs").json()["runs"][0]["run"].as_str().map(str::to_string).expect("run");
    let (lines, _) = w.logs(&format!("/api/job/ci-test-count/runs/{fail_run}/logs"));
    assert!(lines.is_empty(), "{lines:?}");
}

fn tail_with_cursor_and_per_token_cursor(w: &World) {
    let state = w.run_to_end("ci-test-count");
    assert_eq!(state["result"], "success");
    let first = w.get("/api/job/ci-test-count/tail").json();
    assert_eq!(first["logs"].as_array().map(Vec::len), Some(5), "{first}\n{}", journal_dump(w, "ci-test-count"));
    let again = w.get("/api/job/ci-test-count/tail").json();
    assert_eq!(again["logs"], serde_json::json!([]), "the token's cursor moved on: {again}");
    // Another token has its own cursor.
    let other = get(&w.addr, "/api/job/ci-test-count/tail", &w.rw).json();
    assert_eq!(other["logs"].as_array().map(Vec::len), Some(5));
    // An explicit cursor: the lines after it, and the server-side one untouched.
    let cursor = first["cursor"].as_str().expect("cursor");
    let after_last = w.get(&format!("/api/job/ci-test-count/tail?cursor={}", pct(cursor))).json();
    assert_eq!(after_last["logs"], serde_json::json!([]));
    let logs = w.logs("/api/job/ci-test-count/logs").1;
    assert_eq!(after_last["run"], logs["run"]);
    // A new run: the per-token cursor starts over with it.
    w.run_to_end("ci-test-count");
    let next = w.get("/api/job/ci-test-count/tail?format=text");
    assert_eq!(next.body.lines().count(), 5, "{}", next.body);
    assert!(next.header("X-Jobgate-Cursor").is_some());
}

fn template_instances(w: &World) {
    let state = w.run_to_end("ci-test-deploy@main");
    assert_eq!(state["result"], "success", "{state}");
    let (lines, _) = w.logs("/api/job/ci-test-deploy@main/logs");
    assert!(lines.iter().any(|l| l.contains("main")), "{lines:?}");
    let missing = post(&w.addr, "/api/job/ci-test-nosuch@main", &w.rw);
    assert_eq!((missing.status, missing.msg().as_str()), (404, "Unknown job"));
}

fn status_codes(w: &World) {
    let cases: &[(&str, &str, Option<&str>, u16, &str)] = &[
        ("GET", "/api/job/ci-test-hello/state", None, 401, "Missing or invalid token"),
        ("GET", "/api/job/ci-test-hello/state", Some("jgt_wrong"), 401, "Missing or invalid token"),
        ("POST", "/api/job/ci-test-hello", Some(&w.ro), 403, "Not permitted"),
        ("POST", "/api/job/ci-test-hello", Some(&w.deploy), 403, "Not permitted"),
        ("GET", "/api/job/ci-test-nope/state", Some(&w.ro), 404, "Unknown job"),
        ("POST", "/api/job/ci-test-nope", Some(&w.rw), 404, "Unknown job"),
        ("GET", "/api/nope", Some(&w.ro), 404, "Not found"),
        ("GET", "/api/job/ci-test-hello", Some(&w.rw), 405, "Method not allowed"),
        ("PUT", "/api/job/ci-test-hello/state", Some(&w.rw), 405, "Method not allowed"),
        ("GET", "/api/job/ssh/state", Some(&w.ro), 400, "Invalid job"),
        ("GET", "/api/job/ci-test-hello/logs?lines=-1", Some(&w.ro), 400, "Invalid lines"),
    ];
    for (method, target, token, status, msg) in cases {
        let answer = request(&w.addr, method, target, *token);
        assert_eq!((answer.status, answer.msg()), (*status, msg.to_string()), "{method} {target}");
        assert_eq!(answer.header("Content-Type"), Some("application/json"));
    }
    let unauthorized = request(&w.addr, "GET", "/api/jobs", None);
    assert!(unauthorized.header("WWW-Authenticate").is_some());
    let wrong_method = request(&w.addr, "GET", "/api/job/ci-test-hello/stop", Some(&w.rw));
    assert_eq!(wrong_method.header("Allow"), Some("POST"));
}

fn token_in_query_and_patterns(w: &World) {
    let by_query = request(&w.addr, "GET", &format!("/api/job/ci-test-hello/state?token={}", w.ro), None);
    assert_eq!(by_query.status, 200);
    let jobs = get(&w.addr, "/api/jobs", &w.deploy).json();
    let names: Vec<&str> = jobs["jobs"].as_array().expect("jobs").iter().filter_map(|j| j["job"].as_str()).collect();
    assert!(names.iter().all(|n| n.starts_with("ci-test-deploy@")), "{names:?}");
    let deploy_state = get(&w.addr, "/api/job/ci-test-deploy@main/state", &w.deploy);
    assert_eq!(deploy_state.status, 200);
}

fn hostile_names() -> Vec<String> {
    let corpus = include_str!("../data/hostile-names.txt");
    corpus.lines().filter(|l| !l.is_empty() && !l.starts_with('#')).map(str::to_string).collect()
}

fn injection_corpus_over_http_starts_nothing(w: &World) {
    let names = hostile_names();
    assert!(names.len() >= 40, "corpus has {} names", names.len());
    let since = now_us();
    for name in &names {
        for (method, suffix) in [("POST", ""), ("POST", "/stop"), ("GET", "/state"), ("GET", "/logs")] {
            let raw = format!("{method} /api/job/{name}{suffix} HTTP/1.1\r\nAuthorization: Bearer {}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", w.rw);
            let answer = send_raw(&w.addr, raw.as_bytes());
            // 404 only where a name's own `/` took the path to another route.
            assert!(
                answer.status == 400 || (answer.status == 404 && name.contains('/')),
                "{method} {name:?}{suffix}: {} {}",
                answer.status,
                answer.body
            );
            assert!(!answer.body.contains(SENTINEL));
        }
    }
    std::thread::sleep(Duration::from_millis(300));
    let started = w.units_started_since(since);
    assert!(started.is_empty(), "units started during the corpus: {started:?}");
}

fn injection_corpus_in_the_cli_starts_nothing(w: &World) {
    let since = now_us();
    for name in hostile_names() {
        let decoded = percent_decode(&name);
        let arg: std::ffi::OsString = std::os::unix::ffi::OsStringExt::from_vec(decoded);
        if arg.as_encoded_bytes().contains(&0) {
            continue; // argv cannot hold a NUL
        }
        for verb in ["start", "stop", "state", "logs"] {
            let out =
                w.sb.command_as(USER, BIN).args(["--tokens", TOKENS, verb, "--"]).arg(&arg).output().expect("run");
            assert_eq!(out.status.code(), Some(2), "{verb} {name:?}: {}", String::from_utf8_lossy(&out.stderr));
        }
    }
    let started = w.units_started_since(since);
    assert!(started.is_empty(), "units started: {started:?}");
}

fn slow_client_does_not_block_others(w: &World) {
    let mut slow = std::net::TcpStream::connect(&w.addr).expect("connect");
    slow.write_all(b"GET /api/job/ci-test-hello/state HTTP/1.1\r\nHost: x\r\n").expect("partial");
    let started = Instant::now();
    for _ in 0..5 {
        assert_eq!(w.get("/api/job/ci-test-hello/state").status, 200);
    }
    assert!(started.elapsed() < Duration::from_secs(5), "other clients were held up");
    drop(slow);
}

fn sudo_as_user(w: &World, args: &[&str]) -> bool {
    let out = w.sb.command_as(USER, "/usr/bin/sudo").arg("-n").args(args).output().expect("sudo");
    out.status.success()
}

fn sudo_rule_allows_exactly_start_and_stop(w: &World) {
    let systemctl = "/usr/bin/systemctl";
    assert!(sudo_as_user(w, &[systemctl, "start", "--no-block", "--", "ci-test-hello.service"]), "allow! start");
    assert!(sudo_as_user(w, &[systemctl, "stop", "--no-block", "--", "ci-test-hello.service"]), "allow! stop");
    let denied: &[&[&str]] = &[
        &[systemctl, "start", "--no-block", "--", "ci-test-hello.service", "noise.service"],
        &[systemctl, "start", "--no-block", "--", "ci-test-hello.service", "ci-test-count.service"],
        &[systemctl, "start", "--no-block", "--", "noise.service"],
        &[systemctl, "restart", "--no-block", "--", "ci-test-hello.service"],
        &[systemctl, "enable", "--no-block", "--", "ci-test-hello.service"],
        &[systemctl, "start", "ci-test-hello.service"],
        &[systemctl, "start", "--no-block", "--", "ci-test-a other.service"],
        &["/usr/bin/journalctl", "--no-pager", "-n", "1"],
        &["/bin/sh", "-c", "id"],
    ];
    let since = now_us();
    for argv in denied {
        assert!(!sudo_as_user(w, argv), "DENY! {argv:?}");
    }
    let started = w.units_started_since(since);
    assert!(!started.iter().any(|u| u == "noise.service" || u == "ci-test-count.service"), "{started:?}");
}

fn admin_cli_as_the_service_user(w: &World) {
    w.run_to_end("ci-test-count");
    w.run_to_end("ci-test-fail");
    let out = w.cli(&["state", "ci-test-count"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("state: inactive"));
    let out = w.cli(&["--json", "state", "ci-test-count"]);
    let value: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(value["result"], "success");
    let out = w.cli(&["logs", "ci-test-count", "--lines", "2"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.lines().count(), 2, "{text}");
    let out = w.cli(&["jobs"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("ci-test-hello"));
    let out = w.cli(&["runs", "ci-test-fail"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("exit-code"));
    let out = w.cli(&["start", "ci-test-count"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    wait_until("ci-test-count has finished", Duration::from_secs(10), || {
        w.state("ci-test-count")["state"] == "inactive"
    });
    let out = w.cli(&["state", "ci-test-nope"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown job"));
    let out = w.cli(&["logs", "ci-test-count", "--lines", "zero"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("'--lines' with value 'zero'"));
    let out = w.cli(&["--prefix", "ci test", "jobs"]);
    assert_eq!(out.status.code(), Some(2));
}

fn check_passes_as_the_service_user(w: &World) {
    let out = w.cli(&["check"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("sudo allows: /usr/bin/systemctl start --no-block -- ci-test-"), "{text}");
    assert!(text.contains("sudo refuses, as it should: /usr/bin/systemctl restart"), "{text}");
}

fn token_file_permissions_and_admin(w: &World) {
    let file = "/run/jobgate-test/loose-tokens";
    w.sb.sh_ok(&format!("cp {TOKENS} {file} && chmod 0644 {file}"));
    let out = w.sb.command(BIN).args(["--tokens", file, "token", "list"]).output().expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is readable by others") && err.contains("chmod o-r"), "{err}");
    w.sb.sh_ok(&format!("chmod 0600 {file}"));
    let list = w.sb.command(BIN).args(["--tokens", file, "token", "list"]).output().expect("run");
    let text = String::from_utf8_lossy(&list.stdout);
    assert!(text.contains("ci-deploy") && text.contains("ci-test-deploy@*") && !text.contains("sha256"), "{text}");
    let revoke = w.sb.command(BIN).args(["--tokens", file, "token", "revoke", "ci-ro"]).output().expect("run");
    assert!(revoke.status.success());
    let after = w.sb.sh_ok(&format!("cat {file}"));
    assert!(!after.contains("ci-ro ") && after.contains("ci-rw "), "{after}");
    assert_eq!(w.sb.sh_ok(&format!("stat -c %a {file}")).trim(), "600", "mode kept on rewrite");
    let bad = w.sb.sh_ok(&format!("echo 'x admin sha256:00' >> {file}; {BIN} --tokens {file} token list 2>&1 || true"));
    assert!(bad.contains(&format!("{file}:")) && bad.contains("unknown scope 'admin'"), "{bad}");
    // A cursorless tail keeps the token's place under the state directory,
    // by the token's name.
    w.run_to_end("ci-test-count");
    assert_eq!(w.get("/api/job/ci-test-count/tail").status, 200);
    let state_files = w.sb.sh_ok(&format!("ls {STATE}/tail"));
    assert!(state_files.contains("ci-ro,ci-test-count"), "{state_files}");
}

/// Issue 24: a token removed by hand in an edit that also breaks another
/// line is refused at once: a version that does not read grants nothing
/// (keeping the last good one would keep the removed token working).
fn a_revoked_token_stays_revoked_when_the_edit_has_a_typo(w: &World) {
    let (file, state) = ("/run/jobgate-test/revoke-tokens", "/run/jobgate-test/revoke-state");
    w.sb.sh_ok(&format!(
        "cp {TOKENS} {file} && chown root:{USER} {file} && chmod 0640 {file} && mkdir -p {state} && chown {USER} {state}"
    ));
    let addr = format!("127.0.0.1:{}", super::free_port());
    w.sb.sh_ok(&format!(
        "systemd-run --quiet --unit=jobgate-revoke --uid={USER} --gid={USER} -p SupplementaryGroups=systemd-journal \
         {BIN} --tokens {file} --state-dir {state} serve --listen {addr}"
    ));
    super::wait_until("the serve of its own answers", Duration::from_secs(10), || {
        std::net::TcpStream::connect(&addr).is_ok()
    });
    let status = |token: &str| get(&addr, "/api/job/ci-test-hello/state", token).status;
    assert_eq!((status(&w.ro), status(&w.rw)), (200, 200));
    // ci-ro removed, and a typo in a line of its own.
    w.sb.sh_ok(&format!("sed -i '/^ci-ro /d' {file} && echo 'x admin sha256:00' >> {file}"));
    assert_eq!((status(&w.ro), status(&w.rw)), (401, 401), "nothing is taken until the file is fixed");
    let log = w.sb.sh_ok("journalctl --no-pager -o cat -u jobgate-revoke.service");
    assert!(log.contains("unknown scope 'admin'") && log.contains("nothing in"), "{log}");
    w.sb.sh_ok(&format!("sed -i '/^x admin/d' {file}"));
    assert_eq!((status(&w.ro), status(&w.rw)), (401, 200), "fixed: the revocation holds, the rest works");
    w.sb.sh_ok("systemctl stop jobgate-revoke.service");
}

fn access_log_names_tokens_never_shows_them(w: &World) {
    let _ = request(&w.addr, "GET", &format!("/api/job/ci-test-hello/state?token={}", w.ro), None);
    std::thread::sleep(Duration::from_millis(200));
    let log = w.sb.sh_ok("journalctl --no-pager -o cat -u jobgate-test.service");
    assert!(log.contains("GET /api/job/{job}/state job=ci-test-hello token=ci-ro status=200"), "{log}");
    for token in [&w.rw, &w.ro, &w.deploy] {
        assert!(!log.contains(token.as_str()), "a token reached the log");
    }
    assert!(!log.contains("token=jgt_") && !log.contains("?token"), "{log}");
}

pub fn pct(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn percent_decode(s: &str) -> Vec<u8> {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            if let Some(b) = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

const REDACTED: [&str; 4] = ["deploy starting", "api *** sent", "cache at /cache ok", "done"];

fn assert_redacted(what: &str, lines: &[String]) {
    assert_eq!(lines, REDACTED, "{what}");
}

fn text_lines(body: &str) -> Vec<String> {
    body.lines().map(str::to_string).collect()
}

/// Issue 6: neither the secret nor the skipped line leaves the host by any
/// route, in JSON or text; the stripped line comes without its match.
fn redaction_in_every_route_and_the_cli(w: &World) {
    let state = w.run_to_end("ci-test-secret");
    let run = state["run"].as_str().expect("run").to_string();
    let json_routes = [
        "/api/job/ci-test-secret/logs".to_string(),
        format!("/api/job/ci-test-secret/runs/{run}/logs"),
        format!("/api/job/ci-test-secret/logs?run={run}"),
    ];
    for route in &json_routes {
        let (lines, _) = w.logs(route);
        assert_redacted(route, &lines);
        let text = w.get(&format!("{route}{}format=text", if route.contains('?') { "&" } else { "?" }));
        assert_redacted(&format!("{route} as text"), &text_lines(&text.body));
    }
    let tail = w.get("/api/job/ci-test-secret/tail").json();
    let lines: Vec<String> =
        tail["logs"].as_array().expect("logs").iter().filter_map(|l| l.as_str().map(str::to_string)).collect();
    assert_redacted("tail", &lines);
    let again = w.get("/api/job/ci-test-secret/tail").json();
    assert_eq!(again["logs"], serde_json::json!([]), "the cursor moved past the skipped line too");
    let text_tail = get(&w.addr, "/api/job/ci-test-secret/tail?format=text", &w.rw);
    assert_redacted("tail as text", &text_lines(&text_tail.body));
    // lines=N counts the lines shown, after redaction.
    let (last_two, _) = w.logs("/api/job/ci-test-secret/logs?lines=2");
    assert_eq!(last_two, REDACTED[2..]);
    for route in ["/api/job/ci-test-secret/logs", "/api/job/ci-test-secret/tail?cursor=s%3D0%3Bi%3D0"] {
        let body = w.get(route).body;
        assert!(
            !body.contains("SECRET-TOKEN") && !body.contains("DEBUG") && !body.contains("alice"),
            "{route}: {body}"
        );
    }
    // Scoped rules apply to their jobs only.
    w.run_to_end("ci-test-deploy@main");
    let (deploy, _) = w.logs("/api/job/ci-test-deploy@main/logs");
    assert!(deploy.iter().any(|l| l.contains("***")) && !deploy.iter().any(|l| l.contains("branch")), "{deploy:?}");
    // The admin CLI applies the rules too, unless --raw is asked for by a
    // user who can read the journal anyway (the service user can).
    let out = w.cli(&["logs", "ci-test-secret"]);
    assert_redacted("cli logs", &text_lines(&String::from_utf8_lossy(&out.stdout)));
    let raw = w.cli(&["logs", "ci-test-secret", "--raw"]);
    assert!(String::from_utf8_lossy(&raw.stdout).contains("SECRET-TOKEN-123"), "--raw for a journal reader");
    let nobody =
        w.sb.command("setpriv")
            .args([
                "--reuid=nobody",
                "--regid=nogroup",
                "--clear-groups",
                "--reset-env",
                BIN,
                "logs",
                "ci-test-secret",
                "--raw",
            ])
            .output()
            .expect("run");
    assert_eq!(nobody.status.code(), Some(2), "{}", String::from_utf8_lossy(&nobody.stderr));
    assert!(String::from_utf8_lossy(&nobody.stderr).contains("--raw shows unredacted lines"));
}

fn redaction_file_errors_stop_the_start(w: &World) {
    let bad = "/run/jobgate-test/bad-redact";
    w.sb.write_file(bad, b"skip ^ok\nmask (unclosed\n", 0o600, USER);
    let out =
        w.sb.command_as(USER, BIN)
            .args(["--tokens", TOKENS, "--redact", bad, "serve", "--listen", "127.0.0.1:1"])
            .output()
            .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("{bad}:2: invalid regular expression '(unclosed'")), "{err}");
    w.sb.sh_ok(&format!("chmod 0644 {bad}"));
    let loose = w.sb.command_as(USER, BIN).args(["--redact", bad, "jobs"]).output().expect("run");
    assert!(String::from_utf8_lossy(&loose.stderr).contains("is readable by others"), "same rules as the token file");
}

/// Issue 5: one stable audit line per start or stop attempt, in the journal
/// of the jobgate unit; X-Forwarded-For is ignored unless its proxy is trusted.
fn audit_lines_for_every_start_and_stop(w: &World) {
    let ok = post(&w.addr, "/api/job/ci-test-count", &w.rw);
    let run = ok.json()["run"].as_str().expect("run").to_string();
    let forged = send_raw(
        &w.addr,
        format!("POST /api/job/ci-test-count HTTP/1.1\r\nAuthorization: Bearer {}\r\nX-Forwarded-For: 203.0.113.66\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", w.ro).as_bytes(),
    );
    assert_eq!(forged.status, 403);
    let _ = post(&w.addr, "/api/job/ci-test-nope/stop", &w.rw);
    std::thread::sleep(Duration::from_millis(300));
    let log = w.sb.sh_ok("journalctl --no-pager -o cat -u jobgate-test.service");
    for want in [
        format!("audit action=start outcome=ok job=ci-test-count token=ci-rw client=127.0.0.1 run={run}"),
        "audit action=start outcome=denied job=ci-test-count token=ci-ro client=127.0.0.1 run=-".to_string(),
        "audit action=stop outcome=unknown-job job=ci-test-nope token=ci-rw client=127.0.0.1 run=-".to_string(),
    ] {
        assert!(log.contains(&want), "missing: {want}");
    }
    assert!(!log.contains("203.0.113.66"), "an untrusted X-Forwarded-For reached the audit");
    wait_until("ci-test-count has finished", Duration::from_secs(10), || {
        w.state("ci-test-count")["state"] == "inactive"
    });
}

/// Issue 5: `check` as the service user reports a rule that allows more
/// than one unit (the classic '*' wildcard) and exits non-zero.
fn check_finds_a_wildcard_sudo_rule(w: &World) {
    let wide = format!(
        "{USER} ALL = (root) NOPASSWD: /usr/bin/systemctl start --no-block -- ci-test-*, /usr/bin/systemctl stop --no-block -- ci-test-*\n"
    );
    w.sb.sh_ok("cp /etc/sudoers.d/jobgate /run/jobgate-test/sudoers.good");
    w.sb.write_file("/etc/sudoers.d/jobgate", wide.as_bytes(), 0o440, "root");
    let out = w.cli(&["check"]);
    w.sb.sh_ok("cp /run/jobgate-test/sudoers.good /etc/sudoers.d/jobgate");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("FAIL sudo allows too much") && text.contains("ci-test-jobgate-check2.service"), "{text}");
    assert!(text.contains("not a '*' wildcard"), "the fix is named: {text}");
    assert!(w.cli(&["check"]).status.success(), "the shipped rule is back");
    // A token file others may read, and one with an unknown scope.
    let loose = "/run/jobgate-test/check-tokens";
    w.sb.sh_ok(&format!("cp {TOKENS} {loose} && chown {USER} {loose} && chmod 0644 {loose}"));
    let out = w.sb.command_as(USER, BIN).args(["--tokens", loose, "check"]).output().expect("check");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1));
    assert!(text.contains("FAIL") && text.contains("is readable by others") && text.contains("chmod o-r"), "{text}");
    w.sb.sh_ok(&format!("chmod 0600 {loose} && echo 'x admin sha256:00' >> {loose}"));
    let out = w.sb.command_as(USER, BIN).args(["--tokens", loose, "check"]).output().expect("check");
    assert!(String::from_utf8_lossy(&out.stdout).contains("unknown scope 'admin' (expected 'ro', 'rw' or 'metrics')"));
    let out =
        w.sb.command_as(USER, BIN).args(["--tokens", TOKENS, "--prefix", "nothing-", "check"]).output().expect("check");
    assert!(String::from_utf8_lossy(&out.stdout).contains("FAIL no unit matches nothing-*.service"));
}

/// Issue 5: the shipped polkit rule and polkit-mode unit (NoNewPrivileges,
/// seccomp), as shipped but for paths, user and port: start and stop pass,
/// other verbs and units are refused, and sudo is not involved.
fn polkit_instead_of_sudo(w: &World) {
    let repo = env!("CARGO_MANIFEST_DIR");
    let rule = std::fs::read_to_string(format!("{repo}/contrib/polkit/50-jobgate.rules")).expect("rule");
    let rule = rule.replace("subject.user != \"jobgate\"", &format!("subject.user != \"{USER}\""));
    w.sb.write_file("/etc/polkit-1/rules.d/50-jobgate.rules", rule.as_bytes(), 0o644, "root");
    // Without sudo: the test user's sudo rule is taken away meanwhile.
    w.sb.sh_ok("mv /etc/sudoers.d/jobgate /run/jobgate-test/sudoers.away");
    let port = super::free_port();
    let unit = shipped_unit("jobgate-polkit.service").replace("127.0.0.1:8000", &format!("127.0.0.1:{port}"));
    w.sb.install_unit("jobgate-polkit-test.service", &unit);
    w.sb.sh_ok("systemctl start jobgate-polkit-test.service");
    let addr = format!("127.0.0.1:{port}");
    wait_until("the polkit-mode jobgate answers", Duration::from_secs(10), || {
        std::net::TcpStream::connect(&addr).is_ok()
    });
    let nnp = w.sb.sh_ok("systemctl show -p NoNewPrivileges --value jobgate-polkit-test.service");

    let started = post(&addr, "/api/job/ci-test-count", &w.rw);
    let stopped = post(&addr, "/api/job/ci-test-slow/stop", &w.rw);
    let as_user = |args: &[&str]| {
        w.sb.command_as(USER, "/usr/bin/systemctl")
            .arg("--no-ask-password")
            .args(args)
            .output()
            .expect("systemctl")
            .status
            .success()
    };
    let refused = [
        as_user(&["restart", "--no-block", "--", "ci-test-count.service"]),
        as_user(&["start", "--no-block", "--", "noise.service"]),
        as_user(&["kill", "--", "ci-test-count.service"]),
        // %I would make the instance a path.
        as_user(&["start", "--no-block", "--", "ci-test-deploy@a-..-..-x.service"]),
    ];
    w.sb.sh_ok("systemctl stop jobgate-polkit-test.service; mv /run/jobgate-test/sudoers.away /etc/sudoers.d/jobgate; rm /etc/polkit-1/rules.d/50-jobgate.rules");
    assert_eq!(nnp.trim(), "yes");
    assert_eq!(started.status, 200, "start through polkit: {}", started.body);
    assert!(started.json()["run"].is_string(), "{}", started.body);
    assert_eq!(stopped.status, 200, "stop through polkit: {}", stopped.body);
    assert_eq!(refused, [false, false, false, false], "DENY! restart, a unit without the prefix, kill, '..'");
    wait_until("ci-test-count has finished", Duration::from_secs(10), || {
        w.state("ci-test-count")["state"] == "inactive"
    });
}

/// A unit from contrib/systemd, as shipped but for the binary, token file,
/// state directory (the test's own, in the sandbox's /run) and user.
pub fn shipped_unit(file: &str) -> String {
    let text = std::fs::read_to_string(format!("{}/contrib/systemd/{file}", env!("CARGO_MANIFEST_DIR"))).expect("unit");
    text.replace("/usr/bin/jobgate", BIN)
        .replace("--tokens /etc/jobgate/tokens", &format!("--tokens {TOKENS} --state-dir {STATE}"))
        .replace("User=jobgate", &format!("User={USER}"))
        .replace("Group=jobgate", &format!("Group={USER}"))
        .replace("StateDirectory=jobgate\n", "")
        .replace("StateDirectoryMode=0700\n", "")
}

/// The shipped per-connection units (Accept=yes) on a free port; returns
/// the address the socket listens on.
pub fn start_inetd_socket(w: &World) -> String {
    let port = super::free_port();
    w.sb.install_unit("jobgate@.service", &shipped_unit("jobgate@.service"));
    let socket = shipped_unit("jobgate.socket").replace("127.0.0.1:8000", &format!("127.0.0.1:{port}"));
    w.sb.install_unit("jobgate.socket", &socket);
    w.sb.sh_ok("systemctl restart jobgate.socket");
    format!("127.0.0.1:{port}")
}

/// The shipped passed-listener units (Accept=no) as `name`, listening on
/// `listen` (a TCP address or a Unix socket path).
fn start_passed_socket(w: &World, name: &str, listen: &str) {
    let service = shipped_unit("jobgate-http.service").replace("jobgate-http.socket", &format!("{name}.socket"));
    w.sb.install_unit(&format!("{name}.service"), &service);
    let socket =
        shipped_unit("jobgate-http.socket").replace("ListenStream=127.0.0.1:8000", &format!("ListenStream={listen}"));
    w.sb.install_unit(&format!("{name}.socket"), &socket);
    w.sb.sh_ok(&format!("systemctl restart {name}.socket"));
}

/// One request of the shared table, as raw bytes and as a CGI environment.
struct Case {
    method: &'static str,
    target: String,
    auth: Option<String>,
}

/// A CGI run of `case` as the service user: (status, content type, body).
fn cgi(w: &World, case: &Case) -> (u16, String, String) {
    let mut cmd = w.sb.command_as(USER, "/usr/bin/env");
    cmd.args([
        format!("REQUEST_METHOD={}", case.method),
        format!("REQUEST_URI={}", case.target),
        "REMOTE_ADDR=127.0.0.1".into(),
    ]);
    if let Some(auth) = &case.auth {
        cmd.arg(format!("HTTP_AUTHORIZATION={auth}"));
    }
    let out = cmd.args([BIN, "--tokens", TOKENS, "--state-dir", STATE, "cgi"]).output().expect("cgi");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.strip_prefix("Status: ").and_then(|s| s.get(..3)).and_then(|s| s.parse().ok()).unwrap_or(0);
    let content_type = head.lines().find_map(|l| l.strip_prefix("Content-Type: ")).unwrap_or_default().to_string();
    (status, content_type, body.to_string())
}

/// Issue 3: the same requests get the same status, content type and body
/// from serve, from inetd under a real Accept=yes socket, and from cgi.
fn same_answers_from_serve_inetd_and_cgi(w: &World) {
    let inetd = start_inetd_socket(w);
    let passed = format!("127.0.0.1:{}", super::free_port());
    start_passed_socket(w, "jobgate-http", &passed);
    let bearer = |t: &str| Some(format!("Bearer {t}"));
    let cases = [
        Case { method: "GET", target: "/".into(), auth: None },
        Case { method: "GET", target: "/api/job/ci-test-never/state".into(), auth: bearer(&w.ro) },
        Case { method: "GET", target: "/api/job/ci-test-never/logs".into(), auth: bearer(&w.ro) },
        Case { method: "GET", target: "/api/job/ci-test-never/logs?format=text".into(), auth: bearer(&w.ro) },
        Case { method: "GET", target: "/api/job/ci-test-never/runs".into(), auth: bearer(&w.ro) },
        Case { method: "GET", target: format!("/api/job/ci-test-never/state?token={}", w.ro), auth: None },
        Case { method: "GET", target: "/api/job/ci-test-never/state".into(), auth: None },
        Case { method: "GET", target: "/api/job/ci-test-never/state".into(), auth: bearer("jgt_wrong") },
        Case { method: "POST", target: "/api/job/ci-test-never".into(), auth: bearer(&w.ro) },
        Case { method: "GET", target: "/api/job/ci-test-a%2F..%2Fssh/state".into(), auth: bearer(&w.ro) },
        Case { method: "GET", target: "/api/job/ci-test-nope/state".into(), auth: bearer(&w.ro) },
        Case { method: "GET", target: "/api/nope".into(), auth: bearer(&w.ro) },
        Case { method: "DELETE", target: "/api/job/ci-test-never/state".into(), auth: bearer(&w.ro) },
        Case { method: "GET", target: "/api/job/ci-test-never/logs?lines=zero".into(), auth: bearer(&w.ro) },
    ];
    for case in &cases {
        let auth = case.auth.as_ref().map(|a| format!("Authorization: {a}\r\n")).unwrap_or_default();
        let raw = format!(
            "{} {} HTTP/1.1\r\nHost: x\r\n{auth}Content-Length: 0\r\nConnection: close\r\n\r\n",
            case.method, case.target
        );
        let from_serve = send_raw(&w.addr, raw.as_bytes());
        let from_inetd = send_raw(&inetd, raw.as_bytes());
        let want = (
            from_serve.status,
            from_serve.header("Content-Type").unwrap_or_default().to_string(),
            from_serve.body.clone(),
        );
        let got_inetd = (
            from_inetd.status,
            from_inetd.header("Content-Type").unwrap_or_default().to_string(),
            from_inetd.body.clone(),
        );
        assert_eq!(got_inetd, want, "inetd vs serve: {} {}", case.method, case.target);
        let from_passed = send_raw(&passed, raw.as_bytes());
        let got_passed =
            (from_passed.status, from_passed.header("Content-Type").unwrap_or_default().to_string(), from_passed.body);
        assert_eq!(got_passed, want, "serve on a passed socket vs serve: {} {}", case.method, case.target);
        assert_eq!(cgi(w, case), want, "cgi vs serve: {} {}", case.method, case.target);
        assert_eq!(from_inetd.header("Connection"), Some("close"));
    }
    let http10 = send_raw(&inetd, b"GET / HTTP/1.0\r\n\r\n");
    assert_eq!(http10.status, 200);
    let pid = w.sb.sh_ok("systemctl show -p MainPID --value jobgate-http.service");
    let fds = w.sb.sh_ok(&format!("ls -l /proc/{}/fd | grep -c socket: || true", pid.trim()));
    assert!(fds.trim().parse::<u32>().unwrap_or(0) >= 1, "serve holds the passed socket");
    // A Unix socket, as nginx on the same host would use.
    start_passed_socket(w, "jobgate-unix", "/run/jobgate-test/http.sock");
    let unix = w.sb.sh_ok("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | timeout 10 python3 -c 'import socket,sys; s=socket.socket(socket.AF_UNIX); s.connect(\"/run/jobgate-test/http.sock\"); s.sendall(sys.stdin.buffer.read()); print(s.recv(65536).decode())'");
    assert!(unix.starts_with("HTTP/1.1 200 OK"), "{unix}");
    let log = w.sb.sh_ok("journalctl --no-pager -o cat -u jobgate-unix.service");
    assert!(log.contains("/run/jobgate-test/http.sock") && log.contains("passed by systemd"), "{log}");
}

/// Issue 3: the hard limits, in serve, in inetd under its socket unit, and
/// in cgi: 431, 413 (nothing read past the limit), 400, and 408 for a client
/// that goes quiet for 10 s while others are answered meanwhile.
fn limits_in_every_front_end(w: &World) {
    let inetd = start_inetd_socket(w);
    let long = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(9000));
    let many: String = (0..80).map(|i| format!("X-{i}: y\r\n")).collect();
    let mut slow = Vec::new();
    for addr in [w.addr.as_str(), inetd.as_str()] {
        assert_eq!(send_raw(addr, long.as_bytes()).status, 431, "{addr}: a long request line");
        assert_eq!(
            send_raw(addr, format!("GET / HTTP/1.1\r\n{many}\r\n").as_bytes()).status,
            431,
            "{addr}: many headers"
        );
        assert_eq!(send_raw(addr, b"POST / HTTP/1.1\r\nContent-Length: 70000\r\n\r\n").status, 413, "{addr}");
        assert_eq!(send_raw(addr, b"\x16\x03\x01\x02\x00\r\n\r\n").status, 400, "{addr}: a TLS hello");
        assert_eq!(send_raw(addr, b"GET / HTTP/1.0\r\n\r\n").status, 200, "{addr}: HTTP/1.0");
        let mut client = std::net::TcpStream::connect(addr).expect("connect");
        client.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").expect("partial");
        slow.push((addr.to_string(), client));
    }
    let started = Instant::now();
    for addr in [w.addr.as_str(), inetd.as_str()] {
        assert_eq!(send_raw(addr, b"GET / HTTP/1.1\r\n\r\n").status, 200, "{addr}: served meanwhile");
    }
    assert!(started.elapsed() < Duration::from_secs(2));
    for (addr, mut client) in slow {
        client.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
        let mut answer = String::new();
        let _ = std::io::Read::read_to_string(&mut client, &mut answer);
        assert!(answer.starts_with("HTTP/1.1 408 "), "{addr}: {answer}");
    }
    assert!(started.elapsed() >= Duration::from_secs(9), "408 came after {:?}", started.elapsed());
    let mut too_big = w.sb.command_as(USER, "/usr/bin/env");
    let out = too_big
        .args([
            "REQUEST_METHOD=POST",
            "REQUEST_URI=/",
            "CONTENT_LENGTH=70000",
            BIN,
            "--tokens",
            TOKENS,
            "--state-dir",
            STATE,
            "cgi",
        ])
        .output()
        .expect("cgi");
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("Status: 413 "));
}

/// nginx and fcgiwrap in the sandbox, with the shipped sites (ports, paths
/// and certificate substituted): returns (the serve site, the CGI site).
pub fn start_nginx(w: &World) -> (String, String) {
    start_nginx_to(w, &w.addr)
}

/// [`start_nginx`] with the serve site's upstream at `upstream`.
pub fn start_nginx_to(w: &World, upstream: &str) -> (String, String) {
    let repo = env!("CARGO_MANIFEST_DIR");
    let dir = "/run/jobgate-test/nginx";
    let (proxy_port, cgi_port) = (super::free_port(), super::free_port());
    w.sb.sh_ok(&format!(
        "mkdir -p {dir} && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
         -subj /CN=localhost -keyout {dir}/tls.key -out {dir}/tls.pem 2>/dev/null"
    ));
    let common = |conf: String, port: u16| {
        conf.replace("listen 443 ssl;", &format!("listen 127.0.0.1:{port} ssl;"))
            .replace("    listen [::]:443 ssl;\n", "")
            .replace("/etc/ssl/certs/ci.example.org.pem", &format!("{dir}/tls.pem"))
            .replace("/etc/ssl/private/ci.example.org.key", &format!("{dir}/tls.key"))
            .replace("/var/log/nginx/jobgate.access.log", &format!("{dir}/access.log"))
    };
    let site = std::fs::read_to_string(format!("{repo}/contrib/nginx/jobgate.conf")).expect("site");
    let site = common(site, proxy_port).replace("server 127.0.0.1:8000 ", &format!("server {upstream} "));
    let cgi = std::fs::read_to_string(format!("{repo}/contrib/nginx/jobgate-cgi.conf")).expect("cgi site");
    let cgi = common(cgi, cgi_port)
        .replace("/usr/local/lib/jobgate/jobgate.cgi", &format!("{dir}/jobgate.cgi"))
        .replace("include fastcgi_params;", "include /etc/nginx/fastcgi_params;");
    let wrapper = std::fs::read_to_string(format!("{repo}/contrib/cgi/jobgate.cgi")).expect("wrapper");
    let wrapper = wrapper
        .replace("/usr/bin/jobgate", BIN)
        .replace("/etc/jobgate/tokens", TOKENS)
        .replace("/var/lib/jobgate", STATE);
    let main = format!(
        "user www-data;\npid {dir}/nginx.pid;\nerror_log {dir}/error.log;\nevents {{}}\nhttp {{\n\
         client_body_temp_path {dir}/body;\nproxy_temp_path {dir}/proxy;\nfastcgi_temp_path {dir}/fastcgi;\n\
         uwsgi_temp_path {dir}/uwsgi;\nscgi_temp_path {dir}/scgi;\ninclude {dir}/site.conf;\ninclude {dir}/cgi.conf;\n}}\n"
    );
    w.sb.write_file(&format!("{dir}/site.conf"), site.as_bytes(), 0o644, "root");
    w.sb.write_file(&format!("{dir}/cgi.conf"), cgi.as_bytes(), 0o644, "root");
    w.sb.write_file(&format!("{dir}/nginx.conf"), main.as_bytes(), 0o644, "root");
    w.sb.write_file(&format!("{dir}/jobgate.cgi"), wrapper.as_bytes(), 0o755, "root");
    // jobgate's own fcgiwrap, as shipped, as the service user.
    w.sb.install_unit("jobgate-fcgiwrap.socket", &shipped_unit("jobgate-fcgiwrap.socket"));
    w.sb.install_unit("jobgate-fcgiwrap.service", &shipped_unit("jobgate-fcgiwrap.service"));
    // An nginx an earlier test left running goes first.
    let _ = w.sb.sh("systemctl stop nginx-test; systemctl reset-failed nginx-test");
    w.sb.sh_ok(&format!(
        "systemctl restart jobgate-fcgiwrap.socket && nginx -t -c {dir}/nginx.conf 2>&1 && \
         systemd-run --quiet --unit=nginx-test nginx -c {dir}/nginx.conf -g 'daemon off;'"
    ));
    let (proxy, cgi) = (format!("127.0.0.1:{proxy_port}"), format!("127.0.0.1:{cgi_port}"));
    for addr in [&proxy, &cgi] {
        wait_until("nginx answers", Duration::from_secs(10), || std::net::TcpStream::connect(addr.as_str()).is_ok());
    }
    (proxy, cgi)
}

/// (status, content type, body) of a request through TLS with curl.
fn curl(addr: &str, method: &str, target: &str, auth: Option<&str>) -> (u16, String, String) {
    let mut cmd = std::process::Command::new("curl");
    cmd.args(["-sk", "--path-as-is", "-X", method, "-w", "\n%{http_code} %{content_type}"]);
    if let Some(auth) = auth {
        cmd.args(["-H", &format!("Authorization: {auth}")]);
    }
    let out = cmd.arg(format!("https://{addr}{target}")).output().expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    // The -w line comes after the body, on a line of its own.
    let (body, last) = text.rsplit_once('\n').unwrap_or(("", &text));
    let (code, content_type) = last.split_once(' ').unwrap_or((last, ""));
    (code.parse().unwrap_or(0), content_type.to_string(), body.to_string())
}

/// Issue 3: the shipped nginx sites, TLS in front of serve and of cgi
/// through fcgiwrap, give the same answers as serve itself; query strings
/// (tokens) stay out of nginx's log; nginx enforces the size limits.
fn through_nginx_to_serve_and_to_cgi(w: &World) {
    let (proxy, cgi) = start_nginx(w);
    let ro = format!("Bearer {}", w.ro);
    let cases: Vec<(&str, String, Option<&str>)> = vec![
        ("GET", "/".into(), None),
        ("GET", "/api/job/ci-test-never/state".into(), Some(&ro)),
        ("GET", "/api/job/ci-test-never/logs?format=text".into(), Some(&ro)),
        ("GET", format!("/api/job/ci-test-never/state?token={}", w.ro), None),
        ("GET", "/api/job/ci-test-never/state".into(), None),
        ("POST", "/api/job/ci-test-never".into(), Some(&ro)),
        ("GET", "/api/job/ci-test-a%2F..%2Fssh/state".into(), Some(&ro)),
        ("GET", "/api/job/ci-test-nope/state".into(), Some(&ro)),
        ("DELETE", "/api/job/ci-test-never/state".into(), Some(&ro)),
    ];
    for (method, target, auth) in &cases {
        let raw_auth = auth.map(|a| format!("Authorization: {a}\r\n")).unwrap_or_default();
        let raw = format!(
            "{method} {target} HTTP/1.1\r\nHost: x\r\n{raw_auth}Content-Length: 0\r\nConnection: close\r\n\r\n"
        );
        let direct = send_raw(&w.addr, raw.as_bytes());
        let want = (direct.status, direct.header("Content-Type").unwrap_or_default().to_string(), direct.body);
        assert_eq!(curl(&proxy, method, target, *auth), want, "nginx -> serve: {method} {target}");
        assert_eq!(curl(&cgi, method, target, *auth), want, "nginx -> fcgiwrap -> cgi: {method} {target}");
    }
    let log = w.sb.sh_ok("cat /run/jobgate-test/nginx/access.log");
    assert!(log.contains("\"GET /api/job/ci-test-never/state\" 200") && !log.contains("token="), "{log}");
    let big_header = format!("X-Big: {}", "a".repeat(9000));
    let out = std::process::Command::new("curl")
        .args(["-sk", "-o", "/dev/null", "-w", "%{http_code}", "-H", &big_header, &format!("https://{proxy}/")])
        .output()
        .expect("curl");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "400", "nginx refuses headers over 8 KiB");
    w.sb.sh_ok("systemctl stop nginx-test.service jobgate-fcgiwrap.socket jobgate-fcgiwrap.service");
}

/// The unit's last journal entries, for a failing assertion's message.
fn journal_dump(w: &World, job: &str) -> String {
    w.sb.sh_ok(&format!(
        "journalctl -u {job}.service -o json --no-pager --output-fields=MESSAGE,INVOCATION_ID,_SYSTEMD_INVOCATION_ID,_PID,MESSAGE_ID \
         | tail -n 16 | sed 's/\"__[A-Z_]*\":\"[^\"]*\",\\?//g; s/\"_BOOT_ID\":\"[^\"]*\",\\?//g'"
    ))
}

/// HMAC-SHA256 of `body` under `key`, as lowercase hex, with openssl (not
/// jobgate's code) so the test signs as GitHub and Cirrus document it.
fn hmac_hex(key: &str, body: &str) -> String {
    let mut child = std::process::Command::new("openssl")
        .args(["dgst", "-sha256", "-hmac", key, "-r"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("openssl");
    child.stdin.take().expect("stdin").write_all(body.as_bytes()).expect("body");
    let out = child.wait_with_output().expect("openssl");
    String::from_utf8_lossy(&out.stdout).split_whitespace().next().unwrap_or_default().to_string()
}

fn hook(w: &World, job: &str, body: &str, headers: &[(&str, String)]) -> Answer {
    let extra: String = headers.iter().map(|(n, v)| format!("{n}: {v}\r\n")).collect();
    let raw = format!(
        "POST /hook/{job} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    send_raw(&w.addr, raw.as_bytes())
}

/// Issue 4: a correctly signed webhook starts its job (GitHub and Cirrus
/// HMAC of the raw body, GitLab's token); a wrong or missing signature is
/// 401 and starts nothing; the event and ref filters hold; each attempt is
/// audited with the hook's name.
fn signed_webhooks_start_jobs(w: &World) {
    let body = r#"{"ref":"refs/heads/main","after":"0123abc"}"#;
    let since = now_us();
    let denied = [
        hook(w, "ci-test-count", body, &[("X-GitHub-Event", "push".into())]),
        hook(
            w,
            "ci-test-count",
            body,
            &[("X-Hub-Signature-256", format!("sha256={}", hmac_hex("wrong-secret-0123456789", body)))],
        ),
        hook(
            w,
            "ci-test-count",
            body,
            &[("X-Hub-Signature-256", format!("sha256={}", hmac_hex(super::HOOK_SECRET, "{}")))],
        ),
        hook(
            w,
            "ci-test-hello",
            body,
            &[("X-Hub-Signature-256", format!("sha256={}", hmac_hex(super::HOOK_SECRET, body)))],
        ),
        hook(w, "ci-test-count", body, &[("X-Gitlab-Token", "gitlab-token-0123456789abcdeX".into())]),
    ];
    for answer in &denied {
        assert_eq!((answer.status, answer.msg()), (401, "Invalid signature".to_string()), "{}", answer.body);
    }
    assert!(w.units_started_since(since).is_empty(), "a refused hook started something");

    let signature = format!("sha256={}", hmac_hex(super::HOOK_SECRET, body));
    let tag = r#"{"ref":"refs/tags/v1"}"#;
    let ignored = hook(
        w,
        "ci-test-count",
        tag,
        &[
            ("X-GitHub-Event", "push".into()),
            ("X-Hub-Signature-256", format!("sha256={}", hmac_hex(super::HOOK_SECRET, tag))),
        ],
    );
    assert_eq!((ignored.status, ignored.json()["reason"].as_str()), (200, Some("ref")), "{}", ignored.body);
    let ping = hook(
        w,
        "ci-test-count",
        body,
        &[("X-GitHub-Event", "ping".into()), ("X-Hub-Signature-256", signature.clone())],
    );
    assert_eq!(ping.json()["reason"], "event");
    assert!(w.units_started_since(since).is_empty(), "an ignored hook started something");

    let delivery = [("X-GitHub-Event", "push".into()), ("X-Hub-Signature-256", signature)];
    let github = hook(w, "ci-test-count", body, &delivery);
    assert_eq!((github.status, github.msg()), (200, "Job started".to_string()), "{}", github.body);
    let run = github.json()["run"].as_str().expect("run").to_string();
    wait_until("the hooked run has finished", Duration::from_secs(10), || {
        w.state("ci-test-count")["state"] == "inactive"
    });
    // A captured delivery, sent again, starts nothing.
    let since_replay = now_us();
    let replay = hook(w, "ci-test-count", body, &delivery);
    assert_eq!((replay.status, replay.msg()), (409, "Delivery already seen".to_string()), "{}", replay.body);
    std::thread::sleep(Duration::from_millis(300));
    assert!(w.units_started_since(since_replay).is_empty(), "a replayed delivery started the job");
    let gitlab = hook(w, "ci-test-count", "{}", &[("X-Gitlab-Token", "gitlab-token-0123456789abcdef".into())]);
    assert_eq!(gitlab.status, 200, "{}", gitlab.body);
    // GitLab's token, the secret itself, on a line without gitlab=token.
    let unasked = hook(w, "ci-test-hello", "{}", &[("X-Gitlab-Token", "gitlab-unasked-0123456789abcdef".into())]);
    assert_eq!(unasked.status, 401, "{}", unasked.body);
    wait_until("the second hooked run has finished", Duration::from_secs(10), || {
        w.state("ci-test-count")["state"] == "inactive"
    });
    let cirrus_body = "{}";
    let cirrus =
        hook(w, "ci-test-count", cirrus_body, &[("X-Cirrus-Signature", hmac_hex(super::HOOK_SECRET, cirrus_body))]);
    assert_eq!(
        cirrus.json()["reason"],
        "event",
        "the github hook's filters apply to a Cirrus signature made with its secret too"
    );
    std::thread::sleep(Duration::from_millis(300));
    let log = w.sb.sh_ok("journalctl --no-pager -o cat -u jobgate-test.service");
    assert!(
        log.contains(&format!(
            "audit action=hook outcome=ok job=ci-test-count token=github-count client=127.0.0.1 run={run}"
        )),
        "audited"
    );
    assert!(log.contains("audit action=hook outcome=unauthenticated job=ci-test-count token=- client=127.0.0.1 run=-"));
    assert!(
        log.contains("audit action=hook outcome=ignored job=ci-test-count token=github-count client=127.0.0.1 run=-")
    );
    assert!(
        log.contains("audit action=hook outcome=refused job=ci-test-count token=github-count client=127.0.0.1 run=-")
    );
}
