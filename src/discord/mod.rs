//! The Discord adapter: a serenity client per agent for the gateway, a REST client per agent
//! ([`Rest`]) for delivery, history reads and webhook set-up, and the conversion of serenity's
//! types into ours. Outside this module serenity appears only as that REST handle, built here
//! ([`gateway::http_client`]) and passed back into this module's functions: the agent holds its
//! bot's [`Rest`] and hands it to the outbox, the replay task and [`webhooks`]. No serenity
//! model type leaves this module.
//!
//! - [`gateway`]: connects one bot token and forwards events as [`GatewayEvent`]s.
//! - [`ordered`]: messages forwarded in gateway order (a collector on the shard runner).
//! - [`backlog`]: backpressure there: a runner waits while too many handler tasks are to come.
//! - [`history`]: pages of channel history for backlog replay.
//! - [`outbox`]: sends replies and typing indicators.
//! - [`route`]: where REST requests go (Discord, an API base, or the sandbox over TLS).
//! - [`webhooks`]: webhook personas: an existing webhook looked up, or one created and kept.
//! - [`convert`]: serenity model → [`crate::message`].
//! - [`fencing`]: a reply Discord already had from another process using the same bot.
//! - [`interactions`]: slash commands: interactions converted, answered, and commands registered.
//! - [`threads`]: whether a new thread is writable, from the little of each guild kept for it
//!   (troupe builds serenity without its cache).

pub mod backlog;
pub mod convert;
pub mod fencing;
pub mod gateway;
pub mod history;
pub mod interactions;
pub mod ordered;
pub mod outbox;
pub mod route;
pub mod threads;
pub mod webhooks;

pub use self::gateway::{GatewayConnection, GatewayEvent};
pub use self::ordered::Edge;
pub use self::outbox::Outbox;
pub use self::route::Route;

/// A bot's REST client, shared by its outbox, replay and webhook set-up so serenity's rate
/// limiter sees all of the requests troupe makes with the token (the gateway's serenity client
/// keeps its own, see [`gateway::http_client`]).
pub type Rest = std::sync::Arc<serenity::http::Http>;
