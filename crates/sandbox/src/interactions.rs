//! Interactions: what a human's use of a command (or a click on a message component) creates,
//! and Discord's rules over its lifetime: one initial response within 3 seconds (later ones are
//! refused with 10062 Unknown interaction), then followups and edits of the original response
//! with the token for 15 minutes. Also holds the application command [`Registry`] and the
//! ephemeral messages, which only the invoking user sees and which stay out of channel history.
//!
//! The payloads are built in [`payload`]; the HTTP routes are in `rest/interactions.rs`,
//! `rest/applications.rs` and `control/interactions.rs`.

pub mod payload;

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasher, Hasher};

use serde_json::{json, Value};

use crate::commands::Registry;
use crate::error::ApiError;
use crate::snowflake::{self, SnowflakeGenerator};
use crate::world::Message;

/// How long after its creation an interaction accepts its initial response.
pub const CALLBACK_WINDOW_MS: u64 = 3_000;
/// How long an interaction token works for followups and edits.
pub const TOKEN_LIFETIME_MS: u64 = 15 * 60 * 1000;
/// Message flag EPHEMERAL.
pub const EPHEMERAL: u64 = 1 << 6;
/// Message flag LOADING (a deferred response's "thinking" message).
pub const LOADING: u64 = 1 << 7;
/// Message flags a response may set: SUPPRESS_EMBEDS, EPHEMERAL, SUPPRESS_NOTIFICATIONS,
/// IS_COMPONENTS_V2.
pub const RESPONSE_FLAGS: u64 = (1 << 2) | EPHEMERAL | (1 << 12) | (1 << 15);

/// Interaction types the sandbox creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// APPLICATION_COMMAND (2).
    Command,
    /// MESSAGE_COMPONENT (3) on the message with this ID.
    Component {
        /// The message whose component was used.
        message_id: u64,
    },
}

impl Kind {
    /// Discord's interaction type number.
    pub fn number(self) -> u64 {
        match self {
            Self::Command => 2,
            Self::Component { .. } => 3,
        }
    }
}

/// Interaction callback types the sandbox implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Callback {
    /// 4 CHANNEL_MESSAGE_WITH_SOURCE: respond with a message.
    Message,
    /// 5 DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE: a "thinking" message, edited later.
    DeferredMessage,
    /// 6 DEFERRED_UPDATE_MESSAGE (components): acknowledge, edit the message later.
    DeferredUpdate,
    /// 7 UPDATE_MESSAGE (components): edit the message the component is on.
    Update,
}

impl Callback {
    /// Reads a callback `type` for an interaction of `kind`; Discord refuses types that do not
    /// apply to it (PONG answers only PINGs, updates only components) and the sandbox does not
    /// offer autocomplete, modals or activities.
    pub fn parse(kind: Kind, t: Option<u64>) -> Result<Self, ApiError> {
        let component = matches!(kind, Kind::Component { .. });
        match t {
            Some(4) => Ok(Self::Message),
            Some(5) => Ok(Self::DeferredMessage),
            Some(6) if component => Ok(Self::DeferredUpdate),
            Some(7) if component => Ok(Self::Update),
            Some(1 | 6 | 7 | 8 | 9 | 10 | 12) => Err(ApiError::invalid_form(
                "type",
                "INTERACTION_RESPONSE_TYPE_INVALID",
                "This response type is not valid for this interaction (the sandbox answers types 4 and 5, and 6 and 7 for components)",
            )),
            None => Err(ApiError::invalid_form("type", "BASE_TYPE_REQUIRED", "This field is required")),
            Some(_) => Err(ApiError::invalid_form(
                "type",
                "BASE_TYPE_CHOICES",
                "Value must be one of {1, 4, 5, 6, 7, 8, 9, 10, 12}.",
            )),
        }
    }

    /// The callback type's number.
    pub fn number(self) -> u64 {
        match self {
            Self::Message => 4,
            Self::DeferredMessage => 5,
            Self::DeferredUpdate => 6,
            Self::Update => 7,
        }
    }
}

/// The message an interaction's `@original` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Original {
    /// Its ID.
    pub message_id: u64,
    /// Whether it is ephemeral (kept in [`Interactions::ephemeral`], not in the channel).
    pub ephemeral: bool,
}

/// One interaction.
#[derive(Debug, Clone)]
pub struct Interaction {
    /// Snowflake.
    pub id: u64,
    /// Secret for the callback and the webhook routes.
    pub token: String,
    /// The application (its bot's user ID).
    pub application_id: u64,
    /// Command or component.
    pub kind: Kind,
    /// Where it was used.
    pub channel_id: u64,
    /// The guild, if not in a DM.
    pub guild_id: Option<u64>,
    /// Who used it.
    pub user_id: u64,
    /// When it was created (Unix ms).
    pub created_ms: u64,
    /// The initial response, once given.
    pub acknowledged: Option<Callback>,
    /// The original response message, once there is one.
    pub original: Option<Original>,
    /// Followup messages, oldest first.
    pub followups: Vec<Original>,
    /// The INTERACTION_CREATE payload as dispatched.
    pub payload: Value,
}

