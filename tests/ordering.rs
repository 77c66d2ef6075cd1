//! Messages are answered in message-ID order with no reorder window, because they reach the
//! agent in gateway order (`discord::ordered`), not because a turn waits for stragglers; checked
//! with bursts while every core is busy, so serenity's per-event tasks are scheduled late and
//! in any order.

mod common;
#[path = "support/cpu_load.rs"]
mod cpu_load;

use common::{config, Control};
use cpu_load::CpuLoad;

/// Ada's replies in #general, as the IDs of the messages they answer, in the order sent.
async fn answered_ids(sb: &Control) -> Vec<u64> {
    sb.messages("general")
        .await
        .iter()
        .filter(|m| m["author"]["username"] == "Ada")
        .map(|m| m["message_reference"]["message_id"].as_str().unwrap().parse().unwrap())
        .collect()
}

/// Five bursts of eight messages from one human (dispatched back to back by the sandbox), with
/// `reorder_ms = 0`; returns the answered message IDs in the order the answers were sent.
async fn bursts_with_no_reorder_window() -> Vec<u64> {
    let (config, _state) = config(
        "[discord]\nuser_rate_limit = 0\n\n[conversations]\nreorder_ms = 0\n\n\
         [[agents]]\nname = \"Ada\"\nbackend = \"offline\"\n",
    );
    let running = troupe::app::start(config).await.unwrap();
    let sb = Control::new(running.sandbox_url().unwrap());
    // Event order is what this is about: 40 replies in one channel would otherwise wait for
    // Discord's 5-per-5-seconds bucket (tests/rate_limits.rs covers that).
    sb.enforce_rate_limits(false).await;
    sb.wait_connected(&["Ada"]).await;
    let mut asked = Vec::new();
    for round in 0..5 {
        let contents: Vec<String> = (0..8).map(|i| format!("<@Ada> round {round} message {i}")).collect();
        let sent = sb.burst("general", "alice", &contents).await;
        for m in &sent {
            sb.reply_to("general", "Ada", m["id"].as_str().unwrap()).await;
        }
        asked.extend(sent.iter().map(|m| m["id"].as_str().unwrap().parse::<u64>().unwrap()));
    }
    let answered = answered_ids(&sb).await;
    running.stop().await;
    assert_eq!(answered.len(), asked.len(), "each message answered exactly once");
    answered
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bursts_are_answered_in_id_order_with_no_reorder_window_under_cpu_load() {
    let _load = CpuLoad::start();
    for run in 0..3 {
        let answered = bursts_with_no_reorder_window().await;
        let mut sorted = answered.clone();
        sorted.sort_unstable();
        assert_eq!(
            answered, sorted,
            "run {run}: replies (in the order sent) must follow message-ID order"
        );
    }
}
