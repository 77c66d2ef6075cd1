//! Slash commands acting on a conversation (`/reset`, `/forget-me`): applied between turns,
//! never during one, so a turn in flight finishes and saves its memory first and the command
//! then acts on what it saved.

use ractor::RpcReplyPort;

use super::{keep_memory, take_memory, ConversationState};
use crate::actors::agent::AgentMsg;
use crate::commands::forget;
use crate::config::DryRun;
use crate::memory::MemoryTurn;

/// A command for a conversation.
#[derive(Debug)]
pub enum Control {
    /// Forget the whole conversation (`/reset`).
    Reset(RpcReplyPort<()>),
    /// Forget what one user said, and the replies to it (`/forget-me`); their waiting messages
    /// are finished unanswered.
    Forget {
        /// The user.
        user: u64,
        /// Their display name (matches turns remembered before user IDs were kept).
        name: String,
        /// Told when done.
        reply: RpcReplyPort<()>,
    },
}

/// Applies the commands waiting for the turn to end.
pub(super) async fn apply(state: &mut ConversationState) {
    for control in std::mem::take(&mut state.controls) {
        match control {
            Control::Reset(reply) => {
                persist(state, Vec::new()).await;
                let _ = reply.send(());
            }
            Control::Forget { user, name, reply } => {
                let mut memory = take_memory(state);
                if forget::owned_by(state.args.key, user) {
                    memory.clear();
                } else if let Some(kept) = forget::without_user(&memory, user, &name) {
                    memory = kept;
                }
                let theirs: Vec<u64> = state
                    .pending
                    .values()
                    .filter(|m| m.author_id == user)
                    .map(|m| m.id)
                    .collect();
                let mut done = Vec::new();
                for id in theirs {
                    if let Some(m) = state.pending.remove(&id) {
                        state.recorded.remove(&id);
                        done.push((m.channel_id, m.id));
                    }
                }
                if !done.is_empty() {
                    let _ = state.args.agent.cast(AgentMsg::Finished(done));
                }
                persist(state, memory).await;
                let _ = reply.send(());
            }
        }
    }
}

/// Saves `memory` as the conversation's; an emptied conversation's record is deleted. A dry
/// run saves nothing and holds it instead.
async fn persist(state: &mut ConversationState, memory: Vec<MemoryTurn>) {
    let (spec, key) = (&state.args.spec, state.args.key);
    if spec.run.dry_run != DryRun::None {
        keep_memory(state, memory);
        return;
    }
    let name = &spec.config.name;
    let saved = if memory.is_empty() {
        spec.store.delete_memory(name, key).await
    } else {
        spec.store.save_memory(name, key, &memory).await
    };
    if let Err(e) = saved {
        tracing::error!(agent = %name, ?key, error = %e, "cannot save a conversation's memory after a command");
    }
}
