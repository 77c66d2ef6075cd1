//! Files on messages reaching the model, against the sandbox (its uploads and CDN) and the LLM
//! test server (which records every request), and long code replies going out as files
//! (issue 16, "Attachments").

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use base64::Engine;
use common::{config, Control};
use serde_json::{json, Value};
use troupe::attach::fetch::{FetchError, Overflow};
use troupe::attach::origin::{Origins, Refusal};
use troupe::attach::Fetcher;
use troupe_llm_test_server::{Format, LlmTestServer, Reply};

/// A 1×1 PNG.
const DOT_PNG: &str =
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==";

/// Backends on the LLM test server: `gpt` (OpenAI-compatible) and `claude` (Anthropic), with
/// `vision` as given, then `extra` TOML.
fn backends(llm: &LlmTestServer, vision: bool, extra: &str) -> String {
    format!(
        r#"
[backends.gpt]
provider = "openai"
model = "test-model"
base_url = "{openai}"
vision = {vision}

[backends.claude]
provider = "anthropic"
model = "test-model"
base_url = "{anthropic}"
vision = {vision}

{extra}
"#,
        openai = llm.openai_base_url(),
        anthropic = llm.anthropic_base_url(),
    )
}

const ADA_AND_BASIL: &str = r#"
[[agents]]
name = "Ada"
backend = "gpt"

[[agents]]
name = "Basil"
backend = "claude"
"#;

/// Posts `content` in #general as alice with `files`, and waits for `agent`'s reply.
async fn ask_with_files(sb: &Control, agent: &str, content: &str, files: Value) -> Value {
    let asked = sb
        .post(json!({"channel": "general", "author": "alice", "content": content, "attachments": files}))
        .await;
    sb.reply_to("general", agent, asked["id"].as_str().unwrap()).await
}

