//! Configuration errors that name the file, the line, the field and the fix.

use std::fmt;
use std::ops::Range;

/// Reports one problem: byte span in the file, dotted field, message. Each table's validator
/// takes one, so that every problem of the file is collected before any is shown.
pub(crate) type Report<'a> = dyn FnMut(Option<Range<usize>>, String, String) + 'a;

/// A problem with the configuration. `Display` reads `FILE:LINE: FIELD: problem; fix`.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigError {
    /// File (path or URL) the configuration came from.
    pub source: String,
    /// 1-based line, when the problem has a place in the file.
    pub line: Option<usize>,
    /// Dotted field path, e.g. `agents[1].memory`.
    pub field: Option<String>,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl ConfigError {
    /// An error with no place in the file (e.g. the file is missing).
    pub fn whole(source: &str, message: impl Into<String>) -> Self {
        Self {
            source: source.to_string(),
            line: None,
            field: None,
            message: message.into(),
        }
    }

    /// An error at a byte span of the file text.
    pub fn at(
        source: &str,
        text: &str,
        span: Option<Range<usize>>,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            source: source.to_string(),
            line: span.map(|s| line_of(text, s.start)),
            field: Some(field.into()).filter(|f: &String| !f.is_empty()),
            message: message.into(),
        }
    }
}

/// 1-based line number of a byte offset.
pub fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end].iter().filter(|b| **b == b'\n').count() + 1
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.source)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        write!(f, ": ")?;
        if let Some(field) = &self.field {
            write!(f, "{field}: ")?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Several problems found at once, so one run shows them all.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// For serde's "unknown field `x`, expected one of `a`, `b`": the closest expected name.
pub fn suggest_field(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    let (unknown, expected) = rest.split_once('`')?;
    let expected = expected.split_once("expected")?.1;
    let candidates = expected.split('`').skip(1).step_by(2);
    closest(unknown, candidates)
}

/// The candidate nearest to `word` by edit distance, if it is plausibly a typo of it.
pub fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<String> {
    candidates
        .into_iter()
        .map(|c| (strsim::damerau_levenshtein(word, c), c))
        .filter(|(d, c)| *d <= (c.len().max(word.len()) / 3).max(2))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_the_nearest_field() {
        let m = "unknown field `sytem_prompt`, expected one of `name`, `backend`, `system_prompt`, `memory`";
        assert_eq!(suggest_field(m).as_deref(), Some("system_prompt"));
        assert_eq!(suggest_field("unknown field `zzzzzzzz`, expected `name`"), None);
        assert_eq!(suggest_field("missing field `name`"), None);
    }

    #[test]
    fn display_names_file_line_and_field() {
        let text = "a = 1\nb = 2\n";
        let e = ConfigError::at("agents.toml", text, Some(6..7), "b", "bad; fix it");
        assert_eq!(e.to_string(), "agents.toml:2: b: bad; fix it");
    }
}
