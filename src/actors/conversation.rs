//! A conversation: one per live conversation key of an agent, a plain struct its agent actor
//! owns (not an actor: an idle conversation holds no task, channel or timer beyond its idle
//! check, and none of its turns: each turn reads them from the store). Answers its messages in
//! message-ID order, one turn at a time ([`super::turn`]), without making its agent wait: the
//! turn runs in a spawned task whose outcome comes back to the agent as an event tagged with
//! the conversation's key and generation
//! (`AgentMsg::Conversation`); an event of an incarnation since passivated or replaced is
//! ignored.
//!
//! Nothing it is given is dropped. Each message ends answered, or given up with a visible
//! notice, and only then is it reported `Finished` to the agent (whose cursors move on):
//! - **A turn failed and retrying can help** (model outage, throttling, open breaker, full
//!   pool, Discord errors, store errors): the messages go back to the head of the queue, are
//!   recorded pending in the store (first failure's time, attempts, last error), and are tried
//!   again after a back-off with jitter, or after the provider's `retry-after`, however long.
//!   Once they have been pending for `[delivery] give_up_after_secs` they are given up.
//! - **Retrying cannot help** (the key or the prompt refused, Discord refusing for good): given
//!   up at once. A give-up sends the agent's `failure_notice` (or nothing when it is empty).
//! - **Queue full**: at most `queue_limit` messages wait in memory; more are set aside in the
//!   store and read back when there is room (given up with the `busy_notice` if they waited
//!   `give_up_after_secs`).
//! - **Panic in a turn**: its messages are handed back to be given up by the replacement, the
//!   waiting ones to be answered by it; the agent drops the conversation and starts a new one
//!   (or quarantines the key after repeated failures).
//! - **Idle**: after `idle` with nothing to do, the agent passivates it (drops its state; its
//!   memory is in the store). Messages are handed over in calls, never in flight, so nothing can
//!   reach a passivated conversation.
//! - **Stop**: an in-flight turn gets `shutdown_grace`; whatever still waits is answered after
//!   the restart (the agent's cursors were held back by it).

mod controls;

pub use self::controls::Control;

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::time::Duration;

use futures::FutureExt;
use ractor::ActorRef;
use tokio::task::JoinHandle;

use super::agent::AgentMsg;
use super::turn::{self, Cause, Pacing, TurnFailure, TurnKind, TurnOutcome};
use super::{GaugeGuard, SharedSpec};
use crate::config::{DiscordSettings, DryRun};
use crate::discord::Outbox;
use crate::memory::MemoryTurn;
use crate::message::Inbound;
use crate::ops::telemetry::{self, GiveUpCause, RetryCause};
use crate::routing::ConversationKey;
use crate::store::PendingRecord;

/// What a conversation is started with.
#[derive(Debug)]
pub struct ConversationArgs {
    /// The agent.
    pub spec: SharedSpec,
    /// Which conversation.
    pub key: ConversationKey,
    /// Where replies go.
    pub outbox: Outbox,
    /// The agent, which holds this conversation: finished messages are reported to it, and the
    /// conversation's own events (timers, a turn's end) go through its mailbox.
    pub agent: ActorRef<AgentMsg>,
    /// Which incarnation of the key this is (an event of an earlier one is ignored).
    pub generation: u64,
    /// The agent's own user IDs (bot user, webhook): never pinged by its replies.
    pub self_ids: Vec<u64>,
}

/// What the agent hands a conversation.
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
    /// Messages to give up on (their turn panicked in the conversation this one replaces).
    GiveUp {
        /// The messages.
        messages: Vec<Inbound>,
        /// Why, for metrics.
        cause: GiveUpCause,
    },
    /// A slash command acting on the conversation, applied between turns.
    Control(Control),
}

/// A conversation's own events, sent through its agent's mailbox
/// (`AgentMsg::Conversation`) with its generation.
#[derive(Debug)]
pub enum ConversationEvent {
    /// Start the next turn if one is due.
    Start,
    /// A turn finished (its messages answered or given up, or a failure to handle).
    TurnDone(TurnOutcome),
    /// A turn panicked: the conversation is replaced by a clean one.
    TurnPanicked(String),
    /// Passivate if nothing has happened for the idle time (else wait out the rest).
    IdleCheck,
}

/// What the agent does after a conversation's event.
#[derive(Debug)]
pub enum Handled {
    /// Nothing: the conversation goes on.
    Going,
    /// It has been idle for the idle time with nothing owed: passivate it.
    Idle,
    /// Its turn panicked: replace it.
    Failed(Failed),
}

/// A conversation whose turn panicked, and the messages it hands back.
#[derive(Debug)]
pub struct Failed {
    /// What happened.
    pub why: String,
    /// Its waiting messages, to be answered by its replacement.
    pub waiting: Vec<Inbound>,
    /// The messages of the turn that panicked (and give-ups already decided), to be given up
    /// with the notice by its replacement: they may be the cause.
    pub give_up: Vec<Inbound>,
}

/// A turn in flight.
#[derive(Debug)]
struct Turn {
    task: JoinHandle<()>,
    batch: Vec<Inbound>,
    kind: TurnKind,
    /// For a give-up turn, the cause counted when it is done.
    cause: GiveUpCause,
}

/// The head of the queue failed: when it may be tried again, and what is known of it.
#[derive(Debug, Clone, Copy)]
struct Retry {
    attempts: u32,
    not_before: tokio::time::Instant,
    /// The message whose reply was partly delivered, and how many parts.
    parts_done: Option<(u64, usize)>,
    /// The newest message of the batch that failed: the retry answers exactly that batch, so a
    /// failed message is answered by a reply to itself, not folded into a newer one's.
    upto: u64,
}

