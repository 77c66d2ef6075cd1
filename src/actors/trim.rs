//! Gives the memory of passivated conversations back to the system. A conversation that
//! passivates frees its actor and its turns, but glibc's malloc keeps freed memory in its
//! arenas, so resident memory stays at its peak after a burst of conversations. After
//! passivations, one `malloc_trim(0)` (at most one per [`TRIM_DEBOUNCE`], on a blocking thread)
//! returns the free pages, so idle conversations cost about nothing in RSS, not only in heap.
//! On other allocators and systems it does nothing.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Passivations within this long share one trim.
pub const TRIM_DEBOUNCE: Duration = Duration::from_secs(5);

static SCHEDULED: AtomicBool = AtomicBool::new(false);

/// A conversation passivated: schedules a trim unless one is already scheduled. Must be called
/// inside a tokio runtime.
pub fn after_passivation() {
    if !should_schedule(&SCHEDULED) {
        return;
    }
    tokio::spawn(async {
        tokio::time::sleep(TRIM_DEBOUNCE).await;
        SCHEDULED.store(false, Ordering::SeqCst);
        let _ = tokio::task::spawn_blocking(trim).await;
    });
}

/// Claims the one scheduled trim: `true` for the first caller until the trim runs.
fn should_schedule(flag: &AtomicBool) -> bool {
    flag.compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst)
        .is_ok()
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim() {
    // SAFETY: malloc_trim only walks glibc's own arenas; it takes their locks itself.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() {}

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
