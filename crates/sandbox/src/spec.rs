//! The sandbox's world as declared in `agents.toml` (`[sandbox]`): guilds, channels, humans, bots,
//! and [`WorldSpec::problems`], the one check of a world that both configuration validation and
//! [`crate::world::World::new`] run, so `check-config` accepts exactly the worlds the
//! sandbox can build.

use std::fmt;

/// The `[sandbox]` world: who exists and where they can talk. Every field has a default so an
/// empty `[sandbox]` section gives a usable world (`config::raw` parses the section into it).
#[derive(Debug, Clone, PartialEq)]
pub struct WorldSpec {
    /// Address the in-process sandbox listens on (`--sandbox-listen` overrides it; port 0 picks a
    /// free port). Default `127.0.0.1:8686`.
    pub listen: Option<String>,
    /// URL of a sandbox already running elsewhere (`troupe sandbox`); when set, troupe connects
    /// to it instead of starting its own (`--sandbox-url` overrides it).
    pub url: Option<String>,
    /// Guilds (servers) with their text channels.
    pub guilds: Vec<GuildSpec>,
    /// Human users, by display name. They can post through the control API and the web page.
    pub humans: Vec<String>,
    /// Bot users that are not troupe agents (e.g. a foreign bot, or a bot under test).
    pub bots: Vec<BotSpec>,
    /// Gateway heartbeat interval sent in HELLO, in milliseconds.
    pub heartbeat_interval_ms: u64,
}

/// One guild and its channels. Every bot and human is a member of every guild.
#[derive(Debug, Clone, PartialEq)]
pub struct GuildSpec {
    /// Guild name.
    pub name: String,
    /// Text channels.
    pub channels: Vec<ChannelSpec>,
}

/// A guild text channel.
#[derive(Debug, Clone, PartialEq)]
pub struct ChannelSpec {
    /// Channel name, e.g. `general`.
    pub name: String,
    /// Slowmode: seconds a member must wait between two messages (`rate_limit_per_user`).
    pub slowmode: u32,
    /// Bots (by name) denied View Channel here.
    pub hidden_from: Vec<String>,
    /// Bots (by name) that can read but are denied Send Messages here.
    pub read_only_for: Vec<String>,
}

/// A bot user with a fixed token.
#[derive(Debug, Clone, PartialEq)]
pub struct BotSpec {
    /// Bot user name.
    pub name: String,
    /// The token the bot authenticates with (`Authorization: Bot <token>`). Defaults to
    /// [`sandbox_token`] of the name.
    pub token: Option<String>,
    /// The privileged gateway intents the bot's application is granted (Discord's developer
    /// portal switches); an IDENTIFY asking for another is closed with 4014. `None` grants
    /// [`DEFAULT_PRIVILEGED_INTENTS`], what troupe's agents need.
    pub privileged_intents: Option<Vec<PrivilegedIntent>>,
}

/// A privileged gateway intent, as written in `[[sandbox.bots]] privileged_intents`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PrivilegedIntent {
    /// GUILD_MEMBERS (`1 << 1`): member events, and op 8 for a whole member list.
    GuildMembers,
    /// GUILD_PRESENCES (`1 << 8`).
    GuildPresences,
    /// MESSAGE_CONTENT (`1 << 15`): content of messages that do not mention the bot.
    MessageContent,
}

impl PrivilegedIntent {
    /// The intent's bit.
    pub fn bit(self) -> u64 {
        match self {
            Self::GuildMembers => 1 << 1,
            Self::GuildPresences => 1 << 8,
            Self::MessageContent => 1 << 15,
        }
    }
}

/// What a bot is granted unless its spec says otherwise (and what troupe's agents get):
/// MESSAGE_CONTENT and GUILD_MEMBERS.
pub const DEFAULT_PRIVILEGED_INTENTS: [PrivilegedIntent; 2] =
    [PrivilegedIntent::MessageContent, PrivilegedIntent::GuildMembers];

