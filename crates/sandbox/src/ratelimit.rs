//! Discord's REST rate limits as pure logic: per-route buckets counted per major parameter
//! (channel, webhook), the global limit of 50 requests a second per bot, and the headers and
//! 429 bodies that describe them. Callers pass the clock in.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// Requests a bot may make per second across all routes (Discord's global limit).
pub const GLOBAL_PER_SECOND: u32 = 50;

/// Buckets kept before expired ones are dropped.
const PRUNE_AT: usize = 10_000;

/// A route's bucket: its name (the same for every channel), its limit and window, and the major
/// parameter the count is kept per.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Bucket name, e.g. `POST /channels/{channel_id}/messages`.
    pub name: String,
    /// Requests per window.
    pub limit: u32,
    /// The window, counted from the first request in it.
    pub window: Duration,
    /// The major parameter's value (a channel or webhook ID), or empty.
    pub major: String,
}

/// The bucket of a request: `path` is what the client sent, with or without `/api/v10` and the
/// query. Limits are Discord's observed ones: 5 messages per 5 s per channel, 5 edits per 5 s per
/// channel, 5 typing indicators per 5 s per channel, 5 webhook executions per 2 s per webhook; reads and other
/// routes 50 per second per route (the global limit caps them anyway).
pub fn route_of(method: &str, path: &str) -> Route {
    let path = path.split('?').next().unwrap_or_default();
    let path = path.strip_prefix("/api/v10").unwrap_or(path);
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let method = method.to_ascii_uppercase();
    let (name, limit, window, major): (String, u32, u64, &str) = match (method.as_str(), segs.as_slice()) {
        ("POST", ["channels", c, "messages"]) => ("POST /channels/{channel_id}/messages".into(), 5, 5_000, c),
        ("POST", ["channels", c, "typing"]) => ("POST /channels/{channel_id}/typing".into(), 5, 5_000, c),
        ("PATCH", ["channels", c, "messages", _]) => {
            ("PATCH /channels/{channel_id}/messages/{message_id}".into(), 5, 5_000, c)
        }
        ("POST", ["webhooks", w, _token]) => ("POST /webhooks/{webhook_id}/{webhook_token}".into(), 5, 2_000, w),
        (m, ["channels" | "guilds" | "webhooks", id, rest @ ..]) => {
            (format!("{m} /{}/{{id}}/{}", segs[0], template(rest)), 50, 1_000, id)
        }
        (m, rest) => (format!("{m} /{}", template(rest)), 50, 1_000, ""),
    };
    Route {
        name,
        limit,
        window: Duration::from_millis(window),
        major: major.to_string(),
    }
}

