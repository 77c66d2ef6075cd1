//! Configuration: `agents.toml` is parsed into [`raw`] structs that mirror the file, then
//! validated into [`Config`], the types the rest of troupe trusts. Every problem is reported with
//! the file, line and field, and all problems are reported at once.

pub mod backend;
pub mod delivery;
pub mod error;
pub mod operations;
pub mod raw;
pub mod resolved;
mod sandbox;
pub mod source;

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::path::PathBuf;

use toml::Spanned;

use self::backend::Report;
pub use self::backend::{
    ApiKeySource, CommandSettings, HttpSettings, MaxTokensParam, OnTruncation, RetrySettings, Timeouts, TokenLadder,
};
use self::error::{closest, suggest_field};
pub use self::error::{ConfigError, ConfigErrors};
use self::raw::{RawAgent, RawConfig};
use crate::sandbox::spec::{sandbox_token, WorldSpec};
use crate::secret::Secret;

/// Where the in-process sandbox listens unless told otherwise.
pub const DEFAULT_SANDBOX_LISTEN: &str = "127.0.0.1:8686";

/// Validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where it was read from (for messages).
    pub source: String,
    /// Sandbox or live Discord.
    pub mode: Mode,
    /// The sandbox world and how to reach it.
    pub sandbox: SandboxSettings,
    /// The bot-DMs channel, if the deployment has one.
    pub bot_dms_channel: Option<String>,
    /// The chain protocol, bot delay and per-user limits.
    pub discord: DiscordSettings,
    /// Directory of the sled store.
    pub store_path: PathBuf,
    /// How long per-message records stay in the store (`[store] retention_days`).
    pub store_retention: std::time::Duration,
    /// Conversation actors' limits.
    pub conversations: ConversationSettings,
    /// Backlog replay bounds.
    pub backlog: crate::backlog::Bounds,
    /// How this run behaves (set from the command line).
    pub run: RunOptions,
    /// Live mode: a Discord-compatible API base replacing `https://discord.com`.
    pub discord_api_url: Option<String>,
    /// Address of the operations HTTP server (`[http] listen`).
    pub http_listen: SocketAddr,
    /// `[breaker]`: every agent's breaker unless it overrides it.
    pub breaker: crate::breaker::BreakerSettings,
    /// `[limits]`: when the system watchdog exits.
    pub limits: crate::ops::system::SystemLimits,
    /// `[restarts]`: the crash-loop back-off.
    pub restarts: crate::ops::restarts::RestartPolicy,
    /// `[delivery]`: retries of failed answers and the give-up policy (notices are per agent).
    pub delivery: delivery::DeliverySettings,
    /// Backends by name.
    pub backends: BTreeMap<String, BackendConfig>,
    /// The cast, in file order.
    pub agents: Vec<AgentConfig>,
}

/// Which Discord troupe talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The local sandbox (default).
    Sandbox,
    /// Discord itself.
    Live,
}

/// What a run does: monitor in real time (default) or only handle the backlog, and whether
/// it is a dry run. Set from the command line, not the file.
#[derive(Debug, Clone, PartialEq)]
pub struct RunOptions {
    /// What to do.
    pub mode: RunMode,
    /// Dry runs leave the store untouched.
    pub dry_run: DryRun,
    /// Which kinds of channel the backlog replay covers.
    pub scopes: Vec<crate::backlog::Scope>,
}

impl Default for RunOptions {
    fn default() -> Self {
        use crate::backlog::Scope;
        Self {
            mode: RunMode::Monitor,
            dry_run: DryRun::None,
            scopes: vec![Scope::Dms, Scope::BotDms, Scope::Text],
        }
    }
}

/// What a run does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunMode {
    /// Replay the backlog, then answer in real time until stopped.
    Monitor,
    /// Replay the backlog, then exit (`--no-monitoring`).
    BacklogOnly,
    /// List what would be replayed, then exit (`--show-backlog`).
    ShowBacklog,
    /// Move every cursor to the newest message without processing, then exit (`--clear-backlog`).
    ClearBacklog,
}

/// Dry runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DryRun {
    /// A real run.
    None,
    /// Decide what to answer, but call no model and send nothing (`--no-agent`).
    NoAgent,
    /// Call the model, but print replies instead of sending them (`--no-discord`).
    NoDiscord,
}

/// Limits of conversation actors.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ConversationSettings {
    /// Idle time after which a conversation actor stops.
    pub idle: std::time::Duration,
    /// Messages held in memory while a turn runs; when full, new ones wait in the store.
    pub queue_limit: usize,
    /// Restarts allowed per conversation within `restart_window`.
    pub restart_limit: usize,
    /// Window of `restart_limit`.
    pub restart_window: std::time::Duration,
    /// Time in-flight turns get to finish on shutdown.
    pub shutdown_grace: std::time::Duration,
    /// How long a turn waits after a human's message, so that messages serenity delivered out
    /// of order (one task per event) are sorted by ID first. Zero turns the wait off.
    pub reorder: std::time::Duration,
}

