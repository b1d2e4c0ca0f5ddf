//! The one log line per request: method, route template, job, token NAME,
//! status, duration. Never a token, never a raw path or query string.
#![forbid(unsafe_code)]

use std::time::Duration;

use super::http::Response;

pub fn line(method: &str, response: &Response, elapsed: Duration) -> String {
    // The method is echoed only if it is a plain word, so a hostile one
    // cannot forge log lines.
    let method = if !method.is_empty() && method.len() <= 16 && method.bytes().all(|b| b.is_ascii_uppercase()) {
        method
    } else {
        "?"
    };
    format!(
        "{method} {} job={} token={} status={} ms={}",
        response.route,
        response.job.as_deref().unwrap_or("-"),
        response.token.as_deref().unwrap_or("-"),
        response.status,
        elapsed.as_millis()
    )
}

pub fn log(method: &str, response: &Response, elapsed: Duration) {
    log::info!("{}", line(method, response, elapsed));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shows_route_template_and_token_name_only() {
        let mut response = Response::error(403, "Not permitted");
        response.route = "/api/job/{job}/logs";
        response.job = Some("ci-test-a".into());
        response.token = Some("deploy".into());
        assert_eq!(
            line("GET", &response, Duration::from_millis(7)),
            "GET /api/job/{job}/logs job=ci-test-a token=deploy status=403 ms=7"
        );
        assert!(line("GET\nforged", &response, Duration::ZERO).starts_with("? "));
    }
}
