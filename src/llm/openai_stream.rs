//! State machine for OpenAI-compatible streamed chat completions (`chat.completion.chunk` SSE events).
//!
//! Feed each [`SseEvent`] to [`OpenAiStream::on_event`], which returns the new text (if any) so
//! callers can stream progressively, then call [`OpenAiStream::finish`] for the [`Completion`].
//!
//! Rules:
//! - `data: [DONE]` ends the stream; later events are ignored. EOF without `[DONE]` is fine as
//!   long as a `finish_reason` arrived; without one, [`finish`](OpenAiStream::finish) returns
//!   [`StreamError::Incomplete`] (whether or not `[DONE]` came).
//! - Only choice index 0 counts (a missing `index` means 0); other choices of an `n > 1` request
//!   are ignored.
//! - `refusal` deltas are text: they are returned and collected like `content` (so the final text
//!   is always the concatenation of the returned deltas), and a reply containing refusal text
//!   finishes with [`FinishReason::Refusal`] instead of `Stop`.
//! - `tool_calls` deltas and `reasoning_content` are ignored; `finish_reason: "tool_calls"` is
//!   reported as [`FinishReason::ToolCalls`].
//! - Usage comes from any chunk with a `usage` object (OpenAI's final chunk has `choices: []`;
//!   vLLM's may have `choices` null or missing); the last one wins. No usage chunk → `None`.
//! - An error inside the stream (`{"error":{..}}`, vLLM `{"object":"error",..}`, OpenRouter's
//!   numeric `error.code`, or an `event: error`) → [`StreamError::Provider`]. OpenRouter's
//!   `finish_reason: "error"` without an error object → `Provider` with kind `Server`.
//! - A `data:` payload that is not JSON of the expected shape → [`StreamError::Malformed`]; the
//!   stream is aborted rather than risking silently lost text. Blank `data:` payloads are skipped.
//! - Errors are sticky: after one, `on_event` and `finish` return the same error.

use serde::Deserialize;
use serde_json::Value;

use crate::llm::sse::SseEvent;
use crate::llm::stream::{
    clean_message, error_from_json, malformed, Completion, FinishReason, ProviderErrorKind, StreamError, Usage,
};

/// Accumulates an OpenAI-compatible chat completion stream.
#[derive(Debug, Clone, Default)]
pub struct OpenAiStream {
    /// Text collected so far (content and refusal deltas of choice 0).
    text: String,
    /// Finish reason of choice 0, once seen.
    finish: Option<FinishReason>,
    /// Whether any non-empty refusal delta was seen.
    refused: bool,
    /// Last usage reported.
    usage: Option<Usage>,
    /// `[DONE]` was seen.
    done: bool,
    /// The first error, repeated on every later call.
    error: Option<StreamError>,
}

/// One `chat.completion.chunk`, leniently typed.
#[derive(Debug, Deserialize)]
struct Chunk {
    #[serde(default)]
    choices: Option<Vec<Choice>>,
    #[serde(default)]
    usage: Option<WireUsage>,
}

/// One entry of `choices`.
#[derive(Debug, Deserialize)]
struct Choice {
    #[serde(default)]
    index: Option<u64>,
    #[serde(default)]
    delta: Option<Delta>,
    #[serde(default)]
    finish_reason: Option<String>,
}

/// The `delta` of a choice; `content` is a string or (some servers) an array of text parts.
#[derive(Debug, Deserialize)]
struct Delta {
    #[serde(default)]
    content: Option<Value>,
    #[serde(default)]
    refusal: Option<String>,
}

/// The `usage` object.
#[derive(Debug, Deserialize)]
struct WireUsage {
    #[serde(default)]
    prompt_tokens: Option<u64>,
    #[serde(default)]
    completion_tokens: Option<u64>,
}

