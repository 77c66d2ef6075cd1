//! Request bodies for the OpenAI-compatible chat completions API and the Anthropic Messages API,
//! built from a [`Prompt`]. Pure.
//!
//! Both APIs see the same conversation: the system prompt, then the turns with consecutive
//! turns of one role merged (Anthropic wants alternating roles) and other speakers' names
//! prefixed (`alice: hello`), since several people talk in one channel.
//!
//! Images ([`PromptImage`], only on turns of a backend with `vision = true`) go inline as base64
//! in both: OpenAI-compatible `image_url` content parts with a `data:` URL, and Anthropic `image`
//! blocks with a `base64` source (placed before the text, as Anthropic advises). Not the CDN
//! URL: Discord's expire within a day, the sandbox's are local, and troupe has already checked
//! and bounded the bytes. A turn without images keeps its content a plain string.

use serde_json::{json, Value};

use super::progressive::Step;
use super::{Prompt, PromptImage, Role};
use crate::config::{HttpSettings, MaxTokensParam};

/// Sent after a cut reply to ask an OpenAI-compatible model to go on (their chat API has no
/// assistant prefill).
pub const CONTINUE_INSTRUCTION: &str =
    "Your previous reply was cut off by the length limit. Continue it exactly where it \
     stopped, without repeating anything and without any preamble.";

/// Stands in for a missing first user turn (Anthropic requires the conversation to start with one).
const CONVERSATION_START: &str = "(the conversation starts)";

/// Which API a request is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// `POST {base_url}/chat/completions`.
    OpenAi,
    /// `POST {base_url}/v1/messages`.
    Anthropic,
}

impl Dialect {
    /// The endpoint for a base URL.
    pub fn url(self, base_url: &str) -> String {
        match self {
            Dialect::OpenAi => format!("{base_url}/chat/completions"),
            Dialect::Anthropic => format!("{base_url}/v1/messages"),
        }
    }

    /// The request body for one step.
    pub fn body(self, s: &HttpSettings, prompt: &Prompt, step: &Step, include_usage: bool) -> Value {
        match self {
            Dialect::OpenAi => openai_body(s, prompt, step, include_usage),
            Dialect::Anthropic => anthropic_body(s, prompt, step),
        }
    }

    /// The whole reply after a continuation. Anthropic continues the prefill (sent without its
    /// trailing whitespace, which the API rejects) exactly, leading space included. An
    /// OpenAI-compatible model answers in a new message, which never starts with the space a
    /// token in the middle of a reply carries: see [`join_continuation`].
    pub fn join(self, so_far: &str, continuation: &str) -> String {
        match self {
            Dialect::OpenAi => join_continuation(so_far, continuation),
            Dialect::Anthropic => format!("{}{continuation}", so_far.trim_end()),
        }
    }
}

/// Joins a cut reply and its continuation sent as a new message. Whitespace on either side is
/// kept as it is. Otherwise a space goes in after the end of a sentence or clause
/// (`Alice.` + `You` → `Alice. You`, but `3.` + `14` stays `3.14`) and before a capital after a
/// letter (`Alice` + `The`); anything else (`bro` + `wn`, `foo` + `()`) is a word cut in the
/// middle and is glued back.
pub fn join_continuation(so_far: &str, continuation: &str) -> String {
    let (Some(last), Some(first)) = (so_far.chars().next_back(), continuation.chars().next()) else {
        return format!("{so_far}{continuation}");
    };
    let before_last = so_far.chars().rev().nth(1);
    let after_clause = matches!(last, '.' | '!' | '?' | ',' | ';' | ':' | ')' | '"' | '”' | '’')
        && (first.is_alphanumeric() || matches!(first, '(' | '"' | '“' | '*' | '_' | '`'))
        && !(last == '.' && first.is_ascii_digit() && before_last.is_some_and(|c| c.is_ascii_digit()));
    let new_word = last.is_alphabetic() && first.is_uppercase();
    if after_clause || new_word {
        format!("{so_far} {continuation}")
    } else {
        format!("{so_far}{continuation}")
    }
}

/// The turns as `(role, content, images)` messages, consecutive roles merged.
pub fn messages(prompt: &Prompt) -> Vec<(Role, String, Vec<PromptImage>)> {
    let mut out: Vec<(Role, String, Vec<PromptImage>)> = Vec::new();
    for t in &prompt.turns {
        let content = match t.role {
            Role::User if !t.author.is_empty() => format!("{}: {}", t.author, t.content),
            _ => t.content.clone(),
        };
        match out.last_mut() {
            Some((role, text, images)) if *role == t.role => {
                text.push('\n');
                text.push_str(&content);
                images.extend(t.images.iter().cloned());
            }
            _ => out.push((t.role, content, t.images.clone())),
        }
    }
    out
}