/// Messages to give up on, with the notice and the cause counted.
#[derive(Debug)]
struct GiveUp {
    batch: Vec<Inbound>,
    notice: String,
    cause: GiveUpCause,
}

/// A conversation's state.
#[derive(Debug)]
pub struct ConversationState {
    args: ConversationArgs,
    pending: BTreeMap<u64, Inbound>,
    turn: Option<Turn>,
    start_scheduled: bool,
    /// The turns remembered, between turns only in a dry run (which writes nothing to the
    /// store). A real run keeps them in the store alone: each turn and command reads them at
    /// its start ([`take_memory`]), and the turn saves them (durably, before its reply is
    /// posted) and hands them back only for this to be dropped, so a live conversation between
    /// turns holds none of its text (issue 18: memory per live conversation).
    memory: Option<Vec<MemoryTurn>>,
    /// When the conversation last had something to do.
    last_activity: tokio::time::Instant,
    /// An idle check is scheduled (one at a time, however many messages arrive).
    idle_armed: bool,
    slowmode: std::collections::HashMap<u64, Duration>,
    /// Backlog messages wait: the next turn starts at once and answers everything together.
    backlog_waiting: bool,
    retry: Option<Retry>,
    give_ups: VecDeque<GiveUp>,
    /// Messages are set aside in the store, waiting for room.
    spilled: bool,
    /// Messages that have a pending record in the store (removed when they finish).
    recorded: HashSet<u64>,
    /// Commands waiting for the turn in flight to end.
    controls: Vec<Control>,
    _gauge: GaugeGuard,
}

impl ConversationState {
    /// Starts a conversation (one incarnation of its key): reads what it owes from before (its
    /// memory is read by each turn), and schedules its first turn and its idle check.
    pub fn start(args: ConversationArgs) -> Self {
        let spilled = args.spec.store.pending_count(&args.spec.config.name, args.key) > 0;
        let mut state = ConversationState {
            _gauge: GaugeGuard::conversation(&args.spec.gauges),
            args,
            pending: BTreeMap::new(),
            turn: None,
            start_scheduled: false,
            memory: None,
            last_activity: tokio::time::Instant::now(),
            idle_armed: false,
            slowmode: std::collections::HashMap::new(),
            backlog_waiting: false,
            retry: None,
            give_ups: VecDeque::new(),
            spilled,
            recorded: HashSet::new(),
            controls: Vec::new(),
        };
        // Messages owed from before (set aside for room, deferred, or from before a restart).
        if refill(&mut state) > 0 {
            state.backlog_waiting = true;
        }
        arm_idle_timer(&mut state);
        // What it owes from before starts at once, before anything handed to it next (which is
        // answered in its own turn), as when this was an actor whose first message was `Start`.
        if state.backlog_waiting || !state.give_ups.is_empty() {
            start_turn(&mut state);
        }
        schedule_start(&mut state);
        state
    }

    /// Which incarnation this is: events carrying another generation are not for it.
    pub fn generation(&self) -> u64 {
        self.args.generation
    }

    /// Where this conversation's own events go.
    fn mailbox(&self) -> Mailbox {
        Mailbox {
            agent: self.args.agent.clone(),
            key: self.args.key,
            generation: self.args.generation,
        }
    }

    /// Takes what the agent hands it: a message to answer, missed messages, messages to give
    /// up on, a command.
    // Why this is long: one arm per message kind, each a few lines that call the named steps below.
    pub async fn receive(&mut self, msg: ConversationMsg) {
        let state = self;
        match msg {
            ConversationMsg::Inbound { message, slowmode } => {
                state.slowmode.insert(message.channel_id, slowmode);
                if in_hand(state, message.id) {
                    // Already being answered (read back from the store, then replayed).
                } else if state.pending.len() >= state.args.spec.conversations.queue_limit {
                    set_aside(state, message);
                } else {
                    state.pending.insert(message.id, message);
                }
                arm_idle_timer(state);
                schedule_start(state);
            }
            ConversationMsg::Backlog { messages, slowmode } => {
                for m in messages {
                    state.slowmode.insert(m.channel_id, slowmode);
                    // A message read back from the store at start is also replayed: the turn
                    // or give-up that holds it finishes it; queued again, it would be answered
                    // a second time (or, worse, taken for answered by that turn's reply).
                    if !in_hand(state, m.id) {
                        state.pending.insert(m.id, m);
                    }
                }
                state.backlog_waiting = true;
                arm_idle_timer(state);
                schedule_start(state);
            }
            ConversationMsg::GiveUp { messages, cause } => {
                let notice = state.args.spec.config.failure_notice.clone();
                state.give_ups.push_back(GiveUp {
                    batch: messages,
                    notice,
                    cause,
                });
                schedule_start(state);
            }
            ConversationMsg::Control(control) => {
                state.controls.push(control);
                if state.turn.is_none() {
                    controls::apply(state).await;
                }
                arm_idle_timer(state);
            }
        }
    }

