//! `[delivery]`: how long a failed answer keeps being retried, how retries are spaced, and what
//! users are told when troupe gives up. Validated into [`DeliverySettings`].

use std::time::Duration;

use super::error::Report;
use super::operations;
use super::raw::RawDelivery;

/// The notice sent by default when an answer is given up.
pub const DEFAULT_FAILURE_NOTICE: &str = "Sorry, I couldn't answer this one: my model is unavailable.";

/// The notice sent by default when a message waited for room for too long.
pub const DEFAULT_BUSY_NOTICE: &str = "Sorry, I was too busy to answer this one in time.";

/// Retries of failed answers and the give-up policy.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliverySettings {
    /// How long a message may stay pending after its first failure before it is given up.
    pub give_up_after: Duration,
    /// First wait before a failed answer is tried again; doubles per attempt.
    pub retry_initial: Duration,
    /// Longest wait between two tries (a provider's `retry-after` may ask for more: honoured).
    pub retry_max: Duration,
    /// How long one delivery keeps retrying Discord's 429s, 5xx and connection errors before the
    /// answer is retried as a whole.
    pub discord_retry: Duration,
    /// Sent (as a reply, with the footer) when an answer is given up; empty: silence.
    pub failure_notice: String,
    /// Sent when a message waited for room for too long; empty: silence.
    pub busy_notice: String,
}

impl Default for DeliverySettings {
    fn default() -> Self {
        Self {
            give_up_after: Duration::from_secs(3_600),
            retry_initial: Duration::from_millis(1_000),
            retry_max: Duration::from_secs(30),
            discord_retry: Duration::from_secs(60),
            failure_notice: DEFAULT_FAILURE_NOTICE.to_string(),
            busy_notice: DEFAULT_BUSY_NOTICE.to_string(),
        }
    }
}

/// Validates `[delivery]`. `backlog_max_age` bounds the give-up time: a message still pending
/// after a restart must be read again by the replay.
pub(crate) fn delivery(raw: &RawDelivery, backlog_max_age: Duration, err: &mut Report<'_>) -> DeliverySettings {
    let d = DeliverySettings::default();
    let give_up_after = Duration::from_secs(operations::int(
        "delivery.give_up_after_secs",
        &raw.give_up_after_secs,
        d.give_up_after.as_secs(),
        1,
        30 * 86_400,
        err,
    ));
    if give_up_after > backlog_max_age {
        let span = raw.give_up_after_secs.as_ref().map(|s| s.span());
        err(
            span,
            "delivery.give_up_after_secs".into(),
            format!(
                "{} s is longer than [backlog] max_age_secs ({} s): a message still pending after a restart would be too old to replay; lower it or raise max_age_secs",
                give_up_after.as_secs(),
                backlog_max_age.as_secs()
            ),
        );
    }
    let retry_initial = Duration::from_millis(operations::int(
        "delivery.retry_initial_ms",
        &raw.retry_initial_ms,
        d.retry_initial.as_millis() as u64,
        10,
        600_000,
        err,
    ));
    let retry_max = Duration::from_secs(operations::int(
        "delivery.retry_max_secs",
        &raw.retry_max_secs,
        d.retry_max.as_secs(),
        1,
        3_600,
        err,
    ));
    if retry_max < retry_initial {
        let span = raw.retry_max_secs.as_ref().map(|s| s.span());
        err(
            span,
            "delivery.retry_max_secs".into(),
            format!(
                "{} s is shorter than retry_initial_ms ({} ms); raise it",
                retry_max.as_secs(),
                retry_initial.as_millis()
            ),
        );
    }
    let discord_retry = Duration::from_secs(operations::int(
        "delivery.discord_retry_secs",
        &raw.discord_retry_secs,
        d.discord_retry.as_secs(),
        0,
        3_600,
        err,
    ));
    DeliverySettings {
        give_up_after,
        retry_initial,
        retry_max,
        discord_retry,
        failure_notice: raw.failure_notice.clone().unwrap_or(d.failure_notice),
        busy_notice: raw.busy_notice.clone().unwrap_or(d.busy_notice),
    }
}
