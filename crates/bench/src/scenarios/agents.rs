//! Scenario 3 (agents) and 5 (startup): troupe with 1, 10 and 100 agents, each its own bot user
//! and gateway connection, in its own process; resident memory once every agent is connected,
//! beside the same number of bare serenity clients in one process. Startup is the time from
//! spawning the process to every bot connected at the sandbox (both), and to troupe's
//! `/readiness` answering 200.

use std::time::Duration;

use super::{progress, Bench, CONNECT_DEADLINE};
use crate::process::{Backend, Baseline, Rss, Troupe, TroupeConfig, STAY_ALIVE};
use crate::report::Figure;
use crate::stage::Stage;
use crate::Result;

/// Time given to a process after its last connection before its memory is read.
const SETTLE: Duration = Duration::from_secs(1);

const MIB: f64 = 1024.0 * 1024.0;

/// One measurement of `n` bots.
#[derive(Debug, Clone, Copy)]
struct Connected {
    rss: Rss,
    /// Spawn → every bot connected at the sandbox.
    connected_secs: f64,
    /// Spawn → `/readiness` 200 (troupe only).
    ready_secs: Option<f64>,
}

async fn troupe_with(b: &Bench, n: usize) -> Result<Connected> {
    let stage = Stage::start(1, 1).await?;
    let names: Vec<String> = (0..n).map(|i| format!("Agent{i:03}")).collect();
    stage.add_bots(&names).await?;
    let ids: Vec<u64> = names.iter().filter_map(|n| stage.id_of(n)).collect();
    let config = TroupeConfig {
        agents: names,
        backend: Backend::Echo,
        memory: "channel",
        max_concurrency: 4,
        idle_secs: STAY_ALIVE,
        stream: false,
        store_cache_mib: b.plan.store_cache_mib,
    };
    let mut troupe = Troupe::spawn(
        &b.troupe,
        &config,
        &stage.url(),
        &b.dir.join(format!("agents-{n}-state")),
        &b.dir,
    )?;
    let spawned = troupe.spawned;
    let (connected, ready) = tokio::join!(
        stage.wait_connected(&ids, CONNECT_DEADLINE),
        troupe.wait_ready(CONNECT_DEADLINE)
    );
    let (connected, ready) = (connected?, ready?);
    tokio::time::sleep(SETTLE).await;
    let rss = troupe.rss()?;
    troupe.stop();
    stage.stop().await;
    Ok(Connected {
        rss,
        connected_secs: (connected - spawned).as_secs_f64(),
        ready_secs: Some((ready - spawned).as_secs_f64()),
    })
}

async fn baseline_with(n: usize) -> Result<Connected> {
    let stage = Stage::start(1, 1).await?;
    let names: Vec<String> = (0..n).map(|i| format!("Base{i:03}")).collect();
    let tokens = stage.add_bots(&names).await?;
    let ids: Vec<u64> = names.iter().filter_map(|n| stage.id_of(n)).collect();
    let baseline = Baseline::spawn(&stage.url(), &tokens)?;
    let connected = stage.wait_connected(&ids, CONNECT_DEADLINE).await?;
    tokio::time::sleep(SETTLE).await;
    let rss = baseline.rss()?;
    let connected_secs = (connected - baseline.spawned).as_secs_f64();
    baseline.stop();
    stage.stop().await;
    Ok(Connected {
        rss,
        connected_secs,
        ready_secs: None,
    })
}

/// Runs the scenario.
pub async fn run(b: &Bench) -> Result<Vec<Figure>> {
    let mut figures = Vec::new();
    let mut runs = Vec::new();
    for &n in &b.plan.agent_counts {
        progress(
            "memory",
            &format!("{n} agents connected: troupe, then {n} bare serenity clients"),
        );
        let t = troupe_with(b, n).await?;
        let base = baseline_with(n).await?;
        figures.push(
            Figure::new(
                "memory",
                &format!("RSS, {n} agent{} connected", if n == 1 { "" } else { "s" }),
                "MiB",
                t.rss.now as f64 / MIB,
                Some(base.rss.now as f64 / MIB),
            )
            .note(format!(
                "peak {:.1} MiB (baseline {:.1})",
                t.rss.peak as f64 / MIB,
                base.rss.peak as f64 / MIB
            )),
        );
        runs.push((n, t, base));
    }
    if let (Some((n1, t1, b1)), Some((n2, t2, b2))) = (runs.first(), runs.last()) {
        if n2 > n1 {
            let per =
                |lo: &Connected, hi: &Connected| (hi.rss.now as f64 - lo.rss.now as f64) / (n2 - n1) as f64 / 1024.0;
            figures.push(
                Figure::new("memory", "RSS per agent", "KiB", per(t1, t2), Some(per(b1, b2)))
                    .note(format!("(RSS with {n2} − RSS with {n1}) / {}", n2 - n1)),
            );
        }
        figures.push(
            Figure::new(
                "startup",
                &format!("start → {n2} agents connected"),
                "s",
                t2.connected_secs,
                Some(b2.connected_secs),
            )
            .note("from spawning the process to every IDENTIFY at the sandbox"),
        );
        if let Some(ready) = t2.ready_secs {
            figures.push(
                Figure::new(
                    "startup",
                    &format!("start → /readiness 200, {n2} agents"),
                    "s",
                    ready,
                    Some(b2.connected_secs),
                )
                .note("baseline: its bots connected"),
            );
        }
    }
    Ok(figures)
}
