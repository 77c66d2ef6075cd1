//! A local LLM server for tests and benchmarks. It speaks the OpenAI-compatible streaming chat
//! completions API (`POST /v1/chat/completions`) and the Anthropic Messages API
//! (`POST /v1/messages`), and plays scripted [`Reply`]s in order: text with a time to first token
//! and a per-token delay, cut at the request's token limit like a real model; HTTP errors with
//! `retry-after`; errors in the middle of a stream; dropped connections; streams that end
//! without a finish reason; the last user turn echoed back ([`Reply::echo`]) word by word; a
//! reply of your text cut by an error part way ([`Reply::text_then_error`]). Every request is
//! recorded for assertions.
//!
//! For reliability suites it can also echo markers, so a reply can be traced to the messages it
//! answers ([`Reply::echo_markers`]), and play an outage over everything else
//! ([`LlmTestServer::set_outage`]).
//!
//! A "token" is a word with the whitespace before it (`"Hello"`, `" world"`): see [`tokens`].
//!
//! With [`LlmTestServer::set_context_window`], a request whose prompt (plus `max_tokens`, where
//! the provider counts it) is larger than the window gets that provider's real context-overflow
//! error instead of its scripted reply.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Which API a request used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// OpenAI-compatible chat completions.
    OpenAi,
    /// Anthropic Messages.
    Anthropic,
}

/// One request the server received.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    /// Which API.
    pub format: Format,
    /// Request path.
    pub path: String,
    /// Headers, names lower-case.
    pub headers: Vec<(String, String)>,
    /// The JSON body (`Null` if it was not JSON).
    pub body: Value,
    /// Whether it got the outage reply ([`LlmTestServer::set_outage`]).
    pub outage: bool,
    /// When it arrived (Unix milliseconds), to line it up with other logs.
    pub unix_ms: u64,
}

impl RecordedRequest {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str())
    }

    /// The token limit asked for (`max_tokens`, or OpenAI's `max_completion_tokens`).
    pub fn max_tokens(&self) -> Option<u64> {
        self.body["max_tokens"]
            .as_u64()
            .or_else(|| self.body["max_completion_tokens"].as_u64())
    }

    /// The `messages` array.
    pub fn messages(&self) -> Vec<Value> {
        self.body["messages"].as_array().cloned().unwrap_or_default()
    }
}

/// What the server does with one request.
#[derive(Debug, Clone)]
enum Action {
    Text(String),
    Error {
        status: u16,
        body: String,
        retry_after: Option<String>,
        retry_after_ms: Option<String>,
    },
    MidStreamError {
        after_tokens: usize,
        body: Option<String>,
    },
    Drop {
        after_tokens: usize,
    },
    NoFinish {
        after_tokens: usize,
    },
    EchoMarkers {
        prefix: String,
    },
    Echo,
    TextThenError {
        text: String,
        after_tokens: usize,
    },
}

/// A scripted reply. Build one with a constructor, then adjust latency with the builder methods.
#[derive(Debug, Clone)]
pub struct Reply {
    action: Action,
    ttft: Duration,
    token_delay: Duration,
}

impl Reply {
    fn new(action: Action) -> Self {
        Self {
            action,
            ttft: Duration::ZERO,
            token_delay: Duration::ZERO,
        }
    }

    /// Streams `text`, cut at the request's token limit (finish `length` / `max_tokens`),
    /// otherwise finished normally (`stop` / `end_turn`).
    pub fn text(text: impl Into<String>) -> Self {
        Self::new(Action::Text(text.into()))
    }

    /// Answers with an HTTP error and this body, without streaming.
    pub fn error(status: u16, body: impl Into<String>) -> Self {
        Self::new(Action::Error {
            status,
            body: body.into(),
            retry_after: None,
            retry_after_ms: None,
        })
    }

    /// Adds a `retry-after` header (an error reply only).
    pub fn retry_after(mut self, value: impl Into<String>) -> Self {
        if let Action::Error { retry_after, .. } = &mut self.action {
            *retry_after = Some(value.into());
        }
        self
    }

