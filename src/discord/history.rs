//! Reading channel history over REST for backlog replay: pages of 100 with `after=`, oldest to
//! newest, one request per page.

use serenity::all::{ChannelId, GetMessages, Http, MessageId};

use super::convert;
use crate::message::Inbound;

/// Discord's largest page.
pub const PAGE: u8 = 100;

/// Why history could not be read.
#[derive(Debug, thiserror::Error)]
#[error("cannot read the history of channel {channel}: {reason}")]
pub struct HistoryError {
    /// Channel.
    pub channel: u64,
    /// Discord's reason.
    pub reason: String,
}

/// Every message after `after`, oldest first, in as few requests as possible (a page shorter
/// than 100 is the last). `keep` bounds memory: only the newest `keep` are returned, with the
/// number dropped.
pub async fn messages_after(
    http: &Http,
    channel: u64,
    after: u64,
    keep: usize,
) -> Result<(Vec<Inbound>, usize), HistoryError> {
    let mut out: Vec<Inbound> = Vec::new();
    let mut dropped = 0;
    let mut cursor = after;
    loop {
        let page = ChannelId::new(channel)
            .messages(
                http,
                GetMessages::new().after(MessageId::new(cursor.max(1))).limit(PAGE),
            )
            .await
            .map_err(|e| HistoryError {
                channel,
                reason: e.to_string(),
            })?;
        let full = page.len() == usize::from(PAGE);
        let mut page: Vec<Inbound> = page.iter().map(convert::inbound).filter(|m| m.id > cursor).collect();
        page.sort_by_key(|m| m.id);
        if let Some(last) = page.last() {
            cursor = last.id;
        }
        out.extend(page);
        if out.len() > keep {
            let extra = out.len() - keep;
            out.drain(..extra);
            dropped += extra;
        }
        if !full {
            return Ok((out, dropped));
        }
    }
}

/// The newest message ID of a channel, if it has any (one request).
pub async fn newest(http: &Http, channel: u64) -> Result<Option<u64>, HistoryError> {
    let page = ChannelId::new(channel)
        .messages(http, GetMessages::new().limit(1))
        .await
        .map_err(|e| HistoryError {
            channel,
            reason: e.to_string(),
        })?;
    Ok(page.first().map(|m| m.id.get()))
}

/// Up to a page (100) of the messages before `before`, as Discord returns them (newest first).
pub async fn before(http: &Http, channel: u64, before: u64) -> Result<Vec<Inbound>, HistoryError> {
    let page = ChannelId::new(channel)
        .messages(http, GetMessages::new().before(MessageId::new(before)).limit(PAGE))
        .await
        .map_err(|e| HistoryError {
            channel,
            reason: e.to_string(),
        })?;
    Ok(page.iter().map(convert::inbound).collect())
}
