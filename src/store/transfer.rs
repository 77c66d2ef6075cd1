//! `troupe store export --agent NAME` and `troupe store import FILE`: one agent's records moved
//! between stores (from one cell's to another's) as a versioned JSON file, validated record by
//! record before anything is written.
//!
//! What moves: cursors (`cur/`), memory (`mem/`), answered records (`ans/`), created webhooks
//! (`hook/`, their tokens included: the file is a secret), seen DM channels (`dm/`) and pending
//! answers (`pend/`), and token usage and budget notices (`use/1/a/<agent>/`,
//! `use/1/u/<agent>/`, `use/1/c/<agent>/`, `bnote/`), moderators' pauses and budgets (`pause/`,
//! `ubud/`) and the messages of streamed replies still owed (`strm/`). What does not: chain lengths (`acl/1/<message id>`), which are
//! kept per message, not per agent (the footer still carries them), and troupe-wide user usage
//! (`use/1/u/*/`), which belongs to no one agent.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{classify, pending, MemoryRecord, PendingRecord, Store, StoreError};

/// The `format` every export carries.
pub const FORMAT: &str = "troupe-agent-export";
/// The export version this troupe writes and reads.
pub const VERSION: u32 = 1;

/// One agent's records. Snowflakes are strings, as in Discord's JSON (they exceed what a
/// JavaScript number holds exactly).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentExport {
    /// Always [`FORMAT`].
    pub format: String,
    /// [`VERSION`].
    pub v: u32,
    /// The agent's name.
    pub agent: String,
    /// When it was exported (Unix ms).
    pub exported_at_ms: u64,
    /// Channel ID → the last message the agent finished with there.
    pub cursors: BTreeMap<String, String>,
    /// Conversation (`c:<channel>`, `cu:<channel>:<user>`, `u:<user>`) → `{"v":1,"turns":[...]}`.
    pub memory: BTreeMap<String, Value>,
    /// Messages the agent delivered its answer to.
    pub answered: Vec<String>,
    /// Channel ID → the webhook troupe created there for the agent.
    pub webhooks: BTreeMap<String, WebhookRecord>,
    /// DM channels the agent has seen.
    pub dm_channels: Vec<String>,
    /// `<conversation>/<message id>` → the pending record of an answer still owed.
    pub pending: BTreeMap<String, Value>,
    /// Token usage in hour buckets: `a/<hour>` (the agent's) and `u/<user>/<hour>` (a user's
    /// with this agent) → tokens. Absent from exports written before budgets existed.
    #[serde(default)]
    pub usage: BTreeMap<String, String>,
    /// User ID → when the user was last sent this agent's budget notice (Unix ms).
    #[serde(default)]
    pub budget_notices: BTreeMap<String, String>,
    /// Channels where a moderator paused the agent (`/pause`).
    #[serde(default)]
    pub paused_channels: Vec<String>,
    /// User ID → the budget a moderator set for them with this agent (`/budget`), in tokens.
    #[serde(default)]
    pub budget_overrides: BTreeMap<String, String>,
    /// Message ID → the messages posted so far of the streamed reply to it (a reply still owed:
    /// the importing process edits them instead of posting a second reply).
    #[serde(default)]
    pub streams: BTreeMap<String, Vec<String>>,
}

/// A webhook troupe created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookRecord {
    /// Its ID.
    pub id: String,
    /// Its token.
    pub token: String,
}

/// Why an export or an import failed.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    /// The file is not a valid export; nothing was written.
    #[error("{0}")]
    Invalid(String),
    /// The store already holds records of the agent; nothing was written.
    #[error(
        "the store already holds {count} record(s) of agent `{agent}` ({kinds}); import into a store that has none, \
         or pass --replace to set them aside (under bad/1/) first"
    )]
    Conflict {
        /// The agent.
        agent: String,
        /// How many records.
        count: usize,
        /// Which kinds.
        kinds: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The record kinds that move, by key prefix (without the agent).
const KINDS: [&str; 10] = [
    "cur", "mem", "ans", "hook", "dm", "pend", "bnote", "pause", "ubud", "strm",
];

fn prefix(kind: &str, agent: &str) -> String {
    format!("{kind}/1/{agent}/")
}

/// What an import wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportReport {
    /// The agent.
    pub agent: String,
    /// Records written.
    pub written: usize,
    /// Records of the agent set aside first (`--replace`).
    pub set_aside: usize,
}

