//! Issue 4: `follow`, live, in every front end, bound to one run, ended by
//! the client, capped; and a polling client written like the original
//! API's follow script.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::client::{get, post, send_raw};
use super::{wait_until, World, BIN, STATE, TOKENS, USER};
use crate::Test;

pub const TESTS: &[Test] = &[
    ("follow_streams_live_then_the_result", follow_streams_live_then_the_result),
    ("follow_resumes_after_a_cursor_and_frames_by_version", follow_resumes_after_a_cursor_and_frames_by_version),
    ("follow_is_bound_to_one_run_across_a_restart", follow_is_bound_to_one_run_across_a_restart),
    ("follow_cli_exits_with_the_result", follow_cli_exits_with_the_result),
    ("follow_runs_and_state_per_instance", follow_runs_and_state_per_instance),
    ("client_that_leaves_ends_journalctl", client_that_leaves_ends_journalctl),
    ("follow_cap_and_time_limit", follow_cap_and_time_limit),
    ("follow_cap_per_token", follow_cap_per_token),
    ("follow_through_inetd_nginx_and_cgi", follow_through_inetd_nginx_and_cgi),
    ("polling_client_like_the_original_api", polling_client_like_the_original_api),
    ("github_client_script", github_client_script),
];

fn ticks(run: &str) -> Vec<String> {
    (1..=6).map(|i| format!("tick {i} of {run}")).collect()
}

fn finished_line(run: &str, result: &str, status: i64) -> String {
    format!("jobgate: {run} finished result={result} exit_status={status}")
}

/// Starts `job` once its last run is over; returns the new run's id.
fn start(w: &World, job: &str) -> String {
    wait_until(&format!("{job} is idle"), Duration::from_secs(30), || {
        !matches!(w.state(job)["state"].as_str(), Some("active" | "activating" | "deactivating"))
    });
    let started = post(&w.addr, &format!("/api/job/{job}"), &w.rw);
    assert_eq!(started.status, 200, "start {job}: {}", started.body);
    started.json()["run"].as_str().expect("start names its run").to_string()
}

/// A stream read by `curl -N` as it arrives: each line with the moment it came.
struct Stream {
    curl: Child,
    lines: mpsc::Receiver<(Instant, String)>,
}

impl Stream {
    fn open(url: &str, token: &str) -> Stream {
        let mut curl = Command::new("curl")
            .args(["-sSNk", "-H", &format!("Authorization: Bearer {token}"), url])
            .stdout(Stdio::piped())
            .spawn()
            .expect("curl");
        let stdout = curl.stdout.take().expect("stdout");
        let (send, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if send.send((Instant::now(), line)).is_err() {
                    return;
                }
            }
        });
        Stream { curl, lines }
    }

    /// Every line until the stream ends (at most `timeout`).
    fn read_to_end(mut self, timeout: Duration) -> Vec<(Instant, String)> {
        let deadline = Instant::now() + timeout;
        let mut got = Vec::new();
        while let Ok(line) = self.lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            got.push(line);
        }
        let _ = self.curl.kill();
        let _ = self.curl.wait();
        got
    }
}

fn texts(lines: &[(Instant, String)]) -> Vec<String> {
    lines.iter().map(|(_, l)| l.clone()).collect()
}

/// The run's lines, then its end, with the lines arriving as written: the
/// first one came well before the last (nothing held back to the end).
fn assert_live(what: &str, lines: &[(Instant, String)], run: &str) {
    let mut want = ticks(run);
    want.push(finished_line(run, "success", 0));
    assert_eq!(texts(lines), want, "{what}");
    let spread = lines[lines.len() - 1].0.duration_since(lines[0].0);
    assert!(spread >= Duration::from_millis(1500), "{what}: lines came together ({spread:?}), not as written");
}

