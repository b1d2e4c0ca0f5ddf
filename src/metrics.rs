//! Metrics for `GET /metrics`, in the Prometheus text format (0.0.4).
//!
//! Counters (requests, starts and stops, refused streams) live in one small
//! file under the state directory, so that they count every request of
//! every front end: `serve` in one process, but `inetd` and `cgi` in one
//! process per request. A count is a locked read-change-write of that file;
//! a count that cannot be written is logged and the request goes on.
//! Gauges (streams open, each job's last run) are read when scraped.
//!
//! Label values are route templates, status codes, fixed words and
//! validated job names only, never what a client wrote; the number of
//! series is capped, so no client can grow the file without bound.
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs::{self, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::names::JobName;
use crate::systemd::parse::UnitState;

/// Most counter series kept; a new one past it is not counted (and logged).
pub const MAX_SERIES: usize = 4096;

/// The content type Prometheus asks for (text format 0.0.4).
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// One counter series: a metric name and its labels, written as the text
/// format writes it (`name{label="value",…}`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Series(String);

impl Series {
    /// `labels` in the order given; values are escaped as the format asks.
    pub fn new(name: &'static str, labels: &[(&'static str, &str)]) -> Series {
        let mut key = name.to_string();
        if !labels.is_empty() {
            key.push('{');
            for (i, (label, value)) in labels.iter().enumerate() {
                if i > 0 {
                    key.push(',');
                }
                let _ = write!(key, "{label}=\"{}\"", escape(value));
            }
            key.push('}');
        }
        Series(key)
    }

    fn name(&self) -> &str {
        self.0.split('{').next().unwrap_or_default()
    }
}

/// A label value as the text format writes it: `\`, `"` and newlines escaped.
fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// The request counters, in a file shared by every jobgate process.
pub struct Counters {
    /// `None`: nothing is kept (unit tests, fuzzing).
    path: Option<PathBuf>,
}

impl Counters {
    pub fn in_state_dir(state_dir: &Path) -> Counters {
        Counters { path: Some(state_dir.join("metrics")) }
    }

    pub fn none() -> Counters {
        Counters { path: None }
    }

    /// Adds one to each series. Never fails the caller: a count that cannot
    /// be kept is a warning in the log.
    pub fn count(&self, series: &[Series]) {
        let Some(path) = &self.path else { return };
        if let Err(e) = add_one(path, series) {
            log::warn!("counting requests in {}: {e}", path.display());
        }
    }

