//! The sandbox's model: users, guilds, channels, webhooks and messages, with Discord's rules for
//! visibility, permissions, validation, slowmode and nonces. Synchronous and I/O-free; the servers
//! wrap it in a mutex. Its JSON renderings are in [`super::render`], mention parsing in
//! [`super::mentions`].

use std::collections::{BTreeMap, HashMap};

use serde_json::Value;

use super::error::ApiError;
use super::mentions::{parse_mentions, AllowedMentions};
use super::snowflake::{self, SnowflakeGenerator};
use super::spec::{sandbox_token, WorldSpec};

mod attachments;
mod channels;
mod edits;
mod extras;
mod reactions;
mod threads;
mod webhooks;
pub use attachments::{sanitise_filename, Upload};
pub use channels::ChannelChange;
pub use edits::{same_author, MessageEdit};
pub use extras::{Attachment, Emoji, MessageExtras, Reaction, EDITABLE_FLAGS, MAX_PINS, SENDABLE_FLAGS};
pub use reactions::parse_emoji;
pub use threads::check_thread_name;
pub use webhooks::WebhookEdit;
mod stored;

/// Permission bits the sandbox models.
pub mod perms {
    /// VIEW_CHANNEL.
    pub const VIEW_CHANNEL: u64 = 1 << 10;
    /// SEND_MESSAGES.
    pub const SEND_MESSAGES: u64 = 1 << 11;
    /// SEND_MESSAGES_IN_THREADS.
    pub const SEND_MESSAGES_IN_THREADS: u64 = 1 << 38;
    /// MANAGE_MESSAGES: delete others' messages, bulk delete, pin, remove others' reactions.
    pub const MANAGE_MESSAGES: u64 = 1 << 13;
    /// ADD_REACTIONS: be the first to react with an emoji.
    pub const ADD_REACTIONS: u64 = 1 << 6;
    /// READ_MESSAGE_HISTORY.
    pub const READ_MESSAGE_HISTORY: u64 = 1 << 16;
    /// MANAGE_WEBHOOKS.
    pub const MANAGE_WEBHOOKS: u64 = 1 << 29;
    /// CREATE_PUBLIC_THREADS.
    pub const CREATE_PUBLIC_THREADS: u64 = 1 << 35;
    /// What the @everyone role grants in a sandbox guild.
    pub const EVERYONE: u64 = (1 << 10) // view channel
        | (1 << 11) // send messages
        | (1 << 14) // embed links
        | (1 << 15) // attach files
        | (1 << 16) // read message history
        | (1 << 17) // mention everyone
        | (1 << 6) // add reactions
        | (1 << 29) // manage webhooks
        | (1 << 13) // manage messages: a sandbox bot may moderate (delete, bulk delete, pin)
        | (1 << 35) // create public threads
        | (1 << 38); // send messages in threads
}

/// A user: human or bot.
#[derive(Debug, Clone)]
pub struct User {
    /// Snowflake.
    pub id: u64,
    /// Username (also the display name).
    pub name: String,
    /// True for bot users.
    pub bot: bool,
    /// The bot's token; humans have none.
    pub token: Option<String>,
}

/// A guild.
#[derive(Debug, Clone)]
pub struct Guild {
    /// Snowflake; also the @everyone role's ID, as on Discord.
    pub id: u64,
    /// Name.
    pub name: String,
    /// Owner (the first human, or the first bot if there are no humans).
    pub owner_id: u64,
}

/// What kind of channel, and where it lives.
#[derive(Debug, Clone)]
pub enum ChannelKind {
    /// A guild text channel.
    GuildText {
        /// Guild it belongs to.
        guild_id: u64,
        /// Channel name.
        name: String,
        /// Position in the channel list.
        position: u32,
        /// Slowmode seconds.
        rate_limit_per_user: u32,
        /// Bot user IDs denied View Channel.
        hidden_from: Vec<u64>,
        /// Bot user IDs denied Send Messages.
        read_only_for: Vec<u64>,
    },
    /// A public thread in a guild text channel; it inherits the parent's permissions.
    Thread {
        /// The channel it belongs to.
        parent_id: u64,
        /// Thread name.
        name: String,
        /// Who started it.
        owner_id: u64,
    },
    /// A direct-message channel between a human and a bot.
    Dm {
        /// The two participants.
        recipients: [u64; 2],
    },
}

