//! The bot's application (`/applications/@me`, `/oauth2/applications/@me`, which discord.py
//! calls at login), its guild list, and guild reads: the guild, its channels, roles, members and
//! active threads.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::routing::get;
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{bot_of, ok, parse_id, ApiError, ApiResult};
use crate::world::{perms, ChannelKind, Guild, World};
use crate::Shared;

/// Routes this module serves.
pub fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/applications/@me", get(application))
        .route("/oauth2/applications/@me", get(application))
        .route("/users/@me/guilds", get(my_guilds))
        .route("/guilds/{id}", get(guild))
        .route("/guilds/{id}/channels", get(guild_channels))
        .route("/guilds/{id}/roles", get(roles))
        .route("/guilds/{id}/members/{user}", get(member))
        .route("/guilds/{id}/members", get(members))
        .route("/guilds/{id}/threads/active", get(active_threads))
}

async fn application(State(s): State<Arc<Shared>>, headers: HeaderMap) -> ApiResult {
    let world = s.world.lock().expect("world lock");
    let bot = bot_of(&headers, &world)?;
    ok(world.application_json(bot))
}

fn guild_of<'w>(world: &'w World, id: &str) -> Result<&'w Guild, ApiError> {
    let id = parse_id(id)?;
    world
        .guilds()
        .iter()
        .find(|g| g.id == id)
        .ok_or_else(ApiError::unknown_guild)
}

async fn my_guilds(State(s): State<Arc<Shared>>, headers: HeaderMap) -> ApiResult {
    let world = s.world.lock().expect("world lock");
    let bot = bot_of(&headers, &world)?;
    let list: Vec<Value> = world
        .guilds_of(bot)
        .iter()
        .map(|g| {
            json!({
                "id": g.id.to_string(),
                "name": g.name,
                "icon": null,
                "banner": null,
                "owner": g.owner_id == bot,
                "permissions": perms::EVERYONE.to_string(),
                "features": [],
            })
        })
        .collect();
    ok(Value::Array(list))
}

async fn guild(State(s): State<Arc<Shared>>, headers: HeaderMap, Path(id): Path<String>) -> ApiResult {
    let world = s.world.lock().expect("world lock");
    bot_of(&headers, &world)?;
    ok(world.guild_json(guild_of(&world, &id)?))
}

/// The guild's channels the bot can see; threads are not listed, as on Discord.
async fn guild_channels(State(s): State<Arc<Shared>>, headers: HeaderMap, Path(id): Path<String>) -> ApiResult {
    let world = s.world.lock().expect("world lock");
    let bot = bot_of(&headers, &world)?;
    let g = guild_of(&world, &id)?.id;
    let list: Vec<Value> = world
        .channels()
        .filter(|c| matches!(c.kind, ChannelKind::GuildText { guild_id, .. } if guild_id == g))
        .filter(|c| world.can_view(bot, c.id))
        .map(|c| world.channel_json(c))
        .collect();
    ok(Value::Array(list))
}

async fn roles(State(s): State<Arc<Shared>>, headers: HeaderMap, Path(id): Path<String>) -> ApiResult {
    let world = s.world.lock().expect("world lock");
    bot_of(&headers, &world)?;
    ok(json!([world.everyone_role_json(guild_of(&world, &id)?)]))
}

async fn member(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    Path((id, user)): Path<(String, String)>,
) -> ApiResult {
    let world = s.world.lock().expect("world lock");
    bot_of(&headers, &world)?;
    guild_of(&world, &id)?;
    let user = parse_id(&user)?;
    world.user(user).ok_or_else(ApiError::unknown_member)?;
    ok(world.member_json(user))
}

#[derive(Debug, Deserialize)]
struct MembersParams {
    limit: Option<String>,
    after: Option<String>,
}

/// `GET /guilds/{id}/members`: members by ascending user ID after `after`, `limit` 1 to 1000
/// (default 1). Every sandbox user is a member of every guild.
async fn members(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(p): Query<MembersParams>,
) -> ApiResult {
    let world = s.world.lock().expect("world lock");
    bot_of(&headers, &world)?;
    guild_of(&world, &id)?;
    let num = |name: &str, v: &Option<String>| -> Result<Option<u64>, ApiError> {
        v.as_deref()
            .map(|x| {
                x.parse::<u64>()
                    .map_err(|_| ApiError::invalid_form(name, "NUMBER_TYPE_COERCE", "Value is not int."))
            })
            .transpose()
    };
    let limit = crate::validate::limit(num("limit", &p.limit)?.unwrap_or(1), 1000)? as usize;
    let after = num("after", &p.after)?.unwrap_or(0);
    let list: Vec<Value> = world
        .users()
        .filter(|u| u.id > after)
        .take(limit)
        .map(|u| world.member_json(u.id))
        .collect();
    ok(Value::Array(list))
}

/// `GET /guilds/{id}/threads/active`: the guild's threads the bot can see (none is archived in
/// the sandbox). `members` lists thread members for the bot, which joins none: empty.
async fn active_threads(State(s): State<Arc<Shared>>, headers: HeaderMap, Path(id): Path<String>) -> ApiResult {
    let world = s.world.lock().expect("world lock");
    let bot = bot_of(&headers, &world)?;
    let g = guild_of(&world, &id)?.id;
    let threads: Vec<Value> = world
        .channels()
        .filter(|c| matches!(c.kind, ChannelKind::Thread { .. }) && world.guild_of(c) == Some(g))
        .filter(|c| world.can_view(bot, c.id))
        .map(|c| world.channel_json(c))
        .collect();
    ok(json!({"threads": threads, "members": [], "has_more": false}))
}