fn follow_streams_live_then_the_result(w: &World) {
    let run = start(w, "ci-test-ticker");
    let stream = Stream::open(&format!("http://{}/api/job/ci-test-ticker/follow", w.addr), &w.ro);
    assert_live("serve", &stream.read_to_end(Duration::from_secs(20)), &run);
    // A finished run: the same lines at once, and the end.
    let again = Stream::open(&format!("http://{}/api/job/ci-test-ticker/follow?run={run}", w.addr), &w.ro);
    let lines = texts(&again.read_to_end(Duration::from_secs(10)));
    assert_eq!(lines.len(), 7, "{lines:?}");
    assert_eq!(lines[6], finished_line(&run, "success", 0));
    // A failing job: its result and exit status.
    let failing = start(w, "ci-test-fail");
    let stream = Stream::open(&format!("http://{}/api/job/ci-test-fail/follow?run={failing}", w.addr), &w.ro);
    let lines = texts(&stream.read_to_end(Duration::from_secs(20)));
    assert_eq!(lines.last(), Some(&finished_line(&failing, "exit-code", 3)), "{lines:?}");
    assert!(lines.contains(&"checking something".to_string()) && lines.contains(&"something is wrong".into()));
    // Errors are JSON before the stream begins.
    let answer = get(&w.addr, "/api/job/ci-test-never/follow", &w.ro);
    assert_eq!((answer.status, answer.msg().as_str()), (404, "No run yet"));
    let answer = get(&w.addr, "/api/job/ci-test-ticker/follow?run=0123456789abcdef0123456789abcdef", &w.ro);
    assert_eq!((answer.status, answer.msg().as_str()), (404, "Unknown run"));
    assert_eq!(get(&w.addr, "/api/job/ci-test-ticker/follow", "jgt_wrong").status, 401);
    assert_eq!(get(&w.addr, "/api/job/ci-test-ticker/follow?cursors=2", &w.ro).status, 400);
}

fn follow_resumes_after_a_cursor_and_frames_by_version(w: &World) {
    let run = start(w, "ci-test-ticker");
    let target = format!("/api/job/ci-test-ticker/follow?run={run}&cursors=1");
    let lines = texts(&Stream::open(&format!("http://{}{target}", w.addr), &w.ro).read_to_end(Duration::from_secs(20)));
    assert_eq!(lines.len(), 7, "{lines:?}");
    let split: Vec<(&str, &str)> = lines.iter().map(|l| l.split_once('\t').expect("CURSOR<TAB>TEXT")).collect();
    assert!(split[..6].iter().all(|(cursor, _)| cursor.starts_with("s=")), "{lines:?}");
    assert_eq!(split[6], ("-", finished_line(&run, "success", 0).as_str()));
    // Going on after the third line gives the rest, once.
    let cursor = super::tests_api::pct(split[2].0);
    let rest = texts(
        &Stream::open(&format!("http://{}{target}&cursor={cursor}", w.addr), &w.ro)
            .read_to_end(Duration::from_secs(20)),
    );
    let rest: Vec<&str> = rest.iter().map(|l| l.split_once('\t').map_or(l.as_str(), |(_, t)| t)).collect();
    let mut want = ticks(&run)[3..].to_vec();
    want.push(finished_line(&run, "success", 0));
    assert_eq!(rest, want);
    // HTTP/1.1: chunked; HTTP/1.0: ended by closing; both the same text.
    let auth = format!("Authorization: Bearer {}\r\n", w.ro);
    let target = format!("/api/job/ci-test-ticker/follow?run={run}");
    let v11 = send_raw(&w.addr, format!("GET {target} HTTP/1.1\r\nHost: x\r\n{auth}\r\n").as_bytes());
    let v10 = send_raw(&w.addr, format!("GET {target} HTTP/1.0\r\n{auth}\r\n").as_bytes());
    assert_eq!(v11.header("Transfer-Encoding"), Some("chunked"));
    assert_eq!((v10.header("Transfer-Encoding"), v10.header("Content-Length")), (None, None));
    assert_eq!((v11.header("X-Accel-Buffering"), v11.header("X-Jobgate-Run")), (Some("no"), Some(run.as_str())));
    assert_eq!(v11.header("Content-Type"), Some("text/plain; charset=utf-8"));
    assert_eq!(v11.body, v10.body);
    assert!(v11.body.ends_with(&format!("{}\n", finished_line(&run, "success", 0))), "{}", v11.body);
    // `logs` reads a run's last lines from its end (an older run's end is
    // the next run's start), and from its start when they reach back there.
    let next = start(w, "ci-test-ticker");
    wait_until("the next run is over", Duration::from_secs(20), || w.state("ci-test-ticker")["state"] == "inactive");
    for (id, lines, want) in [(&run, 2, &ticks(&run)[4..]), (&next, 2, &ticks(&next)[4..]), (&run, 6, &ticks(&run)[..])]
    {
        let (got, _) = w.logs(&format!("/api/job/ci-test-ticker/logs?run={id}&lines={lines}"));
        assert_eq!(got, want, "run {id}, {lines} lines");
    }
}

