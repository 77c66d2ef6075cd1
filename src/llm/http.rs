//! The HTTP backends: OpenAI-compatible chat completions and the Anthropic Messages API, both
//! streamed over server-sent events.
//!
//! One [`HttpBackend::complete`] runs the progressive token strategy ([`super::progressive`]);
//! each of its requests is retried on transient failures ([`super::retry`]); each attempt has a
//! connect timeout, a first-token timeout and a total timeout, and is read with the existing
//! SSE parser and provider state machines.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;

use reqwest::header::HeaderMap;
use tokio::time::{timeout_at, Instant};

use super::anthropic_stream::AnthropicStream;
use super::budget::Window;
use super::error::TimeoutPhase;
use super::openai_stream::OpenAiStream;
use super::progressive::{self, Step};
use super::sse::{SseEvent, SseParser};
use super::stream::{classify_error_body, truncate_chars, Completion, StreamError};
use super::wire::Dialect;
use super::{LlmError, Prompt, SetupError};
use crate::config::HttpSettings;
use crate::ops::telemetry;
use crate::secret::Secret;

/// Where a streaming call publishes the reply's text so far, if anywhere.
pub type Progress<'a> = Option<&'a tokio::sync::watch::Sender<String>>;

/// Most bytes of an error response body read (the rest is not needed to classify it).
const MAX_ERROR_BODY_BYTES: usize = 64 << 10;

/// An OpenAI-compatible or Anthropic backend.
pub struct HttpBackend {
    name: String,
    dialect: Dialect,
    settings: HttpSettings,
    key: Option<Secret>,
    client: reqwest::Client,
    /// Cleared when the server rejects `stream_options`; later requests go without it.
    usage_accepted: AtomicBool,
}

impl std::fmt::Debug for HttpBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpBackend")
            .field("name", &self.name)
            .field("dialect", &self.dialect)
            .field("base_url", &self.settings.base_url)
            .field("model", &self.settings.model)
            .field("key", &self.key)
            .finish()
    }
}

