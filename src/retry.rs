//! When to retry a failed request and how long to wait first: one policy for LLM requests,
//! Discord deliveries, history reads and deferred answers (exponential, capped, with jitter, and
//! a server's `retry-after` honoured). Pure: the caller supplies the jitter sample and the clock,
//! so the schedule is unit-tested without sleeping.

use std::time::{Duration, SystemTime};

use crate::config::RetrySettings;

/// How long to wait before attempt `attempt + 1` after attempt `attempt` (1-based) failed, or
/// `None` to give up.
///
/// Gives up when the attempts are spent, when the failure is not transient, or when the
/// provider asks for a wait longer than `max_delay` (waiting that long holds a conversation
/// hostage; the caller reports the rate limit instead). Otherwise waits what the provider asked
/// (`retry-after`), or an exponential backoff `base · 2^(attempt-1)` capped at `max_delay`, of
/// which a random half is dropped ("equal jitter", `jitter` in `[0, 1)`), so clients that failed
/// together do not retry together.
pub fn next_delay(
    policy: &RetrySettings,
    attempt: u32,
    transient: bool,
    retry_after: Option<Duration>,
    jitter: f64,
) -> Option<Duration> {
    if !transient || attempt >= policy.max_attempts {
        return None;
    }
    if let Some(wait) = retry_after {
        return (wait <= policy.max_delay).then_some(wait);
    }
    Some(backoff(policy.base_delay, policy.max_delay, attempt, jitter))
}

/// The wait after failed attempt `attempt` (1-based): `base · 2^(attempt-1)` capped at `max`,
/// of which a random half is dropped ("equal jitter", `jitter` in `[0, 1)`), so clients that
/// failed together do not retry together.
pub fn backoff(base: Duration, max: Duration, attempt: u32, jitter: f64) -> Duration {
    let exp = base.saturating_mul(1u32 << attempt.saturating_sub(1).min(20)).min(max);
    let half = exp / 2;
    half + half.mul_f64(jitter.clamp(0.0, 1.0))
}

/// The wait before trying a deferred answer again: the back-off, or longer when the server
/// asked for longer (`retry_after` is honoured even beyond `max`: deferring is cheap, and asking
/// sooner would only be refused).
pub fn deferral(base: Duration, max: Duration, attempt: u32, retry_after: Option<Duration>, jitter: f64) -> Duration {
    match retry_after {
        // Never a busy loop, whatever a server asks for.
        Some(asked) => asked.max(Duration::from_millis(50)),
        None => backoff(base, max, attempt, jitter),
    }
}

/// The wait a response asks for: `retry-after-ms` (milliseconds, OpenAI) wins over
/// `retry-after` (seconds, or an HTTP date). Unparseable or negative values are ignored.
pub fn retry_after(retry_after_ms: Option<&str>, retry_after: Option<&str>, now: SystemTime) -> Option<Duration> {
    if let Some(ms) = retry_after_ms.and_then(|v| v.trim().parse::<f64>().ok()) {
        if ms.is_finite() && ms >= 0.0 {
            return Some(Duration::from_secs_f64(ms / 1000.0));
        }
    }
    let value = retry_after?.trim();
    if let Ok(secs) = value.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs));
    }
    let date = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let at = SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(date.timestamp()).ok()?);
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(max_attempts: u32) -> RetrySettings {
        RetrySettings {
            max_attempts,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(1000),
        }
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let p = policy(10);
        let full: Vec<u128> = (1..=6)
            .map(|a| next_delay(&p, a, true, None, 0.999_999).unwrap().as_millis())
            .collect();
        assert_eq!(full, [99, 199, 399, 799, 999, 999]);
        let low: Vec<u128> = (1..=5)
            .map(|a| next_delay(&p, a, true, None, 0.0).unwrap().as_millis())
            .collect();
        assert_eq!(low, [50, 100, 200, 400, 500]);
    }

    #[test]
    fn attempts_are_bounded() {
        let p = policy(3);
        assert!(next_delay(&p, 1, true, None, 0.5).is_some());
        assert!(next_delay(&p, 2, true, None, 0.5).is_some());
        assert_eq!(next_delay(&p, 3, true, None, 0.5), None);
        assert_eq!(next_delay(&policy(1), 1, true, None, 0.5), None);
    }

    #[test]
    fn permanent_failures_are_not_retried() {
        assert_eq!(next_delay(&policy(5), 1, false, None, 0.5), None);
    }

    #[test]
    fn retry_after_is_honoured_up_to_the_cap() {
        let p = policy(5);
        assert_eq!(
            next_delay(&p, 1, true, Some(Duration::from_millis(700)), 0.5),
            Some(Duration::from_millis(700))
        );
        assert_eq!(next_delay(&p, 1, true, Some(Duration::from_secs(60)), 0.5), None);
    }

    #[test]
    fn deferrals_back_off_and_honour_a_long_retry_after() {
        let (base, max) = (Duration::from_secs(1), Duration::from_secs(30));
        assert_eq!(deferral(base, max, 1, None, 0.0), Duration::from_millis(500));
        assert_eq!(deferral(base, max, 10, None, 0.999_999).as_secs(), 29);
        // A provider asking for five minutes is waited out, not retried every 30 s.
        assert_eq!(
            deferral(base, max, 1, Some(Duration::from_secs(300)), 0.5),
            Duration::from_secs(300)
        );
        // A short retry-after is honoured as asked.
        assert_eq!(
            deferral(base, max, 1, Some(Duration::from_millis(200)), 0.5),
            Duration::from_millis(200)
        );
    }

    #[test]
    fn huge_attempt_numbers_do_not_overflow() {
        let p = policy(u32::MAX);
        assert_eq!(next_delay(&p, 1000, true, None, 0.999_999).unwrap().as_millis(), 999);
    }

    #[test]
    fn retry_after_headers() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_470);
        assert_eq!(retry_after(None, Some("2"), now), Some(Duration::from_secs(2)));
        assert_eq!(retry_after(None, Some(" 0.5 "), now), Some(Duration::from_millis(500)));
        assert_eq!(
            retry_after(Some("1234"), Some("2"), now),
            Some(Duration::from_millis(1234))
        );
        assert_eq!(retry_after(Some("soon"), Some("3"), now), Some(Duration::from_secs(3)));
        assert_eq!(retry_after(None, Some("-1"), now), None);
        assert_eq!(retry_after(None, None, now), None);
        // 2015-10-21T07:28:00Z is 10 seconds after `now`.
        assert_eq!(
            retry_after(None, Some("Wed, 21 Oct 2015 07:28:00 GMT"), now),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            retry_after(None, Some("Wed, 21 Oct 2015 07:00:00 GMT"), now),
            Some(Duration::ZERO)
        );
    }
}
