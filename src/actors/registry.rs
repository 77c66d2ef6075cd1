//! An agent's conversations: which actor serves which key, how many messages were sent to each
//! (so an idle one is stopped only when nothing is on its way to it), and each key's recent
//! failures, from which restarts are allowed or the key is quarantined for a while. One owner
//! for what used to be two maps kept in sync by hand. Generic over the actor handle, so it is
//! unit-tested without actors.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use ractor::ActorId;

use crate::routing::ConversationKey;

/// One live conversation.
#[derive(Debug)]
struct Entry<H> {
    id: ActorId,
    handle: H,
    /// Messages sent to it (`Inbound`, `Backlog`, `GiveUp`).
    sent: u64,
}

/// What to do about a conversation that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterFailure {
    /// Start a new actor for the key.
    Restart,
    /// Too many failures within the window: leave the key alone until `until`.
    Quarantine {
        /// When the key may have an actor again.
        until: Instant,
    },
}

/// The agent's conversations.
#[derive(Debug)]
pub struct Registry<H> {
    by_key: HashMap<ConversationKey, Entry<H>>,
    keys: HashMap<ActorId, ConversationKey>,
    failures: HashMap<ConversationKey, VecDeque<Instant>>,
    quarantined: HashMap<ConversationKey, Instant>,
}

impl<H> Default for Registry<H> {
    fn default() -> Self {
        Self {
            by_key: HashMap::new(),
            keys: HashMap::new(),
            failures: HashMap::new(),
            quarantined: HashMap::new(),
        }
    }
}

impl<H: Clone> Registry<H> {
    /// The actor serving a key.
    pub fn get(&self, key: ConversationKey) -> Option<H> {
        self.by_key.get(&key).map(|e| e.handle.clone())
    }

    /// Every live conversation's handle.
    pub fn handles(&self) -> Vec<H> {
        self.by_key.values().map(|e| e.handle.clone()).collect()
    }

    /// Every live conversation's key and handle.
    pub fn entries(&self) -> Vec<(ConversationKey, H)> {
        self.by_key.iter().map(|(k, e)| (*k, e.handle.clone())).collect()
    }

    /// A new actor serves `key`.
    pub fn insert(&mut self, key: ConversationKey, id: ActorId, handle: H) {
        if let Some(old) = self.by_key.insert(key, Entry { id, handle, sent: 0 }) {
            self.keys.remove(&old.id);
        }
        self.keys.insert(id, key);
    }

    /// One more message was sent to the actor serving `key`.
    pub fn sent(&mut self, key: ConversationKey) {
        if let Some(e) = self.by_key.get_mut(&key) {
            e.sent += 1;
        }
    }

    /// The actor `id` is idle, having received `received` messages. When it is the current one
    /// for its key and every message sent to it has arrived, it is forgotten and returned, to be
    /// stopped; otherwise `None` (a message is on its way: it is not idle after all).
    pub fn take_idle(&mut self, id: ActorId, received: u64) -> Option<H> {
        let key = *self.keys.get(&id)?;
        let entry = self.by_key.get(&key)?;
        if entry.id != id || entry.sent != received {
            return None;
        }
        self.keys.remove(&id);
        self.by_key.remove(&key).map(|e| e.handle)
    }

    /// Forgets the actor `id` if it still serves its key (it is failing: messages must reach
    /// its replacement). Returns its key.
    pub fn forget(&mut self, id: ActorId) -> Option<ConversationKey> {
        let key = *self.keys.get(&id)?;
        if self.by_key.get(&key).is_some_and(|e| e.id == id) {
            self.by_key.remove(&key);
        }
        Some(key)
    }

    /// The actor `id` ended; returns its key and whether it still served it (it was not
    /// replaced already).
    pub fn ended(&mut self, id: ActorId) -> Option<(ConversationKey, bool)> {
        let key = self.keys.remove(&id)?;
        let current = self.by_key.get(&key).is_some_and(|e| e.id == id);
        if current {
            self.by_key.remove(&key);
        }
        Some((key, current))
    }

