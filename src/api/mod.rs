//! The core: an [`http::Request`] in, an [`http::Response`] out. Routing,
//! authentication, authorization and the calls into `ops`; knows nothing of
//! sockets, stdin or CGI.
#![forbid(unsafe_code)]

pub mod access_log;
pub mod hooks;
pub mod http;

use std::io;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::json;

use crate::auth::{self, Grant, Scope, TokenFile};
use crate::follow;
use crate::metrics::{self, Counters, Series};
use crate::names::{Cursor, JobName, Lines, RunId, RunSelector};
use crate::oidc::{self, Trust, Verified};
use crate::ops::{Jobs, OpError, RunLogs, RunTail, MAX_RUNS};
use crate::runs::Run;
use crate::secure_file::Watched;
use crate::tail_state::TailState;
pub use access_log::Record;
use http::{parse_query, Request, Response, Sink, StreamBody};

/// Runs listed when a request does not say how many.
pub const DEFAULT_RUNS: usize = 20;

/// The token file, read again when it changes on disk (so `token add` and
/// `token revoke` take effect without a restart).
pub type TokenStore = Watched<TokenFile>;

impl TokenStore {
    pub fn load(path: PathBuf) -> Result<TokenStore, String> {
        Watched::new(path, read_token_file)
    }
}

pub fn read_token_file(path: &std::path::Path) -> Result<TokenFile, String> {
    let text = crate::secure_file::read_private(path)?;
    TokenFile::parse(&path.display().to_string(), &text)
}

pub struct Api {
    /// Shared with the streams (`follow`, long `logs`) handed to the front end.
    pub jobs: Arc<Jobs>,
    pub tokens: TokenStore,
    pub tails: TailState,
    /// The reverse proxy whose X-Forwarded-For names the client.
    pub trust_proxy: Option<std::net::IpAddr>,
    /// Signed webhooks (`--hooks`); without them `/hook/…` is not found.
    pub hooks: Option<crate::api::hooks::Hooks>,
    /// How many `follow` streams at once, and for how long.
    pub follow: follow::Limits,
    /// CI identity tokens (`--trust`); without it a JWT is an unknown token.
    pub trust: Option<Trust>,
    /// Requests, starts and stops counted for `/metrics`.
    pub counters: Counters,
    /// The last `/healthz` answer, reused for [`HEALTH_KEPT`].
    pub health: Health,
}

/// How long a `/healthz` answer is reused: polling it (it needs no token)
/// costs at most two calls per this time, however often it is asked.
pub const HEALTH_KEPT: Duration = Duration::from_secs(2);