/// A channel and its messages (oldest first).
#[derive(Debug, Clone)]
pub struct Channel {
    /// Snowflake.
    pub id: u64,
    /// Kind and placement.
    pub kind: ChannelKind,
    /// Messages, oldest first (snowflakes increase).
    pub messages: Vec<Message>,
}

/// A webhook: a way to post in one channel under any name, without a bot token.
#[derive(Debug, Clone)]
pub struct Webhook {
    /// Snowflake.
    pub id: u64,
    /// Secret part of the execute URL.
    pub token: String,
    /// Channel it posts into.
    pub channel_id: u64,
    /// Default name.
    pub name: String,
    /// The bot that made it over REST (`None` for the control API's webhooks).
    pub creator: Option<u64>,
    /// Default avatar's image hash, if set.
    pub avatar: Option<String>,
}

/// Who wrote a message.
#[derive(Debug, Clone, PartialEq)]
pub enum Author {
    /// A user (human or bot).
    User(u64),
    /// A webhook, with the name and avatar given at execution.
    Webhook {
        /// Webhook ID (also the author ID, as on Discord).
        id: u64,
        /// Display name.
        username: String,
        /// Avatar URL, if one was given.
        avatar_url: Option<String>,
    },
}

/// A stored message.
#[derive(Debug, Clone)]
pub struct Message {
    /// Snowflake.
    pub id: u64,
    /// Channel.
    pub channel_id: u64,
    /// Author.
    pub author: Author,
    /// Text content.
    pub content: String,
    /// Embeds as sent (Discord embed objects).
    pub embeds: Vec<Value>,
    /// Users notified (after `allowed_mentions`).
    pub mentions: Vec<u64>,
    /// Roles notified (after `allowed_mentions`).
    pub mention_roles: Vec<u64>,
    /// Whether @everyone/@here notified anyone (after `allowed_mentions`).
    pub mention_everyone: bool,
    /// The message this one replies to.
    pub reference: Option<u64>,
    /// Nonce as sent.
    pub nonce: Option<Value>,
    /// `allowed_mentions` as sent, kept so tests can assert what troupe asked for.
    pub allowed_mentions: Option<Value>,
    /// Edits, flags, components, pins, reactions, attachments.
    pub extra: MessageExtras,
}

/// What a poster asks for; the world fills in IDs, mentions and validation.
#[derive(Debug, Clone, Default)]
pub struct NewMessage {
    /// Text content.
    pub content: String,
    /// Embeds.
    pub embeds: Vec<Value>,
    /// Message replied to.
    pub reference: Option<u64>,
    /// `message_reference.fail_if_not_exists: false`: an unknown reference sends a plain message
    /// instead of failing.
    pub reference_optional: bool,
    /// Nonce (string or integer).
    pub nonce: Option<Value>,
    /// Return the existing message when one with the same nonce and author exists.
    pub enforce_nonce: bool,
    /// Discord's `allowed_mentions` object; `None` means Discord's default (everything parses).
    pub allowed_mentions: Option<Value>,
    /// Flags, components and attachments sent with it (the rest of [`MessageExtras`] is ignored).
    pub extra: MessageExtras,
}

/// Paging of `GET /channels/{id}/messages`.
#[derive(Debug, Clone, Copy, Default)]
pub struct HistoryQuery {
    /// Messages before this ID.
    pub before: Option<u64>,
    /// Messages after this ID.
    pub after: Option<u64>,
    /// Messages around this ID.
    pub around: Option<u64>,
    /// 1..=100, default 50.
    pub limit: Option<u64>,
}

/// Result of posting: the message and whether it was newly created (false when a nonce matched).
#[derive(Debug, Clone)]
pub struct Posted {
    /// The stored message.
    pub message: Message,
    /// False when `enforce_nonce` returned an existing message; nothing is dispatched then.
    pub created: bool,
}

