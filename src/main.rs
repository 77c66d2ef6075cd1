//! The `troupe` binary: parse flags, set up logs, load the configuration, run until a signal
//! or an exit request, stop cleanly, map the outcome to an exit code.

mod allocator;

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use troupe::actors::replay::BacklogLine;
use troupe::backlog::Scope;
use troupe::cli::{Cli, Command, LogFormat, StoreCommand};
use troupe::config::{Config, DryRun, RunMode, RunOptions};
use troupe::ops::exit::code;
use troupe::sandbox::spec::{sandbox_token, WorldSpec};
use troupe::sandbox::Sandbox;

#[tokio::main]
async fn main() -> ExitCode {
    allocator::install_heap_release();
    let cli = Cli::parse();
    init_logs(cli.debug, cli.log_format);
    match cli.command {
        Some(Command::Sandbox { listen }) => serve_sandbox(&cli, listen).await,
        Some(Command::CheckConfig) => check_config(&cli).await,
        Some(Command::Usage) => print_usage(&cli).await,
        Some(Command::Store {
            action: StoreCommand::Reset,
        }) => reset_store(&cli).await,
        Some(Command::Store {
            action: StoreCommand::Export { ref agent, ref output },
        }) => export_agent(&cli, agent, output.as_deref()).await,
        Some(Command::Store {
            action: StoreCommand::Import { ref file, replace },
        }) => import_agent(&cli, file, replace).await,
        None => run_agents(&cli).await,
    }
}

/// The configuration with the command line's overrides applied, or the exit code for a bad one.
async fn load_config(cli: &Cli) -> Result<Config, ExitCode> {
    let mut config = match troupe::config::source::load(&cli.config).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: invalid configuration\n{e}");
            return Err(ExitCode::from(code::CONFIG));
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
    if let Some(addr) = cli.http_listen {
        config.http_listen = addr;
    }
    config.run = match run_options(cli) {
        Ok(run) => run,
        Err(e) => {
            eprintln!("error: {e}");
            return Err(ExitCode::from(code::CONFIG));
        }
    };
    Ok(config)
}

/// The backlog flags, as run options.
fn run_options(cli: &Cli) -> Result<RunOptions, String> {
    let mode = if cli.show_backlog {
        RunMode::ShowBacklog
    } else if cli.clear_backlog {
        RunMode::ClearBacklog
    } else if cli.no_monitoring {
        RunMode::BacklogOnly
    } else {
        RunMode::Monitor
    };
    let dry_run = if cli.no_agent {
        DryRun::NoAgent
    } else if cli.no_discord {
        DryRun::NoDiscord
    } else {
        DryRun::None
    };
    let mut run = RunOptions {
        mode,
        dry_run,
        ..RunOptions::default()
    };
    if !cli.scope.is_empty() {
        let mut scopes = Vec::new();
        for s in &cli.scope {
            scopes.extend(Scope::parse_list(s).map_err(|e| format!("--scope: {e}"))?);
        }
        scopes.sort_unstable();
        scopes.dedup();
        run.scopes = scopes;
    }
    Ok(run)
}

/// `--show-backlog` output, second part: the answers owed after failures, with their age and
/// last error.
fn print_pending(pending: &[(String, troupe::store::PendingRecord)]) {
    if pending.is_empty() {
        println!("no message is pending after a failure");
        return;
    }
    let now = troupe::actors::turn::now_ms();
    println!(
        "{:<16} {:>20} {:>20} {:>8} {:>8}  {:<10} LAST ERROR",
        "AGENT", "CHANNEL", "MESSAGE", "AGE (s)", "ATTEMPTS", "CAUSE"
    );
    for (agent, r) in pending {
        println!(
            "{:<16} {:>20} {:>20} {:>8} {:>8}  {:<10} {}",
            agent,
            r.message.channel_id,
            r.message.id,
            now.saturating_sub(r.since_ms) / 1000,
            r.attempts,
            r.cause,
            r.last_error
        );
    }
    println!("{} message(s) pending after a failure", pending.len());
}

/// `--show-backlog` output: one line per agent and channel.
fn print_backlog(lines: &[BacklogLine]) {
    let when = |ms: u64| {
        chrono::DateTime::from_timestamp_millis(ms as i64)
            .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
            .unwrap_or_default()
    };
    println!(
        "{:<16} {:<8} {:<24} {:>6}  {:<19}  {:<19}",
        "AGENT", "SCOPE", "CHANNEL", "COUNT", "OLDEST (UTC)", "NEWEST (UTC)"
    );
    for l in lines {
        let (oldest, newest) = l
            .span
            .map_or((String::from("-"), String::from("-")), |(a, b)| (when(a), when(b)));
        let skipped = if l.skipped > 0 {
            format!("  ({} older skipped)", l.skipped)
        } else {
            String::new()
        };
        println!(
            "{:<16} {:<8} {:<24} {:>6}  {:<19}  {:<19}{skipped}",
            l.agent,
            l.scope.label(),
            l.channel,
            l.count,
            oldest,
            newest
        );
    }
    let total: usize = lines.iter().map(|l| l.count).sum();
    println!("{total} message(s) would be replayed");
}

