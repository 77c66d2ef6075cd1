//! The agent actor: one per persona, the router of its messages. Supervises its gateway actor
//! (reconnected with backoff when it dies) and its conversation actors (spawned on the first
//! message of a conversation key, restarted within a budget when they fail), and decides which
//! messages the persona answers ([`crate::routing`]).

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use ractor::{Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, SupervisionEvent};

use super::conversation::{ConversationActor, ConversationArgs, ConversationMsg};
use super::gateway::{GatewayActor, GatewayArgs};
use super::supervisor::backoff;
use super::SharedSpec;
use crate::acl::{self, ChainLength};
use crate::config::WebhookConfig;
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
}

/// An agent's state.
#[derive(Debug)]
pub struct AgentState {
    spec: SharedSpec,
    me: Option<BotIdentity>,
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
        let outbox = Outbox::new(std::sync::Arc::new(http_client(&spec.token, spec.api_base.as_deref())));
        if let Some(WebhookConfig::Existing { id, token }) = &spec.config.webhook {
            let token = token.resolve(&spec.config.name)?;
            // Its channel is learned from Discord once connected (see `setup_webhook`).
            let webhook = fetch_webhook(&spec, *id, &token).await?;
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
                release_early(&myself, state).await?;
            }
            AgentMsg::Gateway(GatewayEvent::Connection(up)) => {
                let was_up = state.spec.health.set_gateway(&state.spec.config.name, up);
                if was_up && !up {
                    tracing::info!(agent = %state.spec.config.name, "gateway session lost; serenity is reconnecting");
                }
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
                state.listen_channels = resolve_channels(&state.spec.config.triggers.channels, &state.channels);
                state.bot_dms = state.spec.bot_dms_channel.as_ref().and_then(|c| {
                    resolve_channels(std::slice::from_ref(c), &state.channels)
                        .first()
                        .copied()
                });
                state.guilds_seen += 1;
                setup_webhook(state).await;
                release_early(&myself, state).await?;
            }
            AgentMsg::Gateway(GatewayEvent::Message(m)) => {
                let ready = state.me.as_ref().is_some_and(|me| state.guilds_seen >= me.guilds);
                if !ready {
                    state.early.push(m);
                    return Ok(());
                }
                on_message(&myself, state, m).await?;
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
        Ok(())
    }
}

/// Routing of one live message: its chain length (the highest troupe knows), the decision,
/// the per-user limit, then its conversation.
async fn on_message(
    myself: &ActorRef<AgentMsg>,
    state: &mut AgentState,
    mut m: Inbound,
) -> Result<(), ActorProcessingErr> {
    telemetry::message_received(&state.spec.config.name);
    let Some(me) = state.me.as_ref().map(|me| me.user_id) else {
        return Ok(());
    };
    let store = &state.spec.store;
    let recorded = store.chain(m.id).ok().flatten();
    let replied = m
        .reply_to
        .as_ref()
        .and_then(|r| store.chain(r.message_id).ok().flatten());
    m.chain = acl::inbound_chain(m.chain, recorded, m.author_is_bot, replied);
    if m.chain > ChainLength::HUMAN {
        if let Err(e) = store.record_chain(m.id, m.chain) {
            tracing::warn!(agent = %state.spec.config.name, error = %e, "cannot record a chain length");
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
    tracing::debug!(agent = %state.spec.config.name, message_id = m.id, channel = m.channel_id, chain = %m.chain, ?decision, "routing");
    let (processed, reason) = match decision {
        Decision::Process(r) => (true, r),
        Decision::Ignore(r) => (false, r),
    };
    telemetry::message_routed(&state.spec.config.name, processed, reason.label());
    if reason == routing::Reason::ChainLimit {
        telemetry::chain_blocked(&state.spec.config.name);
    }
    let Decision::Process(_) = decision else { return Ok(()) };
    match state.limiter.check(m.author_id, Instant::now()) {
        Verdict::Allow => route(myself, state, m).await,
        Verdict::Notice => {
            tracing::info!(agent = %state.spec.config.name, user = m.author_id, "user over the rate limit; one notice sent");
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
            Ok(())
        }
    }
}

/// Looks an existing webhook up, to learn its channel.
async fn fetch_webhook(
    spec: &SharedSpec,
    id: u64,
    token: &crate::secret::Secret,
) -> Result<WebhookIdentity, ActorProcessingErr> {
    let http = http_client(&spec.token, spec.api_base.as_deref());
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
            let http = http_client(&spec.token, spec.api_base.as_deref());
            let builder = serenity::all::CreateWebhook::new(format!("troupe {name}"));
            match serenity::all::ChannelId::new(channel_id)
                .create_webhook(&http, builder)
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
async fn route(
    myself: &ActorRef<AgentMsg>,
    state: &mut AgentState,
    m: crate::message::Inbound,
) -> Result<(), ActorProcessingErr> {
    let key = ConversationKey::for_message(state.spec.config.memory, &m);
    if let Some(until) = state.quarantined.get(&key) {
        if *until > Instant::now() {
            tracing::warn!(agent = %state.spec.config.name, ?key, message_id = m.id, "conversation quarantined after repeated failures; message not answered");
            return Ok(());
        }
        state.quarantined.remove(&key);
    }
    let slowmode = state
        .channels
        .iter()
        .find(|c| c.id == m.channel_id)
        .map_or(Duration::ZERO, |c| c.slowmode);
    let conversation = conversation_for(myself, state, key).await?;
    conversation.cast(ConversationMsg::Inbound { message: m, slowmode })?;
    Ok(())
}

/// Once READY and every GUILD_CREATE are in, handles the messages that overtook them.
/// They are handled here, in arrival order, before anything queued behind them.
async fn release_early(myself: &ActorRef<AgentMsg>, state: &mut AgentState) -> Result<(), ActorProcessingErr> {
    if state.me.as_ref().is_some_and(|me| state.guilds_seen >= me.guilds) {
        for m in std::mem::take(&mut state.early) {
            on_message(myself, state, m).await?;
        }
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

/// Channel IDs for configured names or IDs.
fn resolve_channels(wanted: &[String], known: &[ChannelInfo]) -> Vec<u64> {
    wanted
        .iter()
        .filter_map(|w| {
            let w = w.trim_start_matches('#');
            w.parse::<u64>()
                .ok()
                .or_else(|| known.iter().find(|c| c.name == w).map(|c| c.id))
        })
        .collect()
}
