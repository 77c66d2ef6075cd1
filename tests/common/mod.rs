//! Shared helpers for integration tests: start troupe or the sandbox on ephemeral ports, talk to
//! the control API, wait for conditions with deadlines (never sleep to synchronise).
#![allow(dead_code)]

use std::future::Future;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use troupe::config::Config;

/// How long a condition may take before a test fails. Generous: CI machines are shared.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// A minimal configuration with the given extra TOML appended; the sandbox and the HTTP
/// endpoints listen on port 0 and the store lives in the returned temporary directory (keep it
/// alive for the test).
pub fn config(extra: &str) -> (Config, tempfile::TempDir) {
    config_with("", extra)
}

/// Like [`config`], with extra lines inside `[sandbox]` (e.g. `humans = [...]`).
pub fn config_with(sandbox: &str, extra: &str) -> (Config, tempfile::TempDir) {
    let text =
        format!("[sandbox]\nlisten = \"127.0.0.1:0\"\n{sandbox}\n\n[backends.offline]\nprovider = \"echo\"\n\n{extra}");
    let mut config = Config::parse("test.toml", &text).unwrap_or_else(|e| panic!("test config invalid: {e}"));
    let dir = tempfile::tempdir().unwrap();
    config.store_path = dir.path().join("state");
    config.http_listen = "127.0.0.1:0".parse().unwrap();
    (config, dir)
}

/// [`two_agents`]' agents: Ada (channel memory) and Basil (listens to every message in
/// #random).
pub const TWO_AGENTS: &str = r#"
[[agents]]
name = "Ada"
backend = "offline"
system_prompt = "You are {agent}."

[[agents]]
name = "Basil"
backend = "offline"
triggers = { channels = ["random"] }
"#;

/// Two agents, Ada (channel memory) and Basil (listens to every message in #random).
pub fn two_agents() -> (Config, tempfile::TempDir) {
    config(TWO_AGENTS)
}

