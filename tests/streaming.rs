//! Streamed replies (`stream = true`) against the sandbox and the LLM test server: a reply seen
//! growing through edits with its footer throughout, a long reply streamed into two messages,
//! a model failure mid-stream (retried into the answer, or given up into the notice, in the
//! same message), a continuation (continue mode) editing the same reply, a `kill -9` mid-stream recovered to exactly one complete reply, and no 429 from
//! the sandbox's rate limits along the way.

mod common;

use std::time::Duration;

use common::{config, quiet, wait_for, Control, Process, DEADLINE};
use serde_json::Value;
use troupe_llm_test_server::{words, LlmTestServer, Reply};

/// What the model writes: a first sentence, then enough words to take a few seconds.
const TEXT: &str = "Hello there. This reply is streamed word by word so that people can read it while \
                    the model is still writing the rest of it, like a modern bot would do.";

const FOOTER: &str = "acl:1 • Sent by a troupe agent";

/// Fast retries and a breaker that does not trip; an OpenAI-compatible backend on the test
/// server that does not retry by itself; Ada streams.
fn setup(llm: &LlmTestServer, delivery: &str) -> String {
    format!(
        "[discord]\ntyping_delay_ms = 0\n\n[delivery]\nretry_initial_ms = 50\nretry_max_secs = 1\n{delivery}\n[breaker]\nmax_failures = 1000\n\n[backends.model]\nprovider = \"openai\"\nmodel = \"m\"\nbase_url = \"{}\"\nretries = {{ max_attempts = 1, base_delay_ms = 10, max_delay_ms = 100 }}\n\n[[agents]]\nname = \"Ada\"\nbackend = \"model\"\nstream = true\nfailure_notice = \"I could not answer this, sorry.\"\n",
        llm.openai_base_url()
    )
}

/// Ada's messages in a channel.
async fn from_ada(sb: &Control, channel: &str) -> Vec<Value> {
    sb.messages(channel)
        .await
        .into_iter()
        .filter(|m| m["author"]["username"] == "Ada")
        .collect()
}

/// The sandbox's log of Ada's requests with this method whose path ends with `suffix`.
async fn ada_requests(sb: &Control, method: &str, suffix: &str) -> Vec<Value> {
    let ada = sb.id_of("users", "Ada").await;
    sb.requests()
        .await
        .into_iter()
        .filter(|r| {
            r["bot"].as_str() == Some(&ada)
                && r["method"] == method
                && r["path"]
                    .as_str()
                    .unwrap_or_default()
                    .split('?')
                    .next()
                    .unwrap_or_default()
                    .ends_with(suffix)
        })
        .collect()
}

