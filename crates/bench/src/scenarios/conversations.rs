//! Scenario 3 (conversations): one agent with `memory = "channel-user"` in 100 channels with
//! 100 humans, so 10,000 conversations, beside 99 more agents of the same troupe (the plan's
//! `conversation_agents`) connected in the same guild: they see every message and are never
//! addressed, so issue 18's target (100 agents + 10,000 live conversations) is one reading.
//! Each conversation is seeded with 20 turns through troupe's own `Store::save_memory` before
//! troupe starts, then touched by one message from its human in its channel: troupe starts the
//! conversation, which loads its 20 turns, answers (echo backend: no HTTP, the memory is the
//! subject) and keeps 22. Resident memory before (every agent connected, no conversation) and
//! after, and per conversation; then, once they have passivated, memory again and activation
//! latency ([`super::passivation`]); then the store's size on disk (scenario 6).

use std::time::{Duration, Instant};

use troupe::routing::ConversationKey;
use troupe::store::Store;

use super::store::{save, turn};
use super::{progress, Bench, CONNECT_DEADLINE};
use crate::process::{disk_usage, Backend, Troupe, TroupeConfig};
use crate::report::Figure;
use crate::stage::{channel, human, Post, Stage};
use crate::{BenchError, Context, Result};

const MIB: f64 = 1024.0 * 1024.0;
const SETTLE: Duration = Duration::from_secs(1);
/// At most this long for troupe to go quiet after the touches are answered.
const QUIET_DEADLINE: Duration = Duration::from_secs(120);

/// Writes `turns` turns to every (channel, human) conversation of agent `agent`, one after
/// another (concurrent saves can hang sled 0.34, see [`save`]); returns conversations written
/// per second.
async fn seed(state: &std::path::Path, agent: &str, keys: &[(u64, u64, String)], turns: usize) -> Result<f64> {
    let store = Store::open(state).context("opening the store to seed it")?;
    let start = Instant::now();
    for (c, h, name) in keys {
        let memory: Vec<_> = (0..turns).map(|i| turn(i, name)).collect();
        save(&store, agent, ConversationKey::ChannelUser(*c, *h), &memory).await?;
    }
    let rate = keys.len() as f64 / start.elapsed().as_secs_f64();
    store.flush().await.context("flushing the seeded store")?;
    Ok(rate)
}

/// `growth` bytes of RSS over `n` conversations, less the store's whole cache bound
/// (`cache_bytes`): the cache is a fixed cost that fills once the records touched exceed it,
/// not a cost per conversation. A lower bound of the per-conversation part: it assumes the
/// cache filled entirely during the growth.
pub fn beyond_cache(what: &str, growth: f64, n: usize, cache_bytes: u64) -> Figure {
    let cache = cache_bytes as f64;
    let rest = (growth - cache).max(0.0);
    Figure::new("memory", what, "KiB", rest / n.max(1) as f64 / 1024.0, None).note(format!(
        "the previous figure less the store's cache bound ([store] cache_mib = {}, {:.1} KiB per conversation here), a fixed cost; a lower bound, 0 while the cache cannot have filled",
        cache_bytes >> 20,
        cache / n.max(1) as f64 / 1024.0
    ))
}

