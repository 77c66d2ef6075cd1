//! Application commands: the registry of each application's global and guild commands, and
//! Discord's validation of a command object (names, descriptions, options, choices, limits).
//! Synchronous and I/O-free; the routes are in `rest/applications.rs`.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use crate::error::ApiError;
use crate::snowflake::SnowflakeGenerator;

/// CHAT_INPUT: a slash command.
pub const CHAT_INPUT: u64 = 1;
/// USER: a command in a user's context menu.
pub const USER: u64 = 2;
/// MESSAGE: a command in a message's context menu.
pub const MESSAGE: u64 = 3;

/// Option types (Discord's application command option types).
pub mod option_type {
    /// SUB_COMMAND.
    pub const SUB_COMMAND: u64 = 1;
    /// SUB_COMMAND_GROUP.
    pub const SUB_COMMAND_GROUP: u64 = 2;
    /// STRING.
    pub const STRING: u64 = 3;
    /// INTEGER.
    pub const INTEGER: u64 = 4;
    /// BOOLEAN.
    pub const BOOLEAN: u64 = 5;
    /// USER.
    pub const USER: u64 = 6;
    /// CHANNEL.
    pub const CHANNEL: u64 = 7;
    /// ROLE.
    pub const ROLE: u64 = 8;
    /// MENTIONABLE.
    pub const MENTIONABLE: u64 = 9;
    /// NUMBER.
    pub const NUMBER: u64 = 10;
    /// ATTACHMENT.
    pub const ATTACHMENT: u64 = 11;
}

/// Most CHAT_INPUT commands per scope (global, or one guild).
pub const MAX_CHAT_INPUT: usize = 100;
/// Most USER and most MESSAGE commands per scope.
pub const MAX_CONTEXT_MENU: usize = 5;

/// A registered command.
#[derive(Debug, Clone, PartialEq)]
pub struct Command {
    /// Snowflake.
    pub id: u64,
    /// The application (the bot's user ID in the sandbox, as READY's `application.id`).
    pub application_id: u64,
    /// `None` for a global command.
    pub guild_id: Option<u64>,
    /// Version snowflake, renewed on every change.
    pub version: u64,
    /// The validated fields as Discord returns them (`type`, `name`, `description`, `options`, ...).
    pub fields: Map<String, Value>,
}

impl Command {
    /// `type`.
    pub fn kind(&self) -> u64 {
        self.fields.get("type").and_then(Value::as_u64).unwrap_or(CHAT_INPUT)
    }

    /// `name`.
    pub fn name(&self) -> &str {
        self.fields.get("name").and_then(Value::as_str).unwrap_or_default()
    }

    /// `options` (empty when none).
    pub fn options(&self) -> &[Value] {
        self.fields
            .get("options")
            .and_then(Value::as_array)
            .map_or(&[], Vec::as_slice)
    }

    /// The application command object.
    pub fn to_json(&self) -> Value {
        let mut v = Value::Object(self.fields.clone());
        v["id"] = json!(self.id.to_string());
        v["application_id"] = json!(self.application_id.to_string());
        v["version"] = json!(self.version.to_string());
        match self.guild_id {
            Some(g) => v["guild_id"] = json!(g.to_string()),
            None => {
                if v.get("dm_permission").is_none() {
                    v["dm_permission"] = json!(true);
                }
            }
        }
        v
    }
}

/// Whether a registration created a command or replaced one of the same name and type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upserted {
    /// New command (`201 Created`).
    Created,
    /// Replaced an existing one (`200 OK`).
    Updated,
}

/// Every application's commands.
#[derive(Debug, Default)]
pub struct Registry {
    ids: SnowflakeGenerator,
    commands: BTreeMap<u64, Command>,
}

impl Registry {
    fn next_id(&mut self) -> u64 {
        // Worker 1 in the snowflake, so IDs never collide with the world's (worker 0).
        self.ids.next_id() | (1 << 17)
    }

    /// The commands of one scope, oldest first.
    pub fn list(&self, app: u64, guild: Option<u64>) -> Vec<&Command> {
        self.commands
            .values()
            .filter(|c| c.application_id == app && c.guild_id == guild)
            .collect()
    }