impl Default for ConversationSettings {
    fn default() -> Self {
        Self {
            idle: std::time::Duration::from_secs(600),
            queue_limit: 16,
            restart_limit: 3,
            restart_window: std::time::Duration::from_secs(60),
            shutdown_grace: std::time::Duration::from_secs(20),
            reorder: std::time::Duration::from_millis(5),
        }
    }
}

/// How to reach the sandbox.
#[derive(Debug, Clone)]
pub struct SandboxSettings {
    /// Listen address for an in-process sandbox.
    pub listen: SocketAddr,
    /// A sandbox already running elsewhere; when set, none is started.
    pub url: Option<String>,
    /// Its world.
    pub world: WorldSpec,
}

/// One LLM backend.
#[derive(Debug, Clone, PartialEq)]
pub struct BackendConfig {
    /// Name in `[backends.NAME]`.
    pub name: String,
    /// Provider and its settings.
    pub provider: Provider,
    /// Most requests running at once.
    pub max_concurrency: usize,
    /// Most requests waiting for a slot.
    pub max_queue: usize,
}

/// Kinds of backend.
#[derive(Debug, Clone, PartialEq)]
pub enum Provider {
    /// Offline and deterministic: replies with what it was told. For demos and tests.
    Echo(EchoSettings),
    /// An OpenAI-compatible chat completions API (OpenAI, Perplexity, OpenRouter, Ollama, vLLM,
    /// llama.cpp).
    OpenAi(HttpSettings),
    /// The Anthropic Messages API.
    Anthropic(HttpSettings),
    /// A CLI agent run as a child process.
    Command(CommandSettings),
}

/// Settings of the echo backend.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct EchoSettings {
    /// Reply with the whole prompt instead of the new message(s).
    pub reply_with_prompt: bool,
    /// Simulated latency.
    pub delay: std::time::Duration,
    /// Panic when a message contains this text.
    pub panic_on: Option<String>,
}

/// Providers troupe knows, for error messages.
pub const PROVIDERS: &[&str] = &[
    "echo",
    "openai",
    "anthropic",
    "command",
    "perplexity",
    "openrouter",
    "ollama",
    "vllm",
    "llamacpp",
];

/// How an agent's conversations are keyed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemoryMode {
    /// One conversation per channel.
    Channel,
    /// One conversation per (channel, user).
    ChannelUser,
    /// One conversation per user, across channels.
    User,
}

/// One persona.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// Persona name.
    pub name: String,
    /// Backend name (a key of [`Config::backends`]).
    pub backend: String,
    /// System prompt template.
    pub system_prompt: String,
    /// Conversation keying.
    pub memory: MemoryMode,
    /// How much each conversation remembers.
    pub memory_limits: crate::memory::Limits,
    /// When it answers.
    pub triggers: Triggers,
    /// Speak through a webhook instead of the bot user.
    pub webhook: Option<WebhookConfig>,
    /// Avatar for webhook messages.
    pub avatar_url: Option<String>,
    /// DM channels to replay even if not seen yet.
    pub dm_channels: Vec<u64>,
    /// Where its bot token comes from.
    pub token: TokenSource,
    /// Its turns' circuit breaker (`[breaker]`, or its own `breaker = {...}`).
    pub breaker: crate::breaker::BreakerSettings,
    /// Sent when an answer is given up (`[delivery] failure_notice`, or the agent's own); empty:
    /// silence.
    pub failure_notice: String,
    /// Sent when a message waited for room for too long; empty: silence.
    pub busy_notice: String,
}

/// When an agent answers.
#[derive(Debug, Clone, PartialEq)]
pub struct Triggers {
    /// Messages that mention it.
    pub mention: bool,
    /// Direct messages.
    pub dm: bool,
    /// Replies to its messages.
    pub reply: bool,
    /// Channels (names or IDs) where it answers everything.
    pub channels: Vec<String>,
    /// `@everyone` / `@here` address it.
    pub everyone: bool,
}

/// How an agent speaks through a webhook.
#[derive(Debug, Clone, PartialEq)]
pub enum WebhookConfig {
    /// An existing webhook: its ID and where its token comes from.
    Existing {
        /// Webhook ID.
        id: u64,
        /// Its token's source.
        token: TokenSource,
    },
    /// troupe creates one in this channel (name or ID) at startup.
    Create {
        /// Channel name or ID.
        channel: String,
    },
}

/// Discord-wide behaviour: the chain protocol, bot delay, per-user limits.
#[derive(Debug, Clone, PartialEq)]
pub struct DiscordSettings {
    /// Longest agent chain.
    pub max_chain: crate::acl::ChainLength,
    /// Footer tagline.
    pub tagline: String,
    /// Courtesy notice at the limit.
    pub courtesy: String,
    /// Delay before answering a bot.
    pub bot_delay: std::time::Duration,
    /// Random extra delay up to this.
    pub bot_delay_jitter: std::time::Duration,
    /// Messages per user per agent within the window (0: no limit).
    pub user_rate_limit: usize,
    /// Window of the per-user limit.
    pub user_rate_window: std::time::Duration,
    /// The notice sent once when a user goes over.
    pub rate_notice: String,
    /// Answers to bots and webhooks outside the cast per channel within `bot_reply_window`.
    pub bot_replies_per_window: usize,
    /// Window of `bot_replies_per_window`.
    pub bot_reply_window: std::time::Duration,
}

