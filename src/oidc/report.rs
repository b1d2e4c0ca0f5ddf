//! What an operator asks of the trust file, offline: `jobgate check`'s
//! findings (the JWKS files, lines that trust too much) and `jobgate
//! trust explain`'s verdict per line for one token.
#![forbid(unsafe_code)]

use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use jsonwebtoken::jwk::JwkSet;

use super::claims::{self, Claims};
use super::trust_file::{Issuer, TrustFile};
use super::{jwks_problems, read_jwks, verify, Refusal};
use crate::auth::Scope;
use crate::names::JobName;

/// A JWKS file older than this is reported: its refresh has stopped.
pub const MAX_JWKS_AGE_SECS: u64 = 24 * 3600;

#[derive(Debug, PartialEq, Eq)]
pub enum Level {
    Ok,
    Warn,
    Fail,
}

/// `jobgate check`'s findings on a parsed trust file (a file that does
/// not parse, or trusts too much, is refused before this).
pub fn lint(file: &TrustFile) -> Vec<(Level, String)> {
    let mut found = vec![(Level::Ok, format!("{} issuer(s), {} trust line(s)", file.issuers.len(), file.lines.len()))];
    for issuer in &file.issuers {
        found.extend(jwks_findings(issuer));
    }
    for line in &file.lines {
        if !line.pins("ref") && !line.pins("environment") {
            found.push((
                Level::Warn,
                format!(
                    "trust line {} ({}) pins neither ref nor environment: any branch of the repository, \
                     pull requests too, may {}",
                    line.name,
                    line.at,
                    if line.scope == Scope::Rw { "start its jobs" } else { "read its jobs" }
                ),
            ));
        }
        if line.scope == Scope::Ro && !super::trust_file::IMMUTABLE_IDS.iter().any(|id| line.pins(id)) {
            found.push((
                Level::Warn,
                format!("trust line {} ({}) pins no repository_id or project_id", line.name, line.at),
            ));
        }
    }
    found
}

fn jwks_findings(issuer: &Issuer) -> Vec<(Level, String)> {
    let path = issuer.jwks.display();
    let fix = format!("(fix: systemctl enable --now jobgate-jwks@{}.timer)", issuer.name);
    let set = match read_jwks(&issuer.jwks) {
        Ok(set) => set,
        Err(e) => return vec![(Level::Fail, format!("issuer {}: {e} {fix}", issuer.name))],
    };
    let age = age_secs(&issuer.jwks);
    let mut found: Vec<(Level, String)> = jwks_problems(&set)
        .into_iter()
        .map(|problem| (Level::Fail, format!("issuer {}: {path}: {problem}", issuer.name)))
        .collect();
    match age {
        Some(age) if age > MAX_JWKS_AGE_SECS => found.push((
            Level::Fail,
            format!("issuer {}: {path} is {} h old, keys may have rotated {fix}", issuer.name, age / 3600),
        )),
        _ if found.is_empty() => found.push((
            Level::Ok,
            format!("issuer {}: {} key(s) in {path}, {} min old", issuer.name, set.keys.len(), age.unwrap_or(0) / 60),
        )),
        _ => {}
    }
    found
}

fn age_secs(path: &Path) -> Option<u64> {
    let modified = std::fs::metadata(path).ok()?.modified().ok()?;
    Some(SystemTime::now().duration_since(modified).map(|d| d.as_secs()).unwrap_or(0))
}

/// `jobgate trust explain`: the token's check, then for each trust line
/// whether it takes the token (for `job` if given, else for its own jobs)
/// and if not, why. A token whose signature does not hold is still
/// explained line by line, said to be refused whatever the lines say.
pub fn explain(
    file: &TrustFile,
    keys: &dyn Fn(&Issuer) -> Result<Arc<JwkSet>, String>,
    jwt: &str,
    job: Option<&JobName>,
    now: u64,
) -> Vec<String> {
    let mut out = Vec::new();
    let (issuer, claims) = match verify(file, keys, jwt, now) {
        Ok(token) => {
            out.push(format!(
                "token: issuer {}, signature and times hold, expires in {} s",
                token.issuer,
                token.exp.saturating_sub(now)
            ));
            (token.issuer, token.claims)
        }
        Err(refusal) => {
            out.push(format!("token: REFUSED ({refusal}); every request with it gets 401"));
            let Some((issuer, claims)) = unverified(file, jwt) else {
                out.push("its claims cannot be read".into());
                return out;
            };
            if let Refusal::Malformed(_) = refusal {
                return out;
            }
            out.push("the lines below read its claims unverified, for diagnosis only".into());
            (issuer, claims)
        }
    };
    // Each line of the token's issuer, at its own scope.
    for line in file.lines.iter().filter(|line| line.issuer == issuer) {
        match claims::verdict(line, &issuer, &claims, line.scope, job) {
            None => out.push(format!(
                "{} ({}): matches: {} on {}",
                line.name,
                line.at,
                line.scope.as_str(),
                line.patterns.join(" ")
            )),
            Some(miss) => out.push(format!("{} ({}): no: {miss}", line.name, line.at)),
        }
    }
    if !file.lines.iter().any(|l| l.issuer == issuer) {
        out.push(format!("no trust line for issuer {issuer}"));
    }
    out
}

/// The claims of a token whose signature did not hold, and the issuer its
/// `iss` names: only ever shown to the operator, never acted on.
fn unverified(file: &TrustFile, jwt: &str) -> Option<(String, Claims)> {
    let claims: Claims = jsonwebtoken::dangerous::insecure_decode_claims(jwt).ok()?;
    let iss = claims.get("iss")?.as_str()?;
    let issuer = file.issuers.iter().find(|i| i.iss == iss)?;
    Some((issuer.name.clone(), claims))
}
