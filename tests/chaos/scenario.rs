//! A scenario's frame: a fresh world with a first message in every conversation answered,
//! steady traffic, and the end: every fault cleared, a settle phase (wait until every message is
//! answered, with deadlines), a sync round, and the counts.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use troupe_llm_test_server::echo_text;

use super::ledger::{markers, Evidence, FailedBatch, HistoryRead, Problem, Sent, Tally, MARKER_PREFIX};
use super::orchestrator::Lifecycle;
use super::traffic::{first_contact, sync_round, Ledger, Mix, Rng, Traffic};
use super::world::{Options, Support, World, NOTICE};

/// Sizes and deadlines, from the environment (see `main.rs`).
#[derive(Debug, Clone)]
pub struct Knobs {
    /// `kill -9`s in all, shared out among the kill scenarios.
    pub kill_cycles: usize,
    /// Fault injections per fault scenario (gateway, REST, breaker, overload).
    pub fault_cycles: usize,
    /// LLM outages, one after the other.
    pub outages: Vec<Duration>,
    /// The longest the settle phase waits for every message to be answered.
    pub settle: Duration,
    /// The settle phase also ends after this long without any new reply.
    pub quiet: Duration,
    /// Seed of every random choice.
    pub seed: u64,
    /// `[delivery] give_up_after_secs`, when troupe has it.
    pub give_up_secs: u64,
    /// What this troupe supports.
    pub support: Support,
}

/// One scenario's outcome.
#[derive(Debug, Clone)]
pub struct ScenarioResult {
    /// Its name.
    pub name: &'static str,
    /// The counts.
    pub tally: Tally,
    /// Starts, kills and exits.
    pub lifecycle: Lifecycle,
    /// Faults injected (besides kills).
    pub faults: u32,
    /// Wall time.
    pub secs: f64,
    /// Messages that did not get what they should (all of them).
    pub problems: Vec<Problem>,
    /// Anything else worth reading (e.g. the harness failed).
    pub notes: Vec<String>,
}

/// A scenario in progress.
pub struct Scenario {
    name: &'static str,
    /// The world.
    pub world: Arc<World>,
    /// What the humans posted.
    pub ledger: Arc<Mutex<Ledger>>,
    /// Every random choice.
    pub rng: Rng,
    /// Faults injected so far.
    pub faults: u32,
    started: Instant,
    /// Sizes and deadlines.
    pub knobs: Knobs,
    /// Notes for the report.
    pub notes: Vec<String>,
    reads: Vec<HistoryRead>,
    log_seen: usize,
    failed: Vec<FailedBatch>,
    llm_seen: usize,
}

