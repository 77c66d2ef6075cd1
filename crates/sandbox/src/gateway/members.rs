//! Guild members on the gateway: the privileged intents a bot is granted, `member` on guild
//! MESSAGE_CREATE (and on its mentioned users), and op 8 REQUEST_GUILD_MEMBERS answered with
//! GUILD_MEMBERS_CHUNK events.

use serde_json::{json, Value};

use super::{intents, Shared};
use crate::snowflake;
use crate::spec::DEFAULT_PRIVILEGED_INTENTS;
use crate::world::{Author, Message, World};

/// Most members in one GUILD_MEMBERS_CHUNK, as on Discord.
pub const CHUNK_SIZE: usize = 1000;
/// Most members a `query` or `user_ids` request returns.
pub const REQUEST_CAP: usize = 100;
/// Longest nonce echoed back; a longer one is ignored, as Discord does.
pub const NONCE_MAX_BYTES: usize = 32;

impl World {
    /// The privileged intents `bot` is granted: its spec's, else [`DEFAULT_PRIVILEGED_INTENTS`].
    pub fn granted_privileged_intents(&self, bot: u64) -> u64 {
        self.privileged_intents
            .get(&bot)
            .copied()
            .unwrap_or_else(|| DEFAULT_PRIVILEGED_INTENTS.iter().fold(0, |bits, i| bits | i.bit()))
    }

    /// A guild member object without its `user` (as on MESSAGE_CREATE); every user is a member of
    /// every guild, joined when the guild was made, with no roles and no nickname.
    pub fn partial_member_json(&self, guild_id: u64) -> Value {
        json!({
            "roles": [],
            "nick": null,
            "avatar": null,
            "banner": null,
            "premium_since": null,
            "joined_at": snowflake::iso8601(guild_id),
            "deaf": false,
            "mute": false,
            "flags": 0,
            "pending": false,
            "communication_disabled_until": null,
        })
    }

    /// A full guild member object (with `user`).
    pub fn guild_member_json(&self, guild_id: u64, user: u64) -> Value {
        let mut m = self.partial_member_json(guild_id);
        m["user"] = self.user_json(user);
        m
    }
}

/// Adds what a guild MESSAGE_CREATE (or MESSAGE_UPDATE) carries beyond the REST message: the
/// author's `member` and each mentioned user's `member`. Webhook messages have no member.
pub fn add_message_members(world: &World, msg: &Message, v: &mut Value) {
    let Some(guild_id) = world.channel(msg.channel_id).and_then(|c| world.guild_of(c)) else {
        return;
    };
    if let Author::User(_) = msg.author {
        v["member"] = world.partial_member_json(guild_id);
    }
    if let Some(mentions) = v.get_mut("mentions").and_then(Value::as_array_mut) {
        for m in mentions {
            m["member"] = world.partial_member_json(guild_id);
        }
    }
}

/// A parsed op 8 request.
#[derive(Debug, Clone, PartialEq)]
pub struct MembersRequest {
    /// Guild asked about.
    pub guild_id: u64,
    /// Username prefix (`None` when `user_ids` is given).
    pub query: Option<String>,
    /// Most members to return for `query`; 0 means all (with an empty query).
    pub limit: usize,
    /// Users asked for by ID.
    pub user_ids: Option<Vec<u64>>,
    /// Echoed on every chunk when valid.
    pub nonce: Option<String>,
    /// Whether presences were asked for.
    pub presences: bool,
}

fn snowflake_of(v: &Value) -> Option<u64> {
    match v {
        Value::String(s) => s.parse().ok(),
        Value::Number(n) => n.as_u64(),
        _ => None,
    }
}

/// Reads op 8's `d`; a malformed one is a decode error (4002), as the gateway treats payloads it
/// cannot read.
pub fn parse_request(d: &Value) -> Result<MembersRequest, (u16, &'static str)> {
    const BAD: (u16, &str) = (4002, "Decode error");
    // One guild per request; Discord still takes it as a one-element array.
    let guild_id = match d.get("guild_id") {
        Some(Value::Array(a)) if a.len() == 1 => snowflake_of(&a[0]),
        Some(v) => snowflake_of(v),
        None => None,
    }
    .ok_or(BAD)?;
    let user_ids = match d.get("user_ids") {
        None | Some(Value::Null) => None,
        Some(Value::Array(a)) => Some(a.iter().map(snowflake_of).collect::<Option<Vec<u64>>>().ok_or(BAD)?),
        Some(v) => Some(vec![snowflake_of(v).ok_or(BAD)?]),
    };
    let query = match d.get("query") {
        None | Some(Value::Null) => None,
        Some(Value::String(q)) => Some(q.clone()),
        Some(_) => return Err(BAD),
    };
    if query.is_none() && user_ids.is_none() {
        return Err(BAD);
    }
    let limit = match d.get("limit") {
        Some(Value::Number(n)) => n.as_u64().ok_or(BAD)? as usize,
        None | Some(Value::Null) if query.is_none() => 0,
        _ => return Err(BAD),
    };
    let nonce = d
        .get("nonce")
        .and_then(Value::as_str)
        .filter(|n| n.len() <= NONCE_MAX_BYTES)
        .map(str::to_string);
    let presences = d.get("presences").and_then(Value::as_bool).unwrap_or(false);
    Ok(MembersRequest {
        guild_id,
        query,
        limit,
        user_ids,
        nonce,
        presences,
    })
}