/// Runs the scenario.
// Why this is long: a benchmark scenario is a script (stage, load, measure, report) read top to bottom.
pub async fn run(b: &Bench) -> Result<Vec<Figure>> {
    let p = &b.plan;
    let (channels, humans, turns) = (p.conversation_channels, p.conversation_humans, p.seeded_turns);
    let n = channels * humans;
    let stage = Stage::start(channels, humans).await?;
    // "Agent" answers; the others only see the traffic.
    let agents: Vec<String> = std::iter::once("Agent".to_string())
        .chain((1..p.conversation_agents.max(1)).map(|i| format!("Bystander{i:03}")))
        .collect();
    stage.add_bots(&agents).await?;
    let bot_ids: Vec<u64> = agents.iter().filter_map(|a| stage.id_of(a)).collect();
    let mut keys = Vec::with_capacity(n);
    for c in 0..channels {
        for h in 0..humans {
            let (cid, hid) = stage
                .id_of(&channel(c))
                .zip(stage.id_of(&human(h)))
                .expect("in the world");
            keys.push((cid, hid, human(h)));
        }
    }
    let state = b.dir.join("conversations-state");
    progress(
        "memory",
        &format!("seeding {n} conversations × {turns} turns through the store"),
    );
    let seeded_per_sec = seed(&state, "Agent", &keys, turns).await?;

    let config = TroupeConfig {
        agents: agents.clone(),
        backend: Backend::Echo,
        memory: "channel-user",
        max_concurrency: 64,
        idle_secs: p.passivation_idle_secs,
        stream: false,
        store_cache_mib: b.plan.store_cache_mib,
    };
    let mut troupe = Troupe::spawn(&b.troupe, &config, &stage.url(), &state, &b.dir)?;
    troupe.wait_ready(CONNECT_DEADLINE).await?;
    stage.wait_connected(&bot_ids, CONNECT_DEADLINE).await?;
    tokio::time::sleep(SETTLE).await;
    let before = troupe.rss()?;

    progress("memory", &format!("touching {n} conversations with one message each"));
    let posts: Vec<Post> = (0..channels)
        .flat_map(|c| {
            (0..humans).map(move |h| Post {
                channel: channel(c),
                author: human(h),
                content: "<@Agent> do you remember?".into(),
            })
        })
        .collect();
    let mark = stage.replies();
    let touch = Instant::now();
    stage.flood(posts, 64).await?;
    let answered = stage.wait_replies(mark + n, p.stall).await - mark;
    let touched_secs = touch.elapsed().as_secs_f64();
    // With more agents, each of them parses every message: wait until troupe has digested them,
    // so the reading is the conversations held, not a burst in flight (its peak is reported).
    let quiet_secs = troupe.wait_quiet(QUIET_DEADLINE).await.as_secs_f64();
    tokio::time::sleep(SETTLE).await;
    let after = troupe.rss()?;
    let alive = troupe.metric("troupe_active_conversations").await;
    let held = troupe.metric("troupe_gateway_backpressure_waits_total").await;
    let passivated = super::passivation::run(b, &stage, &troupe, humans, n, before).await;
    troupe.stop();
    stage.stop().await;
    if answered == 0 {
        return Err(BenchError(format!("none of the {n} conversations answered")));
    }
    let on_disk = disk_usage(&state);
    // Every live conversation has loaded its turns, answered or not (a hung turn still
    // holds them): count conversations, as the gauge reports them, rather than replies.
    let alive = alive.map_or(answered, |a| a as usize).max(1);
    let early = if alive < n.min(answered) {
        format!(
            "; {} passivated before the reading (idle_secs = {}: raise --passivation-idle-secs)",
            n.min(answered) - alive,
            p.passivation_idle_secs
        )
    } else {
        String::new()
    };
    let partial = if answered < n {
        format!("; only {answered} of {n} answered")
    } else {
        String::new()
    };
    let per_conversation = (after.now as f64 - before.now as f64) / alive as f64;
    let k = agents.len();
    let agents_label = if k == 1 {
        "1 agent".to_string()
    } else {
        format!("{k} agents")
    };
    let mut figures = vec![
        Figure::new(
            "memory",
            &format!("RSS, {agents_label} connected, no conversation"),
            "MiB",
            before.now as f64 / MIB,
            None,
        ),
        Figure::new(
            "memory",
            &format!("RSS, {agents_label} + {alive} live conversations × {turns}+ turns"),
            "MiB",
            after.now as f64 / MIB,
            None,
        )
        .note(format!(
            "peak {:.1} MiB; one agent's conversations, {} more agents connected and unaddressed; touched in {touched_secs:.0} s, quiet {quiet_secs:.0} s later; gateway runners held back {} times{partial}{early}",
            after.peak as f64 / MIB,
            k - 1,
            held.map_or_else(|| "?".to_string(), |h| format!("{h:.0}")),
        )),
        Figure::new("memory", "RSS per conversation", "KiB", per_conversation / 1024.0, None)
            .note("(RSS after − RSS before) / conversations live"),
        beyond_cache(
            "RSS per conversation beyond the store's cache",
            after.now as f64 - before.now as f64,
            alive,
            b.plan.cache_bytes(),
        ),
        Figure::new(
            "store",
            "seeding: 20-turn conversations written/s",
            "1/s",
            seeded_per_sec,
            None,
        )
        .note("one save_memory after another"),
        Figure::new(
            "store",
            &format!("size on disk, {n} conversations"),
            "MiB",
            on_disk as f64 / MIB,
            None,
        )
        .note(format!(
            "{:.0} bytes per turn kept ({} turns)",
            on_disk as f64 / (n * (turns + 2)) as f64,
            n * (turns + 2)
        )),
    ];
    figures.extend(passivated);
    Ok(figures)
}
