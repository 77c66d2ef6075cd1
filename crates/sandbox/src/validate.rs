//! Discord's documented limits on what a bot sends (embeds, `allowed_mentions`, webhook names,
//! nonces), each refusal shaped as Discord's 400 "Invalid Form Body" (code 50035). Pure functions.

use serde_json::{json, Value};

use super::error::ApiError;

/// Most embeds on one message.
pub const MAX_EMBEDS: usize = 10;
/// Characters across every embed's title, description, field names and values, footer text and
/// author name.
pub const EMBED_TOTAL: usize = 6000;
/// Most fields in one embed.
pub const MAX_FIELDS: usize = 25;
/// Longest nonce (characters).
pub const NONCE_MAX: usize = 25;

fn too_long(field: &str, max: usize) -> ApiError {
    ApiError::invalid_form(
        field,
        "BASE_TYPE_MAX_LENGTH",
        &format!("Must be {max} or fewer in length."),
    )
}

fn required(field: &str) -> ApiError {
    ApiError::invalid_form(field, "BASE_TYPE_REQUIRED", "This field is required")
}

fn chars(v: Option<&Value>) -> usize {
    v.and_then(Value::as_str).map_or(0, |s| s.chars().count())
}

/// Checks one optional string at `pointer` in `embed` against `max` characters; returns its count.
fn limited(embed: &Value, pointer: &str, path: &str, max: usize) -> Result<usize, ApiError> {
    let n = chars(embed.pointer(pointer));
    if n > max {
        return Err(too_long(path, max));
    }
    Ok(n)
}

/// Discord's embed limits: at most 10 embeds; title 256, description 4096, 25 fields with name
/// 256 and value 1024 (both required), footer text 2048, author name 256; 6,000 characters in all.
pub fn embeds(embeds: &[Value]) -> Result<(), ApiError> {
    if embeds.len() > MAX_EMBEDS {
        return Err(too_long("embeds", MAX_EMBEDS));
    }
    let mut total = 0;
    for (i, e) in embeds.iter().enumerate() {
        let at = |rest: &str| format!("embeds.{i}.{rest}");
        total += limited(e, "/title", &at("title"), 256)?;
        total += limited(e, "/description", &at("description"), 4096)?;
        total += limited(e, "/footer/text", &at("footer.text"), 2048)?;
        total += limited(e, "/author/name", &at("author.name"), 256)?;
        let fields = match e.get("fields") {
            None | Some(Value::Null) => &[][..],
            Some(Value::Array(a)) => a.as_slice(),
            Some(_) => {
                return Err(ApiError::invalid_form(
                    &at("fields"),
                    "LIST_TYPE_CONVERT",
                    "Only iterables may be used in a ListType",
                ))
            }
        };
        if fields.len() > MAX_FIELDS {
            return Err(too_long(&at("fields"), MAX_FIELDS));
        }
        for (j, f) in fields.iter().enumerate() {
            for (key, max) in [("name", 256), ("value", 1024)] {
                let path = at(&format!("fields.{j}.{key}"));
                if !f.get(key).is_some_and(Value::is_string) {
                    return Err(required(&path));
                }
                total += limited(f, &format!("/{key}"), &path, max)?;
            }
        }
    }
    if total > EMBED_TOTAL {
        return Err(ApiError::invalid_form(
            "embeds",
            "MAX_EMBED_SIZE_EXCEEDED",
            "Embed size exceeds maximum size of 6000",
        ));
    }
    Ok(())
}

/// Embeds as Discord stores a bot's: `type` is always `"rich"` (a sender cannot claim another).
pub fn normalise_embeds(embeds: &mut [Value]) {
    for e in embeds.iter_mut() {
        if let Some(o) = e.as_object_mut() {
            o.insert("type".into(), json!("rich"));
        }
    }
}

