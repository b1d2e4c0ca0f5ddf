//! The manual page and `--help` agree: every option and command that
//! `jobgate --help` (and each command's `--help`) lists is in man/jobgate.8.
//! Runs the binary without privileges; no systemd needed.

use std::process::Command;

const MAN: &str = include_str!("../man/jobgate.8");

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

#[test]
fn every_option_and_command_is_in_the_manual() {
    let mut pending = vec![Vec::<String>::new()];
    let mut checked = 0;
    while let Some(path) = pending.pop() {
        let args: Vec<&str> = path.iter().map(String::as_str).collect();
        let (flags, commands) = listed(&help(&args));
        for flag in flags {
            assert!(MAN.contains(&format!("Fl Fl {flag}")), "--{flag} (jobgate {args:?}) is not in man/jobgate.8");
            checked += 1;
        }
        for command in commands {
            let mut next = path.clone();
            next.push(command);
            let full = next.join(" ");
            assert!(MAN.contains(&format!("Cm {full}")), "command '{full}' is not in man/jobgate.8");
            pending.push(next);
            checked += 1;
        }
    }
    assert!(checked > 20, "only {checked} options and commands found: did the help format change?");
}

#[test]
fn version_matches_the_crate() {
    let out = Command::new(env!("CARGO_BIN_EXE_jobgate")).arg("--version").output().expect("run jobgate");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), format!("jobgate {}", env!("CARGO_PKG_VERSION")));
}