    /// Every series counted so far.
    pub fn read(&self) -> io::Result<BTreeMap<Series, u64>> {
        let Some(path) = &self.path else { return Ok(BTreeMap::new()) };
        let _lock = crate::secure_file::lock_beside(path)?;
        match fs::read_to_string(path) {
            Ok(text) => Ok(parse(&text)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(BTreeMap::new()),
            Err(e) => Err(e),
        }
    }
}

/// The locked read-change-write. The file is rewritten in place, not
/// replaced: every reader takes the same lock, and a count is not worth a
/// sync; a file cut short by a crash loses only the lines it lost.
fn add_one(path: &Path, series: &[Series]) -> io::Result<()> {
    if let Some(dir) = path.parent() {
        fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    }
    let _lock = crate::secure_file::lock_beside(path)?;
    let mut file = OpenOptions::new().read(true).write(true).create(true).truncate(false).mode(0o600).open(path)?;
    let mut text = String::new();
    file.read_to_string(&mut text)?;
    let mut counts = parse(&text);
    for one in series {
        let full = counts.len() >= MAX_SERIES;
        match counts.get_mut(one) {
            Some(n) => *n = n.saturating_add(1),
            None if !full => {
                counts.insert(one.clone(), 1);
            }
            None => log::warn!("not counting {}: already {MAX_SERIES} series", one.0),
        }
    }
    let mut out = String::with_capacity(text.len() + 64);
    for (one, n) in &counts {
        let _ = writeln!(out, "{} {n}", one.0);
    }
    file.rewind()?;
    file.write_all(out.as_bytes())?;
    file.set_len(out.len() as u64)
}

/// `SERIES COUNT` lines; anything else (a line cut short) is skipped.
fn parse(text: &str) -> BTreeMap<Series, u64> {
    text.lines()
        .filter_map(|line| {
            let (series, n) = line.rsplit_once(' ')?;
            let n = n.parse().ok()?;
            series.starts_with("jobgate_").then(|| (Series(series.to_string()), n))
        })
        .collect()
}

/// How many of the follow slot files under `dir` are held right now: the
/// streams open in every process. Read from /proc/locks, so that looking
/// never takes a slot from a stream that wants it.
pub fn slots_held(dir: &Path, max: usize) -> usize {
    let Ok(locks) = fs::read_to_string("/proc/locks") else { return 0 };
    let held: Vec<(u64, u64)> = locks.lines().filter_map(locked_file).collect();
    (0..max)
        .filter_map(|i| fs::metadata(dir.join(format!("slot-{i}"))).ok())
        .filter(|m| held.contains(&(device_number(m.dev()), m.ino())))
        .count()
}

/// The (device, inode) of a /proc/locks line such as
/// `1: FLOCK  ADVISORY  WRITE 1234 00:2d:5678 0 EOF`, the device as
/// (major << 32 | minor) from its hexadecimal `MAJOR:MINOR`.
fn locked_file(line: &str) -> Option<(u64, u64)> {
    let file = line.split_whitespace().find(|f| f.matches(':').count() == 2)?;
    let mut parts = file.split(':');
    let major = u64::from_str_radix(parts.next()?, 16).ok()?;
    let minor = u64::from_str_radix(parts.next()?, 16).ok()?;
    let inode = parts.next()?.parse().ok()?;
    Some((major << 32 | minor, inode))
}

/// `st_dev` as (major << 32 | minor), as glibc's gnu_dev_major/minor split it.
fn device_number(dev: u64) -> u64 {
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    major << 32 | minor
}

/// What a scrape shows besides the counters.
pub struct Gauges {
    pub follow_open: usize,
    pub follow_max: usize,
    /// The jobs the token may see, each with its unit's state and last run.
    pub jobs: Vec<(JobName, UnitState)>,
}

/// What each counter is, for its HELP line.
const COUNTERS: &[(&str, &str)] = &[
    ("jobgate_requests_total", "Requests answered, by route template and status."),
    (
        "jobgate_job_actions_total",
        "Starts, stops and webhook deliveries, by job and outcome (job \"-\" where no job was found).",
    ),
    ("jobgate_follow_refused_total", "Follow streams refused, by the cap that was full."),
];

/// The whole exposition: counters, then gauges.
pub fn render(counters: &BTreeMap<Series, u64>, gauges: &Gauges) -> String {
    let mut out = String::new();
    for (name, help) in COUNTERS {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
        for (series, n) in counters.iter().filter(|(s, _)| s.name() == *name) {
            let _ = writeln!(out, "{} {n}", series.0);
        }
    }
    gauge(
        &mut out,
        "jobgate_follow_streams",
        "Follow streams open now.",
        &[(Series::new("jobgate_follow_streams", &[]), gauges.follow_open as f64)],
    );
    gauge(
        &mut out,
        "jobgate_follow_streams_max",
        "Follow streams allowed at once.",
        &[(Series::new("jobgate_follow_streams_max", &[]), gauges.follow_max as f64)],
    );
    job_gauges(&mut out, &gauges.jobs);
    out
}

fn gauge(out: &mut String, name: &str, help: &str, values: &[(Series, f64)]) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
    for (series, value) in values {
        let _ = writeln!(out, "{} {value}", series.0);
    }
}

/// Per job: whether it runs, and its last run's result, exit status, start
/// and duration (a run still going has a start, not yet the rest).
fn job_gauges(out: &mut String, jobs: &[(JobName, UnitState)]) {
    let mut active = Vec::new();
    let mut result = Vec::new();
    let mut status = Vec::new();
    let mut started = Vec::new();
    let mut duration = Vec::new();
    for (job, state) in jobs {
        let job = job.as_str();
        let running = state.is_running();
        active.push((Series::new("jobgate_job_active", &[("job", job)]), f64::from(u8::from(running))));
        if let Some(start) = state.started {
            started.push((Series::new("jobgate_job_last_start_timestamp_seconds", &[("job", job)]), start as f64));
        }
        if running {
            continue;
        }
        if let Some(word) = result_word(&state.result) {
            result.push((Series::new("jobgate_job_last_result", &[("job", job), ("result", word)]), 1.0));
        }
        if let Some(code) = state.exit_status {
            status.push((Series::new("jobgate_job_last_exit_status", &[("job", job)]), code as f64));
        }
        if let (Some(start), Some(end)) = (state.started, state.finished) {
            let seconds = end.saturating_sub(start) as f64;
            duration.push((Series::new("jobgate_job_last_duration_seconds", &[("job", job)]), seconds));
        }
    }
    gauge(out, "jobgate_job_active", "1 while the job's unit is active or activating.", &active);
    gauge(
        out,
        "jobgate_job_last_result",
        "The last finished run's result (systemd's Result=), 1 on that result.",
        &result,
    );
    gauge(out, "jobgate_job_last_exit_status", "The last finished run's exit status.", &status);
    gauge(
        out,
        "jobgate_job_last_start_timestamp_seconds",
        "When the last run started, in seconds since the epoch.",
        &started,
    );
    gauge(out, "jobgate_job_last_duration_seconds", "How long the last finished run took, in seconds.", &duration);
}

