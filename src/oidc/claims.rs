//! What a verified token's claims let it do: the trust lines whose every
//! claim holds, why a line does not match (for the log and `trust
//! explain`), and the provenance a start records. Pure: claims in,
//! decision out (fuzzed: fuzz/fuzz_targets/trust_claims.rs).
#![forbid(unsafe_code)]

use serde_json::{Map, Value};

use crate::auth::{Grant, Scope};
use crate::names::JobName;

use super::trust_file::{TrustFile, TrustLine};

pub type Claims = Map<String, Value>;

/// A claim's value as a trust line compares it: a string as it is, a
/// number or a boolean as JSON writes it (GitLab sends `ref_protected` as
/// the string "true", others send numbers). Anything else matches nothing.
pub fn claim_text(claims: &Claims, name: &str) -> Option<String> {
    match claims.get(name)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Why a trust line does not take a token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Miss {
    /// The token is another issuer's.
    Issuer,
    /// The first claim that does not hold, and what the token has instead.
    Claim { claim: String, got: Option<String> },
    /// Every claim holds, but the job is not one of the line's.
    Job,
    /// Every claim holds, but the line is `ro` and the request writes.
    Scope,
}

impl std::fmt::Display for Miss {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Miss::Issuer => f.write_str("another issuer's line"),
            Miss::Claim { claim, got: Some(got) } => write!(f, "claim {claim} is {}", shown(got)),
            Miss::Claim { claim, got: None } => write!(f, "claim {claim} is missing"),
            Miss::Job => f.write_str("the job is not one of its patterns"),
            Miss::Scope => f.write_str("it is ro, the request needs rw"),
        }
    }
}

/// A claim value for a log line: bounded, and without control characters.
fn shown(value: &str) -> String {
    let mut text: String = value.chars().take(128).map(|c| if c.is_control() { '\u{fffd}' } else { c }).collect();
    if value.chars().count() > 128 {
        text.push('…');
    }
    format!("{text:?}")
}

/// Whether the token's `claim` is one of the `wanted` values, exactly.
fn holds(claims: &Claims, claim: &str, wanted: &[String]) -> bool {
    claim_text(claims, claim).is_some_and(|got| wanted.contains(&got))
}

/// The first claim of `line` that the token's claims do not satisfy.
pub fn first_miss(line: &TrustLine, claims: &Claims) -> Option<Miss> {
    line.claims
        .iter()
        .find(|(claim, wanted)| !holds(claims, claim, wanted))
        .map(|(claim, _)| Miss::Claim { claim: claim.clone(), got: claim_text(claims, claim) })
}

/// What a trust line makes of a token of `issuer` with `claims` for a
/// request that `needs` a scope on `job` (`None`: no job, e.g. a listing):
/// `None` if it takes it, else why not.
pub fn verdict(line: &TrustLine, issuer: &str, claims: &Claims, needs: Scope, job: Option<&JobName>) -> Option<Miss> {
    if line.issuer != issuer {
        Some(Miss::Issuer)
    } else if let Some(miss) = first_miss(line, claims) {
        Some(miss)
    } else if job.is_some_and(|job| !grant(line).may_see(job)) {
        Some(Miss::Job)
    } else if !line.scope.covers(needs) {
        Some(Miss::Scope)
    } else {
        None
    }
}

/// The grants of a token: every line of its issuer whose claims all hold.
pub fn grants(file: &TrustFile, issuer: &str, claims: &Claims) -> Vec<Grant> {
    file.lines.iter().filter(|l| l.issuer == issuer && first_miss(l, claims).is_none()).map(grant).collect()
}

/// A trust line as what it allows: named `oidc:NAME` wherever a token's
/// name would be (logs, audit, per-token state), so it can be told from a
/// static token, whose names hold no `:`.
pub fn grant(line: &TrustLine) -> Grant {
    Grant { name: format!("oidc:{}", line.name), scope: line.scope, patterns: line.patterns.clone() }
}

