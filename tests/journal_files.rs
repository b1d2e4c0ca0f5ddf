//! The in-process journal reader (`jobgate::journal::Native`) against
//! journalctl, over real journal files: those systemd keeps for its own
//! tests, and synthetic ones written by systemd-journal-remote 252 and 254
//! (tests/data/journals/README.md says where each comes from and what it
//! holds).
//!
//! Each fixture is unpacked into a directory of its own under the system's
//! temporary directory (removed afterwards). For each unit chosen from it,
//! the same reads are made both ways: journalctl, the oracle, run with the
//! very argument vector jobgate's journalctl source uses (`Call::UnitEntries`)
//! plus `--directory=D`, its output read by jobgate's own export and entry
//! parsers; and `Native::unit_entries` over the same directory. An intact
//! fixture must give exactly journalctl's entries; a corrupted one may give
//! an error or fewer entries, but never one journalctl does not give, and
//! must not panic or hang.
//!
//! Without journalctl the test says so and passes. With
//! `JOBGATE_JOURNAL_ORACLE_ONLY=1` only the journalctl side runs, and the
//! entry counts it found are printed (`cargo test --test journal_files --
//! --nocapture`).

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use jobgate::journal::entry::journal_entry;
use jobgate::journal::export::{read_entry, RawEntry};
use jobgate::journal::{Entry, JournalSource, Native};
use jobgate::names::{Cursor, JobName, Prefix, UnitName};
use jobgate::systemd::argv::{Call, EntryRead, Seek, Tools};

/// Units whose own lines (`_SYSTEMD_UNIT=`) a fixture holds, most lines first.
const MAX_OWN_UNITS: usize = 20;
/// Units only the service manager speaks of (`UNIT=` from pid 1).
const MAX_MANAGER_ONLY_UNITS: usize = 5;
/// Read in every fixture, so that one without any unit (systemd's fuzzed
/// files) is still opened and searched.
const PROBE_UNIT: &str = "systemd-journald.service";
/// Entries of a read whose cursors start the reads after a cursor.
const CURSOR_PICKS: [(usize, usize); 3] = [(1, 4), (1, 2), (3, 4)];
/// What the native reader is given as the read's timeout…
const NATIVE_TIMEOUT: Duration = Duration::from_secs(30);
/// …and how long the test waits for a whole read before calling it hung.
const NATIVE_DEADLINE: Duration = Duration::from_secs(90);

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Intact,
    /// Left by a journald that did not close its files (a crash): files
    /// renamed `.journal~`, one still online, an entry array pointing past
    /// what reached the disk. journalctl stops reading such a file where it
    /// breaks; the native reader stops the read there (and in jobgate,
    /// journalctl reads it instead): what it gave before is journalctl's.
    Crashed,
    Corrupted,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// All its files in one directory, read together.
    OneDirectory,
    /// Each file in a directory of its own (systemd reads its corrupted
    /// files one by one; together, one bad file would hide the others).
    EachFileAlone,
}

struct Fixture {
    /// Under tests/data/journals: a directory of `*.zst` files or a `.tar.zst`.
    name: &'static str,
    state: State,
    layout: Layout,
    /// For a damaged copy, the intact fixture it was made from.
    damaged_from: Option<&'static str>,
}

const fn fixture(name: &'static str, state: State, layout: Layout) -> Fixture {
    Fixture { name, state, layout, damaged_from: None }
}

const fn damaged_copy(name: &'static str, of: &'static str) -> Fixture {
    Fixture { name, state: State::Corrupted, layout: Layout::OneDirectory, damaged_from: Some(of) }
}

