//! `troupe check-config`: the validated configuration as JSON, every default filled in and every
//! secret redacted, plus the problems only resolution finds (a token variable that is not set,
//! a key file that cannot be read). Secrets are read to check they exist and never printed:
//! the output shows where each comes from and whether it was found.

use serde_json::{json, Map, Value};

use super::{ApiKeySource, Config, MemoryMode, Mode, Provider, TokenSource, WebhookConfig};

/// The resolved configuration, and the problems found resolving it (empty when it is usable).
// Why this is long: it lists every resolved setting for `check-config`'s JSON, one field per line.
pub fn resolve(config: &Config) -> (Value, Vec<String>) {
    let mut problems = Vec::new();
    let backends: Map<String, Value> = config
        .backends
        .values()
        .map(|b| {
            let mut v = provider(&b.provider, &b.name, &mut problems);
            v["max_concurrency"] = json!(b.max_concurrency);
            v["max_queue"] = json!(b.max_queue);
            v["vision"] = json!(b.vision);
            (b.name.clone(), v)
        })
        .collect();
    let agents: Vec<Value> = config
        .agents
        .iter()
        .map(|a| {
            let token = match (config.mode, &a.token) {
                (Mode::Sandbox, _) | (_, TokenSource::Sandbox) => json!("sandbox token"),
                (Mode::Live, source) => {
                    let found = source.resolve(&a.name).map_err(|e| problems.push(e)).is_ok();
                    match source {
                        TokenSource::Env(var) => json!({"env": var, "found": found}),
                        TokenSource::File(path) => json!({"file": path, "found": found}),
                        TokenSource::Sandbox => unreachable!("matched above"),
                    }
                }
            };
            json!({
                "name": a.name,
                "backend": a.backend,
                "system_prompt": a.system_prompt,
                "memory": match a.memory {
                    MemoryMode::Channel => "channel",
                    MemoryMode::ChannelUser => "channel-user",
                    MemoryMode::User => "user",
                },
                "memory_turns": a.memory_limits.max_turns,
                "memory_chars": a.memory_limits.max_chars,
                "triggers": {
                    "mention": a.triggers.mention,
                    "dm": a.triggers.dm,
                    "reply": a.triggers.reply,
                    "channels": a.triggers.channels,
                },
                "token": token,
                "webhook": webhook(a.webhook.as_ref(), &a.name, &mut problems),
                "breaker": breaker(&a.breaker),
                "attachments": attachments(&a.attachments),
                "cell": a.cell,
                "shards": match a.shards {
                    crate::config::Shards::Auto => json!("auto"),
                    crate::config::Shards::Fixed(n) => json!(n),
                },
            })
        })
        .collect();
    let c = &config.conversations;
    let value = json!({
        "source": config.source,
        "mode": match config.mode { Mode::Sandbox => "sandbox", Mode::Live => "live" },
        "sandbox": {
            "listen": config.sandbox.listen.to_string(),
            "url": config.sandbox.url,
        },
        "discord": {
            "bot_dms_channel": config.bot_dms_channel,
            "api_url": config.discord_api_url.as_deref().map(without_userinfo),
            "commands": match config.discord.commands {
                crate::config::CommandScope::Guild => "guild",
                crate::config::CommandScope::Global => "global",
                crate::config::CommandScope::Off => "off",
            },
        },
        "store": {"path": config.store_path, "retention_days": config.store_retention.as_secs() / 86_400, "cache_mib": config.store_cache_bytes >> 20},
        "conversations": {
            "idle_secs": c.idle.as_secs(),
            "queue_limit": c.queue_limit,
            "restart_limit": c.restart_limit,
            "restart_window_secs": c.restart_window.as_secs(),
            "shutdown_grace_secs": c.shutdown_grace.as_secs(),
            "reorder_ms": c.reorder.as_millis() as u64,
        },
        "http": {"listen": config.http_listen.to_string()},
        "breaker": breaker(&config.breaker),
        "limits": {
            "max_load_average": config.limits.max_load_average,
            "max_rss_mb": config.limits.max_rss_mb,
            "check_interval_secs": config.limits.check_interval.as_secs_f64(),
        },
        "restarts": {
            "window_secs": config.restarts.window.as_secs(),
            "free_starts": config.restarts.free_starts,
            "backoff_initial_ms": config.restarts.initial_backoff.as_millis() as u64,
            "backoff_max_ms": config.restarts.max_backoff.as_millis() as u64,
        },
        "attachments": attachments(&config.attachments),
        "backends": backends,
        "agents": agents,
        // Which agents each cell runs (index = cell).
        "cells": {"count": config.cell_count, "agents": config.agents_by_cell()},
    });
    (value, problems)
}

/// An agent's webhook; an existing one's token is read (in every mode: troupe reads it at start).
fn webhook(w: Option<&WebhookConfig>, agent: &str, problems: &mut Vec<String>) -> Value {
    match w {
        None => Value::Null,
        Some(WebhookConfig::Create { channel }) => json!({"channel": channel}),
        Some(WebhookConfig::Existing { id, token }) => {
            let found = token
                .resolve(agent)
                .map_err(|e| problems.push(format!("{e} (the webhook's token)")))
                .is_ok();
            let token = match token {
                TokenSource::Env(var) => json!({"env": var, "found": found}),
                TokenSource::File(path) => json!({"file": path, "found": found}),
                TokenSource::Sandbox => json!("sandbox token"),
            };
            json!({"id": id.to_string(), "token": token})
        }
    }
}

