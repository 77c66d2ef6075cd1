//! `[sandbox]` validated: its address, and the section becomes a [`WorldSpec`]. The world it
//! describes, with the agents as its bots, goes through [`WorldSpec::problems`], the check the
//! sandbox itself runs when it builds that world. A configuration `check-config` accepts
//! therefore never fails at start for its world, and every problem is reported at its line.

use std::collections::HashSet;
use std::net::SocketAddr;

use super::error::Report;
use super::raw::{RawAgent, RawSandbox};
use crate::sandbox::spec::{sandbox_token, BotSpec, ChannelSpec, GuildSpec, WorldPlace, WorldSpec};

/// `[sandbox] listen` (default [`super::DEFAULT_SANDBOX_LISTEN`]), and `url` checked to be an
/// http(s) URL.
pub(crate) fn listen(raw: &RawSandbox, err: &mut Report<'_>) -> SocketAddr {
    let listen_text = raw
        .listen
        .clone()
        .unwrap_or_else(|| super::DEFAULT_SANDBOX_LISTEN.to_string());
    let listen = listen_text.parse::<SocketAddr>().unwrap_or_else(|_| {
        err(
            None,
            "sandbox.listen".into(),
            format!("`{listen_text}` is not an address; write HOST:PORT, e.g. \"127.0.0.1:8686\""),
        );
        super::DEFAULT_SANDBOX_LISTEN.parse().expect("default address parses")
    });
    if let Some(url) = &raw.url {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            err(
                None,
                "sandbox.url".into(),
                format!("`{url}` is not an http:// URL; e.g. \"http://127.0.0.1:8686\""),
            );
        }
    }
    listen
}

/// The world of `[sandbox]`, its problems reported through `err`. Agents with an empty or
/// repeated name are left out of the check: the agents' own validation reports those.
pub(crate) fn world(raw: &RawSandbox, agents: &[RawAgent], err: &mut Report<'_>) -> WorldSpec {
    let defaults = WorldSpec::default();
    let spec = WorldSpec {
        listen: raw.listen.clone(),
        url: raw.url.clone(),
        guilds: raw.guilds.as_ref().map_or(defaults.guilds, |guilds| {
            guilds
                .iter()
                .map(|g| GuildSpec {
                    name: g.name.clone(),
                    channels: g
                        .channels
                        .iter()
                        .map(|c| ChannelSpec {
                            name: c.name.get_ref().clone(),
                            slowmode: c.slowmode,
                            hidden_from: c.hidden_from.iter().map(|n| n.get_ref().clone()).collect(),
                            read_only_for: c.read_only_for.iter().map(|n| n.get_ref().clone()).collect(),
                        })
                        .collect(),
                })
                .collect()
        }),
        humans: raw.humans.as_ref().map_or(defaults.humans, |humans| {
            humans.iter().map(|h| h.get_ref().clone()).collect()
        }),
        bots: raw
            .bots
            .iter()
            .map(|b| BotSpec {
                name: b.name.get_ref().clone(),
                token: b.token.clone(),
                privileged_intents: b.privileged_intents.clone(),
            })
            .collect(),
        heartbeat_interval_ms: raw.heartbeat_interval_ms.unwrap_or(defaults.heartbeat_interval_ms),
    };

    // The agents as the sandbox adds them (index into `agents` kept for the error's place).
    let mut seen = HashSet::new();
    let (indexes, bots): (Vec<usize>, Vec<(String, String)>) = agents
        .iter()
        .enumerate()
        .map(|(i, a)| (i, a.name.get_ref().trim().to_string()))
        .filter(|(_, name)| !name.is_empty() && seen.insert(name.to_lowercase()))
        .map(|(i, name)| (i, (name.clone(), sandbox_token(&name))))
        .unzip();
    for problem in spec.problems(&bots) {
        let (span, field) = match problem.place {
            WorldPlace::Human(i) => (
                raw.humans.as_ref().and_then(|h| h.get(i)).map(|h| h.span()),
                format!("sandbox.humans[{i}]"),
            ),
            WorldPlace::Bot(i) => (Some(raw.bots[i].name.span()), format!("sandbox.bots[{i}].name")),
            WorldPlace::Extra(i) => {
                let agent = indexes[i];
                (Some(agents[agent].name.span()), format!("agents[{agent}].name"))
            }
            WorldPlace::Channel { guild, channel } => (
                channel_of(raw, guild, channel).map(|c| c.name.span()),
                format!("sandbox.guilds[{guild}].channels[{channel}].name"),
            ),
            WorldPlace::HiddenFrom { guild, channel, entry } => (
                channel_of(raw, guild, channel)
                    .and_then(|c| c.hidden_from.get(entry))
                    .map(|n| n.span()),
                format!("sandbox.guilds[{guild}].channels[{channel}].hidden_from"),
            ),
            WorldPlace::ReadOnlyFor { guild, channel, entry } => (
                channel_of(raw, guild, channel)
                    .and_then(|c| c.read_only_for.get(entry))
                    .map(|n| n.span()),
                format!("sandbox.guilds[{guild}].channels[{channel}].read_only_for"),
            ),
        };
        err(span, field, problem.message);
    }
    spec
}

fn channel_of(raw: &RawSandbox, guild: usize, channel: usize) -> Option<&super::raw::RawChannel> {
    raw.guilds.as_ref()?.get(guild)?.channels.get(channel)
}
