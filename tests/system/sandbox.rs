//! A real systemd in private namespaces, for the integration tests.
//!
//! `Sandbox::boot` spawns `tests/sandbox/boot.sh` (the one boot recipe,
//! shared with the shell scripts) behind `setpriv --pdeathsig KILL`: the
//! script becomes `unshare`, whose child is the sandbox's systemd, pid 1 of
//! its own PID namespace. `Drop` powers it off and waits (killing it after
//! 20 s), and leaves no process behind.
//!
//! If the test process dies, even by SIGKILL, the death signal kills
//! `unshare` and `unshare --kill-child` kills the namespace. The kernel
//! sends that signal when the *thread* that spawned `unshare` ends, so call
//! `boot` from the main thread (tests/system has `harness = false` and a
//! `main`), never from a thread that may finish before the sandbox is done.
//!
//! Inside, /run, /tmp, /var/tmp, /var/log/journal, /etc/sudoers.d and
//! /etc/polkit-1/rules.d are the sandbox's own; everything else (/etc/passwd
//! included) and the network are the host's. Needs root.
#![allow(dead_code)]

use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

const BOOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sandbox/boot.sh");

pub struct Sandbox {
    /// `unshare`, the spawned process (boot.sh execs into it).
    unshare: Child,
    /// The sandbox's systemd as the host sees it; 0 until it is found.
    pid: u32,
    /// boot.sh's stdout and stderr (systemd itself writes nothing there).
    log: PathBuf,
}

impl Sandbox {
    /// Boots systemd and waits until `systemctl is-system-running` says
    /// `running` or `degraded` (30 s at most). Call from the main thread.
    pub fn boot() -> Result<Sandbox, String> {
        static BOOTS: AtomicU32 = AtomicU32::new(0);
        let n = BOOTS.fetch_add(1, Ordering::Relaxed);
        let log = std::env::temp_dir().join(format!("jobgate-sandbox-{}-{n}.log", std::process::id()));
        let out = std::fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
        let err = out.try_clone().map_err(|e| format!("{}: {e}", log.display()))?;
        let unshare = Command::new("setpriv")
            .args(["--pdeathsig", "KILL", "sh", BOOT])
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("spawning setpriv sh {BOOT}: {e}"))?;
        let mut sandbox = Sandbox { unshare, pid: 0, log };
        match sandbox.wait_ready() {
            Ok(()) => Ok(sandbox),
            // Dropping the sandbox stops whatever did start.
            Err(e) => Err(format!("{e}; {BOOT} said: {}", std::fs::read_to_string(&sandbox.log).unwrap_or_default())),
        }
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut state = String::new();
        loop {
            if let Ok(Some(status)) = self.unshare.try_wait() {
                return Err(format!("the sandbox ended while booting ({status})"));
            }
            if self.pid == 0 {
                self.pid = systemd_child_of(self.unshare.id()).unwrap_or(0);
            }
            if self.pid != 0 {
                let out = self.command("systemctl").arg("is-system-running").output();
                state = out.map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string()).unwrap_or_default();
                if state == "running" || state == "degraded" {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                return Err(format!("systemd in the sandbox did not come up in 30 s (state '{state}')"));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The sandbox's systemd (pid 1 inside), as the host numbers it.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// `program` inside the sandbox as root: `nsenter -t PID -m -p -u --
    /// program`. It runs in `/` with the test process's environment.
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.args(["-t", &self.pid.to_string(), "-m", "-p", "-u", "--", program]);
        cmd
    }

    /// `program` inside the sandbox as `user`, with that user's primary and
    /// supplementary groups (systemd-journal for `ensure_user`'s users) and
    /// setpriv's `--reset-env` environment (HOME, SHELL, USER, LOGNAME, PATH,
    /// TERM): `Command::env` is wiped, pass variables through `/usr/bin/env`.
    pub fn command_as(&self, user: &str, program: &str) -> Command {
        let (uid, gid) = user_ids(user).unwrap_or_else(|| panic!("command_as: no user {user}"));
        let mut cmd = self.command("setpriv");
        cmd.args([format!("--reuid={uid}"), format!("--regid={gid}")]);
        cmd.args(["--init-groups", "--reset-env", "--", program]);
        cmd
    }

    /// `sh -c script` inside the sandbox as root.
    pub fn sh(&self, script: &str) -> Output {
        self.command("sh").args(["-c", script]).output().unwrap_or_else(|e| panic!("nsenter sh -c {script}: {e}"))
    }

    /// `sh -c script` inside as root; panics unless it exits 0. Its stdout.
    pub fn sh_ok(&self, script: &str) -> String {
        let out = self.sh(script);
        assert!(
            out.status.success(),
            "in the sandbox: {script}\n{}\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Writes `path` as the sandbox sees it (its /run and /tmp are its own),
    /// creating parent directories; `owner` is `user` or `user:group`. The
    /// file is 0600 root until it is complete, then chown'ed and chmod'ed.
    pub fn write_file(&self, path: &str, contents: &[u8], mode: u32, owner: &str) {
        const SCRIPT: &str =
            r#"mkdir -p "$(dirname "$1")" && umask 077 && cat > "$1" && chown "$3" "$1" && chmod "$2" "$1""#;
        let mut child = self
            .command("sh")
            .args(["-c", SCRIPT, "sh", path, &format!("{mode:o}"), owner])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("nsenter sh to write {path}: {e}"));
        // Taken, so dropped after writing: cat sees the end of its input.
        let written = child.stdin.take().map(|mut stdin| stdin.write_all(contents));
        let out = child.wait_with_output().unwrap_or_else(|e| panic!("writing {path}: {e}"));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "writing {path} in the sandbox: {}: {stderr}", out.status);
        if let Some(Err(e)) = written {
            panic!("writing {path} in the sandbox: {e}");
        }
    }

    /// Puts a unit into /run/systemd/system and reloads systemd.
    pub fn install_unit(&self, name: &str, contents: &str) {
        assert!(!name.contains('/'), "a unit name, not a path: {name}");
        self.write_file(&format!("/run/systemd/system/{name}"), contents.as_bytes(), 0o644, "root");
        self.sh_ok("systemctl daemon-reload");
    }

    /// Powers the sandbox off and waits until it has gone (what `Drop` does).
    pub fn poweroff(self) {
        drop(self);
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let pid = self.pid;
        if pid != 0 {
            let _ = self.command("systemctl").args(["poweroff", "--no-block"]).output();
        }
        if pid == 0 || !exits_within(&mut self.unshare, Duration::from_secs(20)) {
            // SIGKILL to the namespace's pid 1 ends every process in it, and
            // unshare exits once it has reaped it. (While unshare runs, the
            // pid cannot have been reused: systemd is at worst its zombie.)
            if pid != 0 {
                let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).output();
            }
            if !exits_within(&mut self.unshare, Duration::from_secs(5)) {
                // --kill-child: the namespace goes with unshare.
                let _ = self.unshare.kill();
                let _ = self.unshare.wait();
            }
        }
        let _ = std::fs::remove_file(&self.log);
    }
}

