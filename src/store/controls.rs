//! What moderators and users set with slash commands: channels where an agent is paused,
//! users' budget overrides, and `/forget-me`'s deletion of what is remembered about a user.
//!
//! Keys: `pause/1/<agent>/<channel id>` → empty; `ubud/1/<agent>/<user id>` → 8 bytes
//! (big-endian) of tokens.

use super::pending::{parse_key_segment, PendingRecord};
use super::{classify, MemoryRecord, Store, StoreError};
use crate::commands::forget;
use crate::routing::ConversationKey;

/// What `/forget-me` removed from one agent's records.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Forgotten {
    /// Conversations whose memory held the user (deleted whole, or their turns removed).
    pub conversations: usize,
    /// Pending messages by the user.
    pub pending: usize,
    /// Usage and notice records keyed by the user.
    pub usage: usize,
}

impl Forgotten {
    /// Adds another agent's (or another step's) figures.
    pub fn add(&mut self, other: Forgotten) {
        self.conversations += other.conversations;
        self.pending += other.pending;
        self.usage += other.usage;
    }
}

fn pause_key(agent: &str, channel: u64) -> String {
    format!("pause/1/{agent}/{channel}")
}

fn budget_key(agent: &str, user: u64) -> String {
    format!("ubud/1/{agent}/{user}")
}

impl Store {
    /// Pauses (`true`) or resumes the agent in a channel, durably.
    pub async fn set_paused(&self, agent: &str, channel: u64, paused: bool) -> Result<(), StoreError> {
        let k = pause_key(agent, channel);
        let done = if paused {
            self.db.insert(k, &[]).map(|_| ())
        } else {
            self.db.remove(k).map(|_| ())
        };
        done.map_err(|e| classify(&self.path, e))?;
        self.flush().await
    }

    /// The channels where the agent is paused.
    pub fn paused_channels(&self, agent: &str) -> Result<Vec<u64>, StoreError> {
        let prefix = format!("pause/1/{agent}/");
        let mut out = Vec::new();
        for k in self.db.scan_prefix(&prefix).keys() {
            let k = k.map_err(|e| classify(&self.path, e))?;
            if let Some(c) = std::str::from_utf8(&k[prefix.len()..])
                .ok()
                .and_then(|s| s.parse().ok())
            {
                out.push(c);
            }
        }
        Ok(out)
    }

    /// A moderator's budget for the user with this agent, if one is set.
    pub fn budget_override(&self, agent: &str, user: u64) -> Result<Option<u64>, StoreError> {
        let v = self
            .db
            .get(budget_key(agent, user))
            .map_err(|e| classify(&self.path, e))?;
        Ok(v.and_then(|b| <[u8; 8]>::try_from(b.as_ref()).ok())
            .map(u64::from_be_bytes))
    }

    /// Sets (or with `None` lifts) a user's budget with this agent, durably.
    pub async fn set_budget_override(&self, agent: &str, user: u64, tokens: Option<u64>) -> Result<(), StoreError> {
        let k = budget_key(agent, user);
        let done = match tokens {
            Some(t) => self.db.insert(k, &t.to_be_bytes()[..]).map(|_| ()),
            None => self.db.remove(k).map(|_| ()),
        };
        done.map_err(|e| classify(&self.path, e))?;
        self.flush().await
    }

    /// Deletes a conversation's memory record, durably (`/reset`, `/forget-me`).
    pub async fn delete_memory(&self, agent: &str, key: ConversationKey) -> Result<(), StoreError> {
        self.db
            .remove(Self::memory_key(agent, key))
            .map_err(|e| classify(&self.path, e))?;
        self.flush().await
    }

    /// The conversations of an agent that have memory.
    pub fn memory_conversations(&self, agent: &str) -> Result<Vec<ConversationKey>, StoreError> {
        let prefix = format!("mem/1/{agent}/");
        let mut out = Vec::new();
        for k in self.db.scan_prefix(&prefix).keys() {
            let k = k.map_err(|e| classify(&self.path, e))?;
            if let Some(key) = std::str::from_utf8(&k[prefix.len()..]).ok().and_then(parse_key_segment) {
                out.push(key);
            }
        }
        Ok(out)
    }

