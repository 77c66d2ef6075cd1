//! The command objects each agent's bot registers (Discord's application command JSON), and the
//! semantic comparison that lets a restart skip the bulk overwrite when Discord already has
//! them: ids, versions, localizations and defaults Discord fills in are ignored.

use serde_json::{json, Map, Value};

use super::{MANAGE_CHANNELS, MANAGE_GUILD};

/// CHAT_INPUT option type STRING.
const STRING: u64 = 3;
/// CHAT_INPUT option type INTEGER.
const INTEGER: u64 = 4;
/// CHAT_INPUT option type USER.
const USER: u64 = 6;

/// Where the commands are registered: `contexts` apply only to global commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// One guild's commands.
    Guild,
    /// Global commands (also usable in the bot's DMs).
    Global,
}

/// The commands, as sent in the bulk overwrite (`PUT .../commands`).
pub fn definitions(scope: Scope) -> Vec<Value> {
    let everyone = |name: &str, description: &str| {
        let mut c = json!({"type": 1, "name": name, "description": description});
        if scope == Scope::Global {
            // GUILD and BOT_DM.
            c["contexts"] = json!([0, 1]);
        }
        c
    };
    let moderators = |name: &str, description: &str, permission: u64| {
        let mut c = json!({
            "type": 1,
            "name": name,
            "description": description,
            "default_member_permissions": permission.to_string(),
        });
        if scope == Scope::Global {
            c["contexts"] = json!([0]);
        }
        c
    };
    let mut forget = everyone(
        "forget-me",
        "Delete everything remembered about you (this agent, or every agent)",
    );
    forget["options"] = json!([{
        "type": STRING,
        "name": "scope",
        "description": "Which agents forget you (default: this agent)",
        "choices": [
            {"name": "this agent", "value": "agent"},
            {"name": "every agent", "value": "all"},
        ],
    }]);
    let mut budget = moderators(
        "budget",
        "See or set a user's token budget with this agent",
        MANAGE_GUILD,
    );
    budget["options"] = json!([
        {"type": USER, "name": "user", "description": "Whose budget", "required": true},
        {"type": INTEGER, "name": "tokens", "description": "New limit in tokens (0 returns to the configured one)", "min_value": 0},
    ]);
    vec![
        everyone("reset", "Forget your conversation with this agent"),
        forget,
        everyone("agents", "The cast: each agent's persona, backend and model"),
        everyone(
            "usage",
            "Tokens spent by you, in this channel and by this agent, against the budgets",
        ),
        moderators("pause", "Silence this agent in this channel", MANAGE_CHANNELS),
        moderators("resume", "Let this agent answer in this channel again", MANAGE_CHANNELS),
        budget,
    ]
}

/// Whether the commands Discord has (`existing`, as `GET .../commands` returns them) are the
/// ones troupe would register: same commands, fields and options, whatever their order.
pub fn unchanged(existing: &[Value], wanted: &[Value]) -> bool {
    let mut a: Vec<Value> = existing.iter().map(normalise_command).collect();
    let mut b: Vec<Value> = wanted.iter().map(normalise_command).collect();
    let key = |v: &Value| (v["type"].as_u64(), v["name"].as_str().map(str::to_string));
    a.sort_by_key(key);
    b.sort_by_key(key);
    a == b
}

/// What of a command matters: type, name, description, options, permissions, contexts, nsfw;
/// Discord's defaults written out, so an omitted field equals its default.
fn normalise_command(c: &Value) -> Value {
    let mut out = Map::new();
    out.insert("type".into(), json!(c["type"].as_u64().unwrap_or(1)));
    out.insert("name".into(), c["name"].clone());
    out.insert("description".into(), json!(c["description"].as_str().unwrap_or("")));
    out.insert("options".into(), normalise_options(&c["options"]));
    let permissions = match &c["default_member_permissions"] {
        Value::String(s) => json!(s),
        Value::Number(n) => json!(n.to_string()),
        _ => Value::Null,
    };
    out.insert("default_member_permissions".into(), permissions);
    out.insert("nsfw".into(), json!(c["nsfw"].as_bool().unwrap_or(false)));
    let mut contexts: Vec<u64> = c["contexts"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_u64).collect())
        .unwrap_or_default();
    contexts.sort_unstable();
    out.insert("contexts".into(), json!(contexts));
    Value::Object(out)
}

