//! The agent actor: one per persona. Connects the persona's bot to the gateway, decides which
//! messages it answers ([`crate::routing`]) and hands each to the conversation actor for its key,
//! spawning conversations lazily.

use std::collections::HashMap;
use std::sync::Arc;

use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef, SupervisionEvent};

use super::conversation::{ConversationActor, ConversationArgs, ConversationMsg};
use super::SharedSpec;
use crate::discord::gateway::ChannelInfo;
use crate::discord::{GatewayConnection, GatewayEvent, Outbox};
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
    /// The gateway client stopped by itself; the agent fails so its supervisor reconnects it.
    GatewayEnded(String),
}

/// An agent's state.
#[derive(Debug)]
pub struct AgentState {
    spec: SharedSpec,
    me: Option<BotIdentity>,
    gateway: Option<GatewayConnection>,
    outbox: Outbox,
    conversations: HashMap<ConversationKey, ActorRef<ConversationMsg>>,
    keys: HashMap<ActorId, ConversationKey>,
    channels: Vec<ChannelInfo>,
    listen_channels: Vec<u64>,
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
        let events = myself.clone();
        let ended = myself.clone();
        let gateway = GatewayConnection::connect(
            &spec.token,
            spec.api_base.as_deref(),
            Arc::new(move |ev| {
                let _ = events.cast(AgentMsg::Gateway(ev));
            }),
            Box::new(move |reason| {
                let _ = ended.cast(AgentMsg::GatewayEnded(reason));
            }),
        )
        .await?;
        let outbox = Outbox::new(gateway.http.clone());
        Ok(AgentState {
            spec,
            me: None,
            gateway: Some(gateway),
            outbox,
            conversations: HashMap::new(),
            keys: HashMap::new(),
            channels: Vec::new(),
            listen_channels: Vec::new(),
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            AgentMsg::Gateway(GatewayEvent::Ready(me)) => {
                tracing::info!(agent = %state.spec.config.name, bot_user = me.user_id, "gateway ready");
                state.me = Some(me);
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
            }
            AgentMsg::Gateway(GatewayEvent::Message(m)) => {
                let Some(me) = &state.me else { return Ok(()) };
                let decision = routing::decide(me.user_id, &state.spec.config.triggers, &state.listen_channels, &m);
                tracing::debug!(agent = %state.spec.config.name, message_id = m.id, channel = m.channel_id, ?decision, "routing");
                if let Decision::Process(_) = decision {
                    let key = ConversationKey::for_message(state.spec.config.memory, &m);
                    let conversation = conversation_for(&myself, state, key).await?;
                    conversation.cast(ConversationMsg::Inbound(m))?;
                }
            }
            AgentMsg::GatewayEnded(reason) => {
                return Err(format!("gateway of agent `{}` ended: {reason}", state.spec.config.name).into());
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        _myself: ActorRef<Self::Msg>,
        evt: SupervisionEvent,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        // Overrides ractor's default, which would stop the agent when a conversation exits.
        match evt {
            SupervisionEvent::ActorFailed(cell, err) => {
                if let Some(key) = state.keys.remove(&cell.get_id()) {
                    tracing::error!(agent = %state.spec.config.name, ?key, error = %err, "conversation failed");
                    state.conversations.remove(&key);
                }
            }
            SupervisionEvent::ActorTerminated(cell, _, _) => {
                if let Some(key) = state.keys.remove(&cell.get_id()) {
                    state.conversations.remove(&key);
                }
            }
            _ => {}
        }
        Ok(())
    }

    async fn post_stop(&self, myself: ActorRef<Self::Msg>, state: &mut Self::State) -> Result<(), ActorProcessingErr> {
        myself
            .stop_children_and_wait(Some("agent stopping".into()), Some(std::time::Duration::from_secs(25)))
            .await;
        if let Some(gateway) = state.gateway.take() {
            gateway.shutdown().await;
        }
        Ok(())
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
