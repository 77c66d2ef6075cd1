//! The agent actor: one per persona, the router of its messages. Supervises its gateway actor
//! (reconnected with backoff when it dies) and its conversation actors (spawned on the first
//! message of a conversation key, restarted within a budget when they fail), and decides which
//! messages the persona answers ([`crate::routing`]).

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use ractor::{Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, SupervisionEvent};

use super::conversation::{ConversationActor, ConversationArgs, ConversationMsg};
use super::gateway::{GatewayActor, GatewayArgs};
use super::replay::{self, BacklogLine, ReplayChannel};
use super::supervisor::backoff;
use super::SharedSpec;
use crate::acl::{self, ChainLength};
use crate::backlog::{ChannelProgress, Scope};
use crate::config::WebhookConfig;
use crate::config::{DryRun, RunMode};
use crate::discord::gateway::{http_client, ChannelInfo};
use crate::discord::outbox::WebhookIdentity;
use crate::discord::{GatewayEvent, Outbox};
use crate::message::{BotIdentity, Inbound};
use crate::ops::telemetry;
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
    /// A failing conversation hands back messages it had not answered yet.
    Reroute {
        /// The failing conversation actor.
        from: ActorId,
        /// Its waiting messages.
        messages: Vec<crate::message::Inbound>,
    },
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
        /// Which replay.
        generation: u64,
    },
    /// A conversation is finished with these messages (answered, or failed for good):
    /// `(channel, message)` pairs. Cursors advance from these.
    Finished(Vec<(u64, u64)>),
}

/// Where the agent is between READY and real time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for READY and every GUILD_CREATE.
    Connecting,
    /// Reading and answering the backlog; live messages wait in `queued`.
    Replaying,
    /// Real time.
    Live,
}

