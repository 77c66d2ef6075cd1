//! Responding to interactions: `POST /interactions/{id}/{token}/callback` (types 4, 5, and 6, 7
//! for components; the EPHEMERAL flag), followups on `POST /webhooks/{app}/{token}`, and
//! `GET`/`PATCH`/`DELETE /webhooks/{app}/{token}/messages/{@original or id}`. Responses are
//! messages by the application's bot, dispatched like any other, except ephemeral ones: those
//! only the invoking user sees, so they stay out of the channel and are never dispatched.

use std::sync::Arc;

use axum::body::{to_bytes, Bytes};
use axum::extract::{Path, Query, Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::{new_message_from, parse_body, query_bool, ApiResult};
use crate::error::ApiError;
use crate::interactions::{
    Callback, Ephemeral, Interaction, Interactions, Kind, Original, EPHEMERAL, LOADING, RESPONSE_FLAGS,
};
use crate::world::{Author, World};
use crate::{snowflake, Shared};

/// The callback route, merged into `/api/v10`.
pub fn routes() -> Router<Arc<Shared>> {
    Router::new().route("/interactions/{id}/{token}/callback", post(callback))
}

#[derive(Debug, Deserialize)]
struct CallbackParams {
    with_response: Option<String>,
}

async fn callback(
    State(s): State<Arc<Shared>>,
    Path((id, token)): Path<(String, String)>,
    Query(p): Query<CallbackParams>,
    body: Bytes,
) -> ApiResult {
    let with_response = query_bool("with_response", p.with_response.as_deref())?;
    let body = parse_body(&body)?;
    let id: u64 = id.parse().map_err(|_| crate::interactions::unknown_interaction())?;
    let data = body.get("data").cloned().unwrap_or(Value::Null);
    let mut world = s.world.lock().expect("world lock");
    let mut store = s.interactions.lock().expect("interactions lock");
    // Checked before anything is recorded, so a refused message leaves the interaction open.
    let pending = store
        .get(id)
        .filter(|i| i.token == token)
        .cloned()
        .ok_or_else(crate::interactions::unknown_interaction)?;
    let now = Interactions::now_ms();
    let kind = Callback::parse(pending.kind, body.get("type").and_then(Value::as_u64));
    let open = pending.acknowledged.is_none() && crate::interactions::in_callback_window(pending.created_ms, now);
    if let (Ok(Callback::Message | Callback::Update), true) = (&kind, open) {
        check_message_body(&data, matches!(kind, Ok(Callback::Message)))?;
    }
    let i = store.acknowledge(id, &token, body.get("type").and_then(Value::as_u64), now)?;
    let callback = i.acknowledged.expect("acknowledged above");
    let (original, message) = match callback {
        Callback::Message | Callback::DeferredMessage => {
            let loading = callback == Callback::DeferredMessage;
            let (o, m) = create_message(&s, &mut world, &mut store, &i, &data, loading)?;
            (Some(o), Some(m))
        }
        Callback::DeferredUpdate | Callback::Update => {
            let Kind::Component { message_id } = i.kind else {
                unreachable!("Callback::parse allows updates for components only")
            };
            let o = Original {
                message_id,
                ephemeral: store.ephemeral.contains_key(&message_id),
            };
            let m = if callback == Callback::Update {
                Some(edit_message(&s, &mut world, &mut store, i.channel_id, o, &data)?)
            } else {
                None
            };
            (Some(o), m)
        }
    };
    if let Some(o) = original {
        store.set_original(id, o);
    }
    if !with_response {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let mut resource = json!({"type": callback.number()});
    if let Some(m) = &message {
        resource["message"] = m.clone();
    }
    Ok(Json(json!({
        "interaction": {
            "id": i.id.to_string(),
            "type": i.kind.number(),
            "activity_instance_id": null,
            "response_message_id": original.map(|o| o.message_id.to_string()),
            "response_message_loading": callback == Callback::DeferredMessage,
            "response_message_ephemeral": original.is_some_and(|o| o.ephemeral),
        },
        "resource": resource,
    }))
    .into_response())
}

/// The checks a response message's body must pass before anything is recorded: its fields'
/// types, and (for a new message) that it says something.
fn check_message_body(data: &Value, new: bool) -> Result<(), ApiError> {
    let msg = new_message_from(data)?;
    if msg.content.chars().count() > 2000 {
        return Err(ApiError::invalid_form(
            "data.content",
            "BASE_TYPE_MAX_LENGTH",
            "Must be 2000 or fewer in length.",
        ));
    }
    let has_components = data["components"].as_array().is_some_and(|c| !c.is_empty());
    if new && msg.content.trim().is_empty() && msg.embeds.is_empty() && !has_components {
        return Err(ApiError::empty_message());
    }
    Ok(())
}

/// The fields an interaction's response messages carry beyond a plain message.
fn response_extras(world: &World, i: &Interaction, flags: u64, data: &Value) -> Map<String, Value> {
    let user = world.user_json(i.user_id);
    let owners = i.payload["authorizing_integration_owners"].clone();
    let mut metadata = json!({
        "id": i.id.to_string(),
        "type": i.kind.number(),
        "user": user,
        "authorizing_integration_owners": owners,
    });
    let name = i.payload.pointer("/data/name").cloned().unwrap_or(Value::Null);
    let (message_type, legacy_name) = match i.kind {
        Kind::Command => {
            metadata["name"] = name.clone();
            metadata["command_type"] = i.payload.pointer("/data/type").cloned().unwrap_or(json!(1));
            (20, name)
        }
        Kind::Component { message_id } => {
            metadata["interacted_message_id"] = json!(message_id.to_string());
            (0, i.payload.pointer("/data/custom_id").cloned().unwrap_or(Value::Null))
        }
    };
    let mut extras = Map::new();
    extras.insert("author".into(), world.user_json(i.application_id));
    extras.insert("type".into(), json!(message_type));
    extras.insert("application_id".into(), json!(i.application_id.to_string()));
    extras.insert("flags".into(), json!(flags));
    extras.insert("interaction_metadata".into(), metadata);
    extras.insert(
        "interaction".into(),
        json!({"id": i.id.to_string(), "type": i.kind.number(), "name": legacy_name, "user": world.user_json(i.user_id)}),
    );
    if let Some(c) = data.get("components").filter(|c| c.is_array()) {
        extras.insert("components".into(), c.clone());
    }
    extras
}

/// Creates a response (or followup) message by the application's bot: `loading` makes a
/// deferred response's empty "thinking" message. Ephemeral ones are kept aside; the others are
/// stored in the channel and dispatched.
fn create_message(
    s: &Shared,
    world: &mut World,
    store: &mut Interactions,
    i: &Interaction,
    data: &Value,
    loading: bool,
) -> Result<(Original, Value), ApiError> {
    let asked = data.get("flags").and_then(Value::as_u64).unwrap_or(0);
    let ephemeral = asked & EPHEMERAL != 0;
    let flags = (asked & RESPONSE_FLAGS) | if loading { LOADING } else { 0 };
    let author = Author::Webhook {
        id: i.application_id,
        username: world.user(i.application_id).map(|u| u.name.clone()).unwrap_or_default(),
        avatar_url: None,
    };
    let message = if loading {
        world
            .insert_message(i.channel_id, author, String::new())
            .ok_or_else(ApiError::unknown_channel)?
    } else {
        check_message_body(data, true)?;
        let mut new = new_message_from(data)?;
        (new.nonce, new.enforce_nonce, new.reference) = (None, false, None);
        if new.content.trim().is_empty() && new.embeds.is_empty() {
            // A components-only message: stored like any other, it needs something to hold.
            let m = world
                .insert_message(i.channel_id, author, String::new())
                .ok_or_else(ApiError::unknown_channel)?;
            world.message_extras.insert(m.id, Map::new());
            m
        } else {
            world.post(i.channel_id, author, new)?.message
        }
    };
    if ephemeral {
        world.remove_stored_message(i.channel_id, message.id);
    }
    world
        .message_extras
        .insert(message.id, response_extras(world, i, flags, data));
    if ephemeral {
        store.ephemeral.insert(
            message.id,
            Ephemeral {
                message: message.clone(),
                user: i.user_id,
            },
        );
    } else {
        s.gateway.dispatch_message_create(world, &message);
    }
    let original = Original {
        message_id: message.id,
        ephemeral,
    };
    Ok((original, world.message_json(&message, true)))
}

/// Edits a response message (or a component's message): content, embeds, components; the
/// "thinking" flag goes, `edited_timestamp` is set, and MESSAGE_UPDATE goes out unless it is
/// ephemeral.
fn edit_message(
    s: &Shared,
    world: &mut World,
    store: &mut Interactions,
    channel_id: u64,
    o: Original,
    data: &Value,
) -> Result<Value, ApiError> {
    let edit = new_message_from(data)?;
    if edit.content.chars().count() > 2000 {
        return Err(ApiError::invalid_form(
            "content",
            "BASE_TYPE_MAX_LENGTH",
            "Must be 2000 or fewer in length.",
        ));
    }
    let apply = |m: &mut crate::world::Message| {
        if data.get("content").is_some_and(|c| !c.is_null()) {
            m.content = edit.content.clone();
        }
        if data.get("embeds").is_some_and(|e| !e.is_null()) {
            m.embeds = edit.embeds.clone();
        }
        if data.get("allowed_mentions").is_some_and(|a| !a.is_null()) {
            m.allowed_mentions = edit.allowed_mentions.clone();
        }
        m.clone()
    };
    let message = if o.ephemeral {
        let e = store
            .ephemeral
            .get_mut(&o.message_id)
            .ok_or_else(ApiError::unknown_message)?;
        apply(&mut e.message)
    } else {
        let m = world
            .stored_message_mut(channel_id, o.message_id)
            .ok_or_else(ApiError::unknown_message)?;
        apply(m)
    };
    let extras = world.message_extras.entry(message.id).or_default();
    extras.insert(
        "edited_timestamp".into(),
        json!(snowflake::iso8601(snowflake::from_unix_ms(snowflake::now_unix_ms()))),
    );
    if let Some(flags) = extras.get("flags").and_then(Value::as_u64) {
        extras.insert("flags".into(), json!(flags & !LOADING));
    }
    if let Some(c) = data.get("components").filter(|c| c.is_array()) {
        extras.insert("components".into(), c.clone());
    }
    if !o.ephemeral {
        s.gateway.dispatch_message_update(world, &message);
    }
    Ok(world.message_json(&message, true))
}

/// In front of the webhook routes: a `/webhooks/{app}/{token}` whose token is an
/// interaction's is the interaction's webhook (followups, `@original`); other tokens go on to
/// the channel webhooks.
pub async fn interaction_webhooks(State(s): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (app, token, which) = match parts.as_slice() {
        ["webhooks", app, token] => (*app, *token, None),
        ["webhooks", app, token, "messages", which] => (*app, *token, Some(*which)),
        _ => return next.run(req).await,
    };
    let known = s
        .interactions
        .lock()
        .expect("interactions lock")
        .by_token(token)
        .is_some();
    if !known {
        return next.run(req).await;
    }
    let method = req.method().clone();
    let body = match to_bytes(req.into_body(), 8 << 20).await {
        Ok(b) => b,
        Err(_) => return ApiError::invalid_json().into_response(),
    };
    match webhook(&s, &method, app, token, which, &body) {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

fn webhook(s: &Shared, method: &Method, app: &str, token: &str, which: Option<&str>, body: &Bytes) -> ApiResult {
    let app: u64 = app.parse().map_err(|_| ApiError::unknown_webhook())?;
    let mut world = s.world.lock().expect("world lock");
    let mut store = s.interactions.lock().expect("interactions lock");
    let i = store.for_webhook(app, token, Interactions::now_ms())?.clone();
    let Some(which) = which else {
        if method != Method::POST {
            return Err(ApiError::not_found());
        }
        let data = parse_body(body)?;
        let (o, m) = create_message(s, &mut world, &mut store, &i, &data, false)?;
        store.add_followup(i.id, o);
        return Ok(Json(m).into_response());
    };
    let o = Interactions::webhook_message(&i, which)?;
    let channel_id = if o.ephemeral {
        store
            .ephemeral
            .get(&o.message_id)
            .map_or(i.channel_id, |e| e.message.channel_id)
    } else {
        i.channel_id
    };
    match *method {
        Method::GET => {
            let m = if o.ephemeral {
                store.ephemeral.get(&o.message_id).map(|e| e.message.clone())
            } else {
                world
                    .channel(channel_id)
                    .and_then(|c| c.messages.iter().find(|m| m.id == o.message_id).cloned())
            };
            let m = m.ok_or_else(ApiError::unknown_message)?;
            Ok(Json(world.message_json(&m, true)).into_response())
        }
        Method::PATCH => {
            let data = parse_body(body)?;
            Ok(Json(edit_message(s, &mut world, &mut store, channel_id, o, &data)?).into_response())
        }
        Method::DELETE => {
            if o.ephemeral {
                store
                    .ephemeral
                    .remove(&o.message_id)
                    .ok_or_else(ApiError::unknown_message)?;
                world.message_extras.remove(&o.message_id);
            } else {
                world
                    .remove_stored_message(channel_id, o.message_id)
                    .ok_or_else(ApiError::unknown_message)?;
                s.gateway.dispatch_message_delete(&world, channel_id, o.message_id);
            }
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        _ => Err(ApiError {
            status: 405,
            body: json!({"message": "405: Method Not Allowed", "code": 0}),
        }),
    }
}