impl Default for DiscordSettings {
    fn default() -> Self {
        Self {
            max_chain: crate::acl::DEFAULT_MAX_CHAIN,
            tagline: crate::acl::DEFAULT_TAGLINE.to_string(),
            courtesy: crate::acl::DEFAULT_COURTESY.to_string(),
            bot_delay: std::time::Duration::from_millis(17_000),
            bot_delay_jitter: std::time::Duration::from_millis(3_000),
            user_rate_limit: 20,
            user_rate_window: std::time::Duration::from_secs(60),
            rate_notice: "You are sending messages faster than I can answer; I will read yours again in a moment."
                .to_string(),
            bot_replies_per_window: crate::loopguard::DEFAULT_LIMIT,
            bot_reply_window: crate::loopguard::DEFAULT_WINDOW,
        }
    }
}

/// Where a bot token comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum TokenSource {
    /// The sandbox's token for this bot name.
    Sandbox,
    /// An environment variable.
    Env(String),
    /// A file (trailing whitespace ignored).
    File(PathBuf),
}

impl TokenSource {
    /// Reads the token. Errors name the variable or file, never the value.
    pub fn resolve(&self, agent: &str) -> Result<Secret, String> {
        match self {
            TokenSource::Sandbox => Ok(Secret::new(sandbox_token(agent))),
            TokenSource::Env(var) => match std::env::var(var) {
                Ok(v) if !v.trim().is_empty() => Ok(Secret::new(v.trim())),
                _ => Err(format!(
                    "agent `{agent}`: environment variable {var} (token_env) is not set or empty"
                )),
            },
            TokenSource::File(path) => match std::fs::read_to_string(path) {
                Ok(v) if !v.trim().is_empty() => Ok(Secret::new(v.trim())),
                Ok(_) => Err(format!(
                    "agent `{agent}`: token file {} (token_file) is empty",
                    path.display()
                )),
                Err(e) => Err(format!(
                    "agent `{agent}`: cannot read token file {} (token_file): {e}",
                    path.display()
                )),
            },
        }
    }
}

impl Config {
    /// Reads and validates a configuration file.
    pub fn load(path: &std::path::Path) -> Result<Config, ConfigErrors> {
        let source = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| {
            let hint = if e.kind() == std::io::ErrorKind::NotFound {
                " (pass --config PATH, or run from the directory holding agents.toml)"
            } else {
                ""
            };
            ConfigErrors(vec![ConfigError::whole(
                &source,
                format!("cannot read the configuration: {e}{hint}"),
            )])
        })?;
        Config::parse(&source, &text)
    }

    /// Parses and validates configuration text; `source` names it in errors.
    pub fn parse(source: &str, text: &str) -> Result<Config, ConfigErrors> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            let mut message = e.message().trim_end().to_string();
            if let Some(s) = suggest_field(&message) {
                message.push_str(&format!("; did you mean `{s}`?"));
            }
            ConfigErrors(vec![ConfigError::at(source, text, e.span(), "", message)])
        })?;
        validate(source, text, raw)
    }

    /// The agent with this name.
    pub fn agent(&self, name: &str) -> Option<&AgentConfig> {
        self.agents.iter().find(|a| a.name == name)
    }
}

