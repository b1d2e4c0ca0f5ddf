//! The command line: argh structs (the raw arguments) and their one
//! conversion into a validated [`Config`] and [`Command`] before anything runs.
#![forbid(unsafe_code)]

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use argh::FromArgs;

use crate::auth::{self, Scope};
use crate::names::{JobName, Lines, Prefix, RunSelector};
use crate::systemd::argv::{JournalReader, Privilege, Tools};

#[derive(FromArgs)]
/// jobgate: let CI start systemd jobs, watch their state and read their logs
/// over HTTP, and nothing else.
#[argh(
    note = "See jobgate(8) for the HTTP API, the token file and the redaction rules.",
    error_code(1, "the command failed: unknown job, job already active, a failed call, a problem found by check"),
    error_code(2, "bad arguments or input, such as an invalid job name")
)]
pub struct Args {
    /// unit prefix that makes a service a job (default: ci-test-)
    #[argh(option, default = "String::from(\"ci-test-\")")]
    prefix: String,
    /// token file (default: /etc/jobgate/tokens)
    #[argh(option, default = "PathBuf::from(\"/etc/jobgate/tokens\")")]
    tokens: PathBuf,
    /// state directory for tail cursors (default: $STATE_DIRECTORY, else /var/lib/jobgate)
    #[argh(option)]
    state_dir: Option<PathBuf>,
    /// path of systemctl (default: /usr/bin/systemctl)
    #[argh(option, default = "PathBuf::from(\"/usr/bin/systemctl\")")]
    systemctl: PathBuf,
    /// path of journalctl (default: /usr/bin/journalctl)
    #[argh(option, default = "PathBuf::from(\"/usr/bin/journalctl\")")]
    journalctl: PathBuf,
    /// path of sudo (default: /usr/bin/sudo)
    #[argh(option, default = "PathBuf::from(\"/usr/bin/sudo\")")]
    sudo: PathBuf,
    /// how to read the journal: group, as a member of systemd-journal (the one way left; sudo is gone)
    #[argh(option, default = "String::from(\"group\")")]
    journal: String,
    /// how the journal's entries are read: native (its files in-process, the default; journalctl for what that reader cannot) or journalctl
    #[argh(option, default = "String::from(\"native\")")]
    journal_reader: String,
    /// how start and stop are allowed: sudo (the default, with contrib/sudoers.d/jobgate) or polkit (contrib/polkit/50-jobgate.rules)
    #[argh(option, default = "String::from(\"sudo\")")]
    privilege: String,
    /// signed webhooks: NAME JOB SECRET [event=EVENT] [ref=REF] a line (POST /hook/JOB)
    #[argh(option)]
    hooks: Option<PathBuf>,
    /// CI identity tokens: issuer and trust lines (jobgate-trust(5)); off without it
    #[argh(option)]
    trust: Option<PathBuf>,
    /// redaction rules applied to every log line shown (skip, strip, mask)
    #[argh(option)]
    redact: Option<PathBuf>,
    /// most follow streams at once, across all front ends (default: 16)
    #[argh(option, default = "crate::follow::DEFAULT_MAX_STREAMS")]
    max_follows: usize,
    /// a ceiling on the follow streams one token holds at once, over its fair share of the free ones (default: --max-follows)
    #[argh(option)]
    max_follows_per_token: Option<usize>,
    /// most seconds one follow stream lasts before it ends with a "still running" line (default: 3600)
    #[argh(option, default = "crate::follow::DEFAULT_MAX_DURATION.as_secs()")]
    max_follow_secs: u64,
    /// print JSON instead of text (admin commands)
    #[argh(switch)]
    json: bool,
    /// print the version and exit
    #[argh(switch)]
    version: bool,
    #[argh(subcommand)]
    command: Option<Sub>,
}

#[derive(FromArgs)]
#[argh(subcommand)]
enum Sub {
    Serve(ServeArgs),
    Inetd(InetdArgs),
    Cgi(CgiArgs),
    Jobs(JobsArgs),
    Start(StartArgs),
    Stop(StopArgs),
    State(StateArgs),
    Runs(RunsArgs),
    Logs(LogsArgs),
    Follow(FollowArgs),
    Check(CheckArgs),
    Token(TokenArgs),
    Trust(TrustArgs),
}

#[derive(FromArgs)]
#[argh(subcommand, name = "serve")]
/// serve the HTTP API
struct ServeArgs {
    /// address to listen on (default: 127.0.0.1:8000)
    #[argh(option, default = "String::from(\"127.0.0.1:8000\")")]
    listen: String,
    /// the reverse proxy's address: only from it is X-Forwarded-For taken as the client's address
    #[argh(option)]
    trust_proxy: Option<String>,
}

