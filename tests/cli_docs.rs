//! The manual page and `--help` agree: every option and command that
//! `jobgate --help` (and each command's `--help`) lists is in man/jobgate.8,
//! and the shell completions (contrib/completions) offer it. Runs the
//! binary without privileges; no systemd needed.

use std::process::Command;

const MAN: &str = include_str!("../man/jobgate.8");
const BASH_COMPLETION: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/contrib/completions/jobgate.bash");
const ZSH_COMPLETION: &str = include_str!("../contrib/completions/_jobgate");

fn help(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_jobgate")).args(args).arg("--help").output().expect("run jobgate");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The `--flag` names and the command names a help text lists.
fn listed(help: &str) -> (Vec<String>, Vec<String>) {
    let (mut flags, mut commands) = (Vec::new(), Vec::new());
    let mut section = "";
    for line in help.lines() {
        match line.trim_end() {
            heading if heading.ends_with(':') && !heading.starts_with(' ') => section = line.trim_end(),
            _ if line.starts_with("  ") && !line.starts_with("   ") => {
                let word = line.split_whitespace().next().unwrap_or_default().trim_end_matches(',');
                match section {
                    "Options:" if word.starts_with("--") && word != "--help" => flags.push(word[2..].to_string()),
                    "Commands:" => commands.push(word.to_string()),
                    _ => {}
                }
            }
            _ => {}
        }
    }
    (flags, commands)
}

/// Every command path (`[]`, `["serve"]`, `["token", "add"]`, ...) with the
/// flags and subcommands its `--help` lists, walked from `jobgate --help`.
fn command_tree() -> Vec<(Vec<String>, Vec<String>, Vec<String>)> {
    let mut pending = vec![Vec::<String>::new()];
    let mut tree = Vec::new();
    while let Some(path) = pending.pop() {
        let args: Vec<&str> = path.iter().map(String::as_str).collect();
        let (flags, commands) = listed(&help(&args));
        for command in &commands {
            let mut next = path.clone();
            next.push(command.clone());
            pending.push(next);
        }
        tree.push((path, flags, commands));
    }
    let listed: usize = tree.iter().map(|(_, flags, commands)| flags.len() + commands.len()).sum();
    assert!(listed > 20, "only {listed} options and commands found: did the help format change?");
    tree
}

#[test]
fn every_option_and_command_is_in_the_manual() {
    for (path, flags, commands) in command_tree() {
        for flag in flags {
            assert!(MAN.contains(&format!("Fl Fl {flag}")), "--{flag} (jobgate {path:?}) is not in man/jobgate.8");
        }
        for command in commands {
            let full = [path.as_slice(), &[command]].concat().join(" ");
            assert!(MAN.contains(&format!("Cm {full}")), "command '{full}' is not in man/jobgate.8");
        }
    }
}

/// What the bash completion offers for the command line `words` (the last
/// one is being completed), as bash would run it.
fn bash_completes(words: &[&str]) -> Vec<String> {
    const SCRIPT: &str =
        r#"source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _jobgate; printf '%s\n' "${COMPREPLY[@]}""#;
    let out = Command::new("bash")
        .args(["--norc", "--noprofile", "-c", SCRIPT, "bash", BASH_COMPLETION])
        .args(words)
        .output()
        .expect("run bash");
    assert!(out.status.success(), "bash completion for {words:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect()
}

#[test]
fn bash_completion_offers_every_option_and_command() {
    for (path, flags, commands) in command_tree() {
        let mut words: Vec<&str> = ["jobgate"].into_iter().chain(path.iter().map(String::as_str)).collect();
        words.push("--");
        let offered = bash_completes(&words);
        for flag in flags {
            let flag = format!("--{flag}");
            assert!(offered.contains(&flag), "bash: `{}` does not offer {flag}: {offered:?}", words.join(" "));
        }
        words.pop();
        words.push("");
        let offered = bash_completes(&words);
        for command in commands {
            assert!(offered.contains(&command), "bash: `{}` does not offer {command}: {offered:?}", words.join(" "));
        }
    }
}

/// The text of the `case` arm labelled `label` (as in `inetd|cgi)`) in
/// `text`, up to its `;;`, nested `case`s included.
fn zsh_arm<'a>(text: &'a str, label: &str) -> Option<&'a str> {
    let mut lines = text.split_inclusive('\n');
    let mut start = 0;
    for line in lines.by_ref() {
        start += line.len();
        let head = line.trim();
        if head.ends_with(')') && head.trim_end_matches(')').split('|').any(|l| l == label) {
            break;
        }
    }
    if start >= text.len() {
        return None;
    }
    let (mut end, mut depth) = (start, 0);
    for line in lines {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.first().copied() {
            Some("case") => depth += 1,
            Some("esac") => depth -= 1,
            Some(";;") if depth == 0 => return Some(&text[start..end]),
            _ => {}
        }
        end += line.len();
    }
    None
}

#[test]
fn zsh_completion_offers_every_option_and_command() {
    for (path, flags, commands) in command_tree() {
        // The options of `jobgate` itself come before the first arm; a
        // command's are in its arm, a subcommand's in its arm within that.
        let mut arm = ZSH_COMPLETION.split("case $state in").next();
        if !path.is_empty() {
            arm = path.iter().try_fold(ZSH_COMPLETION, |text, name| zsh_arm(text, name));
        }
        let arm = arm.unwrap_or_else(|| panic!("zsh: no case arm for `jobgate {}`", path.join(" ")));
        for flag in flags {
            assert!(
                arm.contains(&format!("'--{flag}[")) || arm.contains(&format!("'*--{flag}[")),
                "zsh: `jobgate {}` does not offer --{flag}",
                path.join(" ")
            );
        }
        for command in commands {
            assert!(ZSH_COMPLETION.contains(&format!("'{command}:")), "zsh: no description of command {command}");
        }
    }
}