/// The whole sandbox state.
#[derive(Debug)]
pub struct World {
    ids: SnowflakeGenerator,
    stable_index: u64,
    users: BTreeMap<u64, User>,
    guilds: Vec<Guild>,
    channels: BTreeMap<u64, Channel>,
    webhooks: BTreeMap<u64, Webhook>,
    dm_index: HashMap<[u64; 2], u64>,
    /// Heartbeat interval the gateway announces.
    pub heartbeat_interval_ms: u64,
    /// Privileged intents of bots whose spec names them (others get the default).
    pub privileged_intents: HashMap<u64, u64>,
    /// Fields a message's JSON carries beyond what [`Message`] models (interaction responses'
    /// `type`, `interaction_metadata`, `application_id`, `flags`, `components`,
    /// `edited_timestamp`); [`World::message_json`] lays them over its own.
    pub message_extras: HashMap<u64, serde_json::Map<String, Value>>,
}

impl World {
    /// Builds the world from its spec plus extra bot users (troupe's agents), each `(name, token)`.
    /// Fails with every [`WorldSpec::problems`] at once (the check configuration validation runs).
    pub fn new(spec: &WorldSpec, extra_bots: &[(String, String)]) -> Result<Self, String> {
        let problems = spec.problems(extra_bots);
        if !problems.is_empty() {
            let all: Vec<String> = problems.iter().map(ToString::to_string).collect();
            return Err(all.join("; "));
        }
        let mut world = World {
            ids: SnowflakeGenerator::new(),
            stable_index: 0,
            users: BTreeMap::new(),
            guilds: Vec::new(),
            channels: BTreeMap::new(),
            webhooks: BTreeMap::new(),
            dm_index: HashMap::new(),
            heartbeat_interval_ms: spec.heartbeat_interval_ms.max(100),
            privileged_intents: HashMap::new(),
            message_extras: HashMap::new(),
        };
        for human in &spec.humans {
            world.add_user(human, None)?;
        }
        for bot in &spec.bots {
            let token = bot.token.clone().unwrap_or_else(|| sandbox_token(&bot.name));
            let id = world.add_user(&bot.name, Some(token))?;
            if let Some(granted) = &bot.privileged_intents {
                world
                    .privileged_intents
                    .insert(id, granted.iter().fold(0, |bits, i| bits | i.bit()));
            }
        }
        for (name, token) in extra_bots {
            world.add_user(name, Some(token.clone()))?;
        }
        let owner_id = world.users.keys().next().copied().unwrap_or(0);
        for guild_spec in &spec.guilds {
            let guild_id = world.next_stable();
            world.guilds.push(Guild {
                id: guild_id,
                name: guild_spec.name.clone(),
                owner_id,
            });
            for (position, channel) in guild_spec.channels.iter().enumerate() {
                if world.find_text_channel_only(&channel.name).is_some() {
                    return Err(format!("channel name `{}` is used twice", channel.name));
                }
                let resolve = |names: &[String], field: &str| {
                    names
                        .iter()
                        .map(|n| {
                            world
                                .user_by_name(n)
                                .map(|u| u.id)
                                .ok_or_else(|| format!("channel `{}`: {field} names unknown bot `{n}`", channel.name))
                        })
                        .collect::<Result<Vec<u64>, String>>()
                };
                let hidden_from = resolve(&channel.hidden_from, "hidden_from")?;
                let read_only_for = resolve(&channel.read_only_for, "read_only_for")?;
                let id = world.next_stable();
                world.channels.insert(
                    id,
                    Channel {
                        id,
                        kind: ChannelKind::GuildText {
                            guild_id,
                            name: channel.name.clone(),
                            position: position as u32,
                            rate_limit_per_user: channel.slowmode,
                            hidden_from,
                            read_only_for,
                        },
                        messages: Vec::new(),
                    },
                );
            }
        }
        Ok(world)
    }

    fn next_stable(&mut self) -> u64 {
        self.stable_index += 1;
        snowflake::stable(self.stable_index)
    }

