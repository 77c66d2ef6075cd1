//! An agent's conversations: the state of each live one by key, with the generation of its
//! incarnation (an event of an earlier incarnation is ignored), and each key's recent failures,
//! from which restarts are allowed or the key is quarantined for a while. One owner for what
//! used to be two maps kept in sync by hand. Generic over the conversation, so it is
//! unit-tested without one.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use crate::routing::ConversationKey;

/// One live conversation. Boxed: the table's spare buckets (up to half of them after it grew)
/// then cost a pointer each, not a whole conversation's state (~430 bytes).
#[derive(Debug)]
struct Entry<C> {
    generation: u64,
    conversation: Box<C>,
}

/// Below this capacity the conversation table is never shrunk (a few KiB at most).
const MIN_KEPT_CAPACITY: usize = 64;

/// The capacity to shrink a table holding `len` entries to, when its `capacity` is far above
/// what it holds (more than four times, and above [`MIN_KEPT_CAPACITY`]): twice `len`, so a
/// table shrinks again only after halving twice more (the rehash it costs stays amortised).
/// `None`: keep it.
pub fn shrunk_capacity(len: usize, capacity: usize) -> Option<usize> {
    (capacity > MIN_KEPT_CAPACITY && len.saturating_mul(4) < capacity).then_some(len.saturating_mul(2))
}

/// What to do about a conversation that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterFailure {
    /// Start a new conversation for the key.
    Restart,
    /// Too many failures within the window: leave the key alone until `until`.
    Quarantine {
        /// When the key may have a conversation again.
        until: Instant,
    },
}

/// The agent's conversations.
#[derive(Debug)]
pub struct Registry<C> {
    by_key: HashMap<ConversationKey, Entry<C>>,
    /// The last generation handed out.
    generation: u64,
    failures: HashMap<ConversationKey, VecDeque<Instant>>,
    quarantined: HashMap<ConversationKey, Instant>,
}

impl<C> Default for Registry<C> {
    fn default() -> Self {
        Self {
            by_key: HashMap::new(),
            generation: 0,
            failures: HashMap::new(),
            quarantined: HashMap::new(),
        }
    }
}

impl<C> Registry<C> {
    /// The conversation of a key.
    pub fn get_mut(&mut self, key: ConversationKey) -> Option<&mut C> {
        self.by_key.get_mut(&key).map(|e| &mut *e.conversation)
    }

    /// The conversation of a key if it is the incarnation `generation` (an event of an earlier
    /// one finds `None`).
    pub fn current(&mut self, key: ConversationKey, generation: u64) -> Option<&mut C> {
        self.by_key
            .get_mut(&key)
            .filter(|e| e.generation == generation)
            .map(|e| &mut *e.conversation)
    }

    /// Whether a key has a live conversation.
    pub fn contains(&self, key: ConversationKey) -> bool {
        self.by_key.contains_key(&key)
    }

    /// Every live conversation's key.
    pub fn keys(&self) -> Vec<ConversationKey> {
        self.by_key.keys().copied().collect()
    }

    /// A generation for a new incarnation (never handed out before).
    pub fn next_generation(&mut self) -> u64 {
        self.generation += 1;
        self.generation
    }

    /// A new conversation, of incarnation `generation`, serves `key`; returns the one it
    /// replaces, if any.
    pub fn insert(&mut self, key: ConversationKey, generation: u64, conversation: C) -> Option<C> {
        self.by_key
            .insert(
                key,
                Entry {
                    generation,
                    conversation: Box::new(conversation),
                },
            )
            .map(|e| *e.conversation)
    }

    /// The conversation of a key, started by `start` with a new generation if none is live.
    pub fn get_or_start(&mut self, key: ConversationKey, start: impl FnOnce(u64) -> C) -> &mut C {
        let next = self.generation + 1;
        let entry = self.by_key.entry(key).or_insert_with(|| Entry {
            generation: next,
            conversation: Box::new(start(next)),
        });
        if entry.generation == next {
            self.generation = next;
        }
        &mut entry.conversation
    }

    /// Forgets the conversation of a key (passivated or failed) and returns it. The table gives
    /// back the room of conversations gone ([`shrunk_capacity`]): after 10,000 conversations
    /// passivate it would otherwise keep their buckets (issue 18: idle conversations ≈ 0 B).
    pub fn remove(&mut self, key: ConversationKey) -> Option<C> {
        let removed = self.by_key.remove(&key).map(|e| *e.conversation);
        if let Some(to) = shrunk_capacity(self.by_key.len(), self.by_key.capacity()) {
            self.by_key.shrink_to(to);
        }
        removed
    }