impl HttpBackend {
    /// A backend named `name`; reads its API key now.
    pub fn new(name: &str, dialect: Dialect, settings: &HttpSettings) -> Result<Self, SetupError> {
        let key = settings.api_key.resolve(name).map_err(SetupError)?;
        let client = reqwest::Client::builder()
            .connect_timeout(settings.timeouts.connect)
            .user_agent(concat!("troupe/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| SetupError(format!("backend `{name}`: cannot build the HTTP client: {e}")))?;
        Ok(Self {
            name: name.to_string(),
            dialect,
            settings: settings.clone(),
            key,
            client,
            usage_accepted: AtomicBool::new(true),
        })
    }

    /// The model's context window and the largest reply the token ladder asks for.
    pub fn window(&self) -> Window {
        Window {
            context_tokens: self.settings.context_tokens,
            reply_tokens: self.settings.tokens.until,
        }
    }

    /// Completes a prompt with the progressive token strategy.
    pub async fn complete(&self, prompt: &Prompt) -> Result<Completion, LlmError> {
        self.complete_streaming(prompt, None).await
    }

    /// The same, publishing the reply's text so far to `progress` as tokens arrive: the whole
    /// reply (a continuation's text follows what it continues), starting over when a request is
    /// retried or regenerated.
    pub async fn complete_streaming(&self, prompt: &Prompt, progress: Progress<'_>) -> Result<Completion, LlmError> {
        let ladder = &self.settings.tokens;
        progressive::complete(ladder, self.settings.on_truncation, |step| async move {
            telemetry::llm_ladder_step(&self.name, step.mode(ladder));
            self.request(prompt, &step, progress).await
        })
        .await
    }

    /// One request of the strategy, retried on transient failures. Each HTTP request is counted
    /// (outcome, duration, and the usage it reported) as it ends, so a turn that fails later
    /// still accounts for what its earlier requests used.
    async fn request(&self, prompt: &Prompt, step: &Step, progress: Progress<'_>) -> Result<Completion, LlmError> {
        let policy = &self.settings.retries;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let with_usage = self.settings.stream_usage && self.usage_accepted.load(Ordering::Relaxed);
            let started = Instant::now();
            let result = self.attempt(prompt, step, with_usage, progress).await;
            let outcome = result.as_ref().map_or_else(LlmError::kind, |_| "ok");
            telemetry::llm_request(&self.name, outcome, Some(started.elapsed()));
            let err = match result {
                Ok(c) => {
                    if let Some(usage) = c.usage {
                        telemetry::llm_tokens(&prompt.agent, usage.input_tokens, usage.output_tokens);
                    }
                    return Ok(c);
                }
                Err(e) => e.scrub(self.key.as_ref()),
            };
            if with_usage && matches!(&err, LlmError::BadRequest(d) if d.contains("stream_options")) {
                // Some servers reject `stream_options`: go on without usage accounting.
                tracing::warn!(backend = %self.name, error = %err, "server rejects stream_options; asking without usage from now on");
                self.usage_accepted.store(false, Ordering::Relaxed);
                if attempt < policy.max_attempts {
                    continue;
                }
            }
            let delay = crate::retry::next_delay(
                policy,
                attempt,
                err.is_transient(),
                err.retry_after(),
                rand::random::<f64>(),
            );
            let Some(delay) = delay else {
                tracing::warn!(backend = %self.name, attempt, kind = err.kind(), error = %err, "LLM request failed");
                return Err(err);
            };
            tracing::warn!(
                backend = %self.name,
                attempt,
                kind = err.kind(),
                error = %err,
                delay_ms = delay.as_millis() as u64,
                "LLM request failed; retrying"
            );
            telemetry::llm_retry(&self.name);
            tokio::time::sleep(delay).await;
        }
    }

    /// One HTTP request and its stream, within the timeouts.
    async fn attempt(
        &self,
        prompt: &Prompt,
        step: &Step,
        with_usage: bool,
        progress: Progress<'_>,
    ) -> Result<Completion, LlmError> {
        let t = &self.settings.timeouts;
        let start = Instant::now();
        let total_deadline = start + t.total;
        let first_deadline = start + t.first_token.min(t.total);
        let body = self.dialect.body(&self.settings, prompt, step, with_usage);
        let mut req = self
            .client
            .post(self.dialect.url(&self.settings.base_url))
            .header("accept", "text/event-stream")
            .json(&body);
        req = match (self.dialect, &self.key) {
            (Dialect::OpenAi, Some(key)) => req.bearer_auth(key.expose()),
            (Dialect::OpenAi, None) => req,
            (Dialect::Anthropic, key) => {
                let req = req.header("anthropic-version", &self.settings.anthropic_version);
                match key {
                    Some(key) => req.header("x-api-key", key.expose()),
                    None => req,
                }
            }
        };
        tracing::debug!(backend = %self.name, max_tokens = step.max_tokens, continuing = step.continue_from.is_some(), "LLM request");
        let mut resp = match timeout_at(first_deadline, req.send()).await {
            Err(_) => return Err(LlmError::Timeout(TimeoutPhase::FirstToken)),
            Ok(Err(e)) => return Err(send_error(&e)),
            Ok(Ok(r)) => r,
        };
        let status = resp.status();
        if !status.is_success() {
            let retry_after = retry_after(resp.headers());
            let body = read_error_body(&mut resp, total_deadline).await;
            let (kind, message) = classify_error_body(status.as_u16(), &body);
            return Err(LlmError::from_provider(
                kind,
                Some(status.as_u16()),
                &message,
                retry_after,
            ));
        }
        let mut parser = SseParser::new();
        let mut acc = Accumulator::new(self.dialect);
        let mut got_text = false;
        loop {
            let (deadline, phase) = if got_text {
                (total_deadline, TimeoutPhase::Total)
            } else {
                (first_deadline, TimeoutPhase::FirstToken)
            };
            let chunk = match timeout_at(deadline, resp.chunk()).await {
                Err(_) => return Err(LlmError::Timeout(phase)),
                Ok(Err(e)) => {
                    return Err(LlmError::Truncated(format!(
                        "connection lost after {} characters of reply: {}",
                        acc.text_len(),
                        describe(&e)
                    )))
                }
                Ok(Ok(None)) => break,
                Ok(Ok(Some(bytes))) => bytes,
            };
            let mut more = false;
            for ev in parser.push(&chunk) {
                more |= acc.on_event(&ev)?;
            }
            got_text |= more;
            if let Some(tx) = progress.filter(|_| more) {
                let so_far = match &step.continue_from {
                    Some(before) => self.dialect.join(before, acc.text()),
                    None => acc.text().to_string(),
                };
                tx.send_replace(so_far);
            }
        }
        for ev in parser.finish() {
            acc.on_event(&ev)?;
        }
        let mut c = acc.finish()?;
        if let Some(so_far) = &step.continue_from {
            c.text = self.dialect.join(so_far, &c.text);
        }
        Ok(c)
    }
}

/// Either provider's stream state machine.
enum Accumulator {
    OpenAi(OpenAiStream),
    Anthropic(AnthropicStream),
}

impl Accumulator {
    fn new(dialect: Dialect) -> Self {
        match dialect {
            Dialect::OpenAi => Accumulator::OpenAi(OpenAiStream::new()),
            Dialect::Anthropic => Accumulator::Anthropic(AnthropicStream::new()),
        }
    }

