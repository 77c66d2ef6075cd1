//! What the commands answer: the `/agents` embed, the `/usage` and `/budget` texts, and the
//! confirmations. Pure; nothing internal (errors, keys, paths) ever appears in them.

use serde_json::{json, Value};

use crate::config::{AgentConfig, BackendConfig, Provider};
use crate::quota::Window;

/// Discord's limit on an embed's fields.
const MAX_FIELDS: usize = 25;
/// Longest persona line shown.
const PERSONA_CHARS: usize = 100;

/// One agent of the cast, as `/agents` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct CastMember {
    /// Its name.
    pub name: String,
    /// The first sentence of its system prompt.
    pub persona: String,
    /// Its backend's name and provider, e.g. `offline (echo)`.
    pub backend: String,
    /// The model it asks.
    pub model: String,
}

impl CastMember {
    /// An agent as `/agents` shows it.
    pub fn new(agent: &AgentConfig, backend: Option<&BackendConfig>) -> Self {
        let (provider, model) = match backend.map(|b| &b.provider) {
            Some(Provider::Echo(_)) => ("echo", "echo".to_string()),
            Some(Provider::OpenAi(h)) => (h.flavor.as_str(), h.model.clone()),
            Some(Provider::Anthropic(h)) => (h.flavor.as_str(), h.model.clone()),
            Some(Provider::Command(_)) => ("command", "a local command".to_string()),
            None => ("unknown", "unknown".to_string()),
        };
        Self {
            name: agent.name.clone(),
            persona: persona_line(&agent.system_prompt, &agent.name),
            backend: format!("{} ({provider})", agent.backend),
            model,
        }
    }
}

/// The first sentence (or line) of a system prompt, `{agent}` filled in, at most
/// [`PERSONA_CHARS`] characters.
pub fn persona_line(system_prompt: &str, name: &str) -> String {
    let text = system_prompt.replace("{agent}", name);
    let first_line = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("").trim();
    let sentence = match first_line.find(". ") {
        Some(end) => &first_line[..=end],
        None => first_line,
    };
    if sentence.chars().count() <= PERSONA_CHARS {
        return sentence.to_string();
    }
    let cut: String = sentence.chars().take(PERSONA_CHARS - 1).collect();
    format!("{}…", cut.trim_end())
}

/// The `/agents` embed: one field per agent (the first 25; the description says how many more).
pub fn agents_embed(cast: &[CastMember]) -> Value {
    let fields: Vec<Value> = cast
        .iter()
        .take(MAX_FIELDS)
        .map(|m| {
            let persona = if m.persona.is_empty() { "—" } else { &m.persona };
            json!({
                "name": m.name,
                "value": format!("{persona}\nBackend: {} · Model: {}", m.backend, m.model),
                "inline": false,
            })
        })
        .collect();
    let description = match cast.len() {
        1 => "1 agent".to_string(),
        n if n > MAX_FIELDS => format!("{n} agents ({} not shown)", n - MAX_FIELDS),
        n => format!("{n} agents"),
    };
    json!({"title": "The cast", "description": description, "fields": fields})
}

/// What `/usage` reports: tokens spent today and this month, against the limits of the
/// configured window.
#[derive(Debug, Clone, PartialEq)]
pub struct Usage {
    /// The caller with this agent (under the user budget's scope).
    pub user: (u64, u64),
    /// This agent in this channel.
    pub channel: (u64, u64),
    /// This agent, everyone together.
    pub agent: (u64, u64),
    /// The caller's limit and what they spent in its window.
    pub user_limit: Option<(u64, u64)>,
    /// The agent's limit and what it spent in its window.
    pub agent_limit: Option<(u64, u64)>,
    /// The budgets' window.
    pub window: Window,
}

/// The `/usage` text.
pub fn usage_text(u: &Usage) -> String {
    let line = |who: &str, (today, month): (u64, u64)| format!("{who}: {today} tokens today, {month} this month");
    let mut out = vec![
        line("You", u.user),
        line("This channel", u.channel),
        line("This agent", u.agent),
    ];
    let window = u.window.describe();
    match u.user_limit {
        Some((limit, used)) => out.push(format!("Your budget: {used} of {limit} tokens {window}")),
        None => out.push("Your budget: no limit".into()),
    }
    match u.agent_limit {
        Some((limit, used)) => out.push(format!("This agent's budget: {used} of {limit} tokens {window}")),
        None => out.push("This agent's budget: no limit".into()),
    }
    out.join("\n")
}

/// The `/budget` answer about user `user`: the limit in force (an override, or the
/// configured one) and what they spent in the window.
pub fn budget_text(user: u64, limit: Option<u64>, overridden: bool, used: u64, window: Window) -> String {
    let whose = format!("<@{user}>");
    let window = window.describe();
    match (limit, overridden) {
        (Some(l), true) => format!("{whose}: {used} of {l} tokens {window} (set by a moderator)."),
        (Some(l), false) => format!("{whose}: {used} of {l} tokens {window} (the configured budget)."),
        (None, _) => format!("{whose}: {used} tokens {window}; no budget."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_persona_line_is_the_first_sentence_with_the_name_filled_in() {
        assert_eq!(
            persona_line(
                "You are {agent}, a precise mathematician. You are talking with {username}.",
                "Ada"
            ),
            "You are Ada, a precise mathematician."
        );
        assert_eq!(persona_line("\n  Short line\nSecond", "x"), "Short line");
        let long = persona_line(&"é".repeat(300), "x");
        assert_eq!(long.chars().count(), PERSONA_CHARS);
        assert!(long.ends_with('…'));
        assert_eq!(persona_line("", "x"), "");
    }

    #[test]
    fn the_cast_embed_has_a_field_per_agent_within_discords_limit() {
        let member = |i: usize| CastMember {
            name: format!("A{i}"),
            persona: "You are A.".into(),
            backend: "offline (echo)".into(),
            model: "echo".into(),
        };
        let e = agents_embed(&[member(0), member(1)]);
        assert_eq!(e["description"], "2 agents");
        assert_eq!(e["fields"][1]["name"], "A1");
        assert_eq!(
            e["fields"][0]["value"],
            "You are A.\nBackend: offline (echo) · Model: echo"
        );
        let many: Vec<CastMember> = (0..30).map(member).collect();
        let e = agents_embed(&many);
        assert_eq!(e["fields"].as_array().unwrap().len(), 25);
        assert_eq!(e["description"], "30 agents (5 not shown)");
    }

    #[test]
    fn usage_shows_each_figure_against_its_limit() {
        let text = usage_text(&Usage {
            user: (10, 20),
            channel: (30, 40),
            agent: (50, 60),
            user_limit: Some((1000, 10)),
            agent_limit: None,
            window: Window::Daily,
        });
        assert_eq!(
            text,
            "You: 10 tokens today, 20 this month\nThis channel: 30 tokens today, 40 this month\n\
             This agent: 50 tokens today, 60 this month\nYour budget: 10 of 1000 tokens today\n\
             This agent's budget: no limit"
        );
    }

    #[test]
    fn budget_says_where_the_limit_comes_from() {
        assert_eq!(
            budget_text(7, Some(500), true, 20, Window::Monthly),
            "<@7>: 20 of 500 tokens this month (set by a moderator)."
        );
        assert_eq!(
            budget_text(7, Some(500), false, 0, Window::Daily),
            "<@7>: 0 of 500 tokens today (the configured budget)."
        );
        assert_eq!(
            budget_text(7, None, false, 3, Window::Daily),
            "<@7>: 3 tokens today; no budget."
        );
    }
}
