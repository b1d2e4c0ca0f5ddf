//! Integration tests against a real systemd and a real sudo.
//!
//! One process (`harness = false`): boots systemd in private namespaces
//! (`sandbox.rs`), installs the shipped example units and sudoers rule,
//! runs `jobgate serve` as an unprivileged user in `systemd-journal`, then
//! runs every test below in order and powers the sandbox off, also when a
//! test fails. Prints `N passed, N failed`. Needs root.
//!
//! Each test makes the runs it reads, so it passes alone too: an argument
//! runs the tests whose names contain it (`cargo test --test system NAME`),
//! in a sandbox of their own.

mod client;
mod sandbox;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use client::{get, post, Answer};
use sandbox::Sandbox;
use serde_json::Value;

const USER: &str = "jobgate-test";
const BIN: &str = "/run/jobgate-test/bin/jobgate";
const TOKENS: &str = "/run/jobgate-test/tokens";
const STATE: &str = "/run/jobgate-test/state";
const REDACT: &str = "/run/jobgate-test/redact";
const HOOKS: &str = "/run/jobgate-test/hooks";
/// The webhook secrets the served jobgate knows (issue 4).
pub const HOOK_SECRET: &str = "hook-secret-0123456789abcdef";
const HOOK_LINES: &str = "github-count ci-test-count hook-secret-0123456789abcdef event=push ref=refs/heads/main\n\
                          gitlab-count ci-test-count gitlab-token-0123456789abcdef gitlab=token\n\
                          gitlab-unasked ci-test-hello gitlab-unasked-0123456789abcdef\n";
/// The redaction rules the served jobgate applies (issue 6).
const REDACT_RULES: &str =
    "# test rules\nskip ^DEBUG\nstrip /home/[a-z]+\nmask token=\\S+\n[ci-test-deploy*] mask branch\n";
const SENTINEL: &str = "NOISE-SENTINEL-must-never-leak";

/// Units only the tests use; the shipped examples come from contrib/systemd.
const TEST_UNITS: &[(&str, &str)] = &[
    (
        "ci-test-count.service",
        // Started often: no start rate limit (systemd's default is 5 in 10 s).
        "[Unit]\nStartLimitIntervalSec=0\n[Service]\nType=oneshot\n\
         ExecStart=/bin/sh -c 'for i in 1 2 3 4 5; do echo \"run $INVOCATION_ID line $i\"; done; sleep 0.3'\n",
    ),
    (
        "ci-test-ticker.service",
        // Six lines 0.4 s apart, after a pause (so a follow can begin
        // before the first line), each naming its run (issue 4).
        "[Unit]\nStartLimitIntervalSec=0\n[Service]\nType=oneshot\nExecStart=/bin/sh -c \
         'sleep 0.5; for i in 1 2 3 4 5 6; do echo \"tick $i of $INVOCATION_ID\"; sleep 0.4; done'\n",
    ),
    ("ci-test-slow.service", "[Service]\nType=oneshot\nExecStart=/bin/sh -c 'echo slow started; sleep 300'\n"),
    ("ci-test-never.service", "[Service]\nType=oneshot\nExecStart=/bin/echo never\n"),
    (
        "ci-test-secret.service",
        "[Service]\nType=oneshot\nExecStart=/bin/sh -c 'echo \"deploy starting\"; echo \"api token=SECRET-TOKEN-123 sent\"; \
         echo \"DEBUG skip me entirely\"; echo \"cache at /home/alice/cache ok\"; echo done'\n",
    ),
    ("noise.service", "[Service]\nType=oneshot\nExecStart=/bin/sh -c 'echo NOISE-SENTINEL-must-never-leak'\n"),
];
const SHIPPED_UNITS: &[&str] = &["ci-test-hello.service", "ci-test-fail.service", "ci-test-deploy@.service"];

pub struct World {
    sb: Sandbox,
    addr: String,
    rw: String,
    ro: String,
    deploy: String,
}