    /// Adds a user; bots carry a token. Names are unique (case-insensitive).
    pub fn add_user(&mut self, name: &str, token: Option<String>) -> Result<u64, String> {
        if name.trim().is_empty() {
            return Err("a user name cannot be empty".to_string());
        }
        if self.user_by_name(name).is_some() {
            return Err(format!("user name `{name}` is used twice"));
        }
        if let Some(t) = &token {
            if self.user_by_token(t).is_some() {
                return Err(format!("bot `{name}` reuses another bot's token"));
            }
        }
        let id = self.next_stable();
        let bot = token.is_some();
        self.users.insert(
            id,
            User {
                id,
                name: name.to_string(),
                bot,
                token,
            },
        );
        Ok(id)
    }

    /// All users.
    pub fn users(&self) -> impl Iterator<Item = &User> {
        self.users.values()
    }

    /// All guilds.
    pub fn guilds(&self) -> &[Guild] {
        &self.guilds
    }

    /// All channels.
    pub fn channels(&self) -> impl Iterator<Item = &Channel> {
        self.channels.values()
    }

    /// A user by ID.
    pub fn user(&self, id: u64) -> Option<&User> {
        self.users.get(&id)
    }

    /// A user by name (case-insensitive) or decimal ID.
    pub fn user_by_name(&self, name: &str) -> Option<&User> {
        if let Ok(id) = name.parse::<u64>() {
            if let Some(u) = self.users.get(&id) {
                return Some(u);
            }
        }
        self.users.values().find(|u| u.name.eq_ignore_ascii_case(name))
    }

    /// The bot a token belongs to.
    pub fn user_by_token(&self, token: &str) -> Option<&User> {
        self.users.values().find(|u| u.token.as_deref() == Some(token))
    }

    /// A channel by ID.
    pub fn channel(&self, id: u64) -> Option<&Channel> {
        self.channels.get(&id)
    }

    /// A channel by decimal ID or guild channel name.
    pub fn channel_by_name(&self, name: &str) -> Option<&Channel> {
        let name = name.trim_start_matches('#');
        if let Ok(id) = name.parse::<u64>() {
            if let Some(c) = self.channels.get(&id) {
                return Some(c);
            }
        }
        self.find_guild_channel(name)
    }

    fn find_guild_channel(&self, name: &str) -> Option<&Channel> {
        let text = self
            .channels
            .values()
            .find(|c| matches!(&c.kind, ChannelKind::GuildText { name: n, .. } if n == name));
        text.or_else(|| {
            self.channels
                .values()
                .find(|c| matches!(&c.kind, ChannelKind::Thread { name: n, .. } if n == name))
        })
    }

    fn find_text_channel_only(&self, name: &str) -> Option<&Channel> {
        self.channels
            .values()
            .find(|c| matches!(&c.kind, ChannelKind::GuildText { name: n, .. } if n == name))
    }

    /// A webhook by ID.
    pub fn webhook(&self, id: u64) -> Option<&Webhook> {
        self.webhooks.get(&id)
    }

    /// Creates a webhook in a guild text channel.
    pub fn create_webhook(&mut self, channel_id: u64, name: &str) -> Result<Webhook, ApiError> {
        match self.channels.get(&channel_id).map(|c| &c.kind) {
            Some(ChannelKind::GuildText { .. }) => {}
            Some(ChannelKind::Dm { .. } | ChannelKind::Thread { .. }) => return Err(ApiError::cannot_dm_webhook()),
            None => return Err(ApiError::unknown_channel()),
        }
        let id = self.ids.next_id();
        let hook = Webhook {
            id,
            token: webhooks::new_token(id),
            channel_id,
            name: name.to_string(),
            creator: None,
            avatar: None,
        };
        self.webhooks.insert(id, hook.clone());
        Ok(hook)
    }

