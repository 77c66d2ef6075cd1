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
    let msg = ConversationMsg::Inbound {
        message: m.clone(),
        slowmode,
    };
    send(myself, state, key, msg, vec![m]).await;
}

/// Sends to the conversation of `key`, starting one if needed. A conversation that is stopping
/// refuses the message: a new one is started and given it. If none can be started, the
/// messages are routed again a little later; they are never lost (the agent's `?` here once
/// took the whole agent down).
pub(super) async fn send(
    myself: &ActorRef<AgentMsg>,
    state: &mut AgentState,
    key: ConversationKey,
    msg: ConversationMsg,
    messages: Vec<Inbound>,
) {
    let mut msg = Some(msg);
    for _ in 0..2 {
        let Ok(conversation) = conversation_for(myself, state, key).await else {
            break;
        };
        match conversation.cast(msg.take().expect("message to send")) {
            Ok(()) => {
                state.conversations.sent(key);
                return;
            }
            Err(ractor::MessagingErr::SendErr(back)) => {
                // It stopped in between: forget it and start a new one.
                state.conversations.forget(conversation.get_id());
                msg = Some(back);
            }
            Err(e) => {
                tracing::warn!(agent = %state.spec.config.name, ?key, error = %e, "conversation unreachable");
                state.conversations.forget(conversation.get_id());
                break;
            }
        }
    }
    tracing::warn!(agent = %state.spec.config.name, ?key, "no conversation could take the messages; routing them again shortly");
    if let Some(ConversationMsg::GiveUp { messages: give_up, .. }) = msg {
        // Messages whose turn panicked wait in the store for the conversation that is woken
        // next; it reads them back.
        let name = &state.spec.config.name;
        for m in give_up {
            let mut record =
                crate::store::PendingRecord::new(m, crate::actors::turn::now_ms(), "panic", "turn panicked");
            record.attempts = 1;
            if let Err(e) = state.spec.store.save_pending(name, key, &record) {
                tracing::error!(agent = %name, error = %e, "cannot keep a message pending; it is answered after a restart");
            }
        }
        myself.send_after(Duration::from_secs(1), move || AgentMsg::Wake(key));
        return;
    }
    myself.send_after(Duration::from_secs(1), move || AgentMsg::Retry(messages));
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

/// A conversation of `key` failed: it may be restarted, unless it failed `restart_limit` times
/// within `restart_window`; then it is quarantined for the rest of the window (its replacement,
/// if any, is stopped), its messages meanwhile wait in the store, and it is woken when the
/// quarantine ends.
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
                replacement.stop(Some("quarantined".into()));
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

pub(super) async fn conversation_for(
    myself: &ActorRef<AgentMsg>,
    state: &mut AgentState,
    key: ConversationKey,
) -> Result<ActorRef<ConversationMsg>, ActorProcessingErr> {
    if let Some(c) = state.conversations.get(key) {
        return Ok(c);
    }
    let args = ConversationArgs {
        spec: state.spec.clone(),
        key,
        outbox: state.outbox.clone(),
        agent: myself.clone(),
        self_ids: state
            .me
            .iter()
            .map(|m| m.user_id)
            .chain(state.outbox.webhook_id())
            .collect(),
    };
    let (actor, _) = Actor::spawn_linked(None, ConversationActor, args, myself.get_cell()).await?;
    state.conversations.insert(key, actor.get_id(), actor.clone());
    Ok(actor)
}

/// After the first replay: conversations that owe answers from before (set aside, deferred,
/// or quarantined when troupe stopped) are started, so they answer without waiting for a new
/// message.
pub(super) async fn resume_pending(myself: &ActorRef<AgentMsg>, state: &mut AgentState) {
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
        if state.conversations.get(key).is_none() && !quarantined(myself, state, key, &[]) {
            let _ = conversation_for(myself, state, key).await;
        }
    }
}