/// Where in a world a problem is: indexes into the spec's lists, or into the extra bots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorldPlace {
    /// `humans[i]`.
    Human(usize),
    /// `bots[i]`.
    Bot(usize),
    /// The i-th extra bot (troupe's agents).
    Extra(usize),
    /// `guilds[guild].channels[channel]`'s name.
    Channel {
        /// Guild index.
        guild: usize,
        /// Channel index within the guild.
        channel: usize,
    },
    /// An entry of a channel's `hidden_from`.
    HiddenFrom {
        /// Guild index.
        guild: usize,
        /// Channel index within the guild.
        channel: usize,
        /// Entry index.
        entry: usize,
    },
    /// An entry of a channel's `read_only_for`.
    ReadOnlyFor {
        /// Guild index.
        guild: usize,
        /// Channel index within the guild.
        channel: usize,
        /// Entry index.
        entry: usize,
    },
}

/// Something that stops a world from being built, with the fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorldProblem {
    /// Where it is.
    pub place: WorldPlace,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl fmt::Display for WorldProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// A user of the world being checked, in the order the world adds them.
struct Member<'a> {
    name: &'a str,
    kind: &'static str,
    token: Option<String>,
    place: WorldPlace,
}

impl WorldSpec {
    /// Every reason the world of this spec plus `extra_bots` (`(name, token)`, troupe's agents)
    /// cannot be built, all at once: empty or repeated user names (humans, bots and agents share
    /// one namespace, case-insensitive), two bots with one token, a channel name used twice, a
    /// `hidden_from` / `read_only_for` entry naming nobody.
    // Why this is long: every rule of a world, checked one after another so every problem is reported at once.
    pub fn problems(&self, extra_bots: &[(String, String)]) -> Vec<WorldProblem> {
        let mut problems = Vec::new();
        let mut report = |place, message: String| problems.push(WorldProblem { place, message });
        let humans = self.humans.iter().enumerate().map(|(i, name)| Member {
            name,
            kind: "human",
            token: None,
            place: WorldPlace::Human(i),
        });
        let bots = self.bots.iter().enumerate().map(|(i, b)| Member {
            name: &b.name,
            kind: "bot",
            token: Some(b.token.clone().unwrap_or_else(|| sandbox_token(&b.name))),
            place: WorldPlace::Bot(i),
        });
        let extras = extra_bots.iter().enumerate().map(|(i, (name, token))| Member {
            name,
            kind: "agent",
            token: Some(token.clone()),
            place: WorldPlace::Extra(i),
        });
        let mut members: Vec<Member<'_>> = Vec::new();
        for m in humans.chain(bots).chain(extras) {
            if m.name.trim().is_empty() {
                report(m.place, format!("a {} needs a non-empty name", m.kind));
                continue;
            }
            if let Some(other) = members.iter().find(|o| o.name.eq_ignore_ascii_case(m.name)) {
                report(
                    m.place,
                    format!(
                        "{} `{}` has the name of {} `{}`; humans, bots and agents need distinct names (case does not count)",
                        m.kind, m.name, other.kind, other.name
                    ),
                );
                continue;
            }
            let same_token = m
                .token
                .as_ref()
                .and_then(|t| members.iter().find(|o| o.token.as_ref() == Some(t)));
            if let Some(other) = same_token {
                report(
                    m.place,
                    format!(
                        "{} `{}` has the same sandbox token as {} `{}`; give the bot its own `token`, or rename one",
                        m.kind, m.name, other.kind, other.name
                    ),
                );
                continue;
            }
            members.push(m);
        }
        let known = || members.iter().map(|m| m.name).collect::<Vec<_>>().join(", ");
        let mut channels: Vec<&str> = Vec::new();
        for (g, guild) in self.guilds.iter().enumerate() {
            for (c, channel) in guild.channels.iter().enumerate() {
                if channels.contains(&channel.name.as_str()) {
                    report(
                        WorldPlace::Channel { guild: g, channel: c },
                        format!(
                            "channel name `{}` is used twice; channel names must be unique across guilds",
                            channel.name
                        ),
                    );
                } else {
                    channels.push(channel.name.as_str());
                }
                let lists = [
                    ("hidden_from", &channel.hidden_from),
                    ("read_only_for", &channel.read_only_for),
                ];
                for (field, names) in lists {
                    for (entry, name) in names.iter().enumerate() {
                        if members.iter().any(|m| m.name.eq_ignore_ascii_case(name)) {
                            continue;
                        }
                        let place = if field == "hidden_from" {
                            WorldPlace::HiddenFrom {
                                guild: g,
                                channel: c,
                                entry,
                            }
                        } else {
                            WorldPlace::ReadOnlyFor {
                                guild: g,
                                channel: c,
                                entry,
                            }
                        };
                        report(
                            place,
                            format!(
                                "channel `{}`: {field} names `{name}`, who is not in the sandbox; name an agent, a [sandbox] bot or a human (known: {})",
                                channel.name,
                                known()
                            ),
                        );
                    }
                }
            }
        }
        problems
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn agents(names: &[&str]) -> Vec<(String, String)> {
        names.iter().map(|n| (n.to_string(), sandbox_token(n))).collect()
    }

    #[test]
    fn the_default_world_with_agents_has_no_problems() {
        assert_eq!(WorldSpec::default().problems(&agents(&["Ada", "Basil"])), vec![]);
    }

    #[test]
    fn unknown_names_in_overwrites_are_all_reported_with_their_places() {
        let mut spec = WorldSpec::default();
        spec.guilds[0].channels[0].hidden_from = vec!["Ada".into(), "Basl".into()];
        spec.guilds[0].channels[1].read_only_for = vec!["Nobody".into()];
        let problems = spec.problems(&agents(&["Ada", "Basil"]));
        let places: Vec<WorldPlace> = problems.iter().map(|p| p.place).collect();
        assert_eq!(
            places,
            [
                WorldPlace::HiddenFrom {
                    guild: 0,
                    channel: 0,
                    entry: 1
                },
                WorldPlace::ReadOnlyFor {
                    guild: 0,
                    channel: 1,
                    entry: 0
                },
            ]
        );
        assert!(
            problems[0]
                .message
                .starts_with("channel `general`: hidden_from names `Basl`, who is not in the sandbox"),
            "{}",
            problems[0]
        );
        assert!(
            problems[0].message.contains("known: alice, bob, Ada, Basil"),
            "{}",
            problems[0]
        );
    }

    #[test]
    fn names_tokens_and_channels_must_be_distinct() {
        let mut spec = WorldSpec {
            bots: vec![
                BotSpec {
                    name: "ALICE".into(),
                    token: None,
                    privileged_intents: None,
                },
                BotSpec {
                    name: "Echo".into(),
                    token: Some(sandbox_token("Ada")),
                    privileged_intents: None,
                },
            ],
            ..WorldSpec::default()
        };
        spec.guilds.push(GuildSpec {
            name: "Other".into(),
            channels: vec![ChannelSpec::named("general")],
        });
        let problems = spec.problems(&agents(&["Ada", "bob"]));
        let messages: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert_eq!(problems.len(), 4, "{messages:#?}");
        assert_eq!(problems[0].place, WorldPlace::Bot(0));
        assert!(messages[0].contains("bot `ALICE` has the name of human `alice`"));
        assert_eq!(problems[1].place, WorldPlace::Extra(0));
        assert!(messages[1].contains("agent `Ada` has the same sandbox token as bot `Echo`"));
        assert_eq!(problems[2].place, WorldPlace::Extra(1));
        assert_eq!(problems[3].place, WorldPlace::Channel { guild: 1, channel: 0 });
    }
}
