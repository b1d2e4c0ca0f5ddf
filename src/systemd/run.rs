//! Running the argument vectors `argv.rs` builds: never through a shell, with
//! a clean environment, stdin closed, every wait bounded by a timeout and
//! every read by a size limit. [`RecordingRunner`] stands in for tests.
#![forbid(unsafe_code)]

use std::ffi::OsString;
use std::io::{self, BufRead, BufReader, Read};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// How long a `systemctl` call may take before it is killed.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a journal read may take before it is killed.
pub const STREAM_TIMEOUT: Duration = Duration::from_secs(120);
/// Most bytes kept of a call's stdout (show and list output are small).
pub const MAX_CALL_OUTPUT: u64 = 4 << 20;
/// Most bytes kept of a call's stderr, for the log.
const MAX_STDERR: u64 = 16 << 10;

/// What a finished call produced.
#[derive(Debug, Clone)]
pub struct Output {
    pub success: bool,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// Ends a streaming child when dropped (or when its timeout passes). Kept
/// apart from the child's output so that one thread can end a child that
/// another is blocked reading from.
pub type StopOnDrop = Box<dyn Send>;

/// Runs argument vectors. `Send + Sync` so one runner serves all requests.
pub trait Runner: Send + Sync {
    /// Runs `argv` to the end (or the timeout) and collects its output.
    fn call(&self, argv: &[OsString]) -> io::Result<Output>;
    /// Starts `argv` and hands back its stdout, and the handle that ends
    /// it; the child is killed after `timeout` in any case.
    fn stream(&self, argv: &[OsString], timeout: Duration) -> io::Result<(Box<dyn BufRead + Send>, StopOnDrop)>;
}

/// The real thing: `std::process::Command` with a fixed argv.
pub struct RealRunner;

fn command(argv: &[OsString]) -> io::Result<Command> {
    let (program, args) =
        argv.split_first().ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "empty argument vector"))?;
    let mut cmd = Command::new(program);
    cmd.args(args)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("LANG", "C.UTF-8")
        .env("SYSTEMD_PAGER", "")
        .env("SYSTEMD_COLORS", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    Ok(cmd)
}

/// A child that is killed when its deadline passes or its owner lets go.
struct Watched {
    child: Arc<Mutex<Child>>,
    cancel: Option<mpsc::Sender<()>>,
    deadline: Instant,
}

impl Watched {
    fn spawn(
        argv: &[OsString],
        timeout: Duration,
    ) -> io::Result<(Watched, ChildStdout, Option<std::process::ChildStderr>)> {
        let mut child = command(argv)?.spawn()?;
        let stdout = child.stdout.take().ok_or_else(|| io::Error::other("no stdout pipe"))?;
        let stderr = child.stderr.take();
        let child = Arc::new(Mutex::new(child));
        let (cancel, cancelled) = mpsc::channel::<()>();
        let watched = Arc::clone(&child);
        let watchdog = thread::Builder::new().name("watchdog".into()).spawn(move || {
            // Either the owner says it is done (or drops the sender), or the
            // deadline passes: both end the child, which is harmless if it
            // has already exited and been reaped.
            let _ = cancelled.recv_timeout(timeout);
            if let Ok(mut child) = watched.lock() {
                let _ = child.kill();
                let _ = child.wait();
            }
        });
        if let Err(e) = watchdog {
            // No thread to bound it: the child is not let run unwatched.
            if let Ok(mut child) = child.lock() {
                let _ = child.kill();
                let _ = child.wait();
            }
            return Err(e);
        }
        Ok((Watched { child, cancel: Some(cancel), deadline: Instant::now() + timeout }, stdout, stderr))
    }

    /// Waits for the child to exit, polling so that the lock is never held
    /// across a blocking wait (the watchdog must be able to kill it).
    fn wait(&self) -> io::Result<ExitStatus> {
        let mut pause = Duration::from_micros(50);
        loop {
            let status = {
                let mut child = self.child.lock().map_err(|_| io::Error::other("child lock poisoned"))?;
                child.try_wait()?
            };
            if let Some(status) = status {
                return Ok(status);
            }
            if Instant::now() >= self.deadline {
                return Err(io::Error::new(io::ErrorKind::TimedOut, "command timed out"));
            }
            thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(20));
        }
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        if let Some(cancel) = self.cancel.take() {
            let _ = cancel.send(());
        }
    }
}

fn read_bounded(reader: impl Read, limit: u64) -> io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    reader.take(limit).read_to_end(&mut buf)?;
    Ok(buf)
}

impl Runner for RealRunner {
    fn call(&self, argv: &[OsString]) -> io::Result<Output> {
        let (watched, stdout, stderr) = Watched::spawn(argv, CALL_TIMEOUT)?;
        let stdout = read_bounded(stdout, MAX_CALL_OUTPUT)?;
        if stdout.len() as u64 >= MAX_CALL_OUTPUT {
            // Output past the limit is never read: end the child instead.
            return Err(io::Error::other("command output over the limit"));
        }
        // stderr after stdout, on this thread: the calls write little to
        // it, and one that filled its pipe first is ended by the watchdog.
        let stderr = match stderr {
            Some(stderr) => read_bounded(stderr, MAX_STDERR)?,
            None => Vec::new(),
        };
        let status = watched.wait()?;
        Ok(Output { success: status.success(), stdout, stderr })
    }

