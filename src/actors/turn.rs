//! One turn of a conversation, as steps: the chain decision, the prompt (fitted to the model's
//! context window, [`crate::llm::budget`]), the breaker, a pool permit, the model call (trimmed
//! harder after a context overflow), memory saved, the reply delivered, the answer recorded. Or, when
//! troupe gives up on messages, the notice delivered and recorded. A turn never decides to drop
//! a message: it reports what failed and whether retrying can help ([`TurnFailure`]), and the
//! conversation defers, retries or gives up visibly.
//!
//! Memory: a failed model call leaves memory as it was (the retry builds the same prompt). A
//! reply is saved, with the messages it answers, *before* it is sent, so a reply whose delivery
//! failed or was cut by a crash is delivered again (same nonces, parts already delivered are
//! skipped) and no tokens are spent twice. A message larger than the window is remembered as
//! written; prompts leave it out like any old turn once newer ones follow.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{Cast, SharedSpec};
use crate::acl::{self, ChainLength, ReplyDecision};
use crate::config::DryRun;
use crate::discord::outbox::{Delivered, Reply};
use crate::discord::Outbox;
use crate::llm::progressive::CUT_NOTE;
use crate::llm::stream::{Completion, FinishReason};
use crate::llm::{budget, LlmError, Prompt, PromptTurn};
use crate::memory::{self, MemoryTurn};
use crate::message::Inbound;
use crate::ops::telemetry::{self, GiveUpCause, RetryCause};
use crate::quota;
use crate::routing::ConversationKey;
use crate::store::TROUPE;

/// How long a reply waits for its typing indicator's request before going out anyway (the
/// indicator is sent alongside the model call and must not arrive after the reply).
const TYPING_WAIT: Duration = Duration::from_secs(5);

/// Harder trims after a context overflow before the turn fails: half the budget, then the
/// newest message alone.
const OVERFLOW_RETRIES: u32 = 2;

/// What a turn does with its messages.
#[derive(Debug, Clone, PartialEq)]
pub enum TurnKind {
    /// Answer them: ask the model (unless memory holds a reply not yet confirmed delivered).
    Answer,
    /// Give up on them: send `notice` (nothing when empty) and record them as finished.
    GiveUp {
        /// The notice.
        notice: String,
    },
}

/// How a turn's reply is paced and resumed.
#[derive(Debug, Clone, Copy, Default)]
pub struct Pacing {
    /// The channel's slowmode, respected between the reply's parts.
    pub slowmode: Duration,
    /// Show the typing indicator while the model works (not for backlog or retried turns).
    pub typing: bool,
    /// Parts of the remembered reply delivered by an earlier attempt.
    pub first_part: usize,
    /// An earlier attempt may have posted parts unconfirmed (webhooks look before posting).
    pub check_existing: bool,
    /// Stream the reply as the model writes it (the agent's `stream`, live turns answering
    /// humans only; see [`super::streaming`]).
    pub stream: bool,
}

/// What failed in a turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// The model call failed (timeout, 429, 5xx, 529, a cut stream, a refused connection).
    Llm,
    /// The backend refused the key (401, 403).
    Auth,
    /// The backend refused this prompt (400), or found it too long even with the newest message
    /// alone: retrying cannot help.
    BadRequest,
    /// The agent's breaker is open (`on_trip = "isolate"`).
    Breaker,
    /// The backend's worker pool was full.
    Queue,
    /// Discord did not take the reply.
    Delivery,
    /// The store did not take the memory or the answered record.
    Store,
    /// The reply would pass the chain limit (never reached through routing).
    Chain,
    /// A user's or the agent's token budget is spent (`[budgets]`): no call is made.
    Budget,
}

impl Cause {
    /// A short label for logs, metrics and `--show-backlog`.
    pub fn label(self) -> &'static str {
        match self {
            Cause::Llm => "llm",
            Cause::Auth => "auth",
            Cause::BadRequest => "bad_request",
            Cause::Breaker => "breaker",
            Cause::Queue => "queue",
            Cause::Delivery => "delivery",
            Cause::Store => "store",
            Cause::Chain => "chain",
            Cause::Budget => "budget",
        }
    }

    /// The `cause` label of a retry for this failure.
    pub fn retry_cause(self) -> RetryCause {
        match self {
            Cause::Breaker => RetryCause::Breaker,
            Cause::Queue => RetryCause::Queue,
            Cause::Delivery => RetryCause::Delivery,
            Cause::Store => RetryCause::Store,
            Cause::Llm | Cause::Auth | Cause::BadRequest | Cause::Chain | Cause::Budget => RetryCause::Llm,
        }
    }

    /// The `cause` label of a give-up for this failure (when retrying cannot help).
    pub fn give_up_cause(self) -> GiveUpCause {
        match self {
            Cause::Auth => GiveUpCause::Auth,
            Cause::BadRequest => GiveUpCause::BadRequest,
            Cause::Delivery => GiveUpCause::Delivery,
            Cause::Budget => GiveUpCause::Budget,
            _ => GiveUpCause::Llm,
        }
    }
}

