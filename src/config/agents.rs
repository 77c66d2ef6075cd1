//! `[[agents]]` validated into [`AgentConfig`]s: unique names, a defined backend, the memory
//! mode and limits, where the bot token comes from (distinct per agent in live mode), the webhook,
//! the breaker override and the notices.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;

use toml::Spanned;

use super::choice::{parse_enum, Choice};
use super::delivery::DeliverySettings;
use super::error::closest;
use super::error::Report;
use super::operations;
use super::raw::{self, RawAgent, RawBackend};
use super::{AgentConfig, MemoryMode, Mode, TokenSource, Triggers, WebhookConfig};
use crate::breaker::BreakerSettings;

impl Choice for MemoryMode {
    const WHAT: &'static str = "memory mode";
    const WORDS: &'static [(&'static str, Self)] = &[
        ("channel", MemoryMode::Channel),
        ("channel-user", MemoryMode::ChannelUser),
        ("user", MemoryMode::User),
    ];
}

/// The cast, in file order. `base_breaker` is the validated `[breaker]` table and `delivery` the
/// `[delivery]` one (an agent may override both); `backends` are the tables as written, so an
/// agent naming a backend that failed validation is not reported twice.
// Why this is long: one `[[agents]]` entry's fields, validated one after another with their precise errors.
pub(crate) fn agents(
    raw_agents: &[RawAgent],
    backends: &BTreeMap<String, Spanned<RawBackend>>,
    mode: Mode,
    base_breaker: BreakerSettings,
    delivery: &DeliverySettings,
    budgets: &crate::quota::Budgets,
    err: &mut Report<'_>,
) -> Vec<AgentConfig> {
    if raw_agents.is_empty() {
        err(
            None,
            "agents".into(),
            "no agents are declared; add at least one [[agents]] table with `name` and `backend`".into(),
        );
    }
    let mut names = HashSet::new();
    let mut token_sources: Vec<(TokenSource, String)> = Vec::new();
    let mut agents = Vec::new();
    for (i, a) in raw_agents.iter().enumerate() {
        let field = |f: &str| format!("agents[{i}].{f}");
        let name = a.name.get_ref().trim().to_string();
        if name.is_empty() {
            err(
                Some(a.name.span()),
                field("name"),
                "an agent needs a non-empty name".into(),
            );
        } else if !names.insert(name.to_lowercase()) {
            err(
                Some(a.name.span()),
                field("name"),
                format!("agent name `{name}` is used twice; agent names must be unique"),
            );
        }
        check_backend(a, &name, backends, &field, err);
        let memory = parse_enum(a.memory.as_ref(), field("memory"), &format!("agent `{name}`: "), err)
            .unwrap_or(MemoryMode::Channel);
        let limit = |v: &Option<Spanned<i64>>, f: &str, default: usize, err: &mut Report<'_>| {
            operations::int(&field(f), v, default as u64, 1, 10_000_000, err) as usize
        };
        let defaults = crate::memory::Limits::default();
        let memory_limits = crate::memory::Limits {
            max_turns: limit(&a.memory_turns, "memory_turns", defaults.max_turns, err),
            max_chars: limit(&a.memory_chars, "memory_chars", defaults.max_chars, err),
        };
        let token = token_source(a, mode, &name, &field, err);
        if token != TokenSource::Sandbox {
            if let Some((_, other)) = token_sources.iter().find(|(t, _)| *t == token) {
                err(
                    Some(a.name.span()),
                    field("token_env"),
                    format!(
                        "agent `{name}` uses the same token as agent `{other}`; each agent needs its own bot token"
                    ),
                );
            }
            token_sources.push((token.clone(), name.clone()));
        }
        let breaker = match &a.breaker {
            Some(b) => operations::breaker(b.get_ref(), base_breaker, &field("breaker"), err),
            None => base_breaker,
        };
        let webhook = a.webhook.as_ref().and_then(|w| webhook_config(w, &field, &name, err));
        let dm_channels = dm_channels(a, &name, &field, err);
        let shards = super::shards::shards(a.shards.as_ref(), &name, &field("shards"), err);
        agents.push(AgentConfig {
            name,
            backend: a.backend.get_ref().clone(),
            system_prompt: a.system_prompt.clone(),
            memory,
            memory_limits,
            triggers: Triggers {
                mention: a.triggers.mention,
                dm: a.triggers.dm,
                reply: a.triggers.reply,
                channels: a.triggers.channels.clone(),
                everyone: a.triggers.everyone,
            },
            webhook,
            dm_channels,
            avatar_url: a.avatar_url.clone(),
            token,
            breaker,
            failure_notice: a
                .failure_notice
                .clone()
                .unwrap_or_else(|| delivery.failure_notice.clone()),
            busy_notice: a.busy_notice.clone().unwrap_or_else(|| delivery.busy_notice.clone()),
            budgets: super::budgets::agent_budgets(budgets, a.budgets.as_ref(), &field("budgets"), err),
            // Set by `cells::assign`, which knows `[cells] count`.
            cell: 0,
            shards,
            stream: a.stream.unwrap_or(false),
        });
    }

    agents
}

