//! LLM backends: the prompt troupe builds, the backends that complete it, and the streaming
//! parsers for providers' server-sent events.
//!
//! - [`echo`]: the offline, deterministic backend.
//! - [`stream`]: completions, finish reasons, usage and typed stream errors.
//! - [`sse`]: incremental server-sent-events parsing.
//! - [`openai_stream`], [`anthropic_stream`]: provider chunk formats folded into a completion.

pub mod anthropic_stream;
pub mod echo;
pub mod openai_stream;
pub mod sse;
pub mod stream;

use std::fmt;

use self::stream::Completion;
use crate::config::{BackendConfig, Provider};

/// Who spoke a turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A person or another agent talking to this agent.
    User,
    /// This agent.
    Assistant,
}

/// One turn of a conversation as the model sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct PromptTurn {
    /// Who spoke.
    pub role: Role,
    /// Display name of the speaker.
    pub author: String,
    /// What was said.
    pub content: String,
}

/// Everything a backend needs for one completion.
#[derive(Debug, Clone, PartialEq)]
pub struct Prompt {
    /// The agent's name.
    pub agent: String,
    /// System prompt with placeholders filled in.
    pub system: String,
    /// Conversation so far, oldest first, ending with the turn(s) to answer.
    pub turns: Vec<PromptTurn>,
}

/// Why a completion failed. Typed so breakers and metrics can tell causes apart; the text is
/// for logs only and never shown in Discord.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LlmError {
    /// The backend failed for a reason of its own.
    #[error("backend failure: {0}")]
    Backend(String),
}

/// A configured backend.
#[derive(Clone)]
pub enum Backend {
    /// Offline echo.
    Echo(echo::Echo),
}

impl fmt::Debug for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Backend::Echo(_) => f.write_str("Backend::Echo"),
        }
    }
}

impl Backend {
    /// Builds the backend a configuration describes.
    pub fn from_config(config: &BackendConfig) -> Self {
        match &config.provider {
            Provider::Echo(settings) => Backend::Echo(echo::Echo::new(settings.clone())),
        }
    }

    /// Completes a prompt.
    pub async fn complete(&self, prompt: &Prompt) -> Result<Completion, LlmError> {
        match self {
            Backend::Echo(e) => e.complete_async(prompt).await,
        }
    }
}