#[test]
fn the_debian_changelog_has_the_crate_version() {
    let changelog = include_str!("../debian/changelog");
    let first = changelog.lines().next().unwrap_or_default();
    assert!(
        first.starts_with(&format!("jobgate ({}-", env!("CARGO_PKG_VERSION"))),
        "debian/changelog's first entry ({first}) is not version {}-N: add an entry",
        env!("CARGO_PKG_VERSION")
    );
}

#[test]
fn version_matches_the_crate() {
    let out = Command::new(env!("CARGO_BIN_EXE_jobgate")).arg("--version").output().expect("run jobgate");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), format!("jobgate {}", env!("CARGO_PKG_VERSION")));
}

/// A token of an argument vector in the manual: a word with `|` between
/// alternatives, `...` for any words, or `[ ]` around words that may be
/// left out.
enum Item {
    Word(Vec<String>),
    Any,
    Optional(Vec<Item>),
}

fn items(line: &str) -> Vec<Item> {
    let mut out = Vec::new();
    let mut group: Option<Vec<Item>> = None;
    for word in line.split_whitespace() {
        let (opens, word) = word.strip_prefix('[').map_or((false, word), |w| (true, w));
        let (closes, word) = word.strip_suffix(']').map_or((false, word), |w| (true, w));
        if opens {
            group = Some(Vec::new());
        }
        let item = if word == "..." { Item::Any } else { Item::Word(word.split('|').map(str::to_string).collect()) };
        match &mut group {
            Some(words) => words.push(item),
            None => out.push(item),
        }
        if closes {
            out.push(Item::Optional(group.take().unwrap_or_default()));
        }
    }
    out
}

fn matches(template: &[Item], argv: &[String]) -> bool {
    let Some((first, rest)) = template.split_first() else { return argv.is_empty() };
    match first {
        Item::Any => (0..=argv.len()).any(|n| matches(rest, &argv[n..])),
        Item::Word(alternatives) => argv.first().is_some_and(|w| alternatives.contains(w)) && matches(rest, &argv[1..]),
        Item::Optional(words) => {
            matches(rest, argv) || (0..=argv.len()).any(|n| matches(words, &argv[..n]) && matches(rest, &argv[n..]))
        }
    }
}

/// An argument vector as the manual writes it: programs by name, the job's
/// unit as JOB.service, the prefix's pattern, cursors and times as C and
/// @S.U.
fn as_written(argv: &[std::ffi::OsString]) -> Vec<String> {
    let words = argv.iter().map(|a| a.to_string_lossy().into_owned());
    words
        .map(|w| match w.as_str() {
            "ci-test-x.service" => "JOB.service".to_string(),
            "ci-test-*.service" => "PREFIX*.service".to_string(),
            "_SYSTEMD_UNIT=ci-test-x.service" => "_SYSTEMD_UNIT=JOB.service".to_string(),
            w if w.starts_with('/') => w.rsplit('/').next().unwrap_or(w).to_string(),
            w if w.starts_with("--cursor=") => "--cursor=C".to_string(),
            w if w.starts_with("--since=@") => "--since=@S.U".to_string(),
            w if w.starts_with("--until=@") => "--until=@S.U".to_string(),
            w => w.to_string(),
        })
        .collect()
}

#[test]
fn every_argument_vector_is_in_the_manual() {
    use jobgate::names::{Cursor, JobName, Prefix};
    use jobgate::systemd::argv::{Call, EntryRead, Privilege, Probe, Seek, Tools};
    let block = MAN.split(".Bd -literal -offset indent\nsudo -n systemctl").nth(1).expect("the list of calls");
    let block = format!("sudo -n systemctl{}", block.split(".Ed").next().unwrap_or_default());
    let templates: Vec<Vec<Item>> = block.lines().map(items).collect();
    let prefix = Prefix::parse("ci-test-").expect("prefix");
    let unit = JobName::parse(&prefix, "ci-test-x").expect("job").unit();
    let cursor = Cursor::parse("s=1;i=2").expect("cursor");
    let (sudo, polkit) = (Tools::default(), Tools { privilege: Privilege::Polkit, ..Tools::default() });
    let mut calls: Vec<(Call, &Tools)> = vec![
        (Call::Start(&unit), &sudo),
        (Call::Stop(&unit), &sudo),
        (Call::Start(&unit), &polkit),
        (Call::Stop(&unit), &polkit),
        (Call::Show(&unit), &sudo),
        (Call::ListUnitFiles(&prefix), &sudo),
        (Call::ListUnits(&prefix), &sudo),
        (Call::UnitMessages { unit: &unit, since: 1, until: 2 }, &sudo),
        (Call::ManagerEvents(&unit), &sudo),
        (Call::ManagerVersion, &sudo),
        (Call::JournalProbe, &sudo),
    ];
    calls.extend(Probe::ALL.map(|probe| (Call::SudoProbe(probe, &prefix), &sudo)));
    for seek in [Seek::Edge, Seek::After(&cursor), Seek::Since(1)] {
        for (backward, follow, manager) in (0..8).map(|b| (b & 1 != 0, b & 2 != 0, b & 4 != 0)) {
            let read = EntryRead { unit: &unit, seek, backward, follow, manager };
            calls.push((Call::UnitEntries(read), &sudo));
        }
    }
    for (call, tools) in calls {
        let argv = as_written(&call.argv(tools));
        assert!(templates.iter().any(|t| matches(t, &argv)), "{} is not in jobgate(8)", argv.join(" "));
    }
}
