//! No secret reaches a log line, an error or an endpoint: the real binary runs in live mode
//! (Discord token and LLM API key from the environment) against a sandbox and a local
//! OpenAI-compatible server, with `--debug`, and everything it printed is scanned. The LLM
//! server's first answer is a 401 that echoes the key, as providers do.

mod common;

use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use common::{wait_for, Control, Process};
use troupe::sandbox::spec::WorldSpec;
use troupe::sandbox::Sandbox;

const DISCORD_TOKEN: &str = "MTE5MTE2ODkxNDIzOTc4MjkxMg.Gx7Kq2.live-looking-discord-bot-token-do-not-log";
const API_KEY: &str = "sk-proj-L1veLooking0penAiKey-do-not-log-4f2a9c";

/// What the fake LLM server saw.
#[derive(Default)]
struct Seen {
    authorizations: Vec<String>,
}

async fn completions(State(seen): State<Arc<Mutex<Seen>>>, headers: HeaderMap) -> Response {
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let first = {
        let mut seen = seen.lock().unwrap();
        seen.authorizations.push(auth);
        seen.authorizations.len() == 1
    };
    if first {
        let body = serde_json::json!({"error": {
            "message": format!("Incorrect API key provided: {API_KEY}. You can find your API key in your account."),
            "type": "invalid_request_error",
            "code": "invalid_api_key",
        }});
        return (StatusCode::UNAUTHORIZED, axum::Json(body)).into_response();
    }
    let chunks = [
        r#"{"choices":[{"index":0,"delta":{"content":"all good"},"finish_reason":null}]}"#,
        r#"{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#,
        r#"{"choices":[],"usage":{"prompt_tokens":12,"completion_tokens":2}}"#,
        "[DONE]",
    ];
    let body: String = chunks.iter().map(|c| format!("data: {c}\n\n")).collect();
    ([("content-type", "text/event-stream")], body).into_response()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_token_or_key_appears_in_logs_errors_or_endpoints() {
    // The Discord side: a sandbox that knows Ada by her "real" token.
    let sandbox = Sandbox::start(
        &WorldSpec::default(),
        &[("Ada".to_string(), DISCORD_TOKEN.to_string())],
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    let sb = Control::new(&sandbox.url());
    // The LLM side.
    let seen = Arc::new(Mutex::new(Seen::default()));
    let app = axum::Router::new()
        .route("/v1/chat/completions", post(completions))
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let llm = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("agents.toml");
    std::fs::write(
        &config,
        format!(
            "mode = \"live\"\n[discord]\napi_url = \"{}\"\n\n[backends.remote]\nprovider = \"openai\"\n\
             base_url = \"http://{llm}/v1\"\nmodel = \"test-model\"\napi_key_env = \"TROUPE_SECRET_TEST_KEY\"\n\
             retries = {{ max_attempts = 1 }}\n\n[[agents]]\nname = \"Ada\"\nbackend = \"remote\"\n\
             token_env = \"TROUPE_SECRET_TEST_TOKEN\"\n",
            sandbox.url()
        ),
    )
    .unwrap();
    let mut troupe = Process::spawn_with(
        &[
            "--config",
            config.to_str().unwrap(),
            "--state-dir",
            dir.path().join("state").to_str().unwrap(),
            "--debug",
        ],
        &[
            ("TROUPE_SECRET_TEST_TOKEN", DISCORD_TOKEN),
            ("TROUPE_SECRET_TEST_KEY", API_KEY),
        ],
        "http listening on ",
    );
    let http = troupe.http_url.clone().unwrap();
    sb.wait_connected(&["Ada"]).await;

    // A rejected key: the failure is logged, the key must not be.
    sb.say("general", "alice", "<@Ada> first").await;
    wait_for("the failed turn to be logged", || async {
        troupe.stderr().contains("giving up").then_some(())
    })
    .await;
    // Then a good answer.
    let asked = sb.say("general", "alice", "<@Ada> second").await;
    let reply = sb.reply_to("general", "Ada", asked["id"].as_str().unwrap()).await;
    assert!(reply["content"].as_str().unwrap().contains("all good"), "{reply}");

    let mut printed = String::new();
    for path in ["/metrics", "/readiness", "/liveness"] {
        printed.push_str(
            &reqwest::get(format!("{http}{path}"))
                .await
                .unwrap()
                .text()
                .await
                .unwrap(),
        );
    }
    assert_eq!(troupe.terminate().code(), Some(0), "{}", troupe.stderr());
    printed.push_str(&troupe.stderr());

    // The secrets were really in use (so the scan below means something) ...
    let auths = seen.lock().unwrap().authorizations.clone();
    assert!(
        auths.len() >= 2 && auths.iter().all(|a| *a == format!("Bearer {API_KEY}")),
        "{auths:?}"
    );
    assert!(
        printed.contains("giving up") && printed.contains("DEBUG"),
        "debug logs were captured"
    );
    // ... and never printed, not even in part.
    // A failure names the line with the secret masked, so the test output never carries it.
    for secret in [DISCORD_TOKEN, API_KEY] {
        for fragment in [secret, &secret[secret.len() - 16..]] {
            if let Some(line) = printed.lines().find(|l| l.contains(fragment)) {
                panic!("a secret was printed: {}", line.replace(fragment, "<SECRET>"));
            }
        }
    }
    sandbox.stop().await;
}
