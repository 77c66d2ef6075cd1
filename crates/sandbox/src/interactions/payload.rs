//! INTERACTION_CREATE payloads: a command's options typed and resolved against its definition
//! (users, channels, roles with their `resolved` objects), and the interaction object around
//! them (member or user, channel, permissions, locale, context), as Discord sends it.

use serde_json::{json, Map, Value};

use crate::commands::{option_type, Command, CHAT_INPUT, MESSAGE, USER};
use crate::world::{ChannelKind, World};

/// Discord's default upload limit, sent as `attachment_size_limit`.
pub const ATTACHMENT_SIZE_LIMIT: u64 = 10 * 1024 * 1024;

/// A guild owner's permissions: every permission bit Discord defines (0 to 50), ADMINISTRATOR
/// and MANAGE_CHANNELS and MANAGE_GUILD among them.
pub const OWNER_PERMISSIONS: u64 = (1 << 51) - 1;

/// Who used an interaction, where.
#[derive(Debug, Clone, Copy)]
pub struct Invoker {
    /// The human (or any user).
    pub user: u64,
    /// The channel.
    pub channel_id: u64,
    /// The application (its bot user).
    pub application_id: u64,
}

/// The parts every interaction object shares: `member` (guilds) or `user` (DMs), `channel`,
/// permissions, locale, context, and the token.
pub fn interaction_base(world: &World, id: u64, token: &str, kind: u64, who: Invoker) -> Value {
    let channel = world.channel(who.channel_id);
    let guild_id = channel.and_then(|c| world.guild_of(c));
    // Discord computes ALL permissions for a guild's owner (the first human in the sandbox).
    let owner = guild_id.is_some_and(|g| world.guilds().iter().any(|x| x.id == g && x.owner_id == who.user));
    let user_perms = match channel {
        Some(_) if owner => OWNER_PERMISSIONS,
        Some(c) => world.permissions(who.user, c),
        None => 0,
    };
    let app_perms = channel.map_or(0, |c| world.permissions(who.application_id, c));
    let mut channel_json = channel.map_or(Value::Null, |c| world.channel_json_for(c, who.application_id));
    channel_json["permissions"] = json!(user_perms.to_string());
    let mut v = json!({
        "id": id.to_string(),
        "application_id": who.application_id.to_string(),
        "type": kind,
        "channel": channel_json,
        "channel_id": who.channel_id.to_string(),
        "token": token,
        "version": 1,
        "app_permissions": app_perms.to_string(),
        "locale": "en-US",
        "entitlements": [],
        "attachment_size_limit": ATTACHMENT_SIZE_LIMIT,
    });
    match guild_id {
        Some(g) => {
            let mut member = world.guild_member_json(g, who.user);
            member["permissions"] = json!(user_perms.to_string());
            v["guild_id"] = json!(g.to_string());
            v["guild"] = json!({"id": g.to_string(), "locale": "en-US", "features": []});
            v["guild_locale"] = json!("en-US");
            v["member"] = member;
            // GUILD_INSTALL (0) by this guild; context GUILD (0).
            v["authorizing_integration_owners"] = json!({"0": g.to_string()});
            v["context"] = json!(0);
        }
        None => {
            v["user"] = world.user_json(who.user);
            // A guild-installed app in its bot's DM: context BOT_DM (1), owner "0".
            v["authorizing_integration_owners"] = json!({"0": "0"});
            v["context"] = json!(1);
        }
    }
    v
}

/// The `data` of an APPLICATION_COMMAND interaction. `given` are the options as the tester
/// writes them (`[{"name": ..., "value": ...}]`, subcommands with their own `options`; users and
/// channels by name or ID); `target` names the user or message of a context-menu command.
pub fn command_data(
    world: &World,
    cmd: &Command,
    who: Invoker,
    given: &Value,
    target: Option<&str>,
) -> Result<Value, String> {
    let guild_id = world.channel(who.channel_id).and_then(|c| world.guild_of(c));
    let mut resolved = Map::new();
    let mut data = json!({
        "id": cmd.id.to_string(),
        "name": cmd.name(),
        "type": cmd.kind(),
    });
    if let Some(g) = cmd.guild_id {
        data["guild_id"] = json!(g.to_string());
    }
    match cmd.kind() {
        CHAT_INPUT => {
            let options = resolve_options(world, guild_id, cmd.options(), given, &mut resolved)?;
            if !options.is_empty() {
                data["options"] = Value::Array(options);
            }
        }
        USER => {
            let name = target.ok_or("a USER command needs `target`, a user")?;
            let u = world
                .user_by_name(name)
                .ok_or_else(|| format!("no user named `{name}`"))?
                .id;
            add_user(world, guild_id, u, &mut resolved);
            data["target_id"] = json!(u.to_string());
        }
        MESSAGE => {
            let id = target
                .and_then(|t| t.parse::<u64>().ok())
                .ok_or("a MESSAGE command needs `target`, a message ID")?;
            let channel = world.channel(who.channel_id).ok_or("unknown channel")?;
            let m = channel
                .messages
                .iter()
                .find(|m| m.id == id)
                .ok_or("no such message in this channel")?;
            resolved.insert(
                "messages".into(),
                json!({ id.to_string(): world.message_json(m, true) }),
            );
            data["target_id"] = json!(id.to_string());
        }
        _ => return Err("unsupported command type".into()),
    }
    if !resolved.is_empty() {
        data["resolved"] = Value::Object(resolved);
    }
    Ok(data)
}

