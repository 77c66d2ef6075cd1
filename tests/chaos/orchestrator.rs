//! The troupe process under test, run the way an orchestrator would run it: started, killed
//! with SIGKILL or stopped with SIGTERM on the scenario's orders, restarted whenever it exits by
//! itself (a breaker's exit code 7), and watched through `/readiness` to note when it is not
//! steady (down, starting, replaying, reconnecting).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::common::Process;
use super::ledger::Unsteady;

/// How long troupe counts as unsteady after it reports every agent ready again: live messages
/// that waited during a replay may still be answered together with it.
const SETTLE_GRACE: Duration = Duration::from_secs(3);
/// How long every agent must stay ready before troupe counts as steady again.
const READY_HOLD: Duration = Duration::from_millis(400);

/// With `CHAOS_LOGS` set, each finished process's stderr is kept in
/// `target/tmp/chaos-logs/<pid>.log` (run with `RUST_LOG=troupe=debug` for the routing and
/// cursor decisions), to find out how a lost message was lost.
fn keep_log(p: &Process) {
    if std::env::var_os("CHAOS_LOGS").is_none() {
        return;
    }
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("chaos-logs");
    let _ = std::fs::create_dir_all(&dir);
    let _ = std::fs::copy(&p.stderr_path, dir.join(format!("{}.log", p.child.id())));
}

/// The troupe process under test, run the way an orchestrator would.
pub struct Troupe {
    args: Vec<String>,
    inner: Mutex<Inner>,
    starting: tokio::sync::Mutex<()>,
    http: reqwest::Client,
}

#[derive(Default)]
struct Inner {
    process: Option<Process>,
    auto_restart: bool,
    /// Starts, SIGKILLs sent, and exits troupe chose (code → count).
    starts: u32,
    kills: u32,
    exits: std::collections::BTreeMap<i32, u32>,
    unsteady: Unsteady,
    /// While a window is open: the earliest moment it may close.
    close_after: Option<Instant>,
    /// The stderr of the last process that exited by itself, for diagnostics.
    last_exit_log: String,
}

/// What happened to troupe during a scenario.
#[derive(Debug, Clone, Default)]
pub struct Lifecycle {
    /// Processes started.
    pub starts: u32,
    /// `kill -9`s.
    pub kills: u32,
    /// Exits troupe chose, as `code×count`.
    pub exits: std::collections::BTreeMap<i32, u32>,
}

impl Troupe {
    /// A troupe to run with these arguments (not started yet).
    pub fn new(args: Vec<String>) -> Troupe {
        Troupe {
            args,
            inner: Mutex::new(Inner {
                auto_restart: true,
                ..Inner::default()
            }),
            starting: tokio::sync::Mutex::new(()),
            http: reqwest::Client::builder()
                .timeout(Duration::from_millis(500))
                .build()
                .unwrap(),
        }
    }

    /// The command-line arguments it runs with.
    pub fn args(&self) -> &[String] {
        &self.args
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().expect("troupe lock")
    }

    /// Marks troupe unsteady from now until it has reported every agent ready again, and at
    /// least `min` from now.
    pub fn disturb(&self, min: Duration) {
        let now = Instant::now();
        let mut inner = self.lock();
        let open = inner
            .unsteady
            .windows
            .last()
            .is_some_and(|(_, until)| until.is_none_or(|u| u >= now));
        if !open {
            inner.unsteady.windows.push((now, None));
        }
        if let Some(last) = inner.unsteady.windows.last_mut() {
            last.1 = None;
        }
        let close = now + min;
        inner.close_after = Some(inner.close_after.map_or(close, |c| c.max(close)));
    }

    /// When troupe was not steady, so far.
    pub fn unsteady(&self) -> Unsteady {
        self.lock().unsteady.clone()
    }

    /// Starts, kills and exits so far.
    pub fn lifecycle(&self) -> Lifecycle {
        let inner = self.lock();
        Lifecycle {
            starts: inner.starts,
            kills: inner.kills,
            exits: inner.exits.clone(),
        }
    }

    /// Whether the harness restarts troupe when it exits by itself.
    pub fn set_auto_restart(&self, on: bool) {
        self.lock().auto_restart = on;
    }

    /// Whether a troupe process is running.
    pub fn running(&self) -> bool {
        self.lock().process.is_some()
    }

