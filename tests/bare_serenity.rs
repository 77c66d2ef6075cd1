//! Any Discord bot can be tested against `troupe sandbox`: a bare serenity client (no troupe
//! code) connects, receives MESSAGE_CREATE with content, and replies over REST.

mod common;

use std::sync::Arc;

use common::{wait_for, Control, Process};
use serenity::all::{Context, EventHandler, GatewayIntents, HttpBuilder, Message};
use tokio::sync::Mutex;

struct Pong {
    seen: Arc<Mutex<Vec<String>>>,
}

#[serenity::async_trait]
impl EventHandler for Pong {
    async fn message(&self, ctx: Context, msg: Message) {
        if msg.author.bot {
            return;
        }
        self.seen.lock().await.push(msg.content.clone());
        if msg.content.contains("ping") {
            msg.reply(&ctx.http, "pong").await.expect("reply accepted");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bare_serenity_bot_talks_to_the_sandbox() {
    let sandbox = Process::spawn(&["sandbox", "--listen", "127.0.0.1:0"]);
    let sb = Control::new(&sandbox.url);
    let bot: serde_json::Value = sb
        .http
        .post(format!("{}/sandbox/bots", sb.url))
        .json(&serde_json::json!({"name": "pongbot", "token": "pong-token"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(bot["token"], "pong-token");

    let seen = Arc::new(Mutex::new(Vec::new()));
    let http = HttpBuilder::new("pong-token")
        .proxy(sb.url.clone())
        .ratelimiter_disabled(true)
        .build();
    let intents = GatewayIntents::GUILD_MESSAGES | GatewayIntents::DIRECT_MESSAGES | GatewayIntents::MESSAGE_CONTENT;
    let mut client = serenity::client::ClientBuilder::new_with_http(http, intents)
        .event_handler(Pong { seen: seen.clone() })
        .await
        .unwrap();
    let shards = client.shard_manager.clone();
    let task = tokio::spawn(async move { client.start().await });
    sb.wait_connected(&["pongbot"]).await;

    let asked = sb.say("general", "alice", "ping please").await;
    let reply = sb.reply_to("general", "pongbot", asked["id"].as_str().unwrap()).await;
    assert_eq!(reply["content"], "pong");
    wait_for("the handler to record the content", || async {
        seen.lock().await.contains(&"ping please".to_string()).then_some(())
    })
    .await;
    shards.shutdown_all().await;
    let _ = task.await;
}
