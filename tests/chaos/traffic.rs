//! Steady traffic from several humans across channels and DMs, each message carrying a unique
//! marker and recorded in the ledger with what it should get.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::ledger::{Expect, Posted, MARKER_PREFIX};
use super::world::{World, HUMANS, LISTEN_CHANNEL, MENTION_CHANNELS, WEBHOOK_CHANNEL};

/// Markers are unique across the whole run.
static NEXT_MARKER: AtomicU64 = AtomicU64::new(1);

/// A small deterministic generator (xorshift), so a run can be repeated with `CHAOS_SEED`.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// Seeded; a zero seed is replaced (xorshift would stay at zero).
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    /// The next number.
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A number in `lo..hi` (`lo` when the range is empty).
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            lo
        } else {
            lo + self.next() % (hi - lo)
        }
    }

    /// A duration of `lo..hi` milliseconds.
    pub fn ms(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(self.range(lo, hi))
    }

    /// One of `items`.
    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.range(0, items.len() as u64) as usize]
    }
}

/// What kind of message to post.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `<@Ada>` in #general or #lab.
    Mention,
    /// Anything in #random (Ada listens).
    Listen,
    /// A DM to Ada from one of the steady humans.
    Dm,
    /// Anything in #hooks (Wren answers through its webhook).
    Hook,
    /// No mention in #general or #lab: must stay unanswered.
    Quiet,
}

/// How often each kind is posted (relative weights).
#[derive(Debug, Clone, Copy)]
pub struct Mix {
    /// Weights for mention, listen, DM, webhook and quiet messages.
    pub weights: [u32; 5],
}

impl Mix {
    /// Everything, evenly-ish.
    pub const ALL: Mix = Mix {
        weights: [25, 20, 25, 15, 15],
    };
    /// Mostly #hooks, for the webhook persona.
    pub const WEBHOOK: Mix = Mix {
        weights: [10, 5, 10, 65, 10],
    };

    fn pick(&self, rng: &mut Rng) -> Kind {
        let kinds = [Kind::Mention, Kind::Listen, Kind::Dm, Kind::Hook, Kind::Quiet];
        let total: u32 = self.weights.iter().sum();
        let mut x = rng.range(0, u64::from(total)) as u32;
        for (k, w) in kinds.iter().zip(self.weights) {
            if x < w {
                return *k;
            }
            x -= w;
        }
        Kind::Quiet
    }
}

/// Where a conversation's sync message goes: the post body without content, and who answers.
#[derive(Debug, Clone)]
struct Conversation {
    body: Value,
    agent: String,
    kind: Kind,
}

/// Every message posted in a scenario.
#[derive(Debug, Default)]
pub struct Ledger {
    /// The messages, in posting order.
    pub posted: Vec<Posted>,
    conversations: BTreeMap<u64, Conversation>,
}

impl Ledger {
    /// Every channel the humans posted in.
    pub fn channels(&self) -> Vec<u64> {
        let mut c: Vec<u64> = self.posted.iter().map(|p| p.channel).collect();
        c.sort_unstable();
        c.dedup();
        c
    }
}

/// Posts one message and records it.
pub async fn post(world: &World, ledger: &Mutex<Ledger>, kind: Kind, author: &str, rng: &mut Rng) -> Posted {
    let marker = format!("{MARKER_PREFIX}{}", NEXT_MARKER.fetch_add(1, Ordering::Relaxed));
    let (body, agent, expect, label) = match kind {
        Kind::Mention => (
            json!({"channel": rng.pick(&MENTION_CHANNELS), "author": author, "content": format!("<@Ada> {marker} what do you think?")}),
            "Ada",
            Expect::Answer,
            "mention",
        ),
        Kind::Listen => (
            json!({"channel": LISTEN_CHANNEL, "author": author, "content": format!("{marker} nice weather")}),
            "Ada",
            Expect::Answer,
            "listen",
        ),
        Kind::Dm => (
            json!({"dm": "Ada", "author": author, "content": format!("{marker} hello in private")}),
            "Ada",
            Expect::Answer,
            if author.starts_with("new") { "new-dm" } else { "dm" },
        ),
        Kind::Hook => (
            json!({"channel": WEBHOOK_CHANNEL, "author": author, "content": format!("{marker} hi hooks")}),
            "Wren",
            Expect::Answer,
            "webhook",
        ),
        Kind::Quiet => (
            json!({"channel": rng.pick(&MENTION_CHANNELS), "author": author, "content": format!("{marker} just chatting")}),
            "",
            Expect::Quiet,
            "quiet",
        ),
    };
    post_body(world, ledger, body, agent, expect, label, kind).await
}

