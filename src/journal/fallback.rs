//! The journal's files read in-process, and through journalctl whatever
//! that reader does not understand. The hand-over keeps one promise: no
//! entry twice and none lost. A read that fails as it opens is made
//! through journalctl from the same point; one that fails midway goes on
//! through journalctl after the last entry it gave, in the read's own
//! direction (forward: after it; backward: older than it).
#![forbid(unsafe_code)]

use std::io::{self, BufRead, Read};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::entry::Entry;
use super::journalctl::Journalctl;
use super::native::{read_through_buffer, Native, NativeEntries, Text};
use super::{Entries, EntryStream, JournalSource, Messages};
use crate::names::{Cursor, Place, UnitName};
use crate::systemd::argv::{EntryRead, Seek};
use crate::systemd::run::{StopOnDrop, STREAM_TIMEOUT};

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

/// The read through journalctl that takes over from a native read, given
/// the cursor of the last entry that read gave (or passed over) and the
/// place of the last it gave: `None` for a read that gave none or did not
/// open. Made by each read from its own parameters. A `Fn`: a text read
/// whose journalctl did not start goes on natively, and may fall back again.
type Fallback = Box<dyn Fn(Option<Cursor>, Option<Place>) -> io::Result<Entries> + Send>;

/// The native read, going on through `fallback` if it breaks midway; if it
/// did not open, said in the log, the read through `fallback` from its start.
fn native_first(unit: &UnitName, native: io::Result<NativeEntries>, fallback: Fallback) -> io::Result<Entries> {
    match native {
        Ok(native) => {
            let unit = unit.clone();
            Ok(Box::new(Resuming { unit, native: Some(native), fallback, rest: None, last: None, stops: None }))
        }
        Err(e) => {
            falls_back(unit, &e);
            fallback(None, None)
        }
    }
}

/// A read's seek point, owned, so that it can be made again.
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

impl JournalSource for NativeFirst {
    fn manager_events(&self, unit: &UnitName) -> io::Result<Entries> {
        // journalctl reads them from the newest again (there is no cursor
        // in this call), so those the native read gave are passed over.
        let fallback = {
            let (journalctl, unit) = (self.journalctl.clone(), unit.clone());
            move |_: Option<Cursor>, last: Option<Place>| -> io::Result<Entries> {
                Ok(Box::new(OlderThan { events: journalctl.manager_events(&unit)?, last }))
            }
        };
        native_first(unit, self.native.events(unit), Box::new(fallback))
    }

    fn unit_entries(&self, read: EntryRead<'_>, timeout: Duration) -> io::Result<Entries> {
        // After the last entry given, or from where the read was to start,
        // for what is left of its time.
        let deadline = Instant::now() + timeout;
        let fallback = {
            let (journalctl, unit, start) = (self.journalctl.clone(), read.unit.clone(), SeekPoint::of(read.seek));
            let EntryRead { backward, follow, manager, .. } = read;
            move |after: Option<Cursor>, _: Option<Place>| {
                let seek = after.as_ref().map_or(start.seek(), Seek::After);
                let read = EntryRead { unit: &unit, seek, backward, follow, manager };
                journalctl.unit_entries(read, deadline.saturating_duration_since(Instant::now()))
            }
        };
        native_first(read.unit, self.native.entries(read, timeout), Box::new(fallback))
    }

    fn unit_messages(&self, unit: &UnitName, since: u64, until: u64) -> io::Result<Messages> {
        let text = match self.native.text(unit, since, until) {
            Ok(text) => text,
            Err(e) => {
                // Not opened: all of the text through journalctl, at the
                // speed of `-o cat`.
                falls_back(unit, &e);
                return self.journalctl.unit_messages(unit, since, until);
            }
        };
        // Broken midway: the entries after the last line given, or from
        // `since`, made into text by `EntriesText`.
        let fallback = {
            let (journalctl, unit) = (self.journalctl.clone(), unit.clone());
            move |after: Option<Cursor>, _: Option<Place>| {
                let seek = after.as_ref().map_or(Seek::Since(since), Seek::After);
                let read = EntryRead { unit: &unit, seek, backward: false, follow: false, manager: false };
                journalctl.unit_entries(read, STREAM_TIMEOUT)
            }
        };
        let unit = unit.clone();
        Ok(Box::new(ResumingText { unit, text, until, fallback: Box::new(fallback), rest: None }))
    }