/// Why a turn did not finish its messages.
#[derive(Debug, Clone, PartialEq)]
pub struct TurnFailure {
    /// What failed.
    pub cause: Cause,
    /// Retrying cannot help: give up now.
    pub permanent: bool,
    /// How long the other side asked us to wait.
    pub retry_after: Option<Duration>,
    /// What happened, for logs (never shown on Discord).
    pub detail: String,
}

impl TurnFailure {
    fn retry(cause: Cause, detail: impl Into<String>) -> Self {
        Self {
            cause,
            permanent: false,
            retry_after: None,
            detail: detail.into(),
        }
    }

    fn permanent(cause: Cause, detail: impl Into<String>) -> Self {
        Self {
            permanent: true,
            ..Self::retry(cause, detail)
        }
    }

    /// The failure for a model error: a refused key or prompt is permanent, anything else
    /// (timeouts, throttling, overload, server errors, cut streams) is retried later.
    pub fn from_llm(e: &LlmError) -> Self {
        match e {
            LlmError::Auth(_) => Self::permanent(Cause::Auth, e.to_string()),
            // An overflow reaches here only after the harder trims: nothing shorter is left.
            LlmError::BadRequest(_) | LlmError::ContextOverflow(_) => Self::permanent(Cause::BadRequest, e.to_string()),
            _ => Self {
                retry_after: e.retry_after(),
                ..Self::retry(Cause::Llm, e.to_string())
            },
        }
    }
}

/// The end of a turn.
#[derive(Debug)]
pub struct TurnOutcome {
    /// Memory after the turn, as saved.
    pub memory: Vec<MemoryTurn>,
    /// Parts of the reply delivered so far (earlier attempts included).
    pub parts_done: usize,
    /// `Ok`: every message of the turn is finished (answered, or given up with its notice).
    pub result: Result<(), TurnFailure>,
}

/// Whether a model error says the backend is unhealthy (and so counts toward the breaker): a
/// prompt the backend refused (400) or found too long says nothing about its health.
pub fn counts_toward_breaker(e: &LlmError) -> bool {
    !matches!(e, LlmError::BadRequest(_) | LlmError::ContextOverflow(_))
}

/// Runs one turn for `batch` (oldest first; the reply answers the last).
///
/// The model call's and the delivery's futures are boxed: held inline they would make every
/// spawned turn (one per busy conversation, waiting for a pool permit) ~18 KB larger; see
/// `docs/benchmarks.md`.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    spec: &SharedSpec,
    outbox: &Outbox,
    key: ConversationKey,
    memory: Vec<MemoryTurn>,
    batch: &[Inbound],
    kind: &TurnKind,
    pacing: Pacing,
    self_ids: &[u64],
) -> TurnOutcome {
    let Some(latest) = batch.last() else {
        return TurnOutcome {
            memory,
            parts_done: 0,
            result: Ok(()),
        };
    };
    if spec.run.dry_run == DryRun::NoAgent {
        let ids: Vec<u64> = batch.iter().map(|m| m.id).collect();
        println!(
            "[no-agent] {} would answer {ids:?} in channel {}",
            spec.config.name, latest.channel_id
        );
        return TurnOutcome {
            memory,
            parts_done: 0,
            result: Ok(()),
        };
    }
    let chain = acl::batch_chain(batch.iter().map(|m| m.chain));
    let decision = acl::decide_reply(chain, spec.discord.max_chain);
    let step = Step {
        spec,
        outbox,
        key,
        batch,
        latest,
        decision,
        pacing,
        self_ids,
    };
    match kind {
        // Boxed: a turn waiting for a pool slot should not reserve room for every later step.
        TurnKind::GiveUp { notice } => Box::pin(step.give_up(memory, notice)).await,
        TurnKind::Answer => step.answer(memory).await,
    }
}

/// A turn's fixed inputs, shared by its steps.
struct Step<'a> {
    spec: &'a SharedSpec,
    outbox: &'a Outbox,
    key: ConversationKey,
    batch: &'a [Inbound],
    latest: &'a Inbound,
    decision: ReplyDecision,
    pacing: Pacing,
    self_ids: &'a [u64],
}

