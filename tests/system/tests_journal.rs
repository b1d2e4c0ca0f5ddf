//! Issue 12: the journal read in-process (`--journal-reader native`, the
//! default) beside journalctl. For every unit the other tests ran (every
//! unit type, `Restart=`, `User=` with its own journal file, templates),
//! both readers give the same runs, lines and cursors; so they do for a run
//! read while it is written, with long (compressed) lines and journald
//! rotating its files under the read; a damaged file is read through
//! journalctl; and no read makes a child process while the files and the
//! bus can be read.

use std::time::Duration;

use serde_json::Value;

use super::client::get;
use super::{free_port, wait_until, World, BIN, STATE, TOKENS, USER};
use crate::Test;

pub const TESTS: &[Test] = &[
    ("both_journal_readers_agree_on_every_job", both_journal_readers_agree_on_every_job),
    ("both_journal_readers_agree_on_a_run_being_written_across_rotations", both_readers_agree_on_a_rotating_run),
    ("a_damaged_journal_file_is_read_through_journalctl", a_damaged_journal_file_is_read_through_journalctl),
    ("no_child_process_during_reads", no_child_process_during_reads),
];

/// What jobgate logs when a read goes through journalctl after all.
const FELL_BACK: &str = "read through journalctl instead";
const SPY_DIR: &str = "/run/jobgate-test/spy";

