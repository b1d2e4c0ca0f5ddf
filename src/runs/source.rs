//! Where a run's entries come from: one small interface, so that another
//! source (the journal files read in-process) can stand beside journalctl
//! without touching the readers or the routes.
#![forbid(unsafe_code)]

use std::io::{self, BufRead, Read};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::journal::{Native, NativeEntries, Text};
use crate::names::{Cursor, Place, UnitName};
use crate::systemd::argv::{Call, EntryRead, Seek, Tools};
use crate::systemd::export::{self, RawEntry};
use crate::systemd::parse::{self, Entry};
use crate::systemd::run::{Held, Runner, StopOnDrop};

/// Entries about one unit, in the order the read asked for. Only entries
/// about that unit ever come out: its own lines and the manager's messages
/// about it. Dropping the stream ends the read.
pub trait EntryStream: Send {
    /// The next entry, or `None` at the end of the read.
    fn next_entry(&mut self) -> io::Result<Option<Entry>>;

    /// Hands out what ends the read when dropped, so that one thread can
    /// end a read that another is blocked in (a live read waits for new
    /// entries). Without it, the read ends when the stream is dropped.
    fn take_stop(&mut self) -> StopOnDrop {
        Box::new(())
    }
}

pub type Entries = Box<dyn EntryStream>;

/// A journal to read units' entries from.
pub trait JournalSource: Send + Sync {
    /// The service manager's messages about `unit`, newest first.
    fn manager_events(&self, unit: &UnitName) -> io::Result<Entries>;
    /// The unit's entries as `read` says; the read is ended after `timeout`
    /// whatever happens.
    fn unit_entries(&self, read: EntryRead<'_>, timeout: Duration) -> io::Result<Entries>;
    /// The text of the unit's own lines written from `since` to `until`
    /// (microseconds since the epoch, both included), one line each.
    fn unit_messages(&self, unit: &UnitName, since: u64, until: u64) -> io::Result<Messages>;
}

/// Lines of text, as a source yields them; dropping it ends the read.
pub type Messages = Box<dyn BufRead + Send>;

/// The journal read through `journalctl -o export`, one child per read.
#[derive(Clone)]
pub struct Journalctl {
    pub runner: Arc<dyn Runner>,
    pub tools: Tools,
}

impl Journalctl {
    fn read(&self, call: Call<'_>, unit: &UnitName, timeout: Duration, skip: Option<&Cursor>) -> io::Result<Entries> {
        let argv = call.argv(&self.tools);
        let (output, stop) = self
            .runner
            .stream(&argv, timeout)
            .map_err(|e| io::Error::new(e.kind(), format!("journalctl for {unit}: {e}")))?;
        let skip = skip.map(|c| c.as_str().to_string());
        Ok(Box::new(ExportStream { output, _stop: stop, unit: unit.to_string(), raw: RawEntry::default(), skip }))
    }
}

impl JournalSource for Journalctl {
    fn manager_events(&self, unit: &UnitName) -> io::Result<Entries> {
        self.read(Call::ManagerEvents(unit), unit, crate::systemd::run::STREAM_TIMEOUT, None)
    }

    fn unit_messages(&self, unit: &UnitName, since: u64, until: u64) -> io::Result<Messages> {
        let argv = Call::UnitMessages { unit, since, until }.argv(&self.tools);
        let (output, stop) = self
            .runner
            .stream(&argv, crate::systemd::run::STREAM_TIMEOUT)
            .map_err(|e| io::Error::new(e.kind(), format!("journalctl for {unit}: {e}")))?;
        Ok(Box::new(Held { output, _stop: stop }))
    }

    fn unit_entries(&self, read: EntryRead<'_>, timeout: Duration) -> io::Result<Entries> {
        // `--cursor=C` starts at C itself where the read matches it.
        let skip = match read.seek {
            Seek::After(cursor) => Some(cursor),
            _ => None,
        };
        self.read(Call::UnitEntries(read), read.unit, timeout, skip)
    }
}

struct ExportStream {
    output: Box<dyn BufRead + Send>,
    _stop: StopOnDrop,
    unit: String,
    raw: RawEntry,
    /// The entry the read starts at but is to start after.
    skip: Option<String>,
}

impl EntryStream for ExportStream {
    fn next_entry(&mut self) -> io::Result<Option<Entry>> {
        while export::read_entry(&mut self.output, &mut self.raw)? {
            // Whatever journalctl matched, only the unit's own entries pass.
            let Some(entry) = parse::journal_entry(&self.unit, &self.raw) else { continue };
            if self.skip.take().is_some_and(|skip| skip == entry.cursor) {
                continue;
            }
            return Ok(Some(entry));
        }
        Ok(None)
    }