    /// One command of a scope.
    pub fn get(&self, app: u64, guild: Option<u64>, id: u64) -> Result<&Command, ApiError> {
        self.commands
            .get(&id)
            .filter(|c| c.application_id == app && c.guild_id == guild)
            .ok_or_else(unknown_command)
    }

    /// The command a user invokes by name where `guild` is (guild commands win over global ones,
    /// as Discord lists them first).
    pub fn find(&self, app: u64, guild: Option<u64>, kind: u64, name: &str) -> Option<&Command> {
        let matches = |c: &&Command| c.application_id == app && c.kind() == kind && c.name() == name;
        let in_guild = guild.and_then(|g| self.commands.values().filter(|c| c.guild_id == Some(g)).find(matches));
        in_guild.or_else(|| self.commands.values().filter(|c| c.guild_id.is_none()).find(matches))
    }

    /// `POST`: creates the command, or replaces the one with the same name and type.
    pub fn upsert(&mut self, app: u64, guild: Option<u64>, body: &Value) -> Result<(Command, Upserted), ApiError> {
        let fields = validate(body, "")?;
        let kind = fields.get("type").and_then(Value::as_u64).unwrap_or(CHAT_INPUT);
        let name = fields
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let version = self.next_id();
        let existing = self
            .list(app, guild)
            .into_iter()
            .find(|c| c.kind() == kind && c.name() == name)
            .map(|c| c.id);
        if let Some(id) = existing {
            let c = self.commands.get_mut(&id).expect("listed command exists");
            c.fields = fields;
            c.version = version;
            return Ok((c.clone(), Upserted::Updated));
        }
        let same_kind = self.list(app, guild).iter().filter(|c| c.kind() == kind).count();
        if same_kind >= limit_for(kind) {
            return Err(too_many(kind));
        }
        let c = Command {
            id: self.next_id(),
            application_id: app,
            guild_id: guild,
            version,
            fields,
        };
        self.commands.insert(c.id, c.clone());
        Ok((c, Upserted::Created))
    }

    /// `PATCH`: changes the given fields of one command.
    pub fn edit(&mut self, app: u64, guild: Option<u64>, id: u64, patch: &Value) -> Result<Command, ApiError> {
        let current = self.get(app, guild, id)?.clone();
        let Some(patch) = patch.as_object() else {
            return Err(ApiError::invalid_json());
        };
        let mut merged = current.fields.clone();
        for (k, v) in patch {
            merged.insert(k.clone(), v.clone());
        }
        // The type of a command cannot change.
        merged.insert("type".into(), json!(current.kind()));
        let fields = validate(&Value::Object(merged), "")?;
        let name = fields.get("name").and_then(Value::as_str).unwrap_or_default();
        let clash = self
            .list(app, guild)
            .iter()
            .any(|c| c.id != id && c.kind() == current.kind() && c.name() == name);
        if clash {
            return Err(duplicate_name("name"));
        }
        let version = self.next_id();
        let c = self.commands.get_mut(&id).expect("command checked above");
        c.fields = fields;
        c.version = version;
        Ok(c.clone())
    }

    /// `DELETE`.
    pub fn delete(&mut self, app: u64, guild: Option<u64>, id: u64) -> Result<(), ApiError> {
        self.get(app, guild, id)?;
        self.commands.remove(&id);
        Ok(())
    }

