//! The sandbox's state: users, guilds, channels, webhooks and messages, with Discord's rules for
//! visibility, permissions, mentions and nonces. Synchronous and I/O-free; the servers wrap it in a
//! mutex.

use std::collections::{BTreeMap, HashMap};

use serde_json::{json, Value};

use super::error::ApiError;
use super::snowflake::{self, SnowflakeGenerator};
use super::spec::{sandbox_token, WorldSpec};

/// Permission bits the sandbox models.
pub mod perms {
    /// VIEW_CHANNEL.
    pub const VIEW_CHANNEL: u64 = 1 << 10;
    /// SEND_MESSAGES.
    pub const SEND_MESSAGES: u64 = 1 << 11;
    /// SEND_MESSAGES_IN_THREADS.
    pub const SEND_MESSAGES_IN_THREADS: u64 = 1 << 38;
    /// What the @everyone role grants in a sandbox guild.
    pub const EVERYONE: u64 = (1 << 10) // view channel
        | (1 << 11) // send messages
        | (1 << 14) // embed links
        | (1 << 15) // attach files
        | (1 << 16) // read message history
        | (1 << 17) // mention everyone
        | (1 << 6) // add reactions
        | (1 << 29) // manage webhooks
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
        };
        for human in &spec.humans {
            world.add_user(human, None)?;
        }
        for bot in &spec.bots {
            let token = bot.token.clone().unwrap_or_else(|| sandbox_token(&bot.name));
            world.add_user(&bot.name, Some(token))?;
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
            token: format!("whtoken{id:x}"),
            channel_id,
            name: name.to_string(),
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
                    perms::VIEW_CHANNEL | perms::SEND_MESSAGES
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

    // ---- JSON renderings (Discord API v10 objects, complete enough for serenity) ----

    /// A user object.
    pub fn user_json(&self, id: u64) -> Value {
        match self.users.get(&id) {
            Some(u) => json!({
                "id": u.id.to_string(),
                "username": u.name,
                "global_name": u.name,
                "discriminator": "0",
                "avatar": null,
                "bot": u.bot,
                "system": false,
                "public_flags": 0,
                "flags": 0,
            }),
            None => json!({"id": id.to_string(), "username": "Deleted User", "discriminator": "0", "avatar": null}),
        }
    }

    /// The current-user object of `GET /users/@me` and READY.
    pub fn current_user_json(&self, id: u64) -> Value {
        let mut u = self.user_json(id);
        u["verified"] = json!(true);
        u["mfa_enabled"] = json!(false);
        u["email"] = Value::Null;
        u
    }

    /// A channel object.
    pub fn channel_json(&self, c: &Channel) -> Value {
        match &c.kind {
            ChannelKind::GuildText {
                guild_id,
                name,
                position,
                rate_limit_per_user,
                hidden_from,
                read_only_for,
            } => {
                let mut overwrites = Vec::new();
                for uid in hidden_from {
                    overwrites.push(json!({"id": uid.to_string(), "type": 1, "allow": "0", "deny": perms::VIEW_CHANNEL.to_string()}));
                }
                for uid in read_only_for {
                    let deny = perms::SEND_MESSAGES | perms::SEND_MESSAGES_IN_THREADS;
                    overwrites.push(json!({"id": uid.to_string(), "type": 1, "allow": "0", "deny": deny.to_string()}));
                }
                json!({
                    "id": c.id.to_string(),
                    "type": 0,
                    "guild_id": guild_id.to_string(),
                    "name": name,
                    "position": position,
                    "topic": null,
                    "nsfw": false,
                    "parent_id": null,
                    "rate_limit_per_user": rate_limit_per_user,
                    "last_message_id": c.messages.last().map(|m| m.id.to_string()),
                    "permission_overwrites": overwrites,
                    "flags": 0,
                })
            }
            ChannelKind::Thread {
                parent_id,
                name,
                owner_id,
            } => {
                let created = snowflake::iso8601(c.id);
                json!({
                    "id": c.id.to_string(),
                    "type": 11,
                    "guild_id": self.guild_of(c).map(|g| g.to_string()),
                    "parent_id": parent_id.to_string(),
                    "owner_id": owner_id.to_string(),
                    "name": name,
                    "last_message_id": c.messages.last().map(|m| m.id.to_string()),
                    "rate_limit_per_user": 0,
                    "message_count": c.messages.len(),
                    "member_count": 1,
                    "total_message_sent": c.messages.len(),
                    "thread_metadata": {
                        "archived": false,
                        "auto_archive_duration": 1440,
                        "archive_timestamp": created,
                        "locked": false,
                        "create_timestamp": created,
                    },
                    "flags": 0,
                })
            }
            ChannelKind::Dm { recipients } => json!({
                "id": c.id.to_string(),
                "type": 1,
                "last_message_id": c.messages.last().map(|m| m.id.to_string()),
                "recipients": recipients.iter().map(|u| self.user_json(*u)).collect::<Vec<_>>(),
                "flags": 0,
            }),
        }
    }

    /// The channel object a given user sees for a DM: `recipients` holds only the other user.
    pub fn channel_json_for(&self, c: &Channel, viewer: u64) -> Value {
        let mut v = self.channel_json(c);
        if let ChannelKind::Dm { recipients } = &c.kind {
            let others: Vec<Value> = recipients
                .iter()
                .filter(|u| **u != viewer)
                .map(|u| self.user_json(*u))
                .collect();
            v["recipients"] = json!(others);
        }
        v
    }

    /// A message object. `with_content` is false when the receiving bot lacks MESSAGE_CONTENT.
    pub fn message_json(&self, m: &Message, with_content: bool) -> Value {
        self.message_json_depth(m, with_content, true)
    }

    fn message_json_depth(&self, m: &Message, with_content: bool, follow_reference: bool) -> Value {
        let channel = self.channels.get(&m.channel_id);
        let guild_id = channel.and_then(|c| self.guild_of(c));
        let (author, webhook_id) = match &m.author {
            Author::User(id) => (self.user_json(*id), None),
            Author::Webhook {
                id,
                username,
                avatar_url,
            } => (
                json!({
                    "id": id.to_string(),
                    "username": username,
                    "global_name": null,
                    "discriminator": "0000",
                    // Discord gives an image hash here; the URL rides along for the web page.
                    "avatar": avatar_url.as_deref().map(avatar_hash),
                    "avatar_url": avatar_url,
                    "bot": true,
                    "public_flags": 0,
                }),
                Some(id.to_string()),
            ),
        };
        let referenced = m
            .reference
            .and_then(|r| channel.and_then(|c| c.messages.iter().find(|x| x.id == r)));
        let mut v = json!({
            "id": m.id.to_string(),
            "channel_id": m.channel_id.to_string(),
            "author": author,
            "content": if with_content { m.content.as_str() } else { "" },
            "timestamp": snowflake::iso8601(m.id),
            "edited_timestamp": null,
            "tts": false,
            "mention_everyone": m.mention_everyone,
            "mentions": m.mentions.iter().map(|u| self.user_json(*u)).collect::<Vec<_>>(),
            "mention_roles": m.mention_roles.iter().map(|r| r.to_string()).collect::<Vec<_>>(),
            "attachments": [],
            "embeds": if with_content { m.embeds.clone() } else { Vec::new() },
            "pinned": false,
            "type": if m.reference.is_some() { 19 } else { 0 },
            "flags": 0,
            "components": [],
        });
        if let Some(g) = guild_id {
            v["guild_id"] = json!(g.to_string());
        }
        if let Some(w) = webhook_id {
            v["webhook_id"] = json!(w);
        }
        if let Some(n) = &m.nonce {
            v["nonce"] = n.clone();
        }
        if let Some(r) = m.reference {
            let mut reference = json!({"type": 0, "message_id": r.to_string(), "channel_id": m.channel_id.to_string()});
            if let Some(g) = guild_id {
                reference["guild_id"] = json!(g.to_string());
            }
            v["message_reference"] = reference;
            v["referenced_message"] = match referenced {
                Some(x) if follow_reference => self.message_json_depth(x, with_content, false),
                _ => Value::Null,
            };
        }
        v
    }

    /// A guild as it appears in GUILD_CREATE for `bot`: roles, members, the channels it can see.
    pub fn guild_create_json(&self, g: &Guild, bot: u64) -> Value {
        let channels: Vec<Value> = self
            .channels
            .values()
            .filter(|c| matches!(c.kind, ChannelKind::GuildText { guild_id, .. } if guild_id == g.id))
            .filter(|c| self.can_view(bot, c.id))
            .map(|c| self.channel_json(c))
            .collect();
        let threads: Vec<Value> = self
            .channels
            .values()
            .filter(|c| matches!(c.kind, ChannelKind::Thread { .. }) && self.guild_of(c) == Some(g.id))
            .filter(|c| self.can_view(bot, c.id))
            .map(|c| self.channel_json(c))
            .collect();
        let joined = snowflake::iso8601(g.id);
        let members: Vec<Value> = self
            .users
            .values()
            .map(|u| {
                json!({
                    "user": self.user_json(u.id),
                    "nick": null,
                    "roles": [],
                    "joined_at": joined,
                    "deaf": false,
                    "mute": false,
                    "flags": 0,
                    "pending": false,
                })
            })
            .collect();
        json!({
            "id": g.id.to_string(),
            "name": g.name,
            "icon": null,
            "icon_hash": null,
            "splash": null,
            "discovery_splash": null,
            "owner_id": g.owner_id.to_string(),
            "afk_channel_id": null,
            "afk_timeout": 300,
            "widget_enabled": false,
            "widget_channel_id": null,
            "verification_level": 0,
            "default_message_notifications": 1,
            "explicit_content_filter": 0,
            "roles": [{
                "id": g.id.to_string(),
                "name": "@everyone",
                "color": 0,
                "colors": {"primary_color": 0, "secondary_color": null, "tertiary_color": null},
                "hoist": false,
                "icon": null,
                "unicode_emoji": null,
                "position": 0,
                "permissions": perms::EVERYONE.to_string(),
                "managed": false,
                "mentionable": false,
                "flags": 0,
            }],
            "emojis": [],
            "features": [],
            "mfa_level": 0,
            "application_id": null,
            "system_channel_id": null,
            "system_channel_flags": 0,
            "rules_channel_id": null,
            "max_presences": null,
            "max_members": 500000,
            "vanity_url_code": null,
            "description": null,
            "banner": null,
            "premium_tier": 0,
            "premium_subscription_count": 0,
            "preferred_locale": "en-US",
            "public_updates_channel_id": null,
            "max_video_channel_users": 25,
            "max_stage_video_channel_users": 50,
            "nsfw_level": 0,
            "stickers": [],
            "premium_progress_bar_enabled": false,
            "safety_alerts_channel_id": null,
            "joined_at": joined,
            "large": false,
            "unavailable": false,
            "member_count": members.len(),
            "voice_states": [],
            "members": members,
            "channels": channels,
            "threads": threads,
            "presences": [],
            "stage_instances": [],
            "guild_scheduled_events": [],
            "soundboard_sounds": [],
        })
    }

    /// `GET /sandbox/state`: everything a tester needs to address guilds, channels and users.
    pub fn state_json(&self) -> Value {
        let users: Vec<Value> = self
            .users
            .values()
            .map(|u| json!({"id": u.id.to_string(), "name": u.name, "bot": u.bot}))
            .collect();
        let guilds: Vec<Value> = self
            .guilds
            .iter()
            .map(|g| json!({"id": g.id.to_string(), "name": g.name}))
            .collect();
        let channels: Vec<Value> = self
            .channels
            .values()
            .map(|c| match &c.kind {
                ChannelKind::GuildText {
                    guild_id,
                    name,
                    rate_limit_per_user,
                    ..
                } => json!({
                    "id": c.id.to_string(), "type": "text", "name": name, "guild_id": guild_id.to_string(),
                    "slowmode": rate_limit_per_user, "messages": c.messages.len(),
                }),
                ChannelKind::Thread { parent_id, name, .. } => json!({
                    "id": c.id.to_string(), "type": "thread", "name": name, "parent_id": parent_id.to_string(),
                    "guild_id": self.guild_of(c).map(|g| g.to_string()), "messages": c.messages.len(),
                }),
                ChannelKind::Dm { recipients } => {
                    let names: Vec<&str> = recipients
                        .iter()
                        .filter_map(|u| self.users.get(u))
                        .map(|u| u.name.as_str())
                        .collect();
                    json!({
                        "id": c.id.to_string(), "type": "dm", "name": format!("dm:{}", names.join("+")),
                        "recipients": recipients.iter().map(|u| u.to_string()).collect::<Vec<_>>(),
                        "messages": c.messages.len(),
                    })
                }
            })
            .collect();
        json!({"guilds": guilds, "channels": channels, "users": users})
    }
}

