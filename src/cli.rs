//! Command-line interface: flags and subcommands (clap).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// troupe runs a whole cast of LLM agent personas on Discord from one process.
///
/// With no subcommand, troupe runs the agents declared in the configuration file. In sandbox
/// mode (the default) it starts a local Discord-compatible server and prints the address of its
/// web page, where you can chat with the agents.
#[derive(Debug, Parser)]
#[command(name = "troupe", version, about, long_about)]
pub struct Cli {
    /// Configuration declaring the sandbox world, backends and agents: a path, `file:PATH`, an
    /// `https://` URL or `s3://BUCKET/KEY`.
    #[arg(short, long, global = true, value_name = "SOURCE", default_value = DEFAULT_CONFIG, env = "TROUPE_CONFIG")]
    pub config: String,

    /// Verbose logs, including why each message was or was not processed.
    #[arg(long, global = true)]
    pub debug: bool,

    /// Log format: human-readable text, or JSON lines for log collectors.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Address of the in-process sandbox (overrides `[sandbox] listen`); port 0 picks a free port.
    #[arg(long, value_name = "ADDR")]
    pub sandbox_listen: Option<SocketAddr>,

    /// Use a sandbox already running at this URL (e.g. `troupe sandbox` in another terminal)
    /// instead of starting one (overrides `[sandbox] url`).
    #[arg(long, value_name = "URL")]
    pub sandbox_url: Option<String>,

    /// The cell this process runs when `[cells] count` splits the cast (0 to count - 1;
    /// otherwise `TROUPE_CELL`, `TROUPE_POD_INDEX` or, in Kubernetes, the hostname's ordinal).
    #[arg(long, global = true, value_name = "K")]
    pub cell: Option<u32>,

    /// Directory of the store (overrides `[store] path`).
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,

    /// Address of the `/liveness`, `/readiness` and `/metrics` endpoints (overrides `[http]
    /// listen`, default 0.0.0.0:23459); port 0 picks a free port.
    #[arg(long, value_name = "ADDR")]
    pub http_listen: Option<SocketAddr>,

    /// Replay the backlog (messages missed while troupe was down), then exit instead of
    /// answering in real time.
    #[arg(long = "no-monitoring", short = '1')]
    pub no_monitoring: bool,

    /// Dry run: decide what would be answered, but call no model and send nothing (the store
    /// is left untouched).
    #[arg(long)]
    pub no_agent: bool,

    /// Dry run: call the model, but print the replies instead of sending them to Discord (the
    /// store is left untouched).
    #[arg(long, conflicts_with = "no_agent")]
    pub no_discord: bool,

    /// Which channels the backlog replay covers: dms, botdms, text or all (repeat or
    /// comma-separate for several; default all).
    #[arg(long, value_name = "SCOPE", value_delimiter = ',')]
    pub scope: Vec<String>,

    /// List what would be replayed (per agent and channel: count, oldest, newest) without
    /// processing anything, then exit.
    #[arg(long, conflicts_with_all = ["clear_backlog", "no_monitoring"])]
    pub show_backlog: bool,

    /// Move every cursor to the newest message without processing anything, then exit.
    #[arg(long, conflicts_with = "no_monitoring")]
    pub clear_backlog: bool,

    /// What to run.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve only the sandbox (a local Discord: gateway, REST API, control API, web page), for
    /// testing troupe across restarts or any other Discord bot. Agents of the configuration file
    /// (if it exists) become bot users with the token `sandbox.<name>`.
    Sandbox {
        /// Address to listen on (overrides `[sandbox] listen`); port 0 picks a free port.
        #[arg(long, value_name = "ADDR")]
        listen: Option<SocketAddr>,
    },
    /// Validate the configuration and print it resolved, secrets redacted (tokens and API keys
    /// are read to check they exist, never printed). Exits 0 when it is valid, 2 otherwise.
    CheckConfig,
    /// Print the tokens spent in the current `[budgets]` window: per agent, and per user (with
    /// each agent, and with all of them), largest first, against the limits. Reads the store,
    /// so troupe must not be running on it. Exits 0, or 6 if the store cannot be read.
    Usage,
    /// Operate on the store (`[store] path`, or `--state-dir`).
    Store {
        /// What to do.
        #[command(subcommand)]
        action: StoreCommand,
    },
}

/// `troupe store` subcommands.
#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Move the store directory aside (renamed to `<path>.broken-<unix seconds>`, or its files
    /// moved into `<path>/broken-<unix seconds>/` if it cannot be renamed, e.g. a mount point) so
    /// the next start begins with an empty store. Nothing is deleted. Refused while a troupe uses
    /// the store. Exits 0 when done, 6 if the store is in use or cannot be moved.
    Reset,
    /// Write one agent's records (cursors, memory, answered records, created webhooks, seen DM
    /// channels, pending answers) as versioned JSON, to move it to another cell's store with
    /// `store import`. The file holds webhook tokens: keep it secret. Refused while a troupe
    /// uses the store. Exits 0, or 6 if the store is in use or damaged.
    Export {
        /// The agent.
        #[arg(long, value_name = "NAME")]
        agent: String,
        /// Write here (created with mode 0600) instead of to stdout.
        #[arg(long, short, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Write an agent's records from a `store export` file into this cell's store, after
    /// validating every record. The agent must belong to this cell, and the store must hold no
    /// record of it (unless --replace). Exits 0, 2 for a bad file or an agent of another cell,
    /// 6 if the store is in use, damaged, or already holds the agent's records.
    Import {
        /// The export file (`-` for stdin).
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// Set the agent's records already in the store aside (under `bad/1/`) first.
        #[arg(long)]
        replace: bool,
    },
}

/// The configuration read when `--config` is not given.
pub const DEFAULT_CONFIG: &str = "agents.toml";

impl Cli {
    /// Whether `--config` (or `TROUPE_CONFIG`) named a configuration explicitly.
    pub fn config_given(&self) -> bool {
        self.config != DEFAULT_CONFIG
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}
