//! Reactions as Discord keeps them: one list of users per emoji, at most 20 emoji per message,
//! Add Reactions needed to be the first with an emoji, Manage Messages to remove others'.

use super::extras::{Emoji, Reaction};
use super::{perms, Author, World};
use crate::error::ApiError;

/// Most distinct emoji on one message.
pub const MAX_REACTION_EMOJI: usize = 20;

/// Parses the `{emoji}` path segment (already percent-decoded): `name:id` (or `a:name:id`) for a
/// custom emoji, else a Unicode emoji. Plain ASCII text is no emoji.
pub fn parse_emoji(raw: &str) -> Result<Emoji, ApiError> {
    let parts: Vec<&str> = raw.split(':').collect();
    let custom = match parts.as_slice() {
        [name, id] | ["a", name, id] => id.parse::<u64>().ok().map(|id| (name.to_string(), id)),
        _ => None,
    };
    if let Some((name, id)) = custom {
        return Ok(Emoji::Custom { name, id });
    }
    if raw.is_empty() || raw.is_ascii() || raw.chars().count() > 16 {
        return Err(ApiError::unknown_emoji());
    }
    Ok(Emoji::Unicode(raw.to_string()))
}

impl World {
    /// Adds `user`'s reaction; `Ok(false)` when it was already there (nothing to dispatch).
    /// Custom emoji are refused: sandbox guilds have none.
    pub fn add_reaction(
        &mut self,
        channel_id: u64,
        message_id: u64,
        user: u64,
        emoji: &Emoji,
    ) -> Result<bool, ApiError> {
        let channel = self.readable_channel(user, channel_id)?;
        let p = self.permissions(user, channel);
        if p & perms::READ_MESSAGE_HISTORY == 0 {
            return Err(ApiError::missing_permissions());
        }
        if matches!(emoji, Emoji::Custom { .. }) {
            return Err(ApiError::unknown_emoji());
        }
        let message = channel
            .messages
            .iter()
            .find(|m| m.id == message_id)
            .ok_or_else(ApiError::unknown_message)?;
        let existing = message.extra.reactions.iter().find(|r| &r.emoji == emoji);
        match existing {
            Some(r) if r.users.contains(&user) => return Ok(false),
            Some(_) => {}
            None if p & perms::ADD_REACTIONS == 0 => return Err(ApiError::missing_permissions()),
            None if message.extra.reactions.len() >= MAX_REACTION_EMOJI => return Err(ApiError::max_reactions()),
            None => {}
        }
        let reactions = &mut self.message_mut(channel_id, message_id)?.extra.reactions;
        match reactions.iter_mut().find(|r| &r.emoji == emoji) {
            Some(r) => r.users.push(user),
            None => reactions.push(Reaction {
                emoji: emoji.clone(),
                users: vec![user],
            }),
        }
        Ok(true)
    }

    /// Removes `target`'s reaction; `by` needs Manage Messages to remove someone else's, which
    /// a DM never allows (50003).
    /// `Ok(false)` when there was none.
    pub fn remove_reaction(
        &mut self,
        channel_id: u64,
        message_id: u64,
        target: u64,
        emoji: &Emoji,
        by: u64,
    ) -> Result<bool, ApiError> {
        let channel = self.readable_channel(by, channel_id)?;
        if target != by && matches!(channel.kind, super::ChannelKind::Dm { .. }) {
            return Err(ApiError::cannot_in_dm());
        }
        if target != by && self.permissions(by, channel) & perms::MANAGE_MESSAGES == 0 {
            return Err(ApiError::missing_permissions());
        }
        let reactions = &mut self.message_mut(channel_id, message_id)?.extra.reactions;
        let Some(at) = reactions.iter().position(|r| &r.emoji == emoji) else {
            return Ok(false);
        };
        let before = reactions[at].users.len();
        reactions[at].users.retain(|u| *u != target);
        let removed = reactions[at].users.len() != before;
        if reactions[at].users.is_empty() {
            reactions.remove(at);
        }
        Ok(removed)
    }

    /// Removes every reaction, or every reaction with one emoji (Manage Messages; not in DMs).
    pub fn clear_reactions(
        &mut self,
        channel_id: u64,
        message_id: u64,
        emoji: Option<&Emoji>,
        by: u64,
    ) -> Result<(), ApiError> {
        let channel = self.readable_channel(by, channel_id)?;
        if matches!(channel.kind, super::ChannelKind::Dm { .. }) {
            return Err(ApiError::cannot_in_dm());
        }
        if self.permissions(by, channel) & perms::MANAGE_MESSAGES == 0 {
            return Err(ApiError::missing_permissions());
        }
        let reactions = &mut self.message_mut(channel_id, message_id)?.extra.reactions;
        reactions.retain(|r| emoji.is_some_and(|e| &r.emoji != e));
        Ok(())
    }