    /// The permissions `user` has in `channel` (guild channels: @everyone minus overwrites;
    /// DMs: view and send for the two participants only).
    pub fn permissions(&self, user: u64, channel: &Channel) -> u64 {
        match &channel.kind {
            ChannelKind::GuildText {
                hidden_from,
                read_only_for,
                ..
            } => {
                if !self.users.contains_key(&user) {
                    return 0;
                }
                let mut p = perms::EVERYONE;
                if hidden_from.contains(&user) {
                    p &= !perms::VIEW_CHANNEL;
                }
                if read_only_for.contains(&user) {
                    p &= !(perms::SEND_MESSAGES | perms::SEND_MESSAGES_IN_THREADS);
                }
                if p & perms::VIEW_CHANNEL == 0 {
                    0
                } else {
                    p
                }
            }
            // Threads follow their parent: who can see it sees them, who can send there sends
            // in them (Discord's Send Messages in Threads is granted by @everyone here).
            ChannelKind::Thread { parent_id, .. } => {
                let parent = self
                    .channels
                    .get(parent_id)
                    .map_or(0, |parent| self.permissions(user, parent));
                let send = if parent & perms::SEND_MESSAGES_IN_THREADS != 0 {
                    perms::SEND_MESSAGES
                } else {
                    0
                };
                (parent & !perms::SEND_MESSAGES) | send
            }
            ChannelKind::Dm { recipients } => {
                if recipients.contains(&user) {
                    perms::VIEW_CHANNEL | perms::SEND_MESSAGES | perms::ADD_REACTIONS | perms::READ_MESSAGE_HISTORY
                } else {
                    0
                }
            }
        }
    }

    /// The guild a channel (or a thread's parent) belongs to; `None` for DMs.
    pub fn guild_of(&self, channel: &Channel) -> Option<u64> {
        match &channel.kind {
            ChannelKind::GuildText { guild_id, .. } => Some(*guild_id),
            ChannelKind::Thread { parent_id, .. } => self.channels.get(parent_id).and_then(|p| self.guild_of(p)),
            ChannelKind::Dm { .. } => None,
        }
    }

    /// Starts a public thread in a guild text channel.
    pub fn create_thread(&mut self, parent_id: u64, name: &str, owner_id: u64) -> Result<u64, ApiError> {
        match self.channels.get(&parent_id).map(|c| &c.kind) {
            Some(ChannelKind::GuildText { .. }) => {}
            Some(_) => return Err(ApiError::cannot_dm_webhook()),
            None => return Err(ApiError::unknown_channel()),
        }
        if name.trim().is_empty() || name.chars().count() > 100 {
            return Err(ApiError::invalid_form(
                "name",
                "BASE_TYPE_BAD_LENGTH",
                "Must be between 1 and 100 in length.",
            ));
        }
        let id = self.ids.next_id();
        self.channels.insert(
            id,
            Channel {
                id,
                kind: ChannelKind::Thread {
                    parent_id,
                    name: name.to_string(),
                    owner_id,
                },
                messages: Vec::new(),
            },
        );
        Ok(id)
    }

    /// Whether `user` can see `channel_id`.
    pub fn can_view(&self, user: u64, channel_id: u64) -> bool {
        self.channels
            .get(&channel_id)
            .is_some_and(|c| self.permissions(user, c) & perms::VIEW_CHANNEL != 0)
    }

    /// The channel a user may read, or Discord's error.
    pub fn readable_channel(&self, user: u64, channel_id: u64) -> Result<&Channel, ApiError> {
        let channel = self.channels.get(&channel_id).ok_or_else(ApiError::unknown_channel)?;
        if self.permissions(user, channel) & perms::VIEW_CHANNEL == 0 {
            return Err(match channel.kind {
                ChannelKind::Dm { .. } => ApiError::unknown_channel(),
                ChannelKind::GuildText { .. } | ChannelKind::Thread { .. } => ApiError::missing_access(),
            });
        }
        Ok(channel)
    }

    /// Opens (or finds) the DM channel between two users, as `POST /users/@me/channels` does.
    pub fn open_dm(&mut self, a: u64, b: u64) -> Result<u64, ApiError> {
        if !self.users.contains_key(&a) || !self.users.contains_key(&b) {
            return Err(ApiError::unknown_user());
        }
        // Discord refuses a DM with yourself, and between two bots.
        if a == b || (self.users[&a].bot && self.users[&b].bot) {
            return Err(ApiError::cannot_dm_self());
        }
        let key = if a < b { [a, b] } else { [b, a] };
        if let Some(id) = self.dm_index.get(&key) {
            return Ok(*id);
        }
        let id = self.ids.next_id();
        self.channels.insert(
            id,
            Channel {
                id,
                kind: ChannelKind::Dm { recipients: key },
                messages: Vec::new(),
            },
        );
        self.dm_index.insert(key, id);
        Ok(id)
    }

