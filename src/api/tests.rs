//! Routing, authentication and authorization of the core, with a recorded
//! runner standing in for systemd (the real one is in tests/system).

use std::sync::Arc;

use super::http::{Request, Response};
use super::*;
use crate::auth::{hex, sha256};
use crate::journal::export::from_json_lines;
use crate::names::Prefix;
use crate::systemd::run::RecordingRunner;

const RW: &str = "jgt_rw";
const RO: &str = "jgt_ro";
const DEPLOY: &str = "jgt_deploy";
const METRICS: &str = "jgt_metrics";
const RUN: &str = "0123456789abcdef0123456789abcdef";

/// An [`Api`] whose state directory goes when the test ends.
struct TestApi(Api, std::path::PathBuf);

impl std::ops::Deref for TestApi {
    type Target = Api;
    fn deref(&self) -> &Api {
        &self.0
    }
}

impl Drop for TestApi {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.1);
    }
}

fn api_with(runner: RecordingRunner) -> (TestApi, Arc<RecordingRunner>) {
    let text = format!(
        "rw rw sha256:{}\nro ro sha256:{}\ndeploy rw sha256:{} ci-test-deploy@*\nscrape metrics sha256:{}\n",
        hex(&sha256(RW)),
        hex(&sha256(RO)),
        hex(&sha256(DEPLOY)),
        hex(&sha256(METRICS))
    );
    let tokens = TokenStore::fixed(TokenFile::parse("tokens", &text).expect("tokens"));
    let runner = Arc::new(runner);
    let prefix = Prefix::parse("ci-test-").expect("prefix");
    // One state directory per test: the follow slots in it are counted.
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let state_dir = std::env::temp_dir().join(format!("jobgate-api-test-{}-{n}", std::process::id()));
    let follow = follow::Limits {
        max_streams: 1,
        max_per_token: 1,
        max_duration: follow::DEFAULT_MAX_DURATION,
        slot_dir: state_dir.join("follow"),
    };
    let api = Api {
        jobs: Arc::new(Jobs::new(prefix, crate::ops::journalctl_tools(), runner.clone())),
        tokens,
        tails: TailState::new(state_dir.clone()),
        trust_proxy: None,
        hooks: None,
        trust: None,
        follow,
        counters: crate::metrics::Counters::in_state_dir(&state_dir),
        health: crate::api::Health::default(),
    };
    (TestApi(api, state_dir), runner)
}

fn loaded(active: &str) -> RecordingRunner {
    RecordingRunner::default().answer(
        &["show"],
        true,
        &format!("LoadState=loaded\nActiveState={active}\nInvocationID={RUN}\n"),
    )
}

fn call(api: &Api, method: &str, target: &str, token: Option<&str>) -> (u16, String) {
    let mut req = Request::new(method, target);
    if let Some(token) = token {
        req = req.with_header("Authorization", &format!("Bearer {token}"));
    }
    let (response, _) = api.handle(&req);
    (response.status, body_text(response))
}

fn body_text(response: Response) -> String {
    String::from_utf8_lossy(&response.body).into_owned()
}

#[test]
fn describe_needs_no_token() {
    let (api, _) = api_with(loaded("inactive"));
    let (status, body) = call(&api, "GET", "/", None);
    assert_eq!(status, 200);
    assert!(body.contains("\"name\":\"jobgate\""), "{body}");
}

