//! Threads over REST: `POST /channels/{id}/messages/{message_id}/threads` (from a message) and
//! `POST /channels/{id}/threads` (without one), each dispatching THREAD_CREATE.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use axum::{Json, Router};
use serde_json::Value;

use super::{bot_of, parse_body, parse_id, ApiError, ApiResult};
use crate::world::check_thread_name;
use crate::Shared;

/// Routes this module serves.
pub fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/channels/{id}/messages/{message_id}/threads", post(from_message))
        .route("/channels/{id}/threads", post(without_message))
}

fn name_of(body: &Value) -> Result<String, ApiError> {
    let name = body
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::invalid_form("name", "BASE_TYPE_REQUIRED", "This field is required"))?;
    check_thread_name(name)?;
    Ok(name.to_string())
}

fn created(s: &Shared, id: u64) -> ApiResult {
    let world = s.world.lock().expect("world lock");
    s.gateway.dispatch_thread_create(&world, id);
    let channel = world.channel(id).ok_or_else(ApiError::unknown_channel)?;
    Ok((StatusCode::CREATED, Json(world.channel_json(channel))).into_response())
}

async fn from_message(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    Path((id, mid)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult {
    let bot = bot_of(&headers, &s.world.lock().expect("world lock"))?;
    let name = name_of(&parse_body(&body)?)?;
    let thread =
        s.world
            .lock()
            .expect("world lock")
            .start_thread_from_message(parse_id(&id)?, parse_id(&mid)?, &name, bot)?;
    created(&s, thread)
}

/// Without a message: public threads (`type` 11) only. Discord defaults `type` to 12 (private)
/// in API v10; the sandbox does not model private threads' membership, so it refuses them
/// rather than make a thread everyone can see.
async fn without_message(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult {
    let bot = bot_of(&headers, &s.world.lock().expect("world lock"))?;
    let body = parse_body(&body)?;
    let name = name_of(&body)?;
    if body.get("type").and_then(Value::as_u64) != Some(11) {
        return Err(ApiError::invalid_form(
            "type",
            "BASE_TYPE_CHOICES",
            "The sandbox only models public threads: send type 11 (private threads are type 12).",
        ));
    }
    let channel_id = parse_id(&id)?;
    let thread = {
        let mut world = s.world.lock().expect("world lock");
        let parent = world.readable_channel(bot, channel_id)?;
        if world.permissions(bot, parent) & crate::world::perms::CREATE_PUBLIC_THREADS == 0 {
            return Err(ApiError::missing_permissions());
        }
        world.create_thread(channel_id, &name, bot)?
    };
    created(&s, thread)
}
