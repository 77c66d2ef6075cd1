//! `[budgets]` and an agent's `budgets = { ... }`: token limits per user and per agent over a
//! window, and the notice a user gets once per window. Validated into [`crate::quota::Budgets`].

use std::time::Duration;

use toml::Spanned;

use super::choice::{parse_enum, Choice};
use super::error::Report;
use super::operations;
use super::raw::{RawAgentBudgets, RawBudgets};
use crate::quota::{Budgets, UserScope, Window};

/// The most tokens a limit may name (a trillion).
const MAX_TOKENS: i64 = 1_000_000_000_000;

/// A window as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WindowWord {
    Daily,
    Monthly,
    Rolling,
}

impl Choice for WindowWord {
    const WHAT: &'static str = "budget window";
    const WORDS: &'static [(&'static str, Self)] = &[
        ("daily", WindowWord::Daily),
        ("monthly", WindowWord::Monthly),
        ("rolling", WindowWord::Rolling),
    ];
}

impl Choice for UserScope {
    const WHAT: &'static str = "user budget scope";
    const WORDS: &'static [(&'static str, Self)] = &[("agent", UserScope::Agent), ("troupe", UserScope::Troupe)];
}

/// Validates `[budgets]`: the defaults every agent starts from.
pub(crate) fn budgets(raw: &RawBudgets, err: &mut Report<'_>) -> Budgets {
    let d = Budgets::default();
    let word = parse_enum::<WindowWord>(raw.window.as_ref(), "budgets.window".into(), "", err);
    let hours = raw.window_hours.as_ref();
    let window = match (word, hours) {
        (Some(WindowWord::Rolling), None) => {
            let span = raw.window.as_ref().map(|w| w.span());
            err(
                span,
                "budgets.window_hours".into(),
                "a rolling window needs its length: add window_hours (1 to 744)".into(),
            );
            d.window
        }
        (Some(WindowWord::Rolling), Some(_)) => {
            let h = operations::int("budgets.window_hours", &raw.window_hours, 24, 1, 744, err);
            Window::Rolling(Duration::from_secs(h * 3600))
        }
        (_, Some(h)) => {
            err(
                Some(h.span()),
                "budgets.window_hours".into(),
                "window_hours is only for window = \"rolling\"; remove it or set window = \"rolling\"".into(),
            );
            d.window
        }
        (Some(WindowWord::Monthly), None) => Window::Monthly,
        (Some(WindowWord::Daily), None) | (None, None) => Window::Daily,
    };
    Budgets {
        window,
        user_tokens: tokens("budgets.user_tokens", &raw.user_tokens, err),
        user_scope: parse_enum(raw.user_scope.as_ref(), "budgets.user_scope".into(), "", err).unwrap_or(d.user_scope),
        agent_tokens: tokens("budgets.agent_tokens", &raw.agent_tokens, err),
        notice: raw.notice.clone().unwrap_or(d.notice),
    }
}

/// An agent's budgets: `[budgets]` with the agent's own limits and notice over it.
pub(crate) fn agent_budgets(
    base: &Budgets,
    raw: Option<&Spanned<RawAgentBudgets>>,
    field: &str,
    err: &mut Report<'_>,
) -> Budgets {
    let Some(raw) = raw.map(Spanned::get_ref) else {
        return base.clone();
    };
    Budgets {
        user_tokens: tokens(&format!("{field}.user_tokens"), &raw.user_tokens, err).or(base.user_tokens),
        agent_tokens: tokens(&format!("{field}.agent_tokens"), &raw.agent_tokens, err).or(base.agent_tokens),
        notice: raw.notice.clone().unwrap_or_else(|| base.notice.clone()),
        ..base.clone()
    }
}

/// A limit in tokens, if set.
fn tokens(field: &str, v: &Option<Spanned<i64>>, err: &mut Report<'_>) -> Option<u64> {
    v.as_ref()?;
    let n = operations::int(field, v, 0, 1, MAX_TOKENS, err);
    (n > 0).then_some(n)
}

#[cfg(test)]
mod tests {
    use crate::config::Config;
    use crate::quota::{UserScope, Window};

    const AGENT: &str = "[backends.b]\nprovider = \"echo\"\n";

    fn parse(budgets: &str, agent_extra: &str) -> Result<Config, String> {
        let text = format!("{budgets}\n{AGENT}\n[[agents]]\nname = \"Ada\"\nbackend = \"b\"\n{agent_extra}\n");
        Config::parse("agents.toml", &text).map_err(|e| e.to_string())
    }

    #[test]
    fn budgets_default_to_none_and_agents_override_limits_and_notice() {
        let c = parse("", "").unwrap();
        assert!(!c.agents[0].budgets.limited());
        let c = parse(
            "[budgets]\nwindow = \"rolling\"\nwindow_hours = 6\nuser_tokens = 5000\nuser_scope = \"troupe\"\nagent_tokens = 90000",
            "budgets = { user_tokens = 100, notice = \"\" }",
        )
        .unwrap();
        let b = &c.agents[0].budgets;
        assert_eq!(b.window, Window::Rolling(std::time::Duration::from_secs(6 * 3600)));
        assert_eq!((b.user_tokens, b.agent_tokens), (Some(100), Some(90_000)));
        assert_eq!(b.user_scope, UserScope::Troupe);
        assert_eq!(b.notice, "", "an empty notice means silence");
        let c = parse("[budgets]\nwindow = \"monthly\"\nagent_tokens = 1", "").unwrap();
        assert_eq!(c.agents[0].budgets.window, Window::Monthly);
    }

    #[test]
    fn every_budget_mistake_is_reported_with_its_line_and_fix() {
        let e = parse(
            "[budgets]\nwindow = \"weekly\"\nwindow_hours = 3\nuser_tokens = 0\nuser_scope = \"guild\"",
            "budgets = { agent_tokens = -5 }",
        )
        .unwrap_err();
        for part in [
            "budgets.window",
            "\"daily\", \"monthly\" or \"rolling\"",
            "budgets.window_hours",
            "only for window = \"rolling\"",
            "budgets.user_tokens",
            "0 is out of range; use 1 to",
            "budgets.user_scope",
            "agents[0].budgets.agent_tokens",
        ] {
            assert!(e.contains(part), "missing {part:?} in:\n{e}");
        }
        let e = parse("[budgets]\nwindow = \"rolling\"", "").unwrap_err();
        assert!(e.contains("add window_hours (1 to 744)"), "{e}");
        let e = parse("[budgets]\nuser_token = 5", "").unwrap_err();
        assert!(e.contains("user_token"), "{e}");
    }
}
