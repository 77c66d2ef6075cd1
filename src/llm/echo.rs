//! The offline backend: answers deterministically from the prompt, with no network. Used by
//! `make run`, demos and tests.

use super::stream::{Completion, FinishReason, Usage};
use super::{LlmError, Prompt, Role};
use crate::config::EchoSettings;

/// Replies `"<agent> heard <author>: <message>"` for the latest user turn (several turns
/// answered together are joined with " / "), and says how many earlier turns it remembers.
/// With `reply = "prompt"` it replies with the whole prompt instead.
#[derive(Debug, Clone, Default)]
pub struct Echo {
    settings: EchoSettings,
}

impl Echo {
    /// An echo backend with these settings.
    pub fn new(settings: EchoSettings) -> Self {
        Self { settings }
    }

    /// Waits the configured delay, then completes (or panics, if told to for this message).
    pub async fn complete_async(&self, prompt: &Prompt) -> Result<Completion, LlmError> {
        if !self.settings.delay.is_zero() {
            tokio::time::sleep(self.settings.delay).await;
        }
        if let Some(trigger) = &self.settings.panic_on {
            let last = prompt.turns.last().map_or("", |t| t.content.as_str());
            if last.contains(trigger.as_str()) {
                panic!("echo backend told to panic on {trigger:?}");
            }
        }
        Ok(self.complete(prompt))
    }

    /// The deterministic completion for a prompt.
    pub fn complete(&self, prompt: &Prompt) -> Completion {
        if self.settings.reply_with_prompt {
            let mut text = format!("[system] {}", prompt.system);
            for t in &prompt.turns {
                text.push_str(&format!("\n[{}] {}", t.author, t.content));
            }
            return Completion {
                text,
                finish: FinishReason::Stop,
                usage: None,
            };
        }
        let last_assistant = prompt.turns.iter().rposition(|t| t.role == Role::Assistant);
        let fresh = &prompt.turns[last_assistant.map_or(0, |i| i + 1)..];
        let heard: Vec<String> = fresh.iter().map(|t| format!("{}: {}", t.author, t.content)).collect();
        let remembered = prompt.turns.len() - fresh.len();
        let text = if heard.is_empty() {
            format!("{} has nothing to answer.", prompt.agent)
        } else {
            format!(
                "{} heard {} (remembering {remembered} earlier turns)",
                prompt.agent,
                heard.join(" / ")
            )
        };
        let words = |s: &str| s.split_whitespace().count() as u64;
        let input = words(&prompt.system) + prompt.turns.iter().map(|t| words(&t.content)).sum::<u64>();
        Completion {
            usage: Some(Usage {
                input_tokens: input,
                output_tokens: words(&text),
            }),
            text,
            finish: FinishReason::Stop,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::PromptTurn;

    fn turn(role: Role, author: &str, content: &str) -> PromptTurn {
        PromptTurn {
            role,
            author: author.into(),
            content: content.into(),
            images: Vec::new(),
        }
    }

    #[test]
    fn echoes_the_turns_after_the_last_reply() {
        let p = Prompt {
            agent: "Ada".into(),
            system: "You are Ada.".into(),
            turns: vec![
                turn(Role::User, "alice", "hello"),
                turn(Role::Assistant, "Ada", "hi"),
                turn(Role::User, "alice", "my cat is Tom"),
                turn(Role::User, "bob", "and mine Rex"),
            ],
        };
        let c = Echo::default().complete(&p);
        assert_eq!(
            c.text,
            "Ada heard alice: my cat is Tom / bob: and mine Rex (remembering 2 earlier turns)"
        );
        assert_eq!(c.finish, FinishReason::Stop);
    }
}
