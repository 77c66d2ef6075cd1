//! Dispatches beyond MESSAGE_CREATE: MESSAGE_UPDATE, MESSAGE_DELETE, reaction events and
//! INTERACTION_CREATE, each sent only to the sessions Discord would send it to.

use serde_json::{json, Value};

use super::{intents, members, Gateway};
use crate::world::{Author, ChannelKind, Message, World};

/// Whether `bot` wrote `msg`: as itself, or as its application answering an interaction (the
/// response's webhook ID is the application's, which is the bot's user ID). A bot always gets
/// its own messages' content.
pub(super) fn is_own(msg: &Message, bot: u64) -> bool {
    match &msg.author {
        Author::User(id) | Author::Webhook { id, .. } => *id == bot,
    }
}

impl Gateway {
    /// Sends event `t` about something in `channel_id` to every session whose bot can see the
    /// channel and asked for `guild_intent` (guild channels and threads) or `dm_intent` (DMs).
    /// The general form the message and reaction events use. Call with the world locked.
    pub fn dispatch_channel_event(
        &self,
        world: &World,
        channel_id: u64,
        t: &str,
        d: &Value,
        guild_intent: u64,
        dm_intent: u64,
    ) {
        let Some(channel) = world.channel(channel_id) else {
            return;
        };
        let needed = if matches!(channel.kind, ChannelKind::Dm { .. }) {
            dm_intent
        } else {
            guild_intent
        };
        let mut sessions = self.sessions.lock().expect("gateway lock");
        for session in sessions.values_mut() {
            if session.intents & needed != 0 && world.can_view(session.bot_id, channel_id) {
                session.push(t, d.clone());
            }
        }
    }

    /// Sends MESSAGE_UPDATE with the whole updated message (as Discord does since 2024), with
    /// `member`s in guilds, and its content blanked for bots that lack MESSAGE_CONTENT unless
    /// Discord still delivers it (DMs, mentions of the bot, the bot's own messages). Call with the
    /// world locked.
    pub fn dispatch_message_update(&self, world: &World, msg: &Message) {
        let Some(channel) = world.channel(msg.channel_id) else {
            return;
        };
        let is_dm = matches!(channel.kind, ChannelKind::Dm { .. });
        let needed = if is_dm {
            intents::DIRECT_MESSAGES
        } else {
            intents::GUILD_MESSAGES
        };
        let render = |content: bool| {
            let mut v = world.message_json(msg, content);
            members::add_message_members(world, msg, &mut v);
            v
        };
        let (full, blank) = (render(true), render(false));
        let mut sessions = self.sessions.lock().expect("gateway lock");
        for session in sessions.values_mut() {
            if session.intents & needed == 0 || !world.can_view(session.bot_id, msg.channel_id) {
                continue;
            }
            let own = is_own(msg, session.bot_id);
            let content = session.intents & intents::MESSAGE_CONTENT != 0
                || is_dm
                || own
                || msg.mentions.contains(&session.bot_id);
            session.push("MESSAGE_UPDATE", if content { full.clone() } else { blank.clone() });
        }
    }

    /// Sends MESSAGE_DELETE (`id`, `channel_id`, `guild_id` in guilds). Call with the world
    /// locked, the message already gone.
    pub fn dispatch_message_delete(&self, world: &World, channel_id: u64, message_id: u64) {
        let mut d = json!({"id": message_id.to_string(), "channel_id": channel_id.to_string()});
        if let Some(g) = world.channel(channel_id).and_then(|c| world.guild_of(c)) {
            d["guild_id"] = json!(g.to_string());
        }
        self.dispatch_channel_event(
            world,
            channel_id,
            "MESSAGE_DELETE",
            &d,
            intents::GUILD_MESSAGES,
            intents::DIRECT_MESSAGES,
        );
    }

