//! Redaction of job output before it leaves the host. The redaction file
//! (`--redact FILE`) has one rule a line, optionally scoped to jobs:
//!
//! ```text
//! skip REGEX                     drop every line that matches
//! strip REGEX                    remove each match
//! mask REGEX                     replace each match with ***
//! [ci-test-deploy*] mask REGEX   the same, for jobs matching the glob only
//! ```
//!
//! Patterns are the `regex` crate's (linear time: no pattern can hang a
//! request), compiled once at start. `skip` is tested on the line as the job
//! wrote it; then `strip` and `mask` rules edit it in file order.
#![forbid(unsafe_code)]

use std::borrow::Cow;
use std::path::Path;

use regex::Regex;

use crate::auth::{check_pattern, glob_match};
use crate::names::JobName;

/// What a match replaces in `mask` rules.
pub const MASK: &str = "***";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Skip,
    Strip,
    Mask,
}

#[derive(Debug)]
struct Rule {
    jobs: Option<String>,
    kind: Kind,
    regex: Regex,
}

/// Every rule of the redaction file.
#[derive(Debug, Default)]
pub struct Redactions {
    rules: Vec<Rule>,
}

impl Redactions {
    /// Reads the file under the same rules as the token file (owner, mode).
    pub fn load(path: &Path) -> Result<Redactions, String> {
        let text = crate::secure_file::read_private(path)?;
        Redactions::parse(&path.display().to_string(), &text)
    }

    /// Parses the file's text; `origin` names the file in errors.
    pub fn parse(origin: &str, text: &str) -> Result<Redactions, String> {
        let mut rules = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            rules.push(parse_rule(line).map_err(|e| format!("{origin}:{}: {e}", i + 1))?);
        }
        Ok(Redactions { rules })
    }

    /// The rules that apply to `job`.
    pub fn for_job(&self, job: &JobName) -> Redactor<'_> {
        let applies =
            |r: &&Rule| r.jobs.as_ref().is_none_or(|glob| glob_match(glob.as_bytes(), job.as_str().as_bytes()));
        let rules: Vec<&Rule> = self.rules.iter().filter(applies).collect();
        Redactor { rules }
    }
}

/// The rules for one job.
pub struct Redactor<'a> {
    rules: Vec<&'a Rule>,
}

impl Redactor<'_> {
    /// The line as it may be shown, or `None` if it is to be dropped.
    pub fn apply(&self, line: String) -> Option<String> {
        if self.rules.iter().any(|r| r.kind == Kind::Skip && r.regex.is_match(&line)) {
            return None;
        }
        let mut line = line;
        for rule in &self.rules {
            let replacement = match rule.kind {
                Kind::Skip => continue,
                Kind::Strip => "",
                Kind::Mask => MASK,
            };
            if let Cow::Owned(edited) = rule.regex.replace_all(&line, replacement) {
                line = edited;
            }
        }
        Some(line)
    }
}

fn parse_rule(line: &str) -> Result<Rule, String> {
    let (jobs, rest) = match line.strip_prefix('[') {
        Some(scoped) => {
            let (glob, rest) = scoped.split_once(']').ok_or("missing ']' after the job pattern")?;
            check_pattern(glob)?;
            (Some(glob.to_string()), rest.trim_start())
        }
        None => (None, line),
    };
    let (word, pattern) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
    let kind = match word {
        "skip" => Kind::Skip,
        "strip" => Kind::Strip,
        "mask" => Kind::Mask,
        other => return Err(format!("unknown rule '{}' (expected skip, strip or mask)", other.escape_debug())),
    };
    let pattern = pattern.trim();
    if pattern.is_empty() {
        return Err(format!("'{word}' needs a regular expression"));
    }
    let regex = Regex::new(pattern).map_err(|e| {
        // The regex crate's message spans lines; its last line says what is wrong.
        let why = e.to_string();
        format!(
            "invalid regular expression '{}': {}",
            pattern.escape_debug(),
            why.lines().last().unwrap_or_default().trim()
        )
    })?;
    if kind != Kind::Skip && regex.is_match("") {
        return Err(format!("'{word}' pattern '{}' matches the empty string", pattern.escape_debug()));
    }
    Ok(Rule { jobs, kind, regex })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::Prefix;

    fn job(name: &str) -> JobName {
        JobName::parse(&Prefix::parse("ci-test-").expect("prefix"), name).expect("job")
    }

    const FILE: &str = "# redaction rules\n\
        skip ^DEBUG\n\
        strip /home/[a-z]+\n\
        mask (?i)token=\\S+\n\
        \n\
        [ci-test-deploy*] mask secret-[0-9]+\n";

    #[test]
    fn skip_strip_mask_in_order() {
        let rules = Redactions::parse("redact", FILE).expect("parses");
        let hello = rules.for_job(&job("ci-test-hello"));
        assert_eq!(hello.apply("DEBUG a token=abc".into()), None);
        assert_eq!(hello.apply("in /home/alice/x".into()).as_deref(), Some("in /x"));
        assert_eq!(hello.apply("TOKEN=abc and token=def".into()).as_deref(), Some("*** and ***"));
        assert_eq!(hello.apply("secret-42".into()).as_deref(), Some("secret-42"), "scoped to deploy jobs");
        let deploy = rules.for_job(&job("ci-test-deploy@main"));
        assert_eq!(deploy.apply("secret-42 /home/bob".into()).as_deref(), Some("*** "));
        assert_eq!(deploy.apply("plain".into()).as_deref(), Some("plain"));
    }

    #[test]
    fn errors_name_file_and_line() {
        let cases = [
            ("skip (unclosed\n", "redact:1: invalid regular expression '(unclosed': error: unclosed group"),
            ("\nhide x\n", "redact:2: unknown rule 'hide' (expected skip, strip or mask)"),
            ("mask\n", "redact:1: 'mask' needs a regular expression"),
            ("strip a*\n", "redact:1: 'strip' pattern 'a*' matches the empty string"),
            (
                "[ci-test-;x] mask a\n",
                "redact:1: invalid job pattern 'ci-test-;x' (expected job-name characters, '*' and '?')",
            ),
            ("[ci-test-x mask a\n", "redact:1: missing ']' after the job pattern"),
        ];
        for (text, want) in cases {
            assert_eq!(Redactions::parse("redact", text).err().as_deref(), Some(want), "for {text:?}");
        }
    }

    #[test]
    fn no_rules_change_nothing() {
        let rules = Redactions::default();
        assert_eq!(rules.for_job(&job("ci-test-a")).apply("x".into()).as_deref(), Some("x"));
    }
}
