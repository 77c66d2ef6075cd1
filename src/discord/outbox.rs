//! Delivery to Discord: a reply is split into Discord-sized parts ([`crate::split`]), each part
//! carries the ACL footer, the first references the answered message, every part is sent with a
//! deterministic nonce and `allowed_mentions` that ping nobody but explicitly allowed users
//! (other agents the reply addresses), slowmode slots are reserved before sending (two
//! conversations in one slowmode channel queue up instead of refusing each other), and
//! throttling, server and connection errors are retried with back-off until a deadline
//! (`[delivery] discord_retry_secs`); the caller retries the whole answer after that. A reply
//! resumes at the first part not yet delivered. A persona may speak through a webhook with its
//! own name and avatar; webhook executions carry no nonce, so a retried or re-delivered webhook
//! part first looks for its copy in the channel. `--no-discord` swaps the Discord outbox for one
//! that only prints. A streamed reply ([`crate::stream_reply`]) posts, edits and deletes its parts
//! one by one through [`Outbox::post_part`], [`Outbox::edit_part`] and [`Outbox::delete_part`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serenity::all::{
    ChannelId, CreateAllowedMentions, CreateAttachment, CreateEmbed, CreateEmbedFooter, CreateMessage, EditMessage,
    ExecuteWebhook, Http, MessageId, MessageReference, WebhookId,
};
use serenity::model::channel::Nonce;

use crate::acl::{self, ChainLength};
use crate::secret::Secret;
use crate::split::{split_message, DISCORD_LIMIT};

/// The first wait after Discord throttled or failed a part; doubles up to [`RETRY_MAX`].
const RETRY_BASE: Duration = Duration::from_millis(500);

/// The longest wait between two tries of a part.
const RETRY_MAX: Duration = Duration::from_secs(10);

/// A reply to deliver.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// Channel.
    pub channel_id: u64,
    /// Message it answers (referenced by the first part).
    pub reply_to: Option<u64>,
    /// Full text; split into parts as needed.
    pub text: String,
    /// Its agent chain length (footer `acl:N`).
    pub chain: ChainLength,
    /// Footer tagline.
    pub tagline: String,
    /// Courtesy notice for the reply at the chain limit (shown on the last part).
    pub courtesy: Option<String>,
    /// Users who may be pinged (other agents the reply addresses); nobody else is.
    pub allowed_users: Vec<u64>,
    /// Slowmode of the channel, waited out between the agent's messages there.
    pub slowmode: Duration,
    /// Seed of the parts' nonces (agent name), with `reply_to`.
    pub nonce_seed: String,
    /// Parts before this one were delivered by an earlier attempt: start here.
    pub first_part: usize,
    /// An earlier attempt may have posted some parts without troupe learning it (a crash, a
    /// lost response): webhook parts look for their copy in the channel before posting.
    pub check_existing: bool,
}

/// What was delivered.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Delivered {
    /// IDs of the parts Discord accepted in this attempt, in order.
    pub message_ids: Vec<u64>,
    /// Parts delivered so far, earlier attempts included.
    pub parts_done: usize,
    /// The text of those parts, joined: what the channel actually shows.
    pub text: String,
    /// Why delivery stopped early, if it did.
    pub error: Option<DeliveryError>,
}

/// Why a part was not delivered.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("discord rejected the message (status {status:?}): {reason}")]
pub struct DeliveryError {
    /// HTTP status, when Discord answered.
    pub status: Option<u16>,
    /// Discord's reason.
    pub reason: String,
}

impl DeliveryError {
    /// True when sending again later may work: throttled (429), a server error (5xx), or no
    /// answer at all (connection refused, reset, timed out). A 4xx other than 429 is final.
    pub fn is_transient(&self) -> bool {
        matches!(self.status, Some(429) | Some(500..=599) | None)
    }
}

/// When the agent's next message may go out in a slowmode channel: `slowmode` after its last
/// message there was accepted (measured when Discord's answer came back, so Discord has
/// counted it by then), or now.
pub fn next_slot(
    last_accepted: Option<tokio::time::Instant>,
    slowmode: Duration,
    now: tokio::time::Instant,
) -> tokio::time::Instant {
    last_accepted.map_or(now, |last| (last + slowmode).max(now))
}

