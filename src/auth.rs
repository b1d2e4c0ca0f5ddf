//! The token file and the authorization decision. Pure over bytes: the file
//! is read by `secure_file`, the decision is a function of plain data.
//!
//! A line is `NAME SCOPE sha256:HEX [JOB-PATTERN…]`; `#` starts a comment.
#![forbid(unsafe_code)]

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::names::JobName;

/// Longest token accepted from a client; jobgate's own are 68 bytes.
pub const MAX_TOKEN_LEN: usize = 256;
/// Longest token NAME.
pub const MAX_NAME_LEN: usize = 64;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Read: list, state, logs, tail, runs.
    Ro,
    /// Read, start and stop.
    Rw,
    /// `GET /metrics` and nothing else: a scraper's token reads no logs,
    /// and a CI token (held by whoever can run a workflow) does not list
    /// every job's results.
    Metrics,
}

impl Scope {
    /// What an unknown scope's error says was expected.
    pub const EXPECTED: &'static str = "expected 'ro', 'rw' or 'metrics'";

    pub fn parse(s: &str) -> Option<Scope> {
        match s {
            "ro" => Some(Scope::Ro),
            "rw" => Some(Scope::Rw),
            "metrics" => Some(Scope::Metrics),
            _ => None,
        }
    }

    /// The scope `s` names, or the one message that says it names none.
    pub fn named(s: &str) -> Result<Scope, String> {
        Scope::parse(s).ok_or_else(|| format!("unknown scope '{}' ({})", s.escape_debug(), Scope::EXPECTED))
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Ro => "ro",
            Scope::Rw => "rw",
            Scope::Metrics => "metrics",
        }
    }

    /// Whether a token of this scope may do what `needs` asks: `rw` covers
    /// `ro`; `metrics` covers only itself and is covered by no other.
    pub fn covers(self, needs: Scope) -> bool {
        matches!(
            (self, needs),
            (Scope::Rw, Scope::Ro | Scope::Rw) | (Scope::Ro, Scope::Ro) | (Scope::Metrics, Scope::Metrics)
        )
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenEntry {
    pub name: String,
    pub scope: Scope,
    hash: [u8; 32],
    /// Globs over job names (`*`, `?`); empty means every job.
    pub patterns: Vec<String>,
}

impl TokenEntry {
    pub fn new(name: String, scope: Scope, token: &str, patterns: Vec<String>) -> TokenEntry {
        TokenEntry { name, scope, hash: sha256(token), patterns }
    }

    /// The line this entry is written as in the token file.
    pub fn line(&self) -> String {
        let mut line = format!("{} {} sha256:{}", self.name, self.scope.as_str(), hex(&self.hash));
        for pattern in &self.patterns {
            line.push(' ');
            line.push_str(pattern);
        }
        line
    }

    /// What this token allows.
    pub fn grant(&self) -> Grant {
        Grant { name: self.name.clone(), scope: self.scope, patterns: self.patterns.clone() }
    }
}

/// What one static token, or one trust line a CI token satisfies, allows:
/// a scope on the jobs its patterns match. Its name is what the log and the
/// per-token state (tail cursors, stream slots) know the caller by.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    pub name: String,
    pub scope: Scope,
    /// Globs over job names (`*`, `?`); empty means every job.
    pub patterns: Vec<String>,
}

impl Grant {
    pub fn may_see(&self, job: &JobName) -> bool {
        self.patterns.is_empty() || self.patterns.iter().any(|p| glob_match(p.as_bytes(), job.as_str().as_bytes()))
    }
}

/// The pure policy: the first grant whose scope covers the action and one
/// of whose patterns (or none at all) matches the job; `None`: denied.
pub fn decide<'a>(grants: &'a [Grant], needs: Scope, job: Option<&JobName>) -> Option<&'a Grant> {
    grants.iter().find(|g| g.scope.covers(needs) && job.is_none_or(|job| g.may_see(job)))
}

#[derive(Clone, Debug, Default)]
pub struct TokenFile {
    pub entries: Vec<TokenEntry>,
}

