//! Issue 11: the shipped serve unit, as shipped (its TasksMax= and
//! MemoryMax= included), under more load than its caps allow and under
//! faults: every request is answered 200, 4xx or 503, never 500 nor a
//! dropped connection, and threads, slots and journal reads come back to
//! idle afterwards.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use super::client::{get, Answer};
use super::{wait_until, World, USER};
use crate::Test;

pub const TESTS: &[Test] = &[
    ("shipped_serve_holds_under_load_and_faults", shipped_serve_holds_under_load_and_faults),
    ("shipped_socket_unit_behind_nginx_holds_under_load", shipped_socket_unit_behind_nginx_holds_under_load),
];

/// The socket unit (a process per connection) as shipped, behind the
/// shipped nginx site, with 200 requests at once and its process gone
/// meanwhile: every answer 200 or 503 (nginx's rate limit, or jobgate at its
/// cap), never a 502, a 500 or a dropped connection.
fn shipped_socket_unit_behind_nginx_holds_under_load(w: &World) {
    let socket = super::tests_api::start_inetd_socket(w);
    let (proxy, _cgi) = super::tests_api::start_nginx_to(w, &socket);
    let url = format!("https://{proxy}/api/job/ci-test-hello/state");
    let auth = format!("Authorization: Bearer {}", w.ro);
    let statuses = |n: usize| -> Vec<String> {
        let mut curl = std::process::Command::new("curl");
        curl.args(["-sk", "--parallel", "--parallel-immediate", "--parallel-max", "200", "-H", &auth]);
        for _ in 0..n {
            curl.args(["-o", "/dev/null", "-w", "%{http_code}\n", &url]);
        }
        let out = curl.output().expect("curl");
        String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect()
    };
    let answers = statuses(200);
    assert_eq!(answers.len(), 200, "{answers:?}");
    assert!(answers.iter().all(|s| s == "200" || s == "503"), "{answers:?}");
    assert!(answers.iter().any(|s| s == "200"), "{answers:?}");
    // jobgate away (its socket stopped): 503 from nginx, in jobgate's shape.
    w.sb.sh_ok("systemctl stop jobgate.socket");
    std::thread::sleep(Duration::from_millis(1100)); // nginx's rate limit
    let away = std::process::Command::new("curl")
        .args(["-sk", "-w", "\n%{http_code}", "-H", &auth, &url])
        .output()
        .expect("curl");
    let away = String::from_utf8_lossy(&away.stdout).into_owned();
    assert!(away.ends_with("\n503") && away.starts_with(r#"{"msg":"Too many requests"}"#), "{away}");
    w.sb.sh_ok("systemctl stop nginx-test.service jobgate-fcgiwrap.socket jobgate-fcgiwrap.service");
}

const UNIT: &str = "jobgate-load";

fn serve_status(w: &World, field: &str) -> String {
    w.sb.sh_ok(&format!("systemctl show -p {field} --value {UNIT}")).trim().to_string()
}

/// Threads of the serve process.
fn threads(w: &World) -> usize {
    let pid = serve_status(w, "MainPID");
    w.sb.sh_ok(&format!("grep '^Threads:' /proc/{pid}/status | tr -dc 0-9")).trim().parse().unwrap_or(0)
}

/// Open files of the serve process, and its resident memory in KiB.
fn files_and_memory(w: &World) -> (usize, u64) {
    let pid = serve_status(w, "MainPID");
    let files = w.sb.sh_ok(&format!("ls /proc/{pid}/fd | wc -l")).trim().parse().unwrap_or(0);
    let rss = w.sb.sh_ok(&format!("grep '^VmRSS:' /proc/{pid}/status | tr -dc 0-9")).trim().parse().unwrap_or(0);
    (files, rss)
}

fn journal_reads(w: &World) -> usize {
    w.sb.sh(&format!("pgrep -u {USER} -c journalctl"))
        .stdout
        .iter()
        .filter(|b| b.is_ascii_digit())
        .map(|b| (b - b'0') as usize)
        .fold(0, |n, d| n * 10 + d)
}

fn at_once(n: usize, addr: &str, target: &str, token: &str) -> Vec<Answer> {
    let clients: Vec<_> = (0..n)
        .map(|_| {
            let (addr, target, token) = (addr.to_string(), target.to_string(), token.to_string());
            std::thread::spawn(move || get(&addr, &target, &token))
        })
        .collect();
    clients.into_iter().map(|c| c.join().expect("client")).collect()
}

fn shipped_serve_holds_under_load_and_faults(w: &World) {
    let port = super::free_port();
    let addr = format!("127.0.0.1:{port}");
    let unit = super::tests_api::shipped_unit("jobgate.service").replace("127.0.0.1:8000", &addr);
    w.sb.install_unit(&format!("{UNIT}.service"), &unit);
    w.sb.install_unit(
        "ci-test-chatty.service",
        "[Service]\nExecStart=/bin/sh -c 'i=0; while [ $i -lt 3000 ]; do i=$((i+1)); echo \"chatty line $i of a long job, as a build prints them\"; sleep 0.005; done'\n",
    );
    w.sb.sh_ok(&format!("systemctl start {UNIT}"));
    wait_until("the shipped serve answers", Duration::from_secs(10), || TcpStream::connect(&addr).is_ok());
    let idle_threads = threads(w);
    let (idle_files, idle_rss) = files_and_memory(w);

    // 200 connections at once, past the 64 it serves: 200 or 503 each.
    let answers = at_once(200, &addr, "/api/job/ci-test-hello/state", &w.ro);
    let served = answers.iter().filter(|a| a.status == 200).count();
    let busy = answers.iter().filter(|a| a.status == 503).count();
    assert_eq!(
        served + busy,
        200,
        "{:?}",
        answers.iter().map(|a| a.status).filter(|s| *s != 200 && *s != 503).collect::<Vec<_>>()
    );
    assert!(served >= 64, "only {served} answered 200");

    // 64 clients that trickle their heads hold every slot: others get 503
    // at once, and the tricklers are cut off within the request deadline.
    let tricklers: Vec<TcpStream> = (0..64)
        .map(|_| {
            let mut c = TcpStream::connect(&addr).expect("connect");
            c.write_all(b"G").expect("first byte");
            c
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    let meanwhile = get(&addr, "/api/job/ci-test-hello/state", &w.ro);
    assert_eq!(meanwhile.status, 503, "{}", meanwhile.body);
    assert!(started.elapsed() < Duration::from_secs(2), "a 503 must not wait");
    for mut c in tricklers {
        c.set_read_timeout(Some(Duration::from_secs(12))).expect("timeout");
        let _ = c.write_all(b"E");
        let mut answer = Vec::new();
        let _ = c.read_to_end(&mut answer);
        assert!(String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 408"), "{:?}", String::from_utf8_lossy(&answer));
    }
    assert_eq!(get(&addr, "/api/job/ci-test-hello/state", &w.ro).status, 200, "slots are back");
    wait_until("serve's threads are back to idle", Duration::from_secs(5), || threads(w) <= idle_threads);
    assert_eq!(journal_reads(w), 0, "no journal read is left behind");
    let (files, rss) = files_and_memory(w);
    // Besides the connections to the system bus it keeps for state (at
    // most 4, systemd::bus's MAX_IDLE; none before its first request).
    assert!(files <= idle_files + 4, "open files are back to idle: {files}, {idle_files} before");
    assert!(rss <= idle_rss + 8 * 1024, "memory is back near idle: {rss} KiB, {idle_rss} KiB before");

    // A burst of starts of a chatty job: one starts it.
    let starts: Vec<_> = (0..8)
        .map(|_| {
            let (addr, rw) = (addr.clone(), w.rw.clone());
            std::thread::spawn(move || super::client::post(&addr, "/api/job/ci-test-chatty", &rw))
        })
        .collect();
    let mut started: Vec<u16> = starts.into_iter().map(|s| s.join().expect("start").status).collect();
    started.sort();
    assert_eq!(started, [200, 425, 425, 425, 425, 425, 425, 425]);

    // Two streams of the ro token that never read, then 16 follows of the
    // rw token: it may hold its fair share, (16 - 2) / 2 = 7 of the 16
    // streams (follow::share), the others are refused at once; journald
    // restarts and systemd reloads meanwhile; then serve is stopped under
    // them.
    let silent: Vec<TcpStream> = (0..2)
        .map(|_| {
            let mut c = TcpStream::connect(&addr).expect("connect");
            write!(
                c,
                "GET /api/job/ci-test-chatty/follow HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\r\n",
                w.ro
            )
            .expect("request");
            c
        })
        .collect();
    std::thread::sleep(Duration::from_secs(1));
    let readers: Vec<_> = (0..16)
        .map(|_| {
            let (addr, token) = (addr.clone(), w.rw.clone());
            std::thread::spawn(move || get(&addr, "/api/job/ci-test-chatty/follow", &token))
        })
        .collect();
    std::thread::sleep(Duration::from_secs(2));
    w.sb.sh_ok("systemctl restart systemd-journald && systemctl daemon-reload");
    std::thread::sleep(Duration::from_secs(2));
    let memory: u64 = serve_status(w, "MemoryCurrent").parse().unwrap_or(0);
    let tasks: u64 = serve_status(w, "TasksCurrent").parse().unwrap_or(0);
    w.sb.sh_ok(&format!("systemctl stop {UNIT}"));
    let answers: Vec<Answer> = readers.into_iter().map(|r| r.join().expect("follow")).collect();
    let streams: Vec<&Answer> = answers.iter().filter(|a| a.status == 200).collect();
    let refused = answers.iter().filter(|a| a.status == 503 && a.msg().starts_with("Too many streams")).count();
    let statuses = answers.iter().map(|a| a.status).collect::<Vec<_>>();
    assert!(streams.len() == 7 && refused == 9, "{statuses:?}");
    for stream in streams {
        assert!(stream.body.lines().any(|l| l.starts_with("chatty line")), "lines came before the stop");
    }
    drop(silent);
    assert_eq!(serve_status(w, "NRestarts"), "0", "serve was never restarted (no OOM kill, no crash)");
    wait_until("no journal read is left behind", Duration::from_secs(5), || journal_reads(w) == 0);
    eprintln!(
        "  under load: serve at {} MiB and {tasks} tasks with 9 streams; {idle_threads} thread(s) idle",
        memory >> 20
    );
    let _ = w.sb.sh(&format!("systemctl stop ci-test-chatty; systemctl reset-failed {UNIT}"));
}