/// Issue 4, item 2: a follow that starts before the first line, with the
/// job stopped and started again meanwhile, shows one run only.
fn follow_is_bound_to_one_run_across_a_restart(w: &World) {
    let first = start(w, "ci-test-ticker");
    let stream = Stream::open(&format!("http://{}/api/job/ci-test-ticker/follow", w.addr), &w.ro);
    // Two lines of the first run, then stop it and start the next.
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let (_, line) = stream.lines.recv_timeout(Duration::from_secs(10)).expect("a line of the first run");
        seen.push(line);
    }
    assert_eq!(post(&w.addr, "/api/job/ci-test-ticker/stop", &w.rw).status, 200);
    let second = start(w, "ci-test-ticker");
    assert_ne!(first, second);
    let mut lines = seen.clone();
    lines.extend(texts(&stream.read_to_end(Duration::from_secs(20))));
    let last = lines.pop().unwrap_or_default();
    assert!(last.starts_with(&format!("jobgate: {first} finished result=")), "{last}");
    assert!(lines.iter().all(|l| l.ends_with(&first)), "only the first run: {lines:?}");
    assert_eq!(lines[..2], ticks(&first)[..2]);
    // And the second run, followed by its id, is only its own.
    let stream = Stream::open(&format!("http://{}/api/job/ci-test-ticker/follow?run={second}", w.addr), &w.ro);
    assert_live("the second run", &stream.read_to_end(Duration::from_secs(20)), &second);
}

fn follow_cli_exits_with_the_result(w: &World) {
    let run = start(w, "ci-test-ticker");
    let out = w.cli(&["follow", "ci-test-ticker"]);
    let mut want: String = ticks(&run).iter().map(|l| format!("{l}\n")).collect();
    want.push_str(&format!("{}\n", finished_line(&run, "success", 0)));
    assert_eq!((out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned()), (Some(0), want));
    let failing = start(w, "ci-test-fail");
    let out = w.cli(&["follow", "ci-test-fail", "--run", &failing]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.ends_with(&format!("{}\n", finished_line(&failing, "exit-code", 3))), "{text}");
    assert_eq!(w.cli(&["follow", "ci-test-x/../y"]).status.code(), Some(2));
    assert_eq!(w.cli(&["follow", "ci-test-never"]).status.code(), Some(1), "no run yet");
}

/// Issue 4, item 3: two instances of one template, running at once, each
/// with its own state, runs, logs and follow.
fn follow_runs_and_state_per_instance(w: &World) {
    let main = start(w, "ci-test-deploy@main");
    let next = start(w, "ci-test-deploy@release-1.2");
    let streams = [("main", &main), ("release-1.2", &next)].map(|(branch, run)| {
        (branch, run, Stream::open(&format!("http://{}/api/job/ci-test-deploy@{branch}/follow", w.addr), &w.deploy))
    });
    for (branch, run, stream) in streams {
        let lines = texts(&stream.read_to_end(Duration::from_secs(20)));
        let want = [
            // The redaction rules of the served jobgate apply to follow too.
            format!("deploying *** {branch}"),
            format!("step 1/2: fetch {branch}"),
            format!("step 2/2: switch to {branch}"),
            format!("deployed {branch}"),
            finished_line(run, "success", 0),
        ];
        assert_eq!(lines, want);
        let state = get(&w.addr, &format!("/api/job/ci-test-deploy@{branch}/state"), &w.deploy).json();
        assert_eq!((state["run"].as_str(), state["result"].as_str()), (Some(run.as_str()), Some("success")), "{state}");
        let runs = get(&w.addr, &format!("/api/job/ci-test-deploy@{branch}/runs"), &w.deploy).json();
        assert_eq!(runs["runs"][0]["run"].as_str(), Some(run.as_str()), "{runs}");
        let logs = get(&w.addr, &format!("/api/job/ci-test-deploy@{branch}/logs?format=text"), &w.deploy);
        assert_eq!(logs.body, want[..4].iter().map(|l| format!("{l}\n")).collect::<String>());
    }
    // The deploy token may follow only its template's instances.
    assert_eq!(get(&w.addr, "/api/job/ci-test-ticker/follow", &w.deploy).status, 403);
}

