//! CI identity tokens (`--trust FILE`): a short-lived JWT that GitHub
//! Actions, GitLab CI or Cirrus CI signs for the job that is running,
//! accepted wherever a static token is, and bound to jobs by the claims
//! of a trust line (jobgate-trust(5)).
//!
//! The signature, `iss`, `aud` and the times are checked by the
//! `jsonwebtoken` crate, with the key named by `kid` from the issuer's
//! JWKS file and the algorithms of the issuer line, never the token's;
//! then `exp`, `iat` and `nbf` again as typed numbers (a string `exp` is
//! an error, not a skipped check), `exp - iat` against the issuer's
//! max-age, and `aud` as exactly jobgate's. jobgate fetches nothing: the
//! JWKS files are refreshed by a unit of their own (contrib/systemd).
#![forbid(unsafe_code)]

pub mod claims;
pub mod report;
pub mod trust_file;

use std::collections::HashMap;
use std::fmt;
use std::fs;
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet};
use jsonwebtoken::{DecodingKey, Validation};
use serde_json::Value;

use crate::auth::{hex, sha256, Grant, Scope};
use crate::names::{JobName, RunId};
use crate::secure_file::{self, Watched};
use claims::Claims;
use trust_file::{Issuer, TrustFile};

/// Longest token taken as a JWT (GitHub's are about 1.2 KB).
pub const MAX_JWT_LEN: usize = 8192;
/// Clock skew allowed on `exp`, `nbf` and `iat`, in seconds.
pub const LEEWAY: u64 = 60;
/// Largest JWKS file read.
pub const MAX_JWKS_FILE: u64 = 64 << 10;
/// Weakest RSA key a JWKS may hold without `check` reporting it.
pub const MIN_RSA_BITS: usize = 2048;

/// Whether a presented token has a JWT's shape (three base64url parts),
/// which a static token (`jgt_` and hex) never has.
pub fn looks_like_jwt(token: &str) -> bool {
    let base64url =
        |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    token.len() <= MAX_JWT_LEN && token.split('.').count() == 3 && token.split('.').all(base64url)
}

/// A token whose signature, issuer, audience and times hold.
#[derive(Clone, Debug)]
pub struct CiToken {
    /// The issuer line's NAME.
    pub issuer: String,
    pub claims: Claims,
    pub jti: Option<String>,
    pub exp: u64,
}

/// Why a token was turned away: for the log, never for the client.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Not a JWT jobgate can read (no `kid`, an algorithm it never takes).
    Malformed(String),
    /// No issuer's JWKS holds the key the token names.
    UnknownKey(String),
    /// The issuer's key was found, but the token does not hold.
    Invalid { issuer: String, why: String },
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Malformed(why) => write!(f, "not a usable JWT: {why}"),
            Refusal::UnknownKey(kid) => write!(f, "key {kid:?} is in no issuer's JWKS file"),
            Refusal::Invalid { issuer, why } => write!(f, "issuer {issuer}: {why}"),
        }
    }
}

