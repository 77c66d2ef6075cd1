//! Slash commands end to end: the real binary against a standalone sandbox (which keeps its
//! world, commands and request log across troupe's restarts), commands used as humans through
//! `POST /sandbox/interactions`. alice is the guild's owner (every permission, a moderator);
//! bob is a plain member.

mod common;

use std::collections::HashSet;

use common::{wait_for, Control, Process};
use serde_json::{json, Value};

/// A troupe run against one standalone sandbox, on one store.
struct Env {
    sandbox: Process,
    sb: Control,
    config: String,
    state: String,
    _dir: tempfile::TempDir,
}

impl Env {
    fn new(config: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agents.toml");
        std::fs::write(&path, config).unwrap();
        let config = path.to_str().unwrap().to_string();
        let state = dir.path().join("state").to_str().unwrap().to_string();
        let sandbox = Process::spawn(&["sandbox", "--config", &config, "--listen", "127.0.0.1:0"]);
        let sb = Control::new(&sandbox.url);
        Self {
            sandbox,
            sb,
            config,
            state,
            _dir: dir,
        }
    }

    /// Starts troupe and waits until its bots are connected: each has read its commands, which
    /// it does once its new session has seen its guild (the sandbox may still list a stopped
    /// troupe's sessions as connected for a moment).
    async fn troupe(&self, bots: &[&str]) -> Process {
        let reads = self.command_requests("GET").await;
        let p = self.troupe_quiet(bots).await;
        wait_for("each bot's new session to read its commands", || async {
            (self.command_requests("GET").await >= reads + bots.len()).then_some(())
        })
        .await;
        p
    }

    /// Starts troupe without waiting for command reads (`commands = "off"` makes none).
    async fn troupe_quiet(&self, bots: &[&str]) -> Process {
        let args = [
            "--config",
            &self.config,
            "--sandbox-url",
            &self.sandbox.url,
            "--state-dir",
            &self.state,
        ];
        let p = Process::spawn(&args);
        self.sb.wait_connected(bots).await;
        p
    }

