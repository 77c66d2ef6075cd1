//! Detecting a second process answering with the same bot: Discord answers a create whose
//! nonce it has already seen (`enforce_nonce`) with the existing message, and when this process
//! never sent that nonce before, the existing message is someone else's: its snowflake is older
//! than our request. Pure check, plus the loud report (an error log and a metric).
//!
//! It catches the duplicate that nonces already kept off the channel, which is when the tokens
//! were spent twice. It cannot catch webhook replies (no nonce), nor a duplicate whose request
//! started before the other's message was created (both then see their own timestamps).

/// How much older than our request the existing message must be: our clock and Discord's may
/// differ by this much without a false alarm. NTP keeps hosts well within it.
pub const CLOCK_TOLERANCE_MS: u64 = 250;

/// Whether a message Discord returned for our first attempt at a nonce was created before that
/// attempt started (by our clock, less [`CLOCK_TOLERANCE_MS`]): then another process posted it.
pub fn posted_by_another_process(message_id: u64, request_started_ms: u64) -> bool {
    crate::snowflake::unix_ms(message_id) + CLOCK_TOLERANCE_MS < request_started_ms
}

/// Reports a reply Discord already had from another process using `agent`'s bot.
pub fn report(agent: &str, channel_id: u64, message_id: u64, request_started_ms: u64) {
    let age_ms = request_started_ms.saturating_sub(crate::snowflake::unix_ms(message_id));
    tracing::error!(
        agent,
        channel = channel_id,
        message_id,
        age_ms,
        "another process is answering as this bot: Discord returned a reply it already had, created {age_ms} ms \
         before this process first sent it (same nonce); two troupe processes run the same agent (same cell twice, \
         or a stray process). Stop the extra one: until then every answer costs tokens twice, and webhook replies \
         are posted twice"
    );
    crate::ops::telemetry::duplicate_process(agent);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snowflake::from_unix_ms;

    #[test]
    fn only_a_message_older_than_the_request_beyond_the_tolerance_is_someone_elses() {
        let t = 1_800_000_000_000;
        // Created by our request, or a moment before by a clock a little off: ours.
        assert!(!posted_by_another_process(from_unix_ms(t + 40), t));
        assert!(!posted_by_another_process(from_unix_ms(t - CLOCK_TOLERANCE_MS), t));
        // Created well before we first asked: not ours.
        assert!(posted_by_another_process(from_unix_ms(t - CLOCK_TOLERANCE_MS - 1), t));
        assert!(posted_by_another_process(from_unix_ms(t - 20_000), t));
    }
}
