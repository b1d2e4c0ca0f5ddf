//! The one log line per request: method, route template, job, token NAME,
//! status, duration. Never a token, never a raw path or query string.
//! And the audit line for every start and stop, in a stable `key=value`
//! form (jobgate(8), AUDIT).
#![forbid(unsafe_code)]

use std::net::IpAddr;
use std::time::Duration;

/// What the access line says of a request beside its answer's status:
/// the method, the route template, the job and the token NAME. The HTTP
/// core makes it with the answer; the exchange logs it once the answer is
/// sent.
#[derive(Debug, Clone)]
pub struct Record {
    pub method: String,
    pub route: &'static str,
    pub job: Option<String>,
    pub token: Option<String>,
}

impl Record {
    /// The record of a request that could not be read.
    pub fn unread() -> Record {
        Record { method: "-".into(), route: "-", job: None, token: None }
    }
}

pub fn line(record: &Record, status: u16, elapsed: Duration) -> String {
    // The method is echoed only if it is a plain word, so a hostile one
    // cannot forge log lines.
    let method = &record.method;
    let plain =
        method == "-" || (!method.is_empty() && method.len() <= 16 && method.bytes().all(|b| b.is_ascii_uppercase()));
    format!(
        "{} {} job={} token={} status={status} ms={}",
        if plain { method } else { "?" },
        record.route,
        record.job.as_deref().unwrap_or("-"),
        record.token.as_deref().unwrap_or("-"),
        elapsed.as_millis()
    )
}

pub fn log(record: &Record, status: u16, elapsed: Duration) {
    log::info!("{}", line(record, status, elapsed));
}

/// The client a request came from: the peer, or, when the peer is the
/// trusted proxy, the address that proxy appended last to X-Forwarded-For
/// (anything before it was written by the client and proves nothing).
pub fn client(remote: Option<IpAddr>, forwarded_for: Option<&str>, trust_proxy: Option<IpAddr>) -> Option<IpAddr> {
    match (remote, trust_proxy, forwarded_for) {
        (Some(peer), Some(proxy), Some(list)) if peer == proxy => {
            list.rsplit(',').next().and_then(|last| last.trim().parse().ok())
        }
        _ => remote,
    }
}

/// What an attempt to change a job came to, from its answer's status.
/// The audit's outcome for an answer's status.
pub fn outcome(status: u16) -> &'static str {
    match status {
        200 => "ok",
        400 => "invalid",
        401 => "unauthenticated",
        403 => "denied",
        404 => "unknown-job",
        425 => "already-active",
        500 => "failed",
        _ => "refused",
    }
}

/// Writes an audit line to standard error (the journal, under systemd)
/// whatever the log filter says: `RUST_LOG=warn` must not silence the
/// audit trail.
pub fn audit(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

/// `audit action=start outcome=ok job=… token=… client=… run=…`, then
/// for a CI token who asked (`trust=… repo=… ref=… sha=…`): every value is
/// a validated name, an address, `-`, or a claim reduced to the characters
/// of names (`oidc::claims::provenance`), so it cannot hold a space.
pub fn audit_line(
    action: &str,
    outcome: &str,
    record: &Record,
    client: Option<IpAddr>,
    run: Option<&str>,
    origin: &[(&str, String)],
) -> String {
    let mut line = format!(
        "audit action={action} outcome={outcome} job={} token={} client={} run={}",
        record.job.as_deref().unwrap_or("-"),
        record.token.as_deref().unwrap_or("-"),
        client.map(|c| c.to_string()).unwrap_or_else(|| "-".into()),
        run.unwrap_or("-")
    );
    for (key, value) in origin {
        line.push_str(&format!(" {key}={value}"));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_address_from_a_trusted_proxy_only() {
        let peer: IpAddr = "127.0.0.1".parse().expect("ip");
        let proxy = Some(peer);
        let forwarded = Some("6.6.6.6, 203.0.113.7");
        assert_eq!(client(Some(peer), forwarded, None), Some(peer), "no proxy trusted");
        assert_eq!(client(Some(peer), forwarded, proxy).map(|c| c.to_string()).as_deref(), Some("203.0.113.7"));
        let other: IpAddr = "10.0.0.9".parse().expect("ip");
        assert_eq!(client(Some(other), forwarded, proxy), Some(other), "not the trusted proxy");
        assert_eq!(client(Some(peer), Some("bogus"), proxy), None);
        assert_eq!(client(Some(peer), None, proxy), Some(peer));
    }

    fn record(method: &str, route: &'static str, job: &str, token: &str) -> Record {
        Record { method: method.into(), route, job: Some(job.into()), token: Some(token.into()) }
    }

    #[test]
    fn audit_lines() {
        let record = record("POST", "/api/job/{job}", "ci-test-a", "ci");
        let client = "192.0.2.1".parse().ok();
        assert_eq!(
            audit_line("start", outcome(425), &record, client, None, &[]),
            "audit action=start outcome=already-active job=ci-test-a token=ci client=192.0.2.1 run=-"
        );
    }

    #[test]
    fn shows_route_template_and_token_name_only() {
        let record = record("GET", "/api/job/{job}/logs", "ci-test-a", "deploy");
        assert_eq!(
            line(&record, 403, Duration::from_millis(7)),
            "GET /api/job/{job}/logs job=ci-test-a token=deploy status=403 ms=7"
        );
        let forged = Record { method: "GET\nforged".into(), ..record };
        assert!(line(&forged, 403, Duration::ZERO).starts_with("? "));
        assert!(line(&Record::unread(), 408, Duration::ZERO).starts_with("- - job=- token=-"));
    }
}
