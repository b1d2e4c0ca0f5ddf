//! One read of a unit's entries across the journal's files: in each file
//! the entries linked from the unit's DATA objects, merged across files in
//! journalctl's order, from a seek point, forward or backward, and live.
#![forbid(unsafe_code)]

use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::io;

use crate::journal::export::MAX_ENTRY_BYTES;

use super::file::{damaged, JournalFile, Location, Postings};

/// Which of a file's entries a read takes: those linked from any of the
/// terms' DATA objects (`FIELD=value`), a term marked `from_manager` only
/// where the entry also has `_PID=1`.
#[derive(Clone, Debug)]
pub struct Term {
    pub payload: Vec<u8>,
    pub from_manager: bool,
}

/// Where a read begins.
#[derive(Clone, Copy, Debug)]
pub enum Start {
    Edge,
    /// Strictly after (before, backwards) this entry.
    After(Location),
    /// At the first entry from this time on (microseconds).
    Since(u64),
}

/// journalctl's order of two entries (sd-journal's
/// `journal_file_compare_locations`): by sequence number within one
/// sequence, else by monotonic time within one boot, else by wall-clock
/// time, last by content hash.
pub fn order(a: &Location, b: &Location) -> Ordering {
    if a.seqnum_id == b.seqnum_id {
        let by_seqnum = a.seqnum.cmp(&b.seqnum);
        if by_seqnum != Ordering::Equal {
            return by_seqnum;
        }
    }
    if a.boot_id == b.boot_id {
        let by_monotonic = a.monotonic.cmp(&b.monotonic);
        if by_monotonic != Ordering::Equal {
            return by_monotonic;
        }
    }
    a.realtime.cmp(&b.realtime).then(a.xor_hash.cmp(&b.xor_hash))
}

/// One term in one file: its DATA object once found, the entries linked
/// from it, and how far the read has gone through them.
struct Match {
    data: Option<u64>,
    postings: Postings,
    /// Forward: index of the next entry. Backward: index past it.
    next: usize,
}

impl Match {
    /// The offset of the next entry in the read's direction, if any.
    fn next_offset(&self, backward: bool) -> Option<u64> {
        let at = if backward { self.next.checked_sub(1) } else { Some(self.next) };
        at.and_then(|i| self.postings.offsets.get(i)).copied()
    }
}

/// What one file contributes to a read.
pub struct FileRead {
    pub file: JournalFile,
    matches: Vec<Match>,
    pid1: Option<u64>,
    /// The file's next entry in the read's direction, read ahead.
    pub head: Option<(u64, Location)>,
    /// The sequence number of the last head.
    head_seqnum: Option<u64>,
    items: Vec<u64>,
    /// The DATA objects of the entry last taken from `head`.
    pub taken_items: Vec<u64>,
    /// What this file's DATA objects hold, as far as met.
    pub cache: FieldCache,
    /// The header changed at the last look.
    look_again: bool,
}

impl FileRead {
    /// The file's part of a read of `terms`, positioned at `start`.
    pub fn new(file: JournalFile, terms: &[Term], start: Start, backward: bool) -> io::Result<FileRead> {
        let matches = terms.iter().map(|_| Match { data: None, postings: Postings::default(), next: 0 }).collect();
        let pid1 = None;
        let mut read = FileRead {
            file,
            matches,
            pid1,
            head: None,
            head_seqnum: None,
            items: Vec::new(),
            taken_items: Vec::new(),
            cache: FieldCache::default(),
            look_again: false,
        };
        read.take_new(terms)?;
        for index in 0..read.matches.len() {
            let next = read.position(index, start, backward)?;
            read.matches[index].next = next;
            // The entry just before the start: the first one taken must
            // come after it (a damaged number shows there too).
            let before = if backward { Some(next) } else { next.checked_sub(1) };
            if let Some(&offset) = before.and_then(|i| read.matches[index].postings.offsets.get(i)) {
                let seqnum = read.file.entry(offset, &mut read.items)?.seqnum;
                let bound = read.head_seqnum.get_or_insert(seqnum);
                *bound = if backward { (*bound).min(seqnum) } else { (*bound).max(seqnum) };
            }
        }
        read.advance(terms, backward)?;
        Ok(read)
    }

