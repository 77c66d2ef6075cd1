//! Validates a JSON value against a schema of Discord's OpenAPI 3.1 spec (JSON Schema 2020-12),
//! and finds the schema an operation documents for a status.
//!
//! Written here rather than taken from a crate: the spec uses a small, fixed set of keywords
//! (listed in [`KNOWN_KEYWORDS`]; a schema using any other fails loudly, so nothing is skipped
//! silently), only local `$ref`s, and the `jsonschema` crate would add some 40 crates to the
//! build for this one test. `format` is an annotation in 2020-12 and is not asserted.

use std::collections::HashMap;

use regex::Regex;
use serde_json::Value;

/// Every keyword the validator understands or deliberately treats as an annotation.
pub const KNOWN_KEYWORDS: &[&str] = &[
    "$ref",
    "type",
    "const",
    "enum",
    "minLength",
    "maxLength",
    "pattern",
    "minimum",
    "maximum",
    "items",
    "minItems",
    "maxItems",
    "uniqueItems",
    "properties",
    "required",
    "additionalProperties",
    "maxProperties",
    "allOf",
    "anyOf",
    "oneOf",
    // Annotations: they say nothing about validity.
    "description",
    "title",
    "format",
    "contentEncoding",
    "default",
    "deprecated",
    "x-discord-union",
];

/// One way a value breaks its schema.
#[derive(Debug, Clone, PartialEq)]
pub struct Violation {
    /// JSON pointer into the value, e.g. `/author/primary_guild`.
    pub pointer: String,
    /// What is wrong, e.g. `missing required property "flags"`.
    pub message: String,
    /// For a failed `oneOf`/`anyOf`: the violations of the branch that came closest.
    pub because: Vec<Violation>,
}

impl Violation {
    /// This violation and those under it, one per line, indented by depth.
    pub fn lines(&self, depth: usize, out: &mut Vec<String>) {
        let pointer = if self.pointer.is_empty() {
            "(root)"
        } else {
            &self.pointer
        };
        out.push(format!("{}{pointer}: {}", "  ".repeat(depth), self.message));
        for v in &self.because {
            v.lines(depth + 1, out);
        }
    }
}

/// Says which known quirk of the spec excuses a violation, if one does.
pub type Excuse = fn(&Violation) -> Option<&'static str>;

/// What validating a value found.
#[derive(Debug, Default)]
pub struct Checked {
    /// Violations nothing excuses.
    pub violations: Vec<Violation>,
    /// The names of the quirks that excused the others (one entry per use).
    pub excused: Vec<&'static str>,
}

/// The findings of one validation in progress: an excused violation is set aside as it is
/// found, so a `oneOf` branch whose only faults are excused counts as matching.
struct Findings {
    checked: Checked,
    excuse: Excuse,
}

impl Findings {
    fn new(excuse: Excuse) -> Self {
        Self {
            checked: Checked::default(),
            excuse,
        }
    }

    fn push(&mut self, v: Violation) {
        match (self.excuse)(&v) {
            Some(name) => self.checked.excused.push(name),
            None => self.checked.violations.push(v),
        }
    }
}

/// The parsed spec.
pub struct Spec {
    root: Value,
    patterns: std::sync::Mutex<HashMap<String, Regex>>,
    excuse: Excuse,
}

impl Spec {
    /// Wraps a parsed OpenAPI document.
    pub fn new(root: Value) -> Self {
        Self {
            root,
            patterns: std::sync::Mutex::new(HashMap::new()),
            excuse: |_| None,
        }
    }

    /// The same spec, with violations `excuse` names set aside (the spec's known quirks).
    pub fn with_excuses(self, excuse: Excuse) -> Self {
        Self { excuse, ..self }
    }

    /// The operation's `operationId`, or why there is none (path or method not in the spec).
    pub fn operation_id(&self, method: &str, path: &str) -> Result<String, String> {
        let op = self.operation(method, path)?;
        Ok(op["operationId"].as_str().unwrap_or("?").to_string())
    }