    fn probe(&self) -> io::Result<String> {
        match self.native.open_files() {
            Ok(n) => Ok(format!("journal read in-process from its files ({n} open), journalctl where that cannot")),
            Err(e) => {
                log::warn!("the journal's files cannot be read in-process: {e}");
                let through = self.journalctl.probe()?;
                Ok(format!("{through}: its files cannot be read in-process ({e})"))
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
    unit: UnitName,
    /// The native read, until it breaks.
    native: Option<NativeEntries>,
    fallback: Fallback,
    /// The read through journalctl, once the native one broke.
    rest: Option<Entries>,
    /// The place of the last entry given.
    last: Option<Place>,
    stops: Option<Stops>,
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
                    falls_back(&self.unit, &e);
                    let after = native.last_cursor();
                    self.native = None;
                    let mut rest = (self.fallback)(after, self.last)?;
                    // A stop handed out before ends journalctl too.
                    if let Some(stops) = &self.stops {
                        stops.add(rest.take_stop());
                    }
                    self.rest = Some(rest);
                }
            }
        }
        match &mut self.rest {
            Some(rest) => rest.next_entry(),
            None => Ok(None),
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

/// The manager's messages read again from the newest, after a native read
/// of them broke: only those older than the last one it gave.
struct OlderThan {
    events: Entries,
    last: Option<Place>,
}

impl EntryStream for OlderThan {
    fn next_entry(&mut self) -> io::Result<Option<Entry>> {
        while let Some(entry) = self.events.next_entry()? {
            if self.last.is_none_or(|last| entry.place.is_before(&last)) {
                return Ok(Some(entry));
            }
        }
        Ok(None)
    }

    fn take_stop(&mut self) -> StopOnDrop {
        self.events.take_stop()
    }
}

/// A native text read that goes on through journalctl if it breaks.
struct ResumingText {
    unit: UnitName,
    text: Text,
    until: u64,
    fallback: Fallback,
    /// The text read through journalctl, once the native one broke.
    rest: Option<EntriesText>,
}

impl Read for ResumingText {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        read_through_buffer(self, out)
    }
}

impl BufRead for ResumingText {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.rest.is_none() {
            match self.text.fill_buf() {
                // Asked once more for the buffer to hand out (that reads
                // nothing): the borrow checker does not let one arm return
                // the reader's buffer while the other asks it for its cursor.
                Ok(_) => return self.text.fill_buf(),
                Err(e) => {
                    falls_back(&self.unit, &e);
                    let entries = (self.fallback)(self.text.last_cursor(), None)?;
                    self.rest = Some(EntriesText { entries, until: self.until, buf: Vec::new(), pos: 0 });
                }
            }
        }
        match &mut self.rest {
            Some(rest) => rest.fill_buf(),
            None => Ok(&[]),
        }
    }

    fn consume(&mut self, n: usize) {
        match &mut self.rest {
            Some(rest) => rest.consume(n),
            None => self.text.consume(n),
        }
    }
}

/// Entries' messages as text, each and a newline, as the native `Text`
/// gives them: up to `until`, some `Text::FILL` bytes at a time.
struct EntriesText {
    entries: Entries,
    until: u64,
    buf: Vec<u8>,
    pos: usize,
}

impl Read for EntriesText {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        read_through_buffer(self, out)
    }
}

