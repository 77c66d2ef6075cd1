//! `agents.toml` as written: serde structs that mirror the file, before validation. Settings
//! written as one of a few words (`mode`, `provider`, `memory`, ...) stay `Spanned<String>` here
//! and become enums in `choice`, so that a wrong word is one reported problem among all the
//! others rather than the end of parsing.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// `"sandbox"` (default) or `"live"`.
    pub mode: Option<Spanned<String>>,
    /// The sandbox's world and address.
    #[serde(default)]
    pub sandbox: RawSandbox,
    /// Discord-wide settings.
    #[serde(default)]
    pub discord: RawDiscord,
    /// Where state lives.
    #[serde(default)]
    pub store: RawStore,
    /// Conversations' limits.
    #[serde(default)]
    pub conversations: RawConversations,
    /// Backlog replay bounds.
    #[serde(default)]
    pub backlog: RawBacklog,
    /// The operations HTTP server.
    #[serde(default)]
    pub http: RawHttp,
    /// Circuit breakers of agents' turns (defaults for every agent).
    #[serde(default)]
    pub breaker: RawBreaker,
    /// System limits (load average, memory).
    #[serde(default)]
    pub limits: RawLimits,
    /// Crash-loop back-off.
    #[serde(default)]
    pub restarts: RawRestarts,
    /// Retries of failed answers and the give-up policy.
    #[serde(default)]
    pub delivery: RawDelivery,
    /// Token budgets per user and per agent.
    #[serde(default)]
    pub budgets: RawBudgets,
    /// The cast split across processes.
    #[serde(default)]
    pub cells: RawCells,
    /// Files on messages and long replies as files.
    #[serde(default)]
    pub attachments: RawAttachments,
    /// LLM backends by name.
    #[serde(default)]
    pub backends: BTreeMap<String, Spanned<RawBackend>>,
    /// The cast.
    #[serde(default)]
    pub agents: Vec<RawAgent>,
}

/// `[sandbox]`: the world as written (`sandbox::spec::WorldSpec` once validated), names with
/// their places in the file so problems can name the line.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSandbox {
    /// Address of the in-process sandbox.
    pub listen: Option<String>,
    /// A sandbox running elsewhere.
    pub url: Option<String>,
    /// Guilds and their channels (default: one guild with #general, #random, #bot-dms).
    pub guilds: Option<Vec<RawGuild>>,
    /// Human users (default: alice and bob).
    pub humans: Option<Vec<Spanned<String>>>,
    /// Bot users that are not agents.
    #[serde(default)]
    pub bots: Vec<RawBot>,
    /// Gateway heartbeat interval, in milliseconds.
    pub heartbeat_interval_ms: Option<u64>,
}

/// `[[sandbox.guilds]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGuild {
    /// Guild name.
    pub name: String,
    /// Its text channels.
    #[serde(default)]
    pub channels: Vec<RawChannel>,
}

/// A channel of a sandbox guild.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawChannel {
    /// Channel name.
    pub name: Spanned<String>,
    /// Slowmode, in seconds.
    #[serde(default)]
    pub slowmode: u32,
    /// Users denied View Channel.
    #[serde(default)]
    pub hidden_from: Vec<Spanned<String>>,
    /// Users denied Send Messages.
    #[serde(default)]
    pub read_only_for: Vec<Spanned<String>>,
}

/// `[[sandbox.bots]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBot {
    /// Bot user name.
    pub name: Spanned<String>,
    /// Its token (default `sandbox.<name>`).
    pub token: Option<String>,
    /// Privileged intents granted (default MESSAGE_CONTENT and GUILD_MEMBERS).
    pub privileged_intents: Option<Vec<crate::sandbox::spec::PrivilegedIntent>>,
}