async fn post_body(
    world: &World,
    ledger: &Mutex<Ledger>,
    body: Value,
    agent: &str,
    expect: Expect,
    label: &'static str,
    kind: Kind,
) -> Posted {
    let log_at_post = world.log_len().await;
    let at = Instant::now();
    let m = world.sb.post(body.clone()).await;
    let id = |v: &Value| v.as_str().and_then(|s| s.parse::<u64>().ok()).unwrap();
    let content = body["content"].as_str().unwrap_or_default();
    let posted = Posted {
        marker: super::ledger::markers(content)[0].to_string(),
        id: id(&m["id"]),
        channel: id(&m["channel_id"]),
        agent: agent.to_string(),
        expect,
        kind: label,
        log_at_post,
        at,
    };
    let mut l = ledger.lock().unwrap();
    if expect == Expect::Answer {
        let mut template = body;
        template.as_object_mut().unwrap().remove("content");
        l.conversations.entry(posted.channel).or_insert(Conversation {
            body: template,
            agent: agent.to_string(),
            kind,
        });
    }
    l.posted.push(posted.clone());
    posted
}

/// One message in every conversation seen so far (the sync round: each conversation answers in
/// order, so once these are answered, everything before them is done).
pub async fn sync_round(world: &World, ledger: &Mutex<Ledger>) {
    let conversations: Vec<Conversation> = ledger.lock().unwrap().conversations.values().cloned().collect();
    for c in conversations {
        let marker = format!("{MARKER_PREFIX}{}", NEXT_MARKER.fetch_add(1, Ordering::Relaxed));
        let content = match c.kind {
            Kind::Mention => format!("<@Ada> {marker} sync"),
            _ => format!("{marker} sync"),
        };
        let mut body = c.body.clone();
        body["content"] = json!(content);
        post_body(world, ledger, body, &c.agent, Expect::Answer, "sync", c.kind).await;
    }
}

/// The first message of every kind, before any fault: troupe learns the channels and the DMs.
pub async fn first_contact(world: &World, ledger: &Mutex<Ledger>, rng: &mut Rng) {
    for kind in [Kind::Mention, Kind::Listen, Kind::Hook, Kind::Quiet] {
        let author = rng.pick(&HUMANS);
        post(world, ledger, kind, author, rng).await;
    }
    for h in HUMANS {
        post(world, ledger, Kind::Dm, h, rng).await;
    }
    // Both mention channels.
    for channel in MENTION_CHANNELS {
        let marker = format!("{MARKER_PREFIX}{}", NEXT_MARKER.fetch_add(1, Ordering::Relaxed));
        let body = json!({"channel": channel, "author": "alice", "content": format!("<@Ada> {marker} first")});
        post_body(world, ledger, body, "Ada", Expect::Answer, "mention", Kind::Mention).await;
    }
}

/// Steady traffic in the background until stopped.
pub struct Traffic {
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<usize>,
}

impl Traffic {
    /// Posts a message of `mix` every `pace` (plus up to half of it again) until stopped.
    pub fn start(world: Arc<World>, ledger: Arc<Mutex<Ledger>>, mix: Mix, pace: Duration, seed: u64) -> Traffic {
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(async move {
            let mut rng = Rng::new(seed);
            let mut n = 0;
            while !*stopped.borrow() {
                let kind = mix.pick(&mut rng);
                let author = rng.pick(&HUMANS);
                post(&world, &ledger, kind, author, &mut rng).await;
                n += 1;
                let jitter = rng.range(0, pace.as_millis() as u64 / 2 + 1);
                let wait = pace + Duration::from_millis(jitter);
                if let Ok(Err(_)) = tokio::time::timeout(wait, stopped.changed()).await {
                    break; // the handle is gone (the scenario failed)
                }
            }
            n
        });
        Traffic { stop, task }
    }

    /// Stops posting; returns how many messages were posted.
    pub async fn stop(self) -> usize {
        let _ = self.stop.send(true);
        self.task.await.unwrap()
    }
}
