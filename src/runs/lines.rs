//! The one reader of a run's lines. Every route and the admin CLI take
//! their lines from here (logs, runs/RUN/logs, tail, follow's backlog and
//! live part), and here alone they are made fit to show: each line of a
//! message is neutralised (terminal escape sequences removed, control
//! characters replaced), then redacted. No public function hands out a
//! line that has not passed through `RunReader::shown_lines`.
#![forbid(unsafe_code)]

use std::borrow::Cow;
use std::collections::VecDeque;
use std::io::{self, BufRead, Read};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::journal::export::MAX_ENTRY_BYTES;
use crate::journal::streams::{Drain, Streams};
use crate::journal::{Entries, Entry, JournalSource, Messages};
use crate::names::{Cursor, Place, UnitName, MAX_LINES};
use crate::redact::Redactor;
use crate::runs::attrib::{before_the_run, begins_a_later_run, RunFilter, Seen, Writer, Writers};
use crate::runs::history::Run;
use crate::runs::{JOURNAL_SETTLE, LINES_IN_RECENT, LINES_IN_WAIT, SETTLE_US};
use crate::systemd::argv::{EntryRead, Seek};
use crate::systemd::run::STREAM_TIMEOUT;

pub use crate::limits::HOLD_BYTES;

/// One journal entry of a run as it may be shown: its lines (none when the
/// redaction skipped them all) and its cursor.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Shown {
    pub lines: Vec<String>,
    pub cursor: String,
}

impl Shown {
    fn bytes(&self) -> usize {
        self.lines.iter().map(|l| l.len() + 1).sum()
    }
}

/// Reads one job's runs.
pub struct RunReader<'a> {
    pub(super) source: &'a dyn JournalSource,
    pub(super) unit: UnitName,
    pub(super) redactor: Redactor<'a>,
    pub(super) streams: &'a Streams,
}

/// The lines of a run after a cursor, and the cursor to go on from.
#[derive(Debug, Default)]
pub struct Tail {
    pub lines: Vec<String>,
    pub cursor: Option<Cursor>,
}

/// How `logs` gets a run's last lines: held, or (when they are more than
/// [`HOLD_BYTES`]) read again in order, as a plan to replay.
pub enum Last {
    Held(Vec<String>),
    Replay(Replay),
}

/// A read of the unit's lines from the journal's end, begun early
/// ([`RunReader::read_from_end`]).
pub struct FromEnd {
    entries: Entries,
    /// When it began, µs since the epoch.
    begun: u64,
    /// journald's streams as it began.
    drain: Drain,
}

impl FromEnd {
    /// Whether this read has every line of a run that ended at `finished`
    /// (if it has): the run's lines were all in the journal as it began.
    fn has_all_of(&self, finished: Option<u64>) -> bool {
        let Some(finished) = finished else { return true };
        match self.drain {
            Drain::Drained => finished < self.begun,
            Drain::Unknown => finished.saturating_add(SETTLE_US) < self.begun,
            Drain::Pending(_) => false,
        }
    }
}

/// A forward read from `after` (or from the run's start), skipping the
/// first `skip` lines and taking `take`.
#[derive(Debug, Clone)]
pub struct Replay {
    pub after: Option<Cursor>,
    pub skip: usize,
    pub take: usize,
}

impl<'a> RunReader<'a> {
    /// The only place journal text becomes lines to show: a message is
    /// split into its lines, each neutralised, then redacted.
    fn shown_lines(&self, message: &str) -> Vec<String> {
        let message = message.strip_suffix('\n').unwrap_or(message);
        message.split('\n').filter_map(|line| self.redactor.apply(neutralise(line).into_owned())).collect()
    }

    fn show(&self, entry: Entry) -> Shown {
        Shown { lines: self.shown_lines(&entry.message), cursor: entry.cursor }
    }

