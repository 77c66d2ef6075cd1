//! The OpenAI-compatible and Anthropic backends against the local LLM test server: streaming,
//! the progressive token strategy, retries, timeouts and failures (issue: LLM backends).

use serde_json::json;
use troupe::config::Config;
use troupe::llm::stream::FinishReason;
use troupe::llm::wire::CONTINUE_INSTRUCTION;
use troupe::llm::{Backend, LlmError, Prompt, PromptTurn, Role, TimeoutPhase};
use troupe_llm_test_server::{tokens, words, Format, LlmTestServer, OverflowStyle, Reply};

const KEY: &str = "sk-test-0123456789abcdef";
/// Fast retries so failing paths finish quickly.
const RETRIES: &str = "retries = { max_attempts = 3, base_delay_ms = 1, max_delay_ms = 20 }";

struct Setup {
    server: LlmTestServer,
    _key_dir: tempfile::TempDir,
    key_path: String,
}

async fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("key");
    std::fs::write(&path, format!("{KEY}\n")).unwrap();
    Setup {
        server: LlmTestServer::start().await.unwrap(),
        key_path: path.display().to_string(),
        _key_dir: dir,
    }
}

impl Setup {
    /// A backend of `format` pointed at the test server, with `extra` TOML lines.
    fn backend(&self, format: Format, extra: &str) -> Backend {
        let (provider, url) = match format {
            Format::OpenAi => ("openai", self.server.openai_base_url()),
            Format::Anthropic => ("anthropic", self.server.anthropic_base_url()),
        };
        let text = format!(
            "[backends.b]\nprovider = \"{provider}\"\nmodel = \"test-model\"\nbase_url = \"{url}\"\napi_key_file = \"{}\"\n{extra}\n\n[[agents]]\nname = \"Ada\"\nbackend = \"b\"\n",
            self.key_path
        );
        let config = Config::parse("test.toml", &text).unwrap_or_else(|e| panic!("{e}"));
        Backend::from_config(&config.backends["b"]).unwrap()
    }
}

fn prompt() -> Prompt {
    Prompt {
        agent: "Ada".into(),
        system: "You are Ada.".into(),
        turns: vec![PromptTurn {
            role: Role::User,
            author: "alice".into(),
            content: "hello".into(),
            images: Vec::new(),
        }],
    }
}

const BOTH: [Format; 2] = [Format::OpenAi, Format::Anthropic];

#[tokio::test]
async fn openai_streaming_success() {
    let s = setup().await;
    s.server.push(Reply::text("Hello there, alice."));
    let c = s.backend(Format::OpenAi, "").complete(&prompt()).await.unwrap();
    assert_eq!(c.text, "Hello there, alice.");
    assert_eq!(c.finish, FinishReason::Stop);
    assert_eq!(c.usage.unwrap().output_tokens, 3);
    let reqs = s.server.requests();
    assert_eq!(reqs.len(), 1);
    let r = &reqs[0];
    assert_eq!(r.path, "/v1/chat/completions");
    assert_eq!(r.header("authorization"), Some(format!("Bearer {KEY}").as_str()));
    assert_eq!(r.body["model"], "test-model");
    assert_eq!(r.body["stream"], true);
    assert_eq!(r.body["stream_options"], json!({"include_usage": true}));
    assert_eq!(r.max_tokens(), Some(512));
    assert_eq!(r.messages()[0], json!({"role": "system", "content": "You are Ada."}));
    assert_eq!(r.messages()[1], json!({"role": "user", "content": "alice: hello"}));
}

