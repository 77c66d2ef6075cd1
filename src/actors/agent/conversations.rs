//! Handing messages to an agent's conversations: started on demand, replaced when one stops
//! in between, quarantined after repeated failures (messages wait in the store), resumed after
//! a restart.

use super::*;

/// Hands a message the agent answers to its conversation (set aside while that conversation is
/// quarantined).
pub(super) async fn route(myself: &ActorRef<AgentMsg>, state: &mut AgentState, m: Inbound) {
    let key = ConversationKey::for_message(state.spec.config.memory, &m);
    let slowmode = state.channels.slowmode(m.channel_id);
    if quarantined(myself, state, key, std::slice::from_ref(&m)) {
        return;
    }
    let msg = ConversationMsg::Inbound { message: m, slowmode };
    send(myself, state, key, msg).await;
}

/// Hands `msg` to the conversation of `key`, starting one if needed. A call, not a message:
/// nothing is ever on its way to a conversation, so one can be passivated or replaced at any
/// moment between two of the agent's messages without losing anything.
pub(super) async fn send(
    myself: &ActorRef<AgentMsg>,
    state: &mut AgentState,
    key: ConversationKey,
    msg: ConversationMsg,
) {
    conversation_for(myself, state, key).receive(msg).await;
}

/// An event of the conversation of `key`, incarnation `generation`: handled if that
/// incarnation is still the current one (a timer or a turn's end of a passivated or replaced
/// one is ignored); then it is passivated when idle, or replaced when its turn panicked.
pub(super) async fn on_event(
    myself: &ActorRef<AgentMsg>,
    state: &mut AgentState,
    key: ConversationKey,
    generation: u64,
    event: ConversationEvent,
) {
    let Some(conversation) = state.conversations.current(key, generation) else {
        tracing::debug!(agent = %state.spec.config.name, ?key, generation, "event of an ended conversation ignored");
        return;
    };
    match conversation.on_event(event).await {
        Handled::Going => {}
        Handled::Idle => {
            if let Some(idle) = state.conversations.remove(key) {
                idle.passivate();
                crate::actors::trim::after_passivation();
            }
        }
        Handled::Failed(failed) => {
            // The failed conversation is dropped (it holds nothing owed: its messages are
            // handed back), and its failure counted before its messages are handed on, so a
            // quarantine sets them aside in the store.
            drop(state.conversations.remove(key));
            conversation_failed(myself, state, key, &failed.why);
            for m in failed.waiting {
                route(myself, state, m).await;
            }
            let give_up = failed.give_up;
            if !give_up.is_empty() && !quarantined(myself, state, key, &give_up) {
                let msg = ConversationMsg::GiveUp {
                    messages: give_up,
                    cause: crate::ops::telemetry::GiveUpCause::Panic,
                };
                send(myself, state, key, msg).await;
            }
        }
    }
}

/// Whether `key` is quarantined after repeated failures. Its messages are then set aside in the
/// store (pending), and the conversation is woken when the quarantine ends to answer them.
pub(super) fn quarantined(
    myself: &ActorRef<AgentMsg>,
    state: &mut AgentState,
    key: ConversationKey,
    messages: &[Inbound],
) -> bool {
    let Some(until) = state.conversations.quarantined_until(key, Instant::now()) else {
        return false;
    };
    let name = &state.spec.config.name;
    for m in messages {
        tracing::warn!(agent = %name, ?key, message_id = m.id, "conversation quarantined after repeated failures; message waits");
        let record = crate::store::PendingRecord::new(
            m.clone(),
            crate::actors::turn::now_ms(),
            "quarantine",
            "conversation failed repeatedly",
        );
        if let Err(e) = state.spec.store.save_pending(name, key, &record) {
            tracing::error!(agent = %name, error = %e, "cannot set a message aside; it is answered after a restart");
        }
    }
    let wait = until.saturating_duration_since(Instant::now());
    myself.send_after(wait, move || AgentMsg::Wake(key));
    true
}

/// A conversation of `key` failed: it may be restarted (by the next message handed to it),
/// unless it failed `restart_limit` times within `restart_window`; then it is quarantined for
/// the rest of the window (its replacement, if any, is stopped), its messages meanwhile wait in
/// the store, and it is woken when the quarantine ends.
pub(super) fn conversation_failed(
    myself: &ActorRef<AgentMsg>,
    state: &mut AgentState,
    key: ConversationKey,
    err: &str,
) -> AfterFailure {
    let settings = state.spec.conversations;
    let now = Instant::now();
    let (after, replacement) = state
        .conversations
        .failed(key, now, settings.restart_limit, settings.restart_window);
    match after {
        AfterFailure::Quarantine { until } => {
            tracing::error!(agent = %state.spec.config.name, ?key, error = err, "conversation keeps failing; quarantined until the restart window passes");
            if let Some(replacement) = replacement {
                // Its turn's grace period runs beside the agent, which must not wait for it.
                tokio::spawn(replacement.stop());
            }
            let wait = until.saturating_duration_since(now);
            myself.send_after(wait, move || AgentMsg::Wake(key));
        }
        AfterFailure::Restart => {
            tracing::warn!(agent = %state.spec.config.name, ?key, error = err, "conversation failed; restarting it");
        }
    }
    after
}

/// The conversation of `key`, started (from its memory and what it owes, in the store) if it
/// is not live.
pub(super) fn conversation_for<'a>(
    myself: &ActorRef<AgentMsg>,
    state: &'a mut AgentState,
    key: ConversationKey,
) -> &'a mut ConversationState {
    let (spec, outbox, me) = (&state.spec, &state.outbox, &state.me);
    state.conversations.get_or_start(key, |generation| {
        ConversationState::start(ConversationArgs {
            spec: spec.clone(),
            key,
            outbox: outbox.clone(),
            agent: myself.clone(),
            generation,
            self_ids: me.iter().map(|m| m.user_id).chain(outbox.webhook_id()).collect(),
        })
    })
}

/// After the first replay: conversations that owe answers from before (set aside, deferred,
/// or quarantined when troupe stopped) are started, so they answer without waiting for a new
/// message.
pub(super) fn resume_pending(myself: &ActorRef<AgentMsg>, state: &mut AgentState) {
    if state.resumed || state.spec.run.mode != RunMode::Monitor || state.spec.run.dry_run != DryRun::None {
        return;
    }
    state.resumed = true;
    let keys = match state.spec.store.pending_conversations(&state.spec.config.name) {
        Ok(keys) => keys,
        Err(e) => {
            tracing::error!(agent = %state.spec.config.name, error = %e, "cannot list pending messages; they are answered when their conversations next start");
            return;
        }
    };
    for key in keys {
        if !state.conversations.contains(key) && !quarantined(myself, state, key, &[]) {
            conversation_for(myself, state, key);
        }
    }
}
