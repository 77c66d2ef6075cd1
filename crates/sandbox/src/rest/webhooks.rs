//! Webhook routes: create and list (per channel or guild), get/modify/delete by ID (bot token) or by
//! token, execute (with `wait` and `thread_id`), and get/edit/delete the webhook's own messages.
//! A wrong token is 401 with code 50027, an unknown webhook 404 with 10015, as on Discord.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Value};

use super::messages::{delete_and_dispatch, edit_and_dispatch, read_edit};
use super::{
    bot_of, id_field, new_message_from, ok, parse_body, parse_id, post_and_dispatch, uploads, ApiError, ApiResult,
};
use crate::validate;
use crate::world::{Author, ChannelKind, Webhook, WebhookEdit, World};
use crate::Shared;

/// Routes this module serves.
pub fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/channels/{id}/webhooks", post(create_webhook).get(list_webhooks))
        .route("/guilds/{id}/webhooks", get(list_guild_webhooks))
        .route(
            "/webhooks/{id}",
            get(get_webhook).patch(modify_webhook).delete(delete_webhook),
        )
        .route(
            "/webhooks/{id}/{token}",
            post(execute_webhook)
                .get(get_webhook_with_token)
                .patch(modify_webhook_with_token)
                .delete(delete_webhook_with_token),
        )
        .route(
            "/webhooks/{id}/{token}/messages/{message_id}",
            get(get_webhook_message)
                .patch(edit_webhook_message)
                .delete(delete_webhook_message),
        )
}

/// A webhook object; `url` is its execute URL on the sandbox.
fn webhook_json(world: &World, hook: &Webhook, base: &str) -> Value {
    let guild_id = world.channel(hook.channel_id).and_then(|c| world.guild_of(c));
    let mut v = json!({
        "id": hook.id.to_string(),
        "type": 1,
        "channel_id": hook.channel_id.to_string(),
        "guild_id": guild_id.map(|g| g.to_string()),
        "name": hook.name,
        "avatar": hook.avatar,
        "token": hook.token,
        "application_id": null,
        "url": format!("{base}/api/v10/webhooks/{}/{}", hook.id, hook.token),
    });
    if let Some(c) = hook.creator {
        v["user"] = world.user_json(c);
    }
    v
}

/// The webhook `id` if `token` is its token: 404 10015 for an unknown ID, 401 50027 otherwise.
fn webhook_by_token<'w>(world: &'w World, id: &str, token: &str) -> Result<&'w Webhook, ApiError> {
    let hook = world.webhook(parse_id(id)?).ok_or_else(ApiError::unknown_webhook)?;
    if hook.token != token {
        return Err(ApiError::invalid_webhook_token());
    }
    Ok(hook)
}

/// The webhook `id` if the authenticated bot can see its channel.
fn webhook_for_bot<'w>(world: &'w World, headers: &HeaderMap, id: &str) -> Result<&'w Webhook, ApiError> {
    let bot = bot_of(headers, world)?;
    let hook = world.webhook(parse_id(id)?).ok_or_else(ApiError::unknown_webhook)?;
    world.readable_channel(bot, hook.channel_id)?;
    Ok(hook)
}

async fn create_webhook(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult {
    let mut world = s.world.lock().expect("world lock");
    let bot = bot_of(&headers, &world)?;
    let body = parse_body(&body)?;
    let name = body
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::invalid_form("name", "BASE_TYPE_REQUIRED", "This field is required"))?;
    validate::webhook_name("name", name)?;
    let mut hook = world.create_webhook_by(parse_id(&id)?, name, bot)?;
    if let Some(avatar) = body.get("avatar").and_then(Value::as_str) {
        let edit = WebhookEdit {
            avatar: Some(Some(avatar.to_string())),
            ..Default::default()
        };
        hook = world.modify_webhook(hook.id, edit)?;
    }
    ok(webhook_json(&world, &hook, &uploads::http_base(&s)))
}

async fn list_webhooks(State(s): State<Arc<Shared>>, headers: HeaderMap, Path(id): Path<String>) -> ApiResult {
    let world = s.world.lock().expect("world lock");
    let bot = bot_of(&headers, &world)?;
    let channel = world.readable_channel(bot, parse_id(&id)?)?;
    if !matches!(channel.kind, ChannelKind::GuildText { .. }) {
        return Err(ApiError::cannot_dm_webhook());
    }
    let base = uploads::http_base(&s);
    let list: Vec<Value> = world
        .webhooks_in(channel.id)
        .into_iter()
        .map(|h| webhook_json(&world, h, &base))
        .collect();
    ok(Value::Array(list))
}

