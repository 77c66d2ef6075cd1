//! The mutable parts of a message as Discord renders them: `edited_timestamp`, `flags`,
//! `components`, `pinned`, `attachments`, `reactions` and the `thread` it started.

use serde_json::{json, Value};

use crate::snowflake;
use crate::world::{Attachment, Emoji, Message, World};

/// HAS_THREAD: the message started a thread.
const HAS_THREAD: u64 = 1 << 5;

impl World {
    /// Fills a rendered message's mutable fields. Without MESSAGE_CONTENT, components and
    /// attachments are empty, as Discord sends them.
    pub(super) fn render_extras(&self, m: &Message, with_content: bool, v: &mut Value) {
        let x = &m.extra;
        v["edited_timestamp"] = x
            .edited_unix_ms
            .map_or(Value::Null, |ms| json!(snowflake::iso8601(snowflake::from_unix_ms(ms))));
        let mut flags = x.flags;
        if let Some(thread) = x.thread.and_then(|t| self.channel(t)) {
            flags |= HAS_THREAD;
            v["thread"] = self.channel_json(thread);
        }
        v["flags"] = json!(flags);
        if let Some(kind) = x.system_kind {
            v["type"] = json!(kind);
        }
        v["pinned"] = json!(x.pinned_unix_ms.is_some());
        if with_content {
            v["components"] = json!(x.components);
            v["attachments"] = Value::Array(x.attachments.iter().map(attachment_json).collect());
        }
        if !x.reactions.is_empty() {
            v["reactions"] = self.reactions_json(m, None);
        }
    }

    /// A message's `reactions` as `viewer` sees them (`me` is whether the viewer reacted).
    pub fn reactions_json(&self, m: &Message, viewer: Option<u64>) -> Value {
        let list: Vec<Value> = m
            .extra
            .reactions
            .iter()
            .map(|r| {
                let me = viewer.is_some_and(|u| r.users.contains(&u));
                json!({
                    "emoji": emoji_json(&r.emoji),
                    "count": r.users.len(),
                    "count_details": {"burst": 0, "normal": r.users.len()},
                    "burst_colors": [],
                    "me_burst": false,
                    "me": me,
                    "burst_me": false,
                    "burst_count": 0,
                })
            })
            .collect();
        Value::Array(list)
    }

    /// A message as `viewer` reads it over REST (`reactions[].me` filled in).
    pub fn message_json_for(&self, m: &Message, viewer: u64) -> Value {
        let mut v = self.message_json(m, true);
        if !m.extra.reactions.is_empty() {
            v["reactions"] = self.reactions_json(m, Some(viewer));
        }
        v
    }
}

/// An emoji object (partial, as in reactions).
pub fn emoji_json(e: &Emoji) -> Value {
    match e {
        Emoji::Unicode(name) => json!({"id": null, "name": name}),
        Emoji::Custom { name, id } => json!({"id": id.to_string(), "name": name, "animated": false}),
    }
}

/// An attachment object.
pub fn attachment_json(a: &Attachment) -> Value {
    let mut v = json!({
        "id": a.id.to_string(),
        "filename": a.filename,
        "size": a.bytes.len(),
        "url": a.url,
        "proxy_url": a.url,
        "flags": 0,
    });
    if let Some(ct) = &a.content_type {
        v["content_type"] = json!(ct);
    }
    if let Some(d) = &a.description {
        v["description"] = json!(d);
    }
    if let Some((w, h)) = a.dimensions {
        v["width"] = json!(w);
        v["height"] = json!(h);
    }
    v
}