const FIXTURES: &[Fixture] = &[
    fixture("systemd-no-rtc", State::Crashed, Layout::OneDirectory),
    fixture("systemd-corrupted", State::Corrupted, Layout::EachFileAlone),
    fixture("systemd-afl-corrupted-journals.tar.zst", State::Corrupted, Layout::EachFileAlone),
    fixture("synthetic-v252-jenkins-regular-zstd", State::Intact, Layout::OneDirectory),
    fixture("synthetic-v252-keyed-compact-zstd", State::Intact, Layout::OneDirectory),
    fixture("synthetic-v254-keyed-compact-xz", State::Intact, Layout::OneDirectory),
    fixture("synthetic-v254-jenkins-regular-lz4", State::Intact, Layout::OneDirectory),
    fixture("synthetic-v254-keyed-regular-uncompressed", State::Intact, Layout::OneDirectory),
    damaged_copy("synthetic-corrupt-objects", "synthetic-v252-keyed-compact-zstd"),
    damaged_copy("synthetic-corrupt-truncated", "synthetic-v254-keyed-compact-xz"),
];

#[test]
fn systemd_no_rtc() {
    check("systemd-no-rtc");
}

#[test]
fn systemd_corrupted() {
    check("systemd-corrupted");
}

#[test]
fn systemd_afl_corrupted_journals() {
    check("systemd-afl-corrupted-journals.tar.zst");
}

#[test]
fn synthetic_v252_jenkins_regular_zstd() {
    check("synthetic-v252-jenkins-regular-zstd");
}

#[test]
fn synthetic_v252_keyed_compact_zstd() {
    check("synthetic-v252-keyed-compact-zstd");
}

#[test]
fn synthetic_v254_keyed_compact_xz() {
    check("synthetic-v254-keyed-compact-xz");
}

#[test]
fn synthetic_v254_jenkins_regular_lz4() {
    check("synthetic-v254-jenkins-regular-lz4");
}

#[test]
fn synthetic_v254_keyed_regular_uncompressed() {
    check("synthetic-v254-keyed-regular-uncompressed");
}

#[test]
fn synthetic_corrupt_objects() {
    check("synthetic-corrupt-objects");
}

#[test]
fn synthetic_corrupt_truncated() {
    check("synthetic-corrupt-truncated");
}

/// A fixture added to tests/data/journals but not to [`FIXTURES`] would
/// silently go untested.
#[test]
fn every_fixture_is_listed() {
    let listed: BTreeSet<&str> = FIXTURES.iter().map(|f| f.name).collect();
    let present: BTreeSet<String> = fs::read_dir(fixtures_dir())
        .expect("tests/data/journals")
        .map(|e| e.expect("a directory entry").file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("systemd-") || name.starts_with("synthetic-"))
        .collect();
    let present: BTreeSet<&str> = present.iter().map(String::as_str).collect();
    assert_eq!(present, listed, "tests/data/journals and FIXTURES differ");
}

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/journals")
}

fn check(name: &str) {
    if !journalctl_present() {
        println!("SKIP {name}: journalctl is not installed, so there is nothing to compare with");
        return;
    }
    let fixture = FIXTURES.iter().find(|f| f.name == name).expect("the fixture is in FIXTURES");
    let oracle_only = std::env::var_os("JOBGATE_JOURNAL_ORACLE_ONLY").is_some_and(|v| v == "1");
    let scratch = Scratch::new(name);
    let journals = unpack(fixture, &scratch.0);
    let mut report = Report::new(name, fixture.layout);
    // The intact journal a damaged copy was made from: what it holds is
    // what a native read of the copy may give, and nothing else.
    let source = fixture.damaged_from.map(|of| {
        let source = FIXTURES.iter().find(|f| f.name == of).expect("the source fixture is in FIXTURES");
        let scratch = Scratch::new(&format!("{name}-source"));
        let dir = unpack(source, &scratch.0).into_iter().next().expect("one directory").1;
        (scratch, dir)
    });
    for (label, dir) in &journals {
        let source_dir = source.as_ref().map(|(_, dir)| dir.as_path());
        check_directory(fixture, label, dir, source_dir, oracle_only, &mut report);
    }
}