    /// Removes what the agent remembers about `user` (display name `name`) from the store:
    /// conversations that are theirs alone, their turns (and the replies to them) in shared
    /// ones, their pending messages, and their usage and notice records with this agent.
    /// Conversations in `live` are skipped: their actors forget in memory and save.
    pub async fn forget_user(
        &self,
        agent: &str,
        user: u64,
        name: &str,
        live: &[ConversationKey],
    ) -> Result<Forgotten, StoreError> {
        let err = |e| classify(&self.path, e);
        let mut done = Forgotten::default();
        for key in self.memory_conversations(agent)? {
            if live.contains(&key) {
                continue;
            }
            let k = Self::memory_key(agent, key);
            if forget::owned_by(key, user) {
                self.db.remove(&k).map_err(err)?;
                done.conversations += 1;
                continue;
            }
            // An unreadable record is left to the conversation that reads it (set aside then).
            let Ok(turns) = self.memory(agent, key) else { continue };
            if let Some(kept) = forget::without_user(&turns, user, name) {
                let bytes = serde_json::to_vec(&MemoryRecord { v: 1, turns: kept }).expect("memory serializes");
                self.db.insert(&k, bytes).map_err(err)?;
                done.conversations += 1;
            }
        }
        done.pending = self.forget_pending(agent, user)?;
        self.apply_usage()?;
        done.usage += self.remove_prefix(&format!("use/1/u/{agent}/{user}/"))?;
        let notice = self.db.remove(format!("bnote/1/{agent}/{user}")).map_err(err)?;
        done.usage += usize::from(notice.is_some());
        self.flush().await?;
        Ok(done)
    }

    /// Removes the user's troupe-wide usage records (`/forget-me` for every agent).
    pub async fn forget_user_troupe(&self, user: u64) -> Result<usize, StoreError> {
        self.apply_usage()?;
        let n = self.remove_prefix(&format!("use/1/u/{}/{user}/", super::TROUPE))?;
        self.flush().await?;
        Ok(n)
    }

    /// Pending messages the user wrote, or kept under one of their own conversations.
    fn forget_pending(&self, agent: &str, user: u64) -> Result<usize, StoreError> {
        let prefix = format!("pend/1/{agent}/");
        let mut doomed = Vec::new();
        for item in self.db.scan_prefix(&prefix) {
            let (k, v) = item.map_err(|e| classify(&self.path, e))?;
            let owned = std::str::from_utf8(&k[prefix.len()..])
                .ok()
                .and_then(|rest| rest.split('/').next())
                .and_then(parse_key_segment)
                .is_some_and(|key| forget::owned_by(key, user));
            let by_user = serde_json::from_slice::<PendingRecord>(&v).is_ok_and(|r| r.message.author_id == user);
            if owned || by_user {
                doomed.push(k);
            }
        }
        for k in &doomed {
            self.db.remove(k).map_err(|e| classify(&self.path, e))?;
        }
        Ok(doomed.len())
    }

    fn remove_prefix(&self, prefix: &str) -> Result<usize, StoreError> {
        let keys: Vec<sled::IVec> = self
            .db
            .scan_prefix(prefix)
            .keys()
            .collect::<Result<_, _>>()
            .map_err(|e| classify(&self.path, e))?;
        for k in &keys {
            self.db.remove(k).map_err(|e| classify(&self.path, e))?;
        }
        Ok(keys.len())
    }
}

#[cfg(test)]
mod tests {
    use crate::memory::MemoryTurn;
    use crate::routing::ConversationKey;
    use crate::store::{PendingRecord, Store};

    fn turn(author: &str, id: Option<u64>, message_id: u64, assistant: bool) -> MemoryTurn {
        MemoryTurn {
            assistant,
            author: author.into(),
            content: format!("{author} says {message_id}"),
            message_id,
            time_ms: 0,
            cut: false,
            author_id: id,
            attachments: Vec::new(),
        }
    }

    fn inbound(author_id: u64, id: u64) -> crate::message::Inbound {
        crate::message::Inbound {
            id,
            channel_id: 1,
            guild_id: Some(2),
            author_id,
            author_name: "x".into(),
            author_is_bot: false,
            webhook_id: None,
            content: "secret text".into(),
            mentions: vec![],
            mention_everyone: false,
            reply_to: None,
            footers: vec![],
            chain: crate::acl::ChainLength::HUMAN,
            attachments: Vec::new(),
        }
    }