/// Whether `child` has exited (and is reaped) within `timeout`.
fn exits_within(child: &mut Child, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => return true,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => return false,
        }
    }
}

/// unshare's child once it has become systemd (boot.sh forks nothing else;
/// before the exec the child is the sh that mounts the private directories).
fn systemd_child_of(unshare: u32) -> Option<u32> {
    let children = std::fs::read_to_string(format!("/proc/{unshare}/task/{unshare}/children")).ok()?;
    let pid = children.split_whitespace().next()?.parse().ok()?;
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
    (comm.trim_end() == "systemd").then_some(pid)
}

/// `name`'s uid and primary gid, from `getent passwd`.
pub fn user_ids(name: &str) -> Option<(u32, u32)> {
    let out = Command::new("getent").args(["passwd", name]).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let line = String::from_utf8(out.stdout).ok()?;
    let mut fields = line.trim_end().split(':').skip(2);
    Some((fields.next()?.parse().ok()?, fields.next()?.parse().ok()?))
}

/// Creates the system user `name` (own group, member of systemd-journal, no
/// home, nologin) unless it exists; an existing user is left as it is. This
/// changes the host's /etc/passwd, which the sandbox shares. Its uid and gid.
pub fn ensure_user(name: &str) -> (u32, u32) {
    if let Some(ids) = user_ids(name) {
        return ids;
    }
    let out = Command::new("useradd")
        .args(["--system", "--user-group", "--no-create-home", "--shell", "/usr/sbin/nologin"])
        .args(["-G", "systemd-journal", name])
        .output()
        .unwrap_or_else(|e| panic!("useradd {name}: {e}"));
    // Another process may have created it meanwhile: then useradd fails, fine.
    user_ids(name).unwrap_or_else(|| panic!("useradd {name}: {}", String::from_utf8_lossy(&out.stderr)))
}
