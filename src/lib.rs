//! troupe runs a whole cast of LLM agent personas on Discord from one process.
//!
//! Where things live:
//!
//! - [`app`]: starts and stops everything; `app::run(config, shutdown)` is what tests drive.
//! - [`cli`]: command-line flags and subcommands.
//! - [`config`]: `agents.toml` parsed, then validated into the types the rest trusts.
//! - [`actors`]: the ractor supervision tree (supervisor → agents → conversations).
//! - [`routing`]: which messages an agent answers, and which conversation they belong to (pure).
//! - [`prompt`]: the system prompt and turns sent to a backend (pure).
//! - [`llm`]: backends (echo, ...) and the providers' streaming formats.
//! - [`discord`]: the serenity adapter: gateway events in, messages out.
//! - [`message`]: troupe's own message types, converted from serenity at the edge.
//! - [`sandbox`]: a local Discord-compatible server with a control API and a web page.
//! - [`secret`]: tokens and keys in a type that cannot be printed.
#![recursion_limit = "256"]

pub mod actors;
pub mod app;
pub mod cli;
pub mod config;
pub mod discord;
pub mod llm;
pub mod memory;
pub mod message;
pub mod prompt;
pub mod routing;
pub mod sandbox;
pub mod store;
pub mod secret;