    /// Forgets every conversation and returns them (shutdown).
    pub fn drain(&mut self) -> Vec<C> {
        self.by_key.drain().map(|(_, e)| *e.conversation).collect()
    }

    /// A conversation of `key` failed at `now`: restart it, unless it failed `limit` times
    /// within `window`; then it is quarantined until the oldest of those failures leaves the
    /// window (its conversation, if any, is forgotten and returned in the second place, to be
    /// stopped).
    pub fn failed(
        &mut self,
        key: ConversationKey,
        now: Instant,
        limit: usize,
        window: Duration,
    ) -> (AfterFailure, Option<C>) {
        let history = self.failures.entry(key).or_default();
        while history.front().is_some_and(|t| now.duration_since(*t) > window) {
            history.pop_front();
        }
        if history.len() >= limit {
            let until = history.front().map_or(now, |t| *t + window);
            self.quarantined.insert(key, until);
            return (AfterFailure::Quarantine { until }, self.remove(key));
        }
        history.push_back(now);
        (AfterFailure::Restart, None)
    }

    /// When a quarantined key may have a conversation again, if it is quarantined at `now`.
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

    #[test]
    fn an_event_of_an_earlier_incarnation_finds_nothing() {
        let mut r = Registry::default();
        let first = r.next_generation();
        assert_eq!(r.insert(A, first, "a1"), None);
        assert_eq!(r.current(A, first), Some(&mut "a1"));
        assert_eq!(r.remove(A), Some("a1"));
        assert!(r.is_empty());
        assert_eq!(r.current(A, first), None, "a passivated conversation gets nothing");
        let second = r.next_generation();
        assert_ne!(first, second);
        r.insert(A, second, "a2");
        assert_eq!(r.current(A, first), None, "a timer of the first incarnation is ignored");
        assert_eq!(r.current(A, second), Some(&mut "a2"));
        assert_eq!(r.current(B, second), None);
        assert_eq!(r.keys(), vec![A]);
        assert_eq!(r.get_or_start(A, |_| unreachable!("A is live")), &mut "a2");
        let third = r.get_or_start(B, |g| if g > second { "b3" } else { "reused" });
        assert_eq!(third, &mut "b3");
        assert_eq!(r.current(B, second + 1), Some(&mut "b3"));
        assert_eq!(r.next_generation(), second + 2);
        assert_eq!(r.remove(B), Some("b3"));
        assert_eq!(r.drain(), vec!["a2"]);
        assert!(!r.contains(A));
    }

    #[test]
    fn a_table_is_shrunk_only_when_far_above_what_it_holds() {
        assert_eq!(shrunk_capacity(0, 14_336), Some(0), "everything passivated");
        assert_eq!(shrunk_capacity(100, 14_336), Some(200));
        assert_eq!(shrunk_capacity(3_584, 14_336), None, "a quarter full: kept");
        assert_eq!(shrunk_capacity(3_583, 14_336), Some(7_166));
        assert_eq!(shrunk_capacity(0, MIN_KEPT_CAPACITY), None, "small tables are kept");
        assert_eq!(shrunk_capacity(usize::MAX, usize::MAX), None);
    }

    #[test]
    fn passivating_most_conversations_gives_their_room_back() {
        let mut r = Registry::default();
        let keys: Vec<_> = (0..10_000)
            .map(|i| ConversationKey::ChannelUser(i / 100, i % 100))
            .collect();
        for (g, k) in keys.iter().enumerate() {
            r.insert(*k, g as u64, g);
        }
        let full = r.by_key.capacity();
        assert!(full >= 10_000);
        for k in &keys[10..] {
            r.remove(*k);
        }
        assert_eq!(r.len(), 10);
        assert!(
            r.by_key.capacity() <= MIN_KEPT_CAPACITY,
            "{} of {full} kept",
            r.by_key.capacity()
        );
        // Removing while shrinking never loses a conversation.
        for (g, k) in keys[..10].iter().enumerate() {
            assert_eq!(r.current(*k, g as u64).copied(), Some(g));
        }
    }

    #[test]
    fn repeated_failures_quarantine_the_key_until_the_window_passes() {
        let mut r = Registry::default();
        let t0 = Instant::now();
        let window = Duration::from_secs(60);
        r.insert(B, 1, "b");
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
