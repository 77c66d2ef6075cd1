//! What [`Store::open`](super::Store::open) checks before it trusts a store directory, and where.
//!
//! sled 0.34 repairs whatever it opens, silently. Measured on damaged copies of real stores: it
//! recreates a deleted `db` as an empty log; it cuts a log at its first bad message and zeroes
//! what follows (a truncated `db`, or bytes flipped in it, open as an older or empty store, or
//! panic); it rewrites `db` and its snapshot files even when it then reports `Corruption`. So a
//! check that runs after sled opened the real files can report damage, but the evidence is gone
//! by then. The checks therefore run in three places:
//!
//! 1. **On the files, before sled** ([`before_open`]): what can be seen without parsing sled's
//!    log. The sidecar [`SIDECAR`] (troupe's own record that the store was initialised, and of
//!    the last completed flush) must be readable; `db` and `conf` must exist; `db` must not be
//!    empty once anything was flushed; every segment header in `db` (20 bytes at each
//!    [`SEGMENT_SIZE`](super::SEGMENT_SIZE) boundary) must carry a valid checksum or be zeroed,
//!    which is how sled leaves them (sled ignores a segment whose header is damaged, records
//!    included). And no other process may hold the store's lock: a copy of a store in use would
//!    be torn.
//! 2. **On a scratch copy, by sled** ([`verify_copy`]): sled recovers a copy of the files in
//!    `.troupe-verify/` inside the store directory (the only place a container is sure to be
//!    allowed to write), then [`contents`] requires `meta/schema`, requires `meta/1/seq` to be at
//!    least the sidecar's flush number (sled rolled nothing back), and reads every record back
//!    (sled checks each record's checksum as it reads it). The copy is then deleted. What
//!    damages the store is found here while the real files are still as they were.
//! 3. **In place, after sled opened the real files**: [`contents`] again, without the full read.
//!    It is cheap, and it is what remains of step 2 if the copy could not be made (no space).
//!
//! Not detected: damage to bytes sled never reads back (superseded records, the unused end of
//! a segment). It loses nothing, and sled's recovery of the copy finds the store whole.
//!
//! A store written by an older troupe has no sidecar: it gets the checks that need none (it must
//! have a schema, every record must read back) and then a sidecar.

use std::fs;
use std::io::{ErrorKind, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::{StoreError, SEGMENT_SIZE, SEQ_KEY};

/// The sidecar file in the store directory: `{"v":1,"seq":N}`, N the last flush that completed.
pub(super) const SIDECAR: &str = "troupe-store.json";

/// The scratch directory, inside the store directory, where a copy of the store is verified.
const SCRATCH: &str = ".troupe-verify";

/// sled's page cache for the verification copy: it is read once, front to back.
const VERIFY_CACHE: u64 = 4 * 1024 * 1024;

/// Length of a sled segment header: CRC-32 (xor `0xFFFF_FFFF`, little-endian) of the next 16
/// bytes, then the segment's LSN and the highest stable LSN.
const SEGMENT_HEADER_LEN: usize = 20;

/// troupe's record, beside sled's files, that the store was initialised and how far it was
/// flushed, padded with spaces to [`SIDECAR_LEN`] bytes. Written after each flush completes and
/// without fsync: it may lag behind sled after a power cut, never run ahead of it.
#[derive(Debug, Serialize, Deserialize)]
struct Sidecar {
    v: u32,
    seq: u64,
}

/// The sidecar's fixed length. Each flush overwrites it in place with one small write: replacing
/// it by a rename would cost about as much as the flush's fsync (ext4 pushes a file renamed over
/// another to disk), and the flush is on every turn's path.
const SIDECAR_LEN: usize = 64;

fn sidecar_bytes(seq: u64) -> Vec<u8> {
    let mut bytes = serde_json::to_vec(&Sidecar { v: 1, seq }).expect("sidecar serializes");
    bytes.resize(SIDECAR_LEN - 1, b' ');
    bytes.push(b'\n');
    bytes
}

/// Creates (or replaces) the sidecar recording flush `seq`: a temporary file, then a rename, so
/// it never exists half written.
pub(super) fn write_sidecar(dir: &Path, seq: u64) -> std::io::Result<()> {
    let tmp = dir.join(format!("{SIDECAR}.tmp"));
    fs::write(&tmp, sidecar_bytes(seq))?;
    fs::rename(&tmp, dir.join(SIDECAR))
}

/// The open sidecar of an open store, which [`Store::flush`](super::Store::flush) updates.
#[derive(Debug)]
pub(super) struct SidecarFile(fs::File);

impl SidecarFile {
    /// Opens the sidecar [`write_sidecar`] created.
    pub fn open(dir: &Path) -> std::io::Result<SidecarFile> {
        fs::OpenOptions::new()
            .write(true)
            .open(dir.join(SIDECAR))
            .map(SidecarFile)
    }

    /// Records that flush `seq` completed: one write of the same length at the same place, so a
    /// reader (or a crash) sees the old record or the new one. Callers take turns (the flush lock).
    pub fn record(&self, seq: u64) -> std::io::Result<()> {
        use std::io::Write;
        let mut file = &self.0;
        file.seek(SeekFrom::Start(0))?;
        file.write_all(&sidecar_bytes(seq))
    }
}

/// The flush number recorded in the sidecar; `None` if there is no sidecar.
fn read_sidecar(dir: &Path) -> Result<Option<u64>, String> {
    match fs::read(dir.join(SIDECAR)) {
        Ok(bytes) => serde_json::from_slice::<Sidecar>(&bytes)
            .map(|s| Some(s.seq))
            .map_err(|e| format!("{SIDECAR} is unreadable ({e})")),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("{SIDECAR} cannot be read ({e})")),
    }
}

