//! Discord snowflake IDs as time: a snowflake is `(milliseconds since 2015-01-01) << 22 | ...`,
//! so ordering message IDs orders messages by creation time, and a message's age is read from
//! its ID (backlog bounds, retention). Pure. The sandbox mints its own IDs (`sandbox::snowflake`).

/// Milliseconds from the Unix epoch to the Discord epoch (2015-01-01T00:00:00Z).
pub const DISCORD_EPOCH_MS: u64 = 1_420_070_400_000;

/// The smallest snowflake for a given Unix time in milliseconds (times before 2015 map to 0).
pub fn from_unix_ms(unix_ms: u64) -> u64 {
    unix_ms.saturating_sub(DISCORD_EPOCH_MS) << 22
}

/// The Unix time in milliseconds at which a snowflake was created.
pub fn unix_ms(snowflake: u64) -> u64 {
    (snowflake >> 22) + DISCORD_EPOCH_MS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_round_trips_through_a_snowflake() {
        let t = 1_700_000_000_123;
        assert_eq!(unix_ms(from_unix_ms(t)), t);
        assert_eq!(from_unix_ms(0), 0);
        // Discord's documented example: 175928847299117063 was created at 1462015105796.
        assert_eq!(unix_ms(175_928_847_299_117_063), 1_462_015_105_796);
    }
}