type Test = (&'static str, fn(&World));

fn main() -> ExitCode {
    if std::fs::metadata("/proc/self").map(|m| std::os::unix::fs::MetadataExt::uid(&m)).ok() != Some(0) {
        eprintln!("tests/system needs root: it boots systemd in namespaces and creates the user {USER}");
        return ExitCode::FAILURE;
    }
    let filter: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let world = match setup() {
        Ok(world) => world,
        Err(e) => {
            eprintln!("setup failed: {e}");
            println!("0 passed, 1 failed");
            return ExitCode::FAILURE;
        }
    };
    let (mut passed, mut failed) = (0, 0);
    for (name, test) in TESTS
        .iter()
        .chain(tests_follow::TESTS)
        .chain(tests_runs::TESTS)
        .chain(tests_hold::TESTS)
        .chain(tests_load::TESTS)
        .chain(tests_observe::TESTS)
        .chain(tests_oidc::TESTS)
        .chain(tests_ci::TESTS)
        .chain(tests_exact::TESTS)
        .chain(tests_workflows::TESTS)
        .chain(tests_units::TESTS)
        // After the others: besides its own runs, it reads theirs.
        .chain(tests_journal::TESTS)
        // Last: it stops and starts the sandbox's bus.
        .chain(tests_bus::TESTS)
    {
        if filter.as_deref().is_some_and(|f| !name.contains(f)) {
            continue;
        }
        let started = Instant::now();
        let outcome = catch_unwind(AssertUnwindSafe(|| test(&world)));
        let ms = started.elapsed().as_millis();
        match outcome {
            Ok(()) => {
                passed += 1;
                println!("test {name} ... ok ({ms} ms)");
            }
            Err(_) => {
                failed += 1;
                println!("test {name} ... FAILED ({ms} ms)");
            }
        }
    }
    if failed > 0 {
        let log = world.sb.sh("journalctl --no-pager -o cat -u jobgate-test.service | tail -n 40");
        eprintln!("--- jobgate serve log (last lines):\n{}", String::from_utf8_lossy(&log.stdout));
    }
    drop(world);
    println!("{passed} passed, {failed} failed");
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn setup() -> Result<World, String> {
    sandbox::ensure_user(USER);
    let sb = Sandbox::boot()?;
    let repo = env!("CARGO_MANIFEST_DIR");
    let bin = env!("CARGO_BIN_EXE_jobgate");
    // The binary goes in as bytes: the sandbox's /tmp is its own, so a
    // checkout (and its target/) under /tmp is not seen inside.
    let binary = std::fs::read(bin).map_err(|e| format!("{bin}: {e}"))?;
    sb.write_file(BIN, &binary, 0o755, "root");
    sb.sh_ok(&format!("mkdir -p {STATE} && chown {USER}:{USER} {STATE} && chmod 0700 {STATE}"));
    // The shipped defaults for every job, a prefix drop-in (its directory
    // as an operator installs it): before the jobs, so that none runs as
    // root. A test that needs a root job undoes it in that job's drop-in.
    let dropins = format!("{repo}/contrib/systemd/ci-test-.service.d");
    for entry in std::fs::read_dir(&dropins).map_err(|e| format!("{dropins}: {e}"))? {
        let path = entry.map_err(|e| format!("{dropins}: {e}"))?.path();
        let name = path.file_name().and_then(|n| n.to_str()).ok_or_else(|| format!("{}: a name", path.display()))?;
        let text = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        sb.write_file(&format!("/run/systemd/system/ci-test-.service.d/{name}"), &text, 0o644, "root");
    }
    for unit in SHIPPED_UNITS {
        let text =
            std::fs::read_to_string(format!("{repo}/contrib/systemd/{unit}")).map_err(|e| format!("{unit}: {e}"))?;
        sb.install_unit(unit, &text);
    }
    for (unit, text) in TEST_UNITS {
        sb.install_unit(unit, text);
    }
    // The shipped sudoers rule, for the test user instead of `jobgate`.
    let rule =
        std::fs::read_to_string(format!("{repo}/contrib/sudoers.d/jobgate")).map_err(|e| format!("sudoers: {e}"))?;
    sb.write_file("/etc/sudoers.d/jobgate", shipped_rule_for(&rule, USER).as_bytes(), 0o440, "root");
    sb.sh_ok("visudo -cf /etc/sudoers.d/jobgate");

    sb.write_file(REDACT, REDACT_RULES.as_bytes(), 0o640, &format!("root:{USER}"));
    sb.write_file(HOOKS, HOOK_LINES.as_bytes(), 0o640, &format!("root:{USER}"));
    let rw = admin_token(&sb, "ci-rw", &["--scope", "rw"])?;
    let ro = admin_token(&sb, "ci-ro", &["--scope", "ro"])?;
    let deploy = admin_token(&sb, "ci-deploy", &["--scope", "rw", "--job", "ci-test-deploy@*"])?;
    sb.sh_ok(&format!("chown root:{USER} {TOKENS} && chmod 0640 {TOKENS}"));

    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    sb.sh_ok(&format!(
        "systemd-run --quiet --unit=jobgate-test --uid={USER} --gid={USER} -p SupplementaryGroups=systemd-journal \
         -E RUST_LOG=info {BIN} --tokens {TOKENS} --state-dir {STATE} --redact {REDACT} --hooks {HOOKS} serve --listen {addr}"
    ));
    wait_until("jobgate serve answers", Duration::from_secs(10), || std::net::TcpStream::connect(&addr).is_ok());
    Ok(World { sb, addr, rw, ro, deploy })
}

/// The shipped sudoers file with its user name replaced.
fn shipped_rule_for(rule: &str, user: &str) -> String {
    rule.lines()
        .map(|line| if line.trim_start().starts_with('#') { line.to_string() } else { line.replace("jobgate", user) })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

/// `jobgate token add` run as root, as an admin would; returns the token.
fn admin_token(sb: &Sandbox, name: &str, args: &[&str]) -> Result<String, String> {
    let out = sb
        .command(BIN)
        .args(["--tokens", TOKENS, "token", "add", name])
        .args(args)
        .output()
        .map_err(|e| e.to_string())?;
    let token = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !out.status.success() || !token.starts_with("jgt_") {
        return Err(format!("token add {name}: {}", String::from_utf8_lossy(&out.stderr)));
    }
    Ok(token)
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).unwrap_or(18_080)
}

fn wait_until(what: &str, timeout: Duration, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !ready() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl World {
    fn get(&self, target: &str) -> Answer {
        get(&self.addr, target, &self.ro)
    }

    fn state(&self, job: &str) -> Value {
        let answer = self.get(&format!("/api/job/{job}/state"));
        assert_eq!(answer.status, 200, "{}", answer.body);
        answer.json()
    }

    /// Starts `job` with the rw token and waits until the run the start
    /// answered with has finished.
    fn run_to_end(&self, job: &str) -> Value {
        let started = post(&self.addr, &format!("/api/job/{job}"), &self.rw);
        assert_eq!(started.status, 200, "start {job}: {}", started.body);
        let run = started.json()["run"].clone();
        assert!(run.as_str().is_some_and(|r| r.len() == 32), "start names its run: {}", started.body);
        let mut state = Value::Null;
        wait_until(&format!("run {run} of {job} has finished"), Duration::from_secs(20), || {
            state = self.state(job);
            state["run"] == run && !matches!(state["state"].as_str(), Some("active" | "activating" | "deactivating"))
        });
        state
    }

    fn logs(&self, target: &str) -> (Vec<String>, Value) {
        let answer = self.get(target);
        assert_eq!(answer.status, 200, "{target}: {}", answer.body);
        let value = answer.json();
        let lines = value["logs"]
            .as_array()
            .expect("logs array")
            .iter()
            .map(|l| l.as_str().unwrap_or_default().to_string())
            .collect();
        (lines, value)
    }

    /// Runs the admin CLI inside the sandbox as the service user.
    fn cli(&self, args: &[&str]) -> std::process::Output {
        self.sb
            .command_as(USER, BIN)
            .args(["--tokens", TOKENS, "--state-dir", STATE, "--redact", REDACT])
            .args(args)
            .output()
            .expect("run jobgate")
    }

    /// The manager's "Starting …" messages since `cursor_time` (µs).
    fn units_started_since(&self, since_us: u64) -> Vec<String> {
        let out = self.sb.sh_ok(&format!(
            "journalctl --no-pager -o json _PID=1 MESSAGE_ID=7d4958e842da4a758f6c1cdc7b36dcc5 --since @{}",
            since_us / 1_000_000
        ));
        out.lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["__REALTIME_TIMESTAMP"].as_str().and_then(|t| t.parse::<u64>().ok()).unwrap_or(0) >= since_us)
            .filter_map(|v| v["UNIT"].as_str().map(str::to_string))
            .collect()
    }
}

fn now_us() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(0)
}

mod tests_api;
mod tests_bus;
mod tests_ci;
mod tests_exact;
mod tests_follow;
mod tests_hold;
mod tests_journal;
mod tests_load;
mod tests_observe;
mod tests_oidc;
mod tests_runs;
mod tests_units;
mod tests_workflows;
use tests_api::TESTS;
