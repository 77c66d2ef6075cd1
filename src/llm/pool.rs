//! The LLM worker pool: at most `max_concurrency` requests run at once per backend, at most
//! `max_queue` wait, and waiting requests are served round-robin across agents, first come first
//! served within an agent. A conversation has at most one request in flight, so within an agent
//! the queue is also fair across conversations: one busy channel cannot starve the others.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

/// A slot in the pool; the slot is released when this is dropped.
#[derive(Debug)]
pub struct Permit {
    pool: Option<Arc<Pool>>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        if let Some(pool) = self.pool.take() {
            pool.release();
        }
    }
}

/// The wait queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the LLM pool's wait queue is full ({0} waiting)")]
pub struct QueueFull(pub usize);

#[derive(Debug)]
struct Inner {
    free: usize,
    waiting: usize,
    queues: HashMap<String, VecDeque<oneshot::Sender<Permit>>>,
    /// Agents with waiters, in the order they will be served.
    turn: VecDeque<String>,
    in_flight: usize,
    peak_in_flight: usize,
}

/// A pool of slots for one backend.
#[derive(Debug)]
pub struct Pool {
    max_concurrency: usize,
    max_queue: usize,
    inner: Mutex<Inner>,
}

impl Pool {
    /// A pool with `max_concurrency` slots and room for `max_queue` waiters.
    pub fn new(max_concurrency: usize, max_queue: usize) -> Arc<Pool> {
        let max_concurrency = max_concurrency.max(1);
        Arc::new(Pool {
            max_concurrency,
            max_queue,
            inner: Mutex::new(Inner {
                free: max_concurrency,
                waiting: 0,
                queues: HashMap::new(),
                turn: VecDeque::new(),
                in_flight: 0,
                peak_in_flight: 0,
            }),
        })
    }

    /// Waits for a slot for `agent`. Cancel-safe: dropping the future gives up the place.
    pub async fn acquire(self: &Arc<Self>, agent: &str) -> Result<Permit, QueueFull> {
        let rx = {
            let mut inner = self.inner.lock().expect("pool lock");
            if inner.free > 0 {
                inner.free -= 1;
                inner.in_flight += 1;
                inner.peak_in_flight = inner.peak_in_flight.max(inner.in_flight);
                return Ok(Permit {
                    pool: Some(self.clone()),
                });
            }
            if inner.waiting >= self.max_queue {
                return Err(QueueFull(inner.waiting));
            }
            let (tx, rx) = oneshot::channel();
            let queue = inner.queues.entry(agent.to_string()).or_default();
            if queue.is_empty() {
                inner.turn.push_back(agent.to_string());
            }
            inner.queues.get_mut(agent).expect("queue just made").push_back(tx);
            inner.waiting += 1;
            rx
        };
        // The permit travels through the channel: if this future is dropped after the slot was
        // handed over, the permit is dropped with the channel and the slot returns to the pool.
        match rx.await {
            Ok(permit) => Ok(permit),
            // The pool handed us nothing and dropped the sender: cannot happen while the pool
            // lives (we hold an Arc), but never hang on it.
            Err(_) => Err(QueueFull(0)),
        }
    }

    /// Hands the freed slot to the next waiter in round-robin order, or returns it.
    fn release(self: &Arc<Self>) {
        let mut inner = self.inner.lock().expect("pool lock");
        inner.in_flight -= 1;
        let mut permit = Permit {
            pool: Some(self.clone()),
        };
        while let Some(agent) = inner.turn.pop_front() {
            let Some(queue) = inner.queues.get_mut(&agent) else {
                continue;
            };
            let next = queue.pop_front();
            let more = !queue.is_empty();
            if !more {
                inner.queues.remove(&agent);
            }
            let Some(tx) = next else { continue };
            inner.waiting -= 1;
            if more {
                inner.turn.push_back(agent);
            }
            inner.in_flight += 1;
            inner.peak_in_flight = inner.peak_in_flight.max(inner.in_flight);
            match tx.send(permit) {
                Ok(()) => return,
                Err(back) => {
                    // That waiter gave up; offer the slot to the next one.
                    inner.in_flight -= 1;
                    permit = back;
                }
            }
        }
        // Nobody waits: keep the slot without running the permit's Drop (we hold the lock).
        permit.pool = None;
        inner.free += 1;
    }