/// `[discord]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDiscord {
    /// The channel where agents talk to each other (name in the sandbox, or ID).
    pub bot_dms_channel: Option<String>,
    /// Live mode: a Discord-compatible API base instead of `https://discord.com` (a proxy, or a
    /// sandbox started with `troupe sandbox`).
    pub api_url: Option<Spanned<String>>,
    /// Longest agent chain allowed (default 4).
    pub max_chain: Option<Spanned<i64>>,
    /// Text after `acl:N • ` in every footer.
    pub tagline: Option<String>,
    /// Notice carried by the reply at exactly `max_chain`.
    pub courtesy: Option<String>,
    /// Delay before answering a message written by a bot, in milliseconds (default 17000).
    pub bot_delay_ms: Option<u64>,
    /// Random extra delay, 0 to this many milliseconds (default 3000).
    pub bot_delay_jitter_ms: Option<u64>,
    /// Milliseconds a turn waits for its reply before showing the typing indicator (default
    /// 500; 0 shows it at once).
    pub typing_delay_ms: Option<Spanned<i64>>,
    /// Per-user limit: messages a user may send an agent within `user_rate_window_secs`
    /// (0 turns it off; default 20).
    pub user_rate_limit: Option<Spanned<i64>>,
    /// Window of `user_rate_limit` (default 60).
    pub user_rate_window_secs: Option<Spanned<i64>>,
    /// The one polite notice a user gets when over the limit.
    pub rate_notice: Option<String>,
    /// Answers the agents give bots and webhooks outside the cast, per channel within
    /// `bot_reply_window_secs` (default 8).
    pub bot_replies_per_window: Option<Spanned<i64>>,
    /// Window of `bot_replies_per_window` (default 600).
    pub bot_reply_window_secs: Option<Spanned<i64>>,
    /// Where each bot registers its slash commands: `guild`, `global` or `off` (default
    /// `guild`).
    pub commands: Option<Spanned<String>>,
}

/// `[http]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHttp {
    /// Address of `/liveness`, `/readiness` and `/metrics`.
    pub listen: Option<Spanned<String>>,
}

/// `[breaker]`, and an agent's `breaker = { ... }` override.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBreaker {
    /// Consecutive failed turns that trip the breaker.
    pub max_failures: Option<Spanned<i64>>,
    /// `"exit"` (default) or `"isolate"`.
    pub on_trip: Option<Spanned<String>>,
    /// `"isolate"`: seconds before a probe turn.
    pub cooldown_secs: Option<Spanned<i64>>,
}

/// `[limits]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    /// Exit when the 1-minute load average is at or above this.
    pub max_load_average: Option<Spanned<f64>>,
    /// Exit when resident memory reaches this many MiB.
    pub max_rss_mb: Option<Spanned<i64>>,
    /// Seconds between checks.
    pub check_interval_secs: Option<Spanned<f64>>,
}

/// `[restarts]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRestarts {
    /// Starts within this many seconds count.
    pub window_secs: Option<Spanned<i64>>,
    /// Starts in the window that cost no wait.
    pub free_starts: Option<Spanned<i64>>,
    /// The first wait, in milliseconds.
    pub backoff_initial_ms: Option<Spanned<i64>>,
    /// The longest wait, in milliseconds.
    pub backoff_max_ms: Option<Spanned<i64>>,
}

/// `[store]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStore {
    /// Directory of the sled store.
    pub path: Option<String>,
    /// Days the per-message records (chain lengths, answered messages) are kept (default 30).
    pub retention_days: Option<Spanned<i64>>,
    /// MiB of records sled may cache in memory (default 64).
    pub cache_mib: Option<Spanned<i64>>,
}

/// `[backlog]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBacklog {
    /// Messages older than this many seconds are not replayed (default 7 days).
    pub max_age_secs: Option<Spanned<i64>>,
    /// At most this many (the newest) missed messages are replayed per channel (default 1000).
    pub max_messages: Option<Spanned<i64>>,
}

/// `[conversations]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConversations {
    /// Seconds without messages after which a conversation passivates (its memory stays in
    /// the store).
    pub idle_secs: Option<Spanned<i64>>,
    /// Messages a conversation holds in memory while busy; more wait in the store.
    pub queue_limit: Option<Spanned<i64>>,
    /// Restarts of one failed conversation allowed within `restart_window_secs`.
    pub restart_limit: Option<Spanned<i64>>,
    /// Window for `restart_limit`.
    pub restart_window_secs: Option<Spanned<i64>>,
    /// On shutdown, seconds in-flight turns get to finish.
    pub shutdown_grace_secs: Option<Spanned<i64>>,
    /// Milliseconds a turn waits after a human's message so out-of-order events are sorted.
    pub reorder_ms: Option<Spanned<i64>>,
}

/// `[delivery]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDelivery {
    /// Seconds a message may stay pending after its first failure before it is given up.
    pub give_up_after_secs: Option<Spanned<i64>>,
    /// First wait before retrying a failed answer, in milliseconds.
    pub retry_initial_ms: Option<Spanned<i64>>,
    /// Longest wait between retries, in seconds (a provider's `retry-after` may ask for more).
    pub retry_max_secs: Option<Spanned<i64>>,
    /// Seconds one delivery keeps retrying Discord's 429s, 5xx and connection errors.
    pub discord_retry_secs: Option<Spanned<i64>>,
    /// The notice sent when an answer is given up (`""`: silence).
    pub failure_notice: Option<String>,
    /// The notice sent when a message waited for room too long (`""`: silence).
    pub busy_notice: Option<String>,
}

