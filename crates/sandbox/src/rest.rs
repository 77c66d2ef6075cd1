//! The sandbox's REST API under `/api/v10`: the subset of Discord's HTTP API troupe and serenity
//! use, with Discord's validation errors, auth and `X-RateLimit-*` headers.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::ApiError;
use super::world::{Author, HistoryQuery, NewMessage, World};
use super::Shared;

mod guilds;
mod messages;
mod reactions;
mod threads;
pub(crate) mod uploads;
mod webhooks;
use webhooks::query_bool;

pub use uploads::cdn_routes;

type ApiResult = Result<Response, ApiError>;

pub mod applications;
pub mod interactions;

/// Routes under `/api/v10`.
pub fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/gateway", get(gateway))
        .route("/gateway/bot", get(gateway_bot))
        .route("/users/@me", get(current_user))
        .route("/users/@me/channels", post(open_dm))
        .route("/users/{id}", get(get_user))
        .route("/channels/{id}", get(get_channel))
        .route("/channels/{id}/messages", get(list_messages).post(create_message))
        .route("/channels/{id}/typing", post(typing))
        .merge(guilds::routes())
        .merge(messages::routes())
        .merge(reactions::routes())
        .merge(threads::routes())
        .merge(webhooks::routes())
        .merge(applications::routes())
        .merge(interactions::routes())
        .layer(axum::extract::DefaultBodyLimit::max(uploads::BODY_LIMIT))
        .fallback(|| async { ApiError::not_found() })
}

/// The bot a request authenticates as (`Authorization: Bot <token>`).
fn bot_of(headers: &HeaderMap, world: &World) -> Result<u64, ApiError> {
    let value = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(ApiError::unauthorized)?;
    let token = value.strip_prefix("Bot ").unwrap_or(value);
    world
        .user_by_token(token)
        .filter(|u| u.bot)
        .map(|u| u.id)
        .ok_or_else(ApiError::unauthorized)
}

fn parse_body(body: &Bytes) -> Result<Value, ApiError> {
    if body.is_empty() {
        return Ok(json!({}));
    }
    let v: Value = serde_json::from_slice(body).map_err(|_| ApiError::invalid_json())?;
    if v.is_object() {
        Ok(v)
    } else {
        Err(ApiError::invalid_json())
    }
}

fn parse_id(raw: &str) -> Result<u64, ApiError> {
    raw.parse().map_err(|_| ApiError::not_found())
}

fn ok(v: Value) -> ApiResult {
    Ok(Json(v).into_response())
}

async fn gateway(State(s): State<Arc<Shared>>) -> ApiResult {
    ok(json!({"url": format!("{}/gateway", s.ws_base)}))
}

async fn gateway_bot(State(s): State<Arc<Shared>>, headers: HeaderMap) -> ApiResult {
    let bot = bot_of(&headers, &s.world.lock().expect("world lock"))?;
    let used = s.gateway.identify_count(bot);
    let sharding = s.gateway.sharding(bot);
    ok(json!({
        "url": format!("{}/gateway", s.ws_base),
        "shards": sharding.recommended,
        "session_start_limit": {
            "total": super::gateway::IDENTIFY_BUDGET,
            "remaining": super::gateway::IDENTIFY_BUDGET.saturating_sub(used),
            "reset_after": 86_400_000u64,
            "max_concurrency": sharding.max_concurrency,
        },
    }))
}

async fn current_user(State(s): State<Arc<Shared>>, headers: HeaderMap) -> ApiResult {
    let world = s.world.lock().expect("world lock");
    let bot = bot_of(&headers, &world)?;
    ok(world.current_user_json(bot))
}

async fn get_user(State(s): State<Arc<Shared>>, headers: HeaderMap, Path(id): Path<String>) -> ApiResult {
    let world = s.world.lock().expect("world lock");
    bot_of(&headers, &world)?;
    let id = parse_id(&id)?;
    world.user(id).ok_or_else(ApiError::unknown_user)?;
    ok(world.user_json(id))
}

