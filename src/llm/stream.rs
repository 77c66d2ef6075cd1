//! Shared result and error types for streamed LLM completions, and classification of provider error bodies.
//!
//! The provider-specific state machines ([`crate::llm::openai_stream`], [`crate::llm::anthropic_stream`])
//! turn SSE events into a [`Completion`] or a [`StreamError`]; [`classify_error_body`] handles the
//! body of a non-2xx HTTP response before any stream starts.

use serde_json::Value;

/// Maximum length, in characters, of a provider error message kept in a [`StreamError`].
pub const MAX_ERROR_MESSAGE_CHARS: usize = 300;

/// Why the model stopped generating.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum FinishReason {
    /// Natural end of the reply (OpenAI `stop`; Anthropic `end_turn` or `stop_sequence`).
    Stop,
    /// The reply was cut by the token limit (OpenAI `length`; Anthropic `max_tokens`,
    /// `model_context_window_exceeded`).
    Length,
    /// The provider's content filter removed or stopped the reply (OpenAI `content_filter`).
    ContentFilter,
    /// The model asked to call a tool (OpenAI `tool_calls`/`function_call`; Anthropic `tool_use`).
    ToolCalls,
    /// The model refused (Anthropic `refusal`; OpenAI `refusal` deltas).
    Refusal,
    /// Any other reason, verbatim as the provider sent it (e.g. Anthropic `pause_turn`).
    Other(String),
}

impl FinishReason {
    /// True when the reply was cut by the token limit, i.e. the text is probably unfinished.
    pub fn is_truncated(&self) -> bool {
        matches!(self, FinishReason::Length)
    }

    /// Maps an OpenAI-compatible `finish_reason` string (OpenAI, vLLM, llama.cpp, TGI, OpenRouter).
    pub fn from_openai(reason: &str) -> Self {
        match reason {
            "stop" | "eos" | "eos_token" | "stop_sequence" | "end_turn" => FinishReason::Stop,
            "length" | "max_tokens" => FinishReason::Length,
            "content_filter" => FinishReason::ContentFilter,
            "tool_calls" | "function_call" | "tool_use" => FinishReason::ToolCalls,
            "refusal" => FinishReason::Refusal,
            other => FinishReason::Other(other.to_string()),
        }
    }

    /// Maps an Anthropic Messages API `stop_reason` string.
    pub fn from_anthropic(reason: &str) -> Self {
        match reason {
            "end_turn" | "stop_sequence" => FinishReason::Stop,
            "max_tokens" | "model_context_window_exceeded" => FinishReason::Length,
            "tool_use" => FinishReason::ToolCalls,
            "refusal" => FinishReason::Refusal,
            other => FinishReason::Other(other.to_string()),
        }
    }
}

/// Token counts reported by the provider for one request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Usage {
    /// Prompt tokens (for Anthropic: `input_tokens` plus cache-creation and cache-read input tokens).
    pub input_tokens: u64,
    /// Generated tokens.
    pub output_tokens: u64,
}

/// A finished streamed reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    /// The full reply text: exactly the concatenation of the deltas returned while streaming.
    pub text: String,
    /// Why generation stopped.
    pub finish: FinishReason,
    /// Token usage, when the provider reported it (llama.cpp's server may not).
    pub usage: Option<Usage>,
}

/// What kind of failure the provider reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProviderErrorKind {
    /// Missing, invalid or unauthorized API key (401, 403).
    Auth,
    /// Too many requests (429, `rate_limit_error`).
    RateLimit,
    /// The provider is temporarily overloaded (529, `overloaded_error`).
    Overloaded,
    /// The request itself was rejected (400, 404, 413, 422, `invalid_request_error`).
    BadRequest,
    /// The prompt does not fit the model's context window (OpenAI `context_length_exceeded`,
    /// llama.cpp `exceed_context_size_error`, Anthropic "prompt is too long").
    ContextOverflow,
    /// The provider failed (5xx, `api_error`, `server_error`).
    Server,
    /// Anything else (e.g. 402 out of credits, an unrecognised error type).
    Other,
}