/// `[attachments]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAttachments {
    /// Largest image sent to a model, in bytes.
    pub max_image_bytes: Option<Spanned<i64>>,
    /// Most images sent with one turn.
    pub max_images: Option<Spanned<i64>>,
    /// Most bytes fetched for one turn.
    pub max_total_bytes: Option<Spanned<i64>>,
    /// Most characters of text files inlined into one turn.
    pub text_chars: Option<Spanned<i64>>,
    /// Seconds one file's download may take.
    pub timeout_secs: Option<Spanned<i64>>,
    /// `"split"` (default) or `"file"`.
    pub long_replies: Option<Spanned<String>>,
    /// Characters of code above which `long_replies = "file"` sends a file.
    pub long_reply_chars: Option<Spanned<i64>>,
    /// Most images of earlier turns sent again with a turn.
    pub history_images: Option<Spanned<i64>>,
}

/// `[budgets]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBudgets {
    /// `"daily"` (default), `"monthly"` or `"rolling"`.
    pub window: Option<Spanned<String>>,
    /// A rolling window's length, in hours.
    pub window_hours: Option<Spanned<i64>>,
    /// Most tokens one user may spend in the window.
    pub user_tokens: Option<Spanned<i64>>,
    /// `"agent"` (default: a user's spending with each agent counts apart) or `"troupe"`.
    pub user_scope: Option<Spanned<String>>,
    /// Most tokens an agent may spend in the window.
    pub agent_tokens: Option<Spanned<i64>>,
    /// Sent once per window to a user who is not answered for budget (`""`: silence).
    pub notice: Option<String>,
}

/// An agent's `budgets = { ... }`: its own limits and notice over `[budgets]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAgentBudgets {
    /// Most tokens one user may spend with this agent in the window.
    pub user_tokens: Option<Spanned<i64>>,
    /// Most tokens this agent may spend in the window.
    pub agent_tokens: Option<Spanned<i64>>,
    /// This agent's notice.
    pub notice: Option<String>,
}

/// `[backends.NAME]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBackend {
    /// Which kind of backend.
    pub provider: Spanned<String>,
    /// Most requests running at once against this backend.
    pub max_concurrency: Option<Spanned<i64>>,
    /// Most requests waiting for a free slot; more are refused (and the answer deferred).
    pub max_queue: Option<Spanned<i64>>,
    /// echo: `"last"` (default) echoes the new message(s); `"prompt"` replies with the whole
    /// prompt (system prompt and every turn), which lets tests see what the model was given.
    pub reply: Option<Spanned<String>>,
    /// echo: milliseconds to wait before answering, to simulate a slow model.
    pub delay_ms: Option<u64>,
    /// echo: panic when the message contains this text (fault injection for supervision tests).
    pub panic_on: Option<String>,
    /// HTTP providers: the API's base URL (OpenAI-compatible: up to `/v1`; Anthropic: the host).
    pub base_url: Option<Spanned<String>>,
    /// HTTP providers: the model name.
    pub model: Option<Spanned<String>>,
    /// HTTP providers: environment variable holding the API key.
    pub api_key_env: Option<Spanned<String>>,
    /// HTTP providers: file holding the API key.
    pub api_key_file: Option<Spanned<String>>,
    /// HTTP providers: the progressive token limits.
    pub tokens: Option<Spanned<RawTokens>>,
    /// HTTP providers: `"regenerate"` (default) or `"continue"` a reply cut by the token limit.
    pub on_truncation: Option<Spanned<String>>,
    /// HTTP providers: connect, first-token and total timeouts.
    pub timeouts: Option<Spanned<RawTimeouts>>,
    /// HTTP providers: attempts and backoff for transient failures.
    pub retries: Option<Spanned<RawRetries>>,
    /// anthropic: the `anthropic-version` header.
    pub anthropic_version: Option<Spanned<String>>,
    /// OpenAI-compatible: ask for a usage chunk with `stream_options.include_usage` (default true).
    pub stream_usage: Option<Spanned<bool>>,
    /// OpenAI-compatible: `"max_tokens"` (default) or `"max_completion_tokens"` (OpenAI's reasoning models).
    pub max_tokens_param: Option<Spanned<String>>,
    /// HTTP providers: sampling temperature.
    pub temperature: Option<Spanned<f64>>,
    /// HTTP providers: the model's context window in tokens (prompt and reply together).
    pub context_tokens: Option<Spanned<i64>>,
    /// HTTP providers: the model takes images (default false).
    pub vision: Option<Spanned<bool>>,
    /// command: the program to run.
    pub program: Option<Spanned<String>>,
    /// command: its arguments; `{prompt}` in an argument is replaced by the prompt, else the prompt goes to stdin.
    pub args: Option<Spanned<Vec<String>>>,
    /// command: extra environment variables.
    pub env: Option<Spanned<BTreeMap<String, String>>>,
    /// command: working directory.
    pub cwd: Option<Spanned<String>>,
    /// command: seconds after which the whole process group is killed.
    pub timeout_secs: Option<Spanned<f64>>,
    /// command: most bytes of output read; the rest is cut.
    pub max_output_bytes: Option<Spanned<i64>>,
    /// command: output containing any of these texts is a failure, whatever the exit status.
    pub error_patterns: Option<Spanned<Vec<String>>>,
}

