//! An agent's live messages: DM channels remembered durably, then admission (chain length,
//! already answered, routing, the bot-exchange guard), then the per-user limit.

use super::*;
use crate::message::readable_channels;
use crate::skip::Skipped;

/// One live message: admitted (chain, routing, progress), then rate-limited per user, then
/// handed to its conversation.
pub(super) async fn on_message(myself: &ActorRef<AgentMsg>, state: &mut AgentState, m: Inbound) {
    state.series.message_received();
    let Some(m) = admit(state, m) else { return };
    limit_then_route(myself, state, m).await;
}

/// A message the gateway edge skipped ([`crate::skip`]): admitted as its skeleton, so it is
/// finished unanswered with the reason routing gives it. Live only: one that arrives after the
/// agent left the live phase (a new session) is left to the replay that follows, unfinished,
/// as a message still held would be.
///
/// The edge skips only in channels the agent already knew as ones it does not listen in; if
/// the agent's rules answer the skeleton anyway (its view changed between the edge's glance
/// and now), the text is not here: the channel's cursor is held before the message and the
/// channel read again, as for a backlog that could not be read ([`super::replaying`]), and
/// that read hands the message over whole.
pub(super) fn on_skipped(myself: &ActorRef<AgentMsg>, state: &mut AgentState, s: Skipped) {
    if state.phase.phase() != Phase::Live {
        return;
    }
    state.series.message_received();
    state.series.message_skipped();
    if admit(state, s.skeleton()).is_none() {
        return;
    }
    tracing::warn!(agent = %state.spec.config.name, message_id = s.id, channel = s.channel_id, "a message skipped at the gateway edge is one the agent answers now; its channel is read again");
    state.progress.entry(s.channel_id).or_default().hold(s.id - 1);
    finish(state, s.channel_id, s.id);
    let channel = ReplayChannel {
        scope: Scope::Text,
        id: s.channel_id,
        name: state.channels.name_of(s.channel_id).unwrap_or_default().to_string(),
    };
    let _ = myself.cast(AgentMsg::Reread(vec![channel]));
}

/// An admitted message: the per-user limit, then its conversation.
async fn limit_then_route(myself: &ActorRef<AgentMsg>, state: &mut AgentState, m: Inbound) {
    match state.limiter.check(m.author_id, Instant::now()) {
        Verdict::Allow => {
            route(myself, state, m).await;
            // The pending gauge counts it from now on.
            check_done(state);
        }
        Verdict::Notice => {
            tracing::info!(agent = %state.spec.config.name, user = m.author_id, "user over the rate limit; one notice sent");
            finish(state, m.channel_id, m.id);
            if state.spec.run.dry_run != DryRun::None {
                return;
            }
            let (outbox, spec) = (state.outbox.clone(), state.spec.clone());
            tokio::spawn(async move {
                let d = outbox
                    .notice(
                        m.channel_id,
                        m.id,
                        &spec.discord.rate_notice,
                        &spec.discord.tagline,
                        &spec.config.name,
                    )
                    .await;
                for id in d.message_ids {
                    let _ = spec.store.record_chain(id, ChainLength::HUMAN.next());
                }
            });
        }
        Verdict::Drop => {
            tracing::debug!(agent = %state.spec.config.name, user = m.author_id, message_id = m.id, "user over the rate limit; not answered");
            finish(state, m.channel_id, m.id);
        }
    }
}

