//! CI identity tokens (issue 13), through a second `jobgate serve` with
//! `--trust`: tokens signed the way GitHub Actions (RS256), GitLab CI
//! (RS256) and Cirrus CI (ES256) sign them, with keys made here by openssl.

use std::process::{Command, Stdio};
use std::sync::OnceLock;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;

use super::*;
use client::request;

pub const TESTS: &[Test] = &[
    ("a_ci_token_starts_its_job_and_the_run_shows_who", a_ci_token_starts_its_job_and_the_run_shows_who),
    ("bad_ci_tokens_start_nothing", bad_ci_tokens_start_nothing),
    (
        "gitlab_and_cirrus_tokens_work_through_their_issuer_lines",
        gitlab_and_cirrus_tokens_work_through_their_issuer_lines,
    ),
    ("trust_explain_and_check_speak_to_the_operator", trust_explain_and_check_speak_to_the_operator),
    ("jobgate_run_oidc_end_to_end", jobgate_run_oidc_end_to_end),
    ("a_used_ci_token_is_refused_across_its_expiry", a_used_ci_token_is_refused_across_its_expiry),
];

const AUD: &str = "https://ci.example.org/jobgate";
const GITHUB: &str = "https://token.actions.githubusercontent.com";
const GITLAB: &str = "https://gitlab.example.org";
const CIRRUS: &str = "https://oidc.cirrus-ci.com";
const TRUST: &str = "/run/jobgate-test/trust";
const JWKS: &str = "/run/jobgate-test/jwks";
const OIDC_STATE: &str = "/run/jobgate-test/oidc-state";
const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

// Shared with the other test crate, which uses other parts of it.
#[path = "../common/test_key.rs"]
#[allow(dead_code)]
mod test_key;
use test_key::TestKey as Key;

/// The jobgate that trusts the three issuers, and their keys.
struct Oidc {
    addr: String,
    github: Key,
    gitlab: Key,
    cirrus: Key,
}

static OIDC_STATE_CELL: OnceLock<Oidc> = OnceLock::new();

fn oidc(w: &World) -> &'static Oidc {
    OIDC_STATE_CELL.get_or_init(|| {
        let (github, gitlab, cirrus) = (Key::new(Algorithm::RS256), Key::new(Algorithm::RS256), Key::new(Algorithm::ES256));
        w.sb.sh_ok(&format!("mkdir -p {JWKS} {OIDC_STATE} && chown {USER}:{USER} {JWKS} {OIDC_STATE}"));
        for (name, key) in [("github", &github), ("gitlab", &gitlab), ("cirrus", &cirrus)] {
            w.sb.write_file(&format!("{JWKS}/{name}.json"), key.jwks(&format!("{name}-1")).as_bytes(), 0o644, USER);
        }
        let trust = format!(
            "issuer github {GITHUB} {AUD} {JWKS}/github.json max-age=300\n\
             issuer gitlab {GITLAB} {AUD} {JWKS}/gitlab.json max-age=3600\n\
             issuer cirrus {CIRRUS} {AUD} {JWKS}/cirrus.json max-age=3600 alg=ES256\n\
             trust deploy-main github rw ci-test-deploy@main -- repository_id=123456789 ref=refs/heads/main event_name=push,workflow_dispatch\n\
             trust status github ro ci-test-* -- repository_owner_id=4242 ref=refs/heads/main\n\
             trust gl-deploy gitlab rw ci-test-deploy@gl -- project_id=555 ref=main ref_protected=true\n\
             trust cirrus-deploy cirrus rw ci-test-deploy@cirrus -- repository_id=777 branch=main\n\
             trust matrix github rw ci-test-matrix@* -- repository_id=123456789 ref=refs/heads/main\n"
        );
        w.sb.write_file(TRUST, trust.as_bytes(), 0o640, &format!("root:{USER}"));
        let addr = format!("127.0.0.1:{}", free_port());
        w.sb.sh_ok(&format!(
            "systemd-run --quiet --unit=jobgate-oidc --uid={USER} --gid={USER} -p SupplementaryGroups=systemd-journal \
             {BIN} --tokens {TOKENS} --state-dir {OIDC_STATE} --trust {TRUST} serve --listen {addr}"
        ));
        wait_until("jobgate --trust answers", Duration::from_secs(10), || std::net::TcpStream::connect(&addr).is_ok());
        Oidc { addr, github, gitlab, cirrus }
    })
}

fn now() -> u64 {
    now_us() / 1_000_000
}