fn validate(source: &str, text: &str, raw: RawConfig) -> Result<Config, ConfigErrors> {
    let mut errors = Vec::new();
    let mut err = |span: Option<std::ops::Range<usize>>, field: String, message: String| {
        errors.push(ConfigError::at(source, text, span, field, message));
    };

    let mode = match raw.mode.as_ref().map(|m| (m.get_ref().as_str(), m.span())) {
        None | Some(("sandbox", _)) => Mode::Sandbox,
        Some(("live", _)) => Mode::Live,
        Some((other, span)) => {
            err(
                Some(span),
                "mode".into(),
                format!("unknown mode `{other}`; use \"sandbox\" or \"live\""),
            );
            Mode::Sandbox
        }
    };

    let listen_text = raw
        .sandbox
        .listen
        .clone()
        .unwrap_or_else(|| DEFAULT_SANDBOX_LISTEN.to_string());
    let listen = listen_text.parse::<SocketAddr>().unwrap_or_else(|_| {
        err(
            None,
            "sandbox.listen".into(),
            format!("`{listen_text}` is not an address; write HOST:PORT, e.g. \"127.0.0.1:8686\""),
        );
        DEFAULT_SANDBOX_LISTEN.parse().expect("default address parses")
    });
    if let Some(url) = &raw.sandbox.url {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            err(
                None,
                "sandbox.url".into(),
                format!("`{url}` is not an http:// URL; e.g. \"http://127.0.0.1:8686\""),
            );
        }
    }

    let conversations = {
        let d = ConversationSettings::default();
        let c = &raw.conversations;
        let mut num = |field: &str, v: &Option<Spanned<i64>>, default: u64, min: i64, max: i64| {
            operations::int(&format!("conversations.{field}"), v, default, min, max, &mut err)
        };
        ConversationSettings {
            idle: std::time::Duration::from_secs(num("idle_secs", &c.idle_secs, d.idle.as_secs(), 1, 86_400 * 30)),
            queue_limit: num("queue_limit", &c.queue_limit, d.queue_limit as u64, 1, 100_000) as usize,
            restart_limit: num("restart_limit", &c.restart_limit, d.restart_limit as u64, 0, 1_000) as usize,
            restart_window: std::time::Duration::from_secs(num(
                "restart_window_secs",
                &c.restart_window_secs,
                d.restart_window.as_secs(),
                1,
                86_400,
            )),
            shutdown_grace: std::time::Duration::from_secs(num(
                "shutdown_grace_secs",
                &c.shutdown_grace_secs,
                d.shutdown_grace.as_secs(),
                0,
                3_600,
            )),
            reorder: std::time::Duration::from_millis(num(
                "reorder_ms",
                &c.reorder_ms,
                d.reorder.as_millis() as u64,
                0,
                1_000,
            )),
        }
    };

    let http_listen = operations::http_listen(&raw.http, &mut err);
    let breaker = operations::breaker(&raw.breaker, Default::default(), "breaker", &mut err);
    let limits = operations::limits(&raw.limits, &mut err);
    let restarts = operations::restarts(&raw.restarts, &mut err);
    let discord_api_url = raw.discord.api_url.as_ref().map(|u| {
        let url = u.get_ref().trim_end_matches('/').to_string();
        if mode != Mode::Live {
            err(
                Some(u.span()),
                "discord.api_url".into(),
                "only used in live mode; in sandbox mode set [sandbox] url".into(),
            );
        } else if !(url.starts_with("http://") || url.starts_with("https://")) {
            err(
                Some(u.span()),
                "discord.api_url".into(),
                format!("`{url}` is not an http(s):// URL"),
            );
        }
        url
    });

    let discord = {
        let d = DiscordSettings::default();
        let r = &raw.discord;
        let mut ranged = |field: &str, v: &Option<Spanned<i64>>, default: i64, min: i64, max: i64| {
            operations::int(&format!("discord.{field}"), v, default as u64, min, max, &mut err) as i64
        };
        let max_chain = ranged("max_chain", &r.max_chain, i64::from(d.max_chain.get()), 1, 99);
        DiscordSettings {
            max_chain: crate::acl::ChainLength::new(max_chain as u8).unwrap_or(d.max_chain),
            tagline: r.tagline.clone().unwrap_or(d.tagline),
            courtesy: r.courtesy.clone().unwrap_or(d.courtesy),
            bot_delay: r.bot_delay_ms.map_or(d.bot_delay, std::time::Duration::from_millis),
            bot_delay_jitter: r
                .bot_delay_jitter_ms
                .map_or(d.bot_delay_jitter, std::time::Duration::from_millis),
            user_rate_limit: ranged(
                "user_rate_limit",
                &r.user_rate_limit,
                d.user_rate_limit as i64,
                0,
                100_000,
            ) as usize,
            user_rate_window: std::time::Duration::from_secs(ranged(
                "user_rate_window_secs",
                &r.user_rate_window_secs,
                d.user_rate_window.as_secs() as i64,
                1,
                86_400,
            ) as u64),
            rate_notice: r.rate_notice.clone().unwrap_or(d.rate_notice),
            bot_replies_per_window: ranged(
                "bot_replies_per_window",
                &r.bot_replies_per_window,
                d.bot_replies_per_window as i64,
                1,
                10_000,
            ) as usize,
            bot_reply_window: std::time::Duration::from_secs(ranged(
                "bot_reply_window_secs",
                &r.bot_reply_window_secs,
                d.bot_reply_window.as_secs() as i64,
                1,
                86_400,
            ) as u64),
        }
    };

    let backlog = {
        let d = crate::backlog::Bounds::default();
        let b = &raw.backlog;
        let mut ranged = |field: &str, v: &Option<Spanned<i64>>, default: u64, max: i64| {
            operations::int(&format!("backlog.{field}"), v, default, 1, max, &mut err)
        };
        crate::backlog::Bounds {
            max_age: std::time::Duration::from_secs(ranged(
                "max_age_secs",
                &b.max_age_secs,
                d.max_age.as_secs(),
                365 * 86_400,
            )),
            max_messages: ranged("max_messages", &b.max_messages, d.max_messages as u64, 1_000_000) as usize,
        }
    };

    let delivery = delivery::delivery(&raw.delivery, backlog.max_age, &mut err);
    let store_retention = store_retention(&raw.store, &raw.backlog, backlog.max_age, &mut err);

    let mut backends = BTreeMap::new();
    for (name, b) in &raw.backends {
        let b = b.get_ref();
        backend::reject_foreign_fields(name, b.provider.get_ref(), b, &mut err);
        let provider = match b.provider.get_ref().as_str() {
            p if backend::is_http(p) => {
                let settings = backend::http_settings(name, p, b, &mut err);
                Some(if p == "anthropic" {
                    Provider::Anthropic(settings)
                } else {
                    Provider::OpenAi(settings)
                })
            }
            "command" => backend::command_settings(name, b, &mut err).map(Provider::Command),
            "echo" => {
                let reply_with_prompt = match b.reply.as_ref().map(|r| (r.get_ref().as_str(), r.span())) {
                    None | Some(("last", _)) => false,
                    Some(("prompt", _)) => true,
                    Some((other, span)) => {
                        err(
                            Some(span),
                            format!("backends.{name}.reply"),
                            format!("unknown echo reply `{other}`; use \"last\" or \"prompt\""),
                        );
                        false
                    }
                };
                Some(Provider::Echo(EchoSettings {
                    reply_with_prompt,
                    delay: std::time::Duration::from_millis(b.delay_ms.unwrap_or(0)),
                    panic_on: b.panic_on.clone(),
                }))
            }
            other => {
                let hint = closest(other, PROVIDERS.iter().copied())
                    .map(|c| format!("did you mean \"{c}\"? "))
                    .unwrap_or_default();
                err(
                    Some(b.provider.span()),
                    format!("backends.{name}.provider"),
                    format!(
                        "unknown provider `{other}`; {hint}known providers: {}",
                        PROVIDERS.join(", ")
                    ),
                );
                None
            }
        };
        let mut bounded = |field: &str, v: &Option<Spanned<i64>>, default: usize, max: i64| {
            operations::int(&format!("backends.{name}.{field}"), v, default as u64, 1, max, &mut err) as usize
        };
        let max_concurrency = bounded("max_concurrency", &b.max_concurrency, 4, 10_000);
        let max_queue = bounded("max_queue", &b.max_queue, 1_000, 1_000_000);
        if let Some(provider) = provider {
            backends.insert(
                name.clone(),
                BackendConfig {
                    name: name.clone(),
                    provider,
                    max_concurrency,
                    max_queue,
                },
            );
        }
    }

    if raw.agents.is_empty() {
        err(
            None,
            "agents".into(),
            "no agents are declared; add at least one [[agents]] table with `name` and `backend`".into(),
        );
    }
    let mut names = HashSet::new();
    let mut token_sources: Vec<(TokenSource, String)> = Vec::new();
    let mut agents = Vec::new();
    for (i, a) in raw.agents.iter().enumerate() {
        let field = |f: &str| format!("agents[{i}].{f}");
        let name = a.name.get_ref().trim().to_string();
        if name.is_empty() {
            err(
                Some(a.name.span()),
                field("name"),
                "an agent needs a non-empty name".into(),
            );
        } else if !names.insert(name.to_lowercase()) {
            err(
                Some(a.name.span()),
                field("name"),
                format!("agent name `{name}` is used twice; agent names must be unique"),
            );
        }
        if !raw.backends.contains_key(a.backend.get_ref()) {
            let known: Vec<&str> = raw.backends.keys().map(String::as_str).collect();
            let hint = closest(a.backend.get_ref(), known.iter().copied())
                .map(|c| format!("did you mean `{c}`? "))
                .unwrap_or_default();
            let defined = if known.is_empty() {
                "none are defined; add a [backends.NAME] table".to_string()
            } else {
                format!("defined: {}", known.join(", "))
            };
            err(
                Some(a.backend.span()),
                field("backend"),
                format!(
                    "agent `{name}` uses backend `{}`, which is not defined; {hint}{defined}",
                    a.backend.get_ref()
                ),
            );
        }
        let memory = match a.memory.as_ref().map(|m| (m.get_ref().as_str(), m.span())) {
            None | Some(("channel", _)) => MemoryMode::Channel,
            Some(("channel-user", _)) => MemoryMode::ChannelUser,
            Some(("user", _)) => MemoryMode::User,
            Some((other, span)) => {
                let hint = closest(other, ["channel", "channel-user", "user"])
                    .map(|c| format!("did you mean \"{c}\"? "))
                    .unwrap_or_default();
                err(Some(span), field("memory"), format!("agent `{name}`: unknown memory mode `{other}`; {hint}use \"channel\", \"channel-user\" or \"user\""));
                MemoryMode::Channel
            }
        };
        let limit = |v: &Option<Spanned<i64>>, f: &str, default: usize, err: &mut Report<'_>| {
            operations::int(&field(f), v, default as u64, 1, 10_000_000, err) as usize
        };
        let defaults = crate::memory::Limits::default();
        let memory_limits = crate::memory::Limits {
            max_turns: limit(&a.memory_turns, "memory_turns", defaults.max_turns, &mut err),
            max_chars: limit(&a.memory_chars, "memory_chars", defaults.max_chars, &mut err),
        };
        let token = token_source(a, mode, &name, &field, &mut err);
        if token != TokenSource::Sandbox {
            if let Some((_, other)) = token_sources.iter().find(|(t, _)| *t == token) {
                err(
                    Some(a.name.span()),
                    field("token_env"),
                    format!(
                        "agent `{name}` uses the same token as agent `{other}`; each agent needs its own bot token"
                    ),
                );
            }
            token_sources.push((token.clone(), name.clone()));
        }
        let breaker = match &a.breaker {
            Some(b) => operations::breaker(b.get_ref(), breaker, &field("breaker"), &mut err),
            None => breaker,
        };
        let webhook = a
            .webhook
            .as_ref()
            .and_then(|w| webhook_config(w, &field, &name, &mut err));
        let dm_channels = a
            .dm_channels
            .iter()
            .filter_map(|c| match c.get_ref().parse::<u64>() {
                Ok(id) => Some(id),
                Err(_) => {
                    err(
                        Some(c.span()),
                        field("dm_channels"),
                        format!("agent `{name}`: `{}` is not a channel ID", c.get_ref()),
                    );
                    None
                }
            })
            .collect();
        agents.push(AgentConfig {
            name,
            backend: a.backend.get_ref().clone(),
            system_prompt: a.system_prompt.clone(),
            memory,
            memory_limits,
            triggers: Triggers {
                mention: a.triggers.mention,
                dm: a.triggers.dm,
                reply: a.triggers.reply,
                channels: a.triggers.channels.clone(),
                everyone: a.triggers.everyone,
            },
            webhook,
            dm_channels,
            avatar_url: a.avatar_url.clone(),
            token,
            breaker,
            failure_notice: a
                .failure_notice
                .clone()
                .unwrap_or_else(|| delivery.failure_notice.clone()),
            busy_notice: a.busy_notice.clone().unwrap_or_else(|| delivery.busy_notice.clone()),
        });
    }

    // Checked in every mode: `troupe sandbox` builds this world from the same file.
    let world = sandbox::world(&raw.sandbox, &raw.agents, &mut err);

    if errors.is_empty() {
        Ok(Config {
            source: source.to_string(),
            mode,
            sandbox: SandboxSettings {
                listen,
                url: raw.sandbox.url.clone(),
                world,
            },
            bot_dms_channel: raw.discord.bot_dms_channel.clone(),
            discord,
            store_path: PathBuf::from(raw.store.path.unwrap_or_else(|| "state".to_string())),
            store_retention,
            conversations,
            backlog,
            run: RunOptions::default(),
            discord_api_url,
            http_listen,
            breaker,
            limits,
            restarts,
            delivery,
            backends,
            agents,
        })
    } else {
        Err(ConfigErrors(errors))
    }
}