fn add_user(world: &World, guild_id: Option<u64>, user: u64, resolved: &mut Map<String, Value>) {
    let users = resolved.entry("users").or_insert_with(|| json!({}));
    users[user.to_string()] = world.user_json(user);
    if let Some(g) = guild_id {
        let members = resolved.entry("members").or_insert_with(|| json!({}));
        let mut m = world.partial_member_json(g);
        m["permissions"] = json!(crate::world::perms::EVERYONE.to_string());
        members[user.to_string()] = m;
    }
}

fn add_role(guild_id: u64, resolved: &mut Map<String, Value>) {
    let roles = resolved.entry("roles").or_insert_with(|| json!({}));
    roles[guild_id.to_string()] = json!({
        "id": guild_id.to_string(), "name": "@everyone", "color": 0, "hoist": false, "icon": null,
        "unicode_emoji": null, "position": 0, "permissions": crate::world::perms::EVERYONE.to_string(),
        "managed": false, "mentionable": false, "flags": 0,
    });
}

/// Types and resolves the given options against a level of the command's definition.
// Why this is long: one arm per option type, each converting and resolving as Discord does.
fn resolve_options(
    world: &World,
    guild_id: Option<u64>,
    defs: &[Value],
    given: &Value,
    resolved: &mut Map<String, Value>,
) -> Result<Vec<Value>, String> {
    use option_type::*;
    let given: &[Value] = match given {
        Value::Null => &[],
        Value::Array(a) => a,
        _ => return Err("`options` must be a list of {\"name\": ..., \"value\": ...}".into()),
    };
    let mut out = Vec::new();
    for g in given {
        let name = g
            .get("name")
            .and_then(Value::as_str)
            .ok_or("every option needs a `name`")?;
        let def = defs
            .iter()
            .find(|d| d["name"] == name)
            .ok_or_else(|| format!("the command has no option `{name}`"))?;
        let kind = def["type"].as_u64().unwrap_or(STRING);
        if kind == SUB_COMMAND || kind == SUB_COMMAND_GROUP {
            if given.len() != 1 {
                return Err(format!("`{name}` is a subcommand: give it alone"));
            }
            let children = def["options"].as_array().map_or(&[][..], Vec::as_slice);
            let inner = resolve_options(
                world,
                guild_id,
                children,
                g.get("options").unwrap_or(&Value::Null),
                resolved,
            )?;
            out.push(json!({"name": name, "type": kind, "options": inner}));
            continue;
        }
        let raw = g
            .get("value")
            .ok_or_else(|| format!("option `{name}` needs a `value`"))?;
        let text = raw.as_str().map(str::to_string).unwrap_or_else(|| raw.to_string());
        let value = match kind {
            STRING => json!(text),
            INTEGER => json!(text
                .parse::<i64>()
                .map_err(|_| format!("option `{name}` wants an integer"))?),
            NUMBER => json!(text
                .parse::<f64>()
                .map_err(|_| format!("option `{name}` wants a number"))?),
            BOOLEAN => json!(text
                .parse::<bool>()
                .map_err(|_| format!("option `{name}` wants true or false"))?),
            USER | MENTIONABLE if world.user_by_name(&text).is_some() => {
                let u = world.user_by_name(&text).map(|u| u.id).unwrap_or_default();
                add_user(world, guild_id, u, resolved);
                json!(u.to_string())
            }
            ROLE | MENTIONABLE if guild_id.is_some_and(|g| text == g.to_string() || text == "@everyone") => {
                let g = guild_id.unwrap_or_default();
                add_role(g, resolved);
                json!(g.to_string())
            }
            CHANNEL => {
                let c = world
                    .channel_by_name(&text)
                    .filter(|c| !matches!(c.kind, ChannelKind::Dm { .. }))
                    .ok_or_else(|| format!("option `{name}`: no channel `{text}`"))?;
                let mut cj = world.channel_json(c);
                cj["permissions"] = json!(crate::world::perms::EVERYONE.to_string());
                let channels = resolved.entry("channels").or_insert_with(|| json!({}));
                channels[c.id.to_string()] = cj;
                json!(c.id.to_string())
            }
            _ => return Err(format!("option `{name}`: `{text}` is not a valid value for its type")),
        };
        check_constraints(def, &value).map_err(|e| format!("option `{name}`: {e}"))?;
        out.push(json!({"name": name, "type": kind, "value": value}));
    }
    for d in defs {
        if d["required"] == json!(true) && !out.iter().any(|o| o["name"] == d["name"]) {
            return Err(format!(
                "option `{}` is required",
                d["name"].as_str().unwrap_or_default()
            ));
        }
    }
    Ok(out)
}

