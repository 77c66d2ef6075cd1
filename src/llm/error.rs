//! [`LlmError`]: why a completion failed, typed so the breaker and metrics can tell causes apart.
//!
//! Every detail string is built by troupe: provider messages go through
//! [`crate::llm::stream::classify_error_body`] (trimmed, `sk-…` masked, truncated) and then have
//! the backend's own key scrubbed, so `Display` is safe for logs. It is still not for Discord:
//! [`LlmError::user_message`] is.

use std::time::Duration;

use super::stream::{ProviderErrorKind, StreamError};
use crate::secret::Secret;

/// Which deadline passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeoutPhase {
    /// Establishing the connection.
    Connect,
    /// Waiting for the first token.
    FirstToken,
    /// The whole request.
    Total,
    /// A command backend's child process.
    Command,
}

/// Why a completion failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LlmError {
    /// The key is missing, wrong or not allowed (401, 403).
    #[error("authentication failed: {0}")]
    Auth(String),
    /// Too many requests (429).
    #[error("rate limited{}: {detail}", after(.retry_after))]
    RateLimit {
        /// How long the provider asked us to wait.
        retry_after: Option<Duration>,
        /// What happened.
        detail: String,
    },
    /// The provider is overloaded (Anthropic 529, `overloaded_error`).
    #[error("provider overloaded{}: {detail}", after(.retry_after))]
    Overloaded {
        /// How long the provider asked us to wait.
        retry_after: Option<Duration>,
        /// What happened.
        detail: String,
    },
    /// A deadline passed.
    #[error("timed out {}", phase_text(*.0))]
    Timeout(TimeoutPhase),
    /// The request was rejected (400, 404, 422): retrying cannot help.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// The prompt did not fit the model's context window: a shorter prompt can help, the same
    /// one cannot. Says nothing about the backend's health.
    #[error("context window exceeded: {0}")]
    ContextOverflow(String),
    /// The reply stream ended without a finish reason (EOF, `[DONE]` or a dropped connection).
    #[error("incomplete reply: {0}")]
    Truncated(String),
    /// A transient failure: 5xx, a connection refused or reset.
    #[error("backend unavailable{}: {detail}", after(.retry_after))]
    Unavailable {
        /// How long the provider asked us to wait.
        retry_after: Option<Duration>,
        /// What happened.
        detail: String,
    },
    /// Any other failure (a command that failed, a malformed stream, an empty reply, ...).
    #[error("backend failure: {0}")]
    Backend(String),
}

fn after(retry_after: &Option<Duration>) -> String {
    retry_after.map_or_else(String::new, |d| format!(" (retry after {:.1}s)", d.as_secs_f64()))
}

fn phase_text(phase: TimeoutPhase) -> &'static str {
    match phase {
        TimeoutPhase::Connect => "connecting",
        TimeoutPhase::FirstToken => "waiting for the first token",
        TimeoutPhase::Total => "before the reply was complete",
        TimeoutPhase::Command => "waiting for the command",
    }
}