    /// Users who reacted with `emoji`, by ascending ID after `after`, at most `limit` (1 to 100).
    pub fn reactors(
        &self,
        channel_id: u64,
        message_id: u64,
        emoji: &Emoji,
        after: Option<u64>,
        limit: u64,
        by: u64,
    ) -> Result<Vec<u64>, ApiError> {
        let limit = crate::validate::limit(limit, 100)?;
        let channel = self.readable_channel(by, channel_id)?;
        let message = channel
            .messages
            .iter()
            .find(|m| m.id == message_id)
            .ok_or_else(ApiError::unknown_message)?;
        let mut users: Vec<u64> = message
            .extra
            .reactions
            .iter()
            .find(|r| &r.emoji == emoji)
            .map(|r| r.users.clone())
            .unwrap_or_default();
        users.sort_unstable();
        users.retain(|u| after.is_none_or(|a| *u > a));
        users.truncate(limit as usize);
        Ok(users)
    }

    /// The author of a message, for reaction events' `message_author_id`.
    pub fn message_author(&self, channel_id: u64, message_id: u64) -> Option<&Author> {
        self.channels
            .get(&channel_id)?
            .messages
            .iter()
            .find(|m| m.id == message_id)
            .map(|m| &m.author)
    }

    fn message_mut(&mut self, channel_id: u64, message_id: u64) -> Result<&mut super::Message, ApiError> {
        self.channels
            .get_mut(&channel_id)
            .ok_or_else(ApiError::unknown_channel)?
            .messages
            .iter_mut()
            .find(|m| m.id == message_id)
            .ok_or_else(ApiError::unknown_message)
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{text, world};
    use super::*;

    #[test]
    fn emoji_path_segments() {
        assert_eq!(parse_emoji("👍").unwrap(), Emoji::Unicode("👍".into()));
        assert_eq!(
            parse_emoji("blob:123").unwrap(),
            Emoji::Custom {
                name: "blob".into(),
                id: 123
            }
        );
        assert!(matches!(parse_emoji("a:blob:5").unwrap(), Emoji::Custom { id: 5, .. }));
        assert_eq!(parse_emoji("thumbsup").unwrap_err().body["code"], 10014);
        assert_eq!(parse_emoji("").unwrap_err().body["code"], 10014);
    }

    #[test]
    fn reactions_add_once_list_and_remove() {
        let (mut w, alice, ada, general) = world();
        let m = w.post(general, Author::User(alice), text("x")).unwrap().message.id;
        let up = parse_emoji("👍").unwrap();
        assert!(w.add_reaction(general, m, ada, &up).unwrap());
        assert!(!w.add_reaction(general, m, ada, &up).unwrap());
        assert!(w.add_reaction(general, m, alice, &up).unwrap());
        let mut both = vec![alice, ada];
        both.sort_unstable();
        assert_eq!(w.reactors(general, m, &up, None, 25, ada).unwrap(), both);
        assert_eq!(
            w.reactors(general, m, &up, Some(both[0]), 25, ada).unwrap(),
            vec![both[1]]
        );
        let blob = parse_emoji("blob:1").unwrap();
        assert_eq!(w.add_reaction(general, m, ada, &blob).unwrap_err().body["code"], 10014);
        assert!(w.remove_reaction(general, m, ada, &up, ada).unwrap());
        assert!(!w.remove_reaction(general, m, ada, &up, ada).unwrap());
        w.clear_reactions(general, m, None, ada).unwrap();
        assert!(w.reactors(general, m, &up, None, 25, ada).unwrap().is_empty());
    }

    #[test]
    fn twenty_distinct_emoji_at_most() {
        let (mut w, alice, ada, general) = world();
        let m = w.post(general, Author::User(alice), text("x")).unwrap().message.id;
        let emoji: Vec<Emoji> = ('😀'..).take(21).map(|c| Emoji::Unicode(c.to_string())).collect();
        for e in &emoji[..20] {
            w.add_reaction(general, m, ada, e).unwrap();
        }
        assert_eq!(
            w.add_reaction(general, m, ada, &emoji[20]).unwrap_err().body["code"],
            30010
        );
    }
}
