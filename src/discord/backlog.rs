//! Backpressure at the gateway edge: how many messages the shard runners have handed on whose
//! serenity event-handler task has not run yet, and a wait that holds a shard runner back while
//! too many have piled up.
//!
//! Why: serenity 0.12 spawns a task per event per handler and reads the socket again at once,
//! so when events arrive faster than the process can handle them (100 agents each parsing a
//! burst of 10,000 messages), the spawned tasks pile up: 3.3 KiB each, a 3.6–4.2 GiB peak in the
//! benchmark's touch burst, and fragmentation that stays afterwards (docs/benchmarks.md, issue
//! 18, fourth round). Holding the runner back (it runs the collector inline, before it spawns
//! the handler tasks) leaves the excess where Discord keeps it for a slow client: in the socket
//! and on the server. The wait is bounded, so a runner still heartbeats, and a count that never
//! drained would only slow the edge, never stop it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::ops::telemetry;

/// Above this many waiting handler tasks, a runner waits before handing on its next message.
pub const HIGH: usize = 4096;
/// A waiting runner goes on once the count is down to this.
pub const LOW: usize = HIGH / 2;
/// The longest a runner waits for one message.
pub const MAX_WAIT: Duration = Duration::from_secs(1);

/// Messages handed on whose handler task has not run, and the runners waiting for them.
#[derive(Debug)]
pub struct Backlog {
    count: AtomicUsize,
    /// Runners waiting in [`Backlog::wait`].
    waiters: AtomicUsize,
    high: usize,
    low: usize,
    lock: Mutex<()>,
    drained: Condvar,
}

/// The process's backlog: every agent's runners share the same cores, so one count.
pub static GATEWAY: Backlog = Backlog::new(HIGH, LOW);

impl Backlog {
    /// A backlog whose runners wait above `high` until it is down to `low`.
    pub const fn new(high: usize, low: usize) -> Self {
        Self {
            count: AtomicUsize::new(0),
            waiters: AtomicUsize::new(0),
            high,
            low,
            lock: Mutex::new(()),
            drained: Condvar::new(),
        }
    }

    /// A message was handed on; its handler task is to come.
    pub fn add(&self) {
        self.count.fetch_add(1, Ordering::AcqRel);
    }

    /// A handed-on message's handler task ran. Wakes the waiting runners when the count
    /// reaches `low`.
    pub fn remove(&self) {
        let before = self
            .count
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| Some(n.saturating_sub(1)))
            .unwrap_or(0);
        if before == self.low + 1 {
            let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
            self.drained.notify_all();
        }
    }

    /// Handler tasks to come.
    pub fn len(&self) -> usize {
        self.count.load(Ordering::Acquire)
    }

    /// Whether none is to come.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Runners waiting now.
    pub fn waiters(&self) -> usize {
        self.waiters.load(Ordering::Acquire)
    }

    /// Whether a runner should wait before handing on its next message.
    pub fn is_over(&self) -> bool {
        self.len() > self.high
    }

    /// Blocks this thread until the count is down to `low` or `max` has passed; whether it
    /// drained. Call only where blocking is allowed (see [`hold_back`]).
    pub fn wait(&self, max: Duration) -> bool {
        let deadline = Instant::now() + max;
        let mut guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        self.waiters.fetch_add(1, Ordering::AcqRel);
        let drained = loop {
            if self.len() <= self.low {
                break true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break false;
            }
            guard = match self.drained.wait_timeout(guard, left) {
                Ok((g, _)) => g,
                Err(e) => e.into_inner().0,
            };
        };
        self.waiters.fetch_sub(1, Ordering::AcqRel);
        drop(guard);
        drained
    }
}

/// Called by a shard runner (through its collector) before it hands on a message: while the
/// backlog is over its high mark, waits (at most [`MAX_WAIT`]) for it to drain, blocking the
/// runner's thread with `block_in_place` so the runtime's other tasks, the handler tasks among
/// them, move to another thread. On a current-thread runtime (tests), where blocking would
/// stop the very tasks it waits for, it does not wait.
pub fn hold_back(backlog: &Backlog) -> Held {
    if !backlog.is_over() {
        return Held::No;
    }
    let multi_thread = tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    if !multi_thread {
        return Held::CannotBlock;
    }
    if tokio::task::block_in_place(|| backlog.wait(MAX_WAIT)) {
        telemetry::gateway_held("drained");
        Held::UntilDrained
    } else {
        tracing::debug!(
            waiting = backlog.len(),
            "gateway backlog did not drain within {MAX_WAIT:?}; handing on anyway"
        );
        telemetry::gateway_held("gave_up");
        Held::GaveUp
    }
}

/// What [`hold_back`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Held {
    /// The backlog was not over its high mark.
    No,
    /// It was, but this thread may not block (a current-thread runtime).
    CannotBlock,
    /// Waited until the backlog was down to its low mark.
    UntilDrained,
    /// Waited [`MAX_WAIT`]; the backlog had not drained.
    GaveUp,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn the_count_goes_up_and_down_and_never_below_zero() {
        let b = Backlog::new(2, 1);
        b.add();
        b.add();
        assert_eq!(b.len(), 2);
        assert!(!b.is_over(), "over means above the high mark");
        b.add();
        assert!(b.is_over());
        for _ in 0..5 {
            b.remove();
        }
        assert!(b.is_empty());
    }

    #[test]
    fn a_wait_returns_once_the_count_is_down_to_the_low_mark() {
        let b = Arc::new(Backlog::new(4, 2));
        for _ in 0..6 {
            b.add();
        }
        let drainer = {
            let b = Arc::clone(&b);
            std::thread::spawn(move || {
                for _ in 0..4 {
                    b.remove();
                }
            })
        };
        // Long enough that only a missed wake-up could make it fail.
        assert!(b.wait(Duration::from_secs(60)), "drained to {}", b.len());
        drainer.join().unwrap();
        assert!(b.len() <= 2);
    }

    #[test]
    fn a_wait_that_does_not_drain_gives_up_at_its_bound() {
        let b = Backlog::new(1, 0);
        b.add();
        b.add();
        assert!(!b.wait(Duration::from_millis(20)));
        assert_eq!(b.len(), 2, "waiting changes nothing");
    }

    #[test]
    fn below_the_high_mark_nothing_is_held() {
        let b = Backlog::new(1, 0);
        b.add();
        assert_eq!(hold_back(&b), Held::No);
    }

    #[tokio::test]
    async fn on_a_current_thread_runtime_hold_back_does_not_block() {
        let b = Backlog::new(0, 0);
        b.add();
        assert_eq!(hold_back(&b), Held::CannotBlock);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn on_a_multi_thread_runtime_a_runner_is_held_until_the_handler_tasks_ran() {
        static B: Backlog = Backlog::new(1, 0);
        B.add();
        B.add();
        // The "handler tasks" run on the same runtime once the runner is held back.
        let handlers = tokio::spawn(async {
            while B.waiters() == 0 {
                tokio::task::yield_now().await;
            }
            B.remove();
            B.remove();
        });
        let held = tokio::task::spawn(async { hold_back(&B) }).await.unwrap();
        assert_eq!(held, Held::UntilDrained);
        assert!(B.is_empty());
        handlers.await.unwrap();
    }
}
