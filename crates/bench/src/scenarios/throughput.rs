//! Scenario 2, throughput: 10 bots × 100 channels; every message mentions one bot, and messages
//! are posted as fast as the sandbox takes them (round-robin over the (bot, channel) pairs, so no
//! conversation holds more than its queue). Replies per second from the first dispatch to the
//! last reply, on the sandbox's clock. Then troupe alone with a 200 ms model and
//! `max_concurrency = 64`, against the pool's bound of 64 / 0.2 s = 320 replies per second,
//! with how long a model request took meanwhile: as troupe measured its own, and as a client on
//! the harness's runtime saw the same server. The LLM server runs on a thread of its own: on the
//! harness's runtime, beside the sandbox, its 200 ms replies took 213–220 ms.

use std::time::Duration;

use troupe_llm_test_server::{LlmTestServer, Reply};

use super::{progress, Bench, CONNECT_DEADLINE};
use crate::process::{cpu_secs, Backend, Baseline, Troupe, TroupeConfig, STAY_ALIVE};
use crate::report::Figure;
use crate::stage::{channel, human, Post, Stage};
use crate::{Context, Result};

/// Messages posted at once while flooding.
const FLOOD_CONCURRENCY: usize = 64;
/// The model's latency for the bound, and the pool size.
const SLOW_MODEL: Duration = Duration::from_millis(200);
const POOL: usize = 64;

/// Sends one request after another to the LLM server at `base` (a streamed chat completion,
/// read to its end) until `stop` is set; returns each request's duration, seconds.
async fn probe_model(base: String, stop: std::sync::Arc<std::sync::atomic::AtomicBool>) -> Vec<f64> {
    use futures::StreamExt;
    let client = reqwest::Client::new();
    let body = serde_json::json!({
        "model": "bench",
        "messages": [{"role": "user", "content": "probe"}],
        "stream": true,
    });
    let mut took = Vec::new();
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        let start = std::time::Instant::now();
        let Ok(resp) = client.post(format!("{base}/chat/completions")).json(&body).send().await else {
            break;
        };
        let mut stream = resp.bytes_stream();
        let mut ok = true;
        while let Some(chunk) = stream.next().await {
            ok &= chunk.is_ok();
        }
        if !ok {
            break;
        }
        took.push(start.elapsed().as_secs_f64());
    }
    took
}

/// troupe's model requests so far: their total duration (seconds) and count.
async fn model_requests(t: &Troupe) -> Option<(f64, f64)> {
    let sum = t.metric("troupe_llm_request_duration_seconds_sum").await;
    let count = t.metric("troupe_llm_request_duration_seconds_count").await;
    sum.zip(count)
}

/// The mean of `xs` in milliseconds, if any.
fn mean_ms(xs: &[f64]) -> Option<f64> {
    (!xs.is_empty()).then(|| 1000.0 * xs.iter().sum::<f64>() / xs.len() as f64)
}

/// What a flood achieved.
#[derive(Debug, Clone)]
pub struct Flood {
    /// Replies received.
    pub answered: usize,
    /// Messages posted.
    pub posted: usize,
    /// Replies per second, first dispatch to last reply.
    pub per_sec: f64,
    /// CPU seconds the harness's own process (the sandbox, the LLM server, the poster) used.
    pub stage_cpu: f64,
    /// REST requests the bots made to the sandbox meanwhile.
    pub rest: usize,
    /// Those requests by kind, e.g. `POST messages: 5000`.
    pub rest_kinds: String,
}

/// The flood: `n` messages round-robin over every (bot, channel) pair.
fn posts(bots: &[String], channels: usize, n: usize) -> Vec<Post> {
    (0..n)
        .map(|i| {
            let bot = &bots[i % bots.len()];
            Post {
                channel: channel((i / bots.len()) % channels),
                author: human(0),
                content: format!("<@{bot}> message {i}"),
            }
        })
        .collect()
}

/// Posts the flood and waits for the replies.
pub async fn flood(stage: &Stage, bots: &[String], channels: usize, n: usize, stall: Duration) -> Result<Flood> {
    let mark = stage.replies();
    let (cpu, requests) = (cpu_secs(std::process::id())?, stage.requests());
    let start_us = stage.now_us();
    stage.flood(posts(bots, channels, n), FLOOD_CONCURRENCY).await?;
    let answered = stage.wait_replies(mark + n, stall).await - mark;
    let stage_cpu = cpu_secs(std::process::id())? - cpu;
    let made = stage.requests_since(requests);
    let rest = made.len();
    let rest_kinds = request_kinds(&made);
    let end_us = stage
        .replies_since(mark)
        .iter()
        .map(|r| r.replied_us)
        .max()
        .unwrap_or(start_us);
    let secs = (end_us.saturating_sub(start_us) as f64 / 1e6).max(1e-6);
    Ok(Flood {
        answered,
        posted: n,
        per_sec: answered as f64 / secs,
        stage_cpu,
        rest,
        rest_kinds,
    })
}

