//! The store: troupe's durable state in sled (`state/` by default). Keys and values are
//! versioned so a later format can migrate them. A locked, damaged or newer store is an error
//! at startup, never a silent reset: [`check`] says what is checked before sled may touch the
//! files, and [`Store::open`] refuses a store sled would open emptier than troupe left it.
//!
//! Layout (schema 1):
//! - `meta/schema` → `1`
//! - `meta/1/seq` → 8 bytes (big-endian): the number of the last flush, written just before it
//! - `mem/1/<agent>/<conversation>` → JSON `{"v":1,"turns":[...]}`
//! - `acl/1/<message id>` → one byte: the agent chain length troupe knows for that message
//!   (pruned after `[store] retention_days`)
//! - `hook/1/<agent>/<channel id>` → JSON `{"id":..,"token":..}`: a webhook troupe created
//! - `cur/1/<agent>/<channel id>` → 8 bytes (big-endian): the last message the agent has finished
//!   with in that channel (answered, or decided not to answer)
//! - `ans/1/<agent>/<message id>` → empty: the agent has delivered its answer to that message
//!   (pruned after `[store] retention_days`)
//! - `dm/1/<agent>/<channel id>` → empty: a DM channel the agent has seen (Discord gives bots no
//!   list of them)
//! - `pend/1/<agent>/<conversation>/<message id>` → JSON: a message the agent owes an answer
//!   that a failure deferred (see [`PendingRecord`])
//! - `strm/1/<agent>/<message id>` → JSON `{"v":1,"parts":[...]}`: the messages of a streamed reply
//!   posted so far (see `streams`), until the reply is finished with
//! - `bad/1/<key>` → a record that could not be read, set aside rather than deleted
//! - `use/1/...` and `bnote/1/...`: token usage in hour buckets and budget notices (see `usage`)
//! - `pause/1/...` and `ubud/1/...`: channels where an agent is paused and users' budget
//!   overrides, set with slash commands (see `controls`)
//! - `meta/1/starts` → JSON `{"v":1,"starts_ms":[...]}`: recent start times (crash-loop back-off)
//!
//! One agent's records move between stores with `troupe store export` and `import` ([`transfer`]).
//!
//! Beside sled's files (`db`, `conf`, `snap.*`, `blobs/`) the directory holds `troupe-store.json`,
//! `{"v":1,"seq":N}`: N is the last flush that completed (see [`check`]).

mod check;
mod controls;
mod reset;
mod retention;

pub use self::reset::{reset, ResetReport};
pub use self::retention::{snowflake_unix_ms, PruneReport};

mod pending;
mod streams;
mod transfer;
mod usage;

pub use self::transfer::{parse as parse_export, AgentExport, ImportReport, TransferError};

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use self::controls::Forgotten;
pub use self::pending::PendingRecord;
pub use self::usage::TROUPE;
use crate::memory::MemoryTurn;
use crate::routing::ConversationKey;

/// The schema this build writes and reads.
pub const SCHEMA: u32 = 1;

/// The most memory sled's page cache may hold unless `[store] cache_mib` says otherwise (sled's
/// own default is 1 GiB). A conversation's turns are read at the start of each of its turns and
/// written at its end: the cache need not hold them all; the OS page cache still does. It is a bound, not a cost per conversation: it
/// fills once the records touched exceed it (docs/benchmarks.md, Issue 18). 16 rather than 64:
/// with 10,000 conversations it saved ~30 MiB of RSS, live and passivated, with activation and
/// throughput no slower than the runs can resolve.
pub const DEFAULT_CACHE_MIB: u64 = 16;

/// sled's segment size (its default), set explicitly because [`check`] reads segment headers.
const SEGMENT_SIZE: usize = 512 * 1024;

/// The key holding the number of the last flush (see [`Store::flush`]).
const SEQ_KEY: &str = "meta/1/seq";

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another process holds the store.
    #[error("store {0} is locked by another process (is another troupe running with the same [store] path?)")]
    Locked(PathBuf),
    /// The store's files are damaged.
    #[error(
        "store {path} is corrupt: {detail}. troupe does not repair or reset a store: restore the directory from a \
         backup, or run `troupe store reset` (with the same --config or --state-dir) to move it aside and start \
         with an empty store"
    )]
    Corrupt {
        /// Store directory.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// The store was written by a newer troupe.
    #[error("store {path} has schema {found}, newer than this troupe understands ({SCHEMA}); upgrade troupe")]
    TooNew {
        /// Store directory.
        path: PathBuf,
        /// Schema found.
        found: u32,
    },
    /// An I/O error.
    #[error("store {path}: {source}")]
    Io {
        /// Store directory.
        path: PathBuf,
        /// The error.
        source: sled::Error,
    },
}

