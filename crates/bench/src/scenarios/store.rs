//! Scenario 6, the store: durable appends of conversation turns to sled through troupe's own
//! `Store::save_memory` (a turn rewrites the conversation's record, then flushes), one
//! conversation at a time and many at once. The baseline is the floor for a durable append on
//! this disk: one JSON line appended to a plain file and `fdatasync`ed.

use std::io::Write as _;
use std::time::{Duration, Instant};

use futures::future::join_all;
use troupe::memory::{self, MemoryTurn};
use troupe::routing::ConversationKey;
use troupe::store::Store;

use super::{progress, Bench};
use crate::report::Figure;
use crate::{BenchError, Context, Result};

/// The `i`th turn of a conversation: users' turns ~85 characters, the agent's ~150.
pub fn turn(i: usize, human: &str) -> MemoryTurn {
    let assistant = i % 2 == 1;
    MemoryTurn {
        assistant,
        author: if assistant { "Agent".into() } else { human.into() },
        content: if assistant {
            format!("It went well. We left early, the roads were quiet and the weather held until the afternoon ({i}).")
        } else {
            format!("message {i}: how was the weekend, and did the plan for the trip to the coast work out?")
        },
        message_id: 1_200_000_000_000_000_000 + i as u64,
        time_ms: 1_700_000_000_000 + i as u64,
        cut: false,
        attachments: Vec::new(),
    }
}

/// How long one `save_memory` may take before the store counts as hung.
pub const SAVE_DEADLINE: Duration = Duration::from_secs(30);

/// `Store::save_memory`, or an error when it hangs (sled 0.34's `flush_async` deadlocks under
/// concurrent callers: spacejam/sled#1308).
pub async fn save(store: &Store, agent: &str, key: ConversationKey, turns: &[MemoryTurn]) -> Result<()> {
    match tokio::time::timeout(SAVE_DEADLINE, store.save_memory(agent, key, turns)).await {
        Ok(saved) => saved.context("save_memory"),
        Err(_) => Err(BenchError(format!(
            "save_memory hung for {SAVE_DEADLINE:?} (sled flush_async deadlock under concurrent flushes, see docs/benchmarks.md)"
        ))),
    }
}

/// Runs `work` on a thread and runtime of its own and gives up after `deadline`: a hung sled
/// flush blocks the threads it runs on, and must not freeze the harness with them. A hung
/// thread is left behind; it ends with the process.
async fn isolated<T: Send + 'static>(
    deadline: Duration,
    work: impl std::future::Future<Output = Result<T>> + Send + 'static,
) -> Result<T> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let result = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .context("building a runtime")
            .and_then(|rt| rt.block_on(work));
        let _ = tx.send(result);
    });
    match tokio::time::timeout(deadline, rx).await {
        Ok(Ok(result)) => result,
        Ok(Err(_)) => Err(BenchError("the store task panicked".into())),
        Err(_) => Err(BenchError(format!(
            "concurrent save_memory calls hung for {deadline:?} (sled flush_async deadlock, see docs/benchmarks.md)"
        ))),
    }
}

/// Appends `n` turns to one conversation, each durable; returns appends per second.
async fn appends(store: &Store, key: ConversationKey, n: usize) -> Result<f64> {
    let mut turns = Vec::new();
    let start = Instant::now();
    for i in 0..n {
        turns.push(turn(i, "h000"));
        memory::trim(&mut turns, memory::Limits::default());
        save(store, "Agent", key, &turns).await?;
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

/// The floor: `n` JSON lines appended to a file, each `fdatasync`ed.
fn file_appends(path: &std::path::Path, n: usize) -> Result<f64> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .context("opening the baseline file")?;
    let start = Instant::now();
    for i in 0..n {
        let mut line = serde_json::to_vec(&turn(i, "h000")).context("serializing a turn")?;
        line.push(b'\n');
        f.write_all(&line).context("appending")?;
        f.sync_data().context("fdatasync")?;
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

/// Runs the scenario.
pub async fn run(b: &Bench) -> Result<Vec<Figure>> {
    let n = b.plan.store_appends;
    let (k, m) = b.plan.store_parallel;
    let dir = b.dir.join("store");
    std::fs::create_dir_all(&dir).context("creating the store directory")?;
    progress(
        "store",
        &format!("{n} durable appends to one conversation; the file baseline"),
    );
    let path = dir.join("baseline.jsonl");
    let floor = tokio::task::spawn_blocking(move || file_appends(&path, n))
        .await
        .context("baseline task")??;
    let store = Store::open(&dir.join("sled")).context("opening the store")?;
    let one = appends(&store, ConversationKey::Channel(1), n).await?;
    progress("store", &format!("{k} conversations × {m} appends at once"));
    let parallel = format!("turn appends/s, {k} conversations at once");
    let concurrent = store.clone();
    let many = isolated(b.plan.stall, async move {
        let start = Instant::now();
        let results = join_all((0..k).map(|c| appends(&concurrent, ConversationKey::Channel(100 + c as u64), m))).await;
        results.into_iter().collect::<Result<Vec<_>>>()?;
        Ok((k * m) as f64 / start.elapsed().as_secs_f64())
    })
    .await;
    let many = match many {
        Ok(rate) => Figure::new("store", &parallel, "1/s", rate, Some(floor)).note("concurrent save_memory calls"),
        Err(e) => {
            // A deadlocked sled also hangs in `Drop` (it flushes): leave the handle behind.
            std::mem::forget(store);
            Figure::unavailable("store", &parallel, "1/s", &e.to_string())
        }
    };
    Ok(vec![
        Figure::new("store", "turn appends/s, 1 conversation", "1/s", one, Some(floor))
            .note("each save_memory rewrites the record and flushes; baseline: file append + fdatasync"),
        many,
    ])
}
