//! The Discord adapter: a serenity client per agent for the gateway, its REST client for
//! delivery, and the conversion of serenity's types into ours. Outside this module serenity is
//! only passed along as a bot's REST handle ([`Rest`]); its types never are.
//!
//! - [`gateway`]: connects one bot token and forwards events as [`GatewayEvent`]s.
//! - [`history`]: pages of channel history for backlog replay.
//! - [`outbox`]: sends replies and typing indicators.
//! - [`webhooks`]: webhook personas: an existing webhook looked up, or one created and kept.
//! - [`convert`]: serenity model → [`crate::message`].

pub mod convert;
pub mod gateway;
pub mod history;
pub mod outbox;
pub mod webhooks;

pub use self::gateway::{GatewayConnection, GatewayEvent};
pub use self::outbox::Outbox;

/// A bot's REST client, shared by its outbox, replay and webhook set-up so serenity's rate
/// limiter sees all of the token's requests.
pub type Rest = std::sync::Arc<serenity::http::Http>;