/// The GitHub issuer's key, for threads that sign (set up by `oidc`).
fn oidc_key() -> &'static Key {
    &OIDC_STATE_CELL.get().expect("oidc set up").github
}

/// A GitHub Actions token of a push to main of octo/app, as its claims are.
fn github_claims(jti: &str) -> Value {
    let now = now();
    json!({
        "iss": GITHUB, "aud": AUD, "iat": now, "nbf": now, "exp": now + 300, "jti": jti,
        "sub": "repo:octo/app:ref:refs/heads/main", "repository": "octo/app", "repository_id": "123456789",
        "repository_owner": "octo", "repository_owner_id": "4242", "ref": "refs/heads/main", "ref_type": "branch",
        "sha": SHA, "event_name": "push", "workflow": "deploy", "run_id": "99", "run_attempt": "1", "actor": "octocat",
    })
}

fn with(mut claims: Value, key: &str, value: Value) -> Value {
    claims[key] = value;
    claims
}

fn jti() -> String {
    format!("jti-{}", now_us())
}

fn start(o: &Oidc, job: &str, token: &str) -> Answer {
    request(&o.addr, "POST", &format!("/api/job/{job}"), Some(token))
}

fn oidc_log(w: &World, since_us: u64) -> String {
    w.sb.sh_ok(&format!("journalctl --no-pager -o cat -u jobgate-oidc.service --since @{}", since_us / 1_000_000))
}

fn wait_idle(o: &Oidc, job: &str) {
    wait_until(&format!("{job} is idle"), Duration::from_secs(30), || {
        let token = o.github.sign("github-1", &github_claims(&jti()));
        let state = request(&o.addr, "GET", &format!("/api/job/{job}/state"), Some(&token)).json();
        !matches!(state["state"].as_str(), Some("active" | "activating" | "deactivating"))
    });
}

fn a_ci_token_starts_its_job_and_the_run_shows_who(w: &World) {
    let o = oidc(w);
    let since = now_us();
    let token = o.github.sign("github-1", &github_claims(&jti()));
    let started = start(o, "ci-test-deploy@main", &token);
    assert_eq!(started.status, 200, "{}", started.body);
    let run = started.json()["run"].as_str().unwrap_or_default().to_string();
    assert_eq!(run.len(), 32, "{}", started.body);
    let replay = start(o, "ci-test-deploy@main", &token);
    assert_eq!((replay.status, replay.msg()), (401, "Missing or invalid token".to_string()), "a jti starts once");
    // Nor in another process: inetd shares the state directory's marks.
    let mut inetd = w.sb.command_as(USER, BIN);
    inetd.args(["--tokens", TOKENS, "--state-dir", OIDC_STATE, "--trust", TRUST, "inetd"]);
    let raw = format!("POST /api/job/ci-test-deploy@main/stop HTTP/1.1\r\nAuthorization: Bearer {token}\r\n\r\n");
    let (answer, _) = tests_hold::inetd(inetd, &raw);
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    wait_idle(o, "ci-test-deploy@main");
    let log = oidc_log(w, since);
    let audit = log.lines().find(|l| l.contains("audit action=start outcome=ok")).unwrap_or_default();
    assert!(
        audit.ends_with(&format!(
            "job=ci-test-deploy@main token=oidc:deploy-main client=127.0.0.1 run={run} trust=oidc:deploy-main \
             repo=octo/app repo_id=123456789 ref=refs/heads/main sha={SHA} event=push workflow_run=99/1 actor=octocat"
        )),
        "{log}"
    );
    assert!(log.contains("jti is used already"), "{log}");
    // Read with a fresh token (the ro line "status" takes it for reading).
    let read = o.github.sign("github-1", &github_claims(&jti()));
    let runs = get(&o.addr, "/api/job/ci-test-deploy@main/runs", &read).json();
    let shown = runs["runs"].as_array().and_then(|r| r.iter().find(|r| r["run"] == run.as_str())).cloned();
    let by = shown.map(|r| r["started_by"].clone()).unwrap_or_default();
    assert_eq!(by["trust"], "oidc:deploy-main", "{runs}");
    assert_eq!(
        (by["repo_id"].as_str(), by["sha"].as_str(), by["workflow_run"].as_str()),
        (Some("123456789"), Some(SHA), Some("99/1"))
    );
    let state = get(&o.addr, "/api/job/ci-test-deploy@main/state", &read).json();
    assert_eq!(state["started_by"]["actor"], "octocat", "{state}");
    // Static tokens work as before beside it.
    assert_eq!(get(&o.addr, "/api/job/ci-test-deploy@main/state", &w.ro).status, 200);
}

