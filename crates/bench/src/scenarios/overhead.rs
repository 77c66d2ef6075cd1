//! Scenario 1, overhead: one bot, one channel, messages posted one after another (the next when
//! the previous is answered), each reply timed by the sandbox from MESSAGE_CREATE to the reply's
//! POST. troupe's agent uses the LLM test server over HTTP with zero latency; the baseline
//! answers at once. The difference is what troupe adds per message.

use std::time::Duration;

use troupe_llm_test_server::{LlmTestServer, Reply};

use super::{ms, progress, Bench, CONNECT_DEADLINE};
use crate::process::{Backend, Baseline, Troupe, TroupeConfig, STAY_ALIVE};
use crate::report::{quantile, Figure};
use crate::stage::{channel, human, Post, Stage};
use crate::{BenchError, Context, Result};

/// How long one reply may take before the scenario gives up.
const REPLY_DEADLINE: Duration = Duration::from_secs(10);

/// Posts `warmup + n` messages to `bot` one after another; returns the last `n` latencies (ms).
pub async fn sequential(stage: &Stage, bot: &str, warmup: usize, n: usize) -> Result<Vec<f64>> {
    let mut latencies = Vec::with_capacity(n);
    for i in 0..warmup + n {
        let mark = stage.replies();
        let posted = stage
            .post(&Post {
                channel: channel(0),
                author: human(0),
                content: format!("<@{bot}> ping {i}"),
            })
            .await?;
        if stage.wait_replies(mark + 1, REPLY_DEADLINE).await <= mark {
            return Err(BenchError(format!(
                "{bot} did not answer message {i} within {REPLY_DEADLINE:?}"
            )));
        }
        let reply = stage.replies_since(mark)[0];
        if posted["id"].as_str() != Some(reply.message_id.to_string().as_str()) {
            return Err(BenchError(format!("{bot} answered another message than {i}")));
        }
        if i >= warmup {
            latencies.push(ms(reply.latency()));
        }
    }
    latencies.sort_by(f64::total_cmp);
    Ok(latencies)
}

/// Runs the scenario.
pub async fn run(b: &Bench) -> Result<Vec<Figure>> {
    let (n, warmup) = (b.plan.overhead_messages, b.plan.overhead_warmup);
    let llm = LlmTestServer::start().await.context("starting the LLM test server")?;
    llm.set_default(Reply::text("pong"));
    let stage = Stage::start(1, 1).await?;

    progress("overhead", &format!("baseline: {n} messages one after another"));
    let tokens = stage.add_bots(&["Base".into()]).await?;
    let bot = stage.id_of("Base").expect("registered");
    let baseline = Baseline::spawn(&stage.url(), &tokens)?;
    stage.wait_connected(&[bot], CONNECT_DEADLINE).await?;
    let base = sequential(&stage, "Base", warmup, n).await;
    baseline.stop();
    let base = base?;

    progress("overhead", &format!("equivalent bot: {n} messages one after another"));
    let tokens = stage.add_bots(&["Equiv".into()]).await?;
    let bot = stage.id_of("Equiv").expect("registered");
    let equivalent = Baseline::spawn_equivalent(
        &stage.url(),
        &tokens,
        &llm.openai_base_url(),
        &b.dir.join("overhead-equivalent-store"),
    )?;
    stage.wait_connected(&[bot], CONNECT_DEADLINE).await?;
    let equiv = sequential(&stage, "Equiv", warmup, n).await;
    equivalent.stop();
    let equiv = equiv?;

    progress("overhead", &format!("troupe: {n} messages one after another"));
    stage.add_bots(&["Agent".into()]).await?;
    let config = TroupeConfig {
        agents: vec!["Agent".into()],
        backend: Backend::OpenAi(llm.openai_base_url()),
        memory: "channel",
        max_concurrency: 4,
        idle_secs: STAY_ALIVE,
        stream: false,
        store_cache_mib: b.plan.store_cache_mib,
    };
    let mut troupe = Troupe::spawn(&b.troupe, &config, &stage.url(), &b.dir.join("overhead-state"), &b.dir)?;
    troupe.wait_ready(CONNECT_DEADLINE).await?;
    let measured = sequential(&stage, "Agent", warmup, n).await;
    troupe.stop();
    let measured = measured?;
    stage.stop().await;

    let mut figures = Vec::new();
    for (label, q) in [("p50", 0.5), ("p90", 0.9), ("p99", 0.99)] {
        let (t, base, equiv) = (quantile(&measured, q), quantile(&base, q), quantile(&equiv, q));
        if let Some(t) = t {
            figures.push(
                Figure::new("overhead", &format!("{label} reply latency, 1 agent"), "ms", t, base)
                    .note(format!("{n} messages one after another, zero-latency LLM over HTTP")),
            );
            figures.push(
                Figure::new("overhead", &format!("{label} vs equivalent bot"), "ms", t, equiv)
                    .note("baseline: serenity + the same streaming LLM request + sled insert and flush"),
            );
        }
    }
    Ok(figures)
}
