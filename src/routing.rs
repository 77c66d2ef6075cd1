//! Which messages an agent processes, and which conversation they belong to. Pure functions.

use crate::config::{MemoryMode, Triggers};
use crate::message::Inbound;

/// The conversation a message belongs to, per agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ConversationKey {
    /// Everyone in a channel shares one conversation.
    Channel(u64),
    /// One conversation per user per channel.
    ChannelUser(u64, u64),
    /// One conversation per user across channels (DMs are always this).
    User(u64),
}

impl ConversationKey {
    /// The key for a message under a memory mode. DMs are always keyed by user.
    pub fn for_message(mode: MemoryMode, m: &Inbound) -> Self {
        if m.is_dm() {
            return ConversationKey::User(m.author_id);
        }
        match mode {
            MemoryMode::Channel => ConversationKey::Channel(m.channel_id),
            MemoryMode::ChannelUser => ConversationKey::ChannelUser(m.channel_id, m.author_id),
            MemoryMode::User => ConversationKey::User(m.author_id),
        }
    }
}

/// Why a message is or is not processed (logged with `--debug`, counted in metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// The agent answers.
    Process(Reason),
    /// The agent stays silent.
    Ignore(Reason),
}

/// The rule that decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// The agent wrote it.
    OwnMessage,
    /// Another bot wrote it and did not address the agent.
    UnaddressedBot,
    /// A direct message.
    DirectMessage,
    /// The agent is mentioned.
    Mentioned,
    /// It replies to one of the agent's messages.
    ReplyToAgent,
    /// The channel is one where the agent answers everything.
    ListenChannel,
    /// Nothing addresses the agent.
    NotAddressed,
    /// The agent's triggers turn this kind of message off.
    TriggerDisabled,
}

impl Reason {
    /// Short label for logs and metrics.
    pub fn label(self) -> &'static str {
        match self {
            Reason::OwnMessage => "own_message",
            Reason::UnaddressedBot => "unaddressed_bot",
            Reason::DirectMessage => "direct_message",
            Reason::Mentioned => "mentioned",
            Reason::ReplyToAgent => "reply_to_agent",
            Reason::ListenChannel => "listen_channel",
            Reason::NotAddressed => "not_addressed",
            Reason::TriggerDisabled => "trigger_disabled",
        }
    }
}

/// Whether agent `me` processes message `m`. `listen_channels` are the resolved IDs of
/// `triggers.channels`.
pub fn decide(me: u64, triggers: &Triggers, listen_channels: &[u64], m: &Inbound) -> Decision {
    if m.author_id == me {
        return Decision::Ignore(Reason::OwnMessage);
    }
    let mentioned = m.mentions.contains(&me);
    let replied = m.reply_to.as_ref().is_some_and(|r| r.author_id == Some(me));
    if m.author_is_bot && !mentioned && !replied && !m.is_dm() {
        return Decision::Ignore(Reason::UnaddressedBot);
    }
    if m.is_dm() {
        return if triggers.dm {
            Decision::Process(Reason::DirectMessage)
        } else {
            Decision::Ignore(Reason::TriggerDisabled)
        };
    }
    if mentioned {
        return if triggers.mention {
            Decision::Process(Reason::Mentioned)
        } else {
            Decision::Ignore(Reason::TriggerDisabled)
        };
    }
    if replied {
        return if triggers.reply {
            Decision::Process(Reason::ReplyToAgent)
        } else {
            Decision::Ignore(Reason::TriggerDisabled)
        };
    }
    if listen_channels.contains(&m.channel_id) {
        return Decision::Process(Reason::ListenChannel);
    }
    Decision::Ignore(Reason::NotAddressed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::ReplyRef;

    const ME: u64 = 100;

    fn triggers() -> Triggers {
        Triggers {
            mention: true,
            dm: true,
            reply: true,
            channels: vec![],
        }
    }

    fn msg() -> Inbound {
        Inbound {
            id: 1,
            channel_id: 10,
            guild_id: Some(5),
            author_id: 7,
            author_name: "alice".into(),
            author_is_bot: false,
            webhook_id: None,
            content: "hi".into(),
            mentions: vec![],
            mention_everyone: false,
            reply_to: None,
            footers: vec![],
        }
    }

    #[test]
    fn own_messages_are_never_processed() {
        let m = Inbound {
            author_id: ME,
            mentions: vec![ME],
            ..msg()
        };
        assert_eq!(decide(ME, &triggers(), &[10], &m), Decision::Ignore(Reason::OwnMessage));
    }

    #[test]
    fn mention_dm_and_reply_trigger() {
        let t = triggers();
        assert_eq!(
            decide(
                ME,
                &t,
                &[],
                &Inbound {
                    mentions: vec![ME],
                    ..msg()
                }
            ),
            Decision::Process(Reason::Mentioned)
        );
        assert_eq!(
            decide(
                ME,
                &t,
                &[],
                &Inbound {
                    guild_id: None,
                    ..msg()
                }
            ),
            Decision::Process(Reason::DirectMessage)
        );
        let reply = Inbound {
            reply_to: Some(ReplyRef {
                message_id: 9,
                author_id: Some(ME),
            }),
            ..msg()
        };
        assert_eq!(decide(ME, &t, &[], &reply), Decision::Process(Reason::ReplyToAgent));
        assert_eq!(decide(ME, &t, &[], &msg()), Decision::Ignore(Reason::NotAddressed));
        assert_eq!(decide(ME, &t, &[10], &msg()), Decision::Process(Reason::ListenChannel));
    }

    #[test]
    fn everyone_is_not_a_mention() {
        let m = Inbound {
            mention_everyone: true,
            content: "@everyone hi".into(),
            ..msg()
        };
        assert_eq!(decide(ME, &triggers(), &[], &m), Decision::Ignore(Reason::NotAddressed));
    }

    #[test]
    fn bots_must_address_the_agent() {
        let bot = Inbound {
            author_is_bot: true,
            ..msg()
        };
        assert_eq!(
            decide(ME, &triggers(), &[10], &bot),
            Decision::Ignore(Reason::UnaddressedBot)
        );
        let addressed = Inbound {
            mentions: vec![ME],
            ..bot
        };
        assert_eq!(
            decide(ME, &triggers(), &[], &addressed),
            Decision::Process(Reason::Mentioned)
        );
    }

    #[test]
    fn disabled_triggers_silence() {
        let t = Triggers {
            mention: false,
            dm: false,
            reply: true,
            channels: vec![],
        };
        assert_eq!(
            decide(
                ME,
                &t,
                &[],
                &Inbound {
                    mentions: vec![ME],
                    ..msg()
                }
            ),
            Decision::Ignore(Reason::TriggerDisabled)
        );
        assert_eq!(
            decide(
                ME,
                &t,
                &[],
                &Inbound {
                    guild_id: None,
                    ..msg()
                }
            ),
            Decision::Ignore(Reason::TriggerDisabled)
        );
    }

    #[test]
    fn dms_are_keyed_by_user_whatever_the_mode() {
        let dm = Inbound {
            guild_id: None,
            ..msg()
        };
        assert_eq!(
            ConversationKey::for_message(MemoryMode::Channel, &dm),
            ConversationKey::User(7)
        );
        assert_eq!(
            ConversationKey::for_message(MemoryMode::Channel, &msg()),
            ConversationKey::Channel(10)
        );
        assert_eq!(
            ConversationKey::for_message(MemoryMode::ChannelUser, &msg()),
            ConversationKey::ChannelUser(10, 7)
        );
    }
}
