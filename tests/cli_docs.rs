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
