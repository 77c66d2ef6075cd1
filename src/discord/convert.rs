//! Converts serenity's model types into troupe's own ([`crate::message`]); the only place that
//! reads serenity's message model.

use serenity::model::channel::Message;

use crate::message::{readable_mentions, Attachment, Inbound, ReplyRef};

/// Our view of a serenity message.
pub fn inbound(m: &Message) -> Inbound {
    Inbound {
        id: m.id.get(),
        channel_id: m.channel_id.get(),
        guild_id: m.guild_id.map(|g| g.get()),
        author_id: m.author.id.get(),
        author_name: m.author.global_name.clone().unwrap_or_else(|| m.author.name.clone()),
        author_is_bot: m.author.bot || m.webhook_id.is_some(),
        webhook_id: m.webhook_id.map(|w| w.get()),
        // Mentions of users the message notified read as `@name` in prompts (routing uses
        // `mentions`, never the content's mention syntax).
        content: readable_mentions(&m.content, |id| {
            m.mentions
                .iter()
                .find(|u| u.id.get() == id)
                .map(|u| u.global_name.clone().unwrap_or_else(|| u.name.clone()))
        }),
        mentions: m.mentions.iter().map(|u| u.id.get()).collect(),
        mention_everyone: m.mention_everyone,
        reply_to: m
            .message_reference
            .as_ref()
            .and_then(|r| r.message_id)
            .map(|id| ReplyRef {
                message_id: id.get(),
                author_id: m.referenced_message.as_ref().map(|r| r.author.id.get()),
            }),
        footers: m
            .embeds
            .iter()
            .filter_map(|e| e.footer.as_ref().map(|f| f.text.clone()))
            .collect(),
        chain: crate::acl::chain_of_message(
            m.embeds.iter().map(|e| e.footer.as_ref().map(|f| f.text.as_str())),
            m.author.bot || m.webhook_id.is_some(),
        ),
        attachments: m
            .attachments
            .iter()
            .map(|a| Attachment {
                id: a.id.get(),
                filename: a.filename.clone(),
                url: a.url.clone(),
                proxy_url: a.proxy_url.clone(),
                content_type: a.content_type.clone(),
                size: u64::from(a.size),
                width: a.width,
                height: a.height,
            })
            .collect(),
    }
}
