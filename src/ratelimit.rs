//! Per-user rate limiting of an agent: at most N messages per user within a sliding window; the
//! first message over the limit gets one polite notice, later ones silence until the window has
//! room again. Pure: the caller passes the time.
//!
//! Every user who ever wrote would otherwise stay in the map for the life of the process, so
//! [`UserRateLimiter::check`] prunes users whose window has passed whenever the map has doubled
//! since the last prune (and is past [`PRUNE_FLOOR`]): amortised O(1) per message, and the map
//! holds at most about twice the users active within one window.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// What to do with a user's message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Within the limit: answer it.
    Allow,
    /// Just went over: send the notice once, do not answer.
    Notice,
    /// Still over, notice already sent: stay silent.
    Drop,
}

/// Below this many users the map is never pruned: small maps cost nothing to keep.
pub const PRUNE_FLOOR: usize = 1024;

/// Sliding-window limiter keyed by user ID.
#[derive(Debug)]
pub struct UserRateLimiter {
    max: usize,
    window: Duration,
    users: HashMap<u64, UserWindow>,
    /// The map is pruned when it grows past this.
    prune_at: usize,
}

#[derive(Debug, Default)]
struct UserWindow {
    times: VecDeque<Instant>,
    noticed: bool,
}

impl UserRateLimiter {
    /// `max` messages per `window`; `max == 0` disables the limit.
    pub fn new(max: usize, window: Duration) -> Self {
        Self {
            max,
            window,
            users: HashMap::new(),
            prune_at: PRUNE_FLOOR,
        }
    }

    /// Records a message from `user` at `now` and says what to do with it.
    pub fn check(&mut self, user: u64, now: Instant) -> Verdict {
        if self.max == 0 {
            return Verdict::Allow;
        }
        if self.users.len() >= self.prune_at && !self.users.contains_key(&user) {
            self.prune(now);
            self.prune_at = (2 * self.users.len()).max(PRUNE_FLOOR);
        }
        let w = self.users.entry(user).or_default();
        while w.times.front().is_some_and(|t| now.duration_since(*t) >= self.window) {
            w.times.pop_front();
        }
        if w.times.len() < self.max {
            w.times.push_back(now);
            w.noticed = false;
            Verdict::Allow
        } else if !w.noticed {
            w.noticed = true;
            Verdict::Notice
        } else {
            Verdict::Drop
        }
    }

    /// Forgets users with nothing left in their window. [`check`](Self::check) calls it when
    /// the map has grown; callers need not.
    pub fn prune(&mut self, now: Instant) {
        let window = self.window;
        self.users
            .retain(|_, w| w.times.back().is_some_and(|t| now.duration_since(*t) < window));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_then_notices_once_then_drops_until_the_window_has_room() {
        let t0 = Instant::now();
        let mut l = UserRateLimiter::new(3, Duration::from_secs(60));
        let at = |s| t0 + Duration::from_secs(s);
        assert_eq!(
            [l.check(1, at(0)), l.check(1, at(1)), l.check(1, at(2))],
            [Verdict::Allow; 3]
        );
        assert_eq!(l.check(1, at(3)), Verdict::Notice);
        assert_eq!(l.check(1, at(4)), Verdict::Drop);
        // Another user is not affected.
        assert_eq!(l.check(2, at(4)), Verdict::Allow);
        // The first message leaves the window at 60 s: room for one more.
        assert_eq!(l.check(1, at(60)), Verdict::Allow);
        assert_eq!(l.check(1, at(61)), Verdict::Allow);
        assert_eq!(l.check(1, at(61)), Verdict::Notice);
    }

    #[test]
    fn zero_disables_and_prune_forgets_quiet_users() {
        let t0 = Instant::now();
        let mut off = UserRateLimiter::new(0, Duration::from_secs(1));
        assert!((0..100).all(|_| off.check(1, t0) == Verdict::Allow));
        let mut l = UserRateLimiter::new(1, Duration::from_secs(10));
        l.check(1, t0);
        l.prune(t0 + Duration::from_secs(11));
        assert!(l.users.is_empty());
    }

    #[test]
    fn the_map_stays_bounded_over_many_users() {
        // 100,000 users, one message each, 10 ms apart, 1 s window: about 100 are within their
        // window at any time. Without pruning the map would hold all 100,000.
        let t0 = Instant::now();
        let mut l = UserRateLimiter::new(5, Duration::from_secs(1));
        let mut largest = 0;
        for user in 0..100_000u64 {
            assert_eq!(l.check(user, t0 + Duration::from_millis(10 * user)), Verdict::Allow);
            largest = largest.max(l.users.len());
        }
        assert!(largest <= PRUNE_FLOOR, "the map grew to {largest} users");
    }

    #[test]
    fn pruning_keeps_users_within_their_window() {
        let t0 = Instant::now();
        let mut l = UserRateLimiter::new(1, Duration::from_secs(60));
        assert_eq!(l.check(0, t0), Verdict::Allow);
        assert_eq!(l.check(0, t0), Verdict::Notice);
        // Enough other users to trigger prunes while user 0 is still over the limit.
        for user in 1..=(3 * PRUNE_FLOOR as u64) {
            l.check(user, t0 + Duration::from_secs(1));
        }
        assert_eq!(
            l.check(0, t0 + Duration::from_secs(2)),
            Verdict::Drop,
            "still limited, notice not repeated"
        );
    }
}
