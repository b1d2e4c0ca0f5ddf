//! Issue 13, the CI side: `contrib/github/jobgate-run` under dash writes
//! GitHub's step summary and outputs that a job's log cannot steer, mints a
//! fresh GitHub OIDC ID token before every request (`--oidc`, against a
//! recording fake of GitHub's token endpoint and of jobgate, since the
//! server's JWT support is tested on its own), and takes a ready-made token
//! from a named variable (`--token-env`, GitLab's `id_tokens`, Cirrus's
//! `CIRRUS_OIDC_TOKEN`).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use super::{wait_until, World};
use crate::Test;

pub const TESTS: &[Test] = &[
    ("ci_client_summary_and_outputs_cannot_be_steered", ci_client_summary_and_outputs_cannot_be_steered),
    ("ci_client_oidc_mints_a_token_per_request", ci_client_oidc_mints_a_token_per_request),
    ("ci_client_token_from_a_named_variable", ci_client_token_from_a_named_variable),
];

/// What the GitHub runner would have set; removed unless a test sets it, so
/// that a suite run under GitHub Actions writes nothing into its own step.
const GITHUB_VARS: &[&str] = &[
    "GITHUB_ACTIONS",
    "GITHUB_STEP_SUMMARY",
    "GITHUB_OUTPUT",
    "ACTIONS_ID_TOKEN_REQUEST_URL",
    "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
    "JOBGATE_TOKEN",
    "JOBGATE_URL",
];

/// (exit code, stdout lines, stderr) of `dash jobgate-run ARGS` with only
/// `env` of the variables above.
fn jobgate_run(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, Vec<String>, String) {
    let script = format!("{}/contrib/github/jobgate-run", env!("CARGO_MANIFEST_DIR"));
    let mut cmd = Command::new("dash");
    cmd.arg(script).args(args);
    for var in GITHUB_VARS {
        cmd.env_remove(var);
    }
    let out = cmd.envs(env.iter().copied()).output().expect("dash");
    let lines = String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect();
    (out.status.code(), lines, String::from_utf8_lossy(&out.stderr).into_owned())
}

/// A job whose log tries to end the summary's code fence, to set outputs
/// and to forge markdown, after more lines than the summary keeps.
const INJECT_SCRIPT: &str = r#"#!/bin/sh
i=1
while [ $i -le 80 ]; do echo "line $i"; i=$((i + 1)); done
echo '```'
echo '`````````` still inside'
echo '::set-output name=result::success'
echo 'result=success'
echo 'run=00000000000000000000000000000000'
echo 'exit_status=0'
echo '::error::forged annotation'
echo '## forged heading'
echo '</details><img src=x>'
exit 4
"#;

fn inject_lines() -> Vec<String> {
    let mut lines: Vec<String> = (1..=80).map(|i| format!("line {i}")).collect();
    lines
        .extend(INJECT_SCRIPT.lines().filter_map(|l| l.strip_prefix("echo '")?.strip_suffix('\'')).map(str::to_string));
    lines
}

pub(crate) fn scratch(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("jobgate-ci-{}-{name}", std::process::id()))
}

