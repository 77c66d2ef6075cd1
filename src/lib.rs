//! troupe runs a whole cast of LLM agent personas on Discord from one process.
//!
//! Where things live:
//!
//! - [`app`]: starts and stops everything; `app::run(config, shutdown)` is what tests drive.
//! - [`cli`]: command-line flags and subcommands.
//! - [`config`]: `agents.toml` parsed, then validated into the types the rest trusts.
//! - [`acl`]: the agent-chain-length footer protocol that stops bot loops (pure).
//! - [`loopguard`]: per-channel limit on answers to foreign bots, which ignore the footer (pure).
//! - [`split`]: splitting replies into Discord-sized parts, code fences kept whole (pure).
//! - [`stream_reply`]: a reply streamed into messages as the model writes it: when to post, edit,
//!   cut and tidy (pure).
//! - [`backlog`]: replay planning: scopes, bounds, cursors from per-channel progress (pure).
//! - [`actors`]: the ractor supervision tree (supervisor → agents, each owning its conversations).
//! - [`ratelimit`]: per-user message limits of an agent (pure).
//! - [`channels`]: an agent's channels and what derives from them (listen channels, bot-DMs,
//!   replay order) (pure).
//! - [`phase`]: an agent between READY and real time: connecting, replaying, live (pure).
//! - [`routing`]: which messages an agent answers, and which conversation they belong to (pure).
//! - [`skip`]: messages an agent will not answer, recognised at the gateway edge before they are
//!   converted (pure).
//! - [`attach`]: files on messages given to the model (images, text), bounded downloads, long
//!   code replies sent as files.
//! - [`prompt`]: the system prompt and turns sent to a backend (pure).
//! - [`llm`]: backends (OpenAI-compatible, Anthropic, command, echo), the worker pool, stream formats.
//! - [`discord`]: the serenity adapter: gateway events in, messages out.
//! - [`memory`]: what a conversation remembers, bounded and trimmed oldest first (pure).
//! - [`store`]: durable state in sled, versioned keys; damage refused at open, old per-message
//!   records pruned.
//! - [`message`]: troupe's own message types, converted from serenity at the edge.
//! - [`sandbox`]: the local Discord-compatible server (crate `troupe-sandbox` in `crates/sandbox`),
//!   started by `troupe sandbox` and in sandbox mode.
//! - [`snowflake`]: Discord message IDs as time (pure).
//! - [`secret`]: tokens and keys in a type that cannot be printed.
//! - [`retry`]: one retry policy (back-off with jitter, `retry-after`) for LLM requests, Discord
//!   deliveries, history reads and deferred answers (pure).
//! - [`breaker`]: the per-agent circuit breaker over consecutive failed turns (pure).
//! - [`quota`]: token budgets per user and per agent over a window (pure; counts in [`store`]).
//! - [`commands`]: slash commands: their definitions, who may use them, what they answer (pure;
//!   run by the agent actor, Discord's side in [`discord`]).
//! - [`cells`]: the cast split across processes: each agent's cell, and this process's (pure).
//! - [`ops`]: health and metrics endpoints, exit codes and exit requests, system limits,
//!   crash-loop back-off.
#![recursion_limit = "256"]

pub mod acl;
pub mod actors;
pub mod app;
pub mod attach;
pub mod backlog;
pub mod breaker;
pub mod cells;
pub mod channels;
pub mod cli;
pub mod commands;
pub mod config;
pub mod discord;
pub mod llm;
pub mod loopguard;
pub mod memory;
pub mod message;
pub mod ops;
pub mod phase;
pub mod prompt;
pub mod quota;
pub mod ratelimit;
pub mod retry;
pub mod routing;
/// The local Discord (crate `troupe-sandbox`, `crates/sandbox`), started by `troupe sandbox` and
/// in sandbox mode.
pub use troupe_sandbox as sandbox;
pub mod secret;
pub mod skip;
pub mod snowflake;
pub mod split;
pub mod store;
pub mod stream_reply;
