//! Pending messages: answers an agent owes but has not delivered, because a failure deferred
//! them (model outage, open breaker, Discord errors) or their conversation had no room. Each is
//! kept with its first failure's time (the give-up clock survives restarts), its attempts and
//! its last error (for `--show-backlog`), under
//! `pend/1/<agent>/<conversation>/<message id, 20 digits>` so a conversation reads its own in ID
//! order. The message itself is durable on Discord too: a pending message holds its channel's
//! cursor back, so a replay after a crash reads it again.

use serde::{Deserialize, Serialize};

use super::{classify, Store, StoreError};
use crate::message::Inbound;
use crate::routing::ConversationKey;

/// One pending message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingRecord {
    /// Record version.
    pub v: u32,
    /// The message owed an answer.
    pub message: Inbound,
    /// When it was set aside (Unix ms); from its first failure on, when that failed: the
    /// give-up clock runs from there once `attempts` is above zero.
    pub since_ms: u64,
    /// Failed attempts so far.
    pub attempts: u32,
    /// What deferred it last: `llm`, `breaker`, `queue`, `delivery`, `store`, `room`,
    /// `quarantine`, `stopped`.
    pub cause: String,
    /// The last error, as logged (no provider text reaches Discord from here).
    pub last_error: String,
    /// Set aside because its conversation had no room (not yet attempted).
    pub waiting_for_room: bool,
}

impl PendingRecord {
    /// A record for a message deferred now (`now_ms`) for `cause`.
    pub fn new(message: Inbound, now_ms: u64, cause: &str, error: &str) -> Self {
        Self {
            v: 1,
            message,
            since_ms: now_ms,
            attempts: 0,
            cause: cause.to_string(),
            last_error: error.to_string(),
            waiting_for_room: false,
        }
    }
}

/// The key segment of a conversation, as in memory keys.
pub(super) fn key_segment(key: ConversationKey) -> String {
    match key {
        ConversationKey::Channel(c) => format!("c:{c}"),
        ConversationKey::ChannelUser(c, u) => format!("cu:{c}:{u}"),
        ConversationKey::User(u) => format!("u:{u}"),
    }
}

/// The conversation of a key segment.
pub(super) fn parse_key_segment(s: &str) -> Option<ConversationKey> {
    let mut parts = s.split(':');
    let key = match (parts.next()?, parts.next(), parts.next()) {
        ("c", Some(c), None) => ConversationKey::Channel(c.parse().ok()?),
        ("cu", Some(c), Some(u)) => ConversationKey::ChannelUser(c.parse().ok()?, u.parse().ok()?),
        ("u", Some(u), None) => ConversationKey::User(u.parse().ok()?),
        _ => return None,
    };
    parts.next().is_none().then_some(key)
}

fn prefix(agent: &str) -> String {
    format!("pend/1/{agent}/")
}

fn conversation_prefix(agent: &str, key: ConversationKey) -> String {
    format!("{}{}/", prefix(agent), key_segment(key))
}

pub(super) fn record_key(agent: &str, key: ConversationKey, message_id: u64) -> String {
    format!("{}{message_id:020}", conversation_prefix(agent, key))
}

