//! `GET /sandbox/state`'s `sessions`: which gateway connection holds each bot, so a test (or
//! an operator running several troupe cells) sees at once a bot held by two processes.

use serde_json::{json, Value};

/// One entry per live gateway session, by bot: `{"bot_id", "session_id", "connection"}`. The
/// connection number is the sandbox's own count of accepted websockets, so two entries with
/// one `bot_id` are two connections receiving that bot's events.
pub fn json(live: &[(u64, String, u64)]) -> Value {
    Value::Array(
        live.iter()
            .map(|(bot, session, conn)| json!({"bot_id": bot.to_string(), "session_id": session, "connection": conn}))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_entry_per_session_with_ids_as_strings() {
        let v = json(&[(7, "s1".into(), 3), (7, "s2".into(), 4)]);
        assert_eq!(
            v,
            json!([
                {"bot_id": "7", "session_id": "s1", "connection": 3},
                {"bot_id": "7", "session_id": "s2", "connection": 4},
            ])
        );
        assert_eq!(json(&[]), json!([]));
    }
}
