//! Direct access to stored messages for what is not a plain post: interaction responses
//! (Discord creates a deferred response's "thinking" message with no content), their edits and
//! deletions, and IDs for messages kept outside the channel (ephemeral ones).

use super::{Author, Message, World};

impl World {
    /// A fresh snowflake from the world's generator (unique among all the world's IDs).
    pub fn next_snowflake(&mut self) -> u64 {
        self.ids.next_id()
    }

    /// Stores a message built by the caller, skipping `post`'s checks (the caller has applied
    /// the rules of its own route). Its ID must be new and it goes last in its channel.
    pub fn insert_message(&mut self, channel_id: u64, author: Author, content: String) -> Option<Message> {
        let id = self.ids.next_id();
        let channel = self.channels.get_mut(&channel_id)?;
        let message = Message {
            id,
            channel_id,
            author,
            content,
            embeds: Vec::new(),
            mentions: Vec::new(),
            mention_roles: Vec::new(),
            mention_everyone: false,
            reference: None,
            nonce: None,
            allowed_mentions: None,
            extra: Default::default(),
        };
        channel.messages.push(message.clone());
        Some(message)
    }

    /// A stored message, to change it in place.
    pub fn stored_message_mut(&mut self, channel_id: u64, id: u64) -> Option<&mut Message> {
        self.channels
            .get_mut(&channel_id)?
            .messages
            .iter_mut()
            .find(|m| m.id == id)
    }

    /// Removes a stored message; returns it.
    pub fn remove_stored_message(&mut self, channel_id: u64, id: u64) -> Option<Message> {
        let messages = &mut self.channels.get_mut(&channel_id)?.messages;
        let at = messages.iter().position(|m| m.id == id)?;
        self.message_extras.remove(&id);
        Some(messages.remove(at))
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::world;
    use super::*;

    #[test]
    fn inserted_messages_can_be_changed_and_removed() {
        let (mut w, _, ada, general) = world();
        let m = w.insert_message(general, Author::User(ada), String::new()).unwrap();
        assert!(w.next_snowflake() > m.id);
        w.stored_message_mut(general, m.id).unwrap().content = "done".into();
        assert_eq!(w.channel(general).unwrap().messages[0].content, "done");
        assert_eq!(w.remove_stored_message(general, m.id).unwrap().id, m.id);
        assert!(w.channel(general).unwrap().messages.is_empty());
        assert!(w.insert_message(1, Author::User(ada), String::new()).is_none());
    }
}
