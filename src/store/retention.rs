//! Retention: records kept per message (chain lengths `acl/1/<message id>`, answered messages
//! `ans/1/<agent>/<message id>`) are removed once their message is older than `[store]
//! retention_days`, so the store stays bounded however long troupe runs. A message's age is read
//! from its ID, a Discord snowflake. Records kept per channel or conversation (cursors, DM
//! channels, webhooks, memory) are not touched.

use super::{classify, Store, StoreError};

/// Removals applied to sled at once.
const BATCH: usize = 1_000;

/// The per-message key prefixes; the message ID is the key's last `/`-separated part.
const PER_MESSAGE: [&str; 2] = ["acl/1/", "ans/1/"];

/// The Unix time in milliseconds at which a Discord snowflake (a message ID) was created.
pub fn snowflake_unix_ms(id: u64) -> u64 {
    crate::snowflake::unix_ms(id)
}

/// What [`Store::prune`] removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PruneReport {
    /// Chain-length records (`acl/1/...`).
    pub chains: usize,
    /// Answered records (`ans/1/...`).
    pub answers: usize,
}

impl PruneReport {
    /// Records removed in all.
    pub fn removed(&self) -> usize {
        self.chains + self.answers
    }
}

impl Store {
    /// Removes the per-message records of messages created before `older_than_unix_ms`, in
    /// batches, then flushes. Keys whose last part is not a message ID are left alone.
    pub async fn prune(&self, older_than_unix_ms: u64) -> Result<PruneReport, StoreError> {
        let store = self.clone();
        let report = tokio::task::spawn_blocking(move || {
            Ok::<_, StoreError>(PruneReport {
                chains: store.prune_prefix(PER_MESSAGE[0], older_than_unix_ms)?,
                answers: store.prune_prefix(PER_MESSAGE[1], older_than_unix_ms)?,
            })
        })
        .await
        .map_err(|e| StoreError::Corrupt {
            path: self.path.clone(),
            detail: format!("prune task failed: {e}"),
        })??;
        if report.removed() > 0 {
            self.flush().await?;
        }
        Ok(report)
    }

    /// Removes the old records under one prefix; returns how many.
    fn prune_prefix(&self, prefix: &str, older_than_unix_ms: u64) -> Result<usize, StoreError> {
        let mut removed = 0;
        let mut batch = sled::Batch::default();
        let mut pending = 0;
        for key in self.db.scan_prefix(prefix).keys() {
            let key = key.map_err(|e| classify(&self.path, e))?;
            let id = std::str::from_utf8(&key)
                .ok()
                .and_then(|k| k.rsplit('/').next())
                .and_then(|id| id.parse::<u64>().ok());
            if id.is_some_and(|id| snowflake_unix_ms(id) < older_than_unix_ms) {
                batch.remove(key);
                pending += 1;
            }
            if pending == BATCH {
                self.db
                    .apply_batch(std::mem::take(&mut batch))
                    .map_err(|e| classify(&self.path, e))?;
                removed += pending;
                pending = 0;
            }
        }
        if pending > 0 {
            self.db.apply_batch(batch).map_err(|e| classify(&self.path, e))?;
            removed += pending;
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snowflake::DISCORD_EPOCH_MS;

    const DAY_MS: u64 = 86_400_000;

    /// The smallest snowflake of a Unix time (what Discord would stamp a message with).
    fn snowflake(unix_ms: u64) -> u64 {
        (unix_ms - DISCORD_EPOCH_MS) << 22
    }

    #[test]
    fn snowflake_time_is_read_from_the_top_bits() {
        // A message ID from Discord's documentation: 2016-04-30 11:18:25.796 UTC.
        assert_eq!(snowflake_unix_ms(175_928_847_299_117_063), 1_462_015_105_796);
        assert_eq!(snowflake_unix_ms(0), DISCORD_EPOCH_MS);
        assert_eq!(
            snowflake_unix_ms(snowflake(1_700_000_000_000) | 0x3F_FFFF),
            1_700_000_000_000
        );
    }

    #[tokio::test]
    async fn prune_removes_only_records_older_than_the_cutoff() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let now = 1_750_000_000_000;
        let chain = crate::acl::ChainLength::new(2).unwrap();
        let (old, recent): (Vec<u64>, Vec<u64>) = (0..4_000u64)
            .map(|i| snowflake(now - 40 * DAY_MS + i * DAY_MS / 120) + i % 7)
            .partition(|id| snowflake_unix_ms(*id) < now - 30 * DAY_MS);
        assert!(old.len() > BATCH && recent.len() > BATCH, "both sides span batches");
        for id in old.iter().chain(&recent) {
            s.record_chain(*id, chain).unwrap();
        }
        s.record_answered("Ada", &old).await.unwrap();
        s.record_answered("Bea/2", &recent).await.unwrap();
        s.advance_cursor("Ada", old[0], old[0]).unwrap();
        s.remember_dm("Ada", old[0]).unwrap();

        let report = s.prune(now - 30 * DAY_MS).await.unwrap();
        assert_eq!(
            report,
            PruneReport {
                chains: old.len(),
                answers: old.len()
            }
        );
        assert!(old
            .iter()
            .all(|id| s.chain(*id).unwrap().is_none() && !s.answered("Ada", *id).unwrap()));
        assert!(recent
            .iter()
            .all(|id| s.chain(*id).unwrap() == Some(chain) && s.answered("Bea/2", *id).unwrap()));
        // Per-channel records are kept, however old the channel.
        assert_eq!(s.cursor("Ada", old[0]).unwrap(), Some(old[0]));
        assert_eq!(s.dm_channels("Ada").unwrap(), vec![old[0]]);
        // Nothing left to do the second time.
        assert_eq!(s.prune(now - 30 * DAY_MS).await.unwrap(), PruneReport::default());
    }

    /// Many simulated days of traffic, pruned each day with a moving cutoff: the number of keys
    /// levels off at the retention window's worth instead of growing with the days.
    #[tokio::test]
    async fn the_store_stays_bounded_over_many_days() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let (per_day, retention_days, days) = (200u64, 7u64, 60u64);
        let start = 1_750_000_000_000;
        let mut most = 0;
        for day in 0..days {
            let today = start + day * DAY_MS;
            let ids: Vec<u64> = (0..per_day)
                .map(|i| snowflake(today + i * (DAY_MS / per_day)))
                .collect();
            for id in &ids {
                s.record_chain(*id, crate::acl::ChainLength::HUMAN).unwrap();
            }
            s.record_answered("Ada", &ids).await.unwrap();
            s.prune(today + DAY_MS - retention_days * DAY_MS).await.unwrap();
            let per_message = s.db.scan_prefix("acl/").count() + s.db.scan_prefix("ans/").count();
            most = most.max(per_message);
        }
        // Two records per message, for at most `retention_days` days of messages.
        let bound = (2 * per_day * retention_days) as usize;
        assert!(most <= bound, "{most} per-message keys, more than {bound}");
        assert_eq!(most, bound, "the window is full once {retention_days} days have passed");
        // Everything else is a handful of fixed keys.
        assert!(s.db.len() <= bound + 4, "{} keys", s.db.len());
    }
}
