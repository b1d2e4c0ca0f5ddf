//! A key pair made by openssl, signing tokens the way the CI services do:
//! shared by the unit tests (src/oidc/tests.rs) and the system tests
//! (tests/system/tests_oidc.rs), which each include this file.

use std::io::Write;
use std::process::{Command, Stdio};

use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};

pub struct TestKey {
    pub pem: Vec<u8>,
    pub alg: Algorithm,
}

/// openssl with `args` and `input` on its standard input: what it prints.
pub fn openssl(args: &[&str], input: Option<&[u8]>) -> Vec<u8> {
    let mut child = Command::new("openssl")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("openssl");
    if let (Some(mut stdin), Some(input)) = (child.stdin.take(), input) {
        stdin.write_all(input).expect("stdin");
    }
    let out = child.wait_with_output().expect("openssl");
    assert!(out.status.success(), "openssl {args:?}");
    out.stdout
}

impl TestKey {
    /// A new key: EC P-256 for ES256, else RSA of 2048 bits.
    pub fn new(alg: Algorithm) -> TestKey {
        match alg {
            Algorithm::ES256 => {
                let pem = openssl(&["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"], None);
                TestKey { pem, alg }
            }
            _ => TestKey::rsa(2048),
        }
    }

    /// An RS256 key of `bits` bits.
    pub fn rsa(bits: u32) -> TestKey {
        let bits = format!("rsa_keygen_bits:{bits}");
        TestKey { pem: openssl(&["genpkey", "-algorithm", "RSA", "-pkeyopt", &bits], None), alg: Algorithm::RS256 }
    }

    pub fn public_pem(&self) -> Vec<u8> {
        openssl(&["pkey", "-pubout"], Some(&self.pem))
    }

    pub fn encoding(&self) -> EncodingKey {
        match self.alg {
            Algorithm::ES256 => EncodingKey::from_ec_pem(&self.pem).expect("ec key"),
            _ => EncodingKey::from_rsa_pem(&self.pem).expect("rsa key"),
        }
    }

    /// The public key as a JWK named `kid`.
    pub fn jwk(&self, kid: &str) -> Jwk {
        let mut jwk = Jwk::from_encoding_key(&self.encoding(), self.alg).expect("jwk");
        jwk.common.key_id = Some(kid.into());
        jwk
    }

    /// A JWKS document holding just this key.
    pub fn jwks(&self, kid: &str) -> String {
        serde_json::to_string(&JwkSet { keys: vec![self.jwk(kid)] }).expect("jwks")
    }

    /// A JWT of `claims`, its header naming `kid`.
    pub fn sign(&self, kid: &str, claims: &serde_json::Value) -> String {
        let mut header = Header::new(self.alg);
        header.kid = Some(kid.into());
        jsonwebtoken::encode(&header, claims, &self.encoding()).expect("sign")
    }
}
