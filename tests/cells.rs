//! Cells: two troupe processes split one cast over one standalone sandbox, each answering only
//! its own agents from its own store, each saying which cell it is in `/readiness` and the
//! metrics; a missing or out-of-range cell exits 2 before anything starts; `check-config` shows
//! which agents each cell runs.

mod common;

use std::process::Command;

use common::{wait_for, Control, Process};
use serde_json::Value;

const CAST: &str = r#"
[sandbox]
humans = ["alice"]
[[sandbox.guilds]]
name = "G"
channels = [{ name = "general" }]

[cells]
count = 2

[backends.offline]
provider = "echo"

[[agents]]
name = "Ada"
backend = "offline"
cell = 0

[[agents]]
name = "Basil"
backend = "offline"
cell = 1
"#;

/// Runs the binary without any cell hint from the test's own environment.
fn troupe(args: &[&str], envs: &[(&str, &str)]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_troupe"))
        .args(args)
        .env_remove("TROUPE_CELL")
        .env_remove("TROUPE_POD_INDEX")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .envs(envs.iter().copied())
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap()
}

fn write_config(dir: &tempfile::TempDir, text: &str) -> String {
    let path = dir.path().join("agents.toml");
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

async fn get_json(url: &str) -> Value {
    reqwest::get(url).await.unwrap().json().await.unwrap()
}

/// Replies by `author` to the message `id` in #general.
async fn replies(sb: &Control, author: &str, id: &str) -> usize {
    sb.replies("general", author, id).await.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_cells_share_one_sandbox_and_each_answers_only_its_agents() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(&dir, CAST);
    let state = dir.path().join("state");
    let state = state.to_str().unwrap();
    let sandbox = Process::spawn(&["sandbox", "--config", &config, "--listen", "127.0.0.1:0"]);
    let sb = Control::new(&sandbox.url);
    let cell = |k: &'static str| {
        Process::spawn_with(
            &[
                "--config",
                &config,
                "--sandbox-url",
                &sandbox.url,
                "--state-dir",
                state,
                "--cell",
                k,
            ],
            &[],
            "http listening on ",
        )
    };
    let (mut zero, mut one) = (cell("0"), cell("1"));
    sb.wait_connected(&["Ada", "Basil"]).await;

    // Each bot has exactly one live session: nobody else holds it.
    let state_json = sb.state().await;
    let sessions = state_json["sessions"].as_array().unwrap();
    for bot in ["Ada", "Basil"] {
        let id = sb.id_of("users", bot).await;
        let held = sessions.iter().filter(|s| s["bot_id"] == id.as_str()).count();
        assert_eq!(held, 1, "{bot}: {sessions:?}");
    }

    // Each cell reports its cell and only its agents.
    for (p, index, agent) in [(&zero, 0, "Ada"), (&one, 1, "Basil")] {
        let http = p.http_url.clone().unwrap();
        let body = wait_for("the cell to be ready", || async {
            let body = get_json(&format!("{http}/readiness")).await;
            (body["ready"] == true).then_some(body)
        })
        .await;
        assert_eq!(body["cell"], serde_json::json!({"index": index, "count": 2}));
        let names: Vec<&str> = body["agents"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, [agent]);
        let metrics = reqwest::get(format!("{http}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            metrics.contains(&format!("troupe_cell_info{{cell=\"{index}\",count=\"2\"}} 1")),
            "{metrics}"
        );
    }

    // Both agents answer, once each, each from its own cell.
    let to_ada = sb.say("general", "alice", "<@Ada> one").await;
    let to_basil = sb.say("general", "alice", "<@Basil> two").await;
    let (ada_id, basil_id) = (to_ada["id"].as_str().unwrap(), to_basil["id"].as_str().unwrap());
    sb.reply_to("general", "Ada", ada_id).await;
    sb.reply_to("general", "Basil", basil_id).await;
    // A second round is the barrier: a duplicate of the first would have come before it.
    let again = sb.say("general", "alice", "<@Ada> <@Basil> three").await;
    let again_id = again["id"].as_str().unwrap();
    sb.reply_to("general", "Ada", again_id).await;
    sb.reply_to("general", "Basil", again_id).await;
    assert_eq!(replies(&sb, "Ada", ada_id).await, 1);
    assert_eq!(replies(&sb, "Basil", basil_id).await, 1);
    assert_eq!(replies(&sb, "Basil", ada_id).await, 0);
    assert_eq!(replies(&sb, "Ada", basil_id).await, 0);

    // Each cell has its own store under the state directory.
    assert_eq!(zero.terminate().code(), Some(0), "{}", zero.stderr());
    assert_eq!(one.terminate().code(), Some(0), "{}", one.stderr());
    for k in 0..2 {
        assert!(
            dir.path().join(format!("state/cell-{k}/db")).exists(),
            "cell-{k}'s store"
        );
    }
}

#[test]
fn a_missing_or_out_of_range_cell_exits_2_before_anything_starts() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(&dir, CAST);
    let args = ["--config", config.as_str(), "--sandbox-url", "http://127.0.0.1:9"];
    let out = troupe(&args, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("[cells] count is 2 but this process's cell is not set"),
        "{stderr}"
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains("listening"));

    let out = troupe(&args, &[("TROUPE_CELL", "2")]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("TROUPE_CELL: cell 2 is out of range"), "{stderr}");

    // Inside Kubernetes, the StatefulSet ordinal in the hostname is enough; out of range, it is
    // an error too.
    let out = troupe(
        &args,
        &[("KUBERNETES_SERVICE_HOST", "10.0.0.1"), ("HOSTNAME", "troupe-7")],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("hostname ordinal: cell 7 is out of range"), "{stderr}");

    // Several cells in sandbox mode without a shared sandbox.
    let out = troupe(&["--config", config.as_str(), "--cell", "1"], &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("one shared sandbox"), "{stderr}");
}