/// For the log when no line takes a token: the nearest line of its issuer
/// (one for this job if any, then the fewest claims that fail) and why.
pub fn nearest(file: &TrustFile, issuer: &str, claims: &Claims, needs: Scope, job: Option<&JobName>) -> String {
    let failing = |line: &TrustLine| line.claims.iter().filter(|(claim, wanted)| !holds(claims, claim, wanted)).count();
    // Lines for this job first, then those of the scope asked for, then
    // the fewest claims that fail.
    let distance =
        |line: &TrustLine| (job.is_some_and(|job| !grant(line).may_see(job)), !line.scope.covers(needs), failing(line));
    let best = file
        .lines
        .iter()
        .map(|line| (line, verdict(line, issuer, claims, needs, job)))
        .filter(|(_, miss)| *miss != Some(Miss::Issuer))
        .min_by_key(|(line, _)| distance(line));
    match best {
        Some((line, Some(miss))) => format!("nearest trust line {} ({}): {miss}", line.name, line.at),
        Some((line, None)) => format!("trust line {} ({}) matches", line.name, line.at),
        None => format!("no trust line for issuer {issuer}"),
    }
}

/// Who asked, for the audit line and the runs a token started: from the
/// claims of GitHub Actions, GitLab CI and Cirrus CI tokens, each value
/// checked so it cannot break the `key=value` form.
pub fn provenance(trust_line: &str, claims: &Claims) -> Vec<(&'static str, String)> {
    let first = |names: &[&str]| names.iter().find_map(|n| claim_text(claims, n));
    let cirrus_repo = match (claim_text(claims, "repository_owner"), claim_text(claims, "repository_name")) {
        (Some(owner), Some(name)) => Some(format!("{owner}/{name}")),
        _ => None,
    };
    let run = match (first(&["run_id", "pipeline_id", "build_id"]), claim_text(claims, "run_attempt")) {
        (Some(run), Some(attempt)) => Some(format!("{run}/{attempt}")),
        (run, _) => run,
    };
    let fields = [
        ("trust", Some(trust_line.to_string())),
        ("repo", first(&["repository", "project_path"]).or(cirrus_repo)),
        ("repo_id", first(&["repository_id", "project_id"])),
        ("ref", first(&["ref", "branch"])),
        ("sha", first(&["sha", "change_in_repo"])),
        ("event", first(&["event_name", "pipeline_source"])),
        ("workflow_run", run),
        ("actor", first(&["actor", "user_login"])),
    ];
    fields.into_iter().filter_map(|(key, value)| Some((key, audit_value(&value?)))).collect()
}

