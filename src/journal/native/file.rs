//! One journal file, read with `pread` into a few small windows: no mmap
//! (a file cut short under a mapping kills the reader with SIGBUS), no
//! unsafe. Every offset, size, type and alignment is checked before use;
//! anything unexpected is an error, never a guess. Layout after systemd's
//! docs/JOURNAL_FILE_FORMAT.md.
#![forbid(unsafe_code)]

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::decompress::{self, Compression};
use super::hash;

const SIGNATURE: &[u8; 8] = b"LPKSHHRH";
/// The header fields read here end with `tail_entry_monotonic` (208 bytes,
/// present in every file since systemd 187).
const MIN_HEADER: u64 = 208;

const INCOMPAT_COMPRESSED_XZ: u32 = 1;
const INCOMPAT_COMPRESSED_LZ4: u32 = 2;
const INCOMPAT_KEYED_HASH: u32 = 4;
const INCOMPAT_COMPRESSED_ZSTD: u32 = 8;
const INCOMPAT_COMPACT: u32 = 16;
/// A file with any other incompatible flag is not read (the format's rule).
const INCOMPAT_KNOWN: u32 = INCOMPAT_COMPRESSED_XZ
    | INCOMPAT_COMPRESSED_LZ4
    | INCOMPAT_KEYED_HASH
    | INCOMPAT_COMPRESSED_ZSTD
    | INCOMPAT_COMPACT;

const STATE_ONLINE: u8 = 1;
const STATE_ARCHIVED: u8 = 2;

const OBJECT_DATA: u8 = 1;
const OBJECT_ENTRY: u8 = 3;
const OBJECT_ENTRY_ARRAY: u8 = 6;
const OBJECT_HEADER: u64 = 16;
const ENTRY_HEADER: u64 = 64;
const ENTRY_ARRAY_HEADER: u64 = 24;

/// Largest object read: a DATA object holds one field of one entry, and
/// jobgate keeps no entry over 1 MiB (`export::MAX_ENTRY_BYTES`).
pub const MAX_OBJECT: u64 = 8 << 20;
/// Most items an entry may have (journald's own limit is lower).
const MAX_ITEMS: u64 = 1 << 16;
/// Most links followed in one hash chain or entry-array chain before the
/// file is taken for damaged (a loop).
const MAX_CHAIN: u64 = 1 << 20;

/// Most bytes one read from a window takes. Objects are small and near
/// each other, and larger payloads are read on their own.
const WINDOW: u64 = 32 << 10;
/// What a window reads in beyond the bytes asked for: a read far from the
/// last one (a hash bucket, a DATA object, a step of a bisection) reads a
/// little, and each read that goes on where the last ended, forward or
/// backward, reads twice as much as the one before, up to `FILL_MAX`. A
/// window's memory is zeroed before its first read, and every byte read is
/// copied: reading no more than is used is most of the speed.
const FILL_MIN: u64 = 8 << 10;
const FILL_MAX: u64 = 64 << 10;
/// Windows kept per file: at most 3 MiB.
const WINDOWS: usize = 32;

pub(super) fn damaged(what: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("journal file damaged: {what}"))
}

fn le64(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(word)
}

fn le32(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0u8; 4];
    word.copy_from_slice(&bytes[at..at + 4]);
    u64::from(u32::from_le_bytes(word))
}

fn id128(bytes: &[u8], at: usize) -> [u8; 16] {
    let mut id = [0u8; 16];
    id.copy_from_slice(&bytes[at..at + 16]);
    id
}

/// What a file's bytes are read from: the journal file, or (in tests)
/// bytes in memory.
trait FileBytes {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
    /// The file's length now.
    fn length(&self) -> io::Result<u64>;
}

impl FileBytes for File {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        FileExt::read_exact_at(self, buf, offset)
    }

    fn length(&self) -> io::Result<u64> {
        Ok(self.metadata()?.len())
    }
}

/// Reads of one file through a few reused windows.
struct Windows<F: FileBytes = File> {
    file: F,
    /// The file's length, as last seen.
    limit: u64,
    /// Each window's first offset (`u64::MAX`: holds nothing) and bytes.
    windows: Vec<(u64, Vec<u8>)>,
    /// The window to fill next, once all are in use.
    next: usize,
    /// The window read from last.
    last: usize,
    /// The bytes the last read into a window took, and how much it read
    /// beyond those asked for.
    filled: (u64, u64),
    fill: u64,
}

