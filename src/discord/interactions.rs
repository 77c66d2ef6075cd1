//! Slash commands on Discord's side: a command interaction converted into troupe's
//! [`Invocation`], its responses (a message, or a deferral then an edit of `@original`), and the
//! registration of a bot's commands: read what Discord has, and bulk-overwrite only when it
//! differs, retrying with the project's back-off when Discord cannot be reached.

use serde_json::{json, Value};
use serenity::all::{ApplicationId, CommandDataOptionValue, CommandInteraction, GuildId, Http, InteractionId};
use serenity::http::{LightMethod, Request, Route};

use crate::commands::definitions::{self, Scope};
use crate::commands::{Invocation, OptionValue};

/// Message flag EPHEMERAL: only the caller sees the message.
pub const EPHEMERAL: u64 = 1 << 6;

/// troupe's view of a command interaction.
pub fn invocation(c: &CommandInteraction) -> Invocation {
    let options = c
        .data
        .options
        .iter()
        .filter_map(|o| {
            let v = match &o.value {
                CommandDataOptionValue::String(s) => OptionValue::Text(s.clone()),
                CommandDataOptionValue::Integer(n) => OptionValue::Integer(*n),
                CommandDataOptionValue::User(u) => OptionValue::User(u.get()),
                _ => return None,
            };
            Some((o.name.clone(), v))
        })
        .collect();
    let member = c.member.as_deref();
    let user_name = member
        .and_then(|m| m.nick.clone())
        .or_else(|| c.user.global_name.clone())
        .unwrap_or_else(|| c.user.name.clone());
    Invocation {
        id: c.id.get(),
        token: c.token.clone(),
        name: c.data.name.clone(),
        options,
        user_id: c.user.id.get(),
        user_name,
        channel_id: c.channel_id.get(),
        guild_id: c.guild_id.map(|g| g.get()),
        permissions: member.and_then(|m| m.permissions).map(|p| p.bits()),
    }
}

/// What a command answers with.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// Text (may be empty when there is an embed).
    pub content: String,
    /// One embed, if any.
    pub embed: Option<Value>,
    /// Only the caller sees it.
    pub ephemeral: bool,
}

impl Answer {
    /// An ephemeral text.
    pub fn private(content: impl Into<String>) -> Self {
        Self {
            content: content.into(),
            embed: None,
            ephemeral: true,
        }
    }

    /// The message object (pings nobody).
    fn message(&self) -> Value {
        let mut data = json!({"content": self.content, "allowed_mentions": {"parse": []}});
        if let Some(e) = &self.embed {
            data["embeds"] = json!([e]);
        }
        if self.ephemeral {
            data["flags"] = json!(EPHEMERAL);
        }
        data
    }
}

/// Answers at once (callback type 4 CHANNEL_MESSAGE_WITH_SOURCE).
pub async fn respond(http: &Http, inv: &Invocation, answer: &Answer) -> Result<(), String> {
    let body = json!({"type": 4, "data": answer.message()});
    http.create_interaction_response(InteractionId::new(inv.id), &inv.token, &body, Vec::new())
        .await
        .map_err(|e| e.to_string())
}

/// Acknowledges now and answers later (type 5 DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE): the user
/// sees "thinking…", ephemeral or not as the answer will be.
pub async fn defer(http: &Http, inv: &Invocation, ephemeral: bool) -> Result<(), String> {
    let mut body = json!({"type": 5});
    if ephemeral {
        body["data"] = json!({"flags": EPHEMERAL});
    }
    http.create_interaction_response(InteractionId::new(inv.id), &inv.token, &body, Vec::new())
        .await
        .map_err(|e| e.to_string())
}

/// Replaces a deferred response's "thinking…" with the answer (`PATCH .../@original`).
pub async fn edit_original(http: &Http, inv: &Invocation, answer: &Answer) -> Result<(), String> {
    let mut body = answer.message();
    // The original's flags were set by the deferral.
    if let Some(o) = body.as_object_mut() {
        o.remove("flags");
    }
    http.edit_original_interaction_response(&inv.token, &body, Vec::new())
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// What a registration did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registered {
    /// Discord already had the same commands: nothing written.
    Unchanged,
    /// The commands were written (one bulk overwrite).
    Written,
}

/// Registers the commands of one scope (`guild`, or global for `None`) for application `app`:
/// one `GET`; a `PUT` only if what Discord has differs.
pub async fn register(http: &Http, app: u64, guild: Option<u64>) -> Result<Registered, String> {
    let app = ApplicationId::new(app);
    let route = || match guild {
        Some(g) => Route::GuildCommands {
            application_id: app,
            guild_id: GuildId::new(g),
        },
        None => Route::Commands { application_id: app },
    };
    let scope = if guild.is_some() { Scope::Guild } else { Scope::Global };
    let wanted = definitions::definitions(scope);
    let existing: Vec<Value> = http
        .fire(Request::new(route(), LightMethod::Get))
        .await
        .map_err(|e| e.to_string())?;
    if definitions::unchanged(&existing, &wanted) {
        return Ok(Registered::Unchanged);
    }
    let body = serde_json::to_vec(&wanted).map_err(|e| e.to_string())?;
    let _: Vec<Value> = http
        .fire(Request::new(route(), LightMethod::Put).body(Some(body)))
        .await
        .map_err(|e| e.to_string())?;
    Ok(Registered::Written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_ping_nobody_and_are_ephemeral_unless_public() {
        let private = Answer::private("hi <@7>").message();
        assert_eq!(private["flags"], EPHEMERAL);
        assert_eq!(private["allowed_mentions"], json!({"parse": []}));
        assert!(private.get("embeds").is_none());
        let public = Answer {
            content: String::new(),
            embed: Some(json!({"title": "The cast"})),
            ephemeral: false,
        }
        .message();
        assert!(public.get("flags").is_none());
        assert_eq!(public["embeds"][0]["title"], "The cast");
    }
}