    /// Reads what was added to the file's DATA objects since the last look.
    fn take_new(&mut self, terms: &[Term]) -> io::Result<()> {
        if self.pid1.is_none() && terms.iter().any(|t| t.from_manager) {
            self.pid1 = self.file.find_data(b"_PID=1")?;
        }
        for (m, term) in self.matches.iter_mut().zip(terms) {
            if m.data.is_none() {
                m.data = self.file.find_data(&term.payload)?;
            }
            if let Some(data) = m.data {
                self.file.entries_of(data, &mut m.postings)?;
            }
        }
        Ok(())
    }

    /// The index in match `index`'s entries where a read from `start` begins
    /// (forward: the first entry taken; backward: one past it). Entries of
    /// one file are in order, so this is a bisection.
    fn position(&mut self, index: usize, start: Start, backward: bool) -> io::Result<usize> {
        let len = self.matches[index].postings.offsets.len();
        let past = |file: &mut JournalFile, items: &mut Vec<u64>, offset: u64| -> io::Result<bool> {
            Ok(match start {
                Start::Since(us) => file.entry(offset, items)?.realtime >= us,
                Start::After(at) => order(&file.entry(offset, items)?, &at) == Ordering::Greater,
                Start::Edge => true,
            })
        };
        match start {
            Start::Edge => return Ok(if backward { len } else { 0 }),
            // Backward from a time: from the end, to where `Reading::next`
            // meets the time.
            Start::Since(_) if backward => return Ok(len),
            _ => {}
        }
        // The first index whose entry is past `start` (or at it, for Since).
        let (mut low, mut high) = (0, len);
        while low < high {
            let mid = low + (high - low) / 2;
            let offset = self.matches[index].postings.offsets[mid];
            if past(&mut self.file, &mut self.items, offset)? {
                high = mid;
            } else {
                low = mid + 1;
            }
        }
        let (Start::After(at), true) = (start, backward) else { return Ok(low) };
        // Backward from a cursor: the entries before it, which end at the
        // first not after it (or at it).
        let mut end = low;
        while end > 0 {
            let offset = self.matches[index].postings.offsets[end - 1];
            if order(&self.file.entry(offset, &mut self.items)?, &at) == Ordering::Less {
                break;
            }
            end -= 1;
        }
        Ok(end)
    }

    /// Takes the head entry: its items go to `taken_items`, and the next
    /// entry is read ahead.
    pub fn take_head(&mut self, terms: &[Term], backward: bool) -> io::Result<()> {
        std::mem::swap(&mut self.items, &mut self.taken_items);
        self.advance(terms, backward)
    }

    /// Reads ahead the file's next entry in the read's direction into
    /// `head`: the nearest of the matches' next entries that the read takes.
    pub fn advance(&mut self, terms: &[Term], backward: bool) -> io::Result<()> {
        self.head = None;
        loop {
            let candidates = self.matches.iter().filter_map(|m| m.next_offset(backward));
            let next = if backward { candidates.max() } else { candidates.min() };
            let Some(offset) = next else { return Ok(()) };
            // Every match at this entry moves past it; the entry is taken
            // if one of them takes it.
            let mut taken = false;
            let mut location = self.file.entry(offset, &mut self.items)?;
            // The entry must link the DATA object it was found through; one
            // that does not is read again as written now (a live file)
            // before it is called damage.
            if !self.links_its_fields(offset, backward) {
                self.file.forget();
                location = self.file.entry(offset, &mut self.items)?;
                if !self.links_its_fields(offset, backward) {
                    return Err(damaged(format_args!("entry at {offset} does not link its field")));
                }
            }
            let pid1 = self.pid1.is_some_and(|p| self.items.contains(&p));
            for (m, term) in self.matches.iter_mut().zip(terms) {
                if m.next_offset(backward) != Some(offset) {
                    continue;
                }
                m.next = if backward { m.next - 1 } else { m.next + 1 };
                taken |= !term.from_manager || pid1;
            }
            if taken {
                // Entries of one file come in the order of their numbers;
                // one that does not is damage, where journalctl would skip.
                let last = self.head_seqnum.replace(location.seqnum);
                if last.is_some_and(|last| (location.seqnum > last) == backward || location.seqnum == last) {
                    return Err(damaged(format_args!("entry at {offset} out of sequence")));
                }
                self.head = Some((offset, location));
                return Ok(());
            }
        }
    }

