//! The baseline: a bare serenity bot (no actors, no store, no LLM call) that answers every
//! human message mentioning it with `pong`, at once, through the same sandbox. It is the floor
//! that the Discord plumbing itself costs (serenity's gateway and REST client, the sandbox).
//! Built with serenity's features as troupe is (no cache: cargo unifies features across the
//! workspace, and troupe does without it). `troupe-bench baseline` runs one client per token in this process. Its REST client is
//! built as troupe's is: serenity's rate limiter on, `https://discord.com` through the
//! sandbox's HTTPS proxy with the sandbox's CA trusted, so both pay the same TLS and limits.

use std::sync::OnceLock;

use serenity::all::{Context, EventHandler, GatewayIntents, HttpBuilder, Message, Ready, UserId};

use crate::{Context as _, Result};

#[derive(Default)]
struct Pong {
    /// The bot's user ID, from READY.
    me: OnceLock<UserId>,
}

#[serenity::async_trait]
impl EventHandler for Pong {
    async fn ready(&self, _ctx: Context, ready: Ready) {
        let _ = self.me.set(ready.user.id);
    }

    async fn message(&self, ctx: Context, msg: Message) {
        if msg.author.bot {
            return;
        }
        if is_mentioned(&self.me, &msg) {
            let _ = msg.reply(&ctx.http, "pong").await;
        }
    }
}

/// Whether `msg` mentions the bot whose ID READY gave (not yet known: not mentioned; the
/// harness sends nothing before every bot is connected).
pub fn is_mentioned(me: &OnceLock<UserId>, msg: &Message) -> bool {
    me.get().is_some_and(|me| msg.mentions.iter().any(|u| u.id == *me))
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
            .event_handler(Pong::default())
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
