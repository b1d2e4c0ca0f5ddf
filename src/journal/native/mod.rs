//! The journal read in-process, from journald's files: the first source of
//! a unit's entries, with `journalctl` behind it (`fallback.rs`), for jobgate's
//! reads only (a unit's own lines and the manager's messages about it).
//! std only, `pread`, no mmap, no unsafe. What it does not understand is an
//! error, and the caller reads through journalctl instead; it never guesses.
#![forbid(unsafe_code)]

pub mod decompress;
mod file;
pub mod hash;
mod read;

use std::collections::HashSet;
use std::io::{self, BufRead, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering as Atomic};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::entry::{self, Entry};
use super::export::RawEntry;
use super::{Entries, EntryStream, JournalSource, Messages};
use crate::names::{Cursor, Place, UnitName};
use crate::systemd::argv::{self, EntryRead, Seek};
use crate::systemd::run::{StopOnDrop, STREAM_TIMEOUT};

use file::JournalFile;
pub use file::Location;
use read::{order, FileRead, Item, Start, Term};

/// How often a live read looks for new entries: journald makes them
/// visible at once, while its own wake-ups come every 250 ms at best.
const POLL: Duration = Duration::from_millis(10);
/// How often a live read looks for new files (journald rotated).
const RESCAN: Duration = Duration::from_millis(250);
/// Where journald keeps its files: volatile, then persistent.
const JOURNAL_ROOTS: [&str; 2] = ["/run/log/journal", "/var/log/journal"];

/// The journal files read in-process.
#[derive(Clone, Debug)]
pub struct Native {
    dirs: Option<Vec<PathBuf>>,
}

impl Native {
    /// This machine's journal, as journalctl reads it by default: the
    /// files of its machine id under /run/log/journal and /var/log/journal.
    pub fn system() -> Native {
        Native { dirs: None }
    }

    /// The journal files (`*.journal`, `*.journal~`) in these directories,
    /// whatever machine wrote them, as `journalctl --directory` reads them.
    pub fn from_dirs(dirs: Vec<PathBuf>) -> Native {
        Native { dirs: Some(dirs) }
    }

    fn dirs(&self) -> io::Result<Vec<PathBuf>> {
        if let Some(dirs) = &self.dirs {
            return Ok(dirs.clone());
        }
        let machine = std::fs::read_to_string("/etc/machine-id")?;
        let machine = machine.trim();
        if machine.len() != 32 || !machine.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "/etc/machine-id is not a machine id"));
        }
        Ok(JOURNAL_ROOTS.iter().map(|root| Path::new(root).join(machine)).collect())
    }

    fn reading(
        &self,
        terms: Vec<Term>,
        start: Start,
        backward: bool,
        follow: bool,
        timeout: Duration,
    ) -> io::Result<Reading> {
        let mut reading = Reading {
            files: Vec::new(),
            seen_paths: HashSet::new(),
            seen_ids: HashSet::new(),
            dirs: self.dirs()?,
            terms,
            start,
            backward,
            follow,
            last: None,
            stop: Arc::new(AtomicBool::new(false)),
            deadline: Instant::now() + timeout,
            scanned: Instant::now(),
            taken: 0,
            denied: 0,
        };
        reading.scan()?;
        // journalctl too fails where it may open none of the files.
        if reading.files.is_empty() && reading.denied > 0 {
            let why = format!("none of the {} journal files may be read by this user", reading.denied);
            return Err(io::Error::new(io::ErrorKind::PermissionDenied, why));
        }
        Ok(reading)
    }

    /// How many of the journal's files open in-process with a format this
    /// reader knows; an error where none does.
    pub fn open_files(&self) -> io::Result<usize> {
        let reading = self.reading(Vec::new(), Start::Edge, false, false, STREAM_TIMEOUT)?;
        match reading.files.len() {
            0 => Err(io::Error::new(io::ErrorKind::NotFound, "no journal file could be opened")),
            n => Ok(n),
        }
    }
}