/// How many journalctl processes the service user runs now.
fn journalctls(w: &World) -> usize {
    let out = w.sb.sh(&format!("pgrep -u {USER} -x journalctl"));
    String::from_utf8_lossy(&out.stdout).lines().count()
}

/// Opens a follow over a raw connection and reads until its body holds
/// `until` (or only its head, for "").
fn open_raw(addr: &str, target: &str, token: &str, until: &str) -> (TcpStream, String) {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    write!(stream, "GET {target} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n").expect("request");
    let mut got = String::new();
    let mut byte = [0u8; 1];
    let wanted = |got: &str| got.split_once("\r\n\r\n").is_some_and(|(_, body)| body.contains(until));
    while !wanted(&got) && stream.read(&mut byte).is_ok_and(|n| n == 1) {
        got.push(byte[0] as char);
    }
    (stream, got)
}

/// Threads of the served jobgate reading the journal for a follow.
fn follow_readers(w: &World) -> usize {
    let pid = w.sb.sh_ok("systemctl show -p MainPID --value jobgate-test.service");
    let out = w.sb.sh(&format!("grep -lx follow-read /proc/{}/task/*/comm", pid.trim()));
    String::from_utf8_lossy(&out.stdout).lines().count()
}

/// Per-connection jobgate processes (inetd) of the service user.
fn inetd_processes(w: &World) -> usize {
    let out = w.sb.sh(&format!("pgrep -u {USER} -f '{BIN} .*inetd'"));
    String::from_utf8_lossy(&out.stdout).lines().count()
}

/// A client that leaves ends the read behind its stream: serve's reading
/// thread (the journal read in-process), the inetd process, and with
/// `--journal-reader journalctl` the journalctl child.
fn client_that_leaves_ends_journalctl(w: &World) {
    let _stop = Stop(w, "ci-test-slow");
    start(w, "ci-test-slow");
    assert_eq!(journalctls(w), 0, "none before");
    let inetd = super::tests_api::start_inetd_socket(w);
    let through_journalctl = format!("127.0.0.1:{}", super::free_port());
    w.sb.sh_ok(&format!(
        "systemd-run --quiet --unit=jobgate-leaving --uid={USER} --gid={USER} -p SupplementaryGroups=systemd-journal \
         {BIN} --tokens {TOKENS} --state-dir {STATE}/leaving --journal-reader journalctl serve --listen {through_journalctl}"
    ));
    wait_until("the journalctl serve answers", Duration::from_secs(10), || {
        TcpStream::connect(&through_journalctl).is_ok()
    });
    type Count = fn(&World) -> usize;
    let behind: [(&str, &str, Count); 3] = [
        (&w.addr, "reading thread", follow_readers),
        (&inetd, "inetd process", inetd_processes),
        (&through_journalctl, "journalctl", journalctls),
    ];
    for (addr, what, count) in behind {
        // Chunked (serve): a chunk size line and the text; close-delimited (inetd): the text.
        let (stream, head) = open_raw(addr, "/api/job/ci-test-slow/follow", &w.ro, "slow started\n");
        assert!(head.starts_with("HTTP/1.1 200 OK") && head.contains("slow started"), "{addr}: {head}");
        assert_eq!(count(w), 1, "{addr}: one {what} behind the stream");
        assert!(what == "journalctl" || journalctls(w) == 0, "{addr}: no journalctl behind the stream");
        drop(stream);
        let left = Instant::now();
        wait_until(&format!("the {what} is gone"), Duration::from_secs(1), || count(w) == 0);
        println!("    {addr}: {what} gone {} ms after the client left", left.elapsed().as_millis());
    }
    let _ = w.sb.sh("systemctl stop jobgate-leaving");
}

