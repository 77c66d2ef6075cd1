//! The command backend: a CLI agent (`claude -p`, Amazon Q / Kiro CLI, `llm`, `ollama run`) run
//! as a child process per reply.
//!
//! The prompt goes in the arguments (where one contains `{prompt}`) or on standard input. The
//! child runs in its own process group, so a timeout, an output overflow or a cancelled reply
//! kills it *and everything it started*. A non-zero exit, or output containing a configured
//! error pattern (some CLIs print an error and exit 0), is a failure, never a reply.

use std::process::Stdio;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use super::error::TimeoutPhase;
use super::stream::{clean_message, Completion, FinishReason};
use super::{LlmError, Prompt, Role};
use crate::config::CommandSettings;

/// Appended to output cut at `max_output_bytes`.
pub const OUTPUT_CUT_NOTE: &str = " […] (output cut at the size limit)";

/// Most bytes of standard error kept for error detection and logs.
const MAX_STDERR_BYTES: usize = 16 << 10;

/// A configured CLI agent.
#[derive(Debug)]
pub struct CommandBackend {
    name: String,
    settings: CommandSettings,
}

impl CommandBackend {
    /// A command backend named `name`.
    pub fn new(name: &str, settings: &CommandSettings) -> Self {
        Self {
            name: name.to_string(),
            settings: settings.clone(),
        }
    }

    /// Runs the command for one reply.
    // Why this is long: a child process's whole life (spawn, feed, bounded read, timeout, kill, classify) in one place, so no path leaks the process.
    pub async fn complete(&self, prompt: &Prompt) -> Result<Completion, LlmError> {
        let s = &self.settings;
        let text = render(prompt);
        let in_args = s.prompt_in_args();
        let mut cmd = tokio::process::Command::new(&s.program);
        cmd.args(s.args.iter().map(|a| a.replace("{prompt}", &text)))
            .envs(s.env.iter().map(|(k, v)| (k, v)))
            .stdin(if in_args { Stdio::null() } else { Stdio::piped() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        if let Some(cwd) = &s.cwd {
            cmd.current_dir(cwd);
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| LlmError::Backend(format!("cannot start `{}`: {e}", s.program)))?;
        // While armed, dropping this kills the group: on timeout, overflow or cancellation.
        let mut group = ProcessGroup(child.id().and_then(|id| i32::try_from(id).ok()));
        let (stdin, stdout, stderr) = (child.stdin.take(), child.stdout.take(), child.stderr.take());
        let run = async {
            let feed = async {
                if let Some(mut stdin) = stdin {
                    // A CLI that exits without reading its input is not an error here.
                    let _ = stdin.write_all(text.as_bytes()).await;
                }
            };
            let out = async {
                let r = read_capped(stdout, s.max_output_bytes).await;
                if r.1 {
                    // Cut: stop the writer now rather than wait for it to block on a full pipe.
                    group.kill();
                }
                r
            };
            let ((), (out, cut), (err, _)) = tokio::join!(feed, out, read_capped(stderr, MAX_STDERR_BYTES));
            (out, cut, err, child.wait().await)
        };
        let outcome = tokio::time::timeout(s.timeout, run).await;
        let Ok((out, cut, err, status)) = outcome else {
            group.kill();
            let _ = child.wait().await;
            tracing::warn!(backend = %self.name, timeout_secs = s.timeout.as_secs_f64(), "command timed out; killed its process group");
            return Err(LlmError::Timeout(TimeoutPhase::Command));
        };
        group.disarm();
        let status = status.map_err(|e| LlmError::Backend(format!("cannot wait for `{}`: {e}", s.program)))?;
        let out = strip_ansi(&String::from_utf8_lossy(&out));
        let err = strip_ansi(&String::from_utf8_lossy(&err));
        if !cut && !status.success() {
            let what = match status.code() {
                Some(code) => format!("exited with status {code}"),
                None => "was killed by a signal".to_string(),
            };
            return Err(LlmError::Backend(format!(
                "`{}` {what}; stderr: {}",
                s.program,
                excerpt(&err)
            )));
        }
        for pattern in &s.error_patterns {
            if let Some(line) = out.lines().chain(err.lines()).find(|l| l.contains(pattern.as_str())) {
                return Err(LlmError::Backend(format!(
                    "`{}` printed error pattern {pattern:?}: {}",
                    s.program,
                    excerpt(line)
                )));
            }
        }
        let reply = out.trim();
        if reply.is_empty() {
            return Err(LlmError::Backend(format!(
                "`{}` printed nothing; stderr: {}",
                s.program,
                excerpt(&err)
            )));
        }
        Ok(if cut {
            tracing::warn!(backend = %self.name, max_output_bytes = s.max_output_bytes, "command output cut at the size limit");
            Completion {
                text: format!("{}{OUTPUT_CUT_NOTE}", reply.trim_end_matches('\u{FFFD}')),
                finish: FinishReason::Length,
                usage: None,
            }
        } else {
            Completion {
                text: reply.to_string(),
                finish: FinishReason::Stop,
                usage: None,
            }
        })
    }
}

/// The prompt as one text: the system prompt, a blank line, then one `name: text` line per turn.
pub fn render(prompt: &Prompt) -> String {
    let mut text = String::new();
    if !prompt.system.trim().is_empty() {
        text.push_str(prompt.system.trim());
        text.push_str("\n\n");
    }
    for t in &prompt.turns {
        let author = match (t.role, t.author.is_empty()) {
            (Role::Assistant, true) => prompt.agent.as_str(),
            (_, _) => t.author.as_str(),
        };
        if author.is_empty() {
            text.push_str(&t.content);
        } else {
            text.push_str(&format!("{author}: {}", t.content));
        }
        text.push('\n');
    }
    text
}

/// Reads until EOF or `cap` bytes; the flag says the output went past the cap.
async fn read_capped(pipe: Option<impl AsyncRead + Unpin>, cap: usize) -> (Vec<u8>, bool) {
    let Some(mut pipe) = pipe else {
        return (Vec::new(), false);
    };
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => return (out, false),
            Ok(n) => {
                if out.len() + n > cap {
                    out.extend_from_slice(&buf[..cap - out.len()]);
                    return (out, true);
                }
                out.extend_from_slice(&buf[..n]);
            }
        }
    }
}

