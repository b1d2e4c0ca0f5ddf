//! All of the journal: where a unit's entries come from, one interface
//! over two readers. The run model (`runs`) sees only [`JournalSource`],
//! [`Entries`], [`Messages`] and [`Entry`]; which reader answers is picked
//! once per process, by [`system`].
//!
//! - `native/`: journald's files read in-process (the default);
//! - `journalctl.rs`: `journalctl -o export`, a child per read;
//! - `fallback.rs`: the first with the second behind it, and the hand-over;
//! - `export.rs`, `entry.rs`: the entry as both readers give it;
//! - `streams.rs`: journald's stdout streams, to know a run's lines are in.
#![forbid(unsafe_code)]

pub mod entry;
pub mod export;
mod fallback;
pub mod journalctl;
pub mod native;
pub mod streams;

use std::io::{self, BufRead};
use std::sync::Arc;
use std::time::Duration;

use crate::names::UnitName;
use crate::systemd::argv::{EntryRead, JournalReader, Tools};
use crate::systemd::run::{Runner, StopOnDrop};

pub use entry::{message_ids, Entry, WriterId};
pub use fallback::NativeFirst;
pub use journalctl::Journalctl;
pub use native::Native;

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
    /// Whether the journal can be read now, and what reads it, in a line
    /// (`check` and `/healthz` print it); the reason, if not, is for the
    /// log.
    fn probe(&self) -> io::Result<String>;
}

/// Lines of text, as a source yields them; dropping it ends the read.
pub type Messages = Box<dyn BufRead + Send>;

/// The journal as `tools` say to read it: its files in-process with
/// journalctl behind them, or journalctl alone (`--journal-reader
/// journalctl`). The one place that picks.
pub fn system(tools: &Tools, runner: &Arc<dyn Runner>) -> Arc<dyn JournalSource> {
    let journalctl = Journalctl { runner: Arc::clone(runner), tools: tools.clone() };
    match tools.journal_reader {
        JournalReader::Native => Arc::new(NativeFirst { native: Native::system(), journalctl }),
        JournalReader::Journalctl => Arc::new(journalctl),
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