    /// Starts troupe unless it runs; returns once it listens (its gateways connect after).
    pub async fn start(&self) {
        let _one = self.starting.lock().await;
        if self.running() {
            return;
        }
        self.disturb(Duration::ZERO);
        let args = self.args.clone();
        let process =
            tokio::task::spawn_blocking(move || Process::spawn(&args.iter().map(String::as_str).collect::<Vec<_>>()))
                .await
                .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
        let mut inner = self.lock();
        inner.starts += 1;
        inner.process = Some(process);
    }

    /// `kill -9`, and waits for the process to be gone. No-op when none runs.
    pub async fn kill9(&self) {
        let process = self.lock().process.take();
        if let Some(mut p) = process {
            self.disturb(Duration::ZERO);
            tokio::task::spawn_blocking(move || {
                let _ = p.child.kill();
                let _ = p.child.wait();
                keep_log(&p);
            })
            .await
            .unwrap();
            self.lock().kills += 1;
        }
    }

    /// SIGTERM, and waits for the clean exit. Returns the exit code.
    pub async fn terminate(&self) -> Option<i32> {
        let process = self.lock().process.take();
        let mut p = process?;
        self.disturb(Duration::ZERO);
        tokio::task::spawn_blocking(move || {
            let code = p.terminate().code();
            keep_log(&p);
            code
        })
        .await
        .unwrap()
    }

    /// Waits until every agent reports `ready` (replay done), or `deadline` passes.
    pub async fn wait_ready(&self, deadline: Duration) -> bool {
        let start = Instant::now();
        while start.elapsed() < deadline {
            if self.all_ready().await {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }

    /// The stderr of the process that last exited by itself.
    pub fn last_exit_log(&self) -> String {
        self.lock().last_exit_log.clone()
    }

    /// `/readiness`, if troupe runs and answers.
    async fn readiness(&self) -> Option<Value> {
        let url = self.lock().process.as_ref().and_then(|p| p.http_url.clone())?;
        let resp = self.http.get(format!("{url}/readiness")).send().await.ok()?;
        resp.json::<Value>().await.ok()
    }

    /// Each agent's state (`connecting`, `replaying backlog`, `ready`, ...); empty if troupe is
    /// down or not answering.
    pub async fn agent_states(&self) -> Vec<String> {
        let Some(v) = self.readiness().await else {
            return Vec::new();
        };
        v["agents"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|x| x["state"].as_str().unwrap_or_default().to_string())
                    .collect()
            })
            .unwrap_or_default()
    }

    async fn all_ready(&self) -> bool {
        let Some(v) = self.readiness().await else {
            return false;
        };
        v["phase"] == "running"
            && v["agents"]
                .as_array()
                .is_some_and(|a| !a.is_empty() && a.iter().all(|x| x["state"] == "ready"))
    }

    /// Runs for the scenario: restarts troupe when it exits by itself, and closes unsteady
    /// windows once troupe reports every agent ready.
    pub async fn watch(me: Arc<Troupe>) {
        let mut ready_since: Option<Instant> = None;
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let exited = {
                let mut inner = me.lock();
                let status = inner.process.as_mut().and_then(|p| p.child.try_wait().ok().flatten());
                match status {
                    Some(status) => {
                        let p = inner.process.take();
                        if let Some(p) = &p {
                            keep_log(p);
                        }
                        inner.last_exit_log = p.map(|p| p.stderr()).unwrap_or_default();
                        *inner.exits.entry(status.code().unwrap_or(-1)).or_default() += 1;
                        Some(inner.auto_restart)
                    }
                    None => None,
                }
            };
            match exited {
                Some(restart) => {
                    me.disturb(Duration::ZERO);
                    if restart {
                        me.start().await;
                    }
                }
                None => {
                    let open = {
                        let inner = me.lock();
                        inner.close_after.is_some_and(|c| Instant::now() >= c) && inner.process.is_some()
                    };
                    if !open {
                        ready_since = None;
                        continue;
                    }
                    if !me.all_ready().await {
                        ready_since = None;
                        continue;
                    }
                    // Agents report ready between READY and the start of their replay: only a
                    // state that holds counts.
                    let since = *ready_since.get_or_insert_with(Instant::now);
                    if since.elapsed() >= READY_HOLD {
                        ready_since = None;
                        let mut inner = me.lock();
                        inner.close_after = None;
                        if let Some(last) = inner.unsteady.windows.last_mut() {
                            last.1.get_or_insert(Instant::now() + SETTLE_GRACE);
                        }
                    }
                }
            }
        }
    }
}