impl Scenario {
    /// A fresh world, troupe started, and a first message in every conversation answered.
    pub async fn begin(name: &'static str, mut options: Options, knobs: &Knobs, seed: u64) -> Scenario {
        let started = Instant::now();
        options.give_up_secs = knobs.give_up_secs;
        let world = Arc::new(World::new(&options, &knobs.support).await);
        world.troupe.start().await;
        assert!(
            world.troupe.wait_ready(Duration::from_secs(30)).await,
            "{name}: troupe never reported every agent ready"
        );
        let mut s = Scenario {
            name,
            world,
            ledger: Arc::new(Mutex::new(Ledger::default())),
            rng: Rng::new(seed),
            faults: 0,
            started,
            knobs: knobs.clone(),
            notes: Vec::new(),
            reads: Vec::new(),
            log_seen: 0,
            failed: Vec::new(),
            llm_seen: 0,
        };
        first_contact(&s.world, &s.ledger, &mut s.rng).await;
        let deadline = Instant::now() + Duration::from_secs(30);
        while s.observe().await.0.lost > 0 {
            assert!(Instant::now() < deadline, "{name}: first contact not answered");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        s
    }

    /// Steady traffic of `mix`, one message every `pace` or a little more, until stopped.
    pub fn traffic(&mut self, mix: Mix, pace: Duration) -> Traffic {
        Traffic::start(self.world.clone(), self.ledger.clone(), mix, pace, self.rng.next())
    }

    /// Pacing: lets traffic flow for a random while.
    pub async fn pause(&mut self, lo_ms: u64, hi_ms: u64) {
        tokio::time::sleep(self.rng.ms(lo_ms, hi_ms)).await;
    }

    /// The counts so far, and how many troupe messages there are.
    async fn observe(&mut self) -> (Tally, Vec<Problem>, usize) {
        let new = self.world.requests_since(self.log_seen).await;
        // A failed read (an injected 5xx) showed troupe nothing.
        for (i, r) in new.iter().enumerate().filter(|(_, r)| r.status == 200) {
            let agent = self.world.agent_of(&r.bot).unwrap_or_default().to_string();
            if let Some(read) = HistoryRead::parse(&r.method, &r.path, &agent, self.log_seen + i, r.unix_ms) {
                self.reads.push(read);
            }
        }
        self.log_seen += new.len();
        let asked = self.world.llm.requests_since(self.llm_seen);
        self.llm_seen += asked.len();
        for r in asked.iter().filter(|r| r.outage) {
            let echo = echo_text(&r.body, MARKER_PREFIX);
            self.failed.push(FailedBatch {
                markers: markers(&echo).into_iter().map(String::from).collect(),
                unix_ms: r.unix_ms,
            });
        }
        let (posted, channels) = {
            let l = self.ledger.lock().unwrap();
            (l.posted.clone(), l.channels())
        };
        let mut sent = Vec::new();
        for c in channels {
            sent.extend(
                self.world
                    .sb
                    .messages(&c.to_string())
                    .await
                    .iter()
                    .filter_map(Sent::from_json),
            );
        }
        let unsteady = self.world.troupe.unsteady();
        let support = &self.knobs.support;
        let evidence = Evidence {
            posted: &posted,
            sent: &sent,
            reads: &self.reads,
            unsteady: Some(&unsteady),
            failed: &self.failed,
            notice: support.failure_notice.then_some(NOTICE),
        };
        let (tally, problems) = evidence.tally();
        (tally, problems, sent.len())
    }

    /// Every fault cleared and troupe running: waits until every message is answered (or the
    /// settle deadline passes, or nothing new arrives for the quiet time), then a sync round.
    pub async fn finish(mut self) -> ScenarioResult {
        self.world.clear_faults().await;
        self.world.troupe.set_auto_restart(true);
        self.world.troupe.start().await;
        self.settle(self.knobs.settle, false).await;
        sync_round(&self.world, &self.ledger).await;
        self.settle(Duration::from_secs(60).min(self.knobs.settle), true).await;
        let (tally, problems, _) = self.observe().await;
        if std::env::var_os("CHAOS_DUMP").is_some() {
            self.dump().await;
        }
        let lifecycle = self.world.troupe.lifecycle();
        if lifecycle.exits.keys().any(|&c| c != 7) {
            let log = self.world.troupe.last_exit_log();
            let tail: Vec<&str> = log.lines().rev().take(5).collect();
            self.notes.push(format!(
                "troupe exited by itself with {:?}; last exit's stderr ends: {:?}",
                lifecycle.exits, tail
            ));
        }
        self.world.shutdown().await;
        ScenarioResult {
            name: self.name,
            tally,
            lifecycle,
            faults: self.faults,
            secs: self.started.elapsed().as_secs_f64(),
            problems,
            notes: self.notes,
        }
    }

    /// Waits until every message (with `sync_only`, every sync message) is answered, or `max`
    /// passes, or no reply comes for the quiet time.
    async fn settle(&mut self, max: Duration, sync_only: bool) {
        let start = Instant::now();
        let (mut last_sent, mut last_change) = (usize::MAX, Instant::now());
        let what = if sync_only { "sync round" } else { "settle" };
        loop {
            let (_, problems, sent) = self.observe().await;
            let lost: Vec<&Problem> = problems
                .iter()
                .filter(|p| p.what == "lost" && (!sync_only || p.posted.kind == "sync"))
                .collect();
            if lost.is_empty() {
                return;
            }
            let waiting = || {
                let some: Vec<String> = lost
                    .iter()
                    .take(5)
                    .map(|p| format!("{} ({})", p.posted.marker, p.posted.kind))
                    .collect();
                format!("{} unanswered, e.g. {}", lost.len(), some.join(", "))
            };
            if sent != last_sent {
                (last_sent, last_change) = (sent, Instant::now());
            }
            if start.elapsed() > max {
                self.notes
                    .push(format!("{what}: deadline ({max:?}) passed, {}", waiting()));
                return;
            }
            if last_change.elapsed() > self.knobs.quiet && self.world.troupe.running() {
                self.notes.push(format!(
                    "{what}: ended after {:?} without a new reply, {}",
                    self.knobs.quiet,
                    waiting()
                ));
                return;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// With `CHAOS_DUMP` set: the ledger, troupe's messages, history reads and unsteady windows
    /// as JSON in `target/tmp/chaos-dump-<scenario>.json`, to trace a lost message.
    async fn dump(&mut self) {
        let t0 = self.started;
        let ms = |t: Instant| t.saturating_duration_since(t0).as_millis() as u64;
        let posted: Vec<_> = self
            .ledger
            .lock()
            .unwrap()
            .posted
            .iter()
            .map(|p| json!({"marker": p.marker, "id": p.id.to_string(), "channel": p.channel.to_string(), "kind": p.kind, "at_ms": ms(p.at), "log_at_post": p.log_at_post}))
            .collect();
        let channels = self.ledger.lock().unwrap().channels();
        let mut sent = Vec::new();
        for c in channels {
            for m in self.world.sb.messages(&c.to_string()).await {
                if let Some(s) = Sent::from_json(&m) {
                    sent.push(
                        json!({"id": s.id.to_string(), "channel": s.channel.to_string(), "agent": s.agent,
                                     "reference": s.reference.map(|r| r.to_string()), "content": s.content}),
                    );
                }
            }
        }
        let reads: Vec<_> = self
            .reads
            .iter()
            .map(|r| json!({"agent": r.agent, "channel": r.channel.to_string(), "after": r.after.to_string(), "log_index": r.log_index, "unix_ms": r.unix_ms}))
            .collect();
        let windows: Vec<_> = self
            .world
            .troupe
            .unsteady()
            .windows
            .iter()
            .map(|(a, b)| json!([ms(*a), b.map(ms)]))
            .collect();
        let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("chaos-dump-{}.json", self.name));
        let failed: Vec<_> = self
            .failed
            .iter()
            .map(|f| json!({"markers": f.markers, "unix_ms": f.unix_ms}))
            .collect();
        let body = json!({"posted": posted, "sent": sent, "reads": reads, "failed_llm_requests": failed, "unsteady_ms": windows});
        let _ = std::fs::write(&path, serde_json::to_string_pretty(&body).unwrap());
        println!("chaos: dump saved to {}", path.display());
    }

    pub async fn kill_and_restart(&mut self, down_lo_ms: u64, down_hi_ms: u64) {
        self.world.troupe.kill9().await;
        self.pause(down_lo_ms, down_hi_ms).await;
        self.world.troupe.start().await;
    }
}
