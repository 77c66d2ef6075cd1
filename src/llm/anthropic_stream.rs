//! State machine for Anthropic Messages API streams (`message_start` … `message_stop` SSE events).
//!
//! Feed each [`SseEvent`] to [`AnthropicStream::on_event`], which returns the new text (if any)
//! so callers can stream progressively, then call [`AnthropicStream::finish`] for the [`Completion`].
//!
//! Rules:
//! - The event type is read from the JSON `type`; the SSE `event:` name is used only when the
//!   JSON has no `type` (they always agree in real streams).
//! - `text_delta` text (and any initial text of a `text` content block) is collected from every
//!   block, concatenated; `thinking_delta`, `signature_delta`, `input_json_delta`,
//!   `citations_delta`, `ping`, `content_block_start/stop` and unknown event types are ignored.
//! - `message_delta`'s `stop_reason` gives the [`FinishReason`] (`end_turn`/`stop_sequence` →
//!   `Stop`, `max_tokens` → `Length`, `tool_use` → `ToolCalls`, `refusal` → `Refusal`). No
//!   `stop_reason` by the end (EOF or `message_stop`) → [`StreamError::Incomplete`]. A missing
//!   `message_stop` after a `stop_reason` is fine. Events after `message_stop` are ignored.
//! - Usage: input = `input_tokens` + `cache_creation_input_tokens` + `cache_read_input_tokens`
//!   from `message_start`, each overridden by `message_delta` when it repeats them; output =
//!   the last `output_tokens` (cumulative). `None` if no usage was seen at all.
//! - `{"type":"error","error":{"type":"overloaded_error",..}}` (normally under `event: error`)
//!   → [`StreamError::Provider`] with the kind from the error type; a non-JSON `event: error`
//!   → `Provider` with kind `Other`.
//! - A `data:` payload that is not JSON of the expected shape → [`StreamError::Malformed`]
//!   (aborting beats silently dropping text); blank payloads are skipped.
//! - Errors are sticky: after one, `on_event` and `finish` return the same error.

use serde::Deserialize;
use serde_json::Value;

use crate::llm::sse::SseEvent;
use crate::llm::stream::{
    clean_message, error_from_json, malformed, Completion, FinishReason, ProviderErrorKind, StreamError, Usage,
};

/// Accumulates an Anthropic Messages API stream.
#[derive(Debug, Clone, Default)]
pub struct AnthropicStream {
    /// Text collected so far.
    text: String,
    /// Finish reason from `message_delta`.
    finish: Option<FinishReason>,
    /// Uncached input tokens.
    input_tokens: Option<u64>,
    /// Input tokens written to the cache.
    cache_creation_tokens: Option<u64>,
    /// Input tokens read from the cache.
    cache_read_tokens: Option<u64>,
    /// Output tokens (cumulative).
    output_tokens: Option<u64>,
    /// `message_stop` was seen.
    stopped: bool,
    /// The first error, repeated on every later call.
    error: Option<StreamError>,
}

/// One stream event, leniently typed (all event kinds share this shape).
#[derive(Debug, Deserialize)]
struct WireEvent {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    message: Option<WireMessage>,
    #[serde(default)]
    content_block: Option<WireBlock>,
    #[serde(default)]
    delta: Option<WireDelta>,
    #[serde(default)]
    usage: Option<WireUsage>,
}

/// The `message` of `message_start`.
#[derive(Debug, Deserialize)]
struct WireMessage {
    #[serde(default)]
    usage: Option<WireUsage>,
}

/// The `content_block` of `content_block_start`.
#[derive(Debug, Deserialize)]
struct WireBlock {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    text: Option<String>,
}

/// The `delta` of `content_block_delta` or `message_delta`.
#[derive(Debug, Deserialize)]
struct WireDelta {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    stop_reason: Option<String>,
}

/// A `usage` object.
#[derive(Debug, Deserialize)]
struct WireUsage {
    #[serde(default)]
    input_tokens: Option<u64>,
    #[serde(default)]
    cache_creation_input_tokens: Option<u64>,
    #[serde(default)]
    cache_read_input_tokens: Option<u64>,
    #[serde(default)]
    output_tokens: Option<u64>,
}

impl AnthropicStream {
    /// A fresh stream state.
    pub fn new() -> Self {
        Self::default()
    }

