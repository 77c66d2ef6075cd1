//! The real `troupe` binary: the shipped `agents.toml` answers over the sandbox, SIGTERM exits 0,
//! bad configuration exits 2 before anything connects, `--help` explains every flag.

mod common;

use std::process::Command;

use common::{Control, Process};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shipped_config_answers_and_sigterm_exits_cleanly() {
    let state = tempfile::tempdir().unwrap();
    let mut troupe = Process::spawn(&[
        "--sandbox-listen",
        "127.0.0.1:0",
        "--state-dir",
        state.path().to_str().unwrap(),
    ]);
    let sb = Control::new(&troupe.url);
    sb.wait_connected(&["Ada", "Basil"]).await;
    let asked = sb.say("general", "alice", "<@Ada> are you there?").await;
    let reply = sb.reply_to("general", "Ada", asked["id"].as_str().unwrap()).await;
    assert!(reply["content"].as_str().unwrap().contains("are you there?"));
    let status = troupe.terminate();
    assert_eq!(status.code(), Some(0), "stderr:\n{}", troupe.stderr());
}

fn run(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_troupe"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap()
}

#[test]
fn unknown_key_exits_2_naming_file_line_and_fix() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agents.toml");
    std::fs::write(
        &path,
        "[backends.b]\nprovider = \"echo\"\n\n[[agents]]\nname = \"Ada\"\nbackend = \"b\"\nsytem_prompt = \"hi\"\n",
    )
    .unwrap();
    let out = run(&["--config", path.to_str().unwrap(), "--sandbox-listen", "127.0.0.1:0"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(&format!("{}:7:", path.display())), "{stderr}");
    assert!(stderr.contains("did you mean `system_prompt`?"), "{stderr}");
    // Nothing started: no sandbox address was printed.
    assert!(!String::from_utf8_lossy(&out.stdout).contains("sandbox listening"));
}

#[test]
fn missing_config_exits_2_naming_the_file() {
    let out = run(&["--config", "/nonexistent/agents.toml"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("/nonexistent/agents.toml: cannot read the configuration"),
        "{stderr}"
    );
}

#[test]
fn semantic_errors_are_all_reported_with_fields() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agents.toml");
    std::fs::write(
        &path,
        "[backends.b]\nprovider = \"echo\"\n[[agents]]\nname = \"Ada\"\nbackend = \"b\"\n[[agents]]\nname = \"Ada\"\nbackend = \"nope\"\nmemory = \"forever\"\n",
    )
    .unwrap();
    let out = run(&["--config", path.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    for needle in [
        "agents[1].name",
        "agents[1].backend",
        "agents[1].memory",
        ":7:",
        ":8:",
        ":9:",
    ] {
        assert!(stderr.contains(needle), "missing {needle} in {stderr}");
    }
}

#[test]
fn help_explains_every_flag() {
    let out = run(&["--help"]);
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--config",
        "--debug",
        "--sandbox-listen",
        "--sandbox-url",
        "--log-format",
        "sandbox",
    ] {
        assert!(help.contains(flag), "--help does not mention {flag}:\n{help}");
    }
    let out = run(&["sandbox", "--help"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("--listen"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn troupe_restarts_against_a_sandbox_that_keeps_its_world() {
    let sandbox = Process::spawn(&["sandbox", "--listen", "127.0.0.1:0"]);
    let sb = Control::new(&sandbox.url);
    let state = tempfile::tempdir().unwrap();
    for round in 0..2 {
        let mut troupe = Process::spawn(&[
            "--sandbox-url",
            &sandbox.url,
            "--state-dir",
            state.path().to_str().unwrap(),
        ]);
        assert_eq!(
            troupe.url, sandbox.url,
            "troupe must use the remote sandbox, not start its own"
        );
        sb.wait_connected(&["Ada"]).await;
        let asked = sb.say("general", "alice", &format!("<@Ada> round {round}")).await;
        sb.reply_to("general", "Ada", asked["id"].as_str().unwrap()).await;
        assert_eq!(troupe.terminate().code(), Some(0));
    }
    // The sandbox kept both rounds: two questions, two answers.
    assert_eq!(sb.messages("general").await.len(), 4);
    // Against a remote sandbox too, troupe's REST went to https://discord.com through the
    // sandbox's proxy, with the CA it read from /sandbox/ca.pem.
    let requests = sb.requests().await;
    assert!(
        !requests.is_empty() && requests.iter().all(|r| r["tls"] == true),
        "{requests:#?}"
    );
}

#[test]
fn a_store_in_use_by_another_troupe_exits_6() {
    let state = tempfile::tempdir().unwrap();
    let dir = state.path().to_str().unwrap();
    let _first = Process::spawn(&["--sandbox-listen", "127.0.0.1:0", "--state-dir", dir]);
    let out = run(&["--sandbox-listen", "127.0.0.1:0", "--state-dir", dir]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(6), "{stderr}");
    assert!(stderr.contains("is locked by another process"), "{stderr}");
}
