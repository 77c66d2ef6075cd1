//! The sandbox's world as declared in `agents.toml` (`[sandbox]`): guilds, channels, humans, bots.

use serde::Deserialize;

/// The `[sandbox]` world: who exists and where they can talk. Every field has a default so an
/// empty `[sandbox]` section gives a usable world.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WorldSpec {
    /// Address the in-process sandbox listens on (`--sandbox-listen` overrides it; port 0 picks a
    /// free port). Default `127.0.0.1:8686`.
    #[serde(default)]
    pub listen: Option<String>,
    /// URL of a sandbox already running elsewhere (`troupe sandbox`); when set, troupe connects
    /// to it instead of starting its own (`--sandbox-url` overrides it).
    #[serde(default)]
    pub url: Option<String>,
    /// Guilds (servers) with their text channels.
    #[serde(default = "default_guilds")]
    pub guilds: Vec<GuildSpec>,
    /// Human users, by display name. They can post through the control API and the web page.
    #[serde(default = "default_humans")]
    pub humans: Vec<String>,
    /// Bot users that are not troupe agents (e.g. a foreign bot, or a bot under test).
    #[serde(default)]
    pub bots: Vec<BotSpec>,
    /// Gateway heartbeat interval sent in HELLO, in milliseconds.
    #[serde(default = "default_heartbeat_ms")]
    pub heartbeat_interval_ms: u64,
}

/// One guild and its channels. Every bot and human is a member of every guild.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GuildSpec {
    /// Guild name.
    pub name: String,
    /// Text channels.
    #[serde(default)]
    pub channels: Vec<ChannelSpec>,
}

/// A guild text channel.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ChannelSpec {
    /// Channel name, e.g. `general`.
    pub name: String,
    /// Slowmode: seconds a member must wait between two messages (`rate_limit_per_user`).
    #[serde(default)]
    pub slowmode: u32,
    /// Bots (by name) denied View Channel here.
    #[serde(default)]
    pub hidden_from: Vec<String>,
    /// Bots (by name) that can read but are denied Send Messages here.
    #[serde(default)]
    pub read_only_for: Vec<String>,
}

/// A bot user with a fixed token.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BotSpec {
    /// Bot user name.
    pub name: String,
    /// The token the bot authenticates with (`Authorization: Bot <token>`). Defaults to
    /// [`sandbox_token`] of the name.
    #[serde(default)]
    pub token: Option<String>,
}

impl Default for WorldSpec {
    fn default() -> Self {
        Self {
            listen: None,
            url: None,
            guilds: default_guilds(),
            humans: default_humans(),
            bots: Vec::new(),
            heartbeat_interval_ms: default_heartbeat_ms(),
        }
    }
}

/// The token the sandbox gives a bot named `name` unless one is configured. Sandbox tokens are
/// not secrets: they only open the local sandbox.
pub fn sandbox_token(name: &str) -> String {
    format!("sandbox.{}", name.to_lowercase().replace(char::is_whitespace, "-"))
}

impl ChannelSpec {
    /// A plain channel with no slowmode and no permission overwrites.
    pub fn named(name: &str) -> Self {
        Self {
            name: name.to_string(),
            slowmode: 0,
            hidden_from: Vec::new(),
            read_only_for: Vec::new(),
        }
    }
}

fn default_guilds() -> Vec<GuildSpec> {
    vec![GuildSpec {
        name: "Troupe Sandbox".to_string(),
        channels: ["general", "random", "bot-dms"]
            .iter()
            .map(|n| ChannelSpec::named(n))
            .collect(),
    }]
}

fn default_humans() -> Vec<String> {
    vec!["alice".to_string(), "bob".to_string()]
}

fn default_heartbeat_ms() -> u64 {
    41_250
}
