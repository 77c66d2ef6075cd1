//! The circuit breaker of one agent's turns (pure): consecutive failed turns trip it, and then
//! either troupe exits or that agent alone stops answering and probes its backend again after a
//! cooldown.
//!
//! ```text
//! closed ──(max_failures consecutive failed turns)──► open ──(cooldown passed)──► half-open
//!   ▲                                                  ▲                              │
//!   │                                                  └──────(the probe failed)──────┤
//!   └────────────────────────────(a turn succeeded)───────────────────────────────────┘
//! ```
//!
//! The clock is explicit (`now` is passed in) so every transition is unit-tested without
//! sleeping. The caller (the agent's turns) asks [`Breaker::allow`] before a turn, reports the
//! outcome with [`Breaker::record_success`] or [`Breaker::record_failure`], and acts on a
//! [`Tripped`]: with [`OnTrip::Exit`] it requests a clean exit with
//! [`crate::ops::exit::ExitReason::BreakerTripped`].

use std::fmt;
use std::time::{Duration, Instant};

/// What tripping the breaker does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnTrip {
    /// Log the cause, flush state and exit with the breaker's exit code (default): a supervisor
    /// (systemd, Kubernetes) restarts troupe, with crash-loop back-off.
    Exit,
    /// Only this agent stops answering; it probes its backend again after the cooldown.
    Isolate,
}

impl OnTrip {
    /// The configuration spelling: `"exit"` or `"isolate"`.
    pub fn as_str(self) -> &'static str {
        match self {
            OnTrip::Exit => "exit",
            OnTrip::Isolate => "isolate",
        }
    }
}

/// `[breaker]` settings (global, optionally overridden per agent).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerSettings {
    /// Consecutive failed turns that trip the breaker.
    pub max_failures: u32,
    /// What tripping does.
    pub on_trip: OnTrip,
    /// With [`OnTrip::Isolate`]: how long the agent stays silent before a probe turn.
    pub cooldown: Duration,
}

impl Default for BreakerSettings {
    fn default() -> Self {
        Self {
            max_failures: 5,
            on_trip: OnTrip::Exit,
            cooldown: Duration::from_secs(60),
        }
    }
}

/// Where the breaker stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Turns run; failures are counted.
    Closed,
    /// Tripped: no turns until `until`.
    Open {
        /// When a probe turn may run.
        until: Instant,
    },
    /// One probe turn is allowed; its outcome closes or re-opens the breaker.
    HalfOpen,
}

impl BreakerState {
    /// A short label for health reports and logs: `closed`, `open`, `half-open`.
    pub fn label(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open { .. } => "open",
            BreakerState::HalfOpen => "half-open",
        }
    }

    /// Where a breaker last seen in this state stands at `now`: an open breaker whose cooldown
    /// has passed is half-open (its next turn is the probe), whether or not a turn has asked
    /// yet. Readers that only learn of transitions (readiness) use it to report the present.
    pub fn at(self, now: Instant) -> BreakerState {
        match self {
            BreakerState::Open { until } if now >= until => BreakerState::HalfOpen,
            state => state,
        }
    }
}

/// The breaker tripped (or re-tripped after a failed probe).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tripped {
    /// Consecutive failures counted, the last one included.
    pub failures: u32,
    /// What the caller must do.
    pub action: OnTrip,
}

impl fmt::Display for Tripped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} consecutive failed turns (on_trip = \"{}\")",
            self.failures,
            self.action.as_str()
        )
    }
}

/// One agent's breaker.
#[derive(Debug, Clone)]
pub struct Breaker {
    settings: BreakerSettings,
    state: BreakerState,
    failures: u32,
    /// When the half-open probe was let through; a probe whose outcome never comes (the turn
    /// panicked) does not block the agent forever: another is allowed after a cooldown.
    probe_started: Option<Instant>,
}

impl Breaker {
    /// A closed breaker.
    pub fn new(settings: BreakerSettings) -> Self {
        Self {
            settings,
            state: BreakerState::Closed,
            failures: 0,
            probe_started: None,
        }
    }

    /// Whether a turn may run now. After the cooldown an open breaker becomes half-open and
    /// lets exactly one probe through; others wait for its outcome.
    pub fn allow(&mut self, now: Instant) -> bool {
        match self.state {
            BreakerState::Closed => true,
            BreakerState::Open { until } if now >= until => {
                self.state = BreakerState::HalfOpen;
                self.probe_started = Some(now);
                true
            }
            BreakerState::Open { .. } => false,
            BreakerState::HalfOpen => match self.probe_started {
                Some(started) if now.saturating_duration_since(started) < self.settings.cooldown => false,
                _ => {
                    self.probe_started = Some(now);
                    true
                }
            },
        }
    }

    /// A turn succeeded: the count resets and the breaker closes.
    pub fn record_success(&mut self) {
        self.failures = 0;
        self.state = BreakerState::Closed;
        self.probe_started = None;
    }

