//! Memory survives `kill -9`: a fact told in a DM is in the next prompt, still there after the
//! process is killed and restarted, and never in another user's prompt. Runs the real binary
//! against a separate `troupe sandbox` process, which keeps its world across the restart.

mod common;

use common::{Control, Process};

const CONFIG: &str = r#"
[backends.mirror]
provider = "echo"
reply = "prompt"

[[agents]]
name = "Ada"
backend = "mirror"
system_prompt = "You are {agent}, talking with {username}."
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dm_memory_survives_sigkill_and_stays_private() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("agents.toml");
    std::fs::write(&config, CONFIG).unwrap();
    let config = config.to_str().unwrap();
    let state = dir.path().join("state");
    let state = state.to_str().unwrap();

    let sandbox = Process::spawn(&["sandbox", "--config", config, "--listen", "127.0.0.1:0"]);
    let sb = Control::new(&sandbox.url);
    let args = ["--config", config, "--sandbox-url", &sandbox.url, "--state-dir", state];

    let mut troupe = Process::spawn(&args);
    sb.wait_connected(&["Ada"]).await;
    let told = sb.dm("alice", "Ada", "my cat is called Tom").await;
    let dm = told["channel_id"].as_str().unwrap().to_string();
    sb.reply_to(&dm, "Ada", told["id"].as_str().unwrap()).await;
    let asked = sb.dm("alice", "Ada", "what is my cat called?").await;
    let reply = sb.reply_to(&dm, "Ada", asked["id"].as_str().unwrap()).await;
    let prompt = reply["content"].as_str().unwrap();
    assert!(prompt.contains("[alice] my cat is called Tom"), "{prompt}");
    assert!(
        prompt.starts_with("[system] You are Ada, talking with alice."),
        "{prompt}"
    );

    // SIGKILL: no shutdown path runs.
    troupe.child.kill().unwrap();
    troupe.child.wait().unwrap();
    let _restarted = Process::spawn(&args);
    sb.wait_connected(&["Ada"]).await;

    let after = sb.dm("alice", "Ada", "and now?").await;
    let reply = sb.reply_to(&dm, "Ada", after["id"].as_str().unwrap()).await;
    let prompt = reply["content"].as_str().unwrap();
    assert!(
        prompt.contains("[alice] my cat is called Tom"),
        "memory lost across kill -9: {prompt}"
    );
    assert!(prompt.contains("[alice] what is my cat called?"), "{prompt}");

    let other = sb.dm("bob", "Ada", "hello").await;
    let bob_dm = other["channel_id"].as_str().unwrap().to_string();
    let reply = sb.reply_to(&bob_dm, "Ada", other["id"].as_str().unwrap()).await;
    let prompt = reply["content"].as_str().unwrap();
    assert!(!prompt.contains("Tom"), "alice's DM leaked into bob's prompt: {prompt}");
    assert!(prompt.contains("[bob] hello"), "{prompt}");
}