    fn take_stop(&mut self) -> StopOnDrop {
        std::mem::replace(&mut self._stop, Box::new(()))
    }
}

/// The journal's files read in-process, and through journalctl whatever
/// that reader does not understand (an unknown format flag, a damaged
/// object, a cursor of another form): a read that fails as it opens is made
/// through journalctl; one that fails midway goes on through journalctl
/// after the last entry it gave. Each is said in the log.
pub struct NativeFirst {
    pub native: Native,
    pub journalctl: Journalctl,
}

fn falls_back(unit: &UnitName, e: &io::Error) {
    log::warn!("journal read of {unit} in-process failed ({e}): read through journalctl instead");
}

/// A read's seek point, owned, so that it can be made again.
#[derive(Clone)]
enum SeekPoint {
    Edge,
    After(Cursor),
    Since(u64),
}

impl SeekPoint {
    fn of(seek: Seek<'_>) -> SeekPoint {
        match seek {
            Seek::Edge => SeekPoint::Edge,
            Seek::After(cursor) => SeekPoint::After(cursor.clone()),
            Seek::Since(us) => SeekPoint::Since(us),
        }
    }

    fn seek(&self) -> Seek<'_> {
        match self {
            SeekPoint::Edge => Seek::Edge,
            SeekPoint::After(cursor) => Seek::After(cursor),
            SeekPoint::Since(us) => Seek::Since(*us),
        }
    }
}

/// What a read through journalctl needs to go on where a native one broke.
#[derive(Clone)]
struct Resume {
    unit: UnitName,
    /// None for the manager's messages (newest first, from the end).
    read: Option<(SeekPoint, bool, bool, bool)>,
    deadline: Instant,
}

impl JournalSource for NativeFirst {
    fn manager_events(&self, unit: &UnitName) -> io::Result<Entries> {
        let resume =
            Resume { unit: unit.clone(), read: None, deadline: Instant::now() + crate::systemd::run::STREAM_TIMEOUT };
        match self.native.events(unit) {
            Ok(native) => Ok(Box::new(Resuming::new(native, resume, self.journalctl.clone()))),
            Err(e) => {
                falls_back(unit, &e);
                self.journalctl.manager_events(unit)
            }
        }
    }

    fn unit_entries(&self, read: EntryRead<'_>, timeout: Duration) -> io::Result<Entries> {
        let point = SeekPoint::of(read.seek);
        let resume = Resume {
            unit: read.unit.clone(),
            read: Some((point, read.backward, read.follow, read.manager)),
            deadline: Instant::now() + timeout,
        };
        match self.native.entries(read, timeout) {
            Ok(native) => Ok(Box::new(Resuming::new(native, resume, self.journalctl.clone()))),
            Err(e) => {
                falls_back(read.unit, &e);
                self.journalctl.unit_entries(read, timeout)
            }
        }
    }

    fn unit_messages(&self, unit: &UnitName, since: u64, until: u64) -> io::Result<Messages> {
        match self.native.text(unit, since, until) {
            Ok(text) => {
                let journalctl = self.journalctl.clone();
                Ok(Box::new(ResumingText { text, unit: unit.clone(), since, until, journalctl, rest: None }))
            }
            Err(e) => {
                falls_back(unit, &e);
                self.journalctl.unit_messages(unit, since, until)
            }
        }
    }
}

/// The stops of a read's parts: dropping it ends them all, those added
/// later too.
#[derive(Clone, Default)]
struct Stops(Arc<Mutex<Option<Vec<StopOnDrop>>>>);

impl Stops {
    fn add(&self, stop: StopOnDrop) {
        if let Ok(mut stops) = self.0.lock() {
            if let Some(stops) = stops.as_mut() {
                stops.push(stop);
            }
        }
    }
}

struct StopsHandle(Stops);

impl Drop for StopsHandle {
    fn drop(&mut self) {
        if let Ok(mut stops) = (self.0).0.lock() {
            stops.take();
        }
    }
}

/// A native read that goes on through journalctl if it breaks.
struct Resuming {
    native: Option<NativeEntries>,
    journalctl: Journalctl,
    rest: Option<Entries>,
    resume: Resume,
    /// The place of the last entry given, for the manager's messages.
    last: Option<Place>,
    stops: Option<Stops>,
}