/// An OpenAI-compatible message's `content`: the text, or with images, content parts.
fn openai_content(text: String, images: &[PromptImage]) -> Value {
    if images.is_empty() {
        return json!(text);
    }
    let mut parts = vec![json!({"type": "text", "text": text})];
    parts.extend(images.iter().map(
        |i| json!({"type": "image_url", "image_url": {"url": format!("data:{};base64,{}", i.media_type, i.base64)}}),
    ));
    Value::Array(parts)
}

/// An Anthropic message's `content`: the text, or with images, image blocks then a text block.
fn anthropic_content(text: String, images: &[PromptImage]) -> Value {
    if images.is_empty() {
        return json!(text);
    }
    let mut blocks: Vec<Value> = images
        .iter()
        .map(|i| json!({"type": "image", "source": {"type": "base64", "media_type": i.media_type, "data": i.base64}}))
        .collect();
    blocks.push(json!({"type": "text", "text": text}));
    Value::Array(blocks)
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::User => "user",
        Role::Assistant => "assistant",
    }
}

fn openai_body(s: &HttpSettings, prompt: &Prompt, step: &Step, include_usage: bool) -> Value {
    let mut msgs = Vec::new();
    if !prompt.system.trim().is_empty() {
        msgs.push(json!({"role": "system", "content": prompt.system}));
    }
    for (role, content, images) in messages(prompt) {
        msgs.push(json!({"role": role_name(role), "content": openai_content(content, &images)}));
    }
    if let Some(so_far) = &step.continue_from {
        msgs.push(json!({"role": "assistant", "content": so_far}));
        msgs.push(json!({"role": "user", "content": CONTINUE_INSTRUCTION}));
    }
    let limit_field = match s.max_tokens_param {
        MaxTokensParam::MaxTokens => "max_tokens",
        MaxTokensParam::MaxCompletionTokens => "max_completion_tokens",
    };
    let mut body = json!({
        "model": s.model,
        "messages": msgs,
        "stream": true,
        limit_field: step.max_tokens,
    });
    if include_usage {
        body["stream_options"] = json!({"include_usage": true});
    }
    if let Some(t) = s.temperature {
        body["temperature"] = json!(t);
    }
    body
}

