//! Black-box conformance tests of the sandbox against Discord's documented API v10 behaviour:
//! the gateway spoken over a raw websocket, REST with `reqwest`, and the control API.
//!
//! No test sleeps to synchronise: websocket reads carry a deadline, and "X was not dispatched"
//! is proven by a later barrier event arriving first (dispatches to one session are ordered).

mod common;

use common::{wait_for, Control, DEADLINE};
use futures::{SinkExt, StreamExt};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use troupe::sandbox::spec::WorldSpec;
use troupe::sandbox::Sandbox;

const GUILDS: u64 = 1 << 0;
const GUILD_MESSAGES: u64 = 1 << 9;
const DIRECT_MESSAGES: u64 = 1 << 12;
const MESSAGE_CONTENT: u64 = 1 << 15;
const ALL: u64 = GUILDS | GUILD_MESSAGES | DIRECT_MESSAGES | MESSAGE_CONTENT;

const ADA: &str = "sandbox.ada";
const BEA: &str = "sandbox.bea";

// ---- harness ----

struct Env {
    sandbox: Sandbox,
    sb: Control,
    http: reqwest::Client,
}

impl Env {
    async fn start() -> Self {
        Self::with(WorldSpec::default()).await
    }

    async fn with(spec: WorldSpec) -> Self {
        let bots = [
            ("Ada".to_string(), ADA.to_string()),
            ("Bea".to_string(), BEA.to_string()),
        ];
        let sandbox = Sandbox::start(&spec, &bots, "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let sb = Control::new(&sandbox.url());
        Self {
            sandbox,
            sb,
            http: reqwest::Client::new(),
        }
    }

    fn gateway_url(&self) -> String {
        format!("ws://{}/gateway?v=10&encoding=json", self.sandbox.addr())
    }

    async fn id(&self, kind: &str, name: &str) -> String {
        self.sb.id_of(kind, name).await
    }

    /// A REST call as the bot with `token`; returns status, headers and JSON body (Null if none).
    async fn api(&self, method: Method, path: &str, token: Option<&str>, body: Option<Value>) -> Resp {
        let mut req = self
            .http
            .request(method, format!("{}/api/v10{path}", self.sandbox.url()));
        if let Some(t) = token {
            req = req.header("Authorization", format!("Bot {t}"));
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        Resp::read(req.send().await.unwrap()).await
    }

    async fn api_raw(&self, method: Method, path: &str, body: &'static [u8]) -> Resp {
        let req = self
            .http
            .request(method, format!("{}/api/v10{path}", self.sandbox.url()))
            .header("Authorization", format!("Bot {ADA}"))
            .header("Content-Type", "application/json")
            .body(body);
        Resp::read(req.send().await.unwrap()).await
    }

    async fn get(&self, path: &str) -> Resp {
        self.api(Method::GET, path, Some(ADA), None).await
    }

    async fn post(&self, path: &str, body: Value) -> Resp {
        self.api(Method::POST, path, Some(ADA), Some(body)).await
    }

    async fn control_post(&self, path: &str, body: &'static str) -> Resp {
        let req = self
            .http
            .post(format!("{}/sandbox{path}", self.sandbox.url()))
            .header("Content-Type", "application/json")
            .body(body);
        Resp::read(req.send().await.unwrap()).await
    }

    async fn connect(&self) -> Ws {
        Ws::connect(&self.gateway_url()).await
    }

    /// Connects, identifies and reads READY and every GUILD_CREATE.
    async fn session(&self, token: &str, intents: u64) -> (Ws, Value) {
        let mut ws = self.connect().await;
        ws.identify(token, intents).await;
        let ready = ws.dispatch("READY").await;
        if intents & GUILDS != 0 {
            ws.dispatch("GUILD_CREATE").await;
        }
        (ws, ready)
    }
}

struct Resp {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

impl Resp {
    async fn read(r: reqwest::Response) -> Self {
        let status = r.status();
        let headers = r.headers().clone();
        let bytes = r.bytes().await.unwrap();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|e| panic!("{status}: body is not JSON ({e}): {}", String::from_utf8_lossy(&bytes)))
        };
        Self { status, headers, body }
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    #[track_caller]
    fn expect(&self, status: u16) -> &Value {
        assert_eq!(self.status.as_u16(), status, "unexpected status; body {}", self.body);
        &self.body
    }
}

/// What the gateway sent: a JSON payload, or a close frame's code.
#[derive(Debug)]
enum Frame {
    Payload(Value),
    Close(Option<u16>),
}

struct Ws {
    stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// Highest `s` seen, for RESUME.
    seq: u64,
}

impl Ws {
    /// Connects and checks that HELLO comes first.
    async fn connect(url: &str) -> Self {
        let (stream, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        let mut ws = Self { stream, seq: 0 };
        let hello = ws.payload().await;
        assert_eq!(hello["op"], 10, "first frame must be HELLO: {hello}");
        assert!(
            hello["d"]["heartbeat_interval"].as_u64().is_some_and(|ms| ms > 0),
            "{hello}"
        );
        ws
    }

    async fn send(&mut self, v: Value) {
        self.stream.send(WsMessage::text(v.to_string())).await.unwrap();
    }

    async fn identify(&mut self, token: &str, intents: u64) {
        let d =
            json!({"token": token, "intents": intents, "properties": {"os": "linux", "browser": "t", "device": "t"}});
        self.send(json!({"op": 2, "d": d})).await;
    }

    async fn resume(&mut self, token: &str, session_id: &str, seq: u64) {
        self.send(json!({"op": 6, "d": {"token": token, "session_id": session_id, "seq": seq}}))
            .await;
    }

    /// The next frame, or a panic after the deadline.
    async fn frame(&mut self) -> Frame {
        loop {
            let next = tokio::time::timeout(DEADLINE, self.stream.next())
                .await
                .unwrap_or_else(|_| panic!("no gateway frame within {DEADLINE:?}"));
            match next {
                Some(Ok(WsMessage::Text(t))) => {
                    let v: Value = serde_json::from_str(t.as_str()).unwrap();
                    if let Some(s) = v["s"].as_u64() {
                        self.seq = s;
                    }
                    return Frame::Payload(v);
                }
                Some(Ok(WsMessage::Close(c))) => return Frame::Close(c.map(|c| u16::from(c.code))),
                Some(Ok(WsMessage::Binary(b))) => panic!("unexpected binary frame: {b:?}"),
                Some(Ok(_)) => continue,
                Some(Err(e)) => panic!("websocket error: {e}"),
                None => return Frame::Close(None),
            }
        }
    }

    async fn payload(&mut self) -> Value {
        match self.frame().await {
            Frame::Payload(v) => v,
            Frame::Close(c) => panic!("expected a payload, got close {c:?}"),
        }
    }

    /// The next payload, which must be a dispatch of type `t`.
    async fn dispatch(&mut self, t: &str) -> Value {
        let v = self.payload().await;
        assert_eq!(
            (v["op"].as_u64(), v["t"].as_str()),
            (Some(0), Some(t)),
            "expected {t}: {v}"
        );
        v
    }

    /// The next MESSAGE_CREATE's `d` (nothing else may come first).
    async fn message(&mut self) -> Value {
        self.dispatch("MESSAGE_CREATE").await["d"].clone()
    }

    /// The close code the server closes with next (payloads before it are a failure).
    async fn close_code(&mut self) -> Option<u16> {
        match self.frame().await {
            Frame::Close(c) => c,
            Frame::Payload(v) => panic!("expected the gateway to close, got {v}"),
        }
    }
}

fn names(channels: &Value) -> Vec<String> {
    channels
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect()
}

// ---- gateway ----

#[tokio::test]
async fn gateway_ready_then_guild_create() {
    let env = Env::start().await;
    let ada_id = env.id("users", "Ada").await;
    let mut ws = env.connect().await;
    ws.identify(ADA, ALL).await;

    let ready = ws.dispatch("READY").await;
    assert_eq!(ready["s"], 1, "{ready}");
    let d = &ready["d"];
    assert_eq!(d["v"], 10);
    assert_eq!(d["user"]["id"], ada_id.as_str());
    assert_eq!(d["user"]["username"], "Ada");
    assert_eq!(d["user"]["bot"], true);
    let guilds = d["guilds"].as_array().unwrap();
    assert_eq!(guilds.len(), 1, "{d}");
    assert_eq!(guilds[0]["unavailable"], true);
    let guild_id = guilds[0]["id"].as_str().unwrap().to_string();
    assert!(d["session_id"].as_str().is_some_and(|s| !s.is_empty()), "{d}");
    let resume_url = d["resume_gateway_url"].as_str().unwrap();
    assert!(
        resume_url.starts_with("ws://") && !resume_url.contains('?'),
        "{resume_url}"
    );
    assert_eq!(d["shard"], json!([0, 1]));
    assert!(d["application"]["id"].as_str().is_some(), "{d}");
    assert!(d["application"]["flags"].is_u64(), "{d}");
    // serenity must be able to parse it.
    let _: serenity::model::event::ReadyEvent = serde_json::from_value(d.clone()).unwrap();

    let gc = ws.dispatch("GUILD_CREATE").await;
    assert_eq!(gc["s"], 2);
    assert_eq!(gc["d"]["id"], guild_id.as_str());
    assert_eq!(gc["d"]["name"], "Troupe Sandbox");
    assert_eq!(gc["d"]["unavailable"], false);
    assert_eq!(names(&gc["d"]["channels"]), ["general", "random", "bot-dms"]);
    assert!(gc["d"]["channels"].as_array().unwrap().iter().all(|c| c["type"] == 0));
    // Without GUILD_PRESENCES, Discord sends only the bot's own member (and users in voice
    // channels); member_count still counts the whole guild.
    let members = gc["d"]["members"].as_array().unwrap();
    assert_eq!(members.len(), 1, "{members:?}");
    assert_eq!(members[0]["user"]["id"], ada_id.as_str());
    assert!(gc["d"]["member_count"].as_u64().unwrap() > 1, "{}", gc["d"]);
    env.sandbox.stop().await;
}

#[tokio::test]
async fn gateway_hello_announces_the_configured_heartbeat_and_acks_heartbeats() {
    let env = Env::with(WorldSpec {
        heartbeat_interval_ms: 5_000,
        ..WorldSpec::default()
    })
    .await;
    let (stream, _) = tokio_tungstenite::connect_async(env.gateway_url()).await.unwrap();
    let mut ws = Ws { stream, seq: 0 };
    let hello = ws.payload().await;
    assert_eq!(hello["op"], 10);
    assert_eq!(hello["d"]["heartbeat_interval"], 5_000);
    // Before IDENTIFY, with a null sequence...
    ws.send(json!({"op": 1, "d": null})).await;
    let ack = ws.payload().await;
    assert_eq!(ack["op"], 11, "{ack}");
    // ...and after, with the last sequence.
    ws.identify(ADA, ALL).await;
    ws.dispatch("READY").await;
    ws.dispatch("GUILD_CREATE").await;
    ws.send(json!({"op": 1, "d": ws.seq})).await;
    assert_eq!(ws.payload().await["op"], 11);
    env.sandbox.stop().await;
}

#[tokio::test]
async fn gateway_bad_token_closes_4004() {
    let env = Env::start().await;
    for token in ["nope", "Bot nope", ""] {
        let mut ws = env.connect().await;
        ws.identify(token, ALL).await;
        assert_eq!(ws.close_code().await, Some(4004), "token {token:?}");
    }
    // A token given with the `Bot ` prefix is accepted, as Discord does.
    let mut ws = env.connect().await;
    ws.identify(&format!("Bot {ADA}"), ALL).await;
    ws.dispatch("READY").await;
    env.sandbox.stop().await;
}

#[tokio::test]
async fn gateway_second_identify_closes_4005() {
    let env = Env::start().await;
    let (mut ws, _) = env.session(ADA, ALL).await;
    ws.identify(ADA, ALL).await;
    assert_eq!(ws.close_code().await, Some(4005));
    env.sandbox.stop().await;
}

#[tokio::test]
async fn gateway_payload_before_identify_closes_4003() {
    let env = Env::start().await;
    let mut ws = env.connect().await;
    ws.send(json!({"op": 0, "d": {}})).await;
    assert_eq!(ws.close_code().await, Some(4003));
    env.sandbox.stop().await;
}

#[tokio::test]
async fn gateway_presence_update_before_identify_closes_4003() {
    let env = Env::start().await;
    let mut ws = env.connect().await;
    ws.send(json!({"op": 3, "d": {"since": null, "activities": [], "status": "online", "afk": false}}))
        .await;
    assert_eq!(ws.close_code().await, Some(4003));
    // After IDENTIFY the same payload is fine: a heartbeat still gets its ACK.
    let (mut ws, _) = env.session(ADA, ALL).await;
    ws.send(json!({"op": 3, "d": {"since": null, "activities": [], "status": "online", "afk": false}}))
        .await;
    ws.send(json!({"op": 1, "d": ws.seq})).await;
    assert_eq!(ws.payload().await["op"], 11);
    env.sandbox.stop().await;
}

#[tokio::test]
async fn gateway_sequence_numbers_increase_by_one() {
    let env = Env::start().await;
    let mut ws = env.connect().await;
    ws.identify(ADA, ALL).await;
    let mut seqs = vec![ws.dispatch("READY").await["s"].as_u64().unwrap()];
    seqs.push(ws.dispatch("GUILD_CREATE").await["s"].as_u64().unwrap());
    for i in 0..5 {
        env.sb
            .say(if i % 2 == 0 { "general" } else { "random" }, "alice", &format!("m{i}"))
            .await;
    }
    env.sb.dm("bob", "Ada", "psst").await;
    for _ in 0..6 {
        let v = ws.dispatch("MESSAGE_CREATE").await;
        seqs.push(v["s"].as_u64().unwrap());
    }
    assert_eq!(seqs, (1..=8).collect::<Vec<u64>>());
    env.sandbox.stop().await;
}

#[tokio::test]
async fn intents_without_message_content_blank_content_unless_mentioned() {
    let env = Env::start().await;
    let ada_id = env.id("users", "Ada").await;
    let (mut ada, _) = env.session(ADA, GUILDS | GUILD_MESSAGES | DIRECT_MESSAGES).await;
    let (mut bea, _) = env.session(BEA, ALL).await;

    env.sb.say("general", "alice", "nobody is addressed").await;
    let m = ada.message().await;
    assert_eq!(m["content"], "", "{m}");
    assert!(m["author"]["username"] == "alice");
    assert_eq!(bea.message().await["content"], "nobody is addressed");

    let embed = json!({"description": "secret embed"});
    env.sb
        .post(json!({"channel": "general", "author": "alice", "content": "with embed", "embeds": [embed]}))
        .await;
    let m = ada.message().await;
    assert_eq!(
        (m["content"].as_str(), m["embeds"].clone()),
        (Some(""), json!([])),
        "{m}"
    );

    env.sb.say("general", "alice", "<@Ada> hi").await;
    let m = ada.message().await;
    assert_eq!(m["content"], format!("<@{ada_id}> hi"), "{m}");
    assert_eq!(m["mentions"][0]["id"], ada_id.as_str());

    // DMs carry content without the intent, too.
    env.sb.dm("bob", "Ada", "private words").await;
    assert_eq!(ada.message().await["content"], "private words");

    // And so do the bot's own messages.
    let general = env.id("channels", "general").await;
    env.post(
        &format!("/channels/{general}/messages"),
        json!({"content": "my own words"}),
    )
    .await
    .expect(200);
    assert_eq!(ada.message().await["content"], "my own words");
    env.sandbox.stop().await;
}

#[tokio::test]
async fn intents_without_guild_messages_get_no_guild_message_create() {
    let env = Env::start().await;
    let (mut ada, _) = env.session(ADA, GUILDS | DIRECT_MESSAGES | MESSAGE_CONTENT).await;
    env.sb.say("general", "alice", "guild chatter").await;
    env.sb.say("random", "alice", "<@Ada> even mentioned").await;
    env.sb.dm("alice", "Ada", "barrier").await;
    // The DM is the first MESSAGE_CREATE: the guild messages were never sent.
    let m = ada.message().await;
    assert_eq!(m["content"], "barrier", "{m}");
    assert!(m.get("guild_id").is_none_or(Value::is_null), "{m}");

    // And without DIRECT_MESSAGES, no DMs.
    let (mut bea, _) = env.session(BEA, GUILDS | GUILD_MESSAGES | MESSAGE_CONTENT).await;
    env.sb.dm("alice", "Bea", "unseen dm").await;
    env.sb.say("general", "alice", "barrier 2").await;
    assert_eq!(bea.message().await["content"], "barrier 2");
    env.sandbox.stop().await;
}

#[tokio::test]
async fn hidden_channel_is_absent_undispatched_and_forbidden() {
    let mut spec = WorldSpec::default();
    spec.guilds[0].channels[0].hidden_from = vec!["Ada".into()];
    let env = Env::with(spec).await;
    let general = env.id("channels", "general").await;

    let mut ada = env.connect().await;
    ada.identify(ADA, ALL).await;
    ada.dispatch("READY").await;
    let gc = ada.dispatch("GUILD_CREATE").await;
    assert_eq!(names(&gc["d"]["channels"]), ["random", "bot-dms"]);
    let (mut bea, _) = env.session(BEA, ALL).await;

    env.sb.say("general", "alice", "<@Ada> you cannot see this").await;
    env.sb.say("random", "alice", "barrier").await;
    assert_eq!(ada.message().await["content"], "barrier");
    // Bea sees both.
    assert_eq!(
        bea.message().await["content"]
            .as_str()
            .map(|c| c.ends_with("you cannot see this")),
        Some(true)
    );
    assert_eq!(bea.message().await["content"], "barrier");

    for (method, path) in [
        (Method::GET, format!("/channels/{general}")),
        (Method::GET, format!("/channels/{general}/messages")),
        (Method::POST, format!("/channels/{general}/typing")),
    ] {
        let r = env.api(method, &path, Some(ADA), None).await;
        assert_eq!(r.expect(403)["code"], 50001, "{path}");
    }
    let r = env
        .post(&format!("/channels/{general}/messages"), json!({"content": "x"}))
        .await;
    assert_eq!(r.expect(403)["code"], 50001);
    env.api(Method::GET, &format!("/channels/{general}"), Some(BEA), None)
        .await
        .expect(200);
    env.sandbox.stop().await;
}

#[tokio::test]
async fn channels_made_or_changed_at_runtime_are_dispatched_to_who_can_see_them() {
    let env = Env::start().await;
    let (mut ada, _) = env.session(ADA, ALL).await;
    let (mut bea, _) = env.session(BEA, ALL).await;

    // Hidden from Bea: Ada hears of it, Bea does not (the next thing she gets is the barrier).
    let made = env
        .sb
        .create_channel(json!({"name": "late", "hidden_from": ["Bea"], "slowmode": 3}))
        .await;
    let created = ada.dispatch("CHANNEL_CREATE").await["d"].clone();
    assert_eq!(created, made);
    assert_eq!(
        (created["name"].as_str(), created["type"].as_u64()),
        (Some("late"), Some(0))
    );
    assert_eq!(created["rate_limit_per_user"], 3);
    env.sb.say("random", "alice", "barrier").await;
    assert_eq!(ada.message().await["content"], "barrier");
    assert_eq!(bea.message().await["content"], "barrier");
    // Listed, readable and writable for Ada like any channel.
    let late = created["id"].as_str().unwrap().to_string();
    let guild = created["guild_id"].as_str().unwrap().to_string();
    let listed = env
        .api(Method::GET, &format!("/guilds/{guild}/channels"), Some(ADA), None)
        .await;
    assert!(names(listed.expect(200)).contains(&"late".to_string()));
    env.post(&format!("/channels/{late}/messages"), json!({"content": "hi"}))
        .await
        .expect(200);
    assert_eq!(ada.message().await["content"], "hi");

    // Shown to Bea and muted for Ada: both hear of it, and Ada's send is refused.
    env.sb
        .change_channel("late", json!({"hidden_from": [], "read_only_for": ["Ada"]}))
        .await;
    for session in [&mut ada, &mut bea] {
        let updated = session.dispatch("CHANNEL_UPDATE").await["d"].clone();
        assert_eq!(updated["id"].as_str(), Some(late.as_str()));
        assert_eq!(updated["permission_overwrites"].as_array().map(Vec::len), Some(1));
    }
    let refused = env
        .post(&format!("/channels/{late}/messages"), json!({"content": "x"}))
        .await;
    assert_eq!(refused.expect(403)["code"], 50013);
    env.sandbox.stop().await;
}

#[tokio::test]
async fn dm_messages_reach_only_the_participant() {
    let env = Env::start().await;
    let (mut ada, _) = env.session(ADA, ALL).await;
    let (mut bea, _) = env.session(BEA, ALL).await;
    let dm = env.sb.dm("alice", "Ada", "for Ada only").await;
    env.sb.say("general", "alice", "barrier").await;
    let m = ada.message().await;
    assert_eq!(
        (m["content"].as_str(), m["channel_id"].clone()),
        (Some("for Ada only"), dm["channel_id"].clone())
    );
    assert_eq!(bea.message().await["content"], "barrier");
    let dm_id = dm["channel_id"].as_str().unwrap();
    let r = env
        .api(Method::GET, &format!("/channels/{dm_id}/messages"), Some(BEA), None)
        .await;
    assert!(r.status.is_client_error(), "{}", r.status);
    let r = env
        .api(
            Method::POST,
            &format!("/channels/{dm_id}/messages"),
            Some(BEA),
            Some(json!({"content": "x"})),
        )
        .await;
    assert!(r.status.is_client_error(), "{}", r.status);
    env.sandbox.stop().await;
}

#[tokio::test]
async fn ready_never_lists_dm_channels() {
    let env = Env::start().await;
    let first = env.sb.dm("alice", "Ada", "before you connected").await;
    let dm_id = first["channel_id"].as_str().unwrap().to_string();
    let mut ws = env.connect().await;
    ws.identify(ADA, ALL).await;
    let ready = ws.dispatch("READY").await;
    assert_eq!(ready["d"]["private_channels"], json!([]), "{ready}");
    let gc = ws.dispatch("GUILD_CREATE").await;
    assert!(!ready.to_string().contains(&dm_id) && !gc.to_string().contains(&dm_id));
    env.sandbox.stop().await;
}

#[tokio::test]
async fn resume_replays_missed_events_in_order() {
    let env = Env::start().await;
    let (mut ws, ready) = env.session(ADA, ALL).await;
    let session_id = ready["d"]["session_id"].as_str().unwrap().to_string();
    env.sb.say("general", "alice", "seen").await;
    ws.message().await;
    let last = ws.seq;
    drop(ws);

    for i in 0..3 {
        env.sb.say("general", "alice", &format!("missed {i}")).await;
    }
    let mut ws = env.connect().await;
    ws.resume(ADA, &session_id, last).await;
    for i in 0..3 {
        let v = ws.dispatch("MESSAGE_CREATE").await;
        assert_eq!(v["s"], last + 1 + i, "{v}");
        assert_eq!(v["d"]["content"], format!("missed {i}"));
    }
    let resumed = ws.dispatch("RESUMED").await;
    assert_eq!(resumed["s"], last + 4);
    // Live again on the new connection.
    env.sb.say("general", "alice", "live").await;
    let v = ws.dispatch("MESSAGE_CREATE").await;
    assert_eq!(
        (v["s"].as_u64(), v["d"]["content"].as_str()),
        (Some(last + 5), Some("live"))
    );
    env.sandbox.stop().await;
}

#[tokio::test]
async fn resume_with_unknown_session_is_invalid_and_identify_still_works() {
    let env = Env::start().await;
    let mut ws = env.connect().await;
    ws.resume(ADA, "no-such-session", 3).await;
    let v = ws.payload().await;
    assert_eq!((v["op"].as_u64(), v["d"].as_bool()), (Some(9), Some(false)), "{v}");
    // A fresh IDENTIFY is what Discord asks for next.
    ws.identify(ADA, ALL).await;
    ws.dispatch("READY").await;

    // Someone else's session with the wrong token is just as unknown.
    let (_bea, ready) = env.session(BEA, ALL).await;
    let mut ws = env.connect().await;
    ws.resume(ADA, ready["d"]["session_id"].as_str().unwrap(), 1).await;
    let v = ws.payload().await;
    assert_eq!((v["op"].as_u64(), v["d"].as_bool()), (Some(9), Some(false)), "{v}");
    env.sandbox.stop().await;
}

#[tokio::test]
async fn fault_invalid_session_forgets_the_session() {
    let env = Env::start().await;
    let (mut ws, ready) = env.session(ADA, ALL).await;
    let session_id = ready["d"]["session_id"].as_str().unwrap().to_string();
    let seq = ws.seq;
    let r = env
        .sb
        .faults(json!({"gateway": {"bot": "Ada", "action": "invalid_session"}}))
        .await;
    assert_eq!(r["gateway_sessions_affected"], 1);
    let v = ws.payload().await;
    assert_eq!((v["op"].as_u64(), v["d"].as_bool()), (Some(9), Some(false)), "{v}");

    // The session is gone: a RESUME is refused...
    let mut ws2 = env.connect().await;
    ws2.resume(ADA, &session_id, seq).await;
    let v = ws2.payload().await;
    assert_eq!((v["op"].as_u64(), v["d"].as_bool()), (Some(9), Some(false)), "{v}");
    // ...and a fresh IDENTIFY (on the invalidated connection, too) starts a new one.
    ws.identify(ADA, ALL).await;
    let again = ws.dispatch("READY").await;
    assert_ne!(again["d"]["session_id"], session_id.as_str());
    assert_eq!(again["s"], 1);
    env.sandbox.stop().await;
}

#[tokio::test]
async fn fault_reconnect_sends_op7_and_the_session_resumes() {
    let env = Env::start().await;
    let (mut ws, ready) = env.session(ADA, ALL).await;
    let session_id = ready["d"]["session_id"].as_str().unwrap().to_string();
    let r = env
        .sb
        .faults(json!({"gateway": {"bot": "Ada", "action": "reconnect"}}))
        .await;
    assert_eq!(r["gateway_sessions_affected"], 1);
    let v = ws.payload().await;
    assert_eq!(v["op"], 7, "{v}");
    let seq = ws.seq;
    drop(ws);
    let mut ws = env.connect().await;
    ws.resume(ADA, &session_id, seq).await;
    assert_eq!(ws.dispatch("RESUMED").await["s"], seq + 1);
    env.sandbox.stop().await;
}

#[tokio::test]
async fn fault_close_sends_4000_and_the_session_resumes() {
    let env = Env::start().await;
    let (mut ws, ready) = env.session(ADA, ALL).await;
    let session_id = ready["d"]["session_id"].as_str().unwrap().to_string();
    env.sb
        .faults(json!({"gateway": {"bot": "Ada", "action": "close"}}))
        .await;
    assert_eq!(ws.close_code().await, Some(4000));
    let seq = ws.seq;
    env.sb.say("random", "alice", "while you were away").await;
    let mut ws = env.connect().await;
    ws.resume(ADA, &session_id, seq).await;
    assert_eq!(ws.message().await["content"], "while you were away");
    ws.dispatch("RESUMED").await;
    env.sandbox.stop().await;
}

#[tokio::test]
async fn closing_with_1000_or_1001_logs_off_and_other_closes_stay_resumable() {
    use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
    use tokio_tungstenite::tungstenite::protocol::CloseFrame;
    let env = Env::start().await;
    let ada: u64 = env.id("users", "Ada").await.parse().unwrap();
    for (code, resumable) in [(1000, false), (1001, false), (4000, true), (4009, true)] {
        let (mut ws, ready) = env.session(ADA, ALL).await;
        let session_id = ready["d"]["session_id"].as_str().unwrap().to_string();
        let seq = ws.seq;
        ws.stream
            .close(Some(CloseFrame {
                code: CloseCode::from(code),
                reason: "".into(),
            }))
            .await
            .unwrap();
        // The server has dealt with the close once Ada has no connection left.
        wait_for(&format!("Ada disconnected after close {code}"), || async {
            (!env.sandbox.shared().gateway.connected_bots().contains(&ada)).then_some(())
        })
        .await;
        let mut ws = env.connect().await;
        ws.resume(ADA, &session_id, seq).await;
        let v = ws.payload().await;
        if resumable {
            assert_eq!(v["t"], "RESUMED", "close {code} must leave the session resumable: {v}");
        } else {
            assert_eq!(
                (v["op"].as_u64(), v["d"].as_bool()),
                (Some(9), Some(false)),
                "close {code} logs off: RESUME must be refused: {v}"
            );
        }
        drop(ws);
        wait_for(&format!("Ada gone after round {code}"), || async {
            (!env.sandbox.shared().gateway.connected_bots().contains(&ada)).then_some(())
        })
        .await;
    }
    env.sandbox.stop().await;
}

#[tokio::test]
async fn fault_refuse_ms_refuses_identify_until_it_expires() {
    let env = Env::start().await;
    let (mut ws, _) = env.session(ADA, ALL).await;
    env.sb
        .faults(json!({"gateway": {"bot": "Ada", "action": "close", "refuse_ms": 3000}}))
        .await;
    assert_eq!(ws.close_code().await, Some(4000));
    let mut refused = env.connect().await;
    refused.identify(ADA, ALL).await;
    assert_eq!(refused.close_code().await, Some(4000));
    // Bea is not refused.
    env.session(BEA, ALL).await;
    // Once the refusal expires, Ada gets in again.
    wait_for("Ada to be let back in", || async {
        let mut ws = env.connect().await;
        ws.identify(ADA, ALL).await;
        match ws.frame().await {
            Frame::Payload(v) if v["t"] == "READY" => Some(()),
            Frame::Close(Some(4000)) => None,
            other => panic!("unexpected {other:?}"),
        }
    })
    .await;
    env.sandbox.stop().await;
}

#[tokio::test]
async fn fault_for_an_unknown_bot_is_refused() {
    let env = Env::start().await;
    let r = env
        .control_post("/faults", r#"{"gateway":{"bot":"alice","action":"close"}}"#)
        .await;
    assert!(r.expect(400)["errors"]["gateway"]["bot"].is_object(), "{}", r.body);
    env.sandbox.stop().await;
}

// ---- REST ----

#[tokio::test]
async fn rest_requires_a_bot_token() {
    let env = Env::start().await;
    let unauthorized = json!({"message": "401: Unauthorized", "code": 0});
    for token in [None, Some("wrong"), Some("")] {
        let r = env.api(Method::GET, "/users/@me", token, None).await;
        assert_eq!(r.expect(401), &unauthorized, "token {token:?}");
    }
    let general = env.id("channels", "general").await;
    let r = env
        .api(
            Method::POST,
            &format!("/channels/{general}/messages"),
            None,
            Some(json!({"content": "x"})),
        )
        .await;
    assert_eq!(r.expect(401), &unauthorized);
    let bad = env
        .http
        .get(format!("{}/api/v10/users/@me", env.sandbox.url()))
        .header("Authorization", "Bearer x");
    assert_eq!(Resp::read(bad.send().await.unwrap()).await.expect(401), &unauthorized);
    assert!(env.sb.messages("general").await.is_empty());
    env.sandbox.stop().await;
}

#[tokio::test]
async fn rest_gateway_endpoints_and_session_start_limit() {
    let env = Env::start().await;
    let ws_url = format!("ws://{}/gateway", env.sandbox.addr());
    assert_eq!(
        env.api(Method::GET, "/gateway", None, None).await.expect(200)["url"],
        ws_url.as_str()
    );
    let before = env.get("/gateway/bot").await;
    let b = before.expect(200);
    assert_eq!(b["url"], ws_url.as_str());
    assert!(b["shards"].as_u64().is_some_and(|s| s >= 1), "{b}");
    let limit = &b["session_start_limit"];
    let total = limit["total"].as_u64().unwrap();
    let remaining = limit["remaining"].as_u64().unwrap();
    assert!(remaining <= total && remaining > 0, "{limit}");
    assert!(limit["reset_after"].as_u64().is_some(), "{limit}");
    assert!(limit["max_concurrency"].as_u64().is_some_and(|m| m >= 1), "{limit}");
    env.api(Method::GET, "/gateway/bot", None, None).await.expect(401);

    let _session = env.session(ADA, ALL).await;
    let after = env.get("/gateway/bot").await;
    assert_eq!(after.expect(200)["session_start_limit"]["remaining"], remaining - 1);
    // Per token: Bea's budget is untouched.
    let bea = env.api(Method::GET, "/gateway/bot", Some(BEA), None).await;
    assert_eq!(bea.expect(200)["session_start_limit"]["remaining"], remaining);
    env.sandbox.stop().await;
}

#[tokio::test]
async fn rest_current_user() {
    let env = Env::start().await;
    let me = env.get("/users/@me").await;
    let me = me.expect(200);
    assert_eq!(me["id"], env.id("users", "Ada").await.as_str());
    assert_eq!(
        (me["username"].as_str(), me["bot"].as_bool()),
        (Some("Ada"), Some(true))
    );
    let _: serenity::model::user::CurrentUser = serde_json::from_value(me.clone()).unwrap();
    let alice = env.id("users", "alice").await;
    let u = env.get(&format!("/users/{alice}")).await;
    assert_eq!(
        (u.expect(200)["username"].as_str(), u.body["bot"].as_bool()),
        (Some("alice"), Some(false))
    );
    assert_eq!(env.get("/users/1234").await.expect(404)["code"], 10013);
    env.sandbox.stop().await;
}

#[tokio::test]
async fn rest_dm_channel_has_only_the_recipient_and_is_reused() {
    let env = Env::start().await;
    let alice = env.id("users", "alice").await;
    let first = env.post("/users/@me/channels", json!({"recipient_id": alice})).await;
    let c = first.expect(200);
    assert_eq!(c["type"], 1);
    let recipients = c["recipients"].as_array().unwrap();
    assert_eq!(recipients.len(), 1, "{c}");
    assert_eq!(recipients[0]["id"], alice.as_str());
    assert!(c.get("guild_id").is_none_or(Value::is_null));
    let second = env.post("/users/@me/channels", json!({"recipient_id": alice})).await;
    assert_eq!(second.expect(200)["id"], c["id"]);
    let _: serenity::model::channel::Channel = serde_json::from_value(c.clone()).unwrap();
    // The bot can post there, and alice's DM lands in the same channel.
    let dm = c["id"].as_str().unwrap();
    env.post(&format!("/channels/{dm}/messages"), json!({"content": "hello alice"}))
        .await
        .expect(200);
    assert_eq!(env.sb.dm("alice", "Ada", "hi Ada").await["channel_id"], dm);
    // Bea is not part of it.
    let r = env
        .api(Method::GET, &format!("/channels/{dm}/messages"), Some(BEA), None)
        .await;
    assert!(r.status.is_client_error(), "{}", r.status);
    let got = env.get(&format!("/channels/{dm}")).await;
    assert_eq!(got.expect(200)["recipients"], c["recipients"]);
    // No DMs with yourself or between bots, as on Discord.
    let ada = env.id("users", "Ada").await;
    let bea = env.id("users", "Bea").await;
    for id in [&ada, &bea] {
        let r = env.post("/users/@me/channels", json!({"recipient_id": id})).await;
        assert_eq!(r.expect(400)["code"], 50007);
    }
    assert_eq!(
        env.post("/users/@me/channels", json!({"recipient_id": "42"}))
            .await
            .expect(404)["code"],
        10013
    );
    // Missing recipient is a form error.
    let r = env.post("/users/@me/channels", json!({})).await;
    assert_eq!(r.expect(400)["code"], 50035);
    env.sandbox.stop().await;
}

#[tokio::test]
async fn rest_content_length_counts_characters_not_bytes() {
    let env = Env::start().await;
    let general = env.id("channels", "general").await;
    let path = format!("/channels/{general}/messages");
    let ok = env.post(&path, json!({"content": "é".repeat(2000)})).await;
    assert_eq!(ok.expect(200)["content"].as_str().unwrap().chars().count(), 2000);
    let r = env.post(&path, json!({"content": "é".repeat(2001)})).await;
    let b = r.expect(400);
    assert_eq!(b["code"], 50035, "{b}");
    assert_eq!(
        b["errors"]["content"]["_errors"][0]["code"], "BASE_TYPE_MAX_LENGTH",
        "{b}"
    );
    assert_eq!(env.sb.messages("general").await.len(), 1);
    env.sandbox.stop().await;
}

#[tokio::test]
async fn rest_empty_message_is_50006() {
    let env = Env::start().await;
    let general = env.id("channels", "general").await;
    let path = format!("/channels/{general}/messages");
    for body in [
        json!({}),
        json!({"content": ""}),
        json!({"content": null}),
        json!({"embeds": []}),
    ] {
        let r = env.post(&path, body.clone()).await;
        assert_eq!(r.expect(400)["code"], 50006, "{body}");
    }
    assert!(env.sb.messages("general").await.is_empty());
    env.sandbox.stop().await;
}

#[tokio::test]
async fn rest_malformed_bodies_are_4xx_never_5xx() {
    let env = Env::start().await;
    // About validation, not limits: more requests than one bucket holds.
    env.sb.enforce_rate_limits(false).await;
    let general = env.id("channels", "general").await;
    let path = format!("/channels/{general}/messages");
    let r = env.api_raw(Method::POST, &path, b"{\"content\": \"unterminated").await;
    assert_eq!(r.expect(400)["code"], 50109);
    assert!(r.body["message"].is_string());
    for body in [
        &b"not json"[..],
        b"[1, 2]",
        b"\"text\"",
        b"\xff\xfe",
        b"{\"content\": 5}",
        b"{\"embeds\": 3}",
        b"{\"message_reference\": 7}",
    ] {
        let r = env.api_raw(Method::POST, &path, body).await;
        assert_eq!(r.status.as_u16(), 400, "{}: {}", String::from_utf8_lossy(body), r.body);
        assert!(r.body["code"].is_u64() && r.body["message"].is_string(), "{}", r.body);
    }
    for body in [&b"{not json"[..], b"{\"recipient_id\": {}}"] {
        let r = env.api_raw(Method::POST, "/users/@me/channels", body).await;
        assert_eq!(r.status.as_u16(), 400, "{}: {}", String::from_utf8_lossy(body), r.body);
    }
    let r = env
        .api_raw(Method::POST, &format!("/channels/{general}/webhooks"), b"{oops")
        .await;
    assert_eq!(r.expect(400)["code"], 50109);
    // Errors axum raises itself are Discord-shaped JSON too.
    let r = env.api(Method::DELETE, "/users/@me", Some(ADA), None).await;
    assert_eq!(r.expect(405), &json!({"message": "405: Method Not Allowed", "code": 0}));
    assert!(env.sb.messages("general").await.is_empty());
    env.sandbox.stop().await;
}

#[tokio::test]
async fn rest_unknown_routes_and_ids_are_404_json() {
    let env = Env::start().await;
    assert_eq!(env.get("/channels/1/messages").await.expect(404)["code"], 10003);
    let general = env.id("channels", "general").await;
    assert_eq!(
        env.get(&format!("/channels/{general}/messages/1")).await.expect(404)["code"],
        10008
    );
    let r = env.get("/no/such/route").await;
    assert!(r.expect(404)["message"].is_string());
    env.sandbox.stop().await;
}

#[tokio::test]
async fn rest_reply_to_unknown_message_is_400() {
    let env = Env::start().await;
    let general = env.id("channels", "general").await;
    let path = format!("/channels/{general}/messages");
    let r = env
        .post(
            &path,
            json!({"content": "re", "message_reference": {"message_id": "12345"}}),
        )
        .await;
    assert_eq!(r.expect(400)["code"], 50035);
    assert!(r.body["errors"]["message_reference"].is_object(), "{}", r.body);
    // A message from another channel is unknown here too.
    let elsewhere = env.sb.say("random", "alice", "over here").await;
    let r = env
        .post(
            &path,
            json!({"content": "re", "message_reference": {"message_id": elsewhere["id"]}}),
        )
        .await;
    r.expect(400);
    assert!(env.sb.messages("general").await.is_empty());
    // With fail_if_not_exists: false Discord sends it as a plain message instead.
    let body =
        json!({"content": "re anyway", "message_reference": {"message_id": "12345", "fail_if_not_exists": false}});
    let m = env.post(&path, body).await;
    assert_eq!(m.expect(200)["type"], 0, "{}", m.body);
    assert!(m.body.get("message_reference").is_none_or(Value::is_null), "{}", m.body);
    assert_eq!(env.sb.messages("general").await.len(), 1);
    env.sandbox.stop().await;
}

#[tokio::test]
async fn rest_reply_carries_referenced_message_and_type_19() {
    let env = Env::start().await;
    let general = env.id("channels", "general").await;
    let asked = env.sb.say("general", "alice", "question?").await;
    let asked_id = asked["id"].as_str().unwrap();
    let r = env
        .post(
            &format!("/channels/{general}/messages"),
            json!({"content": "answer", "message_reference": {"message_id": asked_id, "fail_if_not_exists": true}}),
        )
        .await;
    let m = r.expect(200);
    assert_eq!(m["type"], 19);
    assert_eq!(m["message_reference"]["message_id"], asked_id);
    assert_eq!(m["message_reference"]["channel_id"], general.as_str());
    assert_eq!(m["referenced_message"]["id"], asked_id);
    assert_eq!(m["referenced_message"]["content"], "question?");
    let parsed: serenity::model::channel::Message = serde_json::from_value(m.clone()).unwrap();
    assert_eq!(parsed.referenced_message.unwrap().id.to_string(), asked_id);
    // A plain message is type 0 with no reference.
    let plain = env
        .post(&format!("/channels/{general}/messages"), json!({"content": "plain"}))
        .await;
    assert_eq!(plain.expect(200)["type"], 0);
    assert!(plain.body.get("referenced_message").is_none_or(Value::is_null));
    env.sandbox.stop().await;
}

#[tokio::test]
async fn rest_enforce_nonce_creates_one_message() {
    let env = Env::start().await;
    let general = env.id("channels", "general").await;
    let (mut bea, _) = env.session(BEA, ALL).await;
    let path = format!("/channels/{general}/messages");
    let body = json!({"content": "only once", "nonce": "abc123", "enforce_nonce": true});
    let first = env.post(&path, body.clone()).await;
    let second = env.post(&path, body).await;
    assert_eq!(first.expect(200)["id"], second.expect(200)["id"]);
    assert_eq!(first.body["nonce"], "abc123");
    assert_eq!(env.sb.messages("general").await.len(), 1);
    // Without enforce_nonce the same nonce creates another message.
    env.post(&path, json!({"content": "again", "nonce": "abc123"}))
        .await
        .expect(200);
    assert_eq!(env.sb.messages("general").await.len(), 2);
    // Bea got exactly one MESSAGE_CREATE for the deduplicated send.
    assert_eq!(bea.message().await["content"], "only once");
    assert_eq!(bea.message().await["content"], "again");
    env.sandbox.stop().await;
}

#[tokio::test]
async fn rest_allowed_mentions_parse_empty_pings_nobody() {
    let env = Env::start().await;
    let general = env.id("channels", "general").await;
    let alice = env.id("users", "alice").await;
    let guild = env.sb.state().await["guilds"][0]["id"].as_str().unwrap().to_string();
    let content = format!("@everyone @here <@&{guild}> <@{alice}>");
    let path = format!("/channels/{general}/messages");
    let r = env
        .post(&path, json!({"content": content, "allowed_mentions": {"parse": []}}))
        .await;
    let m = r.expect(200);
    assert_eq!(m["content"], content.as_str());
    assert_eq!(
        (m["mentions"].clone(), m["mention_roles"].clone()),
        (json!([]), json!([])),
        "{m}"
    );
    assert_eq!(m["mention_everyone"], false);
    let stored = env.sb.messages("general").await;
    assert_eq!(stored[0]["mentions"], json!([]));
    assert_eq!(stored[0]["mention_everyone"], false);
    assert_eq!(stored[0]["allowed_mentions"], json!({"parse": []}));
    // Without allowed_mentions everything parses (the assertion above can fail).
    let m = env.post(&path, json!({"content": content})).await;
    let m = m.expect(200);
    assert_eq!(m["mentions"][0]["id"], alice.as_str());
    assert_eq!(m["mention_roles"], json!([guild]));
    assert_eq!(m["mention_everyone"], true);
    env.sandbox.stop().await;
}

#[tokio::test]
async fn rest_ratelimit_headers_on_every_response() {
    let env = Env::start().await;
    let general = env.id("channels", "general").await;
    let responses = [
        env.get("/users/@me").await,
        env.api(Method::GET, "/users/@me", None, None).await,
        env.api(Method::GET, "/gateway", None, None).await,
        env.post(&format!("/channels/{general}/messages"), json!({"content": "hi"}))
            .await,
        env.post(&format!("/channels/{general}/messages"), json!({})).await,
        env.post(&format!("/channels/{general}/typing"), json!({})).await,
        env.get("/channels/1").await,
        env.get("/nope").await,
    ];
    for r in &responses {
        for h in ["x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset-after"] {
            let v = r.header(h).unwrap_or_else(|| panic!("{} lacks {h}", r.status));
            assert!(v.parse::<f64>().is_ok(), "{h}: {v}");
        }
        let reset: f64 = r.header("x-ratelimit-reset").unwrap().parse().unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert!(reset > now - 5.0 && reset < now + 3600.0, "reset {reset} vs now {now}");
        assert!(
            r.header("x-ratelimit-bucket").is_some_and(|b| !b.is_empty()),
            "{} lacks a bucket",
            r.status
        );
    }
    env.sandbox.stop().await;
}

#[tokio::test]
async fn rest_history_pages_like_discord() {
    let env = Env::start().await;
    let general = env.id("channels", "general").await;
    let path = format!("/channels/{general}/messages");
    let mut ids = Vec::new();
    for i in 0..10 {
        ids.push(
            env.sb.say("general", "alice", &format!("m{i}")).await["id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    let page = |r: Resp| -> Vec<String> {
        r.expect(200)
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap().to_string())
            .collect()
    };
    let pick = |is: &[usize]| is.iter().map(|&i| ids[i].clone()).collect::<Vec<_>>();
    let all = page(env.get(&path).await);
    assert_eq!(
        all,
        ids.iter().rev().cloned().collect::<Vec<_>>(),
        "default: everything, newest first"
    );
    assert_eq!(page(env.get(&format!("{path}?limit=3")).await), pick(&[9, 8, 7]));
    assert_eq!(
        page(env.get(&format!("{path}?before={}&limit=2", ids[5])).await),
        pick(&[4, 3])
    );
    assert_eq!(
        page(env.get(&format!("{path}?after={}&limit=2", ids[5])).await),
        pick(&[7, 6])
    );
    assert_eq!(page(env.get(&format!("{path}?after={}", ids[8])).await), pick(&[9]));
    assert_eq!(
        page(env.get(&format!("{path}?around={}&limit=3", ids[5])).await),
        pick(&[6, 5, 4])
    );
    assert_eq!(
        page(env.get(&format!("{path}?before={}", ids[0])).await),
        Vec::<String>::new()
    );
    for (bad, field, code) in [
        ("limit=0", "limit", "NUMBER_TYPE_MIN"),
        ("limit=101", "limit", "NUMBER_TYPE_MAX"),
        ("limit=abc", "limit", "NUMBER_TYPE_COERCE"),
        ("before=xyz", "before", "NUMBER_TYPE_COERCE"),
    ] {
        let r = env.get(&format!("{path}?{bad}")).await;
        assert_eq!(r.expect(400)["code"], 50035, "{bad}");
        assert_eq!(r.body["errors"][field]["_errors"][0]["code"], code, "{bad}: {}", r.body);
    }
    env.sandbox.stop().await;
}

#[tokio::test]
async fn rest_slowmode_is_429_20016_per_author() {
    let mut spec = WorldSpec::default();
    spec.guilds[0].channels[0].slowmode = 3600;
    spec.guilds[0].channels[1].slowmode = 1;
    let env = Env::with(spec).await;
    let general = env.id("channels", "general").await;
    let random = env.id("channels", "random").await;
    let path = format!("/channels/{general}/messages");
    assert_eq!(
        env.get(&format!("/channels/{general}")).await.expect(200)["rate_limit_per_user"],
        3600
    );
    let first = env
        .post(&path, json!({"content": "one", "nonce": "n1", "enforce_nonce": true}))
        .await;
    first.expect(200);
    let r = env.post(&path, json!({"content": "two"})).await;
    let b = r.expect(429);
    assert_eq!(
        (b["code"].as_u64(), b["global"].as_bool()),
        (Some(20016), Some(false)),
        "{b}"
    );
    let retry = b["retry_after"].as_f64().unwrap();
    assert!(retry > 3500.0 && retry <= 3600.0, "{retry}");
    assert!(r.header("retry-after").is_some());
    // Retrying the first send (same nonce) still returns it rather than failing.
    let again = env
        .post(&path, json!({"content": "one", "nonce": "n1", "enforce_nonce": true}))
        .await;
    assert_eq!(again.expect(200)["id"], first.body["id"]);
    // Per author: Bea and webhooks are not held back.
    env.api(Method::POST, &path, Some(BEA), Some(json!({"content": "bea"})))
        .await
        .expect(200);
    let hook = env
        .post(&format!("/channels/{general}/webhooks"), json!({"name": "hook"}))
        .await;
    let url = format!(
        "/webhooks/{}/{}?wait=true",
        hook.body["id"].as_str().unwrap(),
        hook.body["token"].as_str().unwrap()
    );
    env.api(Method::POST, &url, None, Some(json!({"content": "hooked"})))
        .await
        .expect(200);
    env.api(Method::POST, &url, None, Some(json!({"content": "hooked again"})))
        .await
        .expect(200);
    assert_eq!(env.sb.messages("general").await.len(), 4);

    // Once the window has passed, the author may post again.
    let path = format!("/channels/{random}/messages");
    env.post(&path, json!({"content": "first"})).await.expect(200);
    wait_for("slowmode in #random to pass", || async {
        let r = env.post(&path, json!({"content": "second"})).await;
        match r.status.as_u16() {
            200 => Some(()),
            429 => None,
            s => panic!("unexpected {s}: {}", r.body),
        }
    })
    .await;
    env.sandbox.stop().await;
}

#[tokio::test]
async fn rest_typing_is_204() {
    let env = Env::start().await;
    let general = env.id("channels", "general").await;
    let r = env
        .api(Method::POST, &format!("/channels/{general}/typing"), Some(ADA), None)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(r.body, Value::Null);
    assert_eq!(
        env.api(Method::POST, "/channels/1/typing", Some(ADA), None)
            .await
            .expect(404)["code"],
        10003
    );
    env.sandbox.stop().await;
}

#[tokio::test]
async fn rest_webhooks_create_and_execute() {
    let env = Env::start().await;
    // About validation, not limits: more requests than one bucket holds.
    env.sb.enforce_rate_limits(false).await;
    let general = env.id("channels", "general").await;
    let (mut bea, _) = env.session(BEA, ALL).await;
    let hook = env
        .post(&format!("/channels/{general}/webhooks"), json!({"name": "hook"}))
        .await;
    let hook = hook.expect(200).clone();
    assert_eq!(
        (hook["name"].as_str(), hook["channel_id"].as_str()),
        (Some("hook"), Some(general.as_str()))
    );
    let (id, token) = (hook["id"].as_str().unwrap(), hook["token"].as_str().unwrap());
    let _: serenity::model::webhook::Webhook = serde_json::from_value(hook.clone()).unwrap();

    let exec = |query: &str, token: &str, body: Value| {
        let url = format!("{}/api/v10/webhooks/{id}/{token}{query}", env.sandbox.url());
        let req = env.http.post(url).json(&body);
        async move { Resp::read(req.send().await.unwrap()).await }
    };
    let avatar = "https://example.com/persona.png";
    let r = exec(
        "?wait=true",
        token,
        json!({"content": "in character", "username": "Persona", "avatar_url": avatar}),
    )
    .await;
    let m = r.expect(200);
    assert_eq!(m["author"]["username"], "Persona");
    assert_eq!(m["author"]["bot"], true);
    assert_eq!(m["webhook_id"], id);
    assert_eq!(m["author"]["id"], id);
    assert_eq!(m["channel_id"], general.as_str());
    let _: serenity::model::channel::Message = serde_json::from_value(m.clone()).unwrap();
    let stored = env.sb.messages("general").await;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0]["author"]["avatar_url"], avatar);
    let seen = bea.message().await;
    assert_eq!(
        (seen["webhook_id"].as_str(), seen["content"].as_str()),
        (Some(id), Some("in character"))
    );

    // Wrong token: Discord's 401 "Invalid Webhook Token", nothing posted.
    let r = exec("?wait=true", "wrongtoken", json!({"content": "x"})).await;
    assert_eq!(r.expect(401)["code"], 50027);
    // Without wait: 204 and no body, but the message is posted.
    let r = exec("", token, json!({"content": "fire and forget"})).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let stored = env.sb.messages("general").await;
    assert_eq!(stored.len(), 2);
    assert_eq!(
        stored[1]["author"]["username"], "hook",
        "the webhook's own name by default"
    );
    // Query booleans take Discord's spellings; anything else is a form error, not a post.
    for wait in ["1", "True"] {
        let r = exec(
            &format!("?wait={wait}"),
            token,
            json!({"content": format!("wait={wait}")}),
        )
        .await;
        assert_eq!(r.expect(200)["content"], format!("wait={wait}"));
    }
    let r = exec("?wait=maybe", token, json!({"content": "x"})).await;
    assert_eq!(r.expect(400)["code"], 50035);
    assert_eq!(env.sb.messages("general").await.len(), 4);
    // Webhooks need bot auth to create.
    let r = env
        .api(
            Method::POST,
            &format!("/channels/{general}/webhooks"),
            None,
            Some(json!({"name": "h"})),
        )
        .await;
    r.expect(401);
    env.sandbox.stop().await;
}

#[tokio::test]
async fn fault_rest_429_then_success() {
    let env = Env::start().await;
    env.sb
        .faults(json!({"rest": {"status": 429, "count": 2, "retry_after": 0.5}}))
        .await;
    for _ in 0..2 {
        let r = env.get("/users/@me").await;
        let b = r.expect(429);
        assert_eq!(b["retry_after"], 0.5);
        assert_eq!(b["global"], false);
        let retry: f64 = r.header("retry-after").expect("Retry-After header").parse().unwrap();
        assert!(retry >= 0.5, "{retry}");
        assert_eq!(r.header("x-ratelimit-remaining"), Some("0"));
        assert!(r.header("x-ratelimit-scope").is_some());
    }
    env.get("/users/@me").await.expect(200);
    env.sandbox.stop().await;
}

#[tokio::test]
async fn fault_rest_500_only_on_matching_paths() {
    let env = Env::start().await;
    let general = env.id("channels", "general").await;
    env.sb
        .faults(json!({"rest": {"status": 500, "count": 1, "path_contains": "/messages"}}))
        .await;
    env.get("/users/@me").await.expect(200);
    env.get(&format!("/channels/{general}")).await.expect(200);
    let path = format!("/channels/{general}/messages");
    env.post(&path, json!({"content": "lost"})).await.expect(500);
    env.post(&path, json!({"content": "kept"})).await.expect(200);
    let stored = env.sb.messages("general").await;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0]["content"], "kept");
    // `clear` drops pending faults.
    env.sb.faults(json!({"rest": {"status": 503, "count": 5}})).await;
    env.sb.faults(json!({"clear": true})).await;
    env.get("/users/@me").await.expect(200);
    env.sandbox.stop().await;
}

// ---- control API ----

#[tokio::test]
async fn control_request_log_has_full_paths_and_statuses() {
    let env = Env::start().await;
    let ada_id = env.id("users", "Ada").await;
    let general = env.id("channels", "general").await;
    env.get("/users/@me").await.expect(200);
    env.api(Method::GET, "/users/@me", None, None).await.expect(401);
    env.get(&format!("/channels/{general}/messages?limit=5"))
        .await
        .expect(200);
    let log = wait_for("three logged requests", || async {
        let log = env.sb.requests().await;
        (log.len() >= 3).then_some(log)
    })
    .await;
    assert_eq!(log.len(), 3, "{log:#?}");
    assert_eq!(
        (log[0]["method"].as_str(), log[0]["path"].as_str()),
        (Some("GET"), Some("/api/v10/users/@me"))
    );
    assert_eq!(
        (log[0]["status"].as_u64(), log[0]["bot"].as_str()),
        (Some(200), Some(ada_id.as_str()))
    );
    assert_eq!(
        (log[1]["status"].as_u64(), log[1]["bot"].clone()),
        (Some(401), Value::Null)
    );
    assert_eq!(log[2]["path"], format!("/api/v10/channels/{general}/messages?limit=5"));
    // Control calls are not REST calls.
    assert!(log.iter().all(|r| r["path"].as_str().unwrap().starts_with("/api/v10/")));
    env.sandbox.stop().await;
}

#[tokio::test]
async fn control_post_errors_are_discord_shaped() {
    let env = Env::start().await;
    let r = env.control_post("/messages", "{not json").await;
    let b = r.expect(400);
    assert_eq!(b["code"], 50109);
    assert!(b["message"].is_string());
    let r = env
        .control_post(
            "/messages",
            r#"{"channel": "nowhere", "author": "alice", "content": "x"}"#,
        )
        .await;
    assert!(r.expect(400)["errors"]["channel"].is_object(), "{}", r.body);
    let r = env
        .control_post(
            "/messages",
            r#"{"channel": "general", "author": "nobody", "content": "x"}"#,
        )
        .await;
    assert!(r.expect(400)["errors"]["author"].is_object(), "{}", r.body);
    let r = env
        .control_post(
            "/messages",
            r#"{"channel": "general", "author": "alice", "content": ""}"#,
        )
        .await;
    assert_eq!(r.expect(400)["code"], 50006);
    let r = env
        .control_post(
            "/messages",
            r#"{"channel": "general", "author": "alice", "colour": "x"}"#,
        )
        .await;
    assert_eq!(r.expect(400)["code"], 50035);
    assert!(env.sb.messages("general").await.is_empty());
    // Names in <@Name> become IDs.
    let ada = env.id("users", "Ada").await;
    let m = env.sb.say("general", "alice", "<@Ada> and <@nobody>").await;
    assert_eq!(m["content"], format!("<@{ada}> and <@nobody>"));
    assert_eq!(m["mentions"].as_array().unwrap().len(), 1);
    env.sandbox.stop().await;
}

#[tokio::test]
async fn control_burst_dispatches_in_order_and_names_a_bad_message() {
    let env = Env::start().await;
    let (mut ws, _) = env.session(ADA, ALL).await;
    let r = env
        .control_post(
            "/burst",
            r#"{"messages": [{"channel": "general", "author": "alice", "content": "one"},
                             {"channel": "general", "author": "bob", "content": "two"},
                             {"channel": "general", "author": "alice", "content": "three"}]}"#,
        )
        .await;
    let posted = r.expect(200).as_array().unwrap().clone();
    assert_eq!(posted.len(), 3);
    for (want, m) in ["one", "two", "three"].iter().zip(&posted) {
        let d = ws.message().await;
        assert_eq!(d["content"], *want);
        assert_eq!(d["id"], m["id"]);
    }
    let r = env
        .control_post(
            "/burst",
            r#"{"messages": [{"channel": "general", "author": "alice", "content": "four"},
                             {"channel": "general", "author": "nobody", "content": "five"}]}"#,
        )
        .await;
    let b = r.expect(400);
    assert!(b["message"].as_str().unwrap().starts_with("messages[1]: "), "{b}");
    // The first message stays posted, as the error's index says.
    let contents: Vec<Value> = env
        .sb
        .messages("general")
        .await
        .iter()
        .map(|m| m["content"].clone())
        .collect();
    assert_eq!(contents, ["one", "two", "three", "four"]);
    env.sandbox.stop().await;
}

#[tokio::test]
async fn control_state_reports_connected_bots() {
    let env = Env::start().await;
    let ada = env.id("users", "Ada").await;
    assert_eq!(env.sb.state().await["connected_bots"], json!([]));
    let (ws, _) = env.session(ADA, ALL).await;
    assert_eq!(env.sb.state().await["connected_bots"], json!([ada]));
    drop(ws);
    wait_for("Ada's connection to be noticed as gone", || async {
        (env.sb.state().await["connected_bots"] == json!([])).then_some(())
    })
    .await;
    env.sandbox.stop().await;
}