fn attachments(a: &crate::attach::Settings) -> Value {
    let l = &a.limits;
    json!({
        "max_image_bytes": l.max_image_bytes,
        "max_images": l.max_images,
        "max_total_bytes": l.max_total_bytes,
        "text_chars": l.text_chars,
        "timeout_secs": l.timeout.as_secs(),
        "history_images": a.history_images,
        "long_replies": match a.long_replies {
            crate::attach::LongReplies::Split => "split",
            crate::attach::LongReplies::File => "file",
        },
        "long_reply_chars": a.long_reply_chars,
    })
}

fn breaker(b: &crate::breaker::BreakerSettings) -> Value {
    json!({"max_failures": b.max_failures, "on_trip": b.on_trip.as_str(), "cooldown_secs": b.cooldown.as_secs()})
}

fn provider(p: &Provider, name: &str, problems: &mut Vec<String>) -> Value {
    match p {
        Provider::Echo(e) => json!({
            "provider": "echo",
            "reply": if e.reply_with_prompt { "prompt" } else { "last" },
            "delay_ms": e.delay.as_millis() as u64,
            "panic_on": e.panic_on,
        }),
        Provider::OpenAi(h) | Provider::Anthropic(h) => {
            let found = h.api_key.resolve(name).map_err(|e| problems.push(e)).is_ok();
            let api_key = match &h.api_key {
                ApiKeySource::None => json!(null),
                ApiKeySource::Env(var) => json!({"env": var, "found": found}),
                ApiKeySource::File(path) => json!({"file": path, "found": found}),
            };
            json!({
                "provider": h.flavor,
                "base_url": without_userinfo(&h.base_url),
                "model": h.model,
                "api_key": api_key,
                "tokens": format!("{:?}", h.tokens),
                "on_truncation": format!("{:?}", h.on_truncation),
                "timeouts": format!("{:?}", h.timeouts),
                "retries": format!("{:?}", h.retries),
                "temperature": h.temperature,
            })
        }
        Provider::Command(c) => json!({
            "provider": "command",
            "program": c.program,
            "args": c.args,
            // Values of `env` may be credentials: only the names are shown.
            "env": c.env.iter().map(|(k, _)| (k.clone(), json!("[redacted]"))).collect::<Map<_, _>>(),
            "cwd": c.cwd,
            "timeout_secs": c.timeout.as_secs_f64(),
            "max_output_bytes": c.max_output_bytes,
            "error_patterns": c.error_patterns,
        }),
    }
}

/// A URL without `user:password@`.
fn without_userinfo(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
            let host = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
            let redacted = if host.len() == authority.len() {
                ""
            } else {
                "[redacted]@"
            };
            format!("{scheme}://{redacted}{host}{path}")
        }
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_tokens_are_checked_and_never_printed() {
        std::env::set_var("TROUPE_RESOLVED_TEST_TOKEN", "do-not-print-me");
        let text = "mode = \"live\"\n[backends.b]\nprovider = \"echo\"\n[[agents]]\nname = \"A\"\nbackend = \"b\"\n\
                    token_env = \"TROUPE_RESOLVED_TEST_TOKEN\"\n[[agents]]\nname = \"B\"\nbackend = \"b\"\n\
                    token_env = \"TROUPE_RESOLVED_TEST_UNSET\"\n";
        let config = Config::parse("t.toml", text).unwrap();
        let (value, problems) = resolve(&config);
        assert!(!value.to_string().contains("do-not-print-me"));
        assert_eq!(
            value["agents"][0]["token"],
            json!({"env": "TROUPE_RESOLVED_TEST_TOKEN", "found": true})
        );
        assert_eq!(value["agents"][1]["token"]["found"], false);
        assert_eq!(problems.len(), 1);
        assert!(problems[0].contains("TROUPE_RESOLVED_TEST_UNSET"), "{problems:?}");
        assert_eq!(value["breaker"]["on_trip"], "exit");
        assert_eq!(value["http"]["listen"], "0.0.0.0:23459");
    }

    #[test]
    fn attachment_settings_and_vision_are_shown() {
        let text = "[attachments]
long_replies = \"file\"
max_images = 1
[backends.b]
provider = \"openai\"
                    base_url = \"http://x/v1\"
model = \"m\"
vision = true
[[agents]]
name = \"A\"
backend = \"b\"
";
        let config = Config::parse("t.toml", text).unwrap();
        let (value, _) = resolve(&config);
        assert_eq!(value["backends"]["b"]["vision"], true);
        assert_eq!(value["attachments"]["long_replies"], "file");
        assert_eq!(value["attachments"]["max_images"], 1);
        assert_eq!(value["attachments"]["text_chars"], 20_000, "defaults filled in");
        assert_eq!(
            value["agents"][0]["attachments"]["long_replies"], "file",
            "what the agent uses"
        );
    }

    #[test]
    fn an_existing_webhooks_token_is_checked_in_every_mode() {
        let text = "[backends.b]\nprovider = \"echo\"\n[[agents]]\nname = \"A\"\nbackend = \"b\"\n\
                    webhook = { id = \"42\", token_env = \"TROUPE_RESOLVED_TEST_HOOK_UNSET\" }\n";
        let config = Config::parse("t.toml", text).unwrap();
        let (value, problems) = resolve(&config);
        assert_eq!(
            value["agents"][0]["webhook"],
            json!({"id": "42", "token": {"env": "TROUPE_RESOLVED_TEST_HOOK_UNSET", "found": false}})
        );
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].contains("TROUPE_RESOLVED_TEST_HOOK_UNSET") && problems[0].contains("webhook"),
            "{problems:?}"
        );
    }

    #[test]
    fn userinfo_is_removed_from_urls() {
        assert_eq!(without_userinfo("https://u:p@h:1/v1"), "https://[redacted]@h:1/v1");
        assert_eq!(without_userinfo("http://h/v1"), "http://h/v1");
    }
}
