//! What one turn does with the files on its fresh messages: which images are fetched for the
//! model, which text files are read, which are only mentioned, and why anything is skipped.
//! Decided from what Discord declares (type, name, size) before any byte is fetched. Pure.

use super::kind::{classify, ImageType, Kind};
use super::Limits;
use crate::message::Attachment;

/// Why a file is not given to the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// An image, and the backend cannot see images (`vision` is off).
    NoVision,
    /// Larger than the image limit.
    TooLarge {
        /// The limit, in bytes.
        max: u64,
    },
    /// Past the number of images one turn sends.
    TooMany {
        /// The limit.
        max: usize,
    },
    /// Would pass the bytes one turn fetches.
    OverTotal {
        /// The limit, in bytes.
        max: u64,
    },
    /// The text-file character budget is spent.
    TextBudget {
        /// The budget, in characters.
        max: usize,
    },
}

/// What happens to one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Fetch it and send it to the model as an image.
    Image(ImageType),
    /// Fetch it and inline its text, up to this many bytes.
    Text {
        /// Most bytes read.
        max_bytes: u64,
    },
    /// Mention it by name, type and size (not an image or text file).
    Mention,
    /// Mention it and say why it was not given.
    Skip(Kind, Skip),
}

/// Bytes a text file's inline budget may take: 4 per character, UTF-8's widest.
pub fn text_bytes(chars: usize) -> u64 {
    (chars as u64).saturating_mul(4)
}

/// One action per attachment, in order. Images are taken first come first served within the
/// count, per-image and per-turn limits; text files share the character budget (each read up to
/// what the whole budget allows; the text budget itself is spent by what is actually read).
pub fn plan(attachments: &[&Attachment], vision: bool, limits: &Limits) -> Vec<Action> {
    let mut images = 0;
    let mut total: u64 = 0;
    let text_cap = text_bytes(limits.text_chars);
    attachments
        .iter()
        .map(|a| {
            let kind = classify(&a.filename, a.content_type.as_deref());
            match kind {
                Kind::Image(image) => {
                    if !vision {
                        return Action::Skip(kind, Skip::NoVision);
                    }
                    if a.size > limits.max_image_bytes {
                        return Action::Skip(
                            kind,
                            Skip::TooLarge {
                                max: limits.max_image_bytes,
                            },
                        );
                    }
                    if images >= limits.max_images {
                        return Action::Skip(kind, Skip::TooMany { max: limits.max_images });
                    }
                    if total + a.size > limits.max_total_bytes {
                        return Action::Skip(
                            kind,
                            Skip::OverTotal {
                                max: limits.max_total_bytes,
                            },
                        );
                    }
                    images += 1;
                    total += a.size;
                    Action::Image(image)
                }
                Kind::Text => {
                    if limits.text_chars == 0 {
                        return Action::Skip(kind, Skip::TextBudget { max: 0 });
                    }
                    let read = a.size.min(text_cap);
                    if total + read > limits.max_total_bytes {
                        return Action::Skip(
                            kind,
                            Skip::OverTotal {
                                max: limits.max_total_bytes,
                            },
                        );
                    }
                    total += read;
                    Action::Text { max_bytes: text_cap }
                }
                Kind::Other => Action::Mention,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, content_type: &str, size: u64) -> Attachment {
        Attachment {
            id: 1,
            filename: name.into(),
            url: format!("http://h/attachments/1/1/{name}"),
            proxy_url: String::new(),
            content_type: (!content_type.is_empty()).then(|| content_type.into()),
            size,
            width: None,
            height: None,
        }
    }

    fn limits() -> Limits {
        Limits {
            max_image_bytes: 1_000,
            max_images: 2,
            max_total_bytes: 2_000,
            text_chars: 100,
            ..Limits::default()
        }
    }

    #[test]
    fn images_within_every_limit_are_sent_the_rest_skipped_with_the_reason() {
        let files = [
            file("a.png", "image/png", 900),
            file("big.png", "image/png", 1_001),
            file("b.jpg", "image/jpeg", 900),
            file("c.webp", "image/webp", 10),
        ];
        let refs: Vec<&Attachment> = files.iter().collect();
        let png = Kind::Image(ImageType::Png);
        let webp = Kind::Image(ImageType::Webp);
        assert_eq!(
            plan(&refs, true, &limits()),
            vec![
                Action::Image(ImageType::Png),
                Action::Skip(png, Skip::TooLarge { max: 1_000 }),
                Action::Image(ImageType::Jpeg),
                Action::Skip(webp, Skip::TooMany { max: 2 }),
            ]
        );
    }

    #[test]
    fn no_vision_means_no_image_is_fetched() {
        let files = [file("a.png", "image/png", 10)];
        let refs: Vec<&Attachment> = files.iter().collect();
        assert_eq!(
            plan(&refs, false, &limits()),
            vec![Action::Skip(Kind::Image(ImageType::Png), Skip::NoVision)]
        );
    }

    #[test]
    fn the_turn_total_counts_images_and_text() {
        let files = [
            file("notes.txt", "text/plain", 5_000),
            file("a.png", "image/png", 900),
            file("b.png", "image/png", 900),
            file("zip.zip", "application/zip", 1_000_000),
            file("more.md", "", 300),
        ];
        let refs: Vec<&Attachment> = files.iter().collect();
        // The text file counts what is read of it (400 bytes for 100 characters), not its size.
        assert_eq!(
            plan(&refs, true, &limits()),
            vec![
                Action::Text { max_bytes: 400 },
                Action::Image(ImageType::Png),
                Action::Skip(Kind::Image(ImageType::Png), Skip::OverTotal { max: 2_000 }),
                Action::Mention,
                Action::Text { max_bytes: 400 },
            ]
        );
    }

    #[test]
    fn a_zero_text_budget_reads_no_file() {
        let files = [file("a.txt", "text/plain", 5)];
        let refs: Vec<&Attachment> = files.iter().collect();
        let l = Limits {
            text_chars: 0,
            ..limits()
        };
        assert_eq!(
            plan(&refs, true, &l),
            vec![Action::Skip(Kind::Text, Skip::TextBudget { max: 0 })]
        );
    }
}
