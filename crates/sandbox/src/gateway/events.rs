//! Dispatches that follow a message after its creation: MESSAGE_UPDATE, MESSAGE_DELETE,
//! MESSAGE_DELETE_BULK, MESSAGE_REACTION_ADD/REMOVE/REMOVE_ALL/REMOVE_EMOJI and
//! CHANNEL_PINS_UPDATE, each to the sessions whose bot sees the channel and asked for the intent;
//! and INTERACTION_CREATE, to the application's bot.
//! Payloads are built by pure functions so tests can check them against serenity's models.

use serde_json::{json, Value};

use super::{intents, members, Dispatch, Gateway};
use crate::render::emoji_json;
use crate::world::{Author, ChannelKind, Emoji, Message, World};

/// Whether `bot` wrote `msg`: as itself, or as its application answering an interaction (the
/// response's webhook ID is the application's, which is the bot's user ID). A bot always gets
/// its own messages' content.
pub(super) fn is_own(msg: &Message, bot: u64) -> bool {
    match &msg.author {
        Author::User(id) | Author::Webhook { id, .. } => *id == bot,
    }
}

/// GUILD_MESSAGE_REACTIONS.
pub const GUILD_MESSAGE_REACTIONS: u64 = 1 << 10;
/// DIRECT_MESSAGE_REACTIONS.
pub const DIRECT_MESSAGE_REACTIONS: u64 = 1 << 13;

/// Which family of intents an event belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// Message create/update/delete: GUILD_MESSAGES or DIRECT_MESSAGES.
    Messages,
    /// Reactions: GUILD_MESSAGE_REACTIONS or DIRECT_MESSAGE_REACTIONS.
    Reactions,
    /// Pins: GUILDS or DIRECT_MESSAGES.
    Pins,
}

/// The intent a session needs to receive `kind` from a guild channel (`dm` false) or a DM.
pub fn needed_intent(kind: EventKind, dm: bool) -> u64 {
    match (kind, dm) {
        (EventKind::Messages, false) => intents::GUILD_MESSAGES,
        (EventKind::Messages | EventKind::Pins, true) => intents::DIRECT_MESSAGES,
        (EventKind::Reactions, false) => GUILD_MESSAGE_REACTIONS,
        (EventKind::Reactions, true) => DIRECT_MESSAGE_REACTIONS,
        (EventKind::Pins, false) => intents::GUILDS,
    }
}

/// `channel_id`, plus `guild_id` outside DMs: the head every one of these events carries.
fn head(world: &World, channel_id: u64) -> Value {
    let mut d = json!({"channel_id": channel_id.to_string()});
    if let Some(g) = world.channel(channel_id).and_then(|c| world.guild_of(c)) {
        d["guild_id"] = json!(g.to_string());
    }
    d
}

/// MESSAGE_DELETE's payload.
pub fn message_delete(world: &World, channel_id: u64, id: u64) -> Value {
    let mut d = head(world, channel_id);
    d["id"] = json!(id.to_string());
    d
}

/// MESSAGE_DELETE_BULK's payload.
pub fn message_delete_bulk(world: &World, channel_id: u64, ids: &[u64]) -> Value {
    let mut d = head(world, channel_id);
    d["ids"] = json!(ids.iter().map(u64::to_string).collect::<Vec<_>>());
    d
}

/// MESSAGE_REACTION_ADD's payload (`member` in guilds, `message_author_id` when known).
pub fn reaction_add(world: &World, channel_id: u64, message_id: u64, user: u64, emoji: &Emoji) -> Value {
    let mut d = reaction_remove(world, channel_id, message_id, user, emoji);
    if d.get("guild_id").is_some() {
        d["member"] = world.member_json(user);
    }
    if let Some(author) = world.message_author(channel_id, message_id) {
        let id = match author {
            Author::User(u) => *u,
            Author::Webhook { id, .. } => *id,
        };
        d["message_author_id"] = json!(id.to_string());
    }
    d["burst_colors"] = json!([]);
    d
}

/// MESSAGE_REACTION_REMOVE's payload.
pub fn reaction_remove(world: &World, channel_id: u64, message_id: u64, user: u64, emoji: &Emoji) -> Value {
    let mut d = head(world, channel_id);
    d["message_id"] = json!(message_id.to_string());
    d["user_id"] = json!(user.to_string());
    d["emoji"] = emoji_json(emoji);
    d["burst"] = json!(false);
    d["type"] = json!(0);
    d
}

/// MESSAGE_REACTION_REMOVE_ALL's payload, or REMOVE_EMOJI's when `emoji` is given.
pub fn reaction_clear(world: &World, channel_id: u64, message_id: u64, emoji: Option<&Emoji>) -> Value {
    let mut d = head(world, channel_id);
    d["message_id"] = json!(message_id.to_string());
    if let Some(e) = emoji {
        d["emoji"] = emoji_json(e);
        // Not in Discord's REMOVE_EMOJI fields, but serenity 0.12 parses this event as a whole
        // reaction and drops it without them; extra fields harm no other client.
        d["burst"] = json!(false);
        d["type"] = json!(0);
    }
    d
}

/// CHANNEL_PINS_UPDATE's payload: the newest pin's time, or null when none is left.
pub fn pins_update(world: &World, channel_id: u64) -> Value {
    let mut d = head(world, channel_id);
    let last = world.channel(channel_id).and_then(|c| {
        c.messages
            .iter()
            .filter_map(|m| m.extra.pinned_unix_ms)
            .max()
            .map(|ms| crate::snowflake::iso8601(crate::snowflake::from_unix_ms(ms)))
    });
    d["last_pin_timestamp"] = json!(last);
    d
}