/// Issue 13, item 2: the summary holds the table and the last 50 lines in a
/// fence none of them can end; the outputs are exactly run, result and
/// exit_status, whatever the job printed; workflow commands stay off.
fn ci_client_summary_and_outputs_cannot_be_steered(w: &World) {
    w.sb.write_file("/run/jobgate-test/inject.sh", INJECT_SCRIPT.as_bytes(), 0o755, "root");
    w.sb.install_unit(
        "ci-test-inject.service",
        "[Unit]\nStartLimitIntervalSec=0\n[Service]\nType=oneshot\nExecStart=/bin/sh /run/jobgate-test/inject.sh\n",
    );
    let (summary, outputs) = (scratch("summary"), scratch("outputs"));
    // Another command of the step left its output line open.
    std::fs::write(&outputs, "earlier=1").expect("outputs");
    let _ = std::fs::remove_file(&summary);
    let url = format!("http://{}", w.addr);
    let env = [
        ("JOBGATE_URL", url.as_str()),
        ("JOBGATE_TOKEN", w.rw.as_str()),
        ("GITHUB_ACTIONS", "true"),
        ("GITHUB_STEP_SUMMARY", summary.to_str().expect("path")),
        ("GITHUB_OUTPUT", outputs.to_str().expect("path")),
    ];
    let (code, lines, stderr) = jobgate_run(&["ci-test-inject"], &env);
    assert_eq!(code, Some(1), "{stderr}");
    let run = super::tests_follow::client_run_id(&stderr);
    assert!(run.len() == 32 && run.bytes().all(|b| b.is_ascii_hexdigit()), "{stderr}");

    // The log as it was shown: every line, inside stop-commands.
    let want = inject_lines();
    let off = lines.first().and_then(|l| l.strip_prefix("::stop-commands::")).unwrap_or_default().to_string();
    assert_eq!(off.len(), 32, "{lines:?}");
    assert_eq!(lines.len(), want.len() + 3, "every line once, in its fence: {lines:?}\n{stderr}");
    assert_eq!(lines[1..=want.len()], want[..]);
    assert_eq!(
        lines[want.len() + 1..],
        [
            format!("::{off}::"),
            format!("::error::jobgate: ci-test-inject run {run} failed: result=exit-code exit_status=4")
        ]
    );

    let written = std::fs::read_to_string(&outputs).expect("outputs");
    assert_eq!(written, format!("earlier=1\nrun={run}\nresult=exit-code\nexit_status=4\n"));

    let text = std::fs::read_to_string(&summary).expect("summary");
    let summary_lines: Vec<&str> = text.lines().collect();
    let fence_at = summary_lines.iter().position(|l| l.starts_with("```")).expect("a fence");
    let head = &summary_lines[..fence_at];
    assert_eq!(head[1], "### jobgate: `ci-test-inject` failed", "{text}");
    assert!(head[5].starts_with(&format!("| `{run}` | exit-code | 4 | ")) && head[5].ends_with(" s |"), "{text}");
    assert_eq!(head[7], "The last 50 of its 89 lines:", "{text}");
    // Longer than the job's longest run of backticks (10), and closed by
    // the same fence right after the last 50 lines, which end the summary.
    let fence = summary_lines[fence_at];
    assert_eq!(fence, "`".repeat(11), "{text}");
    let body: Vec<String> = summary_lines[fence_at + 1..].iter().map(|l| l.to_string()).collect();
    assert_eq!(body.len(), 51, "{text}");
    assert_eq!(body[..50], want[want.len() - 50..]);
    assert_eq!(body[50], fence);
    assert!(!body[..50].iter().any(|l| l.len() >= fence.len() && l.starts_with(fence)), "{text}");

    // Trigger only and state: the outputs again, each a checked value.
    std::fs::write(&outputs, "").expect("outputs");
    let (code, _, stderr) = jobgate_run(&["--state", "ci-test-inject"], &env);
    assert_eq!(code, Some(1), "{stderr}");
    let written = std::fs::read_to_string(&outputs).expect("outputs");
    assert_eq!(written, format!("run={run}\nresult=exit-code\nexit_status=4\n"));
    let text = std::fs::read_to_string(&summary).expect("summary");
    assert!(text.contains("### jobgate: `ci-test-inject` last run failed\n"), "{text}");
    std::fs::write(&outputs, "").expect("outputs");
    wait_until("inject idle", Duration::from_secs(20), || w.state("ci-test-inject")["state"] != "active");
    let (code, _, stderr) = jobgate_run(&["--no-follow", "ci-test-inject"], &env);
    assert_eq!(code, Some(0), "{stderr}");
    let started = super::tests_follow::client_run_id(&stderr);
    assert_ne!(started, run);
    let written = std::fs::read_to_string(&outputs).expect("outputs");
    assert_eq!(written, format!("run={started}\nresult=\nexit_status=\n"));
    let _ = std::fs::remove_file(&summary);
    let _ = std::fs::remove_file(&outputs);
    wait_until("inject idle", Duration::from_secs(20), || w.state("ci-test-inject")["state"] != "active");
}

/// The request token GitHub gives the runner, and the run the fake starts.
const REQUEST_TOKEN: &str = "ghs_request-token.for-the-id-token-endpoint";
const FAKE_RUN: &str = "0123456789abcdef0123456789abcdef";
const AUDIENCE: &str = "https://ci.example.org/jobgate";

/// The n-th ID token the fake mints: JWT-shaped (three base64url parts).
fn minted(n: usize) -> String {
    format!("eyJhbGciOiJSUzI1NiJ9.eyJuIjo{n}fQ.c2lnbmF0dXJl{n}")
}

/// One request as the fake saw it; `exposed` if, while it was answered, a
/// process's command line held the request token or a minted token.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    target: String,
    auth: String,
    exposed: bool,
}

