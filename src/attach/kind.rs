//! What an attachment is: an image a vision model can take (png, jpeg, webp, a still gif), a
//! text file to inline (by extension or media type), or something else. Pure.
//!
//! The declared kind (file name, Discord's `content_type`) decides what is fetched; the bytes
//! fetched must then agree ([`sniff_image`], [`looks_like_text`]), so a renamed file is not sent
//! to a model as something it is not.

/// Image formats both providers accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageType {
    /// PNG.
    Png,
    /// JPEG.
    Jpeg,
    /// WebP.
    Webp,
    /// GIF (only a still one is sent).
    Gif,
}

impl ImageType {
    /// Its media type.
    pub fn mime(self) -> &'static str {
        match self {
            ImageType::Png => "image/png",
            ImageType::Jpeg => "image/jpeg",
            ImageType::Webp => "image/webp",
            ImageType::Gif => "image/gif",
        }
    }

    fn from_mime(mime: &str) -> Option<Self> {
        match mime {
            "image/png" => Some(ImageType::Png),
            "image/jpeg" | "image/jpg" => Some(ImageType::Jpeg),
            "image/webp" => Some(ImageType::Webp),
            "image/gif" => Some(ImageType::Gif),
            _ => None,
        }
    }

    fn from_extension(ext: &str) -> Option<Self> {
        match ext {
            "png" => Some(ImageType::Png),
            "jpg" | "jpeg" => Some(ImageType::Jpeg),
            "webp" => Some(ImageType::Webp),
            "gif" => Some(ImageType::Gif),
            _ => None,
        }
    }
}

/// What an attachment declares itself to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An image in a format models take.
    Image(ImageType),
    /// A text file (prose, data, source code).
    Text,
    /// Anything else: mentioned by name, type and size only.
    Other,
}

/// Extensions read as text: prose, data and source code.
const TEXT_EXTENSIONS: &[&str] = &[
    "txt",
    "md",
    "markdown",
    "rst",
    "csv",
    "tsv",
    "json",
    "jsonl",
    "ndjson",
    "yaml",
    "yml",
    "toml",
    "ini",
    "cfg",
    "conf",
    "xml",
    "html",
    "htm",
    "css",
    "log",
    "sql",
    "rs",
    "py",
    "js",
    "mjs",
    "cjs",
    "ts",
    "tsx",
    "jsx",
    "go",
    "java",
    "kt",
    "kts",
    "c",
    "h",
    "cc",
    "cpp",
    "hpp",
    "cs",
    "rb",
    "php",
    "swift",
    "scala",
    "sh",
    "bash",
    "zsh",
    "fish",
    "ps1",
    "lua",
    "pl",
    "r",
    "hs",
    "ml",
    "ex",
    "exs",
    "erl",
    "clj",
    "dart",
    "zig",
    "nim",
    "vue",
    "svelte",
    "tex",
    "diff",
    "patch",
    "proto",
    "graphql",
    "dockerfile",
    "makefile",
    "gradle",
];

/// The media type without parameters, lower-cased (`text/plain; charset=utf-8` → `text/plain`).
pub fn essence(content_type: &str) -> String {
    content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase()
}

fn extension(filename: &str) -> Option<String> {
    let lower = filename.to_ascii_lowercase();
    match lower.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => Some(ext.to_string()),
        // `Makefile`, `Dockerfile`: the name is the type.
        _ => Some(lower),
    }
}

fn text_mime(mime: &str) -> bool {
    mime.starts_with("text/")
        || matches!(
            mime,
            "application/json"
                | "application/x-ndjson"
                | "application/xml"
                | "application/yaml"
                | "application/x-yaml"
                | "application/toml"
                | "application/javascript"
                | "application/x-sh"
                | "application/sql"
        )
}

/// What a file declares itself to be, from its media type (when it names an image or text) or
/// else its extension.
pub fn classify(filename: &str, content_type: Option<&str>) -> Kind {
    let mime = content_type.map(essence).unwrap_or_default();
    if let Some(image) = ImageType::from_mime(&mime) {
        return Kind::Image(image);
    }
    if text_mime(&mime) {
        return Kind::Text;
    }
    let ext = extension(filename).unwrap_or_default();
    // A declared type that is neither image nor text (a zip, a pdf) is believed over the name,
    // except the generic ones clients send for anything.
    let generic = mime.is_empty() || mime == "application/octet-stream";
    if generic {
        if let Some(image) = ImageType::from_extension(&ext) {
            return Kind::Image(image);
        }
        if TEXT_EXTENSIONS.contains(&ext.as_str()) {
            return Kind::Text;
        }
    }
    Kind::Other
}

/// The image format the bytes actually are, from their signature.
pub fn sniff_image(bytes: &[u8]) -> Option<ImageType> {
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some(ImageType::Png)
    } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some(ImageType::Jpeg)
    } else if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        Some(ImageType::Webp)
    } else if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
        Some(ImageType::Gif)
    } else {
        None
    }
}

/// True for a GIF with more than one frame, or with the looping extension animated GIFs carry.
/// Counting frames walks the block structure; a malformed file counts as animated (not sent).
pub fn is_animated_gif(bytes: &[u8]) -> bool {
    gif_frames(bytes).is_none_or(|frames| frames > 1)
}

