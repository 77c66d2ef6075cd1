//! The world rendered as Discord API v10 JSON objects (users, channels, messages, guilds, the
//! control API's state), complete enough for serenity to deserialize.

use serde_json::{json, Value};

use super::snowflake;
use super::world::{perms, Author, Channel, ChannelKind, Guild, Message, World};

mod guild;
mod message_extras;
pub use message_extras::{attachment_json, emoji_json};

impl World {
    /// A user object.
    pub fn user_json(&self, id: u64) -> Value {
        match self.user(id) {
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
                "primary_guild": null,
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
        u["locale"] = json!("en-US");
        u["premium_type"] = json!(0);
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
        let channel = self.channel(m.channel_id);
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
                    "flags": 0,
                    "primary_guild": null,
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
        self.render_extras(m, with_content, &mut v);
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
        for (key, value) in self.message_extras.get(&m.id).into_iter().flatten() {
            v[key] = value.clone();
        }
        v
    }

    /// A guild as it appears in GUILD_CREATE for `bot`: roles, members, the channels it can see.
    /// As Discord documents it, `members` holds every member only for a session with the
    /// GUILD_PRESENCES intent (`presences`); without it, only the bot itself (and users in voice
    /// channels, which the sandbox has none of). `member_count` counts them all either way.
    // Why this is long: it is the GUILD_CREATE payload itself, field by field, as Discord sends it.
    pub fn guild_create_json(&self, g: &Guild, bot: u64, presences: bool) -> Value {
        let channels: Vec<Value> = self
            .channels()
            .filter(|c| matches!(c.kind, ChannelKind::GuildText { guild_id, .. } if guild_id == g.id))
            .filter(|c| self.can_view(bot, c.id))
            .map(|c| self.channel_json(c))
            .collect();
        let threads: Vec<Value> = self
            .channels()
            .filter(|c| matches!(c.kind, ChannelKind::Thread { .. }) && self.guild_of(c) == Some(g.id))
            .filter(|c| self.can_view(bot, c.id))
            .map(|c| self.channel_json(c))
            .collect();
        let joined = snowflake::iso8601(g.id);
        let member_count = self.users().count();
        let members: Vec<Value> = self
            .users()
            .filter(|u| presences || u.id == bot)
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
            "member_count": member_count,
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
            .users()
            .map(|u| json!({"id": u.id.to_string(), "name": u.name, "bot": u.bot}))
            .collect();
        let guilds: Vec<Value> = self
            .guilds()
            .iter()
            .map(|g| json!({"id": g.id.to_string(), "name": g.name}))
            .collect();
        let channels: Vec<Value> = self
            .channels()
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
                        .filter_map(|u| self.user(*u))
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::world::tests::{text, world};
    use super::super::world::{Author, NewMessage};

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
        let v = w.guild_create_json(&g, ada, true);
        let guild: serenity::model::guild::Guild =
            serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("{e}: {v}"));
        assert_eq!(guild.channels.len(), 3);
        assert_eq!(guild.members.len(), w.users().count());
        // Without GUILD_PRESENCES, only the bot's own member (Discord: "will only contain your
        // bot and users in voice channels"); the count is still the guild's.
        let v = w.guild_create_json(&g, ada, false);
        let guild: serenity::model::guild::Guild =
            serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("{e}: {v}"));
        assert_eq!(guild.members.keys().map(|id| id.get()).collect::<Vec<_>>(), vec![ada]);
        assert_eq!(guild.member_count as usize, w.users().count());
        assert!(w.users().count() > 1);
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
        let v = w.guild_create_json(&g, ada, false);
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