impl BufRead for EntriesText {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.pos >= self.buf.len() {
            self.buf.clear();
            self.pos = 0;
            while self.buf.len() < Text::FILL {
                match self.entries.next_entry()? {
                    Some(entry) if entry.realtime <= self.until => {
                        self.buf.extend_from_slice(entry.message.as_bytes());
                        self.buf.push(b'\n');
                    }
                    _ => break,
                }
            }
        }
        Ok(&self.buf[self.pos..])
    }

    fn consume(&mut self, n: usize) {
        self.pos = (self.pos + n).min(self.buf.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::native::decompress::{decompress_into, Compression};
    use crate::names::{JobName, Prefix};
    use crate::systemd::argv::Tools;
    use crate::systemd::run::{Output, RecordingRunner, Runner};
    use std::ffi::OsString;
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicUsize, Ordering};

    const TIMEOUT: Duration = Duration::from_secs(30);
    /// After every entry of the fixture (2024).
    const UNTIL: u64 = 1_800_000_000_000_000;

    /// A synthetic journal whose `system.journal` is damaged so that a
    /// native read of ci-demo-build's lines breaks midway, forward and
    /// backward (tests/data/journals/README.md).
    const DAMAGED: [(&str, &[u8]); 3] = [
        ("system.journal", include_bytes!("../../tests/data/journals/synthetic-corrupt-objects/system.journal.zst")),
        (
            "remote-ci-runner-b.journal",
            include_bytes!("../../tests/data/journals/synthetic-corrupt-objects/remote-ci-runner-b.journal.zst"),
        ),
        (
            "system@a1-0000000000000001-00060dd7d8e34000.journal",
            include_bytes!(
                "../../tests/data/journals/synthetic-corrupt-objects/system@a1-0000000000000001-00060dd7d8e34000.journal.zst"
            ),
        ),
    ];

    /// Journal files in a directory of their own, removed when dropped.
    struct Dir(PathBuf);

    impl Dir {
        fn new(name: &str, files: &[(&str, Vec<u8>)]) -> Dir {
            let dir = std::env::temp_dir().join(format!("jobgate-source-{name}-{}", std::process::id()));
            std::fs::create_dir_all(&dir).expect("test directory");
            for (file, bytes) in files {
                std::fs::write(dir.join(file), bytes).expect("journal file written");
            }
            Dir(dir)
        }

        /// The damaged journal; in the first boot's file, `patch` applied.
        fn damaged(name: &str, patch: impl Fn(&mut Vec<u8>)) -> Dir {
            let files: Vec<(&str, Vec<u8>)> = DAMAGED
                .iter()
                .map(|(file, packed)| {
                    let mut bytes = Vec::new();
                    decompress_into(Compression::Zstd, packed, 16 << 20, &mut bytes).expect("fixture unpacks");
                    if file.starts_with("system@a1") {
                        patch(&mut bytes);
                    }
                    (*file, bytes)
                })
                .collect();
            Dir::new(name, &files)
        }

        fn native(&self) -> Native {
            Native::from_dirs(vec![self.0.clone()])
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// journalctl as a [`RecordingRunner`] answers it, each read's stop
    /// counted when dropped.
    struct Counted {
        runner: RecordingRunner,
        stopped: Arc<AtomicUsize>,
    }

    struct CountOnDrop(Arc<AtomicUsize>);

    impl Drop for CountOnDrop {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    impl Runner for Counted {
        fn call(&self, argv: &[OsString]) -> io::Result<Output> {
            self.runner.call(argv)
        }

        fn stream(&self, argv: &[OsString], timeout: Duration) -> io::Result<(Box<dyn BufRead + Send>, StopOnDrop)> {
            let (output, _) = self.runner.stream(argv, timeout)?;
            Ok((output, Box::new(CountOnDrop(Arc::clone(&self.stopped)))))
        }
    }

    fn source(dir: &Dir, runner: RecordingRunner) -> (NativeFirst, Arc<Counted>) {
        let counted = Arc::new(Counted { runner, stopped: Arc::new(AtomicUsize::new(0)) });
        let journalctl = Journalctl { runner: Arc::clone(&counted) as Arc<dyn Runner>, tools: Tools::default() };
        (NativeFirst { native: dir.native(), journalctl }, counted)
    }

    fn unit() -> UnitName {
        JobName::parse(&Prefix::parse("ci-demo-").expect("prefix"), "ci-demo-build").expect("job").unit()
    }

    /// journalctl's export of entries, each its cursor, time and fields.
    fn export(entries: &[(&str, u64, &str)]) -> String {
        let entry = |(cursor, realtime, fields): &(&str, u64, &str)| {
            format!("__CURSOR={cursor}\n__REALTIME_TIMESTAMP={realtime}\n{fields}\n\n")
        };
        entries.iter().map(entry).collect()
    }

    const OWN_LINE: &str = "_SYSTEMD_UNIT=ci-demo-build.service\n_PID=7";
    const FROM_MANAGER: &str = "UNIT=ci-demo-build.service\n_PID=1";

    fn cursors(entries: &mut Entries) -> Vec<String> {
        std::iter::from_fn(|| entries.next_entry().expect("no error").map(|e| e.cursor)).collect()
    }

    /// A native read on its own: the entries it gives before it breaks, and
    /// the cursor it came to.
    fn until_broken(mut native: NativeEntries) -> (Vec<Entry>, Cursor) {
        let mut given = Vec::new();
        loop {
            match native.next_entry() {
                Ok(Some(entry)) => given.push(entry),
                Ok(None) => panic!("the damaged read does not break"),
                Err(_) => return (given, native.last_cursor().expect("a cursor")),
            }
        }
    }

    fn args(counted: &Counted) -> Vec<Vec<String>> {
        counted.runner.recorded().into_iter().map(|argv| argv[1..].to_vec()).collect()
    }

    #[test]
    fn a_read_that_breaks_goes_on_through_journalctl_after_its_last_entry() {
        let dir = Dir::damaged("entries", |_| {});
        let unit = unit();
        for backward in [false, true] {
            let read = EntryRead { unit: &unit, seek: Seek::Edge, backward, follow: false, manager: false };
            let (given, after) = until_broken(dir.native().entries(read, TIMEOUT).expect("opens"));
            let at = format!("--cursor={}", after.as_str());
            // journalctl starts at the cursor's own entry: passed over.
            let rest = export(&[(after.as_str(), 1, OWN_LINE), ("s=1;i=1", 2, OWN_LINE)]);
            let (source, journalctl) = source(&dir, RecordingRunner::default().answer(&[&at], true, &rest));

            let mut entries = source.unit_entries(read, TIMEOUT).expect("opens");
            let stop = entries.take_stop();
            let mut expected: Vec<String> = given.into_iter().map(|e| e.cursor).collect();
            expected.push("s=1;i=1".to_string());
            assert_eq!(cursors(&mut entries), expected, "backward: {backward}");
            let calls = args(&journalctl);
            assert_eq!(calls.len(), 1);
            assert!(calls[0].contains(&at), "{calls:?}");
            assert_eq!(calls[0].contains(&"-r".to_string()), backward, "{calls:?}");
            // The stop handed out before the fallback ends journalctl too.
            assert_eq!(journalctl.stopped.load(Ordering::SeqCst), 0);
            drop(stop);
            assert_eq!(journalctl.stopped.load(Ordering::SeqCst), 1);
        }
    }

    #[test]
    fn the_managers_messages_read_again_from_the_newest_pass_over_those_given() {
        // Every INVOCATION_ID payload of the first boot's file made wrong:
        // the newest first read breaks at its newest message there.
        let patch = |bytes: &mut Vec<u8>| {
            const FIELD: &[u8] = b"INVOCATION_ID=";
            for i in 1..bytes.len() - FIELD.len() {
                // Not _SYSTEMD_INVOCATION_ID, which the read does not ask for.
                if bytes[i..].starts_with(FIELD) && bytes[i - 1] != b'_' {
                    bytes[i + FIELD.len()] ^= 1;
                }
            }
        };
        let dir = Dir::damaged("events", patch);
        let unit = unit();
        let (given, after) = until_broken(dir.native().events(&unit).expect("opens"));
        let last = given.last().expect("messages given before it broke").place;
        let newer = format!("s={:032x};i={:x}", last.sequence, last.number + 1);
        let older = format!("s={:032x};i={:x}", last.sequence, last.number - 1);
        let other = format!("s={:032x};i=ffff", last.sequence + 1);
        let events = export(&[
            (&newer, last.realtime + 1, FROM_MANAGER),
            (after.as_str(), last.realtime, FROM_MANAGER),
            (&older, last.realtime - 1, FROM_MANAGER),
            // Of another sequence: older by its time alone.
            (&other, last.realtime - 2, FROM_MANAGER),
        ]);
        let (source, journalctl) = source(&dir, RecordingRunner::default().answer(&["_PID=1"], true, &events));

        let mut entries = source.manager_events(&unit).expect("opens");
        let mut expected: Vec<String> = given.into_iter().map(|e| e.cursor).collect();
        expected.extend([older, other]);
        assert_eq!(cursors(&mut entries), expected);
        assert_eq!(args(&journalctl).len(), 1);
    }

    #[test]
    fn a_text_read_that_breaks_goes_on_through_journalctl_after_its_last_line() {
        let dir = Dir::damaged("text", |_| {});
        let unit = unit();
        let mut native = dir.native().text(&unit, 0, UNTIL).expect("opens");
        let mut expected = Vec::new();
        native.read_to_end(&mut expected).expect_err("the damaged text breaks");
        let after = native.last_cursor().expect("a cursor");
        let at = format!("--cursor={}", after.as_str());
        let line = |text: &str| format!("{OWN_LINE}\nMESSAGE={text}");
        let rest = export(&[
            (after.as_str(), 1, &line("given already")),
            ("s=1;i=1", 2, &line("from journalctl")),
            ("s=1;i=2", UNTIL + 1, &line("past the end")),
        ]);
        let (source, journalctl) = source(&dir, RecordingRunner::default().answer(&[&at], true, &rest));

        let mut text = Vec::new();
        source.unit_messages(&unit, 0, UNTIL).expect("opens").read_to_end(&mut text).expect("no error");
        expected.extend_from_slice(b"from journalctl\n");
        assert_eq!(String::from_utf8_lossy(&text), String::from_utf8_lossy(&expected));
        let calls = args(&journalctl);
        assert_eq!(calls.len(), 1);
        assert!(calls[0].contains(&at) && calls[0].contains(&"export".to_string()), "{calls:?}");
    }

    #[test]
    fn reads_that_do_not_open_are_made_through_journalctl() {
        // Not a journal file: every native read fails as it opens.
        let dir = Dir::new("unopened", &[("bad.journal", vec![0; 4096])]);
        let unit = unit();
        let entries = export(&[("s=1;i=1", 1, OWN_LINE)]);
        let events = export(&[("s=1;i=2", 2, FROM_MANAGER)]);
        let runner = RecordingRunner::default()
            .answer(&["_SYSTEMD_UNIT=ci-demo-build.service", "export"], true, &entries)
            .answer(&["_PID=1"], true, &events)
            .answer(&["cat"], true, "a line\n");
        let (source, journalctl) = source(&dir, runner);

        let read = EntryRead { unit: &unit, seek: Seek::Edge, backward: false, follow: false, manager: false };
        assert_eq!(cursors(&mut source.unit_entries(read, TIMEOUT).expect("journalctl")), ["s=1;i=1"]);
        assert_eq!(cursors(&mut source.manager_events(&unit).expect("journalctl")), ["s=1;i=2"]);
        let mut text = String::new();
        source.unit_messages(&unit, 0, UNTIL).expect("journalctl").read_to_string(&mut text).expect("text");
        assert_eq!(text, "a line\n");
        assert_eq!(args(&journalctl).len(), 3);
    }
}
