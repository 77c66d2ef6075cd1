//! The sandbox's gateway against Discord's documented protocol, beyond the basics of
//! `sandbox_protocol.rs`: `compress=zlib-stream`, the `v` and `encoding` parameters, privileged
//! intents (4014), `member` on guild MESSAGE_CREATE, op 8 answered with GUILD_MEMBERS_CHUNK,
//! opcodes 3 and 4 accepted, and sharding (guild events routed by `(guild_id >> 22) % n`, DMs on
//! shard 0, 4010, 4011, IDENTIFYs per `max_concurrency` bucket). Payloads are checked by
//! deserialising them with serenity's models.

#[path = "support/gateway_client.rs"]
mod gateway_client;

use gateway_client::Gateway;
use serde_json::{json, Value};
use troupe::sandbox::spec::{BotSpec, ChannelSpec, GuildSpec, PrivilegedIntent, WorldSpec};
use troupe::sandbox::Sandbox;

const GUILDS: u64 = 1 << 0;
const GUILD_MEMBERS: u64 = 1 << 1;
const GUILD_PRESENCES: u64 = 1 << 8;
const GUILD_MESSAGES: u64 = 1 << 9;
const MESSAGE_CONTENT: u64 = 1 << 15;
const DIRECT_MESSAGES: u64 = 1 << 12;
const ADA: &str = "sandbox.ada";

