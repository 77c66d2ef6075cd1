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
use super::{Cast, GaugeGuard, SharedSpec};
use crate::acl::{self, ChainLength, ReplyDecision};
use crate::config::{DiscordSettings, DryRun};
use crate::discord::outbox::Reply;
use crate::discord::Outbox;
use crate::memory::{self, MemoryTurn};
use crate::message::Inbound;
use crate::ops::telemetry;
use crate::routing::ConversationKey;

/// How long a reply waits for its typing indicator's request before going out anyway (the
/// indicator is sent alongside the model call and must not arrive after the reply).
const TYPING_WAIT: Duration = Duration::from_secs(5);

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
    /// The agent's own user IDs (bot user, webhook): never pinged by its replies.
    pub self_ids: Vec<u64>,
}

/// Messages to a conversation.
#[derive(Debug)]
pub enum ConversationMsg {
    /// A message to answer, with the slowmode of its channel.
    Inbound {
        /// The message.
        message: Inbound,
        /// Its channel's slowmode.
        slowmode: Duration,
    },
    /// Missed messages read by the backlog replay: answered together, in one turn, at once.
    Backlog {
        /// The messages, oldest first.
        messages: Vec<Inbound>,
        /// Their channel's slowmode.
        slowmode: Duration,
    },
    /// Start the next turn if idle; `batch` answers every waiting message together (after a
    /// bot delay), otherwise only the oldest.
    Start {
        /// Answer everything waiting in one turn.
        batch: bool,
    },
    /// A turn finished (answered or failed); carries the memory it saved.
    TurnDone(TurnOutcome),
    /// A turn panicked: fail the actor so it is restarted clean.
    TurnPanicked(String),
    /// Stop if nothing has happened for the idle time (else wait out the rest).
    IdleCheck,
}