/// systemd's Result= is a word such as `success` or `exit-code`; anything
/// else is not shown.
fn result_word(result: &str) -> Option<&str> {
    let word = !result.is_empty() && result.len() <= 32 && result.bytes().all(|b| b.is_ascii_lowercase() || b == b'-');
    word.then_some(result)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::Prefix;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("jobgate-metrics-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn series_escape_label_values() {
        assert_eq!(Series::new("a_total", &[]).0, "a_total");
        assert_eq!(Series::new("a_total", &[("x", "1"), ("y", "q\"\\\n")]).0, "a_total{x=\"1\",y=\"q\\\"\\\\\\n\"}");
    }

    #[test]
    fn counts_add_up_across_handles_and_survive_a_cut_file() {
        let dir = temp_dir("count");
        let ok = Series::new("jobgate_requests_total", &[("route", "/"), ("status", "200")]);
        let bad = Series::new("jobgate_requests_total", &[("route", "/"), ("status", "404")]);
        Counters::in_state_dir(&dir).count(std::slice::from_ref(&ok));
        Counters::in_state_dir(&dir).count(&[ok.clone(), bad.clone()]);
        let read = Counters::in_state_dir(&dir).read().expect("read");
        assert_eq!(read.get(&ok), Some(&2));
        assert_eq!(read.get(&bad), Some(&1));
        let text = fs::read_to_string(dir.join("metrics")).expect("file");
        fs::write(dir.join("metrics"), &text[..text.len() - 5]).expect("cut");
        Counters::in_state_dir(&dir).count(std::slice::from_ref(&bad));
        let read = Counters::in_state_dir(&dir).read().expect("read");
        assert_eq!(read.get(&ok), Some(&2), "the lines before the cut are kept");
        assert_eq!(read.get(&bad), Some(&1), "the cut line is lost, and counting goes on");
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn series_are_capped() {
        let dir = temp_dir("cap");
        let counters = Counters::in_state_dir(&dir);
        let many: Vec<Series> = (0..MAX_SERIES + 10)
            .map(|i| Series::new("jobgate_requests_total", &[("status", &i.to_string())]))
            .collect();
        counters.count(&many);
        assert_eq!(counters.read().expect("read").len(), MAX_SERIES);
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn proc_locks_lines() {
        assert_eq!(locked_file("1: FLOCK  ADVISORY  WRITE 1234 00:2d:5678 0 EOF"), Some((0x2d, 5678)));
        assert_eq!(locked_file("2: POSIX  ADVISORY  READ 99 fd:01:42 0 EOF"), Some((0xfd << 32 | 1, 42)));
        assert_eq!(locked_file("garbage"), None);
        assert_eq!(device_number(0x2d), 0x2d, "major 0, minor 45");
        assert_eq!(device_number((0xfd << 8) | 1), 0xfd << 32 | 1);
    }

    #[test]
    fn held_slots_are_seen_without_taking_them() {
        let dir = temp_dir("slots");
        fs::create_dir_all(&dir).expect("dir");
        let held = fs::File::create(dir.join("slot-1")).expect("slot");
        held.lock().expect("lock");
        fs::File::create(dir.join("slot-0")).expect("slot");
        assert_eq!(slots_held(&dir, 3), 1);
        drop(held);
        assert_eq!(slots_held(&dir, 3), 0);
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn renders_counters_and_each_jobs_last_run() {
        let prefix = Prefix::parse("ci-test-").expect("prefix");
        let job = |name: &str| JobName::parse(&prefix, name).expect("job");
        let mut counters = BTreeMap::new();
        counters.insert(Series::new("jobgate_requests_total", &[("route", "/"), ("status", "200")]), 3);
        let finished = UnitState {
            loaded: true,
            active_state: "inactive".into(),
            result: "exit-code".into(),
            exit_status: Some(3),
            started: Some(100),
            finished: Some(160),
            ..UnitState::default()
        };
        let running = UnitState { active_state: "active".into(), started: Some(200), ..finished.clone() };
        let gauges = Gauges {
            follow_open: 1,
            follow_max: 16,
            jobs: vec![(job("ci-test-a"), finished), (job("ci-test-b"), running)],
        };
        let text = render(&counters, &gauges);
        for line in [
            "# TYPE jobgate_requests_total counter",
            "jobgate_requests_total{route=\"/\",status=\"200\"} 3",
            "jobgate_follow_streams 1",
            "jobgate_follow_streams_max 16",
            "jobgate_job_active{job=\"ci-test-a\"} 0",
            "jobgate_job_active{job=\"ci-test-b\"} 1",
            "jobgate_job_last_result{job=\"ci-test-a\",result=\"exit-code\"} 1",
            "jobgate_job_last_exit_status{job=\"ci-test-a\"} 3",
            "jobgate_job_last_start_timestamp_seconds{job=\"ci-test-b\"} 200",
            "jobgate_job_last_duration_seconds{job=\"ci-test-a\"} 60",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
        }
        assert!(!text.contains("jobgate_job_last_result{job=\"ci-test-b\""), "a running job has no result yet");
    }
}