impl Store {
    /// Keeps (or updates) a pending message. Not flushed: the message is durable on Discord
    /// and its cursor is held back; sled writes this within its flush interval.
    pub fn save_pending(&self, agent: &str, key: ConversationKey, record: &PendingRecord) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(record).expect("pending records serialize");
        self.db
            .insert(record_key(agent, key, record.message.id), bytes)
            .map(|_| ())
            .map_err(|e| classify(&self.path, e))
    }

    /// One pending message's record, if it has one.
    pub fn pending_record(
        &self,
        agent: &str,
        key: ConversationKey,
        message_id: u64,
    ) -> Result<Option<PendingRecord>, StoreError> {
        let k = record_key(agent, key, message_id);
        match self.db.get(&k).map_err(|e| classify(&self.path, e))? {
            None => Ok(None),
            Some(bytes) => self.decode_pending(&k, &bytes).map(Some),
        }
    }

    /// A conversation's pending messages, oldest first: at most `limit`, skipping `skip` IDs
    /// (those it already holds). An undecodable record is set aside (kept under `bad/`) and
    /// reported, never silently dropped.
    pub fn pending_of(
        &self,
        agent: &str,
        key: ConversationKey,
        limit: usize,
        skip: impl Fn(u64) -> bool,
    ) -> Result<Vec<PendingRecord>, StoreError> {
        let mut out = Vec::new();
        for item in self.db.scan_prefix(conversation_prefix(agent, key)) {
            if out.len() >= limit {
                break;
            }
            let (k, v) = item.map_err(|e| classify(&self.path, e))?;
            let id = std::str::from_utf8(&k)
                .ok()
                .and_then(|k| k.rsplit('/').next())
                .and_then(|id| id.parse::<u64>().ok());
            if id.is_some_and(&skip) {
                continue;
            }
            let key_text = String::from_utf8_lossy(&k).into_owned();
            match self.decode_pending(&key_text, &v) {
                Ok(record) => out.push(record),
                Err(e) => {
                    tracing::error!(agent, record = %key_text, error = %e, "undecodable pending record set aside under bad/");
                    self.set_aside(&key_text)?;
                }
            }
        }
        Ok(out)
    }

    /// How many messages a conversation has pending in the store.
    pub fn pending_count(&self, agent: &str, key: ConversationKey) -> usize {
        self.db.scan_prefix(conversation_prefix(agent, key)).keys().count()
    }

    /// Forgets pending messages (answered or given up).
    pub fn remove_pending(&self, agent: &str, key: ConversationKey, message_ids: &[u64]) -> Result<(), StoreError> {
        for id in message_ids {
            self.db
                .remove(record_key(agent, key, *id))
                .map_err(|e| classify(&self.path, e))?;
        }
        Ok(())
    }

    /// The conversations of an agent that have pending messages.
    pub fn pending_conversations(&self, agent: &str) -> Result<Vec<ConversationKey>, StoreError> {
        let prefix = prefix(agent);
        let mut keys: Vec<ConversationKey> = Vec::new();
        for k in self.db.scan_prefix(&prefix).keys() {
            let k = k.map_err(|e| classify(&self.path, e))?;
            let segment = std::str::from_utf8(&k[prefix.len()..])
                .ok()
                .and_then(|rest| rest.split('/').next())
                .and_then(parse_key_segment);
            if let Some(key) = segment {
                if keys.last() != Some(&key) {
                    keys.push(key);
                }
            }
        }
        keys.dedup();
        Ok(keys)
    }

    /// Every pending message of an agent (for `--show-backlog`), oldest first.
    pub fn all_pending(&self, agent: &str) -> Result<Vec<PendingRecord>, StoreError> {
        let mut out = Vec::new();
        for item in self.db.scan_prefix(prefix(agent)) {
            let (k, v) = item.map_err(|e| classify(&self.path, e))?;
            if let Ok(record) = self.decode_pending(&String::from_utf8_lossy(&k), &v) {
                out.push(record);
            }
        }
        out.sort_by_key(|r| r.message.id);
        Ok(out)
    }

    fn decode_pending(&self, key: &str, bytes: &[u8]) -> Result<PendingRecord, StoreError> {
        serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
            path: self.path.clone(),
            detail: format!("{key}: {e}"),
        })
    }

    /// Moves a record that cannot be read to `bad/1/<its key>`, so nothing is lost and the rest
    /// carries on; returns the key it is kept under.
    pub fn set_aside(&self, key: &str) -> Result<String, StoreError> {
        let bad = format!("bad/1/{key}");
        if let Some(v) = self.db.remove(key).map_err(|e| classify(&self.path, e))? {
            self.db.insert(&bad, v).map_err(|e| classify(&self.path, e))?;
        }
        Ok(bad)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acl::ChainLength;

    fn message(id: u64) -> Inbound {
        Inbound {
            id,
            channel_id: 10,
            guild_id: Some(1),
            author_id: 7,
            author_name: "alice".into(),
            author_is_bot: false,
            webhook_id: None,
            content: format!("question {id}"),
            mentions: vec![3],
            mention_everyone: false,
            reply_to: None,
            footers: vec![],
            chain: ChainLength::HUMAN,
            attachments: Vec::new(),
        }
    }

    #[test]
    fn key_segments_round_trip() {
        for key in [
            ConversationKey::Channel(5),
            ConversationKey::ChannelUser(5, 6),
            ConversationKey::User(u64::MAX),
        ] {
            assert_eq!(parse_key_segment(&key_segment(key)), Some(key));
        }
        assert_eq!(parse_key_segment("c:1:2"), None);
        assert_eq!(parse_key_segment("x:1"), None);
    }

    #[test]
    fn pending_messages_are_kept_in_id_order_per_conversation_until_removed() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let key = ConversationKey::Channel(10);
        let other = ConversationKey::User(7);
        // 9 sorts after 10 as text, not with the zero-padded IDs.
        for id in [100, 9, 55] {
            s.save_pending("Ada", key, &PendingRecord::new(message(id), 1_000, "llm", "timeout"))
                .unwrap();
        }
        s.save_pending("Ada", other, &PendingRecord::new(message(1), 1_000, "room", ""))
            .unwrap();
        s.save_pending("Bea", key, &PendingRecord::new(message(2), 1_000, "llm", ""))
            .unwrap();
        let ids = |v: Vec<PendingRecord>| v.into_iter().map(|r| r.message.id).collect::<Vec<_>>();
        assert_eq!(ids(s.pending_of("Ada", key, 10, |_| false).unwrap()), vec![9, 55, 100]);
        assert_eq!(ids(s.pending_of("Ada", key, 2, |_| false).unwrap()), vec![9, 55]);
        assert_eq!(ids(s.pending_of("Ada", key, 2, |id| id == 9).unwrap()), vec![55, 100]);
        assert_eq!(s.pending_count("Ada", key), 3);
        let mut keys = s.pending_conversations("Ada").unwrap();
        keys.sort();
        assert_eq!(keys, {
            let mut k = vec![key, other];
            k.sort();
            k
        });
        assert_eq!(ids(s.all_pending("Ada").unwrap()), vec![1, 9, 55, 100]);
        let mut record = s.pending_record("Ada", key, 55).unwrap().unwrap();
        assert_eq!(record.message, message(55));
        record.attempts = 3;
        s.save_pending("Ada", key, &record).unwrap();
        assert_eq!(s.pending_record("Ada", key, 55).unwrap().unwrap().attempts, 3);
        s.remove_pending("Ada", key, &[9, 100]).unwrap();
        assert_eq!(ids(s.pending_of("Ada", key, 10, |_| false).unwrap()), vec![55]);
        assert_eq!(s.pending_record("Ada", key, 9).unwrap(), None);
    }

    #[test]
    fn an_undecodable_pending_record_is_set_aside_not_lost() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let key = ConversationKey::Channel(10);
        s.save_pending("Ada", key, &PendingRecord::new(message(5), 1, "llm", ""))
            .unwrap();
        let bad_key = record_key("Ada", key, 4);
        s.db.insert(&bad_key, &b"{oops"[..]).unwrap();
        let ok = s.pending_of("Ada", key, 10, |_| false).unwrap();
        assert_eq!(ok.len(), 1);
        assert_eq!(
            s.db.get(format!("bad/1/{bad_key}")).unwrap().as_deref(),
            Some(&b"{oops"[..])
        );
        assert_eq!(s.pending_count("Ada", key), 1);
    }
}
