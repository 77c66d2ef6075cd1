//! The control API's interactions: `POST /sandbox/interactions` uses a slash command (or a
//! context-menu command, or a message's button) as a human, dispatching INTERACTION_CREATE to
//! the application's bot; `GET /sandbox/interactions/{id}` shows what the bot answered;
//! `GET /sandbox/commands` lists commands for the web page; `GET /sandbox/channels/{c}/ephemeral`
//! lists the ephemeral messages there, each marked with the one user who sees it.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{bad, parse, ApiResult};
use crate::commands::CHAT_INPUT;
use crate::error::ApiError;
use crate::interactions::payload::{command_data, interaction_base, Invoker};
use crate::interactions::{Interaction, Interactions, Kind};
use crate::world::{Author, ChannelKind, World};
use crate::Shared;

/// The interaction routes, merged into `/sandbox`.
pub fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/interactions", post(invoke))
        .route("/interactions/{id}", get(show))
        .route("/commands", get(commands))
        .route("/channels/{channel}/ephemeral", get(ephemeral))
}

/// Body of `POST /sandbox/interactions`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InvokeRequest {
    /// Who uses it.
    author: String,
    /// Where (a guild channel or thread, by name or ID) ...
    channel: Option<String>,
    /// ... or in the DM with this bot.
    dm: Option<String>,
    /// The application (its bot's name); may be left out when the command name is unique.
    application: Option<String>,
    /// A command's name.
    command: Option<String>,
    /// Command type: 1 slash (default), 2 user, 3 message.
    #[serde(rename = "type")]
    kind: Option<u64>,
    /// Options as `[{"name": ..., "value": ...}]`, subcommands with their own `options`.
    #[serde(default)]
    options: Value,
    /// The user (name) or message (ID) a context-menu command targets.
    target: Option<String>,
    /// Or: click the component with this `custom_id` ...
    custom_id: Option<String>,
    /// ... on this message (ID).
    message: Option<String>,
    /// Selected values, for a select menu.
    values: Option<Vec<String>>,
}

fn channel_of(world: &mut World, user: u64, req: &InvokeRequest) -> Result<(u64, Option<u64>), ApiError> {
    match (&req.channel, &req.dm) {
        (Some(c), None) => {
            let channel = world
                .channel_by_name(c)
                .ok_or_else(|| bad("channel", &format!("no channel named `{c}`")))?;
            if !world.can_view(user, channel.id) {
                return Err(bad("channel", "the author cannot see this channel"));
            }
            Ok((channel.id, None))
        }
        (None, Some(b)) => {
            let bot = world
                .user_by_name(b)
                .filter(|u| u.bot)
                .ok_or_else(|| bad("dm", &format!("no bot named `{b}`")))?
                .id;
            Ok((world.open_dm(user, bot)?, Some(bot)))
        }
        (None, None) if req.message.is_some() => Ok((0, None)),
        _ => Err(bad("channel", "give exactly one of `channel` and `dm`")),
    }
}

async fn invoke(State(s): State<Arc<Shared>>, body: Bytes) -> ApiResult {
    let req: InvokeRequest = parse(&body)?;
    let mut world = s.world.lock().expect("world lock");
    let user = world
        .user_by_name(&req.author)
        .ok_or_else(|| bad("author", &format!("no user named `{}`", req.author)))?
        .id;
    let (channel_id, dm_bot) = channel_of(&mut world, user, &req)?;
    let mut store = s.interactions.lock().expect("interactions lock");
    let id = store.next_id();
    let token = Interactions::new_token(id);
    let (app, kind, payload) = match (&req.command, &req.custom_id) {
        (Some(name), None) => {
            let (app, payload) = command_payload(&world, &store, &req, name, user, channel_id, dm_bot, id, &token)?;
            (app, Kind::Command, payload)
        }
        (None, Some(custom_id)) => component_payload(&world, &store, &req, custom_id, user, id, &token)?,
        _ => return Err(bad("command", "give exactly one of `command` and `custom_id`")),
    };
    let channel_id = payload["channel_id"]
        .as_str()
        .and_then(|c| c.parse().ok())
        .unwrap_or(channel_id);
    store.insert(Interaction {
        id,
        token,
        application_id: app,
        kind,
        channel_id,
        guild_id: payload["guild_id"].as_str().and_then(|g| g.parse().ok()),
        user_id: user,
        created_ms: Interactions::now_ms(),
        acknowledged: None,
        original: None,
        followups: Vec::new(),
        payload: payload.clone(),
    });
    s.gateway.dispatch_interaction_create(app, &payload);
    Ok(Json(payload).into_response())
}

