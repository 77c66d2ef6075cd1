//! The agent actor: one per persona, the router of its messages. Supervises its gateway actor
//! (reconnected with backoff when it dies) and its conversation actors (spawned on the first
//! message of a conversation key, restarted within a budget when they fail), and decides which
//! messages the persona answers ([`crate::routing`]).

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use ractor::{Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, SupervisionEvent};

use super::conversation::{ConversationActor, ConversationArgs, ConversationMsg};
use super::gateway::{GatewayActor, GatewayArgs};
use super::registry::{AfterFailure, Registry};
use super::replay::{self, BacklogLine, ReplayChannel};
use super::supervisor::backoff;
use super::SharedSpec;
use crate::acl::{self, ChainLength};
use crate::backlog::{ChannelProgress, Scope};
use crate::channels::ChannelDirectory;
use crate::config::WebhookConfig;
use crate::config::{DryRun, RunMode};
use crate::discord::gateway::http_client;
use crate::discord::{webhooks, GatewayEvent, Outbox, Rest};
use crate::message::{BotIdentity, Inbound};
use crate::ops::telemetry;
use crate::phase::{Phase, ReplayPhase};
use crate::ratelimit::{UserRateLimiter, Verdict};
use crate::routing::{self, ConversationKey, Decision};

/// The agent actor.
#[derive(Debug)]
pub struct AgentActor;

/// Messages to an agent.
#[derive(Debug)]
pub enum AgentMsg {
    /// Something happened on the gateway.
    Gateway(GatewayEvent),
    /// (Re)start the gateway actor.
    StartGateway,
    /// A failing conversation hands back the messages it had not answered yet, and those of
    /// the turn that failed (to be given up with the notice by its replacement).
    Reroute {
        /// The failing conversation actor.
        from: ActorId,
        /// Its waiting messages.
        messages: Vec<crate::message::Inbound>,
        /// The messages of the turn that panicked.
        give_up: Vec<crate::message::Inbound>,
    },
    /// A conversation has nothing to do and asks to be stopped, having received `received`
    /// messages; it is stopped only if no message is on its way to it.
    Idle {
        /// The conversation actor.
        from: ActorId,
        /// Messages it received.
        received: u64,
    },
    /// Messages could not be handed to a conversation (it was stopping and no new one could be
    /// started): try again.
    Retry(Vec<Inbound>),
    /// A quarantined conversation's time is up: start it, so it answers what was set aside.
    Wake(ConversationKey),
    /// Read channels again whose backlog could not be read.
    Reread(Vec<ReplayChannel>),
    /// Missed messages of one channel, oldest first, read by the replay task.
    Backlog {
        /// Channel.
        channel: u64,
        /// Its missed messages.
        messages: Vec<Inbound>,
        /// Which replay (a new READY starts a new one).
        generation: u64,
    },
    /// The replay task has read every channel.
    ReplayDone {
        /// What it found, for `--show-backlog`.
        lines: Vec<BacklogLine>,
        /// Channels seen for the first time, with their newest message: cursors start there.
        fresh: Vec<(u64, u64)>,
        /// Channels whose backlog was read whole.
        read: Vec<u64>,
        /// Channels whose backlog could not be read, with their cursor: held there until a
        /// later read succeeds.
        unread: Vec<(ReplayChannel, u64)>,
        /// Which replay.
        generation: u64,
    },
    /// A conversation is finished with these messages (answered, or failed for good):
    /// `(channel, message)` pairs. Cursors advance from these.
    Finished(Vec<(u64, u64)>),
}