/// What the checks before opening found.
#[derive(Debug, Clone, Copy)]
pub(super) struct Found {
    /// The sidecar's flush number; `None` for a store written by a troupe that kept no sidecar.
    pub sidecar_seq: Option<u64>,
}

/// Step 1 and 2 of the module doc: checks the files without letting sled touch them, then has
/// sled recover a copy. An empty or missing directory becomes a new store (its sidecar is written
/// first, so a store is never without one).
pub(super) fn before_open(path: &Path) -> Result<Found, StoreError> {
    let corrupt = |detail: String| StoreError::Corrupt {
        path: path.to_path_buf(),
        detail,
    };
    let io = |e: std::io::Error| StoreError::Io {
        path: path.to_path_buf(),
        source: sled::Error::Io(e),
    };
    let sidecar_seq = read_sidecar(path).map_err(corrupt)?;
    let db = path.join("db");
    let db_len = match fs::metadata(&db) {
        Ok(m) => Some(m.len()),
        Err(e) if e.kind() == ErrorKind::NotFound => None,
        Err(e) => return Err(io(e)),
    };
    let has_conf = path.join("conf").exists();
    let has_snapshot = snapshot_files(path).map_err(io)?.next().is_some();
    let Some(db_len) = db_len else {
        // A new store, or one whose first start stopped before sled created `db`.
        if sidecar_seq == Some(0) || (sidecar_seq.is_none() && !has_conf && !has_snapshot) {
            fs::create_dir_all(path).map_err(io)?;
            write_sidecar(path, 0).map_err(io)?;
            return Ok(Found { sidecar_seq: Some(0) });
        }
        return Err(corrupt(match sidecar_seq {
            Some(seq) => format!("its sled log `db` is missing ({SIDECAR} records {seq} completed flushes)"),
            None => "its sled log `db` is missing (sled's `conf` or snapshot files are there)".into(),
        }));
    };
    if !has_conf {
        return Err(corrupt("sled's `conf` file is missing".into()));
    }
    match (db_len, sidecar_seq) {
        // Created, then stopped before its first flush completed: nothing was promised.
        (0, Some(0)) => return Ok(Found { sidecar_seq }),
        (0, Some(seq)) => {
            return Err(corrupt(format!(
                "its sled log `db` is empty (0 bytes), but {SIDECAR} records {seq} completed flushes"
            )))
        }
        (0, None) => return Err(corrupt("its sled log `db` is empty (0 bytes)".into())),
        _ => {}
    }
    if let Some(offset) = damaged_segment_header(&db, db_len).map_err(io)? {
        return Err(corrupt(format!(
            "the segment header at byte {offset} of its sled log `db` is damaged"
        )));
    }
    let lock = fs::File::open(&db).map_err(io)?;
    match lock.try_lock() {
        Ok(()) => {}
        Err(fs::TryLockError::WouldBlock) => return Err(StoreError::Locked(path.to_path_buf())),
        Err(fs::TryLockError::Error(e)) => return Err(io(e)),
    }
    let found = Found { sidecar_seq };
    verify_copy(path, found)?;
    // The lock is released when `lock` drops; sled takes it again when it opens the files.
    drop(lock);
    Ok(found)
}