/// An agent's webhook identity.
#[derive(Clone)]
pub struct WebhookIdentity {
    /// Webhook ID.
    pub id: u64,
    /// Its token.
    pub token: Secret,
    /// The one channel it posts in.
    pub channel_id: u64,
    /// Name shown on its messages.
    pub username: String,
    /// Avatar shown on its messages.
    pub avatar_url: Option<String>,
}

/// Sends messages as one agent.
#[derive(Clone)]
pub struct Outbox {
    inner: Arc<Inner>,
}

struct Inner {
    sink: Sink,
    webhook: Mutex<Option<WebhookIdentity>>,
    /// Per slowmode channel, one sender at a time, with when its last message was accepted:
    /// the slot is taken before waiting, so two conversations replying in one slowmode channel
    /// queue up instead of one being refused.
    slowmode_gates: Mutex<HashMap<u64, Arc<tokio::sync::Mutex<Option<tokio::time::Instant>>>>>,
    /// How long one part keeps being retried.
    retry_for: Mutex<Duration>,
}

enum Sink {
    Discord(Arc<Http>),
    /// Prints what would be sent (`--no-discord`) and records it.
    Print(Mutex<Vec<OutgoingMessage>>),
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Outbox")
    }
}

/// One message as sent.
#[derive(Debug, Clone, PartialEq)]
pub struct OutgoingMessage {
    /// Channel.
    pub channel_id: u64,
    /// Text (at most 2000 characters).
    pub content: String,
    /// Embed footer text (the ACL footer).
    pub footer: String,
    /// Embed description (the courtesy notice).
    pub description: Option<String>,
    /// Message it references (the first part of a reply).
    pub reply_to: Option<u64>,
    /// Message the whole reply answers (every part).
    pub answers: Option<u64>,
    /// Deterministic nonce, sent with `enforce_nonce`.
    pub nonce: String,
    /// Users who may be pinged.
    pub allowed_users: Vec<u64>,
    /// The agent sending it (for the duplicate-process report).
    pub agent: String,
    /// A file attached to it, `(file name, content)`: a long code reply ([`Outbox::deliver_with_file`]).
    pub file: Option<(String, String)>,
}

impl Outbox {
    /// An outbox over a bot's REST client.
    pub fn new(http: Arc<Http>) -> Self {
        Self::with_sink(Sink::Discord(http))
    }

    /// An outbox that prints instead of sending (`--no-discord`); IDs are made up.
    pub fn printing() -> Self {
        Self::with_sink(Sink::Print(Mutex::new(Vec::new())))
    }

    fn with_sink(sink: Sink) -> Self {
        Self {
            inner: Arc::new(Inner {
                sink,
                webhook: Mutex::new(None),
                slowmode_gates: Mutex::new(HashMap::new()),
                retry_for: Mutex::new(Duration::from_secs(60)),
            }),
        }
    }

    /// How long one part keeps being retried after 429s, 5xx and connection errors
    /// (`[delivery] discord_retry_secs`).
    pub fn set_retry_for(&self, retry_for: Duration) {
        *self.inner.retry_for.lock().expect("outbox lock") = retry_for;
    }

    /// Speaks through this webhook in its channel from now on.
    pub fn set_webhook(&self, webhook: WebhookIdentity) {
        *self.inner.webhook.lock().expect("outbox lock") = Some(webhook);
    }

    /// The webhook's ID, if the agent speaks through one.
    pub fn webhook_id(&self) -> Option<u64> {
        self.inner.webhook.lock().expect("outbox lock").as_ref().map(|w| w.id)
    }

    /// What a printing outbox has "sent".
    pub fn printed(&self) -> Vec<OutgoingMessage> {
        match &self.inner.sink {
            Sink::Print(sent) => sent.lock().expect("outbox lock").clone(),
            Sink::Discord(_) => Vec::new(),
        }
    }

