//! One scenario's world: a standalone `troupe sandbox` (it keeps the messages while troupe is
//! killed), the fault-injecting LLM test server, the configuration, and the troupe process under
//! test (see [`super::orchestrator`]).

use std::sync::Arc;

use serde_json::{json, Value};
use troupe_llm_test_server::{LlmTestServer, Reply};

use super::common::{Control, Process};
use super::ledger::MARKER_PREFIX;
use super::orchestrator::Troupe;

/// The humans who write steadily (new-DM users are added per scenario).
pub const HUMANS: [&str; 4] = ["alice", "bob", "carol", "dave"];
/// Channels Ada answers when mentioned; unmentioned messages there must stay unanswered.
pub const MENTION_CHANNELS: [&str; 2] = ["general", "lab"];
/// Ada answers every message here.
pub const LISTEN_CHANNEL: &str = "random";
/// Wren answers every message here, through its webhook.
pub const WEBHOOK_CHANNEL: &str = "hooks";

/// The never-drop configuration keys this troupe understands (probed with `check-config`).
#[derive(Debug, Clone, Default)]
pub struct Support {
    /// `[delivery] give_up_after_secs`.
    pub give_up: bool,
    /// An agent's `failure_notice`.
    pub failure_notice: bool,
}

/// The failure notice the suite configures, and looks for in replies.
pub const NOTICE: &str = "CHAOS-NOTICE: this message could not be answered";

impl Support {
    /// Asks the binary whether it accepts each key.
    pub fn probe() -> Support {
        let accepts = |extra: &str| {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("probe.toml");
            let text = format!(
                "[backends.offline]\nprovider = \"echo\"\n{extra}\n[[agents]]\nname = \"Ada\"\nbackend = \"offline\"\n{}",
                if extra.is_empty() { "failure_notice = \"x\"\n" } else { "" }
            );
            std::fs::write(&path, text).unwrap();
            let status = std::process::Command::new(env!("CARGO_BIN_EXE_troupe"))
                .args(["check-config", "--config", path.to_str().unwrap()])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status()
                .unwrap();
            status.success()
        };
        Support {
            give_up: accepts("[delivery]\ngive_up_after_secs = 60\n"),
            failure_notice: accepts(""),
        }
    }
}

/// What a scenario changes in the configuration.
#[derive(Debug, Clone)]
pub struct Options {
    /// `[conversations] queue_limit`.
    pub queue_limit: u32,
    /// The backend's `max_concurrency`.
    pub max_concurrency: u32,
    /// `[breaker] max_failures` (`on_trip = "exit"`); 1000 keeps the breaker out of the way.
    pub breaker_failures: u32,
    /// Humans who have never written to Ada (`new0`, `new1`, ...).
    pub new_humans: usize,
    /// Seconds before troupe gives up and sends the notice (when it supports that).
    pub give_up_secs: u64,
    /// Ada streams her replies (`stream = true`), and the model writes slowly (a second and a
    /// half between tokens), so a kill can land mid-stream.
    pub stream: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            queue_limit: 16,
            max_concurrency: 4,
            breaker_failures: 1000,
            new_humans: 0,
            give_up_secs: 90,
            stream: false,
        }
    }
}

/// `agents.toml` for a scenario.
fn config(o: &Options, llm_url: &str, support: &Support) -> String {
    let mut humans: Vec<String> = HUMANS.iter().map(|h| format!("\"{h}\"")).collect();
    humans.extend((0..o.new_humans).map(|i| format!("\"new{i}\"")));
    let delivery = if support.give_up {
        format!("[delivery]\ngive_up_after_secs = {}\n", o.give_up_secs)
    } else {
        String::new()
    };
    let notice = if support.failure_notice {
        format!("failure_notice = \"{NOTICE}\"\n")
    } else {
        String::new()
    };
    format!(
        r#"# The chaos suite's world (tests/chaos).
[sandbox]
humans = [{humans}]
guilds = [{{ name = "G", channels = [{{ name = "general" }}, {{ name = "random" }}, {{ name = "lab" }}, {{ name = "hooks" }}] }}]

[discord]
user_rate_limit = 0

[conversations]
queue_limit = {queue_limit}
shutdown_grace_secs = 5

[breaker]
max_failures = {breaker}
on_trip = "exit"

# Restarted on purpose, over and over: no crash-loop back-off.
[restarts]
window_secs = 1
free_starts = 1000

{delivery}
[backends.llm]
provider = "openai"
model = "chaos-model"
base_url = "{llm_url}/v1"
max_concurrency = {concurrency}
tokens = {{ from = 4096, until = 4096, step = 4096 }}

[[agents]]
name = "Ada"
backend = "llm"
system_prompt = "You are {{agent}}."
triggers = {{ mention = true, dm = true, channels = ["random"] }}
{stream}{notice}
[[agents]]
name = "Wren"
backend = "llm"
system_prompt = "You are {{agent}}."
webhook = {{ channel = "hooks" }}
triggers = {{ mention = false, dm = false, reply = false, channels = ["hooks"] }}
{notice}"#,
        humans = humans.join(", "),
        queue_limit = o.queue_limit,
        breaker = o.breaker_failures,
        concurrency = o.max_concurrency,
        stream = if o.stream { "stream = true\n" } else { "" },
    )
}