    /// Handles one of its own events (a timer, a turn's end), for this incarnation.
    pub async fn on_event(&mut self, event: ConversationEvent) -> Handled {
        let state = self;
        match event {
            ConversationEvent::Start => {
                state.start_scheduled = false;
                start_turn(state);
            }
            ConversationEvent::TurnDone(outcome) => {
                let Some(turn) = state.turn.take() else {
                    return Handled::Going;
                };
                keep_memory(state, outcome.memory);
                match outcome.result {
                    Ok(()) => finished(state, &turn),
                    Err(failure) => turn_failed(state, turn, failure, outcome.parts_done),
                }
                controls::apply(state).await;
                refill(state);
                arm_idle_timer(state);
                schedule_start(state);
            }
            ConversationEvent::TurnPanicked(why) => {
                let turn = state.turn.take();
                // The messages whose turn panicked are given up (with the notice) by the
                // replacement, not retried: they may be the cause. The waiting ones are handed
                // back to be answered by it.
                let mut give_up = turn.map(|t| t.batch).unwrap_or_default();
                // Give-ups already decided are handed over too.
                give_up.extend(state.give_ups.drain(..).flat_map(|g| g.batch));
                let waiting: Vec<Inbound> = std::mem::take(&mut state.pending).into_values().collect();
                return Handled::Failed(Failed {
                    why: format!("turn panicked: {why}"),
                    waiting,
                    give_up,
                });
            }
            ConversationEvent::IdleCheck => {
                state.idle_armed = false;
                let idle_for = state.last_activity.elapsed();
                let idle = state.args.spec.conversations.idle;
                if !is_idle(state) {
                    schedule_idle_check(state, idle);
                } else if idle_for < idle {
                    schedule_idle_check(state, idle - idle_for);
                } else {
                    // Nothing is on its way to it: everything the agent hands over is handed
                    // in a call, not a message.
                    return Handled::Idle;
                }
            }
        }
        Handled::Going
    }

    /// Passivates an idle conversation: nothing is in flight, and whatever it owes (nothing,
    /// when idle) is kept pending in the store before its state is dropped.
    pub fn passivate(mut self) {
        keep_owed(&mut self);
    }

    /// Stops the conversation (shutdown, quarantine): an in-flight turn gets `shutdown_grace`
    /// (it saves its own memory before delivering); whatever still waits is kept pending in the
    /// store and answered after the restart (the agent's cursors were held back by it).
    pub async fn stop(mut self) {
        if let Some(turn) = self.turn.take() {
            let grace = self.args.spec.conversations.shutdown_grace;
            if tokio::time::timeout(grace, turn.task).await.is_err() {
                tracing::warn!(agent = %self.args.spec.config.name, key = ?self.args.key, "in-flight turn abandoned at shutdown; it is answered after the restart");
            }
        }
        keep_owed(&mut self);
    }
}

/// Where a conversation's events go: its agent, tagged with its key and generation.
#[derive(Debug, Clone)]
struct Mailbox {
    agent: ActorRef<AgentMsg>,
    key: ConversationKey,
    generation: u64,
}

impl Mailbox {
    fn message(&self, event: ConversationEvent) -> AgentMsg {
        AgentMsg::Conversation {
            key: self.key,
            generation: self.generation,
            event: Box::new(event),
        }
    }

    fn cast(&self, event: ConversationEvent) {
        // The agent is stopping: the event does not matter any more.
        let _ = self.agent.cast(self.message(event));
    }

    fn send_after(&self, after: Duration, event: fn() -> ConversationEvent) {
        let (key, generation) = (self.key, self.generation);
        self.agent.send_after(after, move || AgentMsg::Conversation {
            key,
            generation,
            event: Box::new(event()),
        });
    }
}

/// Messages still owed an answer when the actor stops (shutdown, quarantine) are kept pending in
/// the store: the conversation that next starts for this key (after a restart, or when the
/// quarantine ends) reads them back. The replay would find them too; they are the same
/// messages, answered once.
fn keep_owed(state: &mut ConversationState) {
    let (spec, key) = (&state.args.spec, state.args.key);
    let name = &spec.config.name;
    let owed: Vec<&Inbound> = state
        .pending
        .values()
        .chain(state.give_ups.iter().flat_map(|g| g.batch.iter()))
        .filter(|m| !state.recorded.contains(&m.id))
        .collect();
    if owed.is_empty() || spec.run.dry_run != DryRun::None {
        return;
    }
    tracing::info!(agent = %name, key = ?key, owed = owed.len(), "messages still owed an answer at stop; kept pending");
    for m in owed {
        let record = PendingRecord::new(
            m.clone(),
            turn::now_ms(),
            "stopped",
            "conversation stopped before answering",
        );
        if let Err(e) = spec.store.save_pending(name, key, &record) {
            tracing::warn!(agent = %name, error = %e, "cannot keep a message pending (the replay after a restart still finds it)");
        }
    }
}

/// Nothing to do and nothing owed.
fn is_idle(state: &ConversationState) -> bool {
    state.turn.is_none() && state.pending.is_empty() && state.give_ups.is_empty() && !state.spilled
}

/// The conversation's memory for a turn or a command: held only in a dry run, otherwise read
/// from the store (where the last turn or command saved it, durably, before it ended).
fn take_memory(state: &mut ConversationState) -> Vec<MemoryTurn> {
    state.memory.take().unwrap_or_else(|| load_memory(&state.args))
}

/// Memory as a turn or a command left it: dropped (it is in the store) unless this is a dry
/// run, which saves nothing.
fn keep_memory(state: &mut ConversationState, mut memory: Vec<MemoryTurn>) {
    state.memory = if state.args.spec.run.dry_run == DryRun::None {
        None
    } else {
        // The turn's copy grew by doubling; keep only what it holds.
        memory.shrink_to_fit();
        Some(memory)
    };
}

/// The conversation's memory in the store; an unreadable record is set aside (kept in the store
/// under `bad/`) and the conversation goes on with fresh memory, rather than failing its agent.
fn load_memory(args: &ConversationArgs) -> Vec<MemoryTurn> {
    let (store, name) = (&args.spec.store, &args.spec.config.name);
    match store.memory(name, args.key) {
        Ok(memory) => memory,
        Err(e) => {
            let kept = store.set_aside_memory(name, args.key);
            tracing::error!(agent = %name, key = ?args.key, error = %e, kept_under = ?kept, "conversation memory cannot be read; set aside, answering with fresh memory");
            Vec::new()
        }
    }
}

