//! jobgate's entry point: arguments → validated config → a front end or an
//! admin command; errors → one line on stderr and an exit code.
#![forbid(unsafe_code)]

use std::process::ExitCode;
use std::sync::Arc;

use argh::FromArgs;
use jobgate::cli::{Args, Command};
use jobgate::error::Error;
use jobgate::{api, front, ops, redact, systemd, tail_state};

fn main() -> ExitCode {
    // argh would stop at an argument that is not UTF-8 with exit status 1;
    // such an argument is bad input (no job name or option holds one).
    if let Some(n) = std::env::args_os().position(|a| a.to_str().is_none()) {
        eprintln!("jobgate: argument {n} is not valid UTF-8");
        return ExitCode::from(Error::USAGE);
    }
    // As argh::from_env, but a bad option or value is bad arguments: exit 2.
    let argv: Vec<String> = std::env::args().collect();
    let name = argv.first().and_then(|a| std::path::Path::new(a).file_name()).and_then(|n| n.to_str());
    let words: Vec<&str> = argv.iter().skip(1).map(String::as_str).collect();
    let args = match Args::from_args(&[name.unwrap_or("jobgate")], &words) {
        Ok(args) => args,
        Err(argh::EarlyExit { output, status: Ok(()) }) => {
            println!("{output}");
            return ExitCode::SUCCESS;
        }
        Err(argh::EarlyExit { output, status: Err(()) }) => {
            eprintln!("jobgate: {}", output.trim_end());
            return ExitCode::from(Error::USAGE);
        }
    };
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Error::Silent(code)) => ExitCode::from(code),
        Err(e) => {
            eprintln!("jobgate: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

fn run(args: Args) -> Result<(), Error> {
    let (config, command) = args.validate().map_err(Error::Usage)?;
    // Before any thread starts, as sd_listen_fds(3) requires.
    let passed = match command {
        Command::Serve { .. } => front::listen::passed_listener().map_err(Error::Failed)?,
        _ => None,
    };
    if let Command::Version = command {
        println!("jobgate {}", env!("CARGO_PKG_VERSION"));
        return Ok(());
    }
    let serving = matches!(command, Command::Serve { .. } | Command::Inetd { .. } | Command::Cgi { .. });
    let default_level = if serving { "info" } else { "warn" };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(default_level))
        .format_timestamp(None)
        .init();
    let runner = Arc::new(systemd::run::RealRunner);
    let raw = matches!(command, Command::Logs { raw: true, .. });
    if raw && !front::admin::can_read_journal() {
        return Err(Error::Usage("--raw shows unredacted lines: only for root or members of systemd-journal".into()));
    }
    let redactions = match &config.redact {
        Some(path) if !raw => redact::Redactions::load(path).map_err(Error::Failed)?,
        _ => redact::Redactions::default(),
    };
    let mut jobs = ops::Jobs::new(config.prefix.clone(), config.tools.clone(), runner)
        .with_redactions(redactions)
        .with_start_locks(config.state_dir.join("start"));
    match systemd::bus::SystemBus::from_env() {
        Ok(bus) => jobs = jobs.with_bus(bus),
        Err(e) => log::warn!("{e}: unit state and jobs are read through systemctl"),
    }
    let jobs = Arc::new(jobs);
    let api = |jobs, trust_proxy| -> Result<api::Api, Error> {
        let tokens = api::TokenStore::load(config.tokens.clone()).map_err(Error::Failed)?;
        let tails = tail_state::TailState::new(config.state_dir.clone());
        let hooks = match &config.hooks {
            Some(path) => Some(
                jobgate::api::hooks::Hooks::load(path, &config.prefix)
                    .map_err(Error::Failed)?
                    .with_seen_dir(config.state_dir.join("hooks")),
            ),
            None => None,
        };
        let trust = match &config.trust {
            Some(path) => Some(jobgate::oidc::Trust::load(path.clone(), &config.state_dir).map_err(Error::Failed)?),
            None => None,
        };
        let counters = jobgate::metrics::Counters::in_state_dir(&config.state_dir);
        let (follow, health) = (config.follow.clone(), api::Health::default());
        Ok(api::Api { jobs, tokens, tails, trust_proxy, hooks, trust, follow, counters, health })
    };
    let io_error = |e: std::io::Error| Error::Failed(format!("writing the answer: {e}"));
    match command {
        Command::Serve { listen, trust_proxy } => {
            front::serve::serve(Arc::new(api(jobs, trust_proxy)?), passed, &listen).map_err(Error::Failed)
        }
        Command::Inetd { trust_proxy } => front::inetd::run(&api(jobs, trust_proxy)?).map_err(io_error),
        Command::Cgi { trust_proxy } => front::cgi::run(&api(jobs, trust_proxy)?).map_err(io_error),
        command => front::admin::run(&config, &jobs, command),
    }
}
