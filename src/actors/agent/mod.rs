//! The agent actor: one per persona, the router of its messages. Supervises its gateway actor
//! (reconnected with backoff when it dies), owns its conversations (plain structs, started on
//! the first message of a conversation key, passivated when idle, replaced within a budget when
//! a turn panics), and decides which messages the persona answers ([`crate::routing`]).
//!
//! The actor is a dispatch over plain structs: the replay phase ([`crate::phase`]), the channel
//! directory ([`crate::channels`]), the conversation registry ([`super::registry`]) and each
//! channel's progress ([`crate::backlog::ChannelProgress`]). The steps live beside it:
//! - `admission`: live messages admitted (chain, routing, guards, per-user limit);
//! - `conversations`: messages handed to conversations, quarantine, resumption;
//! - `replaying`: the backlog replay and what it finds;
//! - `cursors`: progress and cursor saves;
//! - `commands`: slash commands registered and run.

mod admission;
mod commands;
mod conversations;
mod cursors;
mod replaying;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, SupervisionEvent};

use self::admission::{admit, on_message, on_skipped, remember_dm, FirstDm};
use self::conversations::{conversation_for, on_event, quarantined, resume_pending, route, send};
use self::cursors::{check_done, finish, on_finished, save_cursors};
use self::replaying::{hold_unread, maybe_begin_replay, on_backlog, on_replay_done, release_read_back, spawn_replay};
use super::conversation::{ConversationArgs, ConversationEvent, ConversationMsg, ConversationState, Handled};
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
use crate::discord::{webhooks, Edge, GatewayEvent, Outbox, Rest};
use crate::message::{BotIdentity, Inbound};
use crate::ops::telemetry;
use crate::phase::{Phase, ReplayPhase};
use crate::ratelimit::{UserRateLimiter, Verdict};
use crate::routing::{self, ConversationKey, Decision};
use crate::skip::{EdgeView, SharedView};

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
    /// An event of the conversation of `key` (a timer, a turn's end), for its incarnation
    /// `generation`: ignored if that incarnation has ended.
    Conversation {
        /// Which conversation.
        key: ConversationKey,
        /// Which incarnation of it.
        generation: u64,
        /// The event (boxed: a turn's outcome is large, and most agent messages are small).
        event: Box<ConversationEvent>,
    },
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
    /// A conversation is finished with these messages (answered, or given up with the notice):
    /// `(channel, message)` pairs. Cursors advance from these.
    Finished(Vec<(u64, u64)>),
    /// Another agent's `/forget-me` for every agent: forget this user here too.
    Forget {
        /// The user.
        user: u64,
        /// Their display name.
        name: String,
        /// `true` once forgotten everywhere in this agent.
        reply: ractor::RpcReplyPort<bool>,
    },
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
    /// The live conversations' states (a conversation is a struct here, not an actor: a task
    /// runs only while one of its turns runs).
    conversations: Registry<ConversationState>,
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
    /// Slash commands: registration and the channels where the agent is paused.
    commands: commands::CommandState,
    /// DM channels being read back after their first message (`FirstDm::ReadBack`), with the
    /// live messages that came meanwhile: handled after what the read returns, so in order.
    read_back: HashMap<u64, Vec<Inbound>>,
    /// The metrics every message moves, looked up once.
    series: telemetry::AgentSeries,
    /// What the gateway edge may skip, published here ([`publish_edge`]).
    edge: std::sync::Arc<SharedView>,
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
        let http = std::sync::Arc::new(http_client(&spec.token, &spec.route));
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
        spec.roster.join(&spec.config.name, myself.clone());
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
            commands: commands::CommandState::load(&spec),
            read_back: HashMap::new(),
            series: telemetry::AgentSeries::new(&spec.config.name),
            edge: std::sync::Arc::default(),
        })
    }

    // Why this is long: a dispatch with one arm per message kind; the arms call the steps in admission, conversations, replaying and cursors.
    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        // What changes the agent's identity, channels or phase changes what the edge may skip.
        let republish = matches!(
            msg,
            AgentMsg::StartGateway
                | AgentMsg::ReplayDone { .. }
                | AgentMsg::Gateway(
                    GatewayEvent::Ready { .. } | GatewayEvent::Channels { .. } | GatewayEvent::Channel(_)
                )
        );
        match msg {
            AgentMsg::StartGateway => {
                state.spec.health.set_gateway(&state.spec.config.name, false);
                // A new client: the replay waits for every shard's READY again.
                state.phase.reconnecting();
                let cast = state.spec.cast.clone();
                let args = GatewayArgs {
                    spec: state.spec.clone(),
                    agent: myself.clone(),
                    edge: Edge {
                        view: state.edge.clone(),
                        is_cast: std::sync::Arc::new(move |id| cast.contains(id)),
                    },
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
            AgentMsg::Conversation { key, generation, event } => {
                on_event(&myself, state, key, generation, *event).await
            }
            AgentMsg::Wake(key) => {
                if !state.conversations.contains(key) {
                    conversation_for(&myself, state, key);
                }
            }
            AgentMsg::Reread(channels) => {
                if state.phase.phase() == Phase::Live {
                    spawn_replay(&myself, state, channels);
                } else {
                    // One replay at a time: read them once this one is over.
                    myself.send_after(Duration::from_secs(1), move || AgentMsg::Reread(channels));
                }
            }
            AgentMsg::Gateway(GatewayEvent::Ready { me, shard, guilds }) => {
                tracing::info!(agent = %state.spec.config.name, bot_user = me.user_id, shard = shard.id, shards = shard.total, "gateway ready");
                if shard.total <= 1 {
                    state.spec.health.set_gateway(&state.spec.config.name, true);
                }
                state.spec.cast.add_user(me.user_id, &state.spec.config.name);
                // A new session of this shard (first connect, or a re-identify after the session
                // was lost): whatever happened meanwhile is replayed before going real-time.
                state.phase.ready(shard, &guilds);
                state.me = Some(me);
                report_shards(state, None);
                maybe_begin_replay(&myself, state);
            }
            AgentMsg::Gateway(GatewayEvent::Connection { connected, total }) => {
                let up = GatewayEvent::all_connected(connected, total);
                let was_up = state.spec.health.set_gateway(&state.spec.config.name, up);
                if was_up && !up {
                    tracing::info!(agent = %state.spec.config.name, connected, shards = total, "gateway session lost; serenity is reconnecting");
                }
                report_shards(state, Some(connected));
            }
            AgentMsg::Gateway(GatewayEvent::Channel(channel)) => state.channels.update([channel]),
            AgentMsg::Gateway(GatewayEvent::Resumed) => {
                tracing::info!(agent = %state.spec.config.name, "gateway session resumed");
                // With several shards, the connection watcher says when all of them are up.
                if state.phase.shards_ready().1 <= 1 {
                    state.spec.health.set_gateway(&state.spec.config.name, true);
                }
            }
            AgentMsg::Gateway(GatewayEvent::Channels { shard, guild, channels }) => {
                let guilds: HashSet<u64> = channels.iter().map(|c| c.guild_id).collect();
                commands::on_guilds(state, guilds);
                state.channels.update(channels);
                state.phase.guild_seen(shard, guild);
                report_shards(state, None);
                setup_webhook(state).await;
                maybe_begin_replay(&myself, state);
            }
            AgentMsg::Gateway(GatewayEvent::Message(m)) => {
                // A first DM after earlier ones troupe never saw is answered with them, from the
                // channel's read-back, not live before them (`chaos_smoke`, first DM); DMs that
                // follow it wait for that read too.
                if m.is_dm() {
                    if let Some(waiting) = state.read_back.get_mut(&m.channel_id) {
                        waiting.push(m);
                        return Ok(());
                    }
                    if remember_dm(&myself, state, &m).await == FirstDm::ReadBack {
                        state.read_back.insert(m.channel_id, Vec::new());
                        return Ok(());
                    }
                }
                if let Some(m) = state.phase.live(m) {
                    on_message(&myself, state, m).await;
                }
            }
            AgentMsg::Gateway(GatewayEvent::Skipped(s)) => on_skipped(&myself, state, s),
            AgentMsg::Backlog {
                channel,
                messages,
                generation,
            } if state.phase.is_current(generation) => on_backlog(&myself, state, channel, messages).await,
            AgentMsg::ReplayDone {
                lines,
                fresh,
                read,
                unread,
                generation,
            } if state.phase.is_current(generation) => {
                let waited = release_read_back(state, &read, &unread);
                hold_unread(&myself, state, &read, unread);
                on_replay_done(&myself, state, lines, fresh).await;
                for m in waited {
                    if let Some(m) = state.phase.live(m) {
                        on_message(&myself, state, m).await;
                    }
                }
            }
            AgentMsg::Backlog { .. } | AgentMsg::ReplayDone { .. } => {
                tracing::debug!(agent = %state.spec.config.name, "result of a superseded replay ignored");
            }
            AgentMsg::Finished(done) => on_finished(state, done),
            AgentMsg::Gateway(GatewayEvent::Application(app)) => commands::on_application(state, app),
            AgentMsg::Gateway(GatewayEvent::Command(invocation)) => {
                commands::on_command(&myself, state, invocation).await
            }
            AgentMsg::Forget { user, name, reply } => commands::on_forget(state, user, &name, reply).await,
        }
        if republish {
            publish_edge(state);
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
        // The gateway is the agent's only child (conversations are structs it owns).
        if state.gateway.as_ref().is_some_and(|g| g.get_id() == cell.get_id()) {
            state.gateway = None;
            gateway_down(&myself, state, failure.as_deref().unwrap_or("stopped"));
        }
        Ok(())
    }

    async fn post_stop(&self, myself: ActorRef<Self::Msg>, state: &mut Self::State) -> Result<(), ActorProcessingErr> {
        // Conversations first (they may be finishing a turn: all within one grace period, not
        // one after another), then the gateway.
        let stops = state.conversations.drain().into_iter().map(ConversationState::stop);
        futures::future::join_all(stops).await;
        myself
            .stop_children_and_wait(Some("agent stopping".into()), Some(Duration::from_secs(10)))
            .await;
        save_cursors(state);
        Ok(())
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

/// Publishes what the gateway edge may skip ([`crate::skip`]): nothing unless the agent is live
/// and knows who it is; then unaddressed messages in the channels it knows and does not
/// listen in.
pub(super) fn publish_edge(state: &AgentState) {
    let view = match &state.me {
        Some(me) if state.phase.phase() == Phase::Live => EdgeView {
            me: std::iter::once(me.user_id).chain(state.outbox.webhook_id()).collect(),
            quiet: state.channels.quiet_channels().collect(),
            everyone: state.spec.config.triggers.everyone,
        },
        _ => EdgeView::default(),
    };
    if state.edge.publish(view) {
        tracing::debug!(agent = %state.spec.config.name, live = state.phase.phase() == Phase::Live, "gateway edge view published");
    }
}

/// Publishes how many of a sharded agent's shards are connected (`None`: unchanged) and ready.
fn report_shards(state: &AgentState, connected: Option<u32>) {
    let (ready, total) = state.phase.shards_ready();
    if total > 1 {
        state
            .spec
            .health
            .set_shards(&state.spec.config.name, connected, ready as u32, total as u32);
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