    /// Requests running now.
    pub fn in_flight(&self) -> usize {
        self.inner.lock().expect("pool lock").in_flight
    }

    /// Requests waiting now (including ones whose caller has given up but not been reached yet).
    pub fn waiting(&self) -> usize {
        self.inner.lock().expect("pool lock").waiting
    }

    /// The most requests ever running at once.
    pub fn peak_in_flight(&self) -> usize {
        self.inner.lock().expect("pool lock").peak_in_flight
    }

    /// Configured concurrency.
    pub fn max_concurrency(&self) -> usize {
        self.max_concurrency
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn at_most_max_concurrency_run_and_all_complete() {
        let pool = Pool::new(2, 100);
        let running = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for i in 0..20 {
            let (pool, running, peak) = (pool.clone(), running.clone(), peak.clone());
            tasks.push(tokio::spawn(async move {
                let _permit = pool.acquire(&format!("agent{}", i % 3)).await.unwrap();
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                tokio::task::yield_now().await;
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                running.fetch_sub(1, Ordering::SeqCst);
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert!(peak.load(Ordering::SeqCst) <= 2, "peak {}", peak.load(Ordering::SeqCst));
        assert_eq!(pool.peak_in_flight(), 2);
        assert_eq!(pool.in_flight(), 0);
        assert_eq!(pool.waiting(), 0);
    }

    #[tokio::test]
    async fn queue_is_bounded() {
        let pool = Pool::new(1, 1);
        let _held = pool.acquire("a").await.unwrap();
        let p2 = pool.clone();
        let waiter = tokio::spawn(async move { p2.acquire("a").await.map(|_| ()) });
        while pool.waiting() == 0 {
            tokio::task::yield_now().await;
        }
        assert_eq!(pool.acquire("b").await.unwrap_err(), QueueFull(1));
        drop(_held);
        waiter.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn waiters_are_served_round_robin_across_agents() {
        let pool = Pool::new(1, 100);
        let held = pool.acquire("busy").await.unwrap();
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        // The busy agent queues five requests before the quiet one queues its single request.
        for (i, agent) in ["busy", "busy", "busy", "busy", "busy", "quiet"]
            .into_iter()
            .enumerate()
        {
            let (p, order) = (pool.clone(), order.clone());
            tasks.push(tokio::spawn(async move {
                let _p = p.acquire(agent).await.unwrap();
                order.lock().unwrap().push(format!("{agent}{i}"));
            }));
            while pool.waiting() < i + 1 {
                tokio::task::yield_now().await;
            }
        }
        drop(held);
        for t in tasks {
            t.await.unwrap();
        }
        let order = order.lock().unwrap().clone();
        // "quiet" is served second, not after all of "busy"'s backlog.
        assert_eq!(order[0], "busy0");
        assert_eq!(order[1], "quiet5");
    }

    #[tokio::test]
    async fn a_cancelled_waiter_does_not_leak_its_slot() {
        let pool = Pool::new(1, 10);
        let held = pool.acquire("a").await.unwrap();
        let p2 = pool.clone();
        let gone = tokio::spawn(async move { p2.acquire("a").await.map(|_| ()) });
        while pool.waiting() == 0 {
            tokio::task::yield_now().await;
        }
        gone.abort();
        let _ = gone.await;
        drop(held);
        // The slot went back to the pool rather than to the cancelled waiter.
        let _again = pool.acquire("b").await.unwrap();
        assert_eq!(pool.in_flight(), 1);
    }
}