impl std::fmt::Display for ProviderErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = match self {
            ProviderErrorKind::Auth => "authentication",
            ProviderErrorKind::RateLimit => "rate limit",
            ProviderErrorKind::Overloaded => "overloaded",
            ProviderErrorKind::BadRequest => "bad request",
            ProviderErrorKind::ContextOverflow => "context overflow",
            ProviderErrorKind::Server => "server",
            ProviderErrorKind::Other => "other",
        };
        f.write_str(s)
    }
}

/// Why a streamed completion failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StreamError {
    /// The stream ended (`[DONE]`, `message_stop` or EOF) without a finish reason: an interrupted generation.
    #[error("stream ended without a finish reason")]
    Incomplete,
    /// The provider reported an error inside the stream (after HTTP 200).
    /// `message` is the provider's own text, truncated; do not show it to end users.
    #[error("provider error ({kind}): {message}")]
    Provider {
        /// Classified error kind.
        kind: ProviderErrorKind,
        /// The provider's message, truncated to [`MAX_ERROR_MESSAGE_CHARS`].
        message: String,
    },
    /// A `data:` payload that is not the JSON we expect. The stream is aborted: a well-behaved
    /// server never sends this, and skipping it could silently lose text.
    #[error("malformed stream event: {0}")]
    Malformed(String),
}

/// Classifies the body of a non-2xx HTTP response into a kind and a short message.
///
/// Understands OpenAI-shaped `{"error":{"message","type","code"}}` (also OpenRouter's numeric
/// `code`), Anthropic `{"type":"error","error":{"type","message"}}`, FastAPI `{"detail":..}`,
/// vLLM `{"object":"error","message",..}`, `{"error":"text"}`, and plain text or HTML.
/// A specific body kind (auth, rate limit, overloaded) wins; otherwise the HTTP status decides;
/// otherwise the body kind; otherwise [`ProviderErrorKind::Other`]. The message is trimmed,
/// `sk-…` tokens are masked, and it is truncated to [`MAX_ERROR_MESSAGE_CHARS`] characters.
pub fn classify_error_body(status: u16, body: &str) -> (ProviderErrorKind, String) {
    let trimmed = body.trim();
    if let Ok(v) = serde_json::from_str::<Value>(trimmed) {
        if let Some(found) = error_from_json(Some(status), &v) {
            return found;
        }
        if let Some(detail) = v.get("detail") {
            let msg = match detail {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            return (
                overflow_or(kind_or_status(None, Some(status)), &msg),
                clean_message(&msg),
            );
        }
    }
    let msg = if trimmed.is_empty() {
        format!("HTTP {status}")
    } else {
        trimmed.to_string()
    };
    (
        overflow_or(kind_or_status(None, Some(status)), &msg),
        clean_message(&msg),
    )
}

/// Recognises an error object inside JSON (a stream `data:` payload or an HTTP body) and classifies it.
///
/// Returns `None` when `v` is not an error: no non-null `error` field, `object` is not `"error"`
/// and `type` is not `"error"`. `status` is the HTTP status if known (`None` inside a stream).
pub(crate) fn error_from_json(status: Option<u16>, v: &Value) -> Option<(ProviderErrorKind, String)> {
    let obj = v.as_object()?;
    let is_vllm = obj.get("object").and_then(Value::as_str) == Some("error");
    let is_anthropic = obj.get("type").and_then(Value::as_str) == Some("error");
    // The object that carries message/type/code.
    let err: &Value = match obj.get("error") {
        Some(Value::Null) | None => {
            if is_vllm || is_anthropic {
                v
            } else {
                return None;
            }
        }
        Some(e) => e,
    };
    if let Value::String(s) = err {
        // `{"error":"model not found"}` (Ollama and others).
        return Some((overflow_or(kind_or_status(None, status), s), clean_message(s)));
    }
    let message = match err.get("message") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => match obj.get("message").and_then(Value::as_str) {
            Some(s) => s.to_string(),
            None => err.to_string(),
        },
        Some(other) => other.to_string(),
    };
    let mut body_kind = None;
    if let Some(code) = err.get("code").and_then(Value::as_str) {
        body_kind = kind_from_type(code);
    }
    if body_kind.is_none() {
        if let Some(t) = err.get("type").and_then(Value::as_str) {
            body_kind = kind_from_type(t);
        }
    }
    if body_kind.is_none() {
        if let Some(n) = err.get("code").and_then(Value::as_u64) {
            body_kind = u16::try_from(n).ok().and_then(kind_from_status);
        }
    }
    Some((
        overflow_or(kind_or_status(body_kind, status), &message),
        clean_message(&message),
    ))
}