impl TokenFile {
    /// Parses the file's text; `origin` names the file in errors.
    pub fn parse(origin: &str, text: &str) -> Result<TokenFile, String> {
        let mut entries: Vec<TokenEntry> = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let at = format!("{origin}:{}", i + 1);
            let line = raw.split('#').next().unwrap_or_default().trim();
            if line.is_empty() {
                continue;
            }
            let entry = parse_line(line).map_err(|e| format!("{at}: {e}"))?;
            if entries.iter().any(|e| e.name == entry.name) {
                return Err(format!("{at}: duplicate token name '{}'", entry.name));
            }
            entries.push(entry);
        }
        Ok(TokenFile { entries })
    }

    /// The entry whose hash matches `token`. Every entry is compared, in
    /// constant time, so timing says nothing about which (or whether) one did.
    pub fn lookup(&self, token: &str) -> Option<&TokenEntry> {
        if token.is_empty() || token.len() > MAX_TOKEN_LEN {
            return None;
        }
        let hash = sha256(token);
        let mut found = None;
        for entry in &self.entries {
            if bool::from(entry.hash.ct_eq(&hash)) {
                found = Some(entry);
            }
        }
        found
    }

    pub fn render(&self) -> String {
        self.entries.iter().map(|e| e.line() + "\n").collect()
    }
}

pub fn valid_token_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// A job pattern: the job-name bytes plus the glob characters `*` and `?`.
pub fn valid_pattern(pattern: &str) -> bool {
    !pattern.is_empty()
        && pattern.len() <= crate::names::MAX_JOB_LEN
        && pattern.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-' | b'@' | b'*' | b'?'))
}

/// A token name, or the one message that says why `name` is not one.
pub fn check_token_name(name: &str) -> Result<(), String> {
    if valid_token_name(name) {
        return Ok(());
    }
    Err(format!("invalid token name '{}' (expected 1 to {MAX_NAME_LEN} of [a-zA-Z0-9_.-])", name.escape_debug()))
}

/// A job pattern, or the one message that says why `pattern` is not one.
pub fn check_pattern(pattern: &str) -> Result<(), String> {
    if valid_pattern(pattern) {
        return Ok(());
    }
    Err(format!("invalid job pattern '{}' (expected job-name characters, '*' and '?')", pattern.escape_debug()))
}

fn parse_line(line: &str) -> Result<TokenEntry, String> {
    let mut fields = line.split_whitespace();
    let (Some(name), Some(scope), Some(hash)) = (fields.next(), fields.next(), fields.next()) else {
        return Err("expected 'NAME SCOPE sha256:HEX [JOB-PATTERN...]'".into());
    };
    check_token_name(name)?;
    let scope = Scope::named(scope)?;
    let hash = hash
        .strip_prefix("sha256:")
        .and_then(parse_hex32)
        .ok_or_else(|| "invalid hash (expected 'sha256:' and 64 lowercase hex digits)".to_string())?;
    let mut patterns = Vec::new();
    for pattern in fields {
        check_pattern(pattern)?;
        patterns.push(pattern.to_string());
    }
    Ok(TokenEntry { name: name.to_string(), scope, hash, patterns })
}