impl<F: FileBytes> Windows<F> {
    fn new(file: F, len: u64) -> Windows<F> {
        Windows { file, limit: len, windows: Vec::new(), next: 0, last: 0, filled: (0, 0), fill: 0 }
    }

    /// `len` bytes at `offset`, from a window (read in if needed).
    fn bytes(&mut self, offset: u64, len: u64) -> io::Result<&[u8]> {
        let end = self.check_range(offset, len, WINDOW)?;
        let fits = |start: u64, buf: &Vec<u8>| start <= offset && end - start <= buf.len() as u64;
        // Reads come mostly in runs from one window: that one first.
        let last = self.windows.get(self.last).filter(|(start, buf)| fits(*start, buf)).map(|_| self.last);
        let hit = last.or_else(|| self.windows.iter().position(|(start, buf)| fits(*start, buf)));
        let index = match hit {
            Some(index) => index,
            None => self.fill(offset, end)?,
        };
        self.last = index;
        let (start, buf) = &self.windows[index];
        if !fits(*start, buf) {
            // The file is shorter than it was (journald cut it as it
            // archived it), and these bytes are gone.
            return Err(damaged(format_args!("{len} bytes at {offset} past the end")));
        }
        Ok(&buf[(offset - start) as usize..(end - start) as usize])
    }

    /// The end of `len` bytes at `offset`, if they are in the file. The
    /// file may have grown since its length was taken (journald writes to
    /// it): its length is taken again before anything is refused.
    fn check_range(&mut self, offset: u64, len: u64, max: u64) -> io::Result<u64> {
        let end = offset.checked_add(len).filter(|_| len <= max);
        let Some(end) = end else { return Err(damaged(format_args!("{len} bytes at {offset}"))) };
        if end > self.limit {
            self.limit = self.file.length()?;
        }
        if end > self.limit {
            return Err(damaged(format_args!("{len} bytes at {offset} past the end")));
        }
        Ok(end)
    }

    /// Reads the bytes from `offset` to `end` into a window, with more
    /// around them (see [`FILL_MIN`]); the window's index.
    fn fill(&mut self, offset: u64, end: u64) -> io::Result<usize> {
        let (last_start, last_end) = self.filled;
        let forward = offset >= last_start && end > last_end && offset <= last_end.saturating_add(self.fill);
        let backward = end <= last_end && offset < last_start && end.saturating_add(self.fill) >= last_start;
        self.fill = if forward || backward { (self.fill * 2).clamp(FILL_MIN, FILL_MAX) } else { FILL_MIN };
        let (start, stop) = match backward {
            // A page past the bytes asked for: an object's header is read
            // first, and the rest of it next.
            true => {
                let stop = (end.next_multiple_of(4096) + 4096).min(self.limit);
                (stop.saturating_sub(self.fill).min(offset) & !4095, stop)
            }
            false => (offset & !4095, end),
        };
        let len = (stop - start).max(self.fill).min(self.limit - start) as usize;
        let index = if self.windows.len() < WINDOWS {
            self.windows.push((start, Vec::new()));
            self.windows.len() - 1
        } else {
            let index = self.next;
            self.next = (index + 1) % WINDOWS;
            index
        };
        let (at, buf) = &mut self.windows[index];
        buf.resize(len, 0);
        *at = u64::MAX; // not valid until read in whole
        if let Err(e) = self.file.read_exact_at(buf, start) {
            if e.kind() != io::ErrorKind::UnexpectedEof {
                return Err(e);
            }
            // journald cuts a file to its used size as it archives it.
            self.limit = self.file.length()?;
            buf.truncate(self.limit.saturating_sub(start).min(len as u64) as usize);
            self.file.read_exact_at(buf, start)?;
        }
        *at = start;
        self.filled = (start, start + buf.len() as u64);
        Ok(index)
    }