    /// `run`'s entries in journal order, from its start or after `after`,
    /// each with its cursor. A finished run is read once its lines are in
    /// ([`lines_in`]).
    pub fn forward(&self, run: &Run, after: Option<&Cursor>) -> io::Result<RunLines<'_>> {
        if let Some(finished) = run.finished {
            lines_in(self.streams, finished);
        }
        let (seek, from) = reading_point(run, after);
        // The newest run is bounded by the next run's first message, which
        // only a read with the manager's messages sees.
        let read = EntryRead { unit: &self.unit, seek, backward: false, follow: false, manager: run.next.is_none() };
        let entries = self.source.unit_entries(read, STREAM_TIMEOUT)?;
        Ok(RunLines::new(self, [Part::Entries { entries, until: None }].into(), RunFilter::new(run, from)))
    }

    /// All of `run`'s lines in order, where no cursors are wanted. A long
    /// finished run is read in three parts, started at once: the entries
    /// around its start, where the previous run's last lines may be; the
    /// bare text of the rest, where every line of the unit is the run's
    /// (up to shortly before the next run's start, or, for the newest run,
    /// up to now if no run has begun since), at the speed of `-o cat`; and
    /// the entries after that, where its late lines (journald can store a
    /// burst's last lines seconds after the run's end) and the next run's
    /// first message are.
    pub fn all_lines(&self, run: &Run) -> io::Result<RunLines<'_>> {
        let settle = SETTLE_US;
        let Some(finished) = run.finished else { return self.forward(run, None) };
        lines_in(self.streams, finished);
        let head_end = run.started.saturating_add(settle);
        let text_end = match &run.next {
            Some(next) => next.place.realtime.saturating_sub(settle),
            None => {
                let now = now_us();
                if self.run_begun_since(run)? {
                    return self.forward(run, None);
                }
                now
            }
        };
        if text_end <= head_end.saturating_add(settle) {
            return self.forward(run, None);
        }
        let (seek, from) = reading_point(run, None);
        let read = |seek, manager| EntryRead { unit: &self.unit, seek, backward: false, follow: false, manager };
        let head = self.source.unit_entries(read(seek, false), STREAM_TIMEOUT)?;
        let text = self.source.unit_messages(&self.unit, head_end + 1, text_end)?;
        let rest = self.source.unit_entries(read(Seek::Since(text_end + 1), run.next.is_none()), STREAM_TIMEOUT)?;
        let parts = VecDeque::from([
            Part::Entries { entries: head, until: Some(head_end) },
            Part::Messages(text),
            Part::Entries { entries: rest, until: None },
        ]);
        Ok(RunLines::new(self, parts, RunFilter::new(run, from)))
    }

    /// Whether the manager's newest message about the unit begins a run
    /// after `run` (then `run` is no longer the newest).
    fn run_begun_since(&self, run: &Run) -> io::Result<bool> {
        let mut events = self.source.manager_events(&self.unit)?;
        Ok(events.next_entry()?.is_some_and(|newest| begins_a_later_run(&run.run, &run.start.place, &newest)))
    }

    /// `run`'s live read for `follow`: its entries from its start (or after
    /// `after`) and then as they are written, for at most `timeout`, with
    /// the picker that turns them into lines.
    pub fn live(&self, run: &Run, after: Option<&Cursor>, timeout: Duration) -> io::Result<(Entries, Picker<'_>)> {
        let (seek, from) = reading_point(run, after);
        let read = EntryRead { unit: &self.unit, seek, backward: false, follow: true, manager: true };
        let entries = self.source.unit_entries(read, timeout)?;
        Ok((entries, Picker { reader: self, filter: RunFilter::new(run, from) }))
    }

    /// The last `n` lines of `run`, read newest first from the run's end,
    /// so a long run costs only those lines. Only where an untagged line
    /// by a writer not yet seen comes within [`JOURNAL_SETTLE`] of the
    /// run's start (where the previous run's last lines can be) is the
    /// run read forward instead, which knows the writers that came before.
    ///
    /// `from_end` is a read begun by [`RunReader::read_from_end`] while the
    /// run was being found; it serves for the newest run if that run's
    /// lines were all in when the read began.
    pub fn last(&self, run: &Run, n: usize, from_end: Option<FromEnd>) -> io::Result<Last> {
        if n == 0 {
            return Ok(Last::Held(Vec::new()));
        }
        let waited = run.finished.is_some_and(|f| lines_in(self.streams, f));
        let whole = |read: &FromEnd| !waited && run.next.is_none() && read.has_all_of(run.finished);
        let from_end = from_end.filter(whole).map(|read| read.entries);
        match self.last_from_end(run, n, from_end)? {
            Some(last) => Ok(last),
            None => self.last_from_start(run, n),
        }
    }

    /// Begins reading the unit's lines newest first from the journal's
    /// end, as [`RunReader::last`] does for the newest run: started before
    /// the run is known, the read gets going meanwhile.
    pub fn read_from_end(&self) -> io::Result<FromEnd> {
        let begun = now_us();
        let drain = self.streams.drained();
        let entries = self.source.unit_entries(self.backward_read(None), STREAM_TIMEOUT)?;
        Ok(FromEnd { entries, begun, drain })
    }

    /// From the next run's start, the unit's lines; from the journal's end
    /// (the newest run), with the manager's messages, which tell where a
    /// run begun since ends this one.
    fn backward_read<'c>(&'c self, before: Option<&'c Cursor>) -> EntryRead<'c> {
        let seek = before.map_or(Seek::Edge, Seek::After);
        EntryRead { unit: &self.unit, seek, backward: true, follow: false, manager: before.is_none() }
    }

    fn last_from_end(&self, run: &Run, n: usize, from_end: Option<Entries>) -> io::Result<Option<Last>> {
        let settle = SETTLE_US;
        let (window, settled) = (run.started.saturating_sub(settle), run.started.saturating_add(settle));
        let mut entries = match from_end {
            Some(entries) => entries,
            None => {
                let read = self.backward_read(run.next.as_ref().map(|next| &next.cursor));
                self.source.unit_entries(read, STREAM_TIMEOUT)?
            }
        };
        let mut writers = Writers::default();
        // Newest first; past HOLD_BYTES only counted, no longer held.
        let mut held: Vec<Shown> = Vec::new();
        let (mut count, mut bytes) = (0, 0);
        while let Some(entry) = entries.next_entry()? {
            if entry.realtime < window {
                break;
            }
            if entry.from_manager {
                // A run begun after this one: what came so far is its. For
                // the current run no later one has begun: the message is
                // forged, and the forward read knows which lines follow it.
                if begins_a_later_run(&run.run, &run.start.place, &entry) {
                    if run.current {
                        return Ok(None);
                    }
                    writers = Writers::default();
                    held.clear();
                    (count, bytes) = (0, 0);
                }
                continue;
            }
            let ours = match writers.whose(&run.run, &entry) {
                Writer::Ours => true,
                Writer::Others => false,
                // Before the run's first message: the previous run's.
                Writer::Unknown if before_the_run(run, &entry.place) => false,
                Writer::Unknown if entry.realtime <= settled => return Ok(None),
                Writer::Unknown => true,
            };
            if !ours {
                continue;
            }
            if count >= n {
                // The entry just before the oldest line wanted: replay from it.
                let skip = count - n;
                let after = Cursor::parse(&entry.cursor);
                return Ok(Some(Last::Replay(Replay { after, skip, take: n })));
            }
            let shown = self.show(entry);
            count += shown.lines.len();
            bytes += shown.bytes();
            if bytes <= HOLD_BYTES {
                held.push(shown);
            } else {
                held.clear();
            }
            if count >= n && bytes <= HOLD_BYTES {
                break;
            }
        }
        if bytes > HOLD_BYTES {
            let skip = count.saturating_sub(n);
            return Ok(Some(Last::Replay(Replay { after: None, skip, take: n })));
        }
        let mut lines: Vec<String> = held.into_iter().rev().flat_map(|s| s.lines).collect();
        lines.drain(..lines.len().saturating_sub(n));
        Ok(Some(Last::Held(lines)))
    }

    /// The last `n` lines read forward from the run's start: held while
    /// they fit, else counted and replayed.
    fn last_from_start(&self, run: &Run, n: usize) -> io::Result<Last> {
        let mut lines: VecDeque<String> = VecDeque::new();
        let (mut count, mut bytes, mut overflowed) = (0usize, 0usize, false);
        let mut read = self.all_lines(run)?;
        while let Some(shown) = read.next_shown()? {
            for line in shown.lines {
                count += 1;
                if overflowed {
                    continue;
                }
                bytes += line.len() + 1;
                lines.push_back(line);
                if lines.len() > n {
                    bytes -= lines.pop_front().map_or(0, |l| l.len() + 1);
                }
                if bytes > HOLD_BYTES {
                    overflowed = true;
                    lines.clear();
                }
            }
        }
        if overflowed {
            return Ok(Last::Replay(Replay { after: None, skip: count.saturating_sub(n), take: n }));
        }
        Ok(Last::Held(lines.into()))
    }

    /// The lines of `run` after `after` (all of them without), up to
    /// [`MAX_LINES`] lines or [`HOLD_BYTES`], whole entries only, and the
    /// cursor to go on from (past lines the redaction skipped too, so they
    /// are not read again).
    pub fn tail(&self, run: &Run, after: Option<&Cursor>) -> io::Result<Tail> {
        let mut tail = Tail { lines: Vec::new(), cursor: after.cloned() };
        let mut bytes = 0;
        let mut read = self.forward(run, after)?;
        while let Some(shown) = read.next_shown()? {
            tail.cursor = Cursor::parse(&shown.cursor).or(tail.cursor);
            bytes += shown.bytes();
            tail.lines.extend(shown.lines);
            if tail.lines.len() >= MAX_LINES as usize || bytes >= HOLD_BYTES {
                break;
            }
        }
        Ok(tail)
    }

    /// Carries out a [`Replay`]: the lines in order.
    pub fn replay(&self, run: &Run, replay: &Replay) -> io::Result<impl Iterator<Item = io::Result<String>> + '_> {
        let read = match &replay.after {
            Some(after) => self.forward(run, Some(after))?,
            None => self.all_lines(run)?,
        };
        Ok(read.lines().skip(replay.skip).take(replay.take))
    }
}