/// Every unit chosen from one directory of journal files, read both ways.
fn check_directory(
    fixture: &Fixture,
    label: &str,
    dir: &Path,
    source: Option<&Path>,
    oracle_only: bool,
    report: &mut Report,
) {
    let started = Instant::now();
    let units = units_in(dir, report);
    // journalctl --directory reads every file in the directory, whatever
    // machine wrote it (the synthetic fixtures hold files of two machine
    // ids, as journal-remote's output or a copied-in journal would);
    // Native::from_dirs must read them all too.
    let native = (!oracle_only).then(|| Arc::new(Native::from_dirs(vec![dir.to_path_buf()])));
    let at = Place { fixture, label, dir, native: native.as_ref() };
    for unit in &units {
        // journalctl's reads of a damaged file disagree with each other
        // (its forward read may pass over entries its backward read gives,
        // a seek over others, a bad slot in `_PID=1`'s array hides the
        // manager's messages): a native entry must be one of the unit's
        // entries that journalctl gives in some read of the damaged copy
        // or of the intact journal it was made from, never another.
        let known: Vec<Entry> = if fixture.state == State::Corrupted {
            let dirs = [Some(dir), source].into_iter().flatten();
            let reads = dirs.flat_map(|d| Read::from_the_edge().map(|read| (d, read)));
            reads.flat_map(|(d, read)| journalctl_read(d, unit, &read, State::Corrupted).entries).collect()
        } else {
            Vec::new()
        };
        for read in Read::from_the_edge() {
            check_read(&at, unit, &read, &known, report);
        }
    }
    report.time(started.elapsed());
}

/// Where reads are made: the fixture, one of its directories, and the
/// native reader over it (none when only journalctl's side runs).
struct Place<'a> {
    fixture: &'a Fixture,
    label: &'a str,
    dir: &'a Path,
    native: Option<&'a Arc<Native>>,
}

/// One read from the edge, then reads after a few of its entries' cursors,
/// forward and backward.
fn check_read(at: &Place<'_>, unit: &UnitName, read: &Read, known: &[Entry], report: &mut Report) {
    let listing = journalctl_read(at.dir, unit, read, at.fixture.state);
    if at.fixture.state == State::Corrupted {
        compare_native(at, unit, read, known);
    } else {
        compare_native(at, unit, read, &listing.entries);
    }
    let mut after_counts = Vec::new();
    for (index, cursor) in cursors_to_start_after(&listing.entries) {
        for backward in [false, true] {
            let after = Read { backward, after: Some(cursor.clone()), ..read.clone() };
            let listing_after = journalctl_read(at.dir, unit, &after, at.fixture.state);
            if listing_after.entries != sliced(&listing.entries, index, read.backward != backward) {
                report.unlike_slice(at.label, unit, &after);
            }
            if at.fixture.state == State::Corrupted {
                let known: Vec<Entry> = listing_after.entries.iter().chain(known).cloned().collect();
                compare_native(at, unit, &after, &known);
            } else {
                compare_native(at, unit, &after, &listing_after.entries);
            }
            report.note(&listing_after);
            after_counts.push((backward, listing_after.entries.len()));
        }
    }
    report.count(at.label, unit, read, &listing, &after_counts);
}

/// The entries a read after `entries[index]` should give, going on in the
/// same direction as `entries`, or turning back.
fn sliced(entries: &[Entry], index: usize, turning_back: bool) -> Vec<Entry> {
    if turning_back {
        entries[..index].iter().rev().cloned().collect()
    } else {
        entries[index + 1..].to_vec()
    }
}

fn compare_native(at: &Place<'_>, unit: &UnitName, read: &Read, expected: &[Entry]) {
    if let Some(native) = at.native {
        let got = native_read(native, unit, read);
        compare(at.fixture, at.label, unit, read, expected, got);
    }
}

// ---- The reads ----

/// One read of a unit's entries, as jobgate makes it (`EntryRead`).
#[derive(Clone)]
struct Read {
    /// `-u UNIT` (its own lines and the manager's messages about it), or
    /// `_SYSTEMD_UNIT=UNIT` (its own lines only).
    manager: bool,
    backward: bool,
    /// Start just after this entry (`Seek::After`), or at the edge.
    after: Option<Cursor>,
}

