//! Settings written as one of a few words (`mode`, `memory`, `provider`, `on_trip`,
//! `on_truncation`, `max_tokens_param`, an echo backend's `reply`), turned into their enums in one
//! place: [`parse_enum`].
//!
//! The raw layer keeps these fields as `Spanned<String>` on purpose. Typed with serde
//! (`#[serde(rename_all = ...)]`), a wrong word would abort `toml::from_str` at the first one,
//! so the other problems of the file would go unreported, and serde's "unknown variant"
//! message carries neither the nearest word nor the agent's name. Parsed here, every wrong word
//! is reported with its line and field, next to every other problem, with a suggestion.

use toml::Spanned;

use super::error::closest;
use super::error::Report;

/// An enum a setting is written as: its words, in the order messages list them.
pub(crate) trait Choice: Copy + 'static {
    /// What the setting is called in messages (`unknown {WHAT} ...`).
    const WHAT: &'static str;
    /// Each word and the value it stands for.
    const WORDS: &'static [(&'static str, Self)];

    /// The fix a message ends with; by default `use "a", "b" or "c"`.
    fn fix() -> String {
        let quoted: Vec<String> = Self::WORDS.iter().map(|(w, _)| format!("\"{w}\"")).collect();
        match quoted.split_last() {
            Some((last, rest)) if !rest.is_empty() => format!("use {} or {last}", rest.join(", ")),
            Some((only, _)) => format!("use {only}"),
            None => String::new(),
        }
    }
}

/// The value `v` names, or `None` when it is absent or unknown (an unknown word is reported at
/// its line under `field`, with the nearest known word). `context` starts the message (e.g.
/// "agent `Ada`: "), or is empty.
pub(crate) fn parse_enum<T: Choice>(
    v: Option<&Spanned<String>>,
    field: String,
    context: &str,
    err: &mut Report<'_>,
) -> Option<T> {
    let v = v?;
    let word = v.get_ref().as_str();
    if let Some((_, value)) = T::WORDS.iter().find(|(w, _)| *w == word) {
        return Some(*value);
    }
    let hint = closest(word, T::WORDS.iter().map(|(w, _)| *w))
        .map(|c| format!("did you mean \"{c}\"? "))
        .unwrap_or_default();
    err(
        Some(v.span()),
        field,
        format!("{context}unknown {} `{word}`; {hint}{}", T::WHAT, T::fix()),
    );
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Light {
        Red,
        Green,
    }

    impl Choice for Light {
        const WHAT: &'static str = "light";
        const WORDS: &'static [(&'static str, Self)] = &[("red", Light::Red), ("green", Light::Green)];
    }

    fn parse(text: &str) -> (Option<Light>, Vec<String>) {
        #[derive(serde::Deserialize)]
        struct File {
            light: Spanned<String>,
        }
        let file: File = toml::from_str(text).unwrap();
        let mut problems = Vec::new();
        let mut err = |span: Option<std::ops::Range<usize>>, field: String, message: String| {
            problems.push(format!("{:?} {field}: {message}", span.map(|s| s.start)));
        };
        (parse_enum(Some(&file.light), "light".into(), "", &mut err), problems)
    }

    #[test]
    fn known_words_are_their_values() {
        assert_eq!(parse("light = \"green\""), (Some(Light::Green), vec![]));
        assert_eq!(
            parse_enum::<Light>(None, "light".into(), "", &mut |_, _, _| panic!()),
            None
        );
    }

    #[test]
    fn unknown_words_are_reported_at_their_place_with_the_nearest() {
        let (value, problems) = parse("light = \"gren\"");
        assert_eq!(value, None);
        assert_eq!(
            problems,
            ["Some(8) light: unknown light `gren`; did you mean \"green\"? use \"red\" or \"green\""]
        );
        let (_, problems) = parse("light = \"blue-ish\"");
        assert_eq!(
            problems,
            ["Some(8) light: unknown light `blue-ish`; use \"red\" or \"green\""]
        );
    }
}
