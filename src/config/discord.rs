//! `[discord]` validated: the chain protocol, the delay before answering bots, the per-user and
//! bot-exchange limits ([`DiscordSettings`]), and live mode's API base.

use std::time::Duration;

use toml::Spanned;

use super::choice::{parse_enum, Choice};
use super::error::Report;
use super::operations;
use super::raw::RawDiscord;
use super::{CommandScope, DiscordSettings, Mode};

impl Choice for CommandScope {
    const WHAT: &'static str = "command scope";
    const WORDS: &'static [(&'static str, Self)] = &[
        ("guild", CommandScope::Guild),
        ("global", CommandScope::Global),
        ("off", CommandScope::Off),
    ];
}

/// `[discord] api_url`: only in live mode, and an http(s) URL (trailing `/` dropped).
pub(crate) fn api_url(raw: &RawDiscord, mode: Mode, err: &mut Report<'_>) -> Option<String> {
    raw.api_url.as_ref().map(|u| {
        let url = u.get_ref().trim_end_matches('/').to_string();
        if mode != Mode::Live {
            err(
                Some(u.span()),
                "discord.api_url".into(),
                "only used in live mode; in sandbox mode set [sandbox] url".into(),
            );
        } else if !(url.starts_with("http://") || url.starts_with("https://")) {
            err(
                Some(u.span()),
                "discord.api_url".into(),
                format!("`{url}` is not an http(s):// URL"),
            );
        }
        url
    })
}

/// The rest of `[discord]`.
pub(crate) fn settings(raw: &RawDiscord, err: &mut Report<'_>) -> DiscordSettings {
    let d = DiscordSettings::default();
    let mut ranged = |field: &str, v: &Option<Spanned<i64>>, default: u64, min: i64, max: i64| {
        operations::int(&format!("discord.{field}"), v, default, min, max, err)
    };
    let max_chain = ranged("max_chain", &raw.max_chain, u64::from(d.max_chain.get()), 1, 99);
    DiscordSettings {
        max_chain: crate::acl::ChainLength::new(max_chain as u8).unwrap_or(d.max_chain),
        tagline: raw.tagline.clone().unwrap_or(d.tagline),
        courtesy: raw.courtesy.clone().unwrap_or(d.courtesy),
        bot_delay: raw.bot_delay_ms.map_or(d.bot_delay, Duration::from_millis),
        bot_delay_jitter: raw
            .bot_delay_jitter_ms
            .map_or(d.bot_delay_jitter, Duration::from_millis),
        typing_delay: Duration::from_millis(ranged(
            "typing_delay_ms",
            &raw.typing_delay_ms,
            d.typing_delay.as_millis() as u64,
            0,
            60_000,
        )),
        user_rate_limit: ranged(
            "user_rate_limit",
            &raw.user_rate_limit,
            d.user_rate_limit as u64,
            0,
            100_000,
        ) as usize,
        user_rate_window: Duration::from_secs(ranged(
            "user_rate_window_secs",
            &raw.user_rate_window_secs,
            d.user_rate_window.as_secs(),
            1,
            86_400,
        )),
        rate_notice: raw.rate_notice.clone().unwrap_or(d.rate_notice),
        bot_replies_per_window: ranged(
            "bot_replies_per_window",
            &raw.bot_replies_per_window,
            d.bot_replies_per_window as u64,
            1,
            10_000,
        ) as usize,
        bot_reply_window: Duration::from_secs(ranged(
            "bot_reply_window_secs",
            &raw.bot_reply_window_secs,
            d.bot_reply_window.as_secs(),
            1,
            86_400,
        )),
        commands: parse_enum(raw.commands.as_ref(), "discord.commands".into(), "", err).unwrap_or(d.commands),
    }
}