/// A 32-hex-digit stand-in for Discord's avatar hash, stable for a given URL.
fn avatar_hash(url: &str) -> String {
    use std::hash::{Hash, Hasher};
    let mut a = std::hash::DefaultHasher::new();
    url.hash(&mut a);
    let mut b = std::hash::DefaultHasher::new();
    (url, 1u8).hash(&mut b);
    format!("{:016x}{:016x}", a.finish(), b.finish())
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
    if new.embeds.len() > 10 {
        return Err(ApiError::invalid_form(
            "embeds",
            "BASE_TYPE_MAX_LENGTH",
            "Must be 10 or fewer in length.",
        ));
    }
    for (i, e) in new.embeds.iter().enumerate() {
        if let Some(text) = e.pointer("/footer/text").and_then(Value::as_str) {
            if text.chars().count() > 2048 {
                return Err(ApiError::invalid_form(
                    &format!("embeds.{i}.footer.text"),
                    "BASE_TYPE_MAX_LENGTH",
                    "Must be 2048 or fewer in length.",
                ));
            }
        }
        if let Some(d) = e.get("description").and_then(Value::as_str) {
            if d.chars().count() > 4096 {
                return Err(ApiError::invalid_form(
                    &format!("embeds.{i}.description"),
                    "BASE_TYPE_MAX_LENGTH",
                    "Must be 4096 or fewer in length.",
                ));
            }
        }
    }
    if new.content.trim().is_empty() && new.embeds.is_empty() {
        return Err(ApiError::empty_message());
    }
    Ok(())
}