#[tokio::test]
async fn anthropic_streaming_success() {
    let s = setup().await;
    s.server.push(Reply::text("Hello there, alice."));
    let c = s.backend(Format::Anthropic, "").complete(&prompt()).await.unwrap();
    assert_eq!(c.text, "Hello there, alice.");
    assert_eq!(c.finish, FinishReason::Stop);
    assert_eq!(c.usage.unwrap().output_tokens, 3);
    let r = &s.server.requests()[0];
    assert_eq!(r.path, "/v1/messages");
    assert_eq!(r.header("x-api-key"), Some(KEY));
    assert_eq!(r.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(r.header("authorization"), None);
    assert_eq!(r.body["system"], "You are Ada.");
    assert_eq!(r.body["stream"], true);
    assert_eq!(r.messages(), vec![json!({"role": "user", "content": "alice: hello"})]);
}

#[tokio::test]
async fn progressive_retry_asks_again_with_more_tokens() {
    for format in BOTH {
        let s = setup().await;
        s.server.set_default(Reply::text(words(300)));
        let backend = s.backend(format, "tokens = { from = 256, until = 4096, step = 256 }");
        let c = backend.complete(&prompt()).await.unwrap();
        assert_eq!(c.text, words(300), "{format:?}");
        assert_eq!(c.finish, FinishReason::Stop);
        let limits: Vec<Option<u64>> = s.server.requests().iter().map(|r| r.max_tokens()).collect();
        assert_eq!(limits, [Some(256), Some(512)], "{format:?}: exactly two requests");
        // Both requests were paid for.
        assert_eq!(c.usage.unwrap().output_tokens, 556, "{format:?}");
    }
}

#[tokio::test]
async fn continue_mode_continues_the_cut_reply() {
    for format in BOTH {
        let s = setup().await;
        let full = words(300);
        let cut: String = tokens(&full)[..256].concat();
        s.server.push(Reply::text(full.clone()));
        s.server.push(Reply::text(tokens(&full)[256..].concat()));
        let backend = s.backend(
            format,
            "tokens = { from = 256, until = 4096, step = 256 }\non_truncation = \"continue\"",
        );
        let c = backend.complete(&prompt()).await.unwrap();
        assert_eq!(c.text, full, "{format:?}");
        let reqs = s.server.requests();
        assert_eq!(reqs.len(), 2, "{format:?}");
        assert_eq!(
            reqs[1].max_tokens(),
            Some(256),
            "{format:?}: a continuation asks for `step` tokens"
        );
        let msgs = reqs[1].messages();
        match format {
            Format::OpenAi => {
                assert_eq!(msgs[msgs.len() - 2], json!({"role": "assistant", "content": cut}));
                assert_eq!(
                    msgs[msgs.len() - 1],
                    json!({"role": "user", "content": CONTINUE_INSTRUCTION})
                );
            }
            Format::Anthropic => {
                assert_eq!(msgs[msgs.len() - 1], json!({"role": "assistant", "content": cut}));
            }
        }
    }
}

#[tokio::test]
async fn the_test_server_echoes_the_last_user_turn_word_by_word() {
    for format in BOTH {
        let s = setup().await;
        s.server
            .push(Reply::echo().token_delay(std::time::Duration::from_millis(5)));
        let (tx, mut rx) = tokio::sync::watch::channel(String::new());
        let seen = tokio::spawn(async move {
            let mut n = 0;
            while rx.changed().await.is_ok() {
                n += 1;
            }
            n
        });
        let c = s
            .backend(format, "")
            .complete_streaming(&prompt(), Some(&tx))
            .await
            .unwrap();
        drop(tx);
        assert_eq!(c.text, "echo: alice: hello", "{format:?}");
        assert!(seen.await.unwrap() >= 2, "{format:?}: streamed in several pieces");
    }
}

#[tokio::test]
async fn a_streamed_continuation_publishes_the_whole_reply_so_far() {
    for format in BOTH {
        let s = setup().await;
        let full = words(40);
        let delay = std::time::Duration::from_millis(2);
        s.server.push(Reply::text(full.clone()).token_delay(delay));
        s.server
            .push(Reply::text(tokens(&full)[20..].concat()).token_delay(delay));
        let backend = s.backend(
            format,
            "tokens = { from = 20, until = 400, step = 20 }\non_truncation = \"continue\"",
        );
        let (tx, mut rx) = tokio::sync::watch::channel(String::new());
        let seen = tokio::spawn(async move {
            let mut seen = Vec::new();
            while rx.changed().await.is_ok() {
                seen.push(rx.borrow_and_update().clone());
            }
            seen
        });
        let c = backend.complete_streaming(&prompt(), Some(&tx)).await.unwrap();
        drop(tx);
        let seen = seen.await.unwrap();
        assert_eq!(c.text, full, "{format:?}");
        assert_eq!(seen.last(), Some(&full), "{format:?}");
        // Every version is a prefix of the reply, and the continuation's versions hold the cut
        // text before them: the message keeps growing, it never starts over.
        let cut: String = tokens(&full)[..20].concat();
        assert!(
            seen.iter().all(|v| full.starts_with(v.as_str())),
            "{format:?}: {seen:?}"
        );
        assert!(
            seen.iter().any(|v| v.len() > cut.len() && v.len() < full.len()),
            "{format:?}: {seen:?}"
        );
        let lengths: Vec<usize> = seen.iter().map(String::len).collect();
        assert!(lengths.windows(2).all(|w| w[0] <= w[1]), "{format:?}: {lengths:?}");
    }
}

#[tokio::test]
async fn reply_still_cut_at_until_is_marked_as_cut() {
    let s = setup().await;
    s.server.set_default(Reply::text(words(100)));
    let backend = s.backend(Format::OpenAi, "tokens = { from = 10, until = 30, step = 10 }");
    let c = backend.complete(&prompt()).await.unwrap();
    assert_eq!(c.finish, FinishReason::Length);
    assert!(c.text.starts_with(&words(30)), "{}", c.text);
    assert!(c.text.ends_with(troupe::llm::progressive::CUT_NOTE), "{}", c.text);
    assert_eq!(s.server.requests().len(), 3);
}

#[tokio::test]
async fn rate_limit_with_retry_after_then_success() {
    for format in BOTH {
        let s = setup().await;
        let body = r#"{"error":{"message":"Rate limit reached","type":"requests","code":"rate_limit_exceeded"}}"#;
        s.server.push(Reply::error(429, body).retry_after("0"));
        s.server.push(Reply::error(429, body).retry_after_ms("1"));
        s.server.push(Reply::text("finally"));
        let c = s.backend(format, RETRIES).complete(&prompt()).await.unwrap();
        assert_eq!(c.text, "finally");
        assert_eq!(s.server.requests().len(), 3, "{format:?}");
    }
}

#[tokio::test]
async fn retry_after_longer_than_max_delay_is_not_waited_for() {
    let s = setup().await;
    s.server
        .push(Reply::error(429, r#"{"error":{"message":"slow down"}}"#).retry_after("120"));
    let err = s
        .backend(Format::OpenAi, RETRIES)
        .complete(&prompt())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), "rate_limit");
    assert_eq!(err.retry_after(), Some(std::time::Duration::from_secs(120)));
    assert_eq!(s.server.requests().len(), 1);
}

#[tokio::test]
async fn server_errors_are_retried_then_given_up_with_a_typed_error() {
    for format in BOTH {
        let s = setup().await;
        s.server.set_default(Reply::error(500, "Internal Server Error"));
        let err = s.backend(format, RETRIES).complete(&prompt()).await.unwrap_err();
        assert!(matches!(err, LlmError::Unavailable { .. }), "{err:?}");
        assert_eq!(err.kind(), "backend");
        assert_eq!(err.to_string(), "backend unavailable: HTTP 500: Internal Server Error");
        assert_eq!(s.server.requests().len(), 3, "{format:?}: max_attempts");
    }
}

#[tokio::test]
async fn anthropic_overloaded_529_is_retried() {
    let s = setup().await;
    let body = r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#;
    s.server.push(Reply::error(529, body));
    s.server.push(Reply::text("ok now"));
    let c = s.backend(Format::Anthropic, RETRIES).complete(&prompt()).await.unwrap();
    assert_eq!(c.text, "ok now");
    assert_eq!(s.server.requests().len(), 2);
    s.server.set_default(Reply::error(529, body));
    let err = s
        .backend(Format::Anthropic, RETRIES)
        .complete(&prompt())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), "overloaded");
}