    /// A conversation of `key` failed at `now`: restart it, unless it failed `limit` times
    /// within `window`; then it is quarantined until the oldest of those failures leaves the
    /// window (its actor, if any, is forgotten and returned in the second place, to be stopped).
    pub fn failed(
        &mut self,
        key: ConversationKey,
        now: Instant,
        limit: usize,
        window: Duration,
    ) -> (AfterFailure, Option<H>) {
        let history = self.failures.entry(key).or_default();
        while history.front().is_some_and(|t| now.duration_since(*t) > window) {
            history.pop_front();
        }
        if history.len() >= limit {
            let until = history.front().map_or(now, |t| *t + window);
            self.quarantined.insert(key, until);
            let replaced = self.by_key.remove(&key).map(|e| {
                self.keys.remove(&e.id);
                e.handle
            });
            return (AfterFailure::Quarantine { until }, replaced);
        }
        history.push_back(now);
        (AfterFailure::Restart, None)
    }

    /// When a quarantined key may have an actor again, if it is quarantined at `now`.
    pub fn quarantined_until(&mut self, key: ConversationKey, now: Instant) -> Option<Instant> {
        match self.quarantined.get(&key) {
            Some(until) if *until > now => Some(*until),
            Some(_) => {
                self.quarantined.remove(&key);
                None
            }
            None => None,
        }
    }

    /// How many conversations are live.
    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    /// No conversation is live.
    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: ConversationKey = ConversationKey::Channel(1);
    const B: ConversationKey = ConversationKey::User(2);

    fn id(n: u64) -> ActorId {
        ActorId::Local(n)
    }

    #[test]
    fn an_idle_conversation_is_stopped_only_when_nothing_is_on_its_way() {
        let mut r = Registry::default();
        r.insert(A, id(1), "a1");
        r.sent(A);
        r.sent(A);
        assert_eq!(r.take_idle(id(1), 1), None, "one message still on its way");
        assert_eq!(r.get(A), Some("a1"));
        assert_eq!(r.take_idle(id(1), 2), Some("a1"));
        assert_eq!(r.get(A), None);
        assert!(r.is_empty());
        // A stale report from an actor that no longer serves the key changes nothing.
        r.insert(A, id(2), "a2");
        assert_eq!(r.take_idle(id(1), 0), None);
        assert_eq!(r.get(A), Some("a2"));
    }

    #[test]
    fn a_failing_actor_is_forgotten_so_messages_reach_its_replacement() {
        let mut r = Registry::default();
        r.insert(A, id(1), "a1");
        assert_eq!(r.forget(id(1)), Some(A));
        assert_eq!(r.get(A), None);
        r.insert(A, id(2), "a2");
        // Its end, reported later, does not forget the replacement.
        assert_eq!(r.ended(id(1)), Some((A, false)));
        assert_eq!(r.get(A), Some("a2"));
        assert_eq!(r.ended(id(2)), Some((A, true)));
        assert_eq!(r.get(A), None);
        assert_eq!(r.ended(id(9)), None);
    }

    #[test]
    fn repeated_failures_quarantine_the_key_until_the_window_passes() {
        let mut r = Registry::default();
        let t0 = Instant::now();
        let window = Duration::from_secs(60);
        r.insert(B, id(1), "b");
        assert_eq!(r.failed(B, t0, 2, window), (AfterFailure::Restart, None));
        assert_eq!(
            r.failed(B, t0 + Duration::from_secs(1), 2, window),
            (AfterFailure::Restart, None)
        );
        let (after, stopped) = r.failed(B, t0 + Duration::from_secs(2), 2, window);
        assert_eq!(after, AfterFailure::Quarantine { until: t0 + window });
        assert_eq!(stopped, Some("b"));
        assert_eq!(r.quarantined_until(B, t0 + Duration::from_secs(30)), Some(t0 + window));
        assert_eq!(r.quarantined_until(A, t0), None);
        assert_eq!(r.quarantined_until(B, t0 + window + Duration::from_secs(1)), None);
        // Failures older than the window no longer count.
        assert_eq!(
            r.failed(B, t0 + Duration::from_secs(200), 2, window),
            (AfterFailure::Restart, None)
        );
    }
}
