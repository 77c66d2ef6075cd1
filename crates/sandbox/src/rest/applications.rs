//! `/applications/{app}/commands` and `/applications/{app}/guilds/{guild}/commands`: register,
//! list, read, edit, delete and bulk-overwrite an application's global and guild commands.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::{bot_of, parse_id, ApiResult};
use crate::commands::Upserted;
use crate::error::ApiError;
use crate::Shared;

/// The command routes, merged into `/api/v10`.
pub fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route(
            "/applications/{app}/commands",
            get(list_global).post(create_global).put(overwrite_global),
        )
        .route(
            "/applications/{app}/commands/{command}",
            get(get_global).patch(edit_global).delete(delete_global),
        )
        .route(
            "/applications/{app}/guilds/{guild}/commands",
            get(list_guild).post(create_guild).put(overwrite_guild),
        )
        .route(
            "/applications/{app}/guilds/{guild}/commands/{command}",
            get(get_guild).patch(edit_guild).delete(delete_guild),
        )
}

/// 404, code 10004.
fn unknown_guild() -> ApiError {
    ApiError {
        status: 404,
        body: json!({"message": "Unknown Guild", "code": 10004}),
    }
}

/// The scope a request addresses, after checking the token is the application's own bot and
/// the guild exists: `(application, guild)`.
fn scope(s: &Shared, headers: &HeaderMap, app: &str, guild: Option<&str>) -> Result<(u64, Option<u64>), ApiError> {
    let world = s.world.lock().expect("world lock");
    let bot = bot_of(headers, &world)?;
    if parse_id(app)? != bot {
        return Err(ApiError::missing_access());
    }
    let guild = match guild {
        None => None,
        Some(g) => {
            let id = g.parse::<u64>().map_err(|_| unknown_guild())?;
            if !world.guilds_of(bot).iter().any(|x| x.id == id) {
                return Err(unknown_guild());
            }
            Some(id)
        }
    };
    Ok((bot, guild))
}

fn body_json(body: &Bytes) -> Result<Value, ApiError> {
    serde_json::from_slice(body).map_err(|_| ApiError::invalid_json())
}

fn list(s: &Shared, headers: &HeaderMap, app: &str, guild: Option<&str>) -> ApiResult {
    let (app, guild) = scope(s, headers, app, guild)?;
    let store = s.interactions.lock().expect("interactions lock");
    let all: Vec<Value> = store.commands.list(app, guild).iter().map(|c| c.to_json()).collect();
    Ok(Json(Value::Array(all)).into_response())
}

fn create(s: &Shared, headers: &HeaderMap, app: &str, guild: Option<&str>, body: &Bytes) -> ApiResult {
    let (app, guild) = scope(s, headers, app, guild)?;
    let body = body_json(body)?;
    let mut store = s.interactions.lock().expect("interactions lock");
    let (cmd, how) = store.commands.upsert(app, guild, &body)?;
    let status = match how {
        Upserted::Created => StatusCode::CREATED,
        Upserted::Updated => StatusCode::OK,
    };
    Ok((status, Json(cmd.to_json())).into_response())
}

fn overwrite(s: &Shared, headers: &HeaderMap, app: &str, guild: Option<&str>, body: &Bytes) -> ApiResult {
    let (app, guild) = scope(s, headers, app, guild)?;
    let body = body_json(body)?;
    let mut store = s.interactions.lock().expect("interactions lock");
    let all: Vec<Value> = store
        .commands
        .overwrite(app, guild, &body)?
        .iter()
        .map(|c| c.to_json())
        .collect();
    Ok(Json(Value::Array(all)).into_response())
}

fn command_id(raw: &str) -> Result<u64, ApiError> {
    raw.parse().map_err(|_| crate::commands::unknown_command())
}

fn get_one(s: &Shared, headers: &HeaderMap, app: &str, guild: Option<&str>, id: &str) -> ApiResult {
    let (app, guild) = scope(s, headers, app, guild)?;
    let store = s.interactions.lock().expect("interactions lock");
    Ok(Json(store.commands.get(app, guild, command_id(id)?)?.to_json()).into_response())
}

fn edit(s: &Shared, headers: &HeaderMap, app: &str, guild: Option<&str>, id: &str, body: &Bytes) -> ApiResult {
    let (app, guild) = scope(s, headers, app, guild)?;
    let body = body_json(body)?;
    let mut store = s.interactions.lock().expect("interactions lock");
    Ok(Json(store.commands.edit(app, guild, command_id(id)?, &body)?.to_json()).into_response())
}

fn delete(s: &Shared, headers: &HeaderMap, app: &str, guild: Option<&str>, id: &str) -> ApiResult {
    let (app, guild) = scope(s, headers, app, guild)?;
    let mut store = s.interactions.lock().expect("interactions lock");
    store.commands.delete(app, guild, command_id(id)?)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn list_global(State(s): State<Arc<Shared>>, h: HeaderMap, Path(app): Path<String>) -> ApiResult {
    list(&s, &h, &app, None)
}

async fn create_global(State(s): State<Arc<Shared>>, h: HeaderMap, Path(app): Path<String>, b: Bytes) -> ApiResult {
    create(&s, &h, &app, None, &b)
}

async fn overwrite_global(State(s): State<Arc<Shared>>, h: HeaderMap, Path(app): Path<String>, b: Bytes) -> ApiResult {
    overwrite(&s, &h, &app, None, &b)
}

async fn get_global(State(s): State<Arc<Shared>>, h: HeaderMap, Path((app, id)): Path<(String, String)>) -> ApiResult {
    get_one(&s, &h, &app, None, &id)
}

async fn edit_global(
    State(s): State<Arc<Shared>>,
    h: HeaderMap,
    Path((app, id)): Path<(String, String)>,
    b: Bytes,
) -> ApiResult {
    edit(&s, &h, &app, None, &id, &b)
}

async fn delete_global(
    State(s): State<Arc<Shared>>,
    h: HeaderMap,
    Path((app, id)): Path<(String, String)>,
) -> ApiResult {
    delete(&s, &h, &app, None, &id)
}

async fn list_guild(State(s): State<Arc<Shared>>, h: HeaderMap, Path((app, g)): Path<(String, String)>) -> ApiResult {
    list(&s, &h, &app, Some(&g))
}

async fn create_guild(
    State(s): State<Arc<Shared>>,
    h: HeaderMap,
    Path((app, g)): Path<(String, String)>,
    b: Bytes,
) -> ApiResult {
    create(&s, &h, &app, Some(&g), &b)
}

async fn overwrite_guild(
    State(s): State<Arc<Shared>>,
    h: HeaderMap,
    Path((app, g)): Path<(String, String)>,
    b: Bytes,
) -> ApiResult {
    overwrite(&s, &h, &app, Some(&g), &b)
}

async fn get_guild(
    State(s): State<Arc<Shared>>,
    h: HeaderMap,
    Path((app, g, id)): Path<(String, String, String)>,
) -> ApiResult {
    get_one(&s, &h, &app, Some(&g), &id)
}

async fn edit_guild(
    State(s): State<Arc<Shared>>,
    h: HeaderMap,
    Path((app, g, id)): Path<(String, String, String)>,
    b: Bytes,
) -> ApiResult {
    edit(&s, &h, &app, Some(&g), &id, &b)
}

async fn delete_guild(
    State(s): State<Arc<Shared>>,
    h: HeaderMap,
    Path((app, g, id)): Path<(String, String, String)>,
) -> ApiResult {
    delete(&s, &h, &app, Some(&g), &id)
}
