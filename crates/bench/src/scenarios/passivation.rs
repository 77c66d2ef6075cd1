//! Part of scenario 3 (conversations): after the touched conversations have been measured
//! alive, they are left idle until troupe passivates them all (`idle_secs`, the plan's
//! `passivation_idle_secs`); then resident memory again (what an idle conversation costs), and
//! the latency of activating passivated conversations (a message to each, one after another:
//! the conversation is started and loads its memory from the store) against messages to the same
//! conversations once they are live again.

use std::time::{Duration, Instant};

use super::{ms, progress, Bench};
use crate::process::{Rss, Troupe};
use crate::report::{quantile, Figure};
use crate::stage::{channel, human, Post, Stage};
use crate::{BenchError, Result};

const KIB: f64 = 1024.0;

/// Latencies (ms, sorted) of one message to each of the first `k` conversations of
/// `conversations` ((channel, human) indices), one after another.
async fn one_each(stage: &Stage, conversations: &[(usize, usize)], deadline: Duration) -> Result<Vec<f64>> {
    let mut latencies = Vec::with_capacity(conversations.len());
    for (c, h) in conversations {
        let mark = stage.replies();
        let posted = stage
            .post(&Post {
                channel: channel(*c),
                author: human(*h),
                content: "<@Agent> still there?".into(),
            })
            .await?;
        if stage.wait_replies(mark + 1, deadline).await <= mark {
            return Err(BenchError(format!("no answer within {deadline:?} in {}", channel(*c))));
        }
        let reply = stage.replies_since(mark)[0];
        if posted["id"].as_str() != Some(reply.message_id.to_string().as_str()) {
            return Err(BenchError("answered another message".into()));
        }
        latencies.push(ms(reply.latency()));
    }
    latencies.sort_by(f64::total_cmp);
    Ok(latencies)
}

/// Waits until troupe reports no live conversation; `false` if `deadline` passed first.
async fn all_passivated(troupe: &Troupe, deadline: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < deadline {
        if troupe.metric("troupe_active_conversations").await == Some(0.0) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    false
}

/// Measures passivation on a troupe whose `n` conversations (channel-major over
/// `channels` × `humans`) were touched; `before` is its RSS with no conversation.
pub async fn run(b: &Bench, stage: &Stage, troupe: &Troupe, humans: usize, n: usize, before: Rss) -> Vec<Figure> {
    let idle = Duration::from_secs(b.plan.passivation_idle_secs);
    progress(
        "memory",
        &format!(
            "waiting for {n} conversations to passivate (idle_secs = {})",
            idle.as_secs()
        ),
    );
    let what = format!("RSS per passivated conversation, {n} idle");
    if !all_passivated(troupe, idle + b.plan.stall + Duration::from_secs(30)).await {
        return vec![Figure::unavailable(
            "memory",
            &what,
            "KiB",
            "conversations did not passivate",
        )];
    }
    // A glibc troupe trims the heap 5 s after passivations (`actors::trim`), jemalloc's
    // background thread purges within about 1 s: read RSS after both.
    tokio::time::sleep(Duration::from_secs(7)).await;
    let mut figures = match troupe.rss() {
        Ok(idle_rss) => vec![
            Figure::new(
                "memory",
                &what,
                "KiB",
                (idle_rss.now as f64 - before.now as f64) / n as f64 / KIB,
                None,
            )
            .note("(RSS after passivation − RSS before any conversation) / conversations; freed heap the allocator keeps counts"),
            super::conversations::beyond_cache(
                "RSS per passivated conversation beyond the store's cache",
                idle_rss.now as f64 - before.now as f64,
                n,
                b.plan.cache_bytes(),
            ),
        ],
        Err(e) => vec![Figure::unavailable("memory", &what, "KiB", &e.to_string())],
    };
    let k = b.plan.activations.min(n);
    let picked: Vec<(usize, usize)> = (0..k).map(|i| (i / humans, i % humans)).collect();
    progress(
        "memory",
        &format!("activating {k} passivated conversations one after another"),
    );
    let activation = one_each(stage, &picked, b.plan.stall).await;
    let live = one_each(stage, &picked, b.plan.stall).await;
    match (activation, live) {
        (Ok(activation), Ok(live)) => {
            for (label, q) in [("p50", 0.5), ("p99", 0.99)] {
                if let Some(a) = quantile(&activation, q) {
                    figures.push(
                        Figure::new(
                            "memory",
                            &format!("{label} reply latency, activating"),
                            "ms",
                            a,
                            quantile(&live, q),
                        )
                        .note(format!(
                            "{k} passivated conversations (memory from the store); baseline: the same ones live"
                        )),
                    );
                }
            }
        }
        (Err(e), _) | (_, Err(e)) => figures.push(Figure::unavailable(
            "memory",
            "p50 reply latency, activating",
            "ms",
            &e.to_string(),
        )),
    }
    figures
}
