//! Guild text channels created or changed while the sandbox runs (the control API's
//! `/sandbox/channels`), as a guild's owner would in Discord's client: a bot that was running
//! before sees them through CHANNEL_CREATE and CHANNEL_UPDATE.

use super::{Channel, ChannelKind, World};
use crate::error::ApiError;

/// A change to a text channel; fields left `None` stay as they are.
#[derive(Debug, Default, Clone)]
pub struct ChannelChange {
    /// New name.
    pub name: Option<String>,
    /// Slowmode seconds (0 to 21600, as on Discord).
    pub slowmode: Option<u32>,
    /// Bot user IDs denied View Channel.
    pub hidden_from: Option<Vec<u64>>,
    /// Bot user IDs denied Send Messages (and Send Messages in Threads).
    pub read_only_for: Option<Vec<u64>>,
}

/// Discord's bound on `rate_limit_per_user`.
const MAX_SLOWMODE: u32 = 21_600;

impl World {
    /// Creates a text channel at the end of guild `guild_id`'s list. Names are unique among
    /// the sandbox's text channels (the control API addresses channels by name).
    pub fn create_text_channel(&mut self, guild_id: u64, change: ChannelChange) -> Result<u64, ApiError> {
        if !self.guilds.iter().any(|g| g.id == guild_id) {
            return Err(ApiError::unknown_guild());
        }
        let name = change
            .name
            .clone()
            .ok_or_else(|| ApiError::invalid_form("name", "BASE_TYPE_REQUIRED", "This field is required"))?;
        let position = self
            .channels
            .values()
            .filter(|c| matches!(c.kind, ChannelKind::GuildText { guild_id: g, .. } if g == guild_id))
            .count() as u32;
        let id = self.ids.next_id();
        let mut channel = Channel {
            id,
            kind: ChannelKind::GuildText {
                guild_id,
                name: String::new(),
                position,
                rate_limit_per_user: 0,
                hidden_from: Vec::new(),
                read_only_for: Vec::new(),
            },
            messages: Vec::new(),
        };
        self.apply(
            &mut channel,
            ChannelChange {
                name: Some(name),
                ..change
            },
        )?;
        self.channels.insert(id, channel);
        Ok(id)
    }

    /// Changes text channel `id`.
    pub fn update_text_channel(&mut self, id: u64, change: ChannelChange) -> Result<(), ApiError> {
        let mut channel = self.channels.get(&id).cloned().ok_or_else(ApiError::unknown_channel)?;
        self.apply(&mut channel, change)?;
        self.channels.insert(id, channel);
        Ok(())
    }

    /// Checks `change` and applies it to `channel` (a copy: nothing is changed on an error).
    fn apply(&self, channel: &mut Channel, change: ChannelChange) -> Result<(), ApiError> {
        let id = channel.id;
        let ChannelKind::GuildText {
            name,
            rate_limit_per_user,
            hidden_from,
            read_only_for,
            ..
        } = &mut channel.kind
        else {
            return Err(ApiError::invalid_form(
                "type",
                "CHANNEL_TYPE_INVALID",
                "Only guild text channels can be changed here",
            ));
        };
        if let Some(new) = change.name {
            if new.trim().is_empty() || new.chars().count() > 100 {
                return Err(ApiError::invalid_form(
                    "name",
                    "BASE_TYPE_BAD_LENGTH",
                    "Must be between 1 and 100 in length.",
                ));
            }
            if self.find_text_channel_only(&new).is_some_and(|c| c.id != id) {
                return Err(ApiError::invalid_form(
                    "name",
                    "SANDBOX_NAME_TAKEN",
                    "Another text channel has this name; the control API addresses channels by name.",
                ));
            }
            *name = new;
        }
        if let Some(seconds) = change.slowmode {
            if seconds > MAX_SLOWMODE {
                return Err(ApiError::invalid_form(
                    "rate_limit_per_user",
                    "NUMBER_TYPE_MAX",
                    "int value should be less than or equal to 21600.",
                ));
            }
            *rate_limit_per_user = seconds;
        }
        for (field, users) in [
            ("hidden_from", &change.hidden_from),
            ("read_only_for", &change.read_only_for),
        ] {
            if let Some(unknown) = users.iter().flatten().find(|u| !self.users.contains_key(u)) {
                return Err(ApiError::invalid_form(
                    field,
                    "SANDBOX_UNKNOWN_USER",
                    &format!("no user with ID {unknown}"),
                ));
            }
        }
        if let Some(users) = change.hidden_from {
            *hidden_from = users;
        }
        if let Some(users) = change.read_only_for {
            *read_only_for = users;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::perms;
    use super::super::tests::world;
    use super::*;

    #[test]
    fn a_new_channel_joins_its_guild_and_follows_its_overwrites() {
        let (mut w, alice, ada, _) = world();
        let guild = w.guilds()[0].id;
        let change = ChannelChange {
            name: Some("late".into()),
            read_only_for: Some(vec![ada]),
            ..ChannelChange::default()
        };
        let id = w.create_text_channel(guild, change).unwrap();
        assert_eq!(w.channel_by_name("late").unwrap().id, id);
        assert_eq!(w.guild_of(w.channel(id).unwrap()), Some(guild));
        let ada_may = w.permissions(ada, w.channel(id).unwrap());
        assert!(ada_may & perms::VIEW_CHANNEL != 0 && ada_may & perms::SEND_MESSAGES == 0);
        assert!(w.permissions(alice, w.channel(id).unwrap()) & perms::SEND_MESSAGES != 0);
        w.update_text_channel(
            id,
            ChannelChange {
                read_only_for: Some(vec![]),
                ..ChannelChange::default()
            },
        )
        .unwrap();
        assert!(w.permissions(ada, w.channel(id).unwrap()) & perms::SEND_MESSAGES != 0);
    }

    #[test]
    fn bad_changes_are_refused_and_change_nothing() {
        let (mut w, _, _, general) = world();
        let guild = w.guilds()[0].id;
        let named = |n: &str| ChannelChange {
            name: Some(n.into()),
            ..ChannelChange::default()
        };
        assert_eq!(
            w.create_text_channel(guild, named("general")).unwrap_err().body["code"],
            50035
        );
        assert_eq!(
            w.create_text_channel(guild, named(" ")).unwrap_err().body["code"],
            50035
        );
        assert_eq!(
            w.create_text_channel(guild, ChannelChange::default()).unwrap_err().body["code"],
            50035
        );
        assert_eq!(w.create_text_channel(1, named("x")).unwrap_err().body["code"], 10004);
        let too_slow = ChannelChange {
            name: Some("renamed".into()),
            slowmode: Some(21_601),
            ..ChannelChange::default()
        };
        assert_eq!(
            w.update_text_channel(general, too_slow).unwrap_err().body["code"],
            50035
        );
        assert!(
            w.channel_by_name("general").is_some(),
            "a refused change renames nothing"
        );
        let nobody = ChannelChange {
            hidden_from: Some(vec![42]),
            ..ChannelChange::default()
        };
        assert_eq!(w.update_text_channel(general, nobody).unwrap_err().body["code"], 50035);
    }
}
