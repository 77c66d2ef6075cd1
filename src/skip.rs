//! Messages an agent will not answer, recognised at the gateway edge before they are converted
//! and queued to the agent (pure).
//!
//! Every agent in a guild receives every message there, and answers few: with 100 agents, 99
//! of every 100 events an agent parses are not for it. The gateway edge glances at each message
//! (its channel, author, mentions, reply target and footer chain, no content) against the
//! agent's [`EdgeView`]; what certainly cannot concern the agent is passed on as [`Skipped`]
//! (its IDs, no text) instead of a converted message. The agent still finishes it, so cursors
//! move as before, and routes its skeleton ([`Skipped::skeleton`]) with its own rules, so the
//! reason it records is the one [`crate::routing::decide`] gives.
//!
//! The edge skips only in channels the agent already knows and does not listen in (so a channel
//! the agent learns later is never skipped on an old view), only while the agent is live (while
//! it connects or replays, its view is empty and everything is forwarded), and never a message whose chain the store
//! may raise ([`crate::acl::needs_recorded_chain`]), a DM, one in the bot-DMs channel, one that
//! mentions or replies to the agent, or `@everyone` when the agent answers it.

use std::collections::HashSet;

use crate::acl::{self, ChainLength};
use crate::message::Inbound;

/// What the gateway edge knows of an agent, published by the agent when it changes. While the
/// agent is not live (connecting or replaying) it publishes the default view, whose empty
/// `quiet` skips nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EdgeView {
    /// The agent's user IDs: its bot user, and its webhook if it speaks through one.
    pub me: Vec<u64>,
    /// Known channels where the agent does not answer everything: neither a listen channel (or
    /// one of their threads) nor the bot-DMs channel.
    pub quiet: HashSet<u64>,
    /// The agent answers `@everyone` and `@here` (`triggers.everyone`).
    pub everyone: bool,
}

/// An agent's [`EdgeView`], shared with its gateway edge: the agent publishes, the edge reads
/// it for every message.
#[derive(Debug, Default)]
pub struct SharedView(std::sync::RwLock<EdgeView>);

impl SharedView {
    /// Publishes `view` if it differs from the one published; returns whether it did.
    pub fn publish(&self, view: EdgeView) -> bool {
        if *self.0.read().unwrap_or_else(|p| p.into_inner()) == view {
            return false;
        }
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = view;
        true
    }

    /// Reads the published view.
    pub fn with<R>(&self, f: impl FnOnce(&EdgeView) -> R) -> R {
        f(&self.0.read().unwrap_or_else(|p| p.into_inner()))
    }
}

/// A message as the edge sees it: what routing reads, without the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Glance {
    /// What the agent is told if the message is skipped.
    pub message: Skipped,
    /// It mentions (notifies) one of the agent's IDs.
    pub mentions_me: bool,
    /// It replies to a message of one of the agent's IDs.
    pub replies_to_me: bool,
    /// `@everyone` or `@here` notified the channel.
    pub mention_everyone: bool,
    /// Its author (or webhook) is one of this troupe's agents.
    pub from_cast: bool,
}

/// A message skipped at the edge: enough to finish it and to route its skeleton.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Skipped {
    /// Snowflake.
    pub id: u64,
    /// Channel.
    pub channel_id: u64,
    /// Guild, `None` for a direct message.
    pub guild_id: Option<u64>,
    /// Author (the webhook ID for a webhook's message).
    pub author_id: u64,
    /// A bot user or a webhook wrote it.
    pub author_is_bot: bool,
    /// The webhook that posted it.
    pub webhook_id: Option<u64>,
    /// Its chain length from its embed footers ([`acl::chain_of_message`]); the store cannot
    /// raise it for a skipped message (see the module doc).
    pub chain: ChainLength,
}

impl EdgeView {
    /// Whether `id` is one of the agent's.
    pub fn is_me(&self, id: u64) -> bool {
        self.me.contains(&id)
    }

    /// The message as [`Skipped`] if the agent certainly will not answer it, else `None` (the
    /// edge converts and forwards it whole).
    pub fn skip(&self, g: &Glance) -> Option<Skipped> {
        let m = &g.message;
        let quiet_channel = m.guild_id.is_some() && self.quiet.contains(&m.channel_id);
        let addressed = g.mentions_me || g.replies_to_me || (g.mention_everyone && self.everyone);
        let chain_is_its_own = !acl::needs_recorded_chain(g.from_cast, m.author_is_bot, m.chain);
        let skipped = quiet_channel && !addressed && chain_is_its_own;
        skipped.then_some(*m)
    }
}

