//! The only place that builds `systemctl`, `journalctl` and `sudo` argument
//! vectors. Each permitted call is one variant of [`Call`], written out
//! literally (as OpenBSD bgplg's command table), built from validated names
//! only, with the unit last and after `--` where the tool accepts it.
#![forbid(unsafe_code)]

use std::ffi::OsString;
use std::path::PathBuf;

use crate::names::{Cursor, Lines, Prefix, RunId, UnitName};

/// How the journal is read: as a member of `systemd-journal` (the default),
/// or through `sudo -n journalctl` where an operator prefers that.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JournalAccess {
    Group,
    Sudo,
}

/// Paths of the programs jobgate runs; absolute, so sudoers rules match them.
#[derive(Clone, Debug)]
pub struct Tools {
    pub systemctl: PathBuf,
    pub journalctl: PathBuf,
    pub sudo: PathBuf,
    pub journal_access: JournalAccess,
}

impl Default for Tools {
    fn default() -> Tools {
        Tools {
            systemctl: PathBuf::from("/usr/bin/systemctl"),
            journalctl: PathBuf::from("/usr/bin/journalctl"),
            sudo: PathBuf::from("/usr/bin/sudo"),
            journal_access: JournalAccess::Group,
        }
    }
}

/// The properties `state` reads; see `parse::UnitState`.
pub const SHOW_PROPERTIES: &str = "LoadState,ActiveState,SubState,Result,ExecMainStatus,\
InvocationID,ExecMainStartTimestamp,ExecMainExitTimestamp";

/// Every call jobgate ever makes.
#[derive(Debug)]
pub enum Call<'a> {
    /// `sudo -n systemctl start --no-block -- UNIT`
    Start(&'a UnitName),
    /// `sudo -n systemctl stop --no-block -- UNIT`
    Stop(&'a UnitName),
    /// `systemctl show --timestamp=unix -p … -- UNIT` (unprivileged)
    Show(&'a UnitName),
    /// `systemctl list-unit-files` of the prefix's services
    ListUnitFiles(&'a Prefix),
    /// `systemctl list-units --all` of the prefix's services
    ListUnits(&'a Prefix),
    /// One run's own output lines, oldest first:
    /// `journalctl -o json -u UNIT _SYSTEMD_INVOCATION_ID=RUN [-n N] [--after-cursor C]`
    RunOutput { unit: &'a UnitName, run: &'a RunId, lines: Option<Lines>, after: Option<&'a Cursor> },
    /// The service manager's messages about a unit (start, exit, result),
    /// newest first: `journalctl -o json -r -u UNIT _PID=1`
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
                argv.push(tools.sudo.clone().into());
                argv.push("-n".into());
                argv.push(tools.systemctl.clone().into());
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
            Call::RunOutput { unit, run, lines, after } => {
                journal_program(&mut argv, tools);
                push_all(&mut argv, &["--no-pager", "--all", "-o", "json"]);
                if let Some(lines) = lines {
                    argv.push("-n".into());
                    argv.push(lines.get().to_string().into());
                }
                if let Some(cursor) = after {
                    argv.push(format!("--after-cursor={}", cursor.as_str()).into());
                }
                push_all(&mut argv, &["-u", unit.as_str()]);
                argv.push(format!("_SYSTEMD_INVOCATION_ID={}", run.as_str()).into());
            }
            Call::ManagerEvents(unit) => {
                journal_program(&mut argv, tools);
                push_all(&mut argv, &["--no-pager", "-o", "json", "-r", "-u", unit.as_str(), "_PID=1"]);
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
    fn reads_are_unprivileged_by_default() {
        let tools = Tools::default();
        let unit = job("ci-test-hello").unit();
        let run = RunId::parse("0123456789abcdef0123456789abcdef").expect("run");
        let show = words(Call::Show(&unit), &tools);
        assert_eq!(show[0], "/usr/bin/systemctl");
        assert_eq!(show[show.len() - 2..], ["--", "ci-test-hello.service"]);
        let cursor = Cursor::parse("s=1;i=2").expect("cursor");
        let lines = Lines::parse("10");
        let output = words(Call::RunOutput { unit: &unit, run: &run, lines, after: Some(&cursor) }, &tools);
        assert_eq!(
            output,
            [
                "/usr/bin/journalctl",
                "--no-pager",
                "--all",
                "-o",
                "json",
                "-n",
                "10",
                "--after-cursor=s=1;i=2",
                "-u",
                "ci-test-hello.service",
                "_SYSTEMD_INVOCATION_ID=0123456789abcdef0123456789abcdef"
            ]
        );
        let events = words(Call::ManagerEvents(&unit), &tools);
        assert_eq!(
            events,
            ["/usr/bin/journalctl", "--no-pager", "-o", "json", "-r", "-u", "ci-test-hello.service", "_PID=1"]
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
