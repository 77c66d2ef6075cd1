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

/// The REST client every bot of the bench uses, troupe's own sandbox route
/// ([`troupe::discord::route::Route::sandbox`]): `https://discord.com` through the sandbox's
/// HTTPS proxy, the sandbox's CA trusted, the same idle-connection cap. With serenity's rate
/// limiter on (its default), the baselines pay the same TLS, proxy and limits as troupe.
pub async fn sandbox_rest_client(sandbox_url: &str) -> Result<reqwest::Client> {
    use troupe::discord::route::Route;
    let ca = Route::fetch_sandbox_ca(sandbox_url)
        .await
        .context("reading the sandbox's CA")?;
    let Route::Sandbox(client) = Route::sandbox(sandbox_url, &ca).context("the sandbox as HTTPS proxy")? else {
        return Err(crate::BenchError("the sandbox route is not a sandbox route".into()));
    };
    Ok(client)
}

/// Connects one bare serenity client per token to the sandbox and runs until killed.
pub async fn run(sandbox_url: &str, tokens: &[String]) -> Result<()> {
    let intents = GatewayIntents::GUILDS
        | GatewayIntents::GUILD_MESSAGES
        | GatewayIntents::DIRECT_MESSAGES
        | GatewayIntents::MESSAGE_CONTENT;
    let client = sandbox_rest_client(sandbox_url).await?;
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
