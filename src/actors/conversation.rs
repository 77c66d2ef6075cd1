//! A conversation actor: one per conversation key of an agent. Answers its messages in
//! message-ID order, one turn at a time, without going deaf: the LLM call and delivery run in a
//! spawned task whose outcome is cast back.
//!
//! - **Memory** is loaded from the store when the actor starts and written (and flushed) by the
//!   turn *before* the reply is sent; a failed delivery keeps the user's turn, not the reply.
//! - **Queue**: at most `queue_limit` messages wait; when full, new messages are refused (logged,
//!   not answered) so a flood cannot grow memory without bound.
//! - **Failure**: a panic in a turn fails the actor after handing its waiting messages back to
//!   the agent; the agent restarts it (within a budget), it reloads its memory and answers them.
//!   The message being answered is not retried (it may be the cause).
//! - **Idle**: after `idle` without messages the actor stops; the next message starts it again.
//! - **Stop**: an in-flight turn gets `shutdown_grace` to finish; waiting messages are abandoned.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::task::JoinHandle;

use super::agent::AgentMsg;
use super::{GaugeGuard, SharedSpec};
use crate::discord::outbox::OutgoingMessage;
use crate::discord::Outbox;
use crate::memory::{self, MemoryTurn};
use crate::message::Inbound;
use crate::routing::ConversationKey;

/// How long a conversation waits after a message arrives before starting a turn, so that
/// messages serenity delivered out of order (it dispatches each event on its own task) are
/// sorted by ID first.
pub const REORDER_WINDOW: Duration = Duration::from_millis(15);

/// The conversation actor.
#[derive(Debug)]
pub struct ConversationActor;

/// What a conversation is started with.
#[derive(Debug)]
pub struct ConversationArgs {
    /// The agent.
    pub spec: SharedSpec,
    /// Which conversation.
    pub key: ConversationKey,
    /// Where replies go.
    pub outbox: Outbox,
    /// The agent, to hand back waiting messages when this conversation fails.
    pub agent: ActorRef<AgentMsg>,
}

/// Messages to a conversation.
#[derive(Debug)]
pub enum ConversationMsg {
    /// A message to answer.
    Inbound(Inbound),
    /// Start the next turn if idle.
    Start,
    /// A turn finished (answered or failed); carries the memory it saved.
    TurnDone(TurnOutcome),
    /// A turn panicked: fail the actor so it is restarted clean.
    TurnPanicked(String),
    /// Stop if nothing happened since the idle timer of this generation was set.
    IdleCheck(u64),
}

/// The result of one turn.
#[derive(Debug)]
pub struct TurnOutcome {
    /// The message answered.
    pub message_id: u64,
    /// Memory after the turn, as saved.
    pub memory: Vec<MemoryTurn>,
    /// The reply that was delivered, or why there is none.
    pub reply: Result<String, String>,
}

/// A conversation's state.
#[derive(Debug)]
pub struct ConversationState {
    args: ConversationArgs,
    pending: BTreeMap<u64, Inbound>,
    turn: Option<JoinHandle<()>>,
    start_scheduled: bool,
    memory: Vec<MemoryTurn>,
    idle_generation: u64,
    _gauge: GaugeGuard,
}

impl Actor for ConversationActor {
    type Msg = ConversationMsg;
    type State = ConversationState;
    type Arguments = ConversationArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        let memory = args.spec.store.memory(&args.spec.config.name, args.key)?;
        let mut state = ConversationState {
            _gauge: GaugeGuard::conversation(&args.spec.gauges),
            args,
            pending: BTreeMap::new(),
            turn: None,
            start_scheduled: false,
            memory,
            idle_generation: 0,
        };
        arm_idle_timer(&myself, &mut state);
        Ok(state)
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            ConversationMsg::Inbound(m) => {
                if state.pending.len() >= state.args.spec.conversations.queue_limit {
                    tracing::warn!(agent = %state.args.spec.config.name, key = ?state.args.key, message_id = m.id, "conversation queue full; message not answered");
                    return Ok(());
                }
                state.pending.insert(m.id, m);
                arm_idle_timer(&myself, state);
                if state.turn.is_none() && !state.start_scheduled {
                    state.start_scheduled = true;
                    myself.send_after(REORDER_WINDOW, || ConversationMsg::Start);
                }
            }
            ConversationMsg::Start => {
                state.start_scheduled = false;
                start_turn(&myself, state);
            }
            ConversationMsg::TurnDone(outcome) => {
                state.turn = None;
                state.memory = outcome.memory;
                if let Err(e) = outcome.reply {
                    tracing::warn!(agent = %state.args.spec.config.name, message_id = outcome.message_id, error = %e, "turn failed");
                }
                arm_idle_timer(&myself, state);
                start_turn(&myself, state);
            }
            ConversationMsg::TurnPanicked(why) => {
                state.turn = None;
                // Hand the waiting messages back before failing, so the restarted conversation
                // answers them; the message whose turn panicked is not among them.
                let waiting: Vec<Inbound> = std::mem::take(&mut state.pending).into_values().collect();
                let _ = state.args.agent.cast(AgentMsg::Reroute {
                    from: myself.get_id(),
                    messages: waiting,
                });
                return Err(format!("turn panicked: {why}").into());
            }
            ConversationMsg::IdleCheck(generation) => {
                if generation == state.idle_generation && state.turn.is_none() && state.pending.is_empty() {
                    myself.stop(Some("idle".into()));
                }
            }
        }
        Ok(())
    }

    async fn post_stop(&self, _myself: ActorRef<Self::Msg>, state: &mut Self::State) -> Result<(), ActorProcessingErr> {
        if let Some(turn) = state.turn.take() {
            // The turn saves its own memory before delivering; give it the grace period.
            let grace = state.args.spec.conversations.shutdown_grace;
            if tokio::time::timeout(grace, turn).await.is_err() {
                tracing::warn!(agent = %state.args.spec.config.name, key = ?state.args.key, "in-flight turn abandoned at shutdown");
            }
        }
        if !state.pending.is_empty() {
            tracing::info!(agent = %state.args.spec.config.name, key = ?state.args.key, abandoned = state.pending.len(), "waiting messages not answered before stop");
        }
        Ok(())
    }
}

