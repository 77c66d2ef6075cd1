//! `troupe-bench`: measures troupe's overhead, throughput, memory, replay and startup against
//! the sandbox, each figure beside a baseline measured in the same run (a bare serenity bot) or
//! a theoretical bound, and prints one table. `make bench` runs it; `make bench QUICK=1` runs a
//! reduced version. See docs/benchmarks.md.
//!
//! - [`stage`]: the sandbox (in this process: its clock times every reply) and its control API.
//! - [`process`]: troupe (the real binary, its own process) and the baseline process; RSS.
//! - [`baseline`]: the bare serenity bot, run by `troupe-bench baseline`.
//! - [`equivalent`]: the equivalent bot (LLM stream + durable write per reply), run by
//!   `troupe-bench equivalent`.
//! - [`scenarios`]: the scenarios, and the plan that sizes them.
//! - [`report`]: figures, machine facts, the table and the JSON.
//!
//! The harness, and with it the sandbox and both baselines (they re-execute this binary), runs
//! on jemalloc with its default options, as troupe runs on jemalloc: on glibc's malloc the
//! baselines spent 50–65% more CPU per reply (serenity allocates on every event), which made
//! them look slower than the job they stand for (docs/benchmarks.md, issue 18, fourth round).

#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

mod baseline;
mod equivalent;
mod process;
mod report;
mod scenarios;
mod stage;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use clap::{Parser, Subcommand};

use crate::report::{Machine, Report};
use crate::scenarios::{Bench, Plan, Step};

/// Why a scenario could not be measured: a message for the table.
#[derive(Debug)]
pub struct BenchError(pub String);

impl std::fmt::Display for BenchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The harness's result type.
pub type Result<T> = std::result::Result<T, BenchError>;

/// Adds what was being done to an error.
pub trait Context<T> {
    /// `what: error`.
    fn context(self, what: &str) -> Result<T>;
}

impl<T, E: std::fmt::Display> Context<T> for std::result::Result<T, E> {
    fn context(self, what: &str) -> Result<T> {
        self.map_err(|e| BenchError(format!("{what}: {e}")))
    }
}

/// Command line.
#[derive(Debug, Parser)]
#[command(
    name = "troupe-bench",
    about = "Benchmarks troupe against the sandbox, beside a bare serenity bot"
)]
struct Cli {
    /// Reduced sizes: the whole run in under a minute.
    #[arg(long)]
    quick: bool,
    /// Run only these scenarios: overhead, throughput, memory (or its halves: agents,
    /// conversations), startup, replay, store, streaming.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Messages of the overhead scenario (overrides the mode's size).
    #[arg(long)]
    overhead_messages: Option<usize>,
    /// Agents connected in the conversations scenario: one answers, the others see every
    /// message unaddressed (default: 100, or 10 with --quick; at least 1).
    #[arg(long)]
    conversation_agents: Option<usize>,
    /// `idle_secs` of the conversations scenario (default: 300, or 20 with --quick): longer than
    /// its touches take, so every conversation is live when the live figure is read.
    #[arg(long)]
    passivation_idle_secs: Option<u64>,
    /// `[store] cache_mib` of every scenario's troupe (default: troupe's own).
    #[arg(long)]
    store_cache_mib: Option<u64>,
    /// Where to write the results (default `target/bench/<mode>-<time>.json`, also copied to
    /// `target/bench/latest-<mode>.json`).
    #[arg(long)]
    json: Option<PathBuf>,
    /// Compare with an earlier run's JSON (adds a column).
    #[arg(long)]
    compare: Option<PathBuf>,
    /// The troupe binary (default: `troupe` beside this harness).
    #[arg(long)]
    troupe: Option<PathBuf>,
    /// Keep the run directory (configurations, logs, stores) instead of deleting it.
    #[arg(long)]
    keep: bool,
    #[command(subcommand)]
    command: Option<Sub>,
}