/// No request of any bot was refused with a 429.
async fn no_429(sb: &Control) {
    let limited: Vec<Value> = sb.requests().await.into_iter().filter(|r| r["status"] == 429).collect();
    assert!(limited.is_empty(), "429s from the sandbox: {limited:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_reply_grows_through_edits_to_the_full_text_with_its_footer_throughout() {
    let llm = LlmTestServer::start().await.unwrap();
    llm.set_default(Reply::text(TEXT).token_delay(Duration::from_millis(120)));
    let (config, _state) = config(&setup(&llm, ""));
    let running = troupe::app::start(config).await.unwrap();
    let sb = Control::new(running.sandbox_url().unwrap());
    sb.wait_connected(&["Ada"]).await;
    let asked = sb.say("general", "alice", "<@Ada> tell me something").await;
    let id = asked["id"].as_str().unwrap().to_string();
    // Watch the reply as a reader would: every version seen, each with the footer.
    let mut seen: Vec<String> = Vec::new();
    let start = std::time::Instant::now();
    while seen.last().map(String::as_str) != Some(TEXT) {
        assert!(
            start.elapsed() < DEADLINE,
            "the reply never held the full text: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
        let Some(reply) = sb.replies("general", "Ada", &id).await.into_iter().next() else {
            continue;
        };
        assert_eq!(reply["embeds"][0]["footer"]["text"], FOOTER, "footer on {reply}");
        let content = reply["content"].as_str().unwrap_or_default().to_string();
        if seen.last() != Some(&content) {
            seen.push(content);
        }
    }
    assert!(seen.len() >= 3, "the reply grew in several steps: {seen:?}");
    for version in &seen {
        assert!(
            TEXT.starts_with(version.as_str()),
            "a version that is not a prefix: {version}"
        );
    }
    quiet(&llm).await;
    assert_eq!(from_ada(&sb, "general").await.len(), 1, "one message, edited");
    assert_eq!(ada_requests(&sb, "POST", "/messages").await.len(), 1);
    // The typing indicator showed while nothing was posted yet.
    let typing = ada_requests(&sb, "POST", "/typing").await;
    let posted = &ada_requests(&sb, "POST", "/messages").await[0];
    assert!(
        typing
            .iter()
            .any(|t| t["unix_ms"].as_u64() <= posted["unix_ms"].as_u64()),
        "typing before the first message: {typing:?}"
    );
    let edits = ada_requests(&sb, "PATCH", "").await;
    assert!(edits.len() >= 2, "edits: {edits:?}");
    assert!(edits.iter().all(|r| r["status"] == 200), "{edits:?}");
    no_429(&sb).await;
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_over_2000_characters_is_streamed_into_two_messages() {
    let llm = LlmTestServer::start().await.unwrap();
    let long = words(600);
    assert!(long.chars().count() > 2000 && long.chars().count() < 4000);
    llm.set_default(Reply::text(long.clone()).token_delay(Duration::from_millis(3)));
    let (config, _state) = config(&setup(&llm, ""));
    let running = troupe::app::start(config).await.unwrap();
    let sb = Control::new(running.sandbox_url().unwrap());
    sb.wait_connected(&["Ada"]).await;
    let asked = sb.say("general", "alice", "<@Ada> write a lot").await;
    let id = asked["id"].as_str().unwrap();
    let expected = troupe::split::split_message(&long, troupe::split::DISCORD_LIMIT);
    assert_eq!(expected.len(), 2);
    let parts = wait_for("both parts complete", || async {
        let parts = from_ada(&sb, "general").await;
        let contents: Vec<&str> = parts.iter().filter_map(|m| m["content"].as_str()).collect();
        (contents == expected).then_some(parts.clone())
    })
    .await;
    assert_eq!(parts[0]["message_reference"]["message_id"].as_str(), Some(id));
    for p in &parts {
        assert_eq!(p["embeds"][0]["footer"]["text"], FOOTER, "footer on every part");
    }
    quiet(&llm).await;
    assert_eq!(from_ada(&sb, "general").await.len(), 2);
    no_429(&sb).await;
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_failure_mid_stream_is_edited_into_the_answer_after_the_retry() {
    let llm = LlmTestServer::start().await.unwrap();
    llm.push(Reply::text_then_error(TEXT, 8).token_delay(Duration::from_millis(150)));
    llm.set_default(Reply::text(TEXT).token_delay(Duration::from_millis(20)));
    // The retry waits a second, so the interrupted reply can be seen.
    let text = setup(&llm, "").replace("retry_initial_ms = 50", "retry_initial_ms = 1000");
    let (config, _state) = config(&text);
    let running = troupe::app::start(config).await.unwrap();
    let sb = Control::new(running.sandbox_url().unwrap());
    sb.wait_connected(&["Ada"]).await;
    let asked = sb.say("general", "alice", "<@Ada> tell me something").await;
    let id = asked["id"].as_str().unwrap().to_string();
    // The partial reply shows before the failure, then says it was interrupted.
    let partial = sb.reply_to("general", "Ada", &id).await;
    assert_ne!(partial["content"], TEXT);
    let interrupted = wait_for("the partial reply marked as interrupted", || async {
        let replies = sb.replies("general", "Ada", &id).await;
        let content = replies.first()?["content"].as_str()?.to_string();
        content
            .ends_with(troupe::stream_reply::INTERRUPTED_NOTE)
            .then_some(content)
    })
    .await;
    assert!(TEXT.starts_with(interrupted.trim_end_matches(troupe::stream_reply::INTERRUPTED_NOTE)));
    wait_for("the same message edited into the full answer", || async {
        let replies = sb.replies("general", "Ada", &id).await;
        (replies.len() == 1 && replies[0]["content"] == TEXT).then_some(())
    })
    .await;
    quiet(&llm).await;
    assert_eq!(llm.requests().len(), 2, "the failed call, then the retry");
    assert_eq!(from_ada(&sb, "general").await.len(), 1);
    assert_eq!(ada_requests(&sb, "POST", "/messages").await.len(), 1, "posted once");
    no_429(&sb).await;
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_given_up_mid_stream_becomes_the_notice_in_the_same_message() {
    let llm = LlmTestServer::start().await.unwrap();
    llm.set_default(Reply::text_then_error(TEXT, 6).token_delay(Duration::from_millis(150)));
    let (config, _state) = config(&setup(&llm, "give_up_after_secs = 2\n"));
    let running = troupe::app::start(config).await.unwrap();
    let sb = Control::new(running.sandbox_url().unwrap());
    sb.wait_connected(&["Ada"]).await;
    let asked = sb.say("general", "alice", "<@Ada> tell me something").await;
    let id = asked["id"].as_str().unwrap().to_string();
    let partial = sb.reply_to("general", "Ada", &id).await;
    assert!(TEXT.starts_with(partial["content"].as_str().unwrap()));
    wait_for("the partial reply edited into the notice", || async {
        let replies = sb.replies("general", "Ada", &id).await;
        (replies.len() == 1 && replies[0]["content"] == "I could not answer this, sorry.").then_some(())
    })
    .await;
    quiet(&llm).await;
    let ada = from_ada(&sb, "general").await;
    assert_eq!(ada.len(), 1, "{ada:?}");
    assert_eq!(ada[0]["embeds"][0]["footer"]["text"], FOOTER);
    assert_eq!(ada_requests(&sb, "POST", "/messages").await.len(), 1, "posted once");
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_continuation_keeps_editing_the_same_reply() {
    let llm = LlmTestServer::start().await.unwrap();
    let delay = Duration::from_millis(60);
    // Cut at the first request's 10 tokens; continued by the second request.
    llm.push(Reply::text(TEXT).token_delay(delay));
    llm.push(Reply::text(troupe_llm_test_server::tokens(TEXT)[10..].concat()).token_delay(delay));
    let text = setup(&llm, "").replace(
        "retries = {",
        "tokens = { from = 10, until = 400, step = 100 }\non_truncation = \"continue\"\nretries = {",
    );
    let (config, _state) = config(&text);
    let running = troupe::app::start(config).await.unwrap();
    let sb = Control::new(running.sandbox_url().unwrap());
    sb.wait_connected(&["Ada"]).await;
    let asked = sb.say("general", "alice", "<@Ada> tell me something").await;
    let id = asked["id"].as_str().unwrap().to_string();
    wait_for("the reply complete after its continuation", || async {
        let replies = sb.replies("general", "Ada", &id).await;
        (replies.len() == 1 && replies[0]["content"] == TEXT).then_some(())
    })
    .await;
    quiet(&llm).await;
    assert_eq!(llm.requests().len(), 2, "a cut reply and its continuation");
    assert_eq!(from_ada(&sb, "general").await.len(), 1);
    assert_eq!(
        ada_requests(&sb, "POST", "/messages").await.len(),
        1,
        "one message, edited"
    );
    running.stop().await;
}

/// The configuration of the crash test: a standalone sandbox keeps its world across troupe's
/// restarts.
fn crash_config(llm: &LlmTestServer) -> String {
    format!(
        "[sandbox]\nguilds = [{{ name = \"G\", channels = [{{ name = \"general\" }}] }}]\n\n[restarts]\nfree_starts = 100\n\n{}",
        setup(llm, "")
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_mid_stream_is_recovered_to_exactly_one_complete_reply() {
    let llm = LlmTestServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("agents.toml");
    std::fs::write(&config, crash_config(&llm)).unwrap();
    let config = config.to_str().unwrap().to_string();
    let sandbox = Process::spawn(&["sandbox", "--config", &config, "--listen", "127.0.0.1:0"]);
    let sb = Control::new(&sandbox.url);
    let state = dir.path().join("state").display().to_string();
    let args = [
        "--config",
        &config,
        "--sandbox-url",
        &sandbox.url,
        "--state-dir",
        &state,
    ];
    // First contact: troupe learns the channel.
    llm.set_default(Reply::text("Hi."));
    let troupe = Process::spawn(&args);
    sb.wait_connected(&["Ada"]).await;
    let hello = sb.say("general", "alice", "<@Ada> hello").await;
    sb.reply_to("general", "Ada", hello["id"].as_str().unwrap()).await;

    // A slow reply, killed once it shows part of its text.
    llm.set_default(Reply::text(TEXT).token_delay(Duration::from_millis(200)));
    let asked = sb.say("general", "alice", "<@Ada> tell me something").await;
    let id = asked["id"].as_str().unwrap().to_string();
    let partial = sb.reply_to("general", "Ada", &id).await;
    drop(troupe); // SIGKILL
    assert_ne!(partial["content"], TEXT, "killed mid-stream");

    llm.set_default(Reply::text(TEXT).token_delay(Duration::from_millis(10)));
    let troupe = Process::spawn(&args);
    wait_for("the partial reply completed after the restart", || async {
        let replies = sb.replies("general", "Ada", &id).await;
        (replies.len() == 1 && replies[0]["content"] == TEXT).then_some(())
    })
    .await;
    quiet(&llm).await;
    let replies = sb.replies("general", "Ada", &id).await;
    assert_eq!(replies.len(), 1, "exactly one reply: {replies:?}");
    assert_eq!(
        replies[0]["id"], partial["id"],
        "the partial message itself was completed"
    );
    assert_eq!(from_ada(&sb, "general").await.len(), 2, "hello's answer and this one");
    drop(troupe);
}