    /// Reads `len` bytes at `offset` into `out` (for payloads of any size).
    fn read_into(&mut self, offset: u64, len: u64, out: &mut Vec<u8>) -> io::Result<()> {
        if len <= WINDOW {
            let bytes = self.bytes(offset, len)?;
            out.clear();
            out.extend_from_slice(bytes);
            return Ok(());
        }
        self.check_range(offset, len, MAX_OBJECT)?;
        out.resize(len as usize, 0);
        self.file.read_exact_at(out, offset).map_err(|e| match e.kind() {
            io::ErrorKind::UnexpectedEof => damaged(format_args!("{len} bytes at {offset} past the end")),
            _ => e,
        })
    }

    fn u64(&mut self, offset: u64) -> io::Result<u64> {
        Ok(le64(self.bytes(offset, 8)?, 0))
    }

    /// Drops what the windows hold, keeping their memory for the next
    /// reads (a fresh buffer would be zeroed first).
    fn forget(&mut self) {
        for (start, _) in &mut self.windows {
            *start = u64::MAX;
        }
    }
}

/// What an entry object says of itself: where it stands in the journal.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Location {
    pub seqnum_id: [u8; 16],
    pub seqnum: u64,
    pub boot_id: [u8; 16],
    pub monotonic: u64,
    pub realtime: u64,
    pub xor_hash: u64,
}

/// The header fields that change as journald writes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Live {
    online: bool,
    /// Closed by journald for good: it never changes again.
    archived: bool,
    n_entries: u64,
    tail_seqnum: u64,
}

fn read_live(header: &[u8]) -> Live {
    Live {
        online: header[16] == STATE_ONLINE,
        archived: header[16] == STATE_ARCHIVED,
        n_entries: le64(header, 152),
        tail_seqnum: le64(header, 160),
    }
}

/// One open journal file.
pub struct JournalFile {
    pub file_id: [u8; 16],
    pub seqnum_id: [u8; 16],
    compact: bool,
    keyed: bool,
    data_hash_table: (u64, u64),
    header_size: u64,
    live: Live,
    windows: Windows,
    /// A compressed payload as read, before it is decompressed.
    packed: Vec<u8>,
}