/// An agent's state.
#[derive(Debug)]
pub struct AgentState {
    spec: SharedSpec,
    me: Option<BotIdentity>,
    /// The bot's REST client, shared by the outbox, replay and webhook set-up.
    http: std::sync::Arc<serenity::http::Http>,
    outbox: Outbox,
    gateway: Option<ActorCell>,
    gateway_failures: u32,
    gateway_started: Instant,
    conversations: HashMap<ConversationKey, ActorRef<ConversationMsg>>,
    keys: HashMap<ActorId, ConversationKey>,
    restarts: HashMap<ConversationKey, VecDeque<Instant>>,
    quarantined: HashMap<ConversationKey, Instant>,
    channels: Vec<ChannelInfo>,
    listen_channels: Vec<u64>,
    /// GUILD_CREATEs seen since the last READY.
    guilds_seen: usize,
    /// Messages that arrived before READY and every GUILD_CREATE were handled (serenity
    /// dispatches each event on its own task, so they can overtake those events).
    early: Vec<crate::message::Inbound>,
    /// The bot-DMs channel, once resolved.
    bot_dms: Option<u64>,
    /// Per-user message limits.
    limiter: UserRateLimiter,
    phase: Phase,
    /// Replays started (each READY starts one); stale replay messages are ignored.
    generation: u64,
    /// Live messages that arrived during the replay.
    queued: Vec<Inbound>,
    /// Messages the current replay has handed out, so the queue does not answer them twice.
    replayed: std::collections::HashSet<u64>,
    /// Per-channel progress, from which cursors advance.
    progress: HashMap<u64, ChannelProgress>,
    /// What the last replay found.
    lines: Vec<BacklogLine>,
    /// The end of the first replay has been reported to the tracker.
    reported: bool,
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
        if let Some(WebhookConfig::Existing { id, token }) = &spec.config.webhook {
            let token = token.resolve(&spec.config.name)?;
            // Looking it up checks the token and tells which channel it posts in.
            let webhook = fetch_webhook(&spec, &http, *id, &token).await?;
            outbox.set_webhook(webhook);
        }
        if let Some(id) = outbox.webhook_id() {
            spec.cast.add(id);
        }
        myself.cast(AgentMsg::StartGateway)?;
        let limiter = UserRateLimiter::new(spec.discord.user_rate_limit, spec.discord.user_rate_window);
        Ok(AgentState {
            spec,
            me: None,
            http,
            outbox,
            gateway: None,
            gateway_failures: 0,
            gateway_started: Instant::now(),
            conversations: HashMap::new(),
            keys: HashMap::new(),
            restarts: HashMap::new(),
            quarantined: HashMap::new(),
            channels: Vec::new(),
            listen_channels: Vec::new(),
            guilds_seen: 0,
            early: Vec::new(),
            bot_dms: None,
            limiter,
            phase: Phase::Connecting,
            generation: 0,
            queued: Vec::new(),
            replayed: std::collections::HashSet::new(),
            progress: HashMap::new(),
            lines: Vec::new(),
            reported: false,
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
            AgentMsg::Reroute { from, messages } => {
                // Forget the failing actor now, so these messages reach its replacement rather
                // than its closing mailbox; the supervision event that follows does the rest.
                if let Some(key) = state.keys.get(&from).copied() {
                    if state.conversations.get(&key).is_some_and(|c| c.get_id() == from) {
                        state.conversations.remove(&key);
                    }
                }
                for m in messages {
                    route(&myself, state, m).await?;
                }
            }
            AgentMsg::Gateway(GatewayEvent::Ready(me)) => {
                tracing::info!(agent = %state.spec.config.name, bot_user = me.user_id, "gateway ready");
                state.spec.health.set_gateway(&state.spec.config.name, true);
                state.spec.cast.add(me.user_id);
                state.me = Some(me);
                state.guilds_seen = 0;
                // A new session (first connect, or a re-identify after the session was lost):
                // whatever happened meanwhile is replayed before going real-time.
                state.phase = Phase::Connecting;
                release_early(&myself, state).await?;
            }
            AgentMsg::Gateway(GatewayEvent::Connection(up)) => {
                let was_up = state.spec.health.set_gateway(&state.spec.config.name, up);
                if was_up && !up {
                    tracing::info!(agent = %state.spec.config.name, "gateway session lost; serenity is reconnecting");
                }
            }
            AgentMsg::Gateway(GatewayEvent::Thread(thread)) => {
                state.channels.retain(|x| x.id != thread.id);
                state.channels.push(thread);
                state.listen_channels = listen_channels(&state.spec.config.triggers.channels, &state.channels);
            }
            AgentMsg::Gateway(GatewayEvent::Resumed) => {
                tracing::info!(agent = %state.spec.config.name, "gateway session resumed");
                state.spec.health.set_gateway(&state.spec.config.name, true);
            }
            AgentMsg::Gateway(GatewayEvent::Channels(channels)) => {
                for c in channels {
                    state.channels.retain(|x| x.id != c.id);
                    state.channels.push(c);
                }
                state.listen_channels = listen_channels(&state.spec.config.triggers.channels, &state.channels);
                state.bot_dms = state.spec.bot_dms_channel.as_ref().and_then(|c| {
                    resolve_channels(std::slice::from_ref(c), &state.channels)
                        .first()
                        .copied()
                });
                state.guilds_seen += 1;
                setup_webhook(state).await;
                release_early(&myself, state).await?;
            }
            AgentMsg::Gateway(GatewayEvent::Message(m)) => match state.phase {
                Phase::Connecting => state.early.push(m),
                Phase::Replaying => state.queued.push(m),
                Phase::Live => on_message(&myself, state, m).await?,
            },
            AgentMsg::Backlog {
                channel,
                messages,
                generation,
            } if generation == state.generation => {
                let slowmode = state
                    .channels
                    .iter()
                    .find(|c| c.id == channel)
                    .map_or(Duration::ZERO, |c| c.slowmode);
                let mut batches: HashMap<ConversationKey, Vec<Inbound>> = HashMap::new();
                for m in messages {
                    state.replayed.insert(m.id);
                    if let Some(m) = admit(state, m, false) {
                        batches
                            .entry(ConversationKey::for_message(state.spec.config.memory, &m))
                            .or_default()
                            .push(m);
                    }
                }
                for (key, messages) in batches {
                    if let Some(conversation) = conversation_or_quarantine(&myself, state, key, &messages).await? {
                        conversation.cast(ConversationMsg::Backlog { messages, slowmode })?;
                    }
                }
                check_done(state);
            }
            AgentMsg::ReplayDone {
                lines,
                fresh,
                generation,
            } if generation == state.generation => {
                // A first-seen channel's cursor starts at its newest message, but never past a
                // live message waiting in the queue.
                if state.spec.run.dry_run == DryRun::None && state.spec.run.mode != RunMode::ShowBacklog {
                    for (channel, newest) in fresh {
                        let oldest_queued = state
                            .queued
                            .iter()
                            .filter(|m| m.channel_id == channel)
                            .map(|m| m.id)
                            .min();
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
                state.phase = Phase::Live;
                state.spec.health.set_replaying_backlog(&state.spec.config.name, false);
                if matches!(state.spec.run.mode, RunMode::ShowBacklog | RunMode::ClearBacklog) {
                    state.queued.clear();
                } else {
                    let mut queued = std::mem::take(&mut state.queued);
                    queued.sort_by_key(|m| m.id);
                    for m in queued {
                        if !state.replayed.contains(&m.id) {
                            on_message(&myself, state, m).await?;
                        }
                    }
                }
                state.replayed.clear();
                check_done(state);
            }
            AgentMsg::Backlog { .. } | AgentMsg::ReplayDone { .. } => {
                tracing::debug!(agent = %state.spec.config.name, "result of a superseded replay ignored");
            }
            AgentMsg::Finished(done) => {
                for (channel, id) in done {
                    finish(state, channel, id);
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
        let Some(key) = state.keys.remove(&cell.get_id()) else {
            return Ok(());
        };
        // It may already have been replaced (see `Reroute`): only forget it if it is current.
        let current = state
            .conversations
            .get(&key)
            .is_some_and(|c| c.get_id() == cell.get_id());
        if current {
            state.conversations.remove(&key);
        }
        if let Some(err) = failure {
            conversation_failed(&myself, state, key, &err, !current).await;
        }
        Ok(())
    }

    async fn post_stop(&self, myself: ActorRef<Self::Msg>, state: &mut Self::State) -> Result<(), ActorProcessingErr> {
        // Conversations first (they may be finishing a turn), then the gateway.
        let grace = state.spec.conversations.shutdown_grace + Duration::from_secs(1);
        let conversations: Vec<_> = state.conversations.values().cloned().collect();
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
async fn on_message(myself: &ActorRef<AgentMsg>, state: &mut AgentState, m: Inbound) -> Result<(), ActorProcessingErr> {
    telemetry::message_received(&state.spec.config.name);
    let Some(m) = admit(state, m, true) else { return Ok(()) };
    match state.limiter.check(m.author_id, Instant::now()) {
        Verdict::Allow => route(myself, state, m).await,
        Verdict::Notice => {
            tracing::info!(agent = %state.spec.config.name, user = m.author_id, "user over the rate limit; one notice sent");
            finish(state, m.channel_id, m.id);
            if state.spec.run.dry_run != DryRun::None {
                return Ok(());
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
            Ok(())
        }
        Verdict::Drop => {
            tracing::debug!(agent = %state.spec.config.name, user = m.author_id, message_id = m.id, "user over the rate limit; not answered");
            finish(state, m.channel_id, m.id);
            Ok(())
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
    let writable = |c: u64| channels.iter().any(|x| x.id == c && x.writable);
    let ctx = routing::Context {
        me: &my_ids,
        triggers: &state.spec.config.triggers,
        listen_channels: &state.listen_channels,
        bot_dms: state.bot_dms,
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
    telemetry::backlog_size(&state.spec.config.name, in_flight + state.queued.len());
    if state.reported || state.phase != Phase::Live {
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
    state.generation += 1;
    state.phase = Phase::Replaying;
    state.spec.health.set_replaying_backlog(&state.spec.config.name, true);
    state.replayed.clear();
    state.queued.append(&mut state.early);
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
                if let Some(c) = state
                    .bot_dms
                    .and_then(|id| state.channels.iter().find(|c| c.id == id && c.writable))
                {
                    channels.push(ReplayChannel {
                        scope,
                        id: c.id,
                        name: c.name.clone(),
                    });
                }
            }
            Scope::Text => {
                let mut text: Vec<&ChannelInfo> = state
                    .channels
                    .iter()
                    .filter(|c| c.writable && Some(c.id) != state.bot_dms)
                    .collect();
                text.sort_by(|a, b| (a.guild_id, &a.name).cmp(&(b.guild_id, &b.name)));
                channels.extend(text.into_iter().map(|c| ReplayChannel {
                    scope,
                    id: c.id,
                    name: c.name.clone(),
                }));
            }
        }
    }
    tokio::spawn(replay::run(
        spec.clone(),
        state.http.clone(),
        myself.clone(),
        channels,
        state.generation,
    ));
}

/// Looks an existing webhook up, to learn its channel.
async fn fetch_webhook(
    spec: &SharedSpec,
    http: &serenity::http::Http,
    id: u64,
    token: &crate::secret::Secret,
) -> Result<WebhookIdentity, ActorProcessingErr> {
    let hook = http
        .get_webhook_with_token(serenity::all::WebhookId::new(id), token.expose())
        .await
        .map_err(|e| format!("agent `{}`: webhook {id} cannot be used: {e}", spec.config.name))?;
    Ok(WebhookIdentity {
        id,
        token: token.clone(),
        channel_id: hook.channel_id.map_or(0, |c| c.get()),
        username: spec.config.name.clone(),
        avatar_url: spec.config.avatar_url.clone(),
    })
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
    let Some(channel_id) = resolve_channels(std::slice::from_ref(channel), &state.channels)
        .first()
        .copied()
    else {
        return;
    };
    let spec = &state.spec;
    let name = &spec.config.name;
    let (id, token) = match spec.store.webhook(name, channel_id) {
        Ok(Some(known)) => known,
        _ => {
            let builder = serenity::all::CreateWebhook::new(format!("troupe {name}"));
            match serenity::all::ChannelId::new(channel_id)
                .create_webhook(&*state.http, builder)
                .await
            {
                Ok(hook) => {
                    // The token is the last segment of the webhook's execute URL.
                    let token = hook
                        .url()
                        .ok()
                        .and_then(|u| u.rsplit('/').next().map(str::to_string))
                        .unwrap_or_default();
                    if let Err(e) = spec.store.save_webhook(name, channel_id, hook.id.get(), &token).await {
                        tracing::warn!(agent = %name, error = %e, "cannot remember the created webhook");
                    }
                    (hook.id.get(), token)
                }
                Err(e) => {
                    tracing::error!(agent = %name, channel = channel_id, error = %e, "cannot create the persona's webhook; speaking as the bot user");
                    return;
                }
            }
        }
    };
    spec.cast.add(id);
    state.outbox.set_webhook(WebhookIdentity {
        id,
        token: crate::secret::Secret::new(token),
        channel_id,
        username: name.clone(),
        avatar_url: spec.config.avatar_url.clone(),
    });
}

/// Hands a message the agent answers to its conversation, unless that conversation is
/// quarantined after repeated failures.
async fn route(myself: &ActorRef<AgentMsg>, state: &mut AgentState, m: Inbound) -> Result<(), ActorProcessingErr> {
    let key = ConversationKey::for_message(state.spec.config.memory, &m);
    let slowmode = state
        .channels
        .iter()
        .find(|c| c.id == m.channel_id)
        .map_or(Duration::ZERO, |c| c.slowmode);
    if let Some(conversation) = conversation_or_quarantine(myself, state, key, std::slice::from_ref(&m)).await? {
        conversation.cast(ConversationMsg::Inbound { message: m, slowmode })?;
    }
    Ok(())
}

/// The conversation for a key, unless it is quarantined after repeated failures: then the
/// messages are finished unanswered (logged).
async fn conversation_or_quarantine(
    myself: &ActorRef<AgentMsg>,
    state: &mut AgentState,
    key: ConversationKey,
    messages: &[Inbound],
) -> Result<Option<ActorRef<ConversationMsg>>, ActorProcessingErr> {
    if let Some(until) = state.quarantined.get(&key) {
        if *until > Instant::now() {
            for m in messages {
                tracing::warn!(agent = %state.spec.config.name, ?key, message_id = m.id, "conversation quarantined after repeated failures; message not answered");
                finish(state, m.channel_id, m.id);
            }
            return Ok(None);
        }
        state.quarantined.remove(&key);
    }
    Ok(Some(conversation_for(myself, state, key).await?))
}

/// Once READY and every GUILD_CREATE are in, handles the messages that overtook them.
/// They wait, with every live message, until the replay of what was missed is done.
async fn release_early(myself: &ActorRef<AgentMsg>, state: &mut AgentState) -> Result<(), ActorProcessingErr> {
    if state.phase == Phase::Connecting && state.me.as_ref().is_some_and(|me| state.guilds_seen >= me.guilds) {
        begin_replay(myself, state);
    }
    Ok(())
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
/// `restart_window`: then it is quarantined for the rest of the window and its messages are
/// not answered (logged).
async fn conversation_failed(
    myself: &ActorRef<AgentMsg>,
    state: &mut AgentState,
    key: ConversationKey,
    err: &str,
    already_replaced: bool,
) {
    let settings = state.spec.conversations;
    let now = Instant::now();
    let history = state.restarts.entry(key).or_default();
    while history
        .front()
        .is_some_and(|t| now.duration_since(*t) > settings.restart_window)
    {
        history.pop_front();
    }
    if history.len() >= settings.restart_limit {
        tracing::error!(agent = %state.spec.config.name, ?key, error = err, restarts = history.len(), "conversation keeps failing; giving up until the restart window passes");
        let until = history.front().map_or(now, |t| *t + settings.restart_window);
        state.quarantined.insert(key, until);
        if let Some(replacement) = state.conversations.remove(&key) {
            replacement.stop(Some("quarantined".into()));
        }
        return;
    }
    history.push_back(now);
    tracing::warn!(agent = %state.spec.config.name, ?key, error = err, "conversation failed; restarting it");
    if already_replaced {
        return;
    }
    if let Err(e) = conversation_for(myself, state, key).await {
        tracing::error!(agent = %state.spec.config.name, ?key, error = %e, "conversation restart failed");
    }
}

async fn conversation_for(
    myself: &ActorRef<AgentMsg>,
    state: &mut AgentState,
    key: ConversationKey,
) -> Result<ActorRef<ConversationMsg>, ActorProcessingErr> {
    if let Some(c) = state.conversations.get(&key) {
        return Ok(c.clone());
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
    state.keys.insert(actor.get_id(), key);
    state.conversations.insert(key, actor.clone());
    Ok(actor)
}

/// The channels where the agent answers everything: the configured ones and their threads.
fn listen_channels(wanted: &[String], known: &[ChannelInfo]) -> Vec<u64> {
    let direct = resolve_channels(wanted, known);
    let threads = known
        .iter()
        .filter(|c| c.parent_id.is_some_and(|p| direct.contains(&p)))
        .map(|c| c.id);
    let mut all: Vec<u64> = direct.iter().copied().chain(threads).collect();
    all.dedup();
    all
}

/// Channel IDs for configured names or IDs.
fn resolve_channels(wanted: &[String], known: &[ChannelInfo]) -> Vec<u64> {
    wanted
        .iter()
        .filter_map(|w| {
            let w = w.trim_start_matches('#');
            w.parse::<u64>().ok().or_else(|| {
                known
                    .iter()
                    .find(|c| c.name == w && c.parent_id.is_none())
                    .map(|c| c.id)
            })
        })
        .collect()
}
