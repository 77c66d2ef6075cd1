//! LLM backends: the prompt troupe builds, the backends that complete it, and the streaming
//! parsers for providers' server-sent events.
//!
//! - [`echo`]: the offline, deterministic backend.
//! - [`http`]: OpenAI-compatible and Anthropic backends over streamed HTTP, with timeouts.
//! - [`command`]: CLI agents run as child processes in their own process group.
//! - [`progressive`]: the progressive token strategy (regenerate or continue a cut reply).
//! - [`wire`]: request bodies of both APIs (pure).
//! - [`budget`]: token estimates and trimming a prompt to the model's context window (pure).
//! - [`error`]: [`LlmError`], typed failures with a short `kind()` label.
//! - [`stream`]: completions, finish reasons, usage and typed stream errors.
//! - [`pool`]: bounded, fair concurrency per backend.
//! - [`sse`]: incremental server-sent-events parsing.
//! - [`openai_stream`], [`anthropic_stream`]: provider chunk formats folded into a completion.

pub mod anthropic_stream;
pub mod budget;
pub mod command;
pub mod echo;
pub mod error;
pub mod http;
pub mod openai_stream;
pub mod pool;
pub mod progressive;
pub mod sse;
pub mod stream;
pub mod wire;

use std::fmt;
use std::sync::Arc;

pub use self::error::{LlmError, TimeoutPhase};
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
    /// What was said (with what the model is told about the message's files).
    pub content: String,
    /// Images sent with the turn to a backend with `vision = true` ([`crate::attach`]).
    pub images: Vec<PromptImage>,
}

/// An image sent to the model with a turn: fetched by troupe and sent inline (base64), since
/// Discord's CDN URLs expire and the sandbox's are local.
#[derive(Clone, PartialEq)]
pub struct PromptImage {
    /// `image/png`, `image/jpeg`, `image/webp` or `image/gif`, from the bytes.
    pub media_type: String,
    /// The bytes, base64 (standard alphabet, padded).
    pub base64: String,
}

impl fmt::Debug for PromptImage {
    /// The type and length only: a prompt in a log must not carry megabytes of base64.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "PromptImage({}, {} base64 chars)",
            self.media_type,
            self.base64.len()
        )
    }
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

/// A backend could not be built (e.g. its API key is unreadable). The text names the backend
/// and where the key should come from, never the key.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct SetupError(pub String);

/// A configured backend. Cheap to clone.
#[derive(Clone)]
pub enum Backend {
    /// Offline echo.
    Echo(echo::Echo),
    /// OpenAI-compatible or Anthropic over HTTP.
    Http(Arc<http::HttpBackend>),
    /// A CLI agent.
    Command(Arc<command::CommandBackend>),
}

impl fmt::Debug for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Backend::Echo(_) => f.write_str("Backend::Echo"),
            Backend::Http(h) => write!(f, "Backend::Http({h:?})"),
            Backend::Command(c) => write!(f, "Backend::Command({c:?})"),
        }
    }
}

impl Backend {
    /// Builds the backend a configuration describes, reading its API key.
    pub fn from_config(config: &BackendConfig) -> Result<Self, SetupError> {
        Ok(match &config.provider {
            Provider::Echo(settings) => Backend::Echo(echo::Echo::new(settings.clone())),
            Provider::OpenAi(s) => Backend::Http(Arc::new(http::HttpBackend::new(
                &config.name,
                wire::Dialect::OpenAi,
                s,
            )?)),
            Provider::Anthropic(s) => Backend::Http(Arc::new(http::HttpBackend::new(
                &config.name,
                wire::Dialect::Anthropic,
                s,
            )?)),
            Provider::Command(s) => Backend::Command(Arc::new(command::CommandBackend::new(&config.name, s))),
        })
    }

    /// The model's context window, for backends that have one (HTTP); echo and command backends
    /// manage their own.
    pub fn window(&self) -> Option<budget::Window> {
        match self {
            Backend::Http(h) => Some(h.window()),
            Backend::Echo(_) | Backend::Command(_) => None,
        }
    }

    /// True when the backend counts its own requests and their usage (`troupe_llm_requests_total`,
    /// `troupe_llm_tokens_total`): an HTTP backend counts each HTTP request, ladder steps and
    /// retries included. Other backends are counted once per call by the turn.
    pub fn counts_its_requests(&self) -> bool {
        matches!(self, Backend::Http(_))
    }

    /// Completes a prompt.
    pub async fn complete(&self, prompt: &Prompt) -> Result<Completion, LlmError> {
        self.complete_streaming(prompt, None).await
    }

    /// Completes a prompt, publishing the reply's text so far to `progress` while it is written
    /// (HTTP backends, token by token; echo and command backends, once complete).
    pub async fn complete_streaming(
        &self,
        prompt: &Prompt,
        progress: http::Progress<'_>,
    ) -> Result<Completion, LlmError> {
        let result = match self {
            Backend::Echo(e) => e.complete_async(prompt).await,
            Backend::Http(h) => return h.complete_streaming(prompt, progress).await,
            Backend::Command(c) => c.complete(prompt).await,
        };
        if let (Some(tx), Ok(c)) = (progress, &result) {
            tx.send_replace(c.text.clone());
        }
        result
    }
}
