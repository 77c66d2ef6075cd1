//! A conversation actor: one per conversation key of an agent. Answers its messages in
//! message-ID order, one turn at a time, without going deaf: the LLM call and delivery run in a
//! spawned task whose outcome is cast back.

use std::collections::BTreeMap;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef};

use super::SharedSpec;
use crate::discord::outbox::OutgoingMessage;
use crate::discord::Outbox;
use crate::llm::{PromptTurn, Role};
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
}

/// Messages to a conversation.
#[derive(Debug)]
pub enum ConversationMsg {
    /// A message to answer.
    Inbound(Inbound),
    /// Start the next turn if idle.
    Start,
    /// A turn finished.
    TurnDone(TurnOutcome),
}

/// The result of one turn.
#[derive(Debug)]
pub struct TurnOutcome {
    /// The message answered.
    pub message: Inbound,
    /// The reply that was delivered, or why there is none.
    pub reply: Result<String, String>,
}

/// A conversation's state.
#[derive(Debug)]
pub struct ConversationState {
    args: ConversationArgs,
    pending: BTreeMap<u64, Inbound>,
    busy: bool,
    start_scheduled: bool,
    history: Vec<PromptTurn>,
}

impl Actor for ConversationActor {
    type Msg = ConversationMsg;
    type State = ConversationState;
    type Arguments = ConversationArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        args: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(ConversationState {
            args,
            pending: BTreeMap::new(),
            busy: false,
            start_scheduled: false,
            history: Vec::new(),
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            ConversationMsg::Inbound(m) => {
                state.pending.insert(m.id, m);
                if !state.busy && !state.start_scheduled {
                    state.start_scheduled = true;
                    myself.send_after(REORDER_WINDOW, || ConversationMsg::Start);
                }
            }
            ConversationMsg::Start => {
                state.start_scheduled = false;
                start_turn(&myself, state);
            }
            ConversationMsg::TurnDone(outcome) => {
                state.busy = false;
                let m = outcome.message;
                state.history.push(PromptTurn {
                    role: Role::User,
                    author: m.author_name.clone(),
                    content: m.content.clone(),
                });
                match outcome.reply {
                    Ok(reply) => {
                        state.history.push(PromptTurn {
                            role: Role::Assistant,
                            author: state.args.spec.config.name.clone(),
                            content: reply,
                        });
                    }
                    Err(e) => {
                        tracing::warn!(agent = %state.args.spec.config.name, message_id = m.id, error = %e, "turn failed");
                    }
                }
                start_turn(&myself, state);
            }
        }
        Ok(())
    }
}

fn start_turn(myself: &ActorRef<ConversationMsg>, state: &mut ConversationState) {
    if state.busy {
        return;
    }
    let Some((_, message)) = state.pending.pop_first() else {
        return;
    };
    state.busy = true;
    let spec = state.args.spec.clone();
    let outbox = state.args.outbox.clone();
    let history = state.history.clone();
    let me = myself.clone();
    tokio::spawn(async move {
        let reply = run_turn(&spec, &outbox, &history, &message).await;
        let _ = me.cast(ConversationMsg::TurnDone(TurnOutcome { message, reply }));
    });
}

async fn run_turn(spec: &SharedSpec, outbox: &Outbox, history: &[PromptTurn], m: &Inbound) -> Result<String, String> {
    outbox.typing(m.channel_id).await;
    let fresh = [PromptTurn {
        role: Role::User,
        author: m.author_name.clone(),
        content: m.content.clone(),
    }];
    let date = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let prompt = crate::prompt::build(&spec.config.name, &spec.config.system_prompt, &date, history, &fresh);
    let completion = spec.backend.complete(&prompt).await.map_err(|e| e.to_string())?;
    let text: String = completion.text.chars().take(2000).collect();
    let out = OutgoingMessage {
        channel_id: m.channel_id,
        content: text.clone(),
        footer: None,
        reply_to: Some(m.id),
        nonce: Some(nonce(&spec.config.name, m.id)),
    };
    outbox.send(&out).await.map_err(|e| e.to_string())?;
    Ok(text)
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
