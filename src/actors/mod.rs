//! The actor tree (ractor). Nothing outside this module spawns actors.
//!
//! ```text
//! Supervisor (root)
//! └── Agent "Ada"            one per agent: owns the gateway connection, routes messages
//!     ├── Conversation #1    one per conversation key, spawned on first message
//!     └── Conversation #2
//! ```
//!
//! - [`supervisor`]: starts the agents, restarts a failed one with backoff.
//! - [`agent`]: connects the agent's bot, decides what it answers, feeds conversations.
//! - [`conversation`]: answers one conversation's messages in ID order, one turn at a time.

pub mod agent;
pub mod conversation;
pub mod supervisor;

use std::sync::Arc;

use crate::config::AgentConfig;
use crate::llm::Backend;
use crate::secret::Secret;

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
}

/// Shared handle to an agent's spec.
pub type SharedSpec = Arc<AgentSpec>;
