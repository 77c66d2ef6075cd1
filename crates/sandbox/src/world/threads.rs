//! Threads started from a message: the thread takes the message's ID, as on Discord, and a
//! message starts at most one thread.

use super::{perms, Channel, ChannelKind, World};
use crate::error::ApiError;

impl World {
    /// Starts a public thread from `message_id` in a guild text channel (Create Public Threads).
    pub fn start_thread_from_message(
        &mut self,
        channel_id: u64,
        message_id: u64,
        name: &str,
        by: u64,
    ) -> Result<u64, ApiError> {
        let channel = self.readable_channel(by, channel_id)?;
        if !matches!(channel.kind, ChannelKind::GuildText { .. }) {
            return Err(ApiError::cannot_dm_webhook());
        }
        if self.permissions(by, channel) & perms::CREATE_PUBLIC_THREADS == 0 {
            return Err(ApiError::missing_permissions());
        }
        let message = channel
            .messages
            .iter()
            .find(|m| m.id == message_id)
            .ok_or_else(ApiError::unknown_message)?;
        if message.extra.thread.is_some() || self.channels.contains_key(&message_id) {
            return Err(ApiError::thread_already_created());
        }
        check_thread_name(name)?;
        self.channels.insert(
            message_id,
            Channel {
                id: message_id,
                kind: ChannelKind::Thread {
                    parent_id: channel_id,
                    name: name.to_string(),
                    owner_id: by,
                },
                messages: Vec::new(),
            },
        );
        if let Some(m) = self
            .channels
            .get_mut(&channel_id)
            .and_then(|c| c.messages.iter_mut().find(|m| m.id == message_id))
        {
            m.extra.thread = Some(message_id);
        }
        Ok(message_id)
    }
}

/// A thread name: 1 to 100 characters.
pub fn check_thread_name(name: &str) -> Result<(), ApiError> {
    if name.trim().is_empty() || name.chars().count() > 100 {
        return Err(ApiError::invalid_form(
            "name",
            "BASE_TYPE_BAD_LENGTH",
            "Must be between 1 and 100 in length.",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::tests::{text, world};
    use super::super::Author;

    #[test]
    fn a_message_starts_one_thread_with_its_own_id() {
        let (mut w, alice, ada, general) = world();
        let m = w.post(general, Author::User(alice), text("topic")).unwrap().message.id;
        assert_eq!(w.start_thread_from_message(general, m, "talk", ada).unwrap(), m);
        assert_eq!(w.channel(general).unwrap().messages[0].extra.thread, Some(m));
        let err = w.start_thread_from_message(general, m, "again", ada).unwrap_err();
        assert_eq!(err.body["code"], 160004);
        let err = w.start_thread_from_message(general, 42, "x", ada).unwrap_err();
        assert_eq!(err.body["code"], 10008);
        assert!(w.post(m, Author::User(ada), text("in thread")).is_ok());
    }
}
