//! Discord's JSON error bodies (`{"message": ..., "code": ...}`) as the sandbox returns them.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

/// An error response exactly as Discord shapes it.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status.
    pub status: u16,
    /// Discord's JSON body.
    pub body: Value,
}

impl ApiError {
    fn new(status: u16, code: u32, message: &str) -> Self {
        Self {
            status,
            body: json!({"message": message, "code": code}),
        }
    }

    /// 400, code 50035, with Discord's nested `errors` object for one field (dots nest).
    pub fn invalid_form(field: &str, code: &str, message: &str) -> Self {
        let mut errors = json!({"_errors": [{"code": code, "message": message}]});
        for part in field.rsplit('.') {
            errors = json!({ part: errors });
        }
        Self {
            status: 400,
            body: json!({"message": "Invalid Form Body", "code": 50035, "errors": errors}),
        }
    }

    /// 400, code 50109: the body is not valid JSON.
    pub fn invalid_json() -> Self {
        Self::new(400, 50109, "The request body contains invalid JSON.")
    }

    /// 400, code 50006.
    pub fn empty_message() -> Self {
        Self::new(400, 50006, "Cannot send an empty message")
    }

    /// 401.
    pub fn unauthorized() -> Self {
        Self::new(401, 0, "401: Unauthorized")
    }

    /// 403, code 50001.
    pub fn missing_access() -> Self {
        Self::new(403, 50001, "Missing Access")
    }

    /// 403, code 50013.
    pub fn missing_permissions() -> Self {
        Self::new(403, 50013, "Missing Permissions")
    }

    /// 400, code 50007: a DM with yourself, or between two bots.
    pub fn cannot_dm_self() -> Self {
        Self::new(400, 50007, "Cannot send messages to this user")
    }

    /// 400: webhooks live in guild channels only.
    pub fn cannot_dm_webhook() -> Self {
        Self::new(400, 50024, "Cannot execute action on this channel type")
    }

    /// 404, code 10003.
    pub fn unknown_channel() -> Self {
        Self::new(404, 10003, "Unknown Channel")
    }

    /// 404, code 10013.
    pub fn unknown_user() -> Self {
        Self::new(404, 10013, "Unknown User")
    }

    /// 404, code 10008.
    pub fn unknown_message() -> Self {
        Self::new(404, 10008, "Unknown Message")
    }

    /// 404, code 10015.
    pub fn unknown_webhook() -> Self {
        Self::new(404, 10015, "Unknown Webhook")
    }

    /// 404 for a route the sandbox does not know.
    pub fn not_found() -> Self {
        Self::new(404, 0, "404: Not Found")
    }

    /// 429 with `retry_after` seconds.
    pub fn rate_limited(retry_after: f64) -> Self {
        Self {
            status: 429,
            body: json!({"message": "You are being rate limited.", "retry_after": retry_after, "global": false, "code": 0}),
        }
    }

    /// 429, code 20016: the channel's slowmode has not elapsed for this author.
    pub fn slowmode(retry_after: f64) -> Self {
        Self {
            status: 429,
            body: json!({
                "message": "This action cannot be performed due to slowmode rate limit",
                "retry_after": retry_after,
                "global": false,
                "code": 20016,
            }),
        }
    }

    /// 403, code 50005: editing someone else's message.
    pub fn cannot_edit_others() -> Self {
        Self::new(403, 50005, "Cannot edit a message authored by another user")
    }

    /// 403, code 50003: moderation (deleting others' messages, bulk delete, removing others'
    /// reactions) in a DM.
    pub fn cannot_in_dm() -> Self {
        Self::new(403, 50003, "Cannot execute action on a DM channel")
    }

    /// 400, code 50034: bulk delete reaches a message older than two weeks.
    pub fn bulk_delete_too_old() -> Self {
        Self::new(
            400,
            50034,
            "You can only bulk delete messages that are under 14 days old.",
        )
    }

    /// 400, code 30003: the channel already has 50 pins.
    pub fn max_pins() -> Self {
        Self::new(400, 30003, "Maximum number of pins reached (50)")
    }

    /// 400, code 30010: a message already has 20 different reactions.
    pub fn max_reactions() -> Self {
        Self::new(400, 30010, "Maximum number of reactions reached (20)")
    }

    /// 400, code 30007: the channel already has 15 webhooks.
    pub fn max_webhooks() -> Self {
        Self::new(400, 30007, "Maximum number of webhooks reached (15)")
    }

    /// 400, code 10014.
    pub fn unknown_emoji() -> Self {
        Self::new(400, 10014, "Unknown Emoji")
    }

    /// 404, code 10004.
    pub fn unknown_guild() -> Self {
        Self::new(404, 10004, "Unknown Guild")
    }

    /// 404, code 10007.
    pub fn unknown_member() -> Self {
        Self::new(404, 10007, "Unknown Member")
    }

    /// 401, code 50027: a webhook URL whose token does not match.
    pub fn invalid_webhook_token() -> Self {
        Self::new(401, 50027, "Invalid Webhook Token")
    }

    /// 400, code 160004: the message already started a thread.
    pub fn thread_already_created() -> Self {
        Self::new(400, 160004, "A thread has already been created for this message")
    }

    /// 413, code 40005: an upload over the size limit.
    pub fn entity_too_large() -> Self {
        Self::new(413, 40005, "Request entity too large")
    }

    /// A 5xx as Discord's edge returns it.
    pub fn server_error(status: u16) -> Self {
        Self::new(status, 0, "500: Internal Server Error")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut resp = (status, Json(self.body.clone())).into_response();
        if self.status == 429 {
            if let Some(ra) = self.body.get("retry_after").and_then(Value::as_f64) {
                if let Ok(v) = format!("{}", ra.ceil() as u64).parse() {
                    resp.headers_mut().insert("retry-after", v);
                }
            }
        }
        resp
    }
}