/// Stops a job when dropped, also when the test fails.
struct Stop<'a>(&'a World, &'a str);

impl Drop for Stop<'_> {
    fn drop(&mut self) {
        let _ = post(&self.0.addr, &format!("/api/job/{}/stop", self.1), &self.0.rw);
    }
}

/// A second serve with a cap of two streams and a 3 s time limit.
fn follow_cap_and_time_limit(w: &World) {
    let addr = format!("127.0.0.1:{}", super::free_port());
    w.sb.sh_ok(&format!(
        "systemd-run --quiet --unit=jobgate-capped --uid={USER} --gid={USER} -p SupplementaryGroups=systemd-journal \
         {BIN} --tokens {TOKENS} --state-dir {STATE}/capped --max-follows 2 --max-follow-secs 3 serve --listen {addr}"
    ));
    wait_until("the capped serve answers", Duration::from_secs(10), || TcpStream::connect(&addr).is_ok());
    let _stop = Stop(w, "ci-test-slow");
    let run = start(w, "ci-test-slow");
    let target = "/api/job/ci-test-slow/follow";
    let (one, _) = open_raw(&addr, target, &w.ro, "slow started\n");
    let (two, _) = open_raw(&addr, target, &w.ro, "slow started\n");
    let third = get(&addr, target, &w.ro);
    assert_eq!((third.status, third.msg().as_str()), (503, "Too many streams"));
    drop(one);
    // The slot `one` held is free once serve notices it is gone; until then
    // a stream is refused (503) and asked for again. (A probe stream would
    // hold a slot of its own for as long.) The time limit then ends the
    // stream with a line that says the run goes on.
    let deadline = Instant::now() + Duration::from_secs(5);
    let (lines, took) = loop {
        let started = Instant::now();
        let lines = texts(&Stream::open(&format!("http://{addr}{target}"), &w.ro).read_to_end(Duration::from_secs(10)));
        if lines.first().is_some_and(|l| l.contains("Too many streams")) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
            continue;
        }
        break (lines, started.elapsed());
    };
    assert_eq!(
        lines,
        ["slow started".to_string(), format!("jobgate: {run} still running; stream ended after 3 s")],
        "after {took:?}"
    );
    assert!(took >= Duration::from_secs(3) && took < Duration::from_secs(6), "{took:?}");
    drop(two);
    w.sb.sh_ok("systemctl stop jobgate-capped");
}

/// The 16 streams are shared fairly (src/api/share.rs): one token alone
/// takes more than 4; another token holding none still gets its share; the
/// first may then not take the free streams the other could need.
fn follow_cap_per_token(w: &World) {
    let _stop = Stop(w, "ci-test-slow");
    start(w, "ci-test-slow");
    let target = "/api/job/ci-test-slow/follow";
    let held: Vec<_> = (0..8).map(|_| open_raw(&w.addr, target, &w.rw, "slow started\n")).collect();
    let other: Vec<_> = (0..4).map(|_| open_raw(&w.addr, target, &w.ro, "slow started\n")).collect();
    for (_, head) in &other {
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    }
    // rw holds 8, ro 4, 4 are free: rw's share is (16 - 4) / 2 = 6.
    let ninth = get(&w.addr, target, &w.rw);
    assert_eq!((ninth.status, ninth.msg().as_str()), (503, "Too many streams for this token"));
    // ro's share is (16 - 8) / 2 = 4.
    let fifth = get(&w.addr, target, &w.ro);
    assert_eq!((fifth.status, fifth.msg().as_str()), (503, "Too many streams for this token"));
    drop((held, other));
}

