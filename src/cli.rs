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
    #[argh(option, default = "PathBuf::from(\"/usr/bin/systemctl\")", from_str_fn(absolute_path))]
    systemctl: PathBuf,
    /// path of journalctl (default: /usr/bin/journalctl)
    #[argh(option, default = "PathBuf::from(\"/usr/bin/journalctl\")", from_str_fn(absolute_path))]
    journalctl: PathBuf,
    /// path of sudo (default: /usr/bin/sudo)
    #[argh(option, default = "PathBuf::from(\"/usr/bin/sudo\")", from_str_fn(absolute_path))]
    sudo: PathBuf,
    /// how to read the journal: group, as a member of systemd-journal (the one way left; sudo is gone)
    #[argh(option, long = "journal", from_str_fn(journal_group))]
    _journal: Option<()>,
    /// how the journal's entries are read: native (its files in-process, the default; journalctl for what that reader cannot) or journalctl
    #[argh(option, default = "JournalReader::Native", from_str_fn(journal_reader))]
    journal_reader: JournalReader,
    /// how start and stop are allowed: sudo (the default, with contrib/sudoers.d/jobgate) or polkit (contrib/polkit/50-jobgate.rules)
    #[argh(option, default = "Privilege::Sudo", from_str_fn(privilege))]
    privilege: Privilege,
    /// signed webhooks: NAME JOB SECRET [event=EVENT] [ref=REF] [gitlab=token] a line (POST /hook/JOB)
    #[argh(option)]
    hooks: Option<PathBuf>,
    /// CI identity tokens: issuer and trust lines (jobgate-trust(5)); off without it
    #[argh(option)]
    trust: Option<PathBuf>,
    /// redaction rules applied to every log line shown (skip, strip, mask)
    #[argh(option)]
    redact: Option<PathBuf>,
    /// most follow streams at once, across all front ends (default: 16)
    #[argh(option, default = "crate::follow::DEFAULT_MAX_STREAMS", from_str_fn(follow_count))]
    max_follows: usize,
    /// a ceiling on the follow streams one token holds at once, over its fair share of the free ones (default: --max-follows)
    #[argh(option, from_str_fn(follow_count))]
    max_follows_per_token: Option<usize>,
    /// most seconds one follow stream lasts before it ends with a "still running" line (default: 3600)
    #[argh(option, default = "crate::follow::DEFAULT_MAX_DURATION", from_str_fn(follow_secs))]
    max_follow_secs: Duration,
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
    #[argh(option, from_str_fn(ip))]
    trust_proxy: Option<IpAddr>,
}

#[derive(FromArgs)]
#[argh(subcommand, name = "inetd")]
/// answer one connection on stdin and stdout (socket unit with Accept=yes)
struct InetdArgs {
    /// the reverse proxy's address: only from it is X-Forwarded-For taken as the client's address
    #[argh(option, from_str_fn(ip))]
    trust_proxy: Option<IpAddr>,
}

#[derive(FromArgs)]
#[argh(subcommand, name = "cgi")]
/// answer one CGI request (REQUEST_METHOD, REQUEST_URI or PATH_INFO, ...)
struct CgiArgs {
    /// the reverse proxy's address: only from it is X-Forwarded-For taken as the client's address
    #[argh(option, from_str_fn(ip))]
    trust_proxy: Option<IpAddr>,
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
    #[argh(option, default = "20", from_str_fn(run_limit))]
    limit: usize,
}

#[derive(FromArgs)]
#[argh(subcommand, name = "logs")]
/// print the log lines of a run
struct LogsArgs {
    #[argh(positional)]
    job: String,
    /// how many of the run's last lines (default 1000, at most 20000)
    #[argh(option, default = "Lines::default()", from_str_fn(lines))]
    lines: Lines,
    /// which run: last (default) or a run id
    #[argh(option, default = "RunSelector::Last", from_str_fn(run_selector))]
    run: RunSelector,
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
    #[argh(option, default = "RunSelector::Last", from_str_fn(run_selector))]
    run: RunSelector,
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
    #[argh(positional, from_str_fn(token_name))]
    name: String,
    /// ro (read), rw (read, start and stop) or metrics (GET /metrics only)
    #[argh(option, from_str_fn(Scope::named))]
    scope: Scope,
    /// limit the token to jobs matching this glob (repeatable)
    #[argh(option, from_str_fn(job_pattern))]
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
    /// Assembles the checked arguments (each option was parsed into its
    /// type as it was read); the error is one line for stderr.
    pub fn validate(self) -> Result<(Config, Command), String> {
        let prefix = Prefix::parse(&self.prefix)?;
        let state_dir = self.state_dir.unwrap_or_else(default_state_dir);
        let follow = crate::follow::Limits {
            max_streams: self.max_follows,
            max_per_token: self.max_follows_per_token.unwrap_or(self.max_follows).min(self.max_follows),
            max_duration: self.max_follow_secs,
            slot_dir: state_dir.join("follow"),
        };
        let command = match (self.version, self.command) {
            (true, _) => Command::Version,
            (false, Some(sub)) => sub.command(&prefix, self.trust.is_some())?,
            (false, None) => return Err("no command given (see jobgate --help)".into()),
        };
        let tools = Tools {
            systemctl: self.systemctl,
            journalctl: self.journalctl,
            sudo: self.sudo,
            journal_reader: self.journal_reader,
            privilege: self.privilege,
        };
        let config = Config {
            prefix,
            tokens: self.tokens,
            state_dir,
            tools,
            redact: self.redact,
            hooks: self.hooks,
            trust: self.trust,
            follow,
            json: self.json,
        };
        Ok((config, command))
    }
}