fn normalise_options(options: &Value) -> Value {
    let Some(options) = options.as_array() else {
        return json!([]);
    };
    let number = |v: &Value| v.as_f64().map_or(Value::Null, |f| json!(f));
    let all = options
        .iter()
        .map(|o| {
            let choices: Vec<Value> = o["choices"]
                .as_array()
                .map(|cs| {
                    cs.iter()
                        .map(|c| json!({"name": c["name"], "value": c["value"]}))
                        .collect()
                })
                .unwrap_or_default();
            json!({
                "type": o["type"],
                "name": o["name"],
                "description": o["description"].as_str().unwrap_or(""),
                "required": o["required"].as_bool().unwrap_or(false),
                "autocomplete": o["autocomplete"].as_bool().unwrap_or(false),
                "choices": choices,
                "min_value": number(&o["min_value"]),
                "max_value": number(&o["max_value"]),
                "min_length": o["min_length"],
                "max_length": o["max_length"],
                "channel_types": o["channel_types"],
                "options": normalise_options(&o["options"]),
            })
        })
        .collect();
    Value::Array(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What Discord returns for a registered command: ids, version, defaults filled in.
    fn as_returned(c: &Value) -> Value {
        let mut v = c.clone();
        v["id"] = json!("1234");
        v["application_id"] = json!("99");
        v["version"] = json!("5678");
        v["name_localizations"] = Value::Null;
        v["description_localizations"] = Value::Null;
        v["nsfw"] = json!(false);
        v["integration_types"] = json!([0]);
        if v.get("default_member_permissions").is_none() {
            v["default_member_permissions"] = Value::Null;
        }
        if let Some(options) = v["options"].as_array_mut() {
            for o in options {
                if o.get("required").is_none() {
                    o["required"] = json!(false);
                }
            }
        }
        v
    }

    #[test]
    fn what_discord_returns_for_the_same_commands_is_unchanged_in_any_order() {
        for scope in [Scope::Guild, Scope::Global] {
            let wanted = definitions(scope);
            let mut existing: Vec<Value> = wanted.iter().map(as_returned).collect();
            existing.reverse();
            assert!(unchanged(&existing, &wanted), "{scope:?}");
        }
    }

    #[test]
    fn a_changed_description_option_permission_or_missing_command_is_a_change() {
        let wanted = definitions(Scope::Guild);
        let same: Vec<Value> = wanted.iter().map(as_returned).collect();
        let mut description = same.clone();
        description[0]["description"] = json!("Something else");
        assert!(!unchanged(&description, &wanted));
        let mut option = same.clone();
        option[6]["options"][1]["min_value"] = json!(1);
        assert!(!unchanged(&option, &wanted));
        let mut permission = same.clone();
        permission[4]["default_member_permissions"] = Value::Null;
        assert!(!unchanged(&permission, &wanted));
        assert!(!unchanged(&same[1..], &wanted));
        assert!(!unchanged(&[], &wanted));
        let mut extra = same.clone();
        extra.push(json!({"type": 1, "name": "roll", "description": "Roll"}));
        assert!(!unchanged(&extra, &wanted));
        assert!(!unchanged(&same, &definitions(Scope::Global)), "contexts differ");
    }

    #[test]
    fn names_and_descriptions_are_within_discords_limits() {
        for c in definitions(Scope::Global) {
            let name = c["name"].as_str().unwrap();
            assert!(name.len() <= 32 && name == name.to_lowercase(), "{name}");
            let d = c["description"].as_str().unwrap();
            assert!((1..=100).contains(&d.chars().count()), "{name}: {d}");
            for o in c["options"].as_array().into_iter().flatten() {
                let d = o["description"].as_str().unwrap();
                assert!((1..=100).contains(&d.chars().count()), "{name}: {d}");
            }
        }
    }
}