impl Resuming {
    fn new(native: NativeEntries, resume: Resume, journalctl: Journalctl) -> Resuming {
        Resuming { native: Some(native), journalctl, rest: None, resume, last: None, stops: None }
    }

    /// The read through journalctl from where the native one came to.
    fn through_journalctl(&mut self, last_cursor: Option<Cursor>) -> io::Result<Entries> {
        let Resume { unit, read, deadline } = &self.resume;
        let mut entries = match read {
            None => self.journalctl.manager_events(unit)?,
            Some((point, backward, follow, manager)) => {
                let after = last_cursor.map(SeekPoint::After);
                let point = after.unwrap_or_else(|| point.clone());
                let read =
                    EntryRead { unit, seek: point.seek(), backward: *backward, follow: *follow, manager: *manager };
                let timeout = deadline.saturating_duration_since(Instant::now());
                self.journalctl.unit_entries(read, timeout)?
            }
        };
        if let Some(stops) = &self.stops {
            stops.add(entries.take_stop());
        }
        Ok(entries)
    }
}

impl EntryStream for Resuming {
    fn next_entry(&mut self) -> io::Result<Option<Entry>> {
        if let Some(native) = &mut self.native {
            match native.next_entry() {
                Ok(entry) => {
                    self.last = entry.as_ref().map(|e| e.place);
                    return Ok(entry);
                }
                Err(e) => {
                    falls_back(&self.resume.unit, &e);
                    let last_cursor = native.last_cursor();
                    self.native = None;
                    self.rest = Some(self.through_journalctl(last_cursor)?);
                }
            }
        }
        let Some(rest) = &mut self.rest else { return Ok(None) };
        loop {
            let Some(entry) = rest.next_entry()? else { return Ok(None) };
            // The manager's messages are read again from the newest: skip
            // to where the native read came.
            if self.resume.read.is_none() && self.last.is_some_and(|last| !entry.place.is_before(&last)) {
                continue;
            }
            return Ok(Some(entry));
        }
    }

    fn take_stop(&mut self) -> StopOnDrop {
        let stops = Stops(Arc::new(Mutex::new(Some(Vec::new()))));
        if let Some(native) = &mut self.native {
            stops.add(native.take_stop());
        }
        self.stops = Some(stops.clone());
        Box::new(StopsHandle(stops))
    }
}

/// A native text read that goes on through journalctl if it breaks.
struct ResumingText {
    text: Text,
    unit: UnitName,
    since: u64,
    until: u64,
    journalctl: Journalctl,
    rest: Option<(Entries, Vec<u8>, usize)>,
}

impl ResumingText {
    fn refill_rest(&mut self) -> io::Result<()> {
        let Some((entries, buf, pos)) = &mut self.rest else { return Ok(()) };
        if *pos < buf.len() {
            return Ok(());
        }
        buf.clear();
        *pos = 0;
        while buf.len() < Text::FILL {
            match entries.next_entry()? {
                Some(entry) if entry.realtime <= self.until => {
                    buf.extend_from_slice(entry.message.as_bytes());
                    buf.push(b'\n');
                }
                _ => break,
            }
        }
        Ok(())
    }
}

impl Read for ResumingText {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        crate::journal::read_through_buffer(self, out)
    }
}

impl BufRead for ResumingText {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.rest.is_none() {
            match self.text.fill_buf() {
                Ok(_) => return self.text.fill_buf(),
                Err(e) => {
                    falls_back(&self.unit, &e);
                    // After the last line given, or from the start.
                    let after = self.text.last_cursor();
                    let seek = after.as_ref().map_or(Seek::Since(self.since), Seek::After);
                    let read = EntryRead { unit: &self.unit, seek, backward: false, follow: false, manager: false };
                    let entries = self.journalctl.unit_entries(read, crate::systemd::run::STREAM_TIMEOUT)?;
                    self.rest = Some((entries, Vec::new(), 0));
                }
            }
        }
        self.refill_rest()?;
        match &self.rest {
            Some((_, buf, pos)) => Ok(&buf[*pos..]),
            None => Ok(&[]),
        }
    }

    fn consume(&mut self, n: usize) {
        match &mut self.rest {
            Some((_, buf, pos)) => *pos = (*pos + n).min(buf.len()),
            None => self.text.consume(n),
        }
    }
}

/// Entries given in advance, for tests.
#[cfg(test)]
pub struct Listed(pub std::collections::VecDeque<Entry>);

#[cfg(test)]
impl EntryStream for Listed {
    fn next_entry(&mut self) -> io::Result<Option<Entry>> {
        Ok(self.0.pop_front())
    }
}