    fn operation(&self, method: &str, path: &str) -> Result<&Value, String> {
        let item = self.root["paths"]
            .get(path)
            .ok_or_else(|| format!("the spec has no path {path}"))?;
        item.get(method.to_lowercase())
            .ok_or_else(|| format!("the spec has no {method} {path}"))
    }

    /// The schema the operation documents for `status`: `Ok(None)` when that response has no
    /// JSON body (e.g. 204), `Err` when the spec documents no such status for the operation. An
    /// exact status wins over a range (`4XX`), which wins over `default`, as OpenAPI says.
    pub fn response_schema(&self, method: &str, path: &str, status: u16) -> Result<Option<&Value>, String> {
        let op = self.operation(method, path)?;
        let responses = &op["responses"];
        let range = format!("{}XX", status / 100);
        let response = [status.to_string(), range, "default".to_string()]
            .iter()
            .find_map(|k| responses.get(k.as_str()))
            .ok_or_else(|| {
                let documented: Vec<&String> = responses.as_object().map(|o| o.keys().collect()).unwrap_or_default();
                format!("{status} is not a documented response of {method} {path} (documented: {documented:?})")
            })?;
        let response = self.deref(response)?;
        Ok(response.pointer("/content/application~1json/schema"))
    }

    /// Follows a local `$ref` (`#/components/...`), repeatedly.
    fn deref<'a>(&'a self, mut v: &'a Value) -> Result<&'a Value, String> {
        while let Some(r) = v.get("$ref").and_then(Value::as_str) {
            v = self.resolve(r)?;
        }
        Ok(v)
    }

    fn resolve(&self, reference: &str) -> Result<&Value, String> {
        let pointer = reference
            .strip_prefix('#')
            .ok_or_else(|| format!("non-local $ref {reference}"))?;
        self.root
            .pointer(pointer)
            .ok_or_else(|| format!("unresolvable $ref {reference}"))
    }

    /// Every way `value` breaks `schema` (none when it conforms), and the quirks excused.
    pub fn validate(&self, schema: &Value, value: &Value) -> Checked {
        self.validate_at(schema, value, "")
    }

    fn check(&self, schema: &Value, value: &Value, at: &str, out: &mut Findings) {
        let mut fail = |message: String| out.push(violation(at, message));
        let Some(obj) = schema.as_object() else {
            if schema == &Value::Bool(false) {
                fail("no value is allowed here".to_string());
            }
            return;
        };
        if let Some(unknown) = obj.keys().find(|k| !KNOWN_KEYWORDS.contains(&k.as_str())) {
            fail(format!("schema keyword {unknown:?} is not supported by this validator"));
        }
        if let Some(r) = obj.get("$ref").and_then(Value::as_str) {
            match self.resolve(r) {
                Ok(target) => self.check(target, value, at, out),
                Err(e) => fail(e),
            }
            // A `$ref`'s siblings (e.g. `description`) still apply in 2020-12.
            let rest: serde_json::Map<String, Value> = obj
                .iter()
                .filter(|(k, _)| *k != "$ref")
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            self.check(&Value::Object(rest), value, at, out);
            return;
        }
        if let Some(t) = obj.get("type") {
            let allowed: Vec<&str> = match t {
                Value::String(s) => vec![s.as_str()],
                Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
                _ => Vec::new(),
            };
            if !allowed.iter().any(|t| has_type(value, t)) {
                fail(format!("expected {}, found {}", allowed.join(" or "), describe(value)));
                return;
            }
        }
        if let Some(c) = obj.get("const") {
            if !same(c, value) {
                fail(format!("expected {c}, found {value}"));
            }
        }
        if let Some(e) = obj.get("enum").and_then(Value::as_array) {
            if !e.iter().any(|c| same(c, value)) {
                fail(format!("{value} is not one of {}", Value::Array(e.clone())));
            }
        }
        self.check_scalar(obj, value, at, out);
        self.check_array(obj, value, at, out);
        self.check_object(obj, value, at, out);
        self.check_combinators(obj, value, at, out);
    }