impl OpenAiStream {
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
        if self.done {
            return Ok(None);
        }
        let result = self.handle(ev);
        if let Err(e) = &result {
            self.error = Some(e.clone());
        }
        result
    }

    /// Ends the stream (after `[DONE]` or EOF) and returns the completion.
    pub fn finish(self) -> Result<Completion, StreamError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        let mut finish = self.finish.ok_or(StreamError::Incomplete)?;
        if self.refused && finish == FinishReason::Stop {
            finish = FinishReason::Refusal;
        }
        Ok(Completion {
            text: self.text,
            finish,
            usage: self.usage,
        })
    }

    /// Interprets one event; errors are recorded by the caller.
    fn handle(&mut self, ev: &SseEvent) -> Result<Option<String>, StreamError> {
        let data = ev.data.trim();
        if data.is_empty() {
            return Ok(None);
        }
        if data == "[DONE]" {
            self.done = true;
            return Ok(None);
        }
        let value: Value = match serde_json::from_str(data) {
            Ok(v) => v,
            Err(e) => {
                if ev.event.as_deref() == Some("error") {
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
        if ev.event.as_deref() == Some("error") {
            return Err(StreamError::Provider {
                kind: ProviderErrorKind::Other,
                message: clean_message(data),
            });
        }
        let chunk: Chunk = serde_json::from_value(value).map_err(|e| malformed(&e, data))?;
        if let Some(u) = chunk.usage {
            if u.prompt_tokens.is_some() || u.completion_tokens.is_some() {
                self.usage = Some(Usage {
                    input_tokens: u.prompt_tokens.unwrap_or(0),
                    output_tokens: u.completion_tokens.unwrap_or(0),
                });
            }
        }
        let mut added = String::new();
        for choice in chunk.choices.unwrap_or_default() {
            if choice.index.unwrap_or(0) != 0 {
                continue;
            }
            if let Some(delta) = choice.delta {
                if let Some(content) = &delta.content {
                    push_content(&mut added, content);
                }
                if let Some(refusal) = delta.refusal.as_deref() {
                    if !refusal.is_empty() {
                        self.refused = true;
                        added.push_str(refusal);
                    }
                }
            }
            match choice.finish_reason.as_deref() {
                None | Some("") => {}
                Some("error") => {
                    return Err(StreamError::Provider {
                        kind: ProviderErrorKind::Server,
                        message: "generation ended with finish_reason \"error\"".to_string(),
                    })
                }
                Some(reason) => self.finish = Some(FinishReason::from_openai(reason)),
            }
        }
        if added.is_empty() {
            Ok(None)
        } else {
            self.text.push_str(&added);
            Ok(Some(added))
        }
    }
}

/// Appends `content`: a string, or an array of `{"type":"text","text":..}` parts (other parts ignored).
fn push_content(out: &mut String, content: &Value) {
    match content {
        Value::String(s) => out.push_str(s),
        Value::Array(parts) => {
            for part in parts {
                let is_text = matches!(part.get("type").and_then(Value::as_str), None | Some("text"));
                if let (true, Some(t)) = (is_text, part.get("text").and_then(Value::as_str)) {
                    out.push_str(t);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::stream::test_support::{events, fnv1a, load_fixtures, MODES};

    /// Runs a whole byte stream through the SSE parser and an [`OpenAiStream`].
    /// Returns the concatenated deltas and the result; stops at the first error like a caller would.
    fn run(bytes: &[u8], mode: Option<u64>) -> (String, Result<Completion, StreamError>) {
        let mut s = OpenAiStream::new();
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

    fn data(json: &str) -> String {
        format!("data: {json}\n\n")
    }

    fn chunk(delta: &str, finish: Option<&str>) -> String {
        let fr = finish.map_or("null".to_string(), |f| format!("\"{f}\""));
        data(&format!(
            r#"{{"id":"x","object":"chat.completion.chunk","choices":[{{"index":0,"delta":{delta},"finish_reason":{fr}}}]}}"#
        ))
    }

    fn content(text: &str) -> String {
        chunk(
            &format!(r#"{{"content":{}}}"#, serde_json::to_string(text).unwrap()),
            None,
        )
    }

    fn usage(pt: u64, ct: u64) -> Usage {
        Usage {
            input_tokens: pt,
            output_tokens: ct,
        }
    }

    /// Expected outcome of one fixture.
    struct Expect {
        file: &'static str,
        /// Exact text, or `None` to check `prefix`/`suffix`/`chars`/`hash` instead.
        text: Option<&'static str>,
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
            text: Some(text),
            prefix: "",
            suffix: "",
            chars: text.chars().count(),
            hash: fnv1a(text),
            finish,
            usage: Some(u),
        }
    }

    fn expectations() -> Vec<Expect> {
        vec![
            exact("openai-finish-length.sse", "{\"", FinishReason::Length, usage(79, 1)),
            Expect {
                file: "openai-long-text.sse",
                text: None,
                prefix: "\n  {\n    \"location\": \"San Francisco, CA\",\n    \"weather\": {\n ",
                suffix: "w\": \"14°C\",\n        \"condition\": \"Cloudy\"\n      }\n    ]\n  }\n",
                chars: 608,
                hash: 0x9578_27f3_71a4_948d,
                finish: FinishReason::Stop,
                usage: Some(usage(19, 177)),
            },
            exact(
                "openai-refusal.sse",
                "I'm sorry, I can't assist with that request.",
                FinishReason::Refusal,
                usage(79, 11),
            ),
            exact(
                "openai-text-stop.sse",
                "I'm unable to provide real-time weather updates. To get the current weather in San Francisco, I recommend checking a reliable weather website or a weather app.",
                FinishReason::Stop,
                usage(14, 30),
            ),
            exact(
                "openai-three-choices.sse",
                r#"{"city":"San Francisco","temperature":65,"units":"f"}"#,
                FinishReason::Stop,
                usage(79, 42),
            ),
            exact("openai-tool-calls.sse", "", FinishReason::ToolCalls, usage(76, 24)),
        ]
    }

    #[test]
    fn golden_fixtures() {
        let files = load_fixtures("openai-");
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
            if let Some(t) = e.text {
                assert_eq!(c.text, t, "{}", e.file);
            }
            assert!(c.text.starts_with(e.prefix), "{}", e.file);
            assert!(c.text.ends_with(e.suffix), "{}", e.file);
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
    fn golden_fixtures_truncated_are_incomplete() {
        // Cutting a fixture before its finish_reason chunk must never look like success.
        let files = load_fixtures("openai-");
        for (name, bytes) in &files {
            let text = String::from_utf8_lossy(bytes);
            let cut = text.find("\"finish_reason\":\"").expect("fixture has a finish_reason");
            let line_start = text[..cut].rfind("\n\n").map_or(0, |p| p + 2);
            let mut truncated = text[..line_start].to_string();
            truncated.push_str("data: [DONE]\n\n");
            assert_eq!(
                run(truncated.as_bytes(), None).1,
                Err(StreamError::Incomplete),
                "{name}"
            );
        }
    }

    #[test]
    fn corrupted_fixtures_never_panic() {
        let files = load_fixtures("");
        let mut rng = crate::llm::stream::test_support::Rng::new(2024);
        for (_, bytes) in &files {
            for _ in 0..20 {
                let mut b = bytes.clone();
                for _ in 0..8 {
                    let i = rng.next_in(b.len()) - 1;
                    if let Some(x) = b.get_mut(i) {
                        *x = (rng.next_in(256) - 1) as u8;
                    }
                }
                let _ = run(&b, Some(rng.next_in(1000) as u64));
                let mut a = crate::llm::anthropic_stream::AnthropicStream::new();
                for ev in events(&b, None) {
                    if a.on_event(&ev).is_err() {
                        break;
                    }
                }
                let _ = a.finish();
            }
        }
    }

    #[test]
    fn comment_lines_ignored() {
        let input = format!(
            ": OPENROUTER PROCESSING\n\n: ping\n\n{}: ping\n\n{}{}data: [DONE]\n\n",
            content("Hi"),
            content(" there"),
            chunk("{}", Some("stop"))
        );
        let (streamed, r) = run(input.as_bytes(), Some(0));
        let c = r.unwrap();
        assert_eq!(streamed, "Hi there");
        assert_eq!(c.text, "Hi there");
        assert_eq!(c.finish, FinishReason::Stop);
    }

    #[test]
    fn no_usage_chunk_llama_cpp() {
        let input = format!("{}{}data: [DONE]\n\n", content("ok"), chunk("{}", Some("stop")));
        let c = run(input.as_bytes(), None).1.unwrap();
        assert_eq!(c.usage, None);
        assert_eq!(c.text, "ok");
    }

    #[test]
    fn usage_chunk_with_null_or_missing_choices_vllm() {
        for shape in [
            r#"{"id":"x","object":"chat.completion.chunk","choices":null,"usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}}"#,
            r#"{"id":"x","object":"chat.completion.chunk","usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}}"#,
            r#"{"id":"x","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":2}}"#,
        ] {
            let input = format!(
                "{}{}{}data: [DONE]\n\n",
                content("a"),
                chunk("{}", Some("stop")),
                data(shape)
            );
            let c = run(input.as_bytes(), None).1.unwrap();
            assert_eq!(c.usage, Some(usage(5, 2)), "{shape}");
        }
        // `usage: null` on every chunk is not usage.
        let input = format!(
            "{}{}data: [DONE]\n\n",
            data(r#"{"choices":[{"index":0,"delta":{"content":"a"},"finish_reason":null}],"usage":null}"#),
            data(r#"{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":null}"#)
        );
        assert_eq!(run(input.as_bytes(), None).1.unwrap().usage, None);
    }

    #[test]
    fn usage_on_the_finish_chunk() {
        let input = data(
            r#"{"choices":[{"index":0,"delta":{"content":"x"},"finish_reason":"length"}],"usage":{"prompt_tokens":3,"completion_tokens":1}}"#,
        );
        let c = run(input.as_bytes(), None).1.unwrap();
        assert_eq!(c.finish, FinishReason::Length);
        assert!(c.finish.is_truncated());
        assert_eq!(c.usage, Some(usage(3, 1)));
    }

    #[test]
    fn no_finish_reason_is_incomplete() {
        let with_done = format!("{}data: [DONE]\n\n", content("partial"));
        assert_eq!(
            run(with_done.as_bytes(), None),
            ("partial".into(), Err(StreamError::Incomplete))
        );
        let eof = content("partial");
        assert_eq!(run(eof.as_bytes(), None).1, Err(StreamError::Incomplete));
        assert_eq!(run(b"", None).1, Err(StreamError::Incomplete));
        assert_eq!(run(b"data: [DONE]\n\n", None).1, Err(StreamError::Incomplete));
        // A finish_reason on another choice does not count.
        let other = data(r#"{"choices":[{"index":1,"delta":{},"finish_reason":"stop"}]}"#);
        assert_eq!(run(other.as_bytes(), None).1, Err(StreamError::Incomplete));
    }

    #[test]
    fn finish_without_done_at_eof_is_ok() {
        let input = format!("{}{}", content("x"), chunk("{}", Some("stop")));
        assert_eq!(run(input.as_bytes(), None).1.unwrap().finish, FinishReason::Stop);
    }

    #[test]
    fn events_after_done_are_ignored() {
        let input = format!(
            "{}{}data: [DONE]\n\n{}data: garbage\n\n",
            content("x"),
            chunk("{}", Some("stop")),
            content("late")
        );
        let (streamed, r) = run(input.as_bytes(), None);
        assert_eq!(streamed, "x");
        assert_eq!(r.unwrap().text, "x");
    }

    #[test]
    fn error_after_200_openai_shape() {
        let input = format!(
            "{}{}",
            content("half"),
            data(
                r#"{"error":{"message":"The server had an error while processing your request.","type":"server_error","param":null,"code":null}}"#
            )
        );
        let (streamed, r) = run(input.as_bytes(), None);
        assert_eq!(streamed, "half");
        assert_eq!(
            r,
            Err(StreamError::Provider {
                kind: ProviderErrorKind::Server,
                message: "The server had an error while processing your request.".into()
            })
        );
    }

    #[test]
    fn error_after_200_vllm_shape() {
        let input = data(
            r#"{"object":"error","message":"This model's maximum context length is 4096 tokens.","type":"BadRequestError","param":null,"code":400}"#,
        );
        assert_eq!(
            run(input.as_bytes(), None).1,
            Err(StreamError::Provider {
                kind: ProviderErrorKind::ContextOverflow,
                message: "This model's maximum context length is 4096 tokens.".into()
            })
        );
    }

    #[test]
    fn error_after_200_openrouter_numeric_code() {
        let cases = [
            (
                r#"{"error":{"code":429,"message":"Rate limit exceeded: free-models-per-min","metadata":{"headers":{}}}}"#,
                ProviderErrorKind::RateLimit,
            ),
            (
                r#"{"error":{"code":502,"message":"Provider returned error"}}"#,
                ProviderErrorKind::Server,
            ),
            (
                r#"{"error":{"code":401,"message":"User not found."}}"#,
                ProviderErrorKind::Auth,
            ),
            (
                r#"{"error":{"code":402,"message":"Insufficient credits"}}"#,
                ProviderErrorKind::Other,
            ),
            // OpenRouter's mid-stream shape: error object plus a choice with finish_reason "error".
            (
                r#"{"id":"cmpl-1","object":"chat.completion.chunk","provider":"openai","error":{"code":"server_error","message":"Provider disconnected unexpectedly"},"choices":[{"index":0,"delta":{"content":""},"finish_reason":"error"}]}"#,
                ProviderErrorKind::Server,
            ),
        ];
        for (json, kind) in cases {
            let input = format!(": OPENROUTER PROCESSING\n\n{}{}", content("a"), data(json));
            match run(input.as_bytes(), Some(0)).1 {
                Err(StreamError::Provider { kind: k, .. }) => assert_eq!(k, kind, "{json}"),
                other => panic!("{json}: {other:?}"),
            }
        }
        // finish_reason "error" alone.
        let input = chunk("{}", Some("error"));
        assert!(matches!(
            run(input.as_bytes(), None).1,
            Err(StreamError::Provider {
                kind: ProviderErrorKind::Server,
                ..
            })
        ));
    }

    #[test]
    fn error_event_name() {
        let input = "event: error\ndata: upstream exploded\n\n";
        assert_eq!(
            run(input.as_bytes(), None).1,
            Err(StreamError::Provider {
                kind: ProviderErrorKind::Other,
                message: "upstream exploded".into()
            })
        );
        let input = "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n";
        assert!(matches!(
            run(input.as_bytes(), None).1,
            Err(StreamError::Provider {
                kind: ProviderErrorKind::Overloaded,
                ..
            })
        ));
    }

    #[test]
    fn malformed_json_is_an_error() {
        let input = format!(
            "{}data: {{\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"x\"\n\n",
            content("a")
        );
        match run(input.as_bytes(), None).1 {
            Err(StreamError::Malformed(m)) => assert!(m.contains("data: {\"choices\""), "{m}"),
            other => panic!("{other:?}"),
        }
        // Valid JSON of the wrong shape.
        let input = data(r#"{"choices":"nope"}"#);
        assert!(matches!(run(input.as_bytes(), None).1, Err(StreamError::Malformed(_))));
        let input = data(r#"{"choices":[{"index":0,"delta":{"content":"x","refusal":7}}]}"#);
        assert!(matches!(run(input.as_bytes(), None).1, Err(StreamError::Malformed(_))));
        // Blank data is skipped, not an error.
        let input = format!("data:\n\ndata:   \n\n{}", chunk(r#"{"content":"k"}"#, Some("stop")));
        assert_eq!(run(input.as_bytes(), None).1.unwrap().text, "k");
    }

    #[test]
    fn sticky_error() {
        let mut s = OpenAiStream::new();
        let bad = SseEvent {
            event: None,
            data: "not json".into(),
        };
        let e = s.on_event(&bad).unwrap_err();
        let good = SseEvent {
            event: None,
            data: r#"{"choices":[{"index":0,"delta":{"content":"x"},"finish_reason":"stop"}]}"#.into(),
        };
        assert_eq!(s.on_event(&good), Err(e.clone()));
        assert_eq!(s.finish(), Err(e));
    }

    #[test]
    fn crlf_and_utf8_split() {
        let input = format!(
            "{}{}{}data: [DONE]\n\n",
            content("Ça va? 日本語 🎉"),
            content(" — ok"),
            chunk("{}", Some("stop"))
        )
        .replace('\n', "\r\n");
        for mode in MODES {
            let (streamed, r) = run(input.as_bytes(), mode);
            assert_eq!(streamed, "Ça va? 日本語 🎉 — ok", "{mode:?}");
            assert_eq!(r.unwrap().text, streamed);
        }
    }

    #[test]
    fn refusal_with_content_filter_keeps_filter() {
        let input = format!(
            "{}{}",
            chunk(r#"{"refusal":"No."}"#, None),
            chunk("{}", Some("content_filter"))
        );
        let c = run(input.as_bytes(), None).1.unwrap();
        assert_eq!(c.text, "No.");
        assert_eq!(c.finish, FinishReason::ContentFilter);
    }

    #[test]
    fn content_parts_array_and_missing_index() {
        let input = format!(
            "{}{}",
            data(
                r#"{"choices":[{"delta":{"content":[{"type":"text","text":"a"},{"type":"thinking","thinking":"hmm"},{"type":"text","text":"b"}]}}]}"#
            ),
            data(r#"{"choices":[{"delta":{"reasoning_content":"ignored","content":null},"finish_reason":"stop"}]}"#)
        );
        let c = run(input.as_bytes(), None).1.unwrap();
        assert_eq!(c.text, "ab");
    }

    #[test]
    fn finish_reason_mapping_through_stream() {
        for (reason, want) in [
            ("stop", FinishReason::Stop),
            ("length", FinishReason::Length),
            ("content_filter", FinishReason::ContentFilter),
            ("tool_calls", FinishReason::ToolCalls),
            ("eos", FinishReason::Stop),
            ("something_new", FinishReason::Other("something_new".into())),
        ] {
            let input = chunk("{}", Some(reason));
            assert_eq!(run(input.as_bytes(), None).1.unwrap().finish, want, "{reason}");
        }
    }
}