    /// A turn failed. Returns [`Tripped`] when this failure trips the breaker (the
    /// `max_failures`-th in a row, or a failed probe).
    pub fn record_failure(&mut self, now: Instant) -> Option<Tripped> {
        self.failures = self.failures.saturating_add(1);
        match self.state {
            BreakerState::Closed if self.failures < self.settings.max_failures => None,
            // A turn let through before the trip, finishing late: counted, nothing more.
            BreakerState::Open { .. } => None,
            BreakerState::Closed | BreakerState::HalfOpen => {
                self.state = BreakerState::Open {
                    until: now + self.settings.cooldown,
                };
                self.probe_started = None;
                Some(Tripped {
                    failures: self.failures,
                    action: self.settings.on_trip,
                })
            }
        }
    }

    /// Where the breaker stands.
    pub fn state(&self) -> BreakerState {
        self.state
    }

    /// Consecutive failures counted so far.
    pub fn failures(&self) -> u32 {
        self.failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn isolate(max_failures: u32) -> Breaker {
        Breaker::new(BreakerSettings {
            max_failures,
            on_trip: OnTrip::Isolate,
            cooldown: Duration::from_secs(10),
        })
    }

    #[test]
    fn defaults_match_the_documentation() {
        let d = BreakerSettings::default();
        assert_eq!(
            (d.max_failures, d.on_trip, d.cooldown),
            (5, OnTrip::Exit, Duration::from_secs(60))
        );
    }

    #[test]
    fn trips_on_the_max_failures_th_consecutive_failure() {
        let now = Instant::now();
        let mut b = Breaker::new(BreakerSettings::default());
        for _ in 0..4 {
            assert_eq!(b.record_failure(now), None);
            assert!(b.allow(now));
        }
        let tripped = b.record_failure(now).expect("fifth failure trips");
        assert_eq!(
            tripped,
            Tripped {
                failures: 5,
                action: OnTrip::Exit
            }
        );
        assert!(!b.allow(now));
    }

    #[test]
    fn a_success_resets_the_count() {
        let now = Instant::now();
        let mut b = isolate(3);
        b.record_failure(now);
        b.record_failure(now);
        b.record_success();
        assert_eq!(b.failures(), 0);
        assert_eq!(b.record_failure(now), None);
        assert_eq!(b.record_failure(now), None);
        assert!(b.record_failure(now).is_some());
    }

    #[test]
    fn open_refuses_until_the_cooldown_then_lets_one_probe_through() {
        let t0 = Instant::now();
        let mut b = isolate(1);
        b.record_failure(t0).unwrap();
        assert_eq!(
            b.state(),
            BreakerState::Open {
                until: t0 + Duration::from_secs(10)
            }
        );
        assert!(!b.allow(t0 + Duration::from_secs(9)));
        assert!(b.allow(t0 + Duration::from_secs(10)), "probe after the cooldown");
        assert_eq!(b.state(), BreakerState::HalfOpen);
        assert!(!b.allow(t0 + Duration::from_secs(11)), "only one probe at a time");
    }

    #[test]
    fn a_successful_probe_closes() {
        let t0 = Instant::now();
        let mut b = isolate(1);
        b.record_failure(t0);
        assert!(b.allow(t0 + Duration::from_secs(10)));
        b.record_success();
        assert_eq!(b.state(), BreakerState::Closed);
        assert!(b.allow(t0 + Duration::from_secs(10)));
    }

    #[test]
    fn a_failed_probe_reopens_for_another_cooldown() {
        let t0 = Instant::now();
        let mut b = isolate(3);
        for _ in 0..3 {
            b.record_failure(t0);
        }
        let probe = t0 + Duration::from_secs(10);
        assert!(b.allow(probe));
        let tripped = b.record_failure(probe).expect("a failed probe trips again");
        assert_eq!(tripped.action, OnTrip::Isolate);
        assert_eq!(
            b.state(),
            BreakerState::Open {
                until: probe + Duration::from_secs(10)
            }
        );
    }

    #[test]
    fn a_late_failure_while_open_does_not_extend_the_cooldown() {
        let t0 = Instant::now();
        let mut b = isolate(1);
        b.record_failure(t0);
        assert_eq!(b.record_failure(t0 + Duration::from_secs(5)), None);
        assert_eq!(
            b.state(),
            BreakerState::Open {
                until: t0 + Duration::from_secs(10)
            }
        );
    }

    #[test]
    fn a_lost_probe_does_not_block_forever() {
        let t0 = Instant::now();
        let mut b = isolate(1);
        b.record_failure(t0);
        assert!(b.allow(t0 + Duration::from_secs(10)));
        // The probe's outcome never arrives (its turn panicked).
        assert!(!b.allow(t0 + Duration::from_secs(19)));
        assert!(b.allow(t0 + Duration::from_secs(20)));
    }

    #[test]
    fn an_open_state_reads_half_open_once_its_cooldown_has_passed() {
        let t0 = Instant::now();
        let open = BreakerState::Open {
            until: t0 + Duration::from_secs(10),
        };
        assert_eq!(open.at(t0 + Duration::from_secs(9)), open);
        assert_eq!(open.at(t0 + Duration::from_secs(10)), BreakerState::HalfOpen);
        assert_eq!(BreakerState::Closed.at(t0), BreakerState::Closed);
    }

    #[test]
    fn labels() {
        assert_eq!(BreakerState::Closed.label(), "closed");
        assert_eq!(BreakerState::HalfOpen.label(), "half-open");
        assert_eq!(BreakerState::Open { until: Instant::now() }.label(), "open");
        assert_eq!(OnTrip::Isolate.as_str(), "isolate");
    }
}
