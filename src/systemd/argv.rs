//! The only place that builds `systemctl`, `journalctl` and `sudo` argument
//! vectors. Each permitted call is one variant of [`Call`], written out
//! literally (as OpenBSD bgplg's command table), built from validated names
//! only, with the unit last and after `--` where the tool accepts it.
#![forbid(unsafe_code)]

use std::ffi::OsString;
use std::path::PathBuf;

use crate::names::{Cursor, Prefix, UnitName};

/// Where the journal's entries are read: from its files in-process (the
/// default; journalctl where that reader cannot), or through journalctl.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JournalReader {
    Native,
    Journalctl,
}

/// How start and stop get their privilege: `sudo -n systemctl …` (the
/// default), or `systemctl …` directly, allowed by a polkit rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Privilege {
    Sudo,
    Polkit,
}

/// Paths of the programs jobgate runs; absolute, so sudoers rules match them.
#[derive(Clone, Debug)]
pub struct Tools {
    pub systemctl: PathBuf,
    pub journalctl: PathBuf,
    pub sudo: PathBuf,
    pub journal_reader: JournalReader,
    pub privilege: Privilege,
}

impl Default for Tools {
    fn default() -> Tools {
        Tools {
            systemctl: PathBuf::from("/usr/bin/systemctl"),
            journalctl: PathBuf::from("/usr/bin/journalctl"),
            sudo: PathBuf::from("/usr/bin/sudo"),
            journal_reader: JournalReader::Native,
            privilege: Privilege::Sudo,
        }
    }
}

/// The properties `state` reads; see `parse::UnitState`.
pub const SHOW_PROPERTIES: &str = "LoadState,ActiveState,SubState,Result,ExecMainStatus,NRestarts,\
InvocationID,ExecMainStartTimestamp,ExecMainExitTimestamp";

/// The journal fields a read of a unit's entries asks for; the rest is not
/// even printed. Its own lines need the text, the writer (its stdout
/// stream, or its pid for lines not written to stdout) and the run; the
/// manager's messages about it, the unit, the run and what happened. The
/// in-process reader (`journal`) keeps the same fields.
pub const ENTRY_FIELDS: &[&str] = &[
    "MESSAGE",
    "_PID",
    "_STREAM_ID",
    "_SYSTEMD_UNIT",
    "_SYSTEMD_INVOCATION_ID",
    "UNIT",
    "INVOCATION_ID",
    "MESSAGE_ID",
    "UNIT_RESULT",
    "EXIT_STATUS",
];
/// The fields of the unit's own lines only (fewer fields: a faster read).
pub const LINE_FIELDS: &[&str] = &["MESSAGE", "_PID", "_STREAM_ID", "_SYSTEMD_UNIT", "_SYSTEMD_INVOCATION_ID"];
/// The fields of the manager's messages only: no text is needed.
pub const MANAGER_FIELDS: &[&str] = &["_PID", "UNIT", "INVOCATION_ID", "MESSAGE_ID", "UNIT_RESULT", "EXIT_STATUS"];

fn output_fields(fields: &[&str]) -> String {
    format!("--output-fields={}", fields.join(","))
}

/// Where a journal read begins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seek<'a> {
    /// At the journal's first entry (its last, read backwards).
    Edge,
    /// Just after this cursor (just before it, read backwards). Built as
    /// `--cursor=C`, which starts at C itself, or at the first entry the
    /// read matches past it: `--after-cursor` skips one entry more when C
    /// is not one the read matches (a manager message, in a read of the
    /// unit's own lines). The reader drops C's own entry (`journal::journalctl`).
    After(&'a Cursor),
    /// At the first entry from this time on (microseconds since the epoch).
    Since(u64),
}

/// One read of a unit's journal entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryRead<'a> {
    pub unit: &'a UnitName,
    pub seek: Seek<'a>,
    /// Newest first.
    pub backward: bool,
    /// Go on with new entries as they are written.
    pub follow: bool,
    /// The manager's messages about the unit too (`-u UNIT`), not only its
    /// own lines (`_SYSTEMD_UNIT=UNIT`).
    pub manager: bool,
}

