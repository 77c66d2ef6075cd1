//! Message routes beyond create and list: get, edit (MESSAGE_UPDATE), delete (MESSAGE_DELETE),
//! bulk delete (MESSAGE_DELETE_BULK) and pins (CHANNEL_PINS_UPDATE plus the "pinned a message"
//! system message Discord posts), at the current `/messages/pins` and the older `/pins` routes.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post, put};
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{bot_of, components_field, ok, parse_body, parse_id, uploads, ApiError, ApiResult};
use crate::gateway::EventKind;
use crate::world::{Author, MessageEdit};
use crate::{snowflake, Shared};

/// Routes this module serves.
pub fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route(
            "/channels/{id}/messages/{message_id}",
            get(get_message).patch(edit_message).delete(delete_message),
        )
        .route("/channels/{id}/messages/bulk-delete", post(bulk_delete))
        .route("/channels/{id}/messages/pins", get(list_pins))
        .route("/channels/{id}/messages/pins/{message_id}", put(pin).delete(unpin))
        .route("/channels/{id}/pins", get(list_pins_legacy))
        .route("/channels/{id}/pins/{message_id}", put(pin).delete(unpin))
}

fn no_content() -> ApiResult {
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn get_message(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    Path((id, mid)): Path<(String, String)>,
) -> ApiResult {
    let world = s.world.lock().expect("world lock");
    let bot = bot_of(&headers, &world)?;
    let channel = world.readable_channel(bot, parse_id(&id)?)?;
    let mid = parse_id(&mid)?;
    let m = channel
        .messages
        .iter()
        .find(|m| m.id == mid)
        .ok_or_else(ApiError::unknown_message)?;
    ok(world.message_json_for(m, bot))
}

/// Reads a `PATCH` body (JSON or multipart) into a [`MessageEdit`].
pub async fn read_edit(s: &Shared, channel_id: u64, headers: &HeaderMap, body: Bytes) -> Result<MessageEdit, ApiError> {
    let (body, files) = uploads::message_body(headers, body).await?;
    let content = match body.get("content") {
        None => None,
        Some(Value::Null) => Some(String::new()),
        Some(Value::String(c)) => Some(c.clone()),
        Some(_) => {
            return Err(ApiError::invalid_form(
                "content",
                "STRING_TYPE_CONVERT",
                "Could not interpret value as string.",
            ))
        }
    };
    let embeds = match body.get("embeds") {
        None => None,
        Some(Value::Null) => Some(Vec::new()),
        Some(Value::Array(a)) if a.iter().all(Value::is_object) => Some(a.clone()),
        Some(_) => {
            return Err(ApiError::invalid_form(
                "embeds",
                "LIST_TYPE_CONVERT",
                "Only iterables may be used in a ListType",
            ))
        }
    };
    let allowed_mentions = body.get("allowed_mentions").filter(|v| !v.is_null()).cloned();
    if let Some(am) = &allowed_mentions {
        crate::validate::allowed_mentions(am)?;
    }
    // Attachments listed by a snowflake ID are kept; `files[n]` entries carry n instead.
    let keep_attachments = body.get("attachments").and_then(Value::as_array).map(|list| {
        list.iter()
            .filter_map(|a| super::id_field(a, "id"))
            .filter(|id| *id > u64::from(u32::MAX))
            .collect()
    });
    Ok(MessageEdit {
        content,
        embeds,
        flags: body.get("flags").and_then(Value::as_u64),
        components: components_field(&body)?,
        allowed_mentions,
        keep_attachments,
        new_attachments: uploads::attachments(s, channel_id, &body, files)?,
    })
}

/// Edits as `by` and dispatches MESSAGE_UPDATE; returns the message as `viewer` sees it.
pub fn edit_and_dispatch(
    s: &Shared,
    channel_id: u64,
    message_id: u64,
    by: &Author,
    edit: MessageEdit,
    viewer: Option<u64>,
) -> Result<Value, ApiError> {
    let mut world = s.world.lock().expect("world lock");
    let m = world.edit_message(channel_id, message_id, by, edit)?;
    s.gateway.dispatch_message_update(&world, &m);
    Ok(match viewer {
        Some(v) => world.message_json_for(&m, v),
        None => world.message_json(&m, true),
    })
}

async fn edit_message(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    Path((id, mid)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult {
    let bot = bot_of(&headers, &s.world.lock().expect("world lock"))?;
    let (channel_id, message_id) = (parse_id(&id)?, parse_id(&mid)?);
    let edit = read_edit(&s, channel_id, &headers, body).await?;
    ok(edit_and_dispatch(
        &s,
        channel_id,
        message_id,
        &Author::User(bot),
        edit,
        Some(bot),
    )?)
}

/// Deletes as `by` and dispatches MESSAGE_DELETE.
pub fn delete_and_dispatch(s: &Shared, channel_id: u64, message_id: u64, by: &Author) -> Result<(), ApiError> {
    let mut world = s.world.lock().expect("world lock");
    let gone = world.delete_message(channel_id, message_id, by)?;
    let d = crate::gateway::events::message_delete(&world, channel_id, gone.id);
    s.gateway
        .dispatch_channel_event(&world, channel_id, EventKind::Messages, "MESSAGE_DELETE", &d);
    if gone.extra.pinned_unix_ms.is_some() {
        let d = crate::gateway::events::pins_update(&world, channel_id);
        s.gateway
            .dispatch_channel_event(&world, channel_id, EventKind::Pins, "CHANNEL_PINS_UPDATE", &d);
    }
    Ok(())
}

async fn delete_message(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    Path((id, mid)): Path<(String, String)>,
) -> ApiResult {
    let bot = bot_of(&headers, &s.world.lock().expect("world lock"))?;
    delete_and_dispatch(&s, parse_id(&id)?, parse_id(&mid)?, &Author::User(bot))?;
    no_content()
}

async fn bulk_delete(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult {
    let mut world = s.world.lock().expect("world lock");
    let bot = bot_of(&headers, &world)?;
    let channel_id = parse_id(&id)?;
    let body = parse_body(&body)?;
    let ids: Vec<u64> = match body.get("messages") {
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| match v {
                Value::String(s) => s.parse().ok(),
                Value::Number(n) => n.as_u64(),
                _ => None,
            })
            .collect::<Option<Vec<u64>>>()
            .ok_or_else(|| ApiError::invalid_form("messages", "NUMBER_TYPE_COERCE", "Value \"x\" is not snowflake."))?,
        _ => {
            return Err(ApiError::invalid_form(
                "messages",
                "BASE_TYPE_REQUIRED",
                "This field is required",
            ))
        }
    };
    let deleted = world.bulk_delete(channel_id, &ids, bot)?;
    if !deleted.is_empty() {
        let d = crate::gateway::events::message_delete_bulk(&world, channel_id, &deleted);
        s.gateway
            .dispatch_channel_event(&world, channel_id, EventKind::Messages, "MESSAGE_DELETE_BULK", &d);
    }
    no_content()
}

async fn set_pin(s: &Shared, headers: &HeaderMap, id: &str, mid: &str, pinned: bool) -> ApiResult {
    let mut world = s.world.lock().expect("world lock");
    let bot = bot_of(headers, &world)?;
    let (channel_id, message_id) = (parse_id(id)?, parse_id(mid)?);
    if world.pin(channel_id, message_id, bot, pinned)? {
        let d = crate::gateway::events::pins_update(&world, channel_id);
        s.gateway
            .dispatch_channel_event(&world, channel_id, EventKind::Pins, "CHANNEL_PINS_UPDATE", &d);
        if pinned {
            let notice = world.pin_notice(channel_id, message_id, bot)?;
            s.gateway.dispatch_message_create(&world, &notice);
        }
    }
    no_content()
}

async fn pin(State(s): State<Arc<Shared>>, headers: HeaderMap, Path((id, mid)): Path<(String, String)>) -> ApiResult {
    set_pin(&s, &headers, &id, &mid, true).await
}

async fn unpin(State(s): State<Arc<Shared>>, headers: HeaderMap, Path((id, mid)): Path<(String, String)>) -> ApiResult {
    set_pin(&s, &headers, &id, &mid, false).await
}

#[derive(Debug, Deserialize)]
struct PinsParams {
    before: Option<String>,
    limit: Option<String>,
}

/// `GET /channels/{id}/messages/pins`: `{items: [{pinned_at, message}], has_more}`, newest pin
/// first, pinned before `before` (ISO 8601), at most `limit` (1 to 50, default 50).
async fn list_pins(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(p): Query<PinsParams>,
) -> ApiResult {
    let world = s.world.lock().expect("world lock");
    let bot = bot_of(&headers, &world)?;
    let limit = match p.limit.as_deref() {
        None => 50,
        Some(l) => {
            let n = l
                .parse::<u64>()
                .map_err(|_| ApiError::invalid_form("limit", "NUMBER_TYPE_COERCE", "Value is not int."))?;
            crate::validate::limit(n, 50)? as usize
        }
    };
    let before_ms = match p.before.as_deref() {
        None => None,
        Some(b) => Some(
            chrono::DateTime::parse_from_rfc3339(b)
                .map_err(|_| ApiError::invalid_form("before", "DATE_TYPE_PARSE", "Could not parse date."))?
                .timestamp_millis() as u64,
        ),
    };
    let pins: Vec<_> = world
        .pins(parse_id(&id)?, bot)?
        .into_iter()
        .filter(|m| before_ms.is_none_or(|b| m.extra.pinned_unix_ms.is_some_and(|p| p < b)))
        .collect();
    let items: Vec<Value> = pins
        .iter()
        .take(limit)
        .map(|m| {
            let at = m.extra.pinned_unix_ms.unwrap_or(0);
            json!({
                "pinned_at": snowflake::iso8601(snowflake::from_unix_ms(at)),
                "message": world.message_json_for(m, bot),
            })
        })
        .collect();
    ok(json!({"items": items, "has_more": pins.len() > limit}))
}

/// `GET /channels/{id}/pins` (deprecated by Discord, still served): a plain array of messages.
async fn list_pins_legacy(State(s): State<Arc<Shared>>, headers: HeaderMap, Path(id): Path<String>) -> ApiResult {
    let world = s.world.lock().expect("world lock");
    let bot = bot_of(&headers, &world)?;
    let list: Vec<Value> = world
        .pins(parse_id(&id)?, bot)?
        .into_iter()
        .map(|m| world.message_json_for(m, bot))
        .collect();
    ok(Value::Array(list))
}