    /// Posts a message, applying Discord's validation, nonce and mention rules.
    // Why this is long: Discord's checks on a new message, in the order Discord applies them, then the message built.
    pub fn post(&mut self, channel_id: u64, author: Author, new: NewMessage) -> Result<Posted, ApiError> {
        let channel = self.channels.get(&channel_id).ok_or_else(ApiError::unknown_channel)?;
        if let Author::User(uid) = &author {
            let p = self.permissions(*uid, channel);
            if p & perms::VIEW_CHANNEL == 0 {
                return Err(ApiError::missing_access());
            }
            if p & perms::SEND_MESSAGES == 0 {
                return Err(ApiError::missing_permissions());
            }
        }
        validate_content(&new)?;
        if new.enforce_nonce {
            if let Some(nonce) = &new.nonce {
                if let Some(existing) = channel
                    .messages
                    .iter()
                    .rev()
                    .find(|m| m.author == author && m.nonce.as_ref() == Some(nonce))
                {
                    return Ok(Posted {
                        message: existing.clone(),
                        created: false,
                    });
                }
            }
        }
        let mut new = new;
        super::validate::normalise_embeds(&mut new.embeds);
        if let Some(r) = new.reference {
            if !channel.messages.iter().any(|m| m.id == r) {
                if !new.reference_optional {
                    return Err(ApiError::invalid_form(
                        "message_reference",
                        "MESSAGE_REFERENCE_UNKNOWN_MESSAGE",
                        "Unknown message",
                    ));
                }
                new.reference = None;
            }
        }
        if let (
            Author::User(_),
            ChannelKind::GuildText {
                rate_limit_per_user, ..
            },
        ) = (&author, &channel.kind)
        {
            // Slowmode: the author's last message here, by its snowflake's timestamp.
            let window_ms = u64::from(*rate_limit_per_user) * 1000;
            if let Some(last) = channel.messages.iter().rev().find(|m| m.author == author) {
                let elapsed = snowflake::now_unix_ms().saturating_sub(snowflake::unix_ms(last.id));
                if elapsed < window_ms {
                    return Err(ApiError::slowmode((window_ms - elapsed) as f64 / 1000.0));
                }
            }
        }
        let parsed = parse_mentions(&new.content);
        let allowed = AllowedMentions::from_json(new.allowed_mentions.as_ref());
        let guild = !matches!(channel.kind, ChannelKind::Dm { .. });
        let mut mentions: Vec<u64> = parsed
            .users
            .into_iter()
            .filter(|u| self.users.contains_key(u) && allowed.user(*u))
            .collect();
        if let Some(r) = new.reference {
            if allowed.replied_user {
                if let Some(Author::User(replied)) = channel.messages.iter().find(|m| m.id == r).map(|m| &m.author) {
                    if !mentions.contains(replied) {
                        mentions.push(*replied);
                    }
                }
            }
        }
        let mention_roles = if guild {
            parsed.roles.into_iter().filter(|r| allowed.role(*r)).collect()
        } else {
            Vec::new()
        };
        let mention_everyone = guild && parsed.everyone && allowed.everyone;
        let id = self.ids.next_id();
        let message = Message {
            id,
            channel_id,
            author,
            content: new.content,
            embeds: new.embeds,
            mentions,
            mention_roles,
            mention_everyone,
            reference: new.reference,
            nonce: new.nonce,
            allowed_mentions: new.allowed_mentions,
            extra: MessageExtras {
                flags: new.extra.flags & SENDABLE_FLAGS,
                components: new.extra.components,
                attachments: new.extra.attachments,
                ..MessageExtras::default()
            },
        };
        if let Some(channel) = self.channels.get_mut(&channel_id) {
            channel.messages.push(message.clone());
        }
        Ok(Posted { message, created: true })
    }