/// A value for a `key=value` audit field: the characters of names, refs
/// and ids; anything else, or more than 200 bytes, becomes `?`.
fn audit_value(value: &str) -> String {
    let ok = |c: char| c.is_ascii_alphanumeric() || "._-/@:+=".contains(c);
    if value.is_empty() || value.len() > 200 {
        return "?".into();
    }
    value.chars().map(|c| if ok(c) { c } else { '?' }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::Prefix;
    use serde_json::json;

    fn file() -> TrustFile {
        TrustFile::parse(
            "trust",
            "issuer github https://token.actions.githubusercontent.com https://ci.example.org/jobgate /j.json\n\
             issuer gitlab https://gitlab.com https://ci.example.org/jobgate /g.json\n\
             trust deploy-main github rw ci-test-deploy@main -- repository_id=123456789 ref=refs/heads/main event_name=push,workflow_dispatch\n\
             trust status github ro ci-test-* -- repository_owner_id=4242\n\
             trust gl gitlab rw ci-test-deploy@main -- project_id=555 ref_protected=true\n",
        )
        .expect("trust file")
    }

    fn claims(value: Value) -> Claims {
        value.as_object().cloned().unwrap_or_default()
    }

    fn job(name: &str) -> JobName {
        JobName::parse(&Prefix::parse("ci-test-").expect("prefix"), name).expect("job")
    }

    fn github() -> Claims {
        claims(json!({
            "repository": "octo/app", "repository_id": "123456789", "repository_owner_id": "4242",
            "ref": "refs/heads/main", "sha": "0123abcd", "event_name": "push", "run_id": "99", "run_attempt": "2",
            "actor": "octocat"
        }))
    }

    #[test]
    fn every_claim_must_hold_exactly() {
        let file = file();
        let names = |c: &Claims| grants(&file, "github", c).into_iter().map(|g| g.name).collect::<Vec<_>>();
        assert_eq!(names(&github()), ["oidc:deploy-main", "oidc:status"]);
        let mut target = github();
        target.insert("event_name".into(), json!("pull_request_target"));
        assert_eq!(names(&target), ["oidc:status"], "pull_request_target is not push");
        let mut number = github();
        number.insert("repository_id".into(), json!(123456789));
        assert_eq!(names(&number), ["oidc:deploy-main", "oidc:status"], "a number compares as its digits");
        let mut prefix = github();
        prefix.insert("ref".into(), json!("refs/heads/main2"));
        assert_eq!(names(&prefix), ["oidc:status"]);
        let mut array = github();
        array.insert("ref".into(), json!(["refs/heads/main"]));
        assert_eq!(names(&array), ["oidc:status"], "an array is no value");
        assert!(grants(&file, "gitlab", &github()).is_empty(), "another issuer's lines");
        let gitlab = claims(json!({"project_id": 555, "ref_protected": "true"}));
        assert_eq!(grants(&file, "gitlab", &gitlab).len(), 1);
    }

    #[test]
    fn the_log_names_the_nearest_line_and_the_first_claim_that_failed() {
        let file = file();
        let mut dev = github();
        dev.insert("ref".into(), json!("refs/heads/dev"));
        let why = nearest(&file, "github", &dev, Scope::Rw, Some(&job("ci-test-deploy@main")));
        assert_eq!(why, "nearest trust line deploy-main (trust:3): claim ref is \"refs/heads/dev\"");
        let why = nearest(&file, "github", &github(), Scope::Rw, Some(&job("ci-test-hello")));
        assert_eq!(why, "nearest trust line status (trust:4): it is ro, the request needs rw");
        let mut gone = github();
        gone.remove("repository_owner_id");
        let why = nearest(&file, "github", &gone, Scope::Ro, Some(&job("ci-test-hello")));
        assert_eq!(why, "nearest trust line status (trust:4): claim repository_owner_id is missing");
        assert_eq!(nearest(&file, "cirrus", &github(), Scope::Ro, None), "no trust line for issuer cirrus");
    }

    #[test]
    fn provenance_from_each_service() {
        let github = provenance("oidc:deploy-main", &github());
        assert_eq!(
            github,
            [
                ("trust", "oidc:deploy-main".to_string()),
                ("repo", "octo/app".into()),
                ("repo_id", "123456789".into()),
                ("ref", "refs/heads/main".into()),
                ("sha", "0123abcd".into()),
                ("event", "push".into()),
                ("workflow_run", "99/2".into()),
                ("actor", "octocat".into()),
            ]
        );
        let gitlab = claims(
            json!({"project_path": "grp/app", "project_id": 555, "ref": "main", "pipeline_source": "push", "pipeline_id": 7, "user_login": "me"}),
        );
        let gitlab = provenance("oidc:gl", &gitlab);
        assert!(gitlab.contains(&("repo", "grp/app".into())) && gitlab.contains(&("workflow_run", "7".into())));
        let cirrus =
            claims(json!({"repository_owner": "octo", "repository_name": "app", "branch": "main", "build_id": "42"}));
        let cirrus = provenance("oidc:c", &cirrus);
        assert!(cirrus.contains(&("repo", "octo/app".into())) && cirrus.contains(&("ref", "main".into())));
        let hostile = claims(json!({"actor": "eve job=ci-test-other\nforged", "ref": ""}));
        assert_eq!(
            provenance("oidc:x", &hostile)[1..],
            [("ref", "?".to_string()), ("actor", "eve?job=ci-test-other?forged".into())]
        );
    }
}
