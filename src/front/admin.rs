//! The admin commands: `ops` called directly, answers rendered as text for
//! people or JSON for scripts (`--json`), failures as errors with exit codes.
#![forbid(unsafe_code)]

use std::fs::File;
use std::io::{self, Read, Write};

use serde_json::{json, Value};

use crate::api::read_token_file;
use crate::auth::{hex, Scope, TokenEntry, TokenFile};
use crate::cli::{Command, Config};
use crate::error::Error;
use crate::follow::FollowOptions;
use crate::front::http1::{BodySink, Framing};
use crate::names::{JobName, Lines, RunSelector};
use crate::oidc::{self, report::Level};
use crate::ops::Jobs;
use crate::render;
use crate::secure_file;
use crate::systemd::argv::{Call, Privilege, Probe};

/// Prints the run's lines as they come, then its last line; exit 0 only if
/// the run succeeded. Ends quietly when the output is closed (`| head`).
fn follow(out: &mut dyn Write, config: &Config, jobs: &Jobs, job: &JobName, run: &RunSelector) -> Result<(), Error> {
    let Some(run) = crate::follow::run_to_follow(jobs, job, run)? else {
        return Err(Error::Failed(format!("{job} has no such run in the journal")));
    };
    let options = FollowOptions { cursors: false, max_duration: config.follow.max_duration };
    let mut sink = BodySink { out, framing: Framing::Close, gone: || false };
    match crate::follow::follow(jobs, job, &run, None, &options, &mut sink) {
        Ok(end) if end.succeeded() => Ok(()),
        Ok(_) => Err(Error::Silent(1)),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(Error::Failed(format!("following {job}: {e}"))),
    }
}

pub fn run(config: &Config, jobs: &Jobs, command: Command) -> Result<(), Error> {
    let out = &mut io::stdout().lock();
    let printed = match command {
        Command::Jobs => {
            let jobs = jobs.jobs()?;
            let text: String = jobs.iter().map(|j| format!("{:<40} {}\n", j.job.as_str(), j.state)).collect();
            print(out, config.json, &render::jobs(&jobs), &text)
        }
        Command::Start(job) => {
            let run = jobs.start(&job)?;
            let run = run.as_ref().map(|r| r.as_str());
            let value = json!({"msg": "Job started", "job": job.as_str(), "unit": job.unit().as_str(), "run": run});
            print(out, config.json, &value, &format!("started {job} (run {})\n", run.unwrap_or("not begun yet")))
        }
        Command::Stop(job) => {
            jobs.stop(&job)?;
            let value = json!({"msg": "Job stopped", "job": job.as_str(), "unit": job.unit().as_str()});
            print(out, config.json, &value, &format!("stopped {job}\n"))
        }
        Command::State(job) => {
            let mut value = render::state(&job, &jobs.state_with_last_run(&job)?);
            annotate_origins(config, &mut value);
            print(out, config.json, &value, &as_lines(&value))
        }
        Command::Runs { job, limit } => {
            let mut value = render::runs(&jobs.runs(&job, limit)?);
            annotate_origins(config, &mut value);
            print(out, config.json, &value, &runs_text(&value))
        }
        Command::Logs { job, lines, run, .. } => return logs(out, config.json, jobs, &job, lines, &run),
        Command::Follow { job, run } => return follow(out, config, jobs, &job, &run),
        Command::Check => return check(out, config, jobs),
        Command::TokenAdd { name, scope, patterns } => return token_add(out, config, name, scope, patterns),
        Command::TokenList => return token_list(out, config),
        Command::TokenRevoke { name } => return token_revoke(out, config, &name),
        Command::TrustExplain { job } => return trust_explain(out, config, job.as_ref()),
        Command::TrustCheckJwks { file } => return trust_check_jwks(out, config, &file),
        Command::Serve { .. } | Command::Inetd { .. } | Command::Cgi { .. } | Command::Version => {
            return Err(Error::Failed("not an admin command".into()))
        }
    };
    ignore_broken_pipe(printed)
}