/// Live through socket activation, nginx → serve, and `jobgate cgi` as a
/// CGI server runs it; complete through nginx → fcgiwrap → cgi, which
/// holds output back in 8 KiB blocks (libfcgi's buffer, gnosek/fcgiwrap#36).
fn follow_through_inetd_nginx_and_cgi(w: &World) {
    let inetd = super::tests_api::start_inetd_socket(w);
    w.sb.sh("systemctl stop nginx-test");
    let (proxy, cgi) = super::tests_api::start_nginx(w);
    for url in [format!("http://{inetd}"), format!("https://{proxy}")] {
        let run = start(w, "ci-test-ticker");
        let stream = Stream::open(&format!("{url}/api/job/ci-test-ticker/follow"), &w.ro);
        assert_live(&url, &stream.read_to_end(Duration::from_secs(20)), &run);
    }
    let run = start(w, "ci-test-ticker");
    let stream = Stream::open(&format!("https://{cgi}/api/job/ci-test-ticker/follow"), &w.ro);
    let mut want = ticks(&run);
    want.push(finished_line(&run, "success", 0));
    assert_eq!(texts(&stream.read_to_end(Duration::from_secs(20))), want, "through fcgiwrap");
    // The CGI program itself writes each line as it comes.
    let run = start(w, "ci-test-ticker");
    let mut cgi =
        w.sb.command_as(USER, "/usr/bin/env")
            .args(["REQUEST_METHOD=GET", "REQUEST_URI=/api/job/ci-test-ticker/follow"])
            .arg(format!("HTTP_AUTHORIZATION=Bearer {}", w.ro))
            .args([BIN, "--tokens", TOKENS, "--state-dir", STATE, "cgi"])
            .stdout(Stdio::piped())
            .spawn()
            .expect("cgi");
    let stdout = BufReader::new(cgi.stdout.take().expect("stdout"));
    let lines: Vec<(Instant, String)> = stdout
        .lines()
        .map_while(Result::ok)
        .map(|l| (Instant::now(), l))
        .skip_while(|(_, l)| !l.is_empty())
        .skip(1)
        .collect();
    let _ = cgi.wait();
    assert_live("cgi", &lines, &run);
}

/// Issue 4, item 6: a client written like the original API's follow
/// script (start; then `tail` without cursor and `state` until the job is
/// no longer active; fail if it failed) prints each line once, in order.
fn polling_client_like_the_original_api(w: &World) {
    for (job, result) in [("ci-test-ticker", "success"), ("ci-test-fail", "failed")] {
        let run = start(w, job);
        let mut printed: Vec<String> = Vec::new();
        // Its loop: sleep, tail, state; stop when the state is not active.
        let state = loop {
            std::thread::sleep(Duration::from_millis(300));
            let tail = get(&w.addr, &format!("/api/job/{job}/tail"), &w.ro);
            assert_eq!(tail.status, 200, "{}", tail.body);
            printed
                .extend(tail.json()["logs"].as_array().expect("logs").iter().map(|l| l.as_str().unwrap_or("").into()));
            let state = w.state(job);
            if !matches!(state["state"].as_str(), Some("active" | "activating")) {
                break state;
            }
        };
        let outcome = if state["state"] == "failed" { "failed" } else { "success" };
        assert_eq!((outcome, state["run"].as_str()), (result, Some(run.as_str())), "{state}");
        let want = match job {
            "ci-test-ticker" => ticks(&run),
            _ => vec!["checking something".to_string(), "something is wrong".into()],
        };
        assert_eq!(printed, want, "{job}");
    }
    // The hold that makes it so: a tail before the first line, then the
    // run ends; until this token's tail has the lines, its state says so.
    let run = start(w, "ci-test-ticker");
    let tail = get(&w.addr, "/api/job/ci-test-ticker/tail", &w.ro);
    assert_eq!(tail.json()["logs"], serde_json::json!([]), "before the first line");
    wait_until("the run is over", Duration::from_secs(20), || {
        let state = get(&w.addr, "/api/job/ci-test-ticker/state", &w.rw).json();
        state["run"] == run.as_str() && state["state"] == "inactive"
    });
    let held = w.state("ci-test-ticker");
    assert_eq!((held["state"].as_str(), held["sub_state"].as_str()), (Some("active"), Some("tail-pending")), "{held}");
    let tail = get(&w.addr, "/api/job/ci-test-ticker/tail", &w.ro);
    assert_eq!(tail.json()["logs"], serde_json::json!(ticks(&run)));
    assert_eq!(w.state("ci-test-ticker")["state"], "inactive");
}

