//! What a message carries beyond its first post: edits, flags, components, pins, reactions and
//! attachments, and system messages' types ([`MessageExtras`]), kept apart from
//! [`super::Message`]'s original fields.

use serde_json::Value;

/// Message flags a sender may set (Discord's `flags` on create): SUPPRESS_EMBEDS (1 << 2),
/// SUPPRESS_NOTIFICATIONS (1 << 12), IS_VOICE_MESSAGE (1 << 13), IS_COMPONENTS_V2 (1 << 15).
pub const SENDABLE_FLAGS: u64 = (1 << 2) | (1 << 12) | (1 << 13) | (1 << 15);
/// The only flag an edit may change: SUPPRESS_EMBEDS.
pub const EDITABLE_FLAGS: u64 = 1 << 2;
/// Discord's cap on pinned messages per channel.
pub const MAX_PINS: usize = 50;

/// A reaction emoji: a Unicode emoji, or a custom one by `name:id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Emoji {
    /// A Unicode emoji, e.g. `👍`.
    Unicode(String),
    /// A guild's custom emoji.
    Custom {
        /// Name.
        name: String,
        /// Snowflake.
        id: u64,
    },
}

/// One emoji's reactions on a message: who reacted, in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Reaction {
    /// The emoji.
    pub emoji: Emoji,
    /// Users who reacted with it, first first.
    pub users: Vec<u64>,
}

/// A file attached to a message, bytes held by the world.
#[derive(Debug, Clone, PartialEq)]
pub struct Attachment {
    /// Snowflake.
    pub id: u64,
    /// File name as uploaded (sanitised: no path separators).
    pub filename: String,
    /// MIME type, from the upload or guessed from the bytes.
    pub content_type: Option<String>,
    /// Alt text.
    pub description: Option<String>,
    /// Pixel size for images.
    pub dimensions: Option<(u32, u32)>,
    /// Absolute URL it is served from (`http://ADDR/attachments/{channel}/{id}/{filename}`).
    pub url: String,
    /// The file's bytes.
    pub bytes: std::sync::Arc<Vec<u8>>,
}

/// The mutable rest of a message.
#[derive(Debug, Clone, Default)]
pub struct MessageExtras {
    /// When it was last edited (Unix ms); `None` if never.
    pub edited_unix_ms: Option<u64>,
    /// Message flags.
    pub flags: u64,
    /// Message components as sent (action rows etc.).
    pub components: Vec<Value>,
    /// Pinned, and when (Unix ms).
    pub pinned_unix_ms: Option<u64>,
    /// Reactions, in the order their emoji were first used.
    pub reactions: Vec<Reaction>,
    /// Attached files.
    pub attachments: Vec<Attachment>,
    /// The thread started from this message, if any (its ID equals the message's on Discord).
    pub thread: Option<u64>,
    /// A system message's type (e.g. 6, CHANNEL_PINNED_MESSAGE); `None` for a user's message.
    pub system_kind: Option<u8>,
}
