//! The Discord adapter: a serenity client per agent for the gateway, its REST client for
//! delivery, and the conversion of serenity's types into ours. Nothing outside this module
//! touches serenity.
//!
//! - [`gateway`]: connects one bot token and forwards events as [`GatewayEvent`]s.
//! - [`history`]: pages of channel history for backlog replay.
//! - [`outbox`]: sends replies and typing indicators.
//! - [`convert`]: serenity model → [`crate::message`].

pub mod convert;
pub mod gateway;
pub mod history;
pub mod outbox;

pub use self::gateway::{GatewayConnection, GatewayEvent};
pub use self::outbox::Outbox;