/// The test server's context window answers with each provider's overflow error, which the
/// backend classifies as `context_overflow` and does not retry; a request that fits is answered.
#[tokio::test]
async fn a_prompt_larger_than_the_window_is_a_context_overflow_per_provider() {
    let long = |n: usize| Prompt {
        turns: vec![PromptTurn {
            role: Role::User,
            author: "alice".into(),
            content: words(n),
            images: Vec::new(),
        }],
        ..prompt()
    };
    for (format, style) in [
        (Format::OpenAi, OverflowStyle::OpenAi),
        (Format::OpenAi, OverflowStyle::LlamaCpp),
        (Format::Anthropic, OverflowStyle::OpenAi),
    ] {
        let s = setup().await;
        s.server.set_context_window(1000, style);
        let backend = s.backend(format, RETRIES);
        let err = backend.complete(&long(2000)).await.unwrap_err();
        assert_eq!(err.kind(), "context_overflow", "{format:?} {style:?}: {err}");
        assert_eq!(s.server.requests().len(), 1, "{format:?} {style:?}: no retry");
        // 800 words fit alone, but not beside a 512-token reply (except on llama.cpp).
        let r = backend.complete(&long(800)).await;
        assert_eq!(
            r.is_ok(),
            style == OverflowStyle::LlamaCpp && format == Format::OpenAi,
            "{format:?} {style:?}: {r:?}"
        );
        assert!(backend.complete(&long(100)).await.is_ok());
    }
}

