//! Message bodies as JSON or as `multipart/form-data` (`payload_json` plus `files[n]`), Discord's
//! 10 MiB upload limit (413, code 40005), uploads turned into attachments, and
//! `GET /attachments/{channel}/{id}/{filename}`, the sandbox's CDN.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::Value;

use super::{parse_body, parse_id, ApiError};
use crate::world::{Attachment, Upload};
use crate::Shared;

/// Discord's default upload limit for one message's files.
pub const UPLOAD_LIMIT: usize = 10 << 20;
/// Request bodies accepted at all: over the upload limit by enough for the form's own bytes,
/// so an oversized file meets Discord's 413 rather than a dropped connection.
pub const BODY_LIMIT: usize = UPLOAD_LIMIT + (1 << 20);

fn bad_form(message: &str) -> ApiError {
    ApiError::invalid_form("files", "BASE_TYPE_BAD_FORM", message)
}

/// The JSON payload of a message body and its files (`files[n]` keeps index `n`).
pub async fn message_body(headers: &HeaderMap, body: Bytes) -> Result<(Value, Vec<(usize, Upload)>), ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !content_type.starts_with("multipart/form-data") {
        if body.len() > UPLOAD_LIMIT {
            return Err(ApiError::entity_too_large());
        }
        return Ok((parse_body(&body)?, Vec::new()));
    }
    let boundary = multer::parse_boundary(content_type).map_err(|_| bad_form("Invalid multipart boundary"))?;
    let mut form = multer::Multipart::new(Body::from(body).into_data_stream(), boundary);
    let mut payload: Option<Value> = None;
    let mut files = Vec::new();
    let mut total = 0usize;
    while let Some(field) = form
        .next_field()
        .await
        .map_err(|_| bad_form("Invalid multipart body"))?
    {
        let name = field.name().unwrap_or("").to_string();
        let file_name = field.file_name().map(str::to_string);
        let field_type = field.content_type().map(ToString::to_string);
        let data = field.bytes().await.map_err(|_| bad_form("Invalid multipart body"))?;
        if name == "payload_json" {
            payload = Some(parse_body(&data)?);
            continue;
        }
        let Some(filename) = file_name else { continue };
        total += data.len();
        if total > UPLOAD_LIMIT {
            return Err(ApiError::entity_too_large());
        }
        // `files[n]`, or `file`/any other name: next free index.
        let index = name
            .strip_prefix("files[")
            .and_then(|r| r.strip_suffix(']'))
            .and_then(|n| n.parse().ok())
            .unwrap_or(files.len());
        files.push((
            index,
            Upload {
                filename,
                content_type: field_type,
                description: None,
                bytes: data.to_vec(),
            },
        ));
    }
    Ok((payload.unwrap_or_else(|| serde_json::json!({})), files))
}

/// `http://ADDR` (or `https://`) from the gateway's `ws://ADDR`.
pub fn http_base(s: &Shared) -> String {
    s.ws_base.replacen("ws", "http", 1)
}

/// Turns uploads into attachments. `attachments[]` in the payload may rename a file (`filename`)
/// or describe it (`description`), matched by `id` = the `n` of `files[n]`.
pub fn attachments(
    s: &Shared,
    channel_id: u64,
    payload: &Value,
    files: Vec<(usize, Upload)>,
) -> Result<Vec<Attachment>, ApiError> {
    if files.is_empty() {
        return Ok(Vec::new());
    }
    let meta = payload.get("attachments").and_then(Value::as_array);
    let base = http_base(s);
    let mut world = s.world.lock().expect("world lock");
    let mut out = Vec::new();
    for (index, mut upload) in files {
        let about = meta.and_then(|m| {
            m.iter()
                .find(|a| super::id_field(a, "id").is_some_and(|id| id as usize == index))
        });
        if let Some(a) = about {
            if let Some(name) = a.get("filename").and_then(Value::as_str) {
                upload.filename = name.to_string();
            }
            if let Some(d) = a.get("description").and_then(Value::as_str) {
                if d.chars().count() > 1024 {
                    return Err(ApiError::invalid_form(
                        &format!("attachments.{index}.description"),
                        "BASE_TYPE_MAX_LENGTH",
                        "Must be 1024 or fewer in length.",
                    ));
                }
                upload.description = Some(d.to_string());
            }
        }
        out.push(world.new_attachment(channel_id, upload, &base));
    }
    Ok(out)
}

/// The CDN route, outside `/api/v10` as Discord's is on its own host.
pub fn cdn_routes() -> Router<Arc<Shared>> {
    Router::new().route("/attachments/{channel}/{id}/{filename}", get(serve))
}

async fn serve(
    State(s): State<Arc<Shared>>,
    Path((channel, id, filename)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    let world = s.world.lock().expect("world lock");
    let a = world
        .attachment(parse_id(&channel)?, parse_id(&id)?)
        .filter(|a| a.filename == filename)
        .ok_or_else(ApiError::not_found)?;
    let ct = a.content_type.as_deref().unwrap_or("application/octet-stream");
    let mut resp = Bytes::from(a.bytes.as_ref().clone()).into_response();
    if let Ok(v) = HeaderValue::from_str(ct) {
        resp.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    Ok(resp)
}
