//! One agent's breaker as its turns use it: the pure [`Breaker`] behind a lock (an agent's
//! conversations run turns concurrently), with every transition reported to the health registry
//! and the metrics, and `on_trip = "exit"` turned into an exit request.
//!
//! A turn calls [`AgentBreaker::allow`] before asking the backend and, when it did ask,
//! [`AgentBreaker::record_success`] or [`AgentBreaker::record_failure`] after.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::exit::{ExitReason, ExitRequests};
use super::health::Health;
use crate::breaker::{Breaker, BreakerSettings, BreakerState, OnTrip, Tripped};

/// An agent's breaker, shared by its conversations.
#[derive(Debug)]
pub struct AgentBreaker {
    agent: String,
    breaker: Mutex<Breaker>,
    health: Arc<Health>,
    exits: ExitRequests,
}

impl AgentBreaker {
    /// A closed breaker for `agent`.
    pub fn new(agent: &str, settings: BreakerSettings, health: Arc<Health>, exits: ExitRequests) -> Self {
        Self {
            agent: agent.to_string(),
            breaker: Mutex::new(Breaker::new(settings)),
            health,
            exits,
        }
    }

    /// Whether a turn may ask the backend now (false while the breaker is open; once the
    /// cooldown has passed, true for exactly one probe).
    pub fn allow(&self, now: Instant) -> bool {
        let (allowed, state) = self.with(|b| (b.allow(now), b.state()));
        if state == BreakerState::HalfOpen && allowed {
            tracing::info!(agent = %self.agent, "circuit breaker half-open: probing the backend");
            self.health.set_breaker(&self.agent, state);
        }
        allowed
    }

    /// The turn's completion succeeded.
    pub fn record_success(&self) {
        let before = self.with(|b| {
            let before = b.state();
            b.record_success();
            before
        });
        if before != BreakerState::Closed {
            tracing::info!(agent = %self.agent, "circuit breaker closed: the backend answers again");
            self.health.set_breaker(&self.agent, BreakerState::Closed);
        }
    }

    /// The turn's completion failed with `cause`. Returns what tripping did, if it tripped.
    pub fn record_failure(&self, now: Instant, cause: &str) -> Option<Tripped> {
        let (tripped, state) = self.with(|b| (b.record_failure(now), b.state()));
        let tripped = tripped?;
        self.health.set_breaker(&self.agent, state);
        match tripped.action {
            OnTrip::Exit => {
                self.exits.request(ExitReason::BreakerTripped {
                    agent: self.agent.clone(),
                    failures: tripped.failures,
                    cause: cause.to_string(),
                });
            }
            OnTrip::Isolate => {
                tracing::error!(agent = %self.agent, %tripped, cause, "circuit breaker open: this agent stops answering until a probe succeeds");
            }
        }
        Some(tripped)
    }

    /// Where the breaker stands.
    pub fn state(&self) -> BreakerState {
        self.with(|b| b.state())
    }

    fn with<T>(&self, f: impl FnOnce(&mut Breaker) -> T) -> T {
        // A panic while holding this lock cannot leave the small state machine half-updated.
        f(&mut self.breaker.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn breaker(on_trip: OnTrip) -> (AgentBreaker, Arc<Health>, ExitRequests) {
        let health = Arc::new(Health::new(["Ada"]));
        let exits = ExitRequests::new();
        let settings = BreakerSettings {
            max_failures: 2,
            on_trip,
            cooldown: Duration::from_secs(10),
        };
        (
            AgentBreaker::new("Ada", settings, health.clone(), exits.clone()),
            health,
            exits,
        )
    }

    #[test]
    fn exit_trips_request_an_exit_naming_the_agent_and_cause() {
        let (b, _, exits) = breaker(OnTrip::Exit);
        let now = Instant::now();
        assert!(b.record_failure(now, "timeout").is_none());
        assert!(b.record_failure(now, "timeout").is_some());
        let reason = exits.current().expect("exit requested");
        assert_eq!(reason.code(), 7);
        assert!(reason.to_string().contains("agent `Ada`") && reason.to_string().contains("timeout"));
    }

    #[test]
    fn isolate_reports_open_half_open_and_closed_to_readiness() {
        let (b, health, exits) = breaker(OnTrip::Isolate);
        let t0 = Instant::now();
        b.record_failure(t0, "x");
        b.record_failure(t0, "x");
        assert_eq!(exits.current(), None, "isolate never exits");
        assert_eq!(health.readiness(true).agents[0].breaker, "open");
        assert!(!b.allow(t0));
        assert!(b.allow(t0 + Duration::from_secs(10)));
        assert_eq!(health.readiness(true).agents[0].breaker, "half-open");
        b.record_success();
        assert_eq!(health.readiness(true).agents[0].breaker, "closed");
    }
}
