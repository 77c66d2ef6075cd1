//! The agent actor: one per persona, the router of its messages. Supervises its gateway actor
//! (reconnected with backoff when it dies) and its conversation actors (spawned on the first
//! message of a conversation key, restarted within a budget when they fail), and decides which
//! messages the persona answers ([`crate::routing`]).

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use ractor::{Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, SupervisionEvent};

use super::conversation::{ConversationActor, ConversationArgs, ConversationMsg};
use super::gateway::{GatewayActor, GatewayArgs};
use super::supervisor::backoff;
use super::SharedSpec;
use crate::discord::gateway::{http_client, ChannelInfo};
use crate::discord::{GatewayEvent, Outbox};
use crate::message::BotIdentity;
use crate::routing::{self, ConversationKey, Decision};

/// The agent actor.
#[derive(Debug)]
pub struct AgentActor;

/// Messages to an agent.
#[derive(Debug)]
pub enum AgentMsg {
    /// Something happened on the gateway.
    Gateway(GatewayEvent),
    /// (Re)start the gateway actor.
    StartGateway,
    /// A failing conversation hands back messages it had not answered yet.
    Reroute {
        /// The failing conversation actor.
        from: ActorId,
        /// Its waiting messages.
        messages: Vec<crate::message::Inbound>,
    },
}

/// An agent's state.
#[derive(Debug)]
pub struct AgentState {
    spec: SharedSpec,
    me: Option<BotIdentity>,
    outbox: Outbox,
    gateway: Option<ActorCell>,
    gateway_failures: u32,
    gateway_started: Instant,
    conversations: HashMap<ConversationKey, ActorRef<ConversationMsg>>,
    keys: HashMap<ActorId, ConversationKey>,
    restarts: HashMap<ConversationKey, VecDeque<Instant>>,
    quarantined: HashMap<ConversationKey, Instant>,
    channels: Vec<ChannelInfo>,
    listen_channels: Vec<u64>,
    /// GUILD_CREATEs seen since the last READY.
    guilds_seen: usize,
    /// Messages that arrived before READY and every GUILD_CREATE were handled (serenity
    /// dispatches each event on its own task, so they can overtake those events).
    early: Vec<crate::message::Inbound>,
}

