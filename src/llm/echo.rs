//! The offline backend: answers deterministically from the prompt, with no network. Used by
//! `make run`, demos and tests.

use super::stream::{Completion, FinishReason, Usage};
use super::{Prompt, Role};

/// Replies `"<agent> heard <author>: <message>"` for the latest user turn (several turns
/// answered together are joined with " / "), and says how many earlier turns it remembers.
#[derive(Debug, Clone, Copy, Default)]
pub struct Echo;

impl Echo {
    /// The deterministic completion for a prompt.
    pub fn complete(&self, prompt: &Prompt) -> Completion {
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
        let c = Echo.complete(&p);
        assert_eq!(
            c.text,
            "Ada heard alice: my cat is Tom / bob: and mine Rex (remembering 2 earlier turns)"
        );
        assert_eq!(c.finish, FinishReason::Stop);
    }
}
