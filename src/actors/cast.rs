//! [`Cast`]: the Discord IDs of this troupe's agents, and their names, learned as they connect.
//! Replies may ping these IDs (so agents can address each other) and nobody else. The names make
//! mentions readable both ways: a prompt shows `@Basil` where Discord sent `<@id>`, and an agent
//! that writes `@Basil` addresses Basil.

use std::collections::{HashMap, HashSet};
use std::sync::RwLock;

/// The troupe's agents as Discord knows them.
#[derive(Debug, Default)]
pub struct Cast {
    ids: RwLock<HashSet<u64>>,
    /// Bot user IDs by agent name (webhooks are not mentionable).
    users: RwLock<HashMap<String, u64>>,
}

impl Cast {
    /// Adds an agent's bot user or webhook ID.
    pub fn add(&self, id: u64) {
        self.ids.write().expect("cast lock").insert(id);
    }

    /// Adds an agent's bot user, which mentions of `name` address.
    pub fn add_user(&self, id: u64, name: &str) {
        self.add(id);
        self.users.write().expect("cast lock").insert(name.to_string(), id);
    }

    /// Whether an ID belongs to one of this troupe's agents.
    pub fn contains(&self, id: u64) -> bool {
        self.ids.read().expect("cast lock").contains(&id)
    }

    /// `text` with mentions of agents (`<@id>`, `<@!id>`) written as `@Name`, for the model.
    /// Other mentions are left as they are.
    pub fn readable(&self, text: &str) -> String {
        let users = self.users.read().expect("cast lock");
        if users.is_empty() || !text.contains("<@") {
            return text.to_string();
        }
        let names: HashMap<u64, &str> = users.iter().map(|(n, id)| (*id, n.as_str())).collect();
        crate::message::readable_mentions(text, |id| names.get(&id).map(|n| n.to_string()))
    }

    /// `text` with `@Name` of another agent (not one of `me`) written as its mention, so the
    /// reply can ping it (within [`crate::actors::turn::allowed_users`]'s rules). A name counts
    /// only as a whole word (`@Basil,` does, `@Basilica` does not), and never inside code.
    pub fn mentions(&self, text: &str, me: &[u64]) -> String {
        let users = self.users.read().expect("cast lock");
        let mut out = text.to_string();
        for (name, id) in users.iter().filter(|(_, id)| !me.contains(id)) {
            let pattern = format!("@{name}");
            let mut from = 0;
            while let Some(found) = out[from..].find(&pattern).map(|i| i + from) {
                let end = found + pattern.len();
                let before_ok = out[..found]
                    .chars()
                    .next_back()
                    .is_none_or(|c| !c.is_alphanumeric() && c != '<');
                let after_ok = out[end..]
                    .chars()
                    .next()
                    .is_none_or(|c| !c.is_alphanumeric() && c != '_');
                // Inside code (an odd number of backticks before it) Discord shows `<@id>` as is.
                let in_code = out[..found].matches('`').count() % 2 == 1;
                if before_ok && after_ok && !in_code {
                    let mention = format!("<@{id}>");
                    out.replace_range(found..end, &mention);
                    from = found + mention.len();
                } else {
                    from = end;
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cast() -> Cast {
        let cast = Cast::default();
        cast.add_user(1, "Ada");
        cast.add_user(2, "Basil");
        cast.add(99);
        cast
    }

    #[test]
    fn agent_mentions_are_readable_in_prompts() {
        let c = cast();
        assert_eq!(c.readable("<@1> and <@!2>, hi"), "@Ada and @Basil, hi");
        assert_eq!(c.readable("<@3> <@&1> <@1x> <@"), "<@3> <@&1> <@1x> <@");
        assert_eq!(c.readable("no mentions"), "no mentions");
        assert!(c.contains(99) && c.contains(1));
    }

    #[test]
    fn an_agent_writing_a_name_addresses_that_agent_but_never_itself() {
        let c = cast();
        assert_eq!(
            c.mentions("@Basil, what do you think?", &[1]),
            "<@2>, what do you think?"
        );
        assert_eq!(c.mentions("Thanks @Ada and @Basil.", &[1]), "Thanks @Ada and <@2>.");
        assert_eq!(
            c.mentions("@Basilica x@Basil @Basil_", &[1]),
            "@Basilica x@Basil @Basil_"
        );
        assert_eq!(c.mentions("`@Basil` @Basil", &[]), "`@Basil` <@2>");
        assert_eq!(c.mentions("```\n@Basil\n``` @Basil", &[]), "```\n@Basil\n``` <@2>");
        // Round trip: what the model wrote comes back as it was.
        assert_eq!(c.readable(&c.mentions("hey @Basil!", &[1])), "hey @Basil!");
    }
}
