//! Fault injection for tests: failing or slow REST answers, and dropped gateway sessions.

use std::collections::VecDeque;
use std::time::Duration;

use serde::Deserialize;

use super::error::ApiError;
use super::gateway::GatewayFault;

/// Body of `POST /sandbox/faults`. Every part is optional; several can be sent at once.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultRequest {
    /// Act on a bot's gateway session(s).
    pub gateway: Option<GatewayFaultRequest>,
    /// Answer the next REST calls with an error.
    pub rest: Option<RestFaultRequest>,
    /// Delay every REST answer by this many milliseconds (0 turns it off).
    pub delay_ms: Option<u64>,
    /// Remove every pending REST fault and the delay.
    #[serde(default)]
    pub clear: bool,
}

/// Gateway part of a fault request.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayFaultRequest {
    /// Bot name or ID.
    pub bot: String,
    /// What to do to its sessions.
    pub action: GatewayFault,
    /// Refuse the bot's IDENTIFY and RESUME for this many milliseconds afterwards.
    pub refuse_ms: Option<u64>,
    /// Only the bot's session on this shard (default: every session).
    pub shard: Option<u64>,
}

/// REST part of a fault request.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct RestFaultRequest {
    /// Status to answer with: 429 or any 4xx/5xx.
    pub status: u16,
    /// How many calls fail (default 1).
    #[serde(default = "one")]
    pub count: u32,
    /// For 429: seconds in `retry_after` and `Retry-After` (default 1).
    pub retry_after: Option<f64>,
    /// Only calls whose path contains this text (e.g. `/messages`). The path includes the
    /// query, so `/messages?` singles out history reads.
    pub path_contains: Option<String>,
    /// Only calls with this HTTP method (e.g. `POST`: message creation but not history reads).
    pub method: Option<String>,
}

fn one() -> u32 {
    1
}

/// Pending REST faults.
#[derive(Debug, Default)]
pub struct RestFaults {
    pending: VecDeque<RestFaultRequest>,
    /// Delay added to every REST answer.
    pub delay: Duration,
}

impl RestFaults {
    /// Queues a fault.
    pub fn add(&mut self, f: RestFaultRequest) {
        if f.count > 0 {
            self.pending.push_back(f);
        }
    }

    /// Clears everything.
    pub fn clear(&mut self) {
        self.pending.clear();
        self.delay = Duration::ZERO;
    }

    /// The error the call to `path` must get, consuming one unit of a matching fault.
    pub fn take(&mut self, path: &str) -> Option<ApiError> {
        self.take_for("", path)
    }

    /// Like [`RestFaults::take`], for a call with this HTTP `method` (faults that name another
    /// method do not match; an empty `method` matches only faults that name none).
    pub fn take_for(&mut self, method: &str, path: &str) -> Option<ApiError> {
        let idx = self.pending.iter().position(|f| {
            f.path_contains.as_deref().is_none_or(|p| path.contains(p))
                && f.method.as_deref().is_none_or(|m| m.eq_ignore_ascii_case(method))
        })?;
        let f = &mut self.pending[idx];
        f.count -= 1;
        let err = match f.status {
            429 => ApiError::rate_limited(f.retry_after.unwrap_or(1.0)),
            s if s >= 500 => ApiError::server_error(s),
            s => ApiError {
                status: s,
                body: serde_json::json!({"message": format!("{s}: injected fault"), "code": 0}),
            },
        };
        if f.count == 0 {
            self.pending.remove(idx);
        }
        Some(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_are_consumed_in_order_and_by_path() {
        let mut f = RestFaults::default();
        f.add(RestFaultRequest {
            status: 500,
            count: 2,
            retry_after: None,
            path_contains: Some("/messages".into()),
            method: None,
        });
        f.add(RestFaultRequest {
            status: 429,
            count: 1,
            retry_after: Some(0.5),
            path_contains: None,
            method: None,
        });
        assert_eq!(f.take("/api/v10/users/@me").unwrap().status, 429);
        assert!(f.take("/api/v10/users/@me").is_none());
        assert_eq!(f.take("/api/v10/channels/1/messages").unwrap().status, 500);
        assert_eq!(f.take("/api/v10/channels/1/messages").unwrap().status, 500);
        assert!(f.take("/api/v10/channels/1/messages").is_none());
    }

    #[test]
    fn a_fault_naming_a_method_spares_the_others() {
        let mut f = RestFaults::default();
        f.add(RestFaultRequest {
            status: 503,
            count: 1,
            retry_after: None,
            path_contains: Some("/messages".into()),
            method: Some("post".into()),
        });
        assert!(f
            .take_for("GET", "/api/v10/channels/1/messages?after=1&limit=100")
            .is_none());
        assert!(f.take("/api/v10/channels/1/messages").is_none());
        assert_eq!(f.take_for("POST", "/api/v10/channels/1/messages").unwrap().status, 503);
    }
}
