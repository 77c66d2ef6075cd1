//! `GET /sandbox/state`'s `sessions`: which gateway connection holds each bot, and on which
//! shard, so a test (or an operator running several troupe cells) sees at once a bot held by
//! two processes, or a sharded bot's sessions.

use serde_json::{json, Value};

/// One live gateway session.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct LiveSession {
    /// The bot's user ID.
    pub bot: u64,
    /// The session ID READY gave.
    pub session: String,
    /// The sandbox's own count of accepted websockets.
    pub connection: u64,
    /// `[shard_id, num_shards]`.
    pub shard: [u64; 2],
}

/// One entry per live gateway session, by bot: `{"bot_id", "session_id", "connection",
/// "shard"}`. Two entries with one `bot_id` and one shard are two connections receiving the same
/// events.
pub fn json(live: &[LiveSession]) -> Value {
    Value::Array(
        live.iter()
            .map(|s| {
                json!({
                    "bot_id": s.bot.to_string(),
                    "session_id": s.session,
                    "connection": s.connection,
                    "shard": s.shard,
                })
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_entry_per_session_with_ids_as_strings() {
        let live = |session: &str, connection, shard| LiveSession {
            bot: 7,
            session: session.into(),
            connection,
            shard,
        };
        let v = json(&[live("s1", 3, [0, 1]), live("s2", 4, [1, 2])]);
        assert_eq!(
            v,
            json!([
                {"bot_id": "7", "session_id": "s1", "connection": 3, "shard": [0, 1]},
                {"bot_id": "7", "session_id": "s2", "connection": 4, "shard": [1, 2]},
            ])
        );
        assert_eq!(json(&[]), json!([]));
    }
}
