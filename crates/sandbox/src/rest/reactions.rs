//! Reaction routes: add and remove your own, remove someone's, list who reacted, clear all or
//! one emoji; each change dispatched as Discord does (MESSAGE_REACTION_*).

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{delete, get, put};
use axum::Router;
use serde::Deserialize;
use serde_json::Value;

use super::{bot_of, ok, parse_id, ApiError, ApiResult};
use crate::gateway::events;
use crate::gateway::EventKind;
use crate::world::parse_emoji;
use crate::Shared;

/// Routes this module serves.
pub fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/channels/{id}/messages/{message_id}/reactions", delete(clear_all))
        .route(
            "/channels/{id}/messages/{message_id}/reactions/{emoji}",
            get(list).delete(clear_emoji),
        )
        .route(
            "/channels/{id}/messages/{message_id}/reactions/{emoji}/@me",
            put(add).delete(remove_own),
        )
        .route(
            "/channels/{id}/messages/{message_id}/reactions/{emoji}/{user}",
            delete(remove_user),
        )
}

fn no_content() -> ApiResult {
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn add(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    Path((id, mid, emoji)): Path<(String, String, String)>,
) -> ApiResult {
    let mut world = s.world.lock().expect("world lock");
    let bot = bot_of(&headers, &world)?;
    let (channel, message) = (parse_id(&id)?, parse_id(&mid)?);
    let emoji = parse_emoji(&emoji)?;
    if world.add_reaction(channel, message, bot, &emoji)? {
        let d = events::reaction_add(&world, channel, message, bot, &emoji);
        s.gateway
            .dispatch_channel_event(&world, channel, EventKind::Reactions, "MESSAGE_REACTION_ADD", &d);
    }
    no_content()
}

fn remove(s: &Shared, headers: &HeaderMap, id: &str, mid: &str, emoji: &str, target: Option<&str>) -> ApiResult {
    let mut world = s.world.lock().expect("world lock");
    let bot = bot_of(headers, &world)?;
    let (channel, message) = (parse_id(id)?, parse_id(mid)?);
    let emoji = parse_emoji(emoji)?;
    let target = target.map(parse_id).transpose()?.unwrap_or(bot);
    if world.remove_reaction(channel, message, target, &emoji, bot)? {
        let d = events::reaction_remove(&world, channel, message, target, &emoji);
        s.gateway
            .dispatch_channel_event(&world, channel, EventKind::Reactions, "MESSAGE_REACTION_REMOVE", &d);
    }
    no_content()
}

async fn remove_own(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    Path((id, mid, emoji)): Path<(String, String, String)>,
) -> ApiResult {
    remove(&s, &headers, &id, &mid, &emoji, None)
}

async fn remove_user(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    Path((id, mid, emoji, user)): Path<(String, String, String, String)>,
) -> ApiResult {
    remove(&s, &headers, &id, &mid, &emoji, Some(&user))
}

fn clear(s: &Shared, headers: &HeaderMap, id: &str, mid: &str, emoji: Option<&str>) -> ApiResult {
    let mut world = s.world.lock().expect("world lock");
    let bot = bot_of(headers, &world)?;
    let (channel, message) = (parse_id(id)?, parse_id(mid)?);
    let emoji = emoji.map(parse_emoji).transpose()?;
    world.clear_reactions(channel, message, emoji.as_ref(), bot)?;
    let t = if emoji.is_some() {
        "MESSAGE_REACTION_REMOVE_EMOJI"
    } else {
        "MESSAGE_REACTION_REMOVE_ALL"
    };
    let d = events::reaction_clear(&world, channel, message, emoji.as_ref());
    s.gateway
        .dispatch_channel_event(&world, channel, EventKind::Reactions, t, &d);
    no_content()
}

async fn clear_all(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    Path((id, mid)): Path<(String, String)>,
) -> ApiResult {
    clear(&s, &headers, &id, &mid, None)
}

async fn clear_emoji(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    Path((id, mid, emoji)): Path<(String, String, String)>,
) -> ApiResult {
    clear(&s, &headers, &id, &mid, Some(&emoji))
}

#[derive(Debug, Deserialize)]
struct ListParams {
    after: Option<String>,
    limit: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
}

/// `GET .../reactions/{emoji}`: the users who reacted, by ID after `after`, `limit` 1 to 100
/// (default 25). Super reactions (`type=1`) are never made in the sandbox: the list is empty.
async fn list(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    Path((id, mid, emoji)): Path<(String, String, String)>,
    Query(p): Query<ListParams>,
) -> ApiResult {
    let world = s.world.lock().expect("world lock");
    let bot = bot_of(&headers, &world)?;
    let emoji = parse_emoji(&emoji)?;
    let num = |name: &str, v: &Option<String>| -> Result<Option<u64>, ApiError> {
        v.as_deref()
            .map(|x| {
                x.parse::<u64>()
                    .map_err(|_| ApiError::invalid_form(name, "NUMBER_TYPE_COERCE", "Value is not int."))
            })
            .transpose()
    };
    let limit = num("limit", &p.limit)?.unwrap_or(25);
    let users = world.reactors(
        parse_id(&id)?,
        parse_id(&mid)?,
        &emoji,
        num("after", &p.after)?,
        limit,
        bot,
    )?;
    let burst = p.kind.as_deref() == Some("1");
    let list: Vec<Value> = if burst {
        Vec::new()
    } else {
        users.into_iter().map(|u| world.user_json(u)).collect()
    };
    ok(Value::Array(list))
}
