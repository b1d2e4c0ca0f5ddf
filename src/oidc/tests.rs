//! Tokens signed the way the CI services sign them, with keys made here
//! by openssl, checked by [`verify`].

use std::sync::OnceLock;

use base64::Engine;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;

use super::*;

const AUD: &str = "https://ci.example.org/jobgate";
const GITHUB: &str = "https://token.actions.githubusercontent.com";

// Shared with the other test crate, which uses other parts of it.
#[path = "../../tests/common/test_key.rs"]
#[allow(dead_code)]
mod test_key;
use test_key::TestKey;

fn rsa() -> &'static TestKey {
    static KEY: OnceLock<TestKey> = OnceLock::new();
    KEY.get_or_init(|| TestKey::new(Algorithm::RS256))
}

fn ec() -> &'static TestKey {
    static KEY: OnceLock<TestKey> = OnceLock::new();
    KEY.get_or_init(|| TestKey::new(Algorithm::ES256))
}

fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

fn file(options: &str) -> TrustFile {
    let text = format!(
        "issuer github {GITHUB} {AUD} /jwks/github.json max-age=300 {options}\n\
         issuer gitlab https://gitlab.com {AUD} /jwks/gitlab.json max-age=3600 alg=ES256\n\
         trust deploy-main github rw ci-test-deploy@main -- repository_id=123456789 ref=refs/heads/main event_name=push\n"
    );
    TrustFile::parse("trust", &text).expect("trust file")
}

fn keys(issuer: &Issuer) -> Result<Arc<JwkSet>, String> {
    Ok(Arc::new(match issuer.name.as_str() {
        "github" => JwkSet { keys: vec![rsa().jwk("gh-1")] },
        _ => JwkSet { keys: vec![ec().jwk("gl-1")] },
    }))
}

fn github_claims() -> Value {
    let now = now();
    json!({
        "iss": GITHUB, "aud": AUD, "iat": now - 10, "nbf": now - 10, "exp": now + 290, "jti": "j-1",
        "repository": "octo/app", "repository_id": "123456789", "ref": "refs/heads/main", "event_name": "push",
    })
}

fn with(mut claims: Value, key: &str, value: Value) -> Value {
    claims[key] = value;
    claims
}

fn check(token: &str) -> Result<CiToken, Refusal> {
    verify(&file(""), &keys, token, now())
}

fn invalid_because(token: &str, want: &str) {
    match check(token) {
        Err(Refusal::Invalid { issuer, why }) => {
            assert_eq!(issuer, "github");
            assert!(why.contains(want), "{why:?} should say {want:?}");
        }
        other => panic!("{other:?}: wanted an invalid token ({want})"),
    }
}

#[test]
fn a_good_token_of_each_service_holds() {
    let token = check(&rsa().sign("gh-1", &github_claims())).expect("valid");
    assert_eq!((token.issuer.as_str(), token.jti.as_deref()), ("github", Some("j-1")));
    let gitlab = json!({"iss": "https://gitlab.com", "aud": AUD, "iat": now(), "exp": now() + 3600, "project_id": 555});
    let token = check(&ec().sign("gl-1", &gitlab)).expect("an ES256 GitLab token");
    assert_eq!(token.issuer, "gitlab");
    assert!(looks_like_jwt(&rsa().sign("gh-1", &github_claims())));
    assert!(!looks_like_jwt("jgt_0123456789abcdef"));
}

#[test]
fn every_way_a_token_can_be_wrong_is_refused() {
    let good = github_claims();
    let now = now();
    invalid_because(
        &rsa().sign("gh-1", &with(good.clone(), "aud", json!("https://other.example/jobgate"))),
        "Audience",
    );
    invalid_because(&rsa().sign("gh-1", &with(good.clone(), "aud", json!("https://github.com/octo"))), "Audience");
    invalid_because(&rsa().sign("gh-1", &with(good.clone(), "aud", json!([AUD, "https://other"]))), "exactly");
    invalid_because(&rsa().sign("gh-1", &with(good.clone(), "iss", json!("https://evil.example"))), "Issuer");
    let expired = with(with(good.clone(), "exp", json!(now - 120)), "iat", json!(now - 400));
    invalid_because(&rsa().sign("gh-1", &with(expired, "nbf", json!(now - 400))), "Expired");
    invalid_because(&rsa().sign("gh-1", &with(good.clone(), "nbf", json!(now + 600))), "Immature");
    invalid_because(&rsa().sign("gh-1", &with(good.clone(), "exp", json!(now + 3600))), "max-age=300");
    invalid_because(&rsa().sign("gh-1", &with(good.clone(), "exp", json!((now + 200).to_string()))), "exp");
    let no_iat = good.as_object().map(|o| {
        o.iter().filter(|(k, _)| *k != "iat").map(|(k, v)| (k.clone(), v.clone())).collect::<serde_json::Map<_, _>>()
    });
    invalid_because(&rsa().sign("gh-1", &Value::Object(no_iat.unwrap_or_default())), "iat is missing");
    invalid_because(&rsa().sign("gh-1", &with(good.clone(), "jti", json!(7))), "jti");
    // Signed by another key under the right kid.
    let other = TestKey::new(Algorithm::RS256);
    invalid_because(&other.sign("gh-1", &good), "InvalidSignature");
    // ES256 where the issuer line allows RS256 only.
    invalid_because(&ec().sign("gh-1", &good), "the issuer line allows");
    assert_eq!(check(&rsa().sign("gh-9", &good)).err(), Some(Refusal::UnknownKey("gh-9".into())));
}

