//! Which messages an agent processes, and which conversation they belong to. Pure functions.

use crate::acl::{self, ChainLength};
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
    /// The agent wrote it (as its bot user or through its webhook).
    OwnMessage,
    /// Its agent chain is already at the limit.
    ChainLimit,
    /// The agent cannot view or send in that channel.
    NoPermission,
    /// In the bot-DMs channel, a bot message that neither mentions nor replies to the agent.
    BotDmsNotAddressed,
    /// Another bot wrote it and did not address the agent.
    UnaddressedBot,
    /// A direct message.
    DirectMessage,
    /// The agent is mentioned.
    Mentioned,
    /// `@everyone` or `@here`, and the agent's triggers accept them.
    Everyone,
    /// It replies to one of the agent's messages.
    ReplyToAgent,
    /// A human wrote in the bot-DMs channel.
    BotDmsHuman,
    /// The channel is one where the agent answers everything.
    ListenChannel,
    /// Nothing addresses the agent.
    NotAddressed,
    /// The agent's triggers turn this kind of message off.
    TriggerDisabled,
    /// A bot or webhook outside the cast, in a channel where the agents already answered such
    /// authors `[discord] bot_replies_per_window` times within the window (`loopguard`).
    BotExchangeLimit,
}

impl Reason {
    /// Every reason (metrics create a series for each at start).
    pub const ALL: [Reason; 14] = [
        Reason::OwnMessage,
        Reason::ChainLimit,
        Reason::NoPermission,
        Reason::BotDmsNotAddressed,
        Reason::UnaddressedBot,
        Reason::DirectMessage,
        Reason::Mentioned,
        Reason::Everyone,
        Reason::ReplyToAgent,
        Reason::BotDmsHuman,
        Reason::ListenChannel,
        Reason::NotAddressed,
        Reason::TriggerDisabled,
        Reason::BotExchangeLimit,
    ];

    /// Whether [`decide`] gives this reason to messages it answers ([`Decision::Process`]) or to
    /// those it does not ([`Decision::Ignore`]).
    pub fn answers(self) -> bool {
        match self {
            Reason::DirectMessage
            | Reason::Mentioned
            | Reason::Everyone
            | Reason::ReplyToAgent
            | Reason::BotDmsHuman
            | Reason::ListenChannel => true,
            Reason::OwnMessage
            | Reason::ChainLimit
            | Reason::NoPermission
            | Reason::BotDmsNotAddressed
            | Reason::UnaddressedBot
            | Reason::NotAddressed
            | Reason::TriggerDisabled
            | Reason::BotExchangeLimit => false,
        }
    }

    /// Short label for logs and metrics.
    pub fn label(self) -> &'static str {
        match self {
            Reason::OwnMessage => "own_message",
            Reason::ChainLimit => "chain_limit",
            Reason::NoPermission => "no_permission",
            Reason::BotDmsNotAddressed => "bot_dms_not_addressed",
            Reason::UnaddressedBot => "unaddressed_bot",
            Reason::DirectMessage => "direct_message",
            Reason::Mentioned => "mentioned",
            Reason::Everyone => "everyone",
            Reason::ReplyToAgent => "reply_to_agent",
            Reason::BotDmsHuman => "bot_dms_human",
            Reason::ListenChannel => "listen_channel",
            Reason::NotAddressed => "not_addressed",
            Reason::TriggerDisabled => "trigger_disabled",
            Reason::BotExchangeLimit => "bot_exchange_limit",
        }
    }
}

/// What an agent knows when deciding: who it is and where it may speak.
#[derive(Clone, Copy)]
pub struct Context<'a> {
    /// The agent's user IDs: its bot user, and its webhook if it speaks through one.
    pub me: &'a [u64],
    /// Its triggers.
    pub triggers: &'a Triggers,
    /// Resolved IDs of `triggers.channels`.
    pub listen_channels: &'a [u64],
    /// The bot-DMs channel, if the deployment has one.
    pub bot_dms: Option<u64>,
    /// Guild channels where the agent can both view and send; messages elsewhere in guilds are
    /// not processed (checked before trying, not by failing).
    pub writable: &'a (dyn Fn(u64) -> bool + Sync),
    /// Longest agent chain.
    pub max_chain: ChainLength,
}

