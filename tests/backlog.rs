//! Never miss a message: startup replay, replay while live messages arrive, `kill -9` at random
//! moments, gap fill after a lost session, and the backlog command-line flags. Runs the real
//! binary against a standalone `troupe sandbox`, which keeps its world across restarts.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::{wait_for, Control, Process, DEADLINE};
use serde_json::{json, Value};

const CONFIG: &str = r#"
[sandbox]
guilds = [{ name = "G", channels = [{ name = "general" }, { name = "random" }, { name = "lab" }, { name = "bot-dms" }] }]

[discord]
bot_dms_channel = "bot-dms"
user_rate_limit = 0
# The echo backend answers at once: show the indicator at once too, so it can be counted.
typing_delay_ms = 0

# This suite restarts troupe on purpose, dozens of times: no crash-loop back-off.
[restarts]
free_starts = 1000

[backends.offline]
provider = "echo"

[[agents]]
name = "Ada"
backend = "offline"
memory_turns = 2000
memory_chars = 1000000
triggers = { channels = ["general", "random", "lab"] }
"#;

/// A standalone sandbox and a place for troupe's configuration and state.
struct Harness {
    sandbox: Process,
    sb: Control,
    dir: tempfile::TempDir,
}

impl Harness {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("agents.toml"), CONFIG).unwrap();
        let config = dir.path().join("agents.toml");
        let sandbox = Process::spawn(&[
            "sandbox",
            "--config",
            config.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ]);
        let sb = Control::new(&sandbox.url);
        Harness { sandbox, sb, dir }
    }

    fn args<'a>(&'a self, extra: &[&'a str]) -> Vec<String> {
        let mut args: Vec<String> = vec![
            "--config".into(),
            self.dir.path().join("agents.toml").display().to_string(),
            "--sandbox-url".into(),
            self.sandbox.url.clone(),
            "--state-dir".into(),
            self.dir.path().join("state").display().to_string(),
            "--http-listen".into(),
            "127.0.0.1:0".into(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    }

    /// troupe, monitoring in real time.
    fn troupe(&self, extra: &[&str]) -> Process {
        let args = self.args(extra);
        Process::spawn(&args.iter().map(String::as_str).collect::<Vec<_>>())
    }

    /// troupe with a flag that makes it exit by itself; returns (exit code, stdout, stderr).
    fn run_to_end(&self, extra: &[&str]) -> (Option<i32>, String, String) {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_troupe"))
            .args(self.args(extra))
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into(),
            String::from_utf8_lossy(&out.stderr).into(),
        )
    }

    /// First contact: troupe learns the channels (cursors start at their newest message) and
    /// alice's DM channel, then stops.
    async fn first_contact(&self) -> String {
        let mut troupe = self.troupe(&[]);
        self.sb.wait_connected(&["Ada"]).await;
        let hello = self.sb.dm("alice", "Ada", "hello").await;
        let dm = hello["channel_id"].as_str().unwrap().to_string();
        self.sb.reply_to(&dm, "Ada", hello["id"].as_str().unwrap()).await;
        for channel in ["general", "random", "lab", "bot-dms"] {
            let m = self.sb.say(channel, "bob", "first contact").await;
            self.sb.reply_to(channel, "Ada", m["id"].as_str().unwrap()).await;
        }
        assert_eq!(troupe.terminate().code(), Some(0));
        dm
    }
}

/// Every human message `content` → how many of Ada's replies (echo: "heard a: x / b: y")
/// answer it, over the given channels.
async fn answers(sb: &Control, channels: &[&str]) -> HashMap<String, usize> {
    let mut count = HashMap::new();
    for c in channels {
        for m in sb.messages(c).await {
            if m["author"]["username"] != "Ada" {
                continue;
            }
            let text = m["content"].as_str().unwrap_or_default();
            let Some(heard) = text.strip_prefix("Ada heard ") else {
                continue;
            };
            let heard = heard.rsplit_once(" (remembering").map_or(heard, |(h, _)| h);
            for part in heard.split(" / ") {
                if let Some((_, content)) = part.split_once(": ") {
                    *count.entry(content.to_string()).or_insert(0) += 1;
                }
            }
        }
    }
    count
}