async fn sandbox(spec: WorldSpec) -> Sandbox {
    let bots = [("Ada".to_string(), ADA.to_string())];
    Sandbox::start(&spec, &bots, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

fn url(sb: &Sandbox, query: &str) -> String {
    format!("ws://{}/gateway{query}", sb.addr())
}

async fn say(sb: &Sandbox, author: &str, content: &str) -> Value {
    reqwest::Client::new()
        .post(format!("{}/sandbox/messages", sb.url()))
        .json(&json!({"channel": "general", "author": author, "content": content}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn user_id(sb: &Sandbox, name: &str) -> String {
    let world = sb.shared().world.lock().unwrap();
    world.user_by_name(name).unwrap().id.to_string()
}

#[tokio::test]
async fn zlib_stream_sends_every_payload_as_binary_from_one_zlib_context() {
    let sb = sandbox(WorldSpec::default()).await;
    let mut g = Gateway::hello(&url(&sb, "?v=10&encoding=json&compress=zlib-stream"), true).await;
    g.identify(ADA, GUILDS | GUILD_MESSAGES | MESSAGE_CONTENT).await;
    let ready = g.dispatch("READY").await;
    let _: serenity::model::event::ReadyEvent = serde_json::from_value(ready.clone()).unwrap();
    let guild = g.dispatch("GUILD_CREATE").await;
    let _: serenity::model::guild::Guild = serde_json::from_value(guild).unwrap();
    say(&sb, "alice", "compressed?").await;
    let m = g.dispatch("MESSAGE_CREATE").await;
    assert_eq!(m["content"], "compressed?");
    g.send(json!({"op": 1, "d": null})).await;
    assert_eq!(g.payload().await["op"], 11);
    // HELLO, READY, GUILD_CREATE, MESSAGE_CREATE, ACK: each its own binary frame, and each
    // inflated with the context the earlier ones left (a fresh context fails on the second).
    assert_eq!(g.binary_frames, 5);
    sb.stop().await;
}

#[tokio::test]
async fn unsupported_version_and_encoding_close_with_discords_codes() {
    let sb = sandbox(WorldSpec::default()).await;
    for (query, code) in [
        ("?v=8", 4012),
        ("?v=abc&encoding=json", 4012),
        ("?v=10&encoding=etf", 4002),
    ] {
        let mut g = Gateway::connect(&url(&sb, query), false).await;
        assert_eq!(g.close_code().await, Some(code), "{query}");
    }
    let mut g = Gateway::hello(&url(&sb, "?v=9&encoding=json"), false).await;
    g.identify(ADA, GUILD_MESSAGES).await;
    g.dispatch("READY").await;
    sb.stop().await;
}

#[tokio::test]
async fn privileged_intents_not_granted_close_with_4014() {
    let spec = WorldSpec {
        bots: vec![BotSpec {
            name: "Lurker".into(),
            token: Some("lurker".into()),
            privileged_intents: Some(vec![PrivilegedIntent::GuildPresences]),
        }],
        ..WorldSpec::default()
    };
    let sb = sandbox(spec).await;
    for (token, intents, expected) in [
        ("lurker", GUILD_MESSAGES | MESSAGE_CONTENT, Some(4014)),
        ("lurker", GUILD_MESSAGES | GUILD_MEMBERS, Some(4014)),
        (ADA, GUILD_MESSAGES | GUILD_PRESENCES, Some(4014)),
        (ADA, GUILD_MESSAGES | (1 << 40), Some(4013)),
        ("lurker", GUILD_MESSAGES | GUILD_PRESENCES, None),
        (ADA, GUILD_MESSAGES | GUILD_MEMBERS | MESSAGE_CONTENT, None),
    ] {
        let mut g = Gateway::hello(&url(&sb, "?v=10&encoding=json"), false).await;
        g.identify(token, intents).await;
        match expected {
            Some(code) => assert_eq!(g.close_code().await, Some(code), "{token} {intents:#b}"),
            None => {
                g.dispatch("READY").await;
            }
        }
    }
    sb.stop().await;
}

#[tokio::test]
async fn guild_message_create_carries_the_author_member_and_mentioned_members() {
    let sb = sandbox(WorldSpec::default()).await;
    let mut g = Gateway::hello(&url(&sb, "?v=10&encoding=json"), false).await;
    g.identify(ADA, GUILD_MESSAGES | MESSAGE_CONTENT).await;
    g.dispatch("READY").await;
    let ada = user_id(&sb, "Ada").await;
    say(&sb, "alice", &format!("<@{ada}> hello")).await;
    let d = g.dispatch("MESSAGE_CREATE").await;
    assert!(d["member"]["joined_at"].is_string(), "{d}");
    assert!(d["member"].get("user").is_none(), "the author is in `author`: {d}");
    assert_eq!(d["mentions"][0]["id"], ada.as_str());
    assert!(d["mentions"][0]["member"]["roles"].is_array(), "{d}");
    let parsed: serenity::model::channel::Message = serde_json::from_value(d.clone()).unwrap();
    assert!(parsed.member.is_some());
    assert_eq!(parsed.mentions[0].id.get().to_string(), ada);
    // The REST message has no member, as on Discord.
    let rest: Value = reqwest::Client::new()
        .get(format!(
            "{}/api/v10/channels/{}/messages/{}",
            sb.url(),
            d["channel_id"].as_str().unwrap(),
            d["id"].as_str().unwrap()
        ))
        .header("authorization", format!("Bot {ADA}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(rest.get("member").is_none(), "{rest}");
    sb.stop().await;
}

#[tokio::test]
async fn op_8_is_answered_with_guild_members_chunks() {
    let sb = sandbox(WorldSpec::default()).await;
    let guild_id = sb.shared().world.lock().unwrap().guilds()[0].id.to_string();
    let alice = user_id(&sb, "alice").await;
    let mut g = Gateway::hello(&url(&sb, "?v=10&encoding=json"), false).await;
    g.identify(ADA, GUILD_MEMBERS | GUILD_MESSAGES).await;
    g.dispatch("READY").await;
    g.send(json!({"op": 8, "d": {"guild_id": guild_id, "query": "", "limit": 0, "nonce": "all"}}))
        .await;
    let chunk = g.dispatch("GUILD_MEMBERS_CHUNK").await;
    assert_eq!(
        (chunk["chunk_index"].as_u64(), chunk["chunk_count"].as_u64()),
        (Some(0), Some(1))
    );
    assert_eq!(chunk["nonce"], "all");
    let names: Vec<&str> = chunk["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["user"]["username"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["alice", "bob", "Ada"]);
    let parsed: serenity::model::event::GuildMembersChunkEvent = serde_json::from_value(chunk.clone()).unwrap();
    assert_eq!(parsed.members.len(), 3);
    g.send(json!({"op": 8, "d": {"guild_id": guild_id, "user_ids": [alice, "42"]}}))
        .await;
    let chunk = g.dispatch("GUILD_MEMBERS_CHUNK").await;
    assert_eq!(chunk["members"][0]["user"]["id"], alice.as_str());
    assert_eq!(chunk["not_found"], json!(["42"]));
    g.send(json!({"op": 8, "d": {"guild_id": guild_id, "query": "B", "limit": 5}}))
        .await;
    let chunk = g.dispatch("GUILD_MEMBERS_CHUNK").await;
    assert_eq!(chunk["members"][0]["user"]["username"], "bob");
    assert_eq!(chunk["members"].as_array().unwrap().len(), 1);
    g.send(json!({"op": 8, "d": {"query": ""}})).await;
    assert_eq!(
        g.close_code().await,
        Some(4002),
        "op 8 without guild_id is a decode error"
    );
    sb.stop().await;
}

#[tokio::test]
async fn whole_member_lists_need_guild_members_and_opcodes_3_4_and_31_are_ignored() {
    let sb = sandbox(WorldSpec::default()).await;
    let guild_id = sb.shared().world.lock().unwrap().guilds()[0].id.to_string();
    let bob = user_id(&sb, "bob").await;
    let mut g = Gateway::hello(&url(&sb, "?v=10&encoding=json"), false).await;
    g.identify(ADA, GUILD_MESSAGES).await;
    g.dispatch("READY").await;
    g.send(json!({"op": 3, "d": {"since": null, "activities": [], "status": "online", "afk": false}}))
        .await;
    g.send(json!({"op": 4, "d": {"guild_id": guild_id, "channel_id": null, "self_mute": false, "self_deaf": false}}))
        .await;
    g.send(json!({"op": 31, "d": {"guild_ids": [guild_id]}})).await;
    g.send(json!({"op": 8, "d": {"guild_id": guild_id, "query": "", "limit": 0, "nonce": "all"}}))
        .await;
    g.send(json!({"op": 8, "d": {"guild_id": guild_id, "user_ids": bob, "nonce": "one"}}))
        .await;
    // Dispatches to a session are ordered: the first chunk answering the second request proves
    // the first (a whole list, without GUILD_MEMBERS) got none.
    let chunk = g.dispatch("GUILD_MEMBERS_CHUNK").await;
    assert_eq!(chunk["nonce"], "one");
    g.send(json!({"op": 1, "d": null})).await;
    assert_eq!(
        g.payload().await["op"],
        11,
        "the connection is alive after ops 3, 4 and 8"
    );
    sb.stop().await;
}

/// Four guilds of two channels each (`g0a`, `g0b`, ... `g3b`): stable IDs one millisecond apart
/// put the guilds on four different shards of 4.
fn four_guilds() -> WorldSpec {
    let guilds = (0..4)
        .map(|g| GuildSpec {
            name: format!("G{g}"),
            channels: ["a", "b"]
                .iter()
                .map(|c| ChannelSpec::named(&format!("g{g}{c}")))
                .collect(),
        })
        .collect();
    WorldSpec {
        guilds,
        ..WorldSpec::default()
    }
}

/// IDENTIFY as Ada with a `shard` field.
async fn identify_shard(g: &mut Gateway, shard: Value) {
    let d = json!({"token": ADA, "intents": GUILDS | GUILD_MESSAGES | DIRECT_MESSAGES | MESSAGE_CONTENT,
        "properties": {"os": "linux", "browser": "t", "device": "t"}, "shard": shard});
    g.send(json!({"op": 2, "d": d})).await;
}

async fn control(sb: &Sandbox, path: &str, body: Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{}/sandbox/{path}", sb.url()))
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// Discord's formula.
fn shard_of(guild: &str, shards: u64) -> u64 {
    (guild.parse::<u64>().unwrap() >> 22) % shards
}

#[tokio::test]
async fn each_shard_gets_the_events_of_its_guilds_and_shard_0_the_dms() {
    let sb = sandbox(four_guilds()).await;
    let mut shards = Vec::new();
    for k in 0..4u64 {
        let mut g = Gateway::hello(&url(&sb, "?v=10&encoding=json"), false).await;
        identify_shard(&mut g, json!([k, 4])).await;
        let ready = g.dispatch("READY").await;
        assert_eq!(ready["shard"], json!([k, 4]));
        let _: serenity::model::event::ReadyEvent = serde_json::from_value(ready.clone()).unwrap();
        // READY announces this shard's guilds only, and each is followed by its GUILD_CREATE.
        let guilds: Vec<String> = ready["guilds"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["id"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(guilds.len(), 1, "one guild per shard in this world: {ready}");
        assert!(guilds.iter().all(|g| shard_of(g, 4) == k), "{guilds:?} on shard {k}");
        for id in &guilds {
            assert_eq!(g.dispatch("GUILD_CREATE").await["id"], id.as_str());
        }
        shards.push(g);
    }
    // One message in every channel, then a DM; then a last message per shard marks its end.
    for g in 0..4 {
        for c in ["a", "b"] {
            let body = json!({"channel": format!("g{g}{c}"), "author": "alice", "content": format!("in g{g}{c}")});
            control(&sb, "messages", body).await;
        }
    }
    control(
        &sb,
        "messages",
        json!({"dm": "Ada", "author": "alice", "content": "a DM"}),
    )
    .await;
    for g in 0..4 {
        control(
            &sb,
            "messages",
            json!({"channel": format!("g{g}a"), "author": "alice", "content": "end"}),
        )
        .await;
    }
    for (k, g) in shards.iter_mut().enumerate() {
        let mut seen = Vec::new();
        loop {
            let m = g.until("MESSAGE_CREATE").await;
            if m["content"] == "end" {
                break;
            }
            match m["guild_id"].as_str() {
                Some(guild) => assert_eq!(shard_of(guild, 4), k as u64, "{m}"),
                None => assert_eq!(k, 0, "a DM reached shard {k}"),
            }
            seen.push(m["content"].as_str().unwrap().to_string());
        }
        let guild_messages = seen.iter().filter(|c| c.starts_with("in g")).count();
        assert_eq!(
            guild_messages, 2,
            "shard {k}: its guild's two channels, nothing else: {seen:?}"
        );
        assert_eq!(seen.contains(&"a DM".to_string()), k == 0, "shard {k}: {seen:?}");
    }
    // The sandbox's state shows the shard of every session.
    let state: Value = reqwest::get(format!("{}/sandbox/state", sb.url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut held: Vec<Value> = state["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["shard"].clone())
        .collect();
    held.sort_by_key(|s| s[0].as_u64());
    assert_eq!(held, vec![json!([0, 4]), json!([1, 4]), json!([2, 4]), json!([3, 4])]);
    sb.stop().await;
}

#[tokio::test]
async fn a_bad_shard_array_closes_with_4010_and_too_many_guilds_per_shard_with_4011() {
    let sb = sandbox(four_guilds()).await;
    for bad in [json!([4, 4]), json!([0, 0]), json!([1]), json!(["0", "2"])] {
        let mut g = Gateway::hello(&url(&sb, "?v=10&encoding=json"), false).await;
        identify_shard(&mut g, bad.clone()).await;
        assert_eq!(g.close_code().await, Some(4010), "{bad}");
    }
    // A "large" bot: at most 2 guilds per shard, so its 4 guilds need 2 shards or more.
    let set = control(
        &sb,
        "shards",
        json!({"bot": "Ada", "shards": 2, "max_concurrency": 4, "max_guilds_per_shard": 2}),
    )
    .await;
    assert_eq!(set.status(), 200);
    for (shard, expected) in [
        (json!([0, 1]), Some(4011)),
        (json!(null), Some(4011)),
        (json!([0, 2]), None),
    ] {
        let mut g = Gateway::hello(&url(&sb, "?v=10&encoding=json"), false).await;
        identify_shard(&mut g, shard.clone()).await;
        match expected {
            Some(code) => assert_eq!(g.close_code().await, Some(code), "{shard}"),
            None => assert_eq!(g.dispatch("READY").await["shard"], shard),
        }
    }
    // GET /gateway/bot recommends what was set.
    let bot: Value = reqwest::Client::new()
        .get(format!("{}/api/v10/gateway/bot", sb.url()))
        .header("authorization", format!("Bot {ADA}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(bot["shards"], 2, "{bot}");
    assert_eq!(bot["session_start_limit"]["max_concurrency"], 4, "{bot}");
    let _: serenity::model::gateway::BotGateway = serde_json::from_value(bot).unwrap();
    // Nonsense settings are refused.
    for body in [
        json!({"bot": "Ada", "shards": 0}),
        json!({"bot": "alice", "shards": 2}),
        json!({"bot": "Ada", "max_concurrency": 0}),
    ] {
        assert_eq!(control(&sb, "shards", body.clone()).await.status(), 400, "{body}");
    }
    sb.stop().await;
}

#[tokio::test]
async fn identifies_beyond_max_concurrency_are_answered_with_invalid_session() {
    let sb = sandbox(four_guilds()).await;
    control(&sb, "shards", json!({"bot": "Ada", "shards": 4, "max_concurrency": 2})).await;
    // Shards 0 and 1 are in buckets 0 and 1: both identify at once.
    let mut first = Vec::new();
    for k in 0..2 {
        let mut g = Gateway::hello(&url(&sb, "?v=10&encoding=json"), false).await;
        identify_shard(&mut g, json!([k, 4])).await;
        g.dispatch("READY").await;
        first.push(g);
    }
    // Shard 2 is in bucket 0 again (2 % 2), used a moment ago: op 9, and the socket stays open.
    let mut g = Gateway::hello(&url(&sb, "?v=10&encoding=json"), false).await;
    identify_shard(&mut g, json!([2, 4])).await;
    let invalid = g.payload().await;
    assert_eq!(
        (invalid["op"].as_u64(), invalid["d"].as_bool()),
        (Some(9), Some(false)),
        "{invalid}"
    );
    g.send(json!({"op": 1, "d": null})).await;
    assert_eq!(g.payload().await["op"], 11, "still connected after op 9");
    sb.stop().await;
}