    fn check_scalar(&self, obj: &serde_json::Map<String, Value>, value: &Value, at: &str, out: &mut Findings) {
        let mut fail = |message: String| out.push(violation(at, message));
        if let Some(s) = value.as_str() {
            let len = s.chars().count() as u64;
            if let Some(min) = obj.get("minLength").and_then(Value::as_u64) {
                if len < min {
                    fail(format!("string of {len} characters, shorter than minLength {min}"));
                }
            }
            if let Some(max) = obj.get("maxLength").and_then(Value::as_u64) {
                if len > max {
                    fail(format!("string of {len} characters, longer than maxLength {max}"));
                }
            }
            if let Some(p) = obj.get("pattern").and_then(Value::as_str) {
                let mut cache = self.patterns.lock().expect("pattern cache");
                if !cache.contains_key(p) {
                    match Regex::new(p) {
                        Ok(re) => {
                            cache.insert(p.to_string(), re);
                        }
                        Err(e) => return fail(format!("pattern {p:?} does not compile: {e}")),
                    }
                }
                if !cache[p].is_match(s) {
                    fail(format!("{s:?} does not match pattern {p:?}"));
                }
            }
        }
        if let Some(n) = value.as_f64() {
            if let Some(min) = obj.get("minimum").and_then(Value::as_f64) {
                if n < min {
                    fail(format!("{value} is below minimum {min}"));
                }
            }
            if let Some(max) = obj.get("maximum").and_then(Value::as_f64) {
                if n > max {
                    fail(format!("{value} is above maximum {max}"));
                }
            }
        }
    }

    fn check_array(&self, obj: &serde_json::Map<String, Value>, value: &Value, at: &str, out: &mut Findings) {
        let Some(items) = value.as_array() else { return };
        let n = items.len() as u64;
        if obj.get("minItems").and_then(Value::as_u64).is_some_and(|min| n < min) {
            out.push(violation(at, format!("{n} items, fewer than minItems")));
        }
        if let Some(max) = obj.get("maxItems").and_then(Value::as_u64) {
            if n > max {
                out.push(violation(at, format!("{n} items, more than maxItems {max}")));
            }
        }
        if obj.get("uniqueItems") == Some(&Value::Bool(true)) {
            for (i, a) in items.iter().enumerate() {
                if items[..i].iter().any(|b| same(a, b)) {
                    out.push(violation(
                        &format!("{at}/{i}"),
                        "repeats an earlier item (uniqueItems)".into(),
                    ));
                }
            }
        }
        if let Some(schema) = obj.get("items") {
            for (i, item) in items.iter().enumerate() {
                self.check(schema, item, &format!("{at}/{i}"), out);
            }
        }
    }

    fn check_object(&self, obj: &serde_json::Map<String, Value>, value: &Value, at: &str, out: &mut Findings) {
        let Some(map) = value.as_object() else { return };
        for name in obj.get("required").and_then(Value::as_array).into_iter().flatten() {
            if let Some(name) = name.as_str() {
                if !map.contains_key(name) {
                    out.push(violation(at, format!("missing required property {name:?}")));
                }
            }
        }
        if let Some(max) = obj.get("maxProperties").and_then(Value::as_u64) {
            if map.len() as u64 > max {
                out.push(violation(
                    at,
                    format!("{} properties, more than maxProperties {max}", map.len()),
                ));
            }
        }
        let props = obj.get("properties").and_then(Value::as_object);
        for (key, v) in map {
            let here = format!("{at}/{}", key.replace('~', "~0").replace('/', "~1"));
            match props.and_then(|p| p.get(key)) {
                Some(schema) => self.check(schema, v, &here, out),
                None => match obj.get("additionalProperties") {
                    Some(Value::Bool(false)) => out.push(violation(&here, "property not allowed here".into())),
                    Some(schema @ Value::Object(_)) => self.check(schema, v, &here, out),
                    _ => {}
                },
            }
        }
    }

