//! Issue 22, the workflows CI users run, with the shipped client
//! `contrib/github/jobgate-run`: a matrix of 16 CI jobs sharing one rw
//! token and 16 more with GitHub ID tokens, each following its own
//! 5-minute run, one of each failing, beside a run followed through the
//! shipped nginx site (to another serve) while its connection is cut
//! every 30 s. 32 clients on one serve's 16 streams: those refused keep
//! their run in view by polling `tail` until a stream is free. Each client shows its run's
//! lines once, in order, and exits with its run's status.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use super::tests_follow::client;
use super::tests_oidc::{id_token_endpoint, trusting_serve};
use super::World;
use crate::Test;

pub const TESTS: &[Test] = &[
    ("a_restarted_job_is_followed_to_its_last_attempt", a_restarted_job_is_followed_to_its_last_attempt),
    ("a_matrix_of_ci_jobs_ends_as_its_runs", a_matrix_of_ci_jobs_ends_as_its_runs),
];

/// Restart=on-failure, as a deploy that retries: jobgate-run follows the
/// failed attempts into the next and exits with the last one's status
/// (twice failing then succeeding: 0; failing to systemd's start limit: 1).
fn a_restarted_job_is_followed_to_its_last_attempt(w: &World) {
    for (job, attempts, code) in [("ci-test-retry-ok", 3, 0), ("ci-test-retry-fail", 2, 1)] {
        // The job's own runtime directory, kept across its attempts (the
        // prefix drop-in makes the rest of the file system read-only).
        let unit = format!(
            "[Unit]\nStartLimitIntervalSec=1min\nStartLimitBurst={attempts}\n[Service]\nRestart=on-failure\nRestartSec=300ms\n\
             RuntimeDirectory={job}\nRuntimeDirectoryPreserve=yes\n\
             ExecStart=/bin/sh -c 'f=/run/{job}/count; n=$$(cat $$f 2>/dev/null || echo 0); n=$$((n+1)); echo $$n >$$f; \
             for i in 1 2 3; do echo \"attempt $$n line $$i\"; sleep 0.2; done; [ $$n -ge 3 ] || exit 4'\n"
        );
        w.sb.sh_ok(&format!("rm -rf /run/{job}"));
        w.sb.install_unit(&format!("{job}.service"), &unit);
        let out = client(&w.addr, &w.rw, &[job], &[]).output().expect("dash");
        let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        let want: Vec<String> =
            (1..=attempts).flat_map(|n| (1..=3).map(move |i| format!("attempt {n} line {i}"))).collect();
        assert_eq!(stdout.lines().collect::<Vec<_>>(), want, "{job}: {stderr}");
        assert_eq!(out.status.code(), Some(code), "{job}: {stderr}");
        assert_eq!(stderr.matches("systemd restarted it").count(), attempts - 1, "{job}: {stderr}");
        w.sb.sh(&format!("systemctl reset-failed {job}"));
    }
}

/// How long each run lasts, and how often it writes a line.
const RUN_SECS: usize = 300;
const LINES: usize = RUN_SECS * 2;
/// The instance of each half of the matrix whose run fails (exit 5).
const FAILING: [&str; 2] = ["7", "id-7"];

/// A line every half second for RUN_SECS, then exit 5 for the failing
/// instances. `$$` is a `$` for the shell; `%i` the instance.
fn matrix_unit() -> String {
    format!(
        "[Service]\nExecStart=/bin/sh -c 'n=0; while [ $$n -lt {LINES} ]; do n=$$((n+1)); echo \"matrix %i line $$n\"; \
         sleep 0.5; done; case %i in {}|{}) exit 5;; esac'\n",
        FAILING[0], FAILING[1]
    )
}

fn want_lines(instance: &str) -> Vec<String> {
    (1..=LINES).map(|n| format!("matrix {instance} line {n}")).collect()
}

