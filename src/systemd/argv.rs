//! The only place that builds `systemctl`, `journalctl` and `sudo` argument
//! vectors. Each permitted call is one variant of [`Call`], written out
//! literally (as OpenBSD bgplg's command table), built from validated names
//! only, with the unit last and after `--` where the tool accepts it.
#![forbid(unsafe_code)]

use std::ffi::OsString;
use std::path::PathBuf;

use crate::names::{Cursor, Prefix, UnitName};

/// How the journal is read: as a member of `systemd-journal` (the default),
/// or through `sudo -n journalctl` where an operator prefers that.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JournalAccess {
    Group,
    Sudo,
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
    pub journal_access: JournalAccess,
    pub privilege: Privilege,
}

impl Default for Tools {
    fn default() -> Tools {
        Tools {
            systemctl: PathBuf::from("/usr/bin/systemctl"),
            journalctl: PathBuf::from("/usr/bin/journalctl"),
            sudo: PathBuf::from("/usr/bin/sudo"),
            journal_access: JournalAccess::Group,
            privilege: Privilege::Sudo,
        }
    }
}

/// The properties `state` reads; see `parse::UnitState`.
pub const SHOW_PROPERTIES: &str = "LoadState,ActiveState,SubState,Result,ExecMainStatus,\
InvocationID,ExecMainStartTimestamp,ExecMainExitTimestamp";

/// The journal fields jobgate reads; the rest is not even printed.
const OUTPUT_FIELDS: &str =
    "--output-fields=MESSAGE,_PID,_SYSTEMD_UNIT,_SYSTEMD_INVOCATION_ID,UNIT,INVOCATION_ID,MESSAGE_ID,UNIT_RESULT,EXIT_STATUS";

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
    /// A unit's journal entries after a cursor, oldest first: its own
    /// output and the manager's messages about it. Which run a line belongs
    /// to is worked out by the reader (see `ops::EntryStream`), since
    /// journald cannot tag the lines of a process that exits at once.
    /// `journalctl -o export [--after-cursor=C] -u UNIT`; with `follow`,
    /// `--follow --no-tail` (every entry after C, then new ones as written).
    UnitEntries { unit: &'a UnitName, after: Option<&'a Cursor>, follow: bool },
    /// The same entries newest first, from the journal's end or from the
    /// one before `before` (`--after-cursor` read backwards):
    /// `journalctl -o export -r [--after-cursor=C] -u UNIT`
    UnitEntriesBackward { unit: &'a UnitName, before: Option<&'a Cursor> },
    /// The service manager's messages about a unit (start, exit, result),
    /// newest first: `journalctl -o export -r -u UNIT _PID=1`
    ManagerEvents(&'a UnitName),
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
                let pattern = format!("{}*.service", prefix.as_str());
                push_all(&mut argv, &["--type=service", "--no-legend", "--no-pager", "--plain", "--", &pattern]);
            }
            Call::UnitEntries { unit, after, follow } => {
                journal_program(&mut argv, tools);
                push_all(&mut argv, &["--no-pager", "--all", "-o", "export", OUTPUT_FIELDS]);
                if *follow {
                    push_all(&mut argv, &["--follow", "--no-tail"]);
                }
                if let Some(after) = after {
                    argv.push(format!("--after-cursor={}", after.as_str()).into());
                }
                push_all(&mut argv, &["-u", unit.as_str()]);
            }
            Call::UnitEntriesBackward { unit, before } => {
                journal_program(&mut argv, tools);
                push_all(&mut argv, &["--no-pager", "--all", "-o", "export", OUTPUT_FIELDS, "-r"]);
                if let Some(before) = before {
                    argv.push(format!("--after-cursor={}", before.as_str()).into());
                }
                push_all(&mut argv, &["-u", unit.as_str()]);
            }
            Call::ManagerEvents(unit) => {
                journal_program(&mut argv, tools);
                push_all(
                    &mut argv,
                    &["--no-pager", "-o", "export", OUTPUT_FIELDS, "-r", "-u", unit.as_str(), "_PID=1"],
                );
            }
            Call::SudoProbe(probe, prefix) => {
                let unit = format!("{}jobgate-check.service", prefix.as_str());
                argv.push(tools.sudo.clone().into());
                push_all(&mut argv, &["-n", "-l"]);
                argv.push(tools.systemctl.clone().into());
                let second = format!("{}jobgate-check2.service", prefix.as_str());
                let args: &[&str] = match probe {
                    Probe::Start => &["start", "--no-block", "--", &unit],
                    Probe::Stop => &["stop", "--no-block", "--", &unit],
                    Probe::OtherVerb => &["restart", "--no-block", "--", &unit],
                    Probe::UnitWithoutPrefix => &["start", "--no-block", "--", "ssh.service"],
                    Probe::SecondUnit => &["start", "--no-block", "--", &unit, &second],
                };
                push_all(&mut argv, args);
            }
        }
        argv
    }
}

fn journal_program(argv: &mut Vec<OsString>, tools: &Tools) {
    if tools.journal_access == JournalAccess::Sudo {
        argv.push(tools.sudo.clone().into());
        argv.push("-n".into());
    }
    argv.push(tools.journalctl.clone().into());
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
        let entries = words(Call::UnitEntries { unit: &unit, after: Some(&cursor), follow: false }, &tools);
        assert_eq!(
            entries,
            [
                "/usr/bin/journalctl",
                "--no-pager",
                "--all",
                "-o",
                "export",
                OUTPUT_FIELDS,
                "--after-cursor=s=1;i=2",
                "-u",
                "ci-test-hello.service",
            ]
        );
        let backward = words(Call::UnitEntriesBackward { unit: &unit, before: Some(&cursor) }, &tools);
        assert_eq!(backward[6..], ["-r", "--after-cursor=s=1;i=2", "-u", "ci-test-hello.service"]);
        let follow = words(Call::UnitEntries { unit: &unit, after: None, follow: true }, &tools);
        assert_eq!(follow[6..], ["--follow", "--no-tail", "-u", "ci-test-hello.service"]);
        let events = words(Call::ManagerEvents(&unit), &tools);
        assert_eq!(
            events,
            [
                "/usr/bin/journalctl",
                "--no-pager",
                "-o",
                "export",
                OUTPUT_FIELDS,
                "-r",
                "-u",
                "ci-test-hello.service",
                "_PID=1"
            ]
        );
    }

    #[test]
    fn journal_through_sudo_when_configured() {
        let tools = Tools { journal_access: JournalAccess::Sudo, ..Tools::default() };
        let unit = job("ci-test-hello").unit();
        assert_eq!(words(Call::ManagerEvents(&unit), &tools)[..3], ["/usr/bin/sudo", "-n", "/usr/bin/journalctl"]);
    }

    #[test]
    fn listing_uses_a_pattern_built_from_the_prefix() {
        let prefix = Prefix::parse("ci-test-").expect("prefix");
        let files = words(Call::ListUnitFiles(&prefix), &Tools::default());
        assert_eq!(files.last().map(String::as_str), Some("ci-test-*.service"));
        assert_eq!(files[1], "list-unit-files");
    }
}