    /// `GET /channels/{id}/messages`: newest first, as Discord returns them.
    pub fn history<'c>(&self, channel: &'c Channel, q: HistoryQuery) -> Result<Vec<&'c Message>, ApiError> {
        let limit = q.limit.unwrap_or(50);
        if limit < 1 {
            return Err(ApiError::invalid_form(
                "limit",
                "NUMBER_TYPE_MIN",
                "int value should be greater than or equal to 1.",
            ));
        }
        if limit > 100 {
            return Err(ApiError::invalid_form(
                "limit",
                "NUMBER_TYPE_MAX",
                "int value should be less than or equal to 100.",
            ));
        }
        let limit = limit as usize;
        let msgs = &channel.messages;
        let mut out: Vec<&Message> = if let Some(after) = q.after {
            let start = msgs.partition_point(|m| m.id <= after);
            msgs[start..].iter().take(limit).collect()
        } else if let Some(around) = q.around {
            let mid = msgs.partition_point(|m| m.id < around);
            let half = limit / 2;
            let start = mid.saturating_sub(half);
            msgs[start..].iter().take(limit).collect()
        } else {
            let end = q.before.map_or(msgs.len(), |b| msgs.partition_point(|m| m.id < b));
            msgs[end.saturating_sub(limit)..end].iter().collect()
        };
        out.reverse();
        Ok(out)
    }

    /// The users who can see a channel (and so receive its MESSAGE_CREATE).
    pub fn viewers(&self, channel_id: u64) -> Vec<u64> {
        self.users
            .keys()
            .copied()
            .filter(|u| self.can_view(*u, channel_id))
            .collect()
    }

    /// The guilds a bot is in (every guild, in the sandbox).
    pub fn guilds_of(&self, _bot: u64) -> &[Guild] {
        &self.guilds
    }
}

