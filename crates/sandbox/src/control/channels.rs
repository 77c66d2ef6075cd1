//! The control API's channels: `POST /sandbox/channels` creates a guild text channel and
//! `PATCH /sandbox/channels/{channel}` changes one (name, slowmode, and which bots may not see
//! or send there), as a guild's owner would; bots that can see it get CHANNEL_CREATE or
//! CHANNEL_UPDATE.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::IntoResponse;
use axum::routing::{patch, post};
use axum::{Json, Router};
use serde::Deserialize;

use super::{bad, parse, ApiResult};
use crate::world::{ChannelChange, World};
use crate::Shared;

/// The channel routes, merged into `/sandbox`.
pub fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/channels", post(create))
        .route("/channels/{channel}", patch(update))
}

/// Body of both routes; users are named.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ChannelRequest {
    /// The guild, by name or ID (default: the first guild). Creation only.
    guild: Option<String>,
    /// The channel's name (required to create).
    name: Option<String>,
    /// Slowmode seconds.
    slowmode: Option<u32>,
    /// Bots denied View Channel.
    hidden_from: Option<Vec<String>>,
    /// Bots denied Send Messages.
    read_only_for: Option<Vec<String>>,
}

impl ChannelRequest {
    fn change(&self, world: &World) -> Result<ChannelChange, crate::error::ApiError> {
        let users = |field: &str, names: &Option<Vec<String>>| -> Result<Option<Vec<u64>>, _> {
            names
                .as_ref()
                .map(|names| {
                    names
                        .iter()
                        .map(|n| {
                            world
                                .user_by_name(n)
                                .map(|u| u.id)
                                .ok_or_else(|| bad(field, &format!("no user named `{n}`")))
                        })
                        .collect()
                })
                .transpose()
        };
        Ok(ChannelChange {
            name: self.name.clone(),
            slowmode: self.slowmode,
            hidden_from: users("hidden_from", &self.hidden_from)?,
            read_only_for: users("read_only_for", &self.read_only_for)?,
        })
    }
}

async fn create(State(s): State<Arc<Shared>>, body: Bytes) -> ApiResult {
    let req: ChannelRequest = parse(&body)?;
    let mut world = s.world.lock().expect("world lock");
    let guild = match &req.guild {
        None => world.guilds().first().map(|g| g.id),
        Some(g) => world
            .guilds()
            .iter()
            .find(|x| x.name == *g || x.id.to_string() == *g)
            .map(|x| x.id),
    }
    .ok_or_else(|| {
        bad(
            "guild",
            &format!("no guild named `{}`", req.guild.as_deref().unwrap_or("")),
        )
    })?;
    let change = req.change(&world)?;
    let id = world.create_text_channel(guild, change)?;
    s.gateway.dispatch_channel(&world, "CHANNEL_CREATE", id, &[]);
    let channel = world.channel(id).expect("just created");
    Ok(Json(world.channel_json(channel)).into_response())
}

async fn update(State(s): State<Arc<Shared>>, Path(channel): Path<String>, body: Bytes) -> ApiResult {
    let req: ChannelRequest = parse(&body)?;
    if req.guild.is_some() {
        return Err(bad("guild", "a channel cannot move to another guild"));
    }
    let mut world = s.world.lock().expect("world lock");
    let id = world
        .channel_by_name(&channel)
        .ok_or_else(|| bad("channel", &format!("no channel named `{channel}`")))?
        .id;
    // A bot that could see the channel hears of the change too, even one that no longer can.
    let viewers: Vec<u64> = world
        .users()
        .filter(|u| u.bot && world.can_view(u.id, id))
        .map(|u| u.id)
        .collect();
    let change = req.change(&world)?;
    world.update_text_channel(id, change)?;
    s.gateway.dispatch_channel(&world, "CHANNEL_UPDATE", id, &viewers);
    let channel = world.channel(id).expect("still there");
    Ok(Json(world.channel_json(channel)).into_response())
}
