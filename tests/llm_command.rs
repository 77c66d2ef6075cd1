//! The command backend with small scripts from tests/scripts: success, failure, error patterns,
//! timeouts that kill the whole process group, capped output (issue: LLM backends).

use std::path::Path;
use std::time::{Duration, Instant};

use troupe::config::Config;
use troupe::llm::command::OUTPUT_CUT_NOTE;
use troupe::llm::stream::FinishReason;
use troupe::llm::{Backend, LlmError, Prompt, PromptTurn, Role, TimeoutPhase};

const DEADLINE: Duration = Duration::from_secs(20);

fn script(name: &str) -> String {
    format!("{}/tests/scripts/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// A command backend running `sh <script> args...`, with `extra` TOML lines.
fn backend(script_name: &str, args: &[&str], extra: &str) -> Backend {
    let mut all = vec![format!("{:?}", script(script_name))];
    all.extend(args.iter().map(|a| format!("{a:?}")));
    let text = format!(
        "[backends.cli]\nprovider = \"command\"\nprogram = \"sh\"\nargs = [{}]\n{extra}\n\n[[agents]]\nname = \"Ada\"\nbackend = \"cli\"\n",
        all.join(", ")
    );
    let config = Config::parse("test.toml", &text).unwrap_or_else(|e| panic!("{e}"));
    Backend::from_config(&config.backends["cli"]).unwrap()
}

fn prompt() -> Prompt {
    Prompt {
        agent: "Ada".into(),
        system: "You are Ada.".into(),
        turns: vec![PromptTurn {
            role: Role::User,
            author: "alice".into(),
            content: "hello".into(),
            images: Vec::new(),
        }],
    }
}

/// True once the process is gone (no such PID, or a zombie nobody reaps in this container).
fn gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

fn wait_until(what: &str, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn read_pids(path: &Path) -> Vec<u32> {
    let text = std::fs::read_to_string(path).expect("the script wrote its PIDs");
    text.split_whitespace().map(|p| p.parse().unwrap()).collect()
}

#[tokio::test]
async fn prompt_on_stdin_success() {
    let c = backend("echo_stdin.sh", &[], "").complete(&prompt()).await.unwrap();
    assert_eq!(c.text, "got: You are Ada.\n\nalice: hello");
    assert_eq!(c.finish, FinishReason::Stop);
}

#[tokio::test]
async fn prompt_as_argument_with_env_and_cwd() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path().canonicalize().unwrap();
    let extra = format!(
        "env = {{ GREETING = \"hi there\" }}\ncwd = {:?}",
        cwd.display().to_string()
    );
    let c = backend("echo_arg.sh", &["{prompt}"], &extra)
        .complete(&prompt())
        .await
        .unwrap();
    assert_eq!(
        c.text,
        format!(
            "arg: You are Ada.\n\nalice: hello\n | greeting: hi there | cwd: {}",
            cwd.display()
        )
    );
}

#[tokio::test]
async fn non_zero_exit_is_a_failure() {
    let err = backend("fail.sh", &[], "").complete(&prompt()).await.unwrap_err();
    assert!(matches!(err, LlmError::Backend(_)), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("exited with status 3"), "{text}");
    assert!(text.contains("boom: model crashed"), "{text}");
    assert!(!text.contains("partial output"), "stdout is not a reply: {text}");
}

#[tokio::test]
async fn error_pattern_with_exit_zero_is_a_failure() {
    let b = backend("error_exit0.sh", &[], "error_patterns = [\"not logged in\"]");
    let err = b.complete(&prompt()).await.unwrap_err();
    assert_eq!(err.kind(), "backend");
    assert!(err.to_string().contains("error pattern \"not logged in\""), "{err}");
    // Without the pattern the same output would pass as a reply: the pattern is what catches it.
    let c = backend("error_exit0.sh", &[], "").complete(&prompt()).await.unwrap();
    assert!(c.text.starts_with("Error:"));
}

#[tokio::test]
async fn timeout_kills_the_child_and_its_children() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("pids");
    let extra = format!(
        "timeout_secs = 1\nenv = {{ PIDFILE = {:?} }}",
        pidfile.display().to_string()
    );
    let err = backend("hang.sh", &[], &extra).complete(&prompt()).await.unwrap_err();
    assert_eq!(err, LlmError::Timeout(TimeoutPhase::Command));
    let pids = read_pids(&pidfile);
    assert_eq!(pids.len(), 2, "shell and its background sleep");
    for pid in pids {
        wait_until(&format!("process {pid} to be gone"), || gone(pid));
    }
}

#[tokio::test]
async fn cancelled_reply_kills_the_process_group() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("pids");
    let extra = format!(
        "timeout_secs = 600\nenv = {{ PIDFILE = {:?} }}",
        pidfile.display().to_string()
    );
    let b = backend("hang.sh", &[], &extra);
    let task = tokio::spawn(async move { b.complete(&prompt()).await });
    let start = Instant::now();
    while !pidfile.exists() {
        assert!(start.elapsed() < DEADLINE, "the script never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    task.abort();
    let _ = task.await;
    for pid in read_pids(&pidfile) {
        wait_until(&format!("process {pid} to be gone"), || gone(pid));
    }
}

#[tokio::test]
async fn huge_output_is_capped_and_the_writer_stopped() {
    // `yes` never ends: only killing it at the cap lets this finish before the timeout.
    let b = backend("huge.sh", &[], "max_output_bytes = 1000\ntimeout_secs = 60");
    let c = b.complete(&prompt()).await.unwrap();
    assert_eq!(c.finish, FinishReason::Length);
    assert!(c.text.ends_with(OUTPUT_CUT_NOTE), "{}", c.text);
    let body = c.text.strip_suffix(OUTPUT_CUT_NOTE).unwrap();
    assert!(body.len() <= 1000, "{}", body.len());
    assert!(body.starts_with("spam spam spam\nspam"));
}

#[tokio::test]
async fn missing_program_is_a_backend_error() {
    let text = "[backends.cli]\nprovider = \"command\"\nprogram = \"/no/such/troupe-cli\"\n\n[[agents]]\nname = \"Ada\"\nbackend = \"cli\"\n";
    let config = Config::parse("test.toml", text).unwrap();
    let err = Backend::from_config(&config.backends["cli"])
        .unwrap()
        .complete(&prompt())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("cannot start `/no/such/troupe-cli`"), "{err}");
}