fn history_gets(requests: &[Value]) -> usize {
    requests
        .iter()
        .filter(|r| r["method"] == "GET" && r["path"].as_str().unwrap_or_default().contains("/messages?"))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_messages_are_answered_once_in_order_with_minimal_fetches() {
    let h = Harness::new();
    let dm = h.first_contact().await;
    let before = h.sb.requests().await.len();

    // 250 messages while troupe is down: 50 in alice's DM, 50 in bot-DMs, 50 in each text channel.
    let mut expected: Vec<(String, String)> = Vec::new();
    for i in 0..50 {
        h.sb.dm("alice", "Ada", &format!("d{i}")).await;
        expected.push((dm.clone(), format!("d{i}")));
        for (n, channel) in ["bot-dms", "general", "random", "lab"].iter().enumerate() {
            let author = if i % 2 == 0 { "alice" } else { "bob" };
            let content = format!("c{n}m{i}");
            h.sb.say(channel, author, &content).await;
            expected.push((channel.to_string(), content));
        }
    }
    let _troupe = h.troupe(&[]);
    let channels = [dm.as_str(), "bot-dms", "general", "random", "lab"];
    wait_for("every missed message answered", || async {
        let a = answers(&h.sb, &channels).await;
        expected.iter().all(|(_, c)| a.contains_key(c)).then_some(())
    })
    .await;
    let live = h.sb.say("general", "alice", "live after replay").await;
    h.sb.reply_to("general", "Ada", live["id"].as_str().unwrap()).await;

    let a = answers(&h.sb, &channels).await;
    for (_, c) in &expected {
        assert_eq!(a[c], 1, "{c} answered {} times", a[c]);
    }
    // One batch per conversation, answering its messages in order and referencing the latest.
    for channel in channels {
        let msgs = h.sb.messages(channel).await;
        let batch = msgs.iter().filter(|m| m["author"]["username"] == "Ada").nth(1).unwrap();
        let text = batch["content"].as_str().unwrap();
        let ours: Vec<&str> = expected
            .iter()
            .filter(|(ch, _)| ch == channel)
            .map(|(_, c)| c.as_str())
            .collect();
        let positions: Vec<usize> = ours
            .iter()
            .map(|c| {
                text.find(&format!(": {c} ")).unwrap_or_else(|| {
                    let ada: Vec<&str> = msgs
                        .iter()
                        .filter(|m| m["author"]["username"] == "Ada")
                        .map(|m| m["content"].as_str().unwrap())
                        .collect();
                    panic!("{channel}: {c} not in the batch reply: {ada:#?}")
                })
            })
            .collect();
        assert!(
            positions.windows(2).all(|w| w[0] < w[1]),
            "{channel}: not in order: {text}"
        );
        let latest = msgs
            .iter()
            .rev()
            .find(|m| m["content"] == *ours.last().unwrap())
            .unwrap();
        assert_eq!(batch["message_reference"]["message_id"], latest["id"]);
    }
    // Minimum history reads: 50 messages per channel fit one page of 100 → one GET each.
    let after: Vec<Value> = h.sb.requests().await.split_off(before);
    assert_eq!(
        history_gets(&after),
        5,
        "{:#?}",
        after.iter().filter(|r| r["method"] == "GET").collect::<Vec<_>>()
    );
    // Nobody watches a backlog reply being typed: the only typing indicator is the live one's.
    let typing: Vec<&Value> = after
        .iter()
        .filter(|r| r["method"] == "POST" && r["path"].as_str().unwrap_or_default().ends_with("/typing"))
        .collect();
    assert_eq!(typing.len(), 1, "{typing:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_posted_during_replay_are_answered_exactly_once() {
    let h = Harness::new();
    h.first_contact().await;
    for i in 0..30 {
        h.sb.say("general", "alice", &format!("before {i}")).await;
    }
    // Slow REST down so the replay is still running while more messages arrive.
    h.sb.faults(json!({"delay_ms": 150})).await;
    let _troupe = h.troupe(&[]);
    let mut during = Vec::new();
    for i in 0..10 {
        h.sb.say("random", "bob", &format!("during {i}")).await;
        h.sb.say("general", "bob", &format!("during g{i}")).await;
        during.push(format!("during {i}"));
        during.push(format!("during g{i}"));
    }
    h.sb.faults(json!({"delay_ms": 0})).await;
    let all: Vec<String> = (0..30).map(|i| format!("before {i}")).chain(during).collect();
    wait_for("every message answered", || async {
        let a = answers(&h.sb, &["general", "random"]).await;
        all.iter().all(|c| a.contains_key(c)).then_some(())
    })
    .await;
    let live = h.sb.say("lab", "alice", "sync").await;
    h.sb.reply_to("lab", "Ada", live["id"].as_str().unwrap()).await;
    let a = answers(&h.sb, &["general", "random"]).await;
    let twice: Vec<_> = all.iter().filter(|c| a[*c] != 1).collect();
    assert!(twice.is_empty(), "answered more than once: {twice:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_at_random_moments_loses_and_duplicates_nothing() {
    let h = Harness::new();
    h.first_contact().await;
    let channels = ["general", "random", "lab"];
    let mut posted = Vec::new();
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    // 50 cycles in `make test`; `make soak` runs more (TROUPE_SOAK_CYCLES).
    let cycles: usize = std::env::var("TROUPE_SOAK_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    for cycle in 0..cycles {
        let mut troupe = h.troupe(&[]);
        for k in 0..(1 + next() % 3) {
            let channel = channels[(next() % 3) as usize];
            let content = format!("k{cycle}x{k}");
            h.sb.say(channel, if k % 2 == 0 { "alice" } else { "bob" }, &content)
                .await;
            posted.push(content);
        }
        // The crash comes at a random moment: before, during or after replay and turns.
        tokio::time::sleep(Duration::from_millis(next() % 400)).await;
        troupe.child.kill().unwrap();
        troupe.child.wait().unwrap();
    }
    let _final = h.troupe(&[]);
    wait_for("every message answered after the last restart", || async {
        let a = answers(&h.sb, &channels).await;
        posted.iter().all(|c| a.contains_key(c)).then_some(())
    })
    .await;
    let sync = h.sb.say("general", "alice", "final sync").await;
    h.sb.reply_to("general", "Ada", sync["id"].as_str().unwrap()).await;
    let a = answers(&h.sb, &channels).await;
    let wrong: Vec<_> = posted.iter().filter(|c| a[*c] != 1).map(|c| (c, a[c])).collect();
    assert!(
        wrong.is_empty(),
        "{} messages, wrong answer counts: {wrong:?}",
        posted.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_session_is_gap_filled_after_re_identify() {
    let h = Harness::new();
    let _troupe = h.troupe(&[]);
    h.sb.wait_connected(&["Ada"]).await;
    let warm = h.sb.say("general", "alice", "warm up").await;
    h.sb.reply_to("general", "Ada", warm["id"].as_str().unwrap()).await;
    // The session is invalidated and troupe cannot identify again for a while; humans post.
    let identifies = |reqs: &[Value]| reqs.len();
    let _ = identifies;
    h.sb.faults(json!({"gateway": {"bot": "Ada", "action": "invalid_session", "refuse_ms": 1500}}))
        .await;
    let mut gap = Vec::new();
    for i in 0..12 {
        let content = format!("gap {i}");
        h.sb.say(["general", "random", "lab"][i % 3], "bob", &content).await;
        gap.push(content);
    }
    wait_for("the gap answered after re-identify", || async {
        let a = answers(&h.sb, &["general", "random", "lab"]).await;
        gap.iter().all(|c| a.contains_key(c)).then_some(())
    })
    .await;
    let sync = h.sb.say("general", "alice", "after the gap").await;
    h.sb.reply_to("general", "Ada", sync["id"].as_str().unwrap()).await;
    let a = answers(&h.sb, &["general", "random", "lab"]).await;
    assert!(gap.iter().all(|c| a[c] == 1), "{a:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn show_backlog_lists_without_processing_and_clear_backlog_skips_it() {
    let h = Harness::new();
    h.first_contact().await;
    for i in 0..7 {
        h.sb.say("general", "alice", &format!("pending {i}")).await;
    }
    h.sb.say("lab", "bob", "pending lab").await;

    let (code, stdout, stderr) = h.run_to_end(&["--show-backlog"]);
    assert_eq!(code, Some(0), "{stderr}");
    let line = |ch: &str| {
        stdout
            .lines()
            .find(|l| l.split_whitespace().nth(2) == Some(ch))
            .unwrap_or_else(|| panic!("no line for {ch}:\n{stdout}"))
            .to_string()
    };
    assert_eq!(line("general").split_whitespace().nth(3), Some("7"), "{stdout}");
    assert_eq!(line("lab").split_whitespace().nth(3), Some("1"), "{stdout}");
    assert_eq!(line("random").split_whitespace().nth(3), Some("0"), "{stdout}");
    assert!(stdout.contains("8 message(s) would be replayed"), "{stdout}");
    assert_eq!(
        answers(&h.sb, &["general", "lab"]).await.get("pending 0"),
        None,
        "nothing was processed"
    );

    let (code, stdout, stderr) = h.run_to_end(&["--clear-backlog"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("backlog cleared"), "{stdout}");
    let (_, stdout, _) = h.run_to_end(&["--show-backlog"]);
    assert!(stdout.contains("0 message(s) would be replayed"), "{stdout}");
    // A normal run does not answer the cleared backlog, but answers new messages.
    let _troupe = h.troupe(&[]);
    let fresh = h.sb.say("general", "alice", "new one").await;
    h.sb.reply_to("general", "Ada", fresh["id"].as_str().unwrap()).await;
    assert!(!answers(&h.sb, &["general", "lab"]).await.contains_key("pending 0"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_monitoring_answers_the_backlog_then_exits_and_scope_limits_it() {
    let h = Harness::new();
    let dm = h.first_contact().await;
    h.sb.dm("alice", "Ada", "dm while away").await;
    h.sb.say("general", "bob", "text while away").await;

    let started = Instant::now();
    let (code, _, stderr) = h.run_to_end(&["-1", "--scope", "dms"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(started.elapsed() < DEADLINE);
    let a = answers(&h.sb, &[dm.as_str(), "general"]).await;
    assert_eq!(a.get("dm while away"), Some(&1));
    assert_eq!(a.get("text while away"), None, "--scope dms leaves text channels alone");

    let (code, _, stderr) = h.run_to_end(&["--no-monitoring"]);
    assert_eq!(code, Some(0), "{stderr}");
    let a = answers(&h.sb, &[dm.as_str(), "general"]).await;
    assert_eq!(a.get("text while away"), Some(&1));
    assert_eq!(a.get("dm while away"), Some(&1), "not answered twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_runs_send_nothing_and_leave_the_backlog_in_place() {
    let h = Harness::new();
    h.first_contact().await;
    h.sb.say("general", "alice", "dry one").await;

    let (code, stdout, stderr) = h.run_to_end(&["-1", "--no-agent"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("[no-agent] Ada would answer"), "{stdout}");
    let (code, stdout, stderr) = h.run_to_end(&["-1", "--no-discord", "--debug"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stdout.contains("[no-discord]") && stdout.contains("Ada heard alice: dry one"),
        "{stdout}"
    );
    // --debug explains every routing decision.
    assert!(
        stderr.contains("routing") && stderr.contains("ListenChannel"),
        "{stderr}"
    );
    assert_eq!(
        answers(&h.sb, &["general"]).await.get("dry one"),
        None,
        "dry runs send nothing"
    );

    let (code, _, _) = h.run_to_end(&["-1"]);
    assert_eq!(code, Some(0));
    assert_eq!(
        answers(&h.sb, &["general"]).await.get("dry one"),
        Some(&1),
        "the backlog was still there"
    );
}