impl Read {
    /// Forward and backward with `-u`, forward with `_SYSTEMD_UNIT=`.
    fn from_the_edge() -> [Read; 3] {
        [
            Read { manager: true, backward: false, after: None },
            Read { manager: true, backward: true, after: None },
            Read { manager: false, backward: false, after: None },
        ]
    }

    fn entry_read<'a>(&'a self, unit: &'a UnitName) -> EntryRead<'a> {
        let seek = self.after.as_ref().map_or(Seek::Edge, Seek::After);
        EntryRead { unit, seek, backward: self.backward, follow: false, manager: self.manager }
    }
}

impl fmt::Display for Read {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let matching = if self.manager { "-u" } else { "_SYSTEMD_UNIT=" };
        let direction = if self.backward { "backward" } else { "forward" };
        write!(f, "{direction} {matching}")?;
        if let Some(cursor) = &self.after {
            write!(f, " after {}", cursor.as_str())?;
        }
        Ok(())
    }
}

/// Cursors of a few entries in the middle of a read, with their places in it.
fn cursors_to_start_after(entries: &[Entry]) -> Vec<(usize, Cursor)> {
    if entries.len() < 3 {
        return Vec::new();
    }
    let picks: BTreeSet<usize> = CURSOR_PICKS.iter().map(|(num, den)| entries.len() * num / den).collect();
    picks.into_iter().filter_map(|i| Some((i, Cursor::parse(&entries[i].cursor)?))).collect()
}

// ---- journalctl, the oracle ----

fn journalctl_present() -> bool {
    Command::new(Tools::default().journalctl).arg("--version").output().is_ok_and(|o| o.status.success())
}

/// What journalctl gave for one read.
struct Listing {
    entries: Vec<Entry>,
    /// Entries whose cursor came up more than once.
    repeated: usize,
    /// How journalctl ended, when not with success (a corrupted file may
    /// make it abort: then its entries are those printed before).
    failure: Option<String>,
    /// What journalctl wrote to stderr (files it ignores, say).
    complaint: String,
    took: Duration,
}

