//! An agent's backlog replay: which channels it reads in which order, what it hands to
//! conversations, and channels whose backlog could not be read.

use super::*;

/// Starts the replay of what this agent missed: DMs, then the bot-DMs channel, then guild
/// text channels it can write in, each subject to `--scope`.
pub(super) fn begin_replay(myself: &ActorRef<AgentMsg>, state: &mut AgentState) {
    // The replay starts from the saved cursors: bring them up to date first.
    save_cursors(state);
    state.phase.begin();
    state.spec.health.set_replaying_backlog(&state.spec.config.name, true);
    let spec = &state.spec;
    let mut channels = Vec::new();
    for scope in [Scope::Dms, Scope::BotDms, Scope::Text] {
        if !spec.run.scopes.contains(&scope) {
            continue;
        }
        match scope {
            Scope::Dms => {
                let mut dms = spec.store.dm_channels(&spec.config.name).unwrap_or_default();
                dms.extend(spec.config.dm_channels.iter().copied());
                dms.sort_unstable();
                dms.dedup();
                channels.extend(dms.into_iter().map(|id| ReplayChannel {
                    scope,
                    id,
                    name: format!("dm:{id}"),
                }));
            }
            Scope::BotDms => {
                if let Some(c) = state.channels.writable_bot_dms() {
                    channels.push(ReplayChannel {
                        scope,
                        id: c.id,
                        name: c.name.clone(),
                    });
                }
            }
            Scope::Text => {
                channels.extend(
                    state
                        .channels
                        .replayed_text_channels()
                        .into_iter()
                        .map(|c| ReplayChannel {
                            scope,
                            id: c.id,
                            name: c.name.clone(),
                        }),
                );
            }
        }
    }
    spawn_replay(myself, state, channels);
}

/// Reads these channels' backlog in a task that casts it back (for the current generation).
pub(super) fn spawn_replay(myself: &ActorRef<AgentMsg>, state: &AgentState, channels: Vec<ReplayChannel>) {
    tokio::spawn(replay::run(
        state.spec.clone(),
        state.http.clone(),
        myself.clone(),
        channels,
        state.phase.generation(),
        state.me.as_ref().map(|me| me.user_id),
    ));
}

/// Channels whose backlog was read are released; those that could not be read keep their
/// cursor where it is (later live messages there are answered, but cannot move it past the
/// unread ones) and are read again later.
pub(super) fn hold_unread(
    myself: &ActorRef<AgentMsg>,
    state: &mut AgentState,
    read: &[u64],
    unread: Vec<(ReplayChannel, u64)>,
) {
    for channel in read {
        if let Some(p) = state.progress.get_mut(channel) {
            p.release();
        }
    }
    if unread.is_empty() {
        return;
    }
    let once = matches!(state.spec.run.mode, RunMode::ShowBacklog | RunMode::ClearBacklog);
    let mut again = Vec::new();
    for (channel, cursor) in unread {
        tracing::error!(agent = %state.spec.config.name, channel = channel.id, cursor, "backlog of this channel could not be read; its cursor is held and it is read again later");
        state.progress.entry(channel.id).or_default().hold(cursor);
        again.push(channel);
    }
    if !once {
        // Read again after the longest retry wait (`[delivery] retry_max_secs`).
        myself.send_after(state.spec.delivery.retry_max, move || AgentMsg::Reread(again));
    }
}

/// DM channels read back after their first message whose read is over (done, or failed: the
/// cursor is held and the channel read again, so what waited is answered now): the live
/// messages that waited for it, oldest first.
pub(super) fn release_read_back(state: &mut AgentState, read: &[u64], unread: &[(ReplayChannel, u64)]) -> Vec<Inbound> {
    let over: Vec<u64> = read.iter().copied().chain(unread.iter().map(|(c, _)| c.id)).collect();
    waited_for(&mut state.read_back, &over)
}

/// The messages that waited for these channels' reads, oldest first; those channels stop
/// waiting, the others keep what waits for them.
fn waited_for(read_back: &mut HashMap<u64, Vec<Inbound>>, over: &[u64]) -> Vec<Inbound> {
    let mut waited: Vec<Inbound> = over.iter().filter_map(|c| read_back.remove(c)).flatten().collect();
    waited.sort_by_key(|m| m.id);
    waited
}