/// A handle to the store; cheap to clone, safe to share.
#[derive(Debug, Clone)]
pub struct Store {
    db: sled::Db,
    path: PathBuf,
    flusher: std::sync::Arc<Flusher>,
    /// Token usage counted since the last flush (see `usage`).
    usage: std::sync::Arc<usage::UsageBuffer>,
}

/// One flush at a time, shared by every write made before it started (group commit). sled
/// 0.34's `flush_async` deadlocks when called concurrently (spacejam/sled#1308, fixed on sled's
/// main branch but never released), and concurrent fsyncs of the same log are wasted anyway.
#[derive(Debug)]
struct Flusher {
    /// Flush requests so far; each is made after its caller's write.
    requested: std::sync::atomic::AtomicU64,
    /// What completed flushes cover.
    state: tokio::sync::Mutex<Flushed>,
    /// Where completed flushes are recorded (see [`check`]).
    sidecar: check::SidecarFile,
}

#[derive(Debug)]
struct Flushed {
    /// The highest request a completed flush covers.
    request: u64,
    /// The number of the last completed flush (`meta/1/seq`).
    seq: u64,
}

#[derive(Serialize, Deserialize)]
struct MemoryRecord {
    v: u32,
    turns: Vec<MemoryTurn>,
}

/// [`MemoryRecord`] as written, borrowing the turns (a save need not copy them first).
#[derive(Serialize)]
struct MemoryRecordRef<'a> {
    v: u32,
    turns: &'a [MemoryTurn],
}