/// Polls `check` until it returns `Some`, or panics with `what` after [`DEADLINE`].
pub async fn wait_for<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if start.elapsed() > DEADLINE {
            panic!("timed out after {DEADLINE:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Starts troupe in-process on a store the test itself just had open: sled's I/O threads may
/// hold the store's lock a moment after its last handle dropped, so a `Locked` store is tried
/// again until [`DEADLINE`].
pub async fn start_unlocked(config: Config) -> troupe::app::Running {
    let started = Instant::now();
    loop {
        match troupe::app::start(config.clone()).await {
            Ok(running) => return running,
            Err(troupe::app::AppError::Store(troupe::store::StoreError::Locked(_))) if started.elapsed() < DEADLINE => {
                tokio::time::sleep(Duration::from_millis(5)).await
            }
            Err(e) => panic!("{e}"),
        }
    }
}

/// Opens the store's sled database directly (to damage or inspect it), once troupe (stopped
/// just before) has let go of its lock; fails after [`DEADLINE`].
pub async fn open_sled(path: &std::path::Path) -> sled::Db {
    let started = Instant::now();
    loop {
        match sled::open(path) {
            Ok(db) => return db,
            Err(e) if started.elapsed() > DEADLINE => panic!("cannot open {}: {e}", path.display()),
            Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
        }
    }
}

/// Fails a test whose external tool is missing, saying how to get it: a test never passes
/// without having run. `make test` installs the tool when it can and otherwise leaves the test
/// out, naming it in its closing summary (`tests/tools.sh`).
pub fn tool_missing(tool: &str, install: &str) -> ! {
    panic!(
        "{tool} is not installed, so this test cannot run. Install it ({install}), or run \
         `make test`, which installs it when it can and otherwise lists this test as not run"
    )
}

/// A client for the sandbox's control API.
#[derive(Clone)]
pub struct Control {
    pub url: String,
    pub http: reqwest::Client,
}

impl Control {
    pub fn new(url: &str) -> Self {
        Self {
            url: url.trim_end_matches('/').to_string(),
            http: reqwest::Client::new(),
        }
    }

    pub async fn state(&self) -> Value {
        self.http
            .get(format!("{}/sandbox/state", self.url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// POSTs JSON to a control endpoint (`/sandbox/{path}`); panics unless it succeeds.
    async fn control(&self, path: &str, body: &Value) -> Value {
        let resp = self
            .http
            .post(format!("{}/sandbox/{path}", self.url))
            .json(body)
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let v: Value = resp.json().await.unwrap();
        assert!(status.is_success(), "POST /sandbox/{path} failed: {status} {v}");
        v
    }

    /// Posts as a human; returns the created message.
    pub async fn post(&self, body: Value) -> Value {
        self.control("messages", &body).await
    }

    /// Posts several messages as humans, dispatched back to back (`POST /sandbox/burst`).
    #[allow(dead_code)]
    pub async fn burst(&self, channel: &str, author: &str, contents: &[String]) -> Vec<Value> {
        let messages: Vec<Value> = contents
            .iter()
            .map(|c| json!({"channel": channel, "author": author, "content": c}))
            .collect();
        let v = self.control("burst", &json!({ "messages": messages })).await;
        v.as_array().cloned().unwrap_or_default()
    }

    pub async fn say(&self, channel: &str, author: &str, content: &str) -> Value {
        self.post(json!({"channel": channel, "author": author, "content": content}))
            .await
    }

    pub async fn dm(&self, author: &str, agent: &str, content: &str) -> Value {
        self.post(json!({"dm": agent, "author": author, "content": content}))
            .await
    }

    pub async fn messages(&self, channel: &str) -> Vec<Value> {
        let resp = self
            .http
            .get(format!("{}/sandbox/channels/{channel}/messages", self.url))
            .send()
            .await
            .unwrap();
        resp.json::<Vec<Value>>().await.unwrap_or_default()
    }

    /// Waits until `channel` holds a message by `author` replying to `message_id`.
    pub async fn reply_to(&self, channel: &str, author: &str, message_id: &str) -> Value {
        wait_for(&format!("{author}'s reply to {message_id} in {channel}"), || async {
            self.messages(channel).await.into_iter().find(|m| {
                m["author"]["username"] == author && m["message_reference"]["message_id"].as_str() == Some(message_id)
            })
        })
        .await
    }

    /// `author`'s replies to a message (by reference) in `channel`, as they stand now.
    pub async fn replies(&self, channel: &str, author: &str, message_id: &str) -> Vec<Value> {
        self.messages(channel)
            .await
            .into_iter()
            .filter(|m| {
                m["author"]["username"] == author && m["message_reference"]["message_id"].as_str() == Some(message_id)
            })
            .collect()
    }

    /// Starts a thread in `channel`; returns its ID.
    pub async fn thread(&self, channel: &str, name: &str, author: &str) -> String {
        let body = json!({"channel": channel, "name": name, "author": author});
        self.control("threads", &body).await["id"].as_str().unwrap().to_string()
    }

    /// Creates a guild text channel as its guild's owner would (`POST /sandbox/channels`);
    /// returns the channel.
    #[allow(dead_code)]
    pub async fn create_channel(&self, body: Value) -> Value {
        self.control("channels", &body).await
    }

    /// Changes a text channel (`PATCH /sandbox/channels/{channel}`); returns the channel.
    #[allow(dead_code)]
    pub async fn change_channel(&self, channel: &str, body: Value) -> Value {
        let resp = self
            .http
            .patch(format!("{}/sandbox/channels/{channel}", self.url))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let v: Value = resp.json().await.unwrap();
        assert!(
            status.is_success(),
            "PATCH /sandbox/channels/{channel} failed: {status} {v}"
        );
        v
    }

    pub async fn faults(&self, body: Value) -> Value {
        self.control("faults", &body).await
    }

    /// Turns the sandbox's rate limits' refusals on or off (`POST /sandbox/ratelimits`).
    pub async fn enforce_rate_limits(&self, enforce: bool) {
        self.control("ratelimits", &json!({ "enforce": enforce })).await;
    }

    pub async fn requests(&self) -> Vec<Value> {
        let v: Value = self
            .http
            .get(format!("{}/sandbox/requests", self.url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["requests"].as_array().cloned().unwrap_or_default()
    }

    /// The ID of a user or channel by name.
    pub async fn id_of(&self, kind: &str, name: &str) -> String {
        let state = self.state().await;
        state[kind]
            .as_array()
            .and_then(|a| a.iter().find(|x| x["name"] == name))
            .and_then(|x| x["id"].as_str())
            .unwrap_or_else(|| panic!("no {kind} named {name}"))
            .to_string()
    }

    /// Waits until every named bot has a live gateway connection.
    pub async fn wait_connected(&self, bots: &[&str]) {
        let mut ids = Vec::new();
        for b in bots {
            ids.push(self.id_of("users", b).await);
        }
        wait_for("bots connected to the sandbox gateway", || async {
            let state = self.state().await;
            let connected: Vec<String> = state["connected_bots"]
                .as_array()?
                .iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect();
            ids.iter().all(|id| connected.contains(id)).then_some(())
        })
        .await
    }
}

/// A `troupe` process started by a test; killed on drop.
pub struct Process {
    pub child: std::process::Child,
    /// `http://ADDR` from its "sandbox listening on" line (empty when it printed none).
    pub url: String,
    /// `http://ADDR` from its "http listening on" line (the operations endpoints), if printed.
    pub http_url: Option<String>,
    pub stderr_path: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Process {
    /// Runs the real binary with `args` in the repository root, waits for the
    /// `sandbox listening on http://ADDR/` line and returns. Unless `args` run a subcommand or
    /// set `--http-listen`, the HTTP endpoints listen on a free port.
    pub fn spawn(args: &[&str]) -> Process {
        Self::spawn_with(args, &[], "sandbox listening on ")
    }

    /// Like [`Process::spawn`], with extra environment variables, waiting for the stdout line
    /// starting with `ready_prefix` (e.g. `"http listening on "` in live mode).
    pub fn spawn_with(args: &[&str], envs: &[(&str, &str)], ready_prefix: &str) -> Process {
        use std::io::BufRead;
        let dir = tempfile::tempdir().unwrap();
        let stderr_path = dir.path().join("stderr.log");
        let mut args: Vec<&str> = args.to_vec();
        let subcommand = args.first().is_some_and(|a| !a.starts_with('-'));
        if !subcommand && !args.contains(&"--http-listen") {
            args.extend(["--http-listen", "127.0.0.1:0"]);
        }
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_troupe"))
            .args(&args)
            .envs(envs.iter().copied())
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stdout(std::process::Stdio::piped())
            .stderr(std::fs::File::create(&stderr_path).unwrap())
            .spawn()
            .expect("troupe binary runs");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
                for prefix in ["http listening on ", "sandbox listening on "] {
                    if let Some(rest) = line.strip_prefix(prefix) {
                        let _ = tx.send((prefix, rest.trim_end_matches('/').to_string()));
                    }
                }
            }
        });
        let (mut url, mut http_url) = (String::new(), None);
        let start = Instant::now();
        loop {
            match rx.recv_timeout(DEADLINE.saturating_sub(start.elapsed())) {
                Ok((prefix, addr)) => {
                    if prefix == "http listening on " {
                        http_url = Some(addr);
                    } else {
                        url = addr;
                    }
                    if prefix == ready_prefix {
                        break;
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    panic!(
                        "no `{ready_prefix}` line; stderr:\n{}",
                        std::fs::read_to_string(&stderr_path).unwrap_or_default()
                    );
                }
            }
        }
        Process {
            child,
            url,
            http_url,
            stderr_path,
            _dir: dir,
        }
    }

    /// Sends a signal (`"TERM"`, `"INT"`) without waiting.
    pub fn signal(&self, name: &str) {
        let pid = self.child.id().to_string();
        std::process::Command::new("kill")
            .args([format!("-{name}").as_str(), &pid])
            .status()
            .unwrap();
    }

    /// Waits (with a deadline) for the process to exit by itself.
    pub fn wait_exit(&mut self) -> std::process::ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                start.elapsed() < DEADLINE,
                "troupe did not exit; stderr:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends SIGTERM and waits (with a deadline) for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(start.elapsed() < DEADLINE, "troupe did not exit after SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until no new request has reached the LLM test server for 1.5 s, so "exactly once" is
/// checked after every retry that could still come has come (panics after [`DEADLINE`] if the
/// model keeps being asked).
pub async fn quiet(llm: &troupe_llm_test_server::LlmTestServer) {
    let mut seen = llm.requests().len();
    let (mut since, start) = (Instant::now(), Instant::now());
    while since.elapsed() < Duration::from_millis(1500) {
        assert!(start.elapsed() < DEADLINE, "the model keeps being asked");
        tokio::time::sleep(Duration::from_millis(50)).await;
        let now = llm.requests().len();
        if now != seen {
            (seen, since) = (now, Instant::now());
        }
    }
}