fn own_lines(unit: &UnitName) -> Term {
    Term { payload: format!("_SYSTEMD_UNIT={}", unit.as_str()).into_bytes(), from_manager: false }
}

fn manager_messages(unit: &UnitName) -> Term {
    Term { payload: format!("UNIT={}", unit.as_str()).into_bytes(), from_manager: true }
}

impl JournalSource for Native {
    fn manager_events(&self, unit: &UnitName) -> io::Result<Entries> {
        Ok(Box::new(self.events(unit)?))
    }

    fn unit_entries(&self, read: EntryRead<'_>, timeout: Duration) -> io::Result<Entries> {
        Ok(Box::new(self.entries(read, timeout)?))
    }

    fn unit_messages(&self, unit: &UnitName, since: u64, until: u64) -> io::Result<Messages> {
        Ok(Box::new(self.text(unit, since, until)?))
    }

    fn probe(&self) -> io::Result<String> {
        Ok(format!("journal read in-process from its files ({} open)", self.open_files()?))
    }
}

impl Native {
    /// As [`JournalSource::manager_events`].
    pub fn events(&self, unit: &UnitName) -> io::Result<NativeEntries> {
        let reading = self.reading(vec![manager_messages(unit)], Start::Edge, true, false, STREAM_TIMEOUT)?;
        Ok(NativeEntries::new(reading, unit, argv::MANAGER_FIELDS))
    }

    /// As [`JournalSource::unit_entries`].
    pub fn entries(&self, read: EntryRead<'_>, timeout: Duration) -> io::Result<NativeEntries> {
        let mut terms = vec![own_lines(read.unit)];
        if read.manager {
            terms.push(manager_messages(read.unit));
        }
        let start = match read.seek {
            Seek::Edge => Start::Edge,
            Seek::Since(us) => Start::Since(us),
            Seek::After(cursor) => Start::After(parse_cursor(cursor)?),
        };
        let fields = if read.manager { argv::ENTRY_FIELDS } else { argv::LINE_FIELDS };
        let reading = self.reading(terms, start, read.backward, read.follow, timeout)?;
        Ok(NativeEntries::new(reading, read.unit, fields))
    }

    /// The text of the unit's own lines from `since` to `until`, as
    /// [`JournalSource::unit_messages`], with the place it has come to.
    pub fn text(&self, unit: &UnitName, since: u64, until: u64) -> io::Result<Text> {
        let reading = self.reading(vec![own_lines(unit)], Start::Since(since), false, false, STREAM_TIMEOUT)?;
        Ok(Text {
            reading,
            until,
            buf: Vec::new(),
            pos: 0,
            done: false,
            payload: Vec::new(),
            given: None,
            broken: None,
        })
    }
}

/// The cursor of the entry at `at`, where a read through journalctl would
/// go on from.
fn cursor_of(at: &Location) -> Option<Cursor> {
    Cursor::parse(&format_cursor(at))
}

