//! The actor tree (ractor). Nothing outside this module spawns actors.
//!
//! ```text
//! Supervisor (root)               shared services: Store (sled), one LLM Pool per backend
//! └── Agent "Ada"                 one per agent: routes messages, supervises its children
//!     ├── Gateway                 the agent's serenity client; restarted with backoff
//!     ├── Conversation #1         one per conversation key, spawned on first message
//!     └── Conversation #2
//! ```
//!
//! - [`supervisor`]: starts the agents, restarts a failed one with backoff.
//! - [`agent`]: decides what its agent answers, feeds conversations, restarts failed children.
//! - [`gateway`]: owns one bot's gateway connection and forwards its events to the agent.
//! - [`conversation`]: answers one conversation's messages in ID order, one turn at a time.

pub mod agent;
pub mod conversation;
pub mod gateway;
pub mod supervisor;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::config::{AgentConfig, ConversationSettings};
use crate::llm::pool::Pool;
use crate::llm::Backend;
use crate::secret::Secret;
use crate::store::Store;

/// Live counts the actors keep up to date (read by tests and, later, metrics).
#[derive(Debug, Default)]
pub struct Gauges {
    /// Conversation actors alive.
    pub active_conversations: AtomicUsize,
}

/// Decrements a gauge when dropped, whatever way its owner ends (stop, failure, kill).
#[derive(Debug)]
pub struct GaugeGuard(Arc<Gauges>);

impl GaugeGuard {
    /// Counts one more active conversation until dropped.
    pub fn conversation(gauges: &Arc<Gauges>) -> Self {
        gauges.active_conversations.fetch_add(1, Ordering::SeqCst);
        Self(gauges.clone())
    }
}

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.0.active_conversations.fetch_sub(1, Ordering::SeqCst);
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
    /// REST/gateway base replacing `https://discord.com` (the sandbox's URL), or `None` for Discord.
    pub api_base: Option<String>,
    /// The backend's worker pool (shared by every agent on that backend).
    pub pool: Arc<Pool>,
    /// The store.
    pub store: Store,
    /// Conversation limits.
    pub conversations: ConversationSettings,
    /// Live counts.
    pub gauges: Arc<Gauges>,
}

/// Shared handle to an agent's spec.
pub type SharedSpec = Arc<AgentSpec>;