/// `GET /guilds/{id}/webhooks`: the webhooks of the guild's channels the bot can see.
async fn list_guild_webhooks(State(s): State<Arc<Shared>>, headers: HeaderMap, Path(id): Path<String>) -> ApiResult {
    let world = s.world.lock().expect("world lock");
    let bot = bot_of(&headers, &world)?;
    let guild = parse_id(&id)?;
    if !world.guilds().iter().any(|g| g.id == guild) {
        return Err(ApiError::unknown_guild());
    }
    let base = uploads::http_base(&s);
    let list: Vec<Value> = world
        .channels()
        .filter(|c| world.guild_of(c) == Some(guild) && world.can_view(bot, c.id))
        .flat_map(|c| world.webhooks_in(c.id))
        .map(|h| webhook_json(&world, h, &base))
        .collect();
    ok(Value::Array(list))
}

async fn get_webhook(State(s): State<Arc<Shared>>, headers: HeaderMap, Path(id): Path<String>) -> ApiResult {
    let world = s.world.lock().expect("world lock");
    let hook = webhook_for_bot(&world, &headers, &id)?;
    ok(webhook_json(&world, hook, &uploads::http_base(&s)))
}

/// Reads a modify body; `channel_id` only when authenticated as a bot.
fn webhook_edit(body: &Value, allow_channel: bool) -> Result<WebhookEdit, ApiError> {
    let name = match body.get("name") {
        None | Some(Value::Null) => None,
        Some(Value::String(n)) => {
            validate::webhook_name("name", n)?;
            Some(n.clone())
        }
        Some(_) => {
            return Err(ApiError::invalid_form(
                "name",
                "STRING_TYPE_CONVERT",
                "Could not interpret value as string.",
            ))
        }
    };
    let avatar = body.get("avatar").map(|a| a.as_str().map(str::to_string));
    let channel_id = if allow_channel {
        id_field(body, "channel_id")
    } else {
        None
    };
    Ok(WebhookEdit {
        name,
        avatar,
        channel_id,
    })
}