    /// Adds a `retry-after-ms` header (an error reply only).
    pub fn retry_after_ms(mut self, value: impl Into<String>) -> Self {
        if let Action::Error { retry_after_ms, .. } = &mut self.action {
            *retry_after_ms = Some(value.into());
        }
        self
    }

    /// Streams `after_tokens` tokens of `text`... then an error event (OpenAI:
    /// `{"error":{..,"type":"server_error"}}`; Anthropic: `event: error` with `overloaded_error`),
    /// or the given `data:` payload, and closes.
    pub fn mid_stream_error(after_tokens: usize, payload: Option<&str>) -> Self {
        Self::new(Action::MidStreamError {
            after_tokens,
            body: payload.map(String::from),
        })
    }

    /// Streams `after_tokens` tokens, then drops the connection.
    pub fn dropped_after(after_tokens: usize) -> Self {
        Self::new(Action::Drop { after_tokens })
    }

    /// Streams `after_tokens` tokens, then ends the stream cleanly (`[DONE]` / `message_stop`)
    /// without a finish reason.
    pub fn without_finish(after_tokens: usize) -> Self {
        Self::new(Action::NoFinish { after_tokens })
    }

    /// Streams `"ack <marker> <marker> ..."`: every marker (`prefix` followed by letters and
    /// digits, e.g. `mk42` for prefix `mk`) in the user turns after the request's last assistant
    /// turn, in order, or `"ack (no marker)"`. The reply thus names the messages it answers,
    /// even when several are answered together; see [`echo_text`].
    pub fn echo_markers(prefix: impl Into<String>) -> Self {
        Self::new(Action::EchoMarkers { prefix: prefix.into() })
    }

    /// Streams the last user turn's text back (`"echo: <text>"`), token by token: with
    /// [`Reply::token_delay`], a reply written word by word.
    pub fn echo() -> Self {
        Self::new(Action::Echo)
    }

    /// Streams the first `after_tokens` tokens of `text`, then the provider's mid-stream error
    /// (as [`Reply::mid_stream_error`]): a reply that fails part way, with text of your choosing.
    pub fn text_then_error(text: impl Into<String>, after_tokens: usize) -> Self {
        Self::new(Action::TextThenError {
            text: text.into(),
            after_tokens,
        })
    }

    /// Waits this long before the first token (the stream's preamble goes out at once).
    pub fn ttft(mut self, d: Duration) -> Self {
        self.ttft = d;
        self
    }

    /// Waits this long between tokens.
    pub fn token_delay(mut self, d: Duration) -> Self {
        self.token_delay = d;
        self
    }
}

/// The text the failure replies stream before failing.
const FILLER: &str = "partial reply that will not finish because something goes wrong";

/// Splits text into tokens: each word with the whitespace before it.
pub fn tokens(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut in_word = false;
    for (i, c) in text.char_indices() {
        if c.is_whitespace() {
            if in_word {
                out.push(&text[start..i]);
                start = i;
                in_word = false;
            }
        } else {
            in_word = true;
        }
    }
    if start < text.len() {
        out.push(&text[start..]);
    }
    out
}

/// The text of [`Reply::echo_markers`] for a request body (either format): the markers in the
/// user turns that follow the last assistant turn.
pub fn echo_text(request: &Value, prefix: &str) -> String {
    let messages = request["messages"].as_array().map(Vec::as_slice).unwrap_or_default();
    let fresh = messages
        .iter()
        .rposition(|m| m["role"] == "assistant")
        .map_or(messages, |i| &messages[i + 1..]);
    let mut found: Vec<&str> = Vec::new();
    for m in fresh.iter().filter(|m| m["role"] == "user") {
        let texts: Vec<&str> = match &m["content"] {
            Value::String(s) => vec![s.as_str()],
            // Anthropic's content blocks.
            Value::Array(blocks) => blocks.iter().filter_map(|b| b["text"].as_str()).collect(),
            _ => Vec::new(),
        };
        for text in texts {
            found.extend(markers(text, prefix));
        }
    }
    if found.is_empty() {
        "ack (no marker)".to_string()
    } else {
        format!("ack {}", found.join(" "))
    }
}

