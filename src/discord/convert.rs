//! Converts serenity's model types into troupe's own ([`crate::message`]); the only place that
//! reads serenity's message model.

use serenity::model::channel::Message;

use crate::message::{readable_mentions, Attachment, Inbound, ReplyRef};
use crate::skip::{Glance, Skipped};

/// What the gateway edge reads of a serenity message to decide whether the agent may skip it
/// ([`crate::skip`]): no text is copied. `is_me` and `is_cast` tell the agent's and the cast's
/// IDs.
pub fn glance(m: &Message, is_me: impl Fn(u64) -> bool, is_cast: impl Fn(u64) -> bool) -> Glance {
    let author_is_bot = m.author.bot || m.webhook_id.is_some();
    let author_id = m.author.id.get();
    let webhook_id = m.webhook_id.map(|w| w.get());
    Glance {
        message: Skipped {
            id: m.id.get(),
            channel_id: m.channel_id.get(),
            guild_id: m.guild_id.map(|g| g.get()),
            author_id,
            author_is_bot,
            webhook_id,
            chain: crate::acl::chain_of_message(
                m.embeds.iter().map(|e| e.footer.as_ref().map(|f| f.text.as_str())),
                author_is_bot,
            ),
        },
        mentions_me: m.mentions.iter().any(|u| is_me(u.id.get())),
        // As [`inbound`]'s `reply_to`: the author of the message replied to, when Discord sent it.
        replies_to_me: m.message_reference.as_ref().and_then(|r| r.message_id).is_some()
            && m.referenced_message.as_ref().is_some_and(|r| is_me(r.author.id.get())),
        mention_everyone: m.mention_everyone,
        from_cast: is_cast(author_id) || webhook_id.is_some_and(&is_cast),
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attachments_become_references() {
        let m: Message = serde_json::from_value(serde_json::json!({
            "id": "10", "channel_id": "20", "content": "look",
            "author": {"id": "30", "username": "alice", "discriminator": "0", "global_name": null, "avatar": null},
            "timestamp": "2026-12-02T00:00:00.000000+00:00", "edited_timestamp": null, "tts": false,
            "mention_everyone": false, "mentions": [], "mention_roles": [], "embeds": [], "pinned": false, "type": 0,
            "attachments": [
                {"id": "40", "filename": "cat.png", "size": 1234, "url": "https://cdn.discordapp.com/attachments/20/40/cat.png?ex=1",
                 "proxy_url": "https://media.discordapp.net/attachments/20/40/cat.png", "content_type": "image/png",
                 "width": 64, "height": 32},
                {"id": "41", "filename": "a.txt", "size": 5, "url": "https://cdn.discordapp.com/a.txt", "proxy_url": "p"},
            ],
        }))
        .unwrap();
        let a = inbound(&m).attachments;
        assert_eq!(
            a[0],
            Attachment {
                id: 40,
                filename: "cat.png".into(),
                url: "https://cdn.discordapp.com/attachments/20/40/cat.png?ex=1".into(),
                proxy_url: "https://media.discordapp.net/attachments/20/40/cat.png".into(),
                content_type: Some("image/png".into()),
                size: 1234,
                width: Some(64),
                height: Some(32),
            }
        );
        assert_eq!((a[1].content_type.as_deref(), a[1].width), (None, None));
    }
}