/// A message that finds the queue full waits in the store until there is room. If the store
/// cannot take it, it waits in memory: a full queue never loses a message.
fn set_aside(state: &mut ConversationState, m: Inbound) {
    let (spec, key) = (&state.args.spec, state.args.key);
    let name = &spec.config.name;
    if spec.run.dry_run != DryRun::None {
        state.pending.insert(m.id, m);
        return;
    }
    let mut record = PendingRecord::new(m.clone(), turn::now_ms(), "room", "conversation queue full");
    record.waiting_for_room = true;
    match spec.store.save_pending(name, key, &record) {
        Ok(()) => {
            tracing::warn!(agent = %name, key = ?key, message_id = m.id, "conversation queue full; message set aside until there is room");
            telemetry::message_retry(name, RetryCause::Queue);
            state.recorded.insert(m.id);
            state.spilled = true;
        }
        Err(e) => {
            tracing::error!(agent = %name, key = ?key, message_id = m.id, error = %e, "conversation queue full and the store refused the message; keeping it in memory");
            state.pending.insert(m.id, m);
        }
    }
}

/// Reads messages set aside in the store back into the queue while there is room; those that
/// waited past the give-up time are given up instead. Returns how many were read.
fn refill(state: &mut ConversationState) -> usize {
    let limit = state.args.spec.conversations.queue_limit;
    if !state.spilled || state.pending.len() >= limit {
        return 0;
    }
    let (spec, key) = (state.args.spec.clone(), state.args.key);
    let name = &spec.config.name;
    let room = limit - state.pending.len();
    let in_turn: Vec<u64> = state.turn.iter().flat_map(|t| t.batch.iter().map(|m| m.id)).collect();
    let giving_up: Vec<u64> = state
        .give_ups
        .iter()
        .flat_map(|g| g.batch.iter().map(|m| m.id))
        .collect();
    let pending = &state.pending;
    let records = match spec.store.pending_of(name, key, room, |id| {
        pending.contains_key(&id) || in_turn.contains(&id) || giving_up.contains(&id)
    }) {
        Ok(records) => records,
        Err(e) => {
            tracing::error!(agent = %name, key = ?key, error = %e, "cannot read pending messages; trying again after the next turn");
            return 0;
        }
    };
    if records.len() < room {
        state.spilled = false;
    }
    let now = turn::now_ms();
    let mut read = 0;
    for r in records {
        let id = r.message.id;
        if spec.store.answered(name, id).unwrap_or(false) {
            // Answered, but stopped before its record was removed.
            let _ = spec.store.remove_pending(name, key, &[id]);
            continue;
        }
        state.recorded.insert(id);
        // Only a message whose answer has failed runs the give-up clock: waiting for room, or
        // for troupe to start again, does not count.
        if r.attempts > 0 && now.saturating_sub(r.since_ms) >= spec.delivery.give_up_after.as_millis() as u64 {
            state.give_ups.push_back(GiveUp {
                batch: vec![r.message],
                notice: spec.config.failure_notice.clone(),
                cause: GiveUpCause::Age,
            });
        } else {
            state.pending.insert(id, r.message);
            read += 1;
        }
    }
    read
}

/// Every message of the turn is finished: tell the agent, forget their pending records.
fn finished(state: &mut ConversationState, turn: &Turn) {
    let (spec, key) = (&state.args.spec, state.args.key);
    let name = &spec.config.name;
    let ids: Vec<u64> = turn.batch.iter().map(|m| m.id).collect();
    let recorded: Vec<u64> = ids.iter().copied().filter(|id| state.recorded.remove(id)).collect();
    if !recorded.is_empty() {
        if let Err(e) = spec.store.remove_pending(name, key, &recorded) {
            tracing::warn!(agent = %name, error = %e, "cannot remove pending records (they are recognised as answered later)");
        }
    }
    if let TurnKind::GiveUp { .. } = turn.kind {
        tracing::warn!(agent = %name, key = ?key, messages = ?ids, cause = turn.cause.label(), "gave up on answering; notice sent");
        telemetry::message_give_up(name, turn.cause);
    }
    if state.retry.is_some_and(|_| state.pending.is_empty()) || matches!(turn.kind, TurnKind::Answer) {
        state.retry = None;
    }
    tracing::debug!(agent = %name, key = ?key, messages = ?ids, "finished");
    let done = turn.batch.iter().map(|m| (m.channel_id, m.id)).collect();
    let _ = state.args.agent.cast(AgentMsg::Finished(done));
}