/// Once every shard's READY and every GUILD_CREATE are in, begins the replay of what was missed;
/// live messages (including those that overtook those events) wait until it is done.
pub(super) fn maybe_begin_replay(myself: &ActorRef<AgentMsg>, state: &mut AgentState) {
    if state.me.is_some() && state.phase.may_begin() {
        begin_replay(myself, state);
    }
}

/// One channel's missed messages: each admitted like a live one, then handed to its
/// conversation in one batch per conversation.
pub(super) async fn on_backlog(
    myself: &ActorRef<AgentMsg>,
    state: &mut AgentState,
    channel: u64,
    messages: Vec<Inbound>,
) {
    let slowmode = state.channels.slowmode(channel);
    let mut batches: HashMap<ConversationKey, Vec<Inbound>> = HashMap::new();
    for m in messages {
        state.phase.replayed(m.id);
        if let Some(m) = admit(state, m) {
            batches
                .entry(ConversationKey::for_message(state.spec.config.memory, &m))
                .or_default()
                .push(m);
        }
    }
    for (key, messages) in batches {
        if quarantined(myself, state, key, &messages) {
            continue;
        }
        let msg = ConversationMsg::Backlog { messages, slowmode };
        send(myself, state, key, msg).await;
    }
    check_done(state);
}

/// The replay has read every channel: first-seen channels get their cursor, the agent goes
/// live and handles the messages held meanwhile, and conversations owing answers from before
/// are resumed.
pub(super) async fn on_replay_done(
    myself: &ActorRef<AgentMsg>,
    state: &mut AgentState,
    lines: Vec<BacklogLine>,
    fresh: Vec<(u64, u64)>,
) {
    // A first-seen channel's cursor starts at its newest message, but never past a live
    // message waiting in the queue.
    if state.spec.run.dry_run == DryRun::None && state.spec.run.mode != RunMode::ShowBacklog {
        for (channel, newest) in fresh {
            let cursor = state.phase.oldest_held(channel).map_or(newest, |q| newest.min(q - 1));
            if let Err(e) = state
                .spec
                .store
                .advance_cursor(&state.spec.config.name, channel, cursor)
            {
                tracing::warn!(agent = %state.spec.config.name, error = %e, "cannot save a cursor");
            }
        }
    }
    tracing::info!(agent = %state.spec.config.name, channels = lines.len(), missed = lines.iter().map(|l| l.count).sum::<usize>(), "backlog replayed; going real-time");
    state.lines = lines;
    let held = state.phase.go_live();
    // The edge may skip from now on: published before readiness says the agent is live.
    super::publish_edge(state);
    state.spec.health.set_replaying_backlog(&state.spec.config.name, false);
    if !matches!(state.spec.run.mode, RunMode::ShowBacklog | RunMode::ClearBacklog) {
        for m in held {
            on_message(myself, state, m).await;
        }
    }
    resume_pending(myself, state);
    check_done(state);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dm(channel_id: u64, id: u64) -> Inbound {
        Inbound {
            id,
            channel_id,
            guild_id: None,
            author_id: 7,
            author_name: "bob".into(),
            author_is_bot: false,
            webhook_id: None,
            content: format!("dm {id}"),
            mentions: vec![],
            mention_everyone: false,
            reply_to: None,
            footers: vec![],
            chain: ChainLength::HUMAN,
            attachments: Vec::new(),
        }
    }

    #[test]
    fn messages_waiting_for_a_read_back_are_released_oldest_first_only_for_channels_read() {
        let mut read_back = HashMap::from([(10, vec![dm(10, 105), dm(10, 103)]), (20, vec![dm(20, 201)])]);
        let ids = |ms: Vec<Inbound>| ms.into_iter().map(|m| m.id).collect::<Vec<_>>();
        assert_eq!(ids(waited_for(&mut read_back, &[10, 30])), vec![103, 105]);
        // Channel 20's read is not over: its message still waits, and 10 no longer does.
        assert_eq!(read_back.keys().copied().collect::<Vec<_>>(), vec![20]);
        assert_eq!(ids(waited_for(&mut read_back, &[10])), Vec::<u64>::new());
        assert_eq!(ids(waited_for(&mut read_back, &[20])), vec![201]);
        assert!(read_back.is_empty());
    }
}
