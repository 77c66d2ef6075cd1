//! An agent's `shards = "auto" | N`: how many gateway shards its bot runs, validated.

use toml::Spanned;

use super::error::Report;

/// The most shards one agent may run. serenity 0.12 starts one shard every 5 seconds, so 256
/// shards take over 20 minutes to come up; a bot that needs more (over 250,000 guilds at
/// Discord's 1,000 per shard) should be split across processes, which troupe does not do.
pub const MAX_SHARDS: u32 = 256;

/// How many gateway shards an agent's bot runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shards {
    /// The count Discord recommends in `GET /gateway/bot`, read at each (re)connect.
    Auto,
    /// This many, 1 to [`MAX_SHARDS`].
    Fixed(u32),
}

/// One shard, the default: one session receives every guild and the DMs.
impl Default for Shards {
    fn default() -> Self {
        Shards::Fixed(1)
    }
}

impl std::fmt::Display for Shards {
    /// As written in `agents.toml`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Shards::Auto => f.write_str("\"auto\""),
            Shards::Fixed(n) => write!(f, "{n}"),
        }
    }
}

/// `shards` on an agent: absent or 1 is one shard, `"auto"` is Discord's recommended count,
/// else 1 to [`MAX_SHARDS`]. Anything else is reported on `field` and one shard is used.
pub(crate) fn shards(v: Option<&Spanned<toml::Value>>, name: &str, field: &str, err: &mut Report<'_>) -> Shards {
    let Some(v) = v else { return Shards::default() };
    let fix = format!("use \"auto\" (the count Discord recommends) or a number of shards from 1 to {MAX_SHARDS}");
    match v.get_ref() {
        toml::Value::String(s) if s == "auto" => Shards::Auto,
        toml::Value::Integer(n) if (1..=i64::from(MAX_SHARDS)).contains(n) => Shards::Fixed(*n as u32),
        other => {
            let shown = match other {
                toml::Value::String(s) => format!("\"{s}\""),
                toml::Value::Integer(n) => n.to_string(),
                toml::Value::Float(f) => f.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                v => format!("a {}", v.type_str()),
            };
            err(
                Some(v.span()),
                field.to_string(),
                format!("agent `{name}`: shards = {shown} is not valid; {fix}"),
            );
            Shards::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str) -> (Shards, Vec<String>) {
        #[derive(serde::Deserialize)]
        struct Doc {
            shards: Option<Spanned<toml::Value>>,
        }
        let doc: Doc = toml::from_str(text).expect("toml");
        let mut problems = Vec::new();
        let mut report = |_span: Option<std::ops::Range<usize>>, field: String, message: String| {
            problems.push(format!("{field}: {message}"))
        };
        let s = shards(doc.shards.as_ref(), "Ada", "agents[0].shards", &mut report);
        (s, problems)
    }

    #[test]
    fn absent_or_one_is_one_shard_and_auto_and_counts_are_read() {
        assert_eq!(check(""), (Shards::Fixed(1), vec![]));
        assert_eq!(check("shards = 1"), (Shards::Fixed(1), vec![]));
        assert_eq!(check("shards = 4"), (Shards::Fixed(4), vec![]));
        assert_eq!(check("shards = 256"), (Shards::Fixed(256), vec![]));
        assert_eq!(check("shards = \"auto\""), (Shards::Auto, vec![]));
    }

    #[test]
    fn bad_counts_and_words_are_reported_with_the_fix() {
        for bad in [
            "shards = 0",
            "shards = -2",
            "shards = 257",
            "shards = \"many\"",
            "shards = 2.5",
            "shards = \"4\"",
        ] {
            let (s, problems) = check(bad);
            assert_eq!(s, Shards::default(), "{bad}");
            assert_eq!(problems.len(), 1, "{bad}");
            assert!(
                problems[0].starts_with("agents[0].shards: agent `Ada`: shards = "),
                "{}",
                problems[0]
            );
            assert!(problems[0].contains("use \"auto\""), "{}", problems[0]);
            assert!(problems[0].contains("from 1 to 256"), "{}", problems[0]);
        }
    }
}