impl Step<'_> {
    fn name(&self) -> &str {
        &self.spec.config.name
    }

    fn dry(&self) -> bool {
        self.spec.run.dry_run != DryRun::None
    }

    async fn answer(&self, memory: Vec<MemoryTurn>) -> TurnOutcome {
        let name = self.name();
        if let ReplyDecision::Block { would_be } = self.decision {
            // Never reached through routing (inbound at the limit is not processed); kept as
            // the last line of defence. No tokens are spent, nothing is sent.
            tracing::warn!(agent = %name, message_id = self.latest.id, chain = %would_be, "reply would exceed the chain limit; not sent");
            telemetry::chain_blocked(name);
            return self.failed(memory, 0, TurnFailure::permanent(Cause::Chain, "chain limit"));
        }
        // A reply remembered for this message but not confirmed delivered (an earlier attempt
        // failed, or troupe stopped in between): deliver that same reply again. Its nonces make
        // Discord return parts that did arrive, so nothing is answered twice or paid twice.
        let remembered = memory
            .iter()
            .rev()
            .find(|t| t.assistant && t.message_id == self.latest.id)
            .map(MemoryTurn::shown_text);
        // A reply streamed before (a crash, a failed model call) is finished in its messages.
        let existing = match self.dry() {
            true => Vec::new(),
            false => self.spec.store.stream_parts(name, self.latest.id).unwrap_or_default(),
        };
        if (self.pacing.stream && !self.outbox.speaks_through_webhook(self.latest.channel_id)) || !existing.is_empty() {
            return Box::pin(self.answer_streamed(memory, remembered, &existing)).await;
        }
        let (text, memory, typing) = match remembered {
            Some(text) => (text, memory, None),
            None => match self.ask_model(&memory, None).await {
                Ok((text, with_reply, typing)) => (text, with_reply, typing),
                Err(failure) => return self.failed(memory, 0, failure),
            },
        };
        let reply = self.reply(text);
        // The indicator must not arrive after the reply (it would show for ~10 s more); a request
        // that hangs does not hold the reply past `TYPING_WAIT`.
        if let Some(typing) = typing {
            typing.settle(TYPING_WAIT).await;
        }
        // `long_replies = "file"`: one long code block goes out as a file on one message.
        let delivered = match crate::attach::reply_file::as_file(&reply.text, &self.spec.attach.settings) {
            Some(file) => {
                let message = Reply {
                    text: file.text.clone(),
                    ..reply.clone()
                };
                Box::pin(self.outbox.deliver_with_file(&message, &file)).await
            }
            None => Box::pin(self.outbox.deliver(&reply)).await,
        };
        Box::pin(self.after_delivery(memory, &reply, delivered)).await
    }

    /// The reply to deliver for `text`.
    fn reply(&self, text: String) -> Reply {
        Reply {
            channel_id: self.latest.channel_id,
            reply_to: Some(self.latest.id),
            allowed_users: allowed_users(&text, &self.spec.cast, self.self_ids),
            text,
            chain: self.decision.chain().unwrap_or(ChainLength::HUMAN.next()),
            tagline: self.spec.discord.tagline.clone(),
            courtesy: matches!(self.decision, ReplyDecision::SendWithCourtesy { .. })
                .then(|| self.spec.discord.courtesy.clone()),
            slowmode: self.pacing.slowmode,
            nonce_seed: self.name().to_string(),
            first_part: self.pacing.first_part,
            check_existing: self.pacing.check_existing,
        }
    }

    /// Answers with a streamed reply ([`super::streaming`]): the model's text goes out as it is
    /// written, into the messages an earlier attempt posted if there are any. A remembered reply
    /// (the model answered before a crash) is shown whole in those messages. Memory is saved
    /// when the model has answered, before the last edits, as for a whole reply.
    async fn answer_streamed(
        &self,
        memory: Vec<MemoryTurn>,
        remembered: Option<String>,
        existing: &[u64],
    ) -> TurnOutcome {
        let (tx, rx) = tokio::sync::watch::channel(String::new());
        let (cast, me) = (&self.spec.cast, self.self_ids);
        let allowed = |t: &str| allowed_users(t, cast, me);
        let render = |t: &str| cast.mentions(t, me);
        let target = super::streaming::StreamTarget {
            outbox: self.outbox,
            store: (!self.dry()).then_some(&self.spec.store),
            agent: self.name(),
            answers: self.latest.id,
            reply: Reply {
                first_part: 0,
                ..self.reply(String::new())
            },
            typing: (self.pacing.typing && remembered.is_none()).then_some(self.spec.discord.typing_delay),
            allowed_users: &allowed,
            render: &render,
        };
        let model = async {
            match remembered {
                Some(text) => Ok((text, memory.clone())),
                None => self
                    .ask_model(&memory, Some(&tx))
                    .await
                    .map(|(text, with_reply, _)| (text, with_reply)),
            }
        };
        let (outcome, streamed) = super::streaming::run(&target, existing, rx, model).await;
        telemetry::stream_writes(self.name(), streamed.writes);
        let (with_reply, text) = match outcome {
            Some(Ok(with_reply)) => {
                let text = with_reply
                    .iter()
                    .rev()
                    .find(|t| t.assistant && t.message_id == self.latest.id)
                    .map(MemoryTurn::shown_text)
                    .unwrap_or_default();
                (with_reply, text)
            }
            Some(Err(failure)) => {
                super::streaming::mark_interrupted(&target, &streamed).await;
                return self.failed(memory, 0, failure);
            }
            // Discord refused a part before the model was done: nothing was remembered.
            None => {
                let e = streamed.error.unwrap_or(crate::discord::outbox::DeliveryError {
                    status: None,
                    reason: "the stream ended early".into(),
                });
                let failure = match e.is_transient() {
                    true => TurnFailure::retry(Cause::Delivery, e.to_string()),
                    false => TurnFailure::permanent(Cause::Delivery, e.to_string()),
                };
                return self.failed(memory, 0, failure);
            }
        };
        let parts = streamed.message_ids.len();
        let delivered = Delivered {
            message_ids: streamed.posted,
            parts_done: if streamed.complete { parts } else { 0 },
            text: text.clone(),
            error: streamed.error,
        };
        let outcome = self.after_delivery(with_reply, &self.reply(text), delivered).await;
        if outcome.result.is_ok() && !self.dry() {
            if let Err(e) = self.spec.store.remove_stream_parts(self.name(), self.latest.id) {
                tracing::warn!(agent = %self.name(), error = %e, "cannot forget a streamed reply's messages");
            }
        }
        outcome
    }

    /// Builds the prompt and asks the model; on success the reply is saved in memory with the
    /// messages it answers, before anything is sent. Returns the text, that memory, and the
    /// typing indicator's request (none when streaming to `progress`: the stream keeps it up).
    // Why this is long: the model call's steps in the order they must happen (prompt, budget, breaker, typing, pool, call, accounting, save).
    async fn ask_model(
        &self,
        memory: &[MemoryTurn],
        progress: crate::llm::http::Progress<'_>,
    ) -> Result<(String, Vec<MemoryTurn>, Option<super::typing::Typing>), TurnFailure> {
        let (spec, name) = (self.spec, self.name());
        let mut history: Vec<_> = memory.iter().map(|t| self.prompt_turn(t)).collect();
        let fresh: Vec<MemoryTurn> = self
            .batch
            .iter()
            // A message already in memory (replayed after a restart) is not added again.
            .filter(|m| !memory.iter().any(|t| !t.assistant && t.message_id == m.id))
            .map(|m| MemoryTurn {
                assistant: false,
                author: m.author_name.clone(),
                content: m.content.clone(),
                message_id: m.id,
                time_ms: now_ms(),
                cut: false,
                author_id: Some(m.author_id),
                attachments: m.attachments.clone(),
            })
            .collect();
        let date = chrono::Utc::now().format("%Y-%m-%d").to_string();
        let mut fresh_prompt: Vec<_> = fresh
            .iter()
            .map(|t| self.prompt_turn(&t.without_attachments()))
            .collect();
        // The fresh messages' files: images and text given, the rest named (memory keeps references).
        let files: Vec<_> = fresh.iter().map(|t| t.attachments.clone()).collect();
        let used = Box::pin(crate::attach::prepare::prepare(
            name,
            &spec.attach,
            &mut fresh_prompt,
            &files,
        ))
        .await;
        let earlier: Vec<_> = memory.iter().map(|t| t.attachments.clone()).collect();
        Box::pin(crate::attach::prepare::again(
            name,
            &spec.attach,
            &mut history,
            &earlier,
            used,
        ))
        .await;
        let mut prompt = crate::prompt::build(name, &spec.config.system_prompt, &date, &history, &fresh_prompt);
        if matches!(self.decision, ReplyDecision::SendWithCourtesy { .. }) {
            prompt.system.push_str("\n\nThis reply ends an agent chain that has reached its limit: it is the last message, and no reply to it is expected.");
        }
        if let Some(window) = spec.backend.window() {
            let fit = budget::fit(&mut prompt, window.prompt_budget());
            self.log_fit(&fit, window.prompt_budget(), "the context window");
        }
        // A spent budget: no call, no tokens (the conversation sends the notice once per window).
        let estimate = budget::prompt_tokens(&prompt) as u64;
        if let Err(over) = self.check_budget(estimate) {
            telemetry::budget_refusal(name, over.label());
            return Err(TurnFailure::permanent(
                Cause::Budget,
                format!("{} budget spent", over.label()),
            ));
        }
        // An open circuit breaker (`on_trip = "isolate"`): the backend is not asked until the
        // cooldown lets one probe through. The messages wait.
        if !spec.breaker.allow(std::time::Instant::now()) {
            return Err(TurnFailure::retry(Cause::Breaker, "circuit breaker open"));
        }
        // The indicator's request runs alongside the model call rather than before it (on
        // Discord it is a full REST round trip), and only once the reply has not been ready for
        // `typing_delay`: a fast reply makes one REST call, not two.
        let typing = (self.pacing.typing && progress.is_none()).then(|| {
            super::typing::Typing::start(self.outbox, self.latest.channel_id, spec.discord.typing_delay, None)
        });
        let completion = match spec.pool.acquire(name).await {
            // Boxed: the turns waiting above hold no room for the call's state.
            Ok(_permit) => Box::pin(self.call_model(prompt, progress)).await,
            // A full pool is load shedding, not a backend failure: the message waits.
            Err(full) => {
                telemetry::llm_request(&spec.config.backend, "queue_full", None);
                Err(TurnFailure::retry(Cause::Queue, full.to_string()))
            }
        };
        let completion = match completion {
            Ok(c) => c,
            Err(failure) => {
                if let Some(t) = typing {
                    t.stop();
                }
                return Err(failure);
            }
        };
        self.record_usage(&completion, estimate);
        // The ladder's "(reply cut at the token limit)" note is shown, not remembered as the
        // model's own words.
        let cut = completion.finish == FinishReason::Length;
        let content = match completion.text.strip_suffix(CUT_NOTE) {
            Some(model_text) if cut => model_text.to_string(),
            _ => completion.text,
        };
        // `@Basil` in the reply addresses Basil (allowed_users then lets it ping).
        let content = spec.cast.mentions(&content, self.self_ids);
        let mut with_reply: Vec<MemoryTurn> = memory.iter().cloned().chain(fresh).collect();
        let reply = MemoryTurn {
            assistant: true,
            author: name.to_string(),
            content,
            message_id: self.latest.id,
            time_ms: now_ms(),
            cut,
            author_id: None,
            attachments: Vec::new(),
        };
        let text = reply.shown_text();
        with_reply.push(reply);
        memory::trim(&mut with_reply, spec.config.memory_limits);
        self.save(&with_reply).await?;
        Ok((text, with_reply, typing))
    }

    /// Asks the model, holding a pool permit. A context overflow (the estimate was too low, or the
    /// server's window is smaller than configured) is answered by trimming harder: half the
    /// budget, then the newest message alone in a quarter of it. Only an overflow after both
    /// fails the turn; none counts toward the breaker.
    async fn call_model(
        &self,
        mut prompt: Prompt,
        progress: crate::llm::http::Progress<'_>,
    ) -> Result<Completion, TurnFailure> {
        let spec = self.spec;
        let full = spec
            .backend
            .window()
            .map_or_else(|| budget::prompt_tokens(&prompt), |w| w.prompt_budget());
        let mut harder = 0;
        loop {
            let started = std::time::Instant::now();
            let result = Box::pin(spec.backend.complete_streaming(&prompt, progress)).await;
            match &result {
                Ok(_) => spec.breaker.record_success(),
                Err(e) if counts_toward_breaker(e) => {
                    spec.breaker
                        .record_failure(std::time::Instant::now(), &format!("{}: {e}", e.kind()));
                }
                Err(_) => {}
            }
            if !spec.backend.counts_its_requests() {
                let outcome = result.as_ref().map_or_else(|e| e.kind(), |_| "ok");
                telemetry::llm_request(&spec.config.backend, outcome, Some(started.elapsed()));
                if let Some(usage) = result.as_ref().ok().and_then(|c| c.usage.as_ref()) {
                    telemetry::llm_tokens(self.name(), usage.input_tokens, usage.output_tokens);
                }
            }
            match result {
                Err(LlmError::ContextOverflow(detail)) if harder < OVERFLOW_RETRIES => {
                    harder += 1;
                    tracing::warn!(agent = %self.name(), message_id = self.latest.id, error = %detail, "the prompt did not fit the model; trimming harder");
                    if harder == OVERFLOW_RETRIES {
                        budget::newest_only(&mut prompt);
                    }
                    let budget = full >> harder;
                    let fit = budget::fit(&mut prompt, budget);
                    self.log_fit(&fit, budget, "a harder trim");
                }
                other => return other.map_err(|e| TurnFailure::from_llm(&e)),
            }
        }
    }

    /// The humans whose messages this turn answers (bots and webhooks have no user budget).
    fn humans(&self) -> Vec<u64> {
        humans(self.batch)
    }

    /// Whether a call whose prompt is estimated at `prompt_tokens` fits the budgets: the prompt
    /// plus the largest reply the backend asks for must fit what the agent and each user have
    /// left, so a budget is never overrun. A store that cannot be read does not block answers.
    fn check_budget(&self, prompt_tokens: u64) -> Result<(), quota::Over> {
        let (spec, name) = (self.spec, self.name());
        let b = &spec.config.budgets;
        // A moderator's `/budget` override applies even where none is configured.
        let limits: Vec<(u64, Option<u64>)> = self
            .humans()
            .into_iter()
            .map(|u| {
                (
                    u,
                    quota::user_limit(b, spec.store.budget_override(name, u).ok().flatten()),
                )
            })
            .collect();
        if !b.limited() && limits.iter().all(|(_, l)| l.is_none()) {
            return Ok(());
        }
        let since = b.window.start(now_ms());
        let unread = |e: crate::store::StoreError| {
            tracing::warn!(agent = %name, error = %e, "cannot read token usage; answering");
            0
        };
        let agent_used = match b.agent_tokens {
            Some(_) => spec.store.agent_usage(name, since).unwrap_or_else(unread),
            None => 0,
        };
        let scope = user_scope(spec);
        let users: Vec<(u64, Option<u64>)> = limits
            .into_iter()
            .map(|(u, limit)| match limit {
                Some(_) => (spec.store.user_usage(scope, u, since).unwrap_or_else(unread), limit),
                None => (0, None),
            })
            .collect();
        let reply = spec
            .backend
            .window()
            .map_or(DEFAULT_REPLY_ESTIMATE, |w| u64::from(w.reply_tokens));
        quota::check_each(b, agent_used, &users, prompt_tokens + reply)
    }

    /// Counts a call's tokens toward the budgets: the provider's figures, or the estimate when it
    /// reported none; shared among the humans answered. Kept for every agent, limited or not.
    fn record_usage(&self, completion: &Completion, prompt_tokens: u64) {
        if self.dry() {
            return;
        }
        let tokens = completion.usage.as_ref().map_or_else(
            || prompt_tokens + budget::estimate_tokens(&completion.text) as u64,
            |u| u.input_tokens + u.output_tokens,
        );
        let humans = self.humans();
        let share = quota::share(tokens, humans.len());
        let users: Vec<(u64, u64)> = humans.into_iter().map(|u| (u, share)).collect();
        let name = self.name();
        if let Err(e) = self
            .spec
            .store
            .add_usage(name, tokens, &users, &[name, TROUPE], now_ms())
        {
            tracing::warn!(agent = %name, error = %e, "cannot count token usage");
        }
        if let Err(e) = self
            .spec
            .store
            .add_channel_usage(name, self.latest.channel_id, tokens, now_ms())
        {
            tracing::warn!(agent = %name, error = %e, "cannot count token usage");
        }
    }

    /// A remembered turn as the model sees it, agents' mentions readable (`@Basil`).
    fn prompt_turn(&self, turn: &MemoryTurn) -> PromptTurn {
        let mut t = turn.to_prompt();
        t.content = self.spec.cast.readable(&t.content);
        t
    }

    fn log_fit(&self, fit: &budget::Fit, budget: usize, why: &str) {
        if fit.dropped > 0 || fit.cut {
            tracing::info!(agent = %self.name(), message_id = self.latest.id, dropped = fit.dropped, cut = fit.cut, budget, "prompt trimmed to fit {why}");
        }
    }

    /// Records what was sent: chain lengths of the parts, and, once every part is out, the
    /// answered messages (which ends them).
    async fn after_delivery(&self, memory: Vec<MemoryTurn>, reply: &Reply, delivered: Delivered) -> TurnOutcome {
        let name = self.name();
        telemetry::replies_sent(name, delivered.message_ids.len());
        if let Some(e) = &delivered.error {
            telemetry::discord_rest_error(e.status);
        }
        if !self.dry() {
            for id in &delivered.message_ids {
                if let Err(e) = self.spec.store.record_chain(*id, reply.chain) {
                    tracing::warn!(agent = %name, error = %e, "cannot record a chain length");
                }
            }
        }
        match delivered.error {
            None => {
                let parts = delivered.parts_done;
                match self.record_answered().await {
                    Ok(()) => TurnOutcome {
                        memory,
                        parts_done: parts,
                        result: Ok(()),
                    },
                    Err(failure) => self.failed(memory, parts, failure),
                }
            }
            Some(e) if e.is_transient() => {
                tracing::warn!(agent = %name, message_id = self.latest.id, status = ?e.status, parts_done = delivered.parts_done, reason = %e.reason, "discord did not take the reply; it will be sent again");
                let failure = TurnFailure::retry(Cause::Delivery, e.to_string());
                self.failed(memory, delivered.parts_done, failure)
            }
            Some(e) => {
                tracing::error!(agent = %name, message_id = self.latest.id, status = ?e.status, parts_done = delivered.parts_done, reason = %e.reason, "discord refused the reply");
                // Remember only what the channel shows: never a reply Discord refused.
                let shown = self.shown(memory, &reply.text, delivered.parts_done);
                if let Err(failure) = self.save(&shown).await {
                    return self.failed(shown, delivered.parts_done, failure);
                }
                let failure = TurnFailure::permanent(Cause::Delivery, e.to_string());
                self.failed(shown, delivered.parts_done, failure)
            }
        }
    }

    /// Memory without the undelivered rest of the reply to the latest message.
    fn shown(&self, mut memory: Vec<MemoryTurn>, text: &str, parts_done: usize) -> Vec<MemoryTurn> {
        memory.retain(|t| !(t.assistant && t.message_id == self.latest.id));
        if parts_done > 0 {
            let parts = crate::split::split_message(text, crate::split::DISCORD_LIMIT);
            let shown = parts[..parts_done.min(parts.len())].join("\n");
            let (content, cut) = match shown.strip_suffix(CUT_NOTE) {
                Some(model_text) => (model_text.to_string(), true),
                None => (shown, false),
            };
            memory.push(MemoryTurn {
                assistant: true,
                author: self.name().to_string(),
                content,
                message_id: self.latest.id,
                time_ms: now_ms(),
                cut,
                author_id: None,
                attachments: Vec::new(),
            });
            memory::trim(&mut memory, self.spec.config.memory_limits);
        }
        memory
    }

    /// Gives up on the batch: the notice (unless silent or past the chain limit), then the
    /// answered record. Memory is not touched: the notice is not something the model said.
    async fn give_up(&self, memory: Vec<MemoryTurn>, notice: &str) -> TurnOutcome {
        // A reply streamed before the failure: its messages become the notice (or go, when the
        // notice is silence), never left half-written.
        let existing = match self.dry() {
            true => Vec::new(),
            false => self
                .spec
                .store
                .stream_parts(self.name(), self.latest.id)
                .unwrap_or_default(),
        };
        if !existing.is_empty() {
            return self.give_up_streamed(memory, notice, &existing).await;
        }
        if !notice.is_empty() && !matches!(self.decision, ReplyDecision::Block { .. }) {
            let reply = Reply {
                channel_id: self.latest.channel_id,
                reply_to: Some(self.latest.id),
                text: notice.to_string(),
                chain: self.decision.chain().unwrap_or(ChainLength::HUMAN.next()),
                tagline: self.spec.discord.tagline.clone(),
                courtesy: None,
                allowed_users: Vec::new(),
                slowmode: self.pacing.slowmode,
                nonce_seed: format!("{}/give-up", self.name()),
                first_part: 0,
                check_existing: self.pacing.check_existing,
            };
            let delivered = Box::pin(self.outbox.deliver(&reply)).await;
            if !self.dry() {
                for id in &delivered.message_ids {
                    let _ = self.spec.store.record_chain(*id, reply.chain);
                }
            }
            match delivered.error {
                None => {}
                Some(e) if e.is_transient() => {
                    return self.failed(memory, 0, TurnFailure::retry(Cause::Delivery, e.to_string()));
                }
                Some(e) => {
                    tracing::error!(agent = %self.name(), message_id = self.latest.id, status = ?e.status, reason = %e.reason, "discord refused the give-up notice; the message stays unanswered");
                }
            }
        }
        match self.record_answered().await {
            Ok(()) => TurnOutcome {
                memory,
                parts_done: 0,
                result: Ok(()),
            },
            Err(failure) => self.failed(memory, 0, failure),
        }
    }

    /// Gives up on a batch whose reply was partly streamed: the first message is edited into the
    /// notice and the others deleted (all deleted for a silent notice).
    async fn give_up_streamed(&self, memory: Vec<MemoryTurn>, notice: &str, existing: &[u64]) -> TurnOutcome {
        let (tx, rx) = tokio::sync::watch::channel(String::new());
        let none = |_: &str| Vec::new();
        let same = |t: &str| t.to_string();
        let reply = Reply {
            courtesy: None,
            allowed_users: Vec::new(),
            first_part: 0,
            nonce_seed: format!("{}/give-up", self.name()),
            ..self.reply(String::new())
        };
        let target = super::streaming::StreamTarget {
            outbox: self.outbox,
            store: Some(&self.spec.store),
            agent: self.name(),
            answers: self.latest.id,
            reply,
            typing: None,
            allowed_users: &none,
            render: &same,
        };
        let streamed = if notice.is_empty() {
            let mut error = None;
            for id in existing.iter().rev() {
                if let Err(e) = self.outbox.delete_part(self.latest.channel_id, *id).await {
                    error = Some(e);
                    break;
                }
            }
            super::streaming::Streamed {
                complete: error.is_none(),
                error,
                ..Default::default()
            }
        } else {
            let ready = async { Ok::<_, ()>((notice.to_string(), ())) };
            let streamed = super::streaming::run(&target, existing, rx, ready).await.1;
            drop(tx);
            streamed
        };
        match streamed.error {
            None => {}
            Some(e) if e.is_transient() => {
                return self.failed(memory, 0, TurnFailure::retry(Cause::Delivery, e.to_string()));
            }
            Some(e) => {
                tracing::error!(agent = %self.name(), message_id = self.latest.id, status = ?e.status, reason = %e.reason, "discord refused the give-up notice's edit");
            }
        }
        match self.record_answered().await {
            Ok(()) => {
                let _ = self.spec.store.remove_stream_parts(self.name(), self.latest.id);
                TurnOutcome {
                    memory,
                    parts_done: 0,
                    result: Ok(()),
                }
            }
            Err(failure) => self.failed(memory, 0, failure),
        }
    }

    /// The completion record: keyed by the answered messages themselves, whatever the reply
    /// looks like (references are optional on Discord's side). Durable before the turn ends.
    async fn record_answered(&self) -> Result<(), TurnFailure> {
        if self.dry() {
            return Ok(());
        }
        let ids: Vec<u64> = self.batch.iter().map(|m| m.id).collect();
        self.spec
            .store
            .record_answered(self.name(), &ids)
            .await
            .map_err(|e| TurnFailure::retry(Cause::Store, e.to_string()))
    }

    /// Saves memory durably (dry runs leave the store untouched).
    async fn save(&self, memory: &[MemoryTurn]) -> Result<(), TurnFailure> {
        if self.dry() {
            return Ok(());
        }
        self.spec
            .store
            .save_memory(self.name(), self.key, memory)
            .await
            .map_err(|e| TurnFailure::retry(Cause::Store, e.to_string()))
    }

    fn failed(&self, memory: Vec<MemoryTurn>, parts_done: usize, failure: TurnFailure) -> TurnOutcome {
        TurnOutcome {
            memory,
            parts_done,
            result: Err(failure),
        }
    }
}

