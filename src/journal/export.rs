//! Reading `journalctl -o export` entries: `NAME=value` lines, or for a
//! value that is not plain text (a newline, a control byte), `NAME`, the
//! value's length as 64-bit little-endian, the bytes and a newline; an empty
//! line ends the entry. journalctl writes this format about twice as fast as
//! `-o json` (no escaping), and reading it takes no parser.
#![forbid(unsafe_code)]

use std::io::{self, BufRead, Read};

/// Largest entry kept, by [`RawEntry::fits`]; a larger one is read past,
/// never buffered.
pub const MAX_ENTRY_BYTES: usize = 1 << 20;
/// Room for the address fields journalctl adds to every entry it exports
/// (`__CURSOR=`, `__REALTIME_TIMESTAMP=`, `_BOOT_ID=`, ...: a few hundred
/// bytes): read beyond [`MAX_ENTRY_BYTES`], never counted in it.
const ADDRESS_ROOM: usize = 4 << 10;

/// One entry's fields, as ranges into one reused buffer.
#[derive(Default)]
pub struct RawEntry {
    data: Vec<u8>,
    /// (name start, name end, value start, value end) into `data`.
    fields: Vec<(usize, usize, usize, usize)>,
}

impl RawEntry {
    /// The value of the first field called `name`.
    pub fn field(&self, name: &str) -> Option<&[u8]> {
        self.fields
            .iter()
            .find(|(ns, ne, _, _)| &self.data[*ns..*ne] == name.as_bytes())
            .map(|&(_, _, vs, ve)| &self.data[vs..ve])
    }

    pub fn clear(&mut self) {
        self.data.clear();
        self.fields.clear();
    }

    /// Adds a field (as the in-process journal reader builds entries).
    pub fn push(&mut self, name: &[u8], value: &[u8]) {
        let name_start = self.data.len();
        self.data.extend_from_slice(name);
        let value_start = self.data.len();
        self.data.extend_from_slice(value);
        self.fields.push((name_start, value_start, value_start, self.data.len()));
    }

    /// The entry's size by the one rule both readers keep entries by:
    /// `NAME=value\n` for each field but the journal's address fields
    /// (`__` names and `_BOOT_ID`), which journalctl adds to an entry and
    /// the in-process reader does not, so the count is the same by both.
    pub fn counted_size(&self) -> usize {
        let address = |name: &[u8]| name.starts_with(b"__") || name == b"_BOOT_ID";
        let counted = self.fields.iter().filter(|&&(ns, ne, _, _)| !address(&self.data[ns..ne]));
        counted.map(|&(ns, ne, vs, ve)| (ne - ns) + (ve - vs) + 2).sum()
    }

    /// Whether the entry is kept: its [`RawEntry::counted_size`] is at most
    /// [`MAX_ENTRY_BYTES`].
    pub fn fits(&self) -> bool {
        self.counted_size() <= MAX_ENTRY_BYTES
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }
}

/// Reads the next entry into `entry`; false at the end of the stream (a
/// last entry cut off midway is dropped). An entry that does not
/// [`RawEntry::fits`] is skipped whole.
pub fn read_entry(source: &mut dyn BufRead, entry: &mut RawEntry) -> io::Result<bool> {
    entry.clear();
    let mut oversized = false;
    loop {
        let start = entry.data.len();
        let room = (MAX_ENTRY_BYTES + ADDRESS_ROOM).saturating_sub(start);
        if source.take(room as u64 + 1).read_until(b'\n', &mut entry.data)? == 0 {
            return Ok(false);
        }
        if entry.data.last() != Some(&b'\n') {
            // A line longer than the room left (or cut off at the end).
            entry.data.truncate(start);
            oversized = true;
            if skip_line(source)? == 0 {
                return Ok(false);
            }
            continue;
        }
        let line_end = entry.data.len() - 1;
        if line_end == start {
            if oversized || !entry.fits() {
                entry.clear();
                oversized = false;
                continue;
            }
            return Ok(true);
        }
        match entry.data[start..line_end].iter().position(|&b| b == b'=') {
            Some(eq) => entry.fields.push((start, start + eq, start + eq + 1, line_end)),
            None => {
                let mut len = [0u8; 8];
                source.read_exact(&mut len)?;
                let len = u64::from_le_bytes(len);
                entry.data.truncate(line_end);
                let value_start = entry.data.len();
                if len > (MAX_ENTRY_BYTES + ADDRESS_ROOM).saturating_sub(value_start) as u64 {
                    entry.data.truncate(start);
                    oversized = true;
                    io::copy(&mut source.take(len.saturating_add(1)), &mut io::sink())?;
                    continue;
                }
                source.take(len).read_to_end(&mut entry.data)?;
                let mut newline = [0u8; 1];
                source.read_exact(&mut newline)?;
                if entry.data.len() - value_start != len as usize || newline != *b"\n" {
                    return Err(io::Error::new(io::ErrorKind::InvalidData, "malformed journal export entry"));
                }
                entry.fields.push((start, line_end, value_start, entry.data.len()));
            }
        }
    }
}

