//! Where a run's entries come from: one small interface, so that another
//! source (the journal files read in-process) can stand beside journalctl
//! without touching the readers or the routes.
#![forbid(unsafe_code)]

use std::io::{self, BufRead};
use std::sync::Arc;
use std::time::Duration;

use crate::names::{Cursor, UnitName};
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

/// Entries given in advance, for tests.
#[cfg(test)]
pub struct Listed(pub std::collections::VecDeque<Entry>);

#[cfg(test)]
impl EntryStream for Listed {
    fn next_entry(&mut self) -> io::Result<Option<Entry>> {
        Ok(self.0.pop_front())
    }
}