fn validate_content(new: &NewMessage) -> Result<(), ApiError> {
    let chars = new.content.chars().count();
    if chars > 2000 {
        return Err(ApiError::invalid_form(
            "content",
            "BASE_TYPE_MAX_LENGTH",
            "Must be 2000 or fewer in length.",
        ));
    }
    super::validate::embeds(&new.embeds)?;
    if new.content.trim().is_empty()
        && new.embeds.is_empty()
        && new.extra.attachments.is_empty()
        && new.extra.components.is_empty()
    {
        return Err(ApiError::empty_message());
    }
    Ok(())
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::spec::WorldSpec;
    use serde_json::json;

    pub(crate) fn world() -> (World, u64, u64, u64) {
        let spec = WorldSpec::default();
        let w = World::new(&spec, &[("Ada".into(), "sandbox.ada".into())]).unwrap();
        let alice = w.user_by_name("alice").unwrap().id;
        let ada = w.user_by_name("ada").unwrap().id;
        let general = w.channel_by_name("general").unwrap().id;
        (w, alice, ada, general)
    }

    pub(crate) fn text(content: &str) -> NewMessage {
        NewMessage {
            content: content.into(),
            ..Default::default()
        }
    }

    #[test]
    fn allowed_mentions_empty_parse_pings_nobody() {
        let (mut w, alice, ada, general) = world();
        let content = format!("<@{alice}> @everyone @here <@&{}>", w.guilds()[0].id);
        let am = json!({"parse": [], "users": [], "roles": [], "replied_user": false});
        let posted = w
            .post(
                general,
                Author::User(ada),
                NewMessage {
                    allowed_mentions: Some(am),
                    ..text(&content)
                },
            )
            .unwrap();
        assert!(posted.message.mentions.is_empty());
        assert!(posted.message.mention_roles.is_empty());
        assert!(!posted.message.mention_everyone);
        let default = w.post(general, Author::User(ada), text(&content)).unwrap();
        assert_eq!(default.message.mentions, vec![alice]);
        assert!(default.message.mention_everyone);
    }

    #[test]
    fn content_over_2000_characters_is_rejected_counting_chars() {
        let (mut w, _, ada, general) = world();
        assert!(w.post(general, Author::User(ada), text(&"é".repeat(2000))).is_ok());
        let err = w.post(general, Author::User(ada), text(&"é".repeat(2001))).unwrap_err();
        assert_eq!(err.status, 400);
        assert_eq!(err.body["code"], 50035);
        assert!(err.body.pointer("/errors/content/_errors/0/code").is_some());
    }

    #[test]
    fn enforce_nonce_returns_the_first_message() {
        let (mut w, _, ada, general) = world();
        let m = |c: &str| NewMessage {
            nonce: Some(json!("n1")),
            enforce_nonce: true,
            ..text(c)
        };
        let first = w.post(general, Author::User(ada), m("one")).unwrap();
        let second = w.post(general, Author::User(ada), m("two")).unwrap();
        assert!(first.created && !second.created);
        assert_eq!(second.message.id, first.message.id);
        assert_eq!(w.channel(general).unwrap().messages.len(), 1);
    }

    #[test]
    fn history_pages_like_discord() {
        let (mut w, alice, _, general) = world();
        let ids: Vec<u64> = (0..10)
            .map(|i| {
                w.post(general, Author::User(alice), text(&i.to_string()))
                    .unwrap()
                    .message
                    .id
            })
            .collect();
        let c = w.channel(general).unwrap();
        let newest: Vec<u64> = w
            .history(
                c,
                HistoryQuery {
                    limit: Some(3),
                    ..Default::default()
                },
            )
            .unwrap()
            .iter()
            .map(|m| m.id)
            .collect();
        assert_eq!(newest, vec![ids[9], ids[8], ids[7]]);
        let after: Vec<u64> = w
            .history(
                c,
                HistoryQuery {
                    after: Some(ids[2]),
                    limit: Some(3),
                    ..Default::default()
                },
            )
            .unwrap()
            .iter()
            .map(|m| m.id)
            .collect();
        assert_eq!(after, vec![ids[5], ids[4], ids[3]]);
        let before: Vec<u64> = w
            .history(
                c,
                HistoryQuery {
                    before: Some(ids[2]),
                    ..Default::default()
                },
            )
            .unwrap()
            .iter()
            .map(|m| m.id)
            .collect();
        assert_eq!(before, vec![ids[1], ids[0]]);
        let around: Vec<u64> = w
            .history(
                c,
                HistoryQuery {
                    around: Some(ids[5]),
                    limit: Some(3),
                    ..Default::default()
                },
            )
            .unwrap()
            .iter()
            .map(|m| m.id)
            .collect();
        assert_eq!(around, vec![ids[6], ids[5], ids[4]]);
        assert!(w
            .history(
                c,
                HistoryQuery {
                    limit: Some(101),
                    ..Default::default()
                }
            )
            .is_err());
    }

    #[test]
    fn dm_channels_are_private_and_reused() {
        let (mut w, alice, ada, _) = world();
        let bob = w.user_by_name("bob").unwrap().id;
        let dm = w.open_dm(alice, ada).unwrap();
        assert_eq!(w.open_dm(ada, alice).unwrap(), dm);
        assert!(w.can_view(ada, dm) && w.can_view(alice, dm) && !w.can_view(bob, dm));
        assert!(w.post(dm, Author::User(bob), text("hi")).is_err());
    }

    #[test]
    fn permission_overwrites_hide_and_mute() {
        let mut spec = WorldSpec::default();
        spec.guilds[0].channels[0].hidden_from = vec!["Ada".into()];
        spec.guilds[0].channels[1].read_only_for = vec!["Ada".into()];
        let mut w = World::new(&spec, &[("Ada".into(), "t".into())]).unwrap();
        let ada = w.user_by_name("Ada").unwrap().id;
        let general = w.channel_by_name("general").unwrap().id;
        let random = w.channel_by_name("random").unwrap().id;
        assert!(!w.can_view(ada, general));
        assert_eq!(
            w.post(random, Author::User(ada), text("x")).unwrap_err().body["code"],
            50013
        );
        assert_eq!(
            w.post(general, Author::User(ada), text("x")).unwrap_err().body["code"],
            50001
        );
        let g = w.guilds()[0].clone();
        let gc = w.guild_create_json(&g, ada, false);
        assert_eq!(gc["channels"].as_array().unwrap().len(), 2);
    }
}
