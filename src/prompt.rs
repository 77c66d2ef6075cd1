//! Builds the prompt for a turn: the persona's system prompt with its placeholders filled in,
//! and the conversation's turns. Pure.

use crate::llm::{Prompt, PromptTurn};

/// Fills `{username}`, `{agent}` and `{date}` (YYYY-MM-DD) in a system prompt template.
pub fn system_prompt(template: &str, agent: &str, username: &str, date: &str) -> String {
    template
        .replace("{username}", username)
        .replace("{agent}", agent)
        .replace("{date}", date)
}

/// The prompt for answering `fresh` (new user turns) after `history`.
pub fn build(agent: &str, template: &str, date: &str, history: &[PromptTurn], fresh: &[PromptTurn]) -> Prompt {
    let username = fresh.last().map_or("", |t| t.author.as_str());
    Prompt {
        agent: agent.to_string(),
        system: system_prompt(template, agent, username, date),
        turns: history.iter().chain(fresh).cloned().collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::Role;

    #[test]
    fn placeholders_are_filled() {
        assert_eq!(
            system_prompt(
                "You are {agent}, talking to {username} on {date}. {unknown}",
                "Ada",
                "alice",
                "2026-11-21"
            ),
            "You are Ada, talking to alice on 2026-11-21. {unknown}"
        );
    }

    #[test]
    fn username_is_the_latest_speaker() {
        let t = |a: &str| PromptTurn {
            role: Role::User,
            author: a.into(),
            content: "x".into(),
            images: Vec::new(),
        };
        let p = build("Ada", "Hi {username}", "d", &[t("bob")], &[t("alice")]);
        assert_eq!(p.system, "Hi alice");
        assert_eq!(p.turns.len(), 2);
    }
}
