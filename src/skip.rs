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
//! it connects or replays, everything is forwarded), and never a message whose chain the store
//! may raise ([`crate::acl::needs_recorded_chain`]), a DM, one in the bot-DMs channel, one that
//! mentions or replies to the agent, or `@everyone` when the agent answers it.

use std::collections::HashSet;

use crate::acl::{self, ChainLength};
use crate::message::Inbound;

/// What the gateway edge knows of an agent, published by the agent when it changes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EdgeView {
    /// The agent is live (not connecting or replaying); nothing is skipped otherwise.
    pub live: bool,
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
    /// It mentions (notifies) one of the agent's IDs.
    pub mentions_me: bool,
    /// It replies to a message of one of the agent's IDs.
    pub replies_to_me: bool,
    /// `@everyone` or `@here` notified the channel.
    pub mention_everyone: bool,
    /// Its chain length from its embed footers ([`acl::chain_of_message`]).
    pub chain: ChainLength,
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
    /// Guild.
    pub guild_id: Option<u64>,
    /// Author.
    pub author_id: u64,
    /// A bot user or a webhook wrote it.
    pub author_is_bot: bool,
    /// The webhook that posted it.
    pub webhook_id: Option<u64>,
    /// Its chain length from its footers (the store cannot raise it: see the module doc).
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
        let skipped = self.live
            && g.guild_id.is_some()
            && self.quiet.contains(&g.channel_id)
            && !g.mentions_me
            && !g.replies_to_me
            && !(g.mention_everyone && self.everyone)
            && !acl::needs_recorded_chain(g.from_cast, g.author_is_bot, g.chain);
        skipped.then_some(Skipped {
            id: g.id,
            channel_id: g.channel_id,
            guild_id: g.guild_id,
            author_id: g.author_id,
            author_is_bot: g.author_is_bot,
            webhook_id: g.webhook_id,
            chain: g.chain,
        })
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
            live: true,
            me: vec![ME],
            quiet: [QUIET].into_iter().collect(),
            everyone: false,
        }
    }

    fn human() -> Glance {
        Glance {
            id: 1,
            channel_id: QUIET,
            guild_id: Some(5),
            author_id: 7,
            author_is_bot: false,
            webhook_id: None,
            mentions_me: false,
            replies_to_me: false,
            mention_everyone: false,
            chain: ChainLength::HUMAN,
            from_cast: false,
        }
    }

    #[test]
    fn a_view_is_published_only_when_it_changes() {
        let shared = SharedView::default();
        assert!(!shared.with(|v| v.live));
        assert!(shared.publish(view()));
        assert!(!shared.publish(view()), "unchanged");
        assert!(shared.with(|v| v.skip(&human()).is_some()));
        assert!(shared.publish(EdgeView { live: false, ..view() }));
        assert!(shared.with(|v| v.skip(&human()).is_none()));
    }

    #[test]
    fn an_unaddressed_human_message_in_a_quiet_channel_is_skipped() {
        let s = view().skip(&human()).expect("skipped");
        assert_eq!((s.id, s.channel_id, s.author_id), (1, QUIET, 7));
    }

    #[test]
    fn anything_that_may_concern_the_agent_is_forwarded() {
        let v = view();
        let cases: Vec<(&str, Glance)> = vec![
            (
                "mentions me",
                Glance {
                    mentions_me: true,
                    ..human()
                },
            ),
            (
                "replies to me",
                Glance {
                    replies_to_me: true,
                    ..human()
                },
            ),
            (
                "a DM",
                Glance {
                    guild_id: None,
                    ..human()
                },
            ),
            (
                "a listen channel",
                Glance {
                    channel_id: LISTEN,
                    ..human()
                },
            ),
            (
                "the bot-DMs channel",
                Glance {
                    channel_id: BOT_DMS,
                    ..human()
                },
            ),
            (
                "a channel not known yet",
                Glance {
                    channel_id: UNKNOWN,
                    ..human()
                },
            ),
            (
                "a foreign bot (its chain may be recorded)",
                Glance {
                    author_is_bot: true,
                    chain: ChainLength::new(1).unwrap(),
                    ..human()
                },
            ),
            (
                "a human with a footer",
                Glance {
                    chain: ChainLength::new(2).unwrap(),
                    ..human()
                },
            ),
        ];
        for (what, g) in cases {
            assert_eq!(v.skip(&g), None, "{what}");
        }
        let not_live = EdgeView { live: false, ..view() };
        assert_eq!(not_live.skip(&human()), None, "not live: everything is forwarded");
        let everyone = EdgeView {
            everyone: true,
            ..view()
        };
        assert_eq!(
            everyone.skip(&Glance {
                mention_everyone: true,
                ..human()
            }),
            None
        );
        assert!(
            view()
                .skip(&Glance {
                    mention_everyone: true,
                    ..human()
                })
                .is_some(),
            "@everyone off: not addressed"
        );
    }

    #[test]
    fn the_casts_own_bots_are_skipped_unless_they_address_the_agent() {
        let cast = Glance {
            author_id: CAST_BOT,
            author_is_bot: true,
            chain: ChainLength::new(2).unwrap(),
            from_cast: true,
            ..human()
        };
        assert!(view().skip(&cast).is_some());
        assert!(view()
            .skip(&Glance {
                mentions_me: true,
                ..cast
            })
            .is_none());
        let own = Glance { author_id: ME, ..cast };
        assert!(view().skip(&own).is_some(), "the agent's own replies");
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
            (
                Glance {
                    mention_everyone: true,
                    ..human()
                },
                true,
                Reason::NotAddressed,
            ),
            (
                Glance {
                    author_id: ME,
                    author_is_bot: true,
                    chain: ChainLength::new(1).unwrap(),
                    from_cast: true,
                    ..human()
                },
                true,
                Reason::OwnMessage,
            ),
            (
                Glance {
                    author_id: CAST_BOT,
                    author_is_bot: true,
                    chain: ChainLength::new(1).unwrap(),
                    from_cast: true,
                    ..human()
                },
                true,
                Reason::UnaddressedBot,
            ),
            (
                Glance {
                    author_id: CAST_BOT,
                    author_is_bot: true,
                    chain: acl::DEFAULT_MAX_CHAIN,
                    from_cast: true,
                    ..human()
                },
                true,
                Reason::ChainLimit,
            ),
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