/// GitHub's ID token endpoint (`/idtoken`, and `/garbage` that answers no
/// JWT) and a jobgate whose first stream drops after one line, on one port.
struct Fake {
    addr: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Fake {
    fn start() -> Fake {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        let (seen, stop) = (Arc::new(Mutex::new(Vec::new())), Arc::new(AtomicBool::new(false)));
        let (log, done) = (seen.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut mints = 0;
            for stream in listener.incoming() {
                if done.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(stream) = stream {
                    answer(stream, &log, &mut mints);
                }
            }
        });
        Fake { addr, seen, stop, thread: Some(thread) }
    }

    fn seen(&self) -> Vec<Seen> {
        std::mem::take(&mut *self.seen.lock().expect("lock"))
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(&self.addr);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn answer(mut stream: TcpStream, log: &Mutex<Vec<Seen>>, mints: &mut usize) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 16 * 1024 {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let mut words = head.lines().next().unwrap_or_default().split(' ');
    let (method, target) = (words.next().unwrap_or_default().to_string(), words.next().unwrap_or_default().to_string());
    let auth = head
        .lines()
        .find_map(|l| l.split_once(':').filter(|(n, _)| n.eq_ignore_ascii_case("authorization")))
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_default();
    let mut secrets: Vec<String> = (1..=*mints).map(minted).collect();
    secrets.push(REQUEST_TOKEN.into());
    let exposed = command_lines().iter().any(|cmdline| secrets.iter().any(|s| cmdline.contains(s.as_str())));
    log.lock().expect("lock").push(Seen {
        method: method.clone(),
        target: target.clone(),
        auth: auth.clone(),
        exposed,
    });
    let (status, body) = match (method.as_str(), target.split('?').next().unwrap_or_default()) {
        ("GET", "/idtoken") if auth == format!("bearer {REQUEST_TOKEN}") => {
            *mints += 1;
            (200, format!("{{\"count\":{},\"value\":\"{}\"}}", 1000 + *mints, minted(*mints)))
        }
        ("GET", "/idtoken") => (401, "{\"message\":\"bad token\"}".into()),
        ("GET", "/garbage") => (200, "{\"value\":\"not a jwt; rm -rf /\"}".into()),
        ("POST", "/api/job/ci-test-fake") => {
            (200, format!("{{\"job\":\"ci-test-fake\",\"msg\":\"Job started\",\"run\":\"{FAKE_RUN}\"}}"))
        }
        ("GET", "/api/job/ci-test-fake/follow") if target.contains("&cursor=c%3D1") => {
            (200, format!("c=2\tsecond line\n-\tjobgate: {FAKE_RUN} finished result=success exit_status=0\n"))
        }
        // The first stream ends after a line, as a dropped connection does.
        ("GET", "/api/job/ci-test-fake/follow") => (200, "c=1\tfirst line\n".into()),
        _ => (404, "{\"msg\":\"Not found\"}".into()),
    };
    let _ = write!(stream, "HTTP/1.1 {status} X\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n{body}");
}

/// Every process's command line, as another user on the host would see it.
fn command_lines() -> Vec<String> {
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    dir.filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().bytes().all(|b| b.is_ascii_digit()))
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .collect()
}

/// Issue 13, item 1: with --oidc every request to jobgate carries an ID
/// token minted just before it for the audience, with the runner's request
/// token; none of them in a log or a command line; clear failures without
/// the permission or with an answer that holds no JWT.
fn ci_client_oidc_mints_a_token_per_request(_: &World) {
    let fake = Fake::start();
    let jobgate = format!("http://{}", fake.addr);
    let endpoint = format!("http://{}/idtoken?api-version=2.0", fake.addr);
    let env = [
        ("JOBGATE_URL", jobgate.as_str()),
        ("GITHUB_ACTIONS", "true"),
        ("ACTIONS_ID_TOKEN_REQUEST_URL", endpoint.as_str()),
        ("ACTIONS_ID_TOKEN_REQUEST_TOKEN", REQUEST_TOKEN),
    ];
    let (code, lines, stderr) = jobgate_run(&["--oidc", AUDIENCE, "ci-test-fake"], &env);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(lines.len(), 4, "{lines:?}");
    assert_eq!(lines[1..3], ["first line".to_string(), "second line".into()]);
    assert!(stderr.contains("reconnecting"), "{stderr}");
    let seen = fake.seen();
    let requests: Vec<(&str, &str)> =
        seen.iter().map(|s| (s.method.as_str(), s.target.split('?').next().unwrap_or(""))).collect();
    assert_eq!(
        requests,
        [
            ("GET", "/idtoken"),
            ("POST", "/api/job/ci-test-fake"),
            ("GET", "/idtoken"),
            ("GET", "/api/job/ci-test-fake/follow"),
            ("GET", "/idtoken"),
            ("GET", "/api/job/ci-test-fake/follow"),
        ]
    );
    for (n, pair) in seen.chunks(2).enumerate() {
        let (mint, call) = (&pair[0], &pair[1]);
        assert_eq!(mint.target, "/idtoken?api-version=2.0&audience=https%3A%2F%2Fci.example.org%2Fjobgate");
        assert_eq!(mint.auth, format!("bearer {REQUEST_TOKEN}"));
        assert_eq!(call.auth, format!("Bearer {}", minted(n + 1)), "request {n} carries the token minted for it");
    }
    assert!(seen.iter().all(|s| !s.exposed), "a token was on a command line: {seen:?}");
    let printed = format!("{lines:?}{stderr}");
    assert!(!printed.contains(REQUEST_TOKEN) && !(1..=3).any(|n| printed.contains(&minted(n))), "{printed}");

    // No id-token permission: GitHub sets neither variable.
    let without: Vec<_> = env.iter().copied().filter(|(k, _)| !k.starts_with("ACTIONS_ID_TOKEN")).collect();
    let (code, _, stderr) = jobgate_run(&["--oidc", AUDIENCE, "ci-test-fake"], &without);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("permissions: id-token: write"), "{stderr}");
    // An endpoint that refuses, or answers no JWT: nothing reaches jobgate,
    // and the answer is not shown.
    let refusing = [("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "wrong"), ("ACTIONS_ID_TOKEN_REQUEST_URL", endpoint.as_str())];
    let garbage = format!("http://{}/garbage?api-version=2.0", fake.addr);
    for (key, value) in [refusing[0], ("ACTIONS_ID_TOKEN_REQUEST_URL", garbage.as_str())] {
        let env: Vec<_> = env.iter().copied().map(|(k, v)| if k == key { (k, value) } else { (k, v) }).collect();
        let (code, _, stderr) = jobgate_run(&["--oidc", AUDIENCE, "ci-test-fake"], &env);
        assert_eq!(code, Some(3), "{stderr}");
        assert!(stderr.contains("--oidc: no ID token from GitHub"), "{stderr}");
        assert!(!stderr.contains("rm -rf"), "{stderr}");
        assert!(fake.seen().iter().all(|s| !s.target.starts_with("/api/")), "{key}");
    }
    // Usage: an audience that would need escaping, --oidc with --token-env.
    for args in
        [&["--oidc", "https://x y", "ci-test-fake"][..], &["--oidc", AUDIENCE, "--token-env", "X", "ci-test-fake"]]
    {
        let (code, _, stderr) = jobgate_run(args, &env);
        assert_eq!(code, Some(2), "{args:?}: {stderr}");
    }
    assert!(fake.seen().is_empty());
}

/// Issue 13, item 4: the token from a variable named on the command line,
/// as GitLab's `id_tokens` and Cirrus's `CIRRUS_OIDC_TOKEN` give it; a
/// name or a value that could smuggle anything is refused.
fn ci_client_token_from_a_named_variable(w: &World) {
    w.run_to_end("ci-test-fail");
    let url = format!("http://{}", w.addr);
    let env = [("JOBGATE_URL", url.as_str()), ("CI_ID_TOKEN", w.ro.as_str())];
    let (code, lines, stderr) = jobgate_run(&["--token-env", "CI_ID_TOKEN", "--state", "ci-test-fail"], &env);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(lines[0].starts_with("ci-test-fail: state=failed result=exit-code exit_status=3"), "{lines:?}");
    let (code, _, stderr) = jobgate_run(&["--token-env", "NOT_SET_HERE", "--state", "ci-test-fail"], &env);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("no token: set NOT_SET_HERE"), "{stderr}");
    let (code, _, stderr) = jobgate_run(&["--token-env", "A;B", "--state", "ci-test-fail"], &env);
    assert_eq!(code, Some(2), "{stderr}");
    // A value with a line break would add a header of its own.
    let smuggling = format!("{}\nX-Forwarded-For: 10.0.0.1", w.ro);
    let (code, _, stderr) =
        jobgate_run(&["--state", "ci-test-fail"], &[("JOBGATE_URL", url.as_str()), ("JOBGATE_TOKEN", &smuggling)]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(!stderr.contains(&w.ro), "{stderr}");
}
