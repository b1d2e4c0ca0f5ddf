//! `jobgate serve`: the tiny_http front end. One thread per request, so a
//! slow request never holds up the others; requests are converted into the
//! core's types in one function and answers out of them in another.
#![forbid(unsafe_code)]

use std::io::Read;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Instant;

use crate::api::http::{Request, Response, MAX_BODY};
use crate::api::{access_log, Api, Reject};

/// Requests handled at once; past it the answer is 503.
pub const MAX_IN_FLIGHT: usize = 64;

/// Serves on the socket systemd passed (`passed`), or else binds `listen`.
pub fn serve(api: Arc<Api>, passed: Option<tiny_http::Listener>, listen: &str) -> Result<(), String> {
    let server = match passed {
        Some(listener) => {
            log::info!("listening on {}, passed by systemd", super::listen::describe(&listener));
            tiny_http::Server::from_listener(listener, None).map_err(|e| format!("the passed socket: {e}"))?
        }
        None => {
            let server = tiny_http::Server::http(listen).map_err(|e| format!("cannot listen on {listen}: {e}"))?;
            log::info!("listening on {listen}");
            server
        }
    };
    let in_flight = Arc::new(AtomicUsize::new(0));
    for request in server.incoming_requests() {
        if in_flight.fetch_add(1, Ordering::SeqCst) >= MAX_IN_FLIGHT {
            in_flight.fetch_sub(1, Ordering::SeqCst);
            let started = Instant::now();
            let method = request.method().to_string();
            let response = Response::error(503, "Too many requests");
            access_log::log(&method, &response, started.elapsed());
            respond(request, response);
            continue;
        }
        let api = Arc::clone(&api);
        let counted = Arc::clone(&in_flight);
        let spawned = thread::Builder::new().name("request".into()).spawn(move || {
            handle(&api, request);
            counted.fetch_sub(1, Ordering::SeqCst);
        });
        if let Err(e) = spawned {
            // The request is dropped unanswered (tiny_http closes it).
            in_flight.fetch_sub(1, Ordering::SeqCst);
            log::error!("cannot start a request thread: {e}");
        }
    }
    Ok(())
}

fn handle(api: &Api, mut request: tiny_http::Request) {
    let started = Instant::now();
    let method = request.method().to_string();
    let response = match to_request(&mut request) {
        Ok(req) => api.handle(&req),
        Err(reject) => reject.into_response(),
    };
    access_log::log(&method, &response, started.elapsed());
    respond(request, response);
}

/// tiny_http's request into the core's; the body read through a limit.
fn to_request(request: &mut tiny_http::Request) -> Result<Request, Reject> {
    let mut req = Request::new(request.method().as_str(), request.url());
    req.headers = request
        .headers()
        .iter()
        .map(|h| (h.field.as_str().as_str().to_string(), h.value.as_str().to_string()))
        .collect();
    req.remote = request.remote_addr().map(|a| a.ip());
    let mut body = Vec::new();
    request.as_reader().take(MAX_BODY + 1).read_to_end(&mut body).map_err(|_| Reject::new(400, "Bad request"))?;
    if body.len() as u64 > MAX_BODY {
        return Err(Reject::new(413, "Request body too large"));
    }
    req.body = body;
    Ok(req)
}

/// The core's answer written through tiny_http.
fn respond(request: tiny_http::Request, response: Response) {
    // Names are ours and values are ASCII we built (or a validated journal
    // cursor), so none is refused; one that were would be left out.
    let headers: Vec<tiny_http::Header> = [("Content-Type", response.content_type)]
        .into_iter()
        .chain(response.headers.iter().map(|(name, value)| (*name, value.as_str())))
        .filter_map(|(name, value)| tiny_http::Header::from_bytes(name.as_bytes(), value.as_bytes()).ok())
        .collect();
    let status = tiny_http::StatusCode(response.status);
    let len = response.body.len();
    let result = request.respond(tiny_http::Response::new(
        status,
        headers,
        std::io::Cursor::new(response.body),
        Some(len),
        None,
    ));
    if let Err(e) = result {
        log::debug!("writing the answer: {e}");
    }
}
