//! `follow`: one run's lines as they are written, then a last line with how
//! it ended. Shared by `GET /api/job/JOB/follow` and `jobgate follow`;
//! knows nothing of HTTP: lines go to a [`Sink`].
//!
//! The stream is bound to one run (one invocation id) from its first line
//! to its last: its lines come from the one reader (`runs::lines`), by the
//! same rule as `logs`, and a next run's first message ends the stream.
#![forbid(unsafe_code)]

use std::fmt::Write as _;
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

pub mod share;

use crate::journal::{Entries, Entry};
use crate::names::{Cursor, JobName, RunSelector};
use crate::ops::{Jobs, OpError, START_WAIT};
use crate::runs::attrib::Seen;
use crate::runs::{now_us, Picker, Run, RunReader, Shown};

/// How often the loop wakes with nothing to send, to see whether the client
/// is still there and the run still going.
const TICK: Duration = Duration::from_millis(200);
/// How often the unit's state is asked, in case the manager's messages
/// about the run's end do not come (rate limits, LogLevelMax=).
const STATE_CHECK: Duration = Duration::from_secs(1);
/// Entries read ahead of the client (past it the journal read waits), and
/// the most sent between two looks at the client and the run.
const READ_AHEAD: usize = 1024;
/// Most bytes of message text read ahead of the client.
const READ_AHEAD_BYTES: usize = 1 << 20;
/// Bytes gathered before they are sent, when lines come faster than that.
const BATCH_BYTES: usize = 64 << 10;
/// What the last line of every stream starts with; in `cursors` mode it is
/// the one line whose cursor field is `-`, so no job line can pass for it.
pub const LAST_LINE_PREFIX: &str = "jobgate: ";

/// Where the stream goes: a front end's connection, or the terminal.
pub trait Sink {
    /// Sends `bytes` to the client now.
    fn send(&mut self, bytes: &[u8]) -> io::Result<()>;
    /// True once the client is known to have gone. Called a few times a
    /// second; may block for a millisecond.
    fn gone(&mut self) -> bool;
}

#[derive(Debug, Clone)]
pub struct FollowOptions {
    /// Each line as `CURSOR<TAB>TEXT` (the last line's cursor is `-`), so a
    /// client can go on after a dropped stream without a line twice.
    pub cursors: bool,
    /// The stream ends after this long even if the run goes on.
    pub max_duration: Duration,
}

/// How a stream ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FollowEnd {
    /// The run ended: its result (`success`, `exit-code`, …) and exit status.
    Finished { result: String, exit_status: Option<i64> },
    /// The time limit passed while the run went on.
    TimeLimit,
    /// The client went away.
    ClientGone,
}

impl std::fmt::Display for FollowEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FollowEnd::Finished { result, exit_status: Some(status) } => {
                write!(f, "finished result={result} exit_status={status}")
            }
            FollowEnd::Finished { result, exit_status: None } => write!(f, "finished result={result}"),
            FollowEnd::TimeLimit => f.write_str("time limit reached"),
            FollowEnd::ClientGone => f.write_str("client gone"),
        }
    }
}

impl FollowEnd {
    pub fn succeeded(&self) -> bool {
        matches!(self, FollowEnd::Finished { result, .. } if result == "success")
    }
}

/// How many streams may run at once, per token and in all, and for how
/// long. The caps hold across processes too (`inetd` and `cgi` answer each
/// request in its own): each stream holds a lock on one of `max_streams`
/// slot files under the state directory, and on one of `max_per_token` of
/// its token's; a process's locks go with it. How many of them a token may
/// hold while other tokens hold streams is its fair share (share.rs).
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_streams: usize,
    pub max_per_token: usize,
    pub max_duration: Duration,
    pub slot_dir: PathBuf,
}

/// Streams at once, by default.
pub const DEFAULT_MAX_STREAMS: usize = crate::limits::DEFAULT_MAX_FOLLOWS;
/// How long one stream may last, by default.
pub const DEFAULT_MAX_DURATION: Duration = Duration::from_secs(3600);

/// A stream's places (its token's and one of all), held while it is alive.
pub struct Slot {
    _locks: [File; 2],
}

/// Why no slot was had.
#[derive(Debug, PartialEq, Eq)]
pub enum Full {
    /// The token holds its share of the streams already.
    Token,
    /// All streams are taken.
    All,
}