impl std::fmt::Display for ImportReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "imported {} record(s) of agent `{}`", self.written, self.agent)?;
        if self.set_aside > 0 {
            write!(f, "; {} older record(s) set aside under bad/1/", self.set_aside)?;
        }
        Ok(())
    }
}

impl AgentExport {
    /// The records as store keys and values, each validated; the first problem is the error.
    // Why this is long: one arm per record kind, each with its own checks and message.
    fn entries(&self) -> Result<Vec<(String, Vec<u8>)>, String> {
        if self.format != FORMAT {
            return Err(format!(
                "format is `{}`, not `{FORMAT}`: this is not a troupe agent export",
                self.format
            ));
        }
        if self.v != VERSION {
            return Err(format!(
                "export version {} is not supported by this troupe (it reads version {VERSION}); use the troupe that wrote it",
                self.v
            ));
        }
        let agent = &self.agent;
        if agent.trim().is_empty() || agent.contains('/') {
            return Err(format!("agent `{agent}` is not a valid agent name"));
        }
        let id = |what: &str, s: &str| -> Result<u64, String> {
            s.parse::<u64>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("{what}: `{s}` is not a Discord ID"))
        };
        let mut out = Vec::new();
        for (channel, message) in &self.cursors {
            let channel = id("cursors", channel)?;
            let message = id(&format!("cursors.{channel}"), message)?;
            out.push((format!("cur/1/{agent}/{channel}"), message.to_be_bytes().to_vec()));
        }
        for (conversation, record) in &self.memory {
            if pending::parse_key_segment(conversation).is_none() {
                return Err(format!(
                    "memory: `{conversation}` is not a conversation (c:ID, cu:ID:ID or u:ID)"
                ));
            }
            let record: MemoryRecord =
                serde_json::from_value(record.clone()).map_err(|e| format!("memory.{conversation}: {e}"))?;
            let bytes = serde_json::to_vec(&record).expect("memory serializes");
            out.push((format!("mem/1/{agent}/{conversation}"), bytes));
        }
        for message in &self.answered {
            out.push((format!("ans/1/{agent}/{}", id("answered", message)?), Vec::new()));
        }
        for (channel, hook) in &self.webhooks {
            let channel = id("webhooks", channel)?;
            let hook_id = id(&format!("webhooks.{channel}.id"), &hook.id)?;
            if hook.token.is_empty() {
                return Err(format!("webhooks.{channel}.token is empty"));
            }
            let value = serde_json::json!({"id": hook_id, "token": hook.token}).to_string();
            out.push((format!("hook/1/{agent}/{channel}"), value.into_bytes()));
        }
        for channel in &self.dm_channels {
            out.push((format!("dm/1/{agent}/{}", id("dm_channels", channel)?), Vec::new()));
        }
        for (key, record) in &self.pending {
            let (conversation, message) = key
                .rsplit_once('/')
                .ok_or_else(|| format!("pending: `{key}` is not <conversation>/<message id>"))?;
            let conversation = pending::parse_key_segment(conversation)
                .ok_or_else(|| format!("pending: `{conversation}` is not a conversation"))?;
            let message = id(&format!("pending.{key}"), message)?;
            let record: PendingRecord =
                serde_json::from_value(record.clone()).map_err(|e| format!("pending.{key}: {e}"))?;
            if record.message.id != message {
                return Err(format!("pending.{key}: the record is of message {}", record.message.id));
            }
            let bytes = serde_json::to_vec(&record).expect("pending record serializes");
            out.push((pending::record_key(agent, conversation, message), bytes));
        }
        for (key, tokens) in &self.usage {
            let tokens: u64 = tokens
                .parse()
                .map_err(|_| format!("usage.{key}: `{tokens}` is not a number of tokens"))?;
            let parts: Vec<&str> = key.split('/').collect();
            let hour = |h: &str| {
                h.parse::<u64>()
                    .map_err(|_| format!("usage.{key}: `{h}` is not an hour number"))
            };
            let store_key = match parts.as_slice() {
                ["a", h] => format!("use/1/a/{agent}/{:012}", hour(h)?),
                ["u", user, h] => format!(
                    "use/1/u/{agent}/{}/{:012}",
                    id(&format!("usage.{key}"), user)?,
                    hour(h)?
                ),
                ["c", channel, h] => format!(
                    "use/1/c/{agent}/{}/{:012}",
                    id(&format!("usage.{key}"), channel)?,
                    hour(h)?
                ),
                _ => {
                    return Err(format!(
                        "usage: `{key}` is not a/<hour>, u/<user>/<hour> or c/<channel>/<hour>"
                    ))
                }
            };
            out.push((store_key, tokens.to_be_bytes().to_vec()));
        }
        for (user, ms) in &self.budget_notices {
            let user = id("budget_notices", user)?;
            let ms: u64 = ms
                .parse()
                .map_err(|_| format!("budget_notices.{user}: `{ms}` is not a time in ms"))?;
            out.push((format!("bnote/1/{agent}/{user}"), ms.to_be_bytes().to_vec()));
        }
        for channel in &self.paused_channels {
            out.push((
                format!("pause/1/{agent}/{}", id("paused_channels", channel)?),
                Vec::new(),
            ));
        }
        for (user, tokens) in &self.budget_overrides {
            let user = id("budget_overrides", user)?;
            let tokens: u64 = tokens
                .parse()
                .map_err(|_| format!("budget_overrides.{user}: `{tokens}` is not a number of tokens"))?;
            out.push((format!("ubud/1/{agent}/{user}"), tokens.to_be_bytes().to_vec()));
        }
        for (message, parts) in &self.streams {
            let message = id("streams", message)?;
            let parts = parts
                .iter()
                .map(|p| id(&format!("streams.{message}"), p))
                .collect::<Result<Vec<u64>, String>>()?;
            // As `store::streams` writes it (fields in this order).
            let value = format!(
                r#"{{"v":1,"parts":{}}}"#,
                serde_json::to_string(&parts).expect("IDs serialize")
            );
            out.push((format!("strm/1/{agent}/{message}"), value.into_bytes()));
        }
        Ok(out)
    }
}

