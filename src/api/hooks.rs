//! Signed webhooks: the hooks file (`--hooks FILE`) and the checks of a
//! request's signature. Pure over the request and the file's text.
//!
//! A line is `NAME JOB SECRET [event=EVENT] [ref=REF] [gitlab=token]`: a
//! POST to `/hook/JOB` starts JOB if it carries a valid signature made with
//! SECRET, as GitHub (`X-Hub-Signature-256: sha256=HEX`) and Cirrus CI
//! (`X-Cirrus-Signature: HEX`, both HMAC-SHA256 of the raw body) send it,
//! or, on a line with `gitlab=token`, GitLab's `X-Gitlab-Token: SECRET` (no
//! signature: the secret itself); `event=` and `ref=` narrow it to one
//! event (`X-GitHub-Event`, `X-Gitlab-Event`, `X-Cirrus-Event`) and one
//! `ref` in the JSON payload.
//!
//! Only the body is signed: `event=` reads a header the signature does not
//! cover, so it filters honest senders only, while `ref=` is read from the
//! signed body. A delivery is accepted once: a replay of a captured one (to
//! this job or, with the same secret, another) is refused, and one secret
//! may not serve hooks of two jobs.
#![forbid(unsafe_code)]

use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::http::Request;
use crate::auth::{parse_hex32, valid_token_name};
use crate::names::{JobName, Prefix};

/// Shortest secret accepted: a guessable one would make the hook a start button.
pub const MIN_SECRET_LEN: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hook {
    pub name: String,
    pub job: JobName,
    secret: String,
    event: Option<String>,
    git_ref: Option<String>,
    /// The operator takes GitLab's `X-Gitlab-Token` (`gitlab=token`): the
    /// secret itself in every delivery, so a captured one can start the job
    /// again with any body (and `ref=` binds nothing). Off, it is refused.
    gitlab_token: bool,
}

#[derive(Debug, Default)]
pub struct Hooks {
    hooks: Vec<Hook>,
    /// Where accepted deliveries are remembered; none: not remembered.
    seen_dir: Option<std::path::PathBuf>,
}

/// Why a correctly signed hook starts nothing.
#[derive(Debug, PartialEq, Eq)]
pub enum Ignored {
    Event,
    Ref,
}

impl Hooks {
    /// Reads the file under the same rules as the token file.
    pub fn load(path: &std::path::Path, prefix: &Prefix) -> Result<Hooks, String> {
        let text = crate::secure_file::read_private(path)?;
        Hooks::parse(&path.display().to_string(), &text, prefix)
    }

