//! The root supervisor: spawns one agent actor per configured agent and restarts an agent that
//! fails (for example, its gateway died), with exponential backoff, without touching the others.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef, SupervisionEvent};

use super::agent::AgentActor;
use super::SharedSpec;

/// Backoff before restarting an agent: doubles per consecutive failure, up to this.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// What an agent's stop takes beyond the conversations' grace: a second of slack on the grace,
/// up to 10 s for its gateway (both in `AgentActor::post_stop`), and a margin for saving
/// cursors.
const AGENT_STOP_OVERHEAD: Duration = Duration::from_secs(1 + 10 + 4);

/// Spawns the root of the tree with every agent's spec; the root starts the agents.
pub async fn start(
    specs: Vec<SharedSpec>,
) -> Result<(ActorRef<SupervisorMsg>, tokio::task::JoinHandle<()>), ractor::SpawnErr> {
    Actor::spawn(None, Supervisor, specs).await
}

/// The root actor.
#[derive(Debug)]
pub struct Supervisor;

/// Messages to the root.
#[derive(Debug)]
pub enum SupervisorMsg {
    /// Start (again) the agent at this index.
    StartAgent(usize),
}

/// The root's state.
#[derive(Debug)]
pub struct SupervisorState {
    specs: Vec<SharedSpec>,
    running: HashMap<ActorId, (usize, Instant)>,
    failures: Vec<u32>,
}

impl Actor for Supervisor {
    type Msg = SupervisorMsg;
    type State = SupervisorState;
    type Arguments = Vec<SharedSpec>;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        specs: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        for i in 0..specs.len() {
            myself.cast(SupervisorMsg::StartAgent(i))?;
        }
        let failures = vec![0; specs.len()];
        Ok(SupervisorState {
            specs,
            running: HashMap::new(),
            failures,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            SupervisorMsg::StartAgent(i) => {
                let spec = state.specs[i].clone();
                match Actor::spawn_linked(None, AgentActor, spec.clone(), myself.get_cell()).await {
                    Ok((agent, _)) => {
                        state.running.insert(agent.get_id(), (i, Instant::now()));
                    }
                    Err(e) => {
                        // A failed pre_start is returned here, not as a supervision event.
                        tracing::error!(agent = %spec.config.name, error = %e, "agent failed to start");
                        schedule_restart(&myself, state, i, Instant::now());
                    }
                }
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<Self::Msg>,
        evt: SupervisionEvent,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        // Overrides ractor's default, which would stop the root when any child exits.
        match evt {
            SupervisionEvent::ActorFailed(cell, err) => {
                if let Some((i, started)) = state.running.remove(&cell.get_id()) {
                    tracing::warn!(agent = %state.specs[i].config.name, error = %err, "agent failed; restarting");
                    schedule_restart(&myself, state, i, started);
                }
            }
            SupervisionEvent::ActorTerminated(cell, _, reason) => {
                if let Some((i, started)) = state.running.remove(&cell.get_id()) {
                    tracing::warn!(agent = %state.specs[i].config.name, reason = ?reason, "agent stopped; restarting");
                    schedule_restart(&myself, state, i, started);
                }
            }
            _ => {}
        }
        Ok(())
    }

    async fn post_stop(&self, myself: ActorRef<Self::Msg>, state: &mut Self::State) -> Result<(), ActorProcessingErr> {
        // Children hold connections and conversations: stop them properly rather than letting
        // ractor kill them (a killed actor's post_stop does not run). The wait must cover their
        // whole stop, or in-flight turns are killed before their grace ends.
        myself
            .stop_children_and_wait(
                Some("shutdown".into()),
                Some(stop_timeout(state.specs.iter().map(|s| s.conversations.shutdown_grace))),
            )
            .await;
        Ok(())
    }
}

/// An agent that ran this long before failing starts its backoff over.
const HEALTHY_RUN: Duration = Duration::from_secs(60);

fn schedule_restart(myself: &ActorRef<SupervisorMsg>, state: &mut SupervisorState, i: usize, started: Instant) {
    if started.elapsed() >= HEALTHY_RUN {
        state.failures[i] = 0;
    }
    state.failures[i] = state.failures[i].saturating_add(1);
    let delay = backoff(state.failures[i]);
    tracing::info!(agent = %state.specs[i].config.name, delay_ms = delay.as_millis() as u64, "agent restart scheduled");
    myself.send_after(delay, move || SupervisorMsg::StartAgent(i));
}

/// How long the root waits for its agents to stop, given their `[conversations]
/// shutdown_grace_secs`: the longest grace plus what an agent's stop takes beyond it.
pub fn stop_timeout(graces: impl IntoIterator<Item = Duration>) -> Duration {
    graces.into_iter().max().unwrap_or_default() + AGENT_STOP_OVERHEAD
}

/// 1 s, 2 s, 4 s, ... up to [`MAX_BACKOFF`].
pub fn backoff(failures: u32) -> Duration {
    let exp = failures.saturating_sub(1).min(16);
    Duration::from_secs(1u64 << exp).min(MAX_BACKOFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        assert_eq!(backoff(1), Duration::from_secs(1));
        assert_eq!(backoff(2), Duration::from_secs(2));
        assert_eq!(backoff(4), Duration::from_secs(8));
        assert_eq!(backoff(30), MAX_BACKOFF);
    }

    #[test]
    fn the_stop_timeout_covers_the_grace_and_the_gateways_stop() {
        // An agent needs its conversations' grace (+1 s) and then up to 10 s for its gateway.
        let needed = |grace: u64| Duration::from_secs(grace + 1 + 10);
        for grace in [0, 20, 45, 600] {
            let timeout = stop_timeout([Duration::from_secs(grace)]);
            assert!(timeout >= needed(grace), "grace {grace} s: root waits only {timeout:?}");
        }
        assert_eq!(
            stop_timeout([Duration::from_secs(5), Duration::from_secs(90)]),
            stop_timeout([Duration::from_secs(90)]),
            "the longest grace counts"
        );
    }
}