async fn open_dm(State(s): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> ApiResult {
    let mut world = s.world.lock().expect("world lock");
    let bot = bot_of(&headers, &world)?;
    let body = parse_body(&body)?;
    let recipient = id_field(&body, "recipient_id")
        .ok_or_else(|| ApiError::invalid_form("recipient_id", "BASE_TYPE_REQUIRED", "This field is required"))?;
    let id = world.open_dm(bot, recipient)?;
    let channel = world.channel(id).ok_or_else(ApiError::unknown_channel)?;
    ok(world.channel_json_for(channel, bot))
}

async fn get_channel(State(s): State<Arc<Shared>>, headers: HeaderMap, Path(id): Path<String>) -> ApiResult {
    let world = s.world.lock().expect("world lock");
    let bot = bot_of(&headers, &world)?;
    let channel = world.readable_channel(bot, parse_id(&id)?)?;
    ok(world.channel_json_for(channel, bot))
}

#[derive(Debug, Deserialize)]
struct HistoryParams {
    before: Option<String>,
    after: Option<String>,
    around: Option<String>,
    limit: Option<String>,
}

async fn list_messages(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(p): Query<HistoryParams>,
) -> ApiResult {
    let world = s.world.lock().expect("world lock");
    let bot = bot_of(&headers, &world)?;
    let channel = world.readable_channel(bot, parse_id(&id)?)?;
    let num = |name: &str, v: &Option<String>| -> Result<Option<u64>, ApiError> {
        v.as_deref()
            .map(|x| {
                x.parse::<u64>()
                    .map_err(|_| ApiError::invalid_form(name, "NUMBER_TYPE_COERCE", "Value is not int."))
            })
            .transpose()
    };
    let q = HistoryQuery {
        before: num("before", &p.before)?,
        after: num("after", &p.after)?,
        around: num("around", &p.around)?,
        limit: num("limit", &p.limit)?,
    };
    let msgs: Vec<Value> = world
        .history(channel, q)?
        .into_iter()
        .map(|m| world.message_json_for(m, bot))
        .collect();
    ok(Value::Array(msgs))
}

/// Reads the fields of a create-message body that the sandbox models.
pub fn new_message_from(body: &Value) -> Result<NewMessage, ApiError> {
    let content = match body.get("content") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(_) => {
            return Err(ApiError::invalid_form(
                "content",
                "STRING_TYPE_CONVERT",
                "Could not interpret value as string.",
            ))
        }
    };
    let embeds = match body.get("embeds") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) if a.iter().all(Value::is_object) => a.clone(),
        Some(_) => {
            return Err(ApiError::invalid_form(
                "embeds",
                "LIST_TYPE_CONVERT",
                "Only iterables may be used in a ListType",
            ))
        }
    };
    let reference = match body.get("message_reference") {
        None | Some(Value::Null) => None,
        Some(r) => Some(id_field(r, "message_id").ok_or_else(|| {
            ApiError::invalid_form(
                "message_reference.message_id",
                "BASE_TYPE_REQUIRED",
                "This field is required",
            )
        })?),
    };
    let nonce = super::validate::nonce(body.get("nonce").unwrap_or(&Value::Null))?;
    let allowed_mentions = body.get("allowed_mentions").filter(|v| !v.is_null()).cloned();
    if let Some(am) = &allowed_mentions {
        super::validate::allowed_mentions(am)?;
    }
    super::validate::embeds(&embeds)?;
    let extra = super::world::MessageExtras {
        flags: body.get("flags").and_then(Value::as_u64).unwrap_or(0),
        components: components_field(body)?.unwrap_or_default(),
        ..Default::default()
    };
    Ok(NewMessage {
        content,
        embeds,
        reference,
        reference_optional: body.pointer("/message_reference/fail_if_not_exists") == Some(&Value::Bool(false)),
        nonce,
        enforce_nonce: body.get("enforce_nonce").and_then(Value::as_bool).unwrap_or(false),
        allowed_mentions,
        extra,
    })
}

/// `components`: a list of component objects, stored as sent.
fn components_field(body: &Value) -> Result<Option<Vec<Value>>, ApiError> {
    match body.get("components") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(a)) if a.iter().all(Value::is_object) => Ok(Some(a.clone())),
        Some(_) => Err(ApiError::invalid_form(
            "components",
            "LIST_TYPE_CONVERT",
            "Only iterables may be used in a ListType",
        )),
    }
}

fn id_field(v: &Value, key: &str) -> Option<u64> {
    match v.get(key)? {
        Value::String(s) => s.parse().ok(),
        Value::Number(n) => n.as_u64(),
        _ => None,
    }
}

/// Posts and dispatches, with the world locked once.
pub fn post_and_dispatch(s: &Shared, channel_id: u64, author: Author, new: NewMessage) -> Result<Value, ApiError> {
    let mut world = s.world.lock().expect("world lock");
    let posted = world.post(channel_id, author, new)?;
    if posted.created {
        let m = &posted.message;
        let replier = match &m.author {
            Author::User(id) => world.user(*id).filter(|u| u.bot).map(|u| u.id),
            Author::Webhook { id, .. } => Some(*id),
        };
        if let (Some(answered), Some(replier)) = (m.reference, replier) {
            s.timings.replied(answered, m.id, replier);
        }
        s.timings.dispatched(m.id);
        s.gateway.dispatch_message_create(&world, m);
    }
    Ok(world.message_json(&posted.message, true))
}

async fn create_message(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult {
    let bot = bot_of(&headers, &s.world.lock().expect("world lock"))?;
    let channel_id = parse_id(&id)?;
    let (body, files) = uploads::message_body(&headers, body).await?;
    let mut new = new_message_from(&body)?;
    new.extra.attachments = uploads::attachments(&s, channel_id, &body, files)?;
    ok(post_and_dispatch(&s, channel_id, Author::User(bot), new)?)
}

async fn typing(State(s): State<Arc<Shared>>, headers: HeaderMap, Path(id): Path<String>) -> ApiResult {
    let world = s.world.lock().expect("world lock");
    let bot = bot_of(&headers, &world)?;
    world.readable_channel(bot, parse_id(&id)?)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
