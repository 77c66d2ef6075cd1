//! The operations endpoints over a real socket: readiness follows each agent's gateway (503
//! while the sandbox has dropped it, 200 once it is back), liveness does not depend on Discord,
//! and `/metrics` parses as Prometheus text and counts what happened.

mod common;

use std::collections::HashMap;

use common::{wait_for, Control};
use serde_json::{json, Value};
use troupe::app;

async fn get(url: &str) -> (u16, String) {
    let resp = reqwest::get(url).await.unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

async fn get_json(url: &str) -> (u16, Value) {
    let (status, body) = get(url).await;
    (
        status,
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{url}: {e}: {body}")),
    )
}

/// The state `/readiness` gives for `agent`.
fn agent_state(body: &Value, agent: &str) -> String {
    body["agents"]
        .as_array()
        .and_then(|a| a.iter().find(|x| x["name"] == agent))
        .and_then(|x| x["state"].as_str())
        .unwrap_or_else(|| panic!("no agent {agent} in {body}"))
        .to_string()
}

async fn wait_ready(http: &str) -> Value {
    // 200 comes as soon as every gateway is connected; the backlog replay that follows shows as
    // `replaying backlog` in the body. Wait for both.
    wait_for("readiness 200 with every agent ready", || async {
        let (status, body) = get_json(&format!("{http}/readiness")).await;
        let all_ready = body["agents"]
            .as_array()
            .is_some_and(|a| a.iter().all(|x| x["state"] == "ready"));
        (status == 200 && all_ready).then_some(body)
    })
    .await
}

async fn readiness_drops_and_recovers(action: &str, refuse_ms: u64) {
    let (config, _dir) = common::two_agents();
    let running = app::start(config).await.unwrap();
    let http = running.http_url();
    let sb = Control::new(running.sandbox_url().unwrap());
    let body = wait_ready(&http).await;
    assert_eq!(body["phase"], "running");
    assert_eq!(body["store"], "open");
    assert_eq!(agent_state(&body, "Ada"), "ready");

    let faulted = sb
        .faults(json!({"gateway": {"bot": "Ada", "action": action, "refuse_ms": refuse_ms}}))
        .await;
    assert_eq!(
        faulted["gateway_sessions_affected"], 1,
        "the fault hit Ada's session: {faulted}"
    );
    let down = wait_for("readiness 503 naming Ada as connecting", || async {
        let (status, body) = get_json(&format!("{http}/readiness")).await;
        (status == 503 && agent_state(&body, "Ada") == "connecting").then_some(body)
    })
    .await;
    assert_eq!(
        agent_state(&down, "Basil"),
        "ready",
        "only Ada lost its gateway: {down}"
    );
    // Liveness does not depend on Discord.
    assert_eq!(get(&format!("{http}/liveness")).await.0, 200);

    let back = wait_ready(&http).await;
    assert_eq!(agent_state(&back, "Ada"), "ready");
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_is_503_while_a_closed_gateway_is_refused_and_200_after() {
    readiness_drops_and_recovers("close", 2000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_is_503_after_an_invalid_session_until_identify_succeeds() {
    // After a non-resumable INVALID_SESSION, serenity 0.12 keeps the old shard's stage for up to
    // 5 s while it restarts the shard (its runner waits on its own shutdown), so the drop becomes
    // visible once the new shard's IDENTIFY is refused: the refusal must outlast that stall.
    readiness_drops_and_recovers("invalid_session", 8000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn liveness_is_200_and_readiness_503_when_discord_is_unreachable() {
    // Live mode against an API that nothing listens on: the gateway never connects.
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "not-a-real-token").unwrap();
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let text = format!(
        "mode = \"live\"\n[http]\nlisten = \"127.0.0.1:0\"\n[discord]\napi_url = \"http://{closed}\"\n\
         [backends.offline]\nprovider = \"echo\"\n[[agents]]\nname = \"Ada\"\nbackend = \"offline\"\n\
         token_file = \"{}\"\n",
        token.display()
    );
    let mut config = troupe::config::Config::parse("live.toml", &text).unwrap();
    config.store_path = dir.path().join("state");
    let running = app::start(config).await.unwrap();
    let http = running.http_url();
    let (status, body) = get_json(&format!("{http}/liveness")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["actors"], "running");
    let (status, body) = get_json(&format!("{http}/readiness")).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(agent_state(&body, "Ada"), "connecting");
    running.stop().await;
}

/// `name{labels}` → value for every sample of the exposition.
fn samples(text: &str) -> HashMap<String, f64> {
    let lines = text.lines().map(|l| Ok(l.to_string()));
    let scrape = prometheus_parse::Scrape::parse(lines).unwrap_or_else(|e| panic!("not Prometheus text: {e}\n{text}"));
    scrape
        .samples
        .into_iter()
        .map(|s| {
            let mut labels: Vec<String> = s.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            labels.sort();
            let value = match s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                prometheus_parse::Value::Histogram(buckets) => buckets.last().map_or(0.0, |b| b.count),
                prometheus_parse::Value::Summary(_) => f64::NAN,
            };
            (format!("{}{{{}}}", s.metric, labels.join(",")), value)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_parse_and_count_what_happened() {
    // Names no other test in this binary uses: the recorder is per process.
    let (config, _dir) = common::config(
        "[[agents]]\nname = \"Mira\"\nbackend = \"offline\"\n\n[[agents]]\nname = \"Nox\"\nbackend = \"offline\"\n",
    );
    let running = app::start(config).await.unwrap();
    let http = running.http_url();
    let sb = Control::new(running.sandbox_url().unwrap());
    wait_ready(&http).await;
    let asked = sb.say("general", "alice", "<@Mira> count this").await;
    sb.reply_to("general", "Mira", asked["id"].as_str().unwrap()).await;

    // Both agents also receive Mira's reply over the gateway.
    let text = wait_for("metrics counting the reply and its echo", || async {
        let (status, text) = get(&format!("{http}/metrics")).await;
        assert_eq!(status, 200);
        let m = samples(&text);
        let received = |a: &str| m.get(&format!("troupe_messages_received_total{{agent={a}}}")).copied();
        (m.get("troupe_replies_sent_total{agent=Mira}") == Some(&1.0)
            && received("Mira") == Some(2.0)
            && received("Nox") == Some(2.0))
        .then_some(text)
    })
    .await;
    let m = samples(&text);
    let at = |key: &str| *m.get(key).unwrap_or_else(|| panic!("no {key} in\n{text}"));
    assert_eq!(at("troupe_messages_processed_total{agent=Mira,reason=mentioned}"), 1.0);
    assert_eq!(at("troupe_messages_ignored_total{agent=Mira,reason=own_message}"), 1.0);
    assert_eq!(at("troupe_messages_ignored_total{agent=Nox,reason=not_addressed}"), 1.0);
    assert_eq!(
        at("troupe_messages_ignored_total{agent=Nox,reason=unaddressed_bot}"),
        1.0
    );
    // Neither message addresses Nox: its gateway edge passed both on without their text, and
    // they were ignored for the reasons above. Mira's own reply too; not the one for her.
    assert_eq!(at("troupe_messages_skipped_total{agent=Nox}"), 2.0);
    assert_eq!(at("troupe_messages_skipped_total{agent=Mira}"), 1.0);
    assert_eq!(at("troupe_replies_sent_total{agent=Mira}"), 1.0);
    assert_eq!(at("troupe_llm_requests_total{backend=offline,outcome=ok}"), 1.0);
    assert_eq!(
        at("troupe_llm_request_duration_seconds{backend=offline}"),
        1.0,
        "one observation"
    );
    assert_eq!(at("troupe_gateway_connected{agent=Mira}"), 1.0);
    assert_eq!(at("troupe_breaker_state{agent=Mira}"), 0.0);
    assert_eq!(at("troupe_active_conversations{}"), 1.0);
    assert!(
        text.contains("# TYPE troupe_llm_request_duration_seconds histogram"),
        "{text}"
    );
    assert!(m.contains_key("troupe_load_average{}"), "{text}");

    // No user or channel ID is a label value.
    let state = sb.state().await;
    let mut ids: Vec<String> = Vec::new();
    for kind in ["users", "channels"] {
        for x in state[kind].as_array().unwrap() {
            ids.push(x["id"].as_str().unwrap().to_string());
        }
    }
    for key in m.keys() {
        for id in &ids {
            assert!(!key.contains(id.as_str()), "{key} carries an ID");
        }
    }
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_known_series_is_at_zero_right_after_start() {
    // An agent and a backend no other test in this binary uses (the recorder is per process).
    let (config, _dir) =
        common::config("[backends.quiet]\nprovider = \"echo\"\n\n[[agents]]\nname = \"Zeno\"\nbackend = \"quiet\"\n");
    let running = app::start(config).await.unwrap();
    let (status, text) = get(&format!("{}/metrics", running.http_url())).await;
    assert_eq!(status, 200);
    let m = samples(&text);
    let zero = |key: String| {
        assert_eq!(m.get(&key), Some(&0.0), "{key} is not 0 in\n{text}");
    };
    for name in [
        "troupe_messages_received_total",
        "troupe_replies_sent_total",
        "troupe_chains_blocked_total",
        "troupe_backlog_messages",
        "troupe_pending_messages",
    ] {
        zero(format!("{name}{{agent=Zeno}}"));
    }
    zero("troupe_messages_processed_total{agent=Zeno,reason=mentioned}".into());
    zero("troupe_messages_ignored_total{agent=Zeno,reason=not_addressed}".into());
    zero("troupe_llm_tokens_total{agent=Zeno,kind=output}".into());
    for cause in ["llm", "breaker", "queue", "delivery", "history"] {
        zero(format!("troupe_message_retries_total{{agent=Zeno,cause={cause}}}"));
    }
    for cause in ["llm", "auth", "bad_request", "delivery", "age", "panic", "shed"] {
        zero(format!("troupe_message_give_ups_total{{agent=Zeno,cause={cause}}}"));
    }
    for outcome in ["ok", "queue_full", "timeout", "rate_limit"] {
        zero(format!("troupe_llm_requests_total{{backend=quiet,outcome={outcome}}}"));
    }
    zero("troupe_llm_retries_total{backend=quiet}".into());
    zero("troupe_llm_request_duration_seconds{backend=quiet}".into());
    assert!(text.contains("# TYPE troupe_pending_messages gauge"), "{text}");
    assert!(text.contains("# TYPE troupe_message_give_ups_total counter"), "{text}");
    running.stop().await;
}