/// A path's segments with IDs replaced by `{id}`, so one bucket covers every message or user.
fn template(segs: &[&str]) -> String {
    segs.iter()
        .map(|s| {
            if s.bytes().all(|b| b.is_ascii_digit()) {
                "{id}"
            } else {
                s
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// A bucket's state after a request, as the `X-RateLimit-*` headers report it.
#[derive(Debug, Clone, PartialEq)]
pub struct Bucket {
    /// `X-RateLimit-Bucket`: an opaque ID, the same for every major parameter of a route.
    pub id: String,
    /// `X-RateLimit-Limit`.
    pub limit: u32,
    /// `X-RateLimit-Remaining`.
    pub remaining: u32,
    /// `X-RateLimit-Reset-After`: until the window ends.
    pub reset_after: Duration,
}

/// What the limits say about one request.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Let through; it was counted.
    Allowed(Bucket),
    /// The route's bucket is empty: 429 until it resets (`reset_after`).
    Limited(Bucket),
    /// Limits are off: serve it, and report no bucket.
    Unlimited,
    /// The bot's global limit is spent: 429 with `global: true` for `retry_after`.
    Global {
        /// Until the global window ends.
        retry_after: Duration,
    },
}

/// A fixed window: `count` requests since `started`.
#[derive(Debug, Clone, Copy)]
struct Window {
    started: Instant,
    count: u32,
}

impl Window {
    /// Counts one request if the window has room (a new window starts when the old one ended).
    /// Returns the remaining count, or `None` when full; and the time until the window ends.
    fn take(slot: &mut Option<Window>, limit: u32, length: Duration, now: Instant) -> (Option<u32>, Duration) {
        let w = match slot {
            Some(w) if now < w.started + length => w,
            _ => slot.insert(Window { started: now, count: 0 }),
        };
        let left = (w.started + length).saturating_duration_since(now);
        if w.count < limit {
            w.count += 1;
            (Some(limit - w.count), left)
        } else {
            (None, left)
        }
    }
}

/// Every bucket's window, per bot.
#[derive(Debug, Default)]
pub struct RateLimits {
    buckets: HashMap<(String, String, String), (Option<Window>, Duration)>,
    global: HashMap<String, Option<Window>>,
    /// No limits at all (`POST /sandbox/ratelimits`), for tests and benchmarks that are not
    /// about rate limits: nothing is counted or refused, and no bucket is reported.
    off: bool,
}

impl RateLimits {
    /// Whether limits apply (the default), or the sandbox is a server without any.
    pub fn set_enforced(&mut self, enforced: bool) {
        self.off = !enforced;
    }

    /// Counts a request by `bot` (its user ID; `None` for unauthenticated calls such as webhook
    /// executions, which only their route limits) on `route` at `now`. A request refused by the
    /// global limit does not use the route's bucket.
    pub fn check(&mut self, bot: Option<&str>, route: &Route, now: Instant) -> Verdict {
        if self.off {
            return Verdict::Unlimited;
        }
        if self.buckets.len() >= PRUNE_AT {
            self.buckets
                .retain(|_, (w, len)| w.is_some_and(|w| now < w.started + *len));
        }
        if let Some(bot) = bot {
            let slot = self.global.entry(bot.to_string()).or_default();
            if let (None, left) = Window::take(slot, GLOBAL_PER_SECOND, Duration::from_secs(1), now) {
                return Verdict::Global { retry_after: left };
            }
        }
        let key = (
            bot.unwrap_or_default().to_string(),
            route.name.clone(),
            route.major.clone(),
        );
        let (slot, len) = self.buckets.entry(key).or_insert((None, route.window));
        let (remaining, reset_after) = Window::take(slot, route.limit, *len, now);
        let bucket = Bucket {
            id: bucket_id(&route.name),
            limit: route.limit,
            remaining: remaining.unwrap_or(0),
            reset_after,
        };
        match remaining {
            Some(_) => Verdict::Allowed(bucket),
            None => Verdict::Limited(bucket),
        }
    }
}

/// A stable opaque bucket ID for a route name (FNV-1a, hex), as Discord's are hashes.
pub fn bucket_id(name: &str) -> String {
    let hash = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("{hash:016x}")
}

/// Seconds with millisecond precision, as Discord writes them in headers and bodies.
pub fn seconds(d: Duration) -> f64 {
    (d.as_millis() as f64) / 1000.0
}

/// The `X-RateLimit-*` headers for a bucket; `now_unix_ms` dates `X-RateLimit-Reset`.
pub fn bucket_headers(b: &Bucket, now_unix_ms: u64) -> Vec<(&'static str, String)> {
    let reset_ms = now_unix_ms + b.reset_after.as_millis() as u64;
    vec![
        ("x-ratelimit-limit", b.limit.to_string()),
        ("x-ratelimit-remaining", b.remaining.to_string()),
        (
            "x-ratelimit-reset",
            format!("{}.{:03}", reset_ms / 1000, reset_ms % 1000),
        ),
        ("x-ratelimit-reset-after", format!("{:.3}", seconds(b.reset_after))),
        ("x-ratelimit-bucket", b.id.clone()),
    ]
}

/// A 429's `Retry-After` header: whole seconds, rounded up (Discord's edge sends `65` for a
/// `retry_after` of 64.57), and never 0 for a wait that is not 0.
pub fn retry_after_header(retry_after: f64) -> String {
    format!("{}", retry_after.max(0.0).ceil() as u64)
}

/// Discord's 429 body (the spec's `RatelimitedResponse`).
pub fn limited_body(retry_after: Duration, global: bool) -> Value {
    json!({
        "message": "You are being rate limited.",
        "retry_after": seconds(retry_after),
        "global": global,
        "code": 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn message_creation_is_five_per_five_seconds_per_channel() {
        let mut limits = RateLimits::default();
        let t0 = Instant::now();
        let ch1 = route_of("POST", "/api/v10/channels/1/messages");
        let ch2 = route_of("POST", "/api/v10/channels/2/messages");
        for left in (0..5).rev() {
            match limits.check(Some("bot"), &ch1, t0 + ms(10)) {
                Verdict::Allowed(b) => assert_eq!((b.limit, b.remaining), (5, left)),
                v => panic!("{v:?}"),
            }
        }
        match limits.check(Some("bot"), &ch1, t0 + ms(1_000)) {
            Verdict::Limited(b) => assert_eq!((b.remaining, b.reset_after), (0, ms(4_010))),
            v => panic!("{v:?}"),
        }
        // Another channel, and another bot in the same channel, have buckets of their own.
        assert!(matches!(
            limits.check(Some("bot"), &ch2, t0 + ms(1_000)),
            Verdict::Allowed(_)
        ));
        assert!(matches!(
            limits.check(Some("other"), &ch1, t0 + ms(1_000)),
            Verdict::Allowed(_)
        ));
        // The window ends 5 s after its first request.
        match limits.check(Some("bot"), &ch1, t0 + ms(5_010)) {
            Verdict::Allowed(b) => assert_eq!((b.remaining, b.reset_after), (4, ms(5_000))),
            v => panic!("{v:?}"),
        }
    }

    #[test]
    fn the_global_limit_is_fifty_a_second_per_bot_across_routes() {
        let mut limits = RateLimits::default();
        let t0 = Instant::now();
        for i in 0..GLOBAL_PER_SECOND {
            let r = route_of("GET", &format!("/api/v10/channels/{i}"));
            assert!(matches!(limits.check(Some("bot"), &r, t0), Verdict::Allowed(_)));
        }
        let r = route_of("GET", "/api/v10/users/@me");
        assert_eq!(
            limits.check(Some("bot"), &r, t0 + ms(250)),
            Verdict::Global { retry_after: ms(750) }
        );
        assert!(matches!(
            limits.check(Some("other"), &r, t0 + ms(250)),
            Verdict::Allowed(_)
        ));
        assert!(matches!(
            limits.check(Some("bot"), &r, t0 + ms(1_000)),
            Verdict::Allowed(_)
        ));
    }

    #[test]
    fn webhook_executions_are_limited_per_webhook_without_a_bot() {
        let mut limits = RateLimits::default();
        let t0 = Instant::now();
        let hook = route_of("POST", "/api/v10/webhooks/9/tok?wait=true");
        assert_eq!((hook.limit, hook.window, hook.major.as_str()), (5, ms(2_000), "9"));
        for _ in 0..5 {
            assert!(matches!(limits.check(None, &hook, t0), Verdict::Allowed(_)));
        }
        assert!(matches!(limits.check(None, &hook, t0), Verdict::Limited(_)));
    }

    #[test]
    fn limits_turned_off_refuse_nothing_until_turned_on() {
        let mut limits = RateLimits::default();
        limits.set_enforced(false);
        let t0 = Instant::now();
        let r = route_of("POST", "/channels/1/messages");
        for _ in 0..GLOBAL_PER_SECOND + 1 {
            assert_eq!(limits.check(Some("bot"), &r, t0), Verdict::Unlimited);
        }
        limits.set_enforced(true);
        assert!(matches!(limits.check(Some("bot"), &r, t0), Verdict::Allowed(_)));
    }

    #[test]
    fn one_bucket_per_route_whatever_the_ids() {
        let a = route_of("GET", "/api/v10/channels/1/messages/5");
        let b = route_of("GET", "/channels/2/messages/6?x=1");
        assert_eq!(a.name, b.name);
        assert_eq!(a.name, "GET /channels/{id}/messages/{id}");
        assert_ne!(a.major, b.major);
        assert_eq!(bucket_id(&a.name), bucket_id(&b.name));
        assert_ne!(
            route_of("GET", "/channels/1/messages").name,
            route_of("POST", "/channels/1/messages").name
        );
        assert_eq!(route_of("GET", "/api/v10/users/42").name, "GET /users/{id}");
    }

    #[test]
    fn edits_share_one_bucket_per_channel_like_messages() {
        let a = route_of("PATCH", "/api/v10/channels/1/messages/5");
        let b = route_of("PATCH", "/channels/1/messages/6");
        assert_eq!(
            (a.name.as_str(), a.limit, a.window),
            (b.name.as_str(), 5, Duration::from_secs(5))
        );
        assert_eq!(a.major, b.major);
        assert_ne!(a.major, route_of("PATCH", "/channels/2/messages/5").major);
    }

    #[test]
    fn headers_and_body_of_a_429_agree() {
        let b = Bucket {
            id: bucket_id("x"),
            limit: 5,
            remaining: 0,
            reset_after: ms(64_570),
        };
        let h: HashMap<_, _> = bucket_headers(&b, 1_470_173_000_000).into_iter().collect();
        assert_eq!(h["x-ratelimit-reset-after"], "64.570");
        assert_eq!(h["x-ratelimit-reset"], "1470173064.570");
        assert_eq!(h["x-ratelimit-remaining"], "0");
        let body = limited_body(b.reset_after, false);
        assert_eq!(body["retry_after"], 64.57);
        assert_eq!(retry_after_header(body["retry_after"].as_f64().unwrap()), "65");
        assert_eq!(retry_after_header(0.2), "1");
        assert_eq!(retry_after_header(0.0), "0");
    }
}
