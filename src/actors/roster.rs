//! The troupe as slash commands see it: every agent's public description (for `/agents`) and
//! the running agent actors of this process (for `/forget-me` with every agent).

use std::collections::HashMap;
use std::sync::Mutex;

use ractor::ActorRef;

use super::agent::AgentMsg;
use crate::commands::replies::CastMember;

/// Shared by every agent of the process.
#[derive(Debug, Default)]
pub struct Roster {
    /// The cast, in configuration order.
    pub members: Vec<CastMember>,
    agents: Mutex<HashMap<String, ActorRef<AgentMsg>>>,
}

impl Roster {
    /// A roster of these agents, none running yet.
    pub fn new(members: Vec<CastMember>) -> Self {
        Self {
            members,
            agents: Mutex::new(HashMap::new()),
        }
    }

    /// An agent actor started (or restarted) under `name`.
    pub fn join(&self, name: &str, agent: ActorRef<AgentMsg>) {
        self.agents
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_string(), agent);
    }

    /// Every running agent but `except`.
    pub fn others(&self, except: &str) -> Vec<ActorRef<AgentMsg>> {
        self.agents
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|(name, _)| name.as_str() != except)
            .map(|(_, a)| a.clone())
            .collect()
    }
}