    /// Feeds an event; true when it added text.
    fn on_event(&mut self, ev: &SseEvent) -> Result<bool, LlmError> {
        let r = match self {
            Accumulator::OpenAi(s) => s.on_event(ev),
            Accumulator::Anthropic(s) => s.on_event(ev),
        };
        r.map(|t| t.is_some()).map_err(LlmError::from_stream)
    }

    fn text(&self) -> &str {
        match self {
            Accumulator::OpenAi(s) => s.text(),
            Accumulator::Anthropic(s) => s.text(),
        }
    }

    fn text_len(&self) -> usize {
        self.text().chars().count()
    }

    fn finish(self) -> Result<Completion, LlmError> {
        let r: Result<Completion, StreamError> = match self {
            Accumulator::OpenAi(s) => s.finish(),
            Accumulator::Anthropic(s) => s.finish(),
        };
        r.map_err(LlmError::from_stream)
    }
}

/// `retry-after-ms` / `retry-after` of a response.
fn retry_after(headers: &HeaderMap) -> Option<std::time::Duration> {
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    crate::retry::retry_after(get("retry-after-ms"), get("retry-after"), SystemTime::now())
}

/// Reads at most [`MAX_ERROR_BODY_BYTES`] of an error body before `deadline`; whatever was read.
async fn read_error_body(resp: &mut reqwest::Response, deadline: Instant) -> String {
    let mut body = Vec::new();
    while body.len() < MAX_ERROR_BODY_BYTES {
        match timeout_at(deadline, resp.chunk()).await {
            Ok(Ok(Some(bytes))) => body.extend_from_slice(&bytes),
            _ => break,
        }
    }
    body.truncate(MAX_ERROR_BODY_BYTES);
    String::from_utf8_lossy(&body).into_owned()
}

/// The error for a request that got no response.
fn send_error(e: &reqwest::Error) -> LlmError {
    if e.is_connect() && e.is_timeout() {
        return LlmError::Timeout(TimeoutPhase::Connect);
    }
    if e.is_builder() {
        return LlmError::Backend(format!("cannot build the request: {}", describe(e)));
    }
    let what = if e.is_connect() {
        "cannot connect"
    } else {
        "request failed"
    };
    LlmError::Unavailable {
        retry_after: None,
        detail: format!("{what}: {}", describe(e)),
    }
}

/// A reqwest error and its causes on one line, without the URL, shortened.
fn describe(e: &reqwest::Error) -> String {
    let mut text = String::new();
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(e);
    while let Some(s) = source {
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&s.to_string());
        source = s.source();
    }
    if text.is_empty() {
        text = e.to_string();
    }
    truncate_chars(&text, 200)
}
