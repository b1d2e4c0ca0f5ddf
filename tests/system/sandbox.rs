//! A real systemd in private namespaces, for the integration tests.
//!
//! `Sandbox::boot` spawns `tests/sandbox/boot.sh` (the one recipe, shared
//! with `make demo`) behind `setpriv --pdeathsig KILL`, so the namespace
//! dies with the test process even if it is killed; `Drop` powers it off and
//! waits, killing it if it will not go. Call `boot` from the main thread:
//! the death signal follows the thread that spawned it.
#![allow(dead_code)]

use std::io::Write;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const BOOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sandbox/boot.sh");

pub struct Sandbox {
    unshare: Child,
    pid: u32,
}

impl Sandbox {
    pub fn boot() -> Result<Sandbox, String> {
        let unshare = Command::new("setpriv")
            .args(["--pdeathsig", "KILL", "sh", BOOT])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("spawning {BOOT}: {e}"))?;
        let mut sandbox = Sandbox { pid: 0, unshare };
        let deadline = Instant::now() + Duration::from_secs(30);
        sandbox.pid = loop {
            if let Some(pid) = child_of(sandbox.unshare.id()) {
                break pid;
            }
            if Instant::now() > deadline || sandbox.unshare.try_wait().ok().flatten().is_some() {
                return Err("systemd did not start in the sandbox".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        loop {
            let out = sandbox.command("systemctl").arg("is-system-running").output();
            let state = out.map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string()).unwrap_or_default();
            if state == "running" || state == "degraded" {
                return Ok(sandbox);
            }
            if Instant::now() > deadline {
                return Err(format!("systemd in the sandbox did not come up (state '{state}')"));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// `program` inside the sandbox, as root.
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.args(["-t", &self.pid.to_string(), "-m", "-p", "-u", "--", program]);
        cmd
    }

    /// `program` inside the sandbox as `user`, with that user's groups and a
    /// minimal environment.
    pub fn command_as(&self, user: &str, program: &str) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.args(["-t", &self.pid.to_string(), "-m", "-p", "-u", "--"]).args([
            "setpriv",
            "--reuid",
            user,
            "--regid",
            user,
            "--init-groups",
            "--reset-env",
            "--",
            program,
        ]);
        cmd
    }

    pub fn sh(&self, script: &str) -> Output {
        self.command("sh").args(["-c", script]).output().unwrap_or_else(|e| panic!("nsenter: {e}"))
    }

    /// Runs `script` as root inside; panics unless it succeeds. Its stdout.
    pub fn sh_ok(&self, script: &str) -> String {
        let out = self.sh(script);
        assert!(
            out.status.success(),
            "in the sandbox: {script}\nstdout: {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Writes a file as the sandbox sees it (its /run and /tmp are its own).
    pub fn write_file(&self, path: &str, contents: &[u8], mode: u32, owner: &str) {
        let script = format!(
            "mkdir -p \"$(dirname '{path}')\" && cat > '{path}' && chmod {mode:o} '{path}' && chown {owner} '{path}'"
        );
        let mut child = self
            .command("sh")
            .args(["-c", &script])
            .stdin(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("nsenter: {e}"));
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(contents).expect("write file contents");
        }
        let status = child.wait().expect("wait");
        assert!(status.success(), "writing {path} in the sandbox");
    }

    pub fn install_unit(&self, name: &str, contents: &str) {
        self.write_file(&format!("/run/systemd/system/{name}"), contents.as_bytes(), 0o644, "root");
        self.sh_ok("systemctl daemon-reload");
    }

    pub fn poweroff(self) {}
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if self.pid != 0 {
            let _ = self.command("systemctl").args(["poweroff", "--no-block"]).output();
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if self.unshare.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // Killing the namespace's pid 1 ends every process in it.
        if self.pid != 0 {
            let _ = Command::new("kill").args(["-KILL", &self.pid.to_string()]).status();
        }
        let _ = self.unshare.kill();
        let _ = self.unshare.wait();
    }
}

/// The first child of `pid` (unshare's child is the sandbox's systemd).
fn child_of(pid: u32) -> Option<u32> {
    let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).ok()?;
    children.split_whitespace().next()?.parse().ok()
}

/// Creates the system user `name` in `systemd-journal` if it is missing
/// (this changes the host's /etc/passwd: the sandbox shares /etc).
pub fn ensure_user(name: &str) {
    let exists = Command::new("id").arg(name).output().map(|o| o.status.success()).unwrap_or(false);
    if !exists {
        let status = Command::new("useradd")
            .args([
                "--system",
                "--user-group",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                "-G",
                "systemd-journal",
                name,
            ])
            .status()
            .expect("useradd");
        assert!(status.success(), "useradd {name}");
    }
}
