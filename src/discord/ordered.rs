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
//! hence the install at every stage change, READY and RESUMED; the newest collector supersedes
//! older ones (a superseded one removes itself at its next event), so an event is never
//! forwarded twice.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serenity::gateway::{CollectorCallback, ShardMessenger};
use serenity::model::event::Event;

use super::convert;
use super::gateway::{EventSink, GatewayEvent};

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
    /// The generation of the newest collector; older ones remove themselves.
    newest: AtomicU64,
    forwarded: Mutex<Forwarded>,
}

impl OrderedSource {
    /// A source forwarding to `sink`.
    pub fn new(sink: EventSink) -> Arc<Self> {
        Arc::new(Self {
            sink,
            newest: AtomicU64::new(0),
            forwarded: Mutex::new(Forwarded::default()),
        })
    }

    /// Installs a collector on the shard runner behind `shard`, superseding any earlier one.
    pub fn install(self: &Arc<Self>, shard: &ShardMessenger) {
        let generation = self.newest.fetch_add(1, Ordering::SeqCst) + 1;
        let me = Arc::clone(self);
        shard.add_collector(CollectorCallback(Box::new(move |event| {
            if me.newest.load(Ordering::SeqCst) != generation {
                return false; // superseded: the newer collector forwards this event
            }
            if let Event::MessageCreate(created) = event {
                me.forwarded.lock().expect("poison").mark(created.message.id.get());
                (me.sink)(GatewayEvent::Message(convert::inbound(&created.message)));
            }
            true
        })));
    }

    /// The event handler's dispatch of a message: forwarded unless a collector already did.
    pub fn on_handler_message(&self, message: &serenity::all::Message) {
        let taken = self.forwarded.lock().expect("poison").take(message.id.get());
        if !taken {
            tracing::debug!(
                message_id = message.id.get(),
                "message forwarded by the event handler (no collector yet)"
            );
            (self.sink)(GatewayEvent::Message(convert::inbound(message)));
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
    fn a_message_delivered_twice_is_marked_twice() {
        let mut f = Forwarded::default();
        f.mark(7);
        f.mark(7);
        assert!(f.take(7));
        assert!(f.take(7));
        assert!(!f.take(7));
    }
}
