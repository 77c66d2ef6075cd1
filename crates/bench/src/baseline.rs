//! The baseline: a bare serenity bot (no actors, no store, no LLM call) that answers every
//! human message mentioning it with `pong`, at once, through the same sandbox. It is the floor
//! that the Discord plumbing itself costs (serenity's gateway, cache and REST client, the
//! sandbox). `troupe-bench baseline` runs one client per token in this process.

use serenity::all::{Context, EventHandler, GatewayIntents, HttpBuilder, Message};

use crate::{Context as _, Result};

struct Pong;

#[serenity::async_trait]
impl EventHandler for Pong {
    async fn message(&self, ctx: Context, msg: Message) {
        if msg.author.bot {
            return;
        }
        let me = ctx.cache.current_user().id;
        if msg.mentions.iter().any(|u| u.id == me) {
            let _ = msg.reply(&ctx.http, "pong").await;
        }
    }
}

/// Connects one bare serenity client per token to the sandbox and runs until killed.
pub async fn run(sandbox_url: &str, tokens: &[String]) -> Result<()> {
    let intents = GatewayIntents::GUILDS
        | GatewayIntents::GUILD_MESSAGES
        | GatewayIntents::DIRECT_MESSAGES
        | GatewayIntents::MESSAGE_CONTENT;
    let mut tasks = Vec::new();
    for token in tokens {
        let http = HttpBuilder::new(token)
            .proxy(sandbox_url)
            .ratelimiter_disabled(true)
            .build();
        let mut client = serenity::client::ClientBuilder::new_with_http(http, intents)
            .event_handler(Pong)
            .await
            .context("building a serenity client")?;
        tasks.push(tokio::spawn(async move { client.start().await }));
    }
    for task in tasks {
        task.await
            .context("a baseline client panicked")?
            .context("a baseline client stopped")?;
    }
    Ok(())
}