/// The text of [`Reply::echo`] for a request body (either format): `"echo: "` and the last user
/// turn's text.
pub fn echo_last(request: &Value) -> String {
    let messages = request["messages"].as_array().map(Vec::as_slice).unwrap_or_default();
    let last = messages.iter().rev().find(|m| m["role"] == "user");
    let text = match last.map(|m| &m["content"]) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(blocks)) => blocks
            .iter()
            .filter_map(|b| b["text"].as_str())
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    };
    format!("echo: {text}")
}

/// Every `prefix` followed by at least one ASCII letter or digit, not preceded by one.
fn markers<'a>(text: &'a str, prefix: &str) -> Vec<&'a str> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(at) = text[from..].find(prefix).map(|i| from + i) {
        let tail = &text[at + prefix.len()..];
        let len = tail.find(|c: char| !c.is_ascii_alphanumeric()).unwrap_or(tail.len());
        let starts_word = !text[..at].ends_with(|c: char| c.is_ascii_alphanumeric());
        if len > 0 && starts_word {
            out.push(&text[at..at + prefix.len() + len]);
        }
        from = at + prefix.len() + len;
    }
    out
}

/// `n` tokens of text: `"t0 t1 t2 ..."`.
pub fn words(n: usize) -> String {
    (0..n).map(|i| format!("t{i}")).collect::<Vec<_>>().join(" ")
}

#[derive(Debug)]
struct Inner {
    script: VecDeque<Reply>,
    default: Reply,
    outage: Option<Reply>,
    requests: Vec<RecordedRequest>,
    api_key: Option<String>,
    window: Option<(u64, OverflowStyle)>,
}

type Shared = Arc<Mutex<Inner>>;

/// A running test server; stopped when dropped.
#[derive(Debug)]
pub struct LlmTestServer {
    url: String,
    shared: Shared,
    task: JoinHandle<()>,
}

impl LlmTestServer {
    /// Starts a server on `127.0.0.1` at a free port.
    pub async fn start() -> std::io::Result<Self> {
        let shared: Shared = Arc::new(Mutex::new(Inner {
            script: VecDeque::new(),
            default: Reply::text("Hello from the LLM test server."),
            outage: None,
            requests: Vec::new(),
            api_key: None,
            window: None,
        }));
        let app = Router::new()
            .route("/v1/chat/completions", post(openai))
            .route("/chat/completions", post(openai))
            .route("/v1/messages", post(anthropic))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        // Streams are many small writes: without TCP_NODELAY, Nagle holds each chunk until the
        // previous one is acknowledged, and the client's delayed ACK adds ~40 ms per reply.
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { url, shared, task })
    }

    /// Starts a server as [`LlmTestServer::start`] does, but on a runtime of its own thread, so
    /// that its replies keep their latency when the caller's runtime is busy (a benchmark whose
    /// stage shares one runtime with the server: a 200 ms reply there took 213–220 ms). Dropping
    /// the server stops it; its thread then stays parked until the process exits.
    pub async fn start_on_own_thread() -> std::io::Result<Self> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name("llm-test-server".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    Ok(runtime) => runtime,
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return;
                    }
                };
                runtime.block_on(async move {
                    let _ = tx.send(Self::start().await);
                    std::future::pending::<()>().await;
                });
            })?;
        rx.await
            .map_err(|_| std::io::Error::other("the LLM test server's thread ended before it started"))?
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The `base_url` for an OpenAI-compatible backend (`…/v1`).
    pub fn openai_base_url(&self) -> String {
        format!("{}/v1", self.url)
    }

    /// The `base_url` for an Anthropic backend (the host).
    pub fn anthropic_base_url(&self) -> String {
        self.url.clone()
    }

    /// Queues a reply; queued replies are played in order, then the default one.
    pub fn push(&self, reply: Reply) {
        self.lock().script.push_back(reply);
    }

    /// The reply used when the queue is empty.
    pub fn set_default(&self, reply: Reply) {
        self.lock().default = reply;
    }

    /// Starts an outage: every request gets `reply` (e.g. `Reply::error(503, ..)`, or
    /// `Reply::dropped_after(0)`), whatever is queued, until `None` ends it. Queued replies wait.
    pub fn set_outage(&self, reply: Option<Reply>) {
        self.lock().outage = reply;
    }

    /// Requires this key (`Authorization: Bearer` or `x-api-key`); others get the provider's 401.
    pub fn require_api_key(&self, key: &str) {
        self.lock().api_key = Some(key.to_string());
    }

    /// Gives the model a context window of `tokens`: larger requests get the provider's overflow
    /// error (`style` for the OpenAI-compatible endpoint; Anthropic's own on `/v1/messages`) and
    /// do not use up a scripted reply.
    pub fn set_context_window(&self, tokens: u64, style: OverflowStyle) {
        self.lock().window = Some((tokens, style));
    }

    /// Every request so far, oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.lock().requests.clone()
    }

    /// The requests after the first `n`, oldest first (for polling a long run).
    pub fn requests_since(&self, n: usize) -> Vec<RecordedRequest> {
        let inner = self.lock();
        inner.requests.get(n..).map(<[_]>::to_vec).unwrap_or_default()
    }

    /// Stops serving.
    pub fn stop(&self) {
        self.task.abort();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.shared.lock().expect("test server lock")
    }
}