    /// Commands usable in #general, as `(application name, command name)`.
    async fn commands(&self) -> HashSet<(String, String)> {
        let v: Value = self
            .sb
            .http
            .get(format!("{}/sandbox/commands?channel=general", self.sb.url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v.as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["application_name"].as_str().unwrap().to_string(),
                    c["name"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }

    /// Waits until every agent has its seven commands in #general.
    async fn registered(&self, agents: &[&str]) {
        wait_for("the agents' commands registered", || async {
            let have = self.commands().await;
            let all = agents
                .iter()
                .all(|a| have.iter().filter(|(app, _)| app == a).count() == 7);
            all.then_some(())
        })
        .await
    }

    /// Requests troupe made to a command route, by method.
    async fn command_requests(&self, method: &str) -> usize {
        self.sb
            .requests()
            .await
            .iter()
            .filter(|r| r["method"] == method && r["path"].as_str().is_some_and(|p| p.ends_with("/commands")))
            .count()
    }

    /// `author` uses `/command` of `app` in `channel`; returns the answer's message once it has
    /// content or an embed (a deferred answer once it is edited).
    async fn use_command(&self, author: &str, channel: &str, app: &str, command: &str, options: Value) -> Value {
        let resp = self
            .sb
            .http
            .post(format!("{}/sandbox/interactions", self.sb.url))
            .json(&json!({"author": author, "channel": channel, "application": app,
                "command": command, "options": options}))
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let sent: Value = resp.json().await.unwrap();
        assert!(status.is_success(), "{status} {sent}");
        let id = sent["id"].as_str().unwrap().to_string();
        wait_for(&format!("{app}'s answer to /{command}"), || async {
            let i: Value = self
                .sb
                .http
                .get(format!("{}/sandbox/interactions/{id}", self.sb.url))
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            let o = &i["original"];
            let answered = o["content"].as_str().is_some_and(|c| !c.is_empty())
                || o["embeds"].as_array().is_some_and(|e| !e.is_empty());
            answered.then(|| o.clone())
        })
        .await
    }

    /// Says something in a channel and waits for the agent's reply to it.
    async fn exchange(&self, channel: &str, author: &str, agent: &str, content: &str) -> String {
        let m = self.sb.say(channel, author, content).await;
        let reply = self.sb.reply_to(channel, agent, m["id"].as_str().unwrap()).await;
        reply["content"].as_str().unwrap().to_string()
    }
}

const CAST: &str = r#"
[backends.offline]
provider = "echo"

[[agents]]
name = "Ada"
backend = "offline"
system_prompt = "You are {agent}, a precise mathematician. You talk with {username}."

[[agents]]
name = "Basil"
backend = "offline"
system_prompt = "You are {agent}, a cheerful gardener."
triggers = { channels = ["random"] }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_are_registered_once_not_again_on_restart_and_agents_lists_the_cast() {
    let env = Env::new(CAST);
    let mut troupe = env.troupe(&["Ada", "Basil"]).await;
    env.registered(&["Ada", "Basil"]).await;
    assert_eq!(env.command_requests("PUT").await, 2, "one bulk overwrite per bot");
    let names: HashSet<String> = env
        .commands()
        .await
        .into_iter()
        .filter(|(app, _)| app == "Ada")
        .map(|(_, c)| c)
        .collect();
    for c in ["reset", "forget-me", "agents", "usage", "pause", "resume", "budget"] {
        assert!(names.contains(c), "{c} missing: {names:?}");
    }

    let answer = env.use_command("bob", "general", "Ada", "agents", json!([])).await;
    let embed = &answer["embeds"][0];
    assert_eq!(embed["title"], "The cast", "{answer}");
    let fields = embed["fields"].as_array().unwrap();
    assert_eq!(fields.len(), 2, "{embed}");
    assert_eq!(fields[0]["name"], "Ada");
    assert_eq!(
        fields[0]["value"],
        "You are Ada, a precise mathematician.\nBackend: offline (echo) · Model: echo"
    );
    assert_eq!(fields[1]["name"], "Basil");
    assert!(
        answer["flags"].as_u64().unwrap_or(0) & 64 == 0,
        "the cast is shown to all"
    );

    assert_eq!(troupe.terminate().code(), Some(0));
    let gets = env.command_requests("GET").await;
    let _troupe = env.troupe(&["Ada", "Basil"]).await;
    wait_for("both bots to read their commands again", || async {
        (env.command_requests("GET").await >= gets + 2).then_some(())
    })
    .await;
    // The reads answer; nothing was written: the answer to a command shows the agent is up.
    env.use_command("bob", "general", "Basil", "agents", json!([])).await;
    assert_eq!(
        env.command_requests("PUT").await,
        2,
        "unchanged commands are not written again"
    );
}

const MIRROR: &str = r#"
[backends.mirror]
provider = "echo"
reply = "prompt"

[[agents]]
name = "Ada"
backend = "mirror"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_makes_the_next_reply_see_no_history() {
    let env = Env::new(MIRROR);
    let _troupe = env.troupe(&["Ada"]).await;
    env.registered(&["Ada"]).await;
    env.exchange("general", "alice", "Ada", "<@Ada> my cat is called Tom")
        .await;
    let prompt = env
        .exchange("general", "bob", "Ada", "<@Ada> what is the cat called?")
        .await;
    assert!(
        prompt.contains("my cat is called Tom"),
        "history before the reset: {prompt}"
    );

    let answer = env.use_command("bob", "general", "Ada", "reset", json!([])).await;
    assert_eq!(answer["content"], "Done: I have forgotten our conversation here.");
    assert_eq!(
        answer["ephemeral_to"],
        env.sb.id_of("users", "bob").await,
        "only bob sees it"
    );

    let prompt = env.exchange("general", "bob", "Ada", "<@Ada> and now?").await;
    assert!(
        !prompt.contains("Tom") && !prompt.contains("cat"),
        "history after the reset: {prompt}"
    );
    assert!(prompt.contains("and now?"), "{prompt}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_during_a_turn_is_deferred_and_applies_after_the_turn() {
    // Each answer takes 4 s: longer than the 2 s troupe answers a command within.
    let env = Env::new(&MIRROR.replace("reply = \"prompt\"", "reply = \"prompt\"\ndelay_ms = 4000"));
    let _troupe = env.troupe(&["Ada"]).await;
    env.registered(&["Ada"]).await;
    let channel = env.sb.id_of("channels", "general").await;
    let asked = env.sb.say("general", "alice", "<@Ada> my cat is called Tom").await;
    // The turn is in flight once its typing indicator is sent.
    wait_for("Ada's turn to start", || async {
        let typing = format!("/channels/{channel}/typing");
        let requests = env.sb.requests().await;
        requests
            .iter()
            .any(|r| r["path"].as_str().is_some_and(|p| p.ends_with(&typing)))
            .then_some(())
    })
    .await;
    let answer = env.use_command("alice", "general", "Ada", "reset", json!([])).await;
    assert_eq!(answer["content"], "Done: I have forgotten our conversation here.");
    let id = answer["interaction_metadata"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let shown: Value = env
        .sb
        .http
        .get(format!("{}/sandbox/interactions/{id}", env.sb.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(shown["callback_type"], 5, "deferred, then edited: {shown}");
    // The turn was not cut: alice got her answer, then the reset applied to what it saved.
    env.sb.reply_to("general", "Ada", asked["id"].as_str().unwrap()).await;
    let prompt = env
        .exchange("general", "alice", "Ada", "<@Ada> what is my cat called?")
        .await;
    assert!(!prompt.contains("Tom"), "the in-flight turn is forgotten too: {prompt}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forget_me_leaves_no_trace_of_the_caller_in_the_store() {
    let env = Env::new(
        r#"
[backends.offline]
provider = "echo"

[[agents]]
name = "Ada"
backend = "offline"

[[agents]]
name = "Basil"
backend = "offline"
memory = "channel-user"
triggers = { channels = ["random"] }
"#,
    );
    let mut troupe = env.troupe(&["Ada", "Basil"]).await;
    env.registered(&["Ada", "Basil"]).await;
    let alice = env.sb.id_of("users", "alice").await;
    let secrets = ["alice-secret-one", "alice-secret-two", "alice-secret-three"];
    env.exchange("general", "alice", "Ada", &format!("<@Ada> {}", secrets[0]))
        .await;
    env.exchange("general", "bob", "Ada", "<@Ada> bob-keeps-this").await;
    env.exchange("random", "alice", "Basil", secrets[1]).await;
    let dm = env.sb.dm("alice", "Ada", secrets[2]).await;
    let dm_channel = dm["channel_id"].as_str().unwrap().to_string();
    env.sb.reply_to(&dm_channel, "Ada", dm["id"].as_str().unwrap()).await;

    let answer = env
        .use_command(
            "alice",
            "general",
            "Ada",
            "forget-me",
            json!([{"name": "scope", "value": "all"}]),
        )
        .await;
    assert_eq!(
        answer["content"],
        "Done: every agent has forgotten everything about you."
    );
    assert_eq!(troupe.terminate().code(), Some(0));

    let db = common::open_sled(std::path::Path::new(&env.state)).await;
    let mut found = Vec::new();
    let mut bobs = 0;
    for name in db.tree_names() {
        let tree = db.open_tree(&name).unwrap();
        for kv in tree.iter() {
            let (k, v) = kv.unwrap();
            let (k, v) = (String::from_utf8_lossy(&k), String::from_utf8_lossy(&v));
            for needle in secrets.iter().copied().chain([alice.as_str()]) {
                if k.contains(needle) || v.contains(needle) {
                    found.push(format!("{k} = {v}"));
                }
            }
            bobs += usize::from(v.contains("bob-keeps-this"));
        }
    }
    assert!(found.is_empty(), "alice is still in the store:\n{}", found.join("\n"));
    assert!(bobs > 0, "bob's conversation is kept (and the scan reads the store)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_silences_an_agent_in_one_channel_across_a_restart_and_resume_restores() {
    // Basil answers mentions only: echoed into #random, bob's "<@Ada>" would make Basil's reply
    // address Ada, who answers bots after a delay and in order, holding bob's next message back.
    let env = Env::new(&CAST.replace("triggers = { channels = [\"random\"] }", ""));
    let mut troupe = env.troupe(&["Ada", "Basil"]).await;
    env.registered(&["Ada", "Basil"]).await;

    let refused = env.use_command("bob", "general", "Ada", "pause", json!([])).await;
    assert_eq!(refused["content"], "Sorry, only moderators can use this command.");
    let answer = env.use_command("alice", "general", "Ada", "pause", json!([])).await;
    assert_eq!(answer["content"], "Ada is paused in this channel.");
    let metrics = reqwest::get(format!("{}/metrics", troupe.http_url.as_deref().unwrap()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for (outcome, n) in [("refused", 1), ("ok", 1), ("error", 0)] {
        let series = format!("troupe_commands_total{{agent=\"Ada\",command=\"pause\",outcome=\"{outcome}\"}} {n}");
        assert!(metrics.lines().any(|l| l == series), "{series} missing:\n{metrics}");
    }

    // Messages are admitted in gateway order: once the later message in #random is answered,
    // the one in #general has been decided.
    let silenced = env.sb.say("general", "bob", "<@Ada> are you there?").await;
    env.exchange("random", "bob", "Ada", "<@Ada> and here?").await;
    assert!(env
        .sb
        .replies("general", "Ada", silenced["id"].as_str().unwrap())
        .await
        .is_empty());

    assert_eq!(troupe.terminate().code(), Some(0));
    let _troupe = env.troupe(&["Ada", "Basil"]).await;
    let still = env.sb.say("general", "bob", "<@Ada> still paused?").await;
    env.exchange("random", "bob", "Ada", "<@Ada> after the restart").await;
    assert!(
        env.sb
            .replies("general", "Ada", still["id"].as_str().unwrap())
            .await
            .is_empty(),
        "the pause survives a restart"
    );
    // Basil was never paused in #general.
    env.exchange("general", "bob", "Basil", "<@Basil> hello").await;

    let answer = env.use_command("alice", "general", "Ada", "resume", json!([])).await;
    assert_eq!(answer["content"], "Ada answers in this channel again.");
    env.exchange("general", "bob", "Ada", "<@Ada> back?").await;
    for m in [&silenced, &still] {
        assert!(
            env.sb
                .replies("general", "Ada", m["id"].as_str().unwrap())
                .await
                .is_empty(),
            "messages sent during the pause stay unanswered"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_budget_set_by_a_moderator_applies_and_usage_shows_it() {
    let env = Env::new(
        r#"
[budgets]
notice = "Budget spent."

[backends.offline]
provider = "echo"

[[agents]]
name = "Ada"
backend = "offline"
"#,
    );
    let _troupe = env.troupe(&["Ada"]).await;
    env.registered(&["Ada"]).await;
    let bob = env.sb.id_of("users", "bob").await;
    let options = json!([{"name": "user", "value": "bob"}, {"name": "tokens", "value": 100}]);
    let refused = env
        .use_command("bob", "general", "Ada", "budget", options.clone())
        .await;
    assert_eq!(refused["content"], "Sorry, only moderators can use this command.");
    // Before the override, bob is answered.
    env.exchange("general", "bob", "Ada", "<@Ada> first").await;

    let set = env.use_command("alice", "general", "Ada", "budget", options).await;
    let text = set["content"].as_str().unwrap();
    assert!(text.starts_with(&format!("<@{bob}>: ")), "{text}");
    assert!(text.ends_with(" of 100 tokens today (set by a moderator)."), "{text}");

    let usage = env.use_command("bob", "general", "Ada", "usage", json!([])).await;
    let text = usage["content"].as_str().unwrap();
    assert!(
        text.contains("Your budget: ") && text.contains(" of 100 tokens today"),
        "{text}"
    );
    assert!(
        !text.contains("You: 0 tokens today"),
        "bob's first exchange counts: {text}"
    );

    // The echo backend asks for up to 1,024 tokens per reply: over 100, so bob is refused.
    let notice = env.exchange("general", "bob", "Ada", "<@Ada> second").await;
    assert_eq!(notice, "Budget spent.");
    // alice has no override and no configured budget.
    let answer = env.exchange("general", "alice", "Ada", "<@Ada> hello").await;
    assert!(answer.contains("hello"), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_registration_is_retried_and_never_blocks_messages() {
    let env = Env::new(MIRROR);
    // Every read of the commands fails, so registration never gets to write.
    env.sb
        .faults(json!({"rest": {"status": 500, "count": 1000, "path_contains": "/commands", "method": "GET"}}))
        .await;
    let _troupe = env.troupe(&["Ada"]).await;
    let failed_reads = || async {
        env.sb
            .requests()
            .await
            .iter()
            .filter(|r| {
                r["method"] == "GET"
                    && r["status"] == 500
                    && r["path"].as_str().is_some_and(|p| p.ends_with("/commands"))
            })
            .count()
    };
    wait_for("registration to be tried again", || async {
        (failed_reads().await >= 2).then_some(())
    })
    .await;
    let prompt = env.exchange("general", "alice", "Ada", "<@Ada> are you there?").await;
    assert!(prompt.contains("are you there?"), "{prompt}");
    assert_eq!(env.command_requests("PUT").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn global_commands_are_registered_once_for_every_guild_and_off_registers_none() {
    let env = Env::new(&format!("[discord]\ncommands = \"global\"\n{MIRROR}"));
    let mut troupe = env.troupe(&["Ada"]).await;
    env.registered(&["Ada"]).await;
    let puts: Vec<String> = env
        .sb
        .requests()
        .await
        .iter()
        .filter(|r| r["method"] == "PUT" && r["path"].as_str().is_some_and(|p| p.ends_with("/commands")))
        .map(|r| r["path"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(puts.len(), 1, "{puts:?}");
    assert!(!puts[0].contains("/guilds/"), "global: {puts:?}");
    let answer = env.use_command("bob", "general", "Ada", "usage", json!([])).await;
    assert!(answer["content"].as_str().unwrap().starts_with("You: "), "{answer}");
    assert_eq!(troupe.terminate().code(), Some(0));

    let off = Env::new(&format!("[discord]\ncommands = \"off\"\n{MIRROR}"));
    let _troupe = off.troupe_quiet(&["Ada"]).await;
    off.exchange("general", "alice", "Ada", "<@Ada> hello").await;
    assert_eq!(off.command_requests("GET").await + off.command_requests("PUT").await, 0);
}
