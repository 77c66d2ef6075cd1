//! The supervision tree: many agents in one process without cross-talk, conversation failures
//! contained and restarted, ordering, idle conversations stopping and coming back with memory.

mod common;

use std::sync::atomic::Ordering;

use common::{config, config_with, wait_for, Control};
use serde_json::Value;

fn content(m: &Value) -> &str {
    m["content"].as_str().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_agents_answer_in_their_own_channels_without_cross_talk() {
    let channels: Vec<String> = (0..10).map(|i| format!("{{ name = \"c{i}\" }}")).collect();
    let mut extra = format!(
        "[[sandbox.guilds]]\nname = \"Big\"\nchannels = [{}]\n",
        channels.join(", ")
    );
    for i in 0..10 {
        extra.push_str(&format!(
            "\n[[agents]]\nname = \"Agent{i}\"\nbackend = \"offline\"\nmemory = \"channel-user\"\ntriggers = {{ channels = [\"c{i}\"] }}\n"
        ));
    }
    let (config, _state) = config(&extra);
    let running = troupe::app::start(config).await.unwrap();
    let sb = Control::new(running.sandbox_url().unwrap());
    let names: Vec<String> = (0..10).map(|i| format!("Agent{i}")).collect();
    sb.wait_connected(&names.iter().map(String::as_str).collect::<Vec<_>>())
        .await;

    let mut asked = Vec::new();
    for i in 0..10 {
        for user in ["alice", "bob"] {
            let m = sb.say(&format!("c{i}"), user, &format!("{user} says hi to c{i}")).await;
            asked.push((i, user, m["id"].as_str().unwrap().to_string()));
        }
    }
    for (i, user, id) in &asked {
        let reply = sb.reply_to(&format!("c{i}"), &format!("Agent{i}"), id).await;
        // Each user has their own conversation in each channel: nobody else's turns are in it.
        assert_eq!(
            content(&reply),
            format!("Agent{i} heard {user}: {user} says hi to c{i} (remembering 0 earlier turns)")
        );
    }
    for i in 0..10 {
        let msgs = sb.messages(&format!("c{i}")).await;
        let bots: Vec<&str> = msgs
            .iter()
            .filter(|m| m["author"]["bot"] == true)
            .map(|m| m["author"]["username"].as_str().unwrap())
            .collect();
        assert_eq!(bots, vec![format!("Agent{i}"); 2], "only Agent{i} speaks in c{i}");
    }
    // alice's second message sees alice's own turns only (2), not bob's.
    let again = sb.say("c3", "alice", "me again").await;
    let reply = sb.reply_to("c3", "Agent3", again["id"].as_str().unwrap()).await;
    assert!(
        content(&reply).ends_with("(remembering 2 earlier turns)"),
        "{}",
        content(&reply)
    );
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_conversation_is_restarted_and_others_are_unaffected() {
    let (config, _state) = config(
        r#"
[backends.fragile]
provider = "echo"
panic_on = "BOOM"

[[agents]]
name = "Ada"
backend = "fragile"
"#,
    );
    let running = troupe::app::start(config).await.unwrap();
    let sb = Control::new(running.sandbox_url().unwrap());
    sb.wait_connected(&["Ada"]).await;

    let first = sb.say("random", "bob", "<@Ada> one").await;
    sb.reply_to("random", "Ada", first["id"].as_str().unwrap()).await;

    let boom = sb.say("general", "alice", "<@Ada> BOOM").await;
    let next = sb.say("general", "alice", "<@Ada> are you back?").await;
    let reply = sb.reply_to("general", "Ada", next["id"].as_str().unwrap()).await;
    // The panicking turn left nothing in memory; the restarted conversation answers.
    assert_eq!(
        content(&reply),
        "Ada heard alice: @Ada are you back? (remembering 0 earlier turns)"
    );
    // The message whose turn panicked is given up visibly, not retried (it may be the cause).
    let notice = sb.reply_to("general", "Ada", boom["id"].as_str().unwrap()).await;
    assert_eq!(content(&notice), troupe::config::delivery::DEFAULT_FAILURE_NOTICE);
    assert_eq!(
        sb.messages("general")
            .await
            .iter()
            .filter(|m| m["author"]["username"] == "Ada")
            .count(),
        2
    );

    // The other conversation kept its memory and still answers.
    let second = sb.say("random", "bob", "<@Ada> two").await;
    let reply = sb.reply_to("random", "Ada", second["id"].as_str().unwrap()).await;
    assert!(
        content(&reply).ends_with("(remembering 2 earlier turns)"),
        "{}",
        content(&reply)
    );
    running.stop().await;
}

/// Ada's replies in #general, as the IDs of the messages they answer, in the order sent.
async fn answered_ids(sb: &Control) -> Vec<u64> {
    sb.messages("general")
        .await
        .iter()
        .filter(|m| m["author"]["username"] == "Ada")
        .map(|m| m["message_reference"]["message_id"].as_str().unwrap().parse().unwrap())
        .collect()
}

async fn answers_a_burst_in_id_order(extra: &str) -> Vec<u64> {
    // 40 messages from one human: the per-user limit is lifted.
    let (config, _state) = config(&format!(
        "[discord]\nuser_rate_limit = 0\n\n{extra}[[agents]]\nname = \"Ada\"\nbackend = \"offline\"\n"
    ));
    let running = troupe::app::start(config).await.unwrap();
    let sb = Control::new(running.sandbox_url().unwrap());
    sb.wait_connected(&["Ada"]).await;
    // About ordering, not Discord's 5 messages per 5 s per channel (40 replies would wait 35 s
    // for it; tests/rate_limits.rs covers that).
    sb.enforce_rate_limits(false).await;

    // Dispatched back to back; serenity's per-event handler tasks would deliver them in any
    // order, so the agent takes them from a collector in gateway order (`discord::ordered`).
    let mut answered = Vec::new();
    for round in 0..5 {
        let contents: Vec<String> = (0..8).map(|i| format!("<@Ada> round {round} message {i}")).collect();
        let asked = sb.burst("general", "alice", &contents).await;
        for m in &asked {
            sb.reply_to("general", "Ada", m["id"].as_str().unwrap()).await;
        }
        answered = answered_ids(&sb).await;
        assert_eq!(answered.len(), 8 * (round + 1));
    }
    running.stop().await;
    answered
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_messages_are_answered_in_id_order() {
    let answered = answers_a_burst_in_id_order("").await;
    let mut sorted = answered.clone();
    sorted.sort_unstable();
    assert_eq!(
        answered, sorted,
        "replies (in the order sent) must follow message-ID order"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_conversations_stop_and_come_back_with_their_memory() {
    let (config, _state) =
        config("[conversations]\nidle_secs = 1\n\n[[agents]]\nname = \"Ada\"\nbackend = \"offline\"\n");
    let running = troupe::app::start(config).await.unwrap();
    let sb = Control::new(running.sandbox_url().unwrap());
    sb.wait_connected(&["Ada"]).await;

    let first = sb.dm("alice", "Ada", "remember me").await;
    let dm = first["channel_id"].as_str().unwrap().to_string();
    sb.reply_to(&dm, "Ada", first["id"].as_str().unwrap()).await;
    assert_eq!(running.gauges().active_conversations.load(Ordering::SeqCst), 1);
    wait_for("the idle conversation to stop", || async {
        (running.gauges().active_conversations.load(Ordering::SeqCst) == 0).then_some(())
    })
    .await;
    let second = sb.dm("alice", "Ada", "back again").await;
    let reply = sb.reply_to(&dm, "Ada", second["id"].as_str().unwrap()).await;
    assert!(
        content(&reply).ends_with("(remembering 2 earlier turns)"),
        "{}",
        content(&reply)
    );
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_of_two_serves_twenty_simultaneous_conversations() {
    let humans: Vec<String> = (0..20).map(|i| format!("\"u{i}\"")).collect();
    let (config, _state) = config_with(
        &format!("humans = [{}]", humans.join(", ")),
        "[backends.slow]\nprovider = \"echo\"\ndelay_ms = 50\nmax_concurrency = 2\n\n[[agents]]\nname = \"Ada\"\nbackend = \"slow\"\n",
    );
    let running = troupe::app::start(config).await.unwrap();
    let sb = Control::new(running.sandbox_url().unwrap());
    sb.wait_connected(&["Ada"]).await;
    let posts = (0..20).map(|i| {
        let sb = sb.clone();
        async move { sb.dm(&format!("u{i}"), "Ada", &format!("request {i}")).await }
    });
    let asked = futures::future::join_all(posts).await;
    for m in &asked {
        let channel = m["channel_id"].as_str().unwrap().to_string();
        sb.reply_to(&channel, "Ada", m["id"].as_str().unwrap()).await;
    }
    assert_eq!(running.gauges().active_conversations.load(Ordering::SeqCst), 20);
    let pool = running.pool("slow").unwrap();
    assert_eq!(
        pool.peak_in_flight(),
        2,
        "at most two requests ran at once, and the pool was used fully"
    );
    assert_eq!(pool.in_flight(), 0);
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conversation_that_keeps_failing_is_quarantined_and_its_messages_wait() {
    let (config, _state) = config(
        "[conversations]\nrestart_limit = 1\nrestart_window_secs = 600\n\n[backends.fragile]\nprovider = \"echo\"\npanic_on = \"BOOM\"\n\n[[agents]]\nname = \"Ada\"\nbackend = \"fragile\"\n",
    );
    let running = troupe::app::start(config).await.unwrap();
    let sb = Control::new(running.sandbox_url().unwrap());
    sb.wait_connected(&["Ada"]).await;

    let boom = sb.say("general", "alice", "<@Ada> BOOM").await;
    let check = sb.say("general", "alice", "<@Ada> still here?").await;
    sb.reply_to("general", "Ada", check["id"].as_str().unwrap()).await; // first failure: restarted
    sb.say("general", "alice", "<@Ada> BOOM").await; // second failure: over budget
    let ignored = sb.say("general", "alice", "<@Ada> hello?").await;
    let elsewhere = sb.say("random", "bob", "<@Ada> ping").await;
    sb.reply_to("random", "Ada", elsewhere["id"].as_str().unwrap()).await;
    // The first panicked message is given up visibly (the notice); the one between the failures
    // is answered; what comes after the second failure waits for the quarantine to end.
    sb.reply_to("general", "Ada", boom["id"].as_str().unwrap()).await;
    let mut answered: Vec<String> = sb
        .messages("general")
        .await
        .iter()
        .filter(|m| m["author"]["username"] == "Ada")
        .map(|m| m["message_reference"]["message_id"].as_str().unwrap().to_string())
        .collect();
    answered.sort();
    let mut expected = vec![
        boom["id"].as_str().unwrap().to_string(),
        check["id"].as_str().unwrap().to_string(),
    ];
    expected.sort();
    assert_eq!(
        answered, expected,
        "only the messages before the second failure are answered"
    );
    // Quarantined, not dropped: they wait in the store until the quarantine ends.
    let hello: u64 = ignored["id"].as_str().unwrap().parse().unwrap();
    let owed = || {
        running
            .pending()
            .into_iter()
            .any(|(agent, r)| agent == "Ada" && r.cause == "quarantine" && r.message.id == hello)
            .then_some(())
    };
    wait_for("the quarantined message to wait in the store", || async { owed() }).await;
    assert!(!answered.contains(&ignored["id"].as_str().unwrap().to_string()));
    running.stop().await;
}