/// Phrases of providers' context-overflow messages, lower-case: llama.cpp's server, Anthropic,
/// OpenAI (and servers that copy its wording without the `code`).
const OVERFLOW_PHRASES: &[&str] = &[
    "exceeds the available context size",
    "prompt is too long",
    "exceed context limit",
    "maximum context length",
    "context_length_exceeded",
    "exceed_context_size",
];

/// `kind`, unless it is a rejected request whose message says the prompt did not fit.
fn overflow_or(kind: ProviderErrorKind, message: &str) -> ProviderErrorKind {
    use ProviderErrorKind as K;
    let lower = message.to_ascii_lowercase();
    match kind {
        K::BadRequest | K::Other if OVERFLOW_PHRASES.iter().any(|p| lower.contains(p)) => K::ContextOverflow,
        k => k,
    }
}

/// Combines a kind read from the body with one read from the HTTP status.
fn kind_or_status(body: Option<ProviderErrorKind>, status: Option<u16>) -> ProviderErrorKind {
    use ProviderErrorKind as K;
    match body {
        Some(k @ (K::Auth | K::RateLimit | K::Overloaded | K::ContextOverflow)) => k,
        _ => status.and_then(kind_from_status).or(body).unwrap_or(K::Other),
    }
}

/// Maps an HTTP status to a kind; `None` for statuses that say nothing (2xx, 1xx, 3xx).
fn kind_from_status(status: u16) -> Option<ProviderErrorKind> {
    use ProviderErrorKind as K;
    Some(match status {
        401 | 403 => K::Auth,
        429 => K::RateLimit,
        529 => K::Overloaded,
        400 | 404 | 413 | 422 => K::BadRequest,
        408 => K::Server,
        500..=599 => K::Server,
        400..=499 => K::Other,
        _ => return None,
    })
}

/// Maps a provider error `type` or string `code` to a kind.
fn kind_from_type(t: &str) -> Option<ProviderErrorKind> {
    use ProviderErrorKind as K;
    Some(match t {
        "authentication_error"
        | "permission_error"
        | "invalid_api_key"
        | "AuthenticationError"
        | "PermissionDeniedError" => K::Auth,
        "rate_limit_error" | "rate_limit_exceeded" | "RateLimitError" => K::RateLimit,
        "overloaded_error" | "overloaded" | "ServiceUnavailableError" => K::Overloaded,
        "context_length_exceeded" | "exceed_context_size_error" => K::ContextOverflow,
        "invalid_request_error"
        | "not_found_error"
        | "request_too_large"
        | "model_not_found"
        | "BadRequestError"
        | "NotFoundError"
        | "UnprocessableEntityError" => K::BadRequest,
        "api_error" | "server_error" | "internal_error" | "InternalServerError" | "timeout_error" => K::Server,
        _ => return None,
    })
}

/// Trims, masks `sk-…` key-like tokens, and truncates a provider message.
pub(crate) fn clean_message(msg: &str) -> String {
    let masked = mask_keys(msg.trim());
    truncate_chars(&masked, MAX_ERROR_MESSAGE_CHARS)
}

/// Replaces whitespace-separated tokens that look like API keys (`sk-`/`sk_` prefix) with `sk-***`.
fn mask_keys(msg: &str) -> String {
    if !msg.contains("sk-") && !msg.contains("sk_") {
        return msg.to_string();
    }
    let mut out = String::with_capacity(msg.len());
    let mut rest = msg;
    while !rest.is_empty() {
        let ws = rest.find(|c: char| !c.is_whitespace()).unwrap_or(rest.len());
        out.push_str(&rest[..ws]);
        rest = &rest[ws..];
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        let word = &rest[..end];
        let bare = word.trim_start_matches(|c: char| !c.is_alphanumeric());
        let key_len = bare
            .find(|c: char| !(c.is_alphanumeric() || matches!(c, '-' | '_' | '*')))
            .unwrap_or(bare.len());
        if (bare.starts_with("sk-") || bare.starts_with("sk_")) && key_len > 8 {
            out.push_str(&word[..word.len() - bare.len()]);
            out.push_str("sk-***");
            out.push_str(&bare[key_len..]);
        } else {
            out.push_str(word);
        }
        rest = &rest[end..];
    }
    out
}

