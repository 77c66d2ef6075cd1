//! The real binary and a damaged store: troupe exits 6 naming the damage and the way out, and
//! leaves every file as it was; `troupe store reset` moves the store aside (where `[store] path`
//! says), after which troupe starts with an empty store.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use common::{Control, Process};

fn troupe(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_troupe"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap()
}

/// Every file under `dir`, with its contents.
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(base, &path, out);
            } else {
                let name = path.strip_prefix(base).unwrap().display().to_string();
                out.insert(name, std::fs::read(&path).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &to.join(entry.file_name()));
        } else {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

/// A store as troupe leaves it after real conversations: humans talk to Ada in #general and to
/// Basil in #random and by DM, each message answered, then troupe stops on SIGTERM.
async fn lived_in_store(state: &Path) {
    let mut troupe = Process::spawn(&[
        "--sandbox-listen",
        "127.0.0.1:0",
        "--state-dir",
        state.to_str().unwrap(),
    ]);
    let sb = Control::new(&troupe.url);
    sb.wait_connected(&["Ada", "Basil"]).await;
    for round in 0..6 {
        for human in ["alice", "bob"] {
            let text = format!(
                "round {round} from {human}: {}",
                "what grows best in the shade? ".repeat(4)
            );
            let asked = sb.say("general", human, &format!("<@Ada> {text}")).await;
            sb.reply_to("general", "Ada", asked["id"].as_str().unwrap()).await;
            let asked = sb.say("random", human, &text).await;
            sb.reply_to("random", "Basil", asked["id"].as_str().unwrap()).await;
        }
    }
    let status = troupe.terminate();
    assert_eq!(status.code(), Some(0), "stderr:\n{}", troupe.stderr());
}

fn set_len(db: &Path, len: impl Fn(u64) -> u64) {
    let file = std::fs::OpenOptions::new().write(true).open(db).unwrap();
    let old = file.metadata().unwrap().len();
    file.set_len(len(old)).unwrap();
}

fn flip_at(db: &Path, at: impl Fn(usize) -> usize) {
    let mut bytes = std::fs::read(db).unwrap();
    let at = at(bytes.len());
    for b in &mut bytes[at..at + 8] {
        *b ^= 0xFF;
    }
    std::fs::write(db, bytes).unwrap();
}

type Damage = (&'static str, &'static str, fn(&Path));

/// Each kind of damage, and what the error says about it.
const DAMAGE: [Damage; 6] = [
    ("db truncated to 0 bytes", "is empty (0 bytes)", |d| {
        set_len(&d.join("db"), |_| 0)
    }),
    (
        "db truncated to 100 bytes",
        "sled recovers it only up to flush 0",
        |d| set_len(&d.join("db"), |_| 100),
    ),
    ("db truncated to half", "only up to flush", |d| {
        set_len(&d.join("db"), |len| len / 2)
    }),
    ("bytes flipped at the start of db", "segment header at byte 0", |d| {
        flip_at(&d.join("db"), |_| 0)
    }),
    ("bytes flipped in the middle of db", "only up to flush", |d| {
        flip_at(&d.join("db"), |len| len / 2)
    }),
    ("db deleted", "its sled log `db` is missing", |d| {
        std::fs::remove_file(d.join("db")).unwrap()
    }),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_store_exits_6_untouched_and_store_reset_moves_it_aside() {
    let dir = tempfile::tempdir().unwrap();
    let pristine = dir.path().join("pristine");
    lived_in_store(&pristine).await;

    for (i, (what, says, damage)) in DAMAGE.iter().enumerate() {
        let state = dir.path().join(format!("state-{i}"));
        copy_dir(&pristine, &state);
        damage(&state);
        let before = files(&state);
        let out = troupe(&[
            "--sandbox-listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
            "--state-dir",
            state.to_str().unwrap(),
        ]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(6), "{what}: {stderr}");
        for needle in [
            &format!("error: store {} is corrupt: ", state.display()),
            *says,
            "restore the directory from a backup",
            "troupe store reset",
        ] {
            assert!(stderr.contains(needle), "{what}: no `{needle}` in:\n{stderr}");
        }
        assert!(
            !String::from_utf8_lossy(&out.stdout).contains("listening"),
            "{what}: nothing starts"
        );
        assert!(files(&state) == before, "{what}: the files changed");
    }

    // `store reset` finds the store through `[store] path` of the file --config names.
    let state = dir.path().join("state-0");
    let damaged = files(&state);
    let config = dir.path().join("agents.toml");
    let shipped = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("agents.toml")).unwrap();
    std::fs::write(
        &config,
        shipped.replace("path = \"state\"", &format!("path = {:?}", state.to_str().unwrap())),
    )
    .unwrap();
    let out = troupe(&["--config", config.to_str().unwrap(), "store", "reset"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let aside: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_str().unwrap().starts_with("state-0.broken-"))
        .collect();
    assert_eq!(aside.len(), 1, "{stdout}");
    assert!(
        stdout.contains(&format!(
            "moved the store {} aside to {}",
            state.display(),
            aside[0].display()
        )),
        "{stdout}"
    );
    assert!(!state.exists());
    assert!(files(&aside[0]) == damaged, "the old files are kept as they were");

    // troupe now starts with an empty store there.
    let mut fresh = Process::spawn(&[
        "--sandbox-listen",
        "127.0.0.1:0",
        "--state-dir",
        state.to_str().unwrap(),
    ]);
    Control::new(&fresh.url).wait_connected(&["Ada"]).await;
    assert_eq!(fresh.terminate().code(), Some(0), "{}", fresh.stderr());

    // Nothing to reset is not an error; a store in use is.
    let gone = dir.path().join("never-created");
    let out = troupe(&["--state-dir", gone.to_str().unwrap(), "store", "reset"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("nothing to reset"));
    let _running = Process::spawn(&[
        "--sandbox-listen",
        "127.0.0.1:0",
        "--state-dir",
        state.to_str().unwrap(),
    ]);
    let out = troupe(&["--state-dir", state.to_str().unwrap(), "store", "reset"]);
    assert_eq!(out.status.code(), Some(6));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is locked by another process"));
    assert!(state.join("db").exists());
}