/// Reports `a.backend` when no `[backends.NAME]` table has that name, with the nearest one.
fn check_backend(
    a: &RawAgent,
    name: &str,
    backends: &BTreeMap<String, Spanned<RawBackend>>,
    field: &dyn Fn(&str) -> String,
    err: &mut Report<'_>,
) {
    if !backends.contains_key(a.backend.get_ref()) {
        let known: Vec<&str> = backends.keys().map(String::as_str).collect();
        let hint = closest(a.backend.get_ref(), known.iter().copied())
            .map(|c| format!("did you mean `{c}`? "))
            .unwrap_or_default();
        let defined = if known.is_empty() {
            "none are defined; add a [backends.NAME] table".to_string()
        } else {
            format!("defined: {}", known.join(", "))
        };
        err(
            Some(a.backend.span()),
            field("backend"),
            format!(
                "agent `{name}` uses backend `{}`, which is not defined; {hint}{defined}",
                a.backend.get_ref()
            ),
        );
    }
}

/// `dm_channels`: channel IDs; anything else is reported.
fn dm_channels(a: &RawAgent, name: &str, field: &dyn Fn(&str) -> String, err: &mut Report<'_>) -> Vec<u64> {
    a.dm_channels
        .iter()
        .filter_map(|c| match c.get_ref().parse::<u64>() {
            Ok(id) => Some(id),
            Err(_) => {
                err(
                    Some(c.span()),
                    field("dm_channels"),
                    format!("agent `{name}`: `{}` is not a channel ID", c.get_ref()),
                );
                None
            }
        })
        .collect()
}

/// `webhook = {...}`: an existing webhook (id and exactly one token source) or one to create.
fn webhook_config(
    w: &raw::RawWebhook,
    field: &dyn Fn(&str) -> String,
    name: &str,
    err: &mut Report<'_>,
) -> Option<WebhookConfig> {
    match (&w.id, &w.channel) {
        (Some(id), None) => {
            let Ok(parsed) = id.get_ref().parse::<u64>() else {
                err(
                    Some(id.span()),
                    field("webhook.id"),
                    format!("agent `{name}`: webhook id must be a number (the ID in the webhook URL)"),
                );
                return None;
            };
            let token = match (&w.token_env, &w.token_file) {
                (Some(var), None) => TokenSource::Env(var.clone()),
                (None, Some(path)) => TokenSource::File(PathBuf::from(path)),
                _ => {
                    err(
                        Some(id.span()),
                        field("webhook"),
                        format!("agent `{name}`: an existing webhook needs exactly one of token_env or token_file"),
                    );
                    return None;
                }
            };
            Some(WebhookConfig::Existing { id: parsed, token })
        }
        (None, Some(channel)) => Some(WebhookConfig::Create {
            channel: channel.clone(),
        }),
        _ => {
            err(None, field("webhook"), format!("agent `{name}`: give either webhook.id (with token_env/token_file) or webhook.channel (troupe creates one)"));
            None
        }
    }
}

/// Where the bot token comes from: the sandbox's own in sandbox mode, else exactly one of
/// `token_env` and `token_file` (setting both is an error in either mode).
fn token_source(
    a: &RawAgent,
    mode: Mode,
    name: &str,
    field: &dyn Fn(&str) -> String,
    err: &mut Report<'_>,
) -> TokenSource {
    let spanned = |s: &Spanned<String>| (s.get_ref().clone(), s.span());
    match (a.token_env.as_ref().map(spanned), a.token_file.as_ref().map(spanned)) {
        (Some(_), Some((_, span))) => {
            err(
                Some(span),
                field("token_file"),
                format!("agent `{name}` sets both token_env and token_file; keep one"),
            );
            TokenSource::Sandbox
        }
        (Some((var, _)), None) if mode == Mode::Live => TokenSource::Env(var),
        (None, Some((path, _))) if mode == Mode::Live => TokenSource::File(PathBuf::from(path)),
        (None, None) if mode == Mode::Live => {
            err(
                Some(a.name.span()),
                field("token_env"),
                format!(
                    "agent `{name}` has no bot token; in live mode set token_env = \"VAR\" or token_file = \"PATH\""
                ),
            );
            TokenSource::Sandbox
        }
        _ => TokenSource::Sandbox,
    }
}
