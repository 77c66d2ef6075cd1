//! Scenario 4, replay: troupe answers one message in each of 100 channels (so it knows where it
//! stands in each), is stopped, 10,000 messages are posted across the 100 channels while it is
//! down, and it is started again with the same store. Seconds from the new process's start to
//! the last missed message answered, and the REST calls it made against the minimum: one history
//! page of 100 per channel, one POST per reply.
//!
//! Whether troupe replays is detected, not assumed: when no missed message is answered within
//! [`DETECT`] of troupe being ready, the figures say "not available".

use std::time::Duration;

use troupe::llm::test_server::{LlmTestServer, Reply};

use super::{progress, Bench, CONNECT_DEADLINE, STALL};
use crate::process::{Backend, Troupe, TroupeConfig};
use crate::report::Figure;
use crate::stage::{channel, human, Post, Stage};
use crate::{Context, Result};

/// How long troupe may go without answering any missed message before replay counts as absent.
const DETECT: Duration = Duration::from_secs(30);
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
    let primed = stage.wait_replies(mark + channels, STALL).await - mark;
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
    stage.flood(missed, 64).await?;

    progress("replay", "troupe started again on the same store");
    let (replies, requests) = (stage.replies(), stage.requests());
    let start_us = stage.now_us();
    let mut troupe = Troupe::spawn(&b.troupe, &config, &stage.url(), &state, &b.dir)?;
    troupe.wait_ready(CONNECT_DEADLINE).await?;
    let first = stage.wait_replies(replies + 1, DETECT).await - replies;
    let answered = if first == 0 {
        0
    } else {
        stage.wait_replies(replies + n, STALL).await - replies
    };
    let calls = Calls::count(&stage.requests_since(requests));
    let last_us = stage.replies_since(replies).iter().map(|r| r.replied_us).max();
    troupe.stop();
    stage.stop().await;

    let what = format!("{n} missed messages answered");
    let Some(last_us) = last_us.filter(|_| answered > 0) else {
        let why = format!(
            "troupe answered none of the {n} missed messages within {DETECT:?} of being ready (no backlog replay?)"
        );
        return Ok(vec![
            Figure::unavailable("replay", &what, "s", &why),
            Figure::unavailable("replay", "REST calls", "calls", &why),
        ]);
    };
    let secs = last_us.saturating_sub(start_us) as f64 / 1e6;
    let pages = channels * per.div_ceil(PAGE);
    let minimum = pages + n;
    let partial = if answered < n {
        format!("; only {answered} of {n} answered (stalled {STALL:?})")
    } else {
        String::new()
    };
    Ok(vec![
        Figure::new("replay", &what, "s", secs, None).note(format!("from process start; includes startup{partial}")),
        Figure::new(
            "replay",
            "REST calls",
            "calls",
            calls.total() as f64,
            Some(minimum as f64),
        )
        .note(format!(
            "history GETs {} (min {pages}), reply POSTs {} (min {n}), typing {}, other {}",
            calls.history, calls.replies, calls.typing, calls.other
        )),
    ])
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
}