/// The members a request selects from `users` (`(id, username)` in member order), and the
/// requested IDs that are no member. Prefix queries are case-insensitive; `query` and `user_ids`
/// return at most [`REQUEST_CAP`] members, an empty query with limit 0 everyone.
pub fn select(users: &[(u64, &str)], req: &MembersRequest) -> (Vec<u64>, Vec<u64>) {
    if let Some(ids) = &req.user_ids {
        let ids = &ids[..ids.len().min(REQUEST_CAP)];
        let found: Vec<u64> = ids
            .iter()
            .copied()
            .filter(|id| users.iter().any(|(u, _)| u == id))
            .collect();
        let missing = ids.iter().copied().filter(|id| !found.contains(id)).collect();
        return (found, missing);
    }
    let query = req.query.as_deref().unwrap_or_default().to_lowercase();
    let cap = match (query.is_empty(), req.limit) {
        (true, 0) => usize::MAX,
        (_, 0) => REQUEST_CAP,
        (_, n) => n.min(REQUEST_CAP),
    };
    let found = users
        .iter()
        .filter(|(_, name)| name.to_lowercase().starts_with(&query))
        .map(|(id, _)| *id)
        .take(cap)
        .collect();
    (found, Vec::new())
}

/// Whether a request needs GUILD_MEMBERS: asking for the whole list (an empty query).
pub fn needs_guild_members(req: &MembersRequest) -> bool {
    req.user_ids.is_none() && req.query.as_deref() == Some("")
}

/// Answers op 8 on session `session_id`: GUILD_MEMBERS_CHUNK events of up to [`CHUNK_SIZE`]
/// members. A whole-list request from a bot without GUILD_MEMBERS gets no answer (Discord
/// documents the intent as required and sends nothing it does not allow); presences come only
/// with GUILD_PRESENCES, and are empty (the sandbox has no presences).
pub fn request_guild_members(shared: &Shared, session_id: &str, d: &Value) -> Result<(), (u16, &'static str)> {
    let req = parse_request(d)?;
    let world = shared.world.lock().expect("world lock");
    let mut sessions = shared.gateway.sessions.lock().expect("gateway lock");
    let Some(session) = sessions.get_mut(session_id) else {
        return Ok(());
    };
    if needs_guild_members(&req) && session.intents & intents::GUILD_MEMBERS == 0 {
        tracing::debug!(
            bot = session.bot_id,
            "op 8 for a whole member list without GUILD_MEMBERS: ignored"
        );
        return Ok(());
    }
    if !world.guilds_of(session.bot_id).iter().any(|g| g.id == req.guild_id) {
        return Ok(());
    }
    let users: Vec<(u64, &str)> = world.users().map(|u| (u.id, u.name.as_str())).collect();
    let (found, not_found) = select(&users, &req);
    let presences = req.presences && session.intents & intents::GUILD_PRESENCES != 0;
    let chunks: Vec<&[u64]> = if found.is_empty() {
        vec![&[]]
    } else {
        found.chunks(CHUNK_SIZE).collect()
    };
    let count = chunks.len();
    for (index, chunk) in chunks.into_iter().enumerate() {
        let mut v = json!({
            "guild_id": req.guild_id.to_string(),
            "members": chunk.iter().map(|u| world.guild_member_json(req.guild_id, *u)).collect::<Vec<_>>(),
            "chunk_index": index,
            "chunk_count": count,
        });
        if index == 0 && !not_found.is_empty() {
            v["not_found"] = json!(not_found.iter().map(u64::to_string).collect::<Vec<_>>());
        }
        if presences {
            v["presences"] = json!([]);
        }
        if let Some(n) = &req.nonce {
            v["nonce"] = json!(n);
        }
        session.push_value("GUILD_MEMBERS_CHUNK", &v);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(d: Value) -> MembersRequest {
        parse_request(&d).unwrap()
    }

    #[test]
    fn requests_parse_as_documented() {
        let r = req(json!({"guild_id": "5", "query": "", "limit": 0, "nonce": "n"}));
        assert_eq!((r.guild_id, r.query.as_deref(), r.limit), (5, Some(""), 0));
        assert!(needs_guild_members(&r));
        let r = req(json!({"guild_id": ["5"], "user_ids": "7"}));
        assert_eq!(r.user_ids, Some(vec![7]));
        assert!(!needs_guild_members(&r));
        let long = "x".repeat(33);
        assert_eq!(
            req(json!({"guild_id": 5, "query": "a", "limit": 1, "nonce": long})).nonce,
            None
        );
        for bad in [
            json!({"query": ""}),
            json!({"guild_id": "5"}),
            json!({"guild_id": "5", "query": "a"}),
            json!({"guild_id": ["5", "6"], "query": "", "limit": 0}),
        ] {
            assert_eq!(parse_request(&bad), Err((4002, "Decode error")), "{bad}");
        }
    }

    #[test]
    fn selection_follows_query_limit_and_ids() {
        let users = [(1, "alice"), (2, "Ada"), (3, "bob"), (4, "Basil")];
        let q = |query: &str, limit| MembersRequest {
            guild_id: 9,
            query: Some(query.into()),
            limit,
            user_ids: None,
            nonce: None,
            presences: false,
        };
        assert_eq!(select(&users, &q("", 0)).0, vec![1, 2, 3, 4]);
        assert_eq!(select(&users, &q("a", 0)).0, vec![1, 2]);
        assert_eq!(select(&users, &q("B", 1)).0, vec![3]);
        let by_id = MembersRequest {
            query: None,
            user_ids: Some(vec![4, 99, 1]),
            ..q("", 0)
        };
        assert_eq!(select(&users, &by_id), (vec![4, 1], vec![99]));
    }

    #[test]
    fn unnamed_bots_get_message_content_and_guild_members_only() {
        let (w, _, ada, _) = crate::world::tests::world();
        assert_eq!(
            w.granted_privileged_intents(ada),
            intents::MESSAGE_CONTENT | intents::GUILD_MEMBERS
        );
    }
}