/// The `snap.*` files of a store directory (sled's snapshots).
fn snapshot_files(path: &Path) -> std::io::Result<impl Iterator<Item = PathBuf>> {
    let entries = match fs::read_dir(path) {
        Ok(entries) => Some(entries),
        Err(e) if e.kind() == ErrorKind::NotFound => None,
        Err(e) => return Err(e),
    };
    Ok(entries
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("snap."))
        }))
}

/// The offset of the first segment header in `db` that is neither valid nor zeroed, if any.
fn damaged_segment_header(db: &Path, len: u64) -> std::io::Result<Option<u64>> {
    let mut file = fs::File::open(db)?;
    let mut header = [0u8; SEGMENT_HEADER_LEN];
    let mut offset = 0;
    while offset + SEGMENT_HEADER_LEN as u64 <= len {
        file.seek(SeekFrom::Start(offset))?;
        file.read_exact(&mut header)?;
        let stored = u32::from_le_bytes(header[..4].try_into().expect("4 bytes")) ^ 0xFFFF_FFFF;
        let zeroed = header.iter().all(|b| *b == 0);
        if !zeroed && stored != crc32fast::hash(&header[4..]) {
            return Ok(Some(offset));
        }
        offset += SEGMENT_SIZE as u64;
    }
    Ok(None)
}

/// Opens sled at `path`; errors name the store `named` (the copy stands for the store). A
/// panic in sled's recovery (it panics on some damaged logs) becomes `Corrupt`, and so do the
/// errors it reports for a damaged `conf` or log.
pub(super) fn open_sled(path: &Path, named: &Path, cache_capacity: u64) -> Result<sled::Db, StoreError> {
    let opened = std::panic::catch_unwind(|| {
        sled::Config::new()
            .path(path)
            .cache_capacity(cache_capacity)
            .segment_size(SEGMENT_SIZE)
            .open()
    });
    match opened {
        Ok(Ok(db)) => Ok(db),
        Ok(Err(e @ (sled::Error::Unsupported(_) | sled::Error::ReportableBug(_)))) => Err(StoreError::Corrupt {
            path: named.to_path_buf(),
            detail: format!("sled cannot open it: {e}"),
        }),
        Ok(Err(e)) => Err(super::classify(named, e)),
        Err(panic) => Err(StoreError::Corrupt {
            path: named.to_path_buf(),
            detail: format!("sled panicked recovering it: {}", panic_message(&panic)),
        }),
    }
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".into())
}

/// Checks what sled recovered against the sidecar; with `read_all`, also reads every record
/// back. Returns `meta/1/seq`, the last flush whose writes sled holds (0 if none), or what is
/// wrong, in words.
pub(super) fn contents(db: &sled::Db, found: Found, read_all: bool) -> Result<u64, String> {
    let has_schema = db
        .get("meta/schema")
        .map_err(|e| format!("meta/schema cannot be read: {e}"))?
        .is_some();
    let seq = match db.get(SEQ_KEY).map_err(|e| format!("{SEQ_KEY} cannot be read: {e}"))? {
        None => 0,
        Some(v) => <[u8; 8]>::try_from(v.as_ref())
            .map(u64::from_be_bytes)
            .map_err(|_| format!("{SEQ_KEY} is not 8 bytes"))?,
    };
    match found.sidecar_seq {
        Some(expected) if seq < expected => {
            return Err(format!(
                "sled recovers it only up to flush {seq}, but flush {expected} had completed ({SIDECAR}): \
                 the end of its sled log `db` is lost or damaged"
            ))
        }
        // A sidecar at 0: created, never flushed; there is nothing to miss yet.
        Some(0) => {}
        _ if !has_schema => {
            return Err("sled recovers it without meta/schema: its sled log `db` is truncated or damaged".into())
        }
        _ => {}
    }
    if read_all {
        for (n, record) in db.iter().enumerate() {
            record.map_err(|e| format!("record {n} cannot be read back: {e}"))?;
        }
    }
    Ok(seq)
}

