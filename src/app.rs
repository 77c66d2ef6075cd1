//! Starting and stopping troupe: the store, the operations HTTP server, the sandbox
//! (in-process or remote), the agents' tokens and backends, the crash-loop back-off, the actor
//! tree, the system watchdog and the store's retention. [`run`] is the entry point tests drive;
//! `main.rs` adds the CLI.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use ractor::{ActorCell, ActorRef};
use serde_json::Value;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::actors::supervisor::SupervisorMsg;
use crate::actors::{AgentSpec, Gauges};
use crate::config::{Config, Mode, TokenSource};
use crate::llm::pool::Pool;
use crate::llm::Backend;
use crate::ops::breakers::AgentBreaker;
use crate::ops::exit::{ExitReason, ExitRequests};
use crate::ops::health::{Health, Phase};
use crate::ops::{http, system, telemetry};
use crate::sandbox::spec::sandbox_token;
use crate::sandbox::{Sandbox, SandboxError};
use crate::store::{Store, StoreError};
use std::collections::HashMap;

/// Why troupe could not start.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The sandbox could not start.
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    /// A remote sandbox could not be reached or set up.
    #[error("sandbox at {url}: {reason}")]
    RemoteSandbox {
        /// Its URL.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// The store could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A secret could not be read.
    #[error("{0}")]
    Secret(String),
    /// The actor tree could not start.
    #[error("cannot start the actor tree: {0}")]
    Actors(String),
    /// The operations HTTP server could not listen.
    #[error("cannot listen on {addr} for the HTTP endpoints ([http] listen, --http-listen): {source}")]
    Http {
        /// The address asked for.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// The actor tree: running, or waiting out a crash-loop back-off.
#[derive(Debug)]
enum Tree {
    Running(ActorRef<SupervisorMsg>, JoinHandle<()>),
    Deferred {
        cancel: oneshot::Sender<()>,
        start: JoinHandle<Option<(ActorRef<SupervisorMsg>, JoinHandle<()>)>>,
    },
}

/// A running troupe.
#[derive(Debug)]
pub struct Running {
    sandbox: Option<Sandbox>,
    sandbox_url: Option<String>,
    tree: Tree,
    store: Store,
    gauges: Arc<Gauges>,
    pools: HashMap<String, Arc<Pool>>,
    health: Arc<Health>,
    exits: ExitRequests,
    http_addr: SocketAddr,
    http_stop: oneshot::Sender<()>,
    http_task: JoinHandle<()>,
    watchdog: JoinHandle<()>,
    pruner: Option<JoinHandle<()>>,
    tracker: Arc<crate::actors::replay::ReplayTracker>,
    run_mode: crate::config::RunMode,
    agents: Vec<String>,
}

impl Running {
    /// What this run does.
    pub fn run_mode(&self) -> crate::config::RunMode {
        self.run_mode
    }

    /// Completes when every agent has finished its backlog (with `--no-monitoring`, also every
    /// turn it started; with `--show-backlog`, the listing). Returns the backlog lines.
    pub async fn backlog_done(&self) -> Vec<crate::actors::replay::BacklogLine> {
        self.tracker.all_done().await
    }

    /// Messages each agent owes an answer that a failure deferred or that wait for room:
    /// `(agent, record)`, oldest first per agent (`--show-backlog` lists them).
    pub fn pending(&self) -> Vec<(String, crate::store::PendingRecord)> {
        let mut out = Vec::new();
        for agent in &self.agents {
            match self.store.all_pending(agent) {
                Ok(records) => out.extend(records.into_iter().map(|r| (agent.clone(), r))),
                Err(e) => tracing::error!(agent = %agent, error = %e, "cannot list pending messages"),
            }
        }
        out
    }

    /// `http://ADDR` of the sandbox in use (in-process or remote); `None` in live mode.
    pub fn sandbox_url(&self) -> Option<&str> {
        self.sandbox_url.as_deref()
    }

    /// The worker pool of a backend.
    pub fn pool(&self, backend: &str) -> Option<&Pool> {
        self.pools.get(backend).map(|p| p.as_ref())
    }

    /// Live counts kept by the actors.
    pub fn gauges(&self) -> &Gauges {
        &self.gauges
    }

    /// `http://ADDR` of the operations endpoints (`/liveness`, `/readiness`, `/metrics`), with
    /// the real port when port 0 was asked for.
    pub fn http_url(&self) -> String {
        format!("http://{}", self.http_addr)
    }

    /// The phase and agents' states that `/readiness` reports.
    pub fn health(&self) -> &Arc<Health> {
        &self.health
    }

    /// The handle any component uses to request a clean exit with a code.
    pub fn exits(&self) -> &ExitRequests {
        &self.exits
    }

    /// The store, e.g. to flush it when a second signal cuts the shutdown short.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Completes when a component requested an exit (breaker, system limits).
    pub async fn exit_requested(&self) -> ExitReason {
        self.exits.requested().await
    }

    /// Stops troupe: readiness turns 503 and the agents stop taking messages; in-flight turns
    /// get the grace period, gateways close; the store is flushed; then the HTTP endpoints and
    /// the in-process sandbox stop.
    pub async fn stop(self) {
        self.health.set_phase(Phase::Stopping);
        let tree = match self.tree {
            Tree::Running(root, task) => Some((root, task)),
            Tree::Deferred { cancel, start } => {
                let _ = cancel.send(());
                start.await.ok().flatten()
            }
        };
        if let Some((root, task)) = tree {
            root.stop(Some("shutdown".into()));
            let _ = task.await;
        }
        self.watchdog.abort();
        if let Some(pruner) = self.pruner {
            pruner.abort();
        }
        if let Err(e) = self.store.flush().await {
            tracing::error!(error = %e, "store flush at shutdown failed");
        }
        let _ = self.http_stop.send(());
        let _ = self.http_task.await;
        drop(self.store);
        if let Some(sandbox) = self.sandbox {
            sandbox.stop().await;
        }
    }
}

/// Starts troupe: the sandbox if the configuration asks for one, then every agent.
// Why this is long: start-up is one ordered sequence (store, endpoints, sandbox, tokens, backends, tree, watchdog) whose order matters; split, the order would be spread over several functions.
pub async fn start(config: Config) -> Result<Running, AppError> {
    // The store first: a locked or corrupt store must stop troupe before anything connects.
    let store = Store::open_with_cache(&config.store_path, config.store_cache_bytes)?;
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let starts = store
        .record_start(now_ms, config.restarts.window.as_millis() as u64)
        .await?;
    let backoff = config.restarts.backoff(starts.len());
    // Dry runs leave the store as it was.
    let pruner = (config.run.dry_run == crate::config::DryRun::None)
        .then(|| spawn_pruner(store.clone(), config.store_retention));

    // Then the endpoints, so liveness answers during a back-off and readiness explains it.
    let metrics = telemetry::install();
    telemetry::initialise(
        config.agents.iter().map(|a| a.name.as_str()),
        config.backends.keys().map(String::as_str),
    );
    let health = Arc::new(Health::new(config.agents.iter().map(|a| a.name.as_str())));
    if let Some(cell) = config.cell {
        health.set_cell(cell.index, cell.count);
        telemetry::cell(cell.index, cell.count);
    }
    let root_cell = Arc::new(OnceLock::new());
    let listener = tokio::net::TcpListener::bind(config.http_listen)
        .await
        .map_err(|source| AppError::Http {
            addr: config.http_listen,
            source,
        })?;
    let http_addr = listener.local_addr().map_err(|source| AppError::Http {
        addr: config.http_listen,
        source,
    })?;
    let (http_stop, http_stopped) = oneshot::channel::<()>();
    let ops_state = http::OpsState {
        health: health.clone(),
        store: store.clone(),
        metrics,
        root: root_cell.clone(),
    };
    let http_task = tokio::spawn(http::serve(listener, ops_state, async {
        let _ = http_stopped.await;
    }));
    tracing::info!(addr = %http_addr, "http endpoints listening");
    let (sandbox, sandbox_url) = match config.mode {
        Mode::Live => (None, None),
        Mode::Sandbox => match &config.sandbox.url {
            Some(url) => {
                let url = url.trim_end_matches('/').to_string();
                register_bots(&url, &config).await?;
                (None, Some(url))
            }
            None => {
                let bots: Vec<(String, String)> = config
                    .agents
                    .iter()
                    .map(|a| (a.name.clone(), sandbox_token(&a.name)))
                    .collect();
                let sandbox = Sandbox::start(&config.sandbox.world, &bots, config.sandbox.listen).await?;
                let url = sandbox.url();
                (Some(sandbox), Some(url))
            }
        },
    };
    let route = discord_route(&config, sandbox.as_ref(), sandbox_url.as_deref()).await?;
    let gauges = Arc::new(Gauges::default());
    let exits = ExitRequests::new();
    let pools: HashMap<String, Arc<Pool>> = config
        .backends
        .values()
        .map(|b| (b.name.clone(), Pool::new(b.max_concurrency, b.max_queue)))
        .collect();
    let cast = Arc::new(crate::actors::Cast::default());
    let bot_exchanges = Arc::new(std::sync::Mutex::new(crate::loopguard::BotExchangeGuard::new(
        config.discord.bot_replies_per_window,
        config.discord.bot_reply_window,
    )));
    let tracker = crate::actors::replay::ReplayTracker::new(config.agents.iter().map(|a| a.name.as_str()));
    let roster = Arc::new(crate::actors::roster::Roster::new(
        config
            .agents
            .iter()
            .map(|a| crate::commands::replies::CastMember::new(a, config.backends.get(&a.backend)))
            .collect(),
    ));
    // Attachments come from Discord's CDN in live mode, from the sandbox's own address in
    // sandbox mode; from nowhere else.
    let origins = match sandbox_url.as_deref() {
        Some(url) => crate::attach::origin::Origins::sandbox(url).unwrap_or_else(crate::attach::origin::Origins::none),
        None => crate::attach::origin::Origins::discord(),
    };
    let fetcher = Arc::new(crate::attach::Fetcher::new(origins));
    let mut specs = Vec::new();
    for agent in &config.agents {
        let token = match (&agent.token, config.mode) {
            (_, Mode::Sandbox) => TokenSource::Sandbox.resolve(&agent.name),
            (source, Mode::Live) => source.resolve(&agent.name),
        }
        .map_err(AppError::Secret)?;
        // The agent reads it again when it starts; a missing one must stop troupe here, as
        // check-config reports it, not leave the agent failing and restarting.
        if let Some(crate::config::WebhookConfig::Existing { token, .. }) = &agent.webhook {
            token
                .resolve(&agent.name)
                .map_err(|e| AppError::Secret(format!("{e} (the webhook's token)")))?;
        }
        let backend =
            Backend::from_config(&config.backends[&agent.backend]).map_err(|e| AppError::Secret(e.to_string()))?;
        specs.push(Arc::new(AgentSpec {
            config: agent.clone(),
            backend,
            token,
            route: route.clone(),
            pool: pools[agent.backend.as_str()].clone(),
            store: store.clone(),
            conversations: config.conversations,
            gauges: gauges.clone(),
            health: health.clone(),
            exits: exits.clone(),
            breaker: Arc::new(AgentBreaker::new(
                &agent.name,
                agent.breaker,
                health.clone(),
                exits.clone(),
            )),
            discord: config.discord.clone(),
            bot_dms_channel: config.bot_dms_channel.clone(),
            cast: cast.clone(),
            bot_exchanges: bot_exchanges.clone(),
            backlog: config.backlog,
            run: config.run.clone(),
            tracker: tracker.clone(),
            delivery: config.delivery.clone(),
            roster: roster.clone(),
            attach: crate::attach::AgentAttach {
                settings: agent.attachments,
                vision: config.backends[&agent.backend].vision,
                fetcher: fetcher.clone(),
            },
        }));
    }
    let tree = if backoff.is_zero() {
        let (root, task) = spawn_tree(specs, &root_cell, &health).await?;
        Tree::Running(root, task)
    } else {
        tracing::warn!(
            starts = starts.len(),
            window_secs = config.restarts.window.as_secs(),
            backoff_ms = backoff.as_millis() as u64,
            "restarting too often; restart back-off: waiting before connecting the agents"
        );
        health.set_phase(Phase::RestartBackoff {
            backoff_ms: backoff.as_millis() as u64,
        });
        let (cancel, cancelled) = oneshot::channel::<()>();
        let (root_cell, health) = (root_cell.clone(), health.clone());
        let start = tokio::spawn(async move {
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = cancelled => return None,
            }
            match spawn_tree(specs, &root_cell, &health).await {
                Ok(tree) => Some(tree),
                Err(e) => {
                    tracing::error!(error = %e, "the actor tree did not start after the restart back-off");
                    None
                }
            }
        });
        Tree::Deferred { cancel, start }
    };
    let watchdog = system::spawn(config.limits, exits.clone());
    Ok(Running {
        tracker,
        run_mode: config.run.mode,
        agents: config.agents.iter().map(|a| a.name.clone()).collect(),
        sandbox,
        sandbox_url,
        tree,
        store,
        gauges,
        pools,
        health,
        exits,
        http_addr,
        http_stop,
        http_task,
        watchdog,
        pruner,
    })
}

/// How often old per-message records are pruned (the first time at startup).
const PRUNE_EVERY: std::time::Duration = std::time::Duration::from_secs(3600);

/// Prunes the store's per-message records older than `retention`, at startup and then every
/// [`PRUNE_EVERY`], until aborted when troupe stops. A failed prune is logged and retried at the
/// next tick: the records wait, nothing else does.
fn spawn_pruner(store: Store, retention: std::time::Duration) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(PRUNE_EVERY);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let now_ms = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64);
            let cutoff = now_ms.saturating_sub(retention.as_millis() as u64);
            match store.prune(cutoff).await {
                Ok(report) if report.removed() > 0 => tracing::info!(
                    chains = report.chains,
                    answers = report.answers,
                    retention_days = retention.as_secs() / 86_400,
                    "pruned old per-message records from the store"
                ),
                Ok(_) => tracing::debug!("nothing to prune in the store"),
                Err(e) => tracing::error!(error = %e, "pruning the store failed; retrying in an hour"),
            }
        }
    })
}