fn journalctl_read(dir: &Path, unit: &UnitName, read: &Read, state: State) -> Listing {
    let argv = Call::UnitEntries(read.entry_read(unit)).argv(&Tools::default());
    let started = Instant::now();
    let output = run_journalctl(dir, &argv);
    let took = started.elapsed();
    let failure = failure_of(&output);
    if state == State::Intact {
        assert!(
            failure.is_none() && output.stderr.is_empty(),
            "journalctl failed on an intact fixture ({}, {unit}, {read}): {}: {}",
            dir.display(),
            failure.as_deref().unwrap_or("exit 0"),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let mut entries = entries_about(unit.as_str(), &output.stdout);
    // As journal::journalctl's stream: `--cursor=C` starts at C itself
    // where the read matches it, and that entry is dropped.
    if let Some(cursor) = &read.after {
        if entries.first().is_some_and(|e| e.cursor == cursor.as_str()) {
            entries.remove(0);
        }
    }
    let repeated = repeated_cursors(&entries);
    let complaint = String::from_utf8_lossy(&output.stderr).trim().to_string();
    Listing { entries, repeated, failure, complaint, took }
}

/// journalctl's argument vector for `argv` (jobgate's), reading the files
/// of `dir` instead of the system's journal.
fn run_journalctl(dir: &Path, argv: &[OsString]) -> Output {
    let (program, args) = argv.split_first().expect("an argument vector has a program");
    let mut directory = OsString::from("--directory=");
    directory.push(dir);
    Command::new(program).arg(directory).args(args).output().expect("journalctl runs")
}

fn failure_of(output: &Output) -> Option<String> {
    (!output.status.success()).then(|| output.status.to_string())
}

/// The entries of an export stream that are about `unit`, as jobgate keeps them.
fn entries_about(unit: &str, export: &[u8]) -> Vec<Entry> {
    let mut source = io::Cursor::new(export);
    let mut raw = RawEntry::default();
    let mut entries = Vec::new();
    // An error is a cut-off entry after an abort: the ones before it count.
    while let Ok(true) = read_entry(&mut source, &mut raw) {
        entries.extend(journal_entry(unit, &raw));
    }
    entries
}

fn repeated_cursors(entries: &[Entry]) -> usize {
    let distinct: BTreeSet<&str> = entries.iter().map(|e| e.cursor.as_str()).collect();
    entries.len() - distinct.len()
}

// ---- The units read ----

/// The units to read in `dir`: those with lines of their own, most lines
/// first, then some that only the manager speaks of, then the probe unit;
/// each only if jobgate's `UnitName` can hold its name.
fn units_in(dir: &Path, report: &mut Report) -> Vec<UnitName> {
    let output = run_journalctl(
        dir,
        &["journalctl", "--no-pager", "--all", "-o", "export", "--output-fields=_SYSTEMD_UNIT,UNIT,_PID"]
            .map(OsString::from),
    );
    if let Some(failure) = failure_of(&output) {
        report.discovery_failed(&failure, &output.stderr);
    }
    let mut own: BTreeMap<String, usize> = BTreeMap::new();
    let mut from_manager: BTreeSet<String> = BTreeSet::new();
    let mut source = io::Cursor::new(&output.stdout[..]);
    let mut raw = RawEntry::default();
    while let Ok(true) = read_entry(&mut source, &mut raw) {
        if let Some(unit) = text_field(&raw, "_SYSTEMD_UNIT") {
            *own.entry(unit).or_default() += 1;
        }
        if let (Some(unit), Some("1")) = (text_field(&raw, "UNIT"), text_field(&raw, "_PID").as_deref()) {
            from_manager.insert(unit);
        }
    }
    let mut by_lines: Vec<(String, usize)> = own.iter().map(|(u, n)| (u.clone(), *n)).collect();
    by_lines.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let manager_only = from_manager.iter().filter(|u| !own.contains_key(*u));

    let mut chosen: Vec<UnitName> = Vec::new();
    choose(by_lines.iter().map(|(u, _)| u), MAX_OWN_UNITS, &mut chosen, report);
    choose(manager_only, MAX_MANAGER_ONLY_UNITS, &mut chosen, report);
    if !chosen.iter().any(|u| u.as_str() == PROBE_UNIT) {
        chosen.push(unit_name(PROBE_UNIT).expect("the probe unit is a valid UnitName"));
    }
    chosen
}

/// Adds up to `most` of `names` to `chosen`, noting those that are not UnitNames.
fn choose<'a>(names: impl Iterator<Item = &'a String>, most: usize, chosen: &mut Vec<UnitName>, report: &mut Report) {
    let mut taken = 0;
    for name in names {
        match unit_name(name) {
            Some(_) if taken == most => break,
            Some(unit) => {
                chosen.push(unit);
                taken += 1;
            }
            None => report.refused(name),
        }
    }
}

fn text_field(raw: &RawEntry, name: &str) -> Option<String> {
    raw.field(name).and_then(|v| std::str::from_utf8(v).ok()).map(str::to_string)
}

/// `name` as jobgate's `UnitName`, which is only ever made from a job
/// (`JobName::unit`: `PREFIX…[@INSTANCE].service`): the first byte of the
/// name serves as the prefix. Names of other kinds (`.scope`, `.mount`), or
/// with bytes a job refuses (`\x2d` escapes, `:`), have no `UnitName`.
fn unit_name(name: &str) -> Option<UnitName> {
    let stem = name.strip_suffix(".service")?;
    let prefix = Prefix::parse(stem.get(..1)?).ok()?;
    let unit = JobName::parse(&prefix, stem).ok()?.unit();
    (unit.as_str() == name).then_some(unit)
}

// ---- The native reader ----

/// What the native reader gave: its entries up to the end or an error.
struct NativeRead {
    entries: Vec<Entry>,
    error: Option<io::Error>,
}

/// Reads on a thread of its own, so that a panic or a read that never ends
/// fails the test with the fixture and read named, instead of killing or
/// stalling it.
fn native_read(native: &Arc<Native>, unit: &UnitName, read: &Read) -> Result<NativeRead, String> {
    let (native, unit, read_owned) = (Arc::clone(native), unit.clone(), read.clone());
    let (done, outcome) = mpsc::channel();
    let reader = thread::spawn(move || {
        let result = drain(&native, &unit, &read_owned);
        // The receiver is gone only if the test already gave up waiting.
        let _ = done.send(result);
    });
    match outcome.recv_timeout(NATIVE_DEADLINE) {
        Ok(result) => {
            reader.join().map_err(|_| "the native reader's thread failed after its read".to_string())?;
            Ok(result)
        }
        Err(mpsc::RecvTimeoutError::Timeout) => Err(format!("the native read took over {NATIVE_DEADLINE:?}")),
        Err(mpsc::RecvTimeoutError::Disconnected) => Err(match reader.join() {
            Err(panic) => format!("the native reader panicked: {}", panic_text(&*panic)),
            Ok(()) => "the native reader's thread ended without an answer".to_string(),
        }),
    }
}

fn drain(native: &Native, unit: &UnitName, read: &Read) -> NativeRead {
    let mut stream = match native.unit_entries(read.entry_read(unit), NATIVE_TIMEOUT) {
        Ok(stream) => stream,
        Err(error) => return NativeRead { entries: Vec::new(), error: Some(error) },
    };
    let mut entries = Vec::new();
    loop {
        match stream.next_entry() {
            Ok(Some(entry)) => entries.push(entry),
            Ok(None) => return NativeRead { entries, error: None },
            Err(error) => return NativeRead { entries, error: Some(error) },
        }
    }
}

fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(not a string)".to_string())
}