/// Mentions written in a message's content.
#[derive(Debug, Default, PartialEq)]
struct ParsedMentions {
    users: Vec<u64>,
    roles: Vec<u64>,
    everyone: bool,
}

/// Finds `<@id>`, `<@!id>`, `<@&id>`, `@everyone` and `@here` in content.
fn parse_mentions(content: &str) -> ParsedMentions {
    let mut out = ParsedMentions {
        everyone: content.contains("@everyone") || content.contains("@here"),
        ..Default::default()
    };
    let mut rest = content;
    while let Some(start) = rest.find("<@") {
        rest = &rest[start + 2..];
        let (is_role, body) = match rest.as_bytes().first() {
            Some(b'&') => (true, &rest[1..]),
            Some(b'!') => (false, &rest[1..]),
            _ => (false, rest),
        };
        let digits = body.bytes().take_while(u8::is_ascii_digit).count();
        if digits > 0 && body.as_bytes().get(digits) == Some(&b'>') {
            if let Ok(id) = body[..digits].parse::<u64>() {
                let list = if is_role { &mut out.roles } else { &mut out.users };
                if !list.contains(&id) {
                    list.push(id);
                }
            }
        }
    }
    out
}

/// Discord's `allowed_mentions`, resolved to yes/no questions.
struct AllowedMentions {
    parse_users: bool,
    parse_roles: bool,
    everyone: bool,
    users: Vec<u64>,
    roles: Vec<u64>,
    replied_user: bool,
}

