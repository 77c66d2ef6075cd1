//! Metrics: the names troupe exports on `/metrics` and one small function per event, so call
//! sites read `telemetry::reply_sent(agent)` and the names live in one place.
//!
//! Recording goes through the `metrics` facade to a Prometheus recorder installed once per
//! process ([`install`]); `/metrics` renders it with `metrics-exporter-prometheus`. Until
//! [`install`] runs (unit tests), every function here is a no-op. Labels carry agent and backend
//! names, reasons, outcomes and HTTP statuses, never user or channel IDs: their number stays
//! bounded by the configuration.
//!
//! Every series whose labels are known in advance (each agent's and each backend's) is created
//! at 0 when troupe starts ([`initialise`]), as Prometheus recommends: a series that appears
//! only with its first event makes `rate()` and dashboards blind until then.

use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::Duration;

use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram, Counter, Gauge, Unit};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::breaker::BreakerState;
use crate::llm::LlmError;
use crate::routing::Reason;

/// Messages an agent's gateway delivered (before routing). Labels: `agent`.
pub const MESSAGES_RECEIVED: &str = "troupe_messages_received_total";
/// Messages the gateway edge skipped without converting them, as ones the agent will not answer
/// ([`crate::skip`]); they are also counted as received and ignored. Labels: `agent`.
pub const MESSAGES_SKIPPED: &str = "troupe_messages_skipped_total";
/// Times a shard runner was held back because serenity's handler tasks had piled up
/// ([`crate::discord::backlog`]). Labels: `outcome` (`drained`, `gave_up`).
pub const GATEWAY_HELD: &str = "troupe_gateway_backpressure_waits_total";
/// Messages an agent decided to answer. Labels: `agent`, `reason` (routing rule).
pub const MESSAGES_PROCESSED: &str = "troupe_messages_processed_total";
/// Messages an agent decided not to answer. Labels: `agent`, `reason`.
pub const MESSAGES_IGNORED: &str = "troupe_messages_ignored_total";
/// Reply messages Discord accepted (each part of a split reply counts). Labels: `agent`.
pub const REPLIES_SENT: &str = "troupe_replies_sent_total";
/// Counter: Discord writes (posts, edits, deletes) of streamed replies, by agent.
pub const STREAM_WRITES: &str = "troupe_stream_writes_total";
/// Replies not sent because the agent chain was too long. Labels: `agent`.
pub const CHAINS_BLOCKED: &str = "troupe_chains_blocked_total";
/// Model requests: each HTTP request of an HTTP backend (ladder steps and retries included),
/// each call of another backend, and each time the pool was full. Labels: `backend`, `outcome`
/// (`ok`, `queue_full` or the error kind).
pub const LLM_REQUESTS: &str = "troupe_llm_requests_total";
/// Steps of the progressive token ladder. Labels: `backend`, `mode` (`first`, `regenerate`,
/// `continue`).
pub const LLM_LADDER_STEPS: &str = "troupe_llm_ladder_steps_total";
/// The modes of [`LLM_LADDER_STEPS`].
pub const LADDER_MODES: [&str; 3] = ["first", "regenerate", "continue"];
/// Request latency (per model request, as counted in [`LLM_REQUESTS`]), queueing for a slot
/// excluded. Labels: `backend`.
pub const LLM_DURATION: &str = "troupe_llm_request_duration_seconds";
/// Tokens reported by providers. Labels: `agent`, `kind` (`input`, `output`).
pub const LLM_TOKENS: &str = "troupe_llm_tokens_total";
/// Retried LLM requests. Labels: `backend`.
pub const LLM_RETRIES: &str = "troupe_llm_retries_total";
/// Breaker state: 0 closed, 1 open, 2 half-open. Labels: `agent`.
pub const BREAKER_STATE: &str = "troupe_breaker_state";
/// 1 while the agent's gateway session is up. Labels: `agent`.
pub const GATEWAY_CONNECTED: &str = "troupe_gateway_connected";
/// Gauge: a sharded agent's shards, by `state` (`total`, `connected`, `ready`).
pub const GATEWAY_SHARDS: &str = "troupe_gateway_shards";
/// Messages waiting in an agent's backlog. Labels: `agent`.
pub const BACKLOG_MESSAGES: &str = "troupe_backlog_messages";
/// Live conversations (passivated ones not counted).
pub const ACTIVE_CONVERSATIONS: &str = "troupe_active_conversations";
/// Discord REST calls that failed. Labels: `status` (HTTP status, or `none` without answer).
pub const DISCORD_REST_ERRORS: &str = "troupe_discord_rest_errors_total";
/// Messages an agent decided to answer and has not finished yet. Labels: `agent`.
pub const PENDING_MESSAGES: &str = "troupe_pending_messages";
/// Answers to a message tried again. Labels: `agent`, `cause` ([`RetryCause`]).
pub const MESSAGE_RETRIES: &str = "troupe_message_retries_total";
/// Messages troupe gave up answering. Labels: `agent`, `cause` ([`GiveUpCause`]).
pub const MESSAGE_GIVE_UPS: &str = "troupe_message_give_ups_total";
/// Files on answered messages, by agent, `kind` (`image`, `text`, `other`) and `outcome`
/// ([`ATTACHMENT_OUTCOMES`]).
pub const ATTACHMENTS: &str = "troupe_attachments_total";
/// The outcomes of [`ATTACHMENTS`]: given to the model, skipped by a limit or the backend,
/// not fetched (refused host, status, timeout, size, wrong content), named only.
pub const ATTACHMENT_OUTCOMES: [&str; 4] = ["sent", "skipped", "failed", "named"];
/// Model calls not made because a budget is spent, by agent and `budget` (`user`, `agent`).
pub const BUDGET_REFUSALS: &str = "troupe_budget_refusals_total";
/// Slash commands used, by agent, command and outcome.
pub const COMMANDS: &str = "troupe_commands_total";
/// The host's 1-minute load average, as last checked.
pub const LOAD_AVERAGE: &str = "troupe_load_average";
/// troupe's resident memory, as last checked.
pub const RESIDENT_MEMORY: &str = "troupe_resident_memory_bytes";
/// Replies Discord already had from another process using the agent's bot (label `agent`).
pub const DUPLICATE_PROCESS: &str = "troupe_duplicate_process_replies_total";
/// Always 1; labels `cell` and `count` say which cell of the cast this process runs (`[cells]`).
pub const CELL_INFO: &str = "troupe_cell_info";

