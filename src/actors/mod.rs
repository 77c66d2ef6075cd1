//! The actor tree (ractor). Nothing outside this module spawns actors.
//!
//! ```text
//! Supervisor (root)               shared services: Store (sled), one LLM Pool per backend
//! └── Agent "Ada"                 one per agent: routes messages, owns its conversations
//!     └── Gateway                 the agent's serenity client; restarted with backoff
//! ```
//!
//! A conversation is not an actor: its state is a struct in its agent's [`registry`], started
//! on the conversation's first message and dropped when it passivates; a task runs only while
//! one of its turns runs. Its timers and turn ends come back to the agent as
//! `AgentMsg::Conversation` events tagged with its generation.
//!
//! - [`supervisor`]: starts the agents, restarts a failed one with backoff.
//! - [`agent`]: decides what its agent answers, feeds its conversations, replaces a failed one,
//!   restarts its gateway.
//! - [`gateway`]: owns one bot's gateway connection and forwards its events to the agent.
//! - [`conversation`]: answers one conversation's messages in ID order, one turn at a time;
//!   defers and retries failed answers, gives up visibly.
//! - [`turn`]: one turn's steps: prompt, breaker, pool, model, memory, delivery, records.
//! - [`streaming`]: a streamed reply's Discord calls while the model writes it.
//! - [`typing`]: a turn's typing indicator, sent only when the reply is not ready after a delay.
//! - [`registry`]: the agent's conversations by key and generation, their restarts and
//!   quarantines.
//! - [`replay`]: reads an agent's missed messages (startup and after a re-identify).
//! - [`trim`]: gives passivated conversations' freed memory back to the system (glibc's trim, or
//!   what the binary's allocator needs).
//! - [`cast`]: the troupe's agents' Discord IDs and names, for mentions between agents.
//! - [`roster`]: the cast as slash commands see it, and the running agents (for `/forget-me`).

pub mod agent;
pub mod cast;
pub mod conversation;
pub mod gateway;
pub mod registry;
pub mod replay;
pub mod roster;
pub mod streaming;
pub mod supervisor;
pub mod trim;
pub mod turn;
pub mod typing;

pub use cast::Cast;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::config::{AgentConfig, ConversationSettings};
use crate::llm::pool::Pool;
use crate::llm::Backend;
use crate::secret::Secret;
use crate::store::Store;

/// Live counts the actors keep up to date (read by tests, exported as metrics).
#[derive(Debug, Default)]
pub struct Gauges {
    /// Conversations live (not passivated).
    pub active_conversations: AtomicUsize,
}

/// Decrements a gauge when dropped, whatever way its owner ends (stop, failure, kill).
#[derive(Debug)]
pub struct GaugeGuard(Arc<Gauges>);

impl GaugeGuard {
    /// Counts one more active conversation until dropped.
    pub fn conversation(gauges: &Arc<Gauges>) -> Self {
        gauges.active_conversations.fetch_add(1, Ordering::SeqCst);
        crate::ops::telemetry::active_conversations_changed(1.0);
        Self(gauges.clone())
    }
}

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.0.active_conversations.fetch_sub(1, Ordering::SeqCst);
        crate::ops::telemetry::active_conversations_changed(-1.0);
    }
}

/// Everything needed to run one agent; shared read-only by its actors.
#[derive(Debug)]
pub struct AgentSpec {
    /// Its configuration.
    pub config: AgentConfig,
    /// Its LLM backend.
    pub backend: Backend,
    /// Its bot token.
    pub token: Secret,
    /// How its REST requests reach `https://discord.com` (directly, or through the sandbox).
    pub route: crate::discord::Route,
    /// The backend's worker pool (shared by every agent on that backend).
    pub pool: Arc<Pool>,
    /// The store.
    pub store: Store,
    /// Conversation limits.
    pub conversations: ConversationSettings,
    /// Live counts.
    pub gauges: Arc<Gauges>,
    /// Chain protocol, bot delay, per-user limits.
    pub discord: crate::config::DiscordSettings,
    /// The bot-DMs channel (name or ID), if the deployment has one.
    pub bot_dms_channel: Option<String>,
    /// Every agent's IDs.
    pub cast: Arc<Cast>,
    /// Answers to bots and webhooks outside the cast, per channel (shared by every agent).
    pub bot_exchanges: Arc<std::sync::Mutex<crate::loopguard::BotExchangeGuard>>,
    /// Backlog replay bounds.
    pub backlog: crate::backlog::Bounds,
    /// What this run does (monitor, backlog only, show/clear backlog; dry runs; scopes).
    pub run: crate::config::RunOptions,
    /// Where agents report the end of their replay.
    pub tracker: Arc<replay::ReplayTracker>,
    /// What `/readiness` reports: set the agent's gateway and breaker states here.
    pub health: Arc<crate::ops::health::Health>,
    /// Requests a clean exit with a code (a breaker tripped with `on_trip = "exit"`).
    pub exits: crate::ops::exit::ExitRequests,
    /// Retries of failed answers and the give-up policy.
    pub delivery: crate::config::delivery::DeliverySettings,
    /// The agent's circuit breaker over its turns: `allow` before asking the backend,
    /// `record_success` / `record_failure` after (it reports to readiness and requests the exit).
    pub breaker: Arc<crate::ops::breakers::AgentBreaker>,
    /// The cast and the running agents, for slash commands.
    pub roster: Arc<roster::Roster>,
    /// Files on messages: limits, whether the backend sees images, the downloader.
    pub attach: crate::attach::AgentAttach,
}

/// Shared handle to an agent's spec.
pub type SharedSpec = Arc<AgentSpec>;
