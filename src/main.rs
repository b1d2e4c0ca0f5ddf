//! jobgate's entry point: arguments → validated config → a front end or an
//! admin command; errors → one line on stderr and an exit code.
#![forbid(unsafe_code)]

use std::process::ExitCode;
use std::sync::Arc;

use jobgate::cli::{Args, Command};
use jobgate::error::Error;
use jobgate::{api, front, ops, redact, systemd, tail_state};

fn main() -> ExitCode {
    let args: Args = argh::from_env();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("jobgate: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

fn run(args: Args) -> Result<(), Error> {
    let (config, command) = args.validate().map_err(Error::Usage)?;
    if let Command::Version = command {
        println!("jobgate {}", env!("CARGO_PKG_VERSION"));
        return Ok(());
    }
    let serving = matches!(command, Command::Serve { .. });
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
    let systemd = ops::Systemd::new(config.prefix.clone(), config.tools.clone(), runner).with_redactions(redactions);
    match command {
        Command::Serve { listen, trust_proxy } => {
            let tokens = api::TokenStore::load(config.tokens.clone()).map_err(Error::Failed)?;
            let tails = tail_state::TailState::new(config.state_dir.clone());
            let api = Arc::new(api::Api { systemd, tokens, tails, trust_proxy });
            front::serve::serve(api, &listen).map_err(Error::Failed)
        }
        command => front::admin::run(&config, &systemd, command),
    }
}