    /// Whether the entry at `offset`, just read into `items`, links the DATA
    /// object of every match it is the next entry of.
    fn links_its_fields(&self, offset: u64, backward: bool) -> bool {
        self.matches
            .iter()
            .all(|m| m.next_offset(backward) != Some(offset) || m.data.is_some_and(|data| self.items.contains(&data)))
    }

    /// Looks at the file again (a live read at its end): true if it has
    /// new entries for the read.
    /// Live reads go forward only.
    pub fn refresh(&mut self, terms: &[Term]) -> io::Result<bool> {
        let changed = self.file.refresh()?;
        // journald changes the header before it links an entry into the
        // fields' arrays: the look after a change looks once more.
        let again = std::mem::replace(&mut self.look_again, changed);
        if !changed {
            if !again && !self.matches.iter().any(|m| m.postings.waiting) {
                return Ok(false);
            }
            self.file.forget();
        }
        self.take_new(terms)?;
        self.advance(terms, false)?;
        Ok(self.head.is_some())
    }
}

/// What is known of a DATA object met in entries: its field's name, and
/// for a short value of a field the read wants, the value itself.
#[derive(Clone, Debug)]
pub struct Field {
    pub name: Cow<'static, [u8]>,
    pub value: Option<Box<[u8]>>,
}

/// A line's text: nearly every one is a DATA object of its own, read once,
/// so it is not kept in the cache (it would only churn it).
static MESSAGE: Field = Field { name: Cow::Borrowed(b"MESSAGE"), value: None };

/// Fields by DATA object offset, for one file; bounded in entries and in
/// bytes, since a job chooses how many distinct fields its entries link
/// (a native-protocol entry can name any number of new values).
#[derive(Default)]
pub struct FieldCache {
    fields: HashMap<u64, Field, BuildHasherDefault<OffsetHasher>>,
    /// What the fields hold, by [`FieldCache::cost`].
    bytes: usize,
}

impl FieldCache {
    /// Most fields kept: a unit's reads meet a few dozen that recur (its
    /// pid, unit, run, stream, boot); past this the cache starts again.
    const MAX: usize = 4096;
    /// Most bytes kept, counted by [`FieldCache::cost`].
    pub const MAX_BYTES: usize = 256 << 10;
    /// Values up to this length are kept; longer ones are read each time.
    pub const MAX_VALUE: usize = 256;

    fn has(&self, offset: u64) -> bool {
        self.fields.contains_key(&offset)
    }

    fn get(&self, offset: u64) -> Option<&Field> {
        self.fields.get(&offset)
    }

    /// The bytes one field holds: its slot in the map, its own name and
    /// value, and an allocation's overhead for each.
    fn cost(field: &Field) -> usize {
        let owned = |len: usize| if len > 0 { len + 16 } else { 0 };
        let name = match &field.name {
            Cow::Owned(name) => owned(name.len()),
            Cow::Borrowed(_) => 0,
        };
        std::mem::size_of::<(u64, Field)>() + 8 + name + field.value.as_ref().map_or(0, |v| owned(v.len()))
    }

    fn put(&mut self, offset: u64, field: Field) {
        let cost = Self::cost(&field);
        if self.fields.len() >= Self::MAX || self.bytes + cost > Self::MAX_BYTES {
            self.fields.clear();
            self.bytes = 0;
        }
        self.bytes += cost;
        if let Some(old) = self.fields.insert(offset, field) {
            self.bytes -= Self::cost(&old);
        }
    }
}

/// Hashes an object offset for the cache: offsets are positions in a file
/// that journald lays out, not chosen by whoever writes lines, so a
/// multiplication spreads them well enough, at a fraction of SipHash's cost
/// (a long read looks up every item of every entry).
#[derive(Default)]
pub struct OffsetHasher(u64);