/// A run's lines read forward, as shown.
pub struct RunLines<'r> {
    reader: &'r RunReader<'r>,
    /// The reads, in order; each is dropped (ending it) once done.
    parts: VecDeque<Part>,
    filter: RunFilter,
    pending: VecDeque<String>,
    /// The place of the last entry read, and of the last entry of the
    /// parts done: a later part never goes back before it.
    last: Option<Place>,
    floor: Option<Place>,
}

/// One read of a [`RunLines`].
enum Part {
    /// Entries, picked by the rule, up to entries written after `until`.
    Entries { entries: Entries, until: Option<u64> },
    /// Text that is all the run's, without cursors.
    Messages(Messages),
}

impl<'r> RunLines<'r> {
    fn new(reader: &'r RunReader<'r>, parts: VecDeque<Part>, filter: RunFilter) -> RunLines<'r> {
        RunLines { reader, parts, filter, pending: VecDeque::new(), last: None, floor: None }
    }

    /// The run's next entry, as shown (possibly with no lines left after
    /// redaction: its cursor still counts as read). Text read without
    /// cursors comes one line at a time with an empty cursor.
    pub fn next_shown(&mut self) -> io::Result<Option<Shown>> {
        while let Some(part) = self.parts.front_mut() {
            match part {
                Part::Entries { entries, until } => match entries.next_entry()? {
                    // Parts meet, never overlap: nothing is shown twice.
                    Some(entry) if self.floor.is_some_and(|floor| !floor.is_before(&entry.place)) => {}
                    Some(entry) if until.is_none_or(|until| entry.realtime <= until) => {
                        self.last = Some(entry.place);
                        match self.filter.see(&entry) {
                            Seen::Line => return Ok(Some(self.reader.show(entry))),
                            Seen::Past => return Ok(None),
                            Seen::RunEnded | Seen::LaterRun | Seen::Other => {}
                        }
                    }
                    _ => {
                        self.parts.pop_front();
                        self.floor = self.last;
                    }
                },
                Part::Messages(text) => match read_line(text)? {
                    Some(line) => {
                        return Ok(Some(Shown { lines: self.reader.shown_lines(&line), cursor: String::new() }))
                    }
                    None => {
                        self.parts.pop_front();
                    }
                },
            }
        }
        Ok(None)
    }

    /// The lines one by one.
    pub fn lines(mut self) -> impl Iterator<Item = io::Result<String>> + 'r {
        std::iter::from_fn(move || loop {
            if let Some(line) = self.pending.pop_front() {
                return Some(Ok(line));
            }
            match self.next_shown() {
                Ok(Some(shown)) => self.pending.extend(shown.lines),
                Ok(None) => return None,
                Err(e) => return Some(Err(e)),
            }
        })
    }
}

