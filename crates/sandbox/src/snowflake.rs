//! Discord snowflake IDs: generation with real timestamps, and reading the time back.
//!
//! A snowflake is `(milliseconds since 2015-01-01) << 22 | worker << 17 | process << 12 | increment`.
//! Ordering snowflakes orders the messages they name by creation time, which troupe relies on
//! (conversation actors sort by message ID, backlog replay pages with `after=`).

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds from the Unix epoch to the Discord epoch (2015-01-01T00:00:00Z).
pub const DISCORD_EPOCH_MS: u64 = 1_420_070_400_000;

/// Hands out strictly increasing snowflakes stamped with the current time.
#[derive(Debug, Default)]
pub struct SnowflakeGenerator {
    last: u64,
}

impl SnowflakeGenerator {
    /// A generator with no history.
    pub fn new() -> Self {
        Self::default()
    }

    /// The next snowflake for "now": strictly greater than every one handed out before, even if
    /// the wall clock steps backwards or many IDs are needed within one millisecond.
    pub fn next_id(&mut self) -> u64 {
        let candidate = from_unix_ms(now_unix_ms());
        self.last = candidate.max(self.last + 1);
        self.last
    }
}

/// The smallest snowflake for a given Unix time in milliseconds (times before 2015 map to 0).
pub fn from_unix_ms(unix_ms: u64) -> u64 {
    unix_ms.saturating_sub(DISCORD_EPOCH_MS) << 22
}

/// The Unix time in milliseconds at which a snowflake was created.
pub fn unix_ms(snowflake: u64) -> u64 {
    (snowflake >> 22) + DISCORD_EPOCH_MS
}

/// A stable snowflake for a configured entity (guild, channel, user): the same name at the same
/// index gives the same ID on every start, so memory keyed by IDs survives a sandbox restart.
pub fn stable(index: u64) -> u64 {
    // 2024-01-01T00:00:00Z plus one millisecond per entity.
    from_unix_ms(1_704_067_200_000 + index)
}

/// ISO 8601 timestamp (what Discord puts in `timestamp`) for a snowflake.
pub fn iso8601(snowflake: u64) -> String {
    let ms = unix_ms(snowflake) as i64;
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, false)
}

/// The current Unix time in milliseconds.
pub fn now_unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(DISCORD_EPOCH_MS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_strictly_increase_within_one_millisecond() {
        let mut gen = SnowflakeGenerator::new();
        let ids: Vec<u64> = (0..10_000).map(|_| gen.next_id()).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn timestamp_round_trips() {
        let id = from_unix_ms(1_700_000_000_123);
        assert_eq!(unix_ms(id), 1_700_000_000_123);
        assert_eq!(iso8601(id), "2023-11-14T22:13:20.123000+00:00");
    }

    #[test]
    fn known_discord_snowflake_decodes() {
        // Example from Discord's documentation.
        assert_eq!(unix_ms(175_928_847_299_117_063), 1_462_015_105_796);
    }

    #[test]
    fn stable_ids_are_stable_and_distinct() {
        assert_eq!(stable(3), stable(3));
        assert!(stable(3) < stable(4));
    }
}
