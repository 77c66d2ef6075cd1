//! Starting and stopping troupe: the sandbox (in-process or remote), the agents' tokens and
//! backends, and the actor tree. [`run`] is the entry point tests drive; `main.rs` adds the CLI.

use std::future::Future;
use std::sync::Arc;

use ractor::{Actor, ActorRef};
use serde_json::Value;
use tokio::task::JoinHandle;

use crate::actors::supervisor::{Supervisor, SupervisorMsg};
use crate::actors::{AgentSpec, Gauges};
use crate::config::{Config, Mode, TokenSource};
use crate::llm::pool::Pool;
use crate::llm::Backend;
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
}

/// A running troupe.
#[derive(Debug)]
pub struct Running {
    sandbox: Option<Sandbox>,
    sandbox_url: Option<String>,
    root: ActorRef<SupervisorMsg>,
    root_task: JoinHandle<()>,
    store: Store,
    gauges: Arc<Gauges>,
    pools: HashMap<String, Arc<Pool>>,
}

impl Running {
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

    /// Stops the agents (in-flight turns get the grace period, gateways close), flushes the
    /// store, then stops the in-process sandbox.
    pub async fn stop(self) {
        self.root.stop(Some("shutdown".into()));
        let _ = self.root_task.await;
        if let Err(e) = self.store.flush().await {
            tracing::error!(error = %e, "store flush at shutdown failed");
        }
        drop(self.store);
        if let Some(sandbox) = self.sandbox {
            sandbox.stop().await;
        }
    }
}

/// Starts troupe: the sandbox if the configuration asks for one, then every agent.
pub async fn start(config: Config) -> Result<Running, AppError> {
    // The store first: a locked or corrupt store must stop troupe before anything connects.
    let store = Store::open(&config.store_path)?;
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
    let gauges = Arc::new(Gauges::default());
    let pools: HashMap<String, Arc<Pool>> = config
        .backends
        .values()
        .map(|b| (b.name.clone(), Pool::new(b.max_concurrency, b.max_queue)))
        .collect();
    let mut specs = Vec::new();
    for agent in &config.agents {
        let token = match (&agent.token, config.mode) {
            (_, Mode::Sandbox) => TokenSource::Sandbox.resolve(&agent.name),
            (source, Mode::Live) => source.resolve(&agent.name),
        }
        .map_err(AppError::Secret)?;
        let backend =
            Backend::from_config(&config.backends[&agent.backend]).map_err(|e| AppError::Secret(e.to_string()))?;
        specs.push(Arc::new(AgentSpec {
            config: agent.clone(),
            backend,
            token,
            api_base: sandbox_url.clone(),
            pool: pools[agent.backend.as_str()].clone(),
            store: store.clone(),
            conversations: config.conversations,
            gauges: gauges.clone(),
        }));
    }
    let (root, root_task) = Actor::spawn(None, Supervisor, specs)
        .await
        .map_err(|e| AppError::Actors(e.to_string()))?;
    Ok(Running {
        sandbox,
        sandbox_url,
        root,
        root_task,
        store,
        gauges,
        pools,
    })
}

/// Runs troupe until `shutdown` completes, then stops it cleanly.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<(), AppError> {
    let running = start(config).await?;
    shutdown.await;
    running.stop().await;
    Ok(())
}

/// Makes sure a remote sandbox knows every agent's bot (it may have been started with another
/// configuration), registering the missing ones through its control API.
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
