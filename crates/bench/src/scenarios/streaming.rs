//! Scenario 7, streaming: one agent with `stream = true`, a model that takes a while (a time to
//! first token, then a delay per token), messages one after another. Measured by the sandbox's
//! clock: from MESSAGE_CREATE to the reply's first POST, the first text a reader sees, against
//! the model's own time to its first sentence (the earliest a streamed reply could show it); and
//! the Discord writes per reply (the first POST and its edits), against the model's writing time
//! in seconds (about one edit a second is the pacing's ceiling).

use std::time::{Duration, Instant};

use serde_json::Value;
use troupe_llm_test_server::{LlmTestServer, Reply};

use super::{ms, progress, Bench, CONNECT_DEADLINE};
use crate::process::{Backend, Troupe, TroupeConfig, STAY_ALIVE};
use crate::report::{quantile, Figure};
use crate::stage::{channel, human, Post, Stage};
use crate::{BenchError, Context, Result};

/// The model's reply: a first sentence of two tokens, then 38 more.
const TEXT: &str = "Hello there. This reply is written by a slow model one word at a time, so that the \
                    first sentence can be read long before the last word arrives, which is the whole \
                    point of streaming a reply into Discord while the model is still busy writing it out.";

/// The model's time to first token.
const TTFT: Duration = Duration::from_millis(300);

/// The model's delay between tokens.
const TOKEN_DELAY: Duration = Duration::from_millis(60);

/// How long one reply may take to be complete before the scenario gives up.
const REPLY_DEADLINE: Duration = Duration::from_secs(30);

/// Runs the scenario.
pub async fn run(b: &Bench) -> Result<Vec<Figure>> {
    let n = b.plan.streaming_messages;
    let llm = LlmTestServer::start().await.context("starting the LLM test server")?;
    llm.set_default(Reply::text(TEXT).ttft(TTFT).token_delay(TOKEN_DELAY));
    let stage = Stage::start(1, 1).await?;
    stage.add_bots(&["Streamer".into()]).await?;
    let config = TroupeConfig {
        agents: vec!["Streamer".into()],
        backend: Backend::OpenAi(llm.openai_base_url()),
        memory: "channel",
        max_concurrency: 4,
        idle_secs: STAY_ALIVE,
        stream: true,
        store_cache_mib: b.plan.store_cache_mib,
    };
    progress("streaming", &format!("troupe: {n} streamed replies one after another"));
    let mut troupe = Troupe::spawn(&b.troupe, &config, &stage.url(), &b.dir.join("streaming-state"), &b.dir)?;
    troupe.wait_ready(CONNECT_DEADLINE).await?;
    let measured = streamed(&stage, n).await;
    troupe.stop();
    stage.stop().await;
    let (mut first_text, writes) = measured?;
    first_text.sort_by(f64::total_cmp);

    let tokens = troupe_llm_test_server::tokens(TEXT).len() as u32;
    let first_sentence = ms(TTFT + TOKEN_DELAY);
    let writing = TTFT + TOKEN_DELAY * (tokens - 1);
    let mut figures = Vec::new();
    for (label, q) in [("p50", 0.5), ("p90", 0.9)] {
        if let Some(t) = quantile(&first_text, q) {
            figures.push(
                Figure::new(
                    "streaming",
                    &format!("{label} time to first visible text"),
                    "ms",
                    t,
                    Some(first_sentence),
                )
                .note(format!(
                    "MESSAGE_CREATE to the first POST; baseline: the model's first sentence ({} ms to first token + 1 token); whole reply written in {} ms",
                    TTFT.as_millis(),
                    writing.as_millis()
                )),
            );
        }
    }
    let mean = writes.iter().sum::<usize>() as f64 / writes.len().max(1) as f64;
    figures.push(
        Figure::new(
            "streaming",
            "Discord writes per reply",
            "writes",
            mean,
            Some(writing.as_secs_f64()),
        )
        .note("the first POST and its edits; baseline: the model's writing time in seconds (at most ~1 edit/s)"),
    );
    Ok(figures)
}

/// Posts `n` messages one after another, each when the previous reply is complete; returns the
/// time to each reply's first POST (ms) and each reply's writes.
async fn streamed(stage: &Stage, n: usize) -> Result<(Vec<f64>, Vec<usize>)> {
    let http = reqwest::Client::new();
    let (mut first_text, mut writes) = (Vec::new(), Vec::new());
    for i in 0..n {
        let mark = stage.replies();
        let requests = stage.requests();
        let posted = stage
            .post(&Post {
                channel: channel(0),
                author: human(0),
                content: format!("<@Streamer> tell me something {i}"),
            })
            .await?;
        if stage.wait_replies(mark + 1, REPLY_DEADLINE).await <= mark {
            return Err(BenchError(format!("no reply to message {i} within {REPLY_DEADLINE:?}")));
        }
        let reply = stage.replies_since(mark)[0];
        if posted["id"].as_str() != Some(reply.message_id.to_string().as_str()) {
            return Err(BenchError(format!("a reply to another message than {i}")));
        }
        first_text.push(ms(reply.latency()));
        // Complete when the reply holds the whole text.
        let start = Instant::now();
        loop {
            let url = format!("{}/sandbox/channels/{}/messages", stage.url(), channel(0));
            let messages: Vec<Value> = http
                .get(url)
                .send()
                .await
                .context("reading the channel")?
                .json()
                .await
                .context("reading the channel")?;
            let done = messages
                .iter()
                .any(|m| m["id"].as_str() == Some(reply.reply_id.to_string().as_str()) && m["content"] == TEXT);
            if done {
                break;
            }
            if start.elapsed() > REPLY_DEADLINE {
                return Err(BenchError(format!("reply {i} incomplete after {REPLY_DEADLINE:?}")));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let path = format!("/messages/{}", reply.reply_id);
        let edits = stage
            .requests_since(requests)
            .iter()
            .filter(|(m, p)| m == "PATCH" && p.contains(&path))
            .count();
        writes.push(1 + edits);
    }
    Ok((first_text, writes))
}