/// The largest reply assumed for a backend that declares no token limit (command, echo).
const DEFAULT_REPLY_ESTIMATE: u64 = 1_024;

/// The distinct humans whose messages are in `batch`.
pub fn humans(batch: &[Inbound]) -> Vec<u64> {
    let mut users: Vec<u64> = batch
        .iter()
        .filter(|m| !m.author_is_bot && m.webhook_id.is_none())
        .map(|m| m.author_id)
        .collect();
    users.sort_unstable();
    users.dedup();
    users
}

/// The store scope of an agent's user budgets.
fn user_scope(spec: &SharedSpec) -> &str {
    match spec.config.budgets.user_scope {
        quota::UserScope::Agent => &spec.config.name,
        quota::UserScope::Troupe => TROUPE,
    }
}

/// A turn found a budget spent: the notice to send, if the humans it answers have not been
/// sent it in this window (it is recorded as sent now), or `None` for silence.
pub fn budget_notice(spec: &SharedSpec, batch: &[Inbound]) -> Option<String> {
    let b = &spec.config.budgets;
    let users = humans(batch);
    if b.notice.is_empty() || users.is_empty() {
        return None;
    }
    let (name, now) = (&spec.config.name, now_ms());
    let due = users.iter().any(|u| {
        let last = spec.store.budget_notice_sent(name, *u).unwrap_or(None);
        quota::notice_due(last, b.window, now)
    });
    if !due {
        return None;
    }
    for u in &users {
        if let Err(e) = spec.store.record_budget_notice(name, *u, now) {
            tracing::warn!(agent = %name, error = %e, "cannot record a budget notice");
        }
    }
    Some(b.notice.clone())
}

