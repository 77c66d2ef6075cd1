//! The sandbox's control API under `/sandbox`: inspect the world, post as a human, read a
//! channel, register bots, inject faults, read the REST request log and reply timings. Used by
//! tests, by the web page, by benchmarks and by anyone testing a bot.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::ApiError;
use super::faults::FaultRequest;
use super::rest::post_and_dispatch;
use super::spec::sandbox_token;
use super::world::{Author, NewMessage, World};
use super::Shared;

mod attachments;
mod channels;

type ApiResult = Result<Response, ApiError>;

mod interactions;
mod shards;

/// Routes under `/sandbox`.
pub fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/state", get(state))
        .route("/messages", post(post_message))
        .route("/burst", post(post_burst))
        .route("/channels/{channel}/messages", get(channel_messages))
        .route("/faults", post(faults))
        .route("/bots", post(add_bot))
        .route("/threads", post(create_thread))
        .route("/requests", get(requests))
        .route("/latencies", get(latencies))
        .merge(interactions::routes())
        .merge(shards::routes())
        .merge(channels::routes())
        .route("/ca.pem", get(super::tunnel::ca_pem))
        .route("/ratelimits", post(super::throttle::set_enforced))
        .fallback(|| async { ApiError::not_found() })
}

fn bad(field: &str, message: &str) -> ApiError {
    ApiError::invalid_form(field, "SANDBOX_INVALID", message)
}

fn parse<T: for<'de> Deserialize<'de>>(body: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        if e.is_syntax() || e.is_eof() {
            ApiError::invalid_json()
        } else {
            ApiError {
                status: 400,
                body: json!({"message": format!("Invalid Form Body: {e}"), "code": 50035}),
            }
        }
    })
}

async fn state(State(s): State<Arc<Shared>>) -> Response {
    let world = s.world.lock().expect("world lock");
    let mut v = world.state_json();
    let connected: Vec<String> = s.gateway.connected_bots().iter().map(|id| id.to_string()).collect();
    v["connected_bots"] = json!(connected);
    v["sessions"] = crate::sessions::json(&s.gateway.live_sessions());
    Json(v).into_response()
}

/// Body of `POST /sandbox/messages`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PostRequest {
    channel: Option<String>,
    dm: Option<String>,
    author: String,
    #[serde(default)]
    content: String,
    reply_to: Option<String>,
    #[serde(default)]
    embeds: Vec<Value>,
    webhook: Option<WebhookAs>,
    /// Files attached, as `{filename, content_type?, text | base64}`.
    #[serde(default)]
    attachments: Vec<attachments::ControlFile>,
}

/// Post through a webhook of the channel instead of as a user (for forged-footer tests).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WebhookAs {
    username: String,
    avatar_url: Option<String>,
}