/// One line of text, without its newline; a line longer than
/// [`MAX_ENTRY_BYTES`] is cut there and the rest passed over.
fn read_line(text: &mut Messages) -> io::Result<Option<String>> {
    let mut line = Vec::new();
    if text.by_ref().take(MAX_ENTRY_BYTES as u64).read_until(b'\n', &mut line)? == 0 {
        return Ok(None);
    }
    if line.last() == Some(&b'\n') {
        line.pop();
    } else {
        // Cut at the limit: pass over the rest of the line.
        let mut rest = Vec::new();
        while text.by_ref().take(MAX_ENTRY_BYTES as u64).read_until(b'\n', &mut rest)? > 0 {
            if rest.last() == Some(&b'\n') {
                break;
            }
            rest.clear();
        }
    }
    Ok(Some(String::from_utf8_lossy(&line).into_owned()))
}

/// Turns a live read's entries into the run's lines (see [`RunFilter`]).
pub struct Picker<'r> {
    reader: &'r RunReader<'r>,
    filter: RunFilter,
}

impl<'r> Picker<'r> {
    /// What `entry` is to the run, with its lines as shown where it is one
    /// of the run's (the cursor is then the [`Shown`]'s), else its cursor.
    pub fn pick(&mut self, entry: Entry) -> (Seen, Option<Shown>, String) {
        match self.filter.see(&entry) {
            Seen::Line => (Seen::Line, Some(self.reader.show(entry)), String::new()),
            seen => (seen, None, entry.cursor),
        }
    }