impl Drop for LlmTestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn openai(State(shared): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    handle(Format::OpenAi, "/v1/chat/completions", &shared, &headers, &body)
}

async fn anthropic(State(shared): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    handle(Format::Anthropic, "/v1/messages", &shared, &headers, &body)
}

fn handle(format: Format, path: &str, shared: &Shared, headers: &HeaderMap, body: &[u8]) -> Response {
    let body: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let (reply, api_key) = {
        let mut inner = shared.lock().expect("test server lock");
        let outage = inner.outage.is_some();
        inner.requests.push(RecordedRequest {
            format,
            path: path.to_string(),
            headers: headers
                .iter()
                .map(|(n, v)| (n.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
                .collect(),
            body: body.clone(),
            outage,
            unix_ms: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
        });
        let reply = match &inner.outage {
            Some(outage) => outage.clone(),
            None => {
                if let Some(refused) = inner.window.and_then(|(n, style)| overflow(format, style, n, &body)) {
                    return refused;
                }
                inner.script.pop_front().unwrap_or_else(|| inner.default.clone())
            }
        };
        (reply, inner.api_key.clone())
    };
    let header = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
    if let Some(key) = api_key {
        let sent = match format {
            Format::OpenAi => header("authorization").and_then(|v| v.strip_prefix("Bearer ")),
            Format::Anthropic => header("x-api-key"),
        };
        if sent != Some(key.as_str()) {
            return unauthorized(format);
        }
    }
    if format == Format::Anthropic && header("anthropic-version").is_none() {
        return error_response(
            400,
            r#"{"type":"error","error":{"type":"invalid_request_error","message":"anthropic-version: header is required"}}"#,
        );
    }
    if !body.is_object() {
        return error_response(
            400,
            r#"{"error":{"message":"invalid JSON body","type":"invalid_request_error"}}"#,
        );
    }
    if let Action::Error {
        status,
        body,
        retry_after,
        retry_after_ms,
    } = &reply.action
    {
        let mut resp = error_response(*status, body);
        let h = resp.headers_mut();
        if let Some(v) = retry_after.as_ref().and_then(|v| v.parse().ok()) {
            h.insert("retry-after", v);
        }
        if let Some(v) = retry_after_ms.as_ref().and_then(|v| v.parse().ok()) {
            h.insert("retry-after-ms", v);
        }
        return resp;
    }
    let reply = match reply.action {
        Action::EchoMarkers { prefix } => Reply {
            action: Action::Text(echo_text(&body, &prefix)),
            ..reply
        },
        Action::Echo => Reply {
            action: Action::Text(echo_last(&body)),
            ..reply
        },
        _ => reply,
    };
    stream(format, reply, &body)
}

fn unauthorized(format: Format) -> Response {
    let body = match format {
        Format::OpenAi => {
            r#"{"error":{"message":"Incorrect API key provided. You can find your API key at https://platform.openai.com/account/api-keys.","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}"#
        }
        Format::Anthropic => {
            r#"{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}"#
        }
    };
    error_response(401, body)
}

fn error_response(status: u16, body: &str) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let content_type = if body.trim_start().starts_with('{') {
        "application/json"
    } else {
        "text/plain"
    };
    (status, [("content-type", content_type)], body.to_string()).into_response()
}

/// What ends a stream.
enum Ending {
    Finish(&'static str),
    Error(String),
    Drop,
    NoFinish,
}

/// Starts streaming a reply on a 200 response.
// Why this is long: one scripted reply's stream in both providers' formats, event by event.
fn stream(format: Format, reply: Reply, request: &Value) -> Response {
    let limit = request["max_tokens"]
        .as_u64()
        .or_else(|| request["max_completion_tokens"].as_u64())
        .map_or(usize::MAX, |n| n as usize);
    let include_usage = format == Format::Anthropic || request["stream_options"]["include_usage"] == json!(true);
    let model = request["model"].as_str().unwrap_or("test-model").to_string();
    let input_tokens = tokens(&request["messages"].to_string()).len() + tokens(&request["system"].to_string()).len();
    let (text, ending) = match reply.action {
        Action::Text(t) => {
            let all = tokens(&t);
            if all.len() > limit {
                let reason = if format == Format::OpenAi {
                    "length"
                } else {
                    "max_tokens"
                };
                (all[..limit].concat(), Ending::Finish(reason))
            } else {
                let reason = if format == Format::OpenAi { "stop" } else { "end_turn" };
                (t.clone(), Ending::Finish(reason))
            }
        }
        Action::MidStreamError { after_tokens, body } => {
            let payload = body.unwrap_or_else(|| match format {
                Format::OpenAi => r#"{"error":{"message":"The server had an error while processing your request.","type":"server_error","code":null}}"#.to_string(),
                Format::Anthropic => r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#.to_string(),
            });
            (prefix(after_tokens), Ending::Error(payload))
        }
        Action::TextThenError { text, after_tokens } => {
            let payload = match format {
                Format::OpenAi => {
                    r#"{"error":{"message":"The server had an error while processing your request.","type":"server_error","code":null}}"#
                }
                Format::Anthropic => r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
            };
            let all = tokens(&text);
            (
                all[..after_tokens.min(all.len())].concat(),
                Ending::Error(payload.to_string()),
            )
        }
        Action::Drop { after_tokens } => (prefix(after_tokens), Ending::Drop),
        Action::NoFinish { after_tokens } => (prefix(after_tokens), Ending::NoFinish),
        Action::Error { .. } => unreachable!("errors are answered before streaming"),
        Action::EchoMarkers { .. } | Action::Echo => unreachable!("echoes become text before streaming"),
    };
    let pieces: Vec<String> = tokens(&text).into_iter().map(String::from).collect();
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(16);
    tokio::spawn(async move {
        let send = |s: String| {
            let tx = tx.clone();
            async move { tx.send(Ok(Bytes::from(s))).await.is_ok() }
        };
        let frames = Frames {
            format,
            model,
            input_tokens,
        };
        if !send(frames.preamble()).await {
            return;
        }
        tokio::time::sleep(reply.ttft).await;
        for (i, piece) in pieces.iter().enumerate() {
            if i > 0 {
                tokio::time::sleep(reply.token_delay).await;
            }
            if !send(frames.delta(piece)).await {
                return;
            }
        }
        let tail = match ending {
            Ending::Finish(reason) => frames.finish(reason, pieces.len(), include_usage),
            Ending::Error(payload) => frames.error(&payload),
            Ending::NoFinish => frames.no_finish(),
            Ending::Drop => {
                let _ = tx
                    .send(Err(std::io::Error::new(
                        std::io::ErrorKind::ConnectionAborted,
                        "dropped by the test script",
                    )))
                    .await;
                return;
            }
        };
        send(tail).await;
    });
    let body = futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) });
    Response::builder()
        .status(200)
        .header("content-type", "text/event-stream")
        .header("cache-control", "no-cache")
        .body(Body::from_stream(body))
        .expect("valid response")
}

