//! Dispatches beyond MESSAGE_CREATE: MESSAGE_UPDATE, MESSAGE_DELETE, reaction events and
//! INTERACTION_CREATE, each sent only to the sessions Discord would send it to.

use serde_json::{json, Value};

use super::{intents, members, Gateway};
use crate::world::{ChannelKind, Message, World};

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
            let own = msg.author == crate::world::Author::User(session.bot_id);
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