impl AllowedMentions {
    fn from_json(v: Option<&Value>) -> Self {
        let Some(v) = v else {
            return Self {
                parse_users: true,
                parse_roles: true,
                everyone: true,
                users: vec![],
                roles: vec![],
                replied_user: true,
            };
        };
        let parse: Vec<&str> = v
            .get("parse")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let ids = |key: &str| -> Vec<u64> {
            v.get(key)
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str().and_then(|s| s.parse().ok()).or_else(|| x.as_u64()))
                        .collect()
                })
                .unwrap_or_default()
        };
        Self {
            parse_users: parse.contains(&"users"),
            parse_roles: parse.contains(&"roles"),
            everyone: parse.contains(&"everyone"),
            users: ids("users"),
            roles: ids("roles"),
            replied_user: v.get("replied_user").and_then(Value::as_bool).unwrap_or(false),
        }
    }

    fn user(&self, id: u64) -> bool {
        self.parse_users || self.users.contains(&id)
    }

    fn role(&self, id: u64) -> bool {
        self.parse_roles || self.roles.contains(&id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::spec::WorldSpec;

    fn world() -> (World, u64, u64, u64) {
        let spec = WorldSpec::default();
        let w = World::new(&spec, &[("Ada".into(), "sandbox.ada".into())]).unwrap();
        let alice = w.user_by_name("alice").unwrap().id;
        let ada = w.user_by_name("ada").unwrap().id;
        let general = w.channel_by_name("general").unwrap().id;
        (w, alice, ada, general)
    }

    fn text(content: &str) -> NewMessage {
        NewMessage {
            content: content.into(),
            ..Default::default()
        }
    }

    #[test]
    fn mentions_are_parsed() {
        let p = parse_mentions("hi <@12> <@!34> <@&56> <@x> <@ 7> @here");
        assert_eq!(
            p,
            ParsedMentions {
                users: vec![12, 34],
                roles: vec![56],
                everyone: true
            }
        );
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
        let gc = w.guild_create_json(&g, ada);
        assert_eq!(gc["channels"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn payloads_deserialize_as_serenity_models() {
        let (mut w, alice, ada, general) = world();
        let first = w
            .post(general, Author::User(alice), text(&format!("<@{ada}> hi")))
            .unwrap()
            .message;
        let reply = w
            .post(
                general,
                Author::User(ada),
                NewMessage {
                    reference: Some(first.id),
                    embeds: vec![json!({"footer": {"text": "acl:1"}})],
                    ..text("yo")
                },
            )
            .unwrap()
            .message;
        let hook = w.create_webhook(general, "hook").unwrap();
        let hooked = w
            .post(
                general,
                Author::Webhook {
                    id: hook.id,
                    username: "Persona".into(),
                    avatar_url: Some("https://x/a.png".into()),
                },
                text("hi"),
            )
            .unwrap()
            .message;
        for m in [&first, &reply, &hooked] {
            let v = w.message_json(m, true);
            let parsed: serenity::model::channel::Message =
                serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("{e}: {v}"));
            assert_eq!(parsed.id.get(), m.id);
        }
        let parsed: serenity::model::channel::Message = serde_json::from_value(w.message_json(&reply, true)).unwrap();
        assert_eq!(parsed.referenced_message.unwrap().id.get(), first.id);
        let g = w.guilds()[0].clone();
        let v = w.guild_create_json(&g, ada);
        let guild: serenity::model::guild::Guild =
            serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("{e}: {v}"));
        assert_eq!(guild.channels.len(), 3);
        let thread = w.create_thread(general, "a topic", alice).unwrap();
        let v = w.channel_json(w.channel(thread).unwrap());
        let parsed: serenity::model::channel::GuildChannel =
            serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("{e}: {v}"));
        assert_eq!(parsed.parent_id.map(|p| p.get()), Some(general));
        let in_thread = w
            .post(thread, Author::User(alice), text("in a thread"))
            .unwrap()
            .message;
        let v = w.message_json(&in_thread, true);
        let parsed: serenity::model::channel::Message =
            serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("{e}: {v}"));
        assert_eq!(parsed.guild_id.map(|g| g.get()), Some(w.guilds()[0].id));
        let v = w.guild_create_json(&g, ada);
        let guild: serenity::model::guild::Guild =
            serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("{e}: {v}"));
        assert_eq!(guild.threads.len(), 1);
        let dm = w.open_dm(alice, ada).unwrap();
        let v = w.channel_json_for(w.channel(dm).unwrap(), ada);
        let _: serenity::model::channel::Channel =
            serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("{e}: {v}"));
        let v = w.current_user_json(ada);
        let _: serenity::model::user::CurrentUser =
            serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("{e}: {v}"));
    }
}