fn a_matrix_of_ci_jobs_ends_as_its_runs(w: &World) {
    w.sb.install_unit("ci-test-matrix@.service", &matrix_unit());
    let serve = trusting_serve(w);
    // The run followed through nginx goes to the suite's own serve, where
    // it has a stream to itself, so that the cuts fall on its stream.
    let (proxy, _) = super::tests_api::start_nginx(w);
    let cutter = Cutter::start(&proxy, Duration::from_secs(30));
    let ca = super::tests_ci::scratch("matrix-ca.pem");
    std::fs::write(&ca, w.sb.sh_ok("cat /run/jobgate-test/nginx/tls.pem")).expect("ca");
    let (endpoint, _) = id_token_endpoint();

    let mut clients: Vec<(String, thread::JoinHandle<Output>)> = Vec::new();
    let spawn = |cmd: Command| thread::spawn(move || { cmd }.output().expect("dash"));
    for n in 1..=16 {
        let instance = n.to_string();
        let cmd = client(&serve, &w.rw, &[&format!("ci-test-matrix@{instance}")], &[]);
        clients.push((instance, spawn(cmd)));
    }
    for n in 1..=16 {
        let instance = format!("id-{n}");
        let env =
            [("ACTIONS_ID_TOKEN_REQUEST_URL", endpoint.as_str()), ("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "request-token")];
        let mut cmd = client(
            &serve,
            "",
            &["--oidc", "https://ci.example.org/jobgate", &format!("ci-test-matrix@{instance}")],
            &env,
        );
        cmd.env_remove("JOBGATE_TOKEN");
        clients.push((instance, spawn(cmd)));
    }
    let mut cut = client(&cutter.addr, &w.rw, &["ci-test-matrix@nginx"], &[]);
    cut.env("JOBGATE_URL", format!("https://{}", cutter.addr)).env("CURL_CA_BUNDLE", &ca);
    clients.push(("nginx".into(), spawn(cut)));

    let (mut polled, mut cuts) = (0, 0);
    for (instance, handle) in clients {
        let out = handle.join().expect("client");
        let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        let lines: Vec<String> = stdout.lines().map(str::to_string).collect();
        let tail = stderr.lines().rev().take(5).collect::<Vec<_>>().join(" | ");
        let (code, result) = if FAILING.contains(&instance.as_str()) {
            (1, "result=exit-code exit_status=5")
        } else {
            (0, "result=success exit_status=0")
        };
        assert_eq!(out.status.code(), Some(code), "{instance}: {tail}");
        assert!(stderr.contains(&format!("finished: {result}")), "{instance}: {tail}");
        if lines != want_lines(&instance) {
            let first_wrong = lines.iter().zip(want_lines(&instance)).position(|(a, b)| *a != b);
            panic!("{instance}: {} lines, first wrong at {first_wrong:?}: {tail}", lines.len());
        }
        polled += usize::from(stderr.contains("no stream free"));
        if instance == "nginx" {
            let reconnects = stderr.matches("reconnecting").count();
            cuts = reconnects;
            assert!(
                reconnects >= (RUN_SECS / 30).saturating_sub(2),
                "the nginx client's stream was cut: {reconnects} reconnects"
            );
        }
    }
    assert!(polled > 0, "some clients found no stream free and polled");
    drop(cutter);
    eprintln!(
        "  matrix: 33 clients, {polled} of the 32 on one serve polled tail while refused; the nginx client reconnected {cuts} times"
    );
}

/// A TCP forwarder to `to` that cuts every connection through it every
/// `every`, as a flaky network between a runner and nginx would.
struct Cutter {
    /// `localhost:PORT`: the name nginx's test certificate is for.
    addr: String,
    open: Arc<Mutex<Vec<TcpStream>>>,
    stop: Arc<AtomicBool>,
}

impl Cutter {
    fn start(to: &str, every: Duration) -> Cutter {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let open: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (to, kept) = (to.to_string(), open.clone());
        thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(server) = TcpStream::connect(&to) else { continue };
                let mut kept = kept.lock().expect("lock");
                if kept.len() > 4096 {
                    kept.drain(..2048);
                }
                for stream in [&client, &server] {
                    kept.push(stream.try_clone().expect("clone"));
                }
                pump(client.try_clone().expect("clone"), server.try_clone().expect("clone"));
                pump(server, client);
            }
        });
        let (cut, stop) = (open.clone(), Arc::new(AtomicBool::new(false)));
        let stopped = stop.clone();
        thread::spawn(move || {
            while !stopped.load(Ordering::SeqCst) {
                let since = Instant::now();
                while since.elapsed() < every && !stopped.load(Ordering::SeqCst) {
                    thread::sleep(Duration::from_millis(200));
                }
                for stream in cut.lock().expect("lock").drain(..) {
                    let _ = stream.shutdown(Shutdown::Both);
                }
            }
        });
        Cutter { addr: format!("localhost:{port}"), open, stop }
    }
}

impl Drop for Cutter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for stream in self.open.lock().expect("lock").drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }
}

fn pump(mut from: TcpStream, mut to: TcpStream) {
    thread::spawn(move || {
        let mut buf = [0u8; 16 << 10];
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 || to.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    });
}