async fn modify_webhook(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult {
    let mut world = s.world.lock().expect("world lock");
    let hook_id = webhook_for_bot(&world, &headers, &id)?.id;
    let edit = webhook_edit(&parse_body(&body)?, true)?;
    let hook = world.modify_webhook(hook_id, edit)?;
    ok(webhook_json(&world, &hook, &uploads::http_base(&s)))
}

async fn delete_webhook(State(s): State<Arc<Shared>>, headers: HeaderMap, Path(id): Path<String>) -> ApiResult {
    let mut world = s.world.lock().expect("world lock");
    let hook_id = webhook_for_bot(&world, &headers, &id)?.id;
    world.delete_webhook(hook_id)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn get_webhook_with_token(State(s): State<Arc<Shared>>, Path((id, token)): Path<(String, String)>) -> ApiResult {
    let world = s.world.lock().expect("world lock");
    let hook = webhook_by_token(&world, &id, &token)?;
    ok(webhook_json(&world, hook, &uploads::http_base(&s)))
}

async fn modify_webhook_with_token(
    State(s): State<Arc<Shared>>,
    Path((id, token)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult {
    let mut world = s.world.lock().expect("world lock");
    let hook_id = webhook_by_token(&world, &id, &token)?.id;
    let edit = webhook_edit(&parse_body(&body)?, false)?;
    let hook = world.modify_webhook(hook_id, edit)?;
    ok(webhook_json(&world, &hook, &uploads::http_base(&s)))
}

async fn delete_webhook_with_token(
    State(s): State<Arc<Shared>>,
    Path((id, token)): Path<(String, String)>,
) -> ApiResult {
    let mut world = s.world.lock().expect("world lock");
    let hook_id = webhook_by_token(&world, &id, &token)?.id;
    world.delete_webhook(hook_id)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Debug, Deserialize)]
struct ExecuteParams {
    wait: Option<String>,
    thread_id: Option<String>,
}

/// A boolean query-string value: Discord takes `true`/`True`/`1` and `false`/`False`/`0`.
pub(super) fn query_bool(name: &str, v: Option<&str>) -> Result<bool, ApiError> {
    match v {
        None | Some("false" | "False" | "0") => Ok(false),
        Some("true" | "True" | "1") => Ok(true),
        Some(_) => Err(ApiError::invalid_form(
            name,
            "BOOLEAN_TYPE_COERCE",
            "Value is not a valid boolean.",
        )),
    }
}

/// The channel a webhook call targets: its own, or `thread_id`, a thread of its channel.
fn target_channel(world: &World, hook: &Webhook, thread_id: Option<&str>) -> Result<u64, ApiError> {
    let Some(raw) = thread_id else {
        return Ok(hook.channel_id);
    };
    let thread = raw
        .parse::<u64>()
        .map_err(|_| ApiError::invalid_form("thread_id", "NUMBER_TYPE_COERCE", "Value is not snowflake."))?;
    match world.channel(thread).map(|c| &c.kind) {
        Some(ChannelKind::Thread { parent_id, .. }) if *parent_id == hook.channel_id => Ok(thread),
        _ => Err(ApiError::unknown_channel()),
    }
}

async fn execute_webhook(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    Path((id, token)): Path<(String, String)>,
    Query(p): Query<ExecuteParams>,
    body: Bytes,
) -> ApiResult {
    let (channel_id, hook) = {
        let world = s.world.lock().expect("world lock");
        let hook = webhook_by_token(&world, &id, &token)?;
        (target_channel(&world, hook, p.thread_id.as_deref())?, hook.clone())
    };
    let wait = query_bool("wait", p.wait.as_deref())?;
    let (body, files) = uploads::message_body(&headers, body).await?;
    let username = match body.get("username").and_then(Value::as_str) {
        Some(u) => {
            validate::webhook_name("username", u)?;
            u.to_string()
        }
        None => hook.name.clone(),
    };
    let avatar_url = body.get("avatar_url").and_then(Value::as_str).map(str::to_string);
    let mut new = new_message_from(&body)?;
    new.extra.attachments = uploads::attachments(&s, channel_id, &body, files)?;
    let author = Author::Webhook {
        id: hook.id,
        username,
        avatar_url,
    };
    let msg = post_and_dispatch(&s, channel_id, author, new)?;
    if wait {
        ok(msg)
    } else {
        Ok(StatusCode::NO_CONTENT.into_response())
    }
}

#[derive(Debug, Deserialize)]
struct ThreadParam {
    thread_id: Option<String>,
}

/// The webhook as an author, the channel and the message a `/messages/{id}` call names; a
/// message the webhook did not send is Unknown Message, as on Discord.
fn webhook_message(
    s: &Shared,
    id: &str,
    token: &str,
    mid: &str,
    thread_id: Option<&str>,
) -> Result<(Author, u64, u64), ApiError> {
    let world = s.world.lock().expect("world lock");
    let hook = webhook_by_token(&world, id, token)?;
    let channel_id = target_channel(&world, hook, thread_id)?;
    let mid = parse_id(mid)?;
    let author = Author::Webhook {
        id: hook.id,
        username: hook.name.clone(),
        avatar_url: None,
    };
    let ours = world
        .message_author(channel_id, mid)
        .is_some_and(|a| crate::world::same_author(a, &author));
    if !ours {
        return Err(ApiError::unknown_message());
    }
    Ok((author, channel_id, mid))
}

async fn get_webhook_message(
    State(s): State<Arc<Shared>>,
    Path((id, token, mid)): Path<(String, String, String)>,
    Query(p): Query<ThreadParam>,
) -> ApiResult {
    let (_, channel_id, mid) = webhook_message(&s, &id, &token, &mid, p.thread_id.as_deref())?;
    let world = s.world.lock().expect("world lock");
    let m = world
        .channel(channel_id)
        .and_then(|c| c.messages.iter().find(|m| m.id == mid))
        .ok_or_else(ApiError::unknown_message)?;
    ok(world.message_json(m, true))
}

async fn edit_webhook_message(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    Path((id, token, mid)): Path<(String, String, String)>,
    Query(p): Query<ThreadParam>,
    body: Bytes,
) -> ApiResult {
    let (author, channel_id, mid) = webhook_message(&s, &id, &token, &mid, p.thread_id.as_deref())?;
    let edit = read_edit(&s, channel_id, &headers, body).await?;
    ok(edit_and_dispatch(&s, channel_id, mid, &author, edit, None)?)
}

async fn delete_webhook_message(
    State(s): State<Arc<Shared>>,
    Path((id, token, mid)): Path<(String, String, String)>,
    Query(p): Query<ThreadParam>,
) -> ApiResult {
    let (author, channel_id, mid) = webhook_message(&s, &id, &token, &mid, p.thread_id.as_deref())?;
    delete_and_dispatch(&s, channel_id, mid, &author)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