/// Why the answer to a message is tried again (the `cause` of [`MESSAGE_RETRIES`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryCause {
    /// The backend failed in a way that may pass.
    Llm,
    /// The agent's circuit breaker was open.
    Breaker,
    /// No room: the conversation's queue or the backend's pool was full.
    Queue,
    /// Discord did not take the reply.
    Delivery,
    /// The channel's history (what was already answered) could not be read.
    History,
    /// The store did not take the memory or the answered record.
    Store,
}

impl RetryCause {
    /// Every cause, for initialising the series.
    pub const ALL: [RetryCause; 6] = [
        RetryCause::Llm,
        RetryCause::Breaker,
        RetryCause::Queue,
        RetryCause::Delivery,
        RetryCause::History,
        RetryCause::Store,
    ];

    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            RetryCause::Llm => "llm",
            RetryCause::Breaker => "breaker",
            RetryCause::Queue => "queue",
            RetryCause::Delivery => "delivery",
            RetryCause::History => "history",
            RetryCause::Store => "store",
        }
    }
}

/// Why troupe gave up answering a message (the `cause` of [`MESSAGE_GIVE_UPS`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GiveUpCause {
    /// The backend kept failing.
    Llm,
    /// The backend refused the credentials.
    Auth,
    /// The backend refused the request itself.
    BadRequest,
    /// Discord kept refusing the reply.
    Delivery,
    /// The message became too old to answer.
    Age,
    /// Its turn panicked.
    Panic,
    /// Dropped to shed load.
    Shed,
    /// A user's or the agent's token budget is spent (`[budgets]`).
    Budget,
}