/// The last health check: when, and what it found.
#[derive(Default)]
pub struct Health(Mutex<Option<(Instant, Result<String, &'static str>)>>);

/// A route's answer before the access-log fields are filled in.
type Answer = Result<Response, Reject>;

/// A request turned away: status and the `{"msg"}` the client sees.
#[derive(Debug)]
pub struct Reject {
    status: u16,
    msg: &'static str,
    allow: Option<&'static str>,
}

impl Reject {
    pub fn new(status: u16, msg: &'static str) -> Reject {
        Reject { status, msg, allow: None }
    }

    pub fn into_response(self) -> Response {
        let response = Response::error(self.status, self.msg);
        match (self.status, self.allow) {
            (401, _) => response.with_header("WWW-Authenticate", "Bearer realm=\"jobgate\"".into()),
            (405, Some(allow)) => response.with_header("Allow", allow.into()),
            _ => response,
        }
    }
}

impl Api {
    /// Answers one request. Never panics on input; every error is a JSON
    /// `{"msg"}` with a 4xx, or a 500 whose cause goes to the log only.
    pub fn handle(&self, req: &Request) -> (Response, Record) {
        let mut ctx = Context {
            route: "-",
            job: None,
            token: None,
            action: None,
            outcome: None,
            run: None,
            follow_refused: None,
            origin: Vec::new(),
        };
        let answer = match req.path.strip_prefix('/') {
            Some(path) => self.route(req, &path.split('/').collect::<Vec<_>>(), &mut ctx),
            None => Err(Reject::new(404, "Not found")),
        };
        let response = answer.unwrap_or_else(Reject::into_response);
        let record = Record { method: req.method.clone(), route: ctx.route, job: ctx.job, token: ctx.token };
        let status = response.status.to_string();
        let mut counted = vec![Series::new("jobgate_requests_total", &[("route", ctx.route), ("status", &status)])];
        if let (Some(action), false) = (ctx.action, response.status == 405) {
            let client = access_log::client(req.remote, req.header("X-Forwarded-For"), self.trust_proxy);
            let outcome = ctx.outcome.unwrap_or_else(|| access_log::outcome(response.status));
            let line = access_log::audit_line(action, outcome, &record, client, ctx.run.as_deref(), &ctx.origin);
            access_log::audit(&line);
            // A job's own series only where it was found: names a client
            // made up are all counted as "-".
            let found = matches!(outcome, "ok" | "already-active" | "failed" | "ignored");
            let job = record.job.as_deref().filter(|_| found).unwrap_or("-");
            let labels = [("action", action), ("job", job), ("outcome", outcome)];
            counted.push(Series::new("jobgate_job_actions_total", &labels));
        }
        if let Some(cap) = ctx.follow_refused {
            counted.push(Series::new("jobgate_follow_refused_total", &[("cap", cap)]));
        }
        self.counters.count(&counted);
        (response, record)
    }

    fn route(&self, req: &Request, segments: &[&str], ctx: &mut Context) -> Answer {
        let method = req.method.as_str();
        match segments {
            [""] => {
                ctx.route = "/";
                allow(method, "GET")?;
                Ok(Response::json(200, &describe()))
            }
            ["healthz"] => {
                ctx.route = "/healthz";
                allow(method, "GET")?;
                self.health()
            }
            ["metrics"] => {
                ctx.route = "/metrics";
                allow(method, "GET")?;
                let caller = self.authenticate(req, ctx)?;
                let grant = self.permit(&caller, Scope::Metrics, None, ctx)?;
                self.metrics(&grant)
            }
            ["api", "jobs"] => self.list_jobs(req, ctx),
            ["hook", job] => self.hook(req, job, ctx),
            ["api", "job", job, rest @ ..] => self.job_route(req, job, rest, ctx),
            _ => Err(Reject::new(404, "Not found")),
        }
    }

    /// `GET /api/jobs`: the jobs the token may see.
    fn list_jobs(&self, req: &Request, ctx: &mut Context) -> Answer {
        ctx.route = "/api/jobs";
        allow(&req.method, "GET")?;
        let caller = self.authenticate(req, ctx)?;
        self.permit(&caller, Scope::Ro, None, ctx)?;
        let may_see = |job: &JobName| auth::decide(&caller.grants, Scope::Ro, Some(job)).is_some();
        let jobs: Vec<_> = self.jobs.jobs().map_err(op_error)?.into_iter().filter(|j| may_see(&j.job)).collect();
        Ok(Response::json(200, &crate::render::jobs(&jobs)))
    }

    /// `POST /hook/JOB`: a signed webhook delivery starts the job.
    fn hook(&self, req: &Request, job: &str, ctx: &mut Context) -> Answer {
        ctx.route = "/hook/{job}";
        // Without --hooks there is no such route, and nothing to audit.
        let hooks = self.hooks.as_ref().ok_or(Reject::new(404, "Not found"))?;
        ctx.action = Some("hook");
        allow(&req.method, "POST")?;
        let job = JobName::parse(self.jobs.prefix(), job).map_err(|_| Reject::new(400, "Invalid job"))?;
        ctx.job = Some(job.to_string());
        let signed = hooks.verify(&job, req);
        let first = signed.first().ok_or(Reject::new(401, "Invalid signature"))?;
        // The first line whose filters take it, else the first's reason.
        let taken = signed.iter().find(|h| h.filter(req).is_ok()).unwrap_or(first);
        ctx.token = Some(taken.name.clone());
        if let Err(ignored) = taken.filter(req) {
            ctx.outcome = Some("ignored");
            let reason = match ignored {
                crate::api::hooks::Ignored::Event => "event",
                crate::api::hooks::Ignored::Ref => "ref",
            };
            return Ok(Response::json(200, &json!({"msg": "Ignored", "reason": reason, "job": job.as_str()})));
        }
        match hooks.first_delivery(req) {
            Ok(true) => {}
            Ok(false) => return Err(Reject::new(409, "Delivery already seen")),
            Err(e) => return Err(internal(OpError::Failed(format!("remembering a delivery: {e}")))),
        }
        self.start(&job, ctx)
    }

    /// The routes under `/api/job/JOB/`.
    fn job_route(&self, req: &Request, job: &str, rest: &[&str], ctx: &mut Context) -> Answer {
        let route = JobRoute::parse(rest).ok_or(Reject::new(404, "Not found"))?;
        ctx.route = route.template();
        ctx.action = match route {
            JobRoute::Start => Some("start"),
            JobRoute::Stop => Some("stop"),
            _ => None,
        };
        allow(&req.method, route.method())?;
        let caller = self.authenticate(req, ctx)?;
        let job = JobName::parse(self.jobs.prefix(), job).map_err(|_| Reject::new(400, "Invalid job"))?;
        ctx.job = Some(job.to_string());
        let needs = if route.method() == "POST" { Scope::Rw } else { Scope::Ro };
        let grant = self.permit(&caller, needs, Some(&job), ctx)?;
        if let (Scope::Rw, Some(ci)) = (needs, &caller.ci) {
            self.use_once(ci)?;
            ctx.origin = oidc::claims::provenance(&grant.name, &ci.token.claims);
        }
        let query = Query::parse(req)?;
        match route {
            JobRoute::Start => self.start(&job, ctx),
            JobRoute::Stop => self.stop(&job),
            JobRoute::State => self.state(&job, &grant),
            JobRoute::Logs => self.logs(&job, &query, query.run.clone().unwrap_or(RunSelector::Last)),
            JobRoute::RunLogs(run) => {
                let run = RunId::parse(run).ok_or(Reject::new(400, "Invalid run"))?;
                self.logs(&job, &query, RunSelector::Id(run))
            }
            JobRoute::Tail => self.tail(&job, &grant, &query),
            JobRoute::Follow => self.follow(job, &grant, &query, ctx),
            JobRoute::Runs => self.runs(&job, &query),
        }
    }

    /// The token from `Authorization: Bearer` (preferred) or `?token=`: a
    /// static token from the token file, or, with `--trust`, a CI identity
    /// token (told by its JWT shape). 401 for any token that does not hold;
    /// why goes to the log.
    fn authenticate(&self, req: &Request, ctx: &mut Context) -> Result<Caller, Reject> {
        let unauthorized = || Reject::new(401, "Missing or invalid token");
        // An empty header is no header: CGI servers pass HTTP_AUTHORIZATION=""
        // when the client sent none.
        let presented = match req.header("Authorization").filter(|v| !v.trim().is_empty()) {
            Some(value) => bearer(value).ok_or_else(unauthorized)?.to_string(),
            None => {
                let pairs = parse_query(&req.query).map_err(|_| Reject::new(400, "Invalid query"))?;
                pairs.into_iter().find(|(k, _)| k == "token").map(|(_, v)| v).ok_or_else(unauthorized)?
            }
        };
        if let (Some(trust), true) = (&self.trust, oidc::looks_like_jwt(&presented)) {
            let verified = trust.verify(&presented, now_secs()).map_err(|refusal| {
                log::warn!("CI token refused: {refusal}");
                unauthorized()
            })?;
            ctx.token = Some(format!("issuer:{}", verified.token.issuer));
            return Ok(Caller { grants: verified.grants(), ci: Some(verified) });
        }
        let tokens = self.tokens.current();
        let entry = tokens.lookup(&presented).ok_or_else(unauthorized)?;
        ctx.token = Some(entry.name.clone());
        Ok(Caller { grants: vec![entry.grant()], ci: None })
    }

    /// The grant that lets `caller` do what `needs` asks (on `job`), which
    /// then names the caller in the log; 403 if none does. A CI token's
    /// refusal logs the nearest trust line and the first claim that failed.
    fn permit(&self, caller: &Caller, needs: Scope, job: Option<&JobName>, ctx: &mut Context) -> Result<Grant, Reject> {
        if let Some(grant) = auth::decide(&caller.grants, needs, job) {
            ctx.token = Some(grant.name.clone());
            return Ok(grant.clone());
        }
        if let Some(ci) = &caller.ci {
            log::warn!("CI token of issuer {} not permitted: {}", ci.token.issuer, ci.nearest(needs, job));
        }
        Err(Reject::new(403, "Not permitted"))
    }

    /// A CI token that starts or stops does so once: its `jti` is marked
    /// used for every jobgate process until it expires.
    fn use_once(&self, ci: &Verified) -> Result<(), Reject> {
        let (Some(trust), token) = (&self.trust, &ci.token) else { return Ok(()) };
        // The clock of its verification: a token verified in its last
        // second is marked as of that second.
        match trust.first_use(token, ci.at) {
            Ok(true) => Ok(()),
            Ok(false) => {
                log::warn!("CI token of issuer {} refused: its jti is used already, or it has none", token.issuer);
                Err(Reject::new(401, "Missing or invalid token"))
            }
            Err(e) => Err(internal(OpError::Failed(format!("marking a token used: {e}")))),
        }
    }

    /// 200 when the service manager answers and the journal can be read,
    /// else 503 with the reason; a fresh check at most every [`HEALTH_KEPT`].
    fn health(&self) -> Answer {
        let Ok(mut last) = self.health.0.lock() else { return Err(Reject::new(503, "Unhealthy")) };
        let found = match &*last {
            Some((at, found)) if at.elapsed() < HEALTH_KEPT => found.clone(),
            _ => {
                let found = self.jobs.health();
                *last = Some((Instant::now(), found.clone()));
                found
            }
        };
        let journal = found.map_err(|why| Reject::new(503, why))?;
        Ok(Response::json(200, &json!({"status": "ok", "journal": journal})))
    }

    /// The counters, the follow streams open, and each job the token may
    /// see with its last run (a job that cannot be read is left out).
    fn metrics(&self, grant: &Grant) -> Answer {
        let counters = self.counters.read().map_err(|e| internal(OpError::Failed(format!("reading counters: {e}"))))?;
        let mut jobs = Vec::new();
        for summary in self.jobs.jobs().map_err(op_error)?.into_iter().filter(|j| grant.may_see(&j.job)) {
            match self.jobs.state_with_last_run(&summary.job) {
                Ok(state) => jobs.push((summary.job, state)),
                Err(OpError::UnknownJob) => {}
                Err(e) => log::warn!("metrics: {} left out: {e}", summary.job),
            }
        }
        let gauges = metrics::Gauges {
            follow_open: metrics::slots_held(&self.follow.slot_dir, self.follow.max_streams),
            follow_max: self.follow.max_streams,
            jobs,
        };
        Ok(Response::bytes(200, metrics::CONTENT_TYPE, metrics::render(&counters, &gauges).into_bytes()))
    }

    fn start(&self, job: &JobName, ctx: &mut Context) -> Answer {
        let run = self.jobs.start(job).map_err(op_error)?;
        ctx.run = run.as_ref().map(|r| r.to_string());
        if let (Some(run), Some(trust), false) = (&run, &self.trust, ctx.origin.is_empty()) {
            if let Err(e) = trust.origins.save(run, &ctx.origin) {
                log::error!("keeping who started run {run} of {job}: {e}");
            }
        }
        let run = run.as_ref().map(|r| r.as_str());
        Ok(Response::json(
            200,
            &json!({"msg": "Job started", "job": job.as_str(), "unit": job.unit().as_str(), "run": run}),
        ))
    }

    fn stop(&self, job: &JobName) -> Answer {
        self.jobs.stop(job).map_err(op_error)?;
        Ok(Response::json(200, &json!({"msg": "Job stopped", "job": job.as_str(), "unit": job.unit().as_str()})))
    }

    fn state(&self, job: &JobName, grant: &Grant) -> Answer {
        let mut state = self.jobs.state_with_last_run(job).map_err(op_error)?;
        if !state.is_running() && self.jobs.tail_pending(job, &grant.name, &state, &self.tails).map_err(op_error)? {
            state.active_state = "active".into();
            state.sub_state = "tail-pending".into();
        }
        let mut answer = crate::render::state(job, &state);
        if let Some(trust) = &self.trust {
            trust.origins.annotate(&mut answer);
        }
        Ok(Response::json(200, &answer))
    }

    fn runs(&self, job: &JobName, query: &Query) -> Answer {
        let runs = self.jobs.runs(job, query.limit.unwrap_or(DEFAULT_RUNS)).map_err(op_error)?;
        let mut answer = crate::render::runs(&runs);
        if let Some(trust) = &self.trust {
            trust.origins.annotate(&mut answer);
        }
        Ok(Response::json(200, &answer))
    }

    fn logs(&self, job: &JobName, query: &Query, which: RunSelector) -> Answer {
        let lines = query.lines.unwrap_or_default().get() as usize;
        let Some(logs) = self.jobs.logs(job, &which, lines).map_err(op_error)? else {
            return Ok(lines_answer(query.text, &[], None, None));
        };
        if let Some(lines) = logs.held() {
            return Ok(lines_answer(query.text, lines, None, Some(logs.run.run.as_str())));
        }
        let text = query.text;
        let stream = LogsStream { jobs: Arc::clone(&self.jobs), logs, text };
        Ok(Response::streamed(if text { http::TEXT } else { http::JSON }, Box::new(stream)))
    }

    fn follow(&self, job: JobName, grant: &Grant, query: &Query, ctx: &mut Context) -> Answer {
        // A slot, within the token's fair share of the streams.
        let slot = match self.follow.take_slot(&grant.name) {
            Ok(Ok(slot)) => slot,
            Ok(Err(follow::Full::Token)) => {
                ctx.follow_refused = Some("token");
                return Err(Reject::new(503, "Too many streams for this token"));
            }
            Ok(Err(follow::Full::All)) => {
                ctx.follow_refused = Some("all");
                return Err(Reject::new(503, "Too many streams"));
            }
            Err(e) => {
                let why = format!("taking a stream slot in {}: {e}", self.follow.slot_dir.display());
                return Err(internal(OpError::Failed(why)));
            }
        };
        let which = query.run.clone().unwrap_or(RunSelector::Last);
        let run = follow::run_to_follow(&self.jobs, &job, &which).map_err(op_error)?;
        let unknown = if which == RunSelector::Last { "No run yet" } else { "Unknown run" };
        let run = run.ok_or(Reject::new(404, unknown))?;
        let run_id = run.run.to_string();
        let stream = FollowStream {
            jobs: Arc::clone(&self.jobs),
            job,
            run,
            after: query.cursor.clone(),
            options: follow::FollowOptions { cursors: query.cursors, max_duration: self.follow.max_duration },
            _slot: slot,
        };
        Ok(Response::streamed(http::TEXT, Box::new(stream)).with_header("X-Jobgate-Run", run_id))
    }

    fn tail(&self, job: &JobName, grant: &Grant, query: &Query) -> Answer {
        let tail = self.jobs.tail(job, query.cursor.as_ref(), &grant.name, &self.tails);
        let Some(RunTail { run, tail }) = tail.map_err(op_error)? else {
            return Ok(lines_answer(query.text, &[], Some(None), None));
        };
        let cursor = tail.cursor.as_ref().map(|c| c.as_str());
        // The run in a header too, for a plain-text poller (jobgate-run).
        let answer = lines_answer(query.text, &tail.lines, Some(cursor), Some(run.run.as_str()))
            .with_header("X-Jobgate-Run", run.run.to_string());
        Ok(match cursor {
            Some(cursor) => answer.with_header("X-Jobgate-Cursor", cursor.to_string()),
            None => answer,
        })
    }
}

/// A `follow` answer's body: the run's lines as they come, holding its
/// stream slot until it ends.
struct FollowStream {
    jobs: Arc<Jobs>,
    job: JobName,
    run: Run,
    after: Option<Cursor>,
    options: follow::FollowOptions,
    _slot: follow::Slot,
}

impl StreamBody for FollowStream {
    fn send_to(self: Box<Self>, sink: &mut dyn Sink) {
        let ended = follow::follow(&self.jobs, &self.job, &self.run, self.after.as_ref(), &self.options, sink);
        match ended {
            Ok(end) => log::info!("follow job={} run={}: {}", self.job, self.run.run, end),
            Err(e) => log::info!("follow job={} run={}: ended early: {e}", self.job, self.run.run),
        }
    }
}

/// A `logs` answer too large to hold: the lines read again in order and
/// sent as they come. A failure midway can only cut the answer short.
struct LogsStream {
    jobs: Arc<Jobs>,
    logs: RunLogs,
    text: bool,
}

impl StreamBody for LogsStream {
    fn send_to(self: Box<Self>, sink: &mut dyn Sink) {
        let Self { jobs, logs, text } = *self;
        let each = |line: &mut dyn FnMut(&str) -> io::Result<()>| jobs.each_log_line(&logs, line);
        if let Err(e) = crate::render::send_lines(text, logs.run.run.as_str(), each, &mut |bytes| sink.send(bytes)) {
            log::error!("logs of {} cut short: {e}", logs.job);
        }
    }
}

/// The routes under `/api/job/JOB/`.
#[derive(Clone, Copy)]
enum JobRoute<'a> {
    Start,
    Stop,
    State,
    Logs,
    Tail,
    Follow,
    Runs,
    RunLogs(&'a str),
}

impl<'a> JobRoute<'a> {
    /// From the path segments after the job.
    fn parse(rest: &[&'a str]) -> Option<JobRoute<'a>> {
        Some(match rest {
            [] => JobRoute::Start,
            ["stop"] => JobRoute::Stop,
            ["state"] => JobRoute::State,
            ["logs"] => JobRoute::Logs,
            ["tail"] => JobRoute::Tail,
            ["follow"] => JobRoute::Follow,
            ["runs"] => JobRoute::Runs,
            ["runs", run, "logs"] => JobRoute::RunLogs(run),
            _ => return None,
        })
    }

    /// What the access log shows instead of the path.
    fn template(self) -> &'static str {
        match self {
            JobRoute::Start => "/api/job/{job}",
            JobRoute::Stop => "/api/job/{job}/stop",
            JobRoute::State => "/api/job/{job}/state",
            JobRoute::Logs => "/api/job/{job}/logs",
            JobRoute::Tail => "/api/job/{job}/tail",
            JobRoute::Follow => "/api/job/{job}/follow",
            JobRoute::Runs => "/api/job/{job}/runs",
            JobRoute::RunLogs(_) => "/api/job/{job}/runs/{run}/logs",
        }
    }

    fn method(self) -> &'static str {
        match self {
            JobRoute::Start | JobRoute::Stop => "POST",
            _ => "GET",
        }
    }
}

struct Context {
    route: &'static str,
    job: Option<String>,
    token: Option<String>,
    /// `start` or `stop`: what the audit line records.
    action: Option<&'static str>,
    /// The audit's outcome where the status does not tell it (a signed
    /// hook ignored by its filters answers 200).
    outcome: Option<&'static str>,
    run: Option<String>,
    /// Which cap refused a `follow` stream, for the metrics.
    follow_refused: Option<&'static str>,
    /// Who asked, when a CI token starts or stops: for the audit line and
    /// the run's record.
    origin: Vec<(&'static str, String)>,
}

/// Who a request acts as: the grants of its token (a static token's one,
/// or every trust line a CI token's claims satisfy) and, for a CI token,
/// the token itself.
struct Caller {
    grants: Vec<Grant>,
    ci: Option<Verified>,
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs()
}

/// The query parameters jobgate knows, each checked; others are ignored.
#[derive(Default)]
struct Query {
    lines: Option<Lines>,
    run: Option<RunSelector>,
    cursor: Option<Cursor>,
    limit: Option<usize>,
    text: bool,
    /// `follow`: each line with its cursor.
    cursors: bool,
}

impl Query {
    fn parse(req: &Request) -> Result<Query, Reject> {
        let pairs = parse_query(&req.query).map_err(|_| Reject::new(400, "Invalid query"))?;
        let mut query = Query::default();
        let accept_text = req.header("Accept").is_some_and(|a| a.trim().starts_with("text/plain"));
        query.text = accept_text;
        for (key, value) in pairs {
            match key.as_str() {
                "lines" => query.lines = Some(Lines::parse(&value).ok_or_else(|| Reject::new(400, "Invalid lines"))?),
                "run" => query.run = Some(RunSelector::parse(&value).ok_or_else(|| Reject::new(400, "Invalid run"))?),
                "cursor" => {
                    query.cursor = Some(Cursor::parse(&value).ok_or_else(|| Reject::new(400, "Invalid cursor"))?)
                }
                "limit" => {
                    let limit = value.parse::<usize>().ok().filter(|n| (1..=MAX_RUNS).contains(n));
                    query.limit = Some(limit.ok_or_else(|| Reject::new(400, "Invalid limit"))?);
                }
                "cursors" => {
                    query.cursors = match value.as_str() {
                        "1" | "true" => true,
                        "0" | "false" => false,
                        _ => return Err(Reject::new(400, "Invalid cursors")),
                    }
                }
                "format" => {
                    query.text = match value.as_str() {
                        "text" => true,
                        "json" => false,
                        _ => return Err(Reject::new(400, "Invalid format")),
                    }
                }
                _ => {}
            }
        }
        Ok(query)
    }
}

fn allow(method: &str, allowed: &'static str) -> Result<(), Reject> {
    if method == allowed {
        Ok(())
    } else {
        Err(Reject { allow: Some(allowed), ..Reject::new(405, "Method not allowed") })
    }
}

fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

fn op_error(e: OpError) -> Reject {
    match e {
        OpError::UnknownJob => Reject::new(404, "Unknown job"),
        OpError::AlreadyActive => Reject::new(425, "Job is already active"),
        OpError::Failed(why) => internal(OpError::Failed(why)),
    }
}

/// The cause goes to the log; the client learns only that it failed.
fn internal(e: OpError) -> Reject {
    log::error!("{e}");
    Reject::new(500, "Internal error")
}

fn describe() -> serde_json::Value {
    json!({
        "name": "jobgate",
        "version": env!("CARGO_PKG_VERSION"),
        "endpoints": {
            "GET /healthz": "200 when the service manager and the journal can be read (no token)",
            "GET /metrics": "Prometheus metrics (a token of scope metrics)",
            "GET /api/jobs": "list the jobs this token may see",
            "POST /api/job/JOB": "start JOB",
            "POST /api/job/JOB/stop": "stop JOB",
            "GET /api/job/JOB/state": "state of JOB",
            "GET /api/job/JOB/logs?lines=N&run=RUN": "log lines of one run (default: the last)",
            "GET /api/job/JOB/tail?cursor=C": "lines of the current run after cursor C (default: since this token's last tail)",
            "GET /api/job/JOB/follow?run=RUN&cursor=C&cursors=1": "stream the current run's lines as they are written, then how it ended",
            "GET /api/job/JOB/runs?limit=N": "run history, newest first",
            "GET /api/job/JOB/runs/RUN/logs": "log lines of run RUN",
        }
    })
}

/// Log lines as JSON (`{"cursor": …, "logs": […], "run": …}`, with a
/// cursor only where `cursor` is given), or as plain text one per line.
fn lines_answer(text: bool, lines: &[String], cursor: Option<Option<&str>>, run: Option<&str>) -> Response {
    let mut body = crate::render::LinesBody::new(text, cursor);
    for line in lines {
        body.line(line);
    }
    Response::bytes(200, if text { http::TEXT } else { http::JSON }, body.end(run))
}

#[cfg(test)]
mod tests;
