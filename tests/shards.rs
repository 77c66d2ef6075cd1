//! Autosharding against the sandbox: an agent with `shards = 4` over four guilds (one per shard)
//! answers every guild's messages and a DM exactly once, with four sessions in the sandbox, one
//! per shard; `shards = "auto"` runs the count the sandbox recommends; `check-config` refuses a
//! bad `shards`.
//!
//! serenity 0.12 starts one shard every 5 seconds, so a test with 4 shards takes about 15 s to
//! connect: the waits here have their own, longer deadline.

mod common;

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
    common::config_with(
        &format!("url = \"{url}\""),
        &format!("[[agents]]\nname = \"Ada\"\nbackend = \"offline\"\nshards = {shards}\n"),
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