impl Hasher for OffsetHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = (self.0 ^ u64::from(byte)).wrapping_mul(0x100_0000_01b3);
        }
    }

    fn write_u64(&mut self, n: u64) {
        // Offsets are multiples of 8: the high bits of the product are
        // the well-mixed ones.
        self.0 = (n ^ self.0).wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(29);
    }
}

/// What an entry's item (the DATA object at `offset`) gives a read that
/// wants the fields in `wanted`.
pub enum Item<'a> {
    /// A field of `wanted`: its name and value.
    Wanted(&'a [u8], &'a [u8]),
    /// Another field.
    Unwanted,
    /// Too long to keep ([`MAX_ENTRY_BYTES`]).
    TooLong,
}

/// The item at `offset`, from `cache` or read from `file` (a short value of
/// a wanted field is kept in `cache`), its value read into `payload` where
/// it is not kept.
pub fn item<'c>(
    file: &mut JournalFile,
    cache: &'c mut FieldCache,
    offset: u64,
    wanted: &[&str],
    payload: &'c mut Vec<u8>,
) -> io::Result<Item<'c>> {
    let Some((field, fresh)) = field(file, cache, offset, wanted, payload)? else { return Ok(Item::TooLong) };
    if !wanted.iter().any(|w| w.as_bytes() == &*field.name) {
        return Ok(Item::Unwanted);
    }
    if let Some(value) = &field.value {
        return Ok(Item::Wanted(&field.name, value));
    }
    if !fresh && !file.data_payload(offset, MAX_ENTRY_BYTES, payload)? {
        return Ok(Item::TooLong);
    }
    Ok(payload.get(field.name.len() + 1..).map_or(Item::TooLong, |value| Item::Wanted(&field.name, value)))
}

/// What the DATA object at `offset` is, from `cache` or read from `file`
/// (its value kept if it is short and of a field in `wanted`), and whether
/// `payload` now holds its payload. None for a field too long to keep.
fn field<'c>(
    file: &mut JournalFile,
    cache: &'c mut FieldCache,
    offset: u64,
    wanted: &[&str],
    payload: &mut Vec<u8>,
) -> io::Result<Option<(&'c Field, bool)>> {
    if cache.has(offset) {
        return Ok(cache.get(offset).map(|field| (field, false)));
    }
    if !file.data_payload(offset, MAX_ENTRY_BYTES, payload)? {
        return Ok(None);
    }
    if payload.starts_with(b"MESSAGE=") {
        return Ok(Some((&MESSAGE, true)));
    }
    // A payload without `=` is no field (no name matches it): journalctl
    // skips it too.
    let field = match payload.iter().position(|&b| b == b'=') {
        Some(eq) => {
            let (name, value) = (&payload[..eq], &payload[eq + 1..]);
            let keep = value.len() <= FieldCache::MAX_VALUE && wanted.iter().any(|w| w.as_bytes() == name);
            Field { name: Cow::Owned(name.to_vec()), value: keep.then(|| value.into()) }
        }
        None => Field { name: Cow::Borrowed(b""), value: None },
    };
    cache.put(offset, field);
    Ok(cache.get(offset).map(|field| (field, true)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_field_cache_is_bounded_in_bytes() {
        // A job's entries linking ever new values, as many as it likes.
        let mut cache = FieldCache::default();
        for i in 0..100_000u64 {
            let name = format!("JUNK_{}", i % 7).into_bytes();
            let value = (i % 3 > 0).then(|| vec![b'v'; FieldCache::MAX_VALUE].into_boxed_slice());
            cache.put(i * 8, Field { name: Cow::Owned(name), value });
            assert!(cache.bytes <= FieldCache::MAX_BYTES && cache.fields.len() <= FieldCache::MAX);
        }
        let held: usize = cache.fields.values().map(FieldCache::cost).sum();
        assert_eq!(held, cache.bytes, "what it counts is what it holds");
        // A field put again replaces the one before, counted once.
        let again = || Field { name: Cow::Borrowed(b"_PID"), value: Some(b"42".to_vec().into_boxed_slice()) };
        let mut cache = FieldCache::default();
        cache.put(8, again());
        cache.put(8, again());
        assert_eq!(cache.bytes, FieldCache::cost(&again()));
    }
}