/// Unix time in milliseconds.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Users a reply may ping: agents of this troupe it mentions, never itself, nobody else.
pub fn allowed_users(text: &str, cast: &Cast, me: &[u64]) -> Vec<u64> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_other_cast_members_may_be_pinged() {
        let cast = Cast::default();
        cast.add(1);
        cast.add(2);
        let text = "<@1> <@!2> <@3> <@&1> <@2> <@1x> <@";
        assert_eq!(allowed_users(text, &cast, &[2]), vec![1]);
        assert_eq!(allowed_users(text, &cast, &[]), vec![1, 2]);
    }

    #[test]
    fn model_errors_retry_unless_retrying_cannot_help() {
        let auth = TurnFailure::from_llm(&LlmError::Auth("401".into()));
        assert!(auth.permanent && auth.cause == Cause::Auth);
        let bad = TurnFailure::from_llm(&LlmError::BadRequest("400".into()));
        assert!(bad.permanent && bad.cause == Cause::BadRequest);
        let limited = TurnFailure::from_llm(&LlmError::RateLimit {
            retry_after: Some(Duration::from_secs(300)),
            detail: "429".into(),
        });
        assert!(!limited.permanent);
        assert_eq!(limited.retry_after, Some(Duration::from_secs(300)));
        for e in [
            LlmError::Timeout(crate::llm::error::TimeoutPhase::Total),
            LlmError::Truncated("cut".into()),
            LlmError::Unavailable {
                retry_after: None,
                detail: "connection refused".into(),
            },
            LlmError::Overloaded {
                retry_after: None,
                detail: "529".into(),
            },
        ] {
            let f = TurnFailure::from_llm(&e);
            assert!(!f.permanent && f.cause == Cause::Llm, "{e}");
        }
    }

    #[test]
    fn a_refused_prompt_does_not_count_toward_the_breaker() {
        assert!(!counts_toward_breaker(&LlmError::BadRequest("too long".into())));
        assert!(!counts_toward_breaker(&LlmError::ContextOverflow(
            "prompt is too long".into()
        )));
        assert!(counts_toward_breaker(&LlmError::Auth("401".into())));
        assert!(counts_toward_breaker(&LlmError::Timeout(
            crate::llm::error::TimeoutPhase::FirstToken
        )));
    }
}
