//! Conversations that always fit the model (issue 14): a message larger than the model's
//! context window is answered from its start, the short messages after it are answered, the
//! breaker (`on_trip = "exit"`, one failure) never trips, and a restart changes nothing. Runs the
//! real binary against a standalone sandbox and the LLM test server with a small window whose
//! server is smaller than troupe was told, so both the trimming before the call and the harder
//! trim after an overflow are exercised.

mod common;

use common::{quiet, wait_for, Control, Process};
use troupe::llm::budget::{CUT_MARKER, CUT_NOTICE};
use troupe::llm::progressive::CUT_NOTE;
use troupe_llm_test_server::{LlmTestServer, OverflowStyle, Reply};

/// troupe believes the window is 512 tokens; the server's is 300 (its "tokens" are words).
fn config(llm: &LlmTestServer) -> String {
    format!(
        r#"
[sandbox]
guilds = [{{ name = "G", channels = [{{ name = "general" }}] }}]

[discord]
user_rate_limit = 0

[delivery]
retry_initial_ms = 50
retry_max_secs = 1

[backends.local]
provider = "llamacpp"
model = "qwen"
base_url = "{}"
context_tokens = 512
tokens = {{ from = 128, until = 128 }}
retries = {{ max_attempts = 1 }}

[[agents]]
name = "Ada"
backend = "local"
system_prompt = "You are {{agent}}."
breaker = {{ max_failures = 1 }}
"#,
        llm.openai_base_url()
    )
}

/// Every text a request sent the model.
fn request_text(r: &troupe_llm_test_server::RecordedRequest) -> String {
    r.messages()
        .iter()
        .filter_map(|m| m["content"].as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_larger_than_the_window_never_breaks_the_conversation_or_the_process() {
    let llm = LlmTestServer::start().await.unwrap();
    llm.set_context_window(300, OverflowStyle::OpenAi);
    llm.set_default(Reply::text("Short answer."));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agents.toml");
    std::fs::write(&path, config(&llm)).unwrap();
    let sandbox = Process::spawn(&["sandbox", "--config", path.to_str().unwrap(), "--listen", "127.0.0.1:0"]);
    let sb = Control::new(&sandbox.url);
    let state = dir.path().join("state").display().to_string();
    let path = path.display().to_string();
    let args = [
        "--config",
        path.as_str(),
        "--sandbox-url",
        &sandbox.url,
        "--state-dir",
        &state,
    ];
    let mut troupe = Process::spawn(&args);
    sb.wait_connected(&["Ada"]).await;

    // ~650 estimated tokens in one Discord message (under its 2000 characters).
    let huge = format!("<@Ada> BEGIN {}", "word ".repeat(390));
    let huge = sb.say("general", "alice", huge.trim_end()).await;
    let huge_id = huge["id"].as_str().unwrap().to_string();
    let reply = sb.reply_to("general", "Ada", &huge_id).await;
    assert_eq!(reply["content"], "Short answer.", "answered, not given up");
    let asked: Vec<_> = llm.requests();
    assert!(asked.len() >= 2, "the server's overflow made troupe trim harder");
    let answered = asked.last().unwrap();
    let sent = request_text(answered);
    assert!(
        sent.contains("BEGIN word word") && sent.contains(CUT_MARKER.trim()),
        "{sent}"
    );
    let system = answered.messages()[0]["content"].as_str().unwrap().to_string();
    assert!(system.ends_with(CUT_NOTICE), "{system}");

    let mut short = Vec::new();
    for i in 0..3 {
        let m = sb.say("general", "alice", &format!("<@Ada> short question {i}")).await;
        let id = m["id"].as_str().unwrap().to_string();
        let reply = sb.reply_to("general", "Ada", &id).await;
        assert_eq!(reply["content"], "Short answer.");
        let last = llm.requests().last().unwrap().clone();
        assert!(request_text(&last).contains(&format!("short question {i}")));
        short.push(id);
    }
    quiet(&llm).await;
    assert!(
        troupe.child.try_wait().unwrap().is_none(),
        "troupe exited; stderr:\n{}",
        troupe.stderr()
    );

    // A restart changes nothing: nothing is answered again, and the conversation goes on.
    let requests_before = llm.requests().len();
    assert_eq!(troupe.terminate().code(), Some(0), "{}", troupe.stderr());
    let mut troupe = Process::spawn(&args);
    sb.wait_connected(&["Ada"]).await;
    let m = sb.say("general", "alice", "<@Ada> after the restart").await;
    let id = m["id"].as_str().unwrap().to_string();
    assert_eq!(sb.reply_to("general", "Ada", &id).await["content"], "Short answer.");
    quiet(&llm).await;
    assert_eq!(
        llm.requests().len(),
        requests_before + 1,
        "only the new message was asked"
    );
    for id in short.iter().chain([&huge_id, &id]) {
        let n = wait_for("the replies", || async {
            Some(sb.replies("general", "Ada", id).await.len())
        })
        .await;
        assert_eq!(n, 1, "message {id} answered exactly once");
    }
    assert!(
        troupe.child.try_wait().unwrap().is_none(),
        "troupe exited; stderr:\n{}",
        troupe.stderr()
    );
}

/// The "(reply cut at the token limit)" note is shown on Discord but is not something the model
/// said: the next prompt carries the reply without it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cut_note_is_shown_but_not_remembered_as_the_models_text() {
    let llm = LlmTestServer::start().await.unwrap();
    llm.set_default(Reply::text(troupe_llm_test_server::words(40)));
    let (config, _state) = common::config(&format!(
        "[backends.local]\nprovider = \"llamacpp\"\nmodel = \"m\"\nbase_url = \"{}\"\ntokens = {{ from = 8, until = 8 }}\n\n[[agents]]\nname = \"Ada\"\nbackend = \"local\"\n",
        llm.openai_base_url()
    ));
    let running = troupe::app::start(config).await.unwrap();
    let sb = Control::new(running.sandbox_url().unwrap());
    sb.wait_connected(&["Ada"]).await;
    let first = sb.say("general", "alice", "<@Ada> tell me everything").await;
    let shown = sb.reply_to("general", "Ada", first["id"].as_str().unwrap()).await;
    let shown = shown["content"].as_str().unwrap().to_string();
    assert!(shown.starts_with("t0 t1") && shown.contains(CUT_NOTE.trim()), "{shown}");
    let next = sb.say("general", "alice", "<@Ada> and then?").await;
    sb.reply_to("general", "Ada", next["id"].as_str().unwrap()).await;
    let last = llm.requests().last().unwrap().clone();
    let remembered = last
        .messages()
        .into_iter()
        .find(|m| m["role"] == "assistant")
        .expect("the first reply is in the prompt");
    assert_eq!(remembered["content"], "t0 t1 t2 t3 t4 t5 t6 t7");
    running.stop().await;
}