/// A turn failed: give up at once when retrying cannot help, or when the messages have been
/// pending for the give-up time; otherwise put them back at the head of the queue, record them
/// pending, and try again after a back-off.
// Why this is long: the whole failure decision in one place (chain, give-up retry, permanent, age, deferral), in the order it is taken.
fn turn_failed(state: &mut ConversationState, turn: Turn, failure: TurnFailure, parts_done: usize) {
    let spec = state.args.spec.clone();
    let (name, key) = (&spec.config.name, state.args.key);
    if failure.cause == Cause::Chain {
        // Nothing to send and nothing owed: the chain rules forbid a reply.
        let done = Turn {
            kind: TurnKind::Answer,
            ..turn
        };
        finished(state, &done);
        return;
    }
    if failure.cause == Cause::Budget {
        // Over budget: told once per window, then silence. Finished either way, never pending.
        tracing::info!(agent = %name, key = ?key, messages = ?turn.batch.iter().map(|m| m.id).collect::<Vec<_>>(), error = %failure.detail, "not answered: token budget spent");
        match turn::budget_notice(&spec, &turn.batch) {
            Some(notice) => state.give_ups.push_back(GiveUp {
                batch: turn.batch,
                notice,
                cause: GiveUpCause::Budget,
            }),
            None => {
                let done = Turn {
                    kind: TurnKind::Answer,
                    ..turn
                };
                finished(state, &done);
            }
        }
        return;
    }
    if let TurnKind::GiveUp { notice } = &turn.kind {
        // Only a transient failure to send the notice comes back here: send it again later.
        tracing::warn!(agent = %name, key = ?key, error = %failure.detail, "give-up notice not delivered; trying again");
        let attempts = state.retry.map_or(0, |r| r.attempts) + 1;
        schedule_retry(state, &failure, 0, None, attempts);
        state.give_ups.push_front(GiveUp {
            batch: turn.batch,
            notice: notice.clone(),
            cause: turn.cause,
        });
        return;
    }
    if failure.permanent {
        tracing::warn!(agent = %name, key = ?key, cause = failure.cause.label(), error = %failure.detail, "answer failed and retrying cannot help; giving up");
        state.retry = None;
        state.give_ups.push_back(GiveUp {
            batch: turn.batch,
            notice: spec.config.failure_notice.clone(),
            cause: failure.cause.give_up_cause(),
        });
        return;
    }
    // Record the failure on each message; the earliest first failure starts the give-up clock.
    let now = turn::now_ms();
    let mut since = now;
    for m in &turn.batch {
        let mut record = spec
            .store
            .pending_record(name, key, m.id)
            .ok()
            .flatten()
            .unwrap_or_else(|| PendingRecord::new(m.clone(), now, "", ""));
        if record.attempts == 0 {
            // The first failure starts the give-up clock (not the wait for room or a restart).
            record.since_ms = now;
        }
        record.attempts += 1;
        record.cause = failure.cause.label().to_string();
        record.last_error = failure.detail.clone();
        record.waiting_for_room = false;
        since = since.min(record.since_ms);
        if spec.run.dry_run == DryRun::None {
            match spec.store.save_pending(name, key, &record) {
                Ok(()) => {
                    state.recorded.insert(m.id);
                }
                Err(e) => {
                    tracing::warn!(agent = %name, error = %e, "cannot record a pending message (it is still retried)")
                }
            }
        }
        telemetry::message_retry(name, failure.cause.retry_cause());
    }
    if now.saturating_sub(since) >= spec.delivery.give_up_after.as_millis() as u64 {
        tracing::warn!(agent = %name, key = ?key, cause = failure.cause.label(), error = %failure.detail, pending_secs = (now - since) / 1000, "answer still failing after the give-up time; giving up");
        state.retry = None;
        // Still refused a worker after all this time: troupe is too busy, not broken.
        let (notice, cause) = if failure.cause == Cause::Queue {
            (spec.config.busy_notice.clone(), GiveUpCause::Shed)
        } else {
            (spec.config.failure_notice.clone(), GiveUpCause::Age)
        };
        state.give_ups.push_back(GiveUp {
            batch: turn.batch,
            notice,
            cause,
        });
        return;
    }
    let latest = turn.batch.last().map(|m| m.id).unwrap_or_default();
    let attempts = state.retry.map_or(0, |r| r.attempts) + 1;
    let delay = schedule_retry(state, &failure, latest, Some((latest, parts_done)), attempts);
    let ids: Vec<u64> = turn.batch.iter().map(|m| m.id).collect();
    tracing::warn!(agent = %name, key = ?key, messages = ?ids, cause = failure.cause.label(), error = %failure.detail, attempt = attempts, retry_in_ms = delay.as_millis() as u64, "answer deferred; it will be tried again");
    for m in turn.batch {
        state.pending.insert(m.id, m);
    }
}

/// Sets when the head of the queue may be tried again; returns the wait.
fn schedule_retry(
    state: &mut ConversationState,
    failure: &TurnFailure,
    upto: u64,
    parts_done: Option<(u64, usize)>,
    attempts: u32,
) -> Duration {
    let d = &state.args.spec.delivery;
    let delay = crate::retry::deferral(
        d.retry_initial,
        d.retry_max,
        attempts,
        failure.retry_after,
        rand::random::<f64>(),
    );
    state.retry = Some(Retry {
        attempts,
        not_before: tokio::time::Instant::now() + delay,
        parts_done: parts_done.filter(|(_, n)| *n > 0),
        upto,
    });
    delay
}

/// Records activity; the idle check, if none is scheduled yet, comes after the idle time.
fn arm_idle_timer(state: &mut ConversationState) {
    state.last_activity = tokio::time::Instant::now();
    let idle = state.args.spec.conversations.idle;
    schedule_idle_check(state, idle);
}

fn schedule_idle_check(state: &mut ConversationState, after: Duration) {
    if !state.idle_armed {
        state.idle_armed = true;
        // Never sooner than a tick, so a check cannot spin.
        state
            .mailbox()
            .send_after(after.max(Duration::from_millis(10)), || ConversationEvent::IdleCheck);
    }
}

/// When the next turn may start: after the reorder window (`[conversations] reorder_ms`, 0 by
/// default: live messages arrive in gateway order, see `discord::ordered`) for a human's
/// message; after the bot delay (plus jitter) when the oldest waiting
/// message is a bot's, so humans can step in and bot exchanges stay readable. `jitter` is a
/// sample in `[0, 1)`.
pub fn start_delay(oldest_is_bot: bool, settings: &DiscordSettings, reorder: Duration, jitter: f64) -> Duration {
    if oldest_is_bot {
        settings.bot_delay + settings.bot_delay_jitter.mul_f64(jitter.clamp(0.0, 1.0))
    } else {
        reorder
    }
}