#[derive(FromArgs)]
#[argh(subcommand, name = "inetd")]
/// answer one connection on stdin and stdout (socket unit with Accept=yes)
struct InetdArgs {
    /// the reverse proxy's address: only from it is X-Forwarded-For taken as the client's address
    #[argh(option)]
    trust_proxy: Option<String>,
}

#[derive(FromArgs)]
#[argh(subcommand, name = "cgi")]
/// answer one CGI request (REQUEST_METHOD, REQUEST_URI or PATH_INFO, ...)
struct CgiArgs {
    /// the reverse proxy's address: only from it is X-Forwarded-For taken as the client's address
    #[argh(option)]
    trust_proxy: Option<String>,
}

#[derive(FromArgs)]
#[argh(subcommand, name = "jobs")]
/// list the jobs under the prefix
struct JobsArgs {}

#[derive(FromArgs)]
#[argh(subcommand, name = "start")]
/// start a job (refused while it is active)
struct StartArgs {
    #[argh(positional)]
    job: String,
}

#[derive(FromArgs)]
#[argh(subcommand, name = "stop")]
/// stop a job
struct StopArgs {
    #[argh(positional)]
    job: String,
}

#[derive(FromArgs)]
#[argh(subcommand, name = "state")]
/// show a job's state
struct StateArgs {
    #[argh(positional)]
    job: String,
}

#[derive(FromArgs)]
#[argh(subcommand, name = "runs")]
/// list a job's runs, newest first
struct RunsArgs {
    #[argh(positional)]
    job: String,
    /// how many runs (1 to 100, default 20)
    #[argh(option, default = "20")]
    limit: usize,
}

#[derive(FromArgs)]
#[argh(subcommand, name = "logs")]
/// print the log lines of a run
struct LogsArgs {
    #[argh(positional)]
    job: String,
    /// how many of the run's last lines (default 1000, at most 20000)
    #[argh(option)]
    lines: Option<String>,
    /// which run: last (default) or a run id
    #[argh(option)]
    run: Option<String>,
    /// show the lines as the journal has them, without --redact rules (for
    /// users who can read the journal anyway)
    #[argh(switch)]
    raw: bool,
}

#[derive(FromArgs)]
#[argh(subcommand, name = "follow")]
/// print a run's lines as they are written until it ends; exit 0 if it succeeded
struct FollowArgs {
    #[argh(positional)]
    job: String,
    /// which run: the current or last one (default), or a run id
    #[argh(option)]
    run: Option<String>,
}

#[derive(FromArgs)]
#[argh(subcommand, name = "check")]
/// check the prefix, the token file and the sudo rule
struct CheckArgs {}

#[derive(FromArgs)]
#[argh(subcommand, name = "token")]
/// manage tokens: add, list, revoke
struct TokenArgs {
    #[argh(subcommand)]
    command: TokenSub,
}

#[derive(FromArgs)]
#[argh(subcommand)]
enum TokenSub {
    Add(TokenAddArgs),
    List(TokenListArgs),
    Revoke(TokenRevokeArgs),
}

#[derive(FromArgs)]
#[argh(subcommand, name = "trust")]
/// CI identity tokens: explain a token, check a JWKS file
struct TrustArgs {
    #[argh(subcommand)]
    command: TrustSub,
}

#[derive(FromArgs)]
#[argh(subcommand)]
enum TrustSub {
    Explain(TrustExplainArgs),
    CheckJwks(TrustCheckJwksArgs),
}

#[derive(FromArgs)]
#[argh(subcommand, name = "explain")]
/// read a token on stdin and say, per trust line, why it matches or not (offline)
struct TrustExplainArgs {
    /// the job the token would act on (default: say which jobs each line allows)
    #[argh(option)]
    job: Option<String>,
}

#[derive(FromArgs)]
#[argh(subcommand, name = "check-jwks")]
/// check that FILE is a JWKS document jobgate can verify with (for the refresh unit)
struct TrustCheckJwksArgs {
    #[argh(positional)]
    file: PathBuf,
}

#[derive(FromArgs)]
#[argh(subcommand, name = "add")]
/// make a new token, add it to the token file and print it once
struct TokenAddArgs {
    #[argh(positional)]
    name: String,
    /// ro (read), rw (read, start and stop) or metrics (GET /metrics only)
    #[argh(option)]
    scope: String,
    /// limit the token to jobs matching this glob (repeatable)
    #[argh(option)]
    job: Vec<String>,
}

