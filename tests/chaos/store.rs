//! The damaged-store check (separate from the traffic): troupe must refuse a store whose
//! `db` file was truncated, with exit code 6, and leave every file as it was.

use std::time::{Duration, Instant};

use super::scenario::{Knobs, Scenario};
use super::world::{Options, World};

/// The store check: a damaged store must be refused (exit code 6) and left as it is.
#[derive(Debug, Clone)]
pub struct StoreCheck {
    /// How the `db` file was damaged.
    pub damage: String,
    /// troupe's exit code (`None`: it kept running and was killed).
    pub code: Option<i32>,
    /// Whether every file of the store was left byte for byte as it was.
    pub untouched: bool,
}

impl StoreCheck {
    /// Whether troupe refused the store and left it alone.
    pub fn passed(&self) -> bool {
        self.code == Some(6) && self.untouched
    }
}

fn snapshot(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().map(Result::unwrap) {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push((
                    p.strip_prefix(dir).unwrap().display().to_string(),
                    std::fs::read(&p).unwrap(),
                ));
            }
        }
    }
    out.sort();
    out
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    let _ = std::fs::remove_dir_all(to);
    for (rel, bytes) in snapshot(from) {
        let p = to.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }
}

/// Builds a store with some history, then starts troupe on it damaged three ways.
pub async fn damaged_store(knobs: Knobs) -> Vec<StoreCheck> {
    let s = Scenario::begin("store", Options::default(), &knobs, knobs.seed).await;
    s.world.troupe.set_auto_restart(false);
    let code = s.world.troupe.terminate().await;
    assert_eq!(code, Some(0), "troupe did not stop cleanly before the store check");
    let state = s.world.state_dir();
    let pristine = s.world.dir.path().join("pristine");
    copy_dir(&state, &pristine);
    let db_len = std::fs::metadata(state.join("db")).unwrap().len();
    let mut checks = Vec::new();
    for (damage, len) in [
        ("db truncated to half", db_len / 2),
        ("db truncated to 0 bytes", 0),
        ("db cut by 100 bytes", db_len.saturating_sub(100)),
    ] {
        copy_dir(&pristine, &state);
        std::fs::OpenOptions::new()
            .write(true)
            .open(state.join("db"))
            .unwrap()
            .set_len(len)
            .unwrap();
        let before = snapshot(&state);
        let code = run_to_exit(&s.world, Duration::from_secs(10));
        let untouched = snapshot(&state) == before;
        checks.push(StoreCheck {
            damage: format!("{damage} ({db_len} → {len})"),
            code,
            untouched,
        });
    }
    s.world.shutdown().await;
    checks
}

/// Runs troupe on the world's store until it exits, or kills it after `limit`.
fn run_to_exit(world: &World, limit: Duration) -> Option<i32> {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_troupe"))
        .args(world.troupe.args())
        .args(["--http-listen", "127.0.0.1:0"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code();
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