impl Store {
    /// Opens (or creates) the store at `path` and checks it: a damaged store is `Corrupt` and
    /// its files are left as they were (see [`check`] for what is detected where).
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        Store::open_with_cache(path, DEFAULT_CACHE_MIB << 20)
    }

    /// [`Store::open`] with a cache of at most `cache_bytes` (`[store] cache_mib`).
    pub fn open_with_cache(path: &Path, cache_bytes: u64) -> Result<Store, StoreError> {
        let found = check::before_open(path)?;
        let db = check::open_sled(path, path, cache_bytes)?;
        let seq = check::contents(&db, found, false).map_err(|detail| StoreError::Corrupt {
            path: path.to_path_buf(),
            detail,
        })?;
        match db.get("meta/schema").map_err(|e| classify(path, e))? {
            None => {
                db.insert("meta/schema", SCHEMA.to_string().as_bytes())
                    .map_err(|e| classify(path, e))?;
            }
            Some(v) => {
                let found = std::str::from_utf8(&v)
                    .ok()
                    .and_then(|s| s.parse::<u32>().ok())
                    .ok_or_else(|| StoreError::Corrupt {
                        path: path.to_path_buf(),
                        detail: "meta/schema is not a number".into(),
                    })?;
                if found > SCHEMA {
                    return Err(StoreError::TooNew {
                        path: path.to_path_buf(),
                        found,
                    });
                }
                // Older schemas would be migrated here; schema 1 is the first.
            }
        }
        let io = |e: std::io::Error| StoreError::Io {
            path: path.to_path_buf(),
            source: sled::Error::Io(e),
        };
        if found.sidecar_seq.is_none() {
            // A store from a troupe that kept no sidecar: it passed the checks that need none.
            check::write_sidecar(path, seq).map_err(io)?;
        }
        let store = Store {
            usage: std::sync::Arc::new(usage::UsageBuffer::new(db.clone())),
            db,
            path: path.to_path_buf(),
            flusher: std::sync::Arc::new(Flusher {
                requested: Default::default(),
                state: tokio::sync::Mutex::new(Flushed { request: 0, seq }),
                sidecar: check::SidecarFile::open(path).map_err(io)?,
            }),
        };
        Ok(store)
    }

    /// The store directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn memory_key(agent: &str, key: ConversationKey) -> String {
        format!("mem/{SCHEMA}/{agent}/{}", pending::key_segment(key))
    }

    /// The remembered turns of a conversation (empty if none).
    pub fn memory(&self, agent: &str, key: ConversationKey) -> Result<Vec<MemoryTurn>, StoreError> {
        let k = Self::memory_key(agent, key);
        match self.db.get(&k).map_err(|e| classify(&self.path, e))? {
            None => Ok(Vec::new()),
            Some(bytes) => serde_json::from_slice::<MemoryRecord>(&bytes)
                .map(|r| r.turns)
                .map_err(|e| StoreError::Corrupt {
                    path: self.path.clone(),
                    detail: format!("{k}: {e}"),
                }),
        }
    }

    /// Sets a conversation's unreadable memory aside (kept under `bad/`, nothing is deleted) so
    /// the conversation can go on with fresh memory; returns where it is kept.
    pub fn set_aside_memory(&self, agent: &str, key: ConversationKey) -> Result<String, StoreError> {
        self.set_aside(&Self::memory_key(agent, key))
    }

    /// Replaces a conversation's turns and makes them durable before returning (they survive a
    /// `kill -9` right after).
    pub async fn save_memory(&self, agent: &str, key: ConversationKey, turns: &[MemoryTurn]) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(&MemoryRecordRef { v: 1, turns }).expect("memory serializes");
        self.db
            .insert(Self::memory_key(agent, key), bytes)
            .map_err(|e| classify(&self.path, e))?;
        self.flush().await
    }

    /// The chain length troupe recorded for a message, if any.
    pub fn chain(&self, message_id: u64) -> Result<Option<crate::acl::ChainLength>, StoreError> {
        let v = self
            .db
            .get(format!("acl/1/{message_id}"))
            .map_err(|e| classify(&self.path, e))?;
        Ok(v.and_then(|b| b.first().copied())
            .and_then(crate::acl::ChainLength::new))
    }

    /// Records the chain length of a message troupe sent or received; only ever raises it.
    /// Most messages are new to the store (a reply just posted, a bot's message seen first): a
    /// single compare-and-swap against an absent record writes those; a record already there is
    /// read and raised.
    pub fn record_chain(&self, message_id: u64, chain: crate::acl::ChainLength) -> Result<(), StoreError> {
        let key = format!("acl/1/{message_id}");
        let err = |e| classify(&self.path, e);
        let new = [chain.get()];
        if self
            .db
            .compare_and_swap(&key, None::<&[u8]>, Some(&new[..]))
            .map_err(err)?
            .is_ok()
        {
            return Ok(());
        }
        self.db
            .fetch_and_update(key, |old| {
                let old = old.and_then(|b| b.first().copied()).unwrap_or(0);
                Some(vec![old.max(chain.get())])
            })
            .map(|_| ())
            .map_err(err)
    }

    /// The webhook troupe created for an agent in a channel: `(id, token)`.
    pub fn webhook(&self, agent: &str, channel_id: u64) -> Result<Option<(u64, String)>, StoreError> {
        let key = format!("hook/1/{agent}/{channel_id}");
        match self.db.get(&key).map_err(|e| classify(&self.path, e))? {
            None => Ok(None),
            Some(bytes) => {
                let v: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| StoreError::Corrupt {
                    path: self.path.clone(),
                    detail: format!("{key}: {e}"),
                })?;
                Ok(v["id"].as_u64().zip(v["token"].as_str().map(str::to_string)))
            }
        }
    }

    /// Remembers a webhook troupe created, so restarts reuse it instead of creating more.
    pub async fn save_webhook(&self, agent: &str, channel_id: u64, id: u64, token: &str) -> Result<(), StoreError> {
        let value = serde_json::json!({"id": id, "token": token}).to_string();
        self.db
            .insert(format!("hook/1/{agent}/{channel_id}"), value.as_bytes())
            .map_err(|e| classify(&self.path, e))?;
        self.flush().await
    }

    /// The agent's cursor in a channel: the last message it has finished with.
    pub fn cursor(&self, agent: &str, channel_id: u64) -> Result<Option<u64>, StoreError> {
        let key = format!("cur/1/{agent}/{channel_id}");
        let v = self.db.get(&key).map_err(|e| classify(&self.path, e))?;
        match v {
            None => Ok(None),
            Some(b) => <[u8; 8]>::try_from(b.as_ref())
                .map(|b| Some(u64::from_be_bytes(b)))
                .map_err(|_| StoreError::Corrupt {
                    path: self.path.clone(),
                    detail: format!("{key}: not 8 bytes"),
                }),
        }
    }

    /// Moves the agent's cursor in a channel forward (never back).
    pub fn advance_cursor(&self, agent: &str, channel_id: u64, message_id: u64) -> Result<(), StoreError> {
        self.db
            .fetch_and_update(format!("cur/1/{agent}/{channel_id}"), |old| {
                let old = old
                    .and_then(|b| <[u8; 8]>::try_from(b).ok())
                    .map_or(0, u64::from_be_bytes);
                Some(old.max(message_id).to_be_bytes().to_vec())
            })
            .map(|_| ())
            .map_err(|e| classify(&self.path, e))
    }

    /// Whether the agent has delivered an answer to this message.
    pub fn answered(&self, agent: &str, message_id: u64) -> Result<bool, StoreError> {
        self.db
            .contains_key(format!("ans/1/{agent}/{message_id}"))
            .map_err(|e| classify(&self.path, e))
    }

    /// Records that the agent delivered its answer to these messages, durably.
    pub async fn record_answered(&self, agent: &str, message_ids: &[u64]) -> Result<(), StoreError> {
        for id in message_ids {
            self.db
                .insert(format!("ans/1/{agent}/{id}"), &[])
                .map_err(|e| classify(&self.path, e))?;
        }
        self.flush().await
    }

    /// Remembers a DM channel the agent has seen.
    pub fn remember_dm(&self, agent: &str, channel_id: u64) -> Result<(), StoreError> {
        self.db
            .insert(format!("dm/1/{agent}/{channel_id}"), &[])
            .map(|_| ())
            .map_err(|e| classify(&self.path, e))
    }

    /// Every DM channel the agent has seen.
    pub fn dm_channels(&self, agent: &str) -> Result<Vec<u64>, StoreError> {
        let prefix = format!("dm/1/{agent}/");
        self.db
            .scan_prefix(&prefix)
            .keys()
            .map(|k| {
                let k = k.map_err(|e| classify(&self.path, e))?;
                std::str::from_utf8(&k[prefix.len()..])
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| StoreError::Corrupt {
                        path: self.path.clone(),
                        detail: format!("bad DM key under {prefix}"),
                    })
            })
            .collect()
    }

    /// Writes everything to disk. Each flush first writes its number to `meta/1/seq`, and
    /// once sled's flush has completed, records it in the sidecar (one small write, no fsync):
    /// the next open refuses a store sled recovers to an older number (see [`check`]).
    pub async fn flush(&self) -> Result<(), StoreError> {
        use std::sync::atomic::Ordering::SeqCst;
        let mine = self.flusher.requested.fetch_add(1, SeqCst) + 1;
        let mut flushed = self.flusher.state.lock().await;
        if flushed.request >= mine {
            // A flush that started after this caller's write has completed.
            return Ok(());
        }
        let covers = self.flusher.requested.load(SeqCst);
        // Usage counted before any request this flush covers goes with it. A failure leaves
        // the counts for the next flush and does not hold back the writes that asked for this one.
        if let Err(e) = self.apply_usage() {
            tracing::warn!(store = %self.path.display(), error = %e, "cannot write token usage; kept for the next flush");
        }
        // Written after every write this flush covers, so a log cut before any of them has lost
        // this number too.
        let seq = flushed.seq + 1;
        self.db
            .insert(SEQ_KEY, &seq.to_be_bytes())
            .map_err(|e| classify(&self.path, e))?;
        let (db, path, flusher) = (self.db.clone(), self.path.clone(), self.flusher.clone());
        tokio::task::spawn_blocking(move || {
            db.flush()?;
            if let Err(e) = flusher.sidecar.record(seq) {
                // The sidecar only lags: the next open checks against an older flush.
                tracing::warn!(store = %path.display(), error = %e, "cannot record the flush in the store's sidecar");
            }
            Ok::<_, sled::Error>(())
        })
        .await
        .map_err(|e| StoreError::Corrupt {
            path: self.path.clone(),
            detail: format!("flush task failed: {e}"),
        })?
        .map_err(|e| classify(&self.path, e))?;
        flushed.request = covers;
        flushed.seq = seq;
        Ok(())
    }

    /// Whether the store answers a read (for `/readiness`).
    pub fn check(&self) -> Result<(), StoreError> {
        self.db
            .get("meta/schema")
            .map(|_| ())
            .map_err(|e| classify(&self.path, e))
    }

    /// Records a start of troupe at `now_ms` (Unix milliseconds) and returns the starts within
    /// `window_ms` of it, this one included, oldest first. Older entries are dropped, and so are
    /// entries more than a window in the future (the clock was set back). Durable on return.
    pub async fn record_start(&self, now_ms: u64, window_ms: u64) -> Result<Vec<u64>, StoreError> {
        const KEY: &str = "meta/1/starts";
        let mut starts = match self.db.get(KEY).map_err(|e| classify(&self.path, e))? {
            None => Vec::new(),
            Some(bytes) => serde_json::from_slice::<StartsRecord>(&bytes)
                .map(|r| r.starts_ms)
                .map_err(|e| StoreError::Corrupt {
                    path: self.path.clone(),
                    detail: format!("{KEY}: {e}"),
                })?,
        };
        starts.retain(|t| now_ms.abs_diff(*t) <= window_ms);
        starts.push(now_ms);
        starts.sort_unstable();
        let keep_from = starts.len().saturating_sub(MAX_STARTS_KEPT);
        starts.drain(..keep_from);
        let bytes = serde_json::to_vec(&StartsRecord {
            v: 1,
            starts_ms: starts.clone(),
        })
        .expect("starts serialize");
        self.db.insert(KEY, bytes).map_err(|e| classify(&self.path, e))?;
        self.flush().await?;
        Ok(starts)
    }
}