#[test]
fn the_algorithm_is_never_the_tokens_choice() {
    let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let claims = b64(&github_claims());
    let none = format!("{}.{claims}.", b64(&json!({"alg": "none", "kid": "gh-1"})));
    assert!(matches!(check(&none), Err(Refusal::Malformed(_))), "alg none");
    let none = format!("{}.{claims}.c2ln", b64(&json!({"alg": "none", "kid": "gh-1"})));
    assert!(matches!(check(&none), Err(Refusal::Malformed(_))), "alg none with a signature");
    // HS256 with the public key as the HMAC secret (the classic confusion).
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("gh-1".into());
    let forged = jsonwebtoken::encode(&header, &github_claims(), &EncodingKey::from_secret(&rsa().public_pem()));
    invalid_because(&forged.expect("sign"), "HS256");
    let no_kid = jsonwebtoken::encode(&Header::new(Algorithm::RS256), &github_claims(), &rsa().encoding());
    assert!(matches!(check(&no_kid.expect("sign")), Err(Refusal::Malformed(_))));
}

#[test]
fn a_jti_is_used_once_across_processes() {
    let dir = std::env::temp_dir().join(format!("jobgate-jti-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    let trust = Trust::fixed(file(""), &dir);
    let token = check(&rsa().sign("gh-1", &github_claims())).expect("valid");
    assert!(trust.first_use(&token, now()).expect("mark"));
    let again = Trust::fixed(file(""), &dir);
    assert!(!again.first_use(&token, now()).expect("mark"), "a second process sees the mark");
    let other = CiToken { jti: Some("j-2".into()), ..token.clone() };
    assert!(again.first_use(&other, now()).expect("mark"));
    assert!(!again.first_use(&CiToken { jti: None, ..token.clone() }, now()).expect("mark"), "no jti: never first");
    // Once expired, the marks go.
    assert!(again.first_use(&CiToken { jti: Some("j-3".into()), ..token.clone() }, now()).expect("mark"));
    sweep_used(&dir.join("jti"), token.exp + LEEWAY + MARK_KEPT + 1);
    assert_eq!(fs::read_dir(dir.join("jti")).map(|d| d.count()).unwrap_or(0), 0);
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn a_jti_is_used_once_to_the_tokens_last_second_and_after() {
    let dir = std::env::temp_dir().join(format!("jobgate-jti-edge-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    let trust = Trust::fixed(file(""), &dir);
    let token = check(&rsa().sign("gh-1", &github_claims())).expect("valid");
    let last = token.exp + LEEWAY;
    let with = |jti: &str| CiToken { jti: Some(jti.into()), ..token.clone() };
    assert!(trust.first_use(&with("a"), last - 1).expect("mark"), "first, a second before the last");
    assert!(!trust.first_use(&with("a"), last).expect("mark"), "a replay in the last accepted second");
    assert!(!trust.first_use(&with("a"), last + 1).expect("mark"), "a replay a second after: no mark swept");
    assert!(trust.first_use(&with("b"), last).expect("mark"), "first in its last second");
    assert!(!trust.first_use(&with("b"), last).expect("mark"));
    assert!(!trust.first_use(&with("c"), last + 1).expect("mark"), "never first once it no longer verifies");
    // The marks outlive the tokens by MARK_KEPT, then go.
    for (at, kept) in [(last + MARK_KEPT, 2), (last + MARK_KEPT + 1, 0)] {
        sweep_used(&dir.join("jti"), at);
        assert_eq!(fs::read_dir(dir.join("jti")).map(|d| d.count()).unwrap_or(0), kept, "swept at {at}");
    }
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn jwks_problems_are_named() {
    assert!(jwks_problems(&JwkSet { keys: vec![rsa().jwk("a"), ec().jwk("b")] }).is_empty());
    assert_eq!(jwks_problems(&JwkSet { keys: vec![] }), ["it holds no key"]);
    let weak = TestKey::rsa(1024).jwk("weak");
    assert_eq!(jwks_problems(&JwkSet { keys: vec![weak] }), ["key weak is RSA of 1024 bits (under 2048)"]);
    let mut nameless = rsa().jwk("x");
    nameless.common.key_id = None;
    assert_eq!(jwks_problems(&JwkSet { keys: vec![nameless] }), ["key #0 has no kid"]);
}

#[test]
fn origins_of_runs_are_kept_and_read() {
    let dir = std::env::temp_dir().join(format!("jobgate-origins-{}", std::process::id()));
    let origins = RunOrigins::in_state_dir(&dir);
    let run = RunId::parse("0123456789abcdef0123456789abcdef").expect("run");
    origins.save(&run, &[("trust", "oidc:deploy-main".into()), ("repo", "octo/app".into())]).expect("save");
    assert_eq!(origins.load(&run), Some(json!({"trust": "oidc:deploy-main", "repo": "octo/app"})));
    let other = RunId::parse("fedcba9876543210fedcba9876543210").expect("run");
    assert_eq!(origins.load(&other), None);
    let _ = fs::remove_dir_all(&dir);
}