/// Decides whether the agent processes a message (live or replayed): its chain length (the
/// highest troupe knows), whether it was already answered, the routing rules. Tracks progress:
/// a processed message is in flight until its conversation finishes it; any other is finished
/// at once. Returns the message to process.
// Why this is long: the admission rules in the order they apply (in flight, chain records, routing, answered, guard); each is a few lines.
pub(super) fn admit(state: &mut AgentState, mut m: Inbound) -> Option<Inbound> {
    let me = state.me.as_ref()?.user_id;
    let name = &state.spec.config.name;
    let store = &state.spec.store;
    // (DM channels are remembered as their messages arrive: `remember_dm`.)
    if state.progress.get(&m.channel_id).is_some_and(|p| p.is_in_flight(m.id)) {
        return None; // already being answered
    }
    // `/pause`: messages in a paused channel are finished unanswered (never answered later);
    // those admitted before the pause are answered.
    if state.commands.paused.contains(&m.channel_id) {
        tracing::debug!(agent = %name, message_id = m.id, channel = m.channel_id, "agent paused in this channel; not answered");
        finish(state, m.channel_id, m.id);
        return None;
    }
    // The store's chain records matter only for bots and webhooks (a human's chain is its own
    // footer's, which is recorded only when it is above zero), and not for the cast's own
    // messages, whose sender records the chain its footer carries (`acl::needs_recorded_chain`).
    let cast = &state.spec.cast;
    let from_cast = cast.contains(m.author_id) || m.webhook_id.is_some_and(|w| cast.contains(w));
    let lookup = acl::needs_recorded_chain(from_cast, m.author_is_bot, m.chain);
    let (recorded, replied) = if lookup {
        let recorded = store.chain(m.id).ok().flatten();
        let replied = m
            .reply_to
            .as_ref()
            .and_then(|r| store.chain(r.message_id).ok().flatten());
        (recorded, replied)
    } else {
        (None, None)
    };
    m.chain = acl::inbound_chain(m.chain, recorded, m.author_is_bot, replied);
    // Every agent sees a bot's message; the first records its chain, the others find it.
    if lookup && m.chain > ChainLength::HUMAN && recorded != Some(m.chain) {
        if let Err(e) = store.record_chain(m.id, m.chain) {
            tracing::warn!(agent = %name, error = %e, "cannot record a chain length");
        }
    }
    let my_ids: Vec<u64> = std::iter::once(me).chain(state.outbox.webhook_id()).collect();
    let channels = &state.channels;
    let writable = |c: u64| channels.writable(c);
    let ctx = routing::Context {
        me: &my_ids,
        triggers: &state.spec.config.triggers,
        listen_channels: state.channels.listen_channels(),
        bot_dms: state.channels.bot_dms(),
        writable: &writable,
        max_chain: state.spec.discord.max_chain,
    };
    let decision = routing::decide(&ctx, &m, m.chain);
    tracing::debug!(agent = %name, message_id = m.id, channel = m.channel_id, chain = %m.chain, ?decision, "routing");
    let (processed, reason) = match decision {
        Decision::Process(r) => (true, r),
        Decision::Ignore(r) => (false, r),
    };
    // Only a message this agent would answer can have been answered already (replayed twice,
    // or live and replayed): the store is asked after routing, not for every message seen.
    if processed && store.answered(name, m.id).unwrap_or(false) {
        tracing::debug!(agent = %name, message_id = m.id, "already answered; skipped");
        finish(state, m.channel_id, m.id);
        return None;
    }
    // A bot or webhook outside the cast may ignore the footer and start a new chain each time:
    // the agents' answers to such authors are bounded per channel (`loopguard`).
    let foreign_bot = (m.author_is_bot || m.webhook_id.is_some()) && !from_cast;
    let (processed, reason) = if processed && foreign_bot {
        use crate::loopguard::Verdict;
        let mut guard = state.spec.bot_exchanges.lock().unwrap_or_else(|p| p.into_inner());
        match guard.check(m.channel_id, Instant::now()) {
            Verdict::Answer => (processed, reason),
            verdict => {
                if verdict == Verdict::SilenceAndWarn {
                    let d = &state.spec.discord;
                    tracing::warn!(agent = %name, channel = m.channel_id, message_id = m.id, author = %m.author_name,
                        limit = d.bot_replies_per_window, window_secs = d.bot_reply_window.as_secs(),
                        "bot exchange limit reached: no more answers to bots outside the troupe in this channel until the window has room (logged once per window)");
                }
                (false, routing::Reason::BotExchangeLimit)
            }
        }
    } else {
        (processed, reason)
    };
    state.series.message_routed(processed, reason.label());
    if reason == routing::Reason::ChainLimit {
        telemetry::chain_blocked(name);
    }
    if processed {
        state.progress.entry(m.channel_id).or_default().start(m.id);
        // The model reads `#general` where Discord wrote `<#id>` (content is only prompt text).
        let channels = &state.channels;
        m.content = readable_channels(&m.content, |id| channels.name_of(id).map(str::to_string));
        Some(m)
    } else {
        finish(state, m.channel_id, m.id);
        None
    }
}

