//! The `troupe` binary: parse flags, set up logs, load the configuration, run, map the outcome
//! to an exit code.

use std::process::ExitCode;

use clap::Parser;
use troupe::cli::{Cli, Command, LogFormat};
use troupe::config::Config;
use troupe::sandbox::spec::{sandbox_token, WorldSpec};
use troupe::sandbox::Sandbox;

/// Exit codes (documented in the README).
mod exit {
    pub const CONFIG: u8 = 2;
    pub const STARTUP: u8 = 3;
    pub const STORE: u8 = 6;
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logs(cli.debug, cli.log_format);
    match cli.command {
        Some(Command::Sandbox { listen }) => serve_sandbox(&cli.config, cli.config_given(), listen).await,
        None => run_agents(&cli).await,
    }
}

trait ConfigGiven {
    fn config_given(&self) -> bool;
}

impl ConfigGiven for Cli {
    fn config_given(&self) -> bool {
        self.config != std::path::Path::new("agents.toml")
    }
}

async fn run_agents(cli: &Cli) -> ExitCode {
    let mut config = match Config::load(&cli.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: invalid configuration\n{e}");
            return ExitCode::from(exit::CONFIG);
        }
    };
    if let Some(addr) = cli.sandbox_listen {
        config.sandbox.listen = addr;
    }
    if let Some(dir) = &cli.state_dir {
        config.store_path = dir.clone();
    }
    if let Some(url) = &cli.sandbox_url {
        config.sandbox.url = Some(url.clone());
    }
    let running = match troupe::app::start(config).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            let code = if matches!(e, troupe::app::AppError::Store(_)) {
                exit::STORE
            } else {
                exit::STARTUP
            };
            return ExitCode::from(code);
        }
    };
    if let Some(url) = running.sandbox_url() {
        println!("sandbox listening on {url}/");
    }
    shutdown_signal().await;
    tracing::info!("shutting down");
    running.stop().await;
    ExitCode::SUCCESS
}

async fn serve_sandbox(path: &std::path::Path, explicit: bool, listen: Option<std::net::SocketAddr>) -> ExitCode {
    let (world, agents, default_listen) = match Config::load(path) {
        Ok(c) => (
            c.sandbox.world.clone(),
            c.agents.iter().map(|a| a.name.clone()).collect(),
            c.sandbox.listen,
        ),
        Err(e) if explicit || path.exists() => {
            eprintln!("error: invalid configuration\n{e}");
            return ExitCode::from(exit::CONFIG);
        }
        Err(_) => (
            WorldSpec::default(),
            Vec::new(),
            troupe::config::DEFAULT_SANDBOX_LISTEN.parse().expect("valid default"),
        ),
    };
    let bots: Vec<(String, String)> = agents.iter().map(|n: &String| (n.clone(), sandbox_token(n))).collect();
    let sandbox = match Sandbox::start(&world, &bots, listen.unwrap_or(default_listen)).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(exit::STARTUP);
        }
    };
    println!("sandbox listening on {}/", sandbox.url());
    shutdown_signal().await;
    sandbox.stop().await;
    ExitCode::SUCCESS
}

fn init_logs(debug: bool, format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let default = if debug {
        "info,troupe=debug"
    } else {
        "info,serenity=warn,tracing=warn"
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Completes on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
