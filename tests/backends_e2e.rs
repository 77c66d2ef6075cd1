//! Agents in the sandbox answering through every backend kind: OpenAI-compatible and Anthropic
//! (against the local LLM test server), a CLI agent, and echo (issue: LLM backends).

mod common;

use common::{config, wait_for, Control};
use troupe_llm_test_server::{Format, LlmTestServer, Reply};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_answers_through_each_backend_kind() {
    let llm = LlmTestServer::start().await.unwrap();
    llm.set_default(Reply::text("Answer from the test model."));
    let keys = tempfile::tempdir().unwrap();
    let key_file = keys.path().join("key");
    std::fs::write(&key_file, "sk-e2e-key-0123456789\n").unwrap();
    let script = format!("{}/tests/scripts/echo_stdin.sh", env!("CARGO_MANIFEST_DIR"));
    let (config, _state) = config(&format!(
        r#"
[backends.gpt]
provider = "openai"
model = "test-model"
base_url = "{openai}"
api_key_file = "{key}"

[backends.claude]
provider = "anthropic"
model = "test-model"
base_url = "{anthropic}"
api_key_file = "{key}"

[backends.cli]
provider = "command"
program = "sh"
args = ["{script}"]

[[agents]]
name = "Ada"
backend = "gpt"

[[agents]]
name = "Basil"
backend = "claude"

[[agents]]
name = "Cleo"
backend = "cli"
system_prompt = "You are {{agent}}."

[[agents]]
name = "Dot"
backend = "offline"
"#,
        openai = llm.openai_base_url(),
        anthropic = llm.anthropic_base_url(),
        key = key_file.display(),
    ));
    let running = troupe::app::start(config).await.unwrap();
    let sb = Control::new(running.sandbox_url().unwrap());
    sb.wait_connected(&["Ada", "Basil", "Cleo", "Dot"]).await;

    for agent in ["Ada", "Basil", "Cleo", "Dot"] {
        let asked = sb.say("general", "alice", &format!("<@{agent}> hello {agent}")).await;
        let reply = sb.reply_to("general", agent, asked["id"].as_str().unwrap()).await;
        let content = reply["content"].as_str().unwrap();
        match agent {
            "Ada" | "Basil" => assert_eq!(content, "Answer from the test model."),
            "Cleo" => {
                assert!(content.starts_with("got: You are Cleo.\n\n"), "{content}");
                assert!(content.contains("hello Cleo"), "{content}");
            }
            _ => assert!(content.starts_with("Dot heard alice:"), "{content}"),
        }
    }
    let formats: Vec<Format> = llm.requests().iter().map(|r| r.format).collect();
    assert_eq!(formats, [Format::OpenAi, Format::Anthropic]);
    let basil = &llm.requests()[1];
    let last = basil.messages().last().cloned().unwrap();
    assert!(last["content"].as_str().unwrap().contains("hello Basil"), "{last}");
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_error_text_never_reaches_discord() {
    let llm = LlmTestServer::start().await.unwrap();
    let leak = "PROVIDER-INTERNAL-DETAIL";
    llm.push(Reply::error(
        400,
        format!(r#"{{"error":{{"message":"{leak}","type":"invalid_request_error"}}}}"#),
    ));
    llm.push(Reply::text("Second answer."));
    let (config, _state) = config(&format!(
        "[backends.gpt]\nprovider = \"vllm\"\nmodel = \"m\"\nbase_url = \"{}\"\n\n[[agents]]\nname = \"Ada\"\nbackend = \"gpt\"\n",
        llm.openai_base_url()
    ));
    let running = troupe::app::start(config).await.unwrap();
    let sb = Control::new(running.sandbox_url().unwrap());
    sb.wait_connected(&["Ada"]).await;

    sb.say("general", "alice", "<@Ada> first").await;
    wait_for("the failing request", || async {
        (!llm.requests().is_empty()).then_some(())
    })
    .await;
    // Turns of one conversation run in order: once the second is answered, the first is over.
    let second = sb.say("general", "alice", "<@Ada> second").await;
    let reply = sb.reply_to("general", "Ada", second["id"].as_str().unwrap()).await;
    assert_eq!(reply["content"], "Second answer.");
    for m in sb.messages("general").await {
        assert!(!m["content"].as_str().unwrap_or("").contains(leak), "{m}");
    }
    running.stop().await;
}