    /// `PUT`: replaces the whole scope with `body` (an array). Commands named as before keep their
    /// IDs; the others are deleted. Nothing changes if any command is invalid.
    pub fn overwrite(&mut self, app: u64, guild: Option<u64>, body: &Value) -> Result<Vec<Command>, ApiError> {
        let Some(items) = body.as_array() else {
            return Err(ApiError::invalid_form(
                "_errors",
                "LIST_TYPE_CONVERT",
                "Only iterables may be used in a ListType",
            ));
        };
        let mut validated = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let fields = validate(item, &format!("{i}."))?;
            let key = (
                fields.get("type").and_then(Value::as_u64).unwrap_or(CHAT_INPUT),
                fields
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
            );
            if validated.iter().any(|(k, _)| *k == key) {
                return Err(duplicate_name(&format!("{i}.name")));
            }
            validated.push((key, fields));
        }
        for kind in [CHAT_INPUT, USER, MESSAGE] {
            if validated.iter().filter(|((k, _), _)| *k == kind).count() > limit_for(kind) {
                return Err(too_many(kind));
            }
        }
        let old: Vec<Command> = self.list(app, guild).into_iter().cloned().collect();
        for c in &old {
            self.commands.remove(&c.id);
        }
        let mut out = Vec::with_capacity(validated.len());
        for ((kind, name), fields) in validated {
            let kept = old.iter().find(|c| c.kind() == kind && c.name() == name);
            let unchanged = kept.filter(|c| c.fields == fields).map(|c| c.version);
            let version = match unchanged {
                Some(v) => v,
                None => self.next_id(),
            };
            let id = match kept {
                Some(c) => c.id,
                None => self.next_id(),
            };
            let c = Command {
                id,
                application_id: app,
                guild_id: guild,
                version,
                fields,
            };
            self.commands.insert(id, c.clone());
            out.push(c);
        }
        Ok(out)
    }
}

/// 404, code 10063.
pub fn unknown_command() -> ApiError {
    ApiError {
        status: 404,
        body: json!({"message": "Unknown application command", "code": 10063}),
    }
}

fn limit_for(kind: u64) -> usize {
    if kind == CHAT_INPUT {
        MAX_CHAT_INPUT
    } else {
        MAX_CONTEXT_MENU
    }
}

fn too_many(kind: u64) -> ApiError {
    ApiError {
        status: 400,
        body: json!({
            "message": format!("Maximum number of application commands reached ({})", limit_for(kind)),
            "code": 30032,
        }),
    }
}

fn duplicate_name(field: &str) -> ApiError {
    ApiError::invalid_form(
        field,
        "APPLICATION_COMMANDS_DUPLICATE_NAME",
        "Application command names must be unique",
    )
}

fn invalid(field: &str, code: &str, message: &str) -> ApiError {
    ApiError::invalid_form(field, code, message)
}

/// Whether `name` is a valid CHAT_INPUT command or option name: 1 to 32 of letters, digits, `-`,
/// `_` and `'`, in lower case wherever a letter has a lower case.
pub fn valid_chat_input_name(name: &str) -> bool {
    let count = name.chars().count();
    (1..=32).contains(&count)
        && name
            .chars()
            .all(|c| (c.is_alphanumeric() || matches!(c, '-' | '_' | '\'')) && c.to_lowercase().eq(std::iter::once(c)))
}

fn string_field<'a>(obj: &'a Map<String, Value>, key: &str, at: &str) -> Result<Option<&'a str>, ApiError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(invalid(
            &format!("{at}{key}"),
            "STRING_TYPE_CONVERT",
            "Could not interpret value as string.",
        )),
    }
}

fn length_between(s: &str, min: usize, max: usize, field: &str) -> Result<(), ApiError> {
    let n = s.chars().count();
    if n < min || n > max {
        return Err(invalid(
            field,
            "BASE_TYPE_BAD_LENGTH",
            &format!("Must be between {min} and {max} in length."),
        ));
    }
    Ok(())
}

