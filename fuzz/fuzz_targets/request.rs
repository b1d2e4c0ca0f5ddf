//! Routing any request never panics, answers a known status with a JSON
//! error body, and never hands the runner an argument vector with a name
//! that is not a valid job.
#![no_main]

use std::ffi::OsString;
use std::io::{self, BufRead};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use jobgate::api::http::Request;
use jobgate::api::{Api, TokenStore};
use jobgate::auth::{hex, sha256, TokenFile};
use jobgate::names::{JobName, Prefix};
use jobgate::ops::Jobs;
use jobgate::systemd::argv::Tools;
use jobgate::systemd::run::{Output, Runner, StopOnDrop};
use jobgate::tail_state::TailState;
use libfuzzer_sys::fuzz_target;

/// Answers like an idle system and checks every argv it is given.
struct CheckingRunner;

fn check(argv: &[OsString]) {
    let prefix = Prefix::parse("ci-test-").expect("prefix");
    let units: Vec<String> =
        argv.iter().map(|a| a.to_string_lossy().into_owned()).filter(|a| a.ends_with(".service") && !a.contains('*')).collect();
    assert!(units.len() <= 1, "{argv:?}");
    for unit in units {
        let job = unit.trim_end_matches(".service");
        assert!(JobName::parse(&prefix, job).is_ok(), "an invalid name reached argv: {argv:?}");
    }
}

impl Runner for CheckingRunner {
    fn call(&self, argv: &[OsString]) -> io::Result<Output> {
        check(argv);
        let stdout = b"LoadState=loaded\nActiveState=inactive\nInvocationID=0123456789abcdef0123456789abcdef\n".to_vec();
        Ok(Output { success: true, stdout, stderr: Vec::new() })
    }

    fn stream(&self, argv: &[OsString], _timeout: Duration) -> io::Result<(Box<dyn BufRead + Send>, StopOnDrop)> {
        check(argv);
        Ok((Box::new(io::Cursor::new(Vec::new())), Box::new(())))
    }
}

fn api() -> &'static Api {
    static API: OnceLock<Api> = OnceLock::new();
    API.get_or_init(|| {
        let tokens = format!("fuzz rw sha256:{}\n", hex(&sha256("jgt_fuzz")));
        let prefix = Prefix::parse("ci-test-").expect("prefix");
        Api {
            jobs: Arc::new(Jobs::new(prefix, Tools::default(), Arc::new(CheckingRunner))),
            tokens: TokenStore::fixed(TokenFile::parse("tokens", &tokens).expect("tokens")),
            tails: TailState::new(std::env::temp_dir().join("jobgate-fuzz-state")),
            trust_proxy: None,
            hooks: None,
            trust: None,
            follow: jobgate::follow::Limits {
                max_streams: 4,
                max_per_token: 4,
                max_duration: jobgate::follow::DEFAULT_MAX_DURATION,
                slot_dir: std::env::temp_dir().join("jobgate-fuzz-state/follow"),
            },
            counters: jobgate::metrics::Counters::none(),
            health: jobgate::api::Health::default(),
        }
    })
}

fuzz_target!(|data: &[u8]| {
    // METHOD SP TARGET [NUL HEADER-VALUE-OF-AUTHORIZATION]
    let text = String::from_utf8_lossy(data);
    let (line, auth) = text.split_once('\0').unwrap_or((&text, "Bearer jgt_fuzz"));
    let (method, target) = line.split_once(' ').unwrap_or(("GET", line));
    let mut req = Request::new(method, target);
    req.headers.push(("Authorization".into(), auth.into()));
    let (response, _) = api().handle(&req);
    assert!(matches!(response.status, 200 | 400 | 401 | 403 | 404 | 405 | 425 | 500 | 503), "status {}", response.status);
    if response.status != 200 {
        let value: serde_json::Value = serde_json::from_slice(&response.body).expect("a JSON error body");
        assert!(value["msg"].is_string());
    }
});
