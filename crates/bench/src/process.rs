//! The processes a scenario measures: troupe itself (the real binary, with a generated
//! `agents.toml`, connected to the stage's sandbox) and the baseline (this harness re-executed
//! as bare serenity bots). Each runs in its own process so its memory is its own.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{BenchError, Context, Result};

/// Which LLM backend troupe's agents use.
#[derive(Debug, Clone)]
pub enum Backend {
    /// An OpenAI-compatible server (the LLM test server) at this `base_url`.
    OpenAi(String),
    /// troupe's offline echo backend: no HTTP at all.
    Echo,
}

/// The parts of `agents.toml` a scenario chooses.
#[derive(Debug, Clone)]
pub struct TroupeConfig {
    /// Agent names; each is its own bot user.
    pub agents: Vec<String>,
    /// Their backend.
    pub backend: Backend,
    /// `memory` of every agent: `channel`, `channel-user` or `user`.
    pub memory: &'static str,
    /// The backend's `max_concurrency`.
    pub max_concurrency: usize,
    /// `[conversations] idle_secs`: [`STAY_ALIVE`] unless a scenario measures passivation.
    pub idle_secs: u64,
    /// Every agent streams its replies (`stream = true`).
    pub stream: bool,
    /// `[store] cache_mib`, when a run sets it (`--store-cache-mib`); troupe's default otherwise.
    pub store_cache_mib: Option<u64>,
}

/// An `idle_secs` longer than any run: conversations stay alive.
pub const STAY_ALIVE: u64 = 3600;

impl TroupeConfig {
    /// The configuration text. Limits that would make troupe refuse a benchmark's load are
    /// lifted: the per-user rate limit (0 turns it off), the load-average watchdog, the
    /// crash-loop back-off (scenarios restart troupe on purpose) and the pool's wait queue.
    /// Conversations stay alive for the whole run unless the scenario says otherwise
    /// (`idle_secs`); a stop does not wait long for a hung turn (`shutdown_grace_secs`).
    pub fn toml(&self) -> String {
        let backend = match &self.backend {
            Backend::OpenAi(url) => format!("provider = \"openai\"\nbase_url = \"{url}\"\nmodel = \"m\""),
            Backend::Echo => "provider = \"echo\"".to_string(),
        };
        let mut text = format!(
            "[discord]\nuser_rate_limit = 0\n\n[conversations]\nidle_secs = {}\nshutdown_grace_secs = 2\n\n\
             [limits]\nmax_load_average = 100000\n\n[restarts]\nfree_starts = 1000\n\n\
             [backends.llm]\n{backend}\nmax_concurrency = {}\nmax_queue = 1000000\n",
            self.idle_secs, self.max_concurrency
        );
        // Written only when set: a troupe built before `cache_mib` existed still reads the rest.
        if let Some(mib) = self.store_cache_mib {
            text.push_str(&format!("\n[store]\ncache_mib = {mib}\n"));
        }
        for name in &self.agents {
            text.push_str(&format!(
                "\n[[agents]]\nname = \"{name}\"\nbackend = \"llm\"\nmemory = \"{}\"\n{}system_prompt = \"You are {{agent}}.\"\n",
                self.memory,
                // Written only when on: a troupe built before `stream` existed still reads the rest.
                if self.stream { "stream = true\n" } else { "" }
            ));
        }
        text
    }
}

/// Resident memory of a process, from /proc/PID/status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Rss {
    /// `VmRSS`: resident now, bytes.
    pub now: u64,
    /// `VmHWM`: the peak so far, bytes.
    pub peak: u64,
}

impl Rss {
    /// Reads a process's resident memory.
    pub fn of(pid: u32) -> Result<Rss> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).context("reading /proc/PID/status")?;
        let kb = |key: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                .map(|kb| kb * 1024)
        };
        match (kb("VmRSS:"), kb("VmHWM:")) {
            (Some(now), Some(peak)) => Ok(Rss { now, peak }),
            _ => Err(BenchError(format!("no VmRSS/VmHWM in /proc/{pid}/status"))),
        }
    }
}

/// CPU time a process has used so far (user + system), from /proc/PID/stat.
pub fn cpu_secs(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).context("reading /proc/PID/stat")?;
    // The command name may hold spaces: the fields start after its closing parenthesis.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok());
    // SAFETY: sysconf reads a constant of the system; no memory is involved.
    let per_sec = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    match (ticks(11), ticks(12)) {
        (Some(user), Some(system)) => Ok((user + system) as f64 / per_sec),
        _ => Err(BenchError(format!("unexpected /proc/{pid}/stat"))),
    }
}

