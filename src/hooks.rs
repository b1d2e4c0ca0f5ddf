//! Signed webhooks: the hooks file (`--hooks FILE`) and the checks of a
//! request's signature. Pure over the request and the file's text.
//!
//! A line is `NAME JOB SECRET [event=EVENT] [ref=REF]`: a POST to
//! `/hook/JOB` starts JOB if it carries a valid signature made with SECRET,
//! as GitHub (`X-Hub-Signature-256: sha256=HEX`), Cirrus CI
//! (`X-Cirrus-Signature: HEX`, both HMAC-SHA256 of the raw body) or GitLab
//! (`X-Gitlab-Token: SECRET`) send it; `event=` and `ref=` narrow it to one
//! event (`X-GitHub-Event`, `X-Gitlab-Event`, `X-Cirrus-Event`) and one
//! `ref` in the JSON payload.
#![forbid(unsafe_code)]

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::api::http::Request;
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
}

#[derive(Debug, Default)]
pub struct Hooks {
    hooks: Vec<Hook>,
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
            hooks.push(parse_line(line, prefix).map_err(|e| format!("{origin}:{}: {e}", i + 1))?);
        }
        Ok(Hooks { hooks })
    }

    /// The hook for `job` whose secret signed this request, if any. Every
    /// candidate is checked, in constant time each.
    pub fn verify(&self, job: &JobName, req: &Request) -> Option<&Hook> {
        let mut found = None;
        for hook in self.hooks.iter().filter(|h| h.job == *job) {
            if hook.signed(req) {
                found = Some(hook);
            }
        }
        found
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
            return bool::from(gitlab.as_bytes().ct_eq(self.secret.as_bytes()));
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
        return Err("expected 'NAME JOB SECRET [event=EVENT] [ref=REF]'".into());
    };
    if !valid_token_name(name) {
        return Err(format!("invalid hook name '{}' (expected [a-zA-Z0-9_.-])", name.escape_debug()));
    }
    let job = JobName::parse(prefix, job).map_err(|_| format!("invalid job '{}'", job.escape_debug()))?;
    if secret.len() < MIN_SECRET_LEN || !secret.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!("the secret must be at least {MIN_SECRET_LEN} printable characters"));
    }
    let mut hook = Hook { name: name.to_string(), job, secret: secret.to_string(), event: None, git_ref: None };
    for option in fields {
        match option.split_once('=') {
            Some(("event", value)) if !value.is_empty() => hook.event = Some(value.replace('+', " ")),
            Some(("ref", value)) if !value.is_empty() => hook.git_ref = Some(value.to_string()),
            _ => return Err(format!("unknown option '{}' (expected event=EVENT or ref=REF)", option.escape_debug())),
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
        assert!(file
            .verify(&job("ci-test-a"), &post(body, &[("X-Hub-Signature-256", &format!("sha256={hex}"))]))
            .is_some());
        assert!(file.verify(&job("ci-test-a"), &post(body, &[("X-Cirrus-Signature", &hex)])).is_some());
        assert!(
            file.verify(&job("ci-test-a"), &post("{}", &[("X-Hub-Signature-256", &format!("sha256={hex}"))])).is_none(),
            "DENY! another body"
        );
        assert!(
            file.verify(&job("ci-test-b"), &post(body, &[("X-Cirrus-Signature", &hex)])).is_none(),
            "DENY! another job"
        );
        assert!(file.verify(&job("ci-test-a"), &post(body, &[])).is_none(), "DENY! unsigned");
        assert!(
            file.verify(&job("ci-test-a"), &post(body, &[("X-Hub-Signature-256", &hex)])).is_none(),
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
            "gl ci-test-a gitlab-secret-0123456789 event=Push+Hook ref=refs/heads/main\n",
            &prefix(),
        )
        .expect("hooks");
        let push = post(
            r#"{"ref":"refs/heads/main"}"#,
            &[("X-Gitlab-Token", "gitlab-secret-0123456789"), ("X-Gitlab-Event", "Push Hook")],
        );
        let hook = file.verify(&job("ci-test-a"), &push).expect("signed");
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
            file.verify(&job("ci-test-a"), &post("", &[("X-Gitlab-Token", "gitlab-secret-012345678")])).is_none(),
            "DENY!"
        );
    }

    #[test]
    fn file_errors_name_the_line() {
        let cases = [
            ("x ci-test-a short\n", "hooks:1: the secret must be at least 16 printable characters"),
            ("x ssh 0123456789abcdef0\n", "hooks:1: invalid job 'ssh'"),
            (
                "\nx ci-test-a 0123456789abcdef0 branch=main\n",
                "hooks:2: unknown option 'branch=main' (expected event=EVENT or ref=REF)",
            ),
            ("x ci-test-a\n", "hooks:1: expected 'NAME JOB SECRET [event=EVENT] [ref=REF]'"),
        ];
        for (text, want) in cases {
            assert_eq!(Hooks::parse("hooks", text, &prefix()).err().as_deref(), Some(want));
        }
    }
}
