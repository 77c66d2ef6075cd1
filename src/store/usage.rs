//! Token usage for budgets, in hour buckets: what each agent and each user spent, and when a user
//! was last told a budget is spent.
//!
//! A turn's tokens are counted in memory first ([`UsageBuffer`]) and written to sled by the next
//! flush of the store, added to what is there (sled's `update_and_fetch`), so usage survives
//! restarts and concurrent turns. Every turn that spends tokens saves its memory right after
//! (a flush), so its usage is durable with its reply, as when each count was written at once;
//! a crash loses only the usage of a call whose reply was not saved either. Reads add what is
//! still in memory, so a budget check sees every earlier turn. Counting in memory spares each
//! turn four read-modify-writes on keys that every turn of the hour shares (the agent's total,
//! the user's under two scopes, the channel's): the store applies one per key and flush.
//!
//! Keys: `use/1/a/<agent>/<hour>`, `use/1/c/<agent>/<channel>/<hour>` and
//! `use/1/u/<scope>/<user>/<hour>` → 8 bytes (big-endian) of tokens, where `<scope>` is the agent's name, or `*` for troupe-wide user budgets and
//! `<hour>` is zero-padded hours since the Unix epoch; `bnote/1/<agent>/<user>` → 8 bytes: when
//! the user was last sent the budget notice (ms since the epoch).

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use super::{classify, Store, StoreError};
use crate::quota::hour_of;

/// The scope segment of troupe-wide user usage.
pub const TROUPE: &str = "*";

fn agent_key(agent: &str, hour: u64) -> String {
    format!("use/1/a/{agent}/{hour:012}")
}

fn user_prefix(scope: &str, user: u64) -> String {
    format!("use/1/u/{scope}/{user}/")
}

fn add(db: &sled::Db, key: &str, tokens: u64) -> Result<(), sled::Error> {
    db.update_and_fetch(key, |old| {
        let old = old
            .and_then(|b| <[u8; 8]>::try_from(b).ok())
            .map_or(0, u64::from_be_bytes);
        Some(old.saturating_add(tokens).to_be_bytes().to_vec())
    })?;
    Ok(())
}

/// Tokens counted but not yet written to sled, by key. Shared by every clone of a [`Store`];
/// written by [`Store::flush`] and, for a store dropped without one, when the last clone goes.
#[derive(Debug)]
pub(super) struct UsageBuffer {
    db: sled::Db,
    pending: Mutex<HashMap<String, u64>>,
}