/// Every call jobgate ever makes.
#[derive(Debug)]
pub enum Call<'a> {
    /// `sudo -n systemctl start --no-block -- UNIT`, or with polkit
    /// `systemctl --no-ask-password start --no-block -- UNIT`
    Start(&'a UnitName),
    /// `sudo -n systemctl stop --no-block -- UNIT`, or the polkit form
    Stop(&'a UnitName),
    /// `systemctl show --timestamp=unix -p … -- UNIT` (unprivileged)
    Show(&'a UnitName),
    /// `systemctl list-unit-files` of the prefix's services
    ListUnitFiles(&'a Prefix),
    /// `systemctl list-units --all` of the prefix's services
    ListUnits(&'a Prefix),
    /// A unit's journal entries, read as [`EntryRead`] says. Which run a
    /// line belongs to is worked out by the reader (`runs::attrib`), since
    /// journald cannot tag the lines of a process that exits at once.
    /// `journalctl --no-pager --all -o export --output-fields=… [-r]
    /// [--follow --no-tail] [--cursor=C | --since=@S.U]
    /// (-u UNIT | _SYSTEMD_UNIT=UNIT)`
    UnitEntries(EntryRead<'a>),
    /// The text of a unit's own lines between two times (microseconds
    /// since the epoch, both included), oldest first, without any other
    /// field: for the stretch of a finished run where every line of the
    /// unit is the run's, at the speed of `-o cat`.
    /// `journalctl --no-pager --all -o cat --since=@S --until=@U _SYSTEMD_UNIT=UNIT`
    UnitMessages { unit: &'a UnitName, since: u64, until: u64 },
    /// The service manager's messages about a unit (start, exit, result),
    /// newest first: `journalctl --no-pager -o export --output-fields=… -r
    /// -u UNIT _PID=1`
    ManagerEvents(&'a UnitName),
    /// For `/healthz`: whether the service manager answers.
    /// `systemctl show --property=Version --value`
    ManagerVersion,
    /// For `/healthz`: whether the journal can be read (exit 1 when no
    /// journal file could be opened). `journalctl --no-pager --quiet --lines=0`
    JournalProbe,
    /// For `jobgate check`: asks sudo whether it would run a call, without
    /// running it: `sudo -n -l systemctl …` (exit 0 means allowed).
    SudoProbe(Probe, &'a Prefix),
}

/// The calls `check` asks sudo about: the two jobgate needs, and three it
/// must be refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Probe {
    Start,
    Stop,
    OtherVerb,
    UnitWithoutPrefix,
    SecondUnit,
}

impl Probe {
    pub const ALL: [Probe; 5] =
        [Probe::Start, Probe::Stop, Probe::OtherVerb, Probe::UnitWithoutPrefix, Probe::SecondUnit];

    /// Whether a correct rule lets this call through.
    pub fn should_be_allowed(self) -> bool {
        matches!(self, Probe::Start | Probe::Stop)
    }
}

impl Call<'_> {
    /// The argument vector, program first.
    pub fn argv(&self, tools: &Tools) -> Vec<OsString> {
        let mut argv: Vec<OsString> = Vec::new();
        match self {
            Call::Start(unit) | Call::Stop(unit) => {
                let verb = if matches!(self, Call::Start(_)) { "start" } else { "stop" };
                match tools.privilege {
                    Privilege::Sudo => {
                        argv.push(tools.sudo.clone().into());
                        argv.push("-n".into());
                        argv.push(tools.systemctl.clone().into());
                    }
                    Privilege::Polkit => {
                        argv.push(tools.systemctl.clone().into());
                        argv.push("--no-ask-password".into());
                    }
                }
                push_all(&mut argv, &[verb, "--no-block", "--", unit.as_str()]);
            }
            Call::Show(unit) => {
                argv.push(tools.systemctl.clone().into());
                push_all(&mut argv, &["show", "--timestamp=unix", "-p", SHOW_PROPERTIES, "--", unit.as_str()]);
            }
            Call::ListUnitFiles(prefix) | Call::ListUnits(prefix) => {
                argv.push(tools.systemctl.clone().into());
                let verb: &[&str] = match self {
                    Call::ListUnits(_) => &["list-units", "--all"],
                    _ => &["list-unit-files"],
                };
                push_all(&mut argv, verb);
                let pattern = service_pattern(prefix);
                push_all(&mut argv, &["--type=service", "--no-legend", "--no-pager", "--plain", "--", &pattern]);
            }
            Call::UnitEntries(read) => push_unit_entries(&mut argv, read, tools),
            Call::UnitMessages { unit, since, until } => {
                journal_program(&mut argv, tools);
                push_all(&mut argv, &["--no-pager", "--all", "-o", "cat"]);
                argv.push(format!("--since={}", at_time(*since)).into());
                argv.push(format!("--until={}", at_time(*until)).into());
                argv.push(format!("_SYSTEMD_UNIT={}", unit.as_str()).into());
            }
            Call::ManagerEvents(unit) => {
                journal_program(&mut argv, tools);
                push_all(
                    &mut argv,
                    &[
                        "--no-pager",
                        "-o",
                        "export",
                        &output_fields(MANAGER_FIELDS),
                        "-r",
                        "-u",
                        unit.as_str(),
                        "_PID=1",
                    ],
                );
            }
            Call::ManagerVersion => {
                argv.push(tools.systemctl.clone().into());
                push_all(&mut argv, &["show", "--property=Version", "--value"]);
            }
            Call::JournalProbe => {
                journal_program(&mut argv, tools);
                push_all(&mut argv, &["--no-pager", "--quiet", "--lines=0"]);
            }
            Call::SudoProbe(probe, prefix) => push_sudo_probe(&mut argv, *probe, prefix, tools),
        }
        argv
    }
}

/// `journalctl -o export` of a unit's entries, as `read` says.
fn push_unit_entries(argv: &mut Vec<OsString>, read: &EntryRead<'_>, tools: &Tools) {
    journal_program(argv, tools);
    let fields = output_fields(if read.manager { ENTRY_FIELDS } else { LINE_FIELDS });
    push_all(argv, &["--no-pager", "--all", "-o", "export", &fields]);
    if read.backward {
        argv.push("-r".into());
    }
    if read.follow {
        push_all(argv, &["--follow", "--no-tail"]);
    }
    match read.seek {
        Seek::Edge => {}
        Seek::After(cursor) => argv.push(format!("--cursor={}", cursor.as_str()).into()),
        Seek::Since(us) => argv.push(format!("--since={}", at_time(us)).into()),
    }
    if read.manager {
        push_all(argv, &["-u", read.unit.as_str()]);
    } else {
        argv.push(format!("_SYSTEMD_UNIT={}", read.unit.as_str()).into());
    }
}

/// `sudo -n -l systemctl …`: whether sudo would run a call (nothing is run).
fn push_sudo_probe(argv: &mut Vec<OsString>, probe: Probe, prefix: &Prefix, tools: &Tools) {
    let unit = format!("{}jobgate-check.service", prefix.as_str());
    argv.push(tools.sudo.clone().into());
    push_all(argv, &["-n", "-l"]);
    argv.push(tools.systemctl.clone().into());
    let second = format!("{}jobgate-check2.service", prefix.as_str());
    let args: &[&str] = match probe {
        Probe::Start => &["start", "--no-block", "--", &unit],
        Probe::Stop => &["stop", "--no-block", "--", &unit],
        Probe::OtherVerb => &["restart", "--no-block", "--", &unit],
        Probe::UnitWithoutPrefix => &["start", "--no-block", "--", "ssh.service"],
        Probe::SecondUnit => &["start", "--no-block", "--", &unit, &second],
    };
    push_all(argv, args);
}

/// A time as journalctl takes it to the microsecond: `@SECONDS.MICROS`.
fn at_time(us: u64) -> String {
    format!("@{}.{:06}", us / 1_000_000, us % 1_000_000)
}

fn journal_program(argv: &mut Vec<OsString>, tools: &Tools) {
    argv.push(tools.journalctl.clone().into());
}

/// The glob of the prefix's services, for systemctl's listings and the
/// bus's (`systemd::bus`): both ask the manager with the same pattern.
pub fn service_pattern(prefix: &Prefix) -> String {
    format!("{}*.service", prefix.as_str())
}

fn push_all(argv: &mut Vec<OsString>, args: &[&str]) {
    argv.extend(args.iter().map(OsString::from));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::JobName;

    fn job(name: &str) -> JobName {
        let prefix = Prefix::parse("ci-test-").expect("prefix");
        JobName::parse(&prefix, name).expect("valid job")
    }

    fn words(call: Call, tools: &Tools) -> Vec<String> {
        call.argv(tools).into_iter().map(|a| a.to_string_lossy().into_owned()).collect()
    }

    #[test]
    fn start_and_stop_go_through_sudo_with_the_unit_last() {
        let tools = Tools::default();
        let unit = job("ci-test-deploy@main").unit();
        assert_eq!(
            words(Call::Start(&unit), &tools),
            ["/usr/bin/sudo", "-n", "/usr/bin/systemctl", "start", "--no-block", "--", "ci-test-deploy@main.service"]
        );
        assert_eq!(
            words(Call::Stop(&unit), &tools),
            ["/usr/bin/sudo", "-n", "/usr/bin/systemctl", "stop", "--no-block", "--", "ci-test-deploy@main.service"]
        );
    }

    #[test]
    fn polkit_mode_calls_systemctl_directly() {
        let tools = Tools { privilege: Privilege::Polkit, ..Tools::default() };
        let unit = job("ci-test-a").unit();
        assert_eq!(
            words(Call::Stop(&unit), &tools),
            ["/usr/bin/systemctl", "--no-ask-password", "stop", "--no-block", "--", "ci-test-a.service"]
        );
    }

    #[test]
    fn reads_are_unprivileged_by_default() {
        let tools = Tools::default();
        let unit = job("ci-test-hello").unit();
        let show = words(Call::Show(&unit), &tools);
        assert_eq!(show[0], "/usr/bin/systemctl");
        assert_eq!(show[show.len() - 2..], ["--", "ci-test-hello.service"]);
        let cursor = Cursor::parse("s=1;i=2").expect("cursor");
        let read = EntryRead { unit: &unit, seek: Seek::After(&cursor), backward: false, follow: false, manager: true };
        assert_eq!(
            words(Call::UnitEntries(read), &tools),
            [
                "/usr/bin/journalctl",
                "--no-pager",
                "--all",
                "-o",
                "export",
                "--output-fields=MESSAGE,_PID,_STREAM_ID,_SYSTEMD_UNIT,_SYSTEMD_INVOCATION_ID,UNIT,INVOCATION_ID,MESSAGE_ID,UNIT_RESULT,EXIT_STATUS",
                "--cursor=s=1;i=2",
                "-u",
                "ci-test-hello.service",
            ]
        );
        let backward = EntryRead { backward: true, manager: false, ..read };
        assert_eq!(
            words(Call::UnitEntries(backward), &tools)[5..],
            [
                "--output-fields=MESSAGE,_PID,_STREAM_ID,_SYSTEMD_UNIT,_SYSTEMD_INVOCATION_ID",
                "-r",
                "--cursor=s=1;i=2",
                "_SYSTEMD_UNIT=ci-test-hello.service"
            ]
        );
        let follow = EntryRead { seek: Seek::Since(1_795_394_165_000_042), follow: true, ..read };
        assert_eq!(
            words(Call::UnitEntries(follow), &tools)[6..],
            ["--follow", "--no-tail", "--since=@1795394165.000042", "-u", "ci-test-hello.service"]
        );
        let messages = words(Call::UnitMessages { unit: &unit, since: 1_000_001, until: 2_000_000 }, &tools);
        assert_eq!(
            messages[1..],
            [
                "--no-pager",
                "--all",
                "-o",
                "cat",
                "--since=@1.000001",
                "--until=@2.000000",
                "_SYSTEMD_UNIT=ci-test-hello.service"
            ]
        );
        let events = words(Call::ManagerEvents(&unit), &tools);
        assert_eq!(
            events,
            [
                "/usr/bin/journalctl",
                "--no-pager",
                "-o",
                "export",
                "--output-fields=_PID,UNIT,INVOCATION_ID,MESSAGE_ID,UNIT_RESULT,EXIT_STATUS",
                "-r",
                "-u",
                "ci-test-hello.service",
                "_PID=1"
            ]
        );
    }

    #[test]
    fn listing_uses_a_pattern_built_from_the_prefix() {
        let prefix = Prefix::parse("ci-test-").expect("prefix");
        let files = words(Call::ListUnitFiles(&prefix), &Tools::default());
        assert_eq!(files.last().map(String::as_str), Some("ci-test-*.service"));
        assert_eq!(files[1], "list-unit-files");
    }
}