/// A cursor in journalctl's form, as jobgate hands them out.
pub fn format_cursor(at: &Location) -> String {
    let mut cursor = String::with_capacity(128);
    cursor.push_str("s=");
    push_id(&mut cursor, &at.seqnum_id);
    cursor.push_str(";i=");
    push_hex(&mut cursor, at.seqnum);
    cursor.push_str(";b=");
    push_id(&mut cursor, &at.boot_id);
    cursor.push_str(";m=");
    push_hex(&mut cursor, at.monotonic);
    cursor.push_str(";t=");
    push_hex(&mut cursor, at.realtime);
    cursor.push_str(";x=");
    push_hex(&mut cursor, at.xor_hash);
    cursor
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn push_id(out: &mut String, id: &[u8; 16]) {
    for byte in id {
        out.push(HEX[usize::from(byte >> 4)] as char);
        out.push(HEX[usize::from(byte & 15)] as char);
    }
}

/// `n` in lowercase hex without leading zeros, as `%llx` prints it.
fn push_hex(out: &mut String, n: u64) {
    let digits = (64 - n.leading_zeros()).div_ceil(4).max(1);
    for shift in (0..digits).rev() {
        out.push(HEX[((n >> (shift * 4)) & 15) as usize] as char);
    }
}

/// A cursor of journalctl's full form; any other (journalctl takes some
/// with fields left out) is `Unsupported`, for journalctl to read.
pub fn parse_cursor(cursor: &Cursor) -> io::Result<Location> {
    let unsupported = || io::Error::new(io::ErrorKind::Unsupported, "a cursor not of journalctl's full form");
    let mut at = Location::default();
    let mut seen = 0u8;
    for part in cursor.as_str().split(';') {
        let (key, value) = part.split_once('=').ok_or_else(unsupported)?;
        let number = || u64::from_str_radix(value, 16).ok().filter(|_| value.len() <= 16).ok_or_else(unsupported);
        let (bit, ()) = match key {
            "s" => (1, at.seqnum_id = parse_id(value).ok_or_else(unsupported)?),
            "i" => (2, at.seqnum = number()?),
            "b" => (4, at.boot_id = parse_id(value).ok_or_else(unsupported)?),
            "m" => (8, at.monotonic = number()?),
            "t" => (16, at.realtime = number()?),
            "x" => (32, at.xor_hash = number()?),
            _ => return Err(unsupported()),
        };
        if seen & bit != 0 {
            return Err(unsupported());
        }
        seen |= bit;
    }
    if seen != 63 {
        return Err(unsupported());
    }
    Ok(at)
}

fn parse_id(hex: &str) -> Option<[u8; 16]> {
    if hex.len() != 32 {
        return None;
    }
    let mut id = [0u8; 16];
    for (i, byte) in id.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(id)
}

/// A read across the journal's files, entry by entry in journalctl's order.
struct Reading {
    files: Vec<FileRead>,
    /// Files looked at, by name and inode.
    seen_paths: HashSet<(PathBuf, u64)>,
    seen_ids: HashSet<[u8; 16]>,
    dirs: Vec<PathBuf>,
    terms: Vec<Term>,
    start: Start,
    backward: bool,
    follow: bool,
    /// The last entry handed out: the next must come after it.
    last: Option<Location>,
    stop: Arc<AtomicBool>,
    deadline: Instant,
    scanned: Instant,
    taken: u64,
    /// Files this user may not read.
    denied: usize,
}

impl Reading {
    /// Opens the files not yet read (journald may have made new ones).
    fn scan(&mut self) -> io::Result<()> {
        self.scanned = Instant::now();
        for path in journal_paths(&self.dirs)? {
            // A path seen before may hold a new file: journald renames the
            // file it rotates and makes a new one by the old name.
            let inode = match std::fs::metadata(&path) {
                Ok(meta) => std::os::unix::fs::MetadataExt::ino(&meta),
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            if !self.seen_paths.insert((path.clone(), inode)) {
                continue;
            }
            let file = match JournalFile::open(&path) {
                Ok(file) => file,
                // Gone since listed, or not ours to read (journalctl skips
                // those too); a file just created has no header yet.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                    self.denied += 1;
                    continue;
                }
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                    self.seen_paths.remove(&(path, inode));
                    continue;
                }
                Err(e) => return Err(e),
            };
            // A file renamed by rotation is the same file.
            if !self.seen_ids.insert(file.file_id) {
                continue;
            }
            let mut file = FileRead::new(file, &self.terms, self.start, self.backward)?;
            if file.head.is_none() {
                // Nothing of the unit here (yet): keep no windows of it.
                file.file.release();
            }
            self.files.push(file);
        }
        Ok(())
    }

    /// Whether the read is to end: stopped, or (looked at every 256
    /// entries) past its time. A read that is not live and runs out of time
    /// is cut short: an error, as a journalctl killed at its time limit.
    fn ended(&mut self) -> io::Result<bool> {
        self.taken += 1;
        if self.stop.load(Atomic::Relaxed) {
            return Ok(true);
        }
        if !self.taken.is_multiple_of(256) || Instant::now() < self.deadline {
            return Ok(false);
        }
        match self.follow {
            true => Ok(true),
            false => Err(io::Error::new(io::ErrorKind::TimedOut, "journal read past its time limit")),
        }
    }

    /// The next entry: which file (its items are that file's
    /// `taken_items`), and where it stands.
    fn next(&mut self) -> io::Result<Option<(usize, Location)>> {
        loop {
            if self.ended()? {
                return Ok(None);
            }
            let Some((index, location)) = self.nearest() else {
                if !self.follow || !self.wait()? {
                    return Ok(None);
                }
                continue;
            };
            let read = &mut self.files[index];
            read.take_head(&self.terms, self.backward)?;
            if read.head.is_none() && !self.follow {
                read.file.release();
            }
            // An entry in two files (copied) is handed out once.
            let wanted = if self.backward { std::cmp::Ordering::Less } else { std::cmp::Ordering::Greater };
            if self.last.is_some_and(|last| order(&location, &last) != wanted) {
                continue;
            }
            if let (true, Start::Since(us)) = (self.backward, self.start) {
                if location.realtime < us {
                    return Ok(None);
                }
            }
            self.last = Some(location);
            return Ok(Some((index, location)));
        }
    }

    /// The file whose next entry comes first in the read's direction, and
    /// where that entry stands.
    fn nearest(&self) -> Option<(usize, Location)> {
        let heads = self.files.iter().enumerate().filter_map(|(i, f)| f.head.map(|(_, at)| (i, at)));
        if self.backward {
            heads.max_by(|a, b| order(&a.1, &b.1))
        } else {
            heads.min_by(|a, b| order(&a.1, &b.1))
        }
    }

    /// Waits for new entries of a live read: false when the read is to end.
    fn wait(&mut self) -> io::Result<bool> {
        loop {
            if self.stop.load(Atomic::Relaxed) || Instant::now() >= self.deadline {
                return Ok(false);
            }
            std::thread::sleep(POLL);
            let mut found = false;
            for read in &mut self.files {
                found |= read.refresh(&self.terms)?;
            }
            if self.scanned.elapsed() >= RESCAN {
                let known = self.files.len();
                self.scan()?;
                found |= self.files[known..].iter().any(|f| f.head.is_some());
            }
            if found {
                return Ok(true);
            }
        }
    }
}