fn bad_ci_tokens_start_nothing(w: &World) {
    let o = oidc(w);
    let since = now_us();
    let good = || github_claims(&jti());
    let now = now();
    let b64 = |v: &Value| {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let none = format!("{}.{}.", b64(&json!({"alg": "none", "typ": "JWT", "kid": "github-1"})), b64(&good()));
    let mut hs256 = Header::new(Algorithm::HS256);
    hs256.kid = Some("github-1".into());
    let public = o.github.jwks("github-1");
    let confused = jsonwebtoken::encode(&hs256, &good(), &EncodingKey::from_secret(public.as_bytes())).expect("sign");
    let cases: Vec<(&str, String, u16)> = vec![
        (
            "wrong audience",
            o.github.sign("github-1", &with(good(), "aud", json!("https://other.example/jobgate"))),
            401,
        ),
        (
            "the default audience",
            o.github.sign("github-1", &with(good(), "aud", json!("https://github.com/octo"))),
            401,
        ),
        ("wrong issuer", o.github.sign("github-1", &with(good(), "iss", json!("https://evil.example"))), 401),
        (
            "expired",
            o.github.sign(
                "github-1",
                &with(with(with(good(), "exp", json!(now - 100)), "iat", json!(now - 300)), "nbf", json!(now - 300)),
            ),
            401,
        ),
        ("not yet valid", o.github.sign("github-1", &with(good(), "nbf", json!(now + 600))), 401),
        ("over max-age", o.github.sign("github-1", &with(good(), "exp", json!(now + 3600))), 401),
        ("a string exp", o.github.sign("github-1", &with(good(), "exp", json!((now + 200).to_string()))), 401),
        ("alg none", none, 401),
        ("HS256 with the public key", confused, 401),
        ("unknown kid", o.github.sign("github-2", &good()), 401),
        ("another key", Key::new(Algorithm::RS256).sign("github-1", &good()), 401),
        ("ref differs", o.github.sign("github-1", &with(good(), "ref", json!("refs/heads/dev"))), 403),
        ("repository_id differs", o.github.sign("github-1", &with(good(), "repository_id", json!("987654321"))), 403),
        (
            "pull_request_target",
            o.github.sign("github-1", &with(good(), "event_name", json!("pull_request_target"))),
            403,
        ),
        (
            "no jti",
            o.github.sign(
                "github-1",
                &good()
                    .as_object()
                    .map(|c| {
                        let mut c = c.clone();
                        c.remove("jti");
                        Value::Object(c)
                    })
                    .unwrap_or_default(),
            ),
            401,
        ),
    ];
    for (what, token, status) in &cases {
        let answer = start(o, "ci-test-deploy@main", token);
        assert_eq!(answer.status, *status, "{what}: {}", answer.body);
        let flat = if *status == 401 { "Missing or invalid token" } else { "Not permitted" };
        assert_eq!(answer.msg(), flat, "{what}: the client learns nothing more");
    }
    let other_job = start(o, "ci-test-deploy@prod", &o.github.sign("github-1", &good()));
    assert_eq!(other_job.status, 403, "a token for another job: {}", other_job.body);
    std::thread::sleep(Duration::from_millis(300));
    let started: Vec<String> =
        w.units_started_since(since).into_iter().filter(|u| u.starts_with("ci-test-deploy@")).collect();
    assert!(started.is_empty(), "nothing started: {started:?}");
    let log = oidc_log(w, since);
    assert!(
        log.contains("nearest trust line deploy-main (") && log.contains("claim ref is \"refs/heads/dev\""),
        "{log}"
    );
    assert!(log.contains("claim event_name is \"pull_request_target\""), "{log}");
    assert!(!cases.iter().any(|(_, token, _)| log.contains(token.as_str())), "no token in the log");
}

fn gitlab_and_cirrus_tokens_work_through_their_issuer_lines(w: &World) {
    let o = oidc(w);
    let now = now();
    let gitlab = json!({
        "iss": GITLAB, "aud": AUD, "iat": now, "nbf": now, "exp": now + 3600, "jti": jti(),
        "project_id": "555", "project_path": "grp/app", "ref": "main", "ref_type": "branch", "ref_protected": "true",
        "sha": SHA, "pipeline_source": "push", "pipeline_id": "1234", "user_login": "dev",
    });
    let started = start(o, "ci-test-deploy@gl", &o.gitlab.sign("gitlab-1", &gitlab));
    assert_eq!(started.status, 200, "GitLab: {}", started.body);
    let unprotected = with(with(gitlab.clone(), "ref_protected", json!("false")), "jti", json!(jti()));
    assert_eq!(start(o, "ci-test-deploy@gl", &o.gitlab.sign("gitlab-1", &unprotected)).status, 403);
    let cirrus = json!({
        "iss": CIRRUS, "aud": AUD, "iat": now, "exp": now + 600, "jti": jti(),
        "repository_id": "777", "repository_owner": "octo", "repository_name": "app", "branch": "main",
        "change_in_repo": SHA, "build_id": "42",
    });
    let token = o.cirrus.sign("cirrus-1", &cirrus);
    let started = start(o, "ci-test-deploy@cirrus", &token);
    assert_eq!(started.status, 200, "Cirrus (ES256): {}", started.body);
    let rs256 = o.github.sign("cirrus-1", &with(cirrus, "jti", json!(jti())));
    assert_eq!(start(o, "ci-test-deploy@cirrus", &rs256).status, 401, "RS256 where the issuer line says ES256");
    wait_idle(o, "ci-test-deploy@gl");
    wait_idle(o, "ci-test-deploy@cirrus");
}

fn trust_explain_and_check_speak_to_the_operator(w: &World) {
    let o = oidc(w);
    let explain = |token: &str, job: &str| {
        let mut child = w
            .sb
            .command_as(USER, BIN)
            .args(["--tokens", TOKENS, "--state-dir", OIDC_STATE, "--trust", TRUST, "trust", "explain", "--job", job])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("explain");
        use std::io::Write;
        child.stdin.take().expect("stdin").write_all(token.as_bytes()).expect("token");
        let out = child.wait_with_output().expect("explain");
        (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let dev = o.github.sign("github-1", &with(github_claims(&jti()), "ref", json!("refs/heads/dev")));
    let (code, text) = explain(&dev, "ci-test-deploy@main");
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("deploy-main (/run/jobgate-test/trust:4): no: claim ref is \"refs/heads/dev\""), "{text}");
    let (code, text) = explain(&o.github.sign("github-1", &github_claims(&jti())), "ci-test-deploy@main");
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("deploy-main (/run/jobgate-test/trust:4): matches: rw on ci-test-deploy@main"), "{text}");

    let check = |extra: &str| {
        w.sb.sh_ok(extra);
        let out =
            w.sb.command_as(USER, BIN)
                .args(["--tokens", TOKENS, "--state-dir", OIDC_STATE, "--trust", TRUST, "check"])
                .output()
                .expect("check");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let report = check("true");
    assert!(report.contains("issuer github: 1 key(s) in /run/jobgate-test/jwks/github.json"), "{report}");
    assert!(!report.contains("FAIL /run/jobgate-test/trust"), "{report}");
    let report = check(&format!("touch -d '2 days ago' {JWKS}/gitlab.json"));
    assert!(
        report.contains("FAIL /run/jobgate-test/trust: issuer gitlab: /run/jobgate-test/jwks/gitlab.json is 48 h old"),
        "{report}"
    );
    let jwks =
        w.sb.command_as(USER, BIN)
            .args(["trust", "check-jwks", &format!("{JWKS}/cirrus.json")])
            .output()
            .expect("check-jwks");
    assert!(jwks.status.success(), "{}", String::from_utf8_lossy(&jwks.stderr));
    w.sb.write_file("/run/jobgate-test/empty-jwks.json", b"{\"keys\": []}", 0o644, USER);
    let empty =
        w.sb.command_as(USER, BIN)
            .args(["trust", "check-jwks", "/run/jobgate-test/empty-jwks.json"])
            .output()
            .expect("check-jwks");
    assert_eq!(empty.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&empty.stderr).contains("it holds no key"));
}

/// contrib/github/jobgate-run --oidc against this jobgate, with a stand-in
/// for GitHub's ID token endpoint that signs a fresh token per request as
/// GitHub does: the workflow holds no secret, starts its job once and
/// follows it to the end.
fn jobgate_run_oidc_end_to_end(w: &World) {
    let o = oidc(w);
    wait_idle(o, "ci-test-deploy@main");
    let (endpoint, minted) = id_token_endpoint();
    let since = now_us();
    let script = format!("{}/contrib/github/jobgate-run", env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("dash")
        .args([script.as_str(), "--url", &format!("http://{}", o.addr), "--oidc", AUD, "ci-test-deploy@main"])
        .env_remove("GITHUB_STEP_SUMMARY")
        .env_remove("GITHUB_OUTPUT")
        .env("ACTIONS_ID_TOKEN_REQUEST_URL", &endpoint)
        .env("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "request-token")
        .output()
        .expect("dash");
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("deployed main"), "{stdout}");
    assert!(stderr.contains("finished: result=success exit_status=0"), "{stderr}");
    assert!(minted.load(std::sync::atomic::Ordering::SeqCst) >= 2, "a token per request");
    let log = oidc_log(w, since);
    let starts = log
        .lines()
        .filter(|l| l.contains("audit action=start outcome=ok job=ci-test-deploy@main token=oidc:deploy-main"))
        .count();
    assert_eq!(starts, 1, "{log}");
}

/// The address of the serve that trusts GitHub's ID tokens (and takes the
/// suite's tokens too); its trust line `matrix` lets a push to main of
/// octo/app run any `ci-test-matrix@` instance.
pub(crate) fn trusting_serve(w: &World) -> String {
    oidc(w).addr.clone()
}

/// A stand-in for GitHub's ID token endpoint, as
/// `ACTIONS_ID_TOKEN_REQUEST_URL`: each request for the audience gets a
/// freshly signed token of a push to main of octo/app, with a jti of its
/// own; and the count of tokens minted.
pub(crate) fn id_token_endpoint() -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::io::{Read, Write};
    use std::sync::atomic::Ordering::SeqCst;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let endpoint = format!("http://{}/idtoken?api-version=2.0", listener.local_addr().expect("addr"));
    let minted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = minted.clone();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && head.len() < 16 << 10 && stream.read(&mut byte).is_ok_and(|n| n == 1)
            {
                head.push(byte[0]);
            }
            let asked = String::from_utf8_lossy(&head).contains("audience=https%3A%2F%2Fci.example.org%2Fjobgate");
            let n = count.fetch_add(1, SeqCst);
            let body = if asked {
                json!({"value": oidc_key().sign("github-1", &github_claims(&format!("{}-{n}", jti())))}).to_string()
            } else {
                "{}".into()
            };
            let _ = write!(stream, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
        }
    });
    (endpoint, minted)
}