/// Retention of per-message records unless `[store] retention_days` says otherwise.
pub const DEFAULT_RETENTION_DAYS: u64 = 30;

/// `[store] retention_days`: at least the backlog's reach, or the records of messages the
/// backlog may still replay would be pruned (and those messages answered twice).
fn store_retention(
    store: &raw::RawStore,
    backlog: &raw::RawBacklog,
    max_age: std::time::Duration,
    err: &mut Report<'_>,
) -> std::time::Duration {
    const DAY: u64 = 86_400;
    let days = operations::int(
        "store.retention_days",
        &store.retention_days,
        DEFAULT_RETENTION_DAYS,
        1,
        36_500,
        err,
    );
    let retention = std::time::Duration::from_secs(days * DAY);
    if retention < max_age {
        let set = if store.retention_days.is_some() {
            ""
        } else {
            " (the default)"
        };
        let needed = max_age.as_secs().div_ceil(DAY);
        let span = store
            .retention_days
            .as_ref()
            .or(backlog.max_age_secs.as_ref())
            .map(|s| s.span());
        err(
            span,
            "store.retention_days".into(),
            format!(
                "{days} days{set} is shorter than backlog.max_age_secs ({} s, {needed} days): the records of \
                 messages the backlog may still replay would be pruned; set store.retention_days to at least \
                 {needed} or lower backlog.max_age_secs",
                max_age.as_secs()
            ),
        );
    }
    retention
}

