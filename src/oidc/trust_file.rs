//! The trust file (`--trust`, jobgate-trust(5)): which CI issuers sign
//! identity tokens, and which claims let such a token act on which jobs.
//! Pure over text.
//!
//! ```text
//! issuer NAME ISS AUDIENCE JWKS-FILE [max-age=SECONDS] [alg=RS256,ES256]
//! trust NAME ISSUER SCOPE JOB-PATTERN... -- CLAIM=VALUE[,VALUE]...
//! ```
#![forbid(unsafe_code)]

use std::path::PathBuf;

use jsonwebtoken::Algorithm;

use crate::auth::{check_pattern, valid_token_name, Scope};

/// How long a token may live (`exp - iat`) unless the issuer line says.
pub const DEFAULT_MAX_AGE: u64 = 900;
/// The longest `max-age=` accepted: a day.
pub const MAX_MAX_AGE: u64 = 86_400;

/// Claims the issuer line checks; a trust line cannot name them.
pub const RESERVED_CLAIMS: &[&str] = &["iss", "aud", "exp", "iat", "nbf", "jti"];
/// Claims that name a repository or project by an id that is never reused,
/// unlike a name, which a new owner can take after a deletion.
pub const IMMUTABLE_IDS: &[&str] = &["repository_id", "project_id"];

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Issuer {
    pub name: String,
    /// The `iss` a token must carry, exactly.
    pub iss: String,
    /// The `aud` a token must carry, exactly: jobgate's own.
    pub audience: String,
    pub jwks: PathBuf,
    pub max_age: u64,
    /// The algorithms its keys sign with; never taken from a token.
    pub algorithms: Vec<Algorithm>,
    /// Where the line is, for messages (`FILE:LINE`).
    pub at: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrustLine {
    pub name: String,
    pub issuer: String,
    pub scope: Scope,
    pub patterns: Vec<String>,
    /// Every claim must hold: its value one of these, exactly.
    pub claims: Vec<(String, Vec<String>)>,
    pub at: String,
}

impl TrustLine {
    pub fn pins(&self, claim: &str) -> bool {
        self.claims.iter().any(|(name, _)| name == claim)
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustFile {
    pub issuers: Vec<Issuer>,
    pub lines: Vec<TrustLine>,
}

impl TrustFile {
    /// Parses the file's text; `origin` names the file in errors. Refuses
    /// what would trust too much: an audience a CI service gives every
    /// token by default, an `rw` line that pins no immutable id.
    pub fn parse(origin: &str, text: &str) -> Result<TrustFile, String> {
        let mut file = TrustFile::default();
        for (i, raw) in text.lines().enumerate() {
            let at = format!("{origin}:{}", i + 1);
            let line = raw.split('#').next().unwrap_or_default().trim();
            let mut words = line.split_whitespace();
            let parsed = match words.next() {
                None => continue,
                Some("issuer") => parse_issuer(words.collect(), &at).map(|issuer| {
                    let duplicate = file.issuers.iter().any(|i| i.name == issuer.name);
                    file.issuers.push(issuer);
                    duplicate
                }),
                Some("trust") => parse_trust(words.collect(), &at).map(|trust| {
                    let duplicate = file.lines.iter().any(|l| l.name == trust.name);
                    file.lines.push(trust);
                    duplicate
                }),
                Some(other) => Err(format!("unknown line '{}' (expected 'issuer' or 'trust')", other.escape_debug())),
            };
            match parsed {
                Ok(false) => {}
                Ok(true) => return Err(format!("{at}: a second line of this name")),
                Err(e) => return Err(format!("{at}: {e}")),
            }
        }
        for line in &file.lines {
            if !file.issuers.iter().any(|i| i.name == line.issuer) {
                return Err(format!("{}: no issuer line named '{}'", line.at, line.issuer));
            }
        }
        Ok(file)
    }

    pub fn issuer(&self, name: &str) -> Option<&Issuer> {
        self.issuers.iter().find(|i| i.name == name)
    }
}

fn parse_issuer(words: Vec<&str>, at: &str) -> Result<Issuer, String> {
    let [name, iss, audience, jwks, options @ ..] = words.as_slice() else {
        return Err("expected 'issuer NAME ISS AUDIENCE JWKS-FILE [max-age=SECONDS] [alg=RS256,ES256]'".into());
    };
    check_name(name)?;
    if !iss.starts_with("https://") {
        return Err(format!("issuer '{}' is not an https:// URL", iss.escape_debug()));
    }
    if default_audience(iss, audience) {
        return Err(format!(
            "audience '{}' is one the CI service gives tokens by default, so any of its jobs could use it; \
             choose one of your own, e.g. https://ci.example.org/jobgate",
            audience.escape_debug()
        ));
    }
    if !jwks.starts_with('/') {
        return Err(format!("JWKS file '{}' is not an absolute path", jwks.escape_debug()));
    }
    let mut issuer = Issuer {
        name: name.to_string(),
        iss: iss.to_string(),
        audience: audience.to_string(),
        jwks: PathBuf::from(jwks),
        max_age: DEFAULT_MAX_AGE,
        algorithms: vec![Algorithm::RS256],
        at: at.to_string(),
    };
    for option in options {
        match option.split_once('=') {
            Some(("max-age", n)) => {
                issuer.max_age = n
                    .parse()
                    .ok()
                    .filter(|n| (1..=MAX_MAX_AGE).contains(n))
                    .ok_or_else(|| format!("max-age '{}' is not 1 to {MAX_MAX_AGE} seconds", n.escape_debug()))?;
            }
            Some(("alg", list)) => {
                issuer.algorithms = list.split(',').map(algorithm).collect::<Result<_, _>>()?;
            }
            _ => return Err(format!("unknown option '{}' (expected max-age= or alg=)", option.escape_debug())),
        }
    }
    Ok(issuer)
}

/// RS256 and ES256 only: the ones CI services sign with. An HMAC
/// algorithm would make the public key a shared secret.
fn algorithm(name: &str) -> Result<Algorithm, String> {
    match name {
        "RS256" => Ok(Algorithm::RS256),
        "ES256" => Ok(Algorithm::ES256),
        _ => Err(format!("algorithm '{}' (expected RS256 or ES256)", name.escape_debug())),
    }
}

/// An audience every token of the service carries unless the job asks
/// for another: GitHub's `https://github.com/OWNER`, Cirrus CI's
/// `https://cirrus-ci.com/github/OWNER`, or the issuer's own URL.
pub fn default_audience(iss: &str, audience: &str) -> bool {
    audience.starts_with("https://github.com/")
        || audience.starts_with("https://cirrus-ci.com/")
        || audience.trim_end_matches('/') == iss.trim_end_matches('/')
}

fn parse_trust(words: Vec<&str>, at: &str) -> Result<TrustLine, String> {
    let usage = "expected 'trust NAME ISSUER SCOPE JOB-PATTERN... -- CLAIM=VALUE[,VALUE]...'";
    let Some(split) = words.iter().position(|w| *w == "--") else { return Err(usage.into()) };
    let (head, claims) = (&words[..split], &words[split + 1..]);
    let [name, issuer, scope, patterns @ ..] = head else { return Err(usage.into()) };
    check_name(name)?;
    let scope = match Scope::parse(scope) {
        Some(scope @ (Scope::Ro | Scope::Rw)) => scope,
        _ => return Err(format!("scope '{}' (expected 'ro' or 'rw')", scope.escape_debug())),
    };
    if patterns.is_empty() {
        return Err("no job pattern: name the jobs this line may act on".into());
    }
    for pattern in patterns {
        check_pattern(pattern)?;
    }
    if claims.is_empty() {
        return Err("no claim after '--': a line that checks no claim trusts every job of the issuer".into());
    }
    let mut line = TrustLine {
        name: name.to_string(),
        issuer: issuer.to_string(),
        scope,
        patterns: patterns.iter().map(|p| p.to_string()).collect(),
        claims: Vec::new(),
        at: at.to_string(),
    };
    for claim in claims {
        let Some((claim, values)) = claim.split_once('=') else {
            return Err(format!("'{}' is not CLAIM=VALUE[,VALUE]", claim.escape_debug()));
        };
        let valid_name = !claim.is_empty()
            && claim.len() <= 64
            && claim.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !valid_name {
            return Err(format!("invalid claim name '{}' (expected [a-z0-9_])", claim.escape_debug()));
        }
        if RESERVED_CLAIMS.contains(&claim) {
            return Err(format!("claim '{claim}' is checked by the issuer line, not here"));
        }
        if line.pins(claim) {
            return Err(format!("claim '{claim}' named twice"));
        }
        let values: Vec<String> = values.split(',').map(str::to_string).collect();
        if values.iter().any(String::is_empty) {
            return Err(format!("claim '{claim}' has an empty value"));
        }
        line.claims.push((claim.to_string(), values));
    }
    if line.scope == Scope::Rw && !IMMUTABLE_IDS.iter().any(|id| line.pins(id)) {
        return Err(format!(
            "an rw line must pin {}: a repository's name can be taken by someone else once it is deleted or renamed",
            IMMUTABLE_IDS.join(" or ")
        ));
    }
    Ok(line)
}

fn check_name(name: &str) -> Result<(), String> {
    if valid_token_name(name) {
        Ok(())
    } else {
        Err(format!("invalid name '{}' (expected 1 to 64 of [a-zA-Z0-9_.-])", name.escape_debug()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "# GitHub Actions\n\
        issuer github https://token.actions.githubusercontent.com https://ci.example.org/jobgate /var/lib/jobgate/jwks/github.json max-age=900\n\
        issuer gitlab https://gitlab.com https://ci.example.org/jobgate /var/lib/jobgate/jwks/gitlab.json max-age=3600 alg=RS256,ES256\n\
        trust deploy-main github rw ci-test-deploy@main -- repository_id=123456789 ref=refs/heads/main event_name=push,workflow_dispatch\n\
        trust status github ro ci-test-* -- repository_owner_id=4242\n";

    #[test]
    fn parses_issuers_and_trust_lines() {
        let file = TrustFile::parse("trust", GOOD).expect("parses");
        assert_eq!(file.issuers.len(), 2);
        let github = file.issuer("github").expect("github");
        assert_eq!((github.max_age, github.algorithms.as_slice()), (900, &[Algorithm::RS256][..]));
        assert_eq!(file.issuer("gitlab").map(|i| i.algorithms.len()), Some(2));
        let deploy = &file.lines[0];
        assert_eq!(
            (deploy.scope, deploy.patterns.as_slice(), deploy.at.as_str()),
            (Scope::Rw, &["ci-test-deploy@main".to_string()][..], "trust:4")
        );
        assert_eq!(
            deploy.claims[2],
            ("event_name".to_string(), vec!["push".to_string(), "workflow_dispatch".to_string()])
        );
    }

    #[test]
    fn refuses_what_would_trust_too_much() {
        let issuer =
            "issuer github https://token.actions.githubusercontent.com https://ci.example.org/jobgate /j.json\n";
        let cases: &[(&str, &str)] = &[
            ("issuer gh https://token.actions.githubusercontent.com https://github.com/octo /j.json", "by default"),
            ("issuer gl https://gitlab.com https://gitlab.com/ /j.json", "by default"),
            ("issuer c https://oidc.cirrus-ci.com https://cirrus-ci.com/github/octo /j.json", "by default"),
            ("issuer x http://example.org aud /j.json", "https://"),
            ("issuer x https://example.org aud j.json", "absolute"),
            ("issuer x https://example.org aud /j.json alg=HS256", "algorithm 'HS256'"),
            ("issuer x https://example.org aud /j.json alg=none", "algorithm 'none'"),
            ("issuer x https://example.org aud /j.json max-age=0", "max-age"),
            ("issuer x https://example.org aud /j.json max-age=abc", "max-age"),
            ("issuer x https://example.org aud /j.json colour=red", "unknown option"),
            ("trust a github rw ci-test-a -- ref=refs/heads/main", "must pin repository_id or project_id"),
            ("trust a github ro ci-test-a", "expected 'trust"),
            ("trust a github ro ci-test-a --", "no claim"),
            ("trust a github ro -- repository_id=1", "no job pattern"),
            ("trust a github admin ci-test-a -- repository_id=1", "scope 'admin'"),
            ("trust a github metrics ci-test-a -- repository_id=1", "scope 'metrics'"),
            ("trust a github ro ci-test-a -- aud=x", "issuer line"),
            ("trust a github ro ci-test-a -- exp=1", "issuer line"),
            ("trust a github ro ci-test-a -- Ref=x", "invalid claim name"),
            ("trust a github ro ci-test-a -- ref=a, ", "empty value"),
            ("trust a github ro ci-test-a -- ref=a ref=b", "named twice"),
            ("trust a github ro ci-test-a -- ref", "CLAIM=VALUE"),
            ("trust a github ro ci-test-a/b -- ref=a", "invalid job pattern"),
            ("trust a nowhere ro ci-test-a -- ref=a", "no issuer line named 'nowhere'"),
            ("trust a github ro ci-test-a -- ref=a\ntrust a github ro ci-test-b -- ref=b", "a second line"),
            ("allow everything", "unknown line"),
        ];
        for (line, want) in cases {
            let err = TrustFile::parse("trust", &format!("{issuer}{line}\n")).expect_err(line);
            assert!(err.contains(want), "{line}: {err}");
            assert!(err.starts_with("trust:2: ") || err.starts_with("trust:3: "), "names file:line: {err}");
        }
    }
}
