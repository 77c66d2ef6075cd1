//! The stage a scenario runs on: a sandbox in the harness's own process (its clock times every
//! reply, see `troupe::sandbox::timing`) with a generated world, and the control API through
//! which messages are posted, as any tester would post them.

use std::time::{Duration, Instant};

use futures::stream::{self, StreamExt};
use serde_json::{json, Value};
use troupe::sandbox::spec::{ChannelSpec, GuildSpec, WorldSpec};
use troupe::sandbox::timing::ReplyTiming;
use troupe::sandbox::Sandbox;

use crate::{BenchError, Context, Result};

/// Name of the `i`th channel of a stage.
pub fn channel(i: usize) -> String {
    format!("c{i:03}")
}

/// Name of the `i`th human of a stage.
pub fn human(i: usize) -> String {
    format!("h{i:03}")
}

/// A message to post through the control API.
#[derive(Debug, Clone)]
pub struct Post {
    /// Channel name.
    pub channel: String,
    /// Human author's name.
    pub author: String,
    /// Content; `<@Name>` is resolved by the sandbox.
    pub content: String,
}

/// A running sandbox and a client for it.
pub struct Stage {
    sandbox: Sandbox,
    http: reqwest::Client,
}

impl Stage {
    /// A sandbox with one guild of `channels` channels and `humans` humans, on a free port.
    pub async fn start(channels: usize, humans: usize) -> Result<Stage> {
        let spec = WorldSpec {
            guilds: vec![GuildSpec {
                name: "Bench".into(),
                channels: (0..channels).map(|i| ChannelSpec::named(&channel(i))).collect(),
            }],
            humans: (0..humans.max(1)).map(human).collect(),
            ..WorldSpec::default()
        };
        let sandbox = Sandbox::start(&spec, &[], "127.0.0.1:0".parse().expect("address"))
            .await
            .context("starting the sandbox")?;
        // The benchmarks measure troupe's own overhead, not Discord's 5 messages per 5 s per
        // channel, which both troupe and the baseline would wait for.
        sandbox
            .shared()
            .ratelimits
            .lock()
            .expect("rate limits lock")
            .set_enforced(false);
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(256)
            .build()
            .context("building the HTTP client")?;
        Ok(Stage { sandbox, http })
    }

    /// `http://ADDR` of the sandbox.
    pub fn url(&self) -> String {
        self.sandbox.url()
    }

    /// Registers bot users (as `POST /sandbox/bots`); their tokens are `sandbox.<name>`.
    pub async fn add_bots(&self, names: &[String]) -> Result<Vec<String>> {
        let mut tokens = Vec::new();
        for name in names {
            let v: Value = self
                .http
                .post(format!("{}/sandbox/bots", self.url()))
                .json(&json!({"name": name}))
                .send()
                .await
                .and_then(|r| r.error_for_status())
                .context("registering a bot")?
                .json()
                .await
                .context("reading a registered bot")?;
            tokens.push(v["token"].as_str().unwrap_or_default().to_string());
        }
        Ok(tokens)
    }

    /// The ID of a user or channel by name.
    pub fn id_of(&self, name: &str) -> Option<u64> {
        let world = self.sandbox.shared().world.lock().ok()?;
        world
            .user_by_name(name)
            .map(|u| u.id)
            .or_else(|| world.channel_by_name(name).map(|c| c.id))
    }

    /// How many of these bot users have a live gateway connection.
    pub fn connected(&self, bots: &[u64]) -> usize {
        let live = self.sandbox.shared().gateway.connected_bots();
        bots.iter().filter(|b| live.contains(b)).count()
    }

    /// Waits until every bot is connected; returns when that happened.
    pub async fn wait_connected(&self, bots: &[u64], deadline: Duration) -> Result<Instant> {
        let start = Instant::now();
        loop {
            if self.connected(bots) == bots.len() {
                return Ok(Instant::now());
            }
            if start.elapsed() > deadline {
                return Err(BenchError(format!(
                    "only {} of {} bots connected after {deadline:?}",
                    self.connected(bots),
                    bots.len()
                )));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Posts one message as a human.
    pub async fn post(&self, post: &Post) -> Result<Value> {
        let resp = self
            .http
            .post(format!("{}/sandbox/messages", self.url()))
            .json(&json!({"channel": post.channel, "author": post.author, "content": post.content}))
            .send()
            .await
            .context("posting a message")?;
        let status = resp.status();
        let v: Value = resp.json().await.context("reading a posted message")?;
        if !status.is_success() {
            return Err(BenchError(format!("posting a message: {status} {v}")));
        }
        Ok(v)
    }

    /// Posts every message, `concurrency` at a time: as fast as the sandbox takes them.
    /// Returns the posted messages, in no particular order.
    pub async fn flood(&self, posts: Vec<Post>, concurrency: usize) -> Result<Vec<Value>> {
        let results: Vec<Result<Value>> = stream::iter(posts)
            .map(|p| async move { self.post(&p).await })
            .buffer_unordered(concurrency)
            .collect()
            .await;
        results.into_iter().collect()
    }

    /// The number of timed replies so far (a mark for [`Stage::replies_since`]).
    pub fn replies(&self) -> usize {
        self.sandbox.shared().timings.replies_since(usize::MAX).0
    }

    /// Timed replies after a mark.
    pub fn replies_since(&self, mark: usize) -> Vec<ReplyTiming> {
        self.sandbox.shared().timings.replies_since(mark).1
    }

    /// The sandbox's clock, µs since it started.
    pub fn now_us(&self) -> u64 {
        self.sandbox.shared().timings.now_us()
    }

    /// Waits until at least `target` replies are timed in all, or until none has come for
    /// `stall`; returns how many there are.
    pub async fn wait_replies(&self, target: usize, stall: Duration) -> usize {
        let mut count = self.sandbox.shared().timings.watch();
        loop {
            let now = *count.borrow_and_update();
            if now >= target {
                return now;
            }
            match tokio::time::timeout(stall, count.changed()).await {
                Ok(Ok(())) => {}
                _ => return *count.borrow(),
            }
        }
    }

    /// The REST request log's length (a mark for [`Stage::requests_since`]).
    pub fn requests(&self) -> usize {
        self.sandbox.shared().requests.lock().map_or(0, |l| l.len())
    }

    /// REST requests after a mark: `(method, path)`.
    pub fn requests_since(&self, mark: usize) -> Vec<(String, String)> {
        self.sandbox.shared().requests.lock().map_or_else(
            |_| Vec::new(),
            |l| {
                l.iter()
                    .skip(mark)
                    .map(|r| (r.method.clone(), r.path.clone()))
                    .collect()
            },
        )
    }

    /// Stops the sandbox.
    pub async fn stop(self) {
        self.sandbox.stop().await;
    }
}