/// Validates a command object (`at` prefixes field paths, e.g. `3.` in a bulk overwrite) and
/// returns the fields Discord keeps, with defaults filled in.
pub fn validate(body: &Value, at: &str) -> Result<Map<String, Value>, ApiError> {
    let obj = body.as_object().ok_or_else(ApiError::invalid_json)?;
    let kind = match obj.get("type") {
        None | Some(Value::Null) => CHAT_INPUT,
        Some(v) => v
            .as_u64()
            .filter(|t| (CHAT_INPUT..=MESSAGE).contains(t))
            .ok_or_else(|| {
                invalid(
                    &format!("{at}type"),
                    "BASE_TYPE_CHOICES",
                    "Value must be one of {1, 2, 3}.",
                )
            })?,
    };
    let name = string_field(obj, "name", at)?
        .ok_or_else(|| invalid(&format!("{at}name"), "BASE_TYPE_REQUIRED", "This field is required"))?;
    length_between(name, 1, 32, &format!("{at}name"))?;
    if kind == CHAT_INPUT && !valid_chat_input_name(name) {
        return Err(invalid(
            &format!("{at}name"),
            "APPLICATION_COMMAND_INVALID_NAME",
            "Command name is invalid",
        ));
    }
    let description = string_field(obj, "description", at)?.unwrap_or_default();
    if kind == CHAT_INPUT {
        length_between(description, 1, 100, &format!("{at}description"))?;
    } else if !description.is_empty() {
        return Err(invalid(
            &format!("{at}description"),
            "APPLICATION_COMMAND_CONTEXT_MENU_DESCRIPTION",
            "Context menu commands cannot have description",
        ));
    }
    let options = match obj.get("options") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) if kind == CHAT_INPUT => validate_options(a, &format!("{at}options"), None)?,
        Some(Value::Array(a)) if a.is_empty() => Vec::new(),
        Some(Value::Array(_)) => {
            return Err(invalid(
                &format!("{at}options"),
                "APPLICATION_COMMAND_OPTIONS_INVALID",
                "Context menu commands cannot have options",
            ))
        }
        Some(_) => {
            return Err(invalid(
                &format!("{at}options"),
                "LIST_TYPE_CONVERT",
                "Only iterables may be used in a ListType",
            ))
        }
    };
    let mut fields = Map::new();
    fields.insert("type".into(), json!(kind));
    fields.insert("name".into(), json!(name));
    fields.insert("description".into(), json!(description));
    if !options.is_empty() {
        fields.insert("options".into(), Value::Array(options));
    }
    for (key, default) in [
        ("name_localizations", Value::Null),
        ("description_localizations", Value::Null),
        ("default_member_permissions", Value::Null),
        ("nsfw", json!(false)),
        ("integration_types", json!([0])),
        ("contexts", Value::Null),
    ] {
        fields.insert(key.into(), obj.get(key).cloned().unwrap_or(default));
    }
    if let Some(dm) = obj.get("dm_permission").filter(|v| !v.is_null()) {
        fields.insert("dm_permission".into(), dm.clone());
    }
    Ok(fields)
}

/// Validates one level of options: the command's own (`parent` `None`), a group's (subcommands
/// only) or a subcommand's (no further subcommands), as Discord nests them.
// Why this is long: Discord's option rules, one after another, each with its own error.
fn validate_options(options: &[Value], at: &str, parent: Option<u64>) -> Result<Vec<Value>, ApiError> {
    use option_type::*;
    if options.len() > 25 {
        return Err(invalid(at, "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length."));
    }
    let mut out = Vec::with_capacity(options.len());
    let mut names: Vec<&str> = Vec::new();
    let mut optional_seen = false;
    for (i, opt) in options.iter().enumerate() {
        let here = format!("{at}.{i}.");
        let obj = opt.as_object().ok_or_else(ApiError::invalid_json)?;
        let kind = obj
            .get("type")
            .and_then(Value::as_u64)
            .filter(|t| (SUB_COMMAND..=ATTACHMENT).contains(t))
            .ok_or_else(|| {
                invalid(
                    &format!("{here}type"),
                    "BASE_TYPE_CHOICES",
                    "Value must be one of {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}.",
                )
            })?;
        let allowed = match parent {
            None => true,
            Some(SUB_COMMAND_GROUP) => kind == SUB_COMMAND,
            Some(_) => kind != SUB_COMMAND && kind != SUB_COMMAND_GROUP,
        };
        if !allowed {
            return Err(invalid(
                &format!("{here}type"),
                "APPLICATION_COMMAND_OPTION_TYPE_INVALID",
                "Sub-command groups hold only sub-commands, and sub-commands no further sub-commands",
            ));
        }
        let name = string_field(obj, "name", &here)?
            .ok_or_else(|| invalid(&format!("{here}name"), "BASE_TYPE_REQUIRED", "This field is required"))?;
        if !valid_chat_input_name(name) {
            return Err(invalid(
                &format!("{here}name"),
                "APPLICATION_COMMAND_INVALID_NAME",
                "Command name is invalid",
            ));
        }
        if names.contains(&name) {
            return Err(invalid(
                &format!("{here}name"),
                "APPLICATION_COMMAND_OPTION_NAME_ALREADY_EXISTS",
                "Option names must be unique",
            ));
        }
        names.push(name);
        let description = string_field(obj, "description", &here)?.unwrap_or_default();
        length_between(description, 1, 100, &format!("{here}description"))?;
        let required = obj.get("required").and_then(Value::as_bool).unwrap_or(false);
        let is_sub = kind == SUB_COMMAND || kind == SUB_COMMAND_GROUP;
        if required && optional_seen {
            return Err(invalid(
                &format!("{here}required"),
                "APPLICATION_COMMAND_OPTIONS_REQUIRED_INVALID",
                "Required options must be placed before non-required options",
            ));
        }
        optional_seen |= !required && !is_sub;
        let mut v = Map::new();
        v.insert("type".into(), json!(kind));
        v.insert("name".into(), json!(name));
        v.insert("description".into(), json!(description));
        if required {
            v.insert("required".into(), json!(true));
        }
        if is_sub {
            let children = match obj.get("options") {
                Some(Value::Array(a)) => validate_options(a, &format!("{here}options"), Some(kind))?,
                _ => Vec::new(),
            };
            v.insert("options".into(), Value::Array(children));
        }
        // Libraries send `"choices": []` for "no choices" (serenity does); Discord drops it.
        if let Some(choices) = obj.get("choices").and_then(Value::as_array).filter(|c| !c.is_empty()) {
            validate_choices(choices, kind, &format!("{here}choices"))?;
            if obj.get("autocomplete").and_then(Value::as_bool) == Some(true) {
                return Err(invalid(
                    &format!("{here}autocomplete"),
                    "APPLICATION_COMMAND_OPTION_AUTOCOMPLETE_WITH_CHOICES",
                    "Autocomplete cannot be set with choices",
                ));
            }
            v.insert("choices".into(), Value::Array(choices.clone()));
        }
        for key in [
            "channel_types",
            "min_value",
            "max_value",
            "min_length",
            "max_length",
            "autocomplete",
            "name_localizations",
            "description_localizations",
        ] {
            if let Some(x) = obj.get(key).filter(|x| !x.is_null()) {
                v.insert(key.into(), x.clone());
            }
        }
        out.push(Value::Object(v));
    }
    Ok(out)
}