/// Truncates to at most `max_chars` characters (on a char boundary), appending `…` when cut.
pub(crate) fn truncate_chars(s: &str, max_chars: usize) -> String {
    match s.char_indices().nth(max_chars) {
        None => s.to_string(),
        Some((idx, _)) => {
            let mut out = s[..idx].to_string();
            out.push('…');
            out
        }
    }
}

/// Describes a JSON decoding failure of an SSE `data:` payload for [`StreamError::Malformed`].
pub(crate) fn malformed(err: &serde_json::Error, data: &str) -> StreamError {
    StreamError::Malformed(format!("{err}; data: {}", truncate_chars(data.trim(), 120)))
}

/// Helpers shared by the stream modules' tests.
#[cfg(test)]
pub(crate) mod test_support {
    use crate::llm::sse::{SseEvent, SseParser};
    use std::path::PathBuf;

    /// The recorded provider streams vendored with the tests (see `PROVENANCE.md` there).
    pub(crate) fn fixtures_dir() -> PathBuf {
        PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/llm-sse"))
    }

    /// Sorted `(file name, bytes)` of the `*.sse` fixtures whose name starts with `prefix`.
    /// Panics when there are none: the fixtures are part of the repository, never optional.
    pub(crate) fn load_fixtures(prefix: &str) -> Vec<(String, Vec<u8>)> {
        let dir = fixtures_dir();
        let entries = std::fs::read_dir(&dir).unwrap_or_else(|err| panic!("fixtures folder {}: {err}", dir.display()));
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.expect("read fixtures dir entry");
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(prefix) && name.ends_with(".sse") {
                let bytes = std::fs::read(entry.path()).expect("read fixture");
                out.push((name, bytes));
            }
        }
        out.sort();
        assert!(!out.is_empty(), "no {prefix}*.sse fixtures in {}", dir.display());
        out
    }

    /// Deterministic xorshift64* generator for chunk sizes.
    pub(crate) struct Rng(u64);

    impl Rng {
        /// Seeds the generator (0 is replaced by a constant).
        pub(crate) fn new(seed: u64) -> Self {
            Rng(if seed == 0 { 0x9E37_79B9_7F4A_7C15 } else { seed })
        }
        /// Next value in `1..=max`.
        pub(crate) fn next_in(&mut self, max: usize) -> usize {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            let v = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D);
            (v % max as u64) as usize + 1
        }
    }

    /// Splits `bytes` into chunks: `None` = whole, `Some(0)` = byte by byte, `Some(seed)` = random sizes 1..=97.
    pub(crate) fn chunks(bytes: &[u8], mode: Option<u64>) -> Vec<&[u8]> {
        match mode {
            None => vec![bytes],
            Some(0) => bytes.chunks(1).collect(),
            Some(seed) => {
                let mut rng = Rng::new(seed);
                let mut out = Vec::new();
                let mut i = 0;
                while i < bytes.len() {
                    let n = rng.next_in(97).min(bytes.len() - i);
                    out.push(&bytes[i..i + n]);
                    i += n;
                }
                out
            }
        }
    }

    /// Parses `bytes` into SSE events, fed in chunks as [`chunks`] describes.
    pub(crate) fn events(bytes: &[u8], mode: Option<u64>) -> Vec<SseEvent> {
        let mut p = SseParser::new();
        let mut out = Vec::new();
        for c in chunks(bytes, mode) {
            out.extend(p.push(c));
        }
        out.extend(p.finish());
        out
    }

    /// The chunking modes every golden test runs: whole, byte by byte, and five random seeds.
    pub(crate) const MODES: [Option<u64>; 7] = [
        None,
        Some(0),
        Some(1),
        Some(42),
        Some(7777),
        Some(0xDEAD_BEEF),
        Some(123_456_789),
    ];

    /// FNV-1a 64-bit hash, to pin long expected texts without embedding them.
    pub(crate) fn fnv1a(s: &str) -> u64 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in s.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        h
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_flag() {
        assert!(FinishReason::Length.is_truncated());
        assert!(FinishReason::from_anthropic("max_tokens").is_truncated());
        assert!(FinishReason::from_openai("length").is_truncated());
        assert!(!FinishReason::Stop.is_truncated());
        assert!(!FinishReason::Refusal.is_truncated());
        assert!(!FinishReason::Other("pause_turn".into()).is_truncated());
    }

    #[test]
    fn finish_reason_mapping() {
        assert_eq!(FinishReason::from_openai("stop"), FinishReason::Stop);
        assert_eq!(FinishReason::from_openai("content_filter"), FinishReason::ContentFilter);
        assert_eq!(FinishReason::from_openai("tool_calls"), FinishReason::ToolCalls);
        assert_eq!(FinishReason::from_openai("function_call"), FinishReason::ToolCalls);
        assert_eq!(FinishReason::from_openai("weird"), FinishReason::Other("weird".into()));
        assert_eq!(FinishReason::from_anthropic("end_turn"), FinishReason::Stop);
        assert_eq!(FinishReason::from_anthropic("stop_sequence"), FinishReason::Stop);
        assert_eq!(FinishReason::from_anthropic("tool_use"), FinishReason::ToolCalls);
        assert_eq!(FinishReason::from_anthropic("refusal"), FinishReason::Refusal);
        assert_eq!(
            FinishReason::from_anthropic("pause_turn"),
            FinishReason::Other("pause_turn".into())
        );
    }

    #[test]
    fn openai_error_body() {
        let body = r#"{"error":{"message":"Rate limit reached for gpt-4o","type":"requests","param":null,"code":"rate_limit_exceeded"}}"#;
        assert_eq!(
            classify_error_body(429, body),
            (ProviderErrorKind::RateLimit, "Rate limit reached for gpt-4o".into())
        );
        // OpenAI sends 401 with type invalid_request_error and code invalid_api_key.
        let body = r#"{"error":{"message":"Incorrect API key provided: sk-proj-abcdefghijklmnop1234. You can find your API key at https://platform.openai.com/account/api-keys.","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}"#;
        let (kind, msg) = classify_error_body(401, body);
        assert_eq!(kind, ProviderErrorKind::Auth);
        assert!(msg.starts_with("Incorrect API key provided: sk-***. You can"), "{msg}");
        assert!(!msg.contains("abcdefghijklmnop"));
        let body = r#"{"error":{"message":"Invalid 'messages[0].content': string too long.","type":"invalid_request_error","param":"messages","code":"string_above_max_length"}}"#;
        assert_eq!(classify_error_body(400, body).0, ProviderErrorKind::BadRequest);
        let body = r#"{"error":{"message":"The server had an error","type":"server_error","param":null,"code":null}}"#;
        assert_eq!(
            classify_error_body(500, body),
            (ProviderErrorKind::Server, "The server had an error".into())
        );
    }

    #[test]
    fn anthropic_error_body() {
        let body = r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#;
        assert_eq!(
            classify_error_body(529, body),
            (ProviderErrorKind::Overloaded, "Overloaded".into())
        );
        // overloaded_error wins even if a proxy rewrote the status.
        assert_eq!(classify_error_body(500, body).0, ProviderErrorKind::Overloaded);
        let body = r#"{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}"#;
        assert_eq!(
            classify_error_body(401, body),
            (ProviderErrorKind::Auth, "invalid x-api-key".into())
        );
        let body = r#"{"type":"error","error":{"type":"not_found_error","message":"model: claude-nope"}}"#;
        assert_eq!(classify_error_body(404, body).0, ProviderErrorKind::BadRequest);
        let body = r#"{"type":"error","error":{"type":"rate_limit_error","message":"slow down"}}"#;
        assert_eq!(classify_error_body(429, body).0, ProviderErrorKind::RateLimit);
        let body = r#"{"type":"error","error":{"type":"api_error","message":"Internal server error"}}"#;
        assert_eq!(classify_error_body(500, body).0, ProviderErrorKind::Server);
    }

    #[test]
    fn other_error_shapes() {
        assert_eq!(
            classify_error_body(401, r#"{"detail":"Invalid API key"}"#),
            (ProviderErrorKind::Auth, "Invalid API key".into())
        );
        let (kind, msg) = classify_error_body(422, r#"{"detail":[{"loc":["body","model"],"msg":"field required"}]}"#);
        assert_eq!(kind, ProviderErrorKind::BadRequest);
        assert!(msg.contains("field required"));
        let vllm = r#"{"object":"error","message":"The model `foo` does not exist.","type":"NotFoundError","param":null,"code":404}"#;
        assert_eq!(
            classify_error_body(404, vllm),
            (ProviderErrorKind::BadRequest, "The model `foo` does not exist.".into())
        );
        let openrouter = r#"{"error":{"code":402,"message":"Insufficient credits","metadata":{}}}"#;
        assert_eq!(
            classify_error_body(402, openrouter),
            (ProviderErrorKind::Other, "Insufficient credits".into())
        );
        let openrouter = r#"{"error":{"code":429,"message":"Rate limit exceeded"}}"#;
        assert_eq!(classify_error_body(429, openrouter).0, ProviderErrorKind::RateLimit);
        assert_eq!(
            classify_error_body(404, r#"{"error":"model 'x' not found"}"#),
            (ProviderErrorKind::BadRequest, "model 'x' not found".into())
        );
        assert_eq!(
            classify_error_body(500, "Internal Server Error\n"),
            (ProviderErrorKind::Server, "Internal Server Error".into())
        );
        assert_eq!(
            classify_error_body(502, ""),
            (ProviderErrorKind::Server, "HTTP 502".into())
        );
        assert_eq!(classify_error_body(403, "Forbidden").0, ProviderErrorKind::Auth);
        assert_eq!(classify_error_body(418, "teapot").0, ProviderErrorKind::Other);
        assert_eq!(classify_error_body(529, "").0, ProviderErrorKind::Overloaded);
        assert_eq!(
            classify_error_body(503, "<html>busy</html>").0,
            ProviderErrorKind::Server
        );
        // A JSON body that is not an error still gets the status kind and the raw text.
        assert_eq!(
            classify_error_body(500, r#"{"foo":1}"#),
            (ProviderErrorKind::Server, r#"{"foo":1}"#.into())
        );
    }

    #[test]
    fn long_messages_truncated_on_char_boundary() {
        let long = "é".repeat(1000);
        let (_, msg) = classify_error_body(500, &long);
        assert_eq!(msg.chars().count(), MAX_ERROR_MESSAGE_CHARS + 1);
        assert!(msg.ends_with('…'));
        let body = format!(
            r#"{{"error":{{"message":"{}","type":"server_error"}}}}"#,
            "日本".repeat(400)
        );
        let (_, msg) = classify_error_body(500, &body);
        assert_eq!(msg.chars().count(), MAX_ERROR_MESSAGE_CHARS + 1);
    }

    #[test]
    fn key_masking() {
        assert_eq!(mask_keys("key 'sk-ant-api03-XYZXYZXYZ' bad"), "key 'sk-***' bad");
        assert_eq!(mask_keys("(sk-proj-****abcd)."), "(sk-***).");
        assert_eq!(mask_keys("no keys here: sk-1"), "no keys here: sk-1");
        assert_eq!(mask_keys("  spaced  sk_live_0123456789  "), "  spaced  sk-***  ");
    }

    #[test]
    fn error_from_json_requires_error_shape() {
        let v: Value = serde_json::from_str(r#"{"error":null,"choices":[]}"#).unwrap();
        assert_eq!(error_from_json(None, &v), None);
        let v: Value = serde_json::from_str(r#"[1,2]"#).unwrap();
        assert_eq!(error_from_json(None, &v), None);
        let v: Value = serde_json::from_str(r#"{"error":{"code":"weird"}}"#).unwrap();
        let (kind, msg) = error_from_json(None, &v).unwrap();
        assert_eq!(kind, ProviderErrorKind::Other);
        assert_eq!(msg, r#"{"code":"weird"}"#);
    }

    #[test]
    fn display_is_stable() {
        let e = StreamError::Provider {
            kind: ProviderErrorKind::Overloaded,
            message: "Overloaded".into(),
        };
        assert_eq!(e.to_string(), "provider error (overloaded): Overloaded");
        assert_eq!(
            StreamError::Incomplete.to_string(),
            "stream ended without a finish reason"
        );
    }
}
