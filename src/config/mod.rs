//! Configuration: `agents.toml` is parsed into [`raw`] structs that mirror the file, then
//! validated into [`Config`], the types the rest of troupe trusts. Every problem is reported with
//! the file, line and field, and all problems are reported at once.
//!
//! Validation goes table by table, each function returning its settings and reporting its
//! problems: `[sandbox]` (`sandbox`), `[conversations]` and `[backlog]` (here), `[http]`,
//! `[breaker]`, `[limits]` and `[restarts]` ([`operations`], which also holds the range helpers),
//! `[discord]` (`discord`), [`delivery`], `[budgets]` (`budgets`), `[attachments]` (`attachments`), `[store]` (here), `[backends]` ([`backend`]) and
//! `[[agents]]` (`agents`). Words such as `mode` or `provider` become enums in one place
//! (`choice`). [`error`] formats the problems; [`source`] fetches the file (path, https, s3) and
//! [`resolved`] is `troupe check-config`'s view of the result.

mod agents;
mod attachments;
pub mod backend;
mod budgets;
mod cells;
mod choice;
pub mod delivery;
mod discord;
pub mod error;
pub mod operations;
pub mod raw;
pub mod resolved;
mod sandbox;
mod shards;
pub mod source;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use toml::Spanned;

pub use self::backend::{
    ApiKeySource, CommandSettings, HttpSettings, MaxTokensParam, OnTruncation, RetrySettings, Timeouts, TokenLadder,
};
use self::choice::{parse_enum, Choice};
use self::error::{suggest_field, Report};
pub use self::error::{ConfigError, ConfigErrors};
use self::raw::{RawBacklog, RawConfig, RawConversations};
pub use self::shards::{Shards, MAX_SHARDS};
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
    /// The most memory the store's cache of records may hold, in bytes (`[store] cache_mib`).
    pub store_cache_bytes: u64,
    /// Conversations' limits.
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
    /// `[attachments]`: what a turn gives its model of messages' files; long replies as files.
    pub attachments: crate::attach::Settings,
    /// Backends by name.
    pub backends: BTreeMap<String, BackendConfig>,
    /// The cast, in file order (once [`Config::keep_cell`] ran, only this cell's agents).
    pub agents: Vec<AgentConfig>,
    /// `[cells] count`: how many processes share the cast (1: this one runs it all).
    pub cell_count: u32,
    /// This process's cell, once decided ([`Config::keep_cell`]).
    pub cell: Option<crate::cells::Cell>,
}

/// Which Discord troupe talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The local sandbox (default).
    Sandbox,
    /// Discord itself.
    Live,
}

impl Choice for Mode {
    const WHAT: &'static str = "mode";
    const WORDS: &'static [(&'static str, Self)] = &[("sandbox", Mode::Sandbox), ("live", Mode::Live)];
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

/// Limits of conversations.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ConversationSettings {
    /// Idle time after which a conversation passivates: its state is dropped (its memory and
    /// anything owed are in the store already) and the next message activates it from the store.
    pub idle: std::time::Duration,
    /// Messages held in memory while a turn runs; when full, new ones wait in the store.
    pub queue_limit: usize,
    /// Restarts allowed per conversation within `restart_window`.
    pub restart_limit: usize,
    /// Window of `restart_limit`.
    pub restart_window: std::time::Duration,
    /// Time in-flight turns get to finish on shutdown.
    pub shutdown_grace: std::time::Duration,
    /// How long a turn waits after a human's message before it starts. Zero (the default): live
    /// messages already arrive in gateway order (`discord::ordered`); a window only helps the
    /// few messages forwarded before a new session's collector is installed.
    pub reorder: std::time::Duration,
}