fn schedule_start(state: &mut ConversationState) {
    if state.turn.is_some() || state.start_scheduled {
        return;
    }
    let delay = if let Some(retry) = state.retry {
        if state.pending.is_empty() && state.give_ups.is_empty() {
            return;
        }
        retry.not_before.saturating_duration_since(tokio::time::Instant::now())
    } else if !state.give_ups.is_empty() || state.backlog_waiting {
        // Give-ups and missed messages are old already: now.
        Duration::ZERO
    } else {
        let Some(oldest) = state.pending.values().next() else {
            return;
        };
        let spec = &state.args.spec;
        start_delay(
            oldest.author_is_bot,
            &spec.discord,
            spec.conversations.reorder,
            rand::random::<f64>(),
        )
    };
    state.start_scheduled = true;
    if delay.is_zero() {
        state.mailbox().cast(ConversationEvent::Start);
    } else {
        state.mailbox().send_after(delay, || ConversationEvent::Start);
    }
}

/// Starts the next turn: a give-up first, then the waiting messages. Missed, retried and bot
/// messages are answered together; a human's live message on its own.
fn start_turn(state: &mut ConversationState) {
    if state.turn.is_some() {
        return;
    }
    if state.retry.is_some_and(|r| r.not_before > tokio::time::Instant::now()) {
        schedule_start(state);
        return;
    }
    if let Some(give_up) = state.give_ups.pop_front() {
        let kind = TurnKind::GiveUp { notice: give_up.notice };
        let memory = take_memory(state);
        spawn_turn(state, memory, give_up.batch, kind, give_up.cause);
        return;
    }
    let Some(oldest) = state.pending.values().next() else {
        return;
    };
    let (oldest_id, oldest_is_bot) = (oldest.id, oldest.author_is_bot);
    let memory = take_memory(state);
    let retry_upto = state.retry.map(|r| r.upto).filter(|upto| oldest_id <= *upto);
    let messages: Vec<Inbound> = if let Some(upto) = retry_upto {
        // Exactly the batch that failed, again; newer messages wait for their own turn.
        let newer = state.pending.split_off(&(upto + 1));
        let failed = std::mem::replace(&mut state.pending, newer);
        cut_at_remembered(state, &memory, failed.into_values().collect())
    } else if state.backlog_waiting || oldest_is_bot {
        state.backlog_waiting = false;
        let all = std::mem::take(&mut state.pending).into_values().collect();
        cut_at_remembered(state, &memory, all)
    } else {
        let first = state.pending.pop_first().map(|(_, m)| m).into_iter().collect();
        if state.pending.is_empty() {
            // An emptied BTreeMap keeps its root node (~2 KB of `Inbound` slots): release it.
            state.pending = BTreeMap::new();
        }
        first
    };
    spawn_turn(state, memory, messages, TurnKind::Answer, GiveUpCause::Llm);
}

/// A reply remembered but not confirmed delivered answers the messages the model saw with it:
/// deliver it on its own first, with those messages, and answer the rest in the next turn, so no
/// message is answered twice or left out.
/// Likewise a reply streamed in part before a crash or a failure ([`super::streaming`]): it is
/// finished for its own message, so its messages are not answered again beside it.
fn cut_at_remembered(state: &mut ConversationState, memory: &[MemoryTurn], batch: Vec<Inbound>) -> Vec<Inbound> {
    let (now, mut later) = split_at_remembered(memory, batch);
    let spec = &state.args.spec;
    let streamed = |id: u64| {
        spec.store
            .stream_parts(&spec.config.name, id)
            .is_ok_and(|parts| !parts.is_empty())
    };
    let (now, rest) = split_at_streamed(now, streamed);
    later.extend(rest);
    if !later.is_empty() {
        state.backlog_waiting = true;
    }
    for m in later {
        state.pending.insert(m.id, m);
    }
    now
}

/// Splits a batch (oldest first) after its first message that has a partly streamed reply: that
/// reply is finished first, answering the messages up to it; the rest are answered next.
pub fn split_at_streamed(mut batch: Vec<Inbound>, streamed: impl Fn(u64) -> bool) -> (Vec<Inbound>, Vec<Inbound>) {
    match batch.iter().position(|m| streamed(m.id)) {
        Some(i) => {
            let later = batch.split_off(i + 1);
            (batch, later)
        }
        None => (batch, Vec::new()),
    }
}

/// Splits a batch at the first message memory holds a reply to. That reply answers the batch's
/// messages up to it which memory holds too (the model saw them with it); the rest of the batch,
/// and any older message the model never saw (replayed after a restart, say), are answered
/// next. Without a remembered reply the batch is answered whole.
pub fn split_at_remembered(memory: &[MemoryTurn], batch: Vec<Inbound>) -> (Vec<Inbound>, Vec<Inbound>) {
    let Some(cut) = batch.iter().position(|m| remembers_reply(memory, m.id)) else {
        return (batch, Vec::new());
    };
    let seen = |id: u64| memory.iter().any(|t| !t.assistant && t.message_id == id);
    let mut now = Vec::new();
    let mut later = Vec::new();
    for (i, m) in batch.into_iter().enumerate() {
        if i == cut || (i < cut && seen(m.id)) {
            now.push(m);
        } else {
            later.push(m);
        }
    }
    (now, later)
}

/// Whether a message is already held by the turn in flight or a give-up waiting to be sent.
fn in_hand(state: &ConversationState, id: u64) -> bool {
    state.turn.as_ref().is_some_and(|t| t.batch.iter().any(|m| m.id == id))
        || state.give_ups.iter().any(|g| g.batch.iter().any(|m| m.id == id))
}

