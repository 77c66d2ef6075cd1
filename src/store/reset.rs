//! `troupe store reset`: the one way to start over with an empty store. It moves the store
//! directory aside (renamed to `<path>.broken-<unix seconds>`) and deletes nothing. When the
//! directory cannot be renamed, typically because it is a volume's mount point (the Kubernetes
//! manifests mount the store there), its files are moved into `<path>/broken-<unix seconds>/`
//! instead: a store directory without sled's files at its top is a new, empty store.

use std::fmt;
use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use super::StoreError;

/// What [`reset`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResetReport {
    /// There was nothing to move: no directory, or an empty one.
    Nothing {
        /// The store directory.
        store: PathBuf,
    },
    /// The directory was renamed.
    Renamed {
        /// The store directory.
        store: PathBuf,
        /// Where its files are now.
        to: PathBuf,
    },
    /// The directory could not be renamed; its files were moved into a subdirectory.
    MovedInside {
        /// The store directory.
        store: PathBuf,
        /// Where its files are now.
        to: PathBuf,
        /// Why the rename failed.
        rename_error: String,
    },
}

impl fmt::Display for ResetReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResetReport::Nothing { store } => {
                write!(
                    f,
                    "store {}: nothing to reset (no such directory, or it is empty)",
                    store.display()
                )
            }
            ResetReport::Renamed { store, to } => write!(
                f,
                "moved the store {} aside to {}\nthe old files are kept there; troupe starts with an empty store \
                 at {}; delete {} once you no longer need it",
                store.display(),
                to.display(),
                store.display(),
                to.display()
            ),
            ResetReport::MovedInside {
                store,
                to,
                rename_error,
            } => write!(
                f,
                "cannot rename {} ({rename_error}; is it a mount point?), so its files were moved into {}\nthe old \
                 files are kept there; troupe starts with an empty store at {}; delete {} once you no longer need it",
                store.display(),
                to.display(),
                store.display(),
                to.display()
            ),
        }
    }
}

/// Moves the store at `path` aside, stamped with `now_unix_secs`. Refuses a store another
/// process holds (a running troupe).
pub fn reset(path: &Path, now_unix_secs: u64) -> Result<ResetReport, StoreError> {
    let io = |e: std::io::Error| StoreError::Io {
        path: path.to_path_buf(),
        source: sled::Error::Io(e),
    };
    let empty = match fs::read_dir(path) {
        Ok(mut entries) => entries.next().is_none(),
        Err(e) if e.kind() == ErrorKind::NotFound => true,
        Err(e) => return Err(io(e)),
    };
    if empty {
        return Ok(ResetReport::Nothing {
            store: path.to_path_buf(),
        });
    }
    // Held until the files have moved, so no troupe opens the store meanwhile.
    let lock = match fs::File::open(path.join("db")) {
        Ok(db) => match db.try_lock() {
            Ok(()) => Some(db),
            Err(fs::TryLockError::WouldBlock) => return Err(StoreError::Locked(path.to_path_buf())),
            Err(fs::TryLockError::Error(e)) => return Err(io(e)),
        },
        Err(e) if e.kind() == ErrorKind::NotFound => None,
        Err(e) => return Err(io(e)),
    };
    let stamp = format!("broken-{now_unix_secs}");
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{stamp}"));
    let to = free_name(PathBuf::from(name));
    let report = match fs::rename(path, &to) {
        Ok(()) => ResetReport::Renamed {
            store: path.to_path_buf(),
            to,
        },
        Err(rename_error) => ResetReport::MovedInside {
            store: path.to_path_buf(),
            to: move_inside(path, &stamp).map_err(io)?,
            rename_error: rename_error.to_string(),
        },
    };
    drop(lock);
    Ok(report)
}