/// REST requests counted by method and the path's last word (IDs left out), most first:
/// `POST messages: 5000, POST typing: 310`.
fn request_kinds(made: &[(String, String)]) -> String {
    let mut counts = std::collections::BTreeMap::<String, usize>::new();
    for (method, path) in made {
        let word = path
            .split('/')
            .rev()
            .find(|w| !w.is_empty() && !w.bytes().all(|b| b.is_ascii_digit()))
            .unwrap_or("/");
        *counts.entry(format!("{method} {word}")).or_default() += 1;
    }
    let mut counts: Vec<_> = counts.into_iter().collect();
    counts.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    counts
        .iter()
        .map(|(k, n)| format!("{k}: {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// One message to every (bot, channel) pair, so connections and conversations exist before
/// measuring; returns how many were answered.
async fn warm_up(stage: &Stage, bots: &[String], channels: usize, stall: Duration) -> Result<usize> {
    let n = bots.len() * channels;
    let mark = stage.replies();
    stage.flood(posts(bots, channels, n), FLOOD_CONCURRENCY).await?;
    Ok(stage.wait_replies(mark + n, stall).await - mark)
}

/// A total over a flood (`total`, e.g. CPU milliseconds), per reply, beside the baseline
/// flood's, with `note`; not available when either flood answered nothing.
fn per_reply(
    what: &str,
    unit: &str,
    (total, f): (f64, &Flood),
    (base_total, base): (f64, &Flood),
    note: String,
) -> Figure {
    if f.answered == 0 || base.answered == 0 {
        return Figure::unavailable("throughput", what, unit, "no reply to divide by");
    }
    Figure::new(
        "throughput",
        what,
        unit,
        total / f.answered as f64,
        Some(base_total / base.answered as f64),
    )
    .note(note)
}

fn note(f: &Flood, what: &str) -> String {
    let missing = if f.answered < f.posted {
        format!("; {} unanswered", f.posted - f.answered)
    } else {
        String::new()
    };
    format!("{} messages, {what}{missing}", f.posted)
}

/// The flood against equivalent bots (same bots × channels, same LLM server): the replies and
/// the CPU seconds the bots' process used.
async fn equivalent_flood(b: &Bench, stage: &Stage, llm_base: &str, n: usize) -> Result<(Flood, f64)> {
    let p = &b.plan;
    let (agents, channels) = (p.throughput_agents, p.throughput_channels);
    progress(
        "throughput",
        &format!("equivalent bot: {agents} bots × {channels} channels, {n} messages"),
    );
    let bots: Vec<String> = (0..agents).map(|i| format!("Equiv{i:02}")).collect();
    let tokens = stage.add_bots(&bots).await?;
    let ids: Vec<u64> = bots.iter().filter_map(|n| stage.id_of(n)).collect();
    let store = b.dir.join("throughput-equivalent-store");
    let equivalent = Baseline::spawn_equivalent(&stage.url(), &tokens, llm_base, &store)?;
    stage.wait_connected(&ids, CONNECT_DEADLINE).await?;
    warm_up(stage, &bots, channels, p.stall).await?;
    // Marks the measured flood's start, as troupe's below.
    progress("throughput", &format!("equivalent bot: flood of {n} messages"));
    let cpu = equivalent.cpu()?;
    let flooded = flood(stage, &bots, channels, n, p.stall).await;
    let used = equivalent.cpu()? - cpu;
    progress("throughput", "equivalent bot: flood done");
    equivalent.stop();
    Ok((flooded?, used))
}

/// Runs the scenario.
// Why this is long: a benchmark scenario is a script (stage, load, measure, report) read top to bottom.
pub async fn run(b: &Bench) -> Result<Vec<Figure>> {
    let p = &b.plan;
    let (agents, channels) = (p.throughput_agents, p.throughput_channels);
    let n = agents * channels * p.throughput_rounds;
    // On its own thread: on the harness's runtime, beside the sandbox's gateway fan-out, the
    // 200 ms model took 213–220 ms (docs/benchmarks.md).
    let llm = LlmTestServer::start_on_own_thread()
        .await
        .context("starting the LLM test server")?;
    llm.set_default(Reply::text("pong"));
    let stage = Stage::start(channels, 1).await?;

    progress(
        "throughput",
        &format!("baseline: {agents} bots × {channels} channels, {n} messages"),
    );
    let base_bots: Vec<String> = (0..agents).map(|i| format!("Base{i:02}")).collect();
    let tokens = stage.add_bots(&base_bots).await?;
    let ids: Vec<u64> = base_bots.iter().filter_map(|n| stage.id_of(n)).collect();
    let baseline = Baseline::spawn(&stage.url(), &tokens)?;
    stage.wait_connected(&ids, CONNECT_DEADLINE).await?;
    warm_up(&stage, &base_bots, channels, p.stall).await?;
    let cpu = baseline.cpu()?;
    let base = flood(&stage, &base_bots, channels, n, p.stall).await;
    let base_cpu = baseline.cpu()? - cpu;
    baseline.stop();
    let base = base?;
    let equiv = equivalent_flood(b, &stage, &llm.openai_base_url(), n).await?;

    progress(
        "throughput",
        &format!("troupe: {agents} agents × {channels} channels, {n} messages"),
    );
    let names: Vec<String> = (0..agents).map(|i| format!("Agent{i:02}")).collect();
    stage.add_bots(&names).await?;
    let config = TroupeConfig {
        agents: names.clone(),
        backend: Backend::OpenAi(llm.openai_base_url()),
        memory: "channel",
        max_concurrency: POOL,
        idle_secs: STAY_ALIVE,
        stream: false,
        store_cache_mib: b.plan.store_cache_mib,
    };
    let mut troupe = Troupe::spawn(
        &b.troupe,
        &config,
        &stage.url(),
        &b.dir.join("throughput-state"),
        &b.dir,
    )?;
    troupe.wait_ready(CONNECT_DEADLINE).await?;
    if warm_up(&stage, &names, channels, p.stall).await? == 0 {
        troupe.stop();
        stage.stop().await;
        let why = format!(
            "troupe answered none of {} warm-up messages within {:?}: hung",
            agents * channels,
            p.stall
        );
        let fast = format!("replies/s, {agents} agents × {channels} channels");
        return Ok(vec![
            Figure::new("throughput", &fast, "1/s", 0.0, Some(base.per_sec)).note(why.clone()),
            Figure::unavailable(
                "throughput",
                &format!("replies/s, 200 ms LLM, max_concurrency {POOL}"),
                "1/s",
                &why,
            ),
        ]);
    }
    // Marks the measured flood's start (a profiler attached from here sees only the flood).
    progress("throughput", &format!("troupe: flood of {n} messages"));
    let cpu = troupe.cpu()?;
    let fast = flood(&stage, &names, channels, n, p.stall).await;
    let fast_cpu = troupe.cpu()? - cpu;

    let bound = POOL as f64 / SLOW_MODEL.as_secs_f64();
    let m = p.bound_messages;
    progress(
        "throughput",
        &format!("troupe: 200 ms model, max_concurrency {POOL}, {m} messages"),
    );
    llm.set_default(Reply::text("pong").ttft(SLOW_MODEL));
    let before = model_requests(&troupe).await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let probe = tokio::spawn(probe_model(llm.openai_base_url(), stop.clone()));
    let slow = flood(&stage, &names, channels, m, p.stall).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let after = model_requests(&troupe).await;
    let probed = probe.await.unwrap_or_default();
    let troupe_ms = before
        .zip(after)
        .filter(|((_, c0), (_, c1))| c1 > c0)
        .map(|((s0, c0), (s1, c1))| 1000.0 * (s1 - s0) / (c1 - c0));
    troupe.stop();
    stage.stop().await;
    let (fast, slow) = (fast?, slow?);

    Ok(vec![
        Figure::new(
            "throughput",
            &format!("replies/s, {agents} agents × {channels} channels"),
            "1/s",
            fast.per_sec,
            Some(base.per_sec),
        )
        .note(note(&fast, "zero-latency LLM")),
        Figure::new(
            "throughput",
            &format!("replies/s vs equivalent bot, {agents} × {channels}"),
            "1/s",
            fast.per_sec,
            Some(equiv.0.per_sec),
        )
        .note(note(
            &equiv.0,
            "baseline: serenity + streaming LLM request + sled insert and flush per reply",
        )),
        per_reply(
            "CPU time per reply, zero-latency LLM",
            "ms",
            (1000.0 * fast_cpu, &fast),
            (1000.0 * base_cpu, &base),
            "user + system time of the troupe (baseline) process during the flood".into(),
        ),
        per_reply(
            "CPU time per reply vs equivalent bot",
            "ms",
            (1000.0 * fast_cpu, &fast),
            (1000.0 * equiv.1, &equiv.0),
            "user + system time of the troupe (equivalent bot) process during the flood".into(),
        ),
        per_reply(
            "stage CPU time per reply vs equivalent bot",
            "ms",
            (1000.0 * fast.stage_cpu, &fast),
            (1000.0 * equiv.0.stage_cpu, &equiv.0),
            "user + system time of the harness's process (sandbox, LLM server, poster) during the flood: the work the bot's requests and replies cause".into(),
        ),
        per_reply(
            "REST requests per reply vs equivalent bot",
            "calls",
            (fast.rest as f64, &fast),
            (equiv.0.rest as f64, &equiv.0),
            format!(
                "requests the bots made to the sandbox during the flood, per reply; troupe: {}; equivalent bot: {}",
                fast.rest_kinds, equiv.0.rest_kinds
            ),
        ),
        Figure::new(
            "throughput",
            &format!("replies/s, 200 ms LLM, max_concurrency {POOL}"),
            "1/s",
            slow.per_sec,
            Some(bound),
        )
        .note(note(&slow, "baseline column: the bound 64 / 0.2 s")),
        match troupe_ms {
            Some(ms) => Figure::new(
                "throughput",
                "replies/s, 200 ms LLM, vs the bound at the requests' measured time",
                "1/s",
                slow.per_sec,
                Some(POOL as f64 / (ms / 1000.0)),
            )
            .note(format!(
                "baseline column: {POOL} / the mean model request troupe measured ({ms:.1} ms, below): what the pool can do with the model as served"
            )),
            None => Figure::unavailable(
                "throughput",
                "replies/s, 200 ms LLM, vs the bound at the requests' measured time",
                "1/s",
                "troupe's request durations could not be read",
            ),
        },
        request_figure(
            "model request during that flood, as troupe measured it",
            troupe_ms,
            "mean of troupe_llm_request_duration_seconds over the flood; baseline: the model's 200 ms",
        ),
        request_figure(
            "model request during that flood, as the harness saw it",
            mean_ms(&probed),
            &format!(
                "mean of {} requests one after another to the same server from a client on the harness's runtime, busy with the sandbox; baseline: the model's 200 ms",
                probed.len()
            ),
        ),
    ])
}

/// A model request's mean duration against the slow model's latency.
fn request_figure(what: &str, ms: Option<f64>, note: &str) -> Figure {
    match ms {
        Some(ms) => Figure::new("throughput", what, "ms", ms, Some(SLOW_MODEL.as_secs_f64() * 1000.0)).note(note),
        None => Figure::unavailable("throughput", what, "ms", "no request completed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_per_reply_figure_divides_by_replies_and_keeps_why_it_is_unavailable() {
        let flood = |answered| Flood {
            answered,
            posted: 10,
            per_sec: 1.0,
            stage_cpu: 0.0,
            rest: 0,
            rest_kinds: String::new(),
        };
        let (ten, none) = (flood(10), flood(0));
        let f = per_reply("x", "ms", (20.0, &ten), (10.0, &ten), "why".into());
        assert_eq!((f.value, f.baseline, f.note.as_str()), (Some(2.0), Some(1.0), "why"));
        let f = per_reply("x", "ms", (20.0, &none), (10.0, &ten), "why".into());
        assert_eq!(f.value, None);
        assert!(f.note.starts_with("not available"), "{}", f.note);
    }

    #[test]
    fn requests_are_counted_by_method_and_last_word() {
        let made: Vec<(String, String)> = [
            ("POST", "/api/v10/channels/12/messages"),
            ("POST", "/api/v10/channels/13/typing"),
            ("POST", "/api/v10/channels/14/messages"),
            ("GET", "/api/v10/channels/14/messages/99"),
        ]
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
        assert_eq!(
            request_kinds(&made),
            "POST messages: 2, GET messages: 1, POST typing: 1"
        );
        assert_eq!(request_kinds(&[]), "");
    }

    #[test]
    fn a_mean_is_in_milliseconds_and_none_without_samples() {
        assert_eq!(mean_ms(&[0.25, 0.5]), Some(375.0));
        assert_eq!(mean_ms(&[]), None);
    }

    #[test]
    fn the_flood_goes_round_robin_over_bots_then_channels() {
        let bots = vec!["A".to_string(), "B".to_string()];
        let p = posts(&bots, 3, 7);
        let got: Vec<(String, String)> = p
            .iter()
            .map(|p| (p.channel.clone(), p.content.split(' ').next().unwrap().to_string()))
            .collect();
        assert_eq!(got[0], ("c000".into(), "<@A>".into()));
        assert_eq!(got[1], ("c000".into(), "<@B>".into()));
        assert_eq!(got[2], ("c001".into(), "<@A>".into()));
        assert_eq!(got[6], ("c000".into(), "<@A>".into()));
    }
}