/// Replaces `<@Name>` (a user name where Discord has an ID) with `<@ID>`, so testers can write
/// mentions without looking IDs up. Unknown names are left as they are.
fn resolve_mentions(world: &World, content: &str) -> String {
    let mut out = String::with_capacity(content.len());
    let mut rest = content;
    while let Some(start) = rest.find("<@") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find('>') {
            Some(end) if !after[..end].starts_with(['&', '!']) && after[..end].parse::<u64>().is_err() => {
                match world.user_by_name(&after[..end]) {
                    Some(u) => out.push_str(&format!("<@{}>", u.id)),
                    None => out.push_str(&rest[start..start + 2 + end + 1]),
                }
                rest = &after[end + 1..];
            }
            _ => {
                out.push_str("<@");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

async fn post_message(State(s): State<Arc<Shared>>, body: Bytes) -> ApiResult {
    let req: PostRequest = parse(&body)?;
    Ok(Json(post_one(&s, req)?).into_response())
}

/// `POST /sandbox/burst`: several messages posted and dispatched back to back, with no await in
/// between, so their MESSAGE_CREATEs leave together, as a busy channel's do on Discord (tests of
/// event ordering need that; separate requests arrive too far apart).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BurstRequest {
    messages: Vec<PostRequest>,
}

async fn post_burst(State(s): State<Arc<Shared>>, body: Bytes) -> ApiResult {
    let req: BurstRequest = parse(&body)?;
    let mut posted = Vec::with_capacity(req.messages.len());
    for (i, m) in req.messages.into_iter().enumerate() {
        // Earlier messages stay posted when a later one is refused: the error says which.
        let value = post_one(&s, m).map_err(|mut e| {
            if let Some(msg) = e.body.get("message").and_then(Value::as_str) {
                e.body["message"] = Value::from(format!("messages[{i}]: {msg}"));
            }
            e
        })?;
        posted.push(value);
    }
    Ok(Json(Value::Array(posted)).into_response())
}

fn post_one(s: &Shared, req: PostRequest) -> Result<Value, ApiError> {
    let (channel_id, author, content) = {
        let mut world = s.world.lock().expect("world lock");
        let user = world
            .user_by_name(&req.author)
            .ok_or_else(|| bad("author", &format!("no user named `{}`", req.author)))?;
        let user_id = user.id;
        let channel_id = match (&req.channel, &req.dm) {
            (Some(c), None) => {
                world
                    .channel_by_name(c)
                    .ok_or_else(|| bad("channel", &format!("no channel named `{c}`")))?
                    .id
            }
            (None, Some(target)) => {
                let other = world
                    .user_by_name(target)
                    .ok_or_else(|| bad("dm", &format!("no user named `{target}`")))?
                    .id;
                world.open_dm(user_id, other)?
            }
            _ => return Err(bad("channel", "give exactly one of `channel` and `dm`")),
        };
        let author = match req.webhook {
            None => Author::User(user_id),
            Some(w) => {
                let hook = world.create_webhook(channel_id, &w.username)?;
                Author::Webhook {
                    id: hook.id,
                    username: w.username,
                    avatar_url: w.avatar_url,
                }
            }
        };
        (channel_id, author, resolve_mentions(&world, &req.content))
    };
    let reference = match req.reply_to {
        Some(r) => Some(r.parse::<u64>().map_err(|_| bad("reply_to", "not a message ID"))?),
        None => None,
    };
    let files = attachments::uploads(req.attachments)?;
    let mut new = NewMessage {
        content,
        embeds: req.embeds,
        reference,
        ..Default::default()
    };
    new.extra.attachments = super::rest::uploads::attachments(s, channel_id, &Value::Null, files)?;
    post_and_dispatch(s, channel_id, author, new)
}

async fn channel_messages(State(s): State<Arc<Shared>>, Path(channel): Path<String>) -> ApiResult {
    let world = s.world.lock().expect("world lock");
    let c = world.channel_by_name(&channel).ok_or_else(ApiError::unknown_channel)?;
    let msgs: Vec<Value> = c
        .messages
        .iter()
        .map(|m| {
            let mut v = world.message_json(m, true);
            // Not part of Discord's object: what the sender asked for, for assertions.
            v["allowed_mentions"] = m.allowed_mentions.clone().unwrap_or(Value::Null);
            v
        })
        .collect();
    Ok(Json(Value::Array(msgs)).into_response())
}

async fn faults(State(s): State<Arc<Shared>>, body: Bytes) -> ApiResult {
    let req: FaultRequest = parse(&body)?;
    let mut affected = 0;
    if let Some(g) = req.gateway {
        let bot = s
            .world
            .lock()
            .expect("world lock")
            .user_by_name(&g.bot)
            .filter(|u| u.bot)
            .map(|u| u.id);
        let bot = bot.ok_or_else(|| bad("gateway.bot", &format!("no bot named `{}`", g.bot)))?;
        affected = s
            .gateway
            .inject(bot, g.action, g.refuse_ms.map(Duration::from_millis), g.shard);
    }
    {
        let mut rest = s.faults.lock().expect("faults lock");
        if req.clear {
            rest.clear();
        }
        if let Some(r) = req.rest {
            rest.add(r);
        }
        if let Some(ms) = req.delay_ms {
            rest.delay = Duration::from_millis(ms);
        }
    }
    Ok(Json(json!({"ok": true, "gateway_sessions_affected": affected})).into_response())
}

/// Body of `POST /sandbox/threads`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ThreadRequest {
    channel: String,
    name: String,
    author: String,
}

async fn create_thread(State(s): State<Arc<Shared>>, body: Bytes) -> ApiResult {
    let req: ThreadRequest = parse(&body)?;
    let mut world = s.world.lock().expect("world lock");
    let owner = world
        .user_by_name(&req.author)
        .ok_or_else(|| bad("author", &format!("no user named `{}`", req.author)))?
        .id;
    let parent = world
        .channel_by_name(&req.channel)
        .ok_or_else(|| bad("channel", &format!("no channel named `{}`", req.channel)))?
        .id;
    let id = world.create_thread(parent, &req.name, owner)?;
    s.gateway.dispatch_thread_create(&world, id);
    let channel = world.channel(id).ok_or_else(ApiError::unknown_channel)?;
    Ok(Json(world.channel_json(channel)).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BotRequest {
    name: String,
    token: Option<String>,
}

async fn add_bot(State(s): State<Arc<Shared>>, body: Bytes) -> ApiResult {
    let req: BotRequest = parse(&body)?;
    let token = req.token.unwrap_or_else(|| sandbox_token(&req.name));
    let mut world = s.world.lock().expect("world lock");
    let id = world
        .add_user(&req.name, Some(token.clone()))
        .map_err(|e| bad("name", &e))?;
    Ok(Json(json!({"id": id.to_string(), "name": req.name, "token": token})).into_response())
}

#[derive(Debug, Deserialize)]
struct RequestsQuery {
    since: Option<usize>,
}

async fn requests(State(s): State<Arc<Shared>>, Query(q): Query<RequestsQuery>) -> Response {
    let log = s.requests.lock().expect("request log lock");
    let since = q.since.unwrap_or(0).min(log.len());
    Json(json!({"total": log.len(), "requests": &log[since..]})).into_response()
}

/// `GET /sandbox/latencies?since=N`: bots' replies timed from the dispatch of the message they
/// answer to the arrival of the reply, on the sandbox's clock (µs since it started).
async fn latencies(State(s): State<Arc<Shared>>, Query(q): Query<RequestsQuery>) -> Response {
    let (total, replies) = s.timings.replies_since(q.since.unwrap_or(0));
    let replies: Vec<Value> = replies
        .iter()
        .map(|r| {
            let mut v = serde_json::to_value(r).unwrap_or_default();
            v["latency_us"] = json!(r.latency().as_micros() as u64);
            v
        })
        .collect();
    Json(json!({"total": total, "now_us": s.timings.now_us(), "latencies": replies})).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::WorldSpec;

    #[test]
    fn names_in_mentions_become_ids() {
        let w = World::new(&WorldSpec::default(), &[("Ada".into(), "t".into())]).unwrap();
        let ada = w.user_by_name("Ada").unwrap().id;
        assert_eq!(
            resolve_mentions(&w, "<@Ada> hi <@nobody> <@&1> <@12> <@"),
            format!("<@{ada}> hi <@nobody> <@&1> <@12> <@")
        );
    }

    #[tokio::test]
    async fn latencies_time_bot_replies_but_not_human_ones() {
        let bots = [("Ada".to_string(), "ada-token".to_string())];
        let sandbox = crate::Sandbox::start(&WorldSpec::default(), &bots, "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let http = reqwest::Client::new();
        let post = |body: Value| {
            let req = http.post(format!("{}/sandbox/messages", sandbox.url())).json(&body);
            async move { req.send().await.unwrap().json::<Value>().await.unwrap() }
        };
        let asked = post(json!({"channel": "general", "author": "alice", "content": "hi"})).await;
        let asked_id = asked["id"].as_str().unwrap().to_string();
        post(json!({"channel": "general", "author": "bob", "content": "me too", "reply_to": asked_id})).await;
        let reply: Value = http
            .post(format!(
                "{}/api/v10/channels/{}/messages",
                sandbox.url(),
                asked["channel_id"].as_str().unwrap()
            ))
            .header("authorization", "Bot ada-token")
            .json(&json!({"content": "hello", "message_reference": {"message_id": asked_id}}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let latencies = |query: &'static str| {
            let req = http.get(format!("{}/sandbox/latencies{query}", sandbox.url()));
            async move { req.send().await.unwrap().json::<Value>().await.unwrap() }
        };
        let v = latencies("").await;
        assert_eq!(v["total"], 1, "{v}");
        let timed = &v["latencies"][0];
        assert_eq!(timed["message_id"], asked_id.as_str());
        assert_eq!(timed["reply_id"], reply["id"]);
        assert_eq!(timed["author_id"], reply["author"]["id"]);
        let (from, to) = (
            timed["dispatched_us"].as_u64().unwrap(),
            timed["replied_us"].as_u64().unwrap(),
        );
        assert_eq!(timed["latency_us"].as_u64(), Some(to - from));
        assert!(v["now_us"].as_u64().unwrap() >= to);
        let since = latencies("?since=1").await;
        assert_eq!(since["latencies"], json!([]));
        sandbox.stop().await;
    }
}
