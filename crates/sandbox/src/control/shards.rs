//! The control API's sharding: `POST /sandbox/shards` sets a bot's recommended shard count (what
//! `GET /gateway/bot` reports), its `max_concurrency` and the most guilds one of its shards may
//! hold, and from then on limits its IDENTIFYs per bucket as Discord does.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::response::IntoResponse;
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::{bad, parse, ApiResult};
use crate::gateway::shards::{BotSharding, MAX_GUILDS_PER_SHARD};
use crate::Shared;

/// The most shards the sandbox recommends for one bot.
pub const MAX_SHARDS: u64 = 1024;

/// The sharding routes, merged into `/sandbox`.
pub fn routes() -> Router<Arc<Shared>> {
    Router::new().route("/shards", post(set))
}

/// Body of `POST /sandbox/shards`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ShardsRequest {
    /// The bot, by name.
    bot: String,
    /// `shards` in `GET /gateway/bot` (default 1).
    shards: Option<u64>,
    /// `session_start_limit.max_concurrency` (default 1).
    max_concurrency: Option<u64>,
    /// Most guilds per shard before 4011 (default Discord's 2,500).
    max_guilds_per_shard: Option<usize>,
}

async fn set(State(s): State<Arc<Shared>>, body: Bytes) -> ApiResult {
    let req: ShardsRequest = parse(&body)?;
    let bot = {
        let world = s.world.lock().expect("world lock");
        world
            .user_by_name(&req.bot)
            .filter(|u| u.bot)
            .ok_or_else(|| bad("bot", &format!("no bot named `{}`", req.bot)))?
            .id
    };
    let sharding = BotSharding {
        recommended: req.shards.unwrap_or(1),
        max_concurrency: req.max_concurrency.unwrap_or(1),
        max_guilds_per_shard: req.max_guilds_per_shard.unwrap_or(MAX_GUILDS_PER_SHARD),
        limit_identify: true,
    };
    if !(1..=MAX_SHARDS).contains(&sharding.recommended) {
        return Err(bad("shards", &format!("shards must be 1 to {MAX_SHARDS}")));
    }
    if !(1..=MAX_SHARDS).contains(&sharding.max_concurrency) {
        return Err(bad(
            "max_concurrency",
            &format!("max_concurrency must be 1 to {MAX_SHARDS}"),
        ));
    }
    if sharding.max_guilds_per_shard == 0 {
        return Err(bad("max_guilds_per_shard", "max_guilds_per_shard must be at least 1"));
    }
    s.gateway.set_sharding(bot, sharding);
    Ok(Json(json!({
        "bot_id": bot.to_string(),
        "shards": sharding.recommended,
        "max_concurrency": sharding.max_concurrency,
        "max_guilds_per_shard": sharding.max_guilds_per_shard,
    }))
    .into_response())
}