/// The INTERACTION_CREATE of a command use; returns the application too.
#[allow(clippy::too_many_arguments)] // One call site; the parts of one request.
fn command_payload(
    world: &World,
    store: &Interactions,
    req: &InvokeRequest,
    name: &str,
    user: u64,
    channel_id: u64,
    dm_bot: Option<u64>,
    id: u64,
    token: &str,
) -> Result<(u64, Value), ApiError> {
    let channel = world.channel(channel_id).ok_or_else(ApiError::unknown_channel)?;
    let guild_id = world.guild_of(channel);
    let kind = req.kind.unwrap_or(CHAT_INPUT);
    let apps: Vec<u64> = match (&req.application, dm_bot) {
        (Some(a), _) => vec![
            world
                .user_by_name(a)
                .filter(|u| u.bot)
                .ok_or_else(|| bad("application", &format!("no bot named `{a}`")))?
                .id,
        ],
        (None, Some(bot)) => vec![bot],
        (None, None) => world.users().filter(|u| u.bot).map(|u| u.id).collect(),
    };
    let found: Vec<_> = apps
        .iter()
        .filter_map(|app| store.commands.find(*app, guild_id, kind, name))
        .collect();
    let cmd = match found.as_slice() {
        [one] => *one,
        [] => {
            return Err(bad(
                "command",
                &format!("no command `{name}` is registered for use here"),
            ))
        }
        _ => {
            return Err(bad(
                "application",
                &format!("several applications have `{name}`; name one"),
            ))
        }
    };
    let context = if guild_id.is_some() { 0 } else { 1 };
    let allowed_here = match cmd.fields.get("contexts").and_then(Value::as_array) {
        Some(contexts) => contexts.iter().any(|c| c.as_u64() == Some(context)),
        None => guild_id.is_some() || cmd.fields.get("dm_permission") != Some(&json!(false)),
    };
    if !allowed_here {
        return Err(bad("command", &format!("`{name}` cannot be used in this context")));
    }
    if matches!(channel.kind, ChannelKind::Dm { recipients } if !recipients.contains(&cmd.application_id)) {
        return Err(bad("dm", "commands in a DM are the DM's bot's"));
    }
    let who = Invoker {
        user,
        channel_id,
        application_id: cmd.application_id,
    };
    let data = command_data(world, cmd, who, &req.options, req.target.as_deref()).map_err(|e| bad("options", &e))?;
    let mut payload = interaction_base(world, id, token, 2, who);
    payload["data"] = data;
    Ok((cmd.application_id, payload))
}

/// Finds the component with `custom_id` in a message's `components` (rows nest them).
fn find_component<'a>(components: &'a Value, custom_id: &str) -> Option<&'a Value> {
    components.as_array()?.iter().find_map(|c| {
        if c["custom_id"] == custom_id {
            Some(c)
        } else {
            find_component(&c["components"], custom_id)
        }
    })
}

/// The INTERACTION_CREATE of a click on a message's component; returns the application and
/// the kind.
fn component_payload(
    world: &World,
    store: &Interactions,
    req: &InvokeRequest,
    custom_id: &str,
    user: u64,
    id: u64,
    token: &str,
) -> Result<(u64, Kind, Value), ApiError> {
    let message_id: u64 = req
        .message
        .as_deref()
        .and_then(|m| m.parse().ok())
        .ok_or_else(|| bad("message", "a component click needs `message`, the message's ID"))?;
    let stored = world
        .channels()
        .find_map(|c| c.messages.iter().find(|m| m.id == message_id))
        .or_else(|| {
            store
                .ephemeral
                .get(&message_id)
                .filter(|e| e.user == user)
                .map(|e| &e.message)
        })
        .ok_or_else(|| bad("message", "no such message"))?;
    if !world.can_view(user, stored.channel_id) {
        return Err(bad("message", "the author cannot see this message"));
    }
    let message = world.message_json(stored, true);
    let component = find_component(&message["components"], custom_id)
        .ok_or_else(|| bad("custom_id", &format!("the message has no component `{custom_id}`")))?;
    let app = message["application_id"]
        .as_str()
        .and_then(|a| a.parse().ok())
        .or(match stored.author {
            Author::User(u) => Some(u),
            Author::Webhook { .. } => None,
        })
        .filter(|a| world.user(*a).is_some_and(|u| u.bot))
        .ok_or_else(|| bad("message", "the message is not an application's"))?;
    let who = Invoker {
        user,
        channel_id: stored.channel_id,
        application_id: app,
    };
    let mut payload = interaction_base(world, id, token, 3, who);
    payload["data"] = json!({"custom_id": custom_id, "component_type": component["type"]});
    if let Some(values) = &req.values {
        payload["data"]["values"] = json!(values);
    }
    payload["message"] = message;
    Ok((app, Kind::Component { message_id }, payload))
}