    fn stream(&self, argv: &[OsString], timeout: Duration) -> io::Result<(Box<dyn BufRead + Send>, StopOnDrop)> {
        let (watched, stdout, stderr) = Watched::spawn(argv, timeout)?;
        let said = Arc::new(Mutex::new(Vec::new()));
        if let Some(stderr) = stderr {
            // Drain stderr so a chatty child never blocks; keep a little for
            // the log and for the error. If no thread can be had, the read
            // goes on with stderr closed.
            let kept = Arc::clone(&said);
            let _ = thread::Builder::new().name("stderr".into()).spawn(move || {
                if let Ok(text) = read_bounded(stderr, MAX_STDERR) {
                    if !text.is_empty() {
                        log::warn!("journal read: {}", String::from_utf8_lossy(&text).trim_end());
                    }
                    if let Ok(mut kept) = kept.lock() {
                        *kept = text;
                    }
                }
            });
        }
        let output = Checked {
            stdout: BufReader::with_capacity(64 << 10, stdout),
            child: Arc::clone(&watched.child),
            said,
            program: program_name(argv),
            checked: false,
        };
        Ok((Box::new(output), Box::new(watched)))
    }
}

/// The program an argument vector runs, for messages: the first word that
/// is not sudo or an option, without its directory.
pub fn program_name(argv: &[OsString]) -> String {
    argv.iter()
        .map(|a| a.to_string_lossy())
        .find(|a| !a.ends_with("sudo") && !a.starts_with('-'))
        .map(|a| a.rsplit('/').next().unwrap_or_default().to_string())
        .unwrap_or_default()
}

/// A streaming child's stdout that, at its end, tells how the child ended:
/// a read whose program failed (a journal it may not read, say) is an
/// error with what it said, never an answer that is merely empty.
struct Checked {
    stdout: BufReader<ChildStdout>,
    child: Arc<Mutex<Child>>,
    said: Arc<Mutex<Vec<u8>>>,
    program: String,
    checked: bool,
}

impl Checked {
    /// At the end of the output: waits (briefly) for the child's status.
    fn check(&mut self) -> io::Result<()> {
        if std::mem::replace(&mut self.checked, true) {
            return Ok(());
        }
        let deadline = Instant::now() + Duration::from_secs(1);
        let status = loop {
            let status = self.child.lock().map_err(|_| io::Error::other("child lock poisoned"))?.try_wait()?;
            match status {
                Some(status) => break status,
                // Still closing down: an end without an error.
                None if Instant::now() >= deadline => return Ok(()),
                None => thread::sleep(Duration::from_millis(2)),
            }
        };
        if status.success() {
            return Ok(());
        }
        thread::sleep(Duration::from_millis(20)); // for the stderr thread
        let said = self.said.lock().map(|s| String::from_utf8_lossy(&s).trim().to_string()).unwrap_or_default();
        Err(io::Error::other(format!("{} failed ({status}): {said}", self.program)))
    }
}

impl Read for Checked {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.stdout.read(buf)?;
        if n == 0 && !buf.is_empty() {
            self.check()?;
        }
        Ok(n)
    }
}

impl BufRead for Checked {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.stdout.fill_buf()?.is_empty() {
            self.check()?;
        }
        self.stdout.fill_buf()
    }
    fn consume(&mut self, amt: usize) {
        self.stdout.consume(amt)
    }
}

/// A child's output together with what ends the child: dropping it ends
/// the child, for readers that need no separate handle.
pub struct Held {
    pub output: Box<dyn BufRead + Send>,
    pub _stop: StopOnDrop,
}

impl Read for Held {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.output.read(buf)
    }
}

impl BufRead for Held {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        self.output.fill_buf()
    }
    fn consume(&mut self, amt: usize) {
        self.output.consume(amt)
    }
}

#[cfg(test)]
/// A runner for tests: records each argv and answers from a script of
/// canned outputs keyed by the argv's first words.
#[derive(Default)]
pub struct RecordingRunner {
    pub calls: Mutex<Vec<Vec<String>>>,
    answers: Vec<(Vec<String>, Output)>,
}

#[cfg(test)]
impl RecordingRunner {
    /// Answers calls whose argv contains all of `words` with `stdout`.
    pub fn answer(mut self, words: &[&str], success: bool, stdout: &str) -> RecordingRunner {
        let output = Output { success, stdout: stdout.as_bytes().to_vec(), stderr: Vec::new() };
        self.answers.push((words.iter().map(|w| w.to_string()).collect(), output));
        self
    }

    pub fn recorded(&self) -> Vec<Vec<String>> {
        self.calls.lock().map(|c| c.clone()).unwrap_or_default()
    }

    fn lookup(&self, argv: &[OsString]) -> Output {
        let words: Vec<String> = argv.iter().map(|a| a.to_string_lossy().into_owned()).collect();
        if let Ok(mut calls) = self.calls.lock() {
            calls.push(words.clone());
        }
        self.answers
            .iter()
            .find(|(want, _)| want.iter().all(|w| words.contains(w)))
            .map(|(_, out)| out.clone())
            .unwrap_or(Output { success: true, stdout: Vec::new(), stderr: Vec::new() })
    }
}

#[cfg(test)]
impl Runner for RecordingRunner {
    fn call(&self, argv: &[OsString]) -> io::Result<Output> {
        Ok(self.lookup(argv))
    }

    fn stream(&self, argv: &[OsString], _timeout: Duration) -> io::Result<(Box<dyn BufRead + Send>, StopOnDrop)> {
        Ok((Box::new(io::Cursor::new(self.lookup(argv).stdout)), Box::new(())))
    }
}
