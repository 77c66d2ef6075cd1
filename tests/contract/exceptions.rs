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

/// The name of the known quirk that excuses `v`, if one does. The validator sets excused
/// violations aside as it finds them, so a `oneOf` branch failing only on a quirk still matches.
pub fn excuse(v: &Violation) -> Option<&'static str> {
    EXCEPTIONS.iter().find(|e| e.matches(v)).map(|e| e.name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(pointer: &str, message: &str) -> Violation {
        Violation {
            pointer: pointer.into(),
            message: message.into(),
            because: Vec::new(),
        }
    }

    #[test]
    fn a_string_field_error_code_is_excused() {
        let got = excuse(&v(
            "/errors/embeds/0/title/_errors/0/code",
            "expected integer, found string",
        ));
        assert_eq!(got, Some("field error codes are strings"));
    }

    #[test]
    fn a_string_top_level_code_or_another_fault_there_is_not_excused() {
        assert_eq!(excuse(&v("/code", "expected integer, found string")), None);
        assert_eq!(
            excuse(&v("/errors/content/_errors/0/code", "expected integer, found null")),
            None
        );
    }
}