    /// Once the run has ended: the rest of its lines, what the journal
    /// holds after `after` (the last entry the live read gave; the run's
    /// start without), by the same rule and what it has learnt.
    pub fn rest(self, run: &Run, after: Option<&Cursor>) -> io::Result<RunLines<'r>> {
        let reader = self.reader;
        let (seek, _) = reading_point(run, after);
        let read = EntryRead { unit: &reader.unit, seek, backward: false, follow: false, manager: true };
        let entries = reader.source.unit_entries(read, STREAM_TIMEOUT)?;
        Ok(RunLines::new(reader, [Part::Entries { entries, until: None }].into(), self.filter))
    }
}

/// Where reading `run` begins, and the place of that point when it is a
/// cursor: after a cursor of this run (one after the previous run's
/// start), else shortly before the run's first message, where its first
/// lines and the previous run's last ones may be.
fn reading_point<'c>(run: &Run, after: Option<&'c Cursor>) -> (Seek<'c>, Option<Place>) {
    let this_run = |place: &Place| run.previous.as_ref().is_none_or(|p| !place.is_before(&p.place));
    match after.and_then(|c| Some((c, c.place()?))).filter(|(_, place)| this_run(place)) {
        Some((cursor, place)) => (Seek::After(cursor), Some(place)),
        None => (Seek::Since(run.started.saturating_sub(SETTLE_US)), None),
    }
}

/// Microseconds since the epoch.
pub fn now_us() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_micros() as u64
}