impl GiveUpCause {
    /// Every cause, for initialising the series.
    pub const ALL: [GiveUpCause; 8] = [
        GiveUpCause::Llm,
        GiveUpCause::Auth,
        GiveUpCause::BadRequest,
        GiveUpCause::Delivery,
        GiveUpCause::Age,
        GiveUpCause::Panic,
        GiveUpCause::Shed,
        GiveUpCause::Budget,
    ];

    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            GiveUpCause::Llm => "llm",
            GiveUpCause::Auth => "auth",
            GiveUpCause::BadRequest => "bad_request",
            GiveUpCause::Delivery => "delivery",
            GiveUpCause::Age => "age",
            GiveUpCause::Panic => "panic",
            GiveUpCause::Shed => "shed",
            GiveUpCause::Budget => "budget",
        }
    }
}

/// Upper bounds of the LLM latency histogram's buckets, in seconds.
const LLM_BUCKETS: &[f64] = &[0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 40.0, 80.0, 160.0];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide recorder (once; later calls return the same handle) and returns
/// the handle `/metrics` renders.
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Full(LLM_DURATION.to_string()), LLM_BUCKETS)
                .expect("buckets are not empty")
                .build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                // Only when troupe is embedded in a program that installed its own recorder.
                tracing::warn!("a metrics recorder is already installed; /metrics will stay empty");
            }
            describe();
            handle
        })
        .clone()
}

/// Creates, at 0, every series of these agents and backends: counters by each routing reason,
/// token kind, request outcome and retry or give-up cause; the per-agent gauges; the latency
/// histogram (empty). Called once at start, after [`install`].
pub fn initialise<'a>(agents: impl IntoIterator<Item = &'a str>, backends: impl IntoIterator<Item = &'a str>) {
    for agent in agents {
        let agent = agent.to_string();
        counter!(MESSAGES_RECEIVED, "agent" => agent.clone()).absolute(0);
        counter!(MESSAGES_SKIPPED, "agent" => agent.clone()).absolute(0);
        for reason in Reason::ALL {
            let name = if reason.answers() {
                MESSAGES_PROCESSED
            } else {
                MESSAGES_IGNORED
            };
            counter!(name, "agent" => agent.clone(), "reason" => reason.label()).absolute(0);
        }
        counter!(REPLIES_SENT, "agent" => agent.clone()).absolute(0);
        counter!(DUPLICATE_PROCESS, "agent" => agent.clone()).absolute(0);
        counter!(CHAINS_BLOCKED, "agent" => agent.clone()).absolute(0);
        for kind in ["input", "output"] {
            counter!(LLM_TOKENS, "agent" => agent.clone(), "kind" => kind).absolute(0);
        }
        for cause in RetryCause::ALL {
            counter!(MESSAGE_RETRIES, "agent" => agent.clone(), "cause" => cause.label()).absolute(0);
        }
        for cause in GiveUpCause::ALL {
            counter!(MESSAGE_GIVE_UPS, "agent" => agent.clone(), "cause" => cause.label()).absolute(0);
        }
        for budget in ["user", "agent"] {
            counter!(BUDGET_REFUSALS, "agent" => agent.clone(), "budget" => budget).absolute(0);
        }
        for command in crate::commands::Command::NAMES {
            for outcome in ["ok", "error", "refused"] {
                counter!(COMMANDS, "agent" => agent.clone(), "command" => command, "outcome" => outcome).absolute(0);
            }
        }
        for kind in ["image", "text", "other"] {
            for outcome in ATTACHMENT_OUTCOMES {
                counter!(ATTACHMENTS, "agent" => agent.clone(), "kind" => kind, "outcome" => outcome).absolute(0);
            }
        }
        gauge!(BACKLOG_MESSAGES, "agent" => agent.clone()).set(0.0);
        gauge!(PENDING_MESSAGES, "agent" => agent.clone()).set(0.0);
        // Health::new sets the gateway and breaker gauges to where each agent starts.
    }
    for outcome in ["drained", "gave_up"] {
        counter!(GATEWAY_HELD, "outcome" => outcome).absolute(0);
    }
    for backend in backends {
        let backend = backend.to_string();
        for outcome in ["ok", "queue_full"].iter().chain(LlmError::KINDS) {
            counter!(LLM_REQUESTS, "backend" => backend.clone(), "outcome" => *outcome).absolute(0);
        }
        // Registering the histogram is enough: it renders with empty buckets.
        let _ = histogram!(LLM_DURATION, "backend" => backend.clone());
        for mode in LADDER_MODES {
            counter!(LLM_LADDER_STEPS, "backend" => backend.clone(), "mode" => mode).absolute(0);
        }
        counter!(LLM_RETRIES, "backend" => backend).absolute(0);
    }
    gauge!(ACTIVE_CONVERSATIONS).increment(0.0);
}

