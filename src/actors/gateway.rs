//! The gateway actor: owns one bot's serenity client (all of its shards) and forwards its events
//! to the agent. If the client stops by itself, this actor fails and the agent reconnects it with
//! backoff; the agent's conversations and every other agent carry on.

use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef};

use super::agent::AgentMsg;
use super::SharedSpec;
use crate::discord::{Edge, GatewayConnection};

/// The gateway actor.
#[derive(Debug)]
pub struct GatewayActor;

/// What a gateway actor is started with.
#[derive(Debug)]
pub struct GatewayArgs {
    /// The agent it connects.
    pub spec: SharedSpec,
    /// Where events go.
    pub agent: ActorRef<AgentMsg>,
    /// What the gateway edge may skip ([`crate::skip`]).
    pub edge: Edge,
}

/// Messages to the gateway actor.
#[derive(Debug)]
pub enum GatewayMsg {
    /// The client stopped by itself, with the reason.
    Ended(String),
}

/// The gateway actor's state.
#[derive(Debug)]
pub struct GatewayState {
    connection: Option<GatewayConnection>,
}

impl Actor for GatewayActor {
    type Msg = GatewayMsg;
    type State = GatewayState;
    type Arguments = GatewayArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        let agent = args.agent.clone();
        let connection = GatewayConnection::connect(
            &args.spec.token,
            &args.spec.route,
            args.spec.config.shards,
            Arc::new(move |ev| {
                let _ = agent.cast(AgentMsg::Gateway(ev));
            }),
            args.edge,
            Box::new(move |reason| {
                let _ = myself.cast(GatewayMsg::Ended(reason));
            }),
        )
        .await?;
        Ok(GatewayState {
            connection: Some(connection),
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        _state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            GatewayMsg::Ended(reason) => Err(format!("gateway client ended: {reason}").into()),
        }
    }

    async fn post_stop(&self, _myself: ActorRef<Self::Msg>, state: &mut Self::State) -> Result<(), ActorProcessingErr> {
        if let Some(connection) = state.connection.take() {
            connection.shutdown().await;
        }
        Ok(())
    }
}