fn webhook_config(
    w: &raw::RawWebhook,
    field: &dyn Fn(&str) -> String,
    name: &str,
    err: &mut dyn FnMut(Option<std::ops::Range<usize>>, String, String),
) -> Option<WebhookConfig> {
    match (&w.id, &w.channel) {
        (Some(id), None) => {
            let Ok(parsed) = id.get_ref().parse::<u64>() else {
                err(
                    Some(id.span()),
                    field("webhook.id"),
                    format!("agent `{name}`: webhook id must be a number (the ID in the webhook URL)"),
                );
                return None;
            };
            let token = match (&w.token_env, &w.token_file) {
                (Some(var), None) => TokenSource::Env(var.clone()),
                (None, Some(path)) => TokenSource::File(PathBuf::from(path)),
                _ => {
                    err(
                        Some(id.span()),
                        field("webhook"),
                        format!("agent `{name}`: an existing webhook needs exactly one of token_env or token_file"),
                    );
                    return None;
                }
            };
            Some(WebhookConfig::Existing { id: parsed, token })
        }
        (None, Some(channel)) => Some(WebhookConfig::Create {
            channel: channel.clone(),
        }),
        _ => {
            err(None, field("webhook"), format!("agent `{name}`: give either webhook.id (with token_env/token_file) or webhook.channel (troupe creates one)"));
            None
        }
    }
}

