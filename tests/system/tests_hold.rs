//! Issue 11: jobgate holds under concurrent and hostile use: one start of
//! many, tails and token changes that do not lose each other's work, an
//! audit no log filter turns off, and requests that must be whole in time.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use super::client::{get, post, send_raw};
use super::{now_us, wait_until, World, BIN, STATE, TOKENS, USER};
use crate::Test;

pub const TESTS: &[Test] = &[
    ("concurrent_starts_start_once", concurrent_starts_start_once),
    ("concurrent_cursorless_tails_give_each_line_once", concurrent_cursorless_tails_give_each_line_once),
    ("token_add_and_revoke_at_once_lose_nothing", token_add_and_revoke_at_once_lose_nothing),
    ("audit_whatever_the_log_filter", audit_whatever_the_log_filter),
    ("ambiguous_request_bodies_are_refused", ambiguous_request_bodies_are_refused),
    ("a_trickling_client_gets_408_in_time", a_trickling_client_gets_408_in_time),
    ("an_unreadable_journal_is_an_error", an_unreadable_journal_is_an_error),
    ("the_cli_shows_no_escape_sequence", the_cli_shows_no_escape_sequence),
];

fn idle(w: &World, job: &str) {
    wait_until(&format!("{job} is idle"), Duration::from_secs(30), || {
        !matches!(w.state(job)["state"].as_str(), Some("active" | "activating" | "deactivating"))
    });
}

fn audit_lines(w: &World, since_us: u64, want: &str) -> usize {
    let log =
        w.sb.sh_ok(&format!("journalctl --no-pager -o cat -u jobgate-test.service --since @{}", since_us / 1_000_000));
    log.lines().filter(|l| l.contains(want)).count()
}

fn concurrent_starts_start_once(w: &World) {
    idle(w, "ci-test-ticker");
    let since = now_us();
    let starts: Vec<_> = (0..8)
        .map(|_| {
            let (addr, rw) = (w.addr.clone(), w.rw.clone());
            std::thread::spawn(move || post(&addr, "/api/job/ci-test-ticker", &rw))
        })
        .collect();
    let answers: Vec<_> = starts.into_iter().map(|t| t.join().expect("start")).collect();
    let ok: Vec<_> = answers.iter().filter(|a| a.status == 200).collect();
    let refused = answers.iter().filter(|a| a.status == 425).count();
    assert_eq!((ok.len(), refused), (1, 7), "{:?}", answers.iter().map(|a| a.status).collect::<Vec<_>>());
    assert!(ok[0].json()["run"].as_str().is_some_and(|r| r.len() == 32), "{}", ok[0].body);
    std::thread::sleep(Duration::from_millis(300));
    let started = w.units_started_since(since).iter().filter(|u| *u == "ci-test-ticker.service").count();
    assert_eq!(started, 1, "systemd started the unit once");
    assert_eq!(audit_lines(w, since, "audit action=start outcome=ok job=ci-test-ticker"), 1);
    idle(w, "ci-test-ticker");
}