    /// Shows "`bot` is typing…" in a channel (best effort).
    pub async fn typing(&self, channel_id: u64) {
        if let Sink::Discord(http) = &self.inner.sink {
            let _ = ChannelId::new(channel_id).broadcast_typing(http).await;
        }
    }

    /// Sends a plain notice (no LLM involved), e.g. the per-user rate-limit notice.
    pub async fn notice(
        &self,
        channel_id: u64,
        reply_to: u64,
        text: &str,
        tagline: &str,
        nonce_seed: &str,
    ) -> Delivered {
        let reply = Reply {
            channel_id,
            reply_to: Some(reply_to),
            text: text.to_string(),
            chain: ChainLength::HUMAN.next(),
            tagline: tagline.to_string(),
            courtesy: None,
            allowed_users: Vec::new(),
            slowmode: Duration::ZERO,
            nonce_seed: format!("{nonce_seed}/notice"),
            first_part: 0,
            check_existing: false,
        };
        self.deliver(&reply).await
    }

    /// Delivers a reply part by part, in order, from `reply.first_part`. Stops at the first part
    /// Discord does not take (the rest would read out of context): a final refusal at once, a
    /// transient failure once the retry deadline has passed.
    pub async fn deliver(&self, reply: &Reply) -> Delivered {
        let footer = acl::footer_text(reply.chain, &reply.tagline);
        let parts = split_message(&reply.text, DISCORD_LIMIT);
        let parts = if parts.is_empty() {
            vec!["…".to_string()]
        } else {
            parts
        };
        let mut delivered = Delivered {
            parts_done: reply.first_part.min(parts.len()),
            ..Delivered::default()
        };
        let last = parts.len() - 1;
        for (i, part) in parts.into_iter().enumerate().skip(reply.first_part) {
            let message = part_message(reply, &footer, i, part, i == last);
            match self
                .send_with_retries(&message, reply.slowmode, reply.check_existing)
                .await
            {
                Ok(id) => {
                    if !delivered.text.is_empty() {
                        delivered.text.push('\n');
                    }
                    delivered.text.push_str(&message.content);
                    delivered.message_ids.push(id);
                    delivered.parts_done = i + 1;
                }
                Err(e) => {
                    delivered.error = Some(e);
                    break;
                }
            }
        }
        delivered
    }

    /// Whether the agent speaks through its webhook in this channel (streamed replies do not:
    /// see [`crate::stream_reply`]).
    pub fn speaks_through_webhook(&self, channel_id: u64) -> bool {
        self.inner
            .webhook
            .lock()
            .expect("outbox lock")
            .as_ref()
            .is_some_and(|w| w.channel_id == channel_id)
    }

    /// Posts part `i` of a streamed reply (`reply.text` is ignored): the same nonce, reference,
    /// footer and mentions as that part of a whole reply, retried like one.
    pub async fn post_part(
        &self,
        reply: &Reply,
        i: usize,
        content: &str,
        courtesy: bool,
    ) -> Result<u64, DeliveryError> {
        let footer = acl::footer_text(reply.chain, &reply.tagline);
        let message = part_message(reply, &footer, i, content.to_string(), courtesy);
        self.send_with_retries(&message, reply.slowmode, reply.check_existing)
            .await
    }

    /// Edits a posted part of a streamed reply to `content` (footer and mentions as when posted;
    /// the courtesy notice when `courtesy`), retried on 429s, 5xx and connection errors.
    pub async fn edit_part(
        &self,
        reply: &Reply,
        message_id: u64,
        content: &str,
        courtesy: bool,
    ) -> Result<(), DeliveryError> {
        let footer = acl::footer_text(reply.chain, &reply.tagline);
        let http = match &self.inner.sink {
            Sink::Discord(http) => http.clone(),
            Sink::Print(_) => {
                println!(
                    "[no-discord] edit {message_id} in channel {}: {content} [{footer}]",
                    reply.channel_id
                );
                return Ok(());
            }
        };
        let channel = ChannelId::new(reply.channel_id);
        self.with_retries(|| {
            let mentions = CreateAllowedMentions::new()
                .replied_user(false)
                .users(reply.allowed_users.iter().map(|u| serenity::all::UserId::new(*u)));
            let mut embed = CreateEmbed::new().footer(CreateEmbedFooter::new(footer.clone()));
            if let Some(d) = reply.courtesy.as_ref().filter(|_| courtesy) {
                embed = embed.description(d.clone());
            }
            let builder = EditMessage::new()
                .content(content)
                .embed(embed)
                .allowed_mentions(mentions);
            let http = http.clone();
            async move {
                channel
                    .edit_message(&http, MessageId::new(message_id), builder)
                    .await
                    .map(|_| ())
                    .map_err(delivery_error)
            }
        })
        .await
    }