/// Issue 24: a used rw CI token is refused in every request to its last
/// accepted second (exp + 60 s of leeway) and after it, by serve and by
/// inetd, which share its mark through the state directory.
fn a_used_ci_token_is_refused_across_its_expiry(w: &World) {
    let o = oidc(w);
    let port = free_port();
    let service = super::tests_api::shipped_unit("jobgate@.service").replace(
        &format!("--tokens {TOKENS} --state-dir {STATE}"),
        &format!("--tokens {TOKENS} --state-dir {OIDC_STATE} --trust {TRUST}"),
    );
    w.sb.install_unit("jobgate-oidc-inetd@.service", &service);
    let socket =
        super::tests_api::shipped_unit("jobgate.socket").replace("127.0.0.1:8000", &format!("127.0.0.1:{port}"));
    // Accept=yes: each connection is an instance of the socket's name.
    w.sb.install_unit("jobgate-oidc-inetd.socket", &socket);
    w.sb.sh_ok("systemctl restart jobgate-oidc-inetd.socket");
    let inetd = format!("127.0.0.1:{port}");
    wait_idle(o, "ci-test-deploy@main");
    // Its last accepted second is 3 s from now.
    let now = now();
    let (exp, iat) = (now + 3 - 60, now - 100);
    let claims = with(with(with(github_claims(&jti()), "exp", json!(exp)), "iat", json!(iat)), "nbf", json!(iat));
    let token = o.github.sign("github-1", &claims);
    assert_eq!(start(o, "ci-test-deploy@main", &token).status, 200, "the first use");
    let mut replays = 0;
    while super::now_us() / 1_000_000 <= exp + 60 + 2 {
        for addr in [&o.addr, &inetd] {
            let replay = request(addr, "POST", "/api/job/ci-test-deploy@main/stop", Some(&token));
            assert_eq!(replay.status, 401, "a replay through {addr}: {}", replay.body);
            replays += 1;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(replays >= 40, "{replays} replays across the expiry");
    wait_idle(o, "ci-test-deploy@main");
}
