//! Attachments: files on the messages an agent answers, given to its model, and long code
//! replies sent as files.
//!
//! - [`kind`]: what a file is: an image a model takes, a text file, or something else (pure).
//! - [`origin`]: which hosts files may be fetched from (no SSRF), and CDN URL expiry (pure).
//! - [`plan`]: per turn, what is fetched, what is skipped and why, within the limits (pure).
//! - [`render`]: what the model is told about each file, in the turn's text (pure).
//! - [`fetch`]: the bounded downloader (size cap while streaming, timeout, no redirects).
//! - [`prepare`]: a turn's fresh messages' files planned, fetched and put into its prompt turns.
//! - [`reply_file`]: whether a reply goes out as a file instead of many parts (pure).
//!
//! Only references (URL, name, type, size) are kept, in pending messages and memory; bytes are
//! fetched for the turn that answers the message and dropped after the request is built.

pub mod fetch;
pub mod kind;
pub mod origin;
pub mod plan;
pub mod prepare;
pub mod render;
pub mod reply_file;

use std::sync::Arc;
use std::time::Duration;

pub use self::fetch::Fetcher;

/// Limits on what one turn gives its model (`[attachments]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest image sent, in bytes.
    pub max_image_bytes: u64,
    /// Most images sent with one turn.
    pub max_images: usize,
    /// Most bytes fetched for one turn (images and text files together).
    pub max_total_bytes: u64,
    /// Most characters of text files inlined into one turn (they count toward the context
    /// window like any text of the turn).
    pub text_chars: usize,
    /// How long one file's download may take.
    pub timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            // Anthropic refuses images over 5 MB; OpenAI takes up to 20 MB.
            max_image_bytes: 5 * 1024 * 1024,
            max_images: 4,
            max_total_bytes: 16 * 1024 * 1024,
            text_chars: 20_000,
            timeout: Duration::from_secs(15),
        }
    }
}

/// How a long reply goes out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LongReplies {
    /// In as many messages as it takes (default).
    #[default]
    Split,
    /// A reply that is one long code block goes out as a file attached to one message.
    File,
}

/// `[attachments]` validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// What a turn gives its model.
    pub limits: Limits,
    /// How a long code reply goes out.
    pub long_replies: LongReplies,
    /// A reply's length in characters above which `long_replies = "file"` applies.
    pub long_reply_chars: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            limits: Limits::default(),
            long_replies: LongReplies::Split,
            long_reply_chars: 4_000,
        }
    }
}

/// What an agent's turns need for attachments: the settings, whether its backend sees images,
/// and the shared downloader.
#[derive(Debug, Clone)]
pub struct AgentAttach {
    /// `[attachments]`.
    pub settings: Settings,
    /// The backend has `vision = true`.
    pub vision: bool,
    /// The downloader (its allowlist fixed by the mode).
    pub fetcher: Arc<Fetcher>,
}

impl Default for AgentAttach {
    /// Nothing fetched (an empty allowlist), no vision: for tests that build a spec by hand.
    fn default() -> Self {
        Self {
            settings: Settings::default(),
            vision: false,
            fetcher: Arc::new(Fetcher::new(origin::Origins::none())),
        }
    }
}