fn anthropic_body(s: &HttpSettings, prompt: &Prompt, step: &Step) -> Value {
    let mut msgs: Vec<Value> = Vec::new();
    let turns = messages(prompt);
    if turns.first().is_none_or(|(role, _, _)| *role != Role::User) {
        msgs.push(json!({"role": "user", "content": CONVERSATION_START}));
    }
    for (role, content, images) in turns {
        msgs.push(json!({"role": role_name(role), "content": anthropic_content(content, &images)}));
    }
    if let Some(so_far) = &step.continue_from {
        msgs.push(json!({"role": "assistant", "content": so_far.trim_end()}));
    }
    let mut body = json!({
        "model": s.model,
        "max_tokens": step.max_tokens,
        "messages": msgs,
        "stream": true,
    });
    if !prompt.system.trim().is_empty() {
        body["system"] = json!(prompt.system);
    }
    if let Some(t) = s.temperature {
        body["temperature"] = json!(t);
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ApiKeySource, OnTruncation, RetrySettings, Timeouts, TokenLadder};
    use crate::llm::PromptTurn;

    fn settings() -> HttpSettings {
        HttpSettings {
            flavor: "openai".into(),
            base_url: "http://x/v1".into(),
            model: "m".into(),
            api_key: ApiKeySource::None,
            tokens: TokenLadder::default(),
            on_truncation: OnTruncation::Regenerate,
            timeouts: Timeouts::default(),
            retries: RetrySettings::default(),
            anthropic_version: "2023-06-01".into(),
            stream_usage: true,
            max_tokens_param: MaxTokensParam::MaxTokens,
            temperature: None,
            context_tokens: 8_192,
        }
    }

    fn prompt() -> Prompt {
        let t = |role, author: &str, content: &str| PromptTurn {
            role,
            author: author.into(),
            content: content.into(),
            images: Vec::new(),
        };
        Prompt {
            agent: "Ada".into(),
            system: "You are Ada.".into(),
            turns: vec![
                t(Role::User, "alice", "hi"),
                t(Role::User, "bob", "hello"),
                t(Role::Assistant, "Ada", "Hello both."),
                t(Role::User, "alice", "2+2?"),
            ],
        }
    }

    fn step(max_tokens: u32, continue_from: Option<&str>) -> Step {
        Step {
            max_tokens,
            continue_from: continue_from.map(String::from),
        }
    }

    #[test]
    fn openai_request() {
        let b = Dialect::OpenAi.body(&settings(), &prompt(), &step(256, None), true);
        assert_eq!(
            b,
            json!({
                "model": "m",
                "messages": [
                    {"role": "system", "content": "You are Ada."},
                    {"role": "user", "content": "alice: hi\nbob: hello"},
                    {"role": "assistant", "content": "Hello both."},
                    {"role": "user", "content": "alice: 2+2?"},
                ],
                "stream": true,
                "max_tokens": 256,
                "stream_options": {"include_usage": true},
            })
        );
        assert_eq!(Dialect::OpenAi.url("http://x/v1"), "http://x/v1/chat/completions");
    }

    #[test]
    fn openai_continuation_and_options() {
        let mut s = settings();
        s.max_tokens_param = MaxTokensParam::MaxCompletionTokens;
        s.temperature = Some(0.5);
        let b = Dialect::OpenAi.body(&s, &prompt(), &step(128, Some("The answer is ")), false);
        let msgs = b["messages"].as_array().unwrap();
        assert_eq!(
            msgs[msgs.len() - 2],
            json!({"role": "assistant", "content": "The answer is "})
        );
        assert_eq!(msgs[msgs.len() - 1]["content"], CONTINUE_INSTRUCTION);
        assert_eq!(b["max_completion_tokens"], 128);
        assert!(b.get("max_tokens").is_none() && b.get("stream_options").is_none());
        assert_eq!(b["temperature"], 0.5);
        assert_eq!(Dialect::OpenAi.join("The answer is ", "4."), "The answer is 4.");
    }

    /// Continuations as OpenAI-compatible models send them: a new message without the leading
    /// space the next token would have carried.
    #[test]
    fn continuations_are_joined_with_the_space_the_cut_took() {
        for (so_far, more, want) in [
            ("Hello Alice.", "You are", "Hello Alice. You are"),
            ("Really?", "Yes", "Really? Yes"),
            ("one,", "two", "one, two"),
            ("said \"hi\"", "and left", "said \"hi\" and left"),
            ("I met Alice", "The next day", "I met Alice The next day"),
            ("the quick bro", "wn fox", "the quick brown fox"),
            ("pi is 3.", "14", "pi is 3.14"),
            ("call foo", "() now", "call foo() now"),
            ("ends with space ", "next", "ends with space next"),
            ("line\n", "next", "line\nnext"),
            ("", "start", "start"),
            ("end.", "", "end."),
            ("Voilà.", "Ensuite", "Voilà. Ensuite"),
        ] {
            assert_eq!(join_continuation(so_far, more), want, "{so_far:?} + {more:?}");
        }
    }

    #[test]
    fn anthropic_request_with_prefill() {
        let b = Dialect::Anthropic.body(&settings(), &prompt(), &step(64, Some("The answer is ")), true);
        assert_eq!(b["system"], "You are Ada.");
        assert_eq!(b["max_tokens"], 64);
        assert!(b.get("stream_options").is_none());
        let msgs = b["messages"].as_array().unwrap();
        assert_eq!(msgs[0], json!({"role": "user", "content": "alice: hi\nbob: hello"}));
        assert_eq!(msgs[3], json!({"role": "assistant", "content": "The answer is"}));
        assert_eq!(Dialect::Anthropic.join("The answer is ", " 4."), "The answer is 4.");
        assert_eq!(
            Dialect::Anthropic.url("https://api.anthropic.com"),
            "https://api.anthropic.com/v1/messages"
        );
    }

    fn with_image(mut p: Prompt) -> Prompt {
        let last = p.turns.last_mut().unwrap();
        last.images.push(PromptImage {
            media_type: "image/png".into(),
            base64: "iVBORw0K".into(),
        });
        p
    }

    #[test]
    fn images_go_as_openai_data_url_parts() {
        let b = Dialect::OpenAi.body(&settings(), &with_image(prompt()), &step(256, None), false);
        let msgs = b["messages"].as_array().unwrap();
        assert_eq!(
            msgs[1]["content"], "alice: hi\nbob: hello",
            "turns without images stay strings"
        );
        assert_eq!(
            msgs[3]["content"],
            json!([
                {"type": "text", "text": "alice: 2+2?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0K"}},
            ])
        );
    }

    #[test]
    fn images_go_as_anthropic_base64_blocks_before_the_text() {
        let b = Dialect::Anthropic.body(&settings(), &with_image(prompt()), &step(256, None), false);
        let msgs = b["messages"].as_array().unwrap();
        assert_eq!(msgs[0]["content"], "alice: hi\nbob: hello");
        assert_eq!(
            msgs[2]["content"],
            json!([
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0K"}},
                {"type": "text", "text": "alice: 2+2?"},
            ])
        );
    }

    #[test]
    fn anthropic_conversation_starts_with_a_user_turn() {
        let mut p = prompt();
        p.turns.drain(..2);
        p.system.clear();
        let b = Dialect::Anthropic.body(&settings(), &p, &step(64, None), false);
        assert_eq!(b["messages"][0]["role"], "user");
        assert_eq!(b["messages"][1]["role"], "assistant");
        assert!(b.get("system").is_none());
    }
}