/// Parses and validates an export file's text.
pub fn parse(text: &str) -> Result<AgentExport, TransferError> {
    let export: AgentExport =
        serde_json::from_str(text).map_err(|e| TransferError::Invalid(format!("not a valid agent export: {e}")))?;
    export.entries().map_err(TransferError::Invalid)?;
    Ok(export)
}

impl Store {
    /// Every key of `agent`'s records that move, with its value.
    fn agent_records(&self, agent: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.apply_usage()?;
        let mut out = Vec::new();
        let usage = [
            format!("use/1/a/{agent}/"),
            format!("use/1/u/{agent}/"),
            format!("use/1/c/{agent}/"),
        ];
        for p in KINDS.iter().map(|k| prefix(k, agent)).chain(usage) {
            for item in self.db.scan_prefix(p) {
                let (k, v) = item.map_err(|e| classify(&self.path, e))?;
                out.push((String::from_utf8_lossy(&k).into_owned(), v.to_vec()));
            }
        }
        Ok(out)
    }

    /// `agent`'s records, ready to be written as an export file. A record that does not read
    /// back is an error naming its key: an export never leaves anything out silently.
    pub fn export_agent(&self, agent: &str, now_ms: u64) -> Result<AgentExport, StoreError> {
        let corrupt = |key: &str, detail: String| StoreError::Corrupt {
            path: self.path.clone(),
            detail: format!("{key}: {detail}"),
        };
        let mut export = AgentExport {
            format: FORMAT.into(),
            v: VERSION,
            agent: agent.into(),
            exported_at_ms: now_ms,
            cursors: BTreeMap::new(),
            memory: BTreeMap::new(),
            answered: Vec::new(),
            webhooks: BTreeMap::new(),
            dm_channels: Vec::new(),
            pending: BTreeMap::new(),
            usage: BTreeMap::new(),
            budget_notices: BTreeMap::new(),
            paused_channels: Vec::new(),
            budget_overrides: BTreeMap::new(),
            streams: BTreeMap::new(),
        };
        for (key, value) in self.agent_records(agent)? {
            let (kind, rest) = key.split_once('/').expect("scanned by prefix");
            let eight = |v: &[u8]| -> Result<u64, StoreError> {
                let bytes: [u8; 8] = v.try_into().map_err(|_| corrupt(&key, "not 8 bytes".into()))?;
                Ok(u64::from_be_bytes(bytes))
            };
            if kind == "use" {
                // use/1/a/<agent>/<hour> or use/1/u/<agent>/<user>/<hour>
                let parts: Vec<&str> = rest.split('/').collect();
                let hour = |h: &str| h.parse::<u64>().map_err(|_| corrupt(&key, "not an hour".into()));
                let name = match parts.as_slice() {
                    ["1", "a", _, h] => format!("a/{}", hour(h)?),
                    ["1", "u", _, user, h] => format!("u/{user}/{}", hour(h)?),
                    ["1", "c", _, channel, h] => format!("c/{channel}/{}", hour(h)?),
                    _ => return Err(corrupt(&key, "not a usage key".into())),
                };
                export.usage.insert(name, eight(&value)?.to_string());
                continue;
            }
            if kind == "bnote" {
                let user = rest.rsplit('/').next().unwrap_or_default().to_string();
                export.budget_notices.insert(user, eight(&value)?.to_string());
                continue;
            }
            let tail = rest[2 + agent.len() + 1..].to_string();
            let json = |v: &[u8]| serde_json::from_slice::<Value>(v).map_err(|e| corrupt(&key, e.to_string()));
            match kind {
                "cur" => {
                    let bytes: [u8; 8] = value
                        .as_slice()
                        .try_into()
                        .map_err(|_| corrupt(&key, "not 8 bytes".into()))?;
                    export.cursors.insert(tail, u64::from_be_bytes(bytes).to_string());
                }
                "mem" => {
                    export.memory.insert(tail, json(&value)?);
                }
                "ans" => export.answered.push(tail),
                "hook" => {
                    let v = json(&value)?;
                    let (id, token) = v["id"]
                        .as_u64()
                        .zip(v["token"].as_str())
                        .ok_or_else(|| corrupt(&key, "not {id, token}".into()))?;
                    export.webhooks.insert(
                        tail,
                        WebhookRecord {
                            id: id.to_string(),
                            token: token.into(),
                        },
                    );
                }
                "dm" => export.dm_channels.push(tail),
                "pause" => export.paused_channels.push(tail),
                "ubud" => {
                    export.budget_overrides.insert(tail, eight(&value)?.to_string());
                }
                "strm" => {
                    let parts = json(&value)?["parts"]
                        .as_array()
                        .and_then(|a| a.iter().map(|p| p.as_u64().map(|p| p.to_string())).collect())
                        .ok_or_else(|| corrupt(&key, "not {v, parts: [message ids]}".into()))?;
                    export.streams.insert(tail, parts);
                }
                _ => {
                    // Stored zero-padded (for ID order); written as the plain ID.
                    let (conversation, message) = tail
                        .rsplit_once('/')
                        .and_then(|(c, m)| Some((c, m.parse::<u64>().ok()?)))
                        .ok_or_else(|| corrupt(&key, "not <conversation>/<message id>".into()))?;
                    export
                        .pending
                        .insert(format!("{conversation}/{message}"), json(&value)?);
                }
            }
        }
        Ok(export)
    }

