//! Shared harness for the sandbox's REST tests: a sandbox on an ephemeral port with two bots,
//! REST calls with `reqwest`, and a raw gateway session that waits for a named dispatch with a
//! deadline (never a sleep).
#![allow(dead_code)]

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use troupe_sandbox::spec::WorldSpec;
use troupe_sandbox::Sandbox;

/// How long a condition may take before a test fails.
pub const DEADLINE: Duration = Duration::from_secs(20);
/// Ada's bot token.
pub const ADA: &str = "sandbox.ada";
/// Bea's bot token.
pub const BEA: &str = "sandbox.bea";
/// Every intent the sandbox honours, reactions included.
pub const ALL_INTENTS: u64 = (1 << 0) | (1 << 9) | (1 << 10) | (1 << 12) | (1 << 13) | (1 << 15);

/// A running sandbox and a client for it.
pub struct Env {
    pub sandbox: Sandbox,
    pub http: reqwest::Client,
}

impl Env {
    /// The default world plus bots Ada and Bea.
    pub async fn start() -> Self {
        let bots = [
            ("Ada".to_string(), ADA.to_string()),
            ("Bea".to_string(), BEA.to_string()),
        ];
        let sandbox = Sandbox::start(&WorldSpec::default(), &bots, "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        // These tests check routes, shapes and errors, several requests a second in one channel;
        // Discord's rate limits (which count refused requests too) are tested in troupe's
        // tests/rate_limits.rs.
        sandbox.shared().ratelimits.lock().unwrap().set_enforced(false);
        Self {
            sandbox,
            http: reqwest::Client::new(),
        }
    }

    /// A user's ID by name.
    pub fn user(&self, name: &str) -> u64 {
        self.sandbox
            .shared()
            .world
            .lock()
            .unwrap()
            .user_by_name(name)
            .unwrap()
            .id
    }

    /// A channel's ID by name.
    pub fn channel(&self, name: &str) -> u64 {
        self.sandbox
            .shared()
            .world
            .lock()
            .unwrap()
            .channel_by_name(name)
            .unwrap()
            .id
    }

    /// The first guild's ID.
    pub fn guild(&self) -> u64 {
        self.sandbox.shared().world.lock().unwrap().guilds()[0].id
    }

    /// `http://ADDR/api/v10{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("{}/api/v10{path}", self.sandbox.url())
    }

    /// A REST call as the bot with `token` (or none), with an optional JSON body.
    pub async fn api(&self, method: Method, path: &str, token: Option<&str>, body: Option<Value>) -> Resp {
        let mut req = self.http.request(method, self.url(path));
        if let Some(t) = token {
            req = req.header("Authorization", format!("Bot {t}"));
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        Resp::read(req.send().await.unwrap()).await
    }

    /// Posts `content` in `channel` as Ada; returns the message ID.
    pub async fn post(&self, channel: u64, token: &str, content: &str) -> u64 {
        let r = self
            .api(
                Method::POST,
                &format!("/channels/{channel}/messages"),
                Some(token),
                Some(json!({"content": content})),
            )
            .await;
        id(&r.expect(200)["id"])
    }

    /// A gateway session for `token` with `intents`, past READY and GUILD_CREATE.
    pub async fn session(&self, token: &str, intents: u64) -> Ws {
        let url = format!("ws://{}/gateway?v=10&encoding=json", self.sandbox.addr());
        let (stream, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        let mut ws = Ws { stream };
        let hello = ws.payload().await;
        assert_eq!(hello["op"], 10, "{hello}");
        let d =
            json!({"token": token, "intents": intents, "properties": {"os": "linux", "browser": "t", "device": "t"}});
        ws.stream
            .send(WsMessage::text(json!({"op": 2, "d": d}).to_string()))
            .await
            .unwrap();
        ws.dispatch("READY").await;
        if intents & 1 != 0 {
            ws.dispatch("GUILD_CREATE").await;
        }
        ws
    }
}

/// A snowflake string as a number.
pub fn id(v: &Value) -> u64 {
    v.as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an ID: {v}"))
}

/// A REST response with a JSON body (`Null` when empty).
pub struct Resp {
    pub status: StatusCode,
    pub body: Value,
}

impl Resp {
    /// Reads a response; a non-empty body must be JSON.
    pub async fn read(r: reqwest::Response) -> Self {
        let status = r.status();
        let bytes = r.bytes().await.unwrap();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|e| panic!("{status}: body is not JSON ({e}): {}", String::from_utf8_lossy(&bytes)))
        };
        Self { status, body }
    }

    /// Asserts the status; returns the body.
    #[track_caller]
    pub fn expect(&self, status: u16) -> &Value {
        assert_eq!(self.status.as_u16(), status, "unexpected status; body {}", self.body);
        &self.body
    }

    /// Asserts Discord's error: status and `code`.
    #[track_caller]
    pub fn expect_error(&self, status: u16, code: u64) -> &Value {
        self.expect(status);
        assert_eq!(self.body["code"].as_u64(), Some(code), "{}", self.body);
        assert!(self.body["message"].is_string(), "{}", self.body);
        &self.body
    }
}

/// A raw gateway connection.
pub struct Ws {
    stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl Ws {
    async fn payload(&mut self) -> Value {
        loop {
            let next = tokio::time::timeout(DEADLINE, self.stream.next())
                .await
                .unwrap_or_else(|_| panic!("no gateway frame within {DEADLINE:?}"));
            match next {
                Some(Ok(WsMessage::Text(t))) => return serde_json::from_str(t.as_str()).unwrap(),
                Some(Ok(WsMessage::Close(c))) => panic!("gateway closed: {c:?}"),
                Some(Ok(_)) => continue,
                other => panic!("gateway stream ended: {other:?}"),
            }
        }
    }

    /// The next dispatch named `t` (others are skipped); its `d`.
    pub async fn dispatch(&mut self, t: &str) -> Value {
        loop {
            let p = self.payload().await;
            if p["op"] == 0 && p["t"] == t {
                return p["d"].clone();
            }
        }
    }

    /// The next dispatch of any of `names`: `(t, d)`. Proves an earlier event was not sent when
    /// a later barrier arrives first (one session's dispatches are ordered).
    pub async fn next_of(&mut self, names: &[&str]) -> (String, Value) {
        loop {
            let p = self.payload().await;
            if let Some(t) = p["t"].as_str().filter(|t| p["op"] == 0 && names.contains(t)) {
                return (t.to_string(), p["d"].clone());
            }
        }
    }
}
