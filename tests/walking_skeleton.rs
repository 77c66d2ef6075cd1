//! One process, several agents, answering humans through the real serenity code path against
//! the in-process sandbox (issue: foundation).

mod common;

use common::{two_agents, Control};

/// [`two_agents`] with the typing indicator shown at once (the echo backend answers faster
/// than the default `typing_delay_ms`).
fn two_agents_typing_at_once() -> (troupe::config::Config, tempfile::TempDir) {
    common::config(&format!("[discord]\ntyping_delay_ms = 0\n{}", common::TWO_AGENTS))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_answers_a_mention_in_its_channel() {
    let (config, _state) = two_agents_typing_at_once();
    let running = troupe::app::start(config).await.unwrap();
    let sb = Control::new(running.sandbox_url().unwrap());
    sb.wait_connected(&["Ada", "Basil"]).await;

    let ignored = sb.say("general", "alice", "nobody is addressed here").await;
    let asked = sb.say("general", "alice", "<@Ada> what is 2+2?").await;
    let reply = sb.reply_to("general", "Ada", asked["id"].as_str().unwrap()).await;

    assert_eq!(reply["author"]["bot"], true);
    assert_eq!(reply["channel_id"], asked["channel_id"]);
    let content = reply["content"].as_str().unwrap();
    assert!(content.starts_with("Ada heard alice:"), "{content}");
    assert!(content.contains("what is 2+2?"), "{content}");
    // Nothing answered the unaddressed message, and Basil (not mentioned, #general is not his
    // listen channel) stayed silent.
    let msgs = sb.messages("general").await;
    assert_eq!(msgs.len(), 3, "{msgs:#?}");
    assert!(msgs
        .iter()
        .all(|m| m["message_reference"]["message_id"] != ignored["id"]));
    // The reply pings nobody.
    assert_eq!(reply["allowed_mentions"]["parse"], serde_json::json!([]));
    assert_eq!(reply["mentions"], serde_json::json!([]));
    // The typing indicator (sent alongside the model call) reaches the channel before the reply,
    // never after it.
    let channel = asked["channel_id"].as_str().unwrap();
    let requests = sb.requests().await;
    let position = |wanted: &str| {
        requests
            .iter()
            .position(|r| r["method"] == "POST" && r["path"].as_str().is_some_and(|p| p.ends_with(wanted)))
            .unwrap_or_else(|| panic!("no POST {wanted}: {requests:#?}"))
    };
    assert!(position(&format!("/channels/{channel}/typing")) < position(&format!("/channels/{channel}/messages")));
    running.stop().await;
}

/// A reply ready before `typing_delay_ms` (500 ms by default) makes one REST call, not two:
/// no typing indicator is sent for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fast_reply_sends_no_typing_indicator() {
    let (config, _state) = two_agents();
    let running = troupe::app::start(config).await.unwrap();
    let sb = Control::new(running.sandbox_url().unwrap());
    sb.wait_connected(&["Ada", "Basil"]).await;
    let asked = sb.say("general", "alice", "<@Ada> quick one").await;
    sb.reply_to("general", "Ada", asked["id"].as_str().unwrap()).await;
    // An indicator is cancelled, or sent and answered, before its reply is posted: none can
    // still be on its way now.
    let typing: Vec<_> = sb
        .requests()
        .await
        .into_iter()
        .filter(|r| r["method"] == "POST" && r["path"].as_str().is_some_and(|p| p.ends_with("/typing")))
        .collect();
    assert!(typing.is_empty(), "{typing:#?}");
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_answers_a_direct_message_and_listen_channel() {
    let (config, _state) = two_agents();
    let running = troupe::app::start(config).await.unwrap();
    let sb = Control::new(running.sandbox_url().unwrap());
    sb.wait_connected(&["Ada", "Basil"]).await;

    let dm = sb.dm("bob", "Basil", "hello gardener").await;
    let dm_channel = dm["channel_id"].as_str().unwrap().to_string();
    let reply = sb.reply_to(&dm_channel, "Basil", dm["id"].as_str().unwrap()).await;
    assert!(reply["content"]
        .as_str()
        .unwrap()
        .starts_with("Basil heard bob: hello gardener"));

    let open = sb.say("random", "alice", "anyone growing tomatoes?").await;
    let reply = sb.reply_to("random", "Basil", open["id"].as_str().unwrap()).await;
    assert!(reply["content"].as_str().unwrap().contains("anyone growing tomatoes?"));
    running.stop().await;
}