/// The configuration narrowed to this process's cell (its agents, its store), or exit code 2
/// when the cell is missing or out of range.
async fn load_cell_config(cli: &Cli) -> Result<Config, ExitCode> {
    let mut config = load_config(cli).await?;
    match troupe::cells::identify(config.cell_count, &troupe::cells::Hints::from_env(cli.cell)) {
        Ok(cell) => {
            config.keep_cell(cell);
            if cell.count > 1 {
                tracing::info!(
                    cell = cell.index,
                    count = cell.count,
                    from = cell.origin.label(),
                    agents = config.agents.len(),
                    "running one cell of the cast"
                );
            }
            Ok(config)
        }
        Err(e) => {
            eprintln!("error: {e}");
            Err(ExitCode::from(code::CONFIG))
        }
    }
}

async fn run_agents(cli: &Cli) -> ExitCode {
    let config = match load_cell_config(cli).await {
        Ok(c) => c,
        Err(code) => return code,
    };
    if let Err(e) = config.check_shared_sandbox() {
        eprintln!("error: {e}");
        return ExitCode::from(code::CONFIG);
    }
    let mut signals = Signals::new();
    let running = match troupe::app::start(config).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            let code = if matches!(e, troupe::app::AppError::Store(_)) {
                code::STORE
            } else {
                code::STARTUP
            };
            return ExitCode::from(code);
        }
    };
    println!("http listening on {}/", running.http_url());
    if let Some(url) = running.sandbox_url() {
        println!("sandbox listening on {url}/");
    }
    let monitoring = running.run_mode() == RunMode::Monitor;
    let exit_code = tokio::select! {
        _ = signals.recv() => {
            tracing::info!("shutting down; a second signal exits at once");
            code::CLEAN
        }
        lines = running.backlog_done(), if !monitoring => {
            match running.run_mode() {
                RunMode::ShowBacklog => {
                    print_backlog(&lines);
                    print_pending(&running.pending());
                }
                RunMode::ClearBacklog => println!("backlog cleared: every cursor is at the newest message"),
                _ => tracing::info!("backlog done; exiting (--no-monitoring)"),
            }
            code::CLEAN
        }
        reason = running.exit_requested() => {
            tracing::error!(%reason, exit_code = reason.code(), "stopping troupe");
            reason.code()
        }
    };
    let store = running.store().clone();
    tokio::select! {
        _ = running.stop() => {
            tracing::info!(exit_code, "stopped");
            ExitCode::from(exit_code)
        }
        _ = signals.recv() => {
            tracing::warn!("second signal: exiting now, in-flight turns are abandoned");
            // Memory is flushed after every turn already; this makes the rest durable too. sled's
            // log stays consistent even without it.
            if tokio::time::timeout(Duration::from_secs(2), store.flush()).await.is_err() {
                tracing::warn!("store flush did not finish in 2 s");
            }
            std::process::exit(i32::from(code::FORCED));
        }
    }
}

async fn check_config(cli: &Cli) -> ExitCode {
    let config = match load_config(cli).await {
        Ok(c) => c,
        Err(code) => return code,
    };
    let (resolved, problems) = troupe::config::resolved::resolve(&config);
    if !problems.is_empty() {
        eprintln!(
            "error: invalid configuration\n{}: {}",
            config.source,
            problems.join(&format!("\n{}: ", config.source))
        );
        return ExitCode::from(code::CONFIG);
    }
    println!("{}", serde_json::to_string_pretty(&resolved).expect("JSON serializes"));
    if config.cell_count > 1 {
        for (cell, agents) in config.agents_by_cell().iter().enumerate() {
            eprintln!("cell {cell} runs {} agent(s): {}", agents.len(), agents.join(", "));
        }
    }
    eprintln!("{}: configuration is valid", config.source);
    ExitCode::SUCCESS
}

/// `troupe usage`: the tokens spent in the current budget window, from the store.
async fn print_usage(cli: &Cli) -> ExitCode {
    let config = match load_config(cli).await {
        Ok(c) => c,
        Err(code) => return code,
    };
    let store = match troupe::store::Store::open(&config.store_path) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            if matches!(e, troupe::store::StoreError::Locked(_)) {
                eprintln!(
                    "(a running troupe holds the store: stop it, or read troupe_llm_tokens_total on its /metrics)"
                );
            }
            return ExitCode::from(code::STORE);
        }
    };
    let now = troupe::actors::turn::now_ms();
    // Every agent shares [budgets]' window; an agent's own limits may differ.
    let window = config
        .agents
        .first()
        .map(|a| a.budgets.window)
        .unwrap_or(troupe::quota::Window::Daily);
    let since = window.start(now);
    let rows = match store.usage_report(since) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(code::STORE);
        }
    };
    println!(
        "tokens spent {} (since {} ms after the Unix epoch, UTC):",
        window.describe(),
        since
    );
    if rows.is_empty() {
        println!("  nothing yet");
    }
    for (who, tokens) in rows {
        let limit = usage_limit(&config, &who);
        match limit {
            Some(l) => println!("  {who}: {tokens} of {l}"),
            None => println!("  {who}: {tokens}"),
        }
    }
    ExitCode::SUCCESS
}

