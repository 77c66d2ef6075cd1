//! Autosharding against the sandbox: an agent with `shards = 4` over four guilds (one per shard)
//! answers every guild's messages and a DM exactly once, with four sessions in the sandbox, one
//! per shard; `shards = "auto"` runs the count the sandbox recommends; a shard whose session is
//! invalidated identifies again and its guild's missed messages are replayed, once;
//! `check-config` refuses a bad `shards`.
//!
//! serenity 0.12 starts one shard every 5 seconds, so a test with 4 shards takes about 15 s to
//! connect: the waits here have their own, longer deadline.

mod common;
#[path = "support/cpu_load.rs"]
mod cpu_load;

use std::time::{Duration, Instant};

use common::Control;
use serde_json::{json, Value};
use troupe::sandbox::spec::{sandbox_token, ChannelSpec, GuildSpec, WorldSpec};
use troupe::sandbox::Sandbox;

/// Long enough for serenity to start 4 shards 5 seconds apart on a busy machine.
const SHARDS_DEADLINE: Duration = Duration::from_secs(90);

/// Polls `check` until it returns `Some`, or panics with `what` after [`SHARDS_DEADLINE`].
async fn wait<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(start.elapsed() < SHARDS_DEADLINE, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Four guilds of two channels each (`g0a`, `g0b`, ... `g3b`): stable IDs one millisecond apart
/// put each guild on its own shard of 4 (checked by the test, not assumed).
fn four_guilds() -> WorldSpec {
    WorldSpec {
        guilds: (0..4)
            .map(|g| GuildSpec {
                name: format!("G{g}"),
                channels: ["a", "b"]
                    .iter()
                    .map(|c| ChannelSpec::named(&format!("g{g}{c}")))
                    .collect(),
            })
            .collect(),
        humans: vec!["alice".into()],
        ..WorldSpec::default()
    }
}

/// A standalone sandbox with Ada's bot, its sharding set through the control API.
async fn sandbox(sharding: Value) -> (Sandbox, Control) {
    let bots = [("Ada".to_string(), sandbox_token("Ada"))];
    let sb = Sandbox::start(&four_guilds(), &bots, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let control = Control::new(&sb.url());
    let resp = control
        .http
        .post(format!("{}/sandbox/shards", sb.url()))
        .json(&sharding)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    (sb, control)
}

/// troupe with agent Ada (`shards = ...`) against the sandbox at `url`.
fn troupe_config(url: &str, shards: &str) -> (troupe::config::Config, tempfile::TempDir) {
    troupe_config_with(url, shards, "")
}

/// [`troupe_config`] with `tables` (TOML tables) before the agent.
fn troupe_config_with(url: &str, shards: &str, tables: &str) -> (troupe::config::Config, tempfile::TempDir) {
    common::config_with(
        &format!("url = \"{url}\""),
        &format!("{tables}\n[[agents]]\nname = \"Ada\"\nbackend = \"offline\"\nshards = {shards}\n"),
    )
}

/// The shards (`[id, n]`) of Ada's live sessions, sorted.
async fn ada_shards(sb: &Control, ada: &str) -> Vec<Value> {
    let state = sb.state().await;
    let mut shards: Vec<Value> = state["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["bot_id"] == ada)
        .map(|s| s["shard"].clone())
        .collect();
    shards.sort_by_key(|s| s[0].as_u64());
    shards
}

/// Guild `g{k}`'s ID as the sandbox reports it.
async fn guild_ids(sb: &Control) -> Vec<u64> {
    let state = sb.state().await;
    (0..4)
        .map(|k| {
            state["guilds"]
                .as_array()
                .unwrap()
                .iter()
                .find(|g| g["name"] == format!("G{k}"))
                .and_then(|g| g["id"].as_str())
                .unwrap_or_else(|| panic!("no guild G{k}: {state}"))
                .parse()
                .unwrap()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_shards_answer_every_guild_and_dms_exactly_once() {
    let (sandbox, sb) = sandbox(json!({"bot": "Ada", "shards": 4, "max_concurrency": 1})).await;
    // Every shard has a guild: Discord's formula over the world's guild IDs.
    let mut on_shard: Vec<u64> = guild_ids(&sb).await.iter().map(|g| (g >> 22) % 4).collect();
    on_shard.sort_unstable();
    assert_eq!(on_shard, vec![0, 1, 2, 3], "pick guild IDs that cover every shard");
    let (config, _state) = troupe_config(&sandbox.url(), "4");
    let running = troupe::app::start(config).await.unwrap();
    let ada = sb.id_of("users", "Ada").await;

    let all = vec![json!([0, 4]), json!([1, 4]), json!([2, 4]), json!([3, 4])];
    wait("Ada's four shards connected", || async {
        (ada_shards(&sb, &ada).await == all).then_some(())
    })
    .await;

    // One mention in a channel of every guild, and a DM.
    let mut asked = Vec::new();
    for g in 0..4 {
        let channel = format!("g{g}{}", if g % 2 == 0 { "a" } else { "b" });
        let m = sb.say(&channel, "alice", &format!("<@Ada> hello from G{g}")).await;
        asked.push((channel, m["id"].as_str().unwrap().to_string()));
    }
    let dm = sb.dm("alice", "Ada", "hello in private").await;
    asked.push((
        dm["channel_id"].as_str().unwrap().to_string(),
        dm["id"].as_str().unwrap().to_string(),
    ));
    for (channel, id) in &asked {
        let reply = wait(&format!("Ada's answer in {channel}"), || async {
            sb.replies(channel, "Ada", id).await.into_iter().next()
        })
        .await;
        assert!(
            reply["content"].as_str().unwrap().starts_with("Ada heard alice:"),
            "{reply}"
        );
    }
    // Exactly once: every message has one answer, and the agent is ready on every shard.
    let http = running.http_url();
    let readiness: Value = wait("readiness with every shard ready", || async {
        let body: Value = reqwest::get(format!("{http}/readiness"))
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        (body["agents"][0]["shards"]["ready"] == 4 && body["agents"][0]["shards"]["connected"] == 4).then_some(body)
    })
    .await;
    assert_eq!(
        readiness["agents"][0]["shards"],
        json!({"total": 4, "connected": 4, "ready": 4})
    );
    assert_eq!(readiness["agents"][0]["gateway"], "connected");
    for (channel, id) in &asked {
        assert_eq!(sb.replies(channel, "Ada", id).await.len(), 1, "{channel}: one answer");
    }
    assert_eq!(ada_shards(&sb, &ada).await, all, "still one session per shard");
    let metrics = reqwest::get(format!("{http}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("troupe_gateway_shards{agent=\"Ada\",state=\"ready\"} 4"),
        "{metrics}"
    );
    running.stop().await;
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_runs_the_shard_count_the_sandbox_recommends() {
    // max_concurrency 2: shards 0 and 1 are in different identify buckets.
    let (sandbox, sb) = sandbox(json!({"bot": "Ada", "shards": 2, "max_concurrency": 2})).await;
    let (config, _state) = troupe_config(&sandbox.url(), "\"auto\"");
    let running = troupe::app::start(config).await.unwrap();
    let ada = sb.id_of("users", "Ada").await;
    wait("Ada's two shards connected", || async {
        (ada_shards(&sb, &ada).await == vec![json!([0, 2]), json!([1, 2])]).then_some(())
    })
    .await;
    // Both shards answer: a guild of each.
    let ids = guild_ids(&sb).await;
    for shard in 0..2u64 {
        let g = ids.iter().position(|id| (id >> 22) % 2 == shard).unwrap();
        let m = sb.say(&format!("g{g}a"), "alice", "<@Ada> which shard?").await;
        let id = m["id"].as_str().unwrap().to_string();
        wait(&format!("an answer in G{g} (shard {shard})"), || async {
            sb.replies(&format!("g{g}a"), "Ada", &id).await.into_iter().next()
        })
        .await;
    }
    // troupe asked GET /gateway/bot, as serenity's autosharding does.
    let asked = sb
        .requests()
        .await
        .iter()
        .any(|r| r["method"] == "GET" && r["path"] == "/api/v10/gateway/bot");
    assert!(asked, "GET /gateway/bot was read");
    running.stop().await;
    sandbox.stop().await;
}

#[tokio::test]
async fn check_config_refuses_a_bad_shard_count_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agents.toml");
    std::fs::write(
        &path,
        "[backends.offline]\nprovider = \"echo\"\n\n[[agents]]\nname = \"Ada\"\nbackend = \"offline\"\nshards = 0\n\n\
         [[agents]]\nname = \"Basil\"\nbackend = \"offline\"\nshards = \"many\"\n\n\
         [[agents]]\nname = \"Cyd\"\nbackend = \"offline\"\nshards = \"auto\"\n",
    )
    .unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_troupe"))
        .args(["check-config", "--config", path.to_str().unwrap()])
        .env_remove("TROUPE_CONFIG")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("agents.toml:7: agents[0].shards: agent `Ada`: shards = 0 is not valid; use \"auto\""),
        "{stderr}"
    );
    assert!(
        stderr.contains("agents.toml:12: agents[1].shards: agent `Basil`: shards = \"many\" is not valid"),
        "{stderr}"
    );
    assert!(!stderr.contains("Cyd"), "\"auto\" is valid: {stderr}");
    // A valid count is shown in the resolved configuration.
    std::fs::write(
        &path,
        "[backends.offline]\nprovider = \"echo\"\n\n[[agents]]\nname = \"Ada\"\nbackend = \"offline\"\nshards = 4\n",
    )
    .unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_troupe"))
        .args(["check-config", "--config", path.to_str().unwrap()])
        .env_remove("TROUPE_CONFIG")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let resolved: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(resolved["agents"][0]["shards"], 4, "{resolved}");
}

/// How many times Ada answered each message content in `channels`: an answer to a batch (the
/// replay hands a conversation its missed messages at once) names each message it covers.
async fn answers(sb: &Control, channels: &[&str]) -> std::collections::HashMap<String, usize> {
    let mut count = std::collections::HashMap::new();
    for c in channels {
        for m in sb.messages(c).await {
            let text = m["content"].as_str().unwrap_or_default();
            let Some(heard) = text
                .strip_prefix("Ada heard ")
                .filter(|_| m["author"]["username"] == "Ada")
            else {
                continue;
            };
            let heard = heard.rsplit_once(" (remembering").map_or(heard, |(h, _)| h);
            for part in heard.split(" / ") {
                if let Some((_, content)) = part.split_once(": ") {
                    // The mention that addressed Ada (`@Ada ` in what the model saw) is left out.
                    let content = content.strip_prefix("@Ada ").unwrap_or(content);
                    *count.entry(content.to_string()).or_insert(0) += 1;
                }
            }
        }
    }
    count
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shard_that_identifies_again_has_its_missed_messages_replayed_once() {
    let (sandbox, sb) = sandbox(json!({"bot": "Ada", "shards": 2, "max_concurrency": 2})).await;
    let (config, _state) = troupe_config(&sandbox.url(), "2");
    let running = troupe::app::start(config).await.unwrap();
    let ada = sb.id_of("users", "Ada").await;
    let both = vec![json!([0, 2]), json!([1, 2])];
    wait("Ada's two shards connected", || async {
        (ada_shards(&sb, &ada).await == both).then_some(())
    })
    .await;
    let ids = guild_ids(&sb).await;
    let channel_on = |shard: u64| {
        let g = ids.iter().position(|id| (id >> 22) % 2 == shard).unwrap();
        format!("g{g}a")
    };
    let (lost, kept) = (channel_on(1), channel_on(0));
    let channels = [lost.as_str(), kept.as_str()];
    let answered = |contents: Vec<String>| {
        let sb = sb.clone();
        let channels = [lost.clone(), kept.clone()];
        async move {
            let channels: Vec<&str> = channels.iter().map(String::as_str).collect();
            wait(&format!("answers to {contents:?}"), || async {
                let a = answers(&sb, &channels).await;
                contents.iter().all(|c| a.contains_key(c)).then_some(())
            })
            .await;
        }
    };
    sb.say(&lost, "alice", "<@Ada> warm up").await;
    answered(vec!["warm up".into()]).await;

    // Shard 1's session is invalidated (not resumable) and cannot identify for a moment: what is
    // posted in its guild meanwhile reaches no session, as on Discord.
    let hit = sb
        .faults(json!({"gateway": {"bot": "Ada", "action": "invalid_session", "refuse_ms": 1000, "shard": 1}}))
        .await;
    assert_eq!(hit["gateway_sessions_affected"], 1, "only shard 1's session: {hit}");
    let mut asked = Vec::new();
    for i in 0..3 {
        sb.say(&lost, "alice", &format!("<@Ada> missed {i}")).await;
        asked.push(format!("missed {i}"));
    }
    sb.say(&kept, "alice", "<@Ada> on the other shard").await;
    asked.push("on the other shard".to_string());
    // Shard 1 identifies again (a new READY); the replay finds its guild's messages.
    answered(asked.clone()).await;
    assert_eq!(ada_shards(&sb, &ada).await, both);
    sb.say(&lost, "alice", "<@Ada> after").await;
    answered(vec!["after".into()]).await;
    let a = answers(&sb, &channels).await;
    assert!(asked.iter().all(|c| a[c] == 1), "each answered once: {a:?}");
    running.stop().await;
    sandbox.stop().await;
}

/// Order holds per shard: each shard runner has its own in-order collector (a collector of one
/// shard superseding another's is caught by `discord::ordered`'s unit test; this checks the
/// whole path, once each and in order, with two shards delivering at once).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_shard_delivers_its_channels_messages_in_order_under_cpu_load() {
    let (sandbox, sb) = sandbox(json!({"bot": "Ada", "shards": 2, "max_concurrency": 2})).await;
    let (config, _state) = troupe_config_with(
        &sandbox.url(),
        "2",
        "[discord]\nuser_rate_limit = 0\n\n[conversations]\nreorder_ms = 0\n",
    );
    // Order is what this is about: Discord's 5-per-5-seconds bucket would only slow it down.
    sb.enforce_rate_limits(false).await;
    let running = troupe::app::start(config).await.unwrap();
    let ada = sb.id_of("users", "Ada").await;
    wait("Ada's two shards connected", || async {
        (ada_shards(&sb, &ada).await == vec![json!([0, 2]), json!([1, 2])]).then_some(())
    })
    .await;
    let ids = guild_ids(&sb).await;
    let channels: Vec<String> = (0..2u64)
        .map(|shard| format!("g{}a", ids.iter().position(|id| (id >> 22) % 2 == shard).unwrap()))
        .collect();
    let _load = cpu_load::CpuLoad::start();
    // Bursts in a channel of each shard, back to back: both shards' runners deliver at once.
    let mut asked: Vec<Vec<u64>> = vec![Vec::new(), Vec::new()];
    for round in 0..4 {
        for (k, channel) in channels.iter().enumerate() {
            let contents: Vec<String> = (0..8).map(|i| format!("<@Ada> round {round} message {i}")).collect();
            let sent = sb.burst(channel, "alice", &contents).await;
            asked[k].extend(sent.iter().map(|m| m["id"].as_str().unwrap().parse::<u64>().unwrap()));
        }
    }
    for (k, channel) in channels.iter().enumerate() {
        let answered = wait(&format!("every message in {channel} answered"), || async {
            let answered: Vec<u64> = sb
                .messages(channel)
                .await
                .iter()
                .filter(|m| m["author"]["username"] == "Ada")
                .map(|m| m["message_reference"]["message_id"].as_str().unwrap().parse().unwrap())
                .collect();
            (answered.len() >= asked[k].len()).then_some(answered)
        })
        .await;
        assert_eq!(
            answered, asked[k],
            "{channel} (shard {k}): answered once each, in message-ID order"
        );
    }
    running.stop().await;
    sandbox.stop().await;
}