/// `jobgate --journal-reader READER ARGS…` as the service user: stdout,
/// and stderr (its log).
fn cli(w: &World, reader: &str, args: &[&str]) -> (String, String) {
    let out =
        w.sb.command_as(USER, BIN)
            .args(["--tokens", TOKENS, "--state-dir", STATE, "--journal-reader", reader])
            .args(args)
            .output()
            .expect("run jobgate");
    (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// Every job of the prefix the sandbox knows, instances included, and
/// whether it is running now.
fn known_jobs(w: &World) -> Vec<(String, bool)> {
    let listing = w.sb.sh_ok("systemctl list-units --all --plain --no-legend 'ci-test-*.service'");
    listing
        .lines()
        .filter_map(|line| {
            let mut columns = line.split_whitespace();
            let job = columns.next()?.strip_suffix(".service")?.to_string();
            let active = columns.nth(1)?;
            Some((job, matches!(active, "active" | "activating" | "deactivating")))
        })
        .collect()
}

/// A serve of the service user with extra options, on a port of its own;
/// stopped with its unit.
struct Served {
    unit: String,
    addr: String,
}

impl Served {
    fn start(w: &World, name: &str, options: &str) -> Served {
        let addr = format!("127.0.0.1:{}", free_port());
        let unit = format!("jobgate-{name}");
        let state = format!("{STATE}-{name}");
        w.sb.sh_ok(&format!("mkdir -p {state} && chown {USER}:{USER} {state} && chmod 0700 {state}"));
        w.sb.sh_ok(&format!(
            "systemd-run --quiet --unit={unit} --uid={USER} --gid={USER} -p SupplementaryGroups=systemd-journal \
             -E RUST_LOG=info {BIN} --tokens {TOKENS} --state-dir {state} {options} serve --listen {addr}"
        ));
        wait_until(&format!("{unit} answers"), Duration::from_secs(10), || std::net::TcpStream::connect(&addr).is_ok());
        Served { unit, addr }
    }

    fn log(&self, w: &World) -> String {
        w.sb.sh_ok(&format!("journalctl --no-pager -o cat -u {}", self.unit))
    }

    fn stop(self, w: &World) {
        let _ = w.sb.sh(&format!("systemctl stop {}", self.unit));
    }
}

fn both_journal_readers_agree_on_every_job(w: &World) {
    // Runs of its own, so that it stands alone: oneshot and simple units,
    // a failure, template instances; after the other tests it reads theirs
    // too.
    let own =
        ["ci-test-hello", "ci-test-fail", "ci-test-count", "ci-test-secret", "ci-test-deploy@main", "ci-test-deploy@x"];
    for job in own {
        w.run_to_end(job);
    }
    // systemd unloads a finished unit that did not fail: those are not
    // listed, but their runs are in the journal.
    let mut jobs = known_jobs(w);
    for job in own {
        if !jobs.iter().any(|(known, _)| known == job) {
            jobs.push((job.to_string(), false));
        }
    }
    let journalctl =
        Served::start(w, "through-journalctl", "--journal-reader journalctl --redact /run/jobgate-test/redact");
    for (job, _) in jobs.iter().filter(|(_, running)| !running) {
        let job = job.as_str();
        let (native_runs, log) = cli(w, "native", &["--json", "runs", job, "--limit", "100"]);
        let (journalctl_runs, _) = cli(w, "journalctl", &["--json", "runs", job, "--limit", "100"]);
        assert_eq!(native_runs, journalctl_runs, "{job}: runs");
        assert!(!log.contains(FELL_BACK), "{job}: read in-process: {log}");
        let runs: Value = serde_json::from_str(&native_runs).unwrap_or(Value::Null);
        let runs: Vec<&str> = runs["runs"].as_array().into_iter().flatten().filter_map(|r| r["run"].as_str()).collect();
        let mut reads = vec![vec!["logs", job, "--lines", "100000"]];
        for run in &runs {
            reads.push(vec!["logs", job, "--run", run, "--lines", "100000"]);
            reads.push(vec!["follow", job, "--run", run]);
        }
        for read in reads {
            let (native, log) = cli(w, "native", &read);
            let (through_journalctl, _) = cli(w, "journalctl", &read);
            assert_eq!(native, through_journalctl, "{read:?}");
            assert!(!log.contains(FELL_BACK), "{read:?} read in-process: {log}");
        }
        // Over HTTP, each run's lines with their cursors, and the last lines.
        let mut targets: Vec<String> =
            runs.iter().map(|run| format!("/api/job/{job}/follow?run={run}&cursors=1")).collect();
        targets.push(format!("/api/job/{job}/logs?lines=50"));
        for target in targets {
            let native = get(&w.addr, &target, &w.ro);
            let other = get(&journalctl.addr, &target, &w.ro);
            assert_eq!((native.status, &native.body), (other.status, &other.body), "{target}");
        }
    }
    journalctl.stop(w);
}

/// Prints 30,000 lines in bursts, every tenth over journald's 512-byte
/// compression threshold, with the run's id in each; then waits, so that
/// journald has stored them all before the run ends.
const CHATTY: &str = "[Unit]\nStartLimitIntervalSec=0\n[Service]\nType=simple\nExecStart=/bin/sh -c '\
    long=$(head -c 700 /dev/zero | tr \"\\\\0\" y); \
    for b in $(seq 1 30); do for i in $(seq 1 1000); do \
    if [ $((i % 10)) = 0 ]; then echo \"$b.$i $INVOCATION_ID $long\"; else echo \"$b.$i $INVOCATION_ID\"; fi; \
    done; sleep 0.2; done; sleep 1'\n";

fn archived_files(w: &World) -> usize {
    let listing = w.sb.sh_ok("ls /var/log/journal/*/ /run/log/journal/*/ 2>/dev/null || true");
    listing.lines().filter(|name| name.contains('@')).count()
}

fn follow_body(addr: &str, job: &str, token: &str) -> std::thread::JoinHandle<(u16, String)> {
    let (addr, target, token) = (addr.to_string(), format!("/api/job/{job}/follow?cursors=1"), token.to_string());
    std::thread::spawn(move || {
        let answer = get(&addr, &target, &token);
        (answer.status, answer.body)
    })
}

fn both_readers_agree_on_a_rotating_run(w: &World) {
    let job = "ci-test-journal-chatty";
    w.sb.install_unit(&format!("{job}.service"), CHATTY);
    // Small files: journald rotates several times while the run is read.
    w.sb.sh_ok(
        "mkdir -p /run/systemd/journald.conf.d && printf '[Journal]\\nRateLimitIntervalSec=0\\nSystemMaxFileSize=1M\\n\
         RuntimeMaxFileSize=1M\\n' > /run/systemd/journald.conf.d/rotate.conf && systemctl restart systemd-journald",
    );
    let archived_before = archived_files(w);
    let journalctl =
        Served::start(w, "rotating-journalctl", "--journal-reader journalctl --redact /run/jobgate-test/redact");
    w.sb.sh_ok(&format!("systemctl start {job}"));
    let native = follow_body(&w.addr, job, &w.ro);
    let through_journalctl = follow_body(&journalctl.addr, job, &w.ro);
    let native = native.join().expect("native follow");
    let through_journalctl = through_journalctl.join().expect("journalctl follow");
    w.sb.sh_ok("rm -f /run/systemd/journald.conf.d/rotate.conf && systemctl restart systemd-journald");
    journalctl.stop(w);
    assert_eq!(native.0, 200, "{}", native.1);
    assert_eq!(native, through_journalctl, "the same lines and cursors, live, from both readers");
    assert!(native.1.lines().last().is_some_and(|l| l.contains("result=success")), "{:?}", native.1.lines().last());
    // The job's lines as followed (cursor, tab, text) and as journalctl
    // shows them: the same, a line journald stored twice (at a rotation:
    // the last entry of one file and the first of the next) included.
    let followed: Vec<&str> = native.1.lines().filter_map(|l| l.split_once('\t')).map(|(_, text)| text).collect();
    let followed = &followed[..followed.len().saturating_sub(1)];
    let stored = w.sb.sh_ok(&format!("journalctl -q --no-pager -o cat _SYSTEMD_UNIT={job}.service"));
    let stored: Vec<&str> = stored.lines().collect();
    assert!(
        followed == stored.as_slice(),
        "followed as journalctl shows them: {} and {} lines",
        followed.len(),
        stored.len()
    );
    // Every line carries its counter (B.I): each the job printed is there,
    // in order, each once but for a line stored twice in a row.
    let mut counters: Vec<&str> = followed.iter().filter_map(|l| l.split_whitespace().next()).collect();
    let shown = counters.len();
    counters.dedup();
    let printed: Vec<String> = (1..=30).flat_map(|b| (1..=1000).map(move |i| format!("{b}.{i}"))).collect();
    assert!(
        counters == printed,
        "every line the job printed, in order: {} distinct of {} printed",
        counters.len(),
        printed.len()
    );
    assert!(shown - counters.len() <= 3, "few lines stored twice: {} of {shown}", shown - counters.len());
    let archived_after = archived_files(w);
    assert!(
        archived_after >= archived_before + 3,
        "journald rotated during the run: {archived_before} → {archived_after}"
    );
    let log = w.sb.sh_ok("journalctl --no-pager -o cat -u jobgate-test.service | tail -n 200");
    assert!(!log.contains(FELL_BACK), "read in-process: {log}");
}

/// Runs `job` (the chatty unit) to its end while journald keeps its files
/// small, so that the run's lines are spread over archived files.
fn chatty_run_across_rotations(w: &World, job: &str) {
    w.sb.install_unit(&format!("{job}.service"), CHATTY);
    w.sb.sh_ok(
        "mkdir -p /run/systemd/journald.conf.d && printf '[Journal]\\nRateLimitIntervalSec=0\\nSystemMaxFileSize=1M\\n\
         RuntimeMaxFileSize=1M\\n' > /run/systemd/journald.conf.d/rotate.conf && systemctl restart systemd-journald",
    );
    w.sb.sh_ok(&format!("systemctl start {job}"));
    wait_until(&format!("{job} has ended"), Duration::from_secs(120), || {
        w.sb.sh(&format!("systemctl is-active --quiet {job}")).status.code() != Some(0)
    });
    w.sb.sh_ok("rm -f /run/systemd/journald.conf.d/rotate.conf && systemctl restart systemd-journald");
}

fn a_damaged_journal_file_is_read_through_journalctl(w: &World) {
    // A run of its own, so that it stands alone.
    let job = "ci-test-journal-damaged";
    chatty_run_across_rotations(w, job);
    // An archived file holding some of the chatty run, cut in half.
    let file = w.sb.sh_ok(&format!(
        "for f in $(ls -t /var/log/journal/*/system@*.journal); do \
         journalctl --file=\"$f\" -q -n 1 _SYSTEMD_UNIT={job}.service | grep -q . && echo \"$f\" && break; done"
    ));
    let file = file.trim();
    assert!(!file.is_empty(), "an archived file holds the run");
    let size: u64 = w.sb.sh_ok(&format!("stat -c %s {file}")).trim().parse().expect("size");
    w.sb.sh_ok(&format!("truncate -s {} {file}", size / 2));
    let (native, log) = cli(w, "native", &["logs", job, "--lines", "100000"]);
    let (through_journalctl, _) = cli(w, "journalctl", &["logs", job, "--lines", "100000"]);
    // Gone again: the tests after this one read the journal in-process.
    w.sb.sh_ok(&format!("rm {file}"));
    assert_eq!(native, through_journalctl, "the damaged file is read as journalctl reads it");
    assert!(log.contains(FELL_BACK) && log.contains("damaged"), "the log says why: {log}");
}

/// Wrappers in place of systemctl and journalctl that note each call.
fn install_spies(w: &World) {
    for tool in ["systemctl", "journalctl"] {
        let script = format!("#!/bin/sh\necho \"{tool} $*\" >> {SPY_DIR}/calls\nexec /usr/bin/{tool} \"$@\"\n");
        w.sb.write_file(&format!("{SPY_DIR}/{tool}"), script.as_bytes(), 0o755, "root");
    }
    w.sb.sh_ok(&format!("touch {SPY_DIR}/calls && chown {USER} {SPY_DIR}/calls && : > {SPY_DIR}/calls"));
}

fn no_child_process_during_reads(w: &World) {
    install_spies(w);
    w.run_to_end("ci-test-count");
    let spied = Served::start(
        w,
        "spied",
        &format!("--systemctl {SPY_DIR}/systemctl --journalctl {SPY_DIR}/journalctl --redact /run/jobgate-test/redact"),
    );
    // A run read while it is written, and one finished.
    w.sb.sh_ok("systemctl start --no-block ci-test-ticker");
    let ticker = follow_body(&spied.addr, "ci-test-ticker", &w.ro);
    let finished = "ci-test-count";
    let run = w.state(finished)["run"].as_str().map(str::to_string).unwrap_or_default();
    let mut targets = vec![
        "/healthz".to_string(),
        "/api/jobs".to_string(),
        format!("/api/job/{finished}/state"),
        format!("/api/job/{finished}/runs"),
        format!("/api/job/{finished}/logs"),
        format!("/api/job/{finished}/logs?lines=2"),
        format!("/api/job/{finished}/tail"),
        format!("/api/job/{finished}/follow"),
        "/api/job/ci-test-never/logs".to_string(),
        "/api/job/ci-test-deploy@main/state".to_string(),
    ];
    if !run.is_empty() {
        targets.push(format!("/api/job/{finished}/runs/{run}/logs"));
    }
    for target in &targets {
        let answer = get(&spied.addr, target, &w.ro);
        assert_eq!(answer.status, 200, "{target}: {}", answer.body);
    }
    let (status, body) = ticker.join().expect("follow");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body.lines().filter(|l| l.contains("\ttick ")).count(), 6, "a whole live run: {body}");
    let calls = w.sb.sh_ok(&format!("cat {SPY_DIR}/calls"));
    let log = spied.log(w);
    spied.stop(w);
    assert_eq!(calls, "", "no systemctl or journalctl child during reads; log: {log}");
}