async fn spawn_tree(
    specs: Vec<Arc<AgentSpec>>,
    root_cell: &OnceLock<ActorCell>,
    health: &Health,
) -> Result<(ActorRef<SupervisorMsg>, JoinHandle<()>), AppError> {
    let (root, task) = crate::actors::supervisor::start(specs)
        .await
        .map_err(|e| AppError::Actors(e.to_string()))?;
    let _ = root_cell.set(root.get_cell());
    health.set_phase(Phase::Running);
    Ok((root, task))
}

/// Runs troupe until `shutdown` completes or a component requests an exit (a tripped breaker,
/// a system limit), then stops it cleanly. Returns that request, if it is what ended the run.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<Option<ExitReason>, AppError> {
    let running = start(config).await?;
    let reason = tokio::select! {
        _ = shutdown => None,
        reason = running.exit_requested() => Some(reason),
    };
    running.stop().await;
    Ok(reason)
}

/// Makes sure a remote sandbox knows every agent's bot (it may have been started with another
/// configuration), registering the missing ones through its control API.
/// How agents reach Discord's API. In sandbox mode, the same `https://discord.com` as live
/// mode, through the sandbox's CONNECT proxy and trusting its CA (read from the in-process
/// sandbox, or `GET /sandbox/ca.pem` of a remote one).
async fn discord_route(
    config: &Config,
    sandbox: Option<&Sandbox>,
    sandbox_url: Option<&str>,
) -> Result<crate::discord::Route, AppError> {
    use crate::discord::Route;
    let Some(url) = sandbox_url else {
        return Ok(config.discord_api_url.clone().map_or(Route::Discord, Route::ApiBase));
    };
    let err = |e: crate::discord::route::RouteError| AppError::RemoteSandbox {
        url: url.to_string(),
        reason: e.to_string(),
    };
    let ca = match sandbox {
        Some(sandbox) => sandbox.ca_pem().to_string(),
        None => Route::fetch_sandbox_ca(url).await.map_err(err)?,
    };
    Route::sandbox(url, &ca).map_err(err)
}

async fn register_bots(url: &str, config: &Config) -> Result<(), AppError> {
    let err = |reason: String| AppError::RemoteSandbox {
        url: url.to_string(),
        reason,
    };
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .map_err(|e| err(e.to_string()))?;
    let state: Value = client
        .get(format!("{url}/sandbox/state"))
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .map_err(|e| {
            err(format!(
                "cannot read /sandbox/state ({e}); is `troupe sandbox` running there?"
            ))
        })?
        .json()
        .await
        .map_err(|e| err(format!("/sandbox/state is not the sandbox's JSON: {e}")))?;
    let known: Vec<String> = state["users"]
        .as_array()
        .map(|users| {
            users
                .iter()
                .filter_map(|u| u["name"].as_str())
                .map(str::to_lowercase)
                .collect()
        })
        .unwrap_or_default();
    for agent in &config.agents {
        if known.contains(&agent.name.to_lowercase()) {
            continue;
        }
        let body = serde_json::json!({"name": agent.name, "token": sandbox_token(&agent.name)});
        client
            .post(format!("{url}/sandbox/bots"))
            .json(&body)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| err(format!("cannot register bot `{}`: {e}", agent.name)))?;
    }
    Ok(())
}