/// A DM channel seen for the first time is remembered durably, with its cursor, before anything
/// else happens: a crash before the reply must not leave the replay unaware of the channel
/// (Discord lists no DM channels to bots), nor let it start past the message.
///
/// The cursor starts after the bot's own last message in the channel (within the backlog's age
/// limit), not just before this message: earlier DMs troupe never saw (sent while it was down,
/// or lost in a crash before it read them) are owed too, and the channel is read again now to
/// answer them. One history request, for a channel's first message only.
///
/// Returns [`FirstDm::ReadBack`] when that read is under way and this message is left to it:
/// the read returns it with the earlier ones, oldest first, so they are answered in order (one
/// batch) rather than this one live at once and the earlier ones after it. The message is safe
/// meanwhile: the channel and a cursor before it are saved, so a crash replays it.
pub(super) async fn remember_dm(myself: &ActorRef<AgentMsg>, state: &mut AgentState, m: &Inbound) -> FirstDm {
    if state.spec.run.dry_run != DryRun::None || state.known_dms.contains(&m.channel_id) {
        return FirstDm::Live;
    }
    let (store, name) = (&state.spec.store, &state.spec.config.name);
    let known = match store.cursor(name, m.channel_id) {
        Ok(cursor) => cursor.is_some(),
        Err(e) => {
            tracing::error!(agent = %name, channel = m.channel_id, error = %e, "cannot read a DM channel's cursor");
            return FirstDm::Live;
        }
    };
    let mut look_back = false;
    let mut cursor_saved = false;
    if !known {
        let start = owed_since(state, m).await;
        look_back = start < m.id.saturating_sub(1);
        match store.advance_cursor(name, m.channel_id, start) {
            Ok(()) => cursor_saved = true,
            Err(e) => {
                tracing::error!(agent = %name, channel = m.channel_id, error = %e, "cannot save a DM channel's cursor")
            }
        }
    }
    let saved = async {
        store.remember_dm(name, m.channel_id)?;
        store.flush().await
    };
    let remembered = match saved.await {
        Ok(()) => {
            state.known_dms.insert(m.channel_id);
            true
        }
        Err(e) => {
            tracing::error!(agent = %name, channel = m.channel_id, error = %e, "cannot remember a DM channel");
            false
        }
    };
    if !look_back {
        return FirstDm::Live;
    }
    // Answering this message must not move the cursor past the earlier ones before the
    // channel is read: hold it until then (the read releases it).
    if let Ok(Some(start)) = store.cursor(name, m.channel_id) {
        state.progress.entry(m.channel_id).or_default().hold(start);
    }
    tracing::info!(agent = %name, channel = m.channel_id, message_id = m.id, "first message in a DM channel, after earlier ones troupe never saw: reading them");
    let channel = ReplayChannel {
        scope: Scope::Dms,
        id: m.channel_id,
        name: format!("dm:{}", m.channel_id),
    };
    let _ = myself.cast(AgentMsg::Reread(vec![channel]));
    // Left to the read only when the read will return it and a crash cannot lose it; modes
    // that only count or clear the backlog hand nothing on, so the message goes on live. With
    // DMs in the replay's scope, a replay that supersedes this read reads the channel too.
    let answers = !matches!(state.spec.run.mode, RunMode::ShowBacklog | RunMode::ClearBacklog)
        && state.spec.run.scopes.contains(&Scope::Dms);
    if cursor_saved && remembered && answers {
        FirstDm::ReadBack
    } else {
        FirstDm::Live
    }
}

/// What becomes of the message that showed a DM channel to the agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum FirstDm {
    /// Handled live, like any message.
    Live,
    /// Left to the channel's read-back, which answers it with the earlier DMs, in order.
    ReadBack,
}

/// Where a first-seen DM channel's cursor starts: after the bot's last message before `m` in
/// it, or at the backlog's age limit; just before `m` when there is nothing earlier from
/// anyone else. When the channel's history cannot be read now, at the age limit: the replay
/// that follows reads it (retrying, and holding the cursor while it cannot), and recognises
/// what was answered already, so an earlier message is never skipped for a failed read.
async fn owed_since(state: &AgentState, m: &Inbound) -> u64 {
    let just_before = m.id.saturating_sub(1);
    let me = state.me.as_ref().map(|me| me.user_id);
    let now = crate::actors::turn::now_ms();
    let age_limit = match crate::backlog::start(Some(0), now, state.spec.backlog) {
        crate::backlog::Start::After(after) => after,
        crate::backlog::Start::Fresh => 0,
    };
    let earlier = match crate::discord::history::before(&state.http, m.channel_id, m.id).await {
        Ok(earlier) => earlier,
        Err(e) => {
            tracing::warn!(agent = %state.spec.config.name, channel = m.channel_id, error = %e, "cannot look back in a new DM channel now; its replay reads it from the backlog's age limit");
            return age_limit.min(just_before);
        }
    };
    let last_own = earlier
        .iter()
        .filter(|e| Some(e.author_id) == me)
        .map(|e| e.id)
        .max()
        .unwrap_or(0);
    let start = last_own.max(age_limit);
    let owed = earlier.iter().any(|e| e.id > start && Some(e.author_id) != me);
    if owed {
        start.min(just_before)
    } else {
        just_before
    }
}