    fn check_combinators(&self, obj: &serde_json::Map<String, Value>, value: &Value, at: &str, out: &mut Findings) {
        for s in obj.get("allOf").and_then(Value::as_array).into_iter().flatten() {
            self.check(s, value, at, out);
        }
        for (key, exactly_one) in [("anyOf", false), ("oneOf", true)] {
            let Some(branches) = obj.get(key).and_then(Value::as_array) else {
                continue;
            };
            let results: Vec<Checked> = branches.iter().map(|s| self.validate_at(s, value, at)).collect();
            let matching = results.iter().filter(|r| r.violations.is_empty()).count();
            if let Some(first) = results.iter().find(|r| r.violations.is_empty()) {
                out.checked.excused.extend(first.excused.iter().copied());
            }
            if matching == 0 {
                // The branch that came closest explains the failure best.
                let best = results
                    .into_iter()
                    .map(|r| r.violations)
                    .min_by_key(|r| closeness(r, at))
                    .unwrap_or_default();
                out.checked.violations.push(Violation {
                    pointer: at.to_string(),
                    message: format!(
                        "matches none of the {} {key} branches; the closest fails with",
                        branches.len()
                    ),
                    because: best,
                });
            } else if exactly_one && matching > 1 {
                out.push(violation(
                    at,
                    format!("matches {matching} oneOf branches, exactly one allowed"),
                ));
            }
        }
    }

    fn validate_at(&self, schema: &Value, value: &Value, at: &str) -> Checked {
        let mut out = Findings::new(self.excuse);
        self.check(schema, value, at, &mut out);
        out.checked
    }
}

fn violation(at: &str, message: String) -> Violation {
    Violation {
        pointer: at.to_string(),
        message,
        because: Vec::new(),
    }
}

/// How far a failed branch is from matching: a branch of the wrong type for the value (`null`
/// for an object) is farther than any branch of the right type, whatever that one's count.
fn closeness(vs: &[Violation], at: &str) -> usize {
    let wrong_type = vs.iter().any(|v| v.pointer == at && v.message.starts_with("expected "));
    count(vs) + if wrong_type { 1_000_000 } else { 0 }
}

/// Violations counted with those nested under failed combinators.
fn count(vs: &[Violation]) -> usize {
    vs.iter().map(|v| 1 + count(&v.because)).sum()
}

/// Whether `value` is of JSON Schema type `t` (an integer is also a number; 1.0 is an integer).
fn has_type(value: &Value, t: &str) -> bool {
    match t {
        "null" => value.is_null(),
        "boolean" => value.is_boolean(),
        "string" => value.is_string(),
        "array" => value.is_array(),
        "object" => value.is_object(),
        "number" => value.is_number(),
        "integer" => value.is_i64() || value.is_u64() || value.as_f64().is_some_and(|f| f.fract() == 0.0),
        _ => false,
    }
}

/// JSON Schema equality: numbers compare by value (1 == 1.0).
fn same(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) if a.is_number() && b.is_number() => x == y,
        _ => a == b,
    }
}

