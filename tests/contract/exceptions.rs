//! The spec's own known quirks: places where Discord's OpenAPI spec disagrees with Discord's
//! documentation (or with what Discord's API is documented to send), each with its reason. A
//! violation is excused only when an entry here matches it; every entry must cite Discord's
//! documentation, never what the sandbox happens to do.

use regex::Regex;

use super::schema::Violation;

/// One known quirk of the spec.
pub struct Exception {
    /// Short name, printed when the exception is used.
    pub name: &'static str,
    /// Regex over the violation's JSON pointer.
    pub pointer: &'static str,
    /// Text the violation's message contains.
    pub message: &'static str,
    /// Why Discord's documentation says the value is right although the spec says otherwise.
    pub why: &'static str,
}

/// The list. Keep it short: each entry weakens the check.
pub const EXCEPTIONS: &[Exception] = &[Exception {
    name: "field error codes are strings",
    pointer: r"^/errors(/[^/]+)*/_errors/\d+/code$",
    message: "expected integer, found string",
    why: "Discord's docs (Topics > Opcodes and Status Codes, \"Example JSON Error Response\") show field-level \
          errors as {\"code\": \"BASE_TYPE_REQUIRED\", \"message\": ...}: string codes. The spec \
          reuses its top-level `Error` schema, whose `code` is an integer, for them.",
}];

impl Exception {
    fn matches(&self, v: &Violation) -> bool {
        v.message.contains(self.message)
            && Regex::new(self.pointer)
                .expect("exception pointer regex")
                .is_match(&v.pointer)
    }
}

/// Splits violations into those no exception explains and the names of the exceptions used. A
/// failed `oneOf`/`anyOf` is excused when everything its closest branch failed on is.
pub fn apply(violations: Vec<Violation>, used: &mut Vec<&'static str>) -> Vec<Violation> {
    let mut kept = Vec::new();
    for mut v in violations {
        if let Some(e) = EXCEPTIONS.iter().find(|e| e.matches(&v)) {
            used.push(e.name);
            continue;
        }
        if !v.because.is_empty() {
            v.because = apply(std::mem::take(&mut v.because), used);
            if v.because.is_empty() {
                continue;
            }
        }
        kept.push(v);
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(pointer: &str, message: &str, because: Vec<Violation>) -> Violation {
        Violation {
            pointer: pointer.into(),
            message: message.into(),
            because,
        }
    }

    #[test]
    fn a_string_field_error_code_is_excused_with_the_one_of_around_it() {
        let inner = v(
            "/errors/content/_errors/0/code",
            "expected integer, found string",
            vec![],
        );
        let mut used = Vec::new();
        let kept = apply(vec![v("/errors", "matches none", vec![inner])], &mut used);
        assert!(kept.is_empty(), "{kept:?}");
        assert_eq!(used, ["field error codes are strings"]);
    }

    #[test]
    fn a_string_top_level_code_is_not_excused() {
        let mut used = Vec::new();
        let kept = apply(vec![v("/code", "expected integer, found string", vec![])], &mut used);
        assert_eq!(kept.len(), 1);
        assert!(used.is_empty());
    }
}