impl Default for ConversationSettings {
    fn default() -> Self {
        Self {
            idle: std::time::Duration::from_secs(60),
            queue_limit: 16,
            restart_limit: 3,
            restart_window: std::time::Duration::from_secs(60),
            shutdown_grace: std::time::Duration::from_secs(20),
            reorder: std::time::Duration::ZERO,
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
    /// The model sees images (`vision = true`; HTTP providers only): images on messages go
    /// with the turn, within `[attachments]`' limits.
    pub vision: bool,
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
    /// Its token budgets (`[budgets]`, with its own `budgets = {...}` over it).
    pub budgets: crate::quota::Budgets,
    /// Its attachment limits and long replies (`[attachments]`, with its own
    /// `attachments = {...}` over it).
    pub attachments: crate::attach::Settings,
    /// The cell that runs it: its `cell`, or [`crate::cells::cell_of`] its name.
    pub cell: u32,
    /// Its bot's gateway shards (`shards = "auto" | N`, default 1).
    pub shards: Shards,
    /// Streams its live replies (`stream = true`): the first sentence is posted, then edited as
    /// the model writes ([`crate::stream_reply`]). Default false.
    pub stream: bool,
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
    /// How long a turn waits for its reply before showing the typing indicator.
    pub typing_delay: std::time::Duration,
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
    /// Where each bot registers its slash commands (`[discord] commands`).
    pub commands: CommandScope,
}

/// Where slash commands are registered (`[discord] commands`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CommandScope {
    /// In each guild the bot is in: changes apply at once (the default).
    #[default]
    Guild,
    /// Globally: usable in every guild and in the bot's DMs.
    Global,
    /// Not registered (commands the bot registered before are left as they are).
    Off,
}

impl Default for DiscordSettings {
    fn default() -> Self {
        Self {
            max_chain: crate::acl::DEFAULT_MAX_CHAIN,
            tagline: crate::acl::DEFAULT_TAGLINE.to_string(),
            courtesy: crate::acl::DEFAULT_COURTESY.to_string(),
            bot_delay: std::time::Duration::from_millis(17_000),
            bot_delay_jitter: std::time::Duration::from_millis(3_000),
            typing_delay: std::time::Duration::from_millis(500),
            user_rate_limit: 20,
            user_rate_window: std::time::Duration::from_secs(60),
            rate_notice: "You are sending messages faster than I can answer; I will read yours again in a moment."
                .to_string(),
            bot_replies_per_window: crate::loopguard::DEFAULT_LIMIT,
            bot_reply_window: crate::loopguard::DEFAULT_WINDOW,
            commands: CommandScope::Guild,
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

    // One table at a time, in this order so that problems are listed as they always were.
    let mode = parse_enum(raw.mode.as_ref(), "mode".into(), "", &mut err).unwrap_or(Mode::Sandbox);
    let listen = sandbox::listen(&raw.sandbox, &mut err);
    let conversations = conversations(&raw.conversations, &mut err);
    let http_listen = operations::http_listen(&raw.http, &mut err);
    let breaker = operations::breaker(&raw.breaker, Default::default(), "breaker", &mut err);
    let limits = operations::limits(&raw.limits, &mut err);
    let restarts = operations::restarts(&raw.restarts, &mut err);
    let discord_api_url = discord::api_url(&raw.discord, mode, &mut err);
    let discord = discord::settings(&raw.discord, &mut err);
    let backlog = backlog(&raw.backlog, &mut err);
    let delivery = delivery::delivery(&raw.delivery, backlog.max_age, &mut err);
    let store_retention = store_retention(&raw.store, &raw.backlog, backlog.max_age, &mut err);
    let store_cache_bytes = operations::int(
        "store.cache_mib",
        &raw.store.cache_mib,
        crate::store::DEFAULT_CACHE_MIB,
        1,
        65_536,
        &mut err,
    ) * 1024
        * 1024;
    let backends = backend::backends(&raw.backends, &mut err);
    let budgets = budgets::budgets(&raw.budgets, &mut err);
    let attachments = attachments::attachments(&raw.attachments, &mut err);
    let mut agents = agents::agents(
        &raw.agents,
        &raw.backends,
        mode,
        breaker,
        &delivery,
        (&budgets, &attachments),
        &mut err,
    );
    let cell_count = cells::count(&raw.cells, &mut err);
    cells::assign(&raw.agents, cell_count, &mut agents, &mut err);
    // Checked in every mode: `troupe sandbox` builds this world from the same file.
    let world = sandbox::world(&raw.sandbox, &raw.agents, &mut err);

    if !errors.is_empty() {
        return Err(ConfigErrors(errors));
    }
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
        store_cache_bytes,
        conversations,
        backlog,
        run: RunOptions::default(),
        discord_api_url,
        http_listen,
        breaker,
        limits,
        restarts,
        delivery,
        attachments,
        backends,
        agents,
        cell_count,
        cell: None,
    })
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

/// `[conversations]`.
fn conversations(raw: &RawConversations, err: &mut Report<'_>) -> ConversationSettings {
    let d = ConversationSettings::default();
    let mut num = |field: &str, v: &Option<Spanned<i64>>, default: u64, min: i64, max: i64| {
        operations::int(&format!("conversations.{field}"), v, default, min, max, err)
    };
    ConversationSettings {
        idle: Duration::from_secs(num("idle_secs", &raw.idle_secs, d.idle.as_secs(), 1, 86_400 * 30)),
        queue_limit: num("queue_limit", &raw.queue_limit, d.queue_limit as u64, 1, 100_000) as usize,
        restart_limit: num("restart_limit", &raw.restart_limit, d.restart_limit as u64, 0, 1_000) as usize,
        restart_window: Duration::from_secs(num(
            "restart_window_secs",
            &raw.restart_window_secs,
            d.restart_window.as_secs(),
            1,
            86_400,
        )),
        shutdown_grace: Duration::from_secs(num(
            "shutdown_grace_secs",
            &raw.shutdown_grace_secs,
            d.shutdown_grace.as_secs(),
            0,
            3_600,
        )),
        reorder: Duration::from_millis(num(
            "reorder_ms",
            &raw.reorder_ms,
            d.reorder.as_millis() as u64,
            0,
            1_000,
        )),
    }
}

/// `[backlog]`.
fn backlog(raw: &RawBacklog, err: &mut Report<'_>) -> crate::backlog::Bounds {
    let d = crate::backlog::Bounds::default();
    crate::backlog::Bounds {
        max_age: Duration::from_secs(operations::int(
            "backlog.max_age_secs",
            &raw.max_age_secs,
            d.max_age.as_secs(),
            1,
            365 * 86_400,
            err,
        )),
        max_messages: operations::int(
            "backlog.max_messages",
            &raw.max_messages,
            d.max_messages as u64,
            1,
            1_000_000,
            err,
        ) as usize,
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
    fn streaming_is_off_unless_an_agent_asks_and_must_be_a_boolean() {
        let c = Config::parse("agents.toml", MINIMAL).unwrap();
        assert!(!c.agents[0].stream);
        let c = Config::parse("agents.toml", &format!("{MINIMAL}stream = true\n")).unwrap();
        assert!(c.agents[0].stream);
        let e = errors(&format!("{MINIMAL}stream = \"yes\"\n"));
        assert!(e.starts_with("agents.toml:8:"), "{e}");
        assert!(e.contains("stream") || e.contains("bool"), "{e}");
    }

    #[test]
    fn conversations_passivate_after_a_minute_by_default() {
        let c = Config::parse("agents.toml", MINIMAL).unwrap();
        assert_eq!(c.conversations.idle, std::time::Duration::from_secs(60));
    }

    #[test]
    fn reorder_window_defaults_to_0_and_is_bounded() {
        let c = Config::parse("agents.toml", MINIMAL).unwrap();
        assert_eq!(c.conversations.reorder, std::time::Duration::ZERO);
        let c = Config::parse("agents.toml", &format!("[conversations]\nreorder_ms = 5\n{MINIMAL}")).unwrap();
        assert_eq!(c.conversations.reorder, std::time::Duration::from_millis(5));
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
    fn slash_commands_are_guild_scoped_unless_set_and_a_wrong_word_is_named() {
        let c = Config::parse("agents.toml", MINIMAL).unwrap();
        assert_eq!(c.discord.commands, CommandScope::Guild);
        let c = Config::parse("agents.toml", &format!("[discord]\ncommands = \"off\"\n{MINIMAL}")).unwrap();
        assert_eq!(c.discord.commands, CommandScope::Off);
        let e = errors(&format!("[discord]\ncommands = \"globle\"\n{MINIMAL}"));
        assert!(
            e.contains("agents.toml:2: discord.commands: unknown command scope `globle`; did you mean \"global\"? use \"guild\", \"global\" or \"off\""),
            "{e}"
        );
    }

    #[test]
    fn the_store_cache_defaults_to_16_mib_and_is_bounded() {
        let c = Config::parse("agents.toml", MINIMAL).unwrap();
        assert_eq!(c.store_cache_bytes, 16 << 20);
        let c = Config::parse("agents.toml", &format!("[store]\ncache_mib = 64\n{MINIMAL}")).unwrap();
        assert_eq!(c.store_cache_bytes, 64 << 20);
        let e = errors(&format!("[store]\ncache_mib = 0\n{MINIMAL}"));
        assert!(
            e.contains("agents.toml:2: store.cache_mib: 0 is out of range; use 1 to 65536"),
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
    fn sandbox_bots_name_their_privileged_intents() {
        use crate::sandbox::spec::PrivilegedIntent;
        let text = format!(
            "[sandbox]\nbots = [{{ name = \"Echo\", privileged_intents = [\"GUILD_PRESENCES\"] }}, {{ name = \"Plain\" }}]\n{MINIMAL}"
        );
        let c = Config::parse("agents.toml", &text).unwrap_or_else(|e| panic!("{e}"));
        let bots = &c.sandbox.world.bots;
        assert_eq!(bots[0].privileged_intents, Some(vec![PrivilegedIntent::GuildPresences]));
        assert_eq!(bots[1].privileged_intents, None, "left out: the default grant");
        let e = errors(&text.replace("GUILD_PRESENCES", "PRESENCE"));
        assert!(e.contains("unknown variant `PRESENCE`"), "{e}");
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
    fn every_misspelt_word_is_reported_at_its_line_with_the_nearest_one() {
        let e = errors(
            "mode = \"sandbx\"\n[backends.b]\nprovider = \"echo\"\nreply = \"promt\"\n\
             [[agents]]\nname = \"A\"\nbackend = \"b\"\nmemory = \"user \"\n",
        );
        let expected = [
            "agents.toml:1: mode: unknown mode `sandbx`; did you mean \"sandbox\"? use \"sandbox\" or \"live\"",
            "agents.toml:4: backends.b.reply: unknown echo reply `promt`; did you mean \"prompt\"? use \"last\" or \"prompt\"",
            "agents.toml:8: agents[0].memory: agent `A`: unknown memory mode `user `; did you mean \"user\"? use \"channel\", \"channel-user\" or \"user\"",
        ];
        assert_eq!(e, expected.join("\n"));
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