/// The first `n` tokens of the filler text.
fn prefix(n: usize) -> String {
    let all = tokens(FILLER);
    all[..n.min(all.len())].concat()
}

/// SSE frames of one stream in either format.
struct Frames {
    format: Format,
    model: String,
    input_tokens: usize,
}

impl Frames {
    fn openai_chunk(&self, delta: Value, finish: Option<&str>) -> String {
        let chunk = json!({
            "id": "chatcmpl-test",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        });
        format!("data: {chunk}\n\n")
    }

    fn anthropic_event(kind: &str, data: Value) -> String {
        format!("event: {kind}\ndata: {data}\n\n")
    }

    fn preamble(&self) -> String {
        match self.format {
            // A comment line first, as OpenRouter sends: clients must skip it.
            Format::OpenAi => format!(
                ": OPENROUTER PROCESSING\n\n{}",
                self.openai_chunk(json!({"role": "assistant", "content": ""}), None)
            ),
            Format::Anthropic => [
                Self::anthropic_event(
                    "message_start",
                    json!({"type": "message_start", "message": {
                        "id": "msg_test", "type": "message", "role": "assistant", "model": self.model,
                        "content": [], "stop_reason": null, "stop_sequence": null,
                        "usage": {"input_tokens": self.input_tokens, "output_tokens": 1}}}),
                ),
                Self::anthropic_event(
                    "content_block_start",
                    json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
                ),
                Self::anthropic_event("ping", json!({"type": "ping"})),
            ]
            .concat(),
        }
    }

