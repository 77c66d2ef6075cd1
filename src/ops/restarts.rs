//! Crash-loop safety: troupe records each start in the store (`meta/1/starts`) and, when it has
//! started too often recently, waits before connecting any agent. Without this, a troupe that
//! dies at once (a bad token, a tripped breaker) and is restarted by its supervisor would
//! IDENTIFY with Discord in a tight loop, and Discord limits identifies per day.
//!
//! The schedule (defaults in brackets): starts within the last `window_secs` [600] are counted,
//! this one included. Up to `free_starts` [3] of them cost nothing; each start beyond doubles
//! the wait from `backoff_initial_ms` [10 000] up to `backoff_max_ms` [300 000]: with the
//! defaults the 4th start in ten minutes waits 10 s, the 5th 20 s, then 40 s, 80 s, 160 s, and
//! 300 s from the 9th on.

use std::time::Duration;

/// `[restarts]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestartPolicy {
    /// Starts within this window count.
    pub window: Duration,
    /// Starts in the window that cost no wait.
    pub free_starts: u32,
    /// The first wait.
    pub initial_backoff: Duration,
    /// The longest wait.
    pub max_backoff: Duration,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        Self {
            window: Duration::from_secs(600),
            free_starts: 3,
            initial_backoff: Duration::from_secs(10),
            max_backoff: Duration::from_secs(300),
        }
    }
}

impl RestartPolicy {
    /// How long to wait before connecting, given the number of starts in the window (this one
    /// included).
    pub fn backoff(&self, recent_starts: usize) -> Duration {
        let excess = (recent_starts as u64).saturating_sub(u64::from(self.free_starts));
        if excess == 0 {
            return Duration::ZERO;
        }
        let factor = 1u32 << (excess - 1).min(20);
        self.initial_backoff.saturating_mul(factor).min(self.max_backoff)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_default_schedule() {
        let p = RestartPolicy::default();
        let waits: Vec<u64> = (1..=10).map(|n| p.backoff(n).as_secs()).collect();
        assert_eq!(waits, [0, 0, 0, 10, 20, 40, 80, 160, 300, 300]);
    }

    #[test]
    fn a_scaled_down_schedule_for_tests() {
        let p = RestartPolicy {
            window: Duration::from_secs(60),
            free_starts: 1,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(250),
        };
        let waits: Vec<u128> = (1..=4).map(|n| p.backoff(n).as_millis()).collect();
        assert_eq!(waits, [0, 100, 200, 250]);
        assert_eq!(p.backoff(10_000), Duration::from_millis(250), "no overflow");
    }
}
