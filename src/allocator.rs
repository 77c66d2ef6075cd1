//! The troupe binary's allocator (not the library's: the library leaves that to whoever links
//! it). jemalloc, with a background thread that gives freed memory back to the system within
//! about a second, because glibc's malloc kept the memory of passivated conversations resident
//! (docs/benchmarks.md, Issue 18). Built with the default feature `jemalloc`.

#[cfg(all(feature = "jemalloc", not(target_env = "msvc")))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options, compiled into the binary: jemalloc reads this symbol at its first
/// allocation (before `main`), then the `_RJEM_MALLOC_CONF` environment variable, whose
/// options override these (e.g. `_RJEM_MALLOC_CONF=dirty_decay_ms:10000`). A background thread
/// purges unused pages: dirty ones gradually over 1 s, and no muzzy stage (lazily freed pages
/// would still count in RSS until the kernel needs them).
#[cfg(all(feature = "jemalloc", not(target_env = "msvc")))]
#[export_name = "_rjem_malloc_conf"]
pub static MALLOC_CONF: &u8 = &OPTIONS[0];

/// [`MALLOC_CONF`]'s text, NUL-terminated for C.
#[cfg(all(feature = "jemalloc", not(target_env = "msvc")))]
const OPTIONS: &[u8] = b"background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0\0";

/// What to run after conversations passivate to give their memory back (`actors::trim`):
/// nothing with jemalloc, whose background thread does it within a second (an explicit purge of
/// every arena 5 s after passivations measured no better: docs/benchmarks.md, Issue 18); the
/// library's default (glibc's `malloc_trim`) otherwise.
pub fn install_heap_release() {
    #[cfg(all(feature = "jemalloc", not(target_env = "msvc")))]
    troupe::actors::trim::set_release(None);
}

#[cfg(all(test, feature = "jemalloc", not(target_env = "msvc")))]
mod tests {
    use std::ffi::CStr;

    /// Reads a `size_t`/`ssize_t`/`bool`-sized option through `mallctl`.
    fn option<T: Default + Copy>(name: &CStr) -> T {
        let mut value = T::default();
        let mut len = std::mem::size_of::<T>();
        // SAFETY: `value` is writable and `len` is its size.
        let r = unsafe {
            tikv_jemalloc_sys::mallctl(
                name.as_ptr(),
                (&mut value as *mut T).cast(),
                &mut len,
                std::ptr::null_mut(),
                0,
            )
        };
        assert_eq!(r, 0, "mallctl {name:?}");
        value
    }

    #[test]
    fn the_compiled_in_options_are_the_ones_jemalloc_runs_with() {
        // The test binary has the same global allocator and symbol as the troupe binary.
        // Not skipped when `_RJEM_MALLOC_CONF` is set: an override fails here, naming itself,
        // rather than passing without checking anything.
        let _warm = vec![0u8; 1 << 20];
        let overridden = std::env::var("_RJEM_MALLOC_CONF").ok();
        let why = format!("jemalloc's options differ from the compiled-in ones; _RJEM_MALLOC_CONF = {overridden:?}");
        assert!(option::<bool>(c"opt.background_thread"), "{why}");
        assert_eq!(option::<isize>(c"opt.dirty_decay_ms"), 1000, "{why}");
        assert_eq!(option::<isize>(c"opt.muzzy_decay_ms"), 0, "{why}");
    }
}