/// An ephemeral message: seen only by `user`.
#[derive(Debug, Clone)]
pub struct Ephemeral {
    /// The message.
    pub message: Message,
    /// The only user who sees it.
    pub user: u64,
}

/// Every interaction, the command registry and the ephemeral messages.
#[derive(Debug, Default)]
pub struct Interactions {
    /// Applications' commands.
    pub commands: Registry,
    ids: SnowflakeGenerator,
    by_id: HashMap<u64, Interaction>,
    by_token: HashMap<String, u64>,
    /// Ephemeral messages by ID.
    pub ephemeral: BTreeMap<u64, Ephemeral>,
}

/// 404, code 10062: unknown, or past the 3-second window for its initial response.
pub fn unknown_interaction() -> ApiError {
    ApiError {
        status: 404,
        body: json!({"message": "Unknown interaction", "code": 10062}),
    }
}

/// 400, code 40060.
pub fn already_acknowledged() -> ApiError {
    ApiError {
        status: 400,
        body: json!({"message": "Interaction has already been acknowledged.", "code": 40060}),
    }
}

/// 401, code 50027: the interaction token is past its 15 minutes.
pub fn invalid_webhook_token() -> ApiError {
    ApiError {
        status: 401,
        body: json!({"message": "Invalid Webhook Token", "code": 50027}),
    }
}

/// Whether an initial response made at `now_ms` is in time.
pub fn in_callback_window(created_ms: u64, now_ms: u64) -> bool {
    now_ms.saturating_sub(created_ms) < CALLBACK_WINDOW_MS
}

/// Whether the token still works at `now_ms`.
pub fn token_alive(created_ms: u64, now_ms: u64) -> bool {
    now_ms.saturating_sub(created_ms) < TOKEN_LIFETIME_MS
}

impl Interactions {
    /// A new snowflake (worker 2, so it never equals a world or command ID).
    pub fn next_id(&mut self) -> u64 {
        self.ids.next_id() | (2 << 17)
    }

    /// Registers an interaction. Every 256th forgets those whose token has expired, so a long
    /// run keeps only the last 15 minutes' (their ephemeral messages stay).
    pub fn insert(&mut self, interaction: Interaction) {
        if self.by_id.len() % 256 == 255 {
            let now = interaction.created_ms;
            self.by_id.retain(|_, i| token_alive(i.created_ms, now));
            let by_id = &self.by_id;
            self.by_token.retain(|_, id| by_id.contains_key(id));
        }
        self.by_token.insert(interaction.token.clone(), interaction.id);
        self.by_id.insert(interaction.id, interaction);
    }

    /// A token for interaction `id`: Discord's prefix (`interaction:` in base64) and a
    /// random part.
    pub fn new_token(id: u64) -> String {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(id);
        let mut h2 = std::collections::hash_map::RandomState::new().build_hasher();
        h2.write_u64(h.finish());
        format!("aW50ZXJhY3Rpb246{id}:{:016x}{:016x}", h.finish(), h2.finish())
    }

    /// An interaction by ID.
    pub fn get(&self, id: u64) -> Option<&Interaction> {
        self.by_id.get(&id)
    }

    /// The interaction a token belongs to.
    pub fn by_token(&self, token: &str) -> Option<&Interaction> {
        self.by_token.get(token).and_then(|id| self.by_id.get(id))
    }

    /// Checks an initial response to `id` with `token` at `now_ms` and records it.
    pub fn acknowledge(
        &mut self,
        id: u64,
        token: &str,
        callback_type: Option<u64>,
        now_ms: u64,
    ) -> Result<Interaction, ApiError> {
        let i = self
            .by_id
            .get_mut(&id)
            .filter(|i| i.token == token)
            .ok_or_else(unknown_interaction)?;
        if i.acknowledged.is_some() {
            return Err(already_acknowledged());
        }
        if !in_callback_window(i.created_ms, now_ms) {
            return Err(unknown_interaction());
        }
        i.acknowledged = Some(Callback::parse(i.kind, callback_type)?);
        Ok(i.clone())
    }

    /// Records the original response message.
    pub fn set_original(&mut self, id: u64, original: Original) {
        if let Some(i) = self.by_id.get_mut(&id) {
            i.original = Some(original);
        }
    }

    /// Records a followup message.
    pub fn add_followup(&mut self, id: u64, followup: Original) {
        if let Some(i) = self.by_id.get_mut(&id) {
            i.followups.push(followup);
        }
    }

    /// The interaction of a webhook route (`/webhooks/{app}/{token}`): the token must belong to
    /// application `app`, be acknowledged (Discord knows the webhook only after the initial
    /// response) and be under 15 minutes old.
    pub fn for_webhook(&self, app: u64, token: &str, now_ms: u64) -> Result<&Interaction, ApiError> {
        let i = self
            .by_token(token)
            .filter(|i| i.application_id == app && i.acknowledged.is_some())
            .ok_or_else(ApiError::unknown_webhook)?;
        if !token_alive(i.created_ms, now_ms) {
            return Err(invalid_webhook_token());
        }
        Ok(i)
    }

