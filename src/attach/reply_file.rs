//! `long_replies = "file"`: a reply whose code block is too long for a few messages goes out as
//! one message with the block attached as a file, instead of many parts. Pure.

use super::{LongReplies, Settings};

/// A reply with its code block as a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyFile {
    /// The message's text: the prose around the block, and where the code went.
    pub text: String,
    /// The file name (`reply.rs` from a ```rust fence; `reply.txt` without a language).
    pub filename: String,
    /// The block's content, without its fences.
    pub content: String,
}

/// Longest message text kept beside the file; more prose than this is split as usual.
const MESSAGE_LIMIT: usize = 1_800;

/// The reply as a file, when the settings ask for it and `text` holds exactly one fenced code
/// block longer than the threshold (prose before and after it is kept in the message).
pub fn as_file(text: &str, settings: &Settings) -> Option<ReplyFile> {
    if settings.long_replies != LongReplies::File || text.matches("```").count() != 2 {
        return None;
    }
    let open = text.find("```")?;
    let after_open = &text[open + 3..];
    let line_end = after_open.find('\n')?;
    let lang = after_open[..line_end].trim();
    let body = &after_open[line_end + 1..];
    let close = body.find("```")?;
    let content = body[..close].to_string();
    if content.chars().count() <= settings.long_reply_chars {
        return None;
    }
    let before = text[..open].trim_end();
    let after = body[close + 3..].trim_start();
    let filename = format!("reply.{}", extension(lang));
    let lines = content.lines().count();
    let mut message = String::new();
    if !before.is_empty() {
        message.push_str(before);
        message.push_str("\n\n");
    }
    message.push_str(&format!("(the code is attached as `{filename}`, {lines} lines)"));
    if !after.is_empty() {
        message.push_str("\n\n");
        message.push_str(after);
    }
    (message.chars().count() <= MESSAGE_LIMIT).then_some(ReplyFile {
        text: message,
        filename,
        content,
    })
}

/// A file extension for a fence's language: common names mapped, a plain word kept, `txt`
/// otherwise (never anything that could be a path).
fn extension(lang: &str) -> String {
    let lang = lang.to_ascii_lowercase();
    let mapped = match lang.as_str() {
        "rust" => "rs",
        "python" => "py",
        "javascript" => "js",
        "typescript" => "ts",
        "shell" | "bash" | "sh" | "zsh" => "sh",
        "markdown" => "md",
        "c++" | "cpp" => "cpp",
        "c#" | "csharp" => "cs",
        "golang" => "go",
        "yaml" => "yaml",
        "ruby" => "rb",
        "kotlin" => "kt",
        other => other,
    };
    if !mapped.is_empty() && mapped.len() <= 10 && mapped.chars().all(|c| c.is_ascii_alphanumeric()) {
        mapped.to_string()
    } else {
        "txt".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_mode(threshold: usize) -> Settings {
        Settings {
            long_replies: LongReplies::File,
            long_reply_chars: threshold,
            ..Settings::default()
        }
    }

    #[test]
    fn one_long_code_block_becomes_a_file_with_the_prose_kept() {
        let code = "fn main() {}\n".repeat(10);
        let reply = format!("Here it is:\n```rust\n{code}```\nRun it with cargo.");
        let f = as_file(&reply, &file_mode(50)).unwrap();
        assert_eq!(f.filename, "reply.rs");
        assert_eq!(f.content, code);
        assert_eq!(
            f.text,
            "Here it is:\n\n(the code is attached as `reply.rs`, 10 lines)\n\nRun it with cargo."
        );
    }

    #[test]
    fn otherwise_the_reply_is_split_as_usual() {
        let code = "x\n".repeat(100);
        let one = format!("```\n{code}```");
        assert_eq!(as_file(&one, &file_mode(50)).unwrap().filename, "reply.txt");
        // Split mode, a short block, two blocks, an unclosed fence.
        assert!(as_file(&one, &Settings::default()).is_none());
        assert!(as_file(&one, &file_mode(1_000)).is_none());
        assert!(as_file(&format!("{one}\n{one}"), &file_mode(50)).is_none());
        assert!(as_file(&format!("```\n{code}"), &file_mode(50)).is_none());
        // Too much prose for one message beside the file.
        let prose = "word ".repeat(400);
        assert!(as_file(&format!("{prose}\n{one}"), &file_mode(50)).is_none());
    }

    #[test]
    fn odd_languages_never_make_odd_file_names() {
        assert_eq!(extension("Python"), "py");
        assert_eq!(extension("../../etc"), "txt");
        assert_eq!(extension(""), "txt");
        assert_eq!(extension("toml"), "toml");
    }
}
