//! Webhooks made and managed over REST: Discord-like tokens (68 characters of `[A-Za-z0-9_-]`),
//! at most 15 per channel, rename, move, delete.

use std::hash::{BuildHasher, Hasher};

use super::{perms, ChannelKind, Webhook, World};
use crate::error::ApiError;

/// Most webhooks in one channel.
pub const MAX_WEBHOOKS_PER_CHANNEL: usize = 15;
/// Length of a webhook token.
pub const TOKEN_LEN: usize = 68;

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// A fresh webhook token: 68 characters from Discord's alphabet, unguessable (std's randomly
/// keyed hasher, seeded anew for each token, stirred with the webhook's ID).
pub fn new_token(id: u64) -> String {
    let state = std::collections::hash_map::RandomState::new();
    let mut out = String::with_capacity(TOKEN_LEN);
    let mut round = 0u64;
    while out.len() < TOKEN_LEN {
        let mut h = state.build_hasher();
        h.write_u64(id);
        h.write_u64(round);
        let mut bits = h.finish();
        for _ in 0..10 {
            if out.len() == TOKEN_LEN {
                break;
            }
            out.push(ALPHABET[(bits & 63) as usize] as char);
            bits >>= 6;
        }
        round += 1;
    }
    out
}

/// The hash Discord gives an uploaded image (32 hex digits), stable for the same data.
pub fn image_hash(data: &str) -> String {
    let state = std::hash::BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default();
    format!(
        "{:016x}{:016x}",
        state.hash_one((data, 0u8)),
        state.hash_one((data, 1u8))
    )
}

/// Changes to a webhook (`PATCH`); `None` keeps a field.
#[derive(Debug, Clone, Default)]
pub struct WebhookEdit {
    /// New default name.
    pub name: Option<String>,
    /// New avatar image data (`Some(None)` removes it); kept as its hash, as Discord does.
    pub avatar: Option<Option<String>>,
    /// New channel (bot-authenticated requests only).
    pub channel_id: Option<u64>,
}

impl World {
    /// Creates a webhook for `creator`, who needs Manage Webhooks in the channel.
    pub fn create_webhook_by(&mut self, channel_id: u64, name: &str, creator: u64) -> Result<Webhook, ApiError> {
        let channel = self.readable_channel(creator, channel_id)?;
        if self.permissions(creator, channel) & perms::MANAGE_WEBHOOKS == 0 {
            return Err(ApiError::missing_permissions());
        }
        if self.webhooks.values().filter(|h| h.channel_id == channel_id).count() >= MAX_WEBHOOKS_PER_CHANNEL {
            return Err(ApiError::max_webhooks());
        }
        let mut hook = self.create_webhook(channel_id, name)?;
        hook.creator = Some(creator);
        self.webhooks.insert(hook.id, hook.clone());
        Ok(hook)
    }

    /// The webhooks of a channel, oldest first.
    pub fn webhooks_in(&self, channel_id: u64) -> Vec<&Webhook> {
        self.webhooks.values().filter(|h| h.channel_id == channel_id).collect()
    }

    /// Applies `edit` to webhook `id`; a new channel must be a guild text channel of the same guild.
    pub fn modify_webhook(&mut self, id: u64, edit: WebhookEdit) -> Result<Webhook, ApiError> {
        let hook = self.webhooks.get(&id).ok_or_else(ApiError::unknown_webhook)?;
        if let Some(to) = edit.channel_id {
            let from_guild = self.channel(hook.channel_id).and_then(|c| self.guild_of(c));
            match self.channel(to) {
                Some(c) if matches!(c.kind, ChannelKind::GuildText { .. }) && self.guild_of(c) == from_guild => {}
                Some(_) => return Err(ApiError::cannot_dm_webhook()),
                None => return Err(ApiError::unknown_channel()),
            }
        }
        let hook = self.webhooks.get_mut(&id).ok_or_else(ApiError::unknown_webhook)?;
        if let Some(name) = edit.name {
            hook.name = name;
        }
        if let Some(avatar) = edit.avatar {
            hook.avatar = avatar.as_deref().map(image_hash);
        }
        if let Some(to) = edit.channel_id {
            hook.channel_id = to;
        }
        Ok(hook.clone())
    }

    /// Deletes webhook `id`; its messages stay.
    pub fn delete_webhook(&mut self, id: u64) -> Result<Webhook, ApiError> {
        self.webhooks.remove(&id).ok_or_else(ApiError::unknown_webhook)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_68_url_safe_characters_and_differ() {
        let a = new_token(1);
        assert_eq!(a.len(), TOKEN_LEN);
        assert!(a.bytes().all(|b| ALPHABET.contains(&b)));
        assert_ne!(a, new_token(1));
    }

    #[test]
    fn fifteen_webhooks_per_channel() {
        let (mut w, _, ada, general) = crate::world::tests::world();
        for i in 0..15 {
            w.create_webhook_by(general, &format!("h{i}"), ada).unwrap();
        }
        assert_eq!(w.create_webhook_by(general, "h", ada).unwrap_err().body["code"], 30007);
        assert_eq!(w.webhooks_in(general).len(), 15);
        let id = w.webhooks_in(general)[0].id;
        let renamed = w
            .modify_webhook(
                id,
                WebhookEdit {
                    name: Some("new".into()),
                    ..Default::default()
                },
            )
            .unwrap();
        assert_eq!(renamed.name, "new");
        let with_avatar = w
            .modify_webhook(
                id,
                WebhookEdit {
                    avatar: Some(Some("data:image/png;base64,AAAA".into())),
                    ..Default::default()
                },
            )
            .unwrap();
        let hash = with_avatar.avatar.unwrap();
        assert_eq!(
            (hash.len(), hash.clone()),
            (32, image_hash("data:image/png;base64,AAAA"))
        );
        w.delete_webhook(id).unwrap();
        assert_eq!(w.delete_webhook(id).unwrap_err().body["code"], 10015);
    }
}