/// Checks `jwt` against the issuers of `file`, with each issuer's keys
/// from `keys`, at `now` (seconds since the epoch).
pub fn verify(
    file: &TrustFile,
    keys: &dyn Fn(&Issuer) -> Result<Arc<JwkSet>, String>,
    jwt: &str,
    now: u64,
) -> Result<CiToken, Refusal> {
    if !looks_like_jwt(jwt) {
        return Err(Refusal::Malformed("not three base64url parts".into()));
    }
    let header = jsonwebtoken::decode_header(jwt).map_err(|e| Refusal::Malformed(e.to_string()))?;
    let kid = header.kid.ok_or_else(|| Refusal::Malformed("no kid in its header".into()))?;
    for issuer in &file.issuers {
        let set = match keys(issuer) {
            Ok(set) => set,
            Err(e) => {
                log::warn!("issuer {}: {e}", issuer.name);
                continue;
            }
        };
        let Some(jwk) = set.find(&kid) else { continue };
        let invalid = |why: String| Refusal::Invalid { issuer: issuer.name.clone(), why };
        if !issuer.algorithms.contains(&header.alg) {
            return Err(invalid(format!(
                "signed with {:?}, the issuer line allows {:?}",
                header.alg, issuer.algorithms
            )));
        }
        let key = DecodingKey::from_jwk(jwk).map_err(|e| invalid(format!("key {kid:?}: {e}")))?;
        let mut validation = Validation::new(header.alg);
        validation.algorithms = issuer.algorithms.clone();
        validation.set_issuer(&[&issuer.iss]);
        validation.set_audience(&[&issuer.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.leeway = LEEWAY;
        validation.validate_nbf = true;
        let data = jsonwebtoken::decode::<Claims>(jwt, &key, &validation).map_err(|e| invalid(e.to_string()))?;
        return typed_checks(issuer, data.claims, now).map_err(invalid);
    }
    Err(Refusal::UnknownKey(kid))
}

/// The claims' types and times, checked again here so that no check
/// depends on how a library reads a value it does not expect.
fn typed_checks(issuer: &Issuer, claims: Claims, now: u64) -> Result<CiToken, String> {
    let number = |name: &str| match claims.get(name) {
        Some(Value::Number(n)) => n.as_u64().ok_or_else(|| format!("{name} is not a whole number of seconds")),
        Some(_) => Err(format!("{name} is not a number")),
        None => Err(format!("{name} is missing")),
    };
    let (exp, iat) = (number("exp")?, number("iat")?);
    if exp.saturating_add(LEEWAY) < now {
        return Err(format!("expired {} s ago", now - exp));
    }
    if iat > now.saturating_add(LEEWAY) {
        return Err(format!("issued {} s in the future", iat - now));
    }
    if claims.contains_key("nbf") && number("nbf")? > now.saturating_add(LEEWAY) {
        return Err("not valid yet (nbf)".into());
    }
    if exp < iat || exp - iat > issuer.max_age {
        return Err(format!("lives {} s, the issuer line allows max-age={}", exp.saturating_sub(iat), issuer.max_age));
    }
    let audience_exact = match claims.get("aud") {
        Some(Value::String(aud)) => *aud == issuer.audience,
        Some(Value::Array(list)) => list.len() == 1 && list[0].as_str() == Some(issuer.audience.as_str()),
        _ => false,
    };
    if !audience_exact {
        return Err("aud is not exactly the issuer line's audience".into());
    }
    if claims.get("iss").and_then(Value::as_str) != Some(issuer.iss.as_str()) {
        return Err("iss is not the issuer line's".into());
    }
    let jti = match claims.get("jti") {
        None => None,
        Some(Value::String(jti)) if !jti.is_empty() && jti.len() <= 256 => Some(jti.clone()),
        Some(_) => return Err("jti is not a string of 1 to 256 bytes".into()),
    };
    Ok(CiToken { issuer: issuer.name.clone(), claims, jti, exp })
}

/// A JWKS document as jobgate uses it, and what is wrong with it: no key,
/// a key without `kid`, one of a kind jobgate does not verify with, an
/// RSA key under [`MIN_RSA_BITS`]. An empty list: good to use.
pub fn jwks_problems(set: &JwkSet) -> Vec<String> {
    use base64::Engine;
    let mut problems = Vec::new();
    if set.keys.is_empty() {
        problems.push("it holds no key".to_string());
    }
    for (i, key) in set.keys.iter().enumerate() {
        let name = key.common.key_id.clone().unwrap_or_else(|| format!("#{i}"));
        if key.common.key_id.is_none() {
            problems.push(format!("key {name} has no kid"));
        }
        match &key.algorithm {
            AlgorithmParameters::RSA(rsa) => {
                let modulus = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(rsa.n.trim_end_matches('='));
                let bits = modulus.map(|n| {
                    let n: Vec<u8> = n.into_iter().skip_while(|b| *b == 0).collect();
                    n.first().map_or(0, |top| n.len() * 8 - top.leading_zeros() as usize)
                });
                match bits {
                    Ok(bits) if bits >= MIN_RSA_BITS => {}
                    Ok(bits) => problems.push(format!("key {name} is RSA of {bits} bits (under {MIN_RSA_BITS})")),
                    Err(_) => problems.push(format!("key {name}: its modulus is not base64url")),
                }
            }
            AlgorithmParameters::EllipticCurve(ec) if ec.curve == EllipticCurve::P256 => {}
            _ => problems.push(format!("key {name} is neither RSA nor EC P-256")),
        }
    }
    problems
}

/// Reads a JWKS file: only root or jobgate's user may have written it.
pub fn read_jwks(path: &Path) -> Result<JwkSet, String> {
    let text = secure_file::read_protected(path, MAX_JWKS_FILE)?;
    serde_json::from_str(&text).map_err(|e| format!("{}: not a JWKS document: {e}", path.display()))
}

/// Each issuer's JWKS file, read again when it changes (the refresh unit
/// renames a new one into place); a file that no longer reads keeps the
/// keys last read from it.
#[derive(Default)]
struct Keys(Mutex<HashMap<PathBuf, Arc<Watched<JwkSet>>>>);

impl Keys {
    fn of(&self, issuer: &Issuer) -> Result<Arc<JwkSet>, String> {
        let watched = {
            let mut files = self.0.lock().map_err(|_| "the key cache is poisoned".to_string())?;
            match files.get(&issuer.jwks) {
                Some(watched) => Arc::clone(watched),
                None => {
                    let watched = Arc::new(Watched::new(issuer.jwks.clone(), read_jwks)?);
                    files.insert(issuer.jwks.clone(), Arc::clone(&watched));
                    watched
                }
            }
        };
        Ok(watched.current())
    }
}

/// The trust file and what goes with it: the issuers' keys, the `jti`s
/// already used, and who started which run.
pub struct Trust {
    file: Watched<TrustFile>,
    keys: Keys,
    used: PathBuf,
    pub origins: RunOrigins,
}

/// A token that holds, with the trust file it was checked against: its
/// grants and the log's "nearest line" come from that same version.
pub struct Verified {
    pub token: CiToken,
    file: Arc<TrustFile>,
    /// When it was verified (seconds since the epoch): the one clock
    /// reading its mark as used is made by too.
    pub at: u64,
}

impl Verified {
    /// The trust lines the token's claims satisfy.
    pub fn grants(&self) -> Vec<Grant> {
        claims::grants(&self.file, &self.token.issuer, &self.token.claims)
    }

    /// For the log of a refused request: the nearest line and why.
    pub fn nearest(&self, needs: Scope, job: Option<&JobName>) -> String {
        claims::nearest(&self.file, &self.token.issuer, &self.token.claims, needs, job)
    }
}

impl Trust {
    pub fn load(path: PathBuf, state_dir: &Path) -> Result<Trust, String> {
        Ok(Trust::watching(Watched::new(path, read_trust_file)?, state_dir))
    }

    /// A trust file that is never read from disk: for tests and fuzzing.
    pub fn fixed(file: TrustFile, state_dir: &Path) -> Trust {
        Trust::watching(Watched::fixed(file), state_dir)
    }

    fn watching(file: Watched<TrustFile>, state_dir: &Path) -> Trust {
        Trust { file, keys: Keys::default(), used: state_dir.join("jti"), origins: RunOrigins::in_state_dir(state_dir) }
    }

    pub fn verify(&self, jwt: &str, now: u64) -> Result<Verified, Refusal> {
        let file = self.file.current();
        let token = verify(&file, &|issuer| self.keys.of(issuer), jwt, now)?;
        Ok(Verified { token, file, at: now })
    }

    /// `jobgate trust explain`, with the keys of the JWKS files.
    pub fn explain(&self, jwt: &str, job: Option<&JobName>, now: u64) -> Vec<String> {
        report::explain(&self.file.current(), &|issuer| self.keys.of(issuer), jwt, job, now)
    }

    /// Marks the token's `jti` used; `false` if it was already, in any
    /// process, or the token has none. A file per token, created
    /// exclusively and named by the hash of issuer and `jti`; the expired
    /// ones are swept as new ones come.
    ///
    /// `now` is the time the token was verified at ([`Verified::at`]): a
    /// token that no longer verifies then is never first, and a mark is
    /// kept [`MARK_KEPT`] past the token's last accepted second, so no
    /// request that straddles that second finds its mark swept.
    pub fn first_use(&self, token: &CiToken, now: u64) -> io::Result<bool> {
        let Some(jti) = &token.jti else { return Ok(false) };
        let last_second = token.exp.saturating_add(LEEWAY);
        if last_second < now {
            return Ok(false);
        }
        fs::DirBuilder::new().recursive(true).mode(0o700).create(&self.used)?;
        sweep_used(&self.used, now);
        let name = format!("{last_second}-{}", hex(&sha256(&format!("{}\0{jti}", token.issuer))));
        match fs::OpenOptions::new().write(true).create_new(true).open(self.used.join(name)) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// How long a used token's mark is kept past its last accepted second: far
/// longer than a request takes from its verification to its mark.
pub const MARK_KEPT: u64 = 300;

/// Removes the marks of tokens that expired more than [`MARK_KEPT`] ago
/// (their names begin with their last accepted second).
fn sweep_used(dir: &Path, now: u64) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let until = name.to_str().and_then(|n| n.split('-').next()).and_then(|t| t.parse::<u64>().ok());
        if until.is_some_and(|until| until.saturating_add(MARK_KEPT) < now) {
            let _ = fs::remove_file(entry.path());
        }
    }
}

pub fn read_trust_file(path: &Path) -> Result<TrustFile, String> {
    let text = secure_file::read_private(path)?;
    TrustFile::parse(&path.display().to_string(), &text)
}

/// Who started which run with a CI token: the provenance fields of the
/// audit line, a file per run under the state directory, so that `runs`
/// and `state` link each systemd invocation to the CI run that caused it.
pub struct RunOrigins {
    dir: PathBuf,
}

/// Runs remembered; past it the oldest are forgotten.
pub const MAX_ORIGINS: usize = 10_000;

impl RunOrigins {
    pub fn in_state_dir(state_dir: &Path) -> RunOrigins {
        RunOrigins { dir: state_dir.join("origins") }
    }

    pub fn save(&self, run: &RunId, fields: &[(&'static str, String)]) -> io::Result<()> {
        fs::DirBuilder::new().recursive(true).mode(0o700).create(&self.dir)?;
        let line: Vec<String> = fields.iter().map(|(k, v)| format!("{k}={v}")).collect();
        secure_file::replace(&self.dir.join(run.as_str()), (line.join(" ") + "\n").as_bytes(), 0o600)?;
        self.forget_oldest();
        Ok(())
    }

    /// The fields saved for `run`, as a JSON object.
    pub fn load(&self, run: &RunId) -> Option<Value> {
        let text = fs::read_to_string(self.dir.join(run.as_str())).ok()?;
        let fields: serde_json::Map<String, Value> = text
            .split_whitespace()
            .filter_map(|f| f.split_once('='))
            .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
            .collect();
        Some(Value::Object(fields))
    }

    /// Adds `started_by` to a rendered `state` (its run) or `runs` answer
    /// (each run), for the runs a CI token started.
    pub fn annotate(&self, answer: &mut Value) {
        let add = |shown: &mut Value| {
            if let Some(origin) = shown["run"].as_str().and_then(RunId::parse).and_then(|run| self.load(&run)) {
                shown["started_by"] = origin;
            }
        };
        match answer.get_mut("runs").and_then(Value::as_array_mut) {
            Some(runs) => runs.iter_mut().for_each(add),
            None => add(answer),
        }
    }

    fn forget_oldest(&self) {
        // Counting is a directory read; the times are asked for only when
        // there are too many.
        let count = fs::read_dir(&self.dir).map(|entries| entries.count()).unwrap_or(0);
        if count <= MAX_ORIGINS {
            return;
        }
        let Ok(entries) = fs::read_dir(&self.dir) else { return };
        let mut runs: Vec<(std::time::SystemTime, PathBuf)> =
            entries.flatten().filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path()))).collect();
        runs.sort();
        for (_, path) in runs.iter().take(runs.len().saturating_sub(MAX_ORIGINS)) {
            let _ = fs::remove_file(path);
        }
    }
}

#[cfg(test)]
mod tests;
