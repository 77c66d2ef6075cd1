//! troupe's own view of a Discord message, converted from serenity's types at the edge
//! ([`crate::discord::convert`]) so routing, prompts and tests never depend on serenity.

use crate::acl::ChainLength;

/// A message as an agent received it. Serializable: a message troupe owes an answer to is kept
/// in the store while it is pending.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Inbound {
    /// Snowflake; orders messages by creation time.
    pub id: u64,
    /// Channel it was posted in.
    pub channel_id: u64,
    /// Guild, or `None` for a direct message.
    pub guild_id: Option<u64>,
    /// Author's user ID (the webhook ID for webhook messages).
    pub author_id: u64,
    /// Author's display name.
    pub author_name: String,
    /// The author is a bot user or a webhook.
    pub author_is_bot: bool,
    /// Set when a webhook posted it.
    pub webhook_id: Option<u64>,
    /// Text content (empty when the bot lacks the MESSAGE_CONTENT intent and is not addressed).
    pub content: String,
    /// Users mentioned (notified).
    pub mentions: Vec<u64>,
    /// `@everyone` or `@here` notified the channel.
    pub mention_everyone: bool,
    /// The message this one replies to.
    pub reply_to: Option<ReplyRef>,
    /// Embed footer texts, in embed order (ACL footers live here).
    pub footers: Vec<String>,
    /// Its agent chain length: from its footers at the edge, raised by what the store knows.
    pub chain: ChainLength,
}

/// The message a reply points at.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ReplyRef {
    /// Its ID.
    pub message_id: u64,
    /// Its author, when Discord included the referenced message.
    pub author_id: Option<u64>,
}

impl Inbound {
    /// True for a direct message.
    pub fn is_dm(&self) -> bool {
        self.guild_id.is_none()
    }
}

/// The agent's own identity on Discord, learned from READY.
#[derive(Debug, Clone, PartialEq)]
pub struct BotIdentity {
    /// The bot user's ID.
    pub user_id: u64,
    /// The bot user's name.
    pub name: String,
    /// Guilds the session will send GUILD_CREATE for.
    pub guilds: usize,
}