/// The exposition text (Prometheus text format 0.0.4).
pub fn render(handle: &PrometheusHandle) -> String {
    handle.run_upkeep();
    handle.render()
}

fn describe() {
    describe_counter!(
        DUPLICATE_PROCESS,
        "Replies Discord already had from another process answering as the agent's bot: a second troupe runs it."
    );
    describe_gauge!(
        CELL_INFO,
        "Always 1; the cell this process runs (label cell) out of how many (label count)."
    );
    describe_counter!(
        MESSAGES_RECEIVED,
        "Messages delivered by an agent's gateway, before routing."
    );
    describe_counter!(
        MESSAGES_SKIPPED,
        "Messages an agent's gateway edge passed on without their text, as ones it will not answer (also counted as received and ignored)."
    );
    describe_counter!(
        GATEWAY_HELD,
        "Times a shard runner waited for serenity's handler tasks to drain before handing on a message, by outcome (drained, gave_up)."
    );
    describe_counter!(
        MESSAGES_PROCESSED,
        "Messages an agent decided to answer, by routing reason."
    );
    describe_counter!(
        MESSAGES_IGNORED,
        "Messages an agent decided not to answer, by routing reason."
    );
    describe_counter!(REPLIES_SENT, "Reply messages Discord accepted.");
    describe_counter!(
        STREAM_WRITES,
        "Discord writes (posts, edits, deletes) of streamed replies."
    );
    describe_counter!(CHAINS_BLOCKED, "Replies not sent because the agent chain was too long.");
    describe_counter!(
        LLM_REQUESTS,
        "Model requests (each HTTP request, failed ones included) by backend and outcome."
    );
    describe_counter!(
        LLM_LADDER_STEPS,
        "Steps of the progressive token ladder by backend and mode."
    );
    describe_histogram!(LLM_DURATION, Unit::Seconds, "Model request latency by backend.");
    describe_counter!(LLM_TOKENS, "Tokens reported by providers, by agent and kind.");
    describe_counter!(
        BUDGET_REFUSALS,
        "Model calls not made because a token budget is spent, by agent and budget (user, agent)."
    );
    describe_counter!(LLM_RETRIES, "Retried LLM requests by backend.");
    describe_counter!(
        COMMANDS,
        "Slash commands used, by agent, command and outcome (ok, error, refused, bad_option, guild_only, unknown)."
    );
    describe_counter!(
        ATTACHMENTS,
        "Files on answered messages by agent, kind (image, text, other) and outcome (sent, skipped, failed, named)."
    );
    describe_gauge!(
        BREAKER_STATE,
        "Circuit breaker per agent: 0 closed, 1 open, 2 half-open."
    );
    describe_gauge!(GATEWAY_CONNECTED, "1 while the agent's gateway session is up.");
    describe_gauge!(
        GATEWAY_SHARDS,
        "A sharded agent's gateway shards: state total, connected (session up) or ready (READY and every GUILD_CREATE in)."
    );
    describe_gauge!(BACKLOG_MESSAGES, "Messages waiting in an agent's backlog.");
    describe_gauge!(
        ACTIVE_CONVERSATIONS,
        "Live conversations (passivated ones not counted)."
    );
    describe_counter!(DISCORD_REST_ERRORS, "Failed Discord REST calls by HTTP status.");
    describe_gauge!(
        PENDING_MESSAGES,
        "Messages an agent decided to answer and has not finished yet."
    );
    describe_counter!(MESSAGE_RETRIES, "Answers to a message tried again, by cause.");
    describe_counter!(MESSAGE_GIVE_UPS, "Messages troupe gave up answering, by cause.");
    describe_gauge!(LOAD_AVERAGE, "The host's 1-minute load average at the last check.");
    describe_gauge!(
        RESIDENT_MEMORY,
        Unit::Bytes,
        "troupe's resident memory at the last check."
    );
}

