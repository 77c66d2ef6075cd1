//! The bot-exchange guard: at most N answers to foreign bots per channel per window (pure).
//!
//! The ACL footer bounds every chain troupe can see. A foreign bot (one that is not an agent of
//! this troupe) that ignores the footer and mentions an agent without replying to it starts a
//! new chain each time, so the footer never stops that loop. The guard counts, per channel, the
//! answers troupe's agents give to bots and webhooks outside the cast within a sliding window;
//! past the limit the agents stay silent there until the window has room again. The first
//! refusal in a window says so ([`Verdict::SilenceAndWarn`]), so the caller logs one line per
//! channel per window, not one per message.
//!
//! One guard serves every agent of the process (behind a lock), so two agents taking turns with
//! one foreign bot share the channel's budget. The clock is explicit: callers pass `now`.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// Answers to foreign bots per channel within the window, unless configured
/// (`[discord] bot_replies_per_window`).
pub const DEFAULT_LIMIT: usize = 8;

/// The window, unless configured (`[discord] bot_reply_window_secs`).
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(600);

/// Below this many channels the guard never prunes: small maps cost nothing to keep.
const PRUNE_FLOOR: usize = 256;

/// What to do with a foreign bot's message an agent would answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Within the channel's budget: answer it (it is counted).
    Answer,
    /// Over the budget; the channel's first refusal in this window: stay silent and log it.
    SilenceAndWarn,
    /// Over the budget, already logged in this window: stay silent.
    Silence,
}

/// Answers to foreign bots per channel within a sliding window.
#[derive(Debug)]
pub struct BotExchangeGuard {
    limit: usize,
    window: Duration,
    channels: HashMap<u64, ChannelExchanges>,
    /// The map is pruned when it grows past this.
    prune_at: usize,
}

impl Default for BotExchangeGuard {
    /// [`DEFAULT_LIMIT`] answers per [`DEFAULT_WINDOW`].
    fn default() -> Self {
        Self::new(DEFAULT_LIMIT, DEFAULT_WINDOW)
    }
}

#[derive(Debug, Default)]
struct ChannelExchanges {
    /// When each answer within the window was allowed, oldest first.
    answers: VecDeque<Instant>,
    /// When the last refusal was logged.
    warned: Option<Instant>,
}

impl BotExchangeGuard {
    /// At most `limit` answers to foreign bots per channel within `window`.
    pub fn new(limit: usize, window: Duration) -> Self {
        Self {
            limit,
            window,
            channels: HashMap::new(),
            prune_at: PRUNE_FLOOR,
        }
    }

    /// An agent would answer a foreign bot's message in `channel` at `now`: counts the answer if
    /// the channel's budget has room, and says what to do.
    pub fn check(&mut self, channel: u64, now: Instant) -> Verdict {
        if self.channels.len() >= self.prune_at && !self.channels.contains_key(&channel) {
            self.prune(now);
            self.prune_at = (2 * self.channels.len()).max(PRUNE_FLOOR);
        }
        let window = self.window;
        let c = self.channels.entry(channel).or_default();
        while c.answers.front().is_some_and(|t| now.duration_since(*t) >= window) {
            c.answers.pop_front();
        }
        if c.answers.len() < self.limit {
            c.answers.push_back(now);
            Verdict::Answer
        } else if c.warned.is_some_and(|t| now.duration_since(t) < window) {
            Verdict::Silence
        } else {
            c.warned = Some(now);
            Verdict::SilenceAndWarn
        }
    }

    /// Forgets channels with no answer and no warning left in their window.
    fn prune(&mut self, now: Instant) {
        let window = self.window;
        let recent = |t: &Instant| now.duration_since(*t) < window;
        self.channels
            .retain(|_, c| c.answers.back().is_some_and(recent) || c.warned.as_ref().is_some_and(recent));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOW: Duration = Duration::from_secs(600);

    fn at(t0: Instant, secs: u64) -> Instant {
        t0 + Duration::from_secs(secs)
    }

    #[test]
    fn answers_up_to_the_limit_then_warns_once_then_stays_silent() {
        let t0 = Instant::now();
        let mut g = BotExchangeGuard::new(8, WINDOW);
        for round in 0..8 {
            assert_eq!(g.check(1, at(t0, round)), Verdict::Answer, "round {round}");
        }
        assert_eq!(g.check(1, at(t0, 8)), Verdict::SilenceAndWarn);
        for round in 9..20 {
            assert_eq!(g.check(1, at(t0, round)), Verdict::Silence, "round {round}");
        }
    }

    #[test]
    fn channels_have_their_own_budgets() {
        let t0 = Instant::now();
        let mut g = BotExchangeGuard::new(1, WINDOW);
        assert_eq!(g.check(1, t0), Verdict::Answer);
        assert_eq!(g.check(1, t0), Verdict::SilenceAndWarn);
        assert_eq!(g.check(2, t0), Verdict::Answer);
    }

    #[test]
    fn the_window_slides_and_warns_again_one_window_later() {
        let t0 = Instant::now();
        let mut g = BotExchangeGuard::new(2, WINDOW);
        assert_eq!(g.check(1, at(t0, 0)), Verdict::Answer);
        assert_eq!(g.check(1, at(t0, 100)), Verdict::Answer);
        assert_eq!(g.check(1, at(t0, 200)), Verdict::SilenceAndWarn);
        assert_eq!(g.check(1, at(t0, 599)), Verdict::Silence);
        // The first answer leaves the window at 600 s: room for one more.
        assert_eq!(g.check(1, at(t0, 600)), Verdict::Answer);
        assert_eq!(
            g.check(1, at(t0, 650)),
            Verdict::Silence,
            "warned less than a window ago"
        );
        assert_eq!(
            g.check(1, at(t0, 750)),
            Verdict::Answer,
            "the 100 s answer left the window"
        );
        // A window after the last warning, a refusal is logged again.
        assert_eq!(g.check(1, at(t0, 810)), Verdict::SilenceAndWarn);
    }

    #[test]
    fn quiet_channels_are_forgotten() {
        let t0 = Instant::now();
        let mut g = BotExchangeGuard::new(1, Duration::from_secs(1));
        let mut largest = 0;
        for channel in 0..10_000u64 {
            g.check(channel, t0 + Duration::from_millis(100 * channel));
            largest = largest.max(g.channels.len());
        }
        assert!(largest <= PRUNE_FLOOR, "the map grew to {largest} channels");
    }
}
