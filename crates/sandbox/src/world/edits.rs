//! Changing posted messages as Discord allows: edit (the author only, except flags), delete (the
//! author, or Manage Messages), bulk delete (Manage Messages, 2 to 100 messages under 14 days old),
//! and pins (Manage Messages, at most 50 per channel). No moderation in DMs (50003).

use serde_json::Value;

use super::extras::{Attachment, EDITABLE_FLAGS, MAX_PINS};
use super::{perms, snowflake, Author, Channel, ChannelKind, Message, World};
use crate::error::ApiError;
use crate::mentions::{parse_mentions, AllowedMentions};

/// Bulk delete refuses messages older than this (Unix ms).
const BULK_DELETE_MAX_AGE_MS: u64 = 14 * 24 * 60 * 60 * 1000;

/// What a `PATCH` changes; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct MessageEdit {
    /// New content (`null` clears it).
    pub content: Option<String>,
    /// New embeds.
    pub embeds: Option<Vec<Value>>,
    /// New flags; only SUPPRESS_EMBEDS changes.
    pub flags: Option<u64>,
    /// New components.
    pub components: Option<Vec<Value>>,
    /// `allowed_mentions` for re-parsing the new content.
    pub allowed_mentions: Option<Value>,
    /// Attachments kept, by ID (`attachments` in the body); `None` keeps all.
    pub keep_attachments: Option<Vec<u64>>,
    /// Files uploaded with the edit.
    pub new_attachments: Vec<Attachment>,
}

impl MessageEdit {
    /// Whether the edit changes anything other than flags (which a moderator may change).
    fn touches_content(&self) -> bool {
        self.content.is_some()
            || self.embeds.is_some()
            || self.components.is_some()
            || self.keep_attachments.is_some()
            || !self.new_attachments.is_empty()
    }
}

/// Whether `a` wrote as `b`: the same user, or the same webhook under any name.
pub fn same_author(a: &Author, b: &Author) -> bool {
    match (a, b) {
        (Author::User(x), Author::User(y)) => x == y,
        (Author::Webhook { id: x, .. }, Author::Webhook { id: y, .. }) => x == y,
        _ => false,
    }
}

impl World {
    /// Whether `by` may moderate others' messages in `channel`: Manage Messages, and never in a
    /// DM (Discord's 50003 there).
    fn moderate(&self, by: &Author, channel: &Channel) -> Result<(), ApiError> {
        if matches!(channel.kind, ChannelKind::Dm { .. }) {
            return Err(ApiError::cannot_in_dm());
        }
        if !self.can_manage_messages(by, channel) {
            return Err(ApiError::missing_permissions());
        }
        Ok(())
    }

    fn can_manage_messages(&self, by: &Author, channel: &Channel) -> bool {
        match by {
            Author::User(u) => self.permissions(*u, channel) & perms::MANAGE_MESSAGES != 0,
            Author::Webhook { .. } => false,
        }
    }

    /// The message `message_id` in a channel `by` may see, or Discord's error.
    fn visible_message(&self, channel_id: u64, message_id: u64, by: &Author) -> Result<&Message, ApiError> {
        let channel = match by {
            Author::User(u) => self.readable_channel(*u, channel_id)?,
            Author::Webhook { .. } => self.channels.get(&channel_id).ok_or_else(ApiError::unknown_channel)?,
        };
        channel
            .messages
            .iter()
            .find(|m| m.id == message_id)
            .ok_or_else(ApiError::unknown_message)
    }