/// An agent's state.
#[derive(Debug)]
pub struct AgentState {
    spec: SharedSpec,
    me: Option<BotIdentity>,
    /// The bot's REST client, shared by the outbox, replay and webhook set-up.
    http: Rest,
    outbox: Outbox,
    gateway: Option<ActorCell>,
    gateway_failures: u32,
    gateway_started: Instant,
    conversations: Registry<ActorRef<ConversationMsg>>,
    channels: ChannelDirectory,
    /// Per-user message limits.
    limiter: UserRateLimiter,
    /// Connecting, replaying or live, and the messages held back meanwhile.
    phase: ReplayPhase,
    /// Per-channel progress, from which cursors advance.
    progress: HashMap<u64, ChannelProgress>,
    /// What the last replay found.
    lines: Vec<BacklogLine>,
    /// The end of the first replay has been reported to the tracker.
    reported: bool,
    /// DM channels known to be remembered durably (with a cursor), this run.
    known_dms: HashSet<u64>,
    /// Conversations with messages owed from before were started (after the first replay).
    resumed: bool,
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
        // One REST client for the bot (replies, history, webhooks), so serenity's rate
        // limiter sees all of this token's requests.
        let http = std::sync::Arc::new(http_client(&spec.token, spec.api_base.as_deref()));
        let outbox = match spec.run.dry_run {
            // `--no-discord`: replies are printed, not sent.
            DryRun::NoDiscord => Outbox::printing(),
            _ => Outbox::new(http.clone()),
        };
        outbox.set_retry_for(spec.delivery.discord_retry);
        if let Some(WebhookConfig::Existing { id, token }) = &spec.config.webhook {
            let token = token.resolve(&spec.config.name)?;
            // Looking it up checks the token and tells which channel it posts in.
            let avatar = spec.config.avatar_url.clone();
            let webhook = webhooks::existing(&http, &spec.config.name, avatar, *id, &token).await?;
            outbox.set_webhook(webhook);
        }
        if let Some(id) = outbox.webhook_id() {
            spec.cast.add(id);
        }
        myself.cast(AgentMsg::StartGateway)?;
        let limiter = UserRateLimiter::new(spec.discord.user_rate_limit, spec.discord.user_rate_window);
        Ok(AgentState {
            spec: spec.clone(),
            me: None,
            http,
            outbox,
            gateway: None,
            gateway_failures: 0,
            gateway_started: Instant::now(),
            conversations: Registry::default(),
            channels: ChannelDirectory::new(spec.config.triggers.channels.clone(), spec.bot_dms_channel.clone()),
            limiter,
            phase: ReplayPhase::default(),
            progress: HashMap::new(),
            lines: Vec::new(),
            reported: false,
            known_dms: HashSet::new(),
            resumed: false,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            AgentMsg::StartGateway => {
                state.spec.health.set_gateway(&state.spec.config.name, false);
                let args = GatewayArgs {
                    spec: state.spec.clone(),
                    agent: myself.clone(),
                };
                match Actor::spawn_linked(None, GatewayActor, args, myself.get_cell()).await {
                    Ok((gateway, _)) => {
                        state.gateway = Some(gateway.get_cell());
                        state.gateway_started = Instant::now();
                    }
                    // A failed pre_start comes back here, not as a supervision event.
                    Err(e) => gateway_down(&myself, state, &e.to_string()),
                }
            }
            AgentMsg::Reroute {
                from,
                messages,
                give_up,
            } => {
                // Forget the failing actor now, so these messages reach its replacement rather
                // than its closing mailbox; the supervision event that follows does the rest.
                let key = state.conversations.forget(from);
                for m in messages {
                    route(&myself, state, m).await;
                }
                if let (Some(key), false) = (key, give_up.is_empty()) {
                    let msg = ConversationMsg::GiveUp {
                        messages: give_up.clone(),
                        cause: crate::ops::telemetry::GiveUpCause::Panic,
                    };
                    send(&myself, state, key, msg, give_up).await;
                }
            }
            AgentMsg::Idle { from, received } => {
                if let Some(idle) = state.conversations.take_idle(from, received) {
                    idle.stop(Some("idle".into()));
                }
            }
            AgentMsg::Retry(messages) => {
                for m in messages {
                    route(&myself, state, m).await;
                }
            }
            AgentMsg::Wake(key) => {
                if state.conversations.get(key).is_none() {
                    let _ = conversation_for(&myself, state, key).await;
                }
            }
            AgentMsg::Reread(channels) => {
                if state.phase.phase() == Phase::Live {
                    spawn_replay(&myself, state, channels);
                } else {
                    // A replay is running or about to: it reads every channel anyway.
                    tracing::debug!(agent = %state.spec.config.name, "re-read folded into the coming replay");
                }
            }
            AgentMsg::Gateway(GatewayEvent::Ready(me)) => {
                tracing::info!(agent = %state.spec.config.name, bot_user = me.user_id, "gateway ready");
                state.spec.health.set_gateway(&state.spec.config.name, true);
                state.spec.cast.add(me.user_id);
                state.me = Some(me);
                // A new session (first connect, or a re-identify after the session was lost):
                // whatever happened meanwhile is replayed before going real-time.
                state.phase.ready();
                maybe_begin_replay(&myself, state);
            }
            AgentMsg::Gateway(GatewayEvent::Connection(up)) => {
                let was_up = state.spec.health.set_gateway(&state.spec.config.name, up);
                if was_up && !up {
                    tracing::info!(agent = %state.spec.config.name, "gateway session lost; serenity is reconnecting");
                }
            }
            AgentMsg::Gateway(GatewayEvent::Thread(thread)) => state.channels.update([thread]),
            AgentMsg::Gateway(GatewayEvent::Resumed) => {
                tracing::info!(agent = %state.spec.config.name, "gateway session resumed");
                state.spec.health.set_gateway(&state.spec.config.name, true);
            }
            AgentMsg::Gateway(GatewayEvent::Channels(channels)) => {
                state.channels.update(channels);
                state.phase.guild_seen();
                setup_webhook(state).await;
                maybe_begin_replay(&myself, state);
            }
            AgentMsg::Gateway(GatewayEvent::Message(m)) => {
                if m.is_dm() {
                    remember_dm(state, &m).await;
                }
                if let Some(m) = state.phase.live(m) {
                    on_message(&myself, state, m).await;
                }
            }
            AgentMsg::Backlog {
                channel,
                messages,
                generation,
            } if state.phase.is_current(generation) => {
                let slowmode = state.channels.slowmode(channel);
                let mut batches: HashMap<ConversationKey, Vec<Inbound>> = HashMap::new();
                for m in messages {
                    state.phase.replayed(m.id);
                    if let Some(m) = admit(state, m, false) {
                        batches
                            .entry(ConversationKey::for_message(state.spec.config.memory, &m))
                            .or_default()
                            .push(m);
                    }
                }
                for (key, messages) in batches {
                    if quarantined(&myself, state, key, &messages) {
                        continue;
                    }
                    let msg = ConversationMsg::Backlog {
                        messages: messages.clone(),
                        slowmode,
                    };
                    send(&myself, state, key, msg, messages).await;
                }
                check_done(state);
            }
            AgentMsg::ReplayDone {
                lines,
                fresh,
                read,
                unread,
                generation,
            } if state.phase.is_current(generation) => {
                hold_unread(&myself, state, &read, unread);
                // A first-seen channel's cursor starts at its newest message, but never past a
                // live message waiting in the queue.
                if state.spec.run.dry_run == DryRun::None && state.spec.run.mode != RunMode::ShowBacklog {
                    for (channel, newest) in fresh {
                        let oldest_queued = state.phase.oldest_held(channel);
                        let cursor = oldest_queued.map_or(newest, |q| newest.min(q - 1));
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
                state.spec.health.set_replaying_backlog(&state.spec.config.name, false);
                let held = state.phase.go_live();
                if !matches!(state.spec.run.mode, RunMode::ShowBacklog | RunMode::ClearBacklog) {
                    for m in held {
                        on_message(&myself, state, m).await;
                    }
                }
                resume_pending(&myself, state).await;
                check_done(state);
            }
            AgentMsg::Backlog { .. } | AgentMsg::ReplayDone { .. } => {
                tracing::debug!(agent = %state.spec.config.name, "result of a superseded replay ignored");
            }
            AgentMsg::Finished(done) => {
                for (channel, id) in done {
                    // Only what this run admitted moves a cursor: a conversation may also finish
                    // a message owed from before a restart, in a channel the replay has not
                    // reached yet (that replay recognises it as answered).
                    if state.progress.get(&channel).is_some_and(|p| p.is_in_flight(id)) {
                        finish(state, channel, id);
                    }
                }
                check_done(state);
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<Self::Msg>,
        evt: SupervisionEvent,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        // Overrides ractor's default, which would stop the agent whenever a child exits.
        let (cell, failure) = match evt {
            SupervisionEvent::ActorFailed(cell, err) => (cell, Some(err.to_string())),
            SupervisionEvent::ActorTerminated(cell, _, reason) => {
                (cell, reason.filter(|r| r.starts_with("gateway")).map(|r| r.to_string()))
            }
            _ => return Ok(()),
        };
        if state.gateway.as_ref().is_some_and(|g| g.get_id() == cell.get_id()) {
            state.gateway = None;
            gateway_down(&myself, state, failure.as_deref().unwrap_or("stopped"));
            return Ok(());
        }
        // It may already have been replaced (see `Reroute`).
        let Some((key, current)) = state.conversations.ended(cell.get_id()) else {
            return Ok(());
        };
        if let Some(err) = failure {
            conversation_failed(&myself, state, key, &err, !current).await;
        }
        Ok(())
    }

    async fn post_stop(&self, myself: ActorRef<Self::Msg>, state: &mut Self::State) -> Result<(), ActorProcessingErr> {
        // Conversations first (they may be finishing a turn), then the gateway.
        let grace = state.spec.conversations.shutdown_grace + Duration::from_secs(1);
        let conversations = state.conversations.handles();
        for c in &conversations {
            c.stop(Some("agent stopping".into()));
        }
        for c in conversations {
            let _ = tokio::time::timeout(grace, c.wait(None)).await;
        }
        myself
            .stop_children_and_wait(Some("agent stopping".into()), Some(Duration::from_secs(10)))
            .await;
        save_cursors(state);
        Ok(())
    }
}

/// One live message: admitted (chain, routing, progress), then rate-limited per user, then
/// handed to its conversation.
async fn on_message(myself: &ActorRef<AgentMsg>, state: &mut AgentState, m: Inbound) {
    telemetry::message_received(&state.spec.config.name);
    let Some(m) = admit(state, m, true) else { return };
    match state.limiter.check(m.author_id, Instant::now()) {
        Verdict::Allow => route(myself, state, m).await,
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
fn admit(state: &mut AgentState, mut m: Inbound, live: bool) -> Option<Inbound> {
    let me = state.me.as_ref()?.user_id;
    let name = &state.spec.config.name;
    let store = &state.spec.store;
    let dry = state.spec.run.dry_run != DryRun::None;
    if m.is_dm() && !dry {
        if let Err(e) = store.remember_dm(name, m.channel_id) {
            tracing::warn!(agent = %name, error = %e, "cannot remember a DM channel");
        }
    }
    if state.progress.get(&m.channel_id).is_some_and(|p| p.is_in_flight(m.id)) {
        return None; // already being answered
    }
    // The store's chain records matter only for bots and webhooks (a human's chain is its own
    // footer's, which is recorded only when it is above zero): every agent sees every message,
    // so humans' messages skip these lookups.
    let (recorded, replied) = if m.author_is_bot || m.chain > ChainLength::HUMAN {
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
    if m.chain > ChainLength::HUMAN && recorded != Some(m.chain) {
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
    tracing::debug!(agent = %name, message_id = m.id, channel = m.channel_id, chain = %m.chain, live, ?decision, "routing");
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
    let cast = &state.spec.cast;
    let foreign_bot = (m.author_is_bot || m.webhook_id.is_some())
        && !cast.contains(m.author_id)
        && !m.webhook_id.is_some_and(|w| cast.contains(w));
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
    telemetry::message_routed(name, processed, reason.label());
    if reason == routing::Reason::ChainLimit {
        telemetry::chain_blocked(name);
    }
    if processed {
        state.progress.entry(m.channel_id).or_default().start(m.id);
        Some(m)
    } else {
        finish(state, m.channel_id, m.id);
        None
    }
}

/// How often, at most, a channel's cursor is saved while its messages flow; a replay and a stop
/// save every cursor that moved.
const CURSOR_SAVE_INTERVAL: Duration = Duration::from_secs(1);

/// A message is finished with: advance the channel's cursor as far as progress allows, and save
/// it unless it was saved less than `CURSOR_SAVE_INTERVAL` ago.
fn finish(state: &mut AgentState, channel: u64, id: u64) {
    let progress = state.progress.entry(channel).or_default();
    progress.finish(id);
    let now = Instant::now();
    if let Some(cursor) = progress.cursor_to_save(now, CURSOR_SAVE_INTERVAL) {
        if save_cursor(&state.spec, channel, cursor) {
            progress.saved(cursor, now);
        }
    }
}

/// Saves every cursor that moved since its last save: before a replay reads them, and on stop.
fn save_cursors(state: &mut AgentState) {
    let now = Instant::now();
    for (channel, progress) in &mut state.progress {
        if let Some(cursor) = progress.unsaved_cursor() {
            if save_cursor(&state.spec, *channel, cursor) {
                progress.saved(cursor, now);
            }
        }
    }
}

/// Saves a cursor (dry runs leave the store untouched); false when the store refused, so the
/// next finished message tries again.
fn save_cursor(spec: &SharedSpec, channel: u64, cursor: u64) -> bool {
    if spec.run.dry_run != DryRun::None {
        return true;
    }
    match spec.store.advance_cursor(&spec.config.name, channel, cursor) {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(agent = %spec.config.name, error = %e, "cannot save a cursor");
            false
        }
    }
}

/// With `--no-monitoring`, `--show-backlog` or `--clear-backlog`: once live and with nothing in
/// flight, tell the tracker this agent is done. Also publishes how many messages are in flight.
fn check_done(state: &mut AgentState) {
    let in_flight: usize = state.progress.values().map(ChannelProgress::in_flight).sum();
    telemetry::backlog_size(&state.spec.config.name, in_flight + state.phase.held());
    telemetry::pending_messages(&state.spec.config.name, in_flight);
    if state.reported || state.phase.phase() != Phase::Live {
        return;
    }
    if state.progress.values().all(ChannelProgress::is_idle) {
        state.reported = true;
        state.spec.tracker.done(&state.spec.config.name, state.lines.clone());
    }
}

/// Starts the replay of what this agent missed: DMs, then the bot-DMs channel, then guild
/// text channels it can write in, each subject to `--scope`.
fn begin_replay(myself: &ActorRef<AgentMsg>, state: &mut AgentState) {
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
fn spawn_replay(myself: &ActorRef<AgentMsg>, state: &AgentState, channels: Vec<ReplayChannel>) {
    tokio::spawn(replay::run(
        state.spec.clone(),
        state.http.clone(),
        myself.clone(),
        channels,
        state.phase.generation(),
    ));
}

/// Channels whose backlog was read are released; those that could not be read keep their
/// cursor where it is (later live messages there are answered, but cannot move it past the
/// unread ones) and are read again later.
fn hold_unread(myself: &ActorRef<AgentMsg>, state: &mut AgentState, read: &[u64], unread: Vec<(ReplayChannel, u64)>) {
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

/// After the first replay: conversations that owe answers from before (set aside, deferred,
/// or quarantined when troupe stopped) are started, so they answer without waiting for a new
/// message.
async fn resume_pending(myself: &ActorRef<AgentMsg>, state: &mut AgentState) {
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

/// A DM channel seen for the first time is remembered durably, with its cursor just before this
/// message, before anything else happens: a crash before the reply must not leave the replay
/// unaware of the channel (Discord lists no DM channels to bots), nor let it start past the
/// message.
async fn remember_dm(state: &mut AgentState, m: &Inbound) {
    if state.spec.run.dry_run != DryRun::None || state.known_dms.contains(&m.channel_id) {
        return;
    }
    let (store, name) = (&state.spec.store, &state.spec.config.name);
    let saved = async {
        if store.cursor(name, m.channel_id)?.is_none() {
            store.advance_cursor(name, m.channel_id, m.id.saturating_sub(1))?;
        }
        store.remember_dm(name, m.channel_id)?;
        store.flush().await
    };
    match saved.await {
        Ok(()) => {
            state.known_dms.insert(m.channel_id);
        }
        Err(e) => tracing::error!(agent = %name, channel = m.channel_id, error = %e, "cannot remember a DM channel"),
    }
}

/// For `webhook = { channel = ... }`: reuses the webhook troupe created before (kept in the
/// store) or creates one, once the channel is known.
async fn setup_webhook(state: &mut AgentState) {
    let Some(WebhookConfig::Create { channel }) = &state.spec.config.webhook else {
        return;
    };
    if state.outbox.webhook_id().is_some() {
        return;
    }
    let Some(channel_id) = state.channels.resolve(channel) else {
        return;
    };
    let (spec, avatar) = (&state.spec, state.spec.config.avatar_url.clone());
    if let Some(hook) = webhooks::created(&state.http, &spec.store, &spec.config.name, avatar, channel_id).await {
        spec.cast.add(hook.id);
        state.outbox.set_webhook(hook);
    }
}

/// Hands a message the agent answers to its conversation (set aside while that conversation is
/// quarantined).
async fn route(myself: &ActorRef<AgentMsg>, state: &mut AgentState, m: Inbound) {
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
async fn send(
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
        // Given up by a replacement: they count as finished if none can be started, so
        // nothing is stuck; the replay after a restart answers them if troupe stops first.
        for m in give_up {
            tracing::error!(agent = %state.spec.config.name, message_id = m.id, "message whose turn panicked could not be given up");
        }
        return;
    }
    myself.send_after(Duration::from_secs(1), move || AgentMsg::Retry(messages));
}

/// Whether `key` is quarantined after repeated failures. Its messages are then set aside in the
/// store (pending), and the conversation is woken when the quarantine ends to answer them.
fn quarantined(
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
            super::turn::now_ms(),
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

/// Once READY and every GUILD_CREATE are in, begins the replay of what was missed; live messages
/// (including those that overtook those events) wait until it is done.
fn maybe_begin_replay(myself: &ActorRef<AgentMsg>, state: &mut AgentState) {
    if state.me.as_ref().is_some_and(|me| state.phase.may_begin(me.guilds)) {
        begin_replay(myself, state);
    }
}

fn gateway_down(myself: &ActorRef<AgentMsg>, state: &mut AgentState, reason: &str) {
    state.spec.health.set_gateway(&state.spec.config.name, false);
    if state.gateway_started.elapsed() > Duration::from_secs(60) {
        state.gateway_failures = 0;
    }
    state.gateway_failures = state.gateway_failures.saturating_add(1);
    let delay = backoff(state.gateway_failures);
    tracing::warn!(agent = %state.spec.config.name, reason, delay_ms = delay.as_millis() as u64, "gateway down; reconnecting after backoff");
    myself.send_after(delay, || AgentMsg::StartGateway);
}

/// Restarts a failed conversation right away, unless it failed `restart_limit` times within
/// `restart_window`: then it is quarantined for the rest of the window; its messages meanwhile
/// wait in the store and are answered when it is woken.
async fn conversation_failed(
    myself: &ActorRef<AgentMsg>,
    state: &mut AgentState,
    key: ConversationKey,
    err: &str,
    already_replaced: bool,
) {
    let settings = state.spec.conversations;
    let now = Instant::now();
    match state
        .conversations
        .failed(key, now, settings.restart_limit, settings.restart_window)
    {
        (AfterFailure::Quarantine { until }, replacement) => {
            tracing::error!(agent = %state.spec.config.name, ?key, error = err, "conversation keeps failing; quarantined until the restart window passes");
            if let Some(replacement) = replacement {
                replacement.stop(Some("quarantined".into()));
            }
            let wait = until.saturating_duration_since(now);
            myself.send_after(wait, move || AgentMsg::Wake(key));
        }
        (AfterFailure::Restart, _) => {
            tracing::warn!(agent = %state.spec.config.name, ?key, error = err, "conversation failed; restarting it");
            if already_replaced {
                return;
            }
            if let Err(e) = conversation_for(myself, state, key).await {
                tracing::error!(agent = %state.spec.config.name, ?key, error = %e, "conversation restart failed");
            }
        }
    }
}

async fn conversation_for(
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