/// `allowed_mentions`: `parse` holds only `users`, `roles`, `everyone`; `parse: ["users"]`
/// excludes a `users` list and `parse: ["roles"]` a `roles` list; each list has at most 100 IDs.
pub fn allowed_mentions(am: &Value) -> Result<(), ApiError> {
    if am.is_null() {
        return Ok(());
    }
    if !am.is_object() {
        return Err(ApiError::invalid_form(
            "allowed_mentions",
            "MODEL_TYPE_CONVERT",
            "Only dictionaries may be used in a ModelType",
        ));
    }
    let parse: Vec<&str> = match am.get("parse") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => {
            let mut out = Vec::new();
            for (i, p) in a.iter().enumerate() {
                match p.as_str() {
                    Some(s @ ("users" | "roles" | "everyone")) => out.push(s),
                    _ => {
                        return Err(ApiError::invalid_form(
                            &format!("allowed_mentions.parse.{i}"),
                            "ENUM_TYPE_COERCE",
                            "Value must be one of {'everyone', 'roles', 'users'}.",
                        ))
                    }
                }
            }
            out
        }
        Some(_) => {
            return Err(ApiError::invalid_form(
                "allowed_mentions.parse",
                "LIST_TYPE_CONVERT",
                "Only iterables may be used in a ListType",
            ))
        }
    };
    for kind in ["users", "roles"] {
        let list_len = am.get(kind).and_then(Value::as_array).map_or(0, Vec::len);
        if list_len > 100 {
            return Err(too_long(&format!("allowed_mentions.{kind}"), 100));
        }
        // An empty list (or null) beside `parse` is allowed, as Discord documents.
        if list_len > 0 && parse.contains(&kind) {
            return Err(ApiError::invalid_form(
                "allowed_mentions",
                "MESSAGE_ALLOWED_MENTIONS_PARSE_EXCLUSIVE",
                &format!("parse:[\"{kind}\"] and {kind}: [ids...] are mutually exclusive."),
            ));
        }
    }
    Ok(())
}

/// A webhook's name (`name` on create/modify, `username` on execute): 1 to 80 characters, and
/// never containing "clyde" or "discord" (any case), as Discord refuses.
pub fn webhook_name(field: &str, name: &str) -> Result<(), ApiError> {
    let n = name.chars().count();
    if n == 0 || n > 80 {
        return Err(ApiError::invalid_form(
            field,
            "BASE_TYPE_BAD_LENGTH",
            "Must be between 1 and 80 in length.",
        ));
    }
    let lower = name.to_lowercase();
    for banned in ["clyde", "discord"] {
        if lower.contains(banned) {
            return Err(ApiError::invalid_form(
                field,
                "USERNAME_INVALID_CONTAINS",
                &format!("Username cannot contain \"{banned}\""),
            ));
        }
    }
    Ok(())
}

/// A nonce: an integer, or a string of at most 25 characters.
pub fn nonce(v: &Value) -> Result<Option<Value>, ApiError> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) if s.chars().count() <= NONCE_MAX => Ok(Some(v.clone())),
        Value::String(_) => Err(too_long("nonce", NONCE_MAX)),
        Value::Number(n) if n.is_i64() || n.is_u64() => Ok(Some(v.clone())),
        _ => Err(ApiError::invalid_form(
            "nonce",
            "NONCE_TYPE_INVALID",
            "Nonce must be an integer or a string.",
        )),
    }
}