impl Sub {
    /// The command, its job names checked against `prefix`.
    fn command(self, prefix: &Prefix, trusting: bool) -> Result<Command, String> {
        let job = |name: &str| {
            JobName::parse(prefix, name).map_err(|_| {
                format!(
                    "invalid job '{}' (expected {}NAME or {}NAME@INSTANCE, without .service)",
                    name.escape_debug(),
                    prefix.as_str(),
                    prefix.as_str()
                )
            })
        };
        Ok(match self {
            Sub::Serve(a) => Command::Serve { listen: a.listen, trust_proxy: a.trust_proxy },
            Sub::Inetd(a) => Command::Inetd { trust_proxy: a.trust_proxy },
            Sub::Cgi(a) => Command::Cgi { trust_proxy: a.trust_proxy },
            Sub::Jobs(_) => Command::Jobs,
            Sub::Start(a) => Command::Start(job(&a.job)?),
            Sub::Stop(a) => Command::Stop(job(&a.job)?),
            Sub::State(a) => Command::State(job(&a.job)?),
            Sub::Runs(a) => Command::Runs { job: job(&a.job)?, limit: a.limit },
            Sub::Logs(a) => Command::Logs { job: job(&a.job)?, lines: a.lines, run: a.run, raw: a.raw },
            Sub::Follow(a) => Command::Follow { job: job(&a.job)?, run: a.run },
            Sub::Check(_) => Command::Check,
            Sub::Token(t) => match t.command {
                TokenSub::Add(a) => Command::TokenAdd { name: a.name, scope: a.scope, patterns: a.job },
                TokenSub::List(_) => Command::TokenList,
                TokenSub::Revoke(a) => Command::TokenRevoke { name: a.name },
            },
            Sub::Trust(t) => match t.command {
                TrustSub::Explain(_) if !trusting => return Err("trust explain needs --trust FILE".into()),
                TrustSub::Explain(a) => Command::TrustExplain { job: a.job.as_deref().map(job).transpose()? },
                TrustSub::CheckJwks(a) => Command::TrustCheckJwks { file: a.file },
            },
        })
    }
}

/// Highest `--max-follows`: each stream is a thread and a journalctl.
const MAX_FOLLOWS: usize = 1024;
/// Highest `--max-follow-secs`: a week.
const MAX_FOLLOW_SECS: u64 = 7 * 24 * 3600;

// Each option's value parsed into its type as argh reads it; argh says
// which option and value an error is about.

fn absolute_path(value: &str) -> Result<PathBuf, String> {
    let path = PathBuf::from(value);
    match path.is_absolute() {
        true => Ok(path),
        false => Err("expected an absolute path (sudo rules match it)".into()),
    }
}

fn journal_group(value: &str) -> Result<(), String> {
    match value {
        "group" => Ok(()),
        "sudo" => Err("--journal sudo is gone: run jobgate as a member of systemd-journal (--journal group)".into()),
        _ => Err("expected 'group'".into()),
    }
}

fn journal_reader(value: &str) -> Result<JournalReader, String> {
    match value {
        "native" => Ok(JournalReader::Native),
        "journalctl" => Ok(JournalReader::Journalctl),
        _ => Err("expected 'native' or 'journalctl'".into()),
    }
}

fn privilege(value: &str) -> Result<Privilege, String> {
    match value {
        "sudo" => Ok(Privilege::Sudo),
        "polkit" => Ok(Privilege::Polkit),
        _ => Err("expected 'sudo' or 'polkit'".into()),
    }
}

fn in_range<T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy>(
    value: &str,
    low: T,
    high: T,
) -> Result<T, String> {
    value.parse().ok().filter(|n| (low..=high).contains(n)).ok_or_else(|| format!("expected {low} to {high}"))
}

fn follow_count(value: &str) -> Result<usize, String> {
    in_range(value, 1, MAX_FOLLOWS)
}

