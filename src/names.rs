//! Validated names: the only way a string from a client or a user becomes
//! something that may reach a `systemctl` or `journalctl` argument vector.
//!
//! Every type here is built through an allow-list constructor (one byte class
//! per position, a first-byte rule, a length bound), in the manner of
//! sudo-rs' `Token::accept`. Nothing here does I/O.
#![forbid(unsafe_code)]

use std::fmt;

/// Longest job name (prefix, name and instance, without `.service`).
pub const MAX_JOB_LEN: usize = 128;
/// Longest template instance (the part after `@`).
pub const MAX_INSTANCE_LEN: usize = 64;
/// Longest prefix; leaves room for a name after it.
pub const MAX_PREFIX_LEN: usize = 64;
/// Default and highest number of lines one `logs` answer holds.
pub const DEFAULT_LINES: u32 = 1000;
pub const MAX_LINES: u32 = 20_000;
/// Longest journal cursor accepted from a client (systemd's are ~120 bytes).
pub const MAX_CURSOR_LEN: usize = 256;

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

fn is_instance_byte(b: u8) -> bool {
    is_name_byte(b) || b == b'.'
}

/// The configured unit prefix, e.g. `ci-test-`: `[a-zA-Z0-9_-]+`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Prefix(String);

impl Prefix {
    pub fn parse(s: &str) -> Result<Prefix, String> {
        if s.is_empty() || s.len() > MAX_PREFIX_LEN {
            return Err(format!(
                "invalid prefix '{}' (expected 1 to {MAX_PREFIX_LEN} of [a-zA-Z0-9_-])",
                s.escape_debug()
            ));
        }
        if !s.bytes().all(is_name_byte) {
            return Err(format!("invalid prefix '{}' (expected only [a-zA-Z0-9_-])", s.escape_debug()));
        }
        Ok(Prefix(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A job: `PREFIX` + `[a-zA-Z0-9_-]+`, optionally `@INSTANCE` with INSTANCE
/// `[a-zA-Z0-9._-]{1,64}` not starting with `.` or `-` and without `..`;
/// at most 128 bytes in all. It names the unit `JOB.service`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JobName(String);

impl JobName {
    /// Accepts `s` only if it is a job under `prefix`; the error is the same
    /// short text for every reason, since it goes back to a client.
    pub fn parse(prefix: &Prefix, s: &str) -> Result<JobName, InvalidJob> {
        if s.len() > MAX_JOB_LEN {
            return Err(InvalidJob);
        }
        let rest = s.strip_prefix(prefix.as_str()).ok_or(InvalidJob)?;
        let (base, instance) = match rest.split_once('@') {
            Some((base, instance)) => (base, Some(instance)),
            None => (rest, None),
        };
        if base.is_empty() || !base.bytes().all(is_name_byte) {
            return Err(InvalidJob);
        }
        if let Some(instance) = instance {
            let first_ok = instance.bytes().next().is_some_and(|b| b != b'.' && b != b'-');
            if !first_ok
                || instance.len() > MAX_INSTANCE_LEN
                || !instance.bytes().all(is_instance_byte)
                || instance.contains("..")
            {
                return Err(InvalidJob);
            }
        }
        Ok(JobName(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The systemd unit this job names.
    pub fn unit(&self) -> UnitName {
        UnitName(format!("{}.service", self.0))
    }
}

impl fmt::Display for JobName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The one error for a bad job name: it is shown to clients as-is.
#[derive(Debug, PartialEq, Eq)]
pub struct InvalidJob;

impl fmt::Display for InvalidJob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Invalid job")
    }
}

/// A unit name, only ever made from a [`JobName`] (`JOB.service`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnitName(String);

impl UnitName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UnitName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A run: systemd's invocation id, exactly 32 lowercase hex digits.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RunId(String);

impl RunId {
    pub fn parse(s: &str) -> Option<RunId> {
        let ok = s.len() == 32 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        ok.then(|| RunId(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Which run a request means: the last one, or one by id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RunSelector {
    Last,
    Id(RunId),
}

impl RunSelector {
    pub fn parse(s: &str) -> Option<RunSelector> {
        if s == "last" {
            Some(RunSelector::Last)
        } else {
            RunId::parse(s).map(RunSelector::Id)
        }
    }
}

/// A line count for `logs`: 1 to [`MAX_LINES`]; larger requests are capped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lines(u32);

impl Lines {
    pub fn parse(s: &str) -> Option<Lines> {
        if s.is_empty() || s.len() > 10 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let n: u64 = s.parse().ok()?;
        (n >= 1).then(|| Lines(n.min(u64::from(MAX_LINES)) as u32))
    }

    pub fn get(self) -> u32 {
        self.0
    }
}

impl Default for Lines {
    fn default() -> Lines {
        Lines(DEFAULT_LINES)
    }
}

/// A journal cursor as journalctl prints it (`s=…;i=…;b=…;m=…;t=…;x=…`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cursor(String);

impl Cursor {
    pub fn parse(s: &str) -> Option<Cursor> {
        let ok = !s.is_empty()
            && s.len() <= MAX_CURSOR_LEN
            && !s.starts_with('-')
            && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'=' || b == b';');
        ok.then(|| Cursor(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Where this cursor's entry stands: its sequence and number in it, and
    /// its time (`t=`, microseconds since the epoch; 0 if missing). Read in
    /// one pass: every entry a reader hands out has its place taken.
    pub fn place(&self) -> Option<Place> {
        let (mut sequence, mut number, mut realtime) = (None, None, 0);
        for field in self.0.split(';') {
            match field.split_at_checked(2) {
                Some(("s=", hex)) if sequence.is_none() => sequence = Some(u128::from_str_radix(hex, 16).ok()?),
                Some(("i=", hex)) if number.is_none() => number = Some(u64::from_str_radix(hex, 16).ok()?),
                Some(("t=", hex)) if realtime == 0 => realtime = u64::from_str_radix(hex, 16).unwrap_or(0),
                _ => {}
            }
        }
        Some(Place { sequence: sequence?, number: number?, realtime })
    }
}

/// An entry's place in the journal. Entries of one sequence (`s=`) are in
/// the order of their numbers; across sequences (journald restarted with
/// new files) only their times order them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Place {
    pub sequence: u128,
    pub number: u64,
    pub realtime: u64,
}

impl Place {
    /// Whether this entry comes before `other` in the journal.
    pub fn is_before(&self, other: &Place) -> bool {
        if self.sequence == other.sequence {
            self.number < other.number
        } else {
            self.realtime < other.realtime
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prefix() -> Prefix {
        Prefix::parse("ci-test-").expect("valid prefix")
    }

    #[test]
    fn accepts_jobs_of_the_contract() {
        for ok in [
            "ci-test-hello",
            "ci-test-a",
            "ci-test-x_y-Z9",
            "ci-test-deploy@main",
            "ci-test-deploy@v1.2_3",
            "ci-test-deploy@feature-x",
            "ci-test---",
        ] {
            let job = JobName::parse(&prefix(), ok);
            assert!(job.is_ok(), "allow! {ok}");
            assert_eq!(job.map(|j| j.to_string()), Ok(ok.to_string()));
        }
    }

    #[test]
    fn rejects_everything_else() {
        let long_base = format!("ci-test-{}", "a".repeat(121));
        let long_instance = format!("ci-test-d@{}", "a".repeat(65));
        for bad in [
            "",
            "ci-test-",
            "ci-test",
            "CI-TEST-hello",
            "ssh",
            "hello",
            "ci-test-hello.service",
            "ci-test-../x",
            "ci-test-a/b",
            "ci-test-a b",
            "ci-test-a\nb",
            "ci-test-a\0",
            "ci-test-a%2F",
            "ci-test-*",
            "ci-test-?",
            "ci-test-a;id",
            "ci-test-$(id)",
            "-ci-test-a",
            "--help",
            "ci-test-deploy@",
            "ci-test-deploy@.x",
            "ci-test-deploy@-x",
            "ci-test-deploy@a..b",
            "ci-test-deploy@a@b",
            "ci-test-deploy@a/b",
            "ci-test-@main",
            "ci-tеst-hello",
            "ci-test-héllo",
            long_base.as_str(),
            long_instance.as_str(),
        ] {
            assert_eq!(JobName::parse(&prefix(), bad), Err(InvalidJob), "DENY! {bad:?}");
        }
    }

    #[test]
    fn length_bound_is_exact() {
        let at_limit = format!("ci-test-{}", "a".repeat(MAX_JOB_LEN - 8));
        assert!(JobName::parse(&prefix(), &at_limit).is_ok());
        let over = format!("{at_limit}a");
        assert!(JobName::parse(&prefix(), &over).is_err());
    }

    #[test]
    fn units() {
        let job = JobName::parse(&prefix(), "ci-test-deploy@main").expect("valid");
        assert_eq!(job.unit().as_str(), "ci-test-deploy@main.service");
    }

    #[test]
    fn prefixes() {
        assert!(Prefix::parse("ci-test-").is_ok());
        for bad in ["", "ci test", "ci/", "a.b", "é"] {
            assert!(Prefix::parse(bad).is_err(), "DENY! {bad:?}");
        }
    }

    #[test]
    fn run_ids_lines_cursors() {
        assert!(RunId::parse("0123456789abcdef0123456789abcdef").is_some());
        for bad in ["", "0123456789ABCDEF0123456789ABCDEF", "0123456789abcdef0123456789abcde", "../../etc/passwd"] {
            assert!(RunId::parse(bad).is_none(), "DENY! {bad:?}");
        }
        assert_eq!(RunSelector::parse("last"), Some(RunSelector::Last));
        assert_eq!(Lines::parse("5").map(Lines::get), Some(5));
        assert_eq!(Lines::parse("999999").map(Lines::get), Some(MAX_LINES));
        for bad in ["", "0", "-1", "+1", "1e3", "abc", "99999999999"] {
            assert!(Lines::parse(bad).is_none(), "DENY! {bad:?}");
        }
        let cursor = Cursor::parse("s=ab12;i=1f;b=cd;m=1;t=2;x=3").expect("cursor");
        let later = Cursor::parse("s=ab12;i=20;b=cd;m=1;t=2;x=3").expect("cursor");
        let other_sequence = Cursor::parse("s=ffff;i=ff;t=1").expect("cursor");
        let place = |c: &Cursor| c.place().expect("a place");
        assert!(place(&cursor).is_before(&place(&later)) && !place(&cursor).is_before(&place(&cursor)));
        assert!(!place(&later).is_before(&place(&cursor)), "by number within one sequence");
        assert!(place(&other_sequence).is_before(&place(&cursor)), "by time across sequences");
        for bad in ["", "--all", "a b", "s=1\n", &"a".repeat(300)] {
            assert!(Cursor::parse(bad).is_none(), "DENY! {bad:?}");
        }
    }
}
