//! The journal read through `journalctl -o export`, one child per read:
//! the reader behind the in-process one, and the only one where the
//! operator turns that off (`--journal-reader journalctl`).
#![forbid(unsafe_code)]

use std::io::{self, BufRead};
use std::sync::Arc;
use std::time::Duration;

use super::entry::{self, Entry};
use super::export::{self, RawEntry};
use super::{Entries, EntryStream, JournalSource, Messages};
use crate::names::{Cursor, UnitName};
use crate::systemd::argv::{Call, EntryRead, Seek, Tools};
use crate::systemd::run::{Held, Runner, StopOnDrop};

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

    fn probe(&self) -> io::Result<String> {
        let out = self.runner.call(&Call::JournalProbe.argv(&self.tools))?;
        if out.success {
            return Ok("journal read through journalctl".into());
        }
        let why = format!("journalctl failed: {}", String::from_utf8_lossy(&out.stderr).trim());
        Err(io::Error::other(why))
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
            let Some(entry) = entry::journal_entry(&self.unit, &self.raw) else { continue };
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