    /// Edits a message. The author changes anything; others with Manage Messages only flags.
    pub fn edit_message(
        &mut self,
        channel_id: u64,
        message_id: u64,
        by: &Author,
        edit: MessageEdit,
    ) -> Result<Message, ApiError> {
        let old = self.visible_message(channel_id, message_id, by)?;
        let channel = &self.channels[&channel_id];
        if !same_author(&old.author, by) && (edit.touches_content() || !self.can_manage_messages(by, channel)) {
            return Err(ApiError::cannot_edit_others());
        }
        let mut m = old.clone();
        if let Some(c) = edit.content {
            if c.chars().count() > 2000 {
                return Err(ApiError::invalid_form(
                    "content",
                    "BASE_TYPE_MAX_LENGTH",
                    "Must be 2000 or fewer in length.",
                ));
            }
            m.content = c;
            let am = edit.allowed_mentions.as_ref().or(m.allowed_mentions.as_ref());
            let (users, roles, everyone) = self.mentions_in(channel, &m.content, am);
            (m.mentions, m.mention_roles, m.mention_everyone) = (users, roles, everyone);
        }
        if let Some(mut e) = edit.embeds {
            crate::validate::embeds(&e)?;
            crate::validate::normalise_embeds(&mut e);
            m.embeds = e;
        }
        if let Some(f) = edit.flags {
            m.extra.flags = (m.extra.flags & !EDITABLE_FLAGS) | (f & EDITABLE_FLAGS);
        }
        if let Some(c) = edit.components {
            m.extra.components = c;
        }
        if let Some(keep) = edit.keep_attachments {
            m.extra.attachments.retain(|a| keep.contains(&a.id));
        }
        m.extra.attachments.extend(edit.new_attachments);
        if m.content.trim().is_empty()
            && m.embeds.is_empty()
            && m.extra.attachments.is_empty()
            && m.extra.components.is_empty()
        {
            return Err(ApiError::empty_message());
        }
        m.extra.edited_unix_ms = Some(snowflake::now_unix_ms());
        self.replace_message(&m);
        Ok(m)
    }

    /// The users, roles and @everyone a content pings under `allowed_mentions` in `channel`.
    fn mentions_in(&self, channel: &Channel, content: &str, am: Option<&Value>) -> (Vec<u64>, Vec<u64>, bool) {
        let parsed = parse_mentions(content);
        let allowed = AllowedMentions::from_json(am);
        let guild = !matches!(channel.kind, ChannelKind::Dm { .. });
        let users = parsed
            .users
            .into_iter()
            .filter(|u| self.users.contains_key(u) && allowed.user(*u))
            .collect();
        let roles = if guild {
            parsed.roles.into_iter().filter(|r| allowed.role(*r)).collect()
        } else {
            Vec::new()
        };
        (users, roles, guild && parsed.everyone && allowed.everyone)
    }

    fn replace_message(&mut self, m: &Message) {
        if let Some(slot) = self
            .channels
            .get_mut(&m.channel_id)
            .and_then(|c| c.messages.iter_mut().find(|x| x.id == m.id))
        {
            *slot = m.clone();
        }
    }

    /// Deletes a message: its author, or anyone with Manage Messages.
    pub fn delete_message(&mut self, channel_id: u64, message_id: u64, by: &Author) -> Result<Message, ApiError> {
        let m = self.visible_message(channel_id, message_id, by)?;
        if !same_author(&m.author, by) {
            self.moderate(by, &self.channels[&channel_id])?;
        }
        let channel = self
            .channels
            .get_mut(&channel_id)
            .ok_or_else(ApiError::unknown_channel)?;
        let at = channel
            .messages
            .iter()
            .position(|m| m.id == message_id)
            .ok_or_else(ApiError::unknown_message)?;
        Ok(channel.messages.remove(at))
    }

    /// `POST /channels/{id}/messages/bulk-delete`: Manage Messages, 2 to 100 IDs, none older
    /// than two weeks. IDs not found count toward the limits and are skipped. Returns the IDs
    /// deleted.
    pub fn bulk_delete(&mut self, channel_id: u64, ids: &[u64], by: u64) -> Result<Vec<u64>, ApiError> {
        let channel = self.readable_channel(by, channel_id)?;
        self.moderate(&Author::User(by), channel)?;
        if ids.len() < 2 {
            return Err(ApiError::invalid_form(
                "messages",
                "BASE_TYPE_MIN_LENGTH",
                "Must be 2 or more in length.",
            ));
        }
        if ids.len() > 100 {
            return Err(ApiError::invalid_form(
                "messages",
                "BASE_TYPE_MAX_LENGTH",
                "Must be 100 or fewer in length.",
            ));
        }
        let now = snowflake::now_unix_ms();
        if ids
            .iter()
            .any(|id| now.saturating_sub(snowflake::unix_ms(*id)) > BULK_DELETE_MAX_AGE_MS)
        {
            return Err(ApiError::bulk_delete_too_old());
        }
        let channel = self
            .channels
            .get_mut(&channel_id)
            .ok_or_else(ApiError::unknown_channel)?;
        let mut deleted = Vec::new();
        channel.messages.retain(|m| {
            let gone = ids.contains(&m.id);
            if gone {
                deleted.push(m.id);
            }
            !gone
        });
        Ok(deleted)
    }