    /// The message a webhook route names: `@original` or a followup's ID.
    pub fn webhook_message(i: &Interaction, which: &str) -> Result<Original, ApiError> {
        if which == "@original" {
            return i.original.ok_or_else(ApiError::unknown_message);
        }
        let id: u64 = which.parse().map_err(|_| ApiError::unknown_message())?;
        i.followups
            .iter()
            .chain(i.original.iter())
            .find(|o| o.message_id == id)
            .copied()
            .ok_or_else(ApiError::unknown_message)
    }

    /// Ephemeral messages in `channel_id`, oldest first.
    pub fn ephemeral_in(&self, channel_id: u64) -> impl Iterator<Item = &Ephemeral> {
        self.ephemeral
            .values()
            .filter(move |e| e.message.channel_id == channel_id)
    }

    /// The creation time to stamp on an interaction made now.
    pub fn now_ms() -> u64 {
        snowflake::now_unix_ms()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn interaction(store: &mut Interactions, kind: Kind, created_ms: u64) -> (u64, String) {
        let id = store.next_id();
        let token = Interactions::new_token(id);
        store.insert(Interaction {
            id,
            token: token.clone(),
            application_id: 7,
            kind,
            channel_id: 1,
            guild_id: None,
            user_id: 2,
            created_ms,
            acknowledged: None,
            original: None,
            followups: Vec::new(),
            payload: Value::Null,
        });
        (id, token)
    }

    #[test]
    fn the_initial_response_must_come_within_three_seconds_and_once() {
        let mut s = Interactions::default();
        let (id, token) = interaction(&mut s, Kind::Command, 10_000);
        assert_eq!(
            s.acknowledge(id, "wrong", Some(4), 10_001).unwrap_err().body["code"],
            10062
        );
        assert_eq!(
            s.acknowledge(id, &token, Some(4), 13_000).unwrap_err().body["code"],
            10062
        );
        assert!(
            s.get(id).unwrap().acknowledged.is_none(),
            "a late response acknowledges nothing"
        );
        assert_eq!(
            s.acknowledge(id, &token, Some(4), 12_999).unwrap().acknowledged,
            Some(Callback::Message)
        );
        assert_eq!(
            s.acknowledge(id, &token, Some(5), 12_999).unwrap_err().body["code"],
            40060
        );
    }

    #[test]
    fn expired_interactions_are_forgotten_as_new_ones_come() {
        let mut s = Interactions::default();
        let (old, old_token) = interaction(&mut s, Kind::Command, 0);
        for _ in 0..300 {
            interaction(&mut s, Kind::Command, TOKEN_LIFETIME_MS);
        }
        assert!(s.get(old).is_none() && s.by_token(&old_token).is_none());
        assert_eq!(s.by_id.len(), 300);
    }

    #[test]
    fn update_callbacks_apply_to_components_only() {
        let mut s = Interactions::default();
        let (id, token) = interaction(&mut s, Kind::Command, 0);
        let err = s.acknowledge(id, &token, Some(7), 1).unwrap_err();
        assert_eq!(err.body["code"], 50035);
        assert!(err.body.pointer("/errors/type/_errors/0/code").is_some());
        let (id, token) = interaction(&mut s, Kind::Component { message_id: 5 }, 0);
        assert_eq!(
            s.acknowledge(id, &token, Some(6), 1).unwrap().acknowledged,
            Some(Callback::DeferredUpdate)
        );
        let (id, token) = interaction(&mut s, Kind::Command, 0);
        assert_eq!(s.acknowledge(id, &token, Some(99), 1).unwrap_err().status, 400);
    }

    #[test]
    fn the_token_serves_followups_for_fifteen_minutes_after_the_response() {
        let mut s = Interactions::default();
        let (id, token) = interaction(&mut s, Kind::Command, 0);
        assert_eq!(
            s.for_webhook(7, &token, 1).unwrap_err().body["code"],
            10015,
            "not yet acknowledged"
        );
        s.acknowledge(id, &token, Some(5), 1).unwrap();
        assert!(s.for_webhook(7, &token, TOKEN_LIFETIME_MS - 1).is_ok());
        assert_eq!(
            s.for_webhook(8, &token, 1).unwrap_err().body["code"],
            10015,
            "another application"
        );
        assert_eq!(
            s.for_webhook(7, &token, TOKEN_LIFETIME_MS).unwrap_err().body["code"],
            50027
        );
        let i = s.get(id).unwrap().clone();
        assert_eq!(
            Interactions::webhook_message(&i, "@original").unwrap_err().body["code"],
            10008
        );
        s.set_original(
            id,
            Original {
                message_id: 40,
                ephemeral: true,
            },
        );
        s.add_followup(
            id,
            Original {
                message_id: 41,
                ephemeral: false,
            },
        );
        let i = s.get(id).unwrap().clone();
        assert_eq!(Interactions::webhook_message(&i, "@original").unwrap().message_id, 40);
        assert!(!Interactions::webhook_message(&i, "41").unwrap().ephemeral);
        assert!(Interactions::webhook_message(&i, "42").is_err());
    }
}