/// Removes ANSI escape sequences (colours, cursor moves) that some CLIs print even into a pipe.
pub fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\u{1b}' {
            out.push(c);
            continue;
        }
        match chars.peek() {
            // CSI: ESC [ parameters, then one final byte in @..~.
            Some('[') => {
                chars.next();
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
            // OSC: ESC ] ... terminated by BEL or ESC \.
            Some(']') => {
                chars.next();
                while let Some(c) = chars.next() {
                    if c == '\u{7}' || (c == '\u{1b}' && chars.next_if_eq(&'\\').is_some()) {
                        break;
                    }
                }
            }
            Some(_) => {
                chars.next();
            }
            None => {}
        }
    }
    out
}

/// A short, masked excerpt of CLI output for an error message.
fn excerpt(s: &str) -> String {
    let s = s.trim();
    if s.is_empty() {
        "(empty)".to_string()
    } else {
        clean_message(s)
    }
}

/// The child's process group, killed with SIGKILL on drop unless disarmed.
struct ProcessGroup(Option<i32>);

impl ProcessGroup {
    fn kill(&self) {
        if let Some(pgid) = self.0 {
            // SAFETY: killpg only sends a signal; the group is ours (process_group(0) made the
            // child its leader) and the child is not reaped yet, so its ID cannot be reused.
            unsafe {
                libc::killpg(pgid, libc::SIGKILL);
            }
        }
    }

    fn disarm(&mut self) {
        self.0 = None;
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        self.kill();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::PromptTurn;

    #[test]
    fn renders_system_and_turns() {
        let p = Prompt {
            agent: "Ada".into(),
            system: "You are Ada.".into(),
            turns: vec![
                PromptTurn {
                    role: Role::User,
                    author: "alice".into(),
                    content: "hi".into(),
                    images: Vec::new(),
                },
                PromptTurn {
                    role: Role::Assistant,
                    author: String::new(),
                    content: "hello".into(),
                    images: Vec::new(),
                },
            ],
        };
        assert_eq!(render(&p), "You are Ada.\n\nalice: hi\nAda: hello\n");
    }

    #[test]
    fn ansi_sequences_are_removed() {
        assert_eq!(strip_ansi("\u{1b}[1;32mok\u{1b}[0m done"), "ok done");
        assert_eq!(strip_ansi("a\u{1b}]0;title\u{7}b"), "ab");
        assert_eq!(strip_ansi("a\u{1b}]8;;x\u{1b}\\b"), "ab");
        assert_eq!(strip_ansi("plain é"), "plain é");
        assert_eq!(strip_ansi("cut\u{1b}"), "cut");
    }
}
