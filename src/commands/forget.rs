//! What `/forget-me` removes from a conversation's memory: the user's own turns, and the agent's
//! replies to them (a reply repeats and builds on what it answers). Pure.

use crate::memory::MemoryTurn;
use crate::routing::ConversationKey;

/// Whether a conversation belongs to the user alone (their DM or their per-user conversation):
/// all of it goes.
pub fn owned_by(key: ConversationKey, user: u64) -> bool {
    match key {
        ConversationKey::User(u) | ConversationKey::ChannelUser(_, u) => u == user,
        ConversationKey::Channel(_) => false,
    }
}

/// Whether a remembered turn is the user's: by their ID, or, for turns remembered before troupe
/// kept the ID, by their display name.
fn said_by(turn: &MemoryTurn, user: u64, name: &str) -> bool {
    !turn.assistant
        && match turn.author_id {
            Some(id) => id == user,
            None => turn.author == name,
        }
}

/// The memory without the user's turns and the agent's replies to them; `None` when nothing
/// was the user's.
pub fn without_user(turns: &[MemoryTurn], user: u64, name: &str) -> Option<Vec<MemoryTurn>> {
    let theirs: Vec<u64> = turns
        .iter()
        .filter(|t| said_by(t, user, name))
        .map(|t| t.message_id)
        .collect();
    if theirs.is_empty() {
        return None;
    }
    // A reply is remembered under the ID of the message it answers.
    Some(
        turns
            .iter()
            .filter(|t| !theirs.contains(&t.message_id))
            .cloned()
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn turn(assistant: bool, author: &str, author_id: Option<u64>, message_id: u64, content: &str) -> MemoryTurn {
        MemoryTurn {
            assistant,
            author: author.into(),
            content: content.into(),
            message_id,
            time_ms: 0,
            cut: false,
            author_id,
            attachments: Vec::new(),
        }
    }

    #[test]
    fn the_users_turns_and_the_replies_to_them_go_others_stay() {
        let turns = vec![
            turn(false, "alice", Some(7), 1, "my cat is Tom"),
            turn(true, "Ada", None, 1, "Hello Tom's owner"),
            turn(false, "bob", Some(8), 2, "I like tea"),
            turn(true, "Ada", None, 2, "Tea is nice"),
            turn(false, "alice", None, 3, "an old turn without an ID"),
        ];
        let kept = without_user(&turns, 7, "alice").unwrap();
        let contents: Vec<&str> = kept.iter().map(|t| t.content.as_str()).collect();
        assert_eq!(contents, ["I like tea", "Tea is nice"]);
        assert_eq!(without_user(&kept, 7, "alice"), None, "nothing left of alice");
        // A turn with another user's ID is theirs, whatever the name says.
        let renamed = vec![turn(false, "alice", Some(9), 4, "x")];
        assert_eq!(without_user(&renamed, 7, "alice"), None);
    }

    #[test]
    fn per_user_conversations_belong_to_their_user() {
        assert!(owned_by(ConversationKey::User(7), 7));
        assert!(owned_by(ConversationKey::ChannelUser(1, 7), 7));
        assert!(!owned_by(ConversationKey::ChannelUser(1, 8), 7));
        assert!(!owned_by(ConversationKey::Channel(7), 7));
    }
}
