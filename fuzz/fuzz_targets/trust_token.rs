//! The CI token path, claims in, decision out: a trust file and claims
//! never panic; a token gets exactly the lines of its issuer whose every
//! claim holds as written (checked against a plain re-statement of the
//! rule); no accepted file trusts too much; provenance cannot break the
//! audit line; and no made-up token verifies.
#![no_main]

use std::sync::Arc;

use jobgate::auth::Scope;
use jobgate::names::{JobName, Prefix};
use jobgate::oidc::claims::{self, Claims};
use jobgate::oidc::trust_file::{default_audience, TrustFile, IMMUTABLE_IDS};
use jobgate::oidc::{looks_like_jwt, verify};
use jsonwebtoken::jwk::JwkSet;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

/// A real RSA public key (GitHub's shape), so signature checks run.
const JWKS: &str = r#"{"keys":[{"kty":"RSA","kid":"k1","alg":"RS256","e":"AQAB","n":"9CEmmMH97tK1WClDYLPZatHyYh_TC_M205NipYiDqs-jt24-w-qY4AJQAPRMQa8gpQJN8Pu0tFnJPX0pdh-sLzzCjz6MklQHW7e1Zl6dh5XR13WmwlAwZMpK9--5zYLaf--os5lwlsM5HMicGPZlwS_ckCBrH_7xh1SekXnddIaAC3b6TjREPsP-6LjDFDCK3qvmTQ4AkWjueFeiO9SEUKA4EnVWZYIzr_i_zM_V_LvRuqBkK-PXK8RVlDYN3yJQMrtYWHtD3HTiGDWv7jSuZw-lMjn9k8lTp53K2i3VuCP6-bKC4O6GSvecUdJ9BBuwdymRN1sJltMayBTCwZaFqw"}]}"#;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let mut parts = text.splitn(3, '\0');
    let (trust, claims_text, token) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let Ok(file) = TrustFile::parse("trust", trust) else { return };
    for issuer in &file.issuers {
        assert!(!default_audience(&issuer.iss, &issuer.audience), "a default audience was accepted");
    }
    for line in &file.lines {
        assert!(line.scope != Scope::Rw || IMMUTABLE_IDS.iter().any(|id| line.pins(id)), "an rw line pins no id");
    }
    let claims: Claims = serde_json::from_str::<Value>(claims_text)
        .ok()
        .and_then(|v| v.as_object().cloned())
        .unwrap_or_default();
    for issuer in &file.issuers {
        let granted: Vec<String> = claims::grants(&file, &issuer.name, &claims).into_iter().map(|g| g.name).collect();
        let expected: Vec<String> = file
            .lines
            .iter()
            .filter(|l| l.issuer == issuer.name)
            .filter(|l| {
                l.claims.iter().all(|(claim, wanted)| {
                    let got = match claims.get(claim) {
                        Some(Value::String(s)) => Some(s.clone()),
                        Some(Value::Number(n)) => Some(n.to_string()),
                        Some(Value::Bool(b)) => Some(b.to_string()),
                        _ => None,
                    };
                    got.is_some_and(|got| wanted.iter().any(|w| *w == got))
                })
            })
            .map(|l| format!("oidc:{}", l.name))
            .collect();
        assert_eq!(granted, expected);
        let prefix = Prefix::parse("ci-test-").expect("prefix");
        let job = JobName::parse(&prefix, "ci-test-deploy@main").ok();
        let _ = claims::nearest(&file, &issuer.name, &claims, Scope::Rw, job.as_ref());
        for (_, value) in claims::provenance("oidc:x", &claims) {
            assert!(!value.is_empty() && !value.contains(char::is_whitespace), "{value:?}");
        }
    }
    let set: Arc<JwkSet> = Arc::new(serde_json::from_str(JWKS).expect("jwks"));
    let now = 1_800_000_000;
    if looks_like_jwt(token) || !token.is_empty() {
        assert!(verify(&file, &|_| Ok(Arc::clone(&set)), token, now).is_err(), "a made-up token verified");
    }
});
