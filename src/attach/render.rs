//! What the model reads about each file, appended to the turn's text: an image shown, a text
//! file's content between markers, another file by name, type and size, and for anything not
//! given, why. Pure.

use super::kind::Kind;
use super::plan::Skip;
use crate::message::Attachment;

/// A byte count for people: `512 B`, `12.3 KB`, `4.0 MB` (powers of 1024).
pub fn size(bytes: u64) -> String {
    const KB: f64 = 1024.0;
    let b = bytes as f64;
    if b < KB {
        format!("{bytes} B")
    } else if b < KB * KB {
        format!("{:.1} KB", b / KB)
    } else {
        format!("{:.1} MB", b / (KB * KB))
    }
}

/// `name (type, W×H, size)`.
pub fn describe(a: &Attachment) -> String {
    let mut parts = vec![a.content_type.clone().unwrap_or_else(|| "unknown type".into())];
    if let (Some(w), Some(h)) = (a.width, a.height) {
        parts.push(format!("{w}×{h}"));
    }
    parts.push(size(a.size));
    format!("{} ({})", a.filename, parts.join(", "))
}

fn noun(kind: Kind) -> &'static str {
    match kind {
        Kind::Image(_) => "image",
        Kind::Text | Kind::Other => "file",
    }
}

/// Why a planned skip happened, as the model is told.
pub fn skip_reason(skip: Skip) -> String {
    match skip {
        Skip::NoVision => "this model cannot see images".into(),
        Skip::TooLarge { max } => format!("it is larger than the {} limit for images", size(max)),
        Skip::TooMany { max } => format!("only {max} images are shown per message"),
        Skip::OverTotal { max } => format!("the files of this message passed the {} limit", size(max)),
        Skip::TextBudget { max } => format!("the {max}-character budget for text files is spent"),
    }
}

/// An image given to the model with the turn.
pub fn image_shown(a: &Attachment) -> String {
    format!("[image attached: {}; you can see it]", describe(a))
}

/// A file attached but not given to the model, and why.
pub fn not_given(kind: Kind, a: &Attachment, why: &str) -> String {
    format!(
        "[{} attached: {}; not shown to you: {why}. Say so if it matters to your answer.]",
        noun(kind),
        describe(a)
    )
}

/// A file that is neither an image nor text.
pub fn mentioned(a: &Attachment) -> String {
    format!("[file attached: {}; its content is not available to you]", describe(a))
}

/// A text file's content, between markers naming it. `cut` says the text stops early and why.
pub fn text_inlined(a: &Attachment, text: &str, cut: Option<&str>) -> String {
    let end = match cut {
        Some(why) => format!("[end of {}: cut here, {why}]", a.filename),
        None => format!("[end of {}]", a.filename),
    };
    format!(
        "[text file attached: {}; its content follows]\n{text}\n{end}",
        describe(a)
    )
}

/// A file from an earlier turn, as memory keeps it (its content is not sent again).
pub fn earlier(a: &Attachment) -> String {
    format!("[attached earlier: {}]", describe(a))
}

/// `content` with the notes appended, one per line after a blank line.
pub fn with_notes(content: &str, notes: &[String]) -> String {
    if notes.is_empty() {
        return content.to_string();
    }
    let notes = notes.join("\n");
    if content.is_empty() {
        notes
    } else {
        format!("{content}\n\n{notes}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attach::kind::ImageType;

    fn cat() -> Attachment {
        Attachment {
            id: 1,
            filename: "cat.png".into(),
            url: "http://h/a/cat.png".into(),
            proxy_url: String::new(),
            content_type: Some("image/png".into()),
            size: 12_600,
            width: Some(640),
            height: Some(480),
        }
    }

    #[test]
    fn sizes_read_like_a_file_manager() {
        assert_eq!(size(512), "512 B");
        assert_eq!(size(12_600), "12.3 KB");
        assert_eq!(size(5 * 1024 * 1024), "5.0 MB");
    }

    #[test]
    fn the_model_is_told_what_it_got_and_what_not_and_why() {
        assert_eq!(describe(&cat()), "cat.png (image/png, 640×480, 12.3 KB)");
        assert_eq!(
            image_shown(&cat()),
            "[image attached: cat.png (image/png, 640×480, 12.3 KB); you can see it]"
        );
        let skipped = not_given(
            Kind::Image(ImageType::Png),
            &cat(),
            &skip_reason(Skip::TooLarge { max: 1024 * 1024 }),
        );
        assert!(skipped.starts_with("[image attached: cat.png"), "{skipped}");
        assert!(skipped.contains("larger than the 1.0 MB limit for images"), "{skipped}");
        let zip = Attachment {
            filename: "a.zip".into(),
            content_type: None,
            width: None,
            height: None,
            size: 3,
            ..cat()
        };
        assert_eq!(
            mentioned(&zip),
            "[file attached: a.zip (unknown type, 3 B); its content is not available to you]"
        );
    }

    #[test]
    fn text_is_framed_by_its_name() {
        let notes = Attachment {
            filename: "notes.md".into(),
            content_type: Some("text/markdown".into()),
            width: None,
            height: None,
            size: 5,
            ..cat()
        };
        assert_eq!(
            text_inlined(&notes, "hello", None),
            "[text file attached: notes.md (text/markdown, 5 B); its content follows]\nhello\n[end of notes.md]"
        );
        assert!(
            text_inlined(&notes, "he", Some("at the budget")).ends_with("[end of notes.md: cut here, at the budget]")
        );
        assert_eq!(with_notes("hi", &["a".into(), "b".into()]), "hi\n\na\nb");
        assert_eq!(with_notes("", &["a".into()]), "a");
        assert_eq!(with_notes("hi", &[]), "hi");
    }
}