impl LlmError {
    /// Every label [`LlmError::kind`] returns (metrics initialise a series for each).
    pub const KINDS: &'static [&'static str] = &[
        "auth",
        "rate_limit",
        "overloaded",
        "timeout",
        "bad_request",
        "context_overflow",
        "truncated",
        "backend",
    ];

    /// A short static label for metrics and breakers: `auth`, `rate_limit`, `overloaded`,
    /// `timeout`, `bad_request`, `context_overflow`, `truncated` or `backend`.
    pub fn kind(&self) -> &'static str {
        match self {
            LlmError::Auth(_) => "auth",
            LlmError::RateLimit { .. } => "rate_limit",
            LlmError::Overloaded { .. } => "overloaded",
            LlmError::Timeout(_) => "timeout",
            LlmError::BadRequest(_) => "bad_request",
            LlmError::ContextOverflow(_) => "context_overflow",
            LlmError::Truncated(_) => "truncated",
            LlmError::Unavailable { .. } | LlmError::Backend(_) => "backend",
        }
    }

    /// True when the same request may succeed if sent again later.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            LlmError::RateLimit { .. }
                | LlmError::Overloaded { .. }
                | LlmError::Unavailable { .. }
                | LlmError::Truncated(_)
                | LlmError::Timeout(TimeoutPhase::Connect)
        )
    }

    /// How long the provider asked us to wait, if it did.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            LlmError::RateLimit { retry_after, .. }
            | LlmError::Overloaded { retry_after, .. }
            | LlmError::Unavailable { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// A sentence safe to show in Discord: no provider text, no detail.
    pub fn user_message(&self) -> &'static str {
        match self {
            LlmError::RateLimit { .. } | LlmError::Overloaded { .. } => {
                "My model is busy right now; please try again in a moment."
            }
            LlmError::Timeout(_) | LlmError::Unavailable { .. } | LlmError::Truncated(_) => {
                "I could not get an answer from my model in time; please try again."
            }
            LlmError::Auth(_) | LlmError::BadRequest(_) | LlmError::ContextOverflow(_) | LlmError::Backend(_) => {
                "I cannot answer right now because of a problem on my side."
            }
        }
    }

    /// The error for a provider error of `kind` with a cleaned `message`, from an HTTP status
    /// (`None` inside a stream).
    pub fn from_provider(
        kind: ProviderErrorKind,
        status: Option<u16>,
        message: &str,
        retry_after: Option<Duration>,
    ) -> Self {
        let detail = match status {
            Some(s) => format!("HTTP {s}: {message}"),
            None => format!("in stream: {message}"),
        };
        match kind {
            ProviderErrorKind::Auth => LlmError::Auth(detail),
            ProviderErrorKind::RateLimit => LlmError::RateLimit { retry_after, detail },
            ProviderErrorKind::Overloaded => LlmError::Overloaded { retry_after, detail },
            ProviderErrorKind::BadRequest => LlmError::BadRequest(detail),
            ProviderErrorKind::ContextOverflow => LlmError::ContextOverflow(detail),
            ProviderErrorKind::Server => LlmError::Unavailable { retry_after, detail },
            ProviderErrorKind::Other => match status {
                Some(408) | Some(500..=599) => LlmError::Unavailable { retry_after, detail },
                _ => LlmError::Backend(detail),
            },
        }
    }

    /// The error for a failed stream.
    pub fn from_stream(e: StreamError) -> Self {
        match e {
            StreamError::Incomplete => LlmError::Truncated("the stream ended without a finish reason".into()),
            StreamError::Provider { kind, message } => LlmError::from_provider(kind, None, &message, None),
            StreamError::Malformed(m) => LlmError::Backend(format!("malformed stream: {m}")),
        }
    }

    /// Removes every occurrence of `key` from the detail text.
    pub fn scrub(self, key: Option<&Secret>) -> Self {
        let Some(key) = key.map(Secret::expose).filter(|k| k.len() >= 4) else {
            return self;
        };
        let clean = |s: String| s.replace(key, "[redacted]");
        match self {
            LlmError::Auth(d) => LlmError::Auth(clean(d)),
            LlmError::RateLimit { retry_after, detail } => LlmError::RateLimit {
                retry_after,
                detail: clean(detail),
            },
            LlmError::Overloaded { retry_after, detail } => LlmError::Overloaded {
                retry_after,
                detail: clean(detail),
            },
            LlmError::BadRequest(d) => LlmError::BadRequest(clean(d)),
            LlmError::ContextOverflow(d) => LlmError::ContextOverflow(clean(d)),
            LlmError::Truncated(d) => LlmError::Truncated(clean(d)),
            LlmError::Unavailable { retry_after, detail } => LlmError::Unavailable {
                retry_after,
                detail: clean(detail),
            },
            LlmError::Backend(d) => LlmError::Backend(clean(d)),
            e @ LlmError::Timeout(_) => e,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_short_labels() {
        let kinds: Vec<&str> = [
            LlmError::Auth(String::new()),
            LlmError::RateLimit {
                retry_after: None,
                detail: String::new(),
            },
            LlmError::Overloaded {
                retry_after: None,
                detail: String::new(),
            },
            LlmError::Timeout(TimeoutPhase::Total),
            LlmError::BadRequest(String::new()),
            LlmError::ContextOverflow(String::new()),
            LlmError::Truncated(String::new()),
            LlmError::Unavailable {
                retry_after: None,
                detail: String::new(),
            },
            LlmError::Backend(String::new()),
        ]
        .iter()
        .map(LlmError::kind)
        .collect();
        assert_eq!(
            kinds,
            [
                "auth",
                "rate_limit",
                "overloaded",
                "timeout",
                "bad_request",
                "context_overflow",
                "truncated",
                "backend",
                "backend"
            ]
        );
        assert!(kinds.iter().all(|k| LlmError::KINDS.contains(k)));
    }

    #[test]
    fn statuses_map_to_kinds_and_transience() {
        let e = |status: u16, body: &str| {
            let (kind, msg) = crate::llm::stream::classify_error_body(status, body);
            LlmError::from_provider(kind, Some(status), &msg, None)
        };
        assert_eq!(e(401, r#"{"detail":"Invalid API key"}"#).kind(), "auth");
        assert!(!e(401, "").is_transient());
        assert!(e(429, "").is_transient());
        assert_eq!(e(529, "").kind(), "overloaded");
        assert!(e(503, "Service Unavailable").is_transient());
        assert!(!e(400, "").is_transient());
        assert!(!e(404, "").is_transient());
        assert!(!e(402, r#"{"error":{"code":402,"message":"Insufficient credits"}}"#).is_transient());
        let overloaded = r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#;
        assert_eq!(
            e(529, overloaded).to_string(),
            "provider overloaded: HTTP 529: Overloaded"
        );
    }

    /// Each provider's context-overflow answer, as its documentation and servers give it.
    #[test]
    fn context_overflows_are_recognised_per_provider() {
        let e = |status: u16, body: &str| {
            let (kind, msg) = crate::llm::stream::classify_error_body(status, body);
            LlmError::from_provider(kind, Some(status), &msg, None)
        };
        let openai = r#"{"error":{"message":"This model's maximum context length is 128000 tokens. However, your messages resulted in 131072 tokens. Please reduce the length of the messages.","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}"#;
        let llamacpp = r#"{"error":{"code":400,"message":"the request exceeds the available context size, try increasing it","type":"exceed_context_size_error","n_prompt_tokens":5000,"n_ctx":4096}}"#;
        let llamacpp_old = r#"{"error":{"code":400,"message":"the request exceeds the available context size. try increasing the context size or enable context shift","type":"invalid_request_error"}}"#;
        let anthropic = r#"{"type":"error","error":{"type":"invalid_request_error","message":"prompt is too long: 208310 tokens > 200000 maximum"}}"#;
        let anthropic_reply = r#"{"type":"error","error":{"type":"invalid_request_error","message":"input length and `max_tokens` exceed context limit: 198000 + 4096 > 200000, decrease input length or `max_tokens` and try again"}}"#;
        let vllm = r#"{"object":"error","message":"This model's maximum context length is 4096 tokens. However, you requested 5000 tokens (4488 in the messages, 512 in the completion). Please reduce the length of the messages or completion.","type":"BadRequestError","param":null,"code":400}"#;
        for body in [
            openai,
            llamacpp,
            llamacpp_old,
            anthropic,
            anthropic_reply,
            vllm,
            "prompt is too long",
        ] {
            let err = e(400, body);
            assert_eq!(err.kind(), "context_overflow", "{body}");
            assert!(!err.is_transient());
        }
        // In a stream (llama.cpp reports some errors after HTTP 200).
        let in_stream: serde_json::Value = serde_json::from_str(llamacpp).unwrap();
        let (kind, _) = crate::llm::stream::error_from_json(None, &in_stream).unwrap();
        assert_eq!(kind, ProviderErrorKind::ContextOverflow);
        // Other rejections stay bad requests; an overflow phrase in a 5xx is a server failure.
        assert_eq!(
            e(
                400,
                r#"{"error":{"message":"model not found","type":"invalid_request_error"}}"#
            )
            .kind(),
            "bad_request"
        );
        assert_eq!(e(500, "prompt is too long").kind(), "backend");
    }

    #[test]
    fn stream_errors_map_to_kinds() {
        assert_eq!(LlmError::from_stream(StreamError::Incomplete).kind(), "truncated");
        assert!(LlmError::from_stream(StreamError::Incomplete).is_transient());
        let e = LlmError::from_stream(StreamError::Provider {
            kind: ProviderErrorKind::Overloaded,
            message: "Overloaded".into(),
        });
        assert_eq!(e.kind(), "overloaded");
        assert!(e.is_transient());
        assert!(!LlmError::from_stream(StreamError::Malformed("x".into())).is_transient());
    }

    #[test]
    fn scrub_removes_the_key_everywhere() {
        let key = Secret::new("pplx-1234567890");
        let e = LlmError::Auth("HTTP 401: key pplx-1234567890 is wrong".into()).scrub(Some(&key));
        assert_eq!(
            e.to_string(),
            "authentication failed: HTTP 401: key [redacted] is wrong"
        );
        let e = LlmError::RateLimit {
            retry_after: Some(Duration::from_millis(1500)),
            detail: "pplx-1234567890".into(),
        }
        .scrub(Some(&key));
        assert_eq!(e.to_string(), "rate limited (retry after 1.5s): [redacted]");
    }

    #[test]
    fn user_messages_carry_no_detail() {
        let e = LlmError::BadRequest("HTTP 400: secret provider text".into());
        assert!(!e.user_message().contains("secret"));
    }
}