/// One agent's series that move with every message it sees: received, routed, in flight. Every
/// agent sees every message of its channels (each reply of every other agent too), and a
/// lookup by name builds the labels (the agent's name copied) and hashes them each time: the
/// agent looks these up once and keeps the handles. Handles taken before [`install`] (unit
/// tests) record nothing, as the functions here do.
pub struct AgentSeries {
    agent: String,
    received: Counter,
    skipped: Counter,
    /// By whether the message is answered, and the routing reason's label.
    routed: HashMap<(bool, &'static str), Counter>,
    backlog: Gauge,
    pending: Gauge,
}

impl std::fmt::Debug for AgentSeries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentSeries")
            .field("agent", &self.agent)
            .finish_non_exhaustive()
    }
}

impl AgentSeries {
    /// `agent`'s series.
    pub fn new(agent: &str) -> Self {
        Self {
            agent: agent.to_string(),
            received: counter!(MESSAGES_RECEIVED, "agent" => agent.to_string()),
            skipped: counter!(MESSAGES_SKIPPED, "agent" => agent.to_string()),
            routed: HashMap::new(),
            backlog: gauge!(BACKLOG_MESSAGES, "agent" => agent.to_string()),
            pending: gauge!(PENDING_MESSAGES, "agent" => agent.to_string()),
        }
    }

    /// A gateway delivered a message to the agent.
    pub fn message_received(&self) {
        self.received.increment(1);
    }

    /// The gateway edge skipped a message ([`crate::skip`]).
    pub fn message_skipped(&self) {
        self.skipped.increment(1);
    }

    /// The agent decided to answer (`processed`) or not, by routing `reason` (`Reason::label`).
    pub fn message_routed(&mut self, processed: bool, reason: &'static str) {
        let agent = &self.agent;
        self.routed
            .entry((processed, reason))
            .or_insert_with(|| {
                let name = if processed {
                    MESSAGES_PROCESSED
                } else {
                    MESSAGES_IGNORED
                };
                counter!(name, "agent" => agent.clone(), "reason" => reason)
            })
            .increment(1);
    }

    /// The agent's backlog holds `backlog` messages, of which `pending` it decided to answer
    /// and has not finished yet.
    pub fn in_flight(&self, backlog: usize, pending: usize) {
        self.backlog.set(backlog as f64);
        self.pending.set(pending as f64);
    }
}

/// Discord accepted `messages` reply messages of `agent` (a long reply is split in parts).
pub fn replies_sent(agent: &str, messages: usize) {
    counter!(REPLIES_SENT, "agent" => agent.to_string()).increment(messages as u64);
}

/// A streamed reply of `agent` made `writes` Discord writes (posts, edits, deletes).
pub fn stream_writes(agent: &str, writes: usize) {
    counter!(STREAM_WRITES, "agent" => agent.to_string()).increment(writes as u64);
}

/// A file on a message `agent` answers: its `kind` and what became of it (one of
/// [`ATTACHMENT_OUTCOMES`]).
pub fn attachment(agent: &str, kind: &'static str, outcome: &'static str) {
    counter!(ATTACHMENTS, "agent" => agent.to_string(), "kind" => kind, "outcome" => outcome).increment(1);
}

/// A shard runner was held back at the gateway edge; `outcome` is `drained` or `gave_up`.
pub fn gateway_held(outcome: &'static str) {
    counter!(GATEWAY_HELD, "outcome" => outcome).increment(1);
}

/// A reply of `agent` was not sent: the agent chain was too long.
pub fn chain_blocked(agent: &str) {
    counter!(CHAINS_BLOCKED, "agent" => agent.to_string()).increment(1);
}

/// One completion request to `backend` ended with `outcome` (`ok`, `queue_full`, or
/// `LlmError::kind()`), after `elapsed` when it reached the backend.
pub fn llm_request(backend: &str, outcome: &'static str, elapsed: Option<Duration>) {
    counter!(LLM_REQUESTS, "backend" => backend.to_string(), "outcome" => outcome).increment(1);
    if let Some(elapsed) = elapsed {
        histogram!(LLM_DURATION, "backend" => backend.to_string()).record(elapsed.as_secs_f64());
    }
}

