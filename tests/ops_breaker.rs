//! Circuit breakers wired into turns: `on_trip = "exit"` stops the real binary with exit code 7
//! after exactly `max_failures` failed turns; `on_trip = "isolate"` opens, half-opens and closes
//! for one agent while another keeps answering, and the messages that waited are answered once
//! it closes. Users never see provider error text.

mod common;

use common::{config, wait_for, Control, Process};
use serde_json::Value;
use troupe_llm_test_server::{LlmTestServer, Reply};

fn backend(url: &str) -> String {
    format!(
        "[backends.flaky]\nprovider = \"openai\"\nmodel = \"m\"\nbase_url = \"{url}\"\nretries = {{ max_attempts = 1 }}\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_breaker_trips_after_exactly_max_failures_with_code_7() {
    let llm = LlmTestServer::start().await.unwrap();
    llm.set_default(Reply::error(
        500,
        "{\"error\":{\"message\":\"upstream secret detail\",\"type\":\"server_error\"}}",
    ));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agents.toml");
    std::fs::write(
        &path,
        format!(
            "[sandbox]\nlisten = \"127.0.0.1:0\"\n\n[breaker]\nmax_failures = 3\n\n{}\n[[agents]]\nname = \"Ada\"\nbackend = \"flaky\"\n",
            backend(&llm.openai_base_url())
        ),
    )
    .unwrap();
    let state = dir.path().join("state");
    let mut troupe = Process::spawn(&[
        "--config",
        path.to_str().unwrap(),
        "--state-dir",
        state.to_str().unwrap(),
    ]);
    let sb = Control::new(&troupe.url);
    sb.wait_connected(&["Ada"]).await;
    for (i, channel) in ["general", "random", "bot-dms"].into_iter().enumerate() {
        sb.say(channel, "alice", &format!("<@Ada> question {i}")).await;
        // One failure at a time, so the count is exact.
        wait_for("the LLM request", || async { (llm.requests().len() > i).then_some(()) }).await;
    }
    let status = troupe.wait_exit();
    assert_eq!(status.code(), Some(7), "stderr:\n{}", troupe.stderr());
    assert_eq!(llm.requests().len(), 3, "exactly max_failures calls");
    assert!(troupe.stderr().contains("breaker"), "{}", troupe.stderr());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isolate_breaker_opens_half_opens_and_closes_while_others_answer() {
    let llm = LlmTestServer::start().await.unwrap();
    llm.push(Reply::error(500, "boom"));
    llm.push(Reply::error(500, "boom"));
    llm.set_default(Reply::text("Recovered answer."));
    let (config, _state) = config(&format!(
        "[breaker]\nmax_failures = 2\non_trip = \"isolate\"\ncooldown_secs = 3\n\n{}\n[[agents]]\nname = \"Ada\"\nbackend = \"flaky\"\nmemory = \"channel-user\"\n\n[[agents]]\nname = \"Bea\"\nbackend = \"offline\"\n",
        backend(&llm.openai_base_url())
    ));
    let running = troupe::app::start(config).await.unwrap();
    let sb = Control::new(running.sandbox_url().unwrap());
    let http = running.http_url();
    sb.wait_connected(&["Ada", "Bea"]).await;
    let breaker = |body: &Value| -> String {
        body["agents"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["name"] == "Ada")
            .unwrap()["breaker"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let readiness = || async {
        let body: Value = reqwest::get(format!("{http}/readiness"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        body
    };

    let one = sb.say("general", "alice", "<@Ada> one").await;
    wait_for("first failure", || async { (llm.requests().len() == 1).then_some(()) }).await;
    sb.say("general", "bob", "<@Ada> two").await;
    wait_for("the breaker open", || async {
        (breaker(&readiness().await) == "open").then_some(())
    })
    .await;
    assert_eq!(llm.requests().len(), 2);

    // While open: Ada does not call its backend; Bea answers as usual.
    let while_open = sb.say("random", "alice", "<@Ada> three").await;
    let bea = sb.say("random", "alice", "<@Bea> are you fine?").await;
    sb.reply_to("random", "Bea", bea["id"].as_str().unwrap()).await;

    // Nothing is dropped while the breaker is open: once the cooldown lets a probe through and
    // it succeeds, the breaker closes and every message that waited is answered, once.
    let waited = sb.reply_to("random", "Ada", while_open["id"].as_str().unwrap()).await;
    assert_eq!(waited["content"], "Recovered answer.");
    wait_for("the breaker closed", || async {
        (breaker(&readiness().await) == "closed").then_some(())
    })
    .await;
    let answered = |msgs: &[Value], id: &Value| {
        msgs.iter()
            .filter(|m| m["author"]["username"] == "Ada" && m["message_reference"]["message_id"] == *id)
            .count()
    };
    let random = sb.messages("random").await;
    assert_eq!(
        answered(&random, &while_open["id"]),
        1,
        "answered once, after the breaker closed"
    );
    // The messages whose calls failed are answered too.
    sb.reply_to("general", "Ada", one["id"].as_str().unwrap()).await;
    for channel in ["general", "random"] {
        for m in sb.messages(channel).await {
            assert!(
                !m["content"].as_str().unwrap().contains("boom"),
                "provider text leaked: {m}"
            );
        }
    }
    running.stop().await;
}