// ---- The comparison ----

fn compare(
    fixture: &Fixture,
    label: &str,
    unit: &UnitName,
    read: &Read,
    expected: &[Entry],
    got: Result<NativeRead, String>,
) {
    let context = format!("{label}, unit {unit}, read {read}");
    let got = got.unwrap_or_else(|problem| panic!("{context}: {problem}"));
    match fixture.state {
        State::Intact => same_entries(&context, expected, got),
        State::Crashed => journalctls_first_entries(&context, expected, got),
        State::Corrupted => only_entries_journalctl_gives(&context, expected, &got.entries),
    }
}

/// An intact journal: exactly journalctl's entries, in its order.
fn same_entries(context: &str, expected: &[Entry], got: NativeRead) {
    if let Some(error) = got.error {
        panic!("{context}: the native read failed after {} of {} entries: {error}", got.entries.len(), expected.len());
    }
    let first_difference = (0..expected.len().max(got.entries.len()))
        .find(|&i| expected.get(i) != got.entries.get(i))
        .map(|i| (i, expected.get(i), got.entries.get(i)));
    if let Some((index, journalctl, native)) = first_difference {
        panic!(
            "{context}: entry {index} differs ({} entries from journalctl, {} native)\n\
             journalctl: {journalctl:#?}\nnative:     {native:#?}",
            expected.len(),
            got.entries.len()
        );
    }
}

/// A journal left by a crash: journalctl's entries, in its order, up to
/// where the native read stopped, if it did.
fn journalctls_first_entries(context: &str, expected: &[Entry], got: NativeRead) {
    if got.error.is_none() {
        return same_entries(context, expected, got);
    }
    let taken = got.entries.len().min(expected.len());
    same_entries(context, &expected[..taken], NativeRead { error: None, ..got });
}