impl JournalFile {
    /// Opens a journal file and checks its header. A file with an unknown
    /// incompatible flag is an error of kind `Unsupported`.
    pub fn open(path: &Path) -> io::Result<JournalFile> {
        let file = File::open(path)?;
        let len = file.metadata()?.len();
        if len < MIN_HEADER {
            // Just created (journald writes its header next), or cut short.
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, format!("{}: no header yet", path.display())));
        }
        let mut windows = Windows::new(file, len);
        let header = windows.bytes(0, MIN_HEADER)?.to_vec();
        if &header[..8] != SIGNATURE {
            return Err(damaged(format_args!("{} is not a journal file", path.display())));
        }
        let incompatible = le32(&header, 12) as u32;
        if incompatible & !INCOMPAT_KNOWN != 0 {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!("{}: unknown incompatible flags {incompatible:#x}", path.display()),
            ));
        }
        let header_size = le64(&header, 88);
        let data_hash_table = (le64(&header, 104), le64(&header, 112));
        if header_size < MIN_HEADER || !data_hash_table.1.is_multiple_of(16) || data_hash_table.1 == 0 {
            return Err(damaged(format_args!("{}: header sizes", path.display())));
        }
        Ok(JournalFile {
            file_id: id128(&header, 24),
            seqnum_id: id128(&header, 72),
            compact: incompatible & INCOMPAT_COMPACT != 0,
            keyed: incompatible & INCOMPAT_KEYED_HASH != 0,
            data_hash_table,
            header_size,
            live: read_live(&header),
            windows,
            packed: Vec::new(),
        })
    }

    /// Reads the header again; true if entries were added (or the file was
    /// closed) since it was last read. Windows read before are dropped then,
    /// since the links in them may have changed.
    pub fn refresh(&mut self) -> io::Result<bool> {
        if self.live.archived {
            return Ok(false);
        }
        let mut header = [0u8; MIN_HEADER as usize];
        FileBytes::read_exact_at(&self.windows.file, &mut header, 0)?;
        let live = read_live(&header);
        if live == self.live {
            return Ok(false);
        }
        self.live = live;
        self.windows.limit = self.windows.file.length()?;
        self.forget();
        Ok(true)
    }

    /// Drops what was read, so that the next reads see the file as it is.
    pub fn forget(&mut self) {
        self.windows.forget();
    }

    /// Gives back the memory of the windows (the file stays open).
    pub fn release(&mut self) {
        self.packed = Vec::new();
        self.windows.windows = Vec::new();
        self.windows.next = 0;
    }

    /// Reads an object's header: its flags and size, checked against the
    /// type expected and the file's bounds.
    fn object(&mut self, offset: u64, kind: u8, min_size: u64) -> io::Result<(u8, u64)> {
        match self.object_once(offset, kind, min_size) {
            // A window read while journald was writing there may show the
            // object not yet written: read it again before calling it damage.
            Err(_) if self.live.online => {
                self.windows.forget();
                self.object_once(offset, kind, min_size)
            }
            checked => checked,
        }
    }

    fn object_once(&mut self, offset: u64, kind: u8, min_size: u64) -> io::Result<(u8, u64)> {
        if !offset.is_multiple_of(8) || offset < self.header_size {
            return Err(damaged(format_args!("object offset {offset}")));
        }
        let head = self.windows.bytes(offset, OBJECT_HEADER)?;
        let (found, flags, size) = (head[0], head[1], le64(head, 8));
        if found != kind || size < min_size || size > MAX_OBJECT || offset.saturating_add(size) > self.windows.limit {
            return Err(damaged(format_args!("object at {offset}: type {found} size {size}, wanted type {kind}")));
        }
        Ok((flags, size))
    }

    fn data_header_size(&self) -> u64 {
        if self.compact {
            72
        } else {
            64
        }
    }

    /// The DATA object holding exactly `payload` (`FIELD=value`), if any.
    pub fn find_data(&mut self, payload: &[u8]) -> io::Result<Option<u64>> {
        let hash = self.hash(payload);
        let (table, size) = self.data_hash_table;
        let buckets = size / 16;
        let bucket = (hash % buckets).checked_mul(16).and_then(|at| at.checked_add(table));
        let Some(bucket) = bucket else { return Err(damaged("data hash table out of range")) };
        let mut offset = self.windows.u64(bucket)?;
        let mut scratch = Vec::new();
        for _ in 0..MAX_CHAIN {
            if offset == 0 {
                return Ok(None);
            }
            let (stored_hash, next) = {
                self.object(offset, OBJECT_DATA, self.data_header_size())?;
                let head = self.windows.bytes(offset, 32)?;
                (le64(head, 16), le64(head, 24))
            };
            if stored_hash == hash
                && self.data_payload(offset, MAX_OBJECT as usize, &mut scratch)?
                && scratch == payload
            {
                return Ok(Some(offset));
            }
            // journald only appends: a link back is damage (or a loop).
            if next != 0 && next <= offset {
                return Err(damaged(format_args!("hash chain at {offset} links back")));
            }
            offset = next;
        }
        Err(damaged("hash chain too long"))
    }

    fn hash(&self, payload: &[u8]) -> u64 {
        if self.keyed {
            hash::siphash24(&self.file_id, payload)
        } else {
            hash::jenkins_hash64(payload)
        }
    }

    /// Reads the payload (`FIELD=value`) of the DATA object at `offset` into
    /// `out`, decompressed, and checks it against the hash the object
    /// keeps (a changed byte is damage, not a line). False if it is longer
    /// than `max` bytes (then `out` holds nothing useful).
    pub fn data_payload(&mut self, offset: u64, max: usize, out: &mut Vec<u8>) -> io::Result<bool> {
        let header = self.data_header_size();
        let (flags, size) = self.object(offset, OBJECT_DATA, header)?;
        let stored_hash = le64(self.windows.bytes(offset, 24)?, 16);
        let stored = size - header;
        match Compression::from_flags(flags).map_err(|e| damaged(format_args!("object at {offset}: {e}")))? {
            None => {
                if stored > max as u64 {
                    return Ok(false);
                }
                self.windows.read_into(offset + header, stored, out)?;
            }
            Some(kind) => {
                // A small buffer is kept for the next: long lines are many.
                let mut packed = std::mem::take(&mut self.packed);
                self.windows.read_into(offset + header, stored, &mut packed)?;
                // Over `max` is an error too: journalctl reads such a field.
                let unpacked = decompress::decompress_into(kind, &packed, max, out);
                if packed.capacity() <= FILL_MAX as usize {
                    self.packed = packed;
                }
                unpacked.map_err(|e| damaged(format_args!("object at {offset}: {e}")))?;
            }
        }
        if self.hash(out) != stored_hash {
            return Err(damaged(format_args!("object at {offset}: its payload does not match its hash")));
        }
        Ok(true)
    }

    /// Appends to `postings` the entries linked from the DATA object at
    /// `data` that are not in it yet, oldest first.
    pub fn entries_of(&mut self, data: u64, postings: &mut Postings) -> io::Result<()> {
        self.object(data, OBJECT_DATA, self.data_header_size())?;
        let head = self.windows.bytes(data, 64)?;
        let (first, mut array, n_entries) = (le64(head, 40), le64(head, 48), le64(head, 56));
        // journald counts an entry before it links it: fewer found than
        // counted means more to read at the next look.
        postings.waiting = n_entries > 0 && first == 0;
        if n_entries == 0 || first == 0 {
            return Ok(());
        }
        if postings.offsets.is_empty() {
            postings.offsets.push(first);
        }
        // The entry array chain holds entries 2.. in order; skip those
        // already taken.
        let mut skip = postings.offsets.len() as u64 - 1;
        let item = if self.compact { 4 } else { 8 };
        let mut links = 0;
        while array != 0 && (postings.offsets.len() as u64) < n_entries {
            links += 1;
            if links > MAX_CHAIN {
                return Err(damaged("entry array chain too long"));
            }
            let (_, size) = self.object(array, OBJECT_ENTRY_ARRAY, ENTRY_ARRAY_HEADER)?;
            let count = (size - ENTRY_ARRAY_HEADER) / item;
            let next = self.windows.u64(array + 16)?;
            if next != 0 && next <= array {
                return Err(damaged(format_args!("entry array at {array} links back")));
            }
            if skip >= count {
                skip -= count;
                array = next;
                continue;
            }
            for index in skip..count {
                if postings.offsets.len() as u64 >= n_entries {
                    break;
                }
                let at = array + ENTRY_ARRAY_HEADER + index * item;
                let entry = if self.compact { le32(self.windows.bytes(at, 4)?, 0) } else { self.windows.u64(at)? };
                if entry == 0 {
                    // Not linked yet (a live file): taken on a later look.
                    postings.waiting = true;
                    return Ok(());
                }
                let last = postings.offsets.last().copied().unwrap_or(0);
                if entry <= last {
                    return Err(damaged(format_args!("entry array at {array} out of order")));
                }
                postings.offsets.push(entry);
            }
            skip = 0;
            array = next;
        }
        postings.waiting = (postings.offsets.len() as u64) < n_entries;
        Ok(())
    }

    /// Reads the entry at `offset`: where it stands, and the offsets of the
    /// DATA objects of its fields (into `items`).
    pub fn entry(&mut self, offset: u64, items: &mut Vec<u64>) -> io::Result<Location> {
        let (_, size) = self.object(offset, OBJECT_ENTRY, ENTRY_HEADER)?;
        let item = if self.compact { 4 } else { 16 };
        let count = (size - ENTRY_HEADER) / item;
        if count > MAX_ITEMS {
            return Err(damaged(format_args!("entry at {offset} with {count} items")));
        }
        let compact = self.compact;
        let bytes = self.windows.bytes(offset, ENTRY_HEADER + count * item)?;
        let location = Location {
            seqnum_id: [0; 16],
            seqnum: le64(bytes, 16),
            realtime: le64(bytes, 24),
            monotonic: le64(bytes, 32),
            boot_id: id128(bytes, 40),
            xor_hash: le64(bytes, 56),
        };
        items.clear();
        for index in 0..count as usize {
            let at = ENTRY_HEADER as usize + index * item as usize;
            items.push(if compact { le32(bytes, at) } else { le64(bytes, at) });
        }
        Ok(Location { seqnum_id: self.seqnum_id, ..location })
    }
}

