//! Passivated conversations: a conversation idle for `[conversations] idle_secs` stops (its
//! memory and anything owed are in the store, so an idle conversation holds no actor and no
//! RAM), and the next message activates it again from the store. Checked: activation restores
//! the memory, no message is lost or answered twice when messages arrive while conversations
//! are passivating, and every passivated conversation's actor is gone.

mod common;

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use common::{config_with, wait_for, Control};
use serde_json::Value;

const HUMANS: usize = 12;

fn humans() -> Vec<String> {
    (0..HUMANS).map(|i| format!("h{i}")).collect()
}

/// A troupe whose conversations passivate after 1 s, with `HUMANS` humans who DM Ada.
async fn start() -> (troupe::app::Running, Control, tempfile::TempDir) {
    let quoted: Vec<String> = humans().iter().map(|h| format!("\"{h}\"")).collect();
    let (config, state) = config_with(
        &format!("humans = [{}]", quoted.join(", ")),
        "[discord]\nuser_rate_limit = 0\n\n[conversations]\nidle_secs = 1\n\n\
         [[agents]]\nname = \"Ada\"\nbackend = \"offline\"\n",
    );
    let running = troupe::app::start(config).await.unwrap();
    let sb = Control::new(running.sandbox_url().unwrap());
    sb.wait_connected(&["Ada"]).await;
    (running, sb, state)
}

fn live(running: &troupe::app::Running) -> usize {
    running.gauges().active_conversations.load(Ordering::SeqCst)
}

async fn wait_all_passivated(running: &troupe::app::Running) {
    wait_for("every conversation to passivate", || async {
        (live(running) == 0).then_some(())
    })
    .await;
}

/// How many of Ada's messages in `channel` reply to each message ID.
async fn replies_per_message(sb: &Control, channel: &str) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for m in sb.messages(channel).await {
        if m["author"]["username"] == "Ada" {
            if let Some(id) = m["message_reference"]["message_id"].as_str() {
                *counts.entry(id.to_string()).or_default() += 1;
            }
        }
    }
    counts
}

fn content(m: &Value) -> &str {
    m["content"].as_str().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_passivated_conversation_is_activated_from_the_store_each_time() {
    let (running, sb, _state) = start().await;
    let mut dm = String::new();
    for round in 0..3 {
        let asked = sb.dm("h0", "Ada", &format!("round {round}")).await;
        dm = asked["channel_id"].as_str().unwrap().to_string();
        let reply = sb.reply_to(&dm, "Ada", asked["id"].as_str().unwrap()).await;
        // Each activation reads the memory the previous one saved: two turns per round.
        if round > 0 {
            let expected = format!("(remembering {} earlier turns)", 2 * round);
            assert!(
                content(&reply).ends_with(&expected),
                "round {round}: {}",
                content(&reply)
            );
        }
        wait_all_passivated(&running).await;
    }
    assert!(replies_per_message(&sb, &dm).await.values().all(|n| *n == 1));
    running.stop().await;
}

/// Messages are sent to every conversation the moment the first of them passivates, so the
/// others receive theirs while their own idle checks may be under way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_arriving_while_conversations_passivate_are_answered_exactly_once() {
    let (running, sb, _state) = start().await;
    let mut asked: Vec<(String, String)> = Vec::new(); // (channel, message ID)
    for round in 0..4 {
        let mut sent = Vec::new();
        for h in humans() {
            let m = sb.dm(&h, "Ada", &format!("{h} round {round}")).await;
            sent.push((
                m["channel_id"].as_str().unwrap().to_string(),
                m["id"].as_str().unwrap().to_string(),
            ));
        }
        for (channel, id) in &sent {
            sb.reply_to(channel, "Ada", id).await;
        }
        asked.extend(sent);
        // The next round starts when the first conversation has passivated.
        wait_for("a conversation to passivate", || async {
            (live(&running) < HUMANS).then_some(())
        })
        .await;
    }
    for (channel, id) in &asked {
        sb.reply_to(channel, "Ada", id).await;
    }
    // Every conversation passivates (the gauge counts live conversations' states, which go
    // down when a state is dropped): idle conversations hold no memory.
    wait_all_passivated(&running).await;
    let mut channels: Vec<&String> = asked.iter().map(|(c, _)| c).collect();
    channels.sort_unstable();
    channels.dedup();
    let mut answered = HashMap::new();
    for c in channels {
        answered.extend(replies_per_message(&sb, c).await);
    }
    for (channel, id) in &asked {
        assert_eq!(
            answered.get(id),
            Some(&1),
            "message {id} in {channel} answered exactly once"
        );
    }
    assert_eq!(answered.len(), asked.len(), "no reply to anything else");
    running.stop().await;
}