/// A corrupted journal: an error, or fewer entries, are fine; an entry
/// journalctl does not give for the same read is not.
fn only_entries_journalctl_gives(context: &str, expected: &[Entry], got: &[Entry]) {
    if let Some((index, entry)) = got.iter().enumerate().find(|(_, e)| !expected.contains(e)) {
        panic!(
            "{context}: native entry {index} is not one journalctl gives ({} entries from journalctl)\n\
             native: {entry:#?}",
            expected.len()
        );
    }
}

// ---- Unpacking ----

/// A scratch directory, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("jobgate-journal-files-{}-{name}", std::process::id()));
        // A leftover of a killed run with a recycled pid.
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("a scratch directory");
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Unpacks a fixture under `scratch`: the journal directories to read, each
/// with a label for reports.
fn unpack(fixture: &Fixture, scratch: &Path) -> Vec<(String, PathBuf)> {
    let source = fixtures_dir().join(fixture.name);
    let all = scratch.join("all");
    fs::create_dir_all(&all).expect("a directory for the journal files");
    if fixture.name.ends_with(".tar.zst") {
        run_tool(Command::new("tar").arg("--zstd").arg("-xf").arg(&source).arg("-C").arg(&all));
    } else {
        for file in sorted_files(&source) {
            let name = file.file_name().expect("a file name").to_string_lossy().into_owned();
            let journal = name.strip_suffix(".zst").expect("fixture files are compressed with zstd");
            run_tool(Command::new("zstd").args(["-q", "-d"]).arg(&file).arg("-o").arg(all.join(journal_name(journal))));
        }
    }
    match fixture.layout {
        Layout::OneDirectory => vec![(fixture.name.to_string(), all)],
        Layout::EachFileAlone => sorted_files(&all)
            .into_iter()
            .enumerate()
            .map(|(i, file)| {
                let name = file.file_name().expect("a file name").to_string_lossy().into_owned();
                let alone = scratch.join(format!("file-{i:04}"));
                fs::create_dir(&alone).expect("a directory for one journal file");
                fs::rename(&file, alone.join(&name)).expect("the journal file moves");
                (format!("{}/{name}", fixture.name), alone)
            })
            .collect(),
    }
}

/// journalctl --directory (and so Native::from_dirs) reads only files
/// named `*.journal` or `*.journal~`; systemd's corrupted files are named
/// after the fuzzer's findings, and get the suffix here.
fn journal_name(name: &str) -> String {
    if name.ends_with(".journal") || name.ends_with(".journal~") {
        name.to_string()
    } else {
        format!("{name}.journal")
    }
}

fn sorted_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> =
        fs::read_dir(dir).expect("a fixture directory").map(|e| e.expect("a directory entry").path()).collect();
    files.sort();
    files
}

fn run_tool(command: &mut Command) {
    let output = command.output().unwrap_or_else(|e| panic!("{command:?} cannot run ({e}): .ci/run installs it"));
    assert!(output.status.success(), "{command:?} failed: {}", String::from_utf8_lossy(&output.stderr));
}

// ---- What was read, for the log ----

/// What journalctl's side found, printed when the fixture is done or has
/// failed (seen with `--nocapture`, or on failure).
struct Report {
    fixture: String,
    layout: Layout,
    lines: Vec<String>,
    directories: usize,
    reads: usize,
    entries: usize,
    /// How journalctl ended, when not with success, and in how many reads.
    failures: BTreeMap<String, usize>,
    /// The same, for the read of every entry that chooses the units.
    discovery_failures: BTreeMap<String, usize>,
    complaints: BTreeSet<String>,
    repeated: usize,
    unlike_slices: Vec<String>,
    refused: BTreeSet<String>,
    journalctl_time: Duration,
    total_time: Duration,
}

impl Report {
    fn new(fixture: &str, layout: Layout) -> Report {
        Report {
            fixture: fixture.to_string(),
            layout,
            lines: Vec::new(),
            directories: 0,
            reads: 0,
            entries: 0,
            failures: BTreeMap::new(),
            discovery_failures: BTreeMap::new(),
            complaints: BTreeSet::new(),
            repeated: 0,
            unlike_slices: Vec::new(),
            refused: BTreeSet::new(),
            journalctl_time: Duration::ZERO,
            total_time: Duration::ZERO,
        }
    }

