//! Delivery to Discord: replies with embeds footers, `allowed_mentions` that ping nobody,
//! a reference to the answered message, a deterministic nonce; typing indicators.

use std::sync::Arc;

use serenity::all::{
    ChannelId, CreateAllowedMentions, CreateEmbed, CreateEmbedFooter, CreateMessage, Http, MessageId, MessageReference,
};
use serenity::model::channel::Nonce;

/// A message to send.
#[derive(Debug, Clone, PartialEq)]
pub struct OutgoingMessage {
    /// Channel.
    pub channel_id: u64,
    /// Text (at most 2000 characters).
    pub content: String,
    /// Embed footer text (the ACL footer).
    pub footer: Option<String>,
    /// Message it answers.
    pub reply_to: Option<u64>,
    /// Deterministic nonce; sent with `enforce_nonce` so a retry cannot duplicate.
    pub nonce: Option<String>,
}

/// Why delivery failed.
#[derive(Debug, Clone, thiserror::Error)]
#[error("discord rejected the message (status {status:?}): {reason}")]
pub struct DeliveryError {
    /// HTTP status, when Discord answered.
    pub status: Option<u16>,
    /// Discord's reason.
    pub reason: String,
}

/// Sends messages as one bot.
#[derive(Clone)]
pub struct Outbox {
    http: Arc<Http>,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Outbox")
    }
}

impl Outbox {
    /// An outbox over a bot's REST client.
    pub fn new(http: Arc<Http>) -> Self {
        Self { http }
    }

    /// Shows "<bot> is typing…" in a channel (best effort).
    pub async fn typing(&self, channel_id: u64) {
        let _ = ChannelId::new(channel_id).broadcast_typing(&self.http).await;
    }

    /// Sends one message; returns its ID.
    pub async fn send(&self, m: &OutgoingMessage) -> Result<u64, DeliveryError> {
        let channel = ChannelId::new(m.channel_id);
        let mut builder = CreateMessage::new()
            .content(m.content.clone())
            // Nothing an LLM writes may ping anyone: no @everyone/@here, roles or users.
            .allowed_mentions(CreateAllowedMentions::new().replied_user(false));
        if let Some(footer) = &m.footer {
            builder = builder.embed(CreateEmbed::new().footer(CreateEmbedFooter::new(footer.clone())));
        }
        if let Some(reply_to) = m.reply_to {
            builder = builder.reference_message(MessageReference::from((channel, MessageId::new(reply_to))));
        }
        if let Some(nonce) = &m.nonce {
            builder = builder.nonce(Nonce::String(nonce.clone())).enforce_nonce(true);
        }
        channel
            .send_message(&self.http, builder)
            .await
            .map(|sent| sent.id.get())
            .map_err(|e| {
                let status = match &e {
                    serenity::Error::Http(serenity::http::HttpError::UnsuccessfulRequest(r)) => {
                        Some(r.status_code.as_u16())
                    }
                    _ => None,
                };
                DeliveryError {
                    status,
                    reason: e.to_string(),
                }
            })
    }
}
