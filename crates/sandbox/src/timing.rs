//! Reply timings on the sandbox's own clock, for benchmarks: when each message was dispatched
//! (MESSAGE_CREATE) and when a bot's reply to it arrived (its create-message POST). Measured
//! here, both ends are taken by the same clock in the same process, whatever bot answers.
//! `GET /sandbox/latencies` serves them; in-process callers read [`Timings`] directly and can
//! wait on [`Timings::watch`] instead of polling.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::watch;

/// The most dispatch times kept (oldest dropped first); a reply to an older message is not timed.
pub const DISPATCH_CAP: usize = 1_000_000;
/// The most reply timings kept (oldest dropped first), as the request log.
pub const REPLY_CAP: usize = 1_000_000;

/// One timed reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ReplyTiming {
    /// The message answered.
    #[serde(with = "id_string")]
    pub message_id: u64,
    /// The reply (its first part, the one that references the message).
    #[serde(with = "id_string")]
    pub reply_id: u64,
    /// Who replied: the bot user, or the webhook.
    #[serde(with = "id_string")]
    pub author_id: u64,
    /// When the message was dispatched, in microseconds since the sandbox started.
    pub dispatched_us: u64,
    /// When the reply arrived, in microseconds since the sandbox started.
    pub replied_us: u64,
}

impl ReplyTiming {
    /// From dispatch to reply.
    pub fn latency(&self) -> Duration {
        Duration::from_micros(self.replied_us.saturating_sub(self.dispatched_us))
    }
}

/// Snowflakes as strings, as Discord writes them.
mod id_string {
    pub fn serialize<S: serde::Serializer>(id: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(id)
    }
}

/// Dispatch times and reply timings.
#[derive(Debug)]
pub struct Timings {
    epoch: Instant,
    inner: Mutex<Inner>,
    replies: watch::Sender<usize>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Message ID → dispatch time (µs since `epoch`). Snowflakes grow, so the first is the oldest.
    dispatched: BTreeMap<u64, u64>,
    log: Vec<ReplyTiming>,
}

impl Default for Timings {
    fn default() -> Self {
        Self {
            epoch: Instant::now(),
            inner: Mutex::new(Inner::default()),
            replies: watch::Sender::new(0),
        }
    }
}

impl Timings {
    /// Microseconds since the sandbox started: the clock every timing uses.
    pub fn now_us(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64
    }

    /// A message is being dispatched now.
    pub fn dispatched(&self, message_id: u64) {
        let now = self.now_us();
        let mut inner = self.inner.lock().expect("timings lock");
        if inner.dispatched.len() >= DISPATCH_CAP {
            inner.dispatched.pop_first();
        }
        inner.dispatched.insert(message_id, now);
    }

    /// A reply to `message_id` arrived now; timed if that message's dispatch is known.
    pub fn replied(&self, message_id: u64, reply_id: u64, author_id: u64) {
        let now = self.now_us();
        let mut inner = self.inner.lock().expect("timings lock");
        let Some(&dispatched_us) = inner.dispatched.get(&message_id) else {
            return;
        };
        if inner.log.len() >= REPLY_CAP {
            inner.log.drain(..REPLY_CAP / 10);
        }
        inner.log.push(ReplyTiming {
            message_id,
            reply_id,
            author_id,
            dispatched_us,
            replied_us: now,
        });
        let len = inner.log.len();
        drop(inner);
        self.replies.send_replace(len);
    }

    /// The reply timings from index `since` on, and how many are kept in all.
    pub fn replies_since(&self, since: usize) -> (usize, Vec<ReplyTiming>) {
        let inner = self.inner.lock().expect("timings lock");
        let since = since.min(inner.log.len());
        (inner.log.len(), inner.log[since..].to_vec())
    }

    /// When a message was dispatched (µs since the sandbox started), if known.
    pub fn dispatched_at(&self, message_id: u64) -> Option<u64> {
        self.inner
            .lock()
            .expect("timings lock")
            .dispatched
            .get(&message_id)
            .copied()
    }

    /// Follows the number of reply timings kept: wait on `changed()` instead of polling.
    pub fn watch(&self) -> watch::Receiver<usize> {
        self.replies.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reply_to_a_dispatched_message_is_timed_on_one_clock() {
        let t = Timings::default();
        let count = t.watch();
        t.dispatched(10);
        std::thread::sleep(Duration::from_millis(2));
        t.replied(10, 11, 7);
        let (total, log) = t.replies_since(0);
        assert_eq!(total, 1);
        assert_eq!((log[0].message_id, log[0].reply_id, log[0].author_id), (10, 11, 7));
        assert!(log[0].latency() >= Duration::from_millis(2), "{:?}", log[0]);
        assert_eq!(Some(log[0].dispatched_us), t.dispatched_at(10));
        assert_eq!(*count.borrow(), 1);
    }

    #[test]
    fn replies_to_unknown_messages_are_not_timed() {
        let t = Timings::default();
        t.replied(99, 100, 7);
        assert_eq!(t.replies_since(0), (0, vec![]));
    }

    #[test]
    fn since_skips_what_was_read() {
        let t = Timings::default();
        for id in [1, 2, 3] {
            t.dispatched(id);
            t.replied(id, id + 100, 7);
        }
        let (total, rest) = t.replies_since(2);
        assert_eq!(total, 3);
        assert_eq!(rest.iter().map(|r| r.message_id).collect::<Vec<_>>(), vec![3]);
        assert!(t.replies_since(10).1.is_empty());
    }

    #[test]
    fn serialized_ids_are_strings() {
        let r = ReplyTiming {
            message_id: 1,
            reply_id: 2,
            author_id: 3,
            dispatched_us: 4,
            replied_us: 9,
        };
        let v = serde_json::to_value(r).unwrap();
        assert_eq!(v["message_id"], "1");
        assert_eq!(v["replied_us"], 9);
    }
}
