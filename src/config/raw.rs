//! `agents.toml` as written: serde structs that mirror the file, before validation.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

use crate::sandbox::spec::WorldSpec;

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// `"sandbox"` (default) or `"live"`.
    pub mode: Option<Spanned<String>>,
    /// The sandbox's world and address.
    #[serde(default)]
    pub sandbox: WorldSpec,
    /// Discord-wide settings.
    #[serde(default)]
    pub discord: RawDiscord,
    /// Where state lives.
    #[serde(default)]
    pub store: RawStore,
    /// LLM backends by name.
    #[serde(default)]
    pub backends: BTreeMap<String, Spanned<RawBackend>>,
    /// The cast.
    #[serde(default)]
    pub agents: Vec<RawAgent>,
}

/// `[discord]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDiscord {
    /// The channel where agents talk to each other (name in the sandbox, or ID).
    pub bot_dms_channel: Option<String>,
}

/// `[store]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStore {
    /// Directory of the sled store.
    pub path: Option<String>,
}

/// `[backends.NAME]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBackend {
    /// Which kind of backend.
    pub provider: Spanned<String>,
    /// Most requests running at once against this backend.
    pub max_concurrency: Option<Spanned<i64>>,
    /// Most requests waiting for a free slot; more are refused.
    pub max_queue: Option<Spanned<i64>>,
    /// echo: `"last"` (default) echoes the new message(s); `"prompt"` replies with the whole
    /// prompt (system prompt and every turn), which lets tests see what the model was given.
    pub reply: Option<Spanned<String>>,
    /// echo: milliseconds to wait before answering, to simulate a slow model.
    pub delay_ms: Option<u64>,
    /// echo: panic when the message contains this text (fault injection for supervision tests).
    pub panic_on: Option<String>,
}

/// `[[agents]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAgent {
    /// Persona name (also the sandbox bot's name).
    pub name: Spanned<String>,
    /// Name of a `[backends.NAME]` table.
    pub backend: Spanned<String>,
    /// System prompt; `{username}`, `{agent}` and `{date}` are filled in.
    #[serde(default)]
    pub system_prompt: String,
    /// `"channel"` (default), `"channel-user"` or `"user"`.
    pub memory: Option<Spanned<String>>,
    /// Live mode: environment variable holding the bot token.
    pub token_env: Option<Spanned<String>>,
    /// Live mode: file holding the bot token.
    pub token_file: Option<Spanned<String>>,
    /// When the agent answers.
    #[serde(default)]
    pub triggers: RawTriggers,
}

/// `[agents.triggers]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTriggers {
    /// Answer messages that mention the agent.
    #[serde(default = "yes")]
    pub mention: bool,
    /// Answer direct messages.
    #[serde(default = "yes")]
    pub dm: bool,
    /// Answer replies to the agent's messages.
    #[serde(default = "yes")]
    pub reply: bool,
    /// Channels (names or IDs) where the agent answers every message.
    #[serde(default)]
    pub channels: Vec<String>,
}

impl Default for RawTriggers {
    fn default() -> Self {
        Self {
            mention: true,
            dm: true,
            reply: true,
            channels: Vec::new(),
        }
    }
}

fn yes() -> bool {
    true
}