/// The limit that applies to a `troupe usage` row (`agent NAME`, `user ID (with NAME)`).
fn usage_limit(config: &troupe::config::Config, who: &str) -> Option<u64> {
    let agent = |name: &str| config.agents.iter().find(|a| a.name == name);
    if let Some(name) = who.strip_prefix("agent ") {
        return agent(name)?.budgets.agent_tokens;
    }
    let scope = who.rsplit_once("(with ")?.1.trim_end_matches(')');
    agent(scope)?.budgets.user_tokens
}

/// `troupe store reset`: moves the configured store aside and says where it went.
async fn reset_store(cli: &Cli) -> ExitCode {
    let config = match load_cell_config(cli).await {
        Ok(c) => c,
        Err(code) => return code,
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    match troupe::store::reset(&config.store_path, now) {
        Ok(report) => {
            println!("{report}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(code::STORE)
        }
    }
}

/// `troupe store export --agent NAME`: the agent's records as JSON, on stdout or in a file only
/// its owner can read (it holds webhook tokens).
async fn export_agent(cli: &Cli, agent: &str, output: Option<&std::path::Path>) -> ExitCode {
    let config = match load_cell_config(cli).await {
        Ok(c) => c,
        Err(code) => return code,
    };
    let exported = troupe::store::Store::open(&config.store_path)
        .and_then(|store| store.export_agent(agent, troupe::actors::turn::now_ms()));
    let export = match exported {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(code::STORE);
        }
    };
    let text = serde_json::to_string_pretty(&export).expect("JSON serializes") + "\n";
    let Some(path) = output else {
        print!("{text}");
        return ExitCode::SUCCESS;
    };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options
        .open(path)
        .and_then(|mut f| std::io::Write::write_all(&mut f, text.as_bytes()))
    {
        Ok(()) => {
            eprintln!("exported agent `{agent}` to {}", path.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: cannot write {}: {e}", path.display());
            ExitCode::from(code::STARTUP)
        }
    }
}

/// `troupe store import FILE`: an agent's records into this cell's store.
async fn import_agent(cli: &Cli, file: &std::path::Path, replace: bool) -> ExitCode {
    use troupe::store::TransferError;
    let config = match load_cell_config(cli).await {
        Ok(c) => c,
        Err(code) => return code,
    };
    let text = if file == std::path::Path::new("-") {
        std::io::read_to_string(std::io::stdin())
    } else {
        std::fs::read_to_string(file)
    };
    let export = match text
        .map_err(|e| e.to_string())
        .and_then(|t| troupe::store::parse_export(&t).map_err(|e| e.to_string()))
    {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: {}: {e}", file.display());
            return ExitCode::from(code::CONFIG);
        }
    };
    if !config.agents.iter().any(|a| a.name == export.agent) {
        let cell = config.cell.map_or(0, |c| c.index);
        eprintln!(
            "error: agent `{}` is not run by cell {cell} with {}; give it `cell = {cell}` in the configuration \
             (or import with the --cell that runs it)",
            export.agent, config.source
        );
        return ExitCode::from(code::CONFIG);
    }
    let store = match troupe::store::Store::open(&config.store_path) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(code::STORE);
        }
    };
    match store.import_agent(&export, replace).await {
        Ok(report) => {
            println!("{report}");
            ExitCode::SUCCESS
        }
        Err(TransferError::Invalid(e)) => {
            eprintln!("error: {}: {e}", file.display());
            ExitCode::from(code::CONFIG)
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(code::STORE)
        }
    }
}

async fn serve_sandbox(cli: &Cli, listen: Option<std::net::SocketAddr>) -> ExitCode {
    let (world, agents, default_listen) = match troupe::config::source::load(&cli.config).await {
        Ok(c) => (
            c.sandbox.world.clone(),
            c.agents.iter().map(|a| a.name.clone()).collect(),
            c.sandbox.listen,
        ),
        Err(e) if cli.config_given() || std::path::Path::new(&cli.config).exists() => {
            eprintln!("error: invalid configuration\n{e}");
            return ExitCode::from(code::CONFIG);
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
            return ExitCode::from(code::STARTUP);
        }
    };
    println!("sandbox listening on {}/", sandbox.url());
    Signals::new().recv().await;
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
    // Colours only on a terminal: log collectors (and files) get plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// SIGTERM and Ctrl-C, listened to from startup on: a second signal during the graceful stop is
/// never missed (and never falls back to the default action, which would kill troupe mid-write).
struct Signals {
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    int: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    fn new() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Self {
                term: signal(SignalKind::terminate()).ok(),
                int: signal(SignalKind::interrupt()).ok(),
            }
        }
        #[cfg(not(unix))]
        Self {}
    }

    /// Completes on the next SIGTERM or Ctrl-C.
    async fn recv(&mut self) {
        #[cfg(unix)]
        {
            async fn one(s: &mut Option<tokio::signal::unix::Signal>) {
                match s {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            }
            tokio::select! {
                _ = one(&mut self.term) => {},
                _ = one(&mut self.int) => {},
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