fn token_source(
    a: &RawAgent,
    mode: Mode,
    name: &str,
    field: &dyn Fn(&str) -> String,
    err: &mut dyn FnMut(Option<std::ops::Range<usize>>, String, String),
) -> TokenSource {
    let spanned = |s: &Spanned<String>| (s.get_ref().clone(), s.span());
    match (a.token_env.as_ref().map(spanned), a.token_file.as_ref().map(spanned)) {
        (Some(_), Some((_, span))) => {
            err(
                Some(span),
                field("token_file"),
                format!("agent `{name}` sets both token_env and token_file; keep one"),
            );
            TokenSource::Sandbox
        }
        (Some((var, _)), None) if mode == Mode::Live => TokenSource::Env(var),
        (None, Some((path, _))) if mode == Mode::Live => TokenSource::File(PathBuf::from(path)),
        (None, None) if mode == Mode::Live => {
            err(
                Some(a.name.span()),
                field("token_env"),
                format!(
                    "agent `{name}` has no bot token; in live mode set token_env = \"VAR\" or token_file = \"PATH\""
                ),
            );
            TokenSource::Sandbox
        }
        _ => TokenSource::Sandbox,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
[backends.offline]
provider = "echo"

[[agents]]
name = "Ada"
backend = "offline"
"#;

    fn errors(text: &str) -> String {
        Config::parse("agents.toml", text).unwrap_err().to_string()
    }

    #[test]
    fn minimal_file_gets_defaults() {
        let c = Config::parse("agents.toml", MINIMAL).unwrap();
        assert_eq!(c.mode, Mode::Sandbox);
        assert_eq!(c.agents[0].memory, MemoryMode::Channel);
        assert_eq!(c.agents[0].token, TokenSource::Sandbox);
        assert!(c.agents[0].triggers.mention && c.agents[0].triggers.dm);
        assert_eq!(c.sandbox.listen.to_string(), DEFAULT_SANDBOX_LISTEN);
        assert_eq!(c.backends["offline"].max_concurrency, 4);
    }

    #[test]
    fn readme_configuration_example_is_valid() {
        let readme = include_str!("../../README.md");
        let section = &readme[readme.find("## Configuration (`agents.toml`)").expect("section")..];
        let start = section.find("```toml\n").expect("toml block") + "```toml\n".len();
        let text = &section[start..start + section[start..].find("```").expect("end of block")];
        Config::parse("README.md", text).unwrap_or_else(|e| panic!("{e}"));
    }

    #[test]
    fn shipped_agents_toml_is_valid() {
        let text = include_str!("../../agents.toml");
        let c = Config::parse("agents.toml", text).unwrap_or_else(|e| panic!("{e}"));
        assert!(c.agents.len() >= 2);
    }

    #[test]
    fn unknown_key_names_line_and_suggests() {
        let e = errors(&format!("{MINIMAL}sytem_prompt = \"x\"\n"));
        assert!(e.starts_with("agents.toml:8:"), "{e}");
        assert!(e.contains("did you mean `system_prompt`?"), "{e}");
    }

    #[test]
    fn reorder_window_defaults_to_5_ms_and_is_bounded() {
        let c = Config::parse("agents.toml", MINIMAL).unwrap();
        assert_eq!(c.conversations.reorder, std::time::Duration::from_millis(5));
        let c = Config::parse("agents.toml", &format!("[conversations]\nreorder_ms = 0\n{MINIMAL}")).unwrap();
        assert_eq!(c.conversations.reorder, std::time::Duration::ZERO);
        let e = errors(&format!("[conversations]\nreorder_ms = 5000\n{MINIMAL}"));
        assert!(
            e.contains("agents.toml:2:") && e.contains("conversations.reorder_ms"),
            "{e}"
        );
    }

    #[test]
    fn the_bot_exchange_limit_has_defaults_and_ranges() {
        let c = Config::parse("agents.toml", MINIMAL).unwrap();
        assert_eq!(
            (c.discord.bot_replies_per_window, c.discord.bot_reply_window),
            (8, std::time::Duration::from_secs(600))
        );
        let e = errors(&format!(
            "[discord]\nbot_replies_per_window = 0\nbot_reply_window_secs = 0\n{MINIMAL}"
        ));
        assert!(
            e.contains("agents.toml:2: discord.bot_replies_per_window: 0 is out of range; use 1 to 10000"),
            "{e}"
        );
        assert!(
            e.contains("agents.toml:3: discord.bot_reply_window_secs: 0 is out of range; use 1 to 86400"),
            "{e}"
        );
    }

    #[test]
    fn retention_defaults_to_30_days_and_must_cover_the_backlog() {
        let c = Config::parse("agents.toml", MINIMAL).unwrap();
        assert_eq!(c.store_retention, std::time::Duration::from_secs(30 * 86_400));
        let c = Config::parse("agents.toml", &format!("[store]\nretention_days = 7\n{MINIMAL}")).unwrap();
        assert_eq!(c.store_retention, std::time::Duration::from_secs(7 * 86_400));
        let e = errors(&format!("[store]\nretention_days = 0\n{MINIMAL}"));
        assert!(
            e.contains("agents.toml:2: store.retention_days: 0 is out of range"),
            "{e}"
        );
        let e = errors(&format!(
            "[store]\nretention_days = 5\n[backlog]\nmax_age_secs = 518400\n{MINIMAL}"
        ));
        assert!(
            e.contains(
                "agents.toml:2: store.retention_days: 5 days is shorter than backlog.max_age_secs (518400 s, 6 days)"
            ) && e.contains("at least 6"),
            "{e}"
        );
        // Unset, the default is checked too; the error points at the backlog's setting.
        let e = errors(&format!("[backlog]\nmax_age_secs = 5184000\n{MINIMAL}"));
        assert!(
            e.contains(
                "agents.toml:2: store.retention_days: 30 days (the default) is shorter than backlog.max_age_secs"
            ),
            "{e}"
        );
    }

    #[test]
    fn syntax_error_names_line() {
        let e = errors("[[agents]\nname = 1\n");
        assert!(e.starts_with("agents.toml:1:"), "{e}");
    }

    #[test]
    fn duplicate_names_bad_memory_and_unknown_backend_are_all_reported() {
        let text = format!("{MINIMAL}\n[[agents]]\nname = \"Ada\"\nbackend = \"ofline\"\nmemory = \"chanel\"\n");
        let e = errors(&text);
        assert!(
            e.contains("agents.toml:10: agents[1].name: agent name `Ada` is used twice"),
            "{e}"
        );
        assert!(
            e.contains(
                "agents[1].backend: agent `Ada` uses backend `ofline`, which is not defined; did you mean `offline`?"
            ),
            "{e}"
        );
        assert!(e.contains("agents.toml:12: agents[1].memory: agent `Ada`: unknown memory mode `chanel`; did you mean \"channel\"?"), "{e}");
    }

    #[test]
    fn the_sandbox_world_is_checked_like_the_sandbox_builds_it() {
        let text = "[sandbox]\nhumans = [\"alice\", \"Ada\"]\nbots = [{ name = \"Echo\" }]\n\
                    [[sandbox.guilds]]\nname = \"G\"\nchannels = [\n  { name = \"general\" },\n  \
                    { name = \"staff\", hidden_from = [\"Basl\"] },\n  { name = \"news\", read_only_for = [\"echo\", \"Nobody\"] },\n]\n\
                    [backends.b]\nprovider = \"echo\"\n[[agents]]\nname = \"Ada\"\nbackend = \"b\"\n\
                    [[agents]]\nname = \"Basil\"\nbackend = \"b\"\n";
        let e = errors(text);
        assert!(
            e.contains("agents.toml:8: sandbox.guilds[0].channels[1].hidden_from: channel `staff`: hidden_from names `Basl`, who is not in the sandbox"),
            "{e}"
        );
        assert!(
            e.contains("agents.toml:9: sandbox.guilds[0].channels[2].read_only_for: channel `news`: read_only_for names `Nobody`"),
            "{e}"
        );
        assert!(
            e.contains("agents.toml:14: agents[0].name: agent `Ada` has the name of human `Ada`"),
            "{e}"
        );
        assert_eq!(e.lines().count(), 3, "{e}");
        // Fixed, it is valid, and the sandbox builds its world with the agents as bots.
        let fixed = text
            .replace("\"Ada\"]", "\"bob\"]")
            .replace("Basl", "Basil")
            .replace(", \"Nobody\"", "");
        let c = Config::parse("agents.toml", &fixed).unwrap_or_else(|e| panic!("{e}"));
        let bots: Vec<(String, String)> = c
            .agents
            .iter()
            .map(|a| (a.name.clone(), sandbox_token(&a.name)))
            .collect();
        crate::sandbox::world::World::new(&c.sandbox.world, &bots).expect("the sandbox builds it");
    }

    #[test]
    fn live_mode_needs_distinct_tokens() {
        let text = "mode = \"live\"\n[backends.b]\nprovider = \"echo\"\n[[agents]]\nname = \"A\"\nbackend = \"b\"\ntoken_env = \"T\"\n[[agents]]\nname = \"B\"\nbackend = \"b\"\ntoken_env = \"T\"\n[[agents]]\nname = \"C\"\nbackend = \"b\"\n";
        let e = errors(text);
        assert!(e.contains("agent `B` uses the same token as agent `A`"), "{e}");
        assert!(e.contains("agent `C` has no bot token"), "{e}");
    }

    #[test]
    fn unknown_provider_lists_known_ones() {
        let e = errors("[backends.b]\nprovider = \"ecko\"\n[[agents]]\nname = \"A\"\nbackend = \"b\"\n");
        assert!(
            e.contains("agents.toml:2: backends.b.provider: unknown provider `ecko`; did you mean \"echo\"?"),
            "{e}"
        );
    }

    #[test]
    fn token_errors_never_contain_the_token() {
        std::env::set_var("TROUPE_TEST_EMPTY_TOKEN", "  ");
        let e = TokenSource::Env("TROUPE_TEST_EMPTY_TOKEN".into())
            .resolve("A")
            .unwrap_err();
        assert!(e.contains("TROUPE_TEST_EMPTY_TOKEN"));
        std::env::set_var("TROUPE_TEST_TOKEN", "s3cr3t-token");
        let t = TokenSource::Env("TROUPE_TEST_TOKEN".into()).resolve("A").unwrap();
        assert_eq!(format!("{t:?}"), "Secret([redacted])");
    }
}