#[derive(FromArgs)]
#[argh(subcommand, name = "list")]
/// list tokens: names, scopes and job patterns (never hashes)
struct TokenListArgs {}

#[derive(FromArgs)]
#[argh(subcommand, name = "revoke")]
/// remove a token by name
struct TokenRevokeArgs {
    #[argh(positional)]
    name: String,
}

/// Everything a command needs, validated.
pub struct Config {
    pub prefix: Prefix,
    pub tokens: PathBuf,
    pub state_dir: PathBuf,
    pub tools: Tools,
    pub redact: Option<PathBuf>,
    pub hooks: Option<PathBuf>,
    pub trust: Option<PathBuf>,
    pub follow: crate::follow::Limits,
    pub json: bool,
}

pub enum Command {
    Version,
    Serve { listen: String, trust_proxy: Option<IpAddr> },
    Inetd { trust_proxy: Option<IpAddr> },
    Cgi { trust_proxy: Option<IpAddr> },
    Jobs,
    Start(JobName),
    Stop(JobName),
    State(JobName),
    Runs { job: JobName, limit: usize },
    Logs { job: JobName, lines: Lines, run: RunSelector, raw: bool },
    Follow { job: JobName, run: RunSelector },
    Check,
    TokenAdd { name: String, scope: Scope, patterns: Vec<String> },
    TokenList,
    TokenRevoke { name: String },
    TrustExplain { job: Option<JobName> },
    TrustCheckJwks { file: PathBuf },
}