/// `tokens = { from, until, step }` of a backend.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTokens {
    /// The first request's token limit.
    pub from: Option<Spanned<i64>>,
    /// The largest limit (regenerate) or total budget (continue).
    pub until: Option<Spanned<i64>>,
    /// How much each retry adds.
    pub step: Option<Spanned<i64>>,
}

/// `timeouts = { connect_secs, first_token_secs, total_secs }` of a backend.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTimeouts {
    /// Establishing the connection.
    pub connect_secs: Option<Spanned<f64>>,
    /// From sending the request to the first token.
    pub first_token_secs: Option<Spanned<f64>>,
    /// The whole request, streaming included.
    pub total_secs: Option<Spanned<f64>>,
}

/// `retries = { max_attempts, base_delay_ms, max_delay_ms }` of a backend.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRetries {
    /// Attempts per request, the first included.
    pub max_attempts: Option<Spanned<i64>>,
    /// Backoff before the second attempt; doubles each time.
    pub base_delay_ms: Option<Spanned<i64>>,
    /// Longest backoff, and longest `retry-after` honoured.
    pub max_delay_ms: Option<Spanned<i64>>,
}

/// `[cells]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCells {
    /// How many troupe processes (cells) share the cast (default 1).
    pub count: Option<Spanned<i64>>,
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
    /// Most turns remembered per conversation.
    pub memory_turns: Option<Spanned<i64>>,
    /// Most characters remembered per conversation.
    pub memory_chars: Option<Spanned<i64>>,
    /// Live mode: environment variable holding the bot token.
    pub token_env: Option<Spanned<String>>,
    /// Live mode: file holding the bot token.
    pub token_file: Option<Spanned<String>>,
    /// When the agent answers.
    #[serde(default)]
    pub triggers: RawTriggers,
    /// Speak through a webhook with the persona's name and avatar instead of the bot user.
    pub webhook: Option<RawWebhook>,
    /// Avatar shown on webhook messages.
    pub avatar_url: Option<String>,
    /// DM channel IDs to replay even if troupe has not seen them yet.
    #[serde(default)]
    pub dm_channels: Vec<Spanned<String>>,
    /// Overrides of `[breaker]` for this agent.
    pub breaker: Option<Spanned<RawBreaker>>,
    /// Overrides `[delivery] failure_notice` for this agent.
    pub failure_notice: Option<String>,
    /// Overrides `[delivery] busy_notice` for this agent.
    pub busy_notice: Option<String>,
    /// Overrides of `[budgets]` for this agent.
    pub budgets: Option<Spanned<RawAgentBudgets>>,
    /// Overrides of `[attachments]` for this agent (any of its keys).
    pub attachments: Option<Spanned<RawAttachments>>,
    /// The cell that runs this agent (default: a hash of its name).
    pub cell: Option<Spanned<i64>>,
    /// Gateway shards: `"auto"` or a count (default 1).
    pub shards: Option<Spanned<toml::Value>>,
    /// Stream replies: post the first sentence, then edit the message as the model writes
    /// (default false).
    pub stream: Option<bool>,
}

/// `[agents.webhook]`: an existing webhook (`id` and `token_env`/`token_file`), or one troupe
/// creates (`channel`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWebhook {
    /// ID of an existing webhook.
    pub id: Option<Spanned<String>>,
    /// Environment variable holding the webhook's token.
    pub token_env: Option<String>,
    /// File holding the webhook's token.
    pub token_file: Option<String>,
    /// Channel (name or ID) where troupe creates a webhook for this agent at startup.
    pub channel: Option<String>,
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
    /// Treat `@everyone` / `@here` as addressing the agent (default false).
    #[serde(default)]
    pub everyone: bool,
}

impl Default for RawTriggers {
    fn default() -> Self {
        Self {
            mention: true,
            dm: true,
            reply: true,
            channels: Vec::new(),
            everyone: false,
        }
    }
}

fn yes() -> bool {
    true
}