/// One entry of the sandbox's REST request log.
#[derive(Debug, Clone)]
pub struct LoggedRequest {
    /// HTTP method.
    pub method: String,
    /// Path and query.
    pub path: String,
    /// The bot user ID it authenticated as ("" if none).
    pub bot: String,
    /// The status it was answered with.
    pub status: u16,
    /// When the sandbox answered it (Unix ms).
    pub unix_ms: u64,
}

/// The sandbox, the LLM server and troupe for one scenario.
pub struct World {
    /// The standalone sandbox process (killed when the world is dropped).
    _sandbox: Process,
    /// Its control API.
    pub sb: Control,
    /// The LLM test server (in the harness).
    pub llm: LlmTestServer,
    /// The process under test.
    pub troupe: Arc<Troupe>,
    /// Bot user ID → agent name.
    pub bots: Vec<(String, String)>,
    /// agents.toml and the store.
    pub dir: tempfile::TempDir,
    watcher: tokio::task::JoinHandle<()>,
}

impl World {
    /// Starts the sandbox and the LLM server; troupe is not started yet.
    pub async fn new(o: &Options, support: &Support) -> World {
        let llm = LlmTestServer::start().await.unwrap();
        let reply = Reply::echo_markers(MARKER_PREFIX);
        llm.set_default(match o.stream {
            true => reply.token_delay(std::time::Duration::from_millis(1500)),
            false => reply,
        });
        let dir = tempfile::tempdir().unwrap();
        let config_path = dir.path().join("agents.toml");
        std::fs::write(&config_path, config(o, llm.url(), support)).unwrap();
        let cfg = config_path.display().to_string();
        let sandbox = tokio::task::spawn_blocking(move || {
            Process::spawn(&["sandbox", "--config", &cfg, "--listen", "127.0.0.1:0"])
        })
        .await
        .unwrap();
        let sb = Control::new(&sandbox.url);
        let state = sb.state().await;
        let bots = state["users"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|u| u["bot"] == true)
            .map(|u| {
                (
                    u["id"].as_str().unwrap().to_string(),
                    u["name"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        let args = vec![
            "--config".to_string(),
            config_path.display().to_string(),
            "--sandbox-url".into(),
            sandbox.url.clone(),
            "--state-dir".into(),
            dir.path().join("state").display().to_string(),
        ];
        let troupe = Arc::new(Troupe::new(args));
        let watcher = tokio::spawn(Troupe::watch(troupe.clone()));
        World {
            _sandbox: sandbox,
            sb,
            llm,
            troupe,
            bots,
            dir,
            watcher,
        }
    }

    /// The store directory.
    pub fn state_dir(&self) -> std::path::PathBuf {
        self.dir.path().join("state")
    }

    /// The agent a bot user ID belongs to.
    pub fn agent_of(&self, bot_id: &str) -> Option<&str> {
        self.bots.iter().find(|(id, _)| id == bot_id).map(|(_, n)| n.as_str())
    }

    /// Injects a sandbox fault (`POST /sandbox/faults`).
    pub async fn fault(&self, body: Value) {
        self.sb.faults(body).await;
    }

    /// Clears every fault: the sandbox's and the LLM outage.
    pub async fn clear_faults(&self) {
        self.sb.faults(json!({"clear": true})).await;
        self.llm.set_outage(None);
    }

    /// How many REST requests the sandbox has logged.
    pub async fn log_len(&self) -> usize {
        let v: Value = self
            .sb
            .http
            .get(format!("{}/sandbox/requests?since={}", self.sb.url, u32::MAX))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["total"].as_u64().unwrap_or(0) as usize
    }

    /// The sandbox's request log from `since` on.
    pub async fn requests_since(&self, since: usize) -> Vec<LoggedRequest> {
        let v: Value = self
            .sb
            .http
            .get(format!("{}/sandbox/requests?since={since}", self.sb.url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["requests"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|r| {
                        let s = |k: &str| r[k].as_str().unwrap_or_default().to_string();
                        LoggedRequest {
                            method: s("method"),
                            path: s("path"),
                            bot: s("bot"),
                            status: r["status"].as_u64().unwrap_or(0) as u16,
                            unix_ms: r["unix_ms"].as_u64().unwrap_or(0),
                        }
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Stops troupe for good (SIGKILL: the scenario is over and its counts are taken).
    pub async fn shutdown(&self) {
        self.watcher.abort();
        self.troupe.set_auto_restart(false);
        self.troupe.kill9().await;
    }
}

impl Drop for World {
    fn drop(&mut self) {
        // The watcher holds the process; without it, dropping the world kills troupe.
        self.watcher.abort();
    }
}