/// The checks Discord's client applies before sending: choices, value range, string length.
pub fn check_constraints(def: &Value, value: &Value) -> Result<(), String> {
    if let Some(choices) = def["choices"].as_array().filter(|c| !c.is_empty()) {
        if !choices
            .iter()
            .any(|c| c["value"] == *value || c["value"].as_f64() == value.as_f64() && value.is_number())
        {
            return Err("not one of its choices".into());
        }
    }
    if let Some(n) = value.as_f64() {
        if def["min_value"].as_f64().is_some_and(|m| n < m) || def["max_value"].as_f64().is_some_and(|m| n > m) {
            return Err("out of its range".into());
        }
    }
    if let Some(s) = value.as_str() {
        let len = s.chars().count() as u64;
        if def["min_length"].as_u64().is_some_and(|m| len < m) || def["max_length"].as_u64().is_some_and(|m| len > m) {
            return Err("of the wrong length".into());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::Registry;

    #[test]
    fn options_are_typed_resolved_and_checked() {
        let (w, alice, ada, general) = crate::world::tests::world();
        let mut r = Registry::default();
        let (cmd, _) = r
            .upsert(
                ada,
                None,
                &json!({"name": "roll", "description": "d", "options": [
                    {"type": 4, "name": "sides", "description": "s", "required": true, "min_value": 2, "max_value": 100},
                    {"type": 6, "name": "for", "description": "f"},
                    {"type": 3, "name": "mood", "description": "m", "choices": [{"name": "Calm", "value": "calm"}]},
                ]}),
            )
            .unwrap();
        let who = Invoker {
            user: alice,
            channel_id: general,
            application_id: ada,
        };
        let given = json!([{"name": "sides", "value": "20"}, {"name": "for", "value": "bob"}]);
        let data = command_data(&w, &cmd, who, &given, None).unwrap();
        assert_eq!(data["options"][0]["value"], 20);
        let bob = w.user_by_name("bob").unwrap().id.to_string();
        assert_eq!(data["options"][1]["value"], bob.as_str());
        assert_eq!(data["resolved"]["users"][&bob]["username"], "bob");
        assert!(data["resolved"]["members"][&bob]["permissions"].is_string());
        for (bad, why) in [
            (json!([]), "required"),
            (json!([{"name": "sides", "value": 1}]), "range"),
            (
                json!([{"name": "sides", "value": 6}, {"name": "mood", "value": "angry"}]),
                "choices",
            ),
            (
                json!([{"name": "sides", "value": 6}, {"name": "nope", "value": 1}]),
                "no option",
            ),
        ] {
            let err = command_data(&w, &cmd, who, &bad, None).unwrap_err();
            assert!(err.contains(why), "{err}");
        }
    }

    #[test]
    fn guild_interactions_carry_a_member_and_dms_a_user() {
        let (mut w, alice, ada, general) = crate::world::tests::world();
        let who = Invoker {
            user: alice,
            channel_id: general,
            application_id: ada,
        };
        let v = interaction_base(&w, 1, "t", 2, who);
        assert_eq!(v["member"]["user"]["id"], alice.to_string());
        assert_eq!(v["context"], 0);
        assert!(v.get("user").is_none());
        let dm = w.open_dm(alice, ada).unwrap();
        let v = interaction_base(&w, 1, "t", 2, Invoker { channel_id: dm, ..who });
        assert_eq!(v["user"]["id"], alice.to_string());
        assert_eq!(v["context"], 1);
        assert!(v.get("guild_id").is_none());
    }
}
