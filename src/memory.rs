//! Conversation memory: the turns an agent remembers, bounded by a number of turns and of
//! characters, trimmed oldest first. Pure; [`crate::store`] persists it.

use serde::{Deserialize, Serialize};

use crate::llm::progressive::CUT_NOTE;
use crate::llm::{PromptTurn, Role};

/// One remembered turn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemoryTurn {
    /// True for the agent's own replies.
    pub assistant: bool,
    /// Display name of the speaker.
    pub author: String,
    /// What was said.
    pub content: String,
    /// Discord message ID (the answered message's ID for replies that were split or failed).
    pub message_id: u64,
    /// Unix time in milliseconds.
    pub time_ms: u64,
    /// A reply still cut at the token limit: Discord shows it with [`CUT_NOTE`], which is
    /// presentation and never goes back to the model as if it had written it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cut: bool,
    /// The speaker's user ID (webhook ID for a webhook) for a user's turn, so `/forget-me` finds
    /// it; `None` for the agent's replies and for turns remembered before the field existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author_id: Option<u64>,
    /// Files the message carried, as references: memory never holds their bytes, and later
    /// turns name them without fetching them again ([`crate::attach`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<crate::message::Attachment>,
}

impl MemoryTurn {
    /// The turn as the model sees it in later turns: its files named, not sent again.
    pub fn to_prompt(&self) -> PromptTurn {
        let notes: Vec<String> = self.attachments.iter().map(crate::attach::render::earlier).collect();
        PromptTurn {
            role: if self.assistant { Role::Assistant } else { Role::User },
            author: self.author.clone(),
            content: crate::attach::render::with_notes(&self.content, &notes),
            images: Vec::new(),
        }
    }

    /// The same turn without its files (a fresh turn's files are given by
    /// [`crate::attach::prepare`], not named as earlier ones).
    pub fn without_attachments(&self) -> Self {
        Self {
            attachments: Vec::new(),
            ..self.clone()
        }
    }

    /// The text as shown on Discord.
    pub fn shown_text(&self) -> String {
        if self.cut {
            format!("{}{CUT_NOTE}", self.content)
        } else {
            self.content.clone()
        }
    }
}

/// How much a conversation remembers. The system prompt is not counted and never trimmed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most turns kept.
    pub max_turns: usize,
    /// Most characters (of content) kept across turns.
    pub max_chars: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_turns: 40,
            max_chars: 12_000,
        }
    }
}

/// Drops the oldest turns until both limits hold. The newest turn is always kept, even if it
/// alone exceeds `max_chars`, so the model always sees what it must answer.
pub fn trim(turns: &mut Vec<MemoryTurn>, limits: Limits) {
    let max_turns = limits.max_turns.max(1);
    let mut chars: usize = turns.iter().map(|t| t.content.chars().count()).sum();
    let mut drop = 0;
    while turns.len() - drop > 1 && (turns.len() - drop > max_turns || chars > limits.max_chars) {
        chars -= turns[drop].content.chars().count();
        drop += 1;
    }
    turns.drain(..drop);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn turn(i: u64, content: &str) -> MemoryTurn {
        MemoryTurn {
            assistant: i % 2 == 1,
            author: "a".into(),
            content: content.into(),
            message_id: i,
            time_ms: i,
            cut: false,
            author_id: None,
            attachments: Vec::new(),
        }
    }

    fn ids(turns: &[MemoryTurn]) -> Vec<u64> {
        turns.iter().map(|t| t.message_id).collect()
    }

    #[test]
    fn the_cut_note_is_shown_but_never_given_to_the_model() {
        let t = MemoryTurn {
            cut: true,
            ..turn(1, "a long answer")
        };
        assert_eq!(t.to_prompt().content, "a long answer");
        assert_eq!(t.shown_text(), format!("a long answer{CUT_NOTE}"));
        assert_eq!(turn(1, "done").shown_text(), "done");
        // Records written before the field existed read as not cut; uncut turns omit it.
        let old: MemoryTurn =
            serde_json::from_str(r#"{"assistant":true,"author":"Ada","content":"x","message_id":1,"time_ms":2}"#)
                .unwrap();
        assert!(!old.cut);
        assert!(!serde_json::to_string(&old).unwrap().contains("cut"));
    }

    #[test]
    fn trims_oldest_first_by_count() {
        let mut t: Vec<_> = (0..10).map(|i| turn(i, "x")).collect();
        trim(
            &mut t,
            Limits {
                max_turns: 3,
                max_chars: 1000,
            },
        );
        assert_eq!(ids(&t), vec![7, 8, 9]);
    }

    #[test]
    fn trims_by_characters_not_bytes() {
        let mut t = vec![turn(0, "ééééé"), turn(1, "ééééé"), turn(2, "ééééé")];
        trim(
            &mut t,
            Limits {
                max_turns: 10,
                max_chars: 10,
            },
        );
        assert_eq!(ids(&t), vec![1, 2]);
    }

    #[test]
    fn keeps_the_newest_turn_even_if_too_long() {
        let mut t = vec![turn(0, "short"), turn(1, &"x".repeat(50))];
        trim(
            &mut t,
            Limits {
                max_turns: 10,
                max_chars: 10,
            },
        );
        assert_eq!(ids(&t), vec![1]);
        let mut empty: Vec<MemoryTurn> = Vec::new();
        trim(
            &mut empty,
            Limits {
                max_turns: 0,
                max_chars: 0,
            },
        );
        assert!(empty.is_empty());
    }
}