/// Frames of a GIF, or `None` if its blocks do not parse.
fn gif_frames(b: &[u8]) -> Option<usize> {
    if b.len() < 13 {
        return None;
    }
    let flags = b[10];
    let mut at = 13;
    if flags & 0x80 != 0 {
        at += 3 * (1usize << ((flags & 0x07) + 1));
    }
    let mut frames = 0;
    loop {
        match *b.get(at)? {
            // Trailer.
            0x3B => return Some(frames),
            // Extension: label, then sub-blocks. NETSCAPE2.0 means it loops.
            0x21 => {
                let label = *b.get(at + 1)?;
                if label == 0xFF && b.get(at + 3..at + 14) == Some(b"NETSCAPE2.0".as_slice()) {
                    return Some(usize::MAX);
                }
                at = skip_sub_blocks(b, at + 2)?;
            }
            // Image descriptor, optional local colour table, LZW minimum size, sub-blocks.
            0x2C => {
                frames += 1;
                if frames > 1 {
                    return Some(frames);
                }
                let flags = *b.get(at + 9)?;
                at += 10;
                if flags & 0x80 != 0 {
                    at += 3 * (1usize << ((flags & 0x07) + 1));
                }
                at = skip_sub_blocks(b, at + 1)?;
            }
            _ => return None,
        }
    }
}

fn skip_sub_blocks(b: &[u8], mut at: usize) -> Option<usize> {
    loop {
        let len = *b.get(at)? as usize;
        at += 1;
        if len == 0 {
            return Some(at);
        }
        at += len;
    }
}

/// True when fetched bytes can be inlined as text: no NUL bytes (binary files have them early).
pub fn looks_like_text(bytes: &[u8]) -> bool {
    !bytes.iter().take(8192).any(|&b| b == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 1×1 GIF with `frames` image blocks.
    pub(crate) fn gif(frames: usize, looping: bool) -> Vec<u8> {
        let mut b = b"GIF89a\x01\x00\x01\x00\x80\x00\x00".to_vec();
        b.extend_from_slice(&[0, 0, 0, 255, 255, 255]);
        if looping {
            b.extend_from_slice(b"\x21\xFF\x0BNETSCAPE2.0\x03\x01\x00\x00\x00");
        }
        for _ in 0..frames {
            b.extend_from_slice(&[0x2C, 0, 0, 0, 0, 1, 0, 1, 0, 0]);
            b.extend_from_slice(&[0x02, 0x02, 0x44, 0x01, 0x00]);
        }
        b.push(0x3B);
        b
    }

    #[test]
    fn images_by_type_or_by_extension_when_the_type_is_generic() {
        assert_eq!(classify("a.bin", Some("image/png")), Kind::Image(ImageType::Png));
        assert_eq!(classify("a.JPG", None), Kind::Image(ImageType::Jpeg));
        assert_eq!(
            classify("a.webp", Some("application/octet-stream")),
            Kind::Image(ImageType::Webp)
        );
        assert_eq!(classify("a.gif", Some("image/gif")), Kind::Image(ImageType::Gif));
        // Formats models do not take are other files.
        assert_eq!(classify("a.bmp", Some("image/bmp")), Kind::Other);
        assert_eq!(classify("a.svg", Some("image/svg+xml")), Kind::Other);
        // A declared type that is specific wins over the name.
        assert_eq!(classify("a.png", Some("application/zip")), Kind::Other);
    }

    #[test]
    fn text_by_type_or_extension() {
        assert_eq!(classify("notes", Some("text/plain; charset=utf-8")), Kind::Text);
        assert_eq!(classify("data.json", Some("application/json")), Kind::Text);
        assert_eq!(classify("main.rs", None), Kind::Text);
        assert_eq!(classify("table.CSV", Some("application/octet-stream")), Kind::Text);
        assert_eq!(classify("Makefile", None), Kind::Text);
        assert_eq!(classify("archive.zip", Some("application/zip")), Kind::Other);
        assert_eq!(classify("noext", None), Kind::Other);
        assert_eq!(classify(".rs", None), Kind::Other);
    }

    #[test]
    fn bytes_are_recognised_by_signature() {
        assert_eq!(sniff_image(b"\x89PNG\r\n\x1a\n...."), Some(ImageType::Png));
        assert_eq!(sniff_image(&[0xFF, 0xD8, 0xFF, 0xE0]), Some(ImageType::Jpeg));
        assert_eq!(sniff_image(b"RIFF\x00\x00\x00\x00WEBPVP8 "), Some(ImageType::Webp));
        assert_eq!(sniff_image(b"GIF89a......"), Some(ImageType::Gif));
        assert_eq!(sniff_image(b"<html>"), None);
        assert_eq!(sniff_image(b""), None);
    }

    #[test]
    fn only_a_still_gif_is_not_animated() {
        assert!(!is_animated_gif(&gif(1, false)));
        assert!(is_animated_gif(&gif(2, false)));
        assert!(is_animated_gif(&gif(1, true)));
        assert!(is_animated_gif(b"GIF89a"), "malformed counts as animated");
        let mut cut = gif(1, false);
        cut.truncate(cut.len() - 4);
        assert!(is_animated_gif(&cut));
    }

    #[test]
    fn binary_is_not_text() {
        assert!(looks_like_text("héllo, wörld\n".as_bytes()));
        assert!(!looks_like_text(b"PK\x03\x04\x00\x00"));
    }
}
