//! Messages in gateway order: a serenity collector, which the shard runner calls inline for each
//! event before it spawns the event handlers, forwards MESSAGE_CREATE in the order the gateway
//! sent them; the event handler forwards only what no collector did.
//!
//! Why: serenity 0.12 dispatches every event handler (and raw event handler) on its own task, so
//! two messages can reach the handler in either order. Its collectors are the one hook it runs
//! on the shard runner's own task, in order (`ShardRunner::run`: `collectors.retain_mut(..)` then
//! `dispatch_model`). A collector is installed from an event handler ([`OrderedSource::install`]),
//! so for a moment after each new session (between READY and the handler's task running) no
//! collector is there: the handler then forwards those messages itself, so none is lost, only
//! not guaranteed ordered. A new shard runner (after a re-identify) starts with no collectors,
//! hence the install at every stage change, READY and RESUMED; the newest collector of a shard
//! supersedes that shard's older ones (a superseded one removes itself at its next event), so
//! an event is never forwarded twice.
//!
//! THREAD_CREATE, CHANNEL_CREATE and CHANNEL_UPDATE go the same way: Discord sends them before
//! the first message they concern, and an agent that received such a message before the
//! channel would not know it (a thread of a listen channel is answered without a mention, and
//! no message is answered in a channel the agent cannot tell it may write in). Announced from
//! their handler tasks, a message forwarded inline could overtake them.
//!
//! The collector also glances at each message against the agent's published view
//! ([`crate::skip`]): a message the agent certainly will not answer goes on as
//! [`GatewayEvent::Skipped`], its IDs without its text, instead of being converted.
//!
//! When handler tasks pile up faster than the runtime runs them, the collector holds its runner
//! back before handing on the next message ([`backlog`]).
//!
//! With several shards, each shard runner has its own collector and order holds per shard:
//! a channel belongs to one guild, and a guild (or the DMs, shard 0) to one shard, so every
//! channel's messages still arrive in gateway order. Messages of two shards have no order
//! between them, as on Discord.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serenity::all::{ChannelType, GuildChannel, UserId};
use serenity::gateway::{CollectorCallback, ShardMessenger};
use serenity::model::event::Event;

use super::gateway::{EventSink, GatewayEvent};
use super::threads::ThreadParents;
use super::{backlog, convert};
use crate::skip::SharedView;

/// What the edge needs to skip messages: the agent's published view, and who is in the cast.
#[derive(Clone)]
pub struct Edge {
    /// The agent's view, published by the agent.
    pub view: Arc<SharedView>,
    /// Whether a user or webhook ID is one of this troupe's agents.
    pub is_cast: Arc<dyn Fn(u64) -> bool + Send + Sync>,
}

impl std::fmt::Debug for Edge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Edge").field("view", &self.view).finish_non_exhaustive()
    }
}

impl Edge {
    /// An edge that skips nothing (its view stays empty).
    pub fn none() -> Self {
        Self {
            view: Arc::default(),
            is_cast: Arc::new(|_| false),
        }
    }

    /// The event for a message: [`GatewayEvent::Skipped`] when the agent's view skips it,
    /// otherwise the converted message.
    pub fn event(&self, m: &serenity::all::Message) -> GatewayEvent {
        let skipped = self.view.with(|v| {
            if v.quiet.is_empty() {
                return None; // not live: nothing to glance for
            }
            v.skip(&convert::glance(m, |id| v.is_me(id), |id| (self.is_cast)(id)))
        });
        match skipped {
            Some(s) => GatewayEvent::Skipped(s),
            None => GatewayEvent::Message(convert::inbound(m)),
        }
    }
}

/// Message IDs a collector forwarded whose event-handler dispatch has not run yet (a count per
/// ID: the gateway may deliver one message twice, e.g. when a session is resumed).
#[derive(Debug, Default)]
pub struct Forwarded(HashMap<u64, u32>);

impl Forwarded {
    /// A collector forwarded message `id`.
    pub fn mark(&mut self, id: u64) {
        *self.0.entry(id).or_default() += 1;
    }