/// Step 2 of the module doc: sled recovers a copy of the store, which must pass [`contents`]
/// with every record read back. If the copy cannot be made (no space, say) this is skipped
/// with a warning: the checks in place still run.
fn verify_copy(path: &Path, found: Found) -> Result<(), StoreError> {
    let scratch = path.join(SCRATCH);
    let _ = fs::remove_dir_all(&scratch);
    if let Err(e) = copy_store(path, &scratch) {
        tracing::warn!(
            store = %path.display(),
            error = %e,
            "cannot copy the store to verify it before opening; checking it in place only"
        );
        let _ = fs::remove_dir_all(&scratch);
        return Ok(());
    }
    let verdict = open_sled(&scratch, path, VERIFY_CACHE).and_then(|db| {
        let verdict = contents(&db, found, true);
        drop(db);
        verdict.map(|_| ()).map_err(|detail| StoreError::Corrupt {
            path: path.to_path_buf(),
            detail,
        })
    });
    remove_scratch(&scratch);
    verdict
}

/// Copies sled's files (`db`, `conf`, `snap.*`, `blobs/`) from `from` to the new directory `to`.
fn copy_store(from: &Path, to: &Path) -> std::io::Result<()> {
    fs::create_dir(to)?;
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name == "db" || name == "conf" || name.starts_with("snap.") {
            fs::copy(entry.path(), to.join(name))?;
        } else if name == "blobs" {
            fs::create_dir(to.join(name))?;
            for blob in fs::read_dir(entry.path())? {
                let blob = blob?;
                fs::copy(blob.path(), to.join(name).join(blob.file_name()))?;
            }
        }
    }
    Ok(())
}