fn validate_choices(choices: &[Value], kind: u64, at: &str) -> Result<(), ApiError> {
    use option_type::*;
    if ![STRING, INTEGER, NUMBER].contains(&kind) {
        return Err(invalid(
            at,
            "APPLICATION_COMMAND_OPTION_CHOICES_INVALID",
            "Only string, integer and number options can have choices",
        ));
    }
    if choices.len() > 25 {
        return Err(invalid(at, "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length."));
    }
    for (i, c) in choices.iter().enumerate() {
        let name = c.get("name").and_then(Value::as_str).unwrap_or_default();
        length_between(name, 1, 100, &format!("{at}.{i}.name"))?;
        let ok = match (kind, c.get("value")) {
            (STRING, Some(Value::String(s))) => s.chars().count() <= 100,
            (INTEGER, Some(Value::Number(n))) => n.is_i64() || n.is_u64(),
            (NUMBER, Some(Value::Number(_))) => true,
            _ => false,
        };
        if !ok {
            return Err(invalid(
                &format!("{at}.{i}.value"),
                "APPLICATION_COMMAND_OPTION_CHOICE_VALUE_INVALID",
                "Choice value does not match the option type",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slash(name: &str) -> Value {
        json!({"name": name, "description": "does a thing"})
    }

    #[test]
    fn chat_input_names_follow_discords_rule() {
        for good in ["ping", "roll-d20", "été", "what's_up", "日本"] {
            assert!(valid_chat_input_name(good), "{good}");
        }
        for bad in ["", "Ping", "two words", "a/b", &"x".repeat(33)] {
            assert!(!valid_chat_input_name(bad), "{bad}");
        }
        let err = validate(&slash("Ping"), "").unwrap_err();
        assert_eq!(
            err.body.pointer("/errors/name/_errors/0/code"),
            Some(&json!("APPLICATION_COMMAND_INVALID_NAME"))
        );
        assert!(validate(&json!({"type": 2, "name": "Give Kudos"}), "").is_ok());
        assert!(validate(&json!({"type": 2, "name": "Kudos", "description": "x"}), "").is_err());
    }

    #[test]
    fn options_are_checked_in_place() {
        let cmd = json!({"name": "roll", "description": "d", "options": [
            {"type": 4, "name": "sides", "description": "how many"},
            {"type": 3, "name": "label", "description": "l", "required": true},
        ]});
        let err = validate(&cmd, "2.").unwrap_err();
        assert_eq!(err.status, 400);
        assert!(
            err.body.pointer("/errors/2/options/1/required/_errors/0").is_some(),
            "{}",
            err.body
        );
        let cmd = json!({"name": "roll", "description": "d", "options": [
            {"type": 5, "name": "flag", "description": "f", "choices": [{"name": "a", "value": "a"}]},
        ]});
        assert!(validate(&cmd, "").is_err());
        let no_choices = json!({"name": "roll", "description": "d", "options": [
            {"type": 5, "name": "flag", "description": "f", "choices": []},
        ]});
        assert!(validate(&no_choices, "").unwrap()["options"][0]
            .get("choices")
            .is_none());
        let group = json!({"name": "admin", "description": "d", "options": [
            {"type": 2, "name": "user", "description": "u", "options": [
                {"type": 1, "name": "ban", "description": "b", "options": [
                    {"type": 6, "name": "who", "description": "w", "required": true}]}]}]});
        let fields = validate(&group, "").unwrap();
        assert_eq!(fields["options"][0]["options"][0]["options"][0]["type"], 6);
        let too_deep = json!({"name": "x", "description": "d", "options": [
            {"type": 1, "name": "a", "description": "a", "options": [
                {"type": 1, "name": "b", "description": "b"}]}]});
        assert!(validate(&too_deep, "").is_err());
    }

    #[test]
    fn post_upserts_by_name_and_put_keeps_ids_of_kept_names() {
        let mut r = Registry::default();
        let (first, how) = r.upsert(1, None, &slash("ping")).unwrap();
        assert_eq!(how, Upserted::Created);
        let (again, how) = r
            .upsert(1, None, &json!({"name": "ping", "description": "new"}))
            .unwrap();
        assert_eq!((how, again.id), (Upserted::Updated, first.id));
        assert_ne!(again.version, first.version);
        r.upsert(1, Some(9), &slash("local")).unwrap();
        let put = r.overwrite(1, None, &json!([slash("ping"), slash("pong")])).unwrap();
        assert_eq!(put[0].id, first.id);
        assert_eq!(r.list(1, None).len(), 2);
        assert_eq!(r.list(1, Some(9)).len(), 1, "a global overwrite leaves guild commands");
        let err = r.overwrite(1, None, &json!([slash("a"), slash("a")])).unwrap_err();
        assert!(err.body.pointer("/errors/1/name/_errors/0").is_some(), "{}", err.body);
        assert_eq!(r.list(1, None).len(), 2, "a refused overwrite changes nothing");
        r.overwrite(1, None, &json!([])).unwrap();
        assert!(r.list(1, None).is_empty());
        assert_eq!(r.get(1, None, first.id).unwrap_err().body["code"], 10063);
    }

    #[test]
    fn guild_commands_shadow_global_ones_and_limits_hold() {
        let mut r = Registry::default();
        let (global, _) = r.upsert(1, None, &slash("ping")).unwrap();
        let (local, _) = r.upsert(1, Some(9), &slash("ping")).unwrap();
        assert_eq!(r.find(1, Some(9), CHAT_INPUT, "ping").unwrap().id, local.id);
        assert_eq!(r.find(1, None, CHAT_INPUT, "ping").unwrap().id, global.id);
        assert!(r.find(2, None, CHAT_INPUT, "ping").is_none());
        for i in 0..5 {
            r.upsert(1, None, &json!({"type": 3, "name": format!("m{i}")})).unwrap();
        }
        let err = r.upsert(1, None, &json!({"type": 3, "name": "m5"})).unwrap_err();
        assert_eq!(err.body["code"], 30032);
        let edited = r.edit(1, None, global.id, &json!({"description": "changed"})).unwrap();
        assert_eq!(edited.fields["description"], "changed");
        assert_eq!(edited.to_json()["dm_permission"], true);
        assert!(
            r.edit(1, None, global.id, &json!({"name": "m0"})).is_ok(),
            "other type, no clash"
        );
    }
}