/// The files journalctl would read in these directories, in name order.
fn journal_paths(dirs: &[PathBuf]) -> io::Result<Vec<PathBuf>> {
    let mut paths = Vec::new();
    for dir in dirs {
        let listing = match std::fs::read_dir(dir) {
            Ok(listing) => listing,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for entry in listing {
            let path = entry?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            if name.ends_with(".journal") || name.ends_with(".journal~") {
                paths.push(path);
            }
        }
    }
    paths.sort();
    Ok(paths)
}

/// Ends a read when dropped.
struct StopFlag(Arc<AtomicBool>);

impl Drop for StopFlag {
    fn drop(&mut self) {
        self.0.store(true, Atomic::Relaxed);
    }
}

/// A unit's entries read from the files, each as journalctl's export of
/// the same fields would give it, read by the same function.
pub struct NativeEntries {
    reading: Reading,
    unit: String,
    wanted: &'static [&'static str],
    raw: RawEntry,
    payload: Vec<u8>,
    /// The last entry given (or passed over): a read that breaks goes on
    /// after it.
    given: Option<Location>,
}

impl NativeEntries {
    fn new(reading: Reading, unit: &UnitName, wanted: &'static [&'static str]) -> NativeEntries {
        let unit = unit.as_str().to_string();
        let raw = RawEntry::default();
        NativeEntries { reading, unit, wanted, raw, payload: Vec::new(), given: None }
    }

    /// The cursor of the last entry given, where a read through journalctl
    /// would go on from.
    pub fn last_cursor(&self) -> Option<Cursor> {
        self.given.as_ref().and_then(cursor_of)
    }

    /// The entry's cursor and the fields that the read wants into `raw`, as
    /// journalctl exports them (its time is given to the parser with its
    /// place); false for an entry too large to keep.
    fn fill(&mut self, index: usize, at: &Location) -> io::Result<bool> {
        self.raw.clear();
        self.raw.push(b"__CURSOR", format_cursor(at).as_bytes());
        let FileRead { file, cache, taken_items, .. } = &mut self.reading.files[index];
        for &data in taken_items.iter() {
            match read::item(file, cache, data, self.wanted, &mut self.payload)? {
                Item::Wanted(name, value) => self.raw.push(name, value),
                Item::Unwanted => continue,
                Item::TooLong => return Ok(false),
            }
            if !self.raw.fits() {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

impl EntryStream for NativeEntries {
    fn next_entry(&mut self) -> io::Result<Option<Entry>> {
        while let Some((index, at)) = self.reading.next()? {
            let kept = self.fill(index, &at)?;
            self.given = Some(at);
            if !kept {
                continue;
            }
            let place = Place { sequence: u128::from_be_bytes(at.seqnum_id), number: at.seqnum, realtime: at.realtime };
            if let Some(entry) = entry::journal_entry_placed(&self.unit, &self.raw, Some(place)) {
                return Ok(Some(entry));
            }
        }
        Ok(None)
    }

    fn take_stop(&mut self) -> StopOnDrop {
        Box::new(StopFlag(Arc::clone(&self.reading.stop)))
    }
}

/// The text of a unit's own lines, each message and a newline, as
/// `journalctl -o cat` prints them.
pub struct Text {
    reading: Reading,
    until: u64,
    buf: Vec<u8>,
    pos: usize,
    done: bool,
    payload: Vec<u8>,
    given: Option<Location>,
    broken: Option<io::Error>,
}

impl Text {
    pub const FILL: usize = 64 << 10;

    /// The cursor of the last entry whose text was given.
    pub fn last_cursor(&self) -> Option<Cursor> {
        self.given.as_ref().and_then(cursor_of)
    }

    /// Reads the next lines into the buffer. An error after some lines
    /// waits until they are taken, so that a read that goes on elsewhere
    /// from the last cursor loses none.
    fn refill(&mut self) -> io::Result<()> {
        if let Some(e) = self.broken.take() {
            return Err(e);
        }
        self.buf.clear();
        self.pos = 0;
        match self.read_lines() {
            Err(e) if !self.buf.is_empty() => {
                self.broken = Some(e);
                Ok(())
            }
            other => other,
        }
    }

    fn read_lines(&mut self) -> io::Result<()> {
        while self.buf.len() < Self::FILL {
            let Some((index, at)) = self.reading.next()? else {
                self.done = true;
                return Ok(());
            };
            if at.realtime > self.until {
                self.done = true;
                return Ok(());
            }
            // The first of its messages that is not too long.
            let FileRead { file, cache, taken_items, .. } = &mut self.reading.files[index];
            for &data in taken_items.iter() {
                if let Item::Wanted(_, message) = read::item(file, cache, data, &["MESSAGE"], &mut self.payload)? {
                    self.buf.extend_from_slice(message);
                    self.buf.push(b'\n');
                    break;
                }
            }
            self.given = Some(at);
        }
        Ok(())
    }
}

impl Read for Text {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        read_through_buffer(self, out)
    }
}

/// `Read::read` of a reader that fills a buffer of its own.
pub fn read_through_buffer(reader: &mut impl BufRead, out: &mut [u8]) -> io::Result<usize> {
    let available = reader.fill_buf()?;
    let n = available.len().min(out.len());
    out[..n].copy_from_slice(&available[..n]);
    reader.consume(n);
    Ok(n)
}

impl BufRead for Text {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.pos >= self.buf.len() && (!self.done || self.broken.is_some()) {
            self.refill()?;
        }
        Ok(&self.buf[self.pos..])
    }

    fn consume(&mut self, n: usize) {
        self.pos = (self.pos + n).min(self.buf.len());
    }
}

#[cfg(test)]
mod tests;
