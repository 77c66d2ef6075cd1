//! The baseline: a bare serenity bot (no actors, no store, no LLM call) that answers every
//! human message mentioning it with `pong`, at once, through the same sandbox. It is the floor
//! that the Discord plumbing itself costs (serenity's gateway, cache and REST client, the
//! sandbox). `troupe-bench baseline` runs one client per token in this process. Its REST client is
//! built as troupe's is: serenity's rate limiter on, `https://discord.com` through the
//! sandbox's HTTPS proxy with the sandbox's CA trusted, so both pay the same TLS and limits.

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
    let ca = reqwest::get(format!("{sandbox_url}/sandbox/ca.pem"))
        .await
        .and_then(|r| r.error_for_status())
        .context("reading the sandbox's CA")?
        .text()
        .await
        .context("reading the sandbox's CA")?;
    let client = reqwest::Client::builder()
        .use_rustls_tls()
        .proxy(reqwest::Proxy::https(sandbox_url).context("the sandbox as HTTPS proxy")?)
        .add_root_certificate(reqwest::Certificate::from_pem(ca.as_bytes()).context("the sandbox's CA")?)
        .build()
        .context("building the REST client")?;
    let mut tasks = Vec::new();
    for token in tokens {
        let http = HttpBuilder::new(token).client(client.clone()).build();
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