    /// Pins a message (Manage Messages; DM participants may pin too). Pinning a pinned message
    /// changes nothing and returns `false`.
    pub fn pin(&mut self, channel_id: u64, message_id: u64, by: u64, pinned: bool) -> Result<bool, ApiError> {
        let channel = self.readable_channel(by, channel_id)?;
        let dm = matches!(channel.kind, ChannelKind::Dm { .. });
        if !dm && self.permissions(by, channel) & perms::MANAGE_MESSAGES == 0 {
            return Err(ApiError::missing_permissions());
        }
        let already = channel
            .messages
            .iter()
            .find(|m| m.id == message_id)
            .ok_or_else(ApiError::unknown_message)?
            .extra
            .pinned_unix_ms
            .is_some();
        if already == pinned {
            return Ok(false);
        }
        if pinned
            && channel
                .messages
                .iter()
                .filter(|m| m.extra.pinned_unix_ms.is_some())
                .count()
                >= MAX_PINS
        {
            return Err(ApiError::max_pins());
        }
        if let Some(m) = self
            .channels
            .get_mut(&channel_id)
            .and_then(|c| c.messages.iter_mut().find(|m| m.id == message_id))
        {
            m.extra.pinned_unix_ms = pinned.then(snowflake::now_unix_ms);
        }
        Ok(true)
    }

    /// Posts the system message Discord adds when `by` pins `message_id`: type 6
    /// (CHANNEL_PINNED_MESSAGE), no content, referencing the pinned message.
    pub fn pin_notice(&mut self, channel_id: u64, message_id: u64, by: u64) -> Result<Message, ApiError> {
        let id = self.ids.next_id();
        let notice = Message {
            id,
            channel_id,
            author: Author::User(by),
            content: String::new(),
            embeds: Vec::new(),
            mentions: Vec::new(),
            mention_roles: Vec::new(),
            mention_everyone: false,
            reference: Some(message_id),
            nonce: None,
            allowed_mentions: None,
            extra: super::MessageExtras {
                system_kind: Some(6),
                ..Default::default()
            },
        };
        let channel = self
            .channels
            .get_mut(&channel_id)
            .ok_or_else(ApiError::unknown_channel)?;
        channel.messages.push(notice.clone());
        Ok(notice)
    }