/// Usage and requests are counted per HTTP request: a ladder whose first step succeeded (cut at
/// the limit) and whose second failed still accounts for the first step's tokens.
#[tokio::test(flavor = "current_thread")]
async fn every_http_request_is_counted_with_its_usage_even_when_the_reply_fails() {
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    let _local = metrics::set_default_local_recorder(&recorder);
    let s = setup().await;
    s.server.push(Reply::text(words(600)));
    s.server.push(Reply::error(500, "boom"));
    s.server.push(Reply::error(500, "boom"));
    let backend = s.backend(
        Format::OpenAi,
        "tokens = { from = 256, until = 512, step = 256 }\nretries = { max_attempts = 2, base_delay_ms = 1, max_delay_ms = 2 }",
    );
    let err = backend.complete(&prompt()).await.unwrap_err();
    assert_eq!(err.kind(), "backend");
    let text = handle.render();
    for line in [
        r#"troupe_llm_tokens_total{agent="Ada",kind="output"} 256"#,
        r#"troupe_llm_requests_total{backend="b",outcome="ok"} 1"#,
        r#"troupe_llm_requests_total{backend="b",outcome="backend"} 2"#,
        r#"troupe_llm_ladder_steps_total{backend="b",mode="first"} 1"#,
        r#"troupe_llm_ladder_steps_total{backend="b",mode="regenerate"} 1"#,
        r#"troupe_llm_retries_total{backend="b"} 1"#,
    ] {
        assert!(text.contains(line), "missing {line} in:\n{text}");
    }
}

#[tokio::test]
async fn client_errors_are_not_retried() {
    for (status, kind) in [(400, "bad_request"), (401, "auth"), (403, "auth"), (404, "bad_request")] {
        let s = setup().await;
        s.server.set_default(Reply::error(status, r#"{"detail":"no"}"#));
        let err = s
            .backend(Format::OpenAi, RETRIES)
            .complete(&prompt())
            .await
            .unwrap_err();
        assert_eq!(err.kind(), kind, "{status}");
        assert_eq!(s.server.requests().len(), 1, "{status}: no retry");
    }
}

#[tokio::test]
async fn first_token_timeout() {
    let s = setup().await;
    s.server
        .set_default(Reply::text("too late").ttft(std::time::Duration::from_secs(60)));
    let backend = s.backend(Format::OpenAi, "timeouts = { first_token_secs = 0.2, total_secs = 60 }");
    let err = backend.complete(&prompt()).await.unwrap_err();
    assert_eq!(err, LlmError::Timeout(TimeoutPhase::FirstToken));
    assert_eq!(err.kind(), "timeout");
    assert_eq!(s.server.requests().len(), 1, "timeouts are not retried");
}

#[tokio::test]
async fn total_timeout() {
    let s = setup().await;
    s.server
        .set_default(Reply::text("one two three").token_delay(std::time::Duration::from_secs(60)));
    let backend = s.backend(Format::Anthropic, "timeouts = { first_token_secs = 1, total_secs = 1 }");
    let err = backend.complete(&prompt()).await.unwrap_err();
    assert_eq!(err, LlmError::Timeout(TimeoutPhase::Total));
}

#[tokio::test]
async fn stream_ending_without_finish_reason_is_truncated() {
    for format in BOTH {
        let s = setup().await;
        s.server.set_default(Reply::without_finish(3));
        let err = s.backend(format, RETRIES).complete(&prompt()).await.unwrap_err();
        assert_eq!(err.kind(), "truncated", "{format:?}: {err}");
        assert_eq!(s.server.requests().len(), 3, "{format:?}: retried, bounded");
    }
}

#[tokio::test]
async fn dropped_connection_is_truncated_and_retried() {
    for format in BOTH {
        let s = setup().await;
        s.server.push(Reply::dropped_after(2));
        s.server.push(Reply::text("complete answer"));
        let c = s.backend(format, RETRIES).complete(&prompt()).await.unwrap();
        assert_eq!(c.text, "complete answer", "{format:?}");
        assert_eq!(s.server.requests().len(), 2);
        s.server.set_default(Reply::dropped_after(2));
        let err = s.backend(format, RETRIES).complete(&prompt()).await.unwrap_err();
        assert_eq!(err.kind(), "truncated", "{format:?}: {err}");
    }
}

#[tokio::test]
async fn mid_stream_errors_are_typed() {
    let s = setup().await;
    s.server.set_default(Reply::mid_stream_error(2, None));
    let err = s
        .backend(Format::Anthropic, RETRIES)
        .complete(&prompt())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), "overloaded", "{err}");
    assert_eq!(s.server.requests().len(), 3, "overloaded is retried");

    let s = setup().await;
    s.server.set_default(Reply::mid_stream_error(2, None));
    let err = s
        .backend(Format::OpenAi, RETRIES)
        .complete(&prompt())
        .await
        .unwrap_err();
    assert!(matches!(err, LlmError::Unavailable { .. }), "{err:?}");

    let s = setup().await;
    let bad = r#"{"error":{"message":"bad input","type":"invalid_request_error"}}"#;
    s.server.set_default(Reply::mid_stream_error(1, Some(bad)));
    let err = s
        .backend(Format::OpenAi, RETRIES)
        .complete(&prompt())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), "bad_request");
    assert_eq!(s.server.requests().len(), 1);
}