    /// Writes an export's records, all at once (one sled batch) and durably, after validating
    /// every one. Refuses when the store already holds records of the agent, unless `replace`,
    /// which sets those aside under `bad/1/` first (in the same batch).
    pub async fn import_agent(&self, export: &AgentExport, replace: bool) -> Result<ImportReport, TransferError> {
        let entries = export.entries().map_err(TransferError::Invalid)?;
        let existing = self.agent_records(&export.agent)?;
        if !existing.is_empty() && !replace {
            let mut kinds: Vec<&str> = existing
                .iter()
                .map(|(k, _)| k.split('/').next().unwrap_or_default())
                .collect();
            kinds.dedup();
            return Err(TransferError::Conflict {
                agent: export.agent.clone(),
                count: existing.len(),
                kinds: kinds.join(", "),
            });
        }
        let mut batch = sled::Batch::default();
        for (key, value) in &existing {
            batch.remove(key.as_str());
            batch.insert(format!("bad/1/{key}").as_str(), value.as_slice());
        }
        for (key, value) in &entries {
            batch.insert(key.as_str(), value.as_slice());
        }
        self.db.apply_batch(batch).map_err(|e| classify(&self.path, e))?;
        self.flush().await?;
        Ok(ImportReport {
            agent: export.agent.clone(),
            written: entries.len(),
            set_aside: existing.len(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryTurn;
    use crate::message::Inbound;
    use crate::routing::ConversationKey;

    fn inbound(id: u64) -> Inbound {
        Inbound {
            id,
            channel_id: 10,
            guild_id: Some(1),
            author_id: 7,
            author_name: "alice".into(),
            author_is_bot: false,
            webhook_id: None,
            content: format!("question {id}"),
            mentions: vec![3],
            mention_everyone: false,
            reply_to: None,
            footers: vec![],
            chain: crate::acl::ChainLength::HUMAN,
            attachments: Vec::new(),
        }
    }

    /// A store holding records of Ada and of Basil.
    async fn populated(dir: &std::path::Path) -> Store {
        let s = Store::open(dir).unwrap();
        for agent in ["Ada", "Basil"] {
            s.advance_cursor(agent, 10, 500).unwrap();
            s.advance_cursor(agent, 11, 600).unwrap();
            let turn = MemoryTurn {
                assistant: false,
                author: "alice".into(),
                content: format!("remember me, {agent}"),
                message_id: 500,
                time_ms: 1,
                cut: false,
                author_id: None,
                attachments: Vec::new(),
            };
            s.save_memory(agent, ConversationKey::Channel(10), std::slice::from_ref(&turn))
                .await
                .unwrap();
            s.save_memory(agent, ConversationKey::User(7), &[turn]).await.unwrap();
            s.record_answered(agent, &[499, 500]).await.unwrap();
            s.save_webhook(agent, 10, 77, "hook-token").await.unwrap();
            s.remember_dm(agent, 12).unwrap();
            s.save_pending(
                agent,
                ConversationKey::Channel(10),
                &PendingRecord::new(inbound(501), 5, "llm", "x"),
            )
            .unwrap();
            s.add_usage(agent, 300, &[(7, 300)], &[agent, crate::store::TROUPE], 3_600_000 * 5)
                .unwrap();
            s.record_budget_notice(agent, 7, 99).unwrap();
            s.add_channel_usage(agent, 10, 120, 3_600_000 * 5).unwrap();
            s.set_paused(agent, 11, true).await.unwrap();
            s.set_budget_override(agent, 8, Some(1_000)).await.unwrap();
            s.save_stream_parts(agent, 502, &[900, 901]).await.unwrap();
        }
        s.record_chain(500, crate::acl::ChainLength::new(2).unwrap()).unwrap();
        s.flush().await.unwrap();
        s
    }

    #[tokio::test]
    async fn an_agent_moves_with_every_record_and_only_its_own() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let source = populated(a.path()).await;
        let export = source.export_agent("Ada", 42).unwrap();
        assert_eq!(export.cursors.len(), 2);
        assert_eq!(export.memory.len(), 2);
        assert_eq!(export.answered, ["499", "500"]);
        assert_eq!(export.webhooks["10"].token, "hook-token");
        assert_eq!(export.dm_channels, ["12"]);
        assert_eq!(export.pending.keys().collect::<Vec<_>>(), ["c:10/501"]);
        assert_eq!(export.usage.get("a/5").map(String::as_str), Some("300"));
        assert_eq!(export.usage.get("u/7/5").map(String::as_str), Some("300"));
        assert_eq!(export.usage.get("c/10/5").map(String::as_str), Some("120"));
        assert_eq!(export.usage.len(), 3, "troupe-wide usage stays: {:?}", export.usage);
        assert_eq!(export.paused_channels, ["11"]);
        assert_eq!(export.budget_overrides.get("8").map(String::as_str), Some("1000"));
        assert_eq!(
            export.streams.get("502"),
            Some(&vec!["900".to_string(), "901".to_string()])
        );
        assert_eq!(export.budget_notices.get("7").map(String::as_str), Some("99"));
        // Through the file's text, as an operator moves it.
        let text = serde_json::to_string_pretty(&export).unwrap();
        let parsed = parse(&text).unwrap();
        assert_eq!(parsed, export);

        let dest = Store::open(b.path()).unwrap();
        let report = dest.import_agent(&parsed, false).await.unwrap();
        assert_eq!((report.written, report.set_aside), (16, 0));
        assert_eq!(dest.agent_records("Ada").unwrap(), source.agent_records("Ada").unwrap());
        assert!(dest.agent_records("Basil").unwrap().is_empty());
        // Read back through the store's own accessors.
        assert_eq!(dest.cursor("Ada", 11).unwrap(), Some(600));
        assert_eq!(
            dest.memory("Ada", ConversationKey::User(7)).unwrap()[0].content,
            "remember me, Ada"
        );
        assert!(dest.answered("Ada", 499).unwrap());
        assert_eq!(dest.webhook("Ada", 10).unwrap(), Some((77, "hook-token".into())));
        assert_eq!(dest.dm_channels("Ada").unwrap(), [12]);
        let pending = dest
            .pending_of("Ada", ConversationKey::Channel(10), 10, |_| false)
            .unwrap();
        assert_eq!(pending[0].message.id, 501);
        assert_eq!(dest.agent_usage("Ada", 0).unwrap(), 300);
        assert_eq!(dest.user_usage("Ada", 7, 0).unwrap(), 300);
        assert_eq!(dest.budget_notice_sent("Ada", 7).unwrap(), Some(99));
        assert_eq!(dest.channel_usage("Ada", 10, 0).unwrap(), 120);
        assert_eq!(dest.paused_channels("Ada").unwrap(), [11]);
        assert_eq!(dest.budget_override("Ada", 8).unwrap(), Some(1_000));
        assert_eq!(dest.stream_parts("Ada", 502).unwrap(), [900, 901]);
        // And the export of the copy is the export of the original.
        assert_eq!(dest.export_agent("Ada", 42).unwrap(), export);
    }

    #[tokio::test]
    async fn an_import_never_mixes_with_records_already_there_unless_told() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let source = populated(a.path()).await;
        let export = source.export_agent("Ada", 42).unwrap();
        let dest = Store::open(b.path()).unwrap();
        dest.advance_cursor("Ada", 99, 1000).unwrap();
        let e = dest.import_agent(&export, false).await.unwrap_err().to_string();
        assert!(e.contains("already holds 1 record(s) of agent `Ada` (cur)"), "{e}");
        assert_eq!(dest.cursor("Ada", 10).unwrap(), None, "nothing was written");
        let report = dest.import_agent(&export, true).await.unwrap();
        assert_eq!(report.set_aside, 1);
        assert_eq!(dest.cursor("Ada", 99).unwrap(), None);
        assert!(
            dest.db.contains_key("bad/1/cur/1/Ada/99").unwrap(),
            "set aside, not deleted"
        );
        assert_eq!(dest.export_agent("Ada", 42).unwrap(), export);
    }

    #[tokio::test]
    async fn a_bad_file_is_refused_before_anything_is_written() {
        let a = tempfile::tempdir().unwrap();
        let good = populated(a.path()).await.export_agent("Ada", 1).unwrap();
        let text = serde_json::to_value(&good).unwrap();
        let refused = |edit: &dyn Fn(&mut Value)| {
            let mut v = text.clone();
            edit(&mut v);
            match parse(&v.to_string()) {
                Err(TransferError::Invalid(e)) => e,
                other => panic!("accepted: {other:?}"),
            }
        };
        assert!(refused(&|v| v["format"] = "other".into()).contains("not a troupe agent export"));
        assert!(refused(&|v| v["v"] = 2.into()).contains("export version 2 is not supported"));
        assert!(refused(&|v| v["extra"] = 1.into()).contains("unknown field `extra`"));
        assert!(refused(&|v| v["cursors"]["10"] = "ten".into()).contains("cursors.10: `ten` is not a Discord ID"));
        assert!(refused(&|v| v["memory"]["x:1"] = v["memory"]["c:10"].clone()).contains("`x:1` is not a conversation"));
        assert!(refused(&|v| v["memory"]["c:10"]["turns"] = 3.into()).starts_with("memory.c:10:"));
        assert!(refused(&|v| v["answered"][0] = "0".into()).contains("answered: `0` is not a Discord ID"));
        assert!(refused(&|v| v["webhooks"]["10"]["token"] = "".into()).contains("token is empty"));
        assert!(refused(&|v| {
            let pending = v["pending"].as_object_mut().unwrap();
            let r = pending.remove("c:10/501").unwrap();
            pending.insert("c:10/502".into(), r);
        })
        .contains("the record is of message 501"));
        assert!(refused(&|v| v["agent"] = "A/B".into()).contains("not a valid agent name"));
        assert!(refused(&|v| v["paused_channels"][0] = "x".into()).contains("paused_channels: `x` is not a Discord ID"));
        assert!(refused(&|v| v["budget_overrides"]["8"] = "lots".into())
            .contains("budget_overrides.8: `lots` is not a number of tokens"));
        assert!(refused(&|v| v["streams"]["502"][1] = "0".into()).contains("streams.502: `0` is not a Discord ID"));
        assert!(refused(&|v| v["usage"]["c/10"] = "1".into())
            .contains("is not a/<hour>, u/<user>/<hour> or c/<channel>/<hour>"));
    }
}