    pub fn parse(origin: &str, text: &str, prefix: &Prefix) -> Result<Hooks, String> {
        let mut hooks = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let hook = parse_line(line, prefix).map_err(|e| format!("{origin}:{}: {e}", i + 1))?;
            // A delivery signed for one job would start the other too.
            if let Some(other) = hooks.iter().find(|h: &&Hook| h.secret == hook.secret && h.job != hook.job) {
                return Err(format!(
                    "{origin}:{}: hook '{}' has the secret of hook '{}', which starts another job; give each job its own",
                    i + 1,
                    hook.name,
                    other.name
                ));
            }
            hooks.push(hook);
        }
        Ok(Hooks { hooks, seen_dir: None })
    }

    /// Remembers accepted deliveries under `dir` (the state directory's
    /// `hooks/`), so that each is accepted once.
    pub fn with_seen_dir(self, dir: std::path::PathBuf) -> Hooks {
        Hooks { seen_dir: Some(dir), ..self }
    }

    /// The hooks for `job` whose secret signed this request, in file order.
    /// Every candidate is checked, in constant time each.
    pub fn verify(&self, job: &JobName, req: &Request) -> Vec<&Hook> {
        self.hooks.iter().filter(|h| h.job == *job).filter(|h| h.signed(req)).collect()
    }

    /// Whether this delivery (its signed body) is new: the first time, it
    /// is remembered for [`SEEN_FOR`] and true; a replay is false.
    pub fn first_delivery(&self, req: &Request) -> std::io::Result<bool> {
        let Some(dir) = &self.seen_dir else { return Ok(true) };
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
        forget_old(dir);
        let name = crate::auth::hex(&Sha256::digest(&req.body));
        match std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(dir.join(name)) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// How long an accepted delivery is remembered. A signed push is never
/// sent twice by its service (a redelivery by hand is refused too).
pub const SEEN_FOR: std::time::Duration = std::time::Duration::from_secs(30 * 24 * 3600);

/// Removes the deliveries remembered longer than [`SEEN_FOR`].
fn forget_old(dir: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let old = entry.metadata().and_then(|m| m.modified()).ok().and_then(|t| t.elapsed().ok());
        if old.is_some_and(|age| age > SEEN_FOR) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

impl Hook {
    fn signed(&self, req: &Request) -> bool {
        let hmac_matches = |hex: &str| {
            let Some(signature) = parse_hex32(hex.trim()) else { return false };
            let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(self.secret.as_bytes()) else { return false };
            mac.update(&req.body);
            mac.verify_slice(&signature).is_ok()
        };
        if let Some(github) = req.header("X-Hub-Signature-256") {
            return github.trim().strip_prefix("sha256=").is_some_and(hmac_matches);
        }
        if let Some(cirrus) = req.header("X-Cirrus-Signature") {
            return hmac_matches(cirrus);
        }
        if let Some(gitlab) = req.header("X-Gitlab-Token") {
            let matches = bool::from(gitlab.as_bytes().ct_eq(self.secret.as_bytes()));
            if matches && !self.gitlab_token {
                log::warn!(
                    "hook {}: GitLab's X-Gitlab-Token is the secret itself, refused without gitlab=token on its line",
                    self.name
                );
            }
            return matches && self.gitlab_token;
        }
        false
    }

    /// Whether the event and ref filters let this (signed) request through.
    pub fn filter(&self, req: &Request) -> Result<(), Ignored> {
        if let Some(want) = &self.event {
            let event = ["X-GitHub-Event", "X-Gitlab-Event", "X-Cirrus-Event"].iter().find_map(|h| req.header(h));
            if event != Some(want.as_str()) {
                return Err(Ignored::Event);
            }
        }
        if let Some(want) = &self.git_ref {
            let payload: Option<serde_json::Value> = serde_json::from_slice(&req.body).ok();
            let got = payload.as_ref().and_then(|p| p.get("ref")).and_then(|r| r.as_str());
            if got != Some(want.as_str()) {
                return Err(Ignored::Ref);
            }
        }
        Ok(())
    }
}

fn parse_line(line: &str, prefix: &Prefix) -> Result<Hook, String> {
    let mut fields = line.split_whitespace();
    let (Some(name), Some(job), Some(secret)) = (fields.next(), fields.next(), fields.next()) else {
        return Err("expected 'NAME JOB SECRET [event=EVENT] [ref=REF] [gitlab=token]'".into());
    };
    if !valid_token_name(name) {
        return Err(format!("invalid hook name '{}' (expected [a-zA-Z0-9_.-])", name.escape_debug()));
    }
    let job = JobName::parse(prefix, job).map_err(|_| format!("invalid job '{}'", job.escape_debug()))?;
    if secret.len() < MIN_SECRET_LEN || !secret.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!("the secret must be at least {MIN_SECRET_LEN} printable characters"));
    }
    let mut hook = Hook {
        name: name.to_string(),
        job,
        secret: secret.to_string(),
        event: None,
        git_ref: None,
        gitlab_token: false,
    };
    for option in fields {
        match option.split_once('=') {
            Some(("event", value)) if !value.is_empty() => hook.event = Some(value.replace('+', " ")),
            Some(("ref", value)) if !value.is_empty() => hook.git_ref = Some(value.to_string()),
            Some(("gitlab", "token")) => hook.gitlab_token = true,
            _ => {
                let expected = "expected event=EVENT, ref=REF or gitlab=token";
                return Err(format!("unknown option '{}' ({expected})", option.escape_debug()));
            }
        }
    }
    Ok(hook)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prefix() -> Prefix {
        Prefix::parse("ci-test-").expect("prefix")
    }

    fn job(name: &str) -> JobName {
        JobName::parse(&prefix(), name).expect("job")
    }

    // GitHub's documented example: this secret and payload give this signature.
    const GITHUB_SECRET: &str = "It's a Secret to Everybody";
    const GITHUB_SIGNATURE: &str = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";

    fn post(body: &str, headers: &[(&str, &str)]) -> Request {
        let mut req = Request::new("POST", "/hook/x");
        req.body = body.as_bytes().to_vec();
        for (name, value) in headers {
            req.headers.push((name.to_string(), value.to_string()));
        }
        req
    }

    #[test]
    fn github_and_cirrus_hmac() {
        let secret = "0123456789abcdef-secret";
        let file = Hooks::parse("hooks", &format!("gh ci-test-a {secret}\n"), &prefix()).expect("hooks");
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("key");
        mac.update(b"{\"ref\":\"refs/heads/main\"}");
        let hex = crate::auth::hex(&mac.finalize().into_bytes());
        let body = "{\"ref\":\"refs/heads/main\"}";
        assert!(!file
            .verify(&job("ci-test-a"), &post(body, &[("X-Hub-Signature-256", &format!("sha256={hex}"))]))
            .is_empty());
        assert!(!file.verify(&job("ci-test-a"), &post(body, &[("X-Cirrus-Signature", &hex)])).is_empty());
        assert!(
            file.verify(&job("ci-test-a"), &post("{}", &[("X-Hub-Signature-256", &format!("sha256={hex}"))]))
                .is_empty(),
            "DENY! another body"
        );
        assert!(
            file.verify(&job("ci-test-b"), &post(body, &[("X-Cirrus-Signature", &hex)])).is_empty(),
            "DENY! another job"
        );
        assert!(file.verify(&job("ci-test-a"), &post(body, &[])).is_empty(), "DENY! unsigned");
        assert!(
            file.verify(&job("ci-test-a"), &post(body, &[("X-Hub-Signature-256", &hex)])).is_empty(),
            "DENY! no sha256="
        );
    }

    #[test]
    fn githubs_documented_example() {
        // https://docs.github.com/webhooks: "Hello, World!" signed with this secret.
        let mut mac = Hmac::<Sha256>::new_from_slice(GITHUB_SECRET.as_bytes()).expect("key");
        mac.update(b"Hello, World!");
        let hex = crate::auth::hex(&mac.finalize().into_bytes());
        assert_eq!(format!("sha256={hex}"), GITHUB_SIGNATURE, "the header form jobgate checks");
    }

    #[test]
    fn gitlab_token_and_filters() {
        let file = Hooks::parse(
            "hooks",
            "gl ci-test-a gitlab-secret-0123456789 event=Push+Hook ref=refs/heads/main gitlab=token\n",
            &prefix(),
        )
        .expect("hooks");
        let push = post(
            r#"{"ref":"refs/heads/main"}"#,
            &[("X-Gitlab-Token", "gitlab-secret-0123456789"), ("X-Gitlab-Event", "Push Hook")],
        );
        let hook = file.verify(&job("ci-test-a"), &push).first().copied().expect("signed");
        assert_eq!(hook.filter(&push), Ok(()));
        let tag = post(
            r#"{"ref":"refs/tags/v1"}"#,
            &[("X-Gitlab-Token", "gitlab-secret-0123456789"), ("X-Gitlab-Event", "Push Hook")],
        );
        assert_eq!(hook.filter(&tag), Err(Ignored::Ref));
        let other = post(
            r#"{"ref":"refs/heads/main"}"#,
            &[("X-Gitlab-Token", "gitlab-secret-0123456789"), ("X-Gitlab-Event", "Tag Push Hook")],
        );
        assert_eq!(hook.filter(&other), Err(Ignored::Event));
        assert!(
            file.verify(&job("ci-test-a"), &post("", &[("X-Gitlab-Token", "gitlab-secret-012345678")])).is_empty(),
            "DENY!"
        );
        // Without gitlab=token on its line, the right token is refused too.
        let unacknowledged =
            Hooks::parse("hooks", "gl ci-test-a gitlab-secret-0123456789\n", &prefix()).expect("hooks");
        assert!(unacknowledged.verify(&job("ci-test-a"), &push).is_empty(), "a bearer secret, not taken unasked");
        let github = "gh ci-test-a gitlab-secret-0123456789 gitlab=yes\n";
        assert!(Hooks::parse("hooks", github, &prefix()).is_err(), "gitlab= takes only token");
    }

    #[test]
    fn file_errors_name_the_line() {
        let cases = [
            ("x ci-test-a short\n", "hooks:1: the secret must be at least 16 printable characters"),
            ("x ssh 0123456789abcdef0\n", "hooks:1: invalid job 'ssh'"),
            (
                "\nx ci-test-a 0123456789abcdef0 branch=main\n",
                "hooks:2: unknown option 'branch=main' (expected event=EVENT, ref=REF or gitlab=token)",
            ),
            ("x ci-test-a\n", "hooks:1: expected 'NAME JOB SECRET [event=EVENT] [ref=REF] [gitlab=token]'"),
        ];
        for (text, want) in cases {
            assert_eq!(Hooks::parse("hooks", text, &prefix()).err().as_deref(), Some(want));
        }
    }

    #[test]
    fn one_secret_serves_one_job() {
        let secret = "0123456789abcdef-shared";
        let text = format!("a ci-test-a {secret}\nb ci-test-b {secret}\n");
        let err = Hooks::parse("hooks", &text, &prefix()).expect_err("shared across jobs");
        assert_eq!(
            err,
            "hooks:2: hook 'b' has the secret of hook 'a', which starts another job; give each job its own"
        );
        let same_job = format!("a ci-test-a {secret} event=push\nb ci-test-a {secret} event=release\n");
        assert!(Hooks::parse("hooks", &same_job, &prefix()).is_ok(), "two lines of one job may share it");
    }

    #[test]
    fn a_delivery_is_accepted_once() {
        let dir = std::env::temp_dir().join(format!("jobgate-hooks-seen-{}", std::process::id()));
        let file = Hooks::parse("hooks", "a ci-test-a 0123456789abcdef-secret\n", &prefix())
            .expect("hooks")
            .with_seen_dir(dir.clone());
        let delivery = post(r#"{"after":"abc"}"#, &[]);
        assert!(file.first_delivery(&delivery).expect("seen dir"));
        assert!(!file.first_delivery(&delivery).expect("seen dir"), "a replay");
        assert!(file.first_delivery(&post(r#"{"after":"def"}"#, &[])).expect("seen dir"));
        let _ = std::fs::remove_dir_all(dir);
    }
}