/// The last user message of the only request in `format`.
fn last_user_message(llm: &LlmTestServer, format: Format) -> Value {
    let requests: Vec<_> = llm.requests().into_iter().filter(|r| r.format == format).collect();
    assert_eq!(requests.len(), 1, "one request in {format:?}");
    let messages = requests[0].messages();
    messages
        .iter()
        .rev()
        .find(|m| m["role"] == "user")
        .cloned()
        .unwrap_or_else(|| panic!("no user message in {messages:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_reaches_both_providers_inline() {
    let llm = LlmTestServer::start().await.unwrap();
    llm.set_default(Reply::text("A dot."));
    let (config, _state) = config(&backends(&llm, true, ADA_AND_BASIL));
    let running = troupe::app::start(config).await.unwrap();
    let sb = Control::new(running.sandbox_url().unwrap());
    sb.wait_connected(&["Ada", "Basil"]).await;
    let dot = json!([{"filename": "dot.png", "content_type": "image/png", "base64": DOT_PNG}]);

    let reply = ask_with_files(&sb, "Ada", "<@Ada> what is this?", dot.clone()).await;
    assert_eq!(reply["content"], "A dot.");
    let user = last_user_message(&llm, Format::OpenAi);
    let parts = user["content"]
        .as_array()
        .unwrap_or_else(|| panic!("content parts: {user}"));
    assert_eq!(parts.len(), 2, "{user}");
    assert_eq!(parts[0]["type"], "text");
    let text = parts[0]["text"].as_str().unwrap();
    assert!(text.contains("what is this?"), "{text}");
    assert!(
        text.contains("[image attached: dot.png (image/png, 1×1, 70 B); you can see it]"),
        "{text}"
    );
    assert_eq!(
        parts[1],
        json!({"type": "image_url", "image_url": {"url": format!("data:image/png;base64,{DOT_PNG}")}})
    );

    ask_with_files(&sb, "Basil", "<@Basil> and this?", dot).await;
    let user = last_user_message(&llm, Format::Anthropic);
    let blocks = user["content"]
        .as_array()
        .unwrap_or_else(|| panic!("content blocks: {user}"));
    assert_eq!(
        blocks[0],
        json!({"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": DOT_PNG}})
    );
    assert_eq!(blocks[1]["type"], "text");
    assert!(blocks[1]["text"].as_str().unwrap().contains("and this?"), "{user}");

    // A follow-up without a file: the earlier image goes again (the sandbox's URLs do not
    // expire), in the turn that brought it.
    let asked = sb.say("general", "alice", "<@Ada> what colour was it?").await;
    sb.reply_to("general", "Ada", asked["id"].as_str().unwrap()).await;
    let follow_up = llm.requests().last().unwrap().messages();
    let earlier = follow_up
        .iter()
        .find(|m| m["role"] == "user" && m["content"].to_string().contains("what is this?"))
        .unwrap_or_else(|| panic!("{follow_up:?}"));
    assert_eq!(
        earlier["content"][1]["image_url"]["url"],
        format!("data:image/png;base64,{DOT_PNG}"),
        "{earlier}"
    );
    let newest = follow_up.last().unwrap();
    assert!(
        newest["content"].as_str().unwrap().contains("what colour was it?"),
        "{newest}"
    );
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_text_file_is_inlined_with_its_name_and_named_in_later_turns() {
    let llm = LlmTestServer::start().await.unwrap();
    llm.set_default(Reply::text("Read it."));
    let (config, _state) = config(&backends(&llm, false, ADA_AND_BASIL));
    let running = troupe::app::start(config).await.unwrap();
    let sb = Control::new(running.sandbox_url().unwrap());
    sb.wait_connected(&["Ada"]).await;

    let notes = json!([
        {"filename": "notes.md", "content_type": "text/markdown", "text": "# Plan\nThe secret word is pineapple."},
        {"filename": "data.zip", "content_type": "application/zip", "base64": "UEsDBAoAAAAAAA=="},
    ]);
    ask_with_files(&sb, "Ada", "<@Ada> summarise", notes).await;
    let user = last_user_message(&llm, Format::OpenAi);
    let text = user["content"]
        .as_str()
        .unwrap_or_else(|| panic!("a plain string: {user}"));
    assert!(
        text.contains(
            "[text file attached: notes.md (text/markdown, 36 B); its content follows]\n# Plan\nThe secret word is pineapple.\n[end of notes.md]"
        ),
        "{text}"
    );
    assert!(
        text.contains("[file attached: data.zip (application/zip, 10 B); its content is not available to you]"),
        "{text}"
    );

    // Memory keeps the references: the next turn names the files without their content.
    let asked = sb.say("general", "alice", "<@Ada> and now?").await;
    sb.reply_to("general", "Ada", asked["id"].as_str().unwrap()).await;
    let second = llm.requests().last().unwrap().clone();
    let all: Vec<String> = second
        .messages()
        .iter()
        .filter_map(|m| m["content"].as_str().map(String::from))
        .collect();
    let all = all.join("\n");
    assert!(
        all.contains("[attached earlier: notes.md (text/markdown, 36 B)]"),
        "{all}"
    );
    assert!(!all.contains("pineapple"), "file content is not remembered: {all}");
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_beyond_the_limits_or_the_backend_are_not_sent_and_the_agent_is_told() {
    let llm = LlmTestServer::start().await.unwrap();
    llm.set_default(Reply::text("Noted."));
    // Ada sees images up to 50 bytes (the dot is 70); Basil's backend sees none.
    let extra = r#"
[attachments]
max_image_bytes = 50

[backends.blind]
provider = "anthropic"
model = "test-model"
base_url = "ANTHROPIC"

[[agents]]
name = "Ada"
backend = "gpt"

[[agents]]
name = "Basil"
backend = "blind"
"#
    .replace("ANTHROPIC", &llm.anthropic_base_url());
    let (config, _state) = config(&backends(&llm, true, &extra));
    let running = troupe::app::start(config).await.unwrap();
    let sb = Control::new(running.sandbox_url().unwrap());
    sb.wait_connected(&["Ada", "Basil"]).await;
    let dot = json!([{"filename": "dot.png", "content_type": "image/png", "base64": DOT_PNG}]);

    ask_with_files(&sb, "Ada", "<@Ada> look", dot.clone()).await;
    let user = last_user_message(&llm, Format::OpenAi);
    let text = user["content"]
        .as_str()
        .unwrap_or_else(|| panic!("no image part: {user}"));
    assert!(
        text.contains("[image attached: dot.png (image/png, 1×1, 70 B); not shown to you: it is larger than the 50 B limit for images."),
        "{text}"
    );

    let metrics = reqwest::get(format!("{}/metrics", running.http_url()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let skipped = r#"troupe_attachments_total{agent="Ada",kind="image",outcome="skipped"} 1"#;
    assert!(metrics.lines().any(|l| l == skipped), "{metrics}");

    ask_with_files(&sb, "Basil", "<@Basil> look", dot).await;
    let user = last_user_message(&llm, Format::Anthropic);
    let text = user["content"]
        .as_str()
        .unwrap_or_else(|| panic!("no image block: {user}"));
    assert!(
        text.contains("not shown to you: this model cannot see images"),
        "{text}"
    );
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_code_reply_goes_out_as_a_file_with_the_footer_once_after_a_failed_try() {
    let llm = LlmTestServer::start().await.unwrap();
    let code: String = (0..150).map(|i| format!("call_step_number_{i}();\n")).collect();
    llm.set_default(Reply::text(format!("Here it is:\n```rust\n{code}```")));
    let extra = format!("[attachments]\nlong_replies = \"file\"\nlong_reply_chars = 1000\n{ADA_AND_BASIL}");
    let (config, _state) = config(&backends(&llm, false, &extra));
    let running = troupe::app::start(config).await.unwrap();
    let sb = Control::new(running.sandbox_url().unwrap());
    sb.wait_connected(&["Ada"]).await;

    // Discord fails the first try: the file goes again with the message, and arrives once.
    sb.faults(json!({"rest": {"status": 500, "path_contains": "/messages", "method": "POST"}}))
        .await;
    let asked = sb.say("general", "alice", "<@Ada> write it").await;
    let id = asked["id"].as_str().unwrap().to_string();
    let reply = sb.reply_to("general", "Ada", &id).await;
    assert_eq!(
        reply["content"],
        "Here it is:\n\n(the code is attached as `reply.rs`, 150 lines)"
    );
    assert!(
        reply["embeds"][0]["footer"]["text"]
            .as_str()
            .unwrap()
            .starts_with("acl:1"),
        "{reply}"
    );
    let files = reply["attachments"].as_array().unwrap();
    assert_eq!(files.len(), 1, "{reply}");
    assert_eq!(files[0]["filename"], "reply.rs");
    let body = sb
        .http
        .get(files[0]["url"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(body, code);
    common::quiet(&llm).await;
    assert_eq!(
        sb.replies("general", "Ada", &id).await.len(),
        1,
        "one message, not many parts"
    );
    let posts: Vec<u64> = sb
        .requests()
        .await
        .iter()
        .filter(|r| r["method"] == "POST" && r["path"].as_str().unwrap().ends_with("/messages"))
        .map(|r| r["status"].as_u64().unwrap())
        .collect();
    assert_eq!(posts, [500, 200], "the failed try, then the one that took");
    running.stop().await;
}

/// A local server counting the requests it gets.
async fn server(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

#[tokio::test]
async fn only_the_allowed_origin_is_fetched_never_a_crafted_or_redirected_url() {
    use axum::response::{IntoResponse, Redirect};
    use axum::routing::get;

    // Another host on the machine (the metadata service, an internal API): must see nothing.
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    let canary = server(axum::Router::new().fallback(move || {
        counted.fetch_add(1, Ordering::SeqCst);
        async { "secret" }
    }))
    .await;
    // The allowed origin: a file, a redirect to the canary, a body larger than it says.
    let to_canary = format!("{canary}/latest/meta-data");
    let allowed = server(
        axum::Router::new()
            .route(
                "/dot.png",
                get(|| async { base64::engine::general_purpose::STANDARD.decode(DOT_PNG).unwrap() }),
            )
            .route("/redirect", get(move || async move { Redirect::temporary(&to_canary) }))
            .route("/hang", get(futures::future::pending::<&'static str>))
            .route(
                "/endless",
                get(|| async {
                    // Streamed without a length: the cap must hold while reading.
                    let chunks = futures::stream::iter((0..1_000).map(|_| Ok::<_, std::io::Error>(vec![b'x'; 1024])));
                    axum::body::Body::from_stream(chunks).into_response()
                }),
            ),
    )
    .await;
    let fetcher = Fetcher::new(Origins::sandbox(&allowed).unwrap());
    let t = std::time::Duration::from_secs(10);

    let got = fetcher
        .get(&format!("{allowed}/dot.png"), 1_000, Overflow::Fail, t)
        .await
        .unwrap();
    assert_eq!(got.bytes.len(), 70);
    let host = canary.trim_start_matches("http://");
    for crafted in [
        format!("{canary}/latest/meta-data"),
        format!("{allowed}@{host}/x"),
        format!("http://user:pw@{}/dot.png", allowed.trim_start_matches("http://")),
        "file:///etc/passwd".to_string(),
    ] {
        let e = fetcher.get(&crafted, 1_000, Overflow::Fail, t).await.unwrap_err();
        assert!(
            matches!(e, FetchError::Refused(Refusal::Host(_) | Refusal::Credentials)),
            "{crafted}: {e:?}"
        );
    }
    let e = fetcher
        .get(&format!("{allowed}/redirect"), 1_000, Overflow::Fail, t)
        .await
        .unwrap_err();
    assert_eq!(e, FetchError::Redirect);
    assert_eq!(hits.load(Ordering::SeqCst), 0, "the canary was reached");

    let e = fetcher
        .get(&format!("{allowed}/endless"), 10_000, Overflow::Fail, t)
        .await
        .unwrap_err();
    assert_eq!(e, FetchError::TooLarge { max: 10_000 });
    let cut = fetcher
        .get(&format!("{allowed}/endless"), 10_000, Overflow::Truncate, t)
        .await
        .unwrap();
    assert_eq!((cut.bytes.len(), cut.truncated), (10_000, true));

    // A server that never answers: the download's timeout ends it.
    let short = std::time::Duration::from_millis(300);
    let e = fetcher
        .get(&format!("{allowed}/hang"), 1_000, Overflow::Fail, short)
        .await
        .unwrap_err();
    assert_eq!(e, FetchError::Timeout);
}