async fn show(State(s): State<Arc<Shared>>, Path(id): Path<String>) -> ApiResult {
    let world = s.world.lock().expect("world lock");
    let store = s.interactions.lock().expect("interactions lock");
    let i = id
        .parse()
        .ok()
        .and_then(|id| store.get(id))
        .ok_or_else(crate::interactions::unknown_interaction)?;
    let render = |o: &crate::interactions::Original| {
        let m = if o.ephemeral {
            store.ephemeral.get(&o.message_id).map(|e| e.message.clone())
        } else {
            world
                .channel(i.channel_id)
                .and_then(|c| c.messages.iter().find(|m| m.id == o.message_id).cloned())
        };
        m.map_or(Value::Null, |m| {
            let mut v = world.message_json(&m, true);
            if o.ephemeral {
                v["ephemeral_to"] = json!(i.user_id.to_string());
            }
            v
        })
    };
    Ok(Json(json!({
        "id": i.id.to_string(),
        "type": i.kind.number(),
        "application_id": i.application_id.to_string(),
        "user_id": i.user_id.to_string(),
        "channel_id": i.channel_id.to_string(),
        "callback_type": i.acknowledged.map(|c| c.number()),
        "original": i.original.as_ref().map_or(Value::Null, render),
        "followups": i.followups.iter().map(render).collect::<Vec<_>>(),
    }))
    .into_response())
}

#[derive(Debug, Deserialize)]
struct CommandsQuery {
    channel: Option<String>,
}

/// `GET /sandbox/commands?channel=C`: the commands a human can use in C (guild commands of its
/// guild, then global ones), each with `application_name`; without `channel`, every command.
async fn commands(State(s): State<Arc<Shared>>, Query(q): Query<CommandsQuery>) -> Response {
    let world = s.world.lock().expect("world lock");
    let store = s.interactions.lock().expect("interactions lock");
    let channel = q.channel.as_deref().and_then(|c| world.channel_by_name(c));
    let guild = channel.and_then(|c| world.guild_of(c));
    let dm_bots: Option<Vec<u64>> = channel.and_then(|c| match c.kind {
        ChannelKind::Dm { recipients } => Some(recipients.to_vec()),
        _ => None,
    });
    let mut out = Vec::new();
    for app in world.users().filter(|u| u.bot) {
        if dm_bots.as_ref().is_some_and(|r| !r.contains(&app.id)) {
            continue;
        }
        let scopes: Vec<Option<u64>> = match (q.channel.is_some(), guild) {
            (true, Some(g)) => vec![Some(g), None],
            (true, None) => vec![None],
            (false, _) => std::iter::once(None)
                .chain(world.guilds().iter().map(|g| Some(g.id)))
                .collect(),
        };
        for scope in scopes {
            for c in store.commands.list(app.id, scope) {
                let mut v = c.to_json();
                v["application_name"] = json!(app.name);
                out.push(v);
            }
        }
    }
    Json(Value::Array(out)).into_response()
}

/// `GET /sandbox/channels/{c}/ephemeral`: ephemeral messages there, oldest first, each with
/// `ephemeral_to` (the only user who sees it).
async fn ephemeral(State(s): State<Arc<Shared>>, Path(channel): Path<String>) -> ApiResult {
    let world = s.world.lock().expect("world lock");
    let store = s.interactions.lock().expect("interactions lock");
    let c = world.channel_by_name(&channel).ok_or_else(ApiError::unknown_channel)?;
    let all: Vec<Value> = store
        .ephemeral_in(c.id)
        .map(|e| {
            let mut v = world.message_json(&e.message, true);
            v["ephemeral_to"] = json!(e.user.to_string());
            v
        })
        .collect();
    Ok(Json(Value::Array(all)).into_response())
}