/// Deletes the scratch copy once sled has let go of it. sled's threads close its file shortly
/// after the last handle drops (and may still write a snapshot until then); the lock on the
/// copy's `db` tells when. After a panic in sled they may never let go: the wait is bounded.
fn remove_scratch(scratch: &Path) {
    let deadline = Instant::now() + Duration::from_secs(5);
    if let Ok(db) = fs::File::open(scratch.join("db")) {
        while db.try_lock().is_err() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    if let Err(e) = fs::remove_dir_all(scratch) {
        tracing::warn!(scratch = %scratch.display(), error = %e, "cannot delete the store's verification copy");
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::memory::MemoryTurn;
    use crate::routing::ConversationKey;
    use crate::store::Store;

    /// Waits until sled's threads have let go of the store at `path` (they may hold its lock a
    /// moment after the last handle dropped, and write until then).
    fn released(path: &Path) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let db = fs::File::open(path.join("db")).unwrap();
        while db.try_lock().is_err() {
            assert!(Instant::now() < deadline, "sled never released {}", path.display());
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Every file under `dir` with its length and CRC-32.
    fn fingerprint(dir: &Path) -> BTreeMap<String, (u64, u32)> {
        fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<String, (u64, u32)>) {
            for entry in fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    walk(base, &path, out);
                } else {
                    let bytes = fs::read(&path).unwrap();
                    let name = path.strip_prefix(base).unwrap().display().to_string();
                    out.insert(name, (bytes.len() as u64, crc32fast::hash(&bytes)));
                }
            }
        }
        let mut out = BTreeMap::new();
        walk(dir, dir, &mut out);
        out
    }

    fn copy_dir(from: &Path, to: &Path) {
        fs::create_dir_all(to).unwrap();
        for entry in fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            if entry.path().is_dir() {
                copy_dir(&entry.path(), &to.join(entry.file_name()));
            } else {
                fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
            }
        }
    }

    /// A store as troupe leaves it: eight conversations of 30 turns, memory saved and flushed
    /// after every turn as conversations do (the 20 latest turns kept), a chain length
    /// and an answered record per message, a cursor and a DM channel per conversation. With
    /// `restarts`, the store is closed and reopened every 80 turns, so sled has snapshots too.
    async fn realistic_store(path: &Path, restarts: bool) {
        let mut store = Store::open(path).unwrap();
        let mut memories: Vec<Vec<MemoryTurn>> = vec![Vec::new(); 8];
        let chain = crate::acl::ChainLength::HUMAN;
        for n in 0..240u64 {
            if restarts && n > 0 && n % 80 == 0 {
                drop(store);
                released(path);
                store = Store::open(path).unwrap();
            }
            let conversation = (n % 8) as usize;
            let id = (1_750_000_000_000u64 - 1_420_070_400_000 + n * 1_000) << 22;
            let memory = &mut memories[conversation];
            memory.push(MemoryTurn {
                assistant: n % 2 == 1,
                author: format!("user{conversation}"),
                content: format!("turn {n}: {}", "the quick brown fox jumps over the lazy dog ".repeat(6)),
                message_id: id,
                time_ms: n,
                cut: false,
                author_id: None,
                attachments: Vec::new(),
            });
            let keep = memory.len().saturating_sub(20);
            memory.drain(..keep);
            store.record_chain(id, chain).unwrap();
            store.advance_cursor("Ada", conversation as u64, id).unwrap();
            store.remember_dm("Ada", conversation as u64).unwrap();
            store
                .save_memory("Ada", ConversationKey::Channel(conversation as u64), memory)
                .await
                .unwrap();
            store.record_answered("Ada", &[id]).await.unwrap();
        }
        drop(store);
        released(path);
    }

    type Damage = (&'static str, fn(&Path));

    fn set_len(db: &Path, len: impl Fn(u64) -> u64) {
        let file = fs::OpenOptions::new().write(true).open(db).unwrap();
        let old = file.metadata().unwrap().len();
        file.set_len(len(old)).unwrap();
    }

    /// Inverts 8 bytes of `db` at each offset `at` returns.
    fn flip(db: &Path, at: impl Fn(&[u8]) -> Vec<usize>) {
        let mut bytes = fs::read(db).unwrap();
        for at in at(&bytes) {
            for b in &mut bytes[at..at + 8] {
                *b ^= 0xFF;
            }
        }
        fs::write(db, bytes).unwrap();
    }

    /// Where the newest memory of conversation 7 is written (the live copy, and any copies
    /// sled made of it), 16 bytes into its text.
    fn newest_memory(bytes: &[u8]) -> Vec<usize> {
        let marker = b"turn 239: ";
        let found: Vec<usize> = bytes
            .windows(marker.len())
            .enumerate()
            .filter(|(_, w)| w == marker)
            .map(|(i, _)| i + 16)
            .collect();
        assert!(!found.is_empty(), "the newest memory is in db");
        found
    }

    /// Damage that changes or loses what troupe flushed: always refused.
    const DAMAGE: [Damage; 7] = [
        ("db truncated to 0 bytes", |d| set_len(&d.join("db"), |_| 0)),
        ("db truncated to 100 bytes", |d| set_len(&d.join("db"), |_| 100)),
        ("db truncated to half", |d| set_len(&d.join("db"), |len| len / 2)),
        ("bytes flipped at the start of db", |d| flip(&d.join("db"), |_| vec![0])),
        ("bytes flipped in the newest memory record", |d| {
            flip(&d.join("db"), newest_memory)
        }),
        ("db deleted", |d| fs::remove_file(d.join("db")).unwrap()),
        ("conf deleted", |d| fs::remove_file(d.join("conf")).unwrap()),
    ];

    /// Damage that may land on bytes sled never reads again (a superseded record, the unused
    /// end of a segment): refused, or harmless.
    const MAYBE_HARMLESS: [Damage; 2] = [
        ("bytes flipped in the middle of db", |d| {
            flip(&d.join("db"), |b| vec![b.len() / 2])
        }),
        ("bytes flipped near the end of db", |d| {
            flip(&d.join("db"), |b| vec![b.len() - 100])
        }),
    ];

    /// Every record of the store at `path`, read through a copy (opening changes sled's files).
    fn records(path: &Path, scratch: &Path) -> BTreeMap<Vec<u8>, Vec<u8>> {
        copy_dir(path, scratch);
        let db = sled::open(scratch).unwrap();
        let records = db
            .iter()
            .map(|r| r.map(|(k, v)| (k.to_vec(), v.to_vec())).unwrap())
            .collect();
        drop(db);
        records
    }

    /// Each kind of damage, to a store written in one run or across restarts: `open` fails with
    /// `Corrupt`, says how to get out, and leaves every file as it was; or, for damage to bytes
    /// sled never reads, opens with every record as it was written.
    async fn damage_is_refused_and_left_untouched(restarts: bool) {
        let dir = tempfile::tempdir().unwrap();
        let pristine = dir.path().join("pristine");
        realistic_store(&pristine, restarts).await;
        assert!(
            fs::metadata(pristine.join("db")).unwrap().len() > 2 * SEGMENT_SIZE as u64,
            "the log spans several segments"
        );
        let written = records(&pristine, &dir.path().join("written"));
        // Undamaged, a copy opens with everything in it.
        let healthy = dir.path().join("healthy");
        copy_dir(&pristine, &healthy);
        let store = Store::open(&healthy).unwrap();
        assert_eq!(store.dm_channels("Ada").unwrap().len(), 8);
        assert_eq!(store.memory("Ada", ConversationKey::Channel(7)).unwrap().len(), 20);
        drop(store);

        let all = DAMAGE
            .iter()
            .map(|d| (d, true))
            .chain(MAYBE_HARMLESS.iter().map(|d| (d, false)));
        for (i, ((what, damage), must_refuse)) in all.enumerate() {
            let path = dir.path().join(format!("damaged-{i}"));
            copy_dir(&pristine, &path);
            damage(&path);
            let before = fingerprint(&path);
            match Store::open(&path) {
                Err(err) => {
                    assert!(matches!(err, StoreError::Corrupt { .. }), "{what}: {err}");
                    let message = err.to_string();
                    assert!(
                        message.contains("is corrupt") && message.contains("troupe store reset"),
                        "{what}: {message}"
                    );
                    assert_eq!(fingerprint(&path), before, "{what}: the files changed ({message})");
                }
                Ok(store) => {
                    assert!(!must_refuse, "{what}: the store opened");
                    drop(store);
                    released(&path);
                    let after = records(&path, &dir.path().join(format!("read-{i}")));
                    assert_eq!(after, written, "{what}: the store opened with other records");
                }
            }
        }
    }

    #[tokio::test]
    async fn damage_to_a_store_written_in_one_run_is_refused_and_left_untouched() {
        damage_is_refused_and_left_untouched(false).await;
    }

    #[tokio::test]
    async fn damage_to_a_store_written_across_restarts_is_refused_and_left_untouched() {
        damage_is_refused_and_left_untouched(true).await;
    }

    #[tokio::test]
    async fn a_store_without_sidecar_opens_and_gets_one() {
        let dir = tempfile::tempdir().unwrap();
        {
            // As an older troupe left it: schema and memory, flushed, no sidecar.
            let db = sled::open(dir.path()).unwrap();
            db.insert("meta/schema", "1").unwrap();
            db.insert("dm/1/Ada/5", &[]).unwrap();
            db.flush().unwrap();
        }
        released(dir.path());
        let s = Store::open(dir.path()).unwrap();
        assert_eq!(s.dm_channels("Ada").unwrap(), vec![5]);
        let sidecar = || fs::read_to_string(dir.path().join(SIDECAR)).unwrap();
        assert_eq!(sidecar().trim_end(), r#"{"v":1,"seq":0}"#);
        s.flush().await.unwrap();
        s.flush().await.unwrap();
        assert_eq!(sidecar().trim_end(), r#"{"v":1,"seq":2}"#);
        assert_eq!(sidecar().len(), SIDECAR_LEN);
    }

    #[tokio::test]
    async fn a_lost_flush_is_detected_even_when_sled_opens_cleanly() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = Store::open(dir.path()).unwrap();
            s.flush().await.unwrap();
        }
        released(dir.path());
        // As if sled had come back from an older state of its log.
        write_sidecar(dir.path(), 5).unwrap();
        let err = Store::open(dir.path()).expect_err("refused");
        assert!(
            err.to_string()
                .contains("only up to flush 1, but flush 5 had completed"),
            "{err}"
        );
        assert!(!dir.path().join(SCRATCH).exists(), "the verification copy is deleted");
    }

    #[test]
    fn a_new_store_and_a_store_never_flushed_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        drop(Store::open(&path).unwrap());
        released(&path);
        // Nothing was flushed: sled's `db` may even be empty. Still a store, not damage.
        set_len(&path.join("db"), |_| 0);
        drop(Store::open(&path).unwrap());
    }
}