/// A token of its own, so no other test's tail cursor is touched.
fn fresh_token(w: &World, name: &str) -> String {
    let out =
        w.sb.command(BIN).args(["--tokens", TOKENS, "token", "add", name, "--scope", "ro"]).output().expect("add");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn concurrent_cursorless_tails_give_each_line_once(w: &World) {
    let token = fresh_token(w, "ci-tails");
    w.run_to_end("ci-test-count");
    wait_until("serve knows the new token", Duration::from_secs(5), || {
        get(&w.addr, "/api/job/ci-test-count/state", &token).status == 200
    });
    let tails: Vec<_> = (0..10)
        .map(|_| {
            let (addr, token) = (w.addr.clone(), token.clone());
            std::thread::spawn(move || get(&addr, "/api/job/ci-test-count/tail", &token))
        })
        .collect();
    let mut lines = Vec::new();
    for tail in tails {
        let answer = tail.join().expect("tail");
        assert_eq!(answer.status, 200, "{}", answer.body);
        let value = answer.json();
        lines.extend(value["logs"].as_array().into_iter().flatten().filter_map(|l| l.as_str().map(str::to_string)));
    }
    assert_eq!(lines.len(), 5, "each line once, over all the tails: {lines:?}");
}

fn token_add_and_revoke_at_once_lose_nothing(w: &World) {
    let script = format!(
        "f=/run/jobgate-test/race-tokens; lost=0
         for i in $(seq 1 25); do
           rm -f $f; {BIN} --tokens $f token add victim --scope rw >/dev/null 2>&1
           {BIN} --tokens $f token revoke victim >/dev/null 2>&1 &
           {BIN} --tokens $f token add newcomer --scope ro >/dev/null 2>&1 &
           wait
           grep -q '^victim ' $f && lost=$((lost + 1))
           grep -q '^newcomer ' $f || lost=$((lost + 1))
         done
         echo $lost"
    );
    assert_eq!(w.sb.sh_ok(&script).trim(), "0", "changes lost when add and revoke ran at once");
}

fn audit_whatever_the_log_filter(w: &World) {
    idle(w, "ci-test-count");
    let request =
        format!("POST /api/job/ci-test-count HTTP/1.1\r\nAuthorization: Bearer {}\r\nContent-Length: 0\r\n\r\n", w.rw);
    let mut command = w.sb.command_as(USER, "/usr/bin/env");
    command.args(["RUST_LOG=off", BIN, "--tokens", TOKENS, "--state-dir", STATE, "inetd"]);
    let (stdout, stderr) = inetd(command, &request);
    assert!(stdout.starts_with("HTTP/1.1 200"), "{stdout}");
    assert!(stderr.contains("audit action=start outcome=ok job=ci-test-count token=ci-rw"), "stderr: {stderr}");
    idle(w, "ci-test-count");
    // Without --hooks, /hook/JOB does not exist: 404, and nothing audited.
    let hook = "POST /hook/ci-test-count HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}";
    let mut command = w.sb.command_as(USER, BIN);
    command.args(["--tokens", TOKENS, "--state-dir", STATE, "inetd"]);
    let (stdout, stderr) = inetd(command, hook);
    assert!(stdout.starts_with("HTTP/1.1 404"), "{stdout}");
    assert!(!stderr.contains("audit"), "{stderr}");
}

/// Runs `command` (an `inetd`) with `request` on its stdin: its stdout
/// (the answer) and stderr (its log).
pub fn inetd(mut command: std::process::Command, request: &str) -> (String, String) {
    use std::process::Stdio;
    let mut inetd = command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("inetd");
    if let Some(mut stdin) = inetd.stdin.take() {
        stdin.write_all(request.as_bytes()).expect("request");
    }
    let out = inetd.wait_with_output().expect("inetd");
    (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// A job's output cannot steer the admin's terminal: `jobgate logs` shows
/// no escape sequence, and a control character as U+FFFD.
fn the_cli_shows_no_escape_sequence(w: &World) {
    w.sb.install_unit(
        "ci-test-escapes.service",
        "[Service]\nType=oneshot\nExecStart=/usr/bin/printf 'title \\033]0;pwned\\007 red \\033[31mRED\\033[0m bell \\007 end\\n'\n",
    );
    w.run_to_end("ci-test-escapes");
    let out = w.cli(&["logs", "ci-test-escapes"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!text.contains('\u{1b}') && !text.contains('\u{7}'), "{text:?}");
    assert_eq!(text.trim_end(), "title  red RED bell \u{fffd} end");
}

fn ambiguous_request_bodies_are_refused(w: &World) {
    idle(w, "ci-test-count");
    let since = now_us();
    let auth = format!("Authorization: Bearer {}\r\n", w.rw);
    for extra in
        ["Content-Length: 0\r\nContent-Length: 5\r\n", "Transfer-Encoding: chunked\r\n", "Content-Length: +0\r\n"]
    {
        let raw = format!("POST /api/job/ci-test-count HTTP/1.1\r\n{auth}{extra}Connection: close\r\n\r\n0\r\n\r\n");
        let answer = send_raw(&w.addr, raw.as_bytes());
        assert_eq!(answer.status, 400, "{extra:?}: {}", answer.body);
    }
    std::thread::sleep(Duration::from_millis(300));
    assert!(!w.units_started_since(since).contains(&"ci-test-count.service".to_string()), "a job was started");
}

fn a_trickling_client_gets_408_in_time(w: &World) {
    let mut client = TcpStream::connect(&w.addr).expect("connect");
    client.set_read_timeout(Some(Duration::from_millis(100))).expect("timeout");
    let connected = Instant::now();
    let head = b"GET /api/job/ci-test-hello/state HTTP/1.1\r\nHost: x\r\n";
    let mut answer = Vec::new();
    for byte in head.iter().cycle() {
        // One byte every 1.5 s: each read is quick, the request never whole.
        if client.write_all(&[*byte]).is_err() {
            break;
        }
        let mut buf = [0u8; 512];
        let deadline = Instant::now() + Duration::from_millis(1500);
        while Instant::now() < deadline {
            match client.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
                Err(_) => {}
            }
        }
        if !answer.is_empty() || connected.elapsed() > Duration::from_secs(20) {
            break;
        }
    }
    let elapsed = connected.elapsed();
    assert!(String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 408"), "{:?}", String::from_utf8_lossy(&answer));
    assert!(elapsed < Duration::from_secs(13), "answered after {elapsed:?}");
}

/// jobgate run by a user who may not read the journal: `logs` answers 500
/// (the cause in its log), the CLI fails, and `check` says how to mend it.
fn an_unreadable_journal_is_an_error(w: &World) {
    w.run_to_end("ci-test-count");
    let (tokens, state) = ("/run/jobgate-test/nobody-tokens", "/run/jobgate-test/nobody-state");
    let out = w.sb.command(BIN).args(["--tokens", tokens, "token", "add", "x", "--scope", "ro"]).output().expect("add");
    let token = String::from_utf8_lossy(&out.stdout).trim().to_string();
    w.sb.sh_ok(&format!("chown nobody {tokens} && mkdir -p {state} && chown nobody {state}"));
    let as_nobody = |args: &[&str]| {
        let mut cmd = w.sb.command_as("nobody", BIN);
        cmd.args(["--tokens", tokens, "--state-dir", state]).args(args);
        cmd
    };
    let request = format!("GET /api/job/ci-test-count/logs HTTP/1.1\r\nAuthorization: Bearer {token}\r\n\r\n");
    let (stdout, stderr) = inetd(as_nobody(&["inetd"]), &request);
    assert!(stdout.starts_with("HTTP/1.1 500"), "{stdout}");
    assert!(stderr.contains("journalctl failed"), "the cause is in the log: {stderr}");
    let logs = as_nobody(&["logs", "ci-test-count"]).output().expect("logs");
    assert_eq!(logs.status.code(), Some(1), "{}", String::from_utf8_lossy(&logs.stderr));
    let check = as_nobody(&["check"]).output().expect("check");
    let report = String::from_utf8_lossy(&check.stdout);
    assert!(report.contains("FAIL the journal cannot be read"), "{report}");
    assert!(report.contains("usermod -aG systemd-journal"), "{report}");
}