    fn delta(&self, piece: &str) -> String {
        match self.format {
            Format::OpenAi => self.openai_chunk(json!({"content": piece}), None),
            Format::Anthropic => Self::anthropic_event(
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}}),
            ),
        }
    }

    fn finish(&self, reason: &str, output_tokens: usize, include_usage: bool) -> String {
        match self.format {
            Format::OpenAi => {
                let mut out = self.openai_chunk(json!({}), Some(reason));
                if include_usage {
                    let usage = json!({
                        "id": "chatcmpl-test", "object": "chat.completion.chunk", "created": 0, "model": self.model,
                        "choices": [],
                        "usage": {"prompt_tokens": self.input_tokens, "completion_tokens": output_tokens,
                                  "total_tokens": self.input_tokens + output_tokens},
                    });
                    out.push_str(&format!("data: {usage}\n\n"));
                }
                out.push_str("data: [DONE]\n\n");
                out
            }
            Format::Anthropic => [
                Self::anthropic_event("content_block_stop", json!({"type": "content_block_stop", "index": 0})),
                Self::anthropic_event(
                    "message_delta",
                    json!({"type": "message_delta", "delta": {"stop_reason": reason, "stop_sequence": null},
                           "usage": {"output_tokens": output_tokens}}),
                ),
                Self::anthropic_event("message_stop", json!({"type": "message_stop"})),
            ]
            .concat(),
        }
    }

    fn error(&self, payload: &str) -> String {
        match self.format {
            Format::OpenAi => format!("data: {payload}\n\n"),
            Format::Anthropic => format!("event: error\ndata: {payload}\n\n"),
        }
    }

    fn no_finish(&self) -> String {
        match self.format {
            Format::OpenAi => "data: [DONE]\n\n".to_string(),
            Format::Anthropic => Self::anthropic_event("message_stop", json!({"type": "message_stop"})),
        }
    }
}

/// How an OpenAI-compatible server reports a request larger than its context window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverflowStyle {
    /// OpenAI: the prompt plus `max_tokens` is counted; 400 with `code: context_length_exceeded`.
    OpenAi,
    /// llama.cpp's server: the prompt alone is counted; 400 with `type: exceed_context_size_error`.
    LlamaCpp,
}

/// Tokens of a `content` (or `system`): a string, or the text of its parts (OpenAI content
/// parts, Anthropic blocks); images count nothing.
fn count(content: &Value) -> u64 {
    match content {
        Value::String(s) => tokens(s).len() as u64,
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p["text"].as_str())
            .map(|s| tokens(s).len() as u64)
            .sum(),
        _ => 0,
    }
}

