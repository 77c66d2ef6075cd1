//! Mentions: `<@id>`, `<@&id>`, `@everyone` and `@here` found in content, and Discord's
//! `allowed_mentions` saying which of them ping.

use serde_json::Value;

/// Mentions written in a message's content.
#[derive(Debug, Default, PartialEq)]
pub(super) struct ParsedMentions {
    pub(super) users: Vec<u64>,
    pub(super) roles: Vec<u64>,
    pub(super) everyone: bool,
}

/// Finds `<@id>`, `<@!id>`, `<@&id>`, `@everyone` and `@here` in content.
pub(super) fn parse_mentions(content: &str) -> ParsedMentions {
    let mut out = ParsedMentions {
        everyone: content.contains("@everyone") || content.contains("@here"),
        ..Default::default()
    };
    let mut rest = content;
    while let Some(start) = rest.find("<@") {
        rest = &rest[start + 2..];
        let (is_role, body) = match rest.as_bytes().first() {
            Some(b'&') => (true, &rest[1..]),
            Some(b'!') => (false, &rest[1..]),
            _ => (false, rest),
        };
        let digits = body.bytes().take_while(u8::is_ascii_digit).count();
        if digits > 0 && body.as_bytes().get(digits) == Some(&b'>') {
            if let Ok(id) = body[..digits].parse::<u64>() {
                let list = if is_role { &mut out.roles } else { &mut out.users };
                if !list.contains(&id) {
                    list.push(id);
                }
            }
        }
    }
    out
}

/// Discord's `allowed_mentions`, resolved to yes/no questions.
pub(super) struct AllowedMentions {
    parse_users: bool,
    parse_roles: bool,
    pub(super) everyone: bool,
    users: Vec<u64>,
    roles: Vec<u64>,
    pub(super) replied_user: bool,
}

impl AllowedMentions {
    pub(super) fn from_json(v: Option<&Value>) -> Self {
        let Some(v) = v else {
            return Self {
                parse_users: true,
                parse_roles: true,
                everyone: true,
                users: vec![],
                roles: vec![],
                replied_user: true,
            };
        };
        let parse: Vec<&str> = v
            .get("parse")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let ids = |key: &str| -> Vec<u64> {
            v.get(key)
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str().and_then(|s| s.parse().ok()).or_else(|| x.as_u64()))
                        .collect()
                })
                .unwrap_or_default()
        };
        Self {
            parse_users: parse.contains(&"users"),
            parse_roles: parse.contains(&"roles"),
            everyone: parse.contains(&"everyone"),
            users: ids("users"),
            roles: ids("roles"),
            replied_user: v.get("replied_user").and_then(Value::as_bool).unwrap_or(false),
        }
    }

    pub(super) fn user(&self, id: u64) -> bool {
        self.parse_users || self.users.contains(&id)
    }

    pub(super) fn role(&self, id: u64) -> bool {
        self.parse_roles || self.roles.contains(&id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mentions_are_parsed() {
        let p = parse_mentions("hi <@12> <@!34> <@&56> <@x> <@ 7> @here");
        assert_eq!(
            p,
            ParsedMentions {
                users: vec![12, 34],
                roles: vec![56],
                everyone: true
            }
        );
    }
}