/// Whether the agent processes message `m`, whose agent chain length is `chain`.
pub fn decide(ctx: &Context<'_>, m: &Inbound, chain: ChainLength) -> Decision {
    use Decision::{Ignore, Process};
    if ctx.me.contains(&m.author_id) {
        return Ignore(Reason::OwnMessage);
    }
    if !acl::should_process_inbound(chain, ctx.max_chain) {
        return Ignore(Reason::ChainLimit);
    }
    if !m.is_dm() && !(ctx.writable)(m.channel_id) {
        return Ignore(Reason::NoPermission);
    }
    let t = ctx.triggers;
    let on = |enabled: bool, reason: Reason| {
        if enabled {
            Process(reason)
        } else {
            Ignore(Reason::TriggerDisabled)
        }
    };
    let mentioned = m.mentions.iter().any(|u| ctx.me.contains(u));
    let replied = m
        .reply_to
        .as_ref()
        .and_then(|r| r.author_id)
        .is_some_and(|a| ctx.me.contains(&a));
    if ctx.bot_dms == Some(m.channel_id) {
        // Bot-DMs: only messages that address this agent, or come from a human.
        return if mentioned {
            on(t.mention, Reason::Mentioned)
        } else if replied {
            on(t.reply, Reason::ReplyToAgent)
        } else if !m.author_is_bot {
            Process(Reason::BotDmsHuman)
        } else {
            Ignore(Reason::BotDmsNotAddressed)
        };
    }
    if m.is_dm() {
        return on(t.dm, Reason::DirectMessage);
    }
    if mentioned {
        return on(t.mention, Reason::Mentioned);
    }
    if replied {
        return on(t.reply, Reason::ReplyToAgent);
    }
    if m.author_is_bot {
        return Ignore(Reason::UnaddressedBot);
    }
    if m.mention_everyone && t.everyone {
        return Process(Reason::Everyone);
    }
    if ctx.listen_channels.contains(&m.channel_id) {
        return Process(Reason::ListenChannel);
    }
    Ignore(Reason::NotAddressed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::ReplyRef;

    const ME: u64 = 100;
    const HOOK: u64 = 101;
    const BOT_DMS: u64 = 50;
    const HIDDEN: u64 = 60;

    fn triggers() -> Triggers {
        Triggers {
            mention: true,
            dm: true,
            reply: true,
            channels: vec![],
            everyone: false,
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
            chain: ChainLength::HUMAN,
            attachments: Vec::new(),
        }
    }

    fn decide_with(t: &Triggers, listen: &[u64], m: &Inbound, chain: u8) -> Decision {
        let writable = |c: u64| c != HIDDEN;
        let ctx = Context {
            me: &[ME, HOOK],
            triggers: t,
            listen_channels: listen,
            bot_dms: Some(BOT_DMS),
            writable: &writable,
            max_chain: acl::DEFAULT_MAX_CHAIN,
        };
        decide(&ctx, m, ChainLength::new(chain).unwrap())
    }

    fn d(m: &Inbound) -> Decision {
        decide_with(&triggers(), &[], m, 0)
    }

    fn reply_to_me() -> Option<ReplyRef> {
        Some(ReplyRef {
            message_id: 9,
            author_id: Some(ME),
        })
    }

    #[test]
    fn own_messages_are_never_processed_bot_user_or_webhook() {
        assert_eq!(
            d(&Inbound {
                author_id: ME,
                mentions: vec![ME],
                ..msg()
            }),
            Decision::Ignore(Reason::OwnMessage)
        );
        assert_eq!(
            d(&Inbound {
                author_id: HOOK,
                author_is_bot: true,
                ..msg()
            }),
            Decision::Ignore(Reason::OwnMessage)
        );
    }

    #[test]
    fn mention_dm_reply_and_listen_channels_trigger() {
        assert_eq!(
            d(&Inbound {
                mentions: vec![ME],
                ..msg()
            }),
            Decision::Process(Reason::Mentioned)
        );
        assert_eq!(
            d(&Inbound {
                guild_id: None,
                ..msg()
            }),
            Decision::Process(Reason::DirectMessage)
        );
        assert_eq!(
            d(&Inbound {
                reply_to: reply_to_me(),
                ..msg()
            }),
            Decision::Process(Reason::ReplyToAgent)
        );
        let to_webhook = Inbound {
            reply_to: Some(ReplyRef {
                message_id: 9,
                author_id: Some(HOOK),
            }),
            ..msg()
        };
        assert_eq!(d(&to_webhook), Decision::Process(Reason::ReplyToAgent));
        assert_eq!(d(&msg()), Decision::Ignore(Reason::NotAddressed));
        assert_eq!(
            decide_with(&triggers(), &[10], &msg(), 0),
            Decision::Process(Reason::ListenChannel)
        );
    }

    #[test]
    fn everyone_and_here_trigger_only_when_configured() {
        let m = Inbound {
            mention_everyone: true,
            content: "@everyone hi".into(),
            ..msg()
        };
        assert_eq!(d(&m), Decision::Ignore(Reason::NotAddressed));
        let t = Triggers {
            everyone: true,
            ..triggers()
        };
        assert_eq!(decide_with(&t, &[], &m, 0), Decision::Process(Reason::Everyone));
    }

    #[test]
    fn bots_must_address_the_agent_outside_bot_dms() {
        let bot = Inbound {
            author_is_bot: true,
            ..msg()
        };
        assert_eq!(
            decide_with(&triggers(), &[10], &bot, 1),
            Decision::Ignore(Reason::UnaddressedBot)
        );
        let everyone = Inbound {
            mention_everyone: true,
            ..bot.clone()
        };
        let t = Triggers {
            everyone: true,
            ..triggers()
        };
        assert_eq!(
            decide_with(&t, &[], &everyone, 1),
            Decision::Ignore(Reason::UnaddressedBot)
        );
        assert_eq!(
            decide_with(
                &triggers(),
                &[],
                &Inbound {
                    mentions: vec![ME],
                    ..bot.clone()
                },
                1
            ),
            Decision::Process(Reason::Mentioned)
        );
        assert_eq!(
            decide_with(
                &triggers(),
                &[],
                &Inbound {
                    reply_to: reply_to_me(),
                    ..bot
                },
                1
            ),
            Decision::Process(Reason::ReplyToAgent)
        );
    }

    #[test]
    fn bot_dms_channel_rules() {
        let here = Inbound {
            channel_id: BOT_DMS,
            ..msg()
        };
        assert_eq!(d(&here), Decision::Process(Reason::BotDmsHuman));
        let bot = Inbound {
            author_is_bot: true,
            ..here.clone()
        };
        assert_eq!(
            decide_with(&triggers(), &[], &bot, 1),
            Decision::Ignore(Reason::BotDmsNotAddressed)
        );
        assert_eq!(
            decide_with(
                &triggers(),
                &[],
                &Inbound {
                    mentions: vec![ME],
                    ..bot.clone()
                },
                1
            ),
            Decision::Process(Reason::Mentioned)
        );
        assert_eq!(
            decide_with(
                &triggers(),
                &[],
                &Inbound {
                    reply_to: reply_to_me(),
                    ..bot.clone()
                },
                2
            ),
            Decision::Process(Reason::ReplyToAgent)
        );
        let to_other = Inbound {
            reply_to: Some(ReplyRef {
                message_id: 9,
                author_id: Some(555),
            }),
            ..bot
        };
        assert_eq!(
            decide_with(&triggers(), &[], &to_other, 1),
            Decision::Ignore(Reason::BotDmsNotAddressed)
        );
    }

    #[test]
    fn chain_at_the_limit_is_not_processed() {
        let m = Inbound {
            mentions: vec![ME],
            author_is_bot: true,
            ..msg()
        };
        assert_eq!(
            decide_with(&triggers(), &[], &m, 3),
            Decision::Process(Reason::Mentioned)
        );
        assert_eq!(
            decide_with(&triggers(), &[], &m, 4),
            Decision::Ignore(Reason::ChainLimit)
        );
        assert_eq!(
            decide_with(&triggers(), &[], &m, 9),
            Decision::Ignore(Reason::ChainLimit)
        );
    }

    #[test]
    fn channels_without_permission_are_skipped_but_dms_are_not() {
        let m = Inbound {
            channel_id: HIDDEN,
            mentions: vec![ME],
            ..msg()
        };
        assert_eq!(d(&m), Decision::Ignore(Reason::NoPermission));
        assert_eq!(
            d(&Inbound { guild_id: None, ..m }),
            Decision::Process(Reason::DirectMessage)
        );
    }

    #[test]
    fn disabled_triggers_silence() {
        let t = Triggers {
            mention: false,
            dm: false,
            ..triggers()
        };
        assert_eq!(
            decide_with(
                &t,
                &[],
                &Inbound {
                    mentions: vec![ME],
                    ..msg()
                },
                0
            ),
            Decision::Ignore(Reason::TriggerDisabled)
        );
        assert_eq!(
            decide_with(
                &t,
                &[],
                &Inbound {
                    guild_id: None,
                    ..msg()
                },
                0
            ),
            Decision::Ignore(Reason::TriggerDisabled)
        );
    }

    #[test]
    fn every_reason_is_listed_once_with_its_own_label() {
        let labels: std::collections::HashSet<&str> = Reason::ALL.iter().map(|r| r.label()).collect();
        assert_eq!(labels.len(), Reason::ALL.len());
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