    /// Adds up one journalctl read.
    fn note(&mut self, listing: &Listing) {
        self.reads += 1;
        self.entries += listing.entries.len();
        self.repeated += listing.repeated;
        self.journalctl_time += listing.took;
        if let Some(failure) = &listing.failure {
            *self.failures.entry(failure.clone()).or_default() += 1;
        }
        if let Some(first) = listing.complaint.lines().next() {
            self.complaints.insert(first.to_string());
        }
    }

    /// A read from the edge, with the counts of the reads after its cursors.
    fn count(&mut self, label: &str, unit: &UnitName, read: &Read, listing: &Listing, after: &[(bool, usize)]) {
        self.note(listing);
        if self.layout == Layout::EachFileAlone && listing.entries.is_empty() {
            return;
        }
        let mut line = format!("  {label}  {unit}  {read}: {}", listing.entries.len());
        if !after.is_empty() {
            let counts = |backward: bool| -> Vec<String> {
                after.iter().filter(|(b, _)| *b == backward).map(|(_, n)| n.to_string()).collect()
            };
            line.push_str(&format!(
                " (after {} cursors: forward {}, backward {})",
                after.len() / 2,
                counts(false).join(" "),
                counts(true).join(" ")
            ));
        }
        if let Some(failure) = &listing.failure {
            line.push_str(&format!(" [journalctl: {failure}]"));
        }
        self.lines.push(line);
    }

    fn discovery_failed(&mut self, failure: &str, stderr: &[u8]) {
        *self.discovery_failures.entry(failure.to_string()).or_default() += 1;
        if let Some(first) = String::from_utf8_lossy(stderr).lines().next() {
            self.complaints.insert(first.to_string());
        }
    }

    fn unlike_slice(&mut self, label: &str, unit: &UnitName, after: &Read) {
        self.unlike_slices.push(format!("{label} {unit} {after}"));
    }

    fn refused(&mut self, name: &str) {
        self.refused.insert(name.to_string());
    }

    fn time(&mut self, took: Duration) {
        self.directories += 1;
        self.total_time += took;
    }

    fn print(&self) {
        if self.reads == 0 {
            return;
        }
        let mut out = format!(
            "{}: {} director{}, {} journalctl reads ({} entries) in {:.2?} of journalctl, {:.2?} in all\n",
            self.fixture,
            self.directories,
            if self.directories == 1 { "y" } else { "ies" },
            self.reads,
            self.entries,
            self.journalctl_time,
            self.total_time,
        );
        for line in &self.lines {
            out.push_str(&format!("{line}\n"));
        }
        for (failure, n) in &self.discovery_failures {
            out.push_str(&format!("  journalctl reading every entry ended with {failure} in {n} directories\n"));
        }
        for (failure, n) in &self.failures {
            out.push_str(&format!("  journalctl ended with {failure} in {n} reads\n"));
        }
        for complaint in self.complaints.iter().take(5) {
            out.push_str(&format!("  journalctl said: {complaint}\n"));
        }
        if self.repeated > 0 {
            out.push_str(&format!("  journalctl gave {} entries twice\n", self.repeated));
        }
        for read in &self.unlike_slices {
            out.push_str(&format!("  journalctl's read after a cursor is not its full read sliced there: {read}\n"));
        }
        if !self.refused.is_empty() {
            let some: Vec<&str> = self.refused.iter().take(8).map(String::as_str).collect();
            let more = if self.refused.len() > some.len() { " …" } else { "" };
            out.push_str(&format!(
                "  {} unit names are not UnitNames, not read: {}{more}\n",
                self.refused.len(),
                some.join(" ")
            ));
        }
        print!("{out}");
    }
}

impl Drop for Report {
    fn drop(&mut self) {
        self.print();
    }
}