/// Sends SIGTERM and waits up to `grace` for the exit, then kills.
fn terminate(child: &mut Child, grace: Duration) {
    if let Ok(pid) = i32::try_from(child.id()) {
        // SAFETY: kill(2) on our own child's PID; no memory is involved.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
    }
    let start = Instant::now();
    while start.elapsed() < grace {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// A troupe process.
pub struct Troupe {
    child: Child,
    /// `http://ADDR` of its operations endpoints.
    pub http_url: String,
    /// When it was spawned.
    pub spawned: Instant,
    log: PathBuf,
    http: reqwest::Client,
}

impl Troupe {
    /// Starts `bin` with `config` against the sandbox at `sandbox_url`, its store in `state`;
    /// returns once it printed its HTTP address. Logs go to `dir/troupe-<n>.log`.
    pub fn spawn(bin: &Path, config: &TroupeConfig, sandbox_url: &str, state: &Path, dir: &Path) -> Result<Troupe> {
        std::fs::create_dir_all(dir).context("creating the run directory")?;
        static STARTED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = STARTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let config_path = dir.join(format!("agents-{n}.toml"));
        std::fs::write(&config_path, config.toml()).context("writing agents.toml")?;
        let log = dir.join(format!("troupe-{n}.log"));
        let spawned = Instant::now();
        let mut child = Command::new(bin)
            .arg("--config")
            .arg(&config_path)
            .args([
                "--sandbox-url",
                sandbox_url,
                "--http-listen",
                "127.0.0.1:0",
                "--state-dir",
            ])
            .arg(state)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).context("creating the troupe log")?)
            .spawn()
            .context(&format!("starting {}", bin.display()))?;
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines().map_while(|l| l.ok()) {
                if let Some(addr) = line.strip_prefix("http listening on ") {
                    let _ = tx.send(addr.trim_end_matches('/').to_string());
                }
            }
        });
        let http_url = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(url) => url,
            Err(_) => {
                terminate(&mut child, Duration::from_secs(1));
                let tail = std::fs::read_to_string(&log).unwrap_or_default();
                let tail: String = tail.lines().rev().take(20).collect::<Vec<_>>().join("\n");
                return Err(BenchError(format!("troupe printed no address; its log ends:\n{tail}")));
            }
        };
        Ok(Troupe {
            child,
            http_url,
            spawned,
            log,
            http: reqwest::Client::new(),
        })
    }

    /// Process ID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its resident memory now and at peak.
    pub fn rss(&self) -> Result<Rss> {
        Rss::of(self.pid())
    }

    /// CPU seconds it has used.
    pub fn cpu(&self) -> Result<f64> {
        cpu_secs(self.pid())
    }

    /// Waits until it has used under 10% of a core for half a second (the gateway events of a
    /// burst digested), at most `deadline`; returns how long it waited.
    pub async fn wait_quiet(&self, deadline: Duration) -> Duration {
        let start = Instant::now();
        let tick = Duration::from_millis(500);
        let mut last = self.cpu().unwrap_or_default();
        while start.elapsed() < deadline {
            tokio::time::sleep(tick).await;
            let now = self.cpu().unwrap_or_default();
            if now - last < tick.as_secs_f64() / 10.0 {
                break;
            }
            last = now;
        }
        start.elapsed()
    }

    /// Waits until `/readiness` answers 200 (every agent's gateway connected); returns when.
    pub async fn wait_ready(&mut self, deadline: Duration) -> Result<Instant> {
        let start = Instant::now();
        loop {
            let ok = self
                .http
                .get(format!("{}/readiness", self.http_url))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ok {
                return Ok(Instant::now());
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(BenchError(format!(
                    "troupe exited ({status}); see {}",
                    self.log.display()
                )));
            }
            if start.elapsed() > deadline {
                return Err(BenchError(format!(
                    "troupe not ready after {deadline:?}; see {}",
                    self.log.display()
                )));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// A gauge or counter from `/metrics` (the sum over its label sets).
    pub async fn metric(&self, name: &str) -> Option<f64> {
        let text = self
            .http
            .get(format!("{}/metrics", self.http_url))
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        let values: Vec<f64> = text
            .lines()
            .filter(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
            .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
            .collect();
        (!values.is_empty()).then(|| values.iter().sum())
    }

    /// Stops it cleanly (SIGTERM; the store is flushed) and waits; kills it after 10 s.
    pub fn stop(mut self) {
        terminate(&mut self.child, Duration::from_secs(10));
    }
}

impl Drop for Troupe {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The baseline: bare serenity bots in a process of their own.
pub struct Baseline {
    child: Child,
    /// When it was spawned.
    pub spawned: Instant,
}

impl Baseline {
    /// Re-executes this harness as `baseline`, one serenity client per token.
    pub fn spawn(sandbox_url: &str, tokens: &[String]) -> Result<Baseline> {
        let exe = std::env::current_exe().context("locating the harness")?;
        let spawned = Instant::now();
        let child = Command::new(exe)
            .args(["baseline", "--sandbox", sandbox_url, "--tokens", &tokens.join(",")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .context("starting the baseline bots")?;
        Ok(Baseline { child, spawned })
    }

    /// Re-executes this harness as `equivalent`: one equivalent bot per token (a streaming
    /// request to the LLM at `llm_base` and a sled insert + flush in `store` per reply).
    pub fn spawn_equivalent(sandbox_url: &str, tokens: &[String], llm_base: &str, store: &Path) -> Result<Baseline> {
        let exe = std::env::current_exe().context("locating the harness")?;
        let spawned = Instant::now();
        let child = Command::new(exe)
            .args(["equivalent", "--sandbox", sandbox_url, "--tokens", &tokens.join(",")])
            .args(["--llm", llm_base])
            .arg("--store")
            .arg(store)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .context("starting the equivalent bots")?;
        Ok(Baseline { child, spawned })
    }

    /// Its resident memory now and at peak.
    pub fn rss(&self) -> Result<Rss> {
        Rss::of(self.child.id())
    }

    /// CPU seconds it has used.
    pub fn cpu(&self) -> Result<f64> {
        cpu_secs(self.child.id())
    }

    /// Stops it.
    pub fn stop(mut self) {
        terminate(&mut self.child, Duration::from_secs(5));
    }
}

impl Drop for Baseline {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Bytes used by the files under a directory (what the store takes on disk).
pub fn disk_usage(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(|e| e.ok())
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => disk_usage(&e.path()),
            // Allocated blocks, not apparent length: sled preallocates and leaves holes.
            Ok(m) => std::os::unix::fs::MetadataExt::blocks(&m) * 512,
            Err(_) => 0,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_configuration_is_valid_and_lifts_the_limits() {
        let c = TroupeConfig {
            agents: vec!["A000".into(), "A001".into()],
            backend: Backend::OpenAi("http://127.0.0.1:9/v1".into()),
            memory: "channel-user",
            max_concurrency: 64,
            idle_secs: STAY_ALIVE,
            stream: false,
            store_cache_mib: None,
        };
        let parsed = troupe::config::Config::parse("bench.toml", &c.toml()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(parsed.agents.len(), 2);
        assert_eq!(parsed.discord.user_rate_limit, 0);
        assert_eq!(parsed.backends["llm"].max_concurrency, 64);
        assert_eq!(parsed.agents[1].memory, troupe::config::MemoryMode::ChannelUser);
        let echo = TroupeConfig {
            backend: Backend::Echo,
            ..c
        };
        troupe::config::Config::parse("bench.toml", &echo.toml()).unwrap_or_else(|e| panic!("{e}"));
        let cached = TroupeConfig {
            store_cache_mib: Some(8),
            ..echo
        };
        let parsed = troupe::config::Config::parse("bench.toml", &cached.toml()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(parsed.store_cache_bytes, 8 << 20);
    }

    #[test]
    fn own_memory_and_cpu_are_readable() {
        let rss = Rss::of(std::process::id()).unwrap();
        assert!(rss.now > 0 && rss.peak >= rss.now, "{rss:?}");
        let before = cpu_secs(std::process::id()).unwrap();
        let mut x = 0u64;
        let start = Instant::now();
        while start.elapsed() < Duration::from_millis(50) {
            x = x.wrapping_add(std::hint::black_box(1));
        }
        assert!(x > 0);
        assert!(cpu_secs(std::process::id()).unwrap() >= before);
    }
}
