//! Gives the memory of passivated conversations back to the system. A conversation that
//! passivates frees its actor and its turns, but glibc's malloc keeps freed memory in its
//! arenas, so resident memory stays at its peak after a burst of conversations. After
//! passivations, one `malloc_trim(0)` (at most one per [`TRIM_DEBOUNCE`], on a blocking thread)
//! returns the free pages, so idle conversations cost about nothing in RSS, not only in heap.
//! The library does not choose the allocator: a binary that installs another one says how it
//! gives memory back, or that it needs nothing, with [`set_release`] (the troupe binary's
//! jemalloc needs nothing). Without glibc and without [`set_release`] it does nothing.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

/// Passivations within this long share one trim.
pub const TRIM_DEBOUNCE: Duration = Duration::from_secs(5);

static SCHEDULED: AtomicBool = AtomicBool::new(false);

/// The binary's choice of release function, if it made one ([`set_release`]).
static RELEASE: OnceLock<Option<fn()>> = OnceLock::new();

/// Sets what gives freed memory back after passivations: `None` when the allocator does it
/// itself. Call it once, before the agents start; later calls are ignored.
pub fn set_release(release: Option<fn()>) {
    let _ = RELEASE.set(release);
}

/// The release function in force: the binary's, or glibc's trim where there is one.
fn release() -> Option<fn()> {
    *RELEASE.get_or_init(default_release)
}

/// A conversation passivated: schedules a trim unless one is already scheduled. Must be called
/// inside a tokio runtime.
pub fn after_passivation() {
    let Some(release) = release() else {
        return;
    };
    if !should_schedule(&SCHEDULED) {
        return;
    }
    tokio::spawn(async move {
        tokio::time::sleep(TRIM_DEBOUNCE).await;
        SCHEDULED.store(false, Ordering::SeqCst);
        let _ = tokio::task::spawn_blocking(release).await;
    });
}

/// Claims the one scheduled trim: `true` for the first caller until the trim runs.
fn should_schedule(flag: &AtomicBool) -> bool {
    flag.compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst)
        .is_ok()
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn default_release() -> Option<fn()> {
    Some(glibc_trim)
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn default_release() -> Option<fn()> {
    None
}

/// glibc's `malloc_trim(0)`: returns the free pages of every arena.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn glibc_trim() {
    // SAFETY: malloc_trim only walks glibc's own arenas; it takes their locks itself.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passivations_share_one_scheduled_trim() {
        let flag = AtomicBool::new(false);
        assert!(should_schedule(&flag));
        assert!(!should_schedule(&flag), "one is scheduled already");
        flag.store(false, Ordering::SeqCst); // the trim ran
        assert!(should_schedule(&flag));
    }
}
