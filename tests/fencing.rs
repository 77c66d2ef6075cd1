//! Two processes running the same cell (a stray duplicate): Discord (here the sandbox) accepts
//! both gateway sessions and delivers every event to both, so both answer. The deterministic
//! nonce sent with `enforce_nonce` keeps the second reply off the channel, and the process that
//! came second sees Discord return a message older than its request: it logs an error and
//! counts `troupe_duplicate_process_replies_total`.

mod common;

use common::{wait_for, Control, Process};

const CAST: &str = r#"
[sandbox]
humans = ["alice"]
[[sandbox.guilds]]
name = "G"
channels = [{ name = "general" }]

[backends.offline]
provider = "echo"

[[agents]]
name = "Ada"
backend = "offline"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stray_duplicate_is_kept_off_the_channel_and_reported_loudly() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("agents.toml");
    std::fs::write(&config, CAST).unwrap();
    // The stray is slower (its model takes 1.5 s), so its request starts after the first reply
    // exists: the case detection covers.
    let stray_config = dir.path().join("stray.toml");
    std::fs::write(
        &stray_config,
        CAST.replace("provider = \"echo\"", "provider = \"echo\"\ndelay_ms = 1500"),
    )
    .unwrap();
    let config = config.to_str().unwrap();
    let sandbox = Process::spawn(&["sandbox", "--config", config, "--listen", "127.0.0.1:0"]);
    let sb = Control::new(&sandbox.url);
    let run = |config: &str, state: &str| {
        let state = dir.path().join(state);
        Process::spawn_with(
            &[
                "--config",
                config,
                "--sandbox-url",
                &sandbox.url,
                "--state-dir",
                state.to_str().unwrap(),
            ],
            &[],
            "http listening on ",
        )
    };
    let cell = run(config, "state");
    let stray = run(stray_config.to_str().unwrap(), "stray-state");

    // The sandbox, like Discord, lets both hold the bot.
    let ada = sb.id_of("users", "Ada").await;
    wait_for("two live sessions for Ada", || async {
        let state = sb.state().await;
        let held = state["sessions"]
            .as_array()?
            .iter()
            .filter(|s| s["bot_id"] == ada.as_str())
            .count();
        (held == 2).then_some(())
    })
    .await;

    let asked = sb.say("general", "alice", "<@Ada> who answers?").await;
    let id = asked["id"].as_str().unwrap();
    let http = stray.http_url.clone().unwrap();
    wait_for("the stray to report the duplicate", || async {
        let metrics = reqwest::get(format!("{http}/metrics")).await.ok()?.text().await.ok()?;
        metrics
            .contains("troupe_duplicate_process_replies_total{agent=\"Ada\"} 1")
            .then_some(())
    })
    .await;
    assert_eq!(
        sb.replies("general", "Ada", id).await.len(),
        1,
        "the nonce kept the second reply off"
    );
    // The process that answered first saw its own reply: no false alarm there.
    let first = reqwest::get(format!("{}/metrics", cell.http_url.clone().unwrap()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !first.contains("troupe_duplicate_process_replies_total{agent=\"Ada\"} 1"),
        "{first}"
    );
    assert!(!cell.stderr().contains("another process is answering"));
    let log = stray.stderr();
    assert!(
        log.contains("ERROR") && log.contains("another process is answering as this bot"),
        "{log}"
    );
}