    /// The handler's dispatch of message `id`: `true` if a collector already forwarded it (and
    /// the mark is used up), `false` if the handler must forward it itself.
    pub fn take(&mut self, id: u64) -> bool {
        match self.0.get_mut(&id) {
            None => false,
            Some(n) if *n > 1 => {
                *n -= 1;
                true
            }
            Some(_) => {
                self.0.remove(&id);
                true
            }
        }
    }

    /// How many marks wait for their handler dispatch.
    pub fn len(&self) -> usize {
        self.0.values().map(|n| *n as usize).sum()
    }

    /// Whether no mark waits.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// What a collected channel event announces.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Thread,
    Channel,
}

/// One bot's ordered message source (shared by its event handler and its collectors).
pub struct OrderedSource {
    sink: EventSink,
    edge: Edge,
    /// Generations handed out to collectors.
    generations: AtomicU64,
    /// The generation of each shard's newest collector; older ones remove themselves.
    newest: Mutex<HashMap<u32, u64>>,
    forwarded: Mutex<Forwarded>,
    /// Threads and channels a collector announced (a thread's ID may be its starter message's,
    /// so these are counted apart from messages).
    channels_forwarded: Mutex<Forwarded>,
    /// What decides whether a new thread or channel is writable (see [`super::threads`]); kept
    /// up to date by the event handler, and by collectors for the channels they announce.
    threads: Mutex<ThreadParents>,
    /// The bot's user ID once READY's handler has run (0 before).
    me: AtomicU64,
}

impl OrderedSource {
    /// A source forwarding to `sink`.
    pub fn new(sink: EventSink, edge: Edge) -> Arc<Self> {
        Arc::new(Self {
            sink,
            edge,
            generations: AtomicU64::new(0),
            newest: Mutex::new(HashMap::new()),
            forwarded: Mutex::new(Forwarded::default()),
            channels_forwarded: Mutex::new(Forwarded::default()),
            threads: Mutex::new(ThreadParents::default()),
            me: AtomicU64::new(0),
        })
    }

    /// The bot's user ID, from READY (collectors are installed after it).
    pub fn set_me(&self, me: UserId) {
        self.me.store(me.get(), Ordering::Relaxed);
    }

