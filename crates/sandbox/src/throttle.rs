//! Applies [`super::ratelimit`] to the REST API: refuses a request over its route's bucket or
//! its bot's global limit with Discord's 429, and gives every answer rate-limit headers that
//! agree with its body, plus the `Via` header Discord's edge adds (discord.py takes a 429
//! without it for a Cloudflare ban).

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::error::ApiError;
use super::ratelimit::{self, Bucket, Verdict};
use super::{snowflake, Shared};

/// What Discord's edge puts in `Via`.
pub const VIA: &str = "1.1 google";

/// Counts a request by `bot` (its user ID) against its route and the global limit: `Ok` with
/// the route's bucket after it (`None` when limits are off), or the 429 to answer with instead.
pub fn admit(shared: &Shared, method: &str, path: &str, bot: Option<&str>) -> Result<Option<Bucket>, Box<Response>> {
    let route = ratelimit::route_of(method, path);
    let verdict = shared
        .ratelimits
        .lock()
        .expect("rate limits lock")
        .check(bot, &route, Instant::now());
    match verdict {
        Verdict::Allowed(bucket) => Ok(Some(bucket)),
        Verdict::Unlimited => Ok(None),
        Verdict::Limited(bucket) => {
            let mut resp = limited(bucket.reset_after, false);
            put_bucket(resp.headers_mut(), &bucket);
            Err(Box::new(resp))
        }
        Verdict::Global { retry_after } => {
            let mut resp = limited(retry_after, true);
            resp.headers_mut()
                .insert("x-ratelimit-global", HeaderValue::from_static("true"));
            Err(Box::new(resp))
        }
    }
}

/// `POST /sandbox/ratelimits` with `{"enforce": false}`: no rate limits (nothing refused, no
/// `X-RateLimit-*` headers, so clients do not wait either) until `{"enforce": true}`. On by
/// default; for tests and benchmarks that are not about rate limits.
pub async fn set_enforced(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let enforce = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.get("enforce").and_then(serde_json::Value::as_bool));
    let Some(enforce) = enforce else {
        return ApiError::invalid_form("enforce", "BASE_TYPE_BOOLEAN", "Must be a boolean.").into_response();
    };
    shared
        .ratelimits
        .lock()
        .expect("rate limits lock")
        .set_enforced(enforce);
    Json(serde_json::json!({ "enforce": enforce })).into_response()
}

/// The bucket an injected error reports: an injected 429 says its bucket is empty until its
/// `retry_after`, as a real one would; other errors leave the bucket as counted.
pub fn injected(err: &ApiError, bucket: Option<Bucket>) -> Option<Bucket> {
    let bucket = bucket?;
    Some(match err.body.get("retry_after").and_then(|v| v.as_f64()) {
        Some(secs) if err.status == 429 => Bucket {
            remaining: 0,
            reset_after: Duration::from_secs_f64(secs.max(0.0)),
            ..bucket
        },
        _ => bucket,
    })
}

/// Finishes an answer: the bucket's `X-RateLimit-*` headers (unless already there), the scope
/// of a 429 and `Via`.
pub fn finish(resp: &mut Response, bucket: Option<&Bucket>) {
    let is_429 = resp.status() == StatusCode::TOO_MANY_REQUESTS;
    let headers = resp.headers_mut();
    if let Some(bucket) = bucket {
        if !headers.contains_key("x-ratelimit-bucket") {
            put_bucket(headers, bucket);
        }
    }
    if is_429 && !headers.contains_key("x-ratelimit-scope") {
        let scope = if headers.contains_key("x-ratelimit-global") {
            "global"
        } else {
            "user"
        };
        headers.insert("x-ratelimit-scope", HeaderValue::from_static(scope));
    }
    headers.insert("via", HeaderValue::from_static(VIA));
}

fn put_bucket(headers: &mut HeaderMap, bucket: &Bucket) {
    for (name, value) in ratelimit::bucket_headers(bucket, snowflake::now_unix_ms()) {
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.insert(name, v);
        }
    }
}

/// A 429 from the limits: body and `Retry-After` from the same wait.
fn limited(retry_after: Duration, global: bool) -> Response {
    let body = ratelimit::limited_body(retry_after, global);
    let mut resp = (StatusCode::TOO_MANY_REQUESTS, Json(body)).into_response();
    let header = ratelimit::retry_after_header(ratelimit::seconds(retry_after));
    if let Ok(v) = HeaderValue::from_str(&header) {
        resp.headers_mut().insert("retry-after", v);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bucket() -> Bucket {
        Bucket {
            id: ratelimit::bucket_id("POST /channels/{channel_id}/messages"),
            limit: 5,
            remaining: 3,
            reset_after: Duration::from_millis(4_200),
        }
    }

    fn header<'a>(resp: &'a Response, name: &str) -> &'a str {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    #[test]
    fn an_injected_429_reports_its_bucket_empty_until_its_retry_after() {
        let b = injected(&ApiError::rate_limited(1.5), Some(bucket())).unwrap();
        assert_eq!((b.remaining, b.reset_after), (0, Duration::from_millis(1_500)));
        let b = injected(&ApiError::server_error(502), Some(bucket())).unwrap();
        assert_eq!(b, bucket());
        assert_eq!(injected(&ApiError::rate_limited(1.5), None), None);
    }

    #[test]
    fn a_429_gets_its_scope_and_every_answer_via_and_its_bucket() {
        let mut resp = ApiError::slowmode(2.5).into_response();
        finish(&mut resp, Some(&bucket()));
        assert_eq!(header(&resp, "retry-after"), "3");
        assert_eq!(header(&resp, "x-ratelimit-scope"), "user");
        assert_eq!(header(&resp, "x-ratelimit-remaining"), "3");
        assert_eq!(header(&resp, "via"), VIA);

        let mut resp = limited(Duration::from_millis(250), true);
        resp.headers_mut()
            .insert("x-ratelimit-global", HeaderValue::from_static("true"));
        finish(&mut resp, None);
        assert_eq!(header(&resp, "x-ratelimit-scope"), "global");
        assert_eq!(header(&resp, "retry-after"), "1");
        assert!(resp.headers().get("x-ratelimit-bucket").is_none());

        let mut ok = Json(serde_json::json!({})).into_response();
        finish(&mut ok, None);
        assert_eq!(header(&ok, "via"), VIA);
        assert!(ok.headers().get("x-ratelimit-scope").is_none());
    }
}
