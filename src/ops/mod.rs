//! Running troupe in production: health and metrics over HTTP, clean exits with meaningful
//! codes, and the guards that stop a sick process (system limits, crash-loop back-off).
//!
//! - [`http`]: the `/liveness`, `/readiness` and `/metrics` endpoints (axum).
//! - [`health`]: the registry of troupe's phase and each agent's state that readiness reads.
//! - [`breakers`]: an agent's circuit breaker as its turns share it, reporting transitions.
//! - [`telemetry`]: metric names and one recording function per event (Prometheus).
//! - [`exit`]: exit codes, and the channel any component uses to request a clean exit.
//! - [`system`]: the load-average and memory watchdog.
//! - [`restarts`]: the crash-loop back-off schedule (starts are recorded in the store).

pub mod breakers;
pub mod exit;
pub mod health;
pub mod http;
pub mod restarts;
pub mod system;
pub mod telemetry;