#[derive(Debug, Subcommand)]
enum Sub {
    /// Run bare serenity bots (the baseline) until killed.
    #[command(hide = true)]
    Baseline {
        /// The sandbox's URL.
        #[arg(long)]
        sandbox: String,
        /// One bot per token.
        #[arg(long, value_delimiter = ',')]
        tokens: Vec<String>,
    },
    /// Run equivalent bots (serenity + a streaming LLM request + a sled write per reply)
    /// until killed.
    #[command(hide = true)]
    Equivalent {
        /// The sandbox's URL.
        #[arg(long)]
        sandbox: String,
        /// One bot per token.
        #[arg(long, value_delimiter = ',')]
        tokens: Vec<String>,
        /// The OpenAI-compatible base URL (`.../v1`).
        #[arg(long)]
        llm: String,
        /// The sled store's directory.
        #[arg(long)]
        store: String,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Sub::Baseline { sandbox, tokens }) = &cli.command {
        return match baseline::run(sandbox, tokens).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("baseline: {e}");
                ExitCode::FAILURE
            }
        };
    }
    if let Some(Sub::Equivalent {
        sandbox,
        tokens,
        llm,
        store,
    }) = &cli.command
    {
        return match equivalent::run(sandbox, tokens, llm, store).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("equivalent: {e}");
                ExitCode::FAILURE
            }
        };
    }
    match run(&cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: &Cli) -> Result<()> {
    let exe = std::env::current_exe().context("locating the harness")?;
    let bin_dir = exe.parent().map(PathBuf::from).unwrap_or_default();
    let troupe = cli.troupe.clone().unwrap_or_else(|| bin_dir.join("troupe"));
    if !troupe.is_file() {
        return Err(BenchError(format!(
            "no troupe binary at {}; build it (`cargo build --release`) or pass --troupe",
            troupe.display()
        )));
    }
    // target/<profile>/troupe-bench → target/bench: on the same disk as the build, not a tmpfs,
    // so the store's fsyncs are real.
    let out_dir = bin_dir
        .parent()
        .map_or_else(|| PathBuf::from("bench"), |t| t.join("bench"));
    let started_unix = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let run_dir = out_dir.join(format!("run-{started_unix}-{}", std::process::id()));
    let mut plan = if cli.quick { Plan::quick() } else { Plan::full() };
    if let Some(n) = cli.overhead_messages {
        plan.overhead_messages = n;
    }
    if let Some(n) = cli.conversation_agents {
        plan.conversation_agents = n.max(1);
    }
    if let Some(secs) = cli.passivation_idle_secs {
        plan.passivation_idle_secs = secs;
    }
    plan.store_cache_mib = cli.store_cache_mib;
    let steps = Step::selected(&cli.only).map_err(BenchError)?;
    let mode = if cli.quick { "quick" } else { "full" };
    let bench = Bench {
        plan,
        troupe: troupe.clone(),
        dir: run_dir.clone(),
    };
    let machine = Machine::detect(&troupe);
    let start = Instant::now();
    eprintln!(
        "troupe-bench ({mode}): troupe {}, run directory {}",
        troupe.display(),
        run_dir.display()
    );
    let figures = scenarios::run(&bench, &steps).await;
    let report = Report {
        mode: mode.into(),
        command: std::env::args().collect::<Vec<_>>().join(" "),
        started_unix,
        duration_secs: start.elapsed().as_secs_f64(),
        machine,
        figures,
    };
    let previous = match &cli.compare {
        Some(p) => Some(
            std::fs::read_to_string(p)
                .context(&format!("reading {}", p.display()))
                .and_then(|t| serde_json::from_str::<Report>(&t).context(&format!("parsing {}", p.display())))?,
        ),
        None => None,
    };
    println!("\n{}", report.table(previous.as_ref()));
    let json = serde_json::to_string_pretty(&report).context("serializing the report")?;
    let path = cli
        .json
        .clone()
        .unwrap_or_else(|| out_dir.join(format!("{mode}-{started_unix}.json")));
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).context("creating the output directory")?;
    }
    std::fs::write(&path, &json).context(&format!("writing {}", path.display()))?;
    if cli.json.is_none() {
        let _ = std::fs::write(out_dir.join(format!("latest-{mode}.json")), &json);
    }
    println!("results: {}", path.display());
    if !cli.keep {
        let _ = std::fs::remove_dir_all(&run_dir);
    }
    Ok(())
}