/// The provider's overflow error for `request`, if it does not fit `window` tokens.
fn overflow(format: Format, style: OverflowStyle, window: u64, request: &Value) -> Option<Response> {
    let messages = request["messages"].as_array().map_or(&[][..], Vec::as_slice);
    let prompt = count(&request["system"]) + messages.iter().map(|m| count(&m["content"])).sum::<u64>();
    let reply = request["max_tokens"]
        .as_u64()
        .or_else(|| request["max_completion_tokens"].as_u64())
        .unwrap_or(0);
    let body = match (format, style) {
        (Format::Anthropic, _) if prompt > window => {
            json!({"type": "error", "error": {"type": "invalid_request_error", "message": format!("prompt is too long: {prompt} tokens > {window} maximum")}})
        }
        (Format::Anthropic, _) if prompt + reply > window => {
            json!({"type": "error", "error": {"type": "invalid_request_error", "message": format!("input length and `max_tokens` exceed context limit: {prompt} + {reply} > {window}, decrease input length or `max_tokens` and try again")}})
        }
        (Format::OpenAi, OverflowStyle::OpenAi) if prompt + reply > window => {
            json!({"error": {"message": format!("This model's maximum context length is {window} tokens. However, you requested {} tokens ({prompt} in the messages, {reply} in the completion). Please reduce the length of the messages or completion.", prompt + reply), "type": "invalid_request_error", "param": "messages", "code": "context_length_exceeded"}})
        }
        (Format::OpenAi, OverflowStyle::LlamaCpp) if prompt > window => {
            json!({"error": {"code": 400, "message": "the request exceeds the available context size, try increasing it", "type": "exceed_context_size_error", "n_prompt_tokens": prompt, "n_ctx": window}})
        }
        _ => return None,
    };
    Some(error_response(400, &body.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The caller's runtime is blocked (a synchronous request on its only thread) and the server
    /// on its own thread answers all the same.
    #[tokio::test(flavor = "current_thread")]
    async fn a_server_on_its_own_thread_answers_while_the_callers_runtime_is_blocked() {
        use std::io::{Read, Write};
        let server = LlmTestServer::start_on_own_thread().await.unwrap();
        server.set_default(Reply::text("pong"));
        let addr = server.url.trim_start_matches("http://").to_string();
        let body = r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"stream":true}"#;
        let mut tcp = std::net::TcpStream::connect(&addr).unwrap();
        write!(
            tcp,
            "POST /v1/chat/completions HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut response = String::new();
        tcp.read_to_string(&mut response).unwrap();
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        assert!(response.contains("pong") && response.contains("[DONE]"), "{response}");
    }

    #[test]
    fn content_parts_count_their_text() {
        assert_eq!(count(&json!("a b c")), 3);
        let parts = json!([
            {"type": "text", "text": "a b"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}},
        ]);
        assert_eq!(count(&parts), 2);
        assert_eq!(count(&Value::Null), 0);
    }

    #[test]
    fn tokens_keep_leading_whitespace() {
        assert_eq!(tokens("Hello  world, foo"), ["Hello", "  world,", " foo"]);
        assert_eq!(tokens(" lead"), [" lead"]);
        assert_eq!(tokens(""), Vec::<&str>::new());
        assert_eq!(tokens(&words(300)).len(), 300);
        assert_eq!(tokens(&words(3)).concat(), "t0 t1 t2");
    }

    #[test]
    fn markers_are_whole_words_with_the_prefix() {
        assert_eq!(markers("mk1 a mk22, xmk3 mk (mk4b)", "mk"), ["mk1", "mk22", "mk4b"]);
        assert!(markers("no markers here", "mk").is_empty());
    }

    #[test]
    fn the_echo_names_the_markers_after_the_last_assistant_turn() {
        let body = json!({"messages": [
            {"role": "system", "content": "You are Ada. mk0"},
            {"role": "user", "content": "alice: mk1"},
            {"role": "assistant", "content": "ack mk1"},
            {"role": "user", "content": "alice: <@1> mk2 hi\nbob: mk3"},
        ]});
        assert_eq!(echo_text(&body, "mk"), "ack mk2 mk3");
        let anthropic = json!({"messages": [{"role": "user", "content": [{"type": "text", "text": "mk7"}]}]});
        assert_eq!(echo_text(&anthropic, "mk"), "ack mk7");
        assert_eq!(echo_text(&json!({"messages": []}), "mk"), "ack (no marker)");
    }
}