/// A completion of `agent` used these tokens.
pub fn llm_tokens(agent: &str, input: u64, output: u64) {
    counter!(LLM_TOKENS, "agent" => agent.to_string(), "kind" => "input").increment(input);
    counter!(LLM_TOKENS, "agent" => agent.to_string(), "kind" => "output").increment(output);
}

/// A step of the token ladder of `backend` starts (`mode` is one of [`LADDER_MODES`]).
pub fn llm_ladder_step(backend: &str, mode: &'static str) {
    counter!(LLM_LADDER_STEPS, "backend" => backend.to_string(), "mode" => mode).increment(1);
}

/// A request to `backend` is being retried.
pub fn llm_retry(backend: &str) {
    counter!(LLM_RETRIES, "backend" => backend.to_string()).increment(1);
}

/// `agent`'s breaker moved to `state`.
pub fn breaker_state(agent: &str, state: BreakerState) {
    let value = match state {
        BreakerState::Closed => 0.0,
        BreakerState::Open { .. } => 1.0,
        BreakerState::HalfOpen => 2.0,
    };
    gauge!(BREAKER_STATE, "agent" => agent.to_string()).set(value);
}

/// `agent`'s gateway session went up or down.
pub fn gateway_connected(agent: &str, connected: bool) {
    gauge!(GATEWAY_CONNECTED, "agent" => agent.to_string()).set(if connected { 1.0 } else { 0.0 });
}

/// A sharded `agent`'s shards: how many it runs, are connected and are ready.
pub fn gateway_shards(agent: &str, total: u32, connected: u32, ready: u32) {
    for (state, n) in [("total", total), ("connected", connected), ("ready", ready)] {
        gauge!(GATEWAY_SHARDS, "agent" => agent.to_string(), "state" => state).set(f64::from(n));
    }
}

/// A conversation started (`+1`) or ended (`-1`). Increments rather than a set value, so
/// concurrent starts and ends cannot leave the gauge stale.
pub fn active_conversations_changed(delta: f64) {
    gauge!(ACTIVE_CONVERSATIONS).increment(delta);
}

/// A Discord REST call failed with `status` (`None`: no HTTP answer).
pub fn discord_rest_error(status: Option<u16>) {
    let status = status.map_or_else(|| "none".to_string(), |s| s.to_string());
    counter!(DISCORD_REST_ERRORS, "status" => status).increment(1);
}

/// The answer to a message of `agent` is tried again because of `cause`.
pub fn message_retry(agent: &str, cause: RetryCause) {
    counter!(MESSAGE_RETRIES, "agent" => agent.to_string(), "cause" => cause.label()).increment(1);
}

/// A model call was not made: the `budget` (`user` or `agent`) is spent.
pub fn budget_refusal(agent: &str, budget: &'static str) {
    counter!(BUDGET_REFUSALS, "agent" => agent.to_string(), "budget" => budget).increment(1);
}

/// A slash command was used: `command` is one of troupe's names (anything else counts as
/// `other`), `outcome` a fixed word; no user appears in the labels.
pub fn command_used(agent: &str, command: &str, outcome: &'static str) {
    let command = crate::commands::Command::NAMES
        .into_iter()
        .find(|n| *n == command)
        .unwrap_or("other");
    counter!(COMMANDS, "agent" => agent.to_string(), "command" => command, "outcome" => outcome).increment(1);
}

/// `agent` gave up answering a message because of `cause`.
pub fn message_give_up(agent: &str, cause: GiveUpCause) {
    counter!(MESSAGE_GIVE_UPS, "agent" => agent.to_string(), "cause" => cause.label()).increment(1);
}

/// The latest system check's readings.
pub fn system(load_average: f64, resident_bytes: Option<u64>) {
    gauge!(LOAD_AVERAGE).set(load_average);
    if let Some(bytes) = resident_bytes {
        gauge!(RESIDENT_MEMORY).set(bytes as f64);
    }
}

/// This process runs cell `index` of `count`.
pub fn cell(index: u32, count: u32) {
    gauge!(CELL_INFO, "cell" => index.to_string(), "count" => count.to_string()).set(1.0);
}

/// Discord returned a reply of `agent` that another process had posted.
pub fn duplicate_process(agent: &str) {
    counter!(DUPLICATE_PROCESS, "agent" => agent.to_string()).increment(1);
}