    /// The text collected so far (useful to log a partial reply after an error).
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Handles one SSE event; returns the text it adds (`None` when it adds none).
    pub fn on_event(&mut self, ev: &SseEvent) -> Result<Option<String>, StreamError> {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        if self.stopped {
            return Ok(None);
        }
        let result = self.handle(ev);
        if let Err(e) = &result {
            self.error = Some(e.clone());
        }
        result
    }

    /// Ends the stream (after `message_stop` or EOF) and returns the completion.
    pub fn finish(self) -> Result<Completion, StreamError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        let finish = self.finish.ok_or(StreamError::Incomplete)?;
        let any_usage = self.input_tokens.is_some()
            || self.cache_creation_tokens.is_some()
            || self.cache_read_tokens.is_some()
            || self.output_tokens.is_some();
        let usage = any_usage.then(|| Usage {
            input_tokens: self
                .input_tokens
                .unwrap_or(0)
                .saturating_add(self.cache_creation_tokens.unwrap_or(0))
                .saturating_add(self.cache_read_tokens.unwrap_or(0)),
            output_tokens: self.output_tokens.unwrap_or(0),
        });
        Ok(Completion {
            text: self.text,
            finish,
            usage,
        })
    }

    /// Records the fields present in a usage object.
    fn apply_usage(&mut self, u: &WireUsage) {
        if u.input_tokens.is_some() {
            self.input_tokens = u.input_tokens;
        }
        if u.cache_creation_input_tokens.is_some() {
            self.cache_creation_tokens = u.cache_creation_input_tokens;
        }
        if u.cache_read_input_tokens.is_some() {
            self.cache_read_tokens = u.cache_read_input_tokens;
        }
        if u.output_tokens.is_some() {
            self.output_tokens = u.output_tokens;
        }
    }

    /// Interprets one event; errors are recorded by the caller.
    fn handle(&mut self, ev: &SseEvent) -> Result<Option<String>, StreamError> {
        let data = ev.data.trim();
        if data.is_empty() {
            return Ok(None);
        }
        let is_error_event = ev.event.as_deref() == Some("error");
        let value: Value = match serde_json::from_str(data) {
            Ok(v) => v,
            Err(e) => {
                if is_error_event {
                    return Err(StreamError::Provider {
                        kind: ProviderErrorKind::Other,
                        message: clean_message(data),
                    });
                }
                return Err(malformed(&e, data));
            }
        };
        if let Some((kind, message)) = error_from_json(None, &value) {
            return Err(StreamError::Provider { kind, message });
        }
        if is_error_event {
            return Err(StreamError::Provider {
                kind: ProviderErrorKind::Other,
                message: clean_message(data),
            });
        }
        let wire: WireEvent = serde_json::from_value(value).map_err(|e| malformed(&e, data))?;
        let kind = wire.kind.as_deref().or(ev.event.as_deref()).unwrap_or("");
        let mut added = None;
        match kind {
            "message_start" => {
                if let Some(u) = wire.message.as_ref().and_then(|m| m.usage.as_ref()) {
                    self.apply_usage(u);
                }
            }
            "content_block_start" => {
                if let Some(block) = wire.content_block {
                    if block.kind.as_deref() == Some("text") {
                        added = block.text;
                    }
                }
            }
            "content_block_delta" => {
                if let Some(delta) = wire.delta {
                    if delta.kind.as_deref() == Some("text_delta") {
                        added = delta.text;
                    }
                }
            }
            "message_delta" => {
                if let Some(reason) = wire.delta.and_then(|d| d.stop_reason) {
                    if !reason.is_empty() {
                        self.finish = Some(FinishReason::from_anthropic(&reason));
                    }
                }
                if let Some(u) = &wire.usage {
                    self.apply_usage(u);
                }
            }
            "message_stop" => self.stopped = true,
            // ping, content_block_stop and future event types.
            _ => {}
        }
        match added {
            Some(t) if !t.is_empty() => {
                self.text.push_str(&t);
                Ok(Some(t))
            }
            _ => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::stream::test_support::{events, fnv1a, load_fixtures, MODES};

    /// Runs a byte stream through the SSE parser and an [`AnthropicStream`], stopping at the first error.
    fn run(bytes: &[u8], mode: Option<u64>) -> (String, Result<Completion, StreamError>) {
        let mut s = AnthropicStream::new();
        let mut streamed = String::new();
        for ev in events(bytes, mode) {
            match s.on_event(&ev) {
                Ok(Some(d)) => {
                    assert!(!d.is_empty());
                    streamed.push_str(&d);
                }
                Ok(None) => {}
                Err(e) => {
                    assert_eq!(s.clone().finish(), Err(e.clone()), "errors are sticky");
                    return (streamed, Err(e));
                }
            }
        }
        (streamed, s.finish())
    }

    fn usage(i: u64, o: u64) -> Usage {
        Usage {
            input_tokens: i,
            output_tokens: o,
        }
    }

    fn event(name: &str, json: &str) -> String {
        format!("event: {name}\ndata: {json}\n\n")
    }

    fn start(input: u64) -> String {
        event(
            "message_start",
            &format!(
                r#"{{"type":"message_start","message":{{"id":"msg_1","type":"message","role":"assistant","content":[],"model":"claude","stop_reason":null,"stop_sequence":null,"usage":{{"input_tokens":{input},"output_tokens":1}}}}}}"#
            ),
        )
    }

    fn text(t: &str) -> String {
        event(
            "content_block_delta",
            &format!(
                r#"{{"type":"content_block_delta","index":0,"delta":{{"type":"text_delta","text":{}}}}}"#,
                serde_json::to_string(t).unwrap()
            ),
        )
    }

    fn stop(reason: &str, out: u64) -> String {
        event(
            "message_delta",
            &format!(
                r#"{{"type":"message_delta","delta":{{"stop_reason":"{reason}","stop_sequence":null}},"usage":{{"output_tokens":{out}}}}}"#
            ),
        )
    }

    const MESSAGE_STOP: &str = "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";

    /// Expected outcome of one fixture.
    struct Expect {
        file: &'static str,
        prefix: &'static str,
        suffix: &'static str,
        chars: usize,
        hash: u64,
        finish: FinishReason,
        usage: Option<Usage>,
    }

    fn exact(file: &'static str, text: &'static str, finish: FinishReason, u: Usage) -> Expect {
        Expect {
            file,
            prefix: text,
            suffix: text,
            chars: text.chars().count(),
            hash: fnv1a(text),
            finish,
            usage: Some(u),
        }
    }

    fn expectations() -> Vec<Expect> {
        vec![
            Expect {
                file: "anthropic-long-thinking.sse",
                prefix: " there! Happy to explain.\n\n**Solar eclipses** happen when th",
                suffix: " in fiction. Just let me know what's sparking your interest!",
                chars: 1312,
                hash: 0xd264_147b_bc54_d354,
                finish: FinishReason::Stop,
                usage: Some(usage(31, 547)),
            },
            exact(
                "anthropic-max-tokens.sse",
                "I'll create a comprehensive tax guide for someone with multiple W2s and save it in a file called taxes.txt. Let me do that for you now.",
                FinishReason::Length,
                usage(450, 124),
            ),
            exact("anthropic-refusal.sse", "", FinishReason::Refusal, usage(20, 0)),
            exact("anthropic-text-end-turn.sse", "Hello there!", FinishReason::Stop, usage(11, 6)),
            exact(
                "anthropic-tool-use.sse",
                "I'll check the current weather in Paris for you.",
                FinishReason::ToolCalls,
                usage(377, 65),
            ),
        ]
    }

    #[test]
    fn golden_fixtures() {
        let files = load_fixtures("anthropic-");
        let expect = expectations();
        for (name, _) in &files {
            assert!(
                expect.iter().any(|e| e.file == name),
                "fixture {name} has no expectation in this test"
            );
        }
        for e in &expect {
            let (_, bytes) = files
                .iter()
                .find(|(n, _)| n == e.file)
                .unwrap_or_else(|| panic!("fixture {} missing", e.file));
            let (streamed, result) = run(bytes, None);
            let c = result.unwrap_or_else(|err| panic!("{}: {err}", e.file));
            assert_eq!(streamed, c.text, "{}: deltas == text", e.file);
            assert!(c.text.starts_with(e.prefix), "{}: {:?}", e.file, c.text);
            assert!(c.text.ends_with(e.suffix), "{}: {:?}", e.file, c.text);
            assert_eq!(c.text.chars().count(), e.chars, "{}", e.file);
            assert_eq!(fnv1a(&c.text), e.hash, "{}", e.file);
            assert_eq!(c.finish, e.finish, "{}", e.file);
            assert_eq!(c.usage, e.usage, "{}", e.file);
            for mode in MODES {
                assert_eq!(
                    run(bytes, mode),
                    (streamed.clone(), Ok(c.clone())),
                    "{} {mode:?}",
                    e.file
                );
            }
        }
    }

    #[test]
    fn golden_fixtures_cut_before_message_delta_are_incomplete() {
        let files = load_fixtures("anthropic-");
        for (name, bytes) in &files {
            let text = String::from_utf8_lossy(bytes);
            let cut = text.find("event: message_delta").expect("fixture has message_delta");
            let (streamed, r) = run(text[..cut].as_bytes(), Some(5));
            assert_eq!(r, Err(StreamError::Incomplete), "{name}");
            // Adding message_stop without a stop_reason is still incomplete.
            let with_stop = format!("{}{MESSAGE_STOP}", &text[..cut]);
            assert_eq!(
                run(with_stop.as_bytes(), None),
                (streamed, Err(StreamError::Incomplete)),
                "{name}"
            );
        }
    }

    #[test]
    fn overloaded_error_event() {
        let input = format!(
            "{}{}event: error\ndata: {{\"type\":\"error\",\"error\":{{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}}}\n\n",
            start(10),
            text("Hal")
        );
        for mode in MODES {
            let (streamed, r) = run(input.as_bytes(), mode);
            assert_eq!(streamed, "Hal");
            assert_eq!(
                r,
                Err(StreamError::Provider {
                    kind: ProviderErrorKind::Overloaded,
                    message: "Overloaded".into()
                })
            );
        }
    }

    #[test]
    fn other_error_events() {
        let cases = [
            (
                r#"{"type":"error","error":{"type":"api_error","message":"Internal server error"}}"#,
                ProviderErrorKind::Server,
            ),
            (
                r#"{"type":"error","error":{"type":"rate_limit_error","message":"slow"}}"#,
                ProviderErrorKind::RateLimit,
            ),
            (
                r#"{"type":"error","error":{"type":"invalid_request_error","message":"bad"}}"#,
                ProviderErrorKind::BadRequest,
            ),
            (
                r#"{"type":"error","error":{"type":"brand_new_error","message":"?"}}"#,
                ProviderErrorKind::Other,
            ),
        ];
        for (json, kind) in cases {
            let input = format!("{}{}", start(1), event("error", json));
            match run(input.as_bytes(), None).1 {
                Err(StreamError::Provider { kind: k, .. }) => assert_eq!(k, kind, "{json}"),
                other => panic!("{json}: {other:?}"),
            }
        }
        let input = "event: error\ndata: upstream connect error\n\n";
        assert_eq!(
            run(input.as_bytes(), None).1,
            Err(StreamError::Provider {
                kind: ProviderErrorKind::Other,
                message: "upstream connect error".into()
            })
        );
    }

    #[test]
    fn no_message_delta_is_incomplete() {
        let input = format!("{}{}{MESSAGE_STOP}", start(3), text("cut"));
        assert_eq!(
            run(input.as_bytes(), None),
            ("cut".into(), Err(StreamError::Incomplete))
        );
        assert_eq!(run(b"", None).1, Err(StreamError::Incomplete));
        // message_delta with a null stop_reason is not a finish.
        let input = format!(
            "{}{}",
            start(3),
            event(
                "message_delta",
                r#"{"type":"message_delta","delta":{"stop_reason":null},"usage":{"output_tokens":2}}"#
            )
        );
        assert_eq!(run(input.as_bytes(), None).1, Err(StreamError::Incomplete));
    }

    #[test]
    fn eof_without_message_stop_is_ok() {
        let input = format!("{}{}{}", start(3), text("done"), stop("end_turn", 2));
        let c = run(input.as_bytes(), None).1.unwrap();
        assert_eq!(c.text, "done");
        assert_eq!(c.finish, FinishReason::Stop);
        assert_eq!(c.usage, Some(usage(3, 2)));
    }

    #[test]
    fn stop_reasons() {
        for (reason, want) in [
            ("end_turn", FinishReason::Stop),
            ("stop_sequence", FinishReason::Stop),
            ("max_tokens", FinishReason::Length),
            ("tool_use", FinishReason::ToolCalls),
            ("refusal", FinishReason::Refusal),
            ("pause_turn", FinishReason::Other("pause_turn".into())),
        ] {
            let input = format!("{}{}{MESSAGE_STOP}", start(1), stop(reason, 1));
            let c = run(input.as_bytes(), None).1.unwrap();
            assert_eq!(c.finish, want, "{reason}");
            assert_eq!(c.finish.is_truncated(), reason == "max_tokens");
        }
    }

    #[test]
    fn ignored_deltas_and_events() {
        let input = format!(
            "{}{}{}{}{}{}{}{}: keepalive\n\n{}{}{MESSAGE_STOP}",
            start(5),
            event(
                "content_block_start",
                r#"{"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":""}}"#
            ),
            event(
                "content_block_delta",
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"secret thoughts"}}"#
            ),
            event(
                "content_block_delta",
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"EqQBCgIYAhIM"}}"#
            ),
            event("content_block_stop", r#"{"type":"content_block_stop","index":0}"#),
            event("ping", r#"{"type": "ping"}"#),
            event(
                "content_block_delta",
                r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"a\":"}}"#
            ),
            event("future_event", r#"{"type":"future_event","whatever":[1,2,3]}"#),
            text("visible"),
            stop("end_turn", 9)
        );
        let (streamed, r) = run(input.as_bytes(), Some(0));
        assert_eq!(streamed, "visible");
        assert_eq!(r.unwrap().usage, Some(usage(5, 9)));
    }

    #[test]
    fn json_type_wins_over_event_name() {
        // Mislabelled event line: the JSON type is trusted.
        let input = format!(
            "{}event: ping\ndata: {{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"text_delta\",\"text\":\"x\"}}}}\n\n{}",
            start(1),
            stop("end_turn", 1)
        );
        assert_eq!(run(input.as_bytes(), None).1.unwrap().text, "x");
        // No JSON type: the event name is used.
        let input = format!(
            "{}event: content_block_delta\ndata: {{\"index\":0,\"delta\":{{\"type\":\"text_delta\",\"text\":\"y\"}}}}\n\n{}",
            start(1),
            stop("end_turn", 1)
        );
        assert_eq!(run(input.as_bytes(), None).1.unwrap().text, "y");
    }

    #[test]
    fn usage_with_cache_and_message_delta_input() {
        let input = format!(
            "{}{}{MESSAGE_STOP}",
            event(
                "message_start",
                r#"{"type":"message_start","message":{"usage":{"input_tokens":10,"cache_creation_input_tokens":100,"cache_read_input_tokens":1000,"output_tokens":1}}}"#
            ),
            event(
                "message_delta",
                r#"{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"input_tokens":12,"output_tokens":50}}"#
            )
        );
        assert_eq!(run(input.as_bytes(), None).1.unwrap().usage, Some(usage(1112, 50)));
        // No usage anywhere.
        let input = event(
            "message_delta",
            r#"{"type":"message_delta","delta":{"stop_reason":"end_turn"}}"#,
        );
        assert_eq!(run(input.as_bytes(), None).1.unwrap().usage, None);
    }

    #[test]
    fn malformed_is_an_error() {
        let input = format!(
            "{}event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"delta\":\n\n",
            start(1)
        );
        assert!(matches!(run(input.as_bytes(), None).1, Err(StreamError::Malformed(_))));
        let input = event(
            "content_block_delta",
            r#"{"type":"content_block_delta","delta":{"type":"text_delta","text":5}}"#,
        );
        assert!(matches!(run(input.as_bytes(), None).1, Err(StreamError::Malformed(_))));
        // Blank data is skipped.
        let input = format!("data:\n\n{}{}", text("a"), stop("end_turn", 1));
        assert_eq!(run(input.as_bytes(), None).1.unwrap().text, "a");
    }

    #[test]
    fn events_after_message_stop_ignored() {
        let input = format!(
            "{}{}{}{MESSAGE_STOP}{}data: junk\n\n",
            start(1),
            text("a"),
            stop("end_turn", 1),
            text("late")
        );
        assert_eq!(
            run(input.as_bytes(), None),
            (
                "a".into(),
                Ok(Completion {
                    text: "a".into(),
                    finish: FinishReason::Stop,
                    usage: Some(usage(1, 1)),
                })
            )
        );
    }

    #[test]
    fn crlf_and_utf8_split() {
        let input = format!(
            "{}{}{}{}{MESSAGE_STOP}",
            start(2),
            text("Grüße, "),
            text("世界 🌍"),
            stop("end_turn", 4)
        )
        .replace('\n', "\r\n");
        for mode in MODES {
            let (streamed, r) = run(input.as_bytes(), mode);
            assert_eq!(streamed, "Grüße, 世界 🌍", "{mode:?}");
            assert_eq!(r.unwrap().text, streamed);
        }
    }

    #[test]
    fn initial_block_text_counts() {
        let input = format!(
            "{}{}{}{}",
            start(1),
            event(
                "content_block_start",
                r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":"Pre"}}"#
            ),
            text("fix"),
            stop("end_turn", 1)
        );
        assert_eq!(run(input.as_bytes(), None).0, "Prefix");
    }
}