pub fn sha256(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn parse_hex32(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 || !s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// Shell-style glob with `*` (any run of bytes) and `?` (one byte).
pub fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut backtrack: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                backtrack = Some((p, t));
                p += 1;
            }
            Some(&c) if c == b'?' || c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match backtrack {
                Some((bp, bt)) => {
                    p = bp + 1;
                    t = bt + 1;
                    backtrack = Some((bp, bt + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::Prefix;

    const TOKEN: &str = "jgt_0123";

    fn job(name: &str) -> JobName {
        JobName::parse(&Prefix::parse("ci-test-").expect("prefix"), name).expect("job")
    }

    fn file_with(line_tail: &str) -> TokenFile {
        let text = format!("# tokens\n\nci {} sha256:{}{line_tail}\n", "rw", hex(&sha256(TOKEN)));
        TokenFile::parse("tokens", &text).expect("parses")
    }

    #[test]
    fn lookup_by_hash() {
        let file = file_with("");
        assert_eq!(file.lookup(TOKEN).map(|e| e.name.as_str()), Some("ci"));
        assert!(file.lookup("jgt_0124").is_none());
        assert!(file.lookup("").is_none());
        assert!(file.lookup(&"a".repeat(MAX_TOKEN_LEN + 1)).is_none());
    }

    #[test]
    fn policy_table() {
        let ro = [TokenEntry::new("r".into(), Scope::Ro, "x", vec![]).grant()];
        let rw_deploy = [TokenEntry::new("d".into(), Scope::Rw, "y", vec!["ci-test-deploy*".into()]).grant()];
        let deploy = job("ci-test-deploy@main");
        let hello = job("ci-test-hello");
        assert!(decide(&ro, Scope::Ro, Some(&hello)).is_some(), "allow! ro reads");
        assert!(decide(&ro, Scope::Ro, None).is_some(), "allow! ro lists");
        assert!(decide(&ro, Scope::Rw, Some(&hello)).is_none(), "DENY! ro starts");
        assert!(decide(&rw_deploy, Scope::Rw, Some(&deploy)).is_some(), "allow! rw in pattern");
        assert!(decide(&rw_deploy, Scope::Ro, Some(&deploy)).is_some(), "allow! rw reads");
        assert!(decide(&rw_deploy, Scope::Rw, Some(&hello)).is_none(), "DENY! rw outside pattern");
        assert!(decide(&rw_deploy, Scope::Ro, Some(&hello)).is_none(), "DENY! read outside pattern");
    }

    #[test]
    fn globs() {
        assert!(glob_match(b"ci-test-*", b"ci-test-a"));
        assert!(glob_match(b"*", b""));
        assert!(glob_match(b"ci-test-deploy@*", b"ci-test-deploy@main"));
        assert!(glob_match(b"ci-test-?", b"ci-test-a"));
        assert!(!glob_match(b"ci-test-?", b"ci-test-ab"));
        assert!(glob_match(b"*a*b*", b"xxaxxbxx"));
        assert!(!glob_match(b"ci-test-deploy", b"ci-test-deploy@main"));
    }

    #[test]
    fn parse_errors_name_file_and_line() {
        let hash = hex(&sha256(TOKEN));
        let cases = [
            ("ci\n", "tokens:1: expected 'NAME SCOPE sha256:HEX [JOB-PATTERN...]'"),
            (
                &*format!("\nci admin sha256:{hash}\n"),
                "tokens:2: unknown scope 'admin' (expected 'ro', 'rw' or 'metrics')",
            ),
            ("ci ro md5:abc\n", "tokens:1: invalid hash (expected 'sha256:' and 64 lowercase hex digits)"),
            (
                &*format!("ci ro sha256:{}\n", hash.to_uppercase()),
                "tokens:1: invalid hash (expected 'sha256:' and 64 lowercase hex digits)",
            ),
            (
                &*format!("c/i ro sha256:{hash}\n"),
                "tokens:1: invalid token name 'c/i' (expected 1 to 64 of [a-zA-Z0-9_.-])",
            ),
            (
                &*format!("ci ro sha256:{hash} ci-test-;x\n"),
                "tokens:1: invalid job pattern 'ci-test-;x' (expected job-name characters, '*' and '?')",
            ),
            (&*format!("ci ro sha256:{hash}\nci rw sha256:{hash}\n"), "tokens:2: duplicate token name 'ci'"),
        ];
        for (text, want) in cases {
            assert_eq!(TokenFile::parse("tokens", text).err().as_deref(), Some(want), "for {text:?}");
        }
    }

    #[test]
    fn render_round_trips() {
        let file = file_with(" ci-test-deploy* ci-test-hello # trailing comment");
        let again = TokenFile::parse("tokens", &file.render()).expect("parses");
        assert_eq!(again.entries, file.entries);
        assert_eq!(again.entries[0].patterns, ["ci-test-deploy*", "ci-test-hello"]);
    }
}
