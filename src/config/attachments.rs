//! `[attachments]`: limits on the files a turn gives its model, and long code replies as files.
//! Validated into [`crate::attach::Settings`].

use std::time::Duration;

use super::choice::{parse_enum, Choice};
use super::error::Report;
use super::operations::int;
use super::raw::RawAttachments;
use crate::attach::{Limits, LongReplies, Settings};

impl Choice for LongReplies {
    const WHAT: &'static str = "long_replies";
    const WORDS: &'static [(&'static str, Self)] = &[("split", LongReplies::Split), ("file", LongReplies::File)];
}

/// Discord's upload limit for bots: no attachment is larger, so no limit needs to be.
const MAX_BYTES: i64 = 500 * 1024 * 1024;

/// Validates `[attachments]`.
pub(crate) fn attachments(raw: &RawAttachments, err: &mut Report<'_>) -> Settings {
    let d = Settings::default();
    let f = |name: &str| format!("attachments.{name}");
    let limits = Limits {
        max_image_bytes: int(
            &f("max_image_bytes"),
            &raw.max_image_bytes,
            d.limits.max_image_bytes,
            1,
            MAX_BYTES,
            err,
        ),
        max_images: int(
            &f("max_images"),
            &raw.max_images,
            d.limits.max_images as u64,
            0,
            100,
            err,
        ) as usize,
        max_total_bytes: int(
            &f("max_total_bytes"),
            &raw.max_total_bytes,
            d.limits.max_total_bytes,
            1,
            MAX_BYTES,
            err,
        ),
        text_chars: int(
            &f("text_chars"),
            &raw.text_chars,
            d.limits.text_chars as u64,
            0,
            1_000_000,
            err,
        ) as usize,
        timeout: Duration::from_secs(int(
            &f("timeout_secs"),
            &raw.timeout_secs,
            d.limits.timeout.as_secs(),
            1,
            600,
            err,
        )),
    };
    if let (Some(image), Some(total)) = (&raw.max_image_bytes, &raw.max_total_bytes) {
        if limits.max_image_bytes > limits.max_total_bytes {
            err(
                Some(total.span()),
                f("max_total_bytes"),
                format!(
                    "{} is less than max_image_bytes ({}): no image that large could be sent; raise max_total_bytes or lower max_image_bytes",
                    total.get_ref(),
                    image.get_ref()
                ),
            );
        }
    }
    Settings {
        limits,
        long_replies: parse_enum(raw.long_replies.as_ref(), f("long_replies"), "", err).unwrap_or(d.long_replies),
        long_reply_chars: int(
            &f("long_reply_chars"),
            &raw.long_reply_chars,
            d.long_reply_chars as u64,
            100,
            1_000_000,
            err,
        ) as usize,
    }
}

#[cfg(test)]
mod tests {
    use crate::attach::LongReplies;
    use crate::config::Config;

    fn parse(section: &str, backend_extra: &str) -> Result<Config, String> {
        let text = format!(
            "{section}\n[backends.b]\nprovider = \"openai\"\nbase_url = \"http://x/v1\"\nmodel = \"m\"\n{backend_extra}\n[[agents]]\nname = \"Ada\"\nbackend = \"b\"\n"
        );
        Config::parse("agents.toml", &text).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_and_settings() {
        let c = parse("", "").unwrap();
        assert_eq!(c.attachments, crate::attach::Settings::default());
        assert!(!c.backends["b"].vision, "vision is off unless asked for");
        let c = parse(
            "[attachments]\nmax_image_bytes = 1000\nmax_images = 2\nmax_total_bytes = 5000\ntext_chars = 300\ntimeout_secs = 3\nlong_replies = \"file\"\nlong_reply_chars = 500",
            "vision = true",
        )
        .unwrap();
        let a = c.attachments;
        assert_eq!(
            (
                a.limits.max_image_bytes,
                a.limits.max_images,
                a.limits.max_total_bytes,
                a.limits.text_chars
            ),
            (1000, 2, 5000, 300)
        );
        assert_eq!(a.limits.timeout, std::time::Duration::from_secs(3));
        assert_eq!((a.long_replies, a.long_reply_chars), (LongReplies::File, 500));
        assert!(c.backends["b"].vision);
    }

    #[test]
    fn every_mistake_is_reported_with_its_line_and_fix() {
        let e = parse(
            "[attachments]\nmax_image_bytes = 0\nmax_images = -1\nlong_replies = \"files\"\ntimeout_secs = 9999",
            "",
        )
        .unwrap_err();
        for part in [
            "attachments.max_image_bytes",
            "0 is out of range; use 1 to",
            "attachments.max_images",
            "attachments.long_replies",
            "did you mean \"file\"?",
            "attachments.timeout_secs",
            "agents.toml:3",
        ] {
            assert!(e.contains(part), "missing {part:?} in:\n{e}");
        }
        let e = parse("[attachments]\nmax_image_bytes = 5000\nmax_total_bytes = 4000", "").unwrap_err();
        assert!(
            e.contains("attachments.max_total_bytes") && e.contains("less than max_image_bytes"),
            "{e}"
        );
        let e = parse("[attachments]\nmax_image = 5", "").unwrap_err();
        assert!(e.contains("max_image"), "{e}");
        // Vision is for HTTP providers: an echo backend cannot see.
        let text = "[backends.b]\nprovider = \"echo\"\nvision = true\n[[agents]]\nname = \"Ada\"\nbackend = \"b\"\n";
        let e = Config::parse("agents.toml", text).unwrap_err().to_string();
        assert!(
            e.contains("backends.b.vision") && e.contains("does not apply to provider \"echo\""),
            "{e}"
        );
    }
}