    #[tokio::test]
    async fn pauses_and_budget_overrides_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = Store::open(dir.path()).unwrap();
            s.set_paused("Ada", 10, true).await.unwrap();
            s.set_paused("Ada", 11, true).await.unwrap();
            s.set_paused("Ada", 11, false).await.unwrap();
            s.set_paused("Basil", 12, true).await.unwrap();
            s.set_budget_override("Ada", 7, Some(500)).await.unwrap();
            s.set_budget_override("Ada", 8, Some(1)).await.unwrap();
            s.set_budget_override("Ada", 8, None).await.unwrap();
        }
        let s = crate::store::tests::reopen(dir.path()).unwrap();
        assert_eq!(s.paused_channels("Ada").unwrap(), vec![10]);
        assert_eq!(s.paused_channels("Basil").unwrap(), vec![12]);
        assert_eq!(s.budget_override("Ada", 7).unwrap(), Some(500));
        assert_eq!(s.budget_override("Ada", 8).unwrap(), None);
        assert_eq!(s.budget_override("Basil", 7).unwrap(), None);
    }

    #[tokio::test]
    async fn forgetting_a_user_leaves_no_record_of_them_and_keeps_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let shared = vec![
            turn("alice", Some(7), 1, false),
            turn("Ada", None, 1, true),
            turn("bob", Some(8), 2, false),
            turn("Ada", None, 2, true),
        ];
        s.save_memory("Ada", ConversationKey::Channel(1), &shared)
            .await
            .unwrap();
        s.save_memory("Ada", ConversationKey::User(7), &[turn("alice", Some(7), 3, false)])
            .await
            .unwrap();
        s.save_memory(
            "Ada",
            ConversationKey::ChannelUser(1, 7),
            &[turn("alice", Some(7), 4, false)],
        )
        .await
        .unwrap();
        s.save_memory("Ada", ConversationKey::User(8), &[turn("bob", Some(8), 5, false)])
            .await
            .unwrap();
        s.save_memory("Ada", ConversationKey::Channel(9), &[turn("alice", Some(7), 6, false)])
            .await
            .unwrap();
        let now = 1_796_083_200_000;
        s.add_usage("Ada", 100, &[(7, 50), (8, 50)], &["Ada", "*"], now)
            .unwrap();
        s.record_budget_notice("Ada", 7, now).unwrap();
        s.save_pending(
            "Ada",
            ConversationKey::Channel(1),
            &PendingRecord::new(inbound(7, 30), now, "llm", "x"),
        )
        .unwrap();
        s.save_pending(
            "Ada",
            ConversationKey::Channel(1),
            &PendingRecord::new(inbound(8, 31), now, "llm", "x"),
        )
        .unwrap();

        let done = s
            .forget_user("Ada", 7, "alice", &[ConversationKey::Channel(9)])
            .await
            .unwrap();
        assert_eq!((done.conversations, done.pending), (3, 1));
        assert!(done.usage >= 2, "{done:?}");
        let left: Vec<u64> = s
            .memory("Ada", ConversationKey::Channel(1))
            .unwrap()
            .iter()
            .map(|t| t.message_id)
            .collect();
        assert_eq!(left, [2, 2]);
        assert!(s.memory("Ada", ConversationKey::User(7)).unwrap().is_empty());
        assert!(s.memory("Ada", ConversationKey::ChannelUser(1, 7)).unwrap().is_empty());
        assert_eq!(s.memory("Ada", ConversationKey::User(8)).unwrap().len(), 1);
        assert_eq!(
            s.memory("Ada", ConversationKey::Channel(9)).unwrap().len(),
            1,
            "a live conversation forgets in its actor"
        );
        assert_eq!(s.user_usage("Ada", 7, now).unwrap(), 0);
        assert_eq!(
            s.user_usage("*", 7, now).unwrap(),
            50,
            "troupe-wide usage is every agent's"
        );
        assert_eq!(s.user_usage("Ada", 8, now).unwrap(), 50);
        assert_eq!(s.agent_usage("Ada", now).unwrap(), 100, "the agent's own total stays");
        assert_eq!(s.budget_notice_sent("Ada", 7).unwrap(), None);
        let pending: Vec<u64> = s.all_pending("Ada").unwrap().iter().map(|r| r.message.id).collect();
        assert_eq!(pending, [31]);
        assert_eq!(s.forget_user_troupe(7).await.unwrap(), 1);
        assert_eq!(s.user_usage("*", 7, now).unwrap(), 0);
    }
}
