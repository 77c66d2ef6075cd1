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

use serenity::gateway::{CollectorCallback, ShardMessenger};
use serenity::model::event::Event;

use super::gateway::{EventSink, GatewayEvent};
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

/// One bot's ordered message source (shared by its event handler and its collectors).
pub struct OrderedSource {
    sink: EventSink,
    edge: Edge,
    /// Generations handed out to collectors.
    generations: AtomicU64,
    /// The generation of each shard's newest collector; older ones remove themselves.
    newest: Mutex<HashMap<u32, u64>>,
    forwarded: Mutex<Forwarded>,
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
        })
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
            if let Event::MessageCreate(created) = event {
                backlog::hold_back(&backlog::GATEWAY);
                me.forwarded.lock().expect("poison").mark(created.message.id.get());
                backlog::GATEWAY.add();
                (me.sink)(me.edge.event(&created.message));
            }
            true
        })));
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