impl Args {
    /// Checks every argument; the error is one line for stderr.
    pub fn validate(self) -> Result<(Config, Command), String> {
        let prefix = Prefix::parse(&self.prefix)?;
        for (flag, path) in
            [("--systemctl", &self.systemctl), ("--journalctl", &self.journalctl), ("--sudo", &self.sudo)]
        {
            if !path.is_absolute() {
                return Err(format!("{flag} must be an absolute path (sudo rules match it), not '{}'", path.display()));
            }
        }
        match self.journal.as_str() {
            "group" => {}
            "sudo" => {
                return Err(
                    "--journal sudo is gone: run jobgate as a member of systemd-journal (--journal group)".into()
                )
            }
            other => return Err(format!("unknown --journal '{}' (expected 'group')", other.escape_debug())),
        }
        let journal_reader = match self.journal_reader.as_str() {
            "native" => JournalReader::Native,
            "journalctl" => JournalReader::Journalctl,
            other => {
                return Err(format!(
                    "unknown --journal-reader '{}' (expected 'native' or 'journalctl')",
                    other.escape_debug()
                ))
            }
        };
        let privilege = match self.privilege.as_str() {
            "sudo" => Privilege::Sudo,
            "polkit" => Privilege::Polkit,
            other => {
                return Err(format!("unknown --privilege '{}' (expected 'sudo' or 'polkit')", other.escape_debug()))
            }
        };
        let state_dir = self.state_dir.unwrap_or_else(default_state_dir);
        if !(1..=MAX_FOLLOWS).contains(&self.max_follows) {
            return Err(format!("invalid --max-follows {} (expected 1 to {MAX_FOLLOWS})", self.max_follows));
        }
        let max_per_token = self.max_follows_per_token.unwrap_or(self.max_follows);
        if !(1..=MAX_FOLLOWS).contains(&max_per_token) {
            return Err(format!("invalid --max-follows-per-token {max_per_token} (expected 1 to {MAX_FOLLOWS})"));
        }
        if !(1..=MAX_FOLLOW_SECS).contains(&self.max_follow_secs) {
            return Err(format!(
                "invalid --max-follow-secs {} (expected 1 to {MAX_FOLLOW_SECS})",
                self.max_follow_secs
            ));
        }
        let follow = crate::follow::Limits {
            max_streams: self.max_follows,
            max_per_token: max_per_token.min(self.max_follows),
            max_duration: Duration::from_secs(self.max_follow_secs),
            slot_dir: state_dir.join("follow"),
        };
        let job = |name: &str| {
            JobName::parse(&prefix, name).map_err(|_| {
                format!(
                    "invalid job '{}' (expected {}NAME or {}NAME@INSTANCE, without .service)",
                    name.escape_debug(),
                    prefix.as_str(),
                    prefix.as_str()
                )
            })
        };
        let sub = match (self.version, self.command) {
            (true, _) => None,
            (false, Some(sub)) => Some(sub),
            (false, None) => return Err("no command given (see jobgate --help)".into()),
        };
        let command = match sub {
            None => Command::Version,
            Some(Sub::Serve(a)) => Command::Serve { listen: a.listen, trust_proxy: ip(a.trust_proxy)? },
            Some(Sub::Inetd(a)) => Command::Inetd { trust_proxy: ip(a.trust_proxy)? },
            Some(Sub::Cgi(a)) => Command::Cgi { trust_proxy: ip(a.trust_proxy)? },
            Some(Sub::Jobs(_)) => Command::Jobs,
            Some(Sub::Start(a)) => Command::Start(job(&a.job)?),
            Some(Sub::Stop(a)) => Command::Stop(job(&a.job)?),
            Some(Sub::State(a)) => Command::State(job(&a.job)?),
            Some(Sub::Runs(a)) => {
                if !(1..=crate::ops::MAX_RUNS).contains(&a.limit) {
                    return Err(format!("invalid --limit {} (expected 1 to {})", a.limit, crate::ops::MAX_RUNS));
                }
                Command::Runs { job: job(&a.job)?, limit: a.limit }
            }
            Some(Sub::Logs(a)) => {
                let lines = match a.lines {
                    Some(n) => Lines::parse(&n)
                        .ok_or_else(|| format!("invalid --lines '{}' (expected a number from 1)", n.escape_debug()))?,
                    None => Lines::default(),
                };
                Command::Logs { job: job(&a.job)?, lines, run: run_selector(a.run)?, raw: a.raw }
            }
            Some(Sub::Follow(a)) => Command::Follow { job: job(&a.job)?, run: run_selector(a.run)? },
            Some(Sub::Check(_)) => Command::Check,
            Some(Sub::Token(t)) => match t.command {
                TokenSub::Add(a) => {
                    if !auth::valid_token_name(&a.name) {
                        return Err(format!(
                            "invalid token name '{}' (expected 1 to {} of [a-zA-Z0-9_.-])",
                            a.name.escape_debug(),
                            auth::MAX_NAME_LEN
                        ));
                    }
                    let scope = Scope::parse(&a.scope)
                        .ok_or_else(|| format!("unknown scope '{}' ({})", a.scope.escape_debug(), Scope::EXPECTED))?;
                    if let Some(bad) = a.job.iter().find(|p| !auth::valid_pattern(p)) {
                        return Err(format!(
                            "invalid job pattern '{}' (expected job-name characters, '*' and '?')",
                            bad.escape_debug()
                        ));
                    }
                    Command::TokenAdd { name: a.name, scope, patterns: a.job }
                }
                TokenSub::List(_) => Command::TokenList,
                TokenSub::Revoke(a) => Command::TokenRevoke { name: a.name },
            },
            Some(Sub::Trust(t)) => match t.command {
                TrustSub::Explain(a) => {
                    if self.trust.is_none() {
                        return Err("trust explain needs --trust FILE".into());
                    }
                    Command::TrustExplain { job: a.job.as_deref().map(job).transpose()? }
                }
                TrustSub::CheckJwks(a) => Command::TrustCheckJwks { file: a.file },
            },
        };
        let tools = Tools {
            systemctl: self.systemctl,
            journalctl: self.journalctl,
            sudo: self.sudo,
            journal_reader,
            privilege,
        };
        Ok((
            Config {
                prefix,
                tokens: self.tokens,
                state_dir,
                tools,
                redact: self.redact,
                hooks: self.hooks,
                trust: self.trust,
                follow,
                json: self.json,
            },
            command,
        ))
    }
}

/// Highest `--max-follows`: each stream is a thread and a journalctl.
const MAX_FOLLOWS: usize = 1024;
/// Highest `--max-follow-secs`: a week.
const MAX_FOLLOW_SECS: u64 = 7 * 24 * 3600;

fn run_selector(run: Option<String>) -> Result<RunSelector, String> {
    match run {
        Some(r) => RunSelector::parse(&r)
            .ok_or_else(|| format!("invalid --run '{}' (expected 'last' or a 32-hex-digit run id)", r.escape_debug())),
        None => Ok(RunSelector::Last),
    }
}

fn ip(addr: Option<String>) -> Result<Option<IpAddr>, String> {
    addr.map(|a| {
        a.parse().map_err(|_| format!("invalid --trust-proxy '{}' (expected an IP address)", a.escape_debug()))
    })
    .transpose()
}

/// `$STATE_DIRECTORY` as systemd sets it (the first, if several), else
/// `/var/lib/jobgate`.
fn default_state_dir() -> PathBuf {
    std::env::var_os("STATE_DIRECTORY")
        .and_then(|dirs| dirs.to_str().and_then(|d| d.split(':').next()).map(PathBuf::from))
        .filter(|d| d.is_absolute())
        .unwrap_or_else(|| PathBuf::from("/var/lib/jobgate"))
}