#[test]
fn status_codes_table() {
    let (api, _) = api_with(loaded("active"));
    let cases: &[(&str, &str, Option<&str>, u16, &str)] = &[
        ("GET", "/nope", Some(RW), 404, "Not found"),
        ("GET", "/api/job/ci-test-a/nope", Some(RW), 404, "Not found"),
        ("GET", "/api/job/ci-test-a/state/", Some(RW), 404, "Not found"),
        ("GET", "/api/job/ci-test-a", Some(RW), 405, "Method not allowed"),
        ("POST", "/api/job/ci-test-a/state", Some(RW), 405, "Method not allowed"),
        ("DELETE", "/api/jobs", Some(RW), 405, "Method not allowed"),
        ("GET", "/api/job/ci-test-a/state", None, 401, "Missing or invalid token"),
        ("GET", "/api/job/ci-test-a/state", Some("wrong"), 401, "Missing or invalid token"),
        ("GET", "/api/job/ci-test-a%2F..%2Fx/state", Some(RW), 400, "Invalid job"),
        ("GET", "/api/job/ssh/state", Some(RW), 400, "Invalid job"),
        ("GET", "/api/job/ci-test-a.service/state", Some(RW), 400, "Invalid job"),
        ("POST", "/api/job/ci-test-a", Some(RO), 403, "Not permitted"),
        ("POST", "/api/job/ci-test-a/stop", Some(RO), 403, "Not permitted"),
        ("GET", "/api/job/ci-test-a/state", Some(DEPLOY), 403, "Not permitted"),
        ("POST", "/api/job/ci-test-a", Some(RW), 425, "Job is already active"),
        ("GET", "/api/job/ci-test-a/logs?lines=abc", Some(RO), 400, "Invalid lines"),
        ("GET", "/api/job/ci-test-a/logs?run=..", Some(RO), 400, "Invalid run"),
        ("GET", "/api/job/ci-test-a/tail?cursor=--all", Some(RO), 400, "Invalid cursor"),
        ("GET", "/api/job/ci-test-a/runs?limit=0", Some(RO), 400, "Invalid limit"),
        ("GET", "/api/job/ci-test-a/logs?format=xml", Some(RO), 400, "Invalid format"),
        ("GET", "/api/job/ci-test-a/logs?x=%zz", Some(RO), 400, "Invalid query"),
        ("GET", "/api/job/ci-test-a/runs/nope/logs", Some(RO), 400, "Invalid run"),
    ];
    for (method, target, token, status, msg) in cases {
        let (got, body) = call(&api, method, target, *token);
        assert_eq!(got, *status, "{method} {target}: {body}");
        assert_eq!(body.trim(), json!({ "msg": msg }).to_string(), "{method} {target}");
    }
}

#[test]
fn a_bad_name_runs_nothing() {
    let (api, runner) = api_with(loaded("inactive"));
    for target in ["/api/job/ci-test-a;id", "/api/job/--help", "/api/job/ci-test-*", "/api/job/ci-test-a%00"] {
        assert_eq!(call(&api, "POST", target, Some(RW)).0, 400, "{target}");
    }
    assert!(runner.recorded().is_empty());
}

#[test]
fn unknown_jobs_are_404() {
    let runner = RecordingRunner::default().answer(&["show"], true, "LoadState=not-found\n");
    let (api, runner) = api_with(runner);
    assert_eq!(
        call(&api, "POST", "/api/job/ci-test-nope", Some(RW)),
        (404, json!({"msg": "Unknown job"}).to_string() + "\n")
    );
    assert_eq!(runner.recorded().len(), 1, "only the show call ran");
}

#[test]
fn start_answers_with_job_and_unit() {
    let (api, runner) = api_with(loaded("inactive"));
    let (status, body) = call(&api, "POST", "/api/job/ci-test-deploy@main", Some(DEPLOY));
    assert_eq!(status, 200, "{body}");
    let value: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(
        value,
        json!({"msg": "Job started", "job": "ci-test-deploy@main", "unit": "ci-test-deploy@main.service", "run": RUN})
    );
    let start = runner.recorded().into_iter().find(|argv| argv[0] == "/usr/bin/sudo").expect("a sudo call");
    assert_eq!(start[start.len() - 3..], ["--no-block", "--", "ci-test-deploy@main.service"]);
}

#[test]
fn token_in_the_query_is_accepted() {
    let (api, _) = api_with(loaded("inactive"));
    let (status, _) = call(&api, "GET", &format!("/api/job/ci-test-a/state?token={RO}"), None);
    assert_eq!(status, 200);
    // CGI servers pass an empty HTTP_AUTHORIZATION when there was none.
    let req = Request::new("GET", &format!("/api/job/ci-test-a/state?token={RO}")).with_header("Authorization", "");
    assert_eq!(api.handle(&req).0.status, 200);
}