    /// What decides new threads' permissions, for the event handler to keep up to date.
    pub fn threads(&self) -> std::sync::MutexGuard<'_, ThreadParents> {
        self.threads.lock().expect("poison")
    }

    /// Installs a collector on the runner of shard `shard_id` behind `shard`, superseding any
    /// earlier one of that shard.
    pub fn install(self: &Arc<Self>, shard: &ShardMessenger, shard_id: u32) {
        let generation = self.supersede(shard_id);
        let me = Arc::clone(self);
        shard.add_collector(CollectorCallback(Box::new(move |event| {
            if !me.is_newest(shard_id, generation) {
                return false; // superseded: the newer collector forwards this event
            }
            me.collected(event);
            true
        })));
    }

    /// A collector's event, in gateway order.
    fn collected(&self, event: &Event) {
        match event {
            Event::MessageCreate(created) => {
                backlog::hold_back(&backlog::GATEWAY);
                self.forwarded.lock().expect("poison").mark(created.message.id.get());
                backlog::GATEWAY.add();
                (self.sink)(self.edge.event(&created.message));
            }
            Event::ThreadCreate(created) => self.announce_collected(&created.thread, Kind::Thread),
            // serenity hands a category's CHANNEL_CREATE to `category_create`, not to the
            // handler's `channel_create`, which would never use up a mark; a category holds no
            // messages and no threads, so the agent need not hear of it.
            Event::ChannelCreate(created) if created.channel.kind != ChannelType::Category => {
                self.announce_collected(&created.channel, Kind::Channel)
            }
            Event::ChannelUpdate(updated) => self.announce_collected(&updated.channel, Kind::Channel),
            _ => {}
        }
    }

    /// A collector's THREAD_CREATE, CHANNEL_CREATE or CHANNEL_UPDATE: announced now if it can
    /// be placed. One it cannot (its guild's GUILD_CREATE handler has not run yet, say) is left
    /// whole to the event handler, which runs later.
    fn announce_collected(&self, channel: &GuildChannel, kind: Kind) {
        let info = match kind {
            Kind::Thread => self.threads().thread_info(channel),
            Kind::Channel => match self.me.load(Ordering::Relaxed) {
                0 => None,
                me => {
                    let mut threads = self.threads();
                    threads.channel_upsert(channel, UserId::new(me));
                    threads.channel_info(channel)
                }
            },
        };
        if let Some(info) = info {
            self.channels_forwarded.lock().expect("poison").mark(info.id);
            (self.sink)(GatewayEvent::Channel(info));
        }
    }

    /// The event handler's dispatch of a THREAD_CREATE: announced unless a collector already
    /// did.
    pub fn on_handler_thread(&self, thread: &GuildChannel) {
        if self.channels_forwarded.lock().expect("poison").take(thread.id.get()) {
            return;
        }
        if let Some(info) = self.threads().thread_info(thread) {
            (self.sink)(GatewayEvent::Channel(info));
        }
    }

    /// The event handler's dispatch of a CHANNEL_CREATE or CHANNEL_UPDATE: kept and announced
    /// unless a collector already did.
    pub fn on_handler_channel(&self, channel: &GuildChannel, me: UserId) {
        if self.channels_forwarded.lock().expect("poison").take(channel.id.get()) {
            return;
        }
        let info = {
            let mut threads = self.threads();
            threads.channel_upsert(channel, me);
            threads.channel_info(channel)
        };
        if let Some(info) = info {
            (self.sink)(GatewayEvent::Channel(info));
        }
    }

    /// A new generation for shard `shard_id`'s next collector, superseding its older ones.
    fn supersede(&self, shard_id: u32) -> u64 {
        let generation = self.generations.fetch_add(1, Ordering::SeqCst) + 1;
        self.newest.lock().expect("poison").insert(shard_id, generation);
        generation
    }

    /// Whether `generation` is shard `shard_id`'s newest collector.
    fn is_newest(&self, shard_id: u32, generation: u64) -> bool {
        self.newest.lock().expect("poison").get(&shard_id) == Some(&generation)
    }

    /// The event handler's dispatch of a message: forwarded unless a collector already did.
    pub fn on_handler_message(&self, message: &serenity::all::Message) {
        let taken = self.forwarded.lock().expect("poison").take(message.id.get());
        if taken {
            backlog::GATEWAY.remove();
        } else {
            tracing::debug!(
                message_id = message.id.get(),
                "message forwarded by the event handler (no collector yet)"
            );
            (self.sink)(self.edge.event(message));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_a_collector_forwarded_is_not_forwarded_again() {
        let mut f = Forwarded::default();
        f.mark(7);
        assert!(f.take(7));
        assert!(!f.take(7), "the mark is used up");
        assert!(f.is_empty());
    }

    #[test]
    fn a_message_no_collector_saw_is_forwarded_by_the_handler() {
        let mut f = Forwarded::default();
        f.mark(7);
        assert!(!f.take(8));
        assert_eq!(f.len(), 1);
    }

    #[test]
    fn each_shard_keeps_its_own_newest_collector() {
        let source = OrderedSource::new(Arc::new(|_| {}), Edge::none());
        let newest = |shard: u32| source.supersede(shard);
        let (s0, s1) = (newest(0), newest(1));
        assert!(
            source.is_newest(0, s0),
            "shard 1's collector does not supersede shard 0's"
        );
        assert!(source.is_newest(1, s1));
        let s0_again = newest(0);
        assert!(!source.is_newest(0, s0) && source.is_newest(0, s0_again));
        assert!(source.is_newest(1, s1));
    }

    /// A source whose sink records what it forwards, with the guild of `threads`' tests
    /// known (or not).
    fn recording(guild_known: bool) -> (Arc<OrderedSource>, Arc<Mutex<Vec<GatewayEvent>>>) {
        use crate::discord::threads::tests::{guild, ME};
        let seen: Arc<Mutex<Vec<GatewayEvent>>> = Arc::default();
        let sink = Arc::clone(&seen);
        let source = OrderedSource::new(Arc::new(move |e| sink.lock().unwrap().push(e)), Edge::none());
        if guild_known {
            source.threads().guild_create(&guild(), serenity::all::UserId::new(ME));
        }
        (source, seen)
    }

    fn thread_created(thread: &serenity::all::GuildChannel) -> Event {
        let created = serde_json::from_value(serde_json::to_value(thread).unwrap()).unwrap();
        Event::ThreadCreate(created)
    }

    fn announced(seen: &Mutex<Vec<GatewayEvent>>) -> Vec<u64> {
        let seen = seen.lock().unwrap();
        seen.iter()
            .filter_map(|e| match e {
                GatewayEvent::Channel(info) => Some(info.id),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_new_thread_is_announced_in_gateway_order_and_once() {
        use crate::discord::threads::tests::{thread, GENERAL};
        let (source, seen) = recording(true);
        let t = thread(50, GENERAL);
        // The collector runs before the handler's task: the thread is announced there, before
        // any later message of the gateway, and the handler does not announce it again.
        source.collected(&thread_created(&t));
        assert_eq!(announced(&seen), [50]);
        source.on_handler_thread(&t);
        assert_eq!(announced(&seen), [50], "announced once");
        // With no collector installed (just after READY), the handler announces it.
        let later = thread(51, GENERAL);
        source.on_handler_thread(&later);
        assert_eq!(announced(&seen), [50, 51]);
    }

    #[test]
    fn a_thread_the_collector_cannot_place_is_left_to_the_handler() {
        use crate::discord::threads::tests::{guild, thread, GENERAL, ME};
        // The guild's GUILD_CREATE handler has not run when the collector sees the thread.
        let (source, seen) = recording(false);
        let t = thread(50, GENERAL);
        source.collected(&thread_created(&t));
        assert!(announced(&seen).is_empty());
        source.threads().guild_create(&guild(), serenity::all::UserId::new(ME));
        source.on_handler_thread(&t);
        assert_eq!(announced(&seen), [50]);
    }

    fn channel_event(update: bool, channel: &serenity::all::GuildChannel) -> Event {
        let v = serde_json::to_value(channel).unwrap();
        if update {
            Event::ChannelUpdate(serde_json::from_value(v).unwrap())
        } else {
            Event::ChannelCreate(serde_json::from_value(v).unwrap())
        }
    }

    #[test]
    fn a_new_or_changed_channel_is_announced_in_gateway_order_and_once() {
        use crate::discord::threads::tests::{guild, ME};
        let (source, seen) = recording(true);
        let me = serenity::all::UserId::new(ME);
        let mut late = guild().channels.values().next().unwrap().clone();
        late.id = serenity::all::ChannelId::new(60);
        // Before READY's handler has run, the collector leaves it to the handler.
        source.collected(&channel_event(false, &late));
        assert!(announced(&seen).is_empty());
        source.on_handler_channel(&late, me);
        assert_eq!(announced(&seen), [60]);
        source.set_me(me);
        source.collected(&channel_event(true, &late));
        assert_eq!(announced(&seen), [60, 60]);
        source.on_handler_channel(&late, me);
        assert_eq!(announced(&seen), [60, 60], "the update is announced once");
        let mut category = late.clone();
        category.id = serenity::all::ChannelId::new(61);
        category.kind = ChannelType::Category;
        source.collected(&channel_event(false, &category));
        assert_eq!(announced(&seen), [60, 60], "a category is not announced");
        assert!(
            source.channels_forwarded.lock().unwrap().is_empty(),
            "and leaves no mark"
        );
    }

    #[test]
    fn a_message_delivered_twice_is_marked_twice() {
        let mut f = Forwarded::default();
        f.mark(7);
        f.mark(7);
        assert!(f.take(7));
        assert!(f.take(7));
        assert!(!f.take(7));
    }
}