#[test]
fn check_config_shows_which_agents_each_cell_runs() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        &dir,
        &format!("{CAST}\n[[agents]]\nname = \"Cyd\"\nbackend = \"offline\"\n"),
    );
    let out = troupe(&["check-config", "--config", &config], &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let resolved: Value = serde_json::from_slice(&out.stdout).unwrap();
    let cyd = troupe::cells::cell_of("Cyd", 2) as usize;
    let mut expected = vec![vec!["Ada"], vec!["Basil"]];
    expected[cyd].push("Cyd");
    assert_eq!(resolved["cells"]["count"], 2);
    assert_eq!(resolved["cells"]["agents"], serde_json::json!(expected));
    assert_eq!(resolved["agents"][2]["cell"], cyd);
    assert!(stderr.contains("cell 1 runs"), "{stderr}");
}

/// The move an operator makes (README, "Moving an agent to another cell"): stop the source cell,
/// export, pin the agent to its new cell, import there, start it. The agent keeps its memory and
/// answers, once, what was written to it while no cell ran it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moving_an_agent_keeps_its_memory_and_answers_what_it_missed() {
    let dir = tempfile::tempdir().unwrap();
    let cast = CAST.replace("provider = \"echo\"", "provider = \"echo\"\nreply = \"prompt\"");
    let before = write_config(&dir, &cast);
    let after_dir = tempfile::tempdir().unwrap();
    let after = write_config(&after_dir, &cast.replace("cell = 0", "cell = 1"));
    let state = dir.path().join("state");
    let state = state.to_str().unwrap();
    let sandbox = Process::spawn(&["sandbox", "--config", &before, "--listen", "127.0.0.1:0"]);
    let sb = Control::new(&sandbox.url);
    let cell = |config: &str, k: &str| {
        Process::spawn_with(
            &[
                "--config",
                config,
                "--sandbox-url",
                &sandbox.url,
                "--state-dir",
                state,
                "--cell",
                k,
            ],
            &[],
            "http listening on ",
        )
    };
    let store_cmd = |config: &str, k: &str, rest: &[&str]| {
        let mut args = vec!["--config", config, "--state-dir", state, "--cell", k, "store"];
        args.extend_from_slice(rest);
        troupe(&args, &[])
    };

    let mut zero = cell(&before, "0");
    sb.wait_connected(&["Ada"]).await;
    let first = sb.say("general", "alice", "<@Ada> the first words").await;
    sb.reply_to("general", "Ada", first["id"].as_str().unwrap()).await;
    assert_eq!(zero.terminate().code(), Some(0), "{}", zero.stderr());

    // Written while Ada is between cells.
    let missed = sb.say("general", "alice", "<@Ada> written while you moved").await;

    let file = dir.path().join("ada.json");
    let out = store_cmd(
        &before,
        "0",
        &["export", "--agent", "Ada", "--output", file.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the export holds webhook tokens");
    }
    // Cell 1 does not run Ada under the old configuration: refused.
    let out = store_cmd(&before, "1", &["import", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("agent `Ada` is not run by cell 1"));
    let out = store_cmd(&after, "1", &["import", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("record(s) of agent `Ada`"));
    // A second import would mix records: refused.
    let out = store_cmd(&after, "1", &["import", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(6), "{}", String::from_utf8_lossy(&out.stderr));

    let mut one = cell(&after, "1");
    let missed_id = missed["id"].as_str().unwrap();
    let reply = sb.reply_to("general", "Ada", missed_id).await;
    let content = reply["content"].as_str().unwrap();
    assert!(content.contains("the first words"), "memory moved with Ada: {content}");
    let live = sb.say("general", "alice", "<@Ada> and now").await;
    sb.reply_to("general", "Ada", live["id"].as_str().unwrap()).await;
    assert_eq!(replies(&sb, "Ada", missed_id).await, 1);
    assert_eq!(
        replies(&sb, "Ada", first["id"].as_str().unwrap()).await,
        1,
        "answered again"
    );
    assert_eq!(one.terminate().code(), Some(0), "{}", one.stderr());
}