/// Waits until the lines of a run that ended at `finished` (µs since the
/// epoch) are all in the journal: until journald has read every stream
/// whose writer has gone ([`Streams`]), at most [`LINES_IN_WAIT`]; where
/// the streams cannot be seen, until [`JOURNAL_SETTLE`] has passed since
/// the end. A run that ended over [`LINES_IN_RECENT`] ago waits for
/// nothing. Whether it had to wait (a read begun before may miss lines).
pub fn lines_in(streams: &Streams, finished: u64) -> bool {
    let since = Duration::from_micros(now_us().saturating_sub(finished));
    if since >= LINES_IN_RECENT {
        return false;
    }
    let first = streams.drained();
    let drain = match first {
        Drain::Pending(_) => streams.wait_drained(Instant::now() + LINES_IN_WAIT),
        drain => drain,
    };
    match drain {
        Drain::Drained => first != Drain::Drained,
        Drain::Pending(n) => {
            log::warn!("journald has not read {n} ended streams after {} s", LINES_IN_WAIT.as_secs());
            true
        }
        Drain::Unknown => {
            let wait = JOURNAL_SETTLE.saturating_sub(since);
            thread::sleep(wait);
            !wait.is_zero()
        }
    }
}

/// A line as a terminal or a CI log may show it without being steered by
/// it: escape sequences (CSI, OSC and the like) are removed, every other
/// control character but a tab becomes U+FFFD, and a trailing CR goes.
/// Done before redaction, so that an escape inside a secret cannot hide it
/// from a mask.
pub fn neutralise(line: &str) -> Cow<'_, str> {
    let line = line.strip_suffix('\r').unwrap_or(line);
    let is_control = |c: char| c.is_control() && c != '\t';
    if !line.chars().any(is_control) {
        return Cow::Borrowed(line);
    }
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => match chars.next() {
                // CSI: parameters and intermediates, then one final byte.
                Some('[') => {
                    for c in chars.by_ref() {
                        if ('\u{40}'..='\u{7e}').contains(&c) {
                            break;
                        }
                    }
                }
                // OSC, DCS, SOS, PM, APC: a string up to BEL or ST (ESC \).
                Some(']' | 'P' | 'X' | '^' | '_') => {
                    while let Some(c) = chars.next() {
                        if c == '\u{7}' || (c == '\u{1b}' && chars.next_if_eq(&'\\').is_some()) {
                            break;
                        }
                    }
                }
                // Any other escape: ESC and the one character after it.
                _ => {}
            },
            c if is_control(c) => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::message_ids::{DEACTIVATED, STARTED, STARTING};
    use crate::names::{JobName, Prefix, RunId};
    use crate::redact::Redactions;
    use crate::runs::history::{history, Wanted};
    use crate::runs::testing::{line, manager, Journal, RUN_A, RUN_B};

    /// No journald in view: finished runs of these journals ended long ago.
    static NO_STREAMS: std::sync::LazyLock<Streams> =
        std::sync::LazyLock::new(|| Streams::at(std::path::Path::new("/nonexistent/stdout")));

    fn job() -> JobName {
        JobName::parse(&Prefix::parse("ci-test-").expect("prefix"), "ci-test-a").expect("job")
    }

    fn run_of(journal: &Journal, id: &str) -> Run {
        let mut events = journal.manager_events(&job().unit()).expect("events");
        let id = RunId::parse(id).expect("run");
        let mut runs = history(events.as_mut(), Wanted { limit: 1, only: Some(&id) }, &mut || None).expect("runs");
        runs.pop().expect("the run")
    }

    fn reader<'a>(journal: &'a Journal, redactions: &'a Redactions) -> RunReader<'a> {
        RunReader { source: journal, unit: job().unit(), redactor: redactions.for_job(&job()), streams: &NO_STREAMS }
    }

    fn all(reader: &RunReader, run: &Run) -> Vec<String> {
        reader.forward(run, None).expect("read").lines().map(|l| l.expect("line")).collect()
    }

    fn held(last: Last) -> Vec<String> {
        match last {
            Last::Held(lines) => lines,
            Last::Replay(replay) => panic!("replayed: {replay:?}"),
        }
    }

    #[test]
    fn lines_by_position_and_writer() {
        // Run A (pid 10) was before; run B (pid 20) is read. journald stored
        // A's last lines after A ended, even after B's "Starting", and most
        // lines untagged, as it does with fast jobs.
        let journal = Journal(vec![
            manager(1, RUN_A, STARTING),
            line(2, "a: first", Some(RUN_A), 10),
            line(3, "a: second, untagged", None, 10),
            manager(4, RUN_A, DEACTIVATED),
            line(5, "a: late, untagged", None, 10),
            manager(6, RUN_B, STARTING),
            line(7, "a: later still, untagged", None, 10),
            line(8, "b: first, untagged", None, 20),
            line(9, "b: tagged", Some(RUN_B), 20),
            line(10, "b: last, untagged", None, 20),
            manager(11, RUN_B, DEACTIVATED),
            manager(12, RUN_A, STARTING),
            line(13, "the next run's", None, 30),
        ]);
        let none = Redactions::default();
        let reader = reader(&journal, &none);
        let b = run_of(&journal, RUN_B);
        assert_eq!(all(&reader, &b), ["b: first, untagged", "b: tagged", "b: last, untagged"]);
        let tail = reader.tail(&b, None).expect("tail");
        assert_eq!(tail.lines.len(), 3);
        assert_eq!(tail.cursor.and_then(|c| c.place()).map(|p| p.number), Some(10));
        // A cursor from before the previous run reads from the run's start.
        let old = Cursor::parse("s=0;i=9").expect("cursor");
        assert_eq!(reader.tail(&b, Some(&old)).expect("tail").lines.len(), 3);
        // From a cursor inside the run, what follows it.
        let inside = Cursor::parse(&journal.0[8].cursor).expect("cursor");
        assert_eq!(reader.tail(&b, Some(&inside)).expect("tail").lines, ["b: last, untagged"]);
    }

    #[test]
    fn two_simple_runs_share_no_line() {
        let journal = Journal(vec![
            manager(1, RUN_A, STARTED),
            line(2, "a: one", Some(RUN_A), 10),
            line(3, "a: two", Some(RUN_A), 10),
            manager(4, RUN_A, DEACTIVATED),
            line(5, "b: before its Started", Some(RUN_B), 20),
            manager(6, RUN_B, STARTED),
            line(7, "b: one", Some(RUN_B), 20),
            line(8, "a: late", None, 10),
            manager(9, RUN_B, DEACTIVATED),
        ]);
        let none = Redactions::default();
        let reader = reader(&journal, &none);
        assert_eq!(all(&reader, &run_of(&journal, RUN_A)), ["a: one", "a: two"]);
        assert_eq!(all(&reader, &run_of(&journal, RUN_B)), ["b: before its Started", "b: one"]);
        assert_eq!(held(reader.last(&run_of(&journal, RUN_B), 1, None).expect("last")), ["b: one"]);
    }

    #[test]
    fn last_lines_from_the_end_of_a_long_run() {
        // Run B began at 0.1 s; its lines after 1.1 s are far enough from
        // its start to be read backwards.
        let journal = Journal(vec![
            manager(1, RUN_B, STARTED),
            line(2, "b: 0, near the start", Some(RUN_B), 20),
            line(18, "b: 1", Some(RUN_B), 20),
            line(19, "b: 2", Some(RUN_B), 20),
            line(20, "a: untagged, by A's writer", None, 10),
            line(21, "a stray line of run A", Some(RUN_A), 10),
            line(22, "b: 3, untagged", None, 20),
        ]);
        let none = Redactions::default();
        let reader = reader(&journal, &none);
        let b = run_of(&journal, RUN_B);
        assert_eq!(held(reader.last(&b, 2, None).expect("last")), ["b: 2", "b: 3, untagged"]);
        assert_eq!(held(reader.last(&b, 3, None).expect("last")), ["b: 1", "b: 2", "b: 3, untagged"]);
        // The fourth line is within a second of the start: read forward.
        let from_start = held(reader.last(&b, 10, None).expect("last"));
        assert_eq!(from_start.first().map(String::as_str), Some("b: 0, near the start"));
    }

    #[test]
    fn a_long_run_read_in_three_parts_gives_what_one_read_gives() {
        let journal = Journal(vec![
            manager(1, RUN_A, STARTED),
            line(2, "a: one", Some(RUN_A), 10),
            manager(3, RUN_A, DEACTIVATED),
            manager(5, RUN_B, STARTED),
            line(6, "a: late, untagged", None, 10),
            line(7, "b: one", Some(RUN_B), 20),
            line(20, "b: middle, untagged", None, 20),
            line(30, "b: middle\nin two lines", Some(RUN_B), 20),
            manager(40, RUN_B, DEACTIVATED),
            line(42, "b: late, untagged", None, 20),
            manager(60, RUN_A, STARTED),
            line(61, "the next run's, untagged", None, 30),
        ]);
        let none = Redactions::default();
        let reader = reader(&journal, &none);
        let b = run_of(&journal, RUN_B);
        let want = ["b: one", "b: middle, untagged", "b: middle", "in two lines", "b: late, untagged"];
        assert_eq!(all(&reader, &b), want);
        let parts: Vec<String> = reader.all_lines(&b).expect("read").lines().map(|l| l.expect("line")).collect();
        assert_eq!(parts, want);
    }

    #[test]
    fn late_lines_are_the_runs_and_a_run_begun_since_ends_it() {
        // A burst's last lines stored seconds after the run's end (seen:
        // 1.5 s for 100,000 lines), then a run begun since, untagged.
        let mut journal = vec![manager(1, RUN_A, STARTED)];
        journal.extend((2..8).map(|i| line(i, &format!("a {i}"), Some(RUN_A), 10)));
        journal.push(manager(10, RUN_A, DEACTIVATED));
        journal.extend((30..34).map(|i| line(i, &format!("a late {i}"), None, 10)));
        let mut later = journal.clone();
        later.push(manager(60, RUN_B, STARTED));
        later.extend((61..63).map(|i| line(i, &format!("b {i}"), None, 20)));
        for (what, entries) in [("alone", journal), ("with a later run", later)] {
            let journal = Journal(entries);
            let none = Redactions::default();
            let reader = reader(&journal, &none);
            // `a` as it was found before `b` began: the newest run.
            let mut a = run_of(&journal, RUN_A);
            a.next = None;
            let last = held(reader.last(&a, 3, None).expect("last"));
            assert_eq!(last, ["a late 31", "a late 32", "a late 33"], "{what}");
            let every = all(&reader, &a);
            assert_eq!((every.len(), every.last().map(String::as_str)), (10, Some("a late 33")), "{what}");
            let parts: Vec<String> = reader.all_lines(&a).expect("read").lines().map(|l| l.expect("line")).collect();
            assert_eq!(parts, every, "{what}");
        }
    }

    #[test]
    fn answers_larger_than_held_are_replayed() {
        let big = "x".repeat(HOLD_BYTES / 3);
        let mut entries = vec![manager(1, RUN_A, STARTED)];
        entries.extend((0..6).map(|i| line(10 + i, &format!("{i} {big}"), Some(RUN_A), 10)));
        let journal = Journal(entries);
        let none = Redactions::default();
        let reader = reader(&journal, &none);
        let a = run_of(&journal, RUN_A);
        let Last::Replay(replay) = reader.last(&a, 4, None).expect("last") else { panic!("held more than HOLD_BYTES") };
        let lines: Vec<String> = reader.replay(&a, &replay).expect("replay").map(|l| l.expect("line")).collect();
        let firsts: Vec<&str> = lines.iter().map(|l| &l[..1]).collect();
        assert_eq!(firsts, ["2", "3", "4", "5"]);
    }

    #[test]
    fn every_line_is_neutralised_then_redacted() {
        let journal = Journal(vec![
            manager(1, RUN_A, STARTED),
            line(2, "tok\u{1b}[0men=SECRET1 sent\r", Some(RUN_A), 10),
            line(3, "first\nDEBUG second\nthird token=SECRET2", Some(RUN_A), 10),
            line(4, "title \u{1b}]0;pwned\u{7}bell\u{7} nul\u{0}", Some(RUN_A), 10),
        ]);
        let rules = Redactions::parse("rules", "skip ^DEBUG\nmask token=\\S+\nmask ^first$\n").expect("rules");
        let reader = reader(&journal, &rules);
        let a = run_of(&journal, RUN_A);
        let masked = crate::redact::MASK;
        assert_eq!(
            all(&reader, &a),
            [
                format!("{masked} sent"),
                masked.to_string(),
                format!("third {masked}"),
                "title bell\u{fffd} nul\u{fffd}".to_string()
            ]
        );
    }
}