#[test]
fn logs_as_json_and_text() {
    let starting = format!(
        r#"{{"_PID":"1","UNIT":"ci-test-a.service","INVOCATION_ID":"{RUN}","MESSAGE":"Starting","MESSAGE_ID":"7d4958e842da4a758f6c1cdc7b36dcc5","__CURSOR":"s=1;i=1"}}"#
    );
    let journal = format!(
        "{{\"MESSAGE\":\"one \\\"quoted\\\"\",\"_SYSTEMD_UNIT\":\"ci-test-a.service\",\"_SYSTEMD_INVOCATION_ID\":\"{RUN}\"}}\n\
         {{\"MESSAGE\":\"two\",\"_SYSTEMD_UNIT\":\"ci-test-a.service\"}}\n"
    );
    let newest_first: String = journal.lines().rev().map(|l| format!("{l}\n")).collect();
    let (starting, journal, newest_first) =
        (from_json_lines(&starting), from_json_lines(&journal), from_json_lines(&newest_first));
    let runner = loaded("active").answer(&["_PID=1"], true, &starting).answer(&["-r"], true, &newest_first).answer(
        &["--all"],
        true,
        &journal,
    );
    let (api, _) = api_with(runner);
    let (status, body) = call(&api, "GET", "/api/job/ci-test-a/logs", Some(RO));
    assert_eq!(status, 200);
    let value: serde_json::Value = serde_json::from_str(&body).expect("valid json");
    assert_eq!(value, json!({"logs": ["one \"quoted\"", "two"], "run": RUN}));
    let (_, text) = call(&api, "GET", "/api/job/ci-test-a/logs?format=text", Some(RO));
    assert_eq!(text, "one \"quoted\"\ntwo\n");
}

/// A finished run of ci-test-a as the journal holds it: the manager's
/// messages (newest first) and the unit's entries.
fn finished_run() -> RecordingRunner {
    let manager = |id: &str, message: &str, cursor: &str| {
        format!(
            r#"{{"_PID":"1","UNIT":"ci-test-a.service","INVOCATION_ID":"{RUN}","MESSAGE":"{message}","MESSAGE_ID":"{id}","__CURSOR":"{cursor}","__REALTIME_TIMESTAMP":"1000000"}}"#
        )
    };
    let events = format!(
        "{}\n{}\n",
        manager("7ad2d189f7e94e70a38c781354912448", "Deactivated", "s=1;i=4"),
        manager("7d4958e842da4a758f6c1cdc7b36dcc5", "Starting", "s=1;i=1")
    );
    let entries = format!(
        "{}\n{{\"MESSAGE\":\"one\\ntwo\",\"_SYSTEMD_UNIT\":\"ci-test-a.service\",\"__CURSOR\":\"s=1;i=2\"}}\n\
         {{\"MESSAGE\":\"three\",\"_SYSTEMD_UNIT\":\"ci-test-a.service\",\"__CURSOR\":\"s=1;i=3\"}}\n{}\n",
        manager("7d4958e842da4a758f6c1cdc7b36dcc5", "Starting", "s=1;i=1"),
        manager("7ad2d189f7e94e70a38c781354912448", "Deactivated", "s=1;i=4"),
    );
    RecordingRunner::default()
        .answer(&["show"], true, "LoadState=loaded\nActiveState=inactive\nInvocationID=\n")
        .answer(&["_PID=1"], true, &from_json_lines(&events))
        // The bare text of the run after its first second: none here.
        .answer(&["cat"], true, "")
        .answer(&["--all"], true, &from_json_lines(&entries))
}

struct Collected(Vec<u8>);

impl Sink for Collected {
    fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.0.extend_from_slice(bytes);
        Ok(())
    }
    fn gone(&mut self) -> bool {
        false
    }
}

fn streamed(response: &mut Response) -> String {
    let mut sink = Collected(Vec::new());
    response.stream.take().expect("a streamed body").send_to(&mut sink);
    String::from_utf8_lossy(&sink.0).into_owned()
}

#[test]
fn tail_names_its_run_and_cursor_in_headers_for_a_plain_text_poller() {
    let (api, _) = api_with(finished_run());
    let (response, _) = api.handle(
        &Request::new("GET", "/api/job/ci-test-a/tail?format=text").with_header("Authorization", "Bearer jgt_ro"),
    );
    assert_eq!((response.status, response.content_type), (200, http::TEXT));
    assert!(response.headers.contains(&("X-Jobgate-Run", RUN.into())));
    assert!(response.headers.iter().any(|(name, _)| *name == "X-Jobgate-Cursor"));
    assert_eq!(body_text(response), "one\ntwo\nthree\n");
}