/// `runs` as text: a run a line.
fn runs_text(value: &Value) -> String {
    let mut text = String::new();
    for run in value["runs"].as_array().into_iter().flatten() {
        let field = |k: &str| match &run[k] {
            Value::Null => "-".to_string(),
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        text.push_str(&format!(
            "{}  {}  {:<20}  {:<10} {}\n",
            field("run"),
            field("started"),
            field("finished"),
            field("result"),
            field("exit_status")
        ));
    }
    text
}

fn token_list(out: &mut dyn Write, config: &Config) -> Result<(), Error> {
    let file = read_token_file(&config.tokens).map_err(Error::Failed)?;
    let list: Vec<Value> =
        file.entries.iter().map(|e| json!({"name": e.name, "scope": e.scope.as_str(), "jobs": e.patterns})).collect();
    let text: String = file
        .entries
        .iter()
        .map(|e| {
            let jobs = if e.patterns.is_empty() { "(all jobs)".to_string() } else { e.patterns.join(" ") };
            format!("{:<24} {}  {jobs}\n", e.name, e.scope.as_str())
        })
        .collect();
    ignore_broken_pipe(print(out, config.json, &json!({ "tokens": list }), &text))
}

fn token_revoke(out: &mut dyn Write, config: &Config, name: &str) -> Result<(), Error> {
    let _lock = lock_token_file(config)?;
    let mut file = read_token_file(&config.tokens).map_err(Error::Failed)?;
    let before = file.entries.len();
    file.entries.retain(|e| e.name != name);
    if file.entries.len() == before {
        let why = format!("{}: no token named '{}'", config.tokens.display(), name.escape_debug());
        return Err(Error::Failed(why));
    }
    write_token_file(config, &file)?;
    let value = json!({"msg": "Token revoked", "name": name});
    ignore_broken_pipe(print(out, config.json, &value, &format!("revoked {name}\n")))
}

fn trust_check_jwks(out: &mut dyn Write, config: &Config, file: &std::path::Path) -> Result<(), Error> {
    let set = oidc::read_jwks(file).map_err(Error::Failed)?;
    let problems = oidc::jwks_problems(&set);
    if !problems.is_empty() {
        return Err(Error::Failed(format!("{}: {}", file.display(), problems.join("; "))));
    }
    let value = json!({"ok": true, "keys": set.keys.len()});
    ignore_broken_pipe(print(
        out,
        config.json,
        &value,
        &format!("{}: {} key(s), usable\n", file.display(), set.keys.len()),
    ))
}

/// Who started each run shown, where a CI token did (`--trust` only).
fn annotate_origins(config: &Config, value: &mut Value) {
    if config.trust.is_some() {
        oidc::RunOrigins::in_state_dir(&config.state_dir).annotate(value);
    }
}

/// `jobgate trust explain`: the token from stdin, each trust line's verdict.
/// Exits 1 unless some line takes the token.
fn trust_explain(out: &mut dyn Write, config: &Config, job: Option<&JobName>) -> Result<(), Error> {
    let path = config.trust.clone().ok_or_else(|| Error::Usage("trust explain needs --trust FILE".into()))?;
    let trust = oidc::Trust::load(path, &config.state_dir).map_err(Error::Failed)?;
    let mut jwt = String::new();
    io::stdin()
        .take(oidc::MAX_JWT_LEN as u64 + 2)
        .read_to_string(&mut jwt)
        .map_err(|e| Error::Usage(format!("reading the token from stdin: {e}")))?;
    let jwt = jwt.trim();
    if !oidc::looks_like_jwt(jwt) {
        return Err(Error::Usage(format!(
            "stdin holds no JWT (three base64url parts, at most {} bytes)",
            oidc::MAX_JWT_LEN
        )));
    }
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let lines = trust.explain(jwt, job, now);
    let matched = !lines[0].contains("REFUSED") && lines.iter().any(|l| l.contains("): matches: "));
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    ignore_broken_pipe(print(out, config.json, &json!({"matches": matched, "lines": lines}), &text))?;
    if matched {
        Ok(())
    } else {
        Err(Error::Silent(1))
    }
}

fn print(out: &mut dyn Write, json: bool, value: &Value, text: &str) -> io::Result<()> {
    if json {
        writeln!(out, "{value}")
    } else {
        out.write_all(text.as_bytes())
    }
}

/// `key: value` lines of a flat JSON object.
fn as_lines(value: &Value) -> String {
    let mut text = String::new();
    for (key, v) in value.as_object().into_iter().flatten() {
        let shown = match v {
            Value::Null => "-".to_string(),
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        text.push_str(&format!("{key}: {shown}\n"));
    }
    text
}

/// `jobgate logs | head` is not an error.
fn ignore_broken_pipe(result: io::Result<()>) -> Result<(), Error> {
    match result {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => Err(Error::Failed(format!("writing output: {e}"))),
        _ => Ok(()),
    }
}

fn logs(
    out: &mut dyn Write,
    json: bool,
    jobs: &Jobs,
    job: &JobName,
    lines: Lines,
    run: &RunSelector,
) -> Result<(), Error> {
    let Some(logs) = jobs.logs(job, run, lines.get() as usize)? else {
        return Err(Error::Failed(format!("{job} has no such run in the journal")));
    };
    let each = |line: &mut dyn FnMut(&str) -> io::Result<()>| jobs.each_log_line(&logs, line);
    match render::send_lines(!json, logs.run.run.as_str(), each, &mut |bytes| out.write_all(bytes)) {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => Err(Error::Failed(format!("logs of {job}: {e}"))),
        _ => Ok(()),
    }
}

fn write_token_file(config: &Config, file: &TokenFile) -> Result<(), Error> {
    let header = "# jobgate tokens: NAME SCOPE sha256:HEX [JOB-PATTERN...]; see jobgate-tokens(5)\n";
    secure_file::replace(&config.tokens, (header.to_string() + &file.render()).as_bytes(), 0o600)
        .map_err(|e| Error::Failed(format!("{}: {e}", config.tokens.display())))
}

/// Serialises changes of the token file: without it, a `token add` and a
/// `token revoke` at once each write the file as they read it, and one of
/// the two changes is lost (a revocation among them).
fn lock_token_file(config: &Config) -> Result<std::fs::File, Error> {
    secure_file::lock_beside(&config.tokens)
        .map_err(|e| Error::Failed(format!("locking {}: {e}", config.tokens.display())))
}

fn token_add(
    out: &mut dyn Write,
    config: &Config,
    name: String,
    scope: Scope,
    patterns: Vec<String>,
) -> Result<(), Error> {
    let _lock = lock_token_file(config)?;
    let mut file = if config.tokens.exists() {
        read_token_file(&config.tokens).map_err(Error::Failed)?
    } else {
        TokenFile::default()
    };
    if file.entries.iter().any(|e| e.name == name) {
        return Err(Error::Failed(format!(
            "{}: a token named '{name}' exists already (revoke it first)",
            config.tokens.display()
        )));
    }
    let token = new_token().map_err(|e| Error::Failed(format!("reading random bytes: {e}")))?;
    file.entries.push(TokenEntry::new(name.clone(), scope, &token, patterns));
    write_token_file(config, &file)?;
    let value = json!({"name": name, "scope": scope.as_str(), "token": token});
    ignore_broken_pipe(print(out, config.json, &value, &format!("{token}\n")))?;
    if !config.json {
        eprintln!(
            "added token '{name}' ({}) to {}; it is shown only this once",
            scope.as_str(),
            config.tokens.display()
        );
    }
    Ok(())
}

/// 256 random bits from the OS, as `jgt_` and 64 hex digits.
fn new_token() -> io::Result<String> {
    let mut bytes = [0u8; 32];
    File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(format!("jgt_{}", hex(&bytes)))
}

/// `jobgate check`, modelled on `doas -C`: every problem with its fix.
fn check(out: &mut dyn Write, config: &Config, jobs: &Jobs) -> Result<(), Error> {
    let mut report: Report = vec![(true, format!("prefix '{}'", config.prefix.as_str()))];
    check_files(config, &mut report);
    check_manager(config, jobs, &mut report);
    check_privilege(config, jobs, &mut report);
    check_journal(config, jobs, &mut report);
    let problems = report.iter().filter(|(ok, _)| !ok).count();
    let text: String =
        report.iter().map(|(ok, line)| format!("{} {line}\n", if *ok { "ok  " } else { "FAIL" })).collect();
    let value = json!({"ok": problems == 0, "checks": report.iter().map(|(ok, line)| json!({"ok": ok, "what": line})).collect::<Vec<_>>()});
    ignore_broken_pipe(print(out, config.json, &value, &text))?;
    if problems > 0 {
        return Err(Error::Failed(format!("check found {problems} problem(s)")));
    }
    Ok(())
}

/// What `check` found: a line each, and whether it is fine.
type Report = Vec<(bool, String)>;

/// The token and trust files.
fn check_files(config: &Config, report: &mut Report) {
    match read_token_file(&config.tokens) {
        Ok(file) => {
            report.push((true, format!("{}: {} token(s), permissions ok", config.tokens.display(), file.entries.len())))
        }
        Err(e) => report.push((false, e)),
    }
    if let Some(path) = &config.trust {
        match oidc::read_trust_file(path) {
            Ok(file) => {
                for (level, finding) in oidc::report::lint(&file) {
                    report.push(match level {
                        Level::Ok => (true, format!("{}: {finding}", path.display())),
                        Level::Warn => (true, format!("{}: warning: {finding}", path.display())),
                        Level::Fail => (false, format!("{}: {finding}", path.display())),
                    });
                }
            }
            Err(e) => report.push((false, e)),
        }
    }
}

/// The jobs under the prefix, and how the manager is asked.
fn check_manager(config: &Config, jobs: &Jobs, report: &mut Report) {
    match jobs.jobs() {
        Ok(jobs) if jobs.is_empty() => report.push((
            false,
            format!(
                "no unit matches {}*.service (fix: install job units, or correct --prefix)",
                config.prefix.as_str()
            ),
        )),
        Ok(jobs) => report.push((true, format!("{} job(s) under the prefix", jobs.len()))),
        Err(e) => report.push((false, format!("listing units: {e}"))),
    }
    // Not a failure: state and jobs go through systemctl without the bus.
    report.push(match jobs.bus().map(|bus| (bus.socket().display().to_string(), bus.probe())) {
        Some((socket, Ok(()))) => (true, format!("state and jobs are read over the system bus ({socket})")),
        Some((socket, Err(e))) => (
            true,
            format!(
                "warning: the system bus ({socket}) does not answer ({e}): state and jobs are read through systemctl"
            ),
        ),
        None => (true, "warning: no system bus: state and jobs are read through systemctl".into()),
    });
}

/// That start and stop are allowed, and nothing more.
fn check_privilege(config: &Config, jobs: &Jobs, report: &mut Report) {
    if jobs.tools().privilege == Privilege::Polkit {
        // polkit has no dry run: asking it means running the call.
        report.push((
            true,
            "privilege polkit: start and stop go through contrib/polkit/50-jobgate.rules (not probed)".into(),
        ));
    } else if secure_file::current_uid() == Some(0) {
        report.push((true, "running as root: the sudo rule is not checked (run this as the service user: sudo -u jobgate jobgate check)".into()));
    } else {
        for probe in Probe::ALL {
            let argv = Call::SudoProbe(probe, &config.prefix).argv(jobs.tools());
            let shown: Vec<String> = argv.iter().skip(3).map(|a| a.to_string_lossy().into_owned()).collect();
            let allowed = jobs.sudo_allows(probe);
            let want = probe.should_be_allowed();
            let line = match (want, allowed) {
                (true, true) => format!("sudo allows: {}", shown.join(" ")),
                (true, false) => format!("sudo refuses: {} (fix: install contrib/sudoers.d/jobgate with visudo -cf)", shown.join(" ")),
                (false, true) => format!("sudo allows too much: {} (fix: use the anchored regex rule of contrib/sudoers.d/jobgate, not a '*' wildcard)", shown.join(" ")),
                (false, false) => format!("sudo refuses, as it should: {}", shown.join(" ")),
            };
            report.push((want == allowed, line));
        }
    }
}

/// That the journal can be read, and how.
fn check_journal(config: &Config, jobs: &Jobs, report: &mut Report) {
    if secure_file::current_uid() != Some(0) && !in_group("systemd-journal") {
        report.push((
            false,
            "not a member of systemd-journal, so logs cannot be read (fix: usermod -aG systemd-journal USER)".into(),
        ));
    }
    report.push(match jobs.journal_probe() {
        Ok(line) => (true, line),
        Err(e) => (false, format!("the journal cannot be read: {e}")),
    });
    // A read as jobgate makes it: group membership is not enough where the
    // journal directory does not let the group in.
    let probe = crate::names::JobName::parse(&config.prefix, &format!("{}jobgate-check", config.prefix.as_str()));
    if let Ok(probe) = probe {
        match jobs.journal_readable(&probe) {
            Ok(_) => report.push((true, "the journal can be read".into())),
            Err(e) => report.push((
                false,
                format!(
                    "the journal cannot be read: {e} (fix: usermod -aG systemd-journal USER, and give the journal \
                     directories group systemd-journal with mode 2750: systemd-tmpfiles --create --prefix /var/log/journal)"
                ),
            )),
        }
    }
}

/// Whether this user may read the whole journal anyway: root, or a member
/// of `systemd-journal`.
pub fn can_read_journal() -> bool {
    secure_file::current_uid() == Some(0) || in_group("systemd-journal")
}

/// Whether this process has the named group among its groups (from
/// /proc/self/status and /etc/group; std has no getgroups).
fn in_group(name: &str) -> bool {
    let Ok(groups) = std::fs::read_to_string("/etc/group") else { return false };
    let Some(gid) = groups.lines().find_map(|l| {
        let mut f = l.split(':');
        (f.next() == Some(name)).then(|| f.nth(1)).flatten().map(str::to_string)
    }) else {
        return false;
    };
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else { return false };
    status.lines().find_map(|l| l.strip_prefix("Groups:")).is_some_and(|g| g.split_whitespace().any(|g| g == gid))
}