    /// Pinned messages, most recently pinned first.
    pub fn pins(&self, channel_id: u64, by: u64) -> Result<Vec<&Message>, ApiError> {
        let channel = self.readable_channel(by, channel_id)?;
        let mut pinned: Vec<&Message> = channel
            .messages
            .iter()
            .filter(|m| m.extra.pinned_unix_ms.is_some())
            .collect();
        pinned.sort_by_key(|m| std::cmp::Reverse((m.extra.pinned_unix_ms, m.id)));
        Ok(pinned)
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{text, world};
    use super::*;

    #[test]
    fn the_author_edits_content_and_others_cannot() {
        let (mut w, alice, ada, general) = world();
        let m = w.post(general, Author::User(ada), text("one")).unwrap().message;
        let edit = MessageEdit {
            content: Some(format!("two <@{alice}>")),
            ..Default::default()
        };
        let edited = w.edit_message(general, m.id, &Author::User(ada), edit.clone()).unwrap();
        assert_eq!(edited.content, format!("two <@{alice}>"));
        assert_eq!(edited.mentions, vec![alice]);
        assert!(edited.extra.edited_unix_ms.is_some());
        assert_eq!(w.channel(general).unwrap().messages[0].content, edited.content);
        let err = w.edit_message(general, m.id, &Author::User(alice), edit).unwrap_err();
        assert_eq!((err.status, err.body["code"].as_u64()), (403, Some(50005)));
        let emptied = MessageEdit {
            content: Some(String::new()),
            ..Default::default()
        };
        let err = w.edit_message(general, m.id, &Author::User(ada), emptied).unwrap_err();
        assert_eq!(err.body["code"], 50006);
    }

    #[test]
    fn edits_change_only_the_suppress_embeds_flag() {
        let (mut w, _, ada, general) = world();
        let mut new = text("x");
        new.extra.flags = 1 << 12;
        let m = w.post(general, Author::User(ada), new).unwrap().message;
        assert_eq!(m.extra.flags, 1 << 12);
        let edit = MessageEdit {
            flags: Some((1 << 2) | (1 << 1)),
            ..Default::default()
        };
        let edited = w.edit_message(general, m.id, &Author::User(ada), edit).unwrap();
        assert_eq!(edited.extra.flags, (1 << 12) | (1 << 2));
    }

    #[test]
    fn delete_and_bulk_delete() {
        let (mut w, alice, ada, general) = world();
        let ids: Vec<u64> = (0..3)
            .map(|i| {
                w.post(general, Author::User(alice), text(&i.to_string()))
                    .unwrap()
                    .message
                    .id
            })
            .collect();
        assert_eq!(
            w.delete_message(general, ids[0], &Author::User(ada)).unwrap().id,
            ids[0]
        );
        assert_eq!(
            w.delete_message(general, ids[0], &Author::User(ada)).unwrap_err().body["code"],
            10008
        );
        assert_eq!(w.bulk_delete(general, &ids[1..2], ada).unwrap_err().body["code"], 50035);
        assert_eq!(
            w.bulk_delete(general, &[ids[1], 5], ada).unwrap_err().body["code"],
            50034
        );
        assert_eq!(w.bulk_delete(general, &ids[1..], ada).unwrap(), ids[1..].to_vec());
        assert!(w.channel(general).unwrap().messages.is_empty());
    }

    #[test]
    fn no_moderation_in_dms() {
        let (mut w, alice, ada, _) = world();
        let dm = w.open_dm(alice, ada).unwrap();
        let hers = w.post(dm, Author::User(alice), text("hi")).unwrap().message.id;
        let mine = w.post(dm, Author::User(ada), text("yo")).unwrap().message.id;
        let err = w.delete_message(dm, hers, &Author::User(ada)).unwrap_err();
        assert_eq!((err.status, err.body["code"].as_u64()), (403, Some(50003)));
        assert_eq!(w.bulk_delete(dm, &[hers, mine], ada).unwrap_err().body["code"], 50003);
        assert!(w.delete_message(dm, mine, &Author::User(ada)).is_ok());
        assert!(w.pin(dm, hers, ada, true).unwrap());
    }

    #[test]
    fn pins_are_capped_at_50_and_listed_newest_first() {
        let (mut w, alice, ada, general) = world();
        let ids: Vec<u64> = (0..51)
            .map(|i| {
                w.post(general, Author::User(alice), text(&i.to_string()))
                    .unwrap()
                    .message
                    .id
            })
            .collect();
        for id in &ids[..50] {
            assert!(w.pin(general, *id, ada, true).unwrap());
        }
        assert!(!w.pin(general, ids[0], ada, true).unwrap());
        assert_eq!(w.pin(general, ids[50], ada, true).unwrap_err().body["code"], 30003);
        assert_eq!(w.pins(general, ada).unwrap()[0].id, ids[49]);
        assert!(w.pin(general, ids[0], ada, false).unwrap());
        assert_eq!(w.pins(general, ada).unwrap().len(), 49);
        let notice = w.pin_notice(general, ids[0], ada).unwrap();
        assert_eq!((notice.extra.system_kind, notice.reference), (Some(6), Some(ids[0])));
        let v = w.message_json(&notice, true);
        assert_eq!(v["type"], 6);
        let parsed: serenity::model::channel::Message = serde_json::from_value(v).unwrap();
        assert_eq!(parsed.kind, serenity::model::channel::MessageType::PinsAdd);
    }
}