/// `contrib/github/jobgate-run` under dash, as a workflow runs it.
pub(crate) fn client(addr: &str, token: &str, args: &[&str], env: &[(&str, &str)]) -> Command {
    let script = format!("{}/contrib/github/jobgate-run", env!("CARGO_MANIFEST_DIR"));
    let mut cmd = Command::new("dash");
    cmd.arg(script).args(args).env("JOBGATE_URL", format!("http://{addr}")).env("JOBGATE_TOKEN", token);
    // Nothing of a GitHub step this suite may itself run in.
    for var in ["GITHUB_ACTIONS", "GITHUB_STEP_SUMMARY", "GITHUB_OUTPUT"] {
        cmd.env_remove(var);
    }
    cmd.envs(env.iter().copied());
    cmd
}

/// (exit code, stdout lines, stderr) of a finished client.
fn client_run(addr: &str, token: &str, args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, Vec<String>, String) {
    let out = client(addr, token, args, env).output().expect("dash");
    let lines = String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect();
    (out.status.code(), lines, String::from_utf8_lossy(&out.stderr).into_owned())
}

/// The run id the client says it started or follows.
pub(crate) fn client_run_id(stderr: &str) -> String {
    let at = stderr.find("run ").map(|i| i + 4).unwrap_or(0);
    stderr.get(at..at + 32).unwrap_or_default().to_string()
}