/// The result of one turn.
#[derive(Debug)]
pub struct TurnOutcome {
    /// The (latest) message answered.
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
    /// When the conversation last had something to do.
    last_activity: tokio::time::Instant,
    /// An idle check is scheduled (one at a time, however many messages arrive).
    idle_armed: bool,
    slowmode: std::collections::HashMap<u64, Duration>,
    /// Backlog messages wait: the next turn starts at once and answers everything together.
    backlog_waiting: bool,
    /// `(channel, message)` of the turn in flight, reported finished if it panics.
    in_turn: Vec<(u64, u64)>,
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
            last_activity: tokio::time::Instant::now(),
            idle_armed: false,
            slowmode: std::collections::HashMap::new(),
            backlog_waiting: false,
            in_turn: Vec::new(),
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
            ConversationMsg::Inbound { message: m, slowmode } => {
                if state.pending.len() >= state.args.spec.conversations.queue_limit {
                    tracing::warn!(agent = %state.args.spec.config.name, key = ?state.args.key, message_id = m.id, "conversation queue full; message not answered");
                    let _ = state.args.agent.cast(AgentMsg::Finished(vec![(m.channel_id, m.id)]));
                    return Ok(());
                }
                state.slowmode.insert(m.channel_id, slowmode);
                state.pending.insert(m.id, m);
                arm_idle_timer(&myself, state);
                schedule_start(&myself, state);
            }
            ConversationMsg::Backlog { messages, slowmode } => {
                for m in messages {
                    state.slowmode.insert(m.channel_id, slowmode);
                    state.pending.insert(m.id, m);
                }
                state.backlog_waiting = true;
                arm_idle_timer(&myself, state);
                schedule_start(&myself, state);
            }
            ConversationMsg::Start { batch } => {
                state.start_scheduled = false;
                start_turn(&myself, state, batch);
            }
            ConversationMsg::TurnDone(outcome) => {
                state.turn = None;
                let done = std::mem::take(&mut state.in_turn);
                let _ = state.args.agent.cast(AgentMsg::Finished(done));
                state.memory = outcome.memory;
                // The turn's copy grew by doubling; an idle conversation keeps only what it holds
                // (10,000 idle conversations: see docs/benchmarks.md).
                state.memory.shrink_to_fit();
                if let Err(e) = outcome.reply {
                    tracing::warn!(agent = %state.args.spec.config.name, message_id = outcome.message_id, error = %e, "turn failed");
                }
                arm_idle_timer(&myself, state);
                schedule_start(&myself, state);
            }
            ConversationMsg::TurnPanicked(why) => {
                state.turn = None;
                // The message whose turn panicked is finished with (not retried: it may be
                // the cause).
                let done = std::mem::take(&mut state.in_turn);
                let _ = state.args.agent.cast(AgentMsg::Finished(done));
                // Hand the waiting messages back before failing, so the restarted conversation
                // answers them; the message whose turn panicked is not among them.
                let waiting: Vec<Inbound> = std::mem::take(&mut state.pending).into_values().collect();
                let _ = state.args.agent.cast(AgentMsg::Reroute {
                    from: myself.get_id(),
                    messages: waiting,
                });
                return Err(format!("turn panicked: {why}").into());
            }
            ConversationMsg::IdleCheck => {
                state.idle_armed = false;
                let idle_for = state.last_activity.elapsed();
                let idle = state.args.spec.conversations.idle;
                if state.turn.is_some() || !state.pending.is_empty() {
                    schedule_idle_check(&myself, state, idle);
                } else if idle_for < idle {
                    schedule_idle_check(&myself, state, idle - idle_for);
                } else {
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

/// Records activity; the idle check, if none is scheduled yet, comes after the idle time.
fn arm_idle_timer(myself: &ActorRef<ConversationMsg>, state: &mut ConversationState) {
    state.last_activity = tokio::time::Instant::now();
    let idle = state.args.spec.conversations.idle;
    schedule_idle_check(myself, state, idle);
}

fn schedule_idle_check(myself: &ActorRef<ConversationMsg>, state: &mut ConversationState, after: Duration) {
    if !state.idle_armed {
        state.idle_armed = true;
        // Never sooner than a tick, so a check cannot spin.
        myself.send_after(after.max(Duration::from_millis(10)), || ConversationMsg::IdleCheck);
    }
}

/// When the next turn may start: after the reorder window (`[conversations] reorder_ms`) for a
/// human's message, so messages serenity delivered out of order (it dispatches each event on its
/// own task) are sorted by ID first; after the bot delay (plus jitter) when the oldest waiting
/// message is a bot's, so humans can step in and bot exchanges stay readable. `jitter` is a
/// sample in `[0, 1)`.
pub fn start_delay(oldest_is_bot: bool, settings: &DiscordSettings, reorder: Duration, jitter: f64) -> Duration {
    if oldest_is_bot {
        settings.bot_delay + settings.bot_delay_jitter.mul_f64(jitter.clamp(0.0, 1.0))
    } else {
        reorder
    }
}

fn schedule_start(myself: &ActorRef<ConversationMsg>, state: &mut ConversationState) {
    if state.turn.is_some() || state.start_scheduled {
        return;
    }
    let Some(oldest) = state.pending.values().next() else {
        return;
    };
    state.start_scheduled = true;
    if state.backlog_waiting {
        // Missed messages are old already: answer them together, now.
        let _ = myself.cast(ConversationMsg::Start { batch: true });
        return;
    }
    let from_bot = oldest.author_is_bot;
    let spec = &state.args.spec;
    let delay = start_delay(
        from_bot,
        &spec.discord,
        spec.conversations.reorder,
        rand::random::<f64>(),
    );
    if delay.is_zero() {
        let _ = myself.cast(ConversationMsg::Start { batch: from_bot });
    } else {
        myself.send_after(delay, move || ConversationMsg::Start { batch: from_bot });
    }
}

fn start_turn(myself: &ActorRef<ConversationMsg>, state: &mut ConversationState, batch: bool) {
    if state.turn.is_some() {
        return;
    }
    // Nobody watches a reply to missed messages being typed: no indicator for backlog turns.
    let typing = !(batch && state.backlog_waiting);
    let messages: Vec<Inbound> = if batch {
        state.backlog_waiting = false;
        let mut all: Vec<Inbound> = std::mem::take(&mut state.pending).into_values().collect();
        // A reply remembered but not confirmed delivered (troupe stopped in between) answers
        // the messages up to the one it was for: deliver it on its own first, and answer the
        // rest in the next turn, so no message is answered twice or left out.
        if let Some(cut) = all.iter().position(|m| remembers_reply(&state.memory, m.id)) {
            for m in all.split_off(cut + 1) {
                state.pending.insert(m.id, m);
            }
            state.backlog_waiting = !state.pending.is_empty();
        }
        all
    } else {
        let first = state.pending.pop_first().map(|(_, m)| m).into_iter().collect();
        if state.pending.is_empty() {
            // An emptied BTreeMap keeps its root node (~2 KB of `Inbound` slots): release it.
            state.pending = BTreeMap::new();
        }
        first
    };
    let Some(latest) = messages.last() else { return };
    let message_id = latest.id;
    state.in_turn = messages.iter().map(|m| (m.channel_id, m.id)).collect();
    let pacing = Pacing {
        slowmode: state.slowmode.get(&latest.channel_id).copied().unwrap_or_default(),
        typing,
    };
    let spec = state.args.spec.clone();
    let outbox = state.args.outbox.clone();
    let key = state.args.key;
    let memory = state.memory.clone();
    let me = myself.clone();
    let self_ids = state.args.self_ids.clone();
    let turn = tokio::spawn(async move { run_turn(&spec, &outbox, key, memory, &messages, pacing, &self_ids).await });
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

/// Whether memory holds the agent's reply to this message.
fn remembers_reply(memory: &[MemoryTurn], message_id: u64) -> bool {
    memory.iter().any(|t| t.assistant && t.message_id == message_id)
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

/// Users a reply may ping: agents of this troupe it mentions, never itself, nobody else.
fn allowed_users(text: &str, cast: &Cast, me: &[u64]) -> Vec<u64> {
    let mut out = Vec::new();
    for piece in text.split("<@").skip(1) {
        let piece = piece.strip_prefix('!').unwrap_or(piece);
        let digits: String = piece.chars().take_while(char::is_ascii_digit).collect();
        if let Ok(id) = digits.parse::<u64>() {
            if piece[digits.len()..].starts_with('>') && cast.contains(id) && !me.contains(&id) && !out.contains(&id) {
                out.push(id);
            }
        }
    }
    out
}

/// How a turn's reply is paced.
#[derive(Debug, Clone, Copy)]
struct Pacing {
    /// The channel's slowmode, respected between the reply's parts.
    slowmode: Duration,
    /// Show the typing indicator while the model works (not for backlog turns).
    typing: bool,
}

/// One turn for a batch of messages (usually one): the chain decision, the prompt, the
/// completion (through the backend's pool), memory saved, the reply delivered in parts.
/// Returns the memory as saved and the outcome.
///
/// The model call's and the delivery's futures are boxed: held inline they would make every
/// spawned turn (one per busy conversation, waiting for a pool permit) ~18 KB larger; see
/// `docs/benchmarks.md`.
async fn run_turn(
    spec: &SharedSpec,
    outbox: &Outbox,
    key: ConversationKey,
    mut memory: Vec<MemoryTurn>,
    batch: &[Inbound],
    pacing: Pacing,
    self_ids: &[u64],
) -> (Vec<MemoryTurn>, Result<String, String>) {
    let name = &spec.config.name;
    let limits = spec.config.memory_limits;
    let dry = spec.run.dry_run;
    let Some(latest) = batch.last() else {
        return (memory, Err("empty batch".into()));
    };
    // Dry runs leave the store untouched.
    let save = |memory: Vec<MemoryTurn>| async move {
        if dry == DryRun::None {
            spec.store
                .save_memory(name, key, &memory)
                .await
                .map_err(|e| e.to_string())?;
        }
        Ok::<_, String>(memory)
    };
    if dry == DryRun::NoAgent {
        let ids: Vec<u64> = batch.iter().map(|m| m.id).collect();
        println!(
            "[no-agent] {name} would answer {ids:?} in channel {}",
            latest.channel_id
        );
        return (memory, Ok(String::new()));
    }
    let chain = acl::batch_chain(batch.iter().map(|m| m.chain));
    // A reply remembered for this message but never confirmed delivered (troupe stopped in
    // between): deliver that same reply again. Its nonce makes Discord return the first copy
    // if it did arrive, so nothing is answered twice and no tokens are spent twice.
    let remembered = memory
        .iter()
        .rev()
        .find(|t| t.assistant && t.message_id == latest.id)
        .map(|t| t.content.clone());
    let history: Vec<_> = memory.iter().map(MemoryTurn::to_prompt).collect();
    let fresh: Vec<MemoryTurn> = batch
        .iter()
        // A message already in memory (replayed after a restart) is not added again.
        .filter(|m| !memory.iter().any(|t| !t.assistant && t.message_id == m.id))
        .map(|m| MemoryTurn {
            assistant: false,
            author: m.author_name.clone(),
            content: m.content.clone(),
            message_id: m.id,
            time_ms: now_ms(),
        })
        .collect();
    memory.extend(fresh.iter().cloned());
    memory::trim(&mut memory, limits);
    let reply_chain = match acl::decide_reply(chain, spec.discord.max_chain) {
        ReplyDecision::Block { would_be } => {
            // Never reached through routing (inbound at the limit is not processed); kept as
            // the last line of defence. No tokens are spent.
            tracing::warn!(agent = %name, message_id = latest.id, chain = %would_be, "reply would exceed the chain limit; not sent");
            telemetry::chain_blocked(name);
            return match save(memory.clone()).await {
                Ok(m) => (m, Err("chain limit".to_string())),
                Err(e) => (memory, Err(e)),
            };
        }
        d => d,
    };
    let courtesy = matches!(reply_chain, ReplyDecision::SendWithCourtesy { .. }).then(|| spec.discord.courtesy.clone());
    let mut typing: Option<tokio::task::JoinHandle<()>> = None;
    let (text, with_reply) = match remembered {
        Some(text) => (text, memory.clone()),
        None => {
            let date = chrono::Utc::now().format("%Y-%m-%d").to_string();
            let fresh_prompt: Vec<_> = fresh.iter().map(MemoryTurn::to_prompt).collect();
            let mut prompt = crate::prompt::build(name, &spec.config.system_prompt, &date, &history, &fresh_prompt);
            if courtesy.is_some() {
                prompt.system.push_str("\n\nThis reply ends an agent chain that has reached its limit: it is the last message, and no reply to it is expected.");
            }
            // An open circuit breaker (`on_trip = "isolate"`): this agent does not ask its
            // backend until the cooldown lets one probe through. The message is finished with,
            // unanswered; users never see the error.
            if !spec.breaker.allow(std::time::Instant::now()) {
                tracing::warn!(agent = %name, message_id = latest.id, "circuit breaker open; message not answered");
                return match save(memory.clone()).await {
                    Ok(m) => (m, Err("circuit breaker open".to_string())),
                    Err(e) => (memory, Err(e)),
                };
            }
            // The indicator's request runs alongside the model call rather than before it: on
            // Discord it is a full REST round trip.
            if pacing.typing {
                let (outbox, channel) = (outbox.clone(), latest.channel_id);
                typing = Some(tokio::spawn(async move { outbox.typing(channel).await }));
            }
            let completion = match spec.pool.acquire(name).await {
                Ok(_permit) => {
                    let started = std::time::Instant::now();
                    let result = Box::pin(spec.backend.complete(&prompt)).await;
                    // A full pool is load shedding, not a backend failure: only calls count.
                    match &result {
                        Ok(_) => spec.breaker.record_success(),
                        Err(e) => {
                            spec.breaker
                                .record_failure(std::time::Instant::now(), &format!("{}: {e}", e.kind()));
                        }
                    }
                    let outcome = result.as_ref().map_or_else(|e| e.kind(), |_| "ok");
                    telemetry::llm_request(&spec.config.backend, outcome, Some(started.elapsed()));
                    if let Some(usage) = result.as_ref().ok().and_then(|c| c.usage.as_ref()) {
                        telemetry::llm_tokens(name, usage.input_tokens, usage.output_tokens);
                    }
                    result.map_err(|e| e.to_string())
                }
                Err(full) => {
                    telemetry::llm_request(&spec.config.backend, "queue_full", None);
                    Err(full.to_string())
                }
            };
            let text = match completion {
                Ok(c) => c.text,
                Err(e) => {
                    return match save(memory.clone()).await {
                        Ok(m) => (m, Err(e)),
                        Err(saved) => (memory, Err(saved)),
                    };
                }
            };
            // Memory (with the reply) is durable before the reply is sent.
            let mut with_reply = memory.clone();
            with_reply.push(MemoryTurn {
                assistant: true,
                author: name.clone(),
                content: text.clone(),
                message_id: latest.id,
                time_ms: now_ms(),
            });
            memory::trim(&mut with_reply, limits);
            match save(with_reply).await {
                Ok(w) => (text, w),
                Err(e) => return (memory, Err(e)),
            }
        }
    };
    let reply = Reply {
        channel_id: latest.channel_id,
        reply_to: Some(latest.id),
        allowed_users: allowed_users(&text, &spec.cast, self_ids),
        text,
        chain: reply_chain.chain().unwrap_or(ChainLength::HUMAN.next()),
        tagline: spec.discord.tagline.clone(),
        courtesy,
        slowmode: pacing.slowmode,
        nonce_seed: name.clone(),
    };
    // The indicator must not arrive after the reply (it would show for ~10 s more); a request
    // that hangs does not hold the reply past `TYPING_WAIT`.
    if let Some(mut handle) = typing {
        if tokio::time::timeout(TYPING_WAIT, &mut handle).await.is_err() {
            handle.abort();
        }
    }
    let delivered = Box::pin(outbox.deliver(&reply)).await;
    telemetry::replies_sent(name, delivered.message_ids.len());
    if let Some(e) = &delivered.error {
        telemetry::discord_rest_error(e.status);
    }
    if dry == DryRun::None {
        for id in &delivered.message_ids {
            if let Err(e) = spec.store.record_chain(*id, reply.chain) {
                tracing::warn!(agent = %name, error = %e, "cannot record a chain length");
            }
        }
    }
    match delivered.error {
        None => {
            if dry == DryRun::None {
                // The completion record: keyed by the answered messages themselves, whatever
                // the reply looks like (references are optional on Discord's side).
                let ids: Vec<u64> = batch.iter().map(|m| m.id).collect();
                if let Err(e) = spec.store.record_answered(name, &ids).await {
                    tracing::warn!(agent = %name, error = %e, "cannot record answered messages");
                }
            }
            (with_reply, Ok(delivered.text))
        }
        Some(e) => {
            tracing::warn!(agent = %name, message_id = latest.id, status = ?e.status, delivered_parts = delivered.message_ids.len(), reason = %e.reason, "discord rejected the reply");
            // Remember only what the channel shows: never a reply Discord refused.
            let mut shown = memory.clone();
            if !delivered.text.is_empty() {
                shown.push(MemoryTurn {
                    assistant: true,
                    author: name.clone(),
                    content: delivered.text.clone(),
                    message_id: latest.id,
                    time_ms: now_ms(),
                });
                memory::trim(&mut shown, limits);
            }
            match save(shown.clone()).await {
                Ok(m) => (m, Err(e.to_string())),
                Err(_) => (shown, Err(e.to_string())),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bots_wait_the_delay_humans_only_the_reorder_window() {
        let settings = DiscordSettings {
            bot_delay: Duration::from_secs(17),
            bot_delay_jitter: Duration::from_secs(3),
            ..DiscordSettings::default()
        };
        let reorder = Duration::from_millis(2);
        assert_eq!(start_delay(false, &settings, reorder, 0.9), reorder);
        assert_eq!(start_delay(false, &settings, Duration::ZERO, 0.9), Duration::ZERO);
        assert_eq!(start_delay(true, &settings, reorder, 0.0), Duration::from_secs(17));
        assert_eq!(
            start_delay(true, &settings, reorder, 0.5),
            Duration::from_millis(18_500)
        );
        assert!(start_delay(true, &settings, reorder, 7.0) <= Duration::from_secs(20));
    }

    #[test]
    fn only_other_cast_members_may_be_pinged() {
        let cast = Cast::default();
        cast.add(1);
        cast.add(2);
        let text = "<@1> <@!2> <@3> <@&1> <@2> <@1x> <@";
        assert_eq!(allowed_users(text, &cast, &[2]), vec![1]);
        assert_eq!(allowed_users(text, &cast, &[]), vec![1, 2]);
    }

    /// An agent stand-in for the conversation's `agent` handle.
    struct NoAgent;

    impl Actor for NoAgent {
        type Msg = AgentMsg;
        type State = ();
        type Arguments = ();

        async fn pre_start(&self, _: ActorRef<AgentMsg>, _: ()) -> Result<(), ActorProcessingErr> {
            Ok(())
        }
    }

    fn bot_message(id: u64, content: &str) -> Inbound {
        Inbound {
            id,
            channel_id: 10,
            guild_id: Some(1),
            author_id: 77,
            author_name: "Bea".into(),
            author_is_bot: true,
            webhook_id: None,
            content: content.into(),
            mentions: vec![],
            mention_everyone: false,
            reply_to: None,
            footers: vec!["acl:1 • x".into()],
            chain: ChainLength::HUMAN.next(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn bot_messages_wait_the_delay_and_are_answered_together() {
        let dir = tempfile::tempdir().unwrap();
        let text = "[discord]\nbot_delay_ms = 17000\nbot_delay_jitter_ms = 3000\n[backends.b]\nprovider = \"echo\"\n[[agents]]\nname = \"Ada\"\nbackend = \"b\"\n";
        let config = crate::config::Config::parse("test.toml", text).unwrap();
        let spec = std::sync::Arc::new(super::super::AgentSpec {
            config: config.agents[0].clone(),
            backend: crate::llm::Backend::from_config(&config.backends["b"]).unwrap(),
            token: crate::secret::Secret::new("unused"),
            api_base: None,
            pool: crate::llm::pool::Pool::new(1, 10),
            store: crate::store::Store::open(dir.path()).unwrap(),
            conversations: config.conversations,
            gauges: Default::default(),
            discord: config.discord.clone(),
            bot_dms_channel: None,
            cast: Default::default(),
            bot_exchanges: Default::default(),
            health: std::sync::Arc::new(crate::ops::health::Health::new(["Ada"])),
            exits: crate::ops::exit::ExitRequests::new(),
            breaker: std::sync::Arc::new(crate::ops::breakers::AgentBreaker::new(
                "Ada",
                Default::default(),
                std::sync::Arc::new(crate::ops::health::Health::new(["Ada"])),
                crate::ops::exit::ExitRequests::new(),
            )),
            backlog: config.backlog,
            run: config.run.clone(),
            tracker: super::super::replay::ReplayTracker::new(["Ada"]),
        });
        let (agent, _) = Actor::spawn(None, NoAgent, ()).await.unwrap();
        let outbox = Outbox::printing();
        let args = ConversationArgs {
            spec,
            key: ConversationKey::Channel(10),
            outbox: outbox.clone(),
            agent,
            self_ids: vec![1],
        };
        let (conversation, _) = Actor::spawn(None, ConversationActor, args).await.unwrap();

        let start = tokio::time::Instant::now();
        let slowmode = Duration::ZERO;
        conversation
            .cast(ConversationMsg::Inbound {
                message: bot_message(100, "first"),
                slowmode,
            })
            .unwrap();
        tokio::time::sleep(Duration::from_secs(10)).await;
        conversation
            .cast(ConversationMsg::Inbound {
                message: bot_message(200, "second"),
                slowmode,
            })
            .unwrap();
        tokio::time::sleep_until(start + Duration::from_millis(16_900)).await;
        assert!(outbox.printed().is_empty(), "answered before the bot delay");
        while outbox.printed().is_empty() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let sent = outbox.printed();
        assert_eq!(sent.len(), 1, "one answer for both messages");
        assert_eq!(sent[0].reply_to, Some(200), "the answer references the latest message");
        assert!(
            sent[0].content.contains("Bea: first / Bea: second"),
            "{}",
            sent[0].content
        );
        assert_eq!(sent[0].footer, "acl:2 • Sent by a troupe agent");
        conversation.stop(None);
    }
}