impl Gateway {
    /// Sends `t` with payload `d` to every session whose bot can see `channel_id` and has the
    /// intent for `kind`. Call with the world locked.
    pub fn dispatch_channel_event(&self, world: &World, channel_id: u64, kind: EventKind, t: &str, d: &Value) {
        let Some(channel) = world.channel(channel_id) else {
            return;
        };
        let needed = needed_intent(kind, matches!(channel.kind, ChannelKind::Dm { .. }));
        let mut sessions = self.sessions.lock().expect("gateway lock");
        let mut dispatch = None;
        for session in sessions.values_mut() {
            if session.intents & needed != 0 && session.receives(world, channel_id) {
                session.push(dispatch.get_or_insert_with(|| Dispatch::new(t, d)));
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
        let needed = needed_intent(EventKind::Messages, is_dm);
        let render = |content: bool| {
            let mut v = world.message_json(msg, content);
            members::add_message_members(world, msg, &mut v);
            Dispatch::new("MESSAGE_UPDATE", &v)
        };
        let (full, blank) = (render(true), render(false));
        let mut sessions = self.sessions.lock().expect("gateway lock");
        for session in sessions.values_mut() {
            if session.intents & needed == 0 || !session.receives(world, msg.channel_id) {
                continue;
            }
            let own = is_own(msg, session.bot_id);
            let content = session.intents & intents::MESSAGE_CONTENT != 0
                || is_dm
                || own
                || msg.mentions.contains(&session.bot_id);
            session.push(if content { &full } else { &blank });
        }
    }

    /// Sends MESSAGE_DELETE. Call with the world locked, the message already gone.
    pub fn dispatch_message_delete(&self, world: &World, channel_id: u64, message_id: u64) {
        let d = message_delete(world, channel_id, message_id);
        self.dispatch_channel_event(world, channel_id, EventKind::Messages, "MESSAGE_DELETE", &d);
    }

    /// Sends INTERACTION_CREATE to every session of the application's bot on the shard of the
    /// interaction's guild (shard 0 in DMs). Interactions need no intent.
    pub fn dispatch_interaction_create(&self, application_bot: u64, d: &Value) {
        let guild = d
            .get("guild_id")
            .and_then(Value::as_str)
            .and_then(|g| g.parse::<u64>().ok());
        let d = Dispatch::new("INTERACTION_CREATE", d);
        let mut sessions = self.sessions.lock().expect("gateway lock");
        for session in sessions
            .values_mut()
            .filter(|s| s.bot_id == application_bot && s.routes(guild))
        {
            session.push(&d);
        }
    }
}

#[cfg(test)]
mod tests {
    use serenity::model::event::{
        ChannelPinsUpdateEvent, MessageDeleteBulkEvent, MessageDeleteEvent, MessageUpdateEvent, ReactionAddEvent,
        ReactionRemoveAllEvent, ReactionRemoveEmojiEvent, ReactionRemoveEvent,
    };

    use super::*;
    use crate::world::tests::{text, world};

    fn parse<T: serde::de::DeserializeOwned>(v: Value) -> T {
        serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("{e}: {v}"))
    }

    #[test]
    fn payloads_deserialize_as_serenity_events() {
        let (mut w, alice, ada, general) = world();
        let m = w.post(general, Author::User(alice), text("x")).unwrap().message;
        let up = Emoji::Unicode("👍".into());
        w.add_reaction(general, m.id, ada, &up).unwrap();
        w.pin(general, m.id, ada, true).unwrap();
        let msg = w.channel(general).unwrap().messages[0].clone();
        let upd: MessageUpdateEvent = parse(w.message_json(&msg, true));
        assert_eq!(upd.id.get(), m.id);
        assert_eq!(upd.pinned, Some(true));
        assert_eq!(upd.reactions.map(|r| r.len()), Some(1));
        let del: MessageDeleteEvent = parse(message_delete(&w, general, m.id));
        assert_eq!(del.message_id.get(), m.id);
        assert!(del.guild_id.is_some());
        let bulk: MessageDeleteBulkEvent = parse(message_delete_bulk(&w, general, &[m.id, 7]));
        assert_eq!(bulk.ids.len(), 2);
        let add: ReactionAddEvent = parse(reaction_add(&w, general, m.id, ada, &up));
        assert_eq!(add.reaction.user_id.map(|u| u.get()), Some(ada));
        assert_eq!(add.reaction.message_author_id.map(|u| u.get()), Some(alice));
        assert_eq!(add.reaction.member.map(|mb| mb.user.id.get()), Some(ada));
        let rm: ReactionRemoveEvent = parse(reaction_remove(&w, general, m.id, ada, &up));
        assert_eq!(rm.reaction.message_id.get(), m.id);
        let _: ReactionRemoveAllEvent = parse(reaction_clear(&w, general, m.id, None));
        let e: ReactionRemoveEmojiEvent = parse(reaction_clear(&w, general, m.id, Some(&up)));
        assert_eq!(e.reaction.message_id.get(), m.id);
        let pins: ChannelPinsUpdateEvent = parse(pins_update(&w, general));
        assert!(pins.last_pin_timestamp.is_some());
    }

    #[test]
    fn dm_events_need_direct_intents() {
        assert_eq!(needed_intent(EventKind::Reactions, true), DIRECT_MESSAGE_REACTIONS);
        assert_eq!(needed_intent(EventKind::Reactions, false), GUILD_MESSAGE_REACTIONS);
        assert_eq!(needed_intent(EventKind::Pins, false), intents::GUILDS);
        assert_eq!(needed_intent(EventKind::Messages, true), intents::DIRECT_MESSAGES);
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