    /// Deletes a posted part a streamed reply no longer needs; one already gone (404) counts as
    /// deleted.
    pub async fn delete_part(&self, channel_id: u64, message_id: u64) -> Result<(), DeliveryError> {
        let http = match &self.inner.sink {
            Sink::Discord(http) => http.clone(),
            Sink::Print(_) => {
                println!("[no-discord] delete {message_id} in channel {channel_id}");
                return Ok(());
            }
        };
        let result = self
            .with_retries(|| {
                let http = http.clone();
                async move {
                    ChannelId::new(channel_id)
                        .delete_message(&http, MessageId::new(message_id))
                        .await
                        .map_err(delivery_error)
                }
            })
            .await;
        match result {
            Err(e) if e.status == Some(404) => Ok(()),
            other => other,
        }
    }

    /// Runs `call` until it succeeds, fails for good, or the retry deadline passes.
    async fn with_retries<F, Fut>(&self, mut call: F) -> Result<(), DeliveryError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<(), DeliveryError>>,
    {
        let deadline = Instant::now() + *self.inner.retry_for.lock().expect("outbox lock");
        let mut attempt = 1;
        loop {
            let e = match call().await {
                Ok(()) => return Ok(()),
                Err(e) => e,
            };
            if !e.is_transient() || Instant::now() >= deadline {
                return Err(e);
            }
            let wait = crate::retry::backoff(RETRY_BASE, RETRY_MAX, attempt, rand::random::<f64>());
            let wait = wait.min(deadline.saturating_duration_since(Instant::now()));
            tracing::warn!(status = ?e.status, attempt, wait_ms = wait.as_millis() as u64, "discord did not take an edit; retrying");
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }

    /// Delivers a reply as one message with its code attached as a file (`long_replies =
    /// "file"`): `reply.text` is the message's text ([`ReplyFile::text`], within one part), with
    /// the footer, reference and nonce of a reply's first part, so delivering it again after a
    /// failure or a restart posts nothing twice.
    ///
    /// [`ReplyFile::text`]: crate::attach::reply_file::ReplyFile::text
    pub async fn deliver_with_file(&self, reply: &Reply, file: &crate::attach::reply_file::ReplyFile) -> Delivered {
        if reply.first_part > 0 {
            return Delivered {
                parts_done: 1,
                ..Delivered::default()
            };
        }
        let message = OutgoingMessage {
            channel_id: reply.channel_id,
            content: reply.text.clone(),
            footer: acl::footer_text(reply.chain, &reply.tagline),
            description: reply.courtesy.clone(),
            reply_to: reply.reply_to,
            answers: reply.reply_to,
            nonce: nonce(&reply.nonce_seed, reply.reply_to.unwrap_or(0), 0),
            allowed_users: reply.allowed_users.clone(),
            agent: reply.nonce_seed.clone(),
            file: Some((file.filename.clone(), file.content.clone())),
        };
        match self
            .send_with_retries(&message, reply.slowmode, reply.check_existing)
            .await
        {
            Ok(id) => Delivered {
                message_ids: vec![id],
                parts_done: 1,
                text: message.content,
                error: None,
            },
            Err(e) => Delivered {
                error: Some(e),
                ..Delivered::default()
            },
        }
    }

    /// The slowmode gate of a channel.
    fn slowmode_gate(&self, channel_id: u64) -> Arc<tokio::sync::Mutex<Option<tokio::time::Instant>>> {
        self.inner
            .slowmode_gates
            .lock()
            .expect("outbox lock")
            .entry(channel_id)
            .or_default()
            .clone()
    }

    /// Sends one part, retrying 429s, 5xx and connection errors with back-off until the retry
    /// deadline. A 429 for slowmode (code 20016) waits a slowmode slot again.
    async fn send_with_retries(
        &self,
        m: &OutgoingMessage,
        slowmode: Duration,
        check_existing: bool,
    ) -> Result<u64, DeliveryError> {
        let deadline = Instant::now() + *self.inner.retry_for.lock().expect("outbox lock");
        // In a slowmode channel this part holds the channel's gate until it is accepted or
        // given up, and goes out `slowmode` after the agent's last accepted message there.
        let gate = (!slowmode.is_zero()).then(|| self.slowmode_gate(m.channel_id));
        let mut last_accepted = match &gate {
            Some(gate) => Some(gate.lock().await),
            None => None,
        };
        let mut attempt = 1;
        loop {
            if let Some(last) = &last_accepted {
                let at = next_slot(**last, slowmode, tokio::time::Instant::now());
                tokio::time::sleep_until(at).await;
            }
            // A webhook execution carries no nonce: after a failure that may have posted the
            // part anyway (or after a crash), look for it before posting again.
            if check_existing || attempt > 1 {
                if let Some(id) = self.find_webhook_copy(m).await {
                    tracing::info!(
                        channel = m.channel_id,
                        message_id = id,
                        "webhook part already posted; not sent again"
                    );
                    return Ok(id);
                }
            }
            // The first attempt at a part no earlier attempt (nor an earlier process) may have
            // posted: an existing message in return is another process's.
            let fresh = !check_existing && attempt == 1;
            let e = match self.send_once(m, fresh).await {
                Ok(id) => {
                    if let Some(last) = &mut last_accepted {
                        **last = Some(tokio::time::Instant::now());
                    }
                    return Ok(id);
                }
                Err(e) => e,
            };
            if !e.is_transient() || Instant::now() >= deadline {
                return Err(e);
            }
            let wait = crate::retry::backoff(RETRY_BASE, RETRY_MAX, attempt, rand::random::<f64>());
            let wait = wait.min(deadline.saturating_duration_since(Instant::now()));
            tracing::warn!(channel = m.channel_id, status = ?e.status, attempt, wait_ms = wait.as_millis() as u64, "discord did not take the message; retrying");
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }

    /// A part this agent's webhook already posted in the channel: the webhook's message after
    /// the answered one with the same text (webhook messages cannot reference what they answer).
    async fn find_webhook_copy(&self, m: &OutgoingMessage) -> Option<u64> {
        let Sink::Discord(http) = &self.inner.sink else {
            return None;
        };
        let webhook = self
            .inner
            .webhook
            .lock()
            .expect("outbox lock")
            .as_ref()
            .filter(|w| w.channel_id == m.channel_id)
            .map(|w| w.id)?;
        let after = m.answers?;
        let page = ChannelId::new(m.channel_id)
            .messages(
                http,
                serenity::all::GetMessages::new()
                    .after(MessageId::new(after))
                    .limit(100),
            )
            .await
            .ok()?;
        page.iter()
            .filter(|p| p.webhook_id.map(|w| w.get()) == Some(webhook) && p.content == m.content)
            .map(|p| p.id.get())
            .min()
    }

    async fn send_once(&self, m: &OutgoingMessage, fresh: bool) -> Result<u64, DeliveryError> {
        let http = match &self.inner.sink {
            Sink::Discord(http) => http,
            Sink::Print(sent) => {
                println!(
                    "[no-discord] channel {} (reply to {:?}): {} [{}]{}",
                    m.channel_id,
                    m.reply_to,
                    m.content,
                    m.footer,
                    m.file
                        .as_ref()
                        .map(|(name, content)| format!(" + file {name} ({} bytes)", content.len()))
                        .unwrap_or_default()
                );
                let mut sent = sent.lock().expect("outbox lock");
                sent.push(m.clone());
                return Ok(sent.len() as u64);
            }
        };
        let mentions = CreateAllowedMentions::new()
            .replied_user(false)
            .users(m.allowed_users.iter().map(|u| serenity::all::UserId::new(*u)));
        let mut embed = CreateEmbed::new().footer(CreateEmbedFooter::new(m.footer.clone()));
        if let Some(d) = &m.description {
            embed = embed.description(d.clone());
        }
        let webhook = self
            .inner
            .webhook
            .lock()
            .expect("outbox lock")
            .clone()
            .filter(|w| w.channel_id == m.channel_id);
        let files: Vec<CreateAttachment> = m
            .file
            .iter()
            .map(|(name, content)| CreateAttachment::bytes(content.as_bytes().to_vec(), name.clone()))
            .collect();
        let result = match webhook {
            Some(w) => {
                // Webhooks cannot reply to a message; the chain is tracked by message ID instead.
                let mut builder = ExecuteWebhook::new()
                    .content(m.content.clone())
                    .username(w.username.clone())
                    .embed(embed)
                    .allowed_mentions(mentions);
                if let Some(avatar) = &w.avatar_url {
                    builder = builder.avatar_url(avatar.clone());
                }
                http.execute_webhook(WebhookId::new(w.id), None, w.token.expose(), true, files, &builder)
                    .await
                    .map(|sent| sent.map_or(0, |s| s.id.get()))
            }
            None => {
                let channel = ChannelId::new(m.channel_id);
                let mut builder = CreateMessage::new()
                    .content(m.content.clone())
                    .allowed_mentions(mentions)
                    .embed(embed)
                    .nonce(Nonce::String(m.nonce.clone()))
                    .enforce_nonce(true)
                    .files(files);
                if let Some(reply_to) = m.reply_to {
                    builder = builder.reference_message(MessageReference::from((channel, MessageId::new(reply_to))));
                }
                let started_ms = crate::actors::turn::now_ms();
                let sent = channel.send_message(http, builder).await.map(|sent| sent.id.get());
                if let Ok(id) = sent {
                    if fresh && super::fencing::posted_by_another_process(id, started_ms) {
                        super::fencing::report(&m.agent, m.channel_id, id, started_ms);
                    }
                }
                sent
            }
        };
        result.map_err(delivery_error)
    }
}

/// A serenity error as a delivery error. serenity keeps Discord's status and message but not
/// `retry_after`; in live mode its own rate limiter waits 429s out before we see them.
fn delivery_error(e: serenity::Error) -> DeliveryError {
    let status = match &e {
        serenity::Error::Http(serenity::http::HttpError::UnsuccessfulRequest(r)) => Some(r.status_code.as_u16()),
        _ => None,
    };
    DeliveryError {
        status,
        reason: e.to_string(),
    }
}

/// Part `i` of a reply as a message: the footer on every part, the reference on the first, the
/// courtesy notice when `courtesy` (the last part), a deterministic nonce per part.
fn part_message(reply: &Reply, footer: &str, i: usize, content: String, courtesy: bool) -> OutgoingMessage {
    OutgoingMessage {
        channel_id: reply.channel_id,
        content,
        footer: footer.to_string(),
        description: if courtesy { reply.courtesy.clone() } else { None },
        reply_to: if i == 0 { reply.reply_to } else { None },
        answers: reply.reply_to,
        nonce: nonce(&reply.nonce_seed, reply.reply_to.unwrap_or(0), i),
        allowed_users: reply.allowed_users.clone(),
        agent: reply.nonce_seed.trim_end_matches("/notice").to_string(),
        file: None,
    }
}

/// A deterministic nonce for "agent answers message, part N": at most 25 characters.
pub fn nonce(agent: &str, message_id: u64, part: usize) -> String {
    // FNV-1a over the agent name: stable across runs and builds, unlike std's hasher.
    let mut h: u32 = 0x811c_9dc5;
    for b in agent.as_bytes() {
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x0100_0193);
    }
    format!("{:07x}{message_id:x}{:x}", h >> 4, part.min(255))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonce_is_deterministic_short_and_distinct() {
        let n = nonce("Ada", u64::MAX, 255);
        assert!(n.len() <= 25, "{n}");
        assert_eq!(nonce("Ada", 42, 0), nonce("Ada", 42, 0));
        assert_ne!(nonce("Ada", 42, 0), nonce("Bea", 42, 0));
        assert_ne!(nonce("Ada", 42, 0), nonce("Ada", 43, 0));
        assert_ne!(nonce("Ada", 42, 0), nonce("Ada", 42, 1));
    }

    #[tokio::test]
    async fn printing_outbox_splits_and_footers_every_part() {
        let outbox = Outbox::printing();
        let reply = Reply {
            channel_id: 1,
            reply_to: Some(9),
            text: format!("{}\n\n{}", "a".repeat(1500), "b".repeat(1500)),
            chain: ChainLength::new(4).unwrap(),
            tagline: "tag".into(),
            courtesy: Some("no reply expected".into()),
            allowed_users: vec![],
            slowmode: Duration::ZERO,
            nonce_seed: "Ada".into(),
            first_part: 0,
            check_existing: false,
        };
        let d = outbox.deliver(&reply).await;
        assert_eq!(d.message_ids.len(), 2);
        let sent = outbox.printed();
        assert!(sent
            .iter()
            .all(|m| m.footer == "acl:4 • tag" && m.content.chars().count() <= 2000));
        assert_eq!(sent[0].reply_to, Some(9));
        assert_eq!(sent[1].reply_to, None);
        assert_eq!(sent[0].description, None);
        assert_eq!(sent[1].description.as_deref(), Some("no reply expected"));
        assert_ne!(sent[0].nonce, sent[1].nonce);
        // A retry resumes at the first part not delivered, with the same nonce.
        let again = outbox
            .deliver(&Reply {
                first_part: 1,
                ..reply.clone()
            })
            .await;
        assert_eq!((again.message_ids.len(), again.parts_done), (1, 2));
        let sent = outbox.printed();
        assert_eq!(sent.len(), 3);
        assert_eq!(sent[2].nonce, sent[1].nonce);
        assert_eq!(sent[2].answers, Some(9));
    }

    #[test]
    fn the_next_slowmode_slot_follows_the_last_accepted_message() {
        let now = tokio::time::Instant::now();
        let slow = Duration::from_secs(5);
        assert_eq!(next_slot(None, slow, now), now);
        assert_eq!(next_slot(Some(now), slow, now), now + slow);
        // A slot long past is free now.
        let later = now + Duration::from_secs(60);
        assert_eq!(next_slot(Some(now), slow, later), later);
    }

    #[tokio::test(start_paused = true)]
    async fn two_replies_in_one_slowmode_channel_go_out_a_slowmode_apart() {
        let outbox = Outbox::printing();
        let reply = |reply_to| Reply {
            channel_id: 1,
            reply_to: Some(reply_to),
            text: "hello".into(),
            chain: ChainLength::HUMAN.next(),
            tagline: "t".into(),
            courtesy: None,
            allowed_users: vec![],
            slowmode: Duration::from_secs(3),
            nonce_seed: "Ada".into(),
            first_part: 0,
            check_existing: false,
        };
        let start = tokio::time::Instant::now();
        let (a, b) = (reply(1), reply(2));
        let (first, second) = tokio::join!(
            async {
                outbox.deliver(&a).await;
                tokio::time::Instant::now()
            },
            async {
                outbox.deliver(&b).await;
                tokio::time::Instant::now()
            }
        );
        let (early, late) = (first.min(second), first.max(second));
        assert_eq!(early - start, Duration::ZERO);
        assert!(late - early >= Duration::from_secs(3), "{:?}", late - early);
        assert_eq!(outbox.printed().len(), 2);
    }

    #[test]
    fn only_throttling_server_errors_and_silence_are_retried() {
        let e = |status| DeliveryError {
            status,
            reason: String::new(),
        };
        assert!(e(Some(429)).is_transient() && e(Some(502)).is_transient() && e(None).is_transient());
        assert!(!e(Some(403)).is_transient() && !e(Some(400)).is_transient() && !e(Some(404)).is_transient());
    }
}
