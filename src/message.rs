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
    /// Files attached to it, as references (never their bytes): see [`crate::attach`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<Attachment>,
}

/// A file attached to a message, as Discord describes it: where it is and what it says it is.
/// Only the reference is kept (in pending messages and memory); the bytes are fetched for the
/// turn that needs them ([`crate::attach`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Attachment {
    /// Its ID.
    pub id: u64,
    /// The file name as Discord keeps it.
    pub filename: String,
    /// The CDN URL (on Discord, signed and expiring: `ex=` is its end in hex Unix seconds).
    pub url: String,
    /// The media proxy's URL.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub proxy_url: String,
    /// The media type Discord gives, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// Size in bytes, as Discord gives it.
    pub size: u64,
    /// Width in pixels, for images.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    /// Height in pixels, for images.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
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

/// `text` with user mentions (`<@id>`, `<@!id>`) whose name `name_of` knows written as `@name`,
/// so a model reads who is addressed. Unknown users, roles (`<@&id>`) and anything malformed are
/// left as they are.
pub fn readable_mentions(text: &str, name_of: impl Fn(u64) -> Option<String>) -> String {
    rewrite_ids(text, "<@", '@', name_of)
}

/// `text` with channel mentions (`<#id>`) whose name `name_of` knows written as `#name`.
pub fn readable_channels(text: &str, name_of: impl Fn(u64) -> Option<String>) -> String {
    rewrite_ids(text, "<#", '#', name_of)
}

/// Replaces `{open}id>` (and `{open}!id>`) by `{sigil}name` where `name_of(id)` is known.
fn rewrite_ids(text: &str, open: &str, sigil: char, name_of: impl Fn(u64) -> Option<String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(open) {
        out.push_str(&rest[..at]);
        let after = &rest[at + open.len()..];
        let body = after.strip_prefix('!').unwrap_or(after);
        let digits = body.len() - body.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        let name = body[..digits].parse::<u64>().ok().and_then(&name_of);
        match name {
            Some(name) if body[digits..].starts_with('>') => {
                out.push(sigil);
                out.push_str(&name);
                rest = &body[digits + 1..];
            }
            _ => {
                out.push_str(open);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_mentions_become_names() {
        let name_of = |id: u64| (id == 7).then(|| "alice".to_string());
        assert_eq!(
            readable_mentions("<@7> and <@!7>: hi", name_of),
            "@alice and @alice: hi"
        );
        assert_eq!(
            readable_mentions("<@8> <@&7> <@7x> <@ `<@7>`", name_of),
            "<@8> <@&7> <@7x> <@ `@alice`"
        );
        assert_eq!(readable_mentions("é <@7>é", name_of), "é @aliceé");
    }

    #[test]
    fn known_channels_become_names() {
        let name_of = |id: u64| (id == 5).then(|| "general".to_string());
        assert_eq!(
            readable_channels("see <#5> or <#6>, <#5x>", name_of),
            "see #general or <#6>, <#5x>"
        );
    }
}
