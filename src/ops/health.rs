//! What `/readiness` reports: troupe's phase and each agent's state, kept up to date by the
//! actors (gateway connected or not, breaker, backlog replay) and shared through an `Arc`.
//!
//! Readiness is a pure function of this registry, of whether the store answers and of the time
//! (a breaker's cooldown ends without anyone telling the registry), so it is unit-tested here
//! with an explicit clock; the HTTP layer only turns it into a status code.

use std::sync::RwLock;
use std::time::Instant;

use serde::Serialize;

use super::telemetry;
use crate::breaker::BreakerState;

/// Where troupe as a whole stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Opening the store, starting the sandbox.
    Starting,
    /// Restarting too often: waiting before connecting any agent (see `[restarts]`).
    RestartBackoff {
        /// The wait, in milliseconds.
        backoff_ms: u64,
    },
    /// The actor tree runs.
    Running,
    /// Shutting down: no new messages are taken.
    Stopping,
}

impl Phase {
    fn label(self) -> &'static str {
        match self {
            Phase::Starting => "starting",
            Phase::RestartBackoff { .. } => "restart back-off",
            Phase::Running => "running",
            Phase::Stopping => "stopping",
        }
    }
}

#[derive(Debug, Clone)]
struct AgentHealth {
    name: String,
    connected: bool,
    breaker: BreakerState,
    replaying_backlog: bool,
    /// For an agent with several shards.
    shards: Option<ShardsReport>,
}

impl AgentHealth {
    /// The one-word state shown to operators, most pressing first, given where the breaker
    /// stands now.
    fn state(&self, breaker: BreakerState) -> &'static str {
        if !self.connected {
            "connecting"
        } else if matches!(breaker, BreakerState::Open { .. }) {
            "breaker open"
        } else if breaker == BreakerState::HalfOpen {
            "breaker half-open"
        } else if self.replaying_backlog {
            "replaying backlog"
        } else {
            "ready"
        }
    }
}

/// One agent in the readiness body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AgentReport {
    /// The agent's name.
    pub name: String,
    /// `connecting`, `ready`, `replaying backlog`, `breaker open`, `breaker half-open`.
    pub state: &'static str,
    /// `connected` or `connecting`.
    pub gateway: &'static str,
    /// `closed`, `open` or `half-open`.
    pub breaker: &'static str,
    /// An agent with several gateway shards: how many are connected and ready.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shards: Option<ShardsReport>,
}

/// A sharded agent's shards in the readiness body: the agent is connected when every shard is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ShardsReport {
    /// Shards the bot runs.
    pub total: u32,
    /// Shards whose gateway session is up.
    pub connected: u32,
    /// Shards whose READY and every GUILD_CREATE have arrived since the client started.
    pub ready: u32,
}

/// The readiness answer: `ready` decides 200 or 503; the rest is the JSON body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Readiness {
    /// The store is open and answers, troupe is running, and every agent's gateway is connected.
    pub ready: bool,
    /// `starting`, `restart back-off`, `running` or `stopping`.
    pub phase: &'static str,
    /// With phase `restart back-off`: how long troupe waits before connecting.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backoff_ms: Option<u64>,
    /// `open`, or `unavailable` when a read fails.
    pub store: &'static str,
    /// Every agent, in configuration order.
    pub agents: Vec<AgentReport>,
    /// This process's cell, when the cast is split into cells (`[cells]`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cell: Option<CellReport>,
}

/// The cell in the readiness body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CellReport {
    /// This process's cell, `0..count`.
    pub index: u32,
    /// `[cells] count`.
    pub count: u32,
}

/// The registry: troupe's phase and every agent's state.
#[derive(Debug)]
pub struct Health {
    phase: RwLock<Phase>,
    agents: RwLock<Vec<AgentHealth>>,
    cell: std::sync::OnceLock<CellReport>,
}

