//! Scenario 4, replay: troupe answers one message in each of 100 channels (so it knows where it
//! stands in each), is stopped, 10,000 messages are posted across the 100 channels while it is
//! down, and it is started again with the same store. Seconds from the new process's start to
//! the last missed message answered, and the REST calls it made against the minimum: one history
//! page of 100 per channel, one POST per reply.
//!
//! Whether troupe replays is detected, not assumed: when no missed message is answered within
//! the plan's `stall` of troupe being ready, the figures say "not available".

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::Value;

use troupe::sandbox::timing::ReplyTiming;
use troupe_llm_test_server::{LlmTestServer, Reply};

use super::{progress, Bench, CONNECT_DEADLINE};
use crate::process::{Backend, Troupe, TroupeConfig, STAY_ALIVE};
use crate::report::Figure;
use crate::stage::{channel, human, Post, Stage};
use crate::{Context, Result};

/// Messages per history page (Discord's maximum).
const PAGE: usize = 100;

/// REST calls by kind.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Calls {
    /// `GET /channels/{id}/messages`: history pages.
    pub history: usize,
    /// `POST /channels/{id}/messages`: replies.
    pub replies: usize,
    /// `POST /channels/{id}/typing`.
    pub typing: usize,
    /// Anything else (gateway, users, webhooks).
    pub other: usize,
}

impl Calls {
    /// Counts a request log.
    pub fn count(log: &[(String, String)]) -> Calls {
        let mut c = Calls::default();
        for (method, path) in log {
            let path = path.split('?').next().unwrap_or_default();
            match (method.as_str(), path.starts_with("/api/v10/channels/")) {
                ("GET", true) if path.ends_with("/messages") => c.history += 1,
                ("POST", true) if path.ends_with("/messages") => c.replies += 1,
                ("POST", true) if path.ends_with("/typing") => c.typing += 1,
                _ => c.other += 1,
            }
        }
        c
    }

    /// All of them.
    pub fn total(&self) -> usize {
        self.history + self.replies + self.typing + self.other
    }
}

/// Runs the scenario.
// Why this is long: a benchmark scenario is a script (stage, load, measure, report) read top to bottom.
pub async fn run(b: &Bench) -> Result<Vec<Figure>> {
    let (channels, per) = (b.plan.replay_channels, b.plan.replay_per_channel);
    let n = channels * per;
    let llm = LlmTestServer::start().await.context("starting the LLM test server")?;
    llm.set_default(Reply::text("pong"));
    let stage = Stage::start(channels, 1).await?;
    stage.add_bots(&["Agent".into()]).await?;
    let config = TroupeConfig {
        agents: vec!["Agent".into()],
        backend: Backend::OpenAi(llm.openai_base_url()),
        memory: "channel",
        max_concurrency: 64,
        idle_secs: STAY_ALIVE,
        stream: false,
        store_cache_mib: b.plan.store_cache_mib,
    };
    let state = b.dir.join("replay-state");
    let post = |c: usize, what: String| Post {
        channel: channel(c),
        author: human(0),
        content: format!("<@Agent> {what}"),
    };

    progress(
        "replay",
        &format!("troupe answers one message in each of {channels} channels"),
    );
    let mut troupe = Troupe::spawn(&b.troupe, &config, &stage.url(), &state, &b.dir)?;
    troupe.wait_ready(CONNECT_DEADLINE).await?;
    let mark = stage.replies();
    stage
        .flood((0..channels).map(|c| post(c, "hello".into())).collect(), 16)
        .await?;
    let primed = stage.wait_replies(mark + channels, b.plan.stall).await - mark;
    troupe.stop();
    if primed < channels {
        return Err(crate::BenchError(format!(
            "only {primed} of {channels} first messages answered"
        )));
    }

    progress(
        "replay",
        &format!("troupe stopped; posting {n} messages across {channels} channels"),
    );
    let missed: Vec<Post> = (0..per)
        .flat_map(|i| (0..channels).map(move |c| (c, i)))
        .map(|(c, i)| post(c, format!("missed {i}")))
        .collect();
    let coverage = Coverage::new(&stage.flood(missed, 64).await?);

    progress("replay", "troupe started again on the same store");
    let (replies, requests) = (stage.replies(), stage.requests());
    let start_us = stage.now_us();
    let mut troupe = Troupe::spawn(&b.troupe, &config, &stage.url(), &state, &b.dir)?;
    troupe.wait_ready(CONNECT_DEADLINE).await?;
    let (answered, last_us) = if stage.wait_replies(replies + 1, b.plan.stall).await > replies {
        catch_up(&stage, &coverage, replies, b.plan.stall).await
    } else {
        (0, None)
    };
    let calls = Calls::count(&stage.requests_since(requests));
    troupe.stop();
    stage.stop().await;

    let what = format!("{n} missed messages answered");
    let Some(last_us) = last_us.filter(|_| answered > 0) else {
        let why = format!(
            "troupe answered none of the {n} missed messages within {:?} of being ready (no backlog replay?)",
            b.plan.stall
        );
        return Ok(vec![
            Figure::unavailable("replay", &what, "s", &why),
            Figure::unavailable("replay", "REST calls", "calls", &why),
        ]);
    };
    let secs = last_us.saturating_sub(start_us) as f64 / 1e6;
    // Paging with `after=` learns a channel's end from a page shorter than the limit.
    let pages = channels * (per / PAGE + 1);
    let minimum = pages + calls.replies;
    let partial = if answered < n {
        format!("; only {answered} of {n} answered")
    } else {
        String::new()
    };
    Ok(vec![
        Figure::new("replay", &what, "s", secs, None).note(format!(
            "from process start (startup included) to the last one answered{partial}"
        )),
        Figure::new(
            "replay",
            "REST calls",
            "calls",
            calls.total() as f64,
            Some(minimum as f64),
        )
        .note(format!(
            "history GETs {} (min {pages}), reply POSTs {}, typing {}, other {}; min: pages + the replies",
            calls.history, calls.replies, calls.typing, calls.other
        )),
    ])
}