impl UsageBuffer {
    pub(super) fn new(db: sled::Db) -> Self {
        Self {
            db,
            pending: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, u64>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn count(&self, pending: &mut HashMap<String, u64>, key: String, tokens: u64) {
        let n = pending.entry(key).or_default();
        *n = n.saturating_add(tokens);
    }

    /// Writes what was counted to sled (not flushed). On an error the counts not written stay
    /// counted, for the next try.
    pub(super) fn apply(&self) -> Result<(), sled::Error> {
        let mut pending = self.lock();
        self.apply_locked(&mut pending)
    }

    fn apply_locked(&self, pending: &mut HashMap<String, u64>) -> Result<(), sled::Error> {
        let counted: Vec<(String, u64)> = pending.drain().collect();
        for (i, (key, tokens)) in counted.iter().enumerate() {
            if let Err(e) = add(&self.db, key, *tokens) {
                for (key, tokens) in &counted[i..] {
                    self.count(pending, key.clone(), *tokens);
                }
                return Err(e);
            }
        }
        Ok(())
    }

    /// What was spent under `prefix` from `since_hour` on: sled's buckets plus what is counted.
    /// Read under the buffer's lock, so a concurrent [`UsageBuffer::apply`] is seen whole or
    /// not at all.
    fn sum(&self, prefix: &str, since_hour: u64) -> Result<u64, sled::Error> {
        let pending = self.lock();
        let start = format!("{prefix}{since_hour:012}");
        let mut total = 0u64;
        for kv in self.db.range(start.as_bytes()..) {
            let (k, v) = kv?;
            if !k.starts_with(prefix.as_bytes()) {
                break;
            }
            let n = <[u8; 8]>::try_from(v.as_ref()).map_or(0, u64::from_be_bytes);
            total = total.saturating_add(n);
        }
        for (key, tokens) in pending.iter() {
            if key.starts_with(prefix) && key.as_str() >= start.as_str() {
                total = total.saturating_add(*tokens);
            }
        }
        Ok(total)
    }
}

impl Drop for UsageBuffer {
    /// The last clone of a store went without a flush: what was counted goes to sled, which
    /// flushes as it closes.
    fn drop(&mut self) {
        let pending = self.pending.get_mut().unwrap_or_else(|p| p.into_inner());
        let mut pending = std::mem::take(pending);
        if let Err(e) = self.apply_locked(&mut pending) {
            tracing::warn!(error = %e, "cannot write token usage counted since the last flush");
        }
    }
}

impl Store {
    /// Adds a call's tokens: all of them to the agent, and each user's share to that user under
    /// each of `scopes` (the agent's name, [`TROUPE`]).
    pub fn add_usage(
        &self,
        agent: &str,
        tokens: u64,
        users: &[(u64, u64)],
        scopes: &[&str],
        now_ms: u64,
    ) -> Result<(), StoreError> {
        let hour = hour_of(now_ms);
        let buffer = &self.usage;
        let mut pending = buffer.lock();
        buffer.count(&mut pending, agent_key(agent, hour), tokens);
        for (user, share) in users {
            for scope in scopes {
                let key = format!("{}{hour:012}", user_prefix(scope, *user));
                buffer.count(&mut pending, key, *share);
            }
        }
        Ok(())
    }

    /// Adds a call's tokens to what the agent spent in a channel (for `/usage`).
    pub fn add_channel_usage(&self, agent: &str, channel: u64, tokens: u64, now_ms: u64) -> Result<(), StoreError> {
        let key = format!("use/1/c/{agent}/{channel}/{:012}", hour_of(now_ms));
        let mut pending = self.usage.lock();
        self.usage.count(&mut pending, key, tokens);
        Ok(())
    }

    /// Writes the usage counted since the last flush to sled (not flushed): before the store's
    /// flush, and before anything reads or removes usage records directly.
    pub(super) fn apply_usage(&self) -> Result<(), StoreError> {
        self.usage.apply().map_err(|e| classify(&self.path, e))
    }

    /// Tokens the agent spent in a channel since `since_ms`.
    pub fn channel_usage(&self, agent: &str, channel: u64, since_ms: u64) -> Result<u64, StoreError> {
        self.usage
            .sum(&format!("use/1/c/{agent}/{channel}/"), hour_of(since_ms))
            .map_err(|e| classify(&self.path, e))
    }

    /// Tokens the agent spent since `since_ms`.
    pub fn agent_usage(&self, agent: &str, since_ms: u64) -> Result<u64, StoreError> {
        self.usage
            .sum(&format!("use/1/a/{agent}/"), hour_of(since_ms))
            .map_err(|e| classify(&self.path, e))
    }

    /// Tokens the user spent under `scope` since `since_ms`.
    pub fn user_usage(&self, scope: &str, user: u64, since_ms: u64) -> Result<u64, StoreError> {
        self.usage
            .sum(&user_prefix(scope, user), hour_of(since_ms))
            .map_err(|e| classify(&self.path, e))
    }

    /// When the user was last sent the agent's budget notice.
    pub fn budget_notice_sent(&self, agent: &str, user: u64) -> Result<Option<u64>, StoreError> {
        let v = self
            .db
            .get(format!("bnote/1/{agent}/{user}"))
            .map_err(|e| classify(&self.path, e))?;
        Ok(v.and_then(|b| <[u8; 8]>::try_from(b.as_ref()).ok())
            .map(u64::from_be_bytes))
    }

    /// Records that the user was sent the agent's budget notice now.
    pub fn record_budget_notice(&self, agent: &str, user: u64, now_ms: u64) -> Result<(), StoreError> {
        self.db
            .insert(format!("bnote/1/{agent}/{user}"), &now_ms.to_be_bytes()[..])
            .map_err(|e| classify(&self.path, e))?;
        Ok(())
    }

    /// Every agent's and user's usage since `since_ms`, for `troupe usage`: `(key, tokens)` with
    /// keys `agent NAME` and `user ID (SCOPE)`, largest first.
    pub fn usage_report(&self, since_ms: u64) -> Result<Vec<(String, u64)>, StoreError> {
        self.apply_usage()?;
        let since = hour_of(since_ms);
        let mut totals: std::collections::BTreeMap<String, u64> = Default::default();
        for kv in self.db.scan_prefix("use/1/") {
            let (k, v) = kv.map_err(|e| classify(&self.path, e))?;
            let key = String::from_utf8_lossy(&k);
            let mut parts: Vec<&str> = key.split('/').collect();
            let Some(hour) = parts.pop().and_then(|h| h.parse::<u64>().ok()) else {
                continue;
            };
            if hour < since {
                continue;
            }
            let name = match parts.as_slice() {
                ["use", "1", "a", agent] => format!("agent {agent}"),
                ["use", "1", "u", scope, user] if *scope == TROUPE => format!("user {user} (all agents)"),
                ["use", "1", "u", scope, user] => format!("user {user} (with {scope})"),
                _ => continue,
            };
            let n = <[u8; 8]>::try_from(v.as_ref()).map_or(0, u64::from_be_bytes);
            *totals.entry(name).or_default() += n;
        }
        let mut out: Vec<(String, u64)> = totals.into_iter().collect();
        out.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use crate::quota::HOUR_MS;
    use crate::store::Store;

    #[tokio::test]
    async fn usage_is_read_before_it_is_written_and_written_by_the_next_flush() {
        let dir = tempfile::tempdir().unwrap();
        let t0 = 1_796_083_200_000; // 2026-12-01T00:00Z
        let s = Store::open(dir.path()).unwrap();
        let in_sled = |key: &str| {
            s.db.get(key)
                .unwrap()
                .map(|v| u64::from_be_bytes(<[u8; 8]>::try_from(v.as_ref()).unwrap()))
        };
        let agent_key = format!("use/1/a/Ada/{:012}", t0 / HOUR_MS);
        s.add_usage("Ada", 300, &[(7, 300)], &["Ada", "*"], t0).unwrap();
        s.add_usage("Ada", 50, &[(7, 50)], &["Ada", "*"], t0 - 2 * HOUR_MS)
            .unwrap();
        s.add_channel_usage("Ada", 5, 300, t0).unwrap();
        // Counted in memory: a budget check sees it at once; sled has nothing yet.
        assert_eq!(in_sled(&agent_key), None);
        assert_eq!(s.agent_usage("Ada", t0).unwrap(), 300);
        assert_eq!(
            s.agent_usage("Ada", t0 - 2 * HOUR_MS).unwrap(),
            350,
            "an earlier window"
        );
        assert_eq!(s.user_usage("*", 7, t0).unwrap(), 300);
        assert_eq!(s.channel_usage("Ada", 5, t0).unwrap(), 300);
        // The flush (the one saving the turn's memory) writes the counts before sled's flush.
        s.flush().await.unwrap();
        assert_eq!(in_sled(&agent_key), Some(300));
        s.add_usage("Ada", 100, &[(7, 100)], &["Ada", "*"], t0).unwrap();
        assert_eq!(s.agent_usage("Ada", t0).unwrap(), 400, "sled's count plus the new one");
        assert_eq!(s.user_usage("Ada", 7, t0).unwrap(), 400);
        s.flush().await.unwrap();
        assert_eq!(in_sled(&agent_key), Some(400), "added to, not replaced");
        assert_eq!(s.agent_usage("Ada", t0).unwrap(), 400, "counted once");
    }

    #[test]
    fn usage_adds_up_per_window_and_survives_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let t0 = 1_796_083_200_000; // 2026-12-01T00:00Z
        {
            let s = Store::open(dir.path()).unwrap();
            s.add_usage("Ada", 300, &[(7, 150), (8, 150)], &["Ada", "*"], t0)
                .unwrap();
            s.add_usage("Ada", 100, &[(7, 100)], &["Ada", "*"], t0 + 5 * HOUR_MS)
                .unwrap();
            s.add_usage("Basil", 50, &[(7, 50)], &["Basil", "*"], t0 + 5 * HOUR_MS)
                .unwrap();
            s.record_budget_notice("Ada", 7, t0 + 10).unwrap();
            s.add_channel_usage("Ada", 5, 300, t0).unwrap();
            s.add_channel_usage("Ada", 5, 100, t0 + 5 * HOUR_MS).unwrap();
        }
        let s = crate::store::tests::reopen(dir.path()).unwrap();
        assert_eq!(s.agent_usage("Ada", t0).unwrap(), 400);
        assert_eq!(s.agent_usage("Ada", t0 + 5 * HOUR_MS).unwrap(), 100, "a later window");
        assert_eq!(s.user_usage("Ada", 7, t0).unwrap(), 250);
        assert_eq!(s.user_usage("*", 7, t0).unwrap(), 300, "with every agent");
        assert_eq!(s.user_usage("Ada", 8, t0).unwrap(), 150);
        assert_eq!(s.user_usage("Ada", 9, t0).unwrap(), 0);
        assert_eq!(s.budget_notice_sent("Ada", 7).unwrap(), Some(t0 + 10));
        assert_eq!(s.budget_notice_sent("Ada", 8).unwrap(), None);
        assert_eq!(s.channel_usage("Ada", 5, t0).unwrap(), 400);
        assert_eq!(s.channel_usage("Ada", 6, t0).unwrap(), 0);
        let report = s.usage_report(t0).unwrap();
        assert_eq!(report[0], ("agent Ada".to_string(), 400));
        assert!(
            !report.iter().any(|(k, _)| k.contains('5')),
            "channels are not in the report: {report:?}"
        );
        assert!(report.contains(&("user 7 (all agents)".to_string(), 300)), "{report:?}");
    }
}
