//! The scenarios: each starts a fresh world, lets steady traffic flow from several humans
//! across channels and DMs while it injects one kind of fault, then counts what happened to
//! every message (see [`super::scenario`]).

use std::time::{Duration, Instant};

use serde_json::json;
use troupe_llm_test_server::Reply;

use super::ledger::MARKER_PREFIX;
use super::scenario::{Knobs, Scenario, ScenarioResult};
use super::traffic::{post, Kind, Mix};
use super::world::{Options, HUMANS};

/// The scenarios, in the order they run: name and what runs it.
pub const ALL: [&str; 11] = [
    "kill-live",
    "stream-kill",
    "kill-replay",
    "new-dm-kill",
    "webhook-kill",
    "gateway",
    "rest-send",
    "rest-history",
    "llm-outage",
    "breaker-exit",
    "overload",
];

/// Runs the named scenario.
pub async fn run(name: &'static str, knobs: Knobs, index: u64) -> ScenarioResult {
    let share = |percent: usize| (knobs.kill_cycles * percent / 100).max(1);
    let seed = knobs.seed ^ (index + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    match name {
        "kill-live" => kill_live(Scenario::begin(name, Options::default(), &knobs, seed).await, share(40)).await,
        "stream-kill" => {
            let o = Options {
                stream: true,
                ..Options::default()
            };
            stream_kill(Scenario::begin(name, o, &knobs, seed).await, share(10)).await
        }
        "kill-replay" => kill_replay(Scenario::begin(name, Options::default(), &knobs, seed).await, share(10)).await,
        "new-dm-kill" => {
            let n = share(20);
            let o = Options {
                new_humans: n,
                ..Options::default()
            };
            new_dm_kill(Scenario::begin(name, o, &knobs, seed).await, n).await
        }
        "webhook-kill" => webhook_kill(Scenario::begin(name, Options::default(), &knobs, seed).await, share(20)).await,
        "gateway" => gateway(Scenario::begin(name, Options::default(), &knobs, seed).await).await,
        "rest-send" => rest_send(Scenario::begin(name, Options::default(), &knobs, seed).await).await,
        "rest-history" => rest_history(Scenario::begin(name, Options::default(), &knobs, seed).await).await,
        "llm-outage" => llm_outage(Scenario::begin(name, Options::default(), &knobs, seed).await).await,
        "breaker-exit" => {
            let o = Options {
                breaker_failures: 3,
                ..Options::default()
            };
            breaker_exit(Scenario::begin(name, o, &knobs, seed).await).await
        }
        "overload" => {
            let o = Options {
                queue_limit: 2,
                max_concurrency: 1,
                ..Options::default()
            };
            overload(Scenario::begin(name, o, &knobs, seed).await).await
        }
        other => panic!("unknown scenario {other}; known: {ALL:?}"),
    }
}

/// `kill -9` at random moments while traffic flows.
async fn kill_live(mut s: Scenario, cycles: usize) -> ScenarioResult {
    let traffic = s.traffic(Mix::ALL, Duration::from_millis(150));
    for _ in 0..cycles {
        s.pause(200, 1500).await;
        s.kill_and_restart(0, 300).await;
    }
    traffic.stop().await;
    s.finish().await
}

/// `kill -9` while Ada streams her replies: the model takes 1.5 s per token, so a reply shows
/// `ack` (posted after a second without a sentence) before its markers arrive, and kills 0.5 to
/// 2.5 s apart often land in between. Every partial reply must end complete, once.
async fn stream_kill(mut s: Scenario, cycles: usize) -> ScenarioResult {
    let traffic = s.traffic(Mix::ALL, Duration::from_millis(400));
    for _ in 0..cycles {
        s.pause(500, 2500).await;
        s.kill_and_restart(0, 300).await;
    }
    traffic.stop().await;
    s.finish().await
}

/// Troupe down while messages pile up; started, killed in the middle of its replay, started
/// again.
async fn kill_replay(mut s: Scenario, cycles: usize) -> ScenarioResult {
    let traffic = s.traffic(Mix::ALL, Duration::from_millis(300));
    let mut mid_replay = 0;
    for _ in 0..cycles {
        s.world.troupe.kill9().await;
        let pile = s.rng.range(20, 60);
        for _ in 0..pile {
            let kind = s
                .rng
                .pick(&[Kind::Mention, Kind::Listen, Kind::Dm, Kind::Hook, Kind::Quiet]);
            let author = s.rng.pick(&HUMANS);
            post(&s.world, &s.ledger, kind, author, &mut s.rng).await;
        }
        // Slow REST down now and then, so the replay is still running when the kill comes.
        let slow = s.rng.pick(&[0, 20, 40, 80]);
        s.world.fault(json!({"delay_ms": slow})).await;
        s.world.troupe.start().await;
        // The kill comes once the replay has begun, sooner or later.
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline
            && !s
                .world
                .troupe
                .agent_states()
                .await
                .iter()
                .any(|a| a == "replaying backlog")
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        s.pause(0, 300).await;
        if s.world
            .troupe
            .agent_states()
            .await
            .iter()
            .any(|a| a == "replaying backlog")
        {
            mid_replay += 1;
        }
        s.world.troupe.kill9().await;
        s.world.fault(json!({"delay_ms": 0})).await;
        s.world.troupe.start().await;
        s.pause(500, 1500).await;
    }
    traffic.stop().await;
    s.notes.push(format!(
        "{mid_replay} of {cycles} second kills came while an agent was still replaying (the others while the backlog was being answered or after)"
    ));
    s.finish().await
}

/// Humans who never wrote to Ada send their first DM, and troupe is killed right after.
async fn new_dm_kill(mut s: Scenario, cycles: usize) -> ScenarioResult {
    let traffic = s.traffic(Mix::ALL, Duration::from_millis(250));
    for i in 0..cycles {
        s.pause(300, 1000).await;
        let who = format!("new{i}");
        post(&s.world, &s.ledger, Kind::Dm, &who, &mut s.rng).await;
        s.pause(0, 60).await;
        s.kill_and_restart(0, 200).await;
    }
    traffic.stop().await;
    s.finish().await
}

/// The webhook persona answering most of the traffic, killed at random moments.
async fn webhook_kill(mut s: Scenario, cycles: usize) -> ScenarioResult {
    let traffic = s.traffic(Mix::WEBHOOK, Duration::from_millis(150));
    for _ in 0..cycles {
        s.pause(200, 1500).await;
        s.kill_and_restart(0, 300).await;
    }
    traffic.stop().await;
    s.finish().await
}

/// Gateway sessions closed, told to reconnect, or invalidated (then refused for a while).
async fn gateway(mut s: Scenario) -> ScenarioResult {
    let traffic = s.traffic(Mix::ALL, Duration::from_millis(150));
    for _ in 0..s.knobs.fault_cycles {
        s.pause(1000, 3000).await;
        let action = s.rng.pick(&["close", "reconnect", "invalid_session"]);
        let bot = s.rng.pick(&["Ada", "Wren"]);
        let refuse = s.rng.pick(&[0u64, 0, 1000, 3000]);
        s.world
            .fault(json!({"gateway": {"bot": bot, "action": action, "refuse_ms": refuse}}))
            .await;
        s.world.troupe.disturb(Duration::from_millis(refuse + 1500));
        s.faults += 1;
    }
    traffic.stop().await;
    s.finish().await
}

/// Bursts of 2 to 12 answers 429 or 5xx on message creation, as a bot user and through the
/// webhook (troupe attempts a reply 3 times), while troupe runs steadily.
async fn rest_send(mut s: Scenario) -> ScenarioResult {
    let traffic = s.traffic(Mix::ALL, Duration::from_millis(150));
    for _ in 0..s.knobs.fault_cycles {
        s.pause(1000, 3000).await;
        let path = s.rng.pick(&["/messages", "/messages", "/webhooks/"]);
        rest_burst(&mut s, path, "POST").await;
    }
    traffic.stop().await;
    s.finish().await
}

/// Bursts of 429 or 5xx on history reads (`GET /channels/{id}/messages?after=..`), each
/// followed by a replay: after a restart (SIGTERM) or an invalidated session.
async fn rest_history(mut s: Scenario) -> ScenarioResult {
    let traffic = s.traffic(Mix::ALL, Duration::from_millis(150));
    for _ in 0..s.knobs.fault_cycles.div_ceil(2) {
        s.pause(2000, 4000).await;
        rest_burst(&mut s, "/messages?", "GET").await;
        if s.rng.range(0, 2) == 0 {
            let code = s.world.troupe.terminate().await;
            if code != Some(0) {
                s.notes.push(format!("SIGTERM exit code {code:?}"));
            }
            s.world.troupe.start().await;
        } else {
            let bot = s.rng.pick(&["Ada", "Wren"]);
            s.world
                .fault(json!({"gateway": {"bot": bot, "action": "invalid_session"}}))
                .await;
            s.world.troupe.disturb(Duration::from_millis(1500));
        }
    }
    traffic.stop().await;
    s.finish().await
}

/// The next 2 to 12 `method` calls whose path contains `path` fail with 429 (with a
/// `retry_after` of 0.2 to 2 s) or a 5xx.
async fn rest_burst(s: &mut Scenario, path: &str, method: &str) {
    let status = s.rng.pick(&[429u16, 500, 502, 503]);
    let count = s.rng.range(2, 13);
    let retry_after = s.rng.range(2, 20) as f64 / 10.0;
    s.world
        .fault(
            json!({"rest": {"status": status, "count": count, "retry_after": retry_after,
                               "path_contains": path, "method": method}}),
        )
        .await;
    s.faults += 1;
}

/// An outage, by turns: 503, 529, 429 with `retry-after`, dropped connections.
fn outage(n: usize) -> Reply {
    match n % 4 {
        0 => Reply::error(
            503,
            r#"{"error":{"message":"Service Unavailable","type":"server_error"}}"#,
        ),
        1 => Reply::error(529, r#"{"error":{"message":"Overloaded","type":"overloaded_error"}}"#),
        2 => Reply::error(
            429,
            r#"{"error":{"message":"Rate limit reached","type":"rate_limit_error"}}"#,
        )
        .retry_after("5"),
        _ => Reply::dropped_after(0),
    }
}

/// The model unavailable for 30 s to 2 min (shorter in the smoke test).
async fn llm_outage(mut s: Scenario) -> ScenarioResult {
    let traffic = s.traffic(Mix::ALL, Duration::from_millis(250));
    for (n, d) in s.knobs.outages.clone().into_iter().enumerate() {
        s.pause(2000, 4000).await;
        s.world.llm.set_outage(Some(outage(n)));
        s.faults += 1;
        tokio::time::sleep(d).await;
        s.world.llm.set_outage(None);
    }
    s.pause(3000, 5000).await;
    traffic.stop().await;
    s.finish().await
}

/// Outages long enough to trip the breaker (`max_failures = 3`, `on_trip = "exit"`): troupe
/// exits with code 7 and the harness restarts it, as an orchestrator would.
async fn breaker_exit(mut s: Scenario) -> ScenarioResult {
    let traffic = s.traffic(Mix::ALL, Duration::from_millis(250));
    let cycles = s.knobs.fault_cycles.div_ceil(5).max(1);
    for n in 0..cycles {
        s.pause(2000, 4000).await;
        s.world.llm.set_outage(Some(outage(n % 2)));
        s.faults += 1;
        s.pause(8000, 15000).await;
        s.world.llm.set_outage(None);
        // The watcher restarts troupe after each exit; wait until it is back.
        let back = s.world.troupe.wait_ready(Duration::from_secs(60)).await;
        if !back {
            s.notes.push("troupe not ready 60 s after an outage".into());
        }
    }
    traffic.stop().await;
    let exits = s.world.troupe.lifecycle().exits;
    if !exits.contains_key(&7) {
        s.notes.push(format!(
            "the breaker never made troupe exit with code 7 (exits: {exits:?})"
        ));
    }
    s.finish().await
}

/// A slow model, one request at a time and `queue_limit = 2`, under bursts of messages.
async fn overload(mut s: Scenario) -> ScenarioResult {
    s.world
        .llm
        .set_default(Reply::echo_markers(MARKER_PREFIX).ttft(Duration::from_millis(400)));
    let traffic = s.traffic(Mix::ALL, Duration::from_millis(400));
    for _ in 0..s.knobs.fault_cycles.div_ceil(2).max(1) {
        s.pause(1000, 3000).await;
        let kind = s.rng.pick(&[Kind::Mention, Kind::Listen, Kind::Hook]);
        for _ in 0..s.rng.range(12, 24) {
            let author = s.rng.pick(&HUMANS);
            post(&s.world, &s.ledger, kind, author, &mut s.rng).await;
        }
        s.faults += 1;
    }
    traffic.stop().await;
    s.finish().await
}

/// A few cycles of most faults in one world, for `make test`: two `kill -9`s, a lost session,
/// a 503 burst on message creation, a first DM killed right after, and a short LLM outage.
pub async fn smoke(knobs: Knobs) -> ScenarioResult {
    let o = Options {
        new_humans: 1,
        ..Options::default()
    };
    let mut s = Scenario::begin("smoke", o, &knobs, knobs.seed).await;
    let traffic = s.traffic(Mix::ALL, Duration::from_millis(150));
    for _ in 0..2 {
        s.pause(300, 1000).await;
        s.kill_and_restart(0, 200).await;
    }
    s.world
        .fault(json!({"gateway": {"bot": "Ada", "action": "invalid_session", "refuse_ms": 500}}))
        .await;
    s.world.troupe.disturb(Duration::from_millis(2000));
    s.pause(1000, 2000).await;
    s.world
        .fault(json!({"rest": {"status": 503, "count": 2, "path_contains": "/messages", "method": "POST"}}))
        .await;
    s.pause(500, 1500).await;
    post(&s.world, &s.ledger, Kind::Dm, "new0", &mut s.rng).await;
    s.pause(0, 60).await;
    s.kill_and_restart(0, 200).await;
    s.world.llm.set_outage(Some(outage(0)));
    tokio::time::sleep(knobs.outages.first().copied().unwrap_or_default()).await;
    s.world.llm.set_outage(None);
    s.faults += 3;
    traffic.stop().await;
    s.finish().await
}