#[test]
fn follow_of_a_finished_run_streams_it_and_its_end() {
    let (api, _) = api_with(finished_run());
    let (mut response, _) =
        api.handle(&Request::new("GET", "/api/job/ci-test-a/follow").with_header("Authorization", "Bearer jgt_ro"));
    assert_eq!((response.status, response.content_type), (200, http::TEXT));
    assert!(response.headers.contains(&("X-Accel-Buffering", "no".into())));
    assert!(response.headers.contains(&("X-Jobgate-Run", RUN.into())));
    assert_eq!(
        streamed(&mut response),
        format!("one\ntwo\nthree\njobgate: {RUN} finished result=success exit_status=0\n")
    );
    let (mut response, _) = api.handle(
        &Request::new("GET", "/api/job/ci-test-a/follow?cursors=1").with_header("Authorization", "Bearer jgt_ro"),
    );
    assert_eq!(
        streamed(&mut response),
        format!(
            "s=1;i=2\tone\ns=1;i=2\ttwo\ns=1;i=3\tthree\n-\tjobgate: {RUN} finished result=success exit_status=0\n"
        )
    );
}

#[test]
fn follow_streams_are_capped() {
    let (api, _) = api_with(finished_run());
    let request = || Request::new("GET", "/api/job/ci-test-a/follow").with_header("Authorization", "Bearer jgt_ro");
    let (first, _) = api.handle(&request());
    assert_eq!(first.status, 200);
    let (second, _) = api.handle(&request());
    assert_eq!((second.status, body_text(second).trim()), (503, r#"{"msg":"Too many streams"}"#));
    drop(first);
    assert_eq!(api.handle(&request()).0.status, 200, "the slot is free once the stream is over");
    for bad in ["cursors=yes", "run=abc", "cursor=x%00"] {
        let (response, _) = api.handle(
            &Request::new("GET", &format!("/api/job/ci-test-a/follow?{bad}"))
                .with_header("Authorization", "Bearer jgt_ro"),
        );
        assert_eq!(response.status, 400, "{bad}");
    }
}

#[test]
fn logs_of_a_job_that_never_ran_are_empty_not_everything() {
    let runner =
        RecordingRunner::default().answer(&["show"], true, "LoadState=loaded\nActiveState=inactive\nInvocationID=\n");
    let (api, runner) = api_with(runner);
    let (status, body) = call(&api, "GET", "/api/job/ci-test-a/logs", Some(RO));
    assert_eq!((status, body.trim()), (200, r#"{"logs":[],"run":null}"#));
    assert!(runner.recorded().iter().all(|argv| !argv.iter().any(|a| a.starts_with("_SYSTEMD_INVOCATION_ID"))));
}

#[test]
fn jobs_are_filtered_by_the_token_patterns() {
    let runner = RecordingRunner::default()
        .answer(&["list-unit-files"], true, "ci-test-a.service static -\nci-test-deploy@.service static -\n")
        .answer(&["list-units"], true, "ci-test-deploy@main.service loaded active running x\n");
    let (api, _) = api_with(runner);
    let (_, all) = call(&api, "GET", "/api/jobs", Some(RO));
    let value: serde_json::Value = serde_json::from_str(&all).expect("json");
    assert_eq!(
        value,
        json!({"jobs": [
            {"job": "ci-test-a", "unit": "ci-test-a.service", "state": "inactive"},
            {"job": "ci-test-deploy@main", "unit": "ci-test-deploy@main.service", "state": "active"},
        ]})
    );
    let (_, some) = call(&api, "GET", "/api/jobs", Some(DEPLOY));
    assert!(!some.contains("\"ci-test-a\""), "{some}");
}

#[test]
fn access_log_fields_never_hold_the_token() {
    let (api, _) = api_with(loaded("inactive"));
    let req = Request::new("GET", &format!("/api/job/ci-test-a/state?token={RO}"));
    let (response, record) = api.handle(&req);
    let line = access_log::line(&record, response.status, std::time::Duration::ZERO);
    assert_eq!(line, "GET /api/job/{job}/state job=ci-test-a token=ro status=200 ms=0");
    assert!(!line.contains(RO));
}

#[test]
fn healthz_needs_no_token_and_says_what_fails() {
    let (api, runner) = api_with(loaded("inactive"));
    let (status, body) = call(&api, "GET", "/healthz", None);
    assert_eq!((status, body.trim()), (200, r#"{"journal":"journal read through journalctl","status":"ok"}"#));
    let asked = runner.recorded().len();
    assert_eq!(call(&api, "GET", "/healthz", None).0, 200);
    assert_eq!(runner.recorded().len(), asked, "a fresh answer is reused, not asked again");
    assert_eq!(call(&api, "POST", "/healthz", None).0, 405);

    let (api, _) = api_with(RecordingRunner::default().answer(&["--lines=0"], false, ""));
    let (status, body) = call(&api, "GET", "/healthz", None);
    assert_eq!((status, body.trim()), (503, r#"{"msg":"The journal cannot be read"}"#));
    let (api, _) = api_with(RecordingRunner::default().answer(&["--property=Version"], false, ""));
    assert_eq!(call(&api, "GET", "/healthz", None).0, 503);
}

#[test]
fn metrics_only_for_a_metrics_token() {
    let runner = loaded("active")
        .answer(&["list-unit-files"], true, "ci-test-a.service static -\nci-test-deploy@.service static -\n")
        .answer(&["list-units"], true, "ci-test-deploy@main.service loaded active running x\n");
    let (api, _) = api_with(runner);
    assert_eq!(call(&api, "GET", "/metrics", None).0, 401);
    assert_eq!(call(&api, "GET", "/metrics", Some(RO)).0, 403, "a CI token does not list every job's results");
    assert_eq!(call(&api, "GET", "/metrics", Some(RW)).0, 403);
    assert_eq!(call(&api, "GET", "/api/jobs", Some(METRICS)).0, 403, "a scraper's token reads nothing else");
    assert_eq!(call(&api, "GET", "/api/job/ci-test-a/logs", Some(METRICS)).0, 403);
    assert_eq!(call(&api, "POST", "/api/job/ci-test-a", Some(RW)).0, 425);
    assert_eq!(call(&api, "POST", "/api/job/ci-test-made-up%3B", Some(RW)).0, 400);

    let (response, _) =
        api.handle(&Request::new("GET", "/metrics").with_header("Authorization", &format!("Bearer {METRICS}")));
    assert_eq!(response.content_type, crate::metrics::CONTENT_TYPE);
    let text = body_text(response);
    for line in [
        r#"jobgate_requests_total{route="/metrics",status="401"} 1"#,
        r#"jobgate_requests_total{route="/api/jobs",status="403"} 1"#,
        r#"jobgate_requests_total{route="/api/job/{job}",status="400"} 1"#,
        r#"jobgate_job_actions_total{action="start",job="ci-test-a",outcome="already-active"} 1"#,
        r#"jobgate_job_actions_total{action="start",job="-",outcome="invalid"} 1"#,
        r#"jobgate_job_active{job="ci-test-a"} 1"#,
        r#"jobgate_job_active{job="ci-test-deploy@main"} 1"#,
    ] {
        assert!(text.lines().any(|l| l == line), "{line:?} in\n{text}");
    }
    assert!(!text.contains("made-up"), "no series for a name a client made up");
}

#[test]
fn follow_streams_are_shared_fairly_between_tokens() {
    let (mut api, _) = api_with(finished_run());
    api.0.follow.max_streams = 4;
    api.0.follow.max_per_token = 4;
    let follow = |token: &str| {
        api.handle(
            &Request::new("GET", "/api/job/ci-test-a/follow").with_header("Authorization", &format!("Bearer {token}")),
        )
        .0
    };
    // Alone, a token may take more than its half.
    let ro: Vec<_> = (0..3).map(|_| follow("jgt_ro")).collect();
    assert!(ro.iter().all(|r| r.status == 200), "a token alone takes 3 of 4");
    // Another token still gets the last stream.
    let rw = follow("jgt_rw");
    assert_eq!(rw.status, 200, "the last stream is left to a token holding none");
    drop(rw);
    drop(ro);
    // Two tokens: one holding two of four cannot take more while the other holds one.
    let ro: Vec<_> = (0..2).map(|_| follow("jgt_ro")).collect();
    let rw = follow("jgt_rw");
    assert_eq!(rw.status, 200);
    let third = follow("jgt_ro");
    assert_eq!((third.status, body_text(third).trim()), (503, r#"{"msg":"Too many streams for this token"}"#));
    drop(rw);
    assert_eq!(follow("jgt_ro").status, 200, "alone again, it may take more");
    drop(ro);
}