/// The entries of one DATA object in one file, oldest first, as far as
/// they have been read.
#[derive(Debug, Default)]
pub struct Postings {
    pub offsets: Vec<u64>,
    /// An entry counted but not linked yet was met: there is more to read
    /// even if the header does not change again.
    pub waiting: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// A file in memory that a test may grow or cut while it is read.
    #[derive(Clone, Default)]
    struct Memory(Arc<Mutex<Vec<u8>>>);

    impl FileBytes for Memory {
        fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
            let bytes = self.0.lock().map_err(|_| io::Error::other("poisoned"))?;
            let end = offset as usize + buf.len();
            let part = bytes.get(offset as usize..end).ok_or(io::ErrorKind::UnexpectedEof)?;
            buf.copy_from_slice(part);
            Ok(())
        }

        fn length(&self) -> io::Result<u64> {
            Ok(self.0.lock().map_err(|_| io::Error::other("poisoned"))?.len() as u64)
        }
    }

    /// A file of `len` bytes, each its offset's low bits, and its windows.
    fn file(len: usize) -> (Memory, Windows<Memory>) {
        let memory = Memory::default();
        *memory.0.lock().expect("lock") = (0..len).map(|i| (i * 7 % 251) as u8).collect();
        (memory.clone(), Windows::new(memory, len as u64))
    }

    fn expected(offset: u64, len: u64) -> Vec<u8> {
        (offset..offset + len).map(|i| (i * 7 % 251) as u8).collect()
    }

    #[test]
    fn every_read_gives_the_files_bytes_within_bounded_memory() {
        let size = 4 << 20;
        let (_, mut windows) = file(size);
        // Forward and backward runs, jumps, and reads across window edges.
        let mut reads: Vec<(u64, u64)> = (0..400).map(|i| (i * 40, 64)).collect();
        reads.extend((0..400).rev().map(|i| (1_000_000 + i * 24, 24)));
        reads.extend((0..2000u64).map(|i| ((i * 2_654_435_761) % (size as u64 - WINDOW), 1 + i % WINDOW)));
        for (offset, len) in reads {
            assert_eq!(windows.bytes(offset, len).expect("in the file"), expected(offset, len), "{len} at {offset}");
            let held: usize = windows.windows.iter().map(|(_, buf)| buf.capacity()).sum();
            assert!(windows.windows.len() <= WINDOWS && held as u64 <= WINDOWS as u64 * (WINDOW + FILL_MAX + 8192));
        }
    }

    #[test]
    fn reads_that_go_on_read_more_each_time_up_to_the_most() {
        let (_, mut windows) = file(8 << 20);
        let mut fills = Vec::new();
        let mut offset = 0;
        for _ in 0..8 {
            // Just past what the last fill read: a window is filled again.
            offset = windows.filled.1;
            windows.bytes(offset, 16).expect("in the file");
            fills.push(windows.fill);
        }
        assert_eq!(fills, [FILL_MIN, 16 << 10, 32 << 10, FILL_MAX, FILL_MAX, FILL_MAX, FILL_MAX, FILL_MAX], "{offset}");
        windows.bytes(6 << 20, 16).expect("a jump");
        assert_eq!(windows.fill, FILL_MIN, "a jump reads little");
        let (mut start, mut backward) = (windows.filled.0, Vec::new());
        for _ in 0..4 {
            windows.bytes(start - 16, 16).expect("just before");
            backward.push(windows.fill);
            start = windows.filled.0;
        }
        assert_eq!(backward, [16 << 10, 32 << 10, FILL_MAX, FILL_MAX], "backward too");
    }

    #[test]
    fn a_file_that_grows_is_read_on_and_one_cut_short_is_an_error() {
        let (memory, mut windows) = file(10_000);
        assert!(windows.bytes(9_990, 20).is_err(), "past the end");
        memory.0.lock().expect("lock").extend((10_000..20_000u64).map(|i| (i * 7 % 251) as u8));
        assert_eq!(windows.bytes(9_990, 20).expect("grown"), expected(9_990, 20));
        windows.forget();
        memory.0.lock().expect("lock").truncate(5_000);
        let cut = windows.bytes(6_000, 16).expect_err("cut short");
        assert_eq!(cut.kind(), io::ErrorKind::InvalidData, "{cut}");
        assert_eq!(windows.bytes(100, 16).expect("still there"), expected(100, 16));
        let mut big = Vec::new();
        assert!(windows.read_into(0, MAX_OBJECT + 1, &mut big).is_err(), "over the largest object");
        assert!(windows.bytes(u64::MAX - 4, 8).is_err(), "no overflow");
    }
}