/// Issue 4, item 5: the client script against a succeeding, a failing and a
/// slow job (through a serve whose streams last 1 s, restarted meanwhile),
/// with 425 handled as asked.
fn github_client_script(w: &World) {
    // Succeeds: exactly the run's lines, exit 0.
    wait_until("ticker idle", Duration::from_secs(20), || w.state("ci-test-ticker")["state"] == "inactive");
    let (code, lines, stderr) = client_run(&w.addr, &w.rw, &["ci-test-ticker"], &[]);
    let run = client_run_id(&stderr);
    assert_eq!((code, lines), (Some(0), ticks(&run)), "{stderr}");
    assert!(stderr.contains(&format!("run {run} finished: result=success exit_status=0")), "{stderr}");
    // Fails: its lines, exit 1, a GitHub error annotation.
    let (code, lines, stderr) = client_run(&w.addr, &w.rw, &["ci-test-fail"], &[("GITHUB_ACTIONS", "true")]);
    let run = client_run_id(&stderr);
    assert_eq!(code, Some(1), "{stderr}");
    // The job's lines with workflow commands off, under a token it cannot know.
    let off = lines.first().and_then(|l| l.strip_prefix("::stop-commands::")).unwrap_or_default().to_string();
    assert!(off.len() == 32 && off.bytes().all(|b| b.is_ascii_hexdigit()), "{lines:?}");
    assert_eq!(
        lines[1..],
        [
            "checking something".to_string(),
            "something is wrong".into(),
            format!("::{off}::"),
            format!("::error::jobgate: ci-test-fail run {run} failed: result=exit-code exit_status=3"),
        ]
    );
    // Slow: streams end every second and the server restarts once; every
    // line still comes exactly once.
    let addr = format!("127.0.0.1:{}", super::free_port());
    w.sb.sh_ok(&format!(
        "systemd-run --quiet --unit=jobgate-client-test --uid={USER} --gid={USER} -p SupplementaryGroups=systemd-journal \
         {BIN} --tokens {TOKENS} --state-dir {STATE}/client --max-follow-secs 1 serve --listen {addr}"
    ));
    wait_until("the client test serve answers", Duration::from_secs(10), || TcpStream::connect(&addr).is_ok());
    let mut slow = client(&addr, &w.rw, &["--retries", "5", "ci-test-ticker"], &[])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("dash");
    let mut stdout = BufReader::new(slow.stdout.take().expect("stdout"));
    let mut first = String::new();
    stdout.read_line(&mut first).expect("a first line");
    w.sb.sh_ok("systemctl restart jobgate-client-test");
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).expect("the rest");
    let status = slow.wait().expect("wait");
    let mut stderr = String::new();
    slow.stderr.take().expect("stderr").read_to_string(&mut stderr).expect("stderr");
    let run = client_run_id(&stderr);
    let lines: Vec<String> = format!("{first}{rest}").lines().map(str::to_string).collect();
    assert_eq!((status.code(), lines), (Some(0), ticks(&run)), "{stderr}");
    assert!(stderr.contains("reconnecting"), "the restart dropped a stream: {stderr}");
    w.sb.sh_ok("systemctl stop jobgate-client-test");
    // Already running: fail, or follow that run.
    let running = start(w, "ci-test-ticker");
    let (code, lines, stderr) = client_run(&w.addr, &w.rw, &["ci-test-ticker"], &[]);
    assert_eq!((code, lines.len()), (Some(1), 0), "{stderr}");
    assert!(stderr.contains("already running"), "{stderr}");
    let (code, lines, stderr) = client_run(&w.addr, &w.rw, &["--on-active", "follow", "ci-test-ticker"], &[]);
    assert_eq!((code, lines), (Some(0), ticks(&running)), "{stderr}");
    // Cancelled (GitHub sends SIGINT, then SIGTERM, to the step's
    // processes): the run goes on, or is stopped with --stop-on-cancel.
    for (args, stopped, signal) in
        [(&["ci-test-slow"][..], false, "-TERM"), (&["--stop-on-cancel", "ci-test-slow"][..], true, "-INT")]
    {
        let running = || matches!(w.state("ci-test-slow")["state"].as_str(), Some("active" | "activating"));
        wait_until("slow idle", Duration::from_secs(20), || !running());
        let mut cancelled = client(&w.addr, &w.rw, args, &[])
            .process_group(0)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("dash");
        let mut first = String::new();
        BufReader::new(cancelled.stdout.take().expect("stdout")).read_line(&mut first).expect("a first line");
        assert_eq!(first, "slow started\n");
        Command::new("kill").args([signal, "--", &format!("-{}", cancelled.id())]).status().expect("kill");
        let status = cancelled.wait().expect("wait");
        let mut stderr = String::new();
        cancelled.stderr.take().expect("stderr").read_to_string(&mut stderr).expect("stderr");
        assert_eq!(status.code(), Some(130), "{stderr}");
        if stopped {
            assert!(stderr.contains("interrupted; stopping ci-test-slow"), "{stderr}");
            wait_until("the run is stopped", Duration::from_secs(10), || !running());
        } else {
            assert!(running(), "{args:?}: {stderr}");
        }
        if !stopped {
            assert!(stderr.contains("goes on"), "{stderr}");
            assert_eq!(post(&w.addr, "/api/job/ci-test-slow/stop", &w.rw).status, 200);
        }
    }
    // Trigger only, state checks, a token that may not start.
    let (code, _, stderr) = client_run(&w.addr, &w.rw, &["--no-follow", "ci-test-ticker"], &[]);
    assert_eq!(code, Some(0), "{stderr}");
    let (code, lines, _) = client_run(&w.addr, &w.ro, &["--state", "ci-test-fail"], &[]);
    assert_eq!(code, Some(1), "{lines:?}");
    assert!(lines[0].starts_with("ci-test-fail: state=failed result=exit-code exit_status=3"), "{lines:?}");
    let (code, _, stderr) = client_run(&w.addr, &w.ro, &["ci-test-hello"], &[]);
    assert_eq!(code, Some(3), "{stderr}");
    assert!(stderr.contains("HTTP 403 from jobgate: Not permitted"), "{stderr}");
    let (code, _, _) = client_run(&w.addr, &w.rw, &["ci-test-a;reboot"], &[]);
    assert_eq!(code, Some(2));
    wait_until("ticker idle", Duration::from_secs(20), || w.state("ci-test-ticker")["state"] == "inactive");
}