/// A paging `limit` in `1..=max`, with Discord's error for each side.
pub fn limit(value: u64, max: u64) -> Result<u64, ApiError> {
    if value < 1 {
        return Err(ApiError::invalid_form(
            "limit",
            "NUMBER_TYPE_MIN",
            "int value should be greater than or equal to 1.",
        ));
    }
    if value > max {
        return Err(ApiError::invalid_form(
            "limit",
            "NUMBER_TYPE_MAX",
            &format!("int value should be less than or equal to {max}."),
        ));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code_at(err: &ApiError, pointer: &str) -> String {
        assert_eq!(err.status, 400);
        assert_eq!(err.body["code"], 50035);
        err.body
            .pointer(&format!("/errors{pointer}/_errors/0/code"))
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("no error at {pointer}: {}", err.body))
            .to_string()
    }

    #[test]
    fn embed_title_256() {
        assert!(embeds(&[json!({"title": "t".repeat(256)})]).is_ok());
        let e = embeds(&[json!({"title": "é".repeat(257)})]).unwrap_err();
        assert_eq!(code_at(&e, "/embeds/0/title"), "BASE_TYPE_MAX_LENGTH");
    }

    #[test]
    fn embed_description_4096() {
        assert!(embeds(&[json!({"description": "d".repeat(4096)})]).is_ok());
        let e = embeds(&[json!({}), json!({"description": "d".repeat(4097)})]).unwrap_err();
        assert_eq!(code_at(&e, "/embeds/1/description"), "BASE_TYPE_MAX_LENGTH");
    }

    #[test]
    fn embed_fields_25_with_name_256_and_value_1024() {
        let field = json!({"name": "n", "value": "v"});
        assert!(embeds(&[json!({"fields": vec![field.clone(); 25]})]).is_ok());
        let e = embeds(&[json!({"fields": vec![field; 26]})]).unwrap_err();
        assert_eq!(code_at(&e, "/embeds/0/fields"), "BASE_TYPE_MAX_LENGTH");
        let e = embeds(&[json!({"fields": [{"name": "n".repeat(257), "value": "v"}]})]).unwrap_err();
        assert_eq!(code_at(&e, "/embeds/0/fields/0/name"), "BASE_TYPE_MAX_LENGTH");
        let e = embeds(&[json!({"fields": [{"name": "n", "value": "v".repeat(1025)}]})]).unwrap_err();
        assert_eq!(code_at(&e, "/embeds/0/fields/0/value"), "BASE_TYPE_MAX_LENGTH");
        let e = embeds(&[json!({"fields": [{"name": "n"}]})]).unwrap_err();
        assert_eq!(code_at(&e, "/embeds/0/fields/0/value"), "BASE_TYPE_REQUIRED");
    }

    #[test]
    fn embed_footer_2048_and_author_256() {
        let e = embeds(&[json!({"footer": {"text": "f".repeat(2049)}})]).unwrap_err();
        assert_eq!(code_at(&e, "/embeds/0/footer/text"), "BASE_TYPE_MAX_LENGTH");
        let e = embeds(&[json!({"author": {"name": "a".repeat(257)}})]).unwrap_err();
        assert_eq!(code_at(&e, "/embeds/0/author/name"), "BASE_TYPE_MAX_LENGTH");
    }

    #[test]
    fn embeds_total_6000_across_all_embeds() {
        let big = json!({"description": "d".repeat(3000)});
        assert!(embeds(&[big.clone(), big.clone()]).is_ok());
        let e = embeds(&[big.clone(), big, json!({"title": "t"})]).unwrap_err();
        assert_eq!(code_at(&e, "/embeds"), "MAX_EMBED_SIZE_EXCEEDED");
        let e = embeds(&vec![json!({}); 11]).unwrap_err();
        assert_eq!(code_at(&e, "/embeds"), "BASE_TYPE_MAX_LENGTH");
    }

    #[test]
    fn embeds_are_normalised_to_rich() {
        let mut e = vec![json!({"type": "video", "title": "x"}), json!({"title": "y"})];
        normalise_embeds(&mut e);
        assert!(e.iter().all(|e| e["type"] == "rich"));
    }

    #[test]
    fn allowed_mentions_parse_excludes_lists() {
        assert!(allowed_mentions(&json!({"parse": ["users"], "users": []})).is_ok());
        assert!(allowed_mentions(&json!({"parse": ["roles"], "users": ["1"]})).is_ok());
        let e = allowed_mentions(&json!({"parse": ["users"], "users": ["1"]})).unwrap_err();
        assert_eq!(
            code_at(&e, "/allowed_mentions"),
            "MESSAGE_ALLOWED_MENTIONS_PARSE_EXCLUSIVE"
        );
        let e = allowed_mentions(&json!({"parse": ["roles"], "roles": ["1"]})).unwrap_err();
        assert!(e.body.to_string().contains("parse:[\\\"roles\\\"] and roles"));
        let e = allowed_mentions(&json!({"parse": ["channels"]})).unwrap_err();
        assert_eq!(code_at(&e, "/allowed_mentions/parse/0"), "ENUM_TYPE_COERCE");
    }

    #[test]
    fn webhook_names_refuse_clyde_and_discord() {
        assert!(webhook_name("name", "Persona").is_ok());
        for bad in ["clyde", "MyClydeBot", "DISCORD helper"] {
            let e = webhook_name("username", bad).unwrap_err();
            assert_eq!(code_at(&e, "/username"), "USERNAME_INVALID_CONTAINS");
        }
        let e = webhook_name("name", "").unwrap_err();
        assert_eq!(code_at(&e, "/name"), "BASE_TYPE_BAD_LENGTH");
        assert!(webhook_name("name", &"x".repeat(81)).is_err());
    }

    #[test]
    fn limits_name_the_side_they_break() {
        assert_eq!(limit(50, 50).unwrap(), 50);
        assert_eq!(code_at(&limit(0, 50).unwrap_err(), "/limit"), "NUMBER_TYPE_MIN");
        assert_eq!(code_at(&limit(51, 50).unwrap_err(), "/limit"), "NUMBER_TYPE_MAX");
    }

    #[test]
    fn nonce_is_an_integer_or_a_short_string() {
        assert_eq!(nonce(&json!(12345)).unwrap(), Some(json!(12345)));
        assert_eq!(nonce(&json!("a".repeat(25))).unwrap(), Some(json!("a".repeat(25))));
        assert_eq!(nonce(&Value::Null).unwrap(), None);
        let e = nonce(&json!("a".repeat(26))).unwrap_err();
        assert_eq!(code_at(&e, "/nonce"), "BASE_TYPE_MAX_LENGTH");
        for bad in [json!(1.5), json!(true), json!([1])] {
            let e = nonce(&bad).unwrap_err();
            assert_eq!(code_at(&e, "/nonce"), "NONCE_TYPE_INVALID");
        }
    }
}