fn describe(value: &Value) -> String {
    let kind = match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    let text = value.to_string();
    if text.chars().count() > 60 {
        kind.to_string()
    } else {
        format!("{kind} {text}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec() -> Spec {
        Spec::new(json!({
            "paths": {"/things/{id}": {"get": {"operationId": "get_thing", "responses": {
                "200": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Thing"}}}},
                "204": {"description": "none"},
                "4XX": {"$ref": "#/components/responses/Err"}
            }}}},
            "components": {
                "responses": {"Err": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}},
                "schemas": {
                    "Snowflake": {"type": "string", "pattern": "^(0|[1-9][0-9]*)$"},
                    "Error": {"type": "object", "required": ["code", "message"],
                        "properties": {"code": {"type": "integer"}, "message": {"type": "string"}}},
                    "Thing": {"type": "object", "required": ["id", "name"], "properties": {
                        "id": {"$ref": "#/components/schemas/Snowflake"},
                        "name": {"type": "string", "maxLength": 3},
                        "parent": {"oneOf": [{"type": "null"}, {"$ref": "#/components/schemas/Thing"}]},
                        "tags": {"type": "array", "items": {"type": "string"}, "uniqueItems": true},
                        "kind": {"type": "integer", "enum": [1, 2]}
                    }, "additionalProperties": false}
                }
            }
        }))
    }

    fn thing(s: &Spec) -> Value {
        s.response_schema("GET", "/things/{id}", 200).unwrap().unwrap().clone()
    }

    #[test]
    fn a_conforming_value_has_no_violation() {
        let s = spec();
        let v = json!({"id": "12", "name": "abc", "parent": {"id": "1", "name": "p", "parent": null}, "kind": 2.0});
        assert_eq!(s.validate(&thing(&s), &v).violations, vec![]);
    }

    #[test]
    fn each_broken_rule_is_reported_at_its_pointer() {
        let s = spec();
        let v = json!({"id": "012", "name": "abcd", "tags": ["a", "a"], "kind": 3, "extra": 1});
        let got: Vec<(String, String)> = s
            .validate(&thing(&s), &v)
            .violations
            .into_iter()
            .map(|v| (v.pointer, v.message))
            .collect();
        let pointers: Vec<&str> = got.iter().map(|(p, _)| p.as_str()).collect();
        assert!(pointers.contains(&"/id"), "{got:?}");
        assert!(pointers.contains(&"/name"), "{got:?}");
        assert!(pointers.contains(&"/tags/1"), "{got:?}");
        assert!(pointers.contains(&"/kind"), "{got:?}");
        assert!(pointers.contains(&"/extra"), "{got:?}");
    }

    #[test]
    fn a_missing_required_property_and_a_wrong_nested_type_are_found() {
        let s = spec();
        let v = json!({"id": "1", "parent": {"id": 5, "name": "x"}});
        let got = s.validate(&thing(&s), &v).violations;
        assert!(
            got.iter()
                .any(|v| v.pointer.is_empty() && v.message.contains("\"name\"")),
            "{got:?}"
        );
        // The object branch of `parent`'s oneOf explains the failure, not the null branch.
        let parent = got
            .iter()
            .find(|v| v.pointer == "/parent")
            .expect("a /parent violation");
        assert!(parent.because.iter().any(|v| v.pointer == "/parent/id"), "{got:?}");
    }

    #[test]
    fn statuses_fall_back_to_ranges_and_bodiless_responses_have_no_schema() {
        let s = spec();
        assert!(s.response_schema("GET", "/things/{id}", 204).unwrap().is_none());
        let err = s.response_schema("GET", "/things/{id}", 404).unwrap().unwrap().clone();
        assert_eq!(
            s.validate(&err, &json!({"code": 10003, "message": "Unknown"}))
                .violations,
            vec![]
        );
        assert!(!s
            .validate(&err, &json!({"code": "X", "message": "m"}))
            .violations
            .is_empty());
        assert!(s.response_schema("GET", "/things/{id}", 500).is_err());
        assert!(s.response_schema("POST", "/things/{id}", 200).is_err());
        assert!(s.operation_id("GET", "/nothing").is_err());
    }

    #[test]
    fn an_unknown_keyword_is_a_violation_not_ignored() {
        let s = spec();
        let got = s
            .validate(&json!({"type": "string", "contains": {}}), &json!("x"))
            .violations;
        assert_eq!(got.len(), 1, "{got:?}");
    }

    #[test]
    fn a_branch_whose_only_faults_are_excused_matches() {
        let s = spec().with_excuses(|v| (v.pointer == "/code").then_some("codes may be strings"));
        let schema = json!({"oneOf": [{"type": "null"}, {"$ref": "#/components/schemas/Error"}]});
        let checked = s.validate(&schema, &json!({"code": "BASE_TYPE_MAX_LENGTH", "message": "m"}));
        assert!(checked.violations.is_empty(), "{:?}", checked.violations);
        assert_eq!(checked.excused, ["codes may be strings"]);
        assert!(!spec()
            .validate(&schema, &json!({"code": "X", "message": "m"}))
            .violations
            .is_empty());
    }

    #[test]
    fn one_of_needs_exactly_one_branch() {
        let s = spec();
        let schema = json!({"oneOf": [{"type": "integer"}, {"type": "number"}]});
        assert!(s.validate(&schema, &json!(1.5)).violations.is_empty());
        assert!(!s.validate(&schema, &json!(1)).violations.is_empty());
        assert!(!s.validate(&schema, &json!("1")).violations.is_empty());
    }
}