/// Reads past the rest of a line without keeping it; the bytes read.
fn skip_line(source: &mut dyn BufRead) -> io::Result<usize> {
    let mut skipped = 0;
    loop {
        let (done, used) = {
            let buf = source.fill_buf()?;
            if buf.is_empty() {
                return Ok(skipped);
            }
            match buf.iter().position(|&b| b == b'\n') {
                Some(i) => (true, i + 1),
                None => (false, buf.len()),
            }
        };
        source.consume(used);
        skipped += used;
        if done {
            return Ok(skipped);
        }
    }
}

/// The export form of entries given as fields, for tests: text values as
/// `NAME=value`, values with a newline in binary form.
#[cfg(test)]
pub fn render(entries: &[&[(&str, &str)]]) -> Vec<u8> {
    let mut out = Vec::new();
    for fields in entries {
        for (name, value) in fields.iter() {
            out.extend_from_slice(name.as_bytes());
            if value.contains('\n') {
                out.push(b'\n');
                out.extend_from_slice(&(value.len() as u64).to_le_bytes());
            } else {
                out.push(b'=');
            }
            out.extend_from_slice(value.as_bytes());
            out.push(b'\n');
        }
        out.push(b'\n');
    }
    out
}

/// Converts lines of `journalctl -o json` (as older tests wrote their
/// journals) to the export form, for tests.
#[cfg(test)]
pub fn from_json_lines(json: &str) -> String {
    let mut out = Vec::new();
    for line in json.lines().filter(|l| !l.trim().is_empty()) {
        let value: serde_json::Value = serde_json::from_str(line).expect("a JSON journal line");
        let fields: Vec<(String, String)> = value
            .as_object()
            .expect("an object")
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().map_or_else(|| v.to_string(), str::to_string)))
            .collect();
        let borrowed: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        out.extend(render(&[&borrowed]));
    }
    String::from_utf8(out).expect("utf-8")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(raw: &[u8]) -> Vec<Vec<(String, Vec<u8>)>> {
        let mut source = io::Cursor::new(raw.to_vec());
        let mut entry = RawEntry::default();
        let mut all = Vec::new();
        while read_entry(&mut source, &mut entry).expect("read") {
            let fields = entry
                .fields
                .iter()
                .map(|&(ns, ne, vs, ve)| {
                    (String::from_utf8_lossy(&entry.data[ns..ne]).into_owned(), entry.data[vs..ve].to_vec())
                })
                .collect();
            all.push(fields);
        }
        all
    }

    #[test]
    fn text_and_binary_fields() {
        let raw = render(&[&[("__CURSOR", "s=1;i=2"), ("MESSAGE", "a=b\nsecond line")], &[("MESSAGE", "two")]]);
        let got = entries(&raw);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0][0], ("__CURSOR".to_string(), b"s=1;i=2".to_vec()));
        assert_eq!(got[0][1], ("MESSAGE".to_string(), b"a=b\nsecond line".to_vec()));
        assert_eq!(got[1], [("MESSAGE".to_string(), b"two".to_vec())]);
    }

    #[test]
    fn oversized_entries_are_skipped_and_cut_entries_dropped() {
        let big = "x".repeat(MAX_ENTRY_BYTES + 10);
        let mut raw = render(&[&[("MESSAGE", &big)], &[("MESSAGE", "after")]]);
        let mut binary_big = b"MESSAGE\n".to_vec();
        binary_big.extend_from_slice(&(u64::MAX).to_le_bytes());
        raw.extend_from_slice(&binary_big);
        let got = entries(&raw);
        assert_eq!(got, [[("MESSAGE".to_string(), b"after".to_vec())]]);
        assert!(entries(b"MESSAGE=cut off").is_empty());
        let mut short = b"MESSAGE\n".to_vec();
        short.extend_from_slice(&5u64.to_le_bytes());
        short.extend_from_slice(b"abc");
        let mut entry = RawEntry::default();
        assert!(read_entry(&mut io::Cursor::new(short), &mut entry).is_err(), "a value shorter than its length");
    }

    #[test]
    fn both_readers_count_an_entry_alike_and_keep_it_to_the_byte() {
        // MESSAGE=value\n and _PID=1\n count; the address fields do not.
        let at_limit = "y".repeat(MAX_ENTRY_BYTES - "MESSAGE=\n".len() - "_PID=1\n".len());
        let over = format!("{at_limit}y");
        for (message, kept) in [(&at_limit, true), (&over, false)] {
            let cursor = "s=0123456789abcdef0123456789abcdef;i=1f;b=01;m=0;t=5f3c00000001;x=ff";
            let fields = [
                ("__CURSOR", cursor),
                ("__REALTIME_TIMESTAMP", "1"),
                ("_BOOT_ID", "01"),
                ("MESSAGE", message),
                ("_PID", "1"),
            ];
            let exported = entries(&render(&[&fields]));
            assert_eq!(exported.len(), usize::from(kept), "journalctl's form");
            let mut built = RawEntry::default();
            for (name, value) in fields {
                built.push(name.as_bytes(), value.as_bytes());
            }
            assert_eq!(built.fits(), kept, "the in-process reader's form");
        }
    }
}