/// Most start times kept: enough for any back-off schedule, small enough to rewrite each start.
const MAX_STARTS_KEPT: usize = 64;

#[derive(Serialize, Deserialize)]
struct StartsRecord {
    v: u32,
    starts_ms: Vec<u64>,
}

fn classify(path: &Path, e: sled::Error) -> StoreError {
    match e {
        sled::Error::Io(io) if io.kind() == std::io::ErrorKind::WouldBlock || io.to_string().contains("lock") => {
            StoreError::Locked(path.to_path_buf())
        }
        sled::Error::Corruption { at, .. } => StoreError::Corrupt {
            path: path.to_path_buf(),
            detail: match at {
                Some(at) => format!("sled found damaged data in its log `db` (at {at:?})"),
                None => "sled found damaged data in its log `db`".into(),
            },
        },
        other => StoreError::Io {
            path: path.to_path_buf(),
            source: other,
        },
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// Opens the store again after the previous handle was dropped. sled's I/O threads may
    /// still hold the file lock for a moment after the last handle goes, so `Locked` is retried
    /// until a deadline; any other outcome is returned at once.
    pub(super) fn reopen(path: &Path) -> Result<Store, StoreError> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            match Store::open(path) {
                Err(StoreError::Locked(_)) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
                other => return other,
            }
        }
    }

    fn turn(content: &str) -> MemoryTurn {
        MemoryTurn {
            assistant: false,
            author: "alice".into(),
            content: content.into(),
            message_id: 1,
            time_ms: 2,
            cut: false,
            author_id: None,
            attachments: Vec::new(),
        }
    }

    #[tokio::test]
    async fn memory_round_trips_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = Store::open(dir.path()).unwrap();
            s.save_memory("Ada", ConversationKey::User(7), &[turn("my cat is Tom")])
                .await
                .unwrap();
            assert!(s.memory("Ada", ConversationKey::User(8)).unwrap().is_empty());
            assert!(s.memory("Bea", ConversationKey::User(7)).unwrap().is_empty());
        }
        let s = reopen(dir.path()).unwrap();
        assert_eq!(
            s.memory("Ada", ConversationKey::User(7)).unwrap(),
            vec![turn("my cat is Tom")]
        );
    }

    #[test]
    fn a_second_open_is_refused_as_locked() {
        let dir = tempfile::tempdir().unwrap();
        let _first = Store::open(dir.path()).unwrap();
        // sled locks the directory per process through a file lock; a second `open` in the same
        // process reuses nothing and must fail to take the lock.
        let err = Store::open(dir.path()).unwrap_err();
        assert!(matches!(err, StoreError::Locked(_)), "{err}");
        assert!(err.to_string().contains("locked by another process"));
    }

    #[tokio::test]
    async fn cursors_answers_and_dm_channels() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        assert_eq!(s.cursor("Ada", 1).unwrap(), None);
        s.advance_cursor("Ada", 1, 50).unwrap();
        s.advance_cursor("Ada", 1, 40).unwrap();
        assert_eq!(s.cursor("Ada", 1).unwrap(), Some(50));
        assert_eq!(s.cursor("Bea", 1).unwrap(), None);
        assert!(!s.answered("Ada", 7).unwrap());
        s.record_answered("Ada", &[7, 8]).await.unwrap();
        assert!(s.answered("Ada", 8).unwrap() && !s.answered("Bea", 8).unwrap());
        s.remember_dm("Ada", 99).unwrap();
        s.remember_dm("Ada", 98).unwrap();
        s.remember_dm("Ada", 99).unwrap();
        let mut dms = s.dm_channels("Ada").unwrap();
        dms.sort_unstable();
        assert_eq!(dms, vec![98, 99]);
        assert!(s.dm_channels("Ad").unwrap().is_empty());
    }

    /// Regression: sled 0.34's `flush_async` deadlocked when many conversations saved at once
    /// (the benchmark's throughput scenario stalled with every turn waiting on a flush).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn many_concurrent_saves_all_complete_and_are_durable() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let saves = (0..64u64).map(|i| {
            let s = s.clone();
            tokio::spawn(async move {
                let t = MemoryTurn {
                    assistant: false,
                    author: "a".into(),
                    content: format!("turn {i}"),
                    message_id: i,
                    time_ms: 0,
                    cut: false,
                    author_id: None,
                    attachments: Vec::new(),
                };
                s.save_memory("Ada", ConversationKey::User(i), &[t]).await
            })
        });
        let all = tokio::time::timeout(std::time::Duration::from_secs(60), futures::future::join_all(saves))
            .await
            .expect("concurrent saves must not hang");
        assert!(all.into_iter().all(|r| r.unwrap().is_ok()));
        drop(s);
        let s = reopen(dir.path()).unwrap();
        assert_eq!(
            s.memory("Ada", ConversationKey::User(63)).unwrap()[0].content,
            "turn 63"
        );
    }

    #[test]
    fn chains_only_ever_rise() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let c = |n| crate::acl::ChainLength::new(n).unwrap();
        assert_eq!(s.chain(5).unwrap(), None);
        s.record_chain(5, c(3)).unwrap();
        s.record_chain(5, c(1)).unwrap();
        assert_eq!(s.chain(5).unwrap(), Some(c(3)));
    }

    #[test]
    fn newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = sled::open(dir.path()).unwrap();
            db.insert("meta/schema", "99").unwrap();
            db.flush().unwrap();
        }
        let err = reopen(dir.path()).unwrap_err();
        assert!(matches!(err, StoreError::TooNew { found: 99, .. }), "{err}");
    }

    #[tokio::test]
    async fn undecodable_memory_is_an_error_not_a_reset() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        s.db.insert(Store::memory_key("Ada", ConversationKey::Channel(1)), &b"{not json"[..])
            .unwrap();
        let err = s.memory("Ada", ConversationKey::Channel(1)).unwrap_err();
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
    }

    #[tokio::test]
    async fn recent_starts_survive_reopen_and_old_ones_expire() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = Store::open(dir.path()).unwrap();
            assert_eq!(s.record_start(1_000, 500).await.unwrap(), vec![1_000]);
            assert_eq!(s.record_start(1_200, 500).await.unwrap(), vec![1_000, 1_200]);
        }
        let s = reopen(dir.path()).unwrap();
        assert_eq!(s.record_start(1_600, 500).await.unwrap(), vec![1_200, 1_600]);
        // The clock was set back a long way: entries from its "future" do not count forever.
        assert_eq!(s.record_start(10, 500).await.unwrap(), vec![10]);
        s.check().unwrap();
    }
}