impl Limits {
    /// Places for a stream of `token` (a validated token name), or which
    /// cap is full. The count and the take are made under one lock of the
    /// slot directory, so that two requests that ask at once (in one
    /// process or two) cannot both take the last stream of a share.
    pub fn take_slot(&self, token: &str) -> io::Result<Result<Slot, Full>> {
        fs::DirBuilder::new().recursive(true).mode(0o700).create(&self.slot_dir)?;
        let guard =
            OpenOptions::new().create(true).truncate(false).write(true).mode(0o600).open(self.slot_dir.join("lock"))?;
        guard.lock()?;
        let (own, others, tokens) = share::held(&self.slot_dir, token)?;
        let allowed = share::share(self.max_streams, others, tokens, self.max_per_token);
        if own + others >= self.max_streams {
            return Ok(Err(Full::All));
        }
        if own >= allowed {
            return Ok(Err(Full::Token));
        }
        let Some(any) = take_one(&self.slot_dir, self.max_streams)? else { return Ok(Err(Full::All)) };
        let Some(own) = take_one(&self.slot_dir.join(format!("token-{token}")), self.max_per_token)? else {
            return Ok(Err(Full::Token));
        };
        Ok(Ok(Slot { _locks: [own, any] }))
    }
}

/// A lock on one of `n` slot files in `dir`, or `None` when all are held.
fn take_one(dir: &std::path::Path, n: usize) -> io::Result<Option<File>> {
    fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    for i in 0..n {
        let path = dir.join(format!("slot-{i}"));
        let file = OpenOptions::new().create(true).truncate(false).write(true).mode(0o600).open(path)?;
        match file.try_lock() {
            Ok(()) => return Ok(Some(file)),
            Err(TryLockError::WouldBlock) => continue,
            Err(TryLockError::Error(e)) => return Err(e),
        }
    }
    Ok(None)
}