impl Skipped {
    /// The message with everything routing reads that the edge checked, and no text: routed
    /// with the agent's current rules, it is ignored for the reason the whole message would be.
    pub fn skeleton(&self) -> Inbound {
        Inbound {
            id: self.id,
            channel_id: self.channel_id,
            guild_id: self.guild_id,
            author_id: self.author_id,
            author_name: String::new(),
            author_is_bot: self.author_is_bot,
            webhook_id: self.webhook_id,
            content: String::new(),
            mentions: Vec::new(),
            mention_everyone: false,
            reply_to: None,
            footers: Vec::new(),
            chain: self.chain,
            attachments: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Triggers;
    use crate::routing::{self, Decision, Reason};

    const ME: u64 = 100;
    const QUIET: u64 = 10;
    const LISTEN: u64 = 11;
    const BOT_DMS: u64 = 12;
    const UNKNOWN: u64 = 13;
    const CAST_BOT: u64 = 200;

    fn view() -> EdgeView {
        EdgeView {
            me: vec![ME],
            quiet: [QUIET].into_iter().collect(),
            everyone: false,
        }
    }

    /// An unaddressed human message in the quiet channel, changed by `edit`.
    fn glance(edit: impl FnOnce(&mut Glance)) -> Glance {
        let mut g = Glance {
            message: Skipped {
                id: 1,
                channel_id: QUIET,
                guild_id: Some(5),
                author_id: 7,
                author_is_bot: false,
                webhook_id: None,
                chain: ChainLength::HUMAN,
            },
            mentions_me: false,
            replies_to_me: false,
            mention_everyone: false,
            from_cast: false,
        };
        edit(&mut g);
        g
    }

    fn human() -> Glance {
        glance(|_| {})
    }

    /// A message of one of the cast's bots (`author`), with chain `chain`.
    fn cast(author: u64, chain: u8) -> Glance {
        glance(|g| {
            g.message.author_id = author;
            g.message.author_is_bot = true;
            g.message.chain = ChainLength::new(chain).unwrap();
            g.from_cast = true;
        })
    }

    #[test]
    fn a_view_is_published_only_when_it_changes() {
        let shared = SharedView::default();
        assert!(
            shared.with(|v| v.skip(&human()).is_none()),
            "nothing published: nothing skipped"
        );
        assert!(shared.publish(view()));
        assert!(!shared.publish(view()), "unchanged");
        assert!(shared.with(|v| v.skip(&human()).is_some()));
        assert!(shared.publish(EdgeView::default()), "not live any more");
        assert!(shared.with(|v| v.skip(&human()).is_none()));
    }

    #[test]
    fn an_unaddressed_human_message_in_a_quiet_channel_is_skipped() {
        let s = view().skip(&human()).expect("skipped");
        assert_eq!(s, human().message);
    }

    #[test]
    fn anything_that_may_concern_the_agent_is_forwarded() {
        let cases: Vec<(&str, Glance)> = vec![
            ("mentions me", glance(|g| g.mentions_me = true)),
            ("replies to me", glance(|g| g.replies_to_me = true)),
            ("a DM", glance(|g| g.message.guild_id = None)),
            ("a listen channel", glance(|g| g.message.channel_id = LISTEN)),
            ("the bot-DMs channel", glance(|g| g.message.channel_id = BOT_DMS)),
            ("a channel not known yet", glance(|g| g.message.channel_id = UNKNOWN)),
            (
                "a foreign bot (its chain may be recorded)",
                glance(|g| {
                    g.message.author_is_bot = true;
                    g.message.chain = ChainLength::new(1).unwrap();
                }),
            ),
            (
                "a human with a footer",
                glance(|g| g.message.chain = ChainLength::new(2).unwrap()),
            ),
        ];
        for (what, g) in cases {
            assert_eq!(view().skip(&g), None, "{what}");
        }
        assert_eq!(
            EdgeView::default().skip(&human()),
            None,
            "not live: everything is forwarded"
        );
        let everyone = EdgeView {
            everyone: true,
            ..view()
        };
        let at_everyone = glance(|g| g.mention_everyone = true);
        assert_eq!(everyone.skip(&at_everyone), None);
        assert!(view().skip(&at_everyone).is_some(), "@everyone off: not addressed");
    }

    #[test]
    fn the_casts_own_bots_are_skipped_unless_they_address_the_agent() {
        assert!(view().skip(&cast(CAST_BOT, 2)).is_some());
        let mut addressed = cast(CAST_BOT, 2);
        addressed.mentions_me = true;
        assert!(view().skip(&addressed).is_none());
        assert!(view().skip(&cast(ME, 2)).is_some(), "the agent's own replies");
    }

    /// What the edge skips, routing ignores, for the reason the whole message gets.
    #[test]
    fn a_skeleton_is_routed_as_the_whole_message_would_be() {
        let triggers = Triggers {
            mention: true,
            dm: true,
            reply: true,
            channels: vec![],
            everyone: false,
        };
        let decide = |m: &Inbound, writable: bool| {
            let w = move |_: u64| writable;
            let ctx = routing::Context {
                me: &[ME],
                triggers: &triggers,
                listen_channels: &[LISTEN],
                bot_dms: Some(BOT_DMS),
                writable: &w,
                max_chain: acl::DEFAULT_MAX_CHAIN,
            };
            routing::decide(&ctx, m, m.chain)
        };
        let cases = [
            (human(), true, Reason::NotAddressed),
            (human(), false, Reason::NoPermission),
            (glance(|g| g.mention_everyone = true), true, Reason::NotAddressed),
            (cast(ME, 1), true, Reason::OwnMessage),
            (cast(CAST_BOT, 1), true, Reason::UnaddressedBot),
            (cast(CAST_BOT, acl::DEFAULT_MAX_CHAIN.get()), true, Reason::ChainLimit),
        ];
        for (g, writable, reason) in cases {
            let skipped = view().skip(&g).expect("skipped");
            let mut whole = skipped.skeleton();
            whole.author_name = "someone".into();
            whole.content = "words, <@300>".into();
            whole.mentions = vec![300];
            whole.mention_everyone = g.mention_everyone;
            assert_eq!(decide(&skipped.skeleton(), writable), Decision::Ignore(reason), "{g:?}");
            assert_eq!(decide(&whole, writable), Decision::Ignore(reason), "{g:?}");
        }
    }
}