impl Actor for AgentActor {
    type Msg = AgentMsg;
    type State = AgentState;
    type Arguments = SharedSpec;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        spec: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        let outbox = Outbox::new(std::sync::Arc::new(http_client(&spec.token, spec.api_base.as_deref())));
        myself.cast(AgentMsg::StartGateway)?;
        Ok(AgentState {
            spec,
            me: None,
            outbox,
            gateway: None,
            gateway_failures: 0,
            gateway_started: Instant::now(),
            conversations: HashMap::new(),
            keys: HashMap::new(),
            restarts: HashMap::new(),
            quarantined: HashMap::new(),
            channels: Vec::new(),
            listen_channels: Vec::new(),
            guilds_seen: 0,
            early: Vec::new(),
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            AgentMsg::StartGateway => {
                let args = GatewayArgs {
                    spec: state.spec.clone(),
                    agent: myself.clone(),
                };
                match Actor::spawn_linked(None, GatewayActor, args, myself.get_cell()).await {
                    Ok((gateway, _)) => {
                        state.gateway = Some(gateway.get_cell());
                        state.gateway_started = Instant::now();
                    }
                    // A failed pre_start comes back here, not as a supervision event.
                    Err(e) => gateway_down(&myself, state, &e.to_string()),
                }
            }
            AgentMsg::Reroute { from, messages } => {
                // Forget the failing actor now, so these messages reach its replacement rather
                // than its closing mailbox; the supervision event that follows does the rest.
                if let Some(key) = state.keys.get(&from).copied() {
                    if state.conversations.get(&key).is_some_and(|c| c.get_id() == from) {
                        state.conversations.remove(&key);
                    }
                }
                for m in messages {
                    route(&myself, state, m).await?;
                }
            }
            AgentMsg::Gateway(GatewayEvent::Ready(me)) => {
                tracing::info!(agent = %state.spec.config.name, bot_user = me.user_id, "gateway ready");
                state.me = Some(me);
                state.guilds_seen = 0;
                release_early(&myself, state);
            }
            AgentMsg::Gateway(GatewayEvent::Resumed) => {
                tracing::info!(agent = %state.spec.config.name, "gateway session resumed");
            }
            AgentMsg::Gateway(GatewayEvent::Channels(channels)) => {
                for c in channels {
                    state.channels.retain(|x| x.id != c.id);
                    state.channels.push(c);
                }
                state.listen_channels = resolve_channels(&state.spec.config.triggers.channels, &state.channels);
                state.guilds_seen += 1;
                release_early(&myself, state);
            }
            AgentMsg::Gateway(GatewayEvent::Message(m)) => {
                let ready = state.me.as_ref().is_some_and(|me| state.guilds_seen >= me.guilds);
                if !ready {
                    state.early.push(m);
                    return Ok(());
                }
                let decision = match &state.me {
                    Some(me) => routing::decide(me.user_id, &state.spec.config.triggers, &state.listen_channels, &m),
                    None => return Ok(()),
                };
                tracing::debug!(agent = %state.spec.config.name, message_id = m.id, channel = m.channel_id, ?decision, "routing");
                if let Decision::Process(_) = decision {
                    route(&myself, state, m).await?;
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
        // Overrides ractor's default, which would stop the agent whenever a child exits.
        let (cell, failure) = match evt {
            SupervisionEvent::ActorFailed(cell, err) => (cell, Some(err.to_string())),
            SupervisionEvent::ActorTerminated(cell, _, reason) => {
                (cell, reason.filter(|r| r.starts_with("gateway")).map(|r| r.to_string()))
            }
            _ => return Ok(()),
        };
        if state.gateway.as_ref().is_some_and(|g| g.get_id() == cell.get_id()) {
            state.gateway = None;
            gateway_down(&myself, state, failure.as_deref().unwrap_or("stopped"));
            return Ok(());
        }
        let Some(key) = state.keys.remove(&cell.get_id()) else {
            return Ok(());
        };
        // It may already have been replaced (see `Reroute`): only forget it if it is current.
        let current = state
            .conversations
            .get(&key)
            .is_some_and(|c| c.get_id() == cell.get_id());
        if current {
            state.conversations.remove(&key);
        }
        if let Some(err) = failure {
            conversation_failed(&myself, state, key, &err, !current).await;
        }
        Ok(())
    }

    async fn post_stop(&self, myself: ActorRef<Self::Msg>, state: &mut Self::State) -> Result<(), ActorProcessingErr> {
        // Conversations first (they may be finishing a turn), then the gateway.
        let grace = state.spec.conversations.shutdown_grace + Duration::from_secs(1);
        let conversations: Vec<_> = state.conversations.values().cloned().collect();
        for c in &conversations {
            c.stop(Some("agent stopping".into()));
        }
        for c in conversations {
            let _ = tokio::time::timeout(grace, c.wait(None)).await;
        }
        myself
            .stop_children_and_wait(Some("agent stopping".into()), Some(Duration::from_secs(10)))
            .await;
        Ok(())
    }
}

/// Hands a message the agent answers to its conversation, unless that conversation is
/// quarantined after repeated failures.
async fn route(
    myself: &ActorRef<AgentMsg>,
    state: &mut AgentState,
    m: crate::message::Inbound,
) -> Result<(), ActorProcessingErr> {
    let key = ConversationKey::for_message(state.spec.config.memory, &m);
    if let Some(until) = state.quarantined.get(&key) {
        if *until > Instant::now() {
            tracing::warn!(agent = %state.spec.config.name, ?key, message_id = m.id, "conversation quarantined after repeated failures; message not answered");
            return Ok(());
        }
        state.quarantined.remove(&key);
    }
    let conversation = conversation_for(myself, state, key).await?;
    conversation.cast(ConversationMsg::Inbound(m))?;
    Ok(())
}

/// Once READY and every GUILD_CREATE are in, handles the messages that overtook them.
fn release_early(myself: &ActorRef<AgentMsg>, state: &mut AgentState) {
    if state.me.as_ref().is_some_and(|me| state.guilds_seen >= me.guilds) {
        for m in state.early.drain(..) {
            let _ = myself.cast(AgentMsg::Gateway(GatewayEvent::Message(m)));
        }
    }
}

fn gateway_down(myself: &ActorRef<AgentMsg>, state: &mut AgentState, reason: &str) {
    if state.gateway_started.elapsed() > Duration::from_secs(60) {
        state.gateway_failures = 0;
    }
    state.gateway_failures = state.gateway_failures.saturating_add(1);
    let delay = backoff(state.gateway_failures);
    tracing::warn!(agent = %state.spec.config.name, reason, delay_ms = delay.as_millis() as u64, "gateway down; reconnecting after backoff");
    myself.send_after(delay, || AgentMsg::StartGateway);
}

/// Restarts a failed conversation right away, unless it failed `restart_limit` times within
/// `restart_window`: then it is quarantined for the rest of the window and its messages are
/// not answered (logged).
async fn conversation_failed(
    myself: &ActorRef<AgentMsg>,
    state: &mut AgentState,
    key: ConversationKey,
    err: &str,
    already_replaced: bool,
) {
    let settings = state.spec.conversations;
    let now = Instant::now();
    let history = state.restarts.entry(key).or_default();
    while history
        .front()
        .is_some_and(|t| now.duration_since(*t) > settings.restart_window)
    {
        history.pop_front();
    }
    if history.len() >= settings.restart_limit {
        tracing::error!(agent = %state.spec.config.name, ?key, error = err, restarts = history.len(), "conversation keeps failing; giving up until the restart window passes");
        let until = history.front().map_or(now, |t| *t + settings.restart_window);
        state.quarantined.insert(key, until);
        if let Some(replacement) = state.conversations.remove(&key) {
            replacement.stop(Some("quarantined".into()));
        }
        return;
    }
    history.push_back(now);
    tracing::warn!(agent = %state.spec.config.name, ?key, error = err, "conversation failed; restarting it");
    if already_replaced {
        return;
    }
    if let Err(e) = conversation_for(myself, state, key).await {
        tracing::error!(agent = %state.spec.config.name, ?key, error = %e, "conversation restart failed");
    }
}

async fn conversation_for(
    myself: &ActorRef<AgentMsg>,
    state: &mut AgentState,
    key: ConversationKey,
) -> Result<ActorRef<ConversationMsg>, ActorProcessingErr> {
    if let Some(c) = state.conversations.get(&key) {
        return Ok(c.clone());
    }
    let args = ConversationArgs {
        spec: state.spec.clone(),
        key,
        outbox: state.outbox.clone(),
        agent: myself.clone(),
    };
    let (actor, _) = Actor::spawn_linked(None, ConversationActor, args, myself.get_cell()).await?;
    state.keys.insert(actor.get_id(), key);
    state.conversations.insert(key, actor.clone());
    Ok(actor)
}

/// Channel IDs for configured names or IDs.
fn resolve_channels(wanted: &[String], known: &[ChannelInfo]) -> Vec<u64> {
    wanted
        .iter()
        .filter_map(|w| {
            let w = w.trim_start_matches('#');
            w.parse::<u64>()
                .ok()
                .or_else(|| known.iter().find(|c| c.name == w).map(|c| c.id))
        })
        .collect()
}