/// The run to follow: `which`, or the newest. A run that has just begun
/// may not be in the journal yet: while the unit runs a run that the
/// journal does not show, it is waited for (up to [`START_WAIT`]). `None`
/// if there is no such run.
pub fn run_to_follow(jobs: &Jobs, job: &JobName, which: &RunSelector) -> Result<Option<Run>, OpError> {
    let deadline = Instant::now() + START_WAIT;
    loop {
        let found = jobs.find_run(job, which)?;
        let settled = match (&found, which) {
            (Some(run), RunSelector::Last) if run.finished.is_some() => {
                // Over: unless the unit is running a newer run already.
                let state = jobs.state(job)?;
                !state.is_running() || state.run.as_ref() == Some(&run.run)
            }
            (found, _) => found.is_some(),
        };
        if settled || Instant::now() >= deadline {
            return Ok(found);
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// Streams `run`'s lines after `after` (from its first without) to `sink`
/// as they are written, then the last line. Errors after the first byte
/// can only be told in the stream: they end it with a `jobgate: RUN follow
/// failed` line.
pub fn follow(
    jobs: &Jobs,
    job: &JobName,
    run: &Run,
    after: Option<&Cursor>,
    options: &FollowOptions,
    sink: &mut dyn Sink,
) -> io::Result<FollowEnd> {
    let mut out = Output { sink, cursors: options.cursors, buf: String::new() };
    let end = match stream_run(jobs, job, run, after, options, &mut out) {
        Ok(end) => end,
        Err(StreamError::Client(e)) => return Err(e),
        Err(StreamError::Op(e)) => {
            log::error!("following {job}: {e}");
            out.last_line(&format!("{} follow failed: internal error", run.run))?;
            return Err(io::Error::other(e.to_string()));
        }
    };
    match &end {
        FollowEnd::Finished { result, exit_status } => {
            let status = exit_status.map_or_else(|| "-".to_string(), |s| s.to_string());
            out.last_line(&format!("{} finished result={result} exit_status={status}", run.run))?;
        }
        FollowEnd::TimeLimit => {
            let secs = options.max_duration.as_secs();
            out.last_line(&format!("{} still running; stream ended after {secs} s", run.run))?;
        }
        FollowEnd::ClientGone => {}
    }
    Ok(end)
}

fn stream_run(
    jobs: &Jobs,
    job: &JobName,
    run: &Run,
    after: Option<&Cursor>,
    options: &FollowOptions,
    out: &mut Output,
) -> Result<FollowEnd, StreamError> {
    let reader = jobs.reader(job);
    if run.finished.is_some() {
        return send_finished(&reader, run, after, options, out);
    }
    let started = Instant::now();
    let (mut source, mut picker) = reader.live(run, after, options.max_duration + START_WAIT)?;
    let stop = source.take_stop();
    let entries = read_ahead(source)?;
    // The cursor of the last entry taken from the live read.
    let mut last = after.map(|c| c.as_str().to_string());
    let mut ask_now = false;
    let mut next_check = Instant::now() + STATE_CHECK;
    let mut next_gone_check = Instant::now();
    let end = 'stream: loop {
        let first = match entries.recv_timeout(TICK) {
            Ok(entry) => Some(entry?),
            Err(RecvTimeoutError::Timeout) => None,
            // journalctl ended (killed at its time limit, or failed).
            Err(RecvTimeoutError::Disconnected) => break 'stream None,
        };
        ask_now |= send_entries(first, &entries, &mut picker, &mut last, out)?;
        let now = Instant::now();
        if now >= next_gone_check {
            if out.sink.gone() {
                break 'stream Some(FollowEnd::ClientGone);
            }
            next_gone_check = now + TICK;
        }
        if ask_now || now >= next_check {
            let state = jobs.state(job)?;
            if state.run.as_ref() != Some(&run.run) || state.run_over() {
                break 'stream None;
            }
            (ask_now, next_check) = (false, now + STATE_CHECK);
        }
        if now >= started + options.max_duration {
            break 'stream Some(FollowEnd::TimeLimit);
        }
    };
    drop(stop); // ends journalctl now, not when it next writes
    if let Some(end) = end {
        return Ok(end);
    }
    // The manager says the run has ended: how, and once its lines are in
    // (confirmed), the rest of them.
    let ended = jobs.find_run(job, &RunSelector::Id(run.run.clone()))?.unwrap_or_else(|| run.clone());
    jobs.lines_in(ended.finished.unwrap_or_else(now_us));
    let last = last.as_deref().and_then(Cursor::parse);
    let mut rest = picker.rest(&ended, last.as_ref())?;
    while let Some(shown) = rest.next_shown()? {
        out.shown(&shown)?;
    }
    out.flush()?;
    Ok(finished(&ended))
}

/// Sends the lines of `first` and the entries queued after it, at most
/// [`READ_AHEAD`] (so that the stream's checks come round even while a long
/// backlog is sent), noting in `last` the cursor of the last one taken.
/// Whether one of them says the manager should be asked now.
fn send_entries(
    first: Option<Entry>,
    entries: &ByteBoundedReceiver,
    picker: &mut Picker<'_>,
    last: &mut Option<String>,
    out: &mut Output,
) -> Result<bool, StreamError> {
    let (mut got, mut budget, mut ask_now) = (first, READ_AHEAD, false);
    while let Some(entry) = got.take() {
        match picker.pick(entry) {
            (Seen::Line, Some(shown), _) => {
                out.shown(&shown)?;
                *last = Some(shown.cursor);
            }
            (seen, _, cursor) => {
                // The manager's messages say when to ask it, never that
                // the run has ended: a root job can forge them.
                ask_now |= matches!(seen, Seen::RunEnded | Seen::LaterRun | Seen::Past);
                *last = Some(cursor);
            }
        }
        budget -= 1;
        if budget > 0 {
            got = entries.try_recv().transpose()?;
        }
    }
    out.flush()?;
    Ok(ask_now)
}

/// A run that was over already when asked for: its lines as `logs` reads
/// them, then its end.
fn send_finished(
    reader: &RunReader<'_>,
    run: &Run,
    after: Option<&Cursor>,
    options: &FollowOptions,
    out: &mut Output,
) -> Result<FollowEnd, StreamError> {
    let mut lines = match after {
        None if !options.cursors => reader.all_lines(run)?,
        after => reader.forward(run, after)?,
    };
    while let Some(shown) = lines.next_shown()? {
        out.shown(&shown)?;
    }
    out.flush()?;
    Ok(finished(run))
}

/// How a finished run ended, as its history says.
fn finished(run: &Run) -> FollowEnd {
    FollowEnd::Finished { result: run.result.clone().unwrap_or_else(|| "unknown".into()), exit_status: run.exit_status }
}

/// Reads the journal on its own thread, so the stream can wake on a timer
/// while journalctl waits for new entries; at most [`READ_AHEAD_BYTES`] of
/// message text wait for the stream (past that the reading waits). The
/// thread ends when the read does (the caller's stop handle ends it) or
/// the receiver goes.
fn read_ahead(mut source: Entries) -> io::Result<ByteBoundedReceiver> {
    let (send, receive) = mpsc::sync_channel(READ_AHEAD);
    let queued = Arc::new(AtomicUsize::new(0));
    let budget = Arc::clone(&queued);
    thread::Builder::new().name("follow-read".into()).spawn(move || loop {
        let entry = source.next_entry().transpose();
        let Some(entry) = entry else { return };
        let size = entry.as_ref().map_or(0, |e| e.message.len());
        while budget.load(Ordering::Acquire) > READ_AHEAD_BYTES {
            thread::sleep(Duration::from_millis(5));
        }
        budget.fetch_add(size, Ordering::AcqRel);
        if send.send(entry).is_err() {
            return;
        }
    })?;
    Ok(ByteBoundedReceiver { receive, queued })
}

/// The receiving end of [`read_ahead`].
struct ByteBoundedReceiver {
    receive: mpsc::Receiver<io::Result<Entry>>,
    queued: Arc<AtomicUsize>,
}

impl ByteBoundedReceiver {
    fn taken(&self, entry: io::Result<Entry>) -> io::Result<Entry> {
        if let Ok(e) = &entry {
            self.queued.fetch_sub(e.message.len(), Ordering::AcqRel);
        }
        entry
    }

    fn recv_timeout(&self, timeout: Duration) -> Result<io::Result<Entry>, RecvTimeoutError> {
        self.receive.recv_timeout(timeout).map(|e| self.taken(e))
    }

    fn try_recv(&self) -> Option<io::Result<Entry>> {
        self.receive.try_recv().ok().map(|e| self.taken(e))
    }
}

impl Drop for ByteBoundedReceiver {
    fn drop(&mut self) {
        // A reader waiting for room goes on, finds no receiver and ends.
        self.queued.store(0, Ordering::Release);
    }
}

enum StreamError {
    /// Writing to the client failed: it has gone.
    Client(io::Error),
    /// Reading the journal or the state failed.
    Op(OpError),
}

impl From<OpError> for StreamError {
    fn from(e: OpError) -> StreamError {
        StreamError::Op(e)
    }
}

impl From<io::Error> for StreamError {
    fn from(e: io::Error) -> StreamError {
        StreamError::Op(OpError::Failed(format!("reading the journal: {e}")))
    }
}

/// Lines on their way to the sink, in the chosen form.
struct Output<'a> {
    sink: &'a mut dyn Sink,
    cursors: bool,
    buf: String,
}

impl Output<'_> {
    /// One entry's lines, each with the entry's cursor in `cursors` mode.
    fn shown(&mut self, shown: &Shown) -> Result<(), StreamError> {
        for line in &shown.lines {
            if self.cursors {
                self.buf.push_str(&shown.cursor);
                self.buf.push('\t');
            }
            self.buf.push_str(line);
            self.buf.push('\n');
        }
        if self.buf.len() >= BATCH_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), StreamError> {
        if !self.buf.is_empty() {
            self.sink.send(self.buf.as_bytes()).map_err(StreamError::Client)?;
            self.buf.clear();
        }
        Ok(())
    }

    fn last_line(&mut self, text: &str) -> io::Result<()> {
        self.flush().map_err(|e| match e {
            StreamError::Client(e) => e,
            StreamError::Op(e) => io::Error::other(e.to_string()),
        })?;
        let mut line = String::new();
        if self.cursors {
            line.push_str("-\t");
        }
        let _ = writeln!(line, "{LAST_LINE_PREFIX}{text}");
        self.sink.send(line.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Collect(Vec<u8>);

    impl Sink for Collect {
        fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
            self.0.extend_from_slice(bytes);
            Ok(())
        }
        fn gone(&mut self) -> bool {
            false
        }
    }

    #[test]
    fn slots_are_capped_per_token_and_in_all_and_given_back() {
        let dir = std::env::temp_dir().join(format!("jobgate-slots-{}", std::process::id()));
        let limits =
            Limits { max_streams: 3, max_per_token: 2, max_duration: DEFAULT_MAX_DURATION, slot_dir: dir.clone() };
        let take = |token: &str| limits.take_slot(token).expect("slot dir");
        let (first, second) = (take("a"), take("a"));
        assert!(first.is_ok() && second.is_ok());
        assert_eq!(take("a").err(), Some(Full::Token), "a third stream of one token is refused");
        let other = take("b");
        assert!(other.is_ok(), "another token still gets one");
        assert_eq!(take("c").err(), Some(Full::All), "past the cap in all");
        assert_eq!(take("a").err(), Some(Full::All), "the cap in all is told first");
        drop(first);
        assert_eq!(take("a").err(), Some(Full::Token), "its fair share beside b's one: (3 - 1) / 2");
        assert!(take("c").is_ok(), "a slot is free again");
        let _ = fs::remove_dir_all(dir);
    }

    #[test]
    fn lines_with_and_without_cursors() {
        let mut sink = Collect(Vec::new());
        let mut out = Output { sink: &mut sink, cursors: true, buf: String::new() };
        let shown = Shown { lines: vec!["one".into(), "two".into()], cursor: "s=1".into() };
        assert!(out.shown(&shown).is_ok());
        out.last_line("abc finished result=success exit_status=0").expect("last");
        assert_eq!(
            String::from_utf8_lossy(&sink.0),
            "s=1\tone\ns=1\ttwo\n-\tjobgate: abc finished result=success exit_status=0\n"
        );
        let mut sink = Collect(Vec::new());
        let mut out = Output { sink: &mut sink, cursors: false, buf: String::new() };
        let shown = Shown { lines: vec!["one".into()], cursor: "s=1".into() };
        assert!(out.shown(&shown).is_ok() && out.flush().is_ok());
        assert_eq!(sink.0, b"one\n");
    }
}