/// Which missed messages replies cover. A reply in a channel answers the message it references
/// and every earlier one there: troupe answers a channel's backlog in one turn, whose reply
/// references the newest message.
pub struct Coverage {
    channel_of: HashMap<u64, u64>,
    /// Missed message IDs per channel, ascending.
    ids: HashMap<u64, Vec<u64>>,
}

impl Coverage {
    /// From the posted messages (Discord message objects).
    pub fn new(posted: &[Value]) -> Coverage {
        let id = |v: &Value, k: &str| v[k].as_str().and_then(|s| s.parse::<u64>().ok());
        let mut c = Coverage {
            channel_of: HashMap::new(),
            ids: HashMap::new(),
        };
        for m in posted {
            if let (Some(mid), Some(ch)) = (id(m, "id"), id(m, "channel_id")) {
                c.channel_of.insert(mid, ch);
                c.ids.entry(ch).or_default().push(mid);
            }
        }
        c.ids.values_mut().for_each(|v| v.sort_unstable());
        c
    }

    /// How many missed messages the replies (in arrival order) cover, and when the last of them
    /// that covered more arrived (µs, sandbox clock).
    pub fn covered(&self, replies: &[ReplyTiming]) -> (usize, Option<u64>) {
        let mut newest: HashMap<u64, u64> = HashMap::new();
        let (mut count, mut when) = (0, None);
        for r in replies {
            let Some(ch) = self.channel_of.get(&r.message_id) else {
                continue;
            };
            let before = newest.get(ch).copied().unwrap_or(0);
            if r.message_id > before {
                newest.insert(*ch, r.message_id);
                let ids = &self.ids[ch];
                count += ids.partition_point(|m| *m <= r.message_id) - ids.partition_point(|m| *m <= before);
                when = Some(r.replied_us);
            }
        }
        (count, when)
    }
}

/// Waits until every missed message is covered, or coverage has not grown for `stall`.
async fn catch_up(stage: &Stage, coverage: &Coverage, mark: usize, stall: Duration) -> (usize, Option<u64>) {
    let total = coverage.channel_of.len();
    let mut last = (0, None);
    let mut grew = Instant::now();
    loop {
        let now = coverage.covered(&stage.replies_since(mark));
        if now.0 > last.0 {
            grew = Instant::now();
        }
        last = now;
        if last.0 >= total || grew.elapsed() > stall {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_are_counted_by_kind() {
        let log: Vec<(String, String)> = [
            ("GET", "/api/v10/channels/1/messages?after=5&limit=100"),
            ("GET", "/api/v10/channels/1/messages"),
            ("POST", "/api/v10/channels/1/messages"),
            ("POST", "/api/v10/channels/1/typing"),
            ("GET", "/api/v10/gateway/bot"),
            ("GET", "/api/v10/channels/1"),
        ]
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
        let c = Calls::count(&log);
        assert_eq!(
            c,
            Calls {
                history: 2,
                replies: 1,
                typing: 1,
                other: 2
            }
        );
        assert_eq!(c.total(), 6);
    }

    #[test]
    fn a_reply_covers_its_message_and_every_earlier_one_in_its_channel() {
        let m = |id: u64, ch: u64| serde_json::json!({"id": id.to_string(), "channel_id": ch.to_string()});
        let c = Coverage::new(&[m(1, 10), m(2, 10), m(3, 10), m(4, 20), m(5, 20)]);
        let r = |message_id: u64, replied_us: u64| ReplyTiming {
            message_id,
            reply_id: 100 + message_id,
            author_id: 7,
            dispatched_us: 0,
            replied_us,
        };
        assert_eq!(c.covered(&[]), (0, None));
        assert_eq!(c.covered(&[r(2, 5)]), (2, Some(5)));
        // An older reply covers nothing new; another channel adds its own.
        assert_eq!(c.covered(&[r(2, 5), r(1, 6), r(5, 9)]), (4, Some(9)));
        assert_eq!(c.covered(&[r(2, 5), r(3, 7), r(5, 9), r(99, 11)]), (5, Some(9)));
    }
}