#[tokio::test]
async fn wrong_api_key_is_an_auth_error_that_never_shows_the_key() {
    for format in BOTH {
        let s = setup().await;
        s.server.require_api_key("the-right-key");
        let backend = s.backend(format, RETRIES);
        let err = backend.complete(&prompt()).await.unwrap_err();
        assert_eq!(err.kind(), "auth", "{format:?}");
        assert_eq!(s.server.requests().len(), 1, "{format:?}: not retried");
        for shown in [err.to_string(), format!("{err:?}"), format!("{backend:?}")] {
            assert!(!shown.contains(KEY), "{shown}");
            assert!(!shown.contains("0123456789abcdef"), "{shown}");
        }
        assert!(!err.user_message().contains("key"));
    }
}

#[tokio::test]
async fn server_that_rejects_stream_options_is_asked_again_without() {
    let s = setup().await;
    let body = r#"{"error":{"message":"Unrecognized request argument supplied: stream_options","type":"invalid_request_error"}}"#;
    s.server.push(Reply::error(400, body));
    let backend = s.backend(Format::OpenAi, RETRIES);
    let c = backend.complete(&prompt()).await.unwrap();
    assert_eq!(c.text, "Hello from the LLM test server.");
    assert_eq!(c.usage, None, "no usage chunk is tolerated");
    let reqs = s.server.requests();
    assert_eq!(reqs.len(), 2);
    assert!(reqs[0].body.get("stream_options").is_some());
    assert!(reqs[1].body.get("stream_options").is_none());
    // Later requests do not try again.
    backend.complete(&prompt()).await.unwrap();
    assert!(s.server.requests()[2].body.get("stream_options").is_none());
}

#[tokio::test]
async fn connection_refused_is_retried_then_reported() {
    let s = setup().await;
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let text = format!(
        "[backends.b]\nprovider = \"ollama\"\nmodel = \"m\"\nbase_url = \"http://127.0.0.1:{port}/v1\"\n{RETRIES}\n[[agents]]\nname = \"A\"\nbackend = \"b\"\n"
    );
    let config = Config::parse("t.toml", &text).unwrap();
    let err = Backend::from_config(&config.backends["b"])
        .unwrap()
        .complete(&prompt())
        .await
        .unwrap_err();
    assert!(matches!(err, LlmError::Unavailable { .. }), "{err:?}");
    assert!(err.to_string().contains("cannot connect"), "{err}");
    drop(s);
}
