//! Exit codes, and the one channel through which any part of troupe asks for a clean exit with
//! a code (a tripped breaker, load or memory too high).
//!
//! A component never calls `std::process::exit` itself: that would skip the store flush and the
//! gateways' close. It calls [`ExitRequests::request`]; `main.rs` waits for
//! [`ExitRequests::requested`] alongside the shutdown signals, stops troupe cleanly and exits
//! with [`ExitReason::code`]. The first request wins; later ones are logged and ignored, so the
//! exit code names the first cause.

use std::fmt;
use std::sync::Arc;

use tokio::sync::watch;

/// Process exit codes (documented in the README's table).
pub mod code {
    /// Clean shutdown (SIGTERM or Ctrl-C).
    pub const CLEAN: u8 = 0;
    /// Configuration error; nothing was started.
    pub const CONFIG: u8 = 2;
    /// Startup failure (an address in use, a remote sandbox unreachable, a token unreadable).
    pub const STARTUP: u8 = 3;
    /// The store is locked, corrupt or newer than this troupe.
    pub const STORE: u8 = 6;
    /// An agent's circuit breaker tripped with `on_trip = "exit"`.
    pub const BREAKER: u8 = 7;
    /// The load average reached `[limits] max_load_average`.
    pub const LOAD: u8 = 8;
    /// The resident memory reached `[limits] max_rss_mb`.
    pub const MEMORY: u8 = 9;
    /// A second SIGTERM or Ctrl-C cut the graceful shutdown short.
    pub const FORCED: u8 = 10;
}

/// Why troupe asks to exit on its own.
#[derive(Debug, Clone, PartialEq)]
pub enum ExitReason {
    /// An agent's breaker tripped and its `on_trip` is `"exit"`.
    BreakerTripped {
        /// The agent.
        agent: String,
        /// Consecutive failed turns.
        failures: u32,
        /// The last failure, for the log.
        cause: String,
    },
    /// The 1-minute load average is at or above the limit.
    LoadTooHigh {
        /// Measured.
        load: f64,
        /// `[limits] max_load_average`.
        max: f64,
    },
    /// The resident set size is at or above the limit.
    MemoryTooHigh {
        /// Measured, in MiB.
        rss_mb: u64,
        /// `[limits] max_rss_mb`.
        max_mb: u64,
    },
}

impl ExitReason {
    /// The process exit code for this reason.
    pub fn code(&self) -> u8 {
        match self {
            ExitReason::BreakerTripped { .. } => code::BREAKER,
            ExitReason::LoadTooHigh { .. } => code::LOAD,
            ExitReason::MemoryTooHigh { .. } => code::MEMORY,
        }
    }
}

impl fmt::Display for ExitReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExitReason::BreakerTripped { agent, failures, cause } => write!(
                f,
                "agent `{agent}`: circuit breaker tripped after {failures} consecutive failed turns (last: {cause})"
            ),
            ExitReason::LoadTooHigh { load, max } => {
                write!(
                    f,
                    "load average {load:.2} is at or above [limits] max_load_average = {max}"
                )
            }
            ExitReason::MemoryTooHigh { rss_mb, max_mb } => {
                write!(
                    f,
                    "resident memory {rss_mb} MiB is at or above [limits] max_rss_mb = {max_mb}"
                )
            }
        }
    }
}

/// A cloneable handle for requesting a clean exit and for waiting for one.
#[derive(Debug, Clone)]
pub struct ExitRequests {
    tx: Arc<watch::Sender<Option<ExitReason>>>,
}

impl Default for ExitRequests {
    fn default() -> Self {
        Self::new()
    }
}

impl ExitRequests {
    /// No exit requested yet.
    pub fn new() -> Self {
        Self {
            tx: Arc::new(watch::channel(None).0),
        }
    }

    /// Asks for a clean exit. Returns whether this request is the one that counts (the first).
    pub fn request(&self, reason: ExitReason) -> bool {
        let mut first = false;
        self.tx.send_if_modified(|current| {
            if current.is_none() {
                *current = Some(reason.clone());
                first = true;
            }
            first
        });
        if first {
            tracing::error!(reason = %reason, exit_code = reason.code(), "exit requested");
        } else {
            tracing::warn!(reason = %reason, "exit already requested; this later cause is ignored");
        }
        first
    }

    /// The request so far, if any.
    pub fn current(&self) -> Option<ExitReason> {
        self.tx.borrow().clone()
    }

    /// Completes with the first request.
    pub async fn requested(&self) -> ExitReason {
        let mut rx = self.tx.subscribe();
        let reason = rx.wait_for(Option::is_some).await.expect("the sender lives in self");
        reason.clone().expect("waited for Some")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load() -> ExitReason {
        ExitReason::LoadTooHigh { load: 30.0, max: 21.0 }
    }

    #[tokio::test]
    async fn the_first_request_wins_and_wakes_waiters() {
        let exits = ExitRequests::new();
        let waiter = tokio::spawn({
            let exits = exits.clone();
            async move { exits.requested().await }
        });
        assert_eq!(exits.current(), None);
        assert!(exits.request(load()));
        assert!(!exits.request(ExitReason::MemoryTooHigh { rss_mb: 9, max_mb: 1 }));
        assert_eq!(waiter.await.unwrap(), load());
        // A late waiter sees the same request at once.
        assert_eq!(exits.requested().await.code(), code::LOAD);
    }

    #[test]
    fn codes_are_distinct_and_documented_ones() {
        let breaker = ExitReason::BreakerTripped {
            agent: "Ada".into(),
            failures: 5,
            cause: "timeout".into(),
        };
        let memory = ExitReason::MemoryTooHigh {
            rss_mb: 600,
            max_mb: 512,
        };
        assert_eq!([breaker.code(), load().code(), memory.code()], [7, 8, 9]);
        assert!(breaker
            .to_string()
            .contains("agent `Ada`: circuit breaker tripped after 5"));
        assert!(memory.to_string().contains("max_rss_mb = 512"));
    }
}
