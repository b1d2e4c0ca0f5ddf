//! What an operator watches (issue 14): `/healthz` without a token, and
//! `/metrics` for a token of scope `metrics`, read by a real Prometheus
//! text-format parser (the Python prometheus_client's).

use std::io::Write;
use std::process::{Command, Stdio};

use super::*;
use client::request;
use tests_hold::inetd;

pub const TESTS: &[Test] = &[
    ("healthz_needs_no_token_and_fails_without_the_journal", healthz_needs_no_token_and_fails_without_the_journal),
    ("metrics_show_each_jobs_last_run_to_a_parser", metrics_show_each_jobs_last_run_to_a_parser),
];

fn healthz_needs_no_token_and_fails_without_the_journal(w: &World) {
    let answer = request(&w.addr, "GET", "/healthz", None);
    assert_eq!(answer.status, 200, "{}", answer.body);
    let value = answer.json();
    assert_eq!(value["status"], "ok");
    let journal = value["journal"].as_str().unwrap_or_default();
    assert!(journal.starts_with("journal read in-process from its files ("), "what reads it: {journal}");
    // A jobgate whose user cannot read the journal is not healthy.
    let (tokens, state) = ("/run/jobgate-test/nobody-health-tokens", "/run/jobgate-test/nobody-health");
    w.sb.sh_ok(&format!("touch {tokens} && chown nobody {tokens} && chmod 0600 {tokens}"));
    w.sb.sh_ok(&format!("mkdir -p {state} && chown nobody {state}"));
    let mut command = w.sb.command_as("nobody", BIN);
    command.args(["--tokens", tokens, "--state-dir", state, "inetd"]);
    let (head, log) = inetd(command, "GET /healthz HTTP/1.1\r\n\r\n");
    assert!(head.starts_with("HTTP/1.1 503"), "{head}");
    assert!(head.trim_end().ends_with(r#"{"msg":"The journal cannot be read"}"#), "{head}");
    assert!(log.contains("journalctl failed"), "the detail is in the log: {log}");
}

fn metrics_show_each_jobs_last_run_to_a_parser(w: &World) {
    let scrape = admin_token(&w.sb, "scrape", &["--scope", "metrics"]).expect("metrics token");
    let since = now_us() / 1_000_000;
    let failed = w.run_to_end("ci-test-fail");
    w.run_to_end("ci-test-hello");
    assert_eq!(get(&w.addr, "/metrics", &w.ro).status, 403, "a CI token does not scrape");
    assert_eq!(get(&w.addr, "/api/jobs", &scrape).status, 403, "a scraper's token lists nothing");
    // A request through another front end counts in the same counters.
    let mut command = w.sb.command_as(USER, BIN);
    command.args(["--tokens", TOKENS, "--state-dir", STATE, "inetd"]);
    let before = scrape_families(w, &scrape);
    let (head, _) = inetd(command, "GET /api/job/ci-test-made-up/state HTTP/1.1\r\n\r\n");
    assert!(head.starts_with("HTTP/1.1 401"), "{head}");

    let answer = get(&w.addr, "/metrics", &scrape);
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.header("Content-Type"), Some("text/plain; version=0.0.4; charset=utf-8"));
    let families = scrape_families(w, &scrape);
    let value = |families: &[Sample], name: &str, labels: &[(&str, &str)]| {
        families
            .iter()
            .find(|s| s.name == name && labels.iter().all(|(k, v)| s.labels.get(*k).and_then(Value::as_str) == Some(v)))
            .map(|s| s.value)
    };
    let unauthenticated = [("route", "/api/job/{job}/state"), ("status", "401")];
    assert_eq!(
        value(&families, "jobgate_requests_total", &unauthenticated).unwrap_or(0.0),
        value(&before, "jobgate_requests_total", &unauthenticated).unwrap_or(0.0) + 1.0,
        "inetd's request is counted where serve counts"
    );
    let started = [("action", "start"), ("job", "ci-test-fail"), ("outcome", "ok")];
    assert!(value(&families, "jobgate_job_actions_total", &started).unwrap_or(0.0) >= 1.0);
    let fail = [("job", "ci-test-fail")];
    assert_eq!(
        value(&families, "jobgate_job_last_result", &[("job", "ci-test-fail"), ("result", "exit-code")]),
        Some(1.0)
    );
    assert_eq!(value(&families, "jobgate_job_last_exit_status", &fail), failed["exit_status"].as_f64());
    assert_eq!(value(&families, "jobgate_job_active", &fail), Some(0.0));
    let start = value(&families, "jobgate_job_last_start_timestamp_seconds", &fail).unwrap_or(0.0);
    assert!(start >= since as f64 && start <= (now_us() / 1_000_000) as f64, "start {start}, test began {since}");
    let took = value(&families, "jobgate_job_last_duration_seconds", &fail);
    assert!(took.is_some_and(|d| (0.0..5.0).contains(&d)), "{took:?}");
    let hello = [("job", "ci-test-hello"), ("result", "success")];
    assert_eq!(value(&families, "jobgate_job_last_result", &hello), Some(1.0));
    assert!(value(&families, "jobgate_follow_streams_max", &[]).is_some_and(|n| n >= 1.0));
    assert!(families.iter().all(|s| s.name.starts_with("jobgate_")));
    assert!(!answer.body.contains("made-up"), "no series for a name a client made up");
}

/// One sample as the parser read it.
struct Sample {
    name: String,
    labels: serde_json::Map<String, Value>,
    value: f64,
}

/// `/metrics` read by prometheus_client's parser (python3-prometheus-client),
/// which fails on anything that is not the text format.
fn scrape_families(w: &World, token: &str) -> Vec<Sample> {
    let answer = get(&w.addr, "/metrics", token);
    assert_eq!(answer.status, 200, "{}", answer.body);
    let parse = "import json, sys\n\
                 from prometheus_client.parser import text_string_to_metric_families\n\
                 for family in text_string_to_metric_families(sys.stdin.read()):\n\
                 \x20   assert family.type in ('counter', 'gauge'), family\n\
                 \x20   for s in family.samples:\n\
                 \x20       print(json.dumps([s.name, s.labels, s.value]))\n";
    let mut python = Command::new("/usr/bin/python3")
        .args(["-c", parse])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 (apt-get install python3-prometheus-client)");
    python.stdin.take().expect("stdin").write_all(answer.body.as_bytes()).expect("write");
    let out = python.wait_with_output().expect("python3");
    assert!(out.status.success(), "the parser refused it: {}\n{}", String::from_utf8_lossy(&out.stderr), answer.body);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .map(|v| Sample {
            name: v[0].as_str().unwrap_or_default().to_string(),
            labels: v[1].as_object().cloned().unwrap_or_default(),
            value: v[2].as_f64().unwrap_or(f64::NAN),
        })
        .collect()
}