    /// Sends a reaction event (`MESSAGE_REACTION_ADD`, `_REMOVE`, `_REMOVE_ALL`,
    /// `_REMOVE_EMOJI`) whose payload the caller built, to bots with the reaction intents.
    pub fn dispatch_reaction_event(&self, world: &World, channel_id: u64, t: &str, d: &Value) {
        self.dispatch_channel_event(
            world,
            channel_id,
            t,
            d,
            intents::GUILD_MESSAGE_REACTIONS,
            intents::DIRECT_MESSAGE_REACTIONS,
        );
    }

    /// Sends INTERACTION_CREATE to every session of the application's bot. Interactions need
    /// no intent.
    pub fn dispatch_interaction_create(&self, application_bot: u64, d: &Value) {
        let mut sessions = self.sessions.lock().expect("gateway lock");
        for session in sessions.values_mut().filter(|s| s.bot_id == application_bot) {
            session.push("INTERACTION_CREATE", d.clone());
        }
    }
}

/// The `d` of MESSAGE_REACTION_ADD (`add`) or MESSAGE_REACTION_REMOVE: who reacted with which
/// emoji (`{"id": null, "name": "👍"}`, or a custom emoji's `id` and `name`) on which message;
/// in guilds with `guild_id`, and on ADD the reactor's `member` and the message's author.
pub fn reaction_json(world: &World, msg: &Message, user: u64, emoji: &Value, add: bool) -> Value {
    let mut d = json!({
        "user_id": user.to_string(),
        "channel_id": msg.channel_id.to_string(),
        "message_id": msg.id.to_string(),
        "emoji": emoji,
        "burst": false,
        "type": 0,
    });
    let guild = world.channel(msg.channel_id).and_then(|c| world.guild_of(c));
    if let Some(g) = guild {
        d["guild_id"] = json!(g.to_string());
    }
    if add {
        d["burst_colors"] = json!([]);
        let (Author::User(author) | Author::Webhook { id: author, .. }) = &msg.author;
        d["message_author_id"] = json!(author.to_string());
        if let Some(g) = guild {
            d["member"] = world.member_json(g, user);
        }
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reaction_payloads_deserialize_as_serenity_reactions() {
        let (mut w, alice, ada, general) = crate::world::tests::world();
        let msg = w.insert_message(general, Author::User(ada), "hi".into()).unwrap();
        for (emoji, add) in [
            (json!({"id": null, "name": "👍"}), true),
            (
                json!({"id": "41771983429993937", "name": "LUL", "animated": false}),
                false,
            ),
        ] {
            let d = reaction_json(&w, &msg, alice, &emoji, add);
            let r: serenity::model::channel::Reaction =
                serde_json::from_value(d.clone()).unwrap_or_else(|e| panic!("{e}: {d}"));
            assert_eq!(r.user_id.map(|u| u.get()), Some(alice));
            assert_eq!(r.member.is_some(), add, "{d}");
            assert_eq!(r.message_author_id.map(|u| u.get()), add.then_some(ada));
        }
        let dm = w.open_dm(alice, ada).unwrap();
        let in_dm = w.insert_message(dm, Author::User(ada), "hi".into()).unwrap();
        let d = reaction_json(&w, &in_dm, alice, &json!({"id": null, "name": "👍"}), true);
        assert!(d.get("guild_id").is_none() && d.get("member").is_none(), "{d}");
    }

    #[test]
    fn a_bots_interaction_responses_are_its_own_messages() {
        let (mut w, alice, ada, general) = crate::world::tests::world();
        let hook = Author::Webhook {
            id: ada,
            username: "Ada".into(),
            avatar_url: None,
        };
        let response = w.insert_message(general, hook, "rolled".into()).unwrap();
        let human = w.insert_message(general, Author::User(alice), "hi".into()).unwrap();
        assert!(is_own(&response, ada) && !is_own(&response, alice));
        assert!(is_own(&human, alice) && !is_own(&human, ada));
    }
}