/// Runs a turn for `batch` with the conversation's `memory` (which the turn hands back at its
/// end, as saved).
fn spawn_turn(
    state: &mut ConversationState,
    memory: Vec<MemoryTurn>,
    batch: Vec<Inbound>,
    kind: TurnKind,
    cause: GiveUpCause,
) {
    let Some(latest) = batch.last() else {
        keep_memory(state, memory);
        return;
    };
    let remembered = remembers_reply(&memory, latest.id);
    let pacing = Pacing {
        slowmode: state.slowmode.get(&latest.channel_id).copied().unwrap_or_default(),
        // Nobody watches a reply to missed or retried messages being typed.
        typing: kind == TurnKind::Answer && !state.backlog_waiting && state.retry.is_none() && batch.len() == 1,
        first_part: state
            .retry
            .and_then(|r| r.parts_done)
            .filter(|(id, _)| *id == latest.id)
            .map_or(0, |(_, n)| n),
        // A remembered reply may have been posted before troupe stopped or lost the answer.
        check_existing: remembered || state.retry.is_some(),
        // Live answers to people stream; missed messages and agent chains get whole replies
        // (another agent never answers half a reply).
        stream: state.args.spec.config.stream
            && kind == TurnKind::Answer
            && !state.backlog_waiting
            && batch.iter().all(|m| !m.author_is_bot && m.webhook_id.is_none()),
    };
    let spec = state.args.spec.clone();
    let outbox = state.args.outbox.clone();
    let key = state.args.key;
    let me = state.mailbox();
    let self_ids = state.args.self_ids.clone();
    let turn_batch = batch.clone();
    let turn_kind = kind.clone();
    // The turn's end, or its panic, becomes an event, so a panic in the turn reaches the agent.
    // One task, not a turn task and a watcher awaiting it: a turn per reply is the hot path.
    let task = tokio::spawn(async move {
        let turn = turn::run(&spec, &outbox, key, memory, &turn_batch, &turn_kind, pacing, &self_ids);
        let event = match std::panic::AssertUnwindSafe(turn).catch_unwind().await {
            Ok(outcome) => ConversationEvent::TurnDone(outcome),
            Err(panic) => ConversationEvent::TurnPanicked(panic_text(panic)),
        };
        me.cast(event);
    });
    state.turn = Some(Turn {
        task,
        batch,
        kind,
        cause,
    });
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acl::ChainLength;
    use ractor::{Actor, ActorProcessingErr};

    /// What one live conversation holds inline, in bytes (issue 18: memory per conversation).
    /// The state lives in its agent's map for the conversation's whole life; events are boxed
    /// into the agent's messages only while queued.
    #[test]
    fn a_conversation_holds_little_inline() {
        let sizes = [
            ("ConversationState", std::mem::size_of::<ConversationState>()),
            ("ConversationMsg", std::mem::size_of::<ConversationMsg>()),
            ("ConversationEvent", std::mem::size_of::<ConversationEvent>()),
            ("Inbound", std::mem::size_of::<Inbound>()),
            ("MemoryTurn", std::mem::size_of::<MemoryTurn>()),
        ];
        for (name, size) in sizes {
            println!("size_of::<{name}>() = {size}");
        }
        assert!(std::mem::size_of::<ConversationState>() <= 512, "{sizes:?}");
        assert!(std::mem::size_of::<MemoryTurn>() <= 128, "{sizes:?}");
    }

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

    type Slot = std::sync::Arc<tokio::sync::Mutex<Option<ConversationState>>>;

    /// An agent stand-in hosting one conversation: it handles the conversation's events; the
    /// test hands it messages through the shared slot.
    struct Host(Slot);

    impl Actor for Host {
        type Msg = AgentMsg;
        type State = ();
        type Arguments = ();

        async fn pre_start(&self, _: ActorRef<AgentMsg>, _: ()) -> Result<(), ActorProcessingErr> {
            Ok(())
        }

        async fn handle(&self, _: ActorRef<AgentMsg>, msg: AgentMsg, _: &mut ()) -> Result<(), ActorProcessingErr> {
            if let AgentMsg::Conversation { generation, event, .. } = msg {
                let mut slot = self.0.lock().await;
                if let Some(c) = slot.as_mut().filter(|c| c.generation() == generation) {
                    assert!(matches!(c.on_event(*event).await, Handled::Going | Handled::Idle));
                }
            }
            Ok(())
        }
    }

    /// Starts a conversation of `key` hosted by a [`Host`]; returns its slot.
    async fn hosted(spec: SharedSpec, key: ConversationKey, outbox: &Outbox) -> Slot {
        let slot = Slot::default();
        let (agent, _) = Actor::spawn(None, Host(slot.clone()), ()).await.unwrap();
        let args = ConversationArgs {
            spec,
            key,
            outbox: outbox.clone(),
            agent,
            generation: 1,
            self_ids: vec![1],
        };
        // Held while it starts: the host handles its first events only once it is in the slot
        // (as an agent handles them only after it took the conversation into its registry).
        let mut hosted = slot.lock().await;
        *hosted = Some(ConversationState::start(args));
        drop(hosted);
        slot
    }

    async fn hand(slot: &Slot, msg: ConversationMsg) {
        slot.lock().await.as_mut().expect("a conversation").receive(msg).await;
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
            attachments: Vec::new(),
        }
    }

    /// Ada's spec on an echo backend, with `extra` TOML before the backend, on a store in `dir`.
    fn spec(dir: &std::path::Path, extra: &str) -> SharedSpec {
        let text = format!("{extra}\n[backends.b]\nprovider = \"echo\"\n[[agents]]\nname = \"Ada\"\nbackend = \"b\"\n");
        let config = crate::config::Config::parse("test.toml", &text).unwrap();
        std::sync::Arc::new(super::super::AgentSpec {
            config: config.agents[0].clone(),
            backend: crate::llm::Backend::from_config(&config.backends["b"]).unwrap(),
            token: crate::secret::Secret::new("unused"),
            route: Default::default(),
            pool: crate::llm::pool::Pool::new(1, 10),
            store: crate::store::Store::open(dir).unwrap(),
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
            delivery: config.delivery.clone(),
            roster: Default::default(),
            attach: Default::default(),
        })
    }

    fn human_message(id: u64, content: &str) -> Inbound {
        Inbound {
            author_id: 55,
            author_name: "alice".into(),
            author_is_bot: false,
            footers: vec![],
            chain: ChainLength::HUMAN,
            ..bot_message(id, content)
        }
    }

    fn turn(assistant: bool, message_id: u64) -> MemoryTurn {
        MemoryTurn {
            assistant,
            author: String::new(),
            content: String::new(),
            message_id,
            time_ms: 0,
            cut: false,
            author_id: None,
            attachments: Vec::new(),
        }
    }

    #[test]
    fn a_remembered_reply_answers_only_the_messages_the_model_saw_with_it() {
        let ids = |b: &[Inbound]| b.iter().map(|m| m.id).collect::<Vec<_>>();
        let batch = || [75, 80, 90, 95].map(|id| human_message(id, "x")).to_vec();
        // The model answered 80 and 90 with a reply to 90; 75 came back through the replay.
        let memory = [turn(false, 80), turn(false, 90), turn(true, 90)];
        let (now, later) = split_at_remembered(&memory, batch());
        assert_eq!((ids(&now), ids(&later)), (vec![80, 90], vec![75, 95]));
        // Nothing remembered: the whole batch is answered.
        let (now, later) = split_at_remembered(&[turn(false, 10), turn(true, 10)], batch());
        assert_eq!((ids(&now), ids(&later)), (vec![75, 80, 90, 95], vec![]));
    }

    #[test]
    fn a_batch_is_cut_after_its_first_partly_streamed_reply() {
        let batch = || vec![human_message(1, "x"), human_message(2, "x"), human_message(3, "x")];
        let ids = |v: &[Inbound]| v.iter().map(|m| m.id).collect::<Vec<_>>();
        let (now, later) = split_at_streamed(batch(), |id| id == 2);
        assert_eq!((ids(&now), ids(&later)), (vec![1, 2], vec![3]));
        let (now, later) = split_at_streamed(batch(), |_| false);
        assert_eq!((ids(&now), ids(&later)), (vec![1, 2, 3], vec![]));
        let (now, later) = split_at_streamed(batch(), |id| id == 3);
        assert_eq!((ids(&now), ids(&later)), (vec![1, 2, 3], vec![]));
    }

    /// A message read back from the store at start and replayed too is answered once, and an
    /// older replayed message the store did not hold gets its own answer instead of being taken
    /// for answered by the other's reply (`make chaos`, breaker-exit, lost it that way).
    #[tokio::test(start_paused = true)]
    async fn a_message_both_read_back_and_replayed_is_answered_once_and_nothing_beside_it_is_lost() {
        let dir = tempfile::tempdir().unwrap();
        let spec = spec(dir.path(), "");
        let key = ConversationKey::Channel(10);
        let owed = human_message(53, "owed from before");
        spec.store
            .save_pending(
                "Ada",
                key,
                &PendingRecord::new(owed.clone(), turn::now_ms(), "shutdown", ""),
            )
            .unwrap();
        let outbox = Outbox::printing();
        let conversation = hosted(spec, key, &outbox).await;
        // The replay reads an older message (in flight when troupe stopped, so not in the store)
        // and the one the conversation read back.
        hand(
            &conversation,
            ConversationMsg::Backlog {
                messages: vec![human_message(50, "older"), owed],
                slowmode: Duration::ZERO,
            },
        )
        .await;
        while outbox.printed().len() < 2 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
        let sent = outbox.printed();
        let replies: Vec<_> = sent.iter().map(|m| (m.reply_to, m.content.clone())).collect();
        assert_eq!(sent.len(), 2, "one answer each: {replies:?}");
        assert!(
            sent.iter()
                .any(|m| m.reply_to == Some(50) && m.content.contains("older")),
            "the older message is answered: {replies:?}"
        );
        assert!(
            sent.iter()
                .any(|m| m.reply_to == Some(53) && m.content.contains("owed from before")),
            "the owed message is answered: {replies:?}"
        );
        drop(conversation.lock().await.take());
    }

    #[tokio::test(start_paused = true)]
    async fn bot_messages_wait_the_delay_and_are_answered_together() {
        let dir = tempfile::tempdir().unwrap();
        let spec = spec(
            dir.path(),
            "[discord]\nbot_delay_ms = 17000\nbot_delay_jitter_ms = 3000",
        );
        let outbox = Outbox::printing();
        let conversation = hosted(spec, ConversationKey::Channel(10), &outbox).await;

        let start = tokio::time::Instant::now();
        let slowmode = Duration::ZERO;
        hand(
            &conversation,
            ConversationMsg::Inbound {
                message: bot_message(100, "first"),
                slowmode,
            },
        )
        .await;
        tokio::time::sleep(Duration::from_secs(10)).await;
        hand(
            &conversation,
            ConversationMsg::Inbound {
                message: bot_message(200, "second"),
                slowmode,
            },
        )
        .await;
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
        drop(conversation.lock().await.take());
    }
}