fn follow_secs(value: &str) -> Result<Duration, String> {
    in_range(value, 1, MAX_FOLLOW_SECS).map(Duration::from_secs)
}

fn run_limit(value: &str) -> Result<usize, String> {
    in_range(value, 1, crate::ops::MAX_RUNS)
}

fn lines(value: &str) -> Result<Lines, String> {
    Lines::parse(value).ok_or_else(|| "expected a number from 1".into())
}

fn run_selector(value: &str) -> Result<RunSelector, String> {
    RunSelector::parse(value).ok_or_else(|| "expected 'last' or a 32-hex-digit run id".into())
}

fn ip(value: &str) -> Result<IpAddr, String> {
    value.parse().map_err(|_| "expected an IP address".into())
}

fn token_name(value: &str) -> Result<String, String> {
    auth::check_token_name(value).map(|()| value.to_string())
}

fn job_pattern(value: &str) -> Result<String, String> {
    auth::check_pattern(value).map(|()| value.to_string())
}

/// `$STATE_DIRECTORY` as systemd sets it (the first, if several), else
/// `/var/lib/jobgate`.
fn default_state_dir() -> PathBuf {
    std::env::var_os("STATE_DIRECTORY")
        .and_then(|dirs| dirs.to_str().and_then(|d| d.split(':').next()).map(PathBuf::from))
        .filter(|d| d.is_absolute())
        .unwrap_or_else(|| PathBuf::from("/var/lib/jobgate"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What jobgate says of these arguments, if it refuses them.
    fn refusal(words: &[&str]) -> Option<String> {
        match Args::from_args(&["jobgate"], words) {
            Err(early) => Some(early.output.trim_end().to_string()),
            Ok(args) => args.validate().err(),
        }
    }

    #[test]
    fn bad_arguments_are_refused_with_what_was_expected() {
        let table: &[(&[&str], &str)] = &[
            (&["--prefix", "ci test", "jobs"], "invalid prefix"),
            (&["--systemctl", "systemctl", "jobs"], "'--systemctl' with value 'systemctl': expected an absolute path"),
            (&["--journal", "sudo", "jobs"], "--journal sudo is gone"),
            (&["--journal", "x", "jobs"], "'--journal' with value 'x': expected 'group'"),
            (&["--journal-reader", "mmap", "jobs"], "expected 'native' or 'journalctl'"),
            (&["--privilege", "root", "jobs"], "expected 'sudo' or 'polkit'"),
            (&["--max-follows", "0", "jobs"], "'--max-follows' with value '0': expected 1 to 1024"),
            (&["--max-follows-per-token", "2000", "jobs"], "expected 1 to 1024"),
            (&["--max-follow-secs", "x", "jobs"], "expected 1 to 604800"),
            (&["serve", "--trust-proxy", "localhost"], "expected an IP address"),
            (&["start", "ssh"], "invalid job 'ssh' (expected ci-test-NAME or ci-test-NAME@INSTANCE"),
            (&["logs", "ci-test-a", "--lines", "0"], "'--lines' with value '0': expected a number from 1"),
            (&["logs", "ci-test-a", "--run", "prev"], "expected 'last' or a 32-hex-digit run id"),
            (&["runs", "ci-test-a", "--limit", "101"], "expected 1 to 100"),
            (&["token", "add", "a/b", "--scope", "ro"], "invalid token name 'a/b'"),
            (&["token", "add", "ab", "--scope", "admin"], "unknown scope 'admin' (expected 'ro', 'rw' or 'metrics')"),
            (&["token", "add", "ab", "--scope", "ro", "--job", "x;y"], "invalid job pattern 'x;y'"),
            (&["trust", "explain"], "trust explain needs --trust FILE"),
            (&["--bogus", "jobs"], "Unrecognized argument: --bogus"),
            (&[], "no command given"),
        ];
        for (words, said) in table {
            let refused = refusal(words).unwrap_or_else(|| panic!("{words:?} was taken"));
            assert!(refused.contains(said), "{words:?}: {refused:?} does not say {said:?}");
        }
    }

    #[test]
    fn good_arguments_are_assembled() {
        let args = ["--journal", "group", "--max-follows", "8", "logs", "ci-test-a@x", "--lines", "5", "--run", "last"];
        let (config, command) =
            Args::from_args(&["jobgate"], &args).ok().and_then(|a| a.validate().ok()).expect("taken");
        assert_eq!((config.follow.max_streams, config.follow.max_per_token), (8, 8));
        let Command::Logs { job, lines, run, raw } = command else { panic!("not logs") };
        assert_eq!((job.as_str(), lines.get(), run, raw), ("ci-test-a@x", 5, RunSelector::Last, false));
    }
}