impl Health {
    /// All agents connecting, troupe starting.
    pub fn new<'a>(agents: impl IntoIterator<Item = &'a str>) -> Self {
        let agents = agents
            .into_iter()
            .map(|name| AgentHealth {
                name: name.to_string(),
                connected: false,
                breaker: BreakerState::Closed,
                replaying_backlog: false,
                shards: None,
            })
            .collect::<Vec<_>>();
        for a in &agents {
            telemetry::gateway_connected(&a.name, false);
            telemetry::breaker_state(&a.name, BreakerState::Closed);
        }
        Self {
            phase: RwLock::new(Phase::Starting),
            agents: RwLock::new(agents),
            cell: std::sync::OnceLock::new(),
        }
    }

    /// Records this process's cell (once; it never changes while troupe runs).
    pub fn set_cell(&self, index: u32, count: u32) {
        let _ = self.cell.set(CellReport { index, count });
    }

    /// Sets troupe's phase.
    pub fn set_phase(&self, phase: Phase) {
        *self.phase.write().expect("health lock") = phase;
    }

    /// troupe's phase.
    pub fn phase(&self) -> Phase {
        *self.phase.read().expect("health lock")
    }

    fn update<T>(&self, agent: &str, f: impl FnOnce(&mut AgentHealth) -> T) -> Option<T> {
        let mut agents = self.agents.write().expect("health lock");
        agents.iter_mut().find(|a| a.name == agent).map(f)
    }

    /// The agent's gateway session is up (READY or RESUMED) or down (connecting again).
    /// Returns whether it was up before.
    pub fn set_gateway(&self, agent: &str, connected: bool) -> bool {
        let was = self.update(agent, |a| std::mem::replace(&mut a.connected, connected));
        telemetry::gateway_connected(agent, connected);
        was.unwrap_or(false)
    }

    /// A sharded agent's shards: `connected` (`None`: as last reported) and `ready` of `total`.
    pub fn set_shards(&self, agent: &str, connected: Option<u32>, ready: u32, total: u32) {
        let report = self.update(agent, |a| {
            let connected = connected
                .or_else(|| a.shards.filter(|s| s.total == total).map(|s| s.connected))
                .unwrap_or(0);
            let report = ShardsReport {
                total,
                connected,
                ready,
            };
            a.shards = Some(report);
            report
        });
        if let Some(r) = report {
            telemetry::gateway_shards(agent, r.total, r.connected, r.ready);
        }
    }

    /// The agent's breaker moved (an open breaker carries the end of its cooldown, so readers
    /// see it turn half-open on time without being told).
    pub fn set_breaker(&self, agent: &str, state: BreakerState) {
        self.update(agent, |a| a.breaker = state);
        telemetry::breaker_state(agent, state);
    }

    /// Sets `troupe_breaker_state` to where each breaker stands at `now`, so a cooldown that
    /// ended shows as half-open on `/metrics` too (called before rendering it).
    pub fn publish_breakers(&self, now: Instant) {
        for a in self.agents.read().expect("health lock").iter() {
            telemetry::breaker_state(&a.name, a.breaker.at(now));
        }
    }

    /// The agent started or finished replaying the messages it missed.
    pub fn set_replaying_backlog(&self, agent: &str, replaying: bool) {
        self.update(agent, |a| a.replaying_backlog = replaying);
    }

    /// The readiness answer now, given whether the store answered a read.
    pub fn readiness(&self, store_ok: bool) -> Readiness {
        self.readiness_at(store_ok, Instant::now())
    }

    /// The readiness answer at `now`: breakers are reported as they stand at that time (open
    /// until their cooldown ends, half-open after), not as last reported.
    pub fn readiness_at(&self, store_ok: bool, now: Instant) -> Readiness {
        let phase = self.phase();
        let agents: Vec<AgentReport> = self
            .agents
            .read()
            .expect("health lock")
            .iter()
            .map(|a| {
                let breaker = a.breaker.at(now);
                AgentReport {
                    name: a.name.clone(),
                    state: a.state(breaker),
                    gateway: if a.connected { "connected" } else { "connecting" },
                    breaker: breaker.label(),
                    shards: a.shards,
                }
            })
            .collect();
        let connected = agents.iter().all(|a| a.gateway == "connected");
        Readiness {
            ready: store_ok && phase == Phase::Running && connected,
            phase: phase.label(),
            backoff_ms: match phase {
                Phase::RestartBackoff { backoff_ms } => Some(backoff_ms),
                _ => None,
            },
            store: if store_ok { "open" } else { "unavailable" },
            agents,
            cell: self.cell.get().copied(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn running() -> Health {
        let h = Health::new(["Ada", "Basil"]);
        h.set_phase(Phase::Running);
        h
    }

    #[test]
    fn the_cell_is_reported_once_set() {
        let h = running();
        assert_eq!(h.readiness(true).cell, None);
        assert!(!serde_json::to_string(&h.readiness(true)).unwrap().contains("cell"));
        h.set_cell(2, 3);
        h.set_cell(0, 3);
        assert_eq!(h.readiness(true).cell, Some(CellReport { index: 2, count: 3 }));
        let body = serde_json::to_value(h.readiness(true)).unwrap();
        assert_eq!(body["cell"], serde_json::json!({"index": 2, "count": 3}));
    }

    #[test]
    fn ready_only_when_running_with_every_gateway_connected_and_the_store_open() {
        let h = running();
        assert!(!h.readiness(true).ready, "nobody connected yet");
        h.set_gateway("Ada", true);
        assert!(!h.readiness(true).ready, "Basil still connecting");
        h.set_gateway("Basil", true);
        assert!(h.readiness(true).ready);
        assert!(!h.readiness(false).ready, "store unavailable");
        h.set_phase(Phase::Stopping);
        assert!(!h.readiness(true).ready, "stopping");
    }

    #[test]
    fn a_dropped_gateway_makes_it_unready_and_names_the_agent() {
        let h = running();
        h.set_gateway("Ada", true);
        h.set_gateway("Basil", true);
        h.set_gateway("Basil", false);
        let r = h.readiness(true);
        assert!(!r.ready);
        assert_eq!(r.agents[1].name, "Basil");
        assert_eq!(r.agents[1].state, "connecting");
        assert_eq!(r.agents[0].state, "ready");
    }

    #[test]
    fn agent_states_name_breaker_and_backlog() {
        let h = running();
        h.set_gateway("Ada", true);
        h.set_gateway("Basil", true);
        h.set_breaker(
            "Ada",
            BreakerState::Open {
                until: Instant::now() + std::time::Duration::from_secs(60),
            },
        );
        h.set_replaying_backlog("Basil", true);
        let r = h.readiness(true);
        assert_eq!((r.agents[0].state, r.agents[0].breaker), ("breaker open", "open"));
        assert_eq!(r.agents[1].state, "replaying backlog");
        // Connected gateways are what readiness asks for; the states are for operators.
        assert!(r.ready);
    }

    #[test]
    fn an_open_breaker_reads_half_open_once_its_cooldown_has_passed_without_a_message() {
        let h = running();
        h.set_gateway("Ada", true);
        h.set_gateway("Basil", true);
        let t0 = Instant::now();
        let cooldown = std::time::Duration::from_secs(60);
        h.set_breaker("Ada", BreakerState::Open { until: t0 + cooldown });
        let before = h.readiness_at(true, t0 + cooldown - std::time::Duration::from_secs(1));
        assert_eq!(
            (before.agents[0].state, before.agents[0].breaker),
            ("breaker open", "open")
        );
        // Nothing happened in between: no message, no probe, no report to the registry.
        let after = h.readiness_at(true, t0 + cooldown);
        assert_eq!(
            (after.agents[0].state, after.agents[0].breaker),
            ("breaker half-open", "half-open")
        );
        assert_eq!(after.agents[1].breaker, "closed");
    }

    #[test]
    fn a_sharded_agent_reports_its_shards_and_keeps_the_last_connected_count() {
        let h = running();
        assert!(
            !serde_json::to_string(&h.readiness(true)).unwrap().contains("shards"),
            "unsharded"
        );
        h.set_shards("Ada", Some(3), 2, 4);
        h.set_shards("Ada", None, 4, 4);
        let ada = &h.readiness(true).agents[0];
        assert_eq!(
            ada.shards,
            Some(ShardsReport {
                total: 4,
                connected: 3,
                ready: 4
            })
        );
        // Another shard count (a new client with `shards = "auto"`): nothing known connected yet.
        h.set_shards("Ada", None, 0, 2);
        assert_eq!(h.readiness(true).agents[0].shards.map(|s| s.connected), Some(0));
        assert_eq!(h.readiness(true).agents[1].shards, None, "Basil is not sharded");
    }

    #[test]
    fn backoff_is_reported() {
        let h = Health::new(["Ada"]);
        h.set_phase(Phase::RestartBackoff { backoff_ms: 5000 });
        let body = serde_json::to_value(h.readiness(true)).unwrap();
        assert_eq!(body["phase"], "restart back-off");
        assert_eq!(body["backoff_ms"], 5000);
        assert_eq!(body["ready"], false);
    }
}