/// Moves everything in `path` into a new subdirectory named after `stamp`; returns it.
fn move_inside(path: &Path, stamp: &str) -> std::io::Result<PathBuf> {
    let inside = free_name(path.join(stamp));
    fs::create_dir(&inside)?;
    for entry in fs::read_dir(path)? {
        let entry = entry?;
        if entry.path() != inside {
            fs::rename(entry.path(), inside.join(entry.file_name()))?;
        }
    }
    Ok(inside)
}

/// `wanted`, or `wanted-2`, `wanted-3`... whichever does not exist yet.
fn free_name(wanted: PathBuf) -> PathBuf {
    let mut candidate = wanted.clone();
    let mut n = 2;
    while candidate.exists() {
        let mut name = wanted.as_os_str().to_owned();
        name.push(format!("-{n}"));
        candidate = PathBuf::from(name);
        n += 1;
    }
    candidate
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reset_moves_the_store_aside_and_a_new_one_starts_empty() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        {
            let s = super::super::Store::open(&path).unwrap();
            s.remember_dm("Ada", 7).unwrap();
            s.flush().await.unwrap();
        }
        let report = reset_when_released(&path, 1_700_000_000);
        let to = dir.path().join("state.broken-1700000000");
        assert_eq!(
            report,
            ResetReport::Renamed {
                store: path.clone(),
                to: to.clone()
            }
        );
        assert!(report.to_string().contains(&to.display().to_string()));
        assert!(!path.exists() && to.join("db").exists() && to.join("troupe-store.json").exists());
        // The old store is intact where it went; a new one starts empty.
        assert_eq!(
            super::super::Store::open(&to).unwrap().dm_channels("Ada").unwrap(),
            vec![7]
        );
        assert!(super::super::Store::open(&path)
            .unwrap()
            .dm_channels("Ada")
            .unwrap()
            .is_empty());
    }

    #[test]
    fn nothing_to_reset_and_names_never_collide() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        assert_eq!(reset(&path, 5).unwrap(), ResetReport::Nothing { store: path.clone() });
        for _ in 0..2 {
            fs::create_dir(&path).unwrap();
            fs::write(path.join("db"), b"x").unwrap();
            reset(&path, 5).unwrap();
        }
        assert!(dir.path().join("state.broken-5").join("db").exists());
        assert!(dir.path().join("state.broken-5-2").join("db").exists());
    }

    /// What happens when the store directory is a mount point and cannot be renamed.
    #[tokio::test]
    async fn a_store_moved_inside_its_directory_leaves_an_empty_store() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = super::super::Store::open(dir.path()).unwrap();
            s.remember_dm("Ada", 7).unwrap();
            s.flush().await.unwrap();
        }
        let inside = loop {
            // sled's threads may hold the files a moment after the last handle dropped.
            if let Ok(db) = fs::File::open(dir.path().join("db")) {
                if db.try_lock().is_ok() {
                    drop(db);
                    break move_inside(dir.path(), "broken-5").unwrap();
                }
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        };
        assert_eq!(inside, dir.path().join("broken-5"));
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
        assert_eq!(
            super::super::Store::open(&inside).unwrap().dm_channels("Ada").unwrap(),
            vec![7]
        );
        assert!(super::super::Store::open(dir.path())
            .unwrap()
            .dm_channels("Ada")
            .unwrap()
            .is_empty());
    }

    #[test]
    fn a_store_in_use_is_not_reset() {
        let dir = tempfile::tempdir().unwrap();
        let _open = super::super::Store::open(dir.path()).unwrap();
        let err = reset(dir.path(), 5).unwrap_err();
        assert!(matches!(err, StoreError::Locked(_)), "{err}");
        assert!(dir.path().join("db").exists());
    }

    /// sled's threads may hold the lock a moment after the last handle dropped.
    fn reset_when_released(path: &Path, now: u64) -> ResetReport {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            match reset(path, now) {
                Err(StoreError::Locked(_)) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(5))
                }
                other => return other.unwrap(),
            }
        }
    }
}
