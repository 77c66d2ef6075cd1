//! Exits of the real binary: the system watchdog's codes, the crash-loop back-off across quick
//! restarts, and graceful shutdown (in-flight turns finish; a second signal exits at once
//! without corrupting the store).

mod common;

use std::path::{Path, PathBuf};

use common::{wait_for, Control, Process};
use serde_json::Value;

/// Writes `agents.toml` text into `dir` and returns its path.
fn write_config(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("agents.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// One echo agent, Ada, on an in-process sandbox, with `extra` tables appended.
fn config_text(echo: &str, extra: &str) -> String {
    format!(
        "[sandbox]\nlisten = \"127.0.0.1:0\"\n\n[backends.offline]\nprovider = \"echo\"\n{echo}\n\n\
         [[agents]]\nname = \"Ada\"\nbackend = \"offline\"\n\n{extra}\n"
    )
}

fn spawn(config: &Path, state: &Path) -> Process {
    Process::spawn(&[
        "--config",
        config.to_str().unwrap(),
        "--state-dir",
        state.to_str().unwrap(),
    ])
}

async fn wait_stderr(p: &Process, needle: &str) -> String {
    wait_for(&format!("`{needle}` in troupe's stderr"), || async {
        let err = p.stderr();
        err.contains(needle).then_some(err)
    })
    .await
}

async fn get_json(url: &str) -> (u16, Value) {
    let resp = reqwest::get(url).await.unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

#[test]
fn load_average_at_the_limit_exits_8_after_a_clean_stop() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &config_text("", "[limits]\nmax_load_average = 0\ncheck_interval_secs = 0.05"),
    );
    let mut troupe = spawn(&config, &dir.path().join("state"));
    let status = troupe.wait_exit();
    let stderr = troupe.stderr();
    assert_eq!(status.code(), Some(8), "{stderr}");
    assert!(
        stderr.contains("is at or above [limits] max_load_average = 0"),
        "{stderr}"
    );
    assert!(
        stderr.contains("stopped"),
        "the store was flushed and the tree stopped first: {stderr}"
    );
}

#[test]
fn resident_memory_at_the_ceiling_exits_9() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &config_text(
            "",
            "[limits]\nmax_load_average = 1000000\nmax_rss_mb = 1\ncheck_interval_secs = 0.05",
        ),
    );
    let mut troupe = spawn(&config, &dir.path().join("state"));
    let status = troupe.wait_exit();
    let stderr = troupe.stderr();
    assert_eq!(status.code(), Some(9), "{stderr}");
    assert!(stderr.contains("max_rss_mb = 1"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quick_restarts_back_off_before_identifying() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    // One free start, then 30 s, 60 s: long enough that nothing connects during the test.
    let config = write_config(
        dir.path(),
        &config_text(
            "",
            "[restarts]\nwindow_secs = 600\nfree_starts = 1\nbackoff_initial_ms = 30000\nbackoff_max_ms = 60000",
        ),
    );

    let mut first = spawn(&config, &state);
    let http = first.http_url.clone().unwrap();
    wait_for("the first start to be ready", || async {
        (get_json(&format!("{http}/readiness")).await.0 == 200).then_some(())
    })
    .await;
    assert!(!first.stderr().contains("restart back-off"));
    assert_eq!(first.terminate().code(), Some(0));

    for (round, expected_ms) in [(2, 30_000), (3, 60_000)] {
        let mut troupe = spawn(&config, &state);
        let http = troupe.http_url.clone().unwrap();
        let stderr = wait_stderr(&troupe, "restart back-off").await;
        assert!(
            stderr.contains(&format!("backoff_ms={expected_ms}")),
            "start {round}: {stderr}"
        );
        assert!(stderr.contains(&format!("starts={round}")), "start {round}: {stderr}");
        let (status, body) = get_json(&format!("{http}/readiness")).await;
        assert_eq!(
            (status, body["phase"].as_str()),
            (503, Some("restart back-off")),
            "{body}"
        );
        assert_eq!(body["backoff_ms"], expected_ms);
        let (status, body) = get_json(&format!("{http}/liveness")).await;
        assert_eq!((status, body["actors"].as_str()), (200, Some("not started")), "{body}");
        // Ada has not identified with the sandbox.
        let sb = Control::new(&troupe.url);
        let ada = sb.id_of("users", "Ada").await;
        let connected = sb.state().await["connected_bots"].clone();
        assert!(
            !connected.to_string().contains(&ada),
            "Ada connected during the back-off: {connected}"
        );
        // A signal during the back-off still stops cleanly.
        assert_eq!(troupe.terminate().code(), Some(0), "{}", troupe.stderr());
    }
}

/// A sandbox in its own process (so it outlives troupe) and a config for Ada with a slow echo.
fn slow_ada(dir: &Path, delay_ms: u64, grace_secs: u64) -> PathBuf {
    write_config(
        dir,
        &config_text(
            &format!("delay_ms = {delay_ms}"),
            &format!("[conversations]\nshutdown_grace_secs = {grace_secs}"),
        ),
    )
}

/// Posts to Ada and waits until her turn is in flight (her typing indicator reached the sandbox).
async fn start_a_turn(sb: &Control) -> String {
    let asked = sb.say("general", "alice", "<@Ada> take your time").await;
    wait_for("Ada's typing indicator", || async {
        sb.requests()
            .await
            .iter()
            .any(|r| r["method"] == "POST" && r["path"].as_str().is_some_and(|p| p.ends_with("/typing")))
            .then_some(())
    })
    .await;
    asked["id"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_the_in_flight_turn_finish_then_exits_0() {
    let sandbox = Process::spawn(&["sandbox", "--listen", "127.0.0.1:0"]);
    let sb = Control::new(&sandbox.url);
    let dir = tempfile::tempdir().unwrap();
    let config = slow_ada(dir.path(), 3000, 20);
    let mut troupe = Process::spawn(&[
        "--config",
        config.to_str().unwrap(),
        "--state-dir",
        dir.path().join("state").to_str().unwrap(),
        "--sandbox-url",
        &sandbox.url,
    ]);
    sb.wait_connected(&["Ada"]).await;
    let asked = start_a_turn(&sb).await;
    let answered = |msgs: &[Value]| {
        msgs.iter()
            .any(|m| m["author"]["username"] == "Ada" && m["message_reference"]["message_id"] == asked.as_str())
    };
    assert!(
        !answered(&sb.messages("general").await),
        "the turn must still be in flight at SIGTERM"
    );
    let status = troupe.terminate();
    assert_eq!(status.code(), Some(0), "{}", troupe.stderr());
    assert!(
        answered(&sb.messages("general").await),
        "the in-flight reply was delivered before exiting"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_abandons_a_turn_past_the_grace_and_it_is_answered_after_restart() {
    let sandbox = Process::spawn(&["sandbox", "--listen", "127.0.0.1:0"]);
    let sb = Control::new(&sandbox.url);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let slow = tempfile::tempdir().unwrap();
    // The turn would take 60 s; the grace period is 1 s.
    let config = slow_ada(slow.path(), 60_000, 1);
    let args = |config: &Path| {
        vec![
            "--config".to_string(),
            config.display().to_string(),
            "--state-dir".to_string(),
            state.display().to_string(),
            "--sandbox-url".to_string(),
            sandbox.url.clone(),
        ]
    };
    let first = args(&config);
    let mut troupe = Process::spawn(&first.iter().map(String::as_str).collect::<Vec<_>>());
    sb.wait_connected(&["Ada"]).await;
    let asked = start_a_turn(&sb).await;
    let status = troupe.terminate();
    assert_eq!(status.code(), Some(0), "{}", troupe.stderr());
    assert!(troupe.stderr().contains("abandoned"), "{}", troupe.stderr());
    // The store reopens cleanly (the next troupe opens it before printing its address), and the
    // unfinished message is answered by it.
    let fast = slow_ada(dir.path(), 0, 20);
    let second = args(&fast);
    let _restarted = Process::spawn(&second.iter().map(String::as_str).collect::<Vec<_>>());
    sb.reply_to("general", "Ada", &asked).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_signal_exits_at_once_and_the_store_stays_usable() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    // The turn would take a minute and the grace period allows most of it.
    let config = slow_ada(dir.path(), 60_000, 50);
    let process = spawn(&config, &state);
    let sb = Control::new(&process.url);
    sb.wait_connected(&["Ada"]).await;
    start_a_turn(&sb).await;
    let mut process = process;
    process.signal("TERM");
    wait_stderr(&process, "a second signal exits at once").await;
    process.signal("INT");
    let status = process.wait_exit();
    let stderr = process.stderr();
    assert_eq!(status.code(), Some(10), "{stderr}");
    assert!(stderr.contains("second signal: exiting now"), "{stderr}");
    // Not locked, not corrupt: the next troupe can open it.
    let store = troupe::store::Store::open(&state).unwrap_or_else(|e| panic!("{e}"));
    store.check().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_run_ends_with_the_exit_request_it_received() {
    let (mut config, _dir) = common::config("[[agents]]\nname = \"Ada\"\nbackend = \"offline\"\n");
    config.limits.max_load_average = 0.0;
    config.limits.check_interval = std::time::Duration::from_millis(50);
    let ended = troupe::app::run(config, std::future::pending()).await.unwrap();
    let reason = ended.expect("the watchdog's request ended the run");
    assert_eq!(reason.code(), 8, "{reason}");
}