fn arm_idle_timer(myself: &ActorRef<ConversationMsg>, state: &mut ConversationState) {
    state.idle_generation += 1;
    let generation = state.idle_generation;
    myself.send_after(state.args.spec.conversations.idle, move || {
        ConversationMsg::IdleCheck(generation)
    });
}

fn start_turn(myself: &ActorRef<ConversationMsg>, state: &mut ConversationState) {
    if state.turn.is_some() {
        return;
    }
    let Some((_, message)) = state.pending.pop_first() else {
        return;
    };
    let spec = state.args.spec.clone();
    let outbox = state.args.outbox.clone();
    let key = state.args.key;
    let memory = state.memory.clone();
    let me = myself.clone();
    let message_id = message.id;
    let turn = tokio::spawn(async move { run_turn(&spec, &outbox, key, memory, &message).await });
    // A watcher turns the task's end into a message, so a panic in the turn reaches the actor.
    state.turn = Some(tokio::spawn(async move {
        let msg = match turn.await {
            Ok((memory, reply)) => ConversationMsg::TurnDone(TurnOutcome {
                message_id,
                memory,
                reply,
            }),
            Err(e) if e.is_panic() => ConversationMsg::TurnPanicked(panic_text(e.into_panic())),
            Err(_) => ConversationMsg::TurnPanicked("turn task cancelled".into()),
        };
        let _ = me.cast(msg);
    }));
}

fn panic_text(payload: Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "unknown panic".into())
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// One turn: prompt, completion (through the backend's pool), memory saved, reply delivered.
/// Returns the memory as saved and the outcome.
async fn run_turn(
    spec: &SharedSpec,
    outbox: &Outbox,
    key: ConversationKey,
    mut memory: Vec<MemoryTurn>,
    m: &Inbound,
) -> (Vec<MemoryTurn>, Result<String, String>) {
    let name = &spec.config.name;
    let limits = spec.config.memory_limits;
    outbox.typing(m.channel_id).await;
    let user_turn = MemoryTurn {
        assistant: false,
        author: m.author_name.clone(),
        content: m.content.clone(),
        message_id: m.id,
        time_ms: now_ms(),
    };
    let history: Vec<_> = memory.iter().map(MemoryTurn::to_prompt).collect();
    let date = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let prompt = crate::prompt::build(
        name,
        &spec.config.system_prompt,
        &date,
        &history,
        &[user_turn.to_prompt()],
    );
    memory.push(user_turn);
    memory::trim(&mut memory, limits);

    let completion = match spec.pool.acquire(name).await {
        Ok(_permit) => spec.backend.complete(&prompt).await.map_err(|e| e.to_string()),
        Err(full) => Err(full.to_string()),
    };
    let text = match completion {
        Ok(c) => c.text.chars().take(2000).collect::<String>(),
        Err(e) => {
            let saved = spec
                .store
                .save_memory(name, key, &memory)
                .await
                .map_err(|e| e.to_string());
            return (memory, Err(saved.err().unwrap_or(e)));
        }
    };
    // Memory (with the reply) is durable before the reply is sent.
    let mut with_reply = memory.clone();
    with_reply.push(MemoryTurn {
        assistant: true,
        author: name.clone(),
        content: text.clone(),
        message_id: m.id,
        time_ms: now_ms(),
    });
    memory::trim(&mut with_reply, limits);
    if let Err(e) = spec.store.save_memory(name, key, &with_reply).await {
        return (memory, Err(e.to_string()));
    }
    let out = OutgoingMessage {
        channel_id: m.channel_id,
        content: text.clone(),
        footer: None,
        reply_to: Some(m.id),
        nonce: Some(nonce(name, m.id)),
    };
    match outbox.send(&out).await {
        Ok(_) => (with_reply, Ok(text)),
        Err(e) => {
            // The reply never reached Discord: it must not be remembered as said.
            let _ = spec.store.save_memory(name, key, &memory).await;
            (memory, Err(e.to_string()))
        }
    }
}

/// A deterministic nonce for "agent answers message": at most 25 characters, as Discord allows.
pub fn nonce(agent: &str, message_id: u64) -> String {
    // FNV-1a over the agent name: stable across runs and builds, unlike std's hasher.
    let mut h: u32 = 0x811c_9dc5;
    for b in agent.as_bytes() {
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x0100_0193);
    }
    format!("{h:08x}{message_id:x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonce_is_deterministic_short_and_distinct() {
        let n = nonce("Ada", u64::MAX);
        assert!(n.len() <= 25, "{n}");
        assert_eq!(nonce("Ada", 42), nonce("Ada", 42));
        assert_ne!(nonce("Ada", 42), nonce("Bea", 42));
        assert_ne!(nonce("Ada", 42), nonce("Ada", 43));
    }
}
