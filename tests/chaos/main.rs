//! `make chaos`: the reliability suite (issue "Never drop a message"). troupe promises that every
//! message it decided to answer is answered exactly once, or visibly given up on with a failure
//! notice. This suite measures that promise from the outside: it drives the real `troupe`
//! binary against a standalone sandbox (which keeps the messages while troupe is killed) and the
//! fault-injecting LLM test server, injects one kind of fault per scenario while several humans
//! write across channels and DMs, and counts what happened to every message.
//!
//! - [`world`]: the sandbox, the LLM server and the configuration of one scenario.
//! - [`orchestrator`]: the troupe process under test, run as an orchestrator would run it.
//! - [`traffic`]: steady human traffic, each message with a unique marker, and the ledger.
//! - [`ledger`]: attributing replies to messages, and the counts (pure, unit-tested).
//! - [`scenario`]: a scenario's frame: start, settle with deadlines, sync round, counts.
//! - [`scenarios`]: the scenarios, one kind of fault each, and the smoke run.
//! - [`store`]: the damaged-store check.
//! - [`report`]: the table.
//!
//! `chaos_smoke` runs in `make test` (a few cycles of everything, in one world). The full suite
//! is `#[ignore]`d and run by `make chaos`; its sizes come from the environment:
//!
//! | variable | default | meaning |
//! | --- | --- | --- |
//! | `CHAOS_CYCLES` | 1000 | `kill -9`s in all (40 % live, 2×10 % during replay, 20 % new DMs, 20 % webhook) |
//! | `CHAOS_FAULT_CYCLES` | 40 | gateway faults and REST bursts on sending (history reads, overload: half; breaker: a fifth) |
//! | `CHAOS_OUTAGES` | `30,60,120` | LLM outages, in seconds |
//! | `CHAOS_SETTLE_SECS` | 240 | the longest wait for every message to be answered, per scenario |
//! | `CHAOS_QUIET_SECS` | 60 | the settle wait also ends after this long without a new reply |
//! | `CHAOS_GIVE_UP_SECS` | 90 | `[delivery] give_up_after_secs`, if troupe has it |
//! | `CHAOS_SCENARIOS` | all | comma-separated names (see [`scenarios::ALL`], plus `store`) |
//! | `CHAOS_SEED` | fixed | seed of every random choice |

#[path = "../common/mod.rs"]
mod common;
mod ledger;
mod orchestrator;
mod report;
mod scenario;
mod scenarios;
mod store;
mod traffic;
mod world;

use std::time::Duration;

use scenario::{Knobs, ScenarioResult};

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(v) => v.parse().unwrap_or_else(|_| panic!("{name}={v} is not a valid value")),
        Err(_) => default,
    }
}

fn full_knobs() -> Knobs {
    let outages = std::env::var("CHAOS_OUTAGES").unwrap_or_else(|_| "30,60,120".into());
    Knobs {
        kill_cycles: env("CHAOS_CYCLES", 1000),
        fault_cycles: env("CHAOS_FAULT_CYCLES", 40),
        outages: outages
            .split(',')
            .filter(|s| !s.trim().is_empty())
            .map(|s| Duration::from_secs(s.trim().parse().expect("CHAOS_OUTAGES: seconds, comma-separated")))
            .collect(),
        settle: Duration::from_secs(env("CHAOS_SETTLE_SECS", 240)),
        quiet: Duration::from_secs(env("CHAOS_QUIET_SECS", 60)),
        seed: env("CHAOS_SEED", 0x5eed_c4a0_5eed_c4a0),
        give_up_secs: env("CHAOS_GIVE_UP_SECS", 90),
        support: world::Support::probe(),
    }
}

/// A scenario run in its own task, so a harness failure becomes a row, not a lost table.
async fn run_guarded(name: &'static str, knobs: Knobs, index: u64) -> ScenarioResult {
    let started = std::time::Instant::now();
    match tokio::spawn(scenarios::run(name, knobs, index)).await {
        Ok(r) => r,
        Err(e) => {
            let why = if e.is_panic() {
                let p = e.into_panic();
                p.downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default()
            } else {
                "cancelled".into()
            };
            ScenarioResult {
                name,
                tally: Default::default(),
                lifecycle: Default::default(),
                faults: 0,
                secs: started.elapsed().as_secs_f64(),
                problems: Vec::new(),
                notes: vec![format!("HARNESS FAILURE: {why}")],
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the full reliability suite takes about half an hour: `make chaos`"]
async fn chaos_full() {
    let knobs = full_knobs();
    let wanted = std::env::var("CHAOS_SCENARIOS").ok();
    let wanted = |name: &str| wanted.as_deref().is_none_or(|w| w.split(',').any(|x| x.trim() == name));
    report::preamble(&knobs);
    let mut results = Vec::new();
    for (i, name) in scenarios::ALL.into_iter().enumerate() {
        if wanted(name) {
            let r = run_guarded(name, knobs.clone(), i as u64).await;
            report::progress(&r);
            results.push(r);
        }
    }
    let store = if wanted("store") {
        Some(store::damaged_store(knobs.clone()).await)
    } else {
        None
    };
    let table = report::render(&knobs, &results, store.as_deref());
    println!("{table}");
    report::save(&table);
    let failed: Vec<&str> = results
        .iter()
        .filter(|r| !r.tally.clean() || r.notes.iter().any(|n| n.starts_with("HARNESS")))
        .map(|r| r.name)
        .collect();
    let store_failed = store.iter().flatten().filter(|c| !c.passed()).count();
    assert!(
        failed.is_empty() && store_failed == 0,
        "the promise does not hold: scenarios {failed:?} lost, duplicated or spuriously answered messages; {store_failed} damaged-store check(s) failed (table above)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_smoke() {
    let knobs = Knobs {
        kill_cycles: 0,
        fault_cycles: 1,
        outages: vec![Duration::from_secs(3)],
        settle: Duration::from_secs(30),
        quiet: Duration::from_secs(10),
        seed: env("CHAOS_SEED", 0x5eed_c4a0_5eed_c4a0),
        give_up_secs: 90,
        support: world::Support::probe(),
    };
    let r = scenarios::smoke(knobs.clone()).await;
    let table = report::render(&knobs, std::slice::from_ref(&r), None);
    println!("{table}");
    assert!(
        r.tally.clean(),
        "the promise does not hold in the smoke run: {:?}\n{table}",
        r.tally
    );
}
