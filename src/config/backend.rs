//! `[backends]` validated: each `[backends.NAME]` table becomes a [`BackendConfig`] with the
//! settings of its provider (echo, HTTP: OpenAI-compatible or Anthropic, command). Every bad value
//! is reported with its line and field.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::PathBuf;
use std::time::Duration;

use toml::Spanned;

use super::choice::{parse_enum, Choice};
use super::error::Report;
use super::operations::{int, secs};
use super::raw::RawBackend;
use super::{BackendConfig, EchoSettings, Provider};
use crate::secret::Secret;

/// OpenAI-compatible provider names and their default base URLs.
const OPENAI_COMPATIBLE: &[(&str, &str)] = &[
    ("openai", "https://api.openai.com/v1"),
    ("perplexity", "https://api.perplexity.ai"),
    ("openrouter", "https://openrouter.ai/api/v1"),
    ("ollama", "http://127.0.0.1:11434/v1"),
    ("vllm", "http://127.0.0.1:8000/v1"),
    ("llamacpp", "http://127.0.0.1:8080/v1"),
];

/// Anthropic's API host (the client appends `/v1/messages`).
const ANTHROPIC_URL: &str = "https://api.anthropic.com";

/// Hosted providers whose default URL needs a key; local servers and custom `base_url`s may not.
const NEEDS_KEY: &[&str] = &["openai", "perplexity", "openrouter", "anthropic"];

/// Fields only the HTTP providers take.
const HTTP_FIELDS: &[&str] = &[
    "base_url",
    "model",
    "api_key_env",
    "api_key_file",
    "tokens",
    "on_truncation",
    "timeouts",
    "retries",
    "anthropic_version",
    "stream_usage",
    "max_tokens_param",
    "temperature",
    "context_tokens",
    "vision",
];

/// Fields only the command provider takes.
const COMMAND_FIELDS: &[&str] = &[
    "program",
    "args",
    "env",
    "cwd",
    "timeout_secs",
    "max_output_bytes",
    "error_patterns",
];

/// Fields only the echo provider takes.
const ECHO_FIELDS: &[&str] = &["reply", "delay_ms", "panic_on"];

/// Fields only the OpenAI-compatible providers take.
const OPENAI_ONLY: &[&str] = &["stream_usage", "max_tokens_param"];

/// What a `[backends.NAME]` table's `provider` word names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ProviderKind {
    /// `echo`.
    Echo,
    /// `openai` and the other OpenAI-compatible names of [`OPENAI_COMPATIBLE`].
    OpenAiCompatible,
    /// `anthropic`.
    Anthropic,
    /// `command`.
    Command,
}

impl Choice for ProviderKind {
    const WHAT: &'static str = "provider";
    const WORDS: &'static [(&'static str, Self)] = &[
        ("echo", ProviderKind::Echo),
        ("openai", ProviderKind::OpenAiCompatible),
        ("anthropic", ProviderKind::Anthropic),
        ("command", ProviderKind::Command),
        ("perplexity", ProviderKind::OpenAiCompatible),
        ("openrouter", ProviderKind::OpenAiCompatible),
        ("ollama", ProviderKind::OpenAiCompatible),
        ("vllm", ProviderKind::OpenAiCompatible),
        ("llamacpp", ProviderKind::OpenAiCompatible),
    ];

    fn fix() -> String {
        let words: Vec<&str> = Self::WORDS.iter().map(|(w, _)| *w).collect();
        format!("known providers: {}", words.join(", "))
    }
}

impl Choice for OnTruncation {
    const WHAT: &'static str = "mode";
    const WORDS: &'static [(&'static str, Self)] = &[
        ("regenerate", OnTruncation::Regenerate),
        ("continue", OnTruncation::Continue),
    ];
}

impl Choice for MaxTokensParam {
    const WHAT: &'static str = "parameter";
    const WORDS: &'static [(&'static str, Self)] = &[
        ("max_tokens", MaxTokensParam::MaxTokens),
        ("max_completion_tokens", MaxTokensParam::MaxCompletionTokens),
    ];
}

/// What an echo backend replies with (`reply`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EchoReply {
    /// The new message(s) (default).
    Last,
    /// The whole prompt.
    Prompt,
}

impl Choice for EchoReply {
    const WHAT: &'static str = "echo reply";
    const WORDS: &'static [(&'static str, Self)] = &[("last", EchoReply::Last), ("prompt", EchoReply::Prompt)];
}

/// `[backends]`: each table validated; a backend with an unknown provider (or a command
/// backend without a program) is left out, its problems reported.
pub(crate) fn backends(
    raw: &BTreeMap<String, Spanned<RawBackend>>,
    err: &mut Report<'_>,
) -> BTreeMap<String, BackendConfig> {
    let mut backends = BTreeMap::new();
    for (name, b) in raw {
        let b = b.get_ref();
        let field = |f: &str| format!("backends.{name}.{f}");
        let kind = parse_enum::<ProviderKind>(Some(&b.provider), field("provider"), "", err);
        if let Some(kind) = kind {
            reject_foreign_fields(name, kind, b, err);
        }
        let provider = match kind {
            None => None,
            Some(ProviderKind::OpenAiCompatible) => {
                Some(Provider::OpenAi(http_settings(name, b.provider.get_ref(), b, err)))
            }
            Some(ProviderKind::Anthropic) => {
                Some(Provider::Anthropic(http_settings(name, b.provider.get_ref(), b, err)))
            }
            Some(ProviderKind::Command) => command_settings(name, b, err).map(Provider::Command),
            Some(ProviderKind::Echo) => {
                let reply = parse_enum(b.reply.as_ref(), field("reply"), "", err).unwrap_or(EchoReply::Last);
                Some(Provider::Echo(EchoSettings {
                    reply_with_prompt: reply == EchoReply::Prompt,
                    delay: Duration::from_millis(b.delay_ms.unwrap_or(0)),
                    panic_on: b.panic_on.clone(),
                }))
            }
        };
        let max_concurrency = int(&field("max_concurrency"), &b.max_concurrency, 4, 1, 10_000, err) as usize;
        let max_queue = int(&field("max_queue"), &b.max_queue, 1_000, 1, 1_000_000, err) as usize;
        if let Some(provider) = provider {
            backends.insert(
                name.clone(),
                BackendConfig {
                    name: name.clone(),
                    provider,
                    max_concurrency,
                    max_queue,
                    vision: b.vision.as_ref().is_some_and(|v| *v.get_ref()),
                },
            );
        }
    }
    backends
}

/// Settings of an HTTP backend (OpenAI-compatible or Anthropic).
#[derive(Debug, Clone, PartialEq)]
pub struct HttpSettings {
    /// The provider name as written (`openai`, `perplexity`, `ollama`, `anthropic`, ...), for logs.
    pub flavor: String,
    /// Base URL without a trailing slash.
    pub base_url: String,
    /// Model name.
    pub model: String,
    /// Where the API key comes from.
    pub api_key: ApiKeySource,
    /// Progressive token limits.
    pub tokens: TokenLadder,
    /// What to do with a reply cut by the token limit.
    pub on_truncation: OnTruncation,
    /// Per-request timeouts.
    pub timeouts: Timeouts,
    /// Retries of transient failures.
    pub retries: RetrySettings,
    /// The `anthropic-version` header (Anthropic only).
    pub anthropic_version: String,
    /// Ask for a usage chunk (`stream_options.include_usage`; OpenAI-compatible only).
    pub stream_usage: bool,
    /// The request field carrying the token limit (OpenAI-compatible only).
    pub max_tokens_param: MaxTokensParam,
    /// Sampling temperature, if set.
    pub temperature: Option<f64>,
    /// The model's context window in tokens: the prompt plus the reply's `max_tokens` must fit.
    pub context_tokens: u32,
}

/// Where an API key comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum ApiKeySource {
    /// No key (local servers).
    None,
    /// An environment variable.
    Env(String),
    /// A file (surrounding whitespace ignored).
    File(PathBuf),
}

impl ApiKeySource {
    /// Reads the key. Errors name the variable or file, never the value.
    pub fn resolve(&self, backend: &str) -> Result<Option<Secret>, String> {
        match self {
            ApiKeySource::None => Ok(None),
            ApiKeySource::Env(var) => match std::env::var(var) {
                Ok(v) if !v.trim().is_empty() => Ok(Some(Secret::new(v.trim()))),
                _ => Err(format!(
                    "backend `{backend}`: environment variable {var} (api_key_env) is not set or empty"
                )),
            },
            ApiKeySource::File(path) => match std::fs::read_to_string(path) {
                Ok(v) if !v.trim().is_empty() => Ok(Some(Secret::new(v.trim()))),
                Ok(_) => Err(format!(
                    "backend `{backend}`: key file {} (api_key_file) is empty",
                    path.display()
                )),
                Err(e) => Err(format!(
                    "backend `{backend}`: cannot read key file {} (api_key_file): {e}",
                    path.display()
                )),
            },
        }
    }
}

/// `tokens = { from, until, step }`: start at `from`; when the reply is cut, ask again with
/// `step` more, up to `until` (regenerate), or continue it `step` tokens at a time until
/// `until` tokens were asked for in all (continue).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenLadder {
    /// First limit.
    pub from: u32,
    /// Last limit, or total budget.
    pub until: u32,
    /// Increment.
    pub step: u32,
}

impl Default for TokenLadder {
    fn default() -> Self {
        Self {
            from: 512,
            until: 2048,
            step: 512,
        }
    }
}

impl TokenLadder {
    /// The limits a regenerating backend tries, in order: `from`, `from + step`, ..., `until`.
    pub fn limits(&self) -> Vec<u32> {
        let mut out = vec![self.from];
        let mut next = self.from;
        while next < self.until {
            next = next.saturating_add(self.step.max(1)).min(self.until);
            out.push(next);
        }
        out
    }
}

/// Most requests one reply may take through the token ladder.
pub const MAX_LADDER_STEPS: usize = 32;

/// What to do when a reply is cut by the token limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnTruncation {
    /// Ask again from scratch with a larger limit (AmiBot's strategy).
    #[default]
    Regenerate,
    /// Ask the model to continue the cut reply, `step` tokens at a time.
    Continue,
}

/// The request field carrying the token limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MaxTokensParam {
    /// `max_tokens` (every OpenAI-compatible server).
    #[default]
    MaxTokens,
    /// `max_completion_tokens` (OpenAI's newer models, which reject `max_tokens`).
    MaxCompletionTokens,
}

/// Per-request timeouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Establishing the TCP/TLS connection.
    pub connect: Duration,
    /// From sending the request to the first text.
    pub first_token: Duration,
    /// The whole request.
    pub total: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(10),
            first_token: Duration::from_secs(60),
            total: Duration::from_secs(300),
        }
    }
}

/// Retries of transient failures (429, 5xx, 529, connection errors, cut streams).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetrySettings {
    /// Attempts per request, the first included.
    pub max_attempts: u32,
    /// Backoff before the second attempt; doubles each time, with jitter.
    pub base_delay: Duration,
    /// Longest backoff; a `retry-after` longer than this is not waited for.
    pub max_delay: Duration,
}

impl Default for RetrySettings {
    fn default() -> Self {
        Self {
            max_attempts: 4,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(20),
        }
    }
}

/// Settings of a command backend (a CLI agent).
#[derive(Debug, Clone, PartialEq)]
pub struct CommandSettings {
    /// The program (a path, or a name looked up in `PATH`).
    pub program: String,
    /// Arguments; `{prompt}` is replaced by the prompt text.
    pub args: Vec<String>,
    /// Extra environment variables.
    pub env: Vec<(String, String)>,
    /// Working directory (troupe's own when `None`).
    pub cwd: Option<PathBuf>,
    /// After this the whole process group is killed.
    pub timeout: Duration,
    /// Most bytes of standard output read.
    pub max_output_bytes: usize,
    /// Output containing any of these is a failure.
    pub error_patterns: Vec<String>,
}

impl CommandSettings {
    /// True when the prompt goes in an argument rather than on standard input.
    pub fn prompt_in_args(&self) -> bool {
        self.args.iter().any(|a| a.contains("{prompt}"))
    }
}

/// Reports every field set in `b` that `provider` does not take.
fn reject_foreign_fields(name: &str, kind: ProviderKind, b: &RawBackend, err: &mut Report<'_>) {
    let provider = b.provider.get_ref();
    let allowed = match kind {
        ProviderKind::Echo => ECHO_FIELDS,
        ProviderKind::Command => COMMAND_FIELDS,
        ProviderKind::OpenAiCompatible | ProviderKind::Anthropic => HTTP_FIELDS,
    };
    for (field, span) in set_fields(b) {
        let openai_only = OPENAI_ONLY.contains(&field) && kind == ProviderKind::Anthropic;
        if openai_only || !allowed.contains(&field) {
            let takes = owners(field);
            err(
                span,
                format!("backends.{name}.{field}"),
                format!("`{field}` does not apply to provider \"{provider}\"; it is for {takes}; remove it"),
            );
        }
    }
}

/// Which providers take a field, for messages.
fn owners(field: &str) -> &'static str {
    if ECHO_FIELDS.contains(&field) {
        "provider \"echo\""
    } else if COMMAND_FIELDS.contains(&field) {
        "provider \"command\""
    } else if OPENAI_ONLY.contains(&field) {
        "OpenAI-compatible providers"
    } else {
        "HTTP providers (OpenAI-compatible and \"anthropic\")"
    }
}

/// The provider-specific fields set in `b`, with their spans where known.
fn set_fields(b: &RawBackend) -> Vec<(&'static str, Option<Range<usize>>)> {
    fn s<T>(v: &Option<Spanned<T>>) -> Option<Option<Range<usize>>> {
        v.as_ref().map(|x| Some(x.span()))
    }
    let fields = [
        ("reply", s(&b.reply)),
        ("delay_ms", b.delay_ms.map(|_| None)),
        ("panic_on", b.panic_on.as_ref().map(|_| None)),
        ("base_url", s(&b.base_url)),
        ("model", s(&b.model)),
        ("api_key_env", s(&b.api_key_env)),
        ("api_key_file", s(&b.api_key_file)),
        ("tokens", s(&b.tokens)),
        ("on_truncation", s(&b.on_truncation)),
        ("timeouts", s(&b.timeouts)),
        ("retries", s(&b.retries)),
        ("anthropic_version", s(&b.anthropic_version)),
        ("stream_usage", s(&b.stream_usage)),
        ("max_tokens_param", s(&b.max_tokens_param)),
        ("context_tokens", s(&b.context_tokens)),
        ("vision", s(&b.vision)),
        ("temperature", s(&b.temperature)),
        ("program", s(&b.program)),
        ("args", s(&b.args)),
        ("env", s(&b.env)),
        ("cwd", s(&b.cwd)),
        ("timeout_secs", s(&b.timeout_secs)),
        ("max_output_bytes", s(&b.max_output_bytes)),
        ("error_patterns", s(&b.error_patterns)),
    ];
    fields
        .into_iter()
        .filter_map(|(f, span)| span.map(|span| (f, span)))
        .collect()
}

/// Validates an HTTP backend (`provider` is `anthropic` or an OpenAI-compatible name).
// Why this is long: one HTTP backend's fields, validated one after another with their precise errors.
fn http_settings(name: &str, provider: &str, b: &RawBackend, err: &mut Report<'_>) -> HttpSettings {
    let field = |f: &str| format!("backends.{name}.{f}");
    let default_url = if provider == "anthropic" {
        ANTHROPIC_URL
    } else {
        OPENAI_COMPATIBLE
            .iter()
            .find(|(n, _)| *n == provider)
            .map_or("", |(_, url)| *url)
    };
    let base_url = match &b.base_url {
        None => default_url.to_string(),
        Some(u) => {
            let url = u.get_ref().trim().trim_end_matches('/');
            if !(url.starts_with("http://") || url.starts_with("https://")) || url.len() <= "https://".len() {
                err(
                    Some(u.span()),
                    field("base_url"),
                    format!("`{}` is not an http(s) URL; e.g. \"{default_url}\"", u.get_ref()),
                );
            }
            url.to_string()
        }
    };
    let model = match &b.model {
        Some(m) if !m.get_ref().trim().is_empty() => m.get_ref().trim().to_string(),
        Some(m) => {
            err(Some(m.span()), field("model"), "the model name is empty".into());
            String::new()
        }
        None => {
            err(
                Some(b.provider.span()),
                field("model"),
                format!(
                    "provider \"{provider}\" needs a `model`, e.g. model = \"{}\"",
                    example_model(provider)
                ),
            );
            String::new()
        }
    };
    let api_key = match (&b.api_key_env, &b.api_key_file) {
        (Some(e), Some(_)) => {
            err(
                Some(e.span()),
                field("api_key_env"),
                "set either api_key_env or api_key_file, not both".into(),
            );
            ApiKeySource::None
        }
        (Some(e), None) if e.get_ref().trim().is_empty() => {
            err(
                Some(e.span()),
                field("api_key_env"),
                "the variable name is empty".into(),
            );
            ApiKeySource::None
        }
        (Some(e), None) => ApiKeySource::Env(e.get_ref().trim().to_string()),
        (None, Some(f)) if f.get_ref().trim().is_empty() => {
            err(Some(f.span()), field("api_key_file"), "the file name is empty".into());
            ApiKeySource::None
        }
        (None, Some(f)) => ApiKeySource::File(PathBuf::from(f.get_ref().trim())),
        (None, None) => {
            if NEEDS_KEY.contains(&provider) && b.base_url.is_none() {
                err(
                    Some(b.provider.span()),
                    field("api_key_env"),
                    format!(
                        "provider \"{provider}\" needs an API key; set api_key_env = \"{}_API_KEY\" or api_key_file = \"PATH\"",
                        provider.to_uppercase()
                    ),
                );
            }
            ApiKeySource::None
        }
    };
    let tokens = tokens(name, b, err);
    let on_truncation = parse_enum(b.on_truncation.as_ref(), field("on_truncation"), "", err).unwrap_or_default();
    let anthropic_version = match &b.anthropic_version {
        None => "2023-06-01".to_string(),
        Some(v) if v.get_ref().trim().is_empty() => {
            err(
                Some(v.span()),
                field("anthropic_version"),
                "the version is empty; e.g. \"2023-06-01\"".into(),
            );
            String::new()
        }
        Some(v) => v.get_ref().trim().to_string(),
    };
    let max_tokens_param =
        parse_enum(b.max_tokens_param.as_ref(), field("max_tokens_param"), "", err).unwrap_or_default();
    let temperature = b.temperature.as_ref().and_then(|t| {
        let v = *t.get_ref();
        if (0.0..=2.0).contains(&v) {
            Some(v)
        } else {
            err(
                Some(t.span()),
                field("temperature"),
                format!("{v} is out of range; use 0 to 2"),
            );
            None
        }
    });
    let context_tokens = context_tokens(name, &model, b, err);
    // Only against a window the operator set: a default is a guess, and the budget never lets
    // the reply take more than half of it anyway.
    if let Some(set) = b.context_tokens.as_ref().filter(|_| tokens.until >= context_tokens) {
        err(
            Some(set.span()),
            field("tokens.until"),
            format!(
                "{} leaves no room for a prompt in the context window ({context_tokens} tokens, context_tokens); lower tokens.until or raise context_tokens",
                tokens.until
            ),
        );
    }
    HttpSettings {
        flavor: provider.to_string(),
        base_url,
        model,
        api_key,
        tokens,
        on_truncation,
        timeouts: timeouts(name, b, err),
        retries: retries(name, b, err),
        anthropic_version,
        stream_usage: b.stream_usage.as_ref().is_none_or(|s| *s.get_ref()),
        max_tokens_param,
        temperature,
        context_tokens,
    }
}

/// Context windows of well-known models, by model-name prefix (the first match wins, so longer
/// prefixes come first). Numbers are the providers' published windows, prompt and reply together.
const KNOWN_CONTEXT_WINDOWS: &[(&str, u32)] = &[
    ("gpt-4.1", 1_000_000),
    ("gpt-4o", 128_000),
    ("gpt-4-turbo", 128_000),
    ("gpt-4", 8_192),
    ("gpt-3.5-turbo", 16_385),
    ("gpt-5", 400_000),
    ("o1", 200_000),
    ("o3", 200_000),
    ("o4", 200_000),
    ("claude", 200_000),
    ("sonar", 127_000),
];

/// The window assumed for a model troupe does not know (local servers are often started with a
/// small one): conservative, so history is trimmed rather than refused.
pub const DEFAULT_CONTEXT_TOKENS: u32 = 8_192;

/// The context window assumed for `model` when `context_tokens` is not set. Matches the name
/// without a vendor prefix (`openai/gpt-4o` on OpenRouter).
pub fn default_context_tokens(model: &str) -> u32 {
    let bare = model.rsplit('/').next().unwrap_or(model).to_ascii_lowercase();
    KNOWN_CONTEXT_WINDOWS
        .iter()
        .find(|(prefix, _)| bare.starts_with(prefix))
        .map_or(DEFAULT_CONTEXT_TOKENS, |(_, n)| *n)
}

/// `context_tokens`: the model's window, at least 512 so some prompt fits beside a reply.
fn context_tokens(name: &str, model: &str, b: &RawBackend, err: &mut Report<'_>) -> u32 {
    let default = u64::from(default_context_tokens(model));
    let field = format!("backends.{name}.context_tokens");
    int(&field, &b.context_tokens, default, 512, 10_000_000, err) as u32
}

/// A plausible model name for an error message's example.
fn example_model(provider: &str) -> &'static str {
    match provider {
        "anthropic" => "claude-sonnet-4-5",
        "perplexity" => "sonar",
        "openrouter" => "openai/gpt-4o-mini",
        "ollama" => "llama3.2",
        "openai" => "gpt-4o-mini",
        _ => "local-model",
    }
}

/// `tokens = { from, until, step }`: each key defaults on its own (`from` 512, `until` the
/// larger of 2048 and `from`, `step` = `from`).
fn tokens(name: &str, b: &RawBackend, err: &mut Report<'_>) -> TokenLadder {
    let Some(t) = &b.tokens else {
        return TokenLadder::default();
    };
    let t_span = t.span();
    let t = t.get_ref();
    const MAX: i64 = 1_000_000;
    let from = int(&format!("backends.{name}.tokens.from"), &t.from, 512, 1, MAX, err) as i64;
    let until = match &t.until {
        None => from.max(2048),
        Some(u) if *u.get_ref() < from => {
            err(
                Some(u.span()),
                format!("backends.{name}.tokens.until"),
                format!(
                    "{} is below `from` ({from}); `until` must be at least `from`",
                    u.get_ref()
                ),
            );
            from
        }
        Some(_) => int(
            &format!("backends.{name}.tokens.until"),
            &t.until,
            from as u64,
            1,
            MAX,
            err,
        ) as i64,
    };
    let step = int(
        &format!("backends.{name}.tokens.step"),
        &t.step,
        from as u64,
        1,
        MAX,
        err,
    ) as i64;
    let ladder = TokenLadder {
        from: from as u32,
        until: until as u32,
        step: step as u32,
    };
    let steps = (ladder.until - ladder.from).div_ceil(ladder.step) as usize + 1;
    if steps > MAX_LADDER_STEPS {
        err(
            Some(t_span),
            format!("backends.{name}.tokens"),
            format!(
                "from {} to {} by {} is {steps} requests; at most {MAX_LADDER_STEPS} are allowed: use a larger step",
                ladder.from, ladder.until, ladder.step
            ),
        );
    }
    ladder
}

/// `timeouts = { connect_secs, first_token_secs, total_secs }`.
fn timeouts(name: &str, b: &RawBackend, err: &mut Report<'_>) -> Timeouts {
    let d = Timeouts::default();
    let Some(t) = &b.timeouts else {
        return d;
    };
    let t = t.get_ref();
    let total = secs(
        &format!("backends.{name}.timeouts.total_secs"),
        &t.total_secs,
        3600.0,
        d.total,
        err,
    );
    let first_default = d.first_token.min(total);
    let first_token = secs(
        &format!("backends.{name}.timeouts.first_token_secs"),
        &t.first_token_secs,
        3600.0,
        first_default,
        err,
    );
    if let Some(s) = &t.first_token_secs {
        if first_token > total {
            err(
                Some(s.span()),
                format!("backends.{name}.timeouts.first_token_secs"),
                format!(
                    "{} is longer than total_secs ({}); the first token must come within the total",
                    s.get_ref(),
                    total.as_secs_f64()
                ),
            );
        }
    }
    Timeouts {
        connect: secs(
            &format!("backends.{name}.timeouts.connect_secs"),
            &t.connect_secs,
            600.0,
            d.connect,
            err,
        ),
        first_token,
        total,
    }
}

/// `retries = { max_attempts, base_delay_ms, max_delay_ms }`.
fn retries(name: &str, b: &RawBackend, err: &mut Report<'_>) -> RetrySettings {
    let d = RetrySettings::default();
    let Some(r) = &b.retries else {
        return d;
    };
    let r = r.get_ref();
    let max_attempts = int(
        &format!("backends.{name}.retries.max_attempts"),
        &r.max_attempts,
        4,
        1,
        10,
        err,
    ) as i64;
    let base = int(
        &format!("backends.{name}.retries.base_delay_ms"),
        &r.base_delay_ms,
        500,
        0,
        60_000,
        err,
    ) as i64;
    let max = int(
        &format!("backends.{name}.retries.max_delay_ms"),
        &r.max_delay_ms,
        20_000.max(base) as u64,
        0,
        600_000,
        err,
    ) as i64;
    if max < base {
        if let Some(m) = &r.max_delay_ms {
            err(
                Some(m.span()),
                format!("backends.{name}.retries.max_delay_ms"),
                format!("{max} is below base_delay_ms ({base}); it must be at least base_delay_ms"),
            );
        }
    }
    RetrySettings {
        max_attempts: max_attempts as u32,
        base_delay: Duration::from_millis(base as u64),
        max_delay: Duration::from_millis(max.max(base) as u64),
    }
}

/// Validates a command backend; `None` when `program` is missing.
fn command_settings(name: &str, b: &RawBackend, err: &mut Report<'_>) -> Option<CommandSettings> {
    let field = |f: &str| format!("backends.{name}.{f}");
    let program = match &b.program {
        Some(p) if !p.get_ref().trim().is_empty() => p.get_ref().trim().to_string(),
        Some(p) => {
            err(Some(p.span()), field("program"), "the program is empty".into());
            return None;
        }
        None => {
            err(
                Some(b.provider.span()),
                field("program"),
                "provider \"command\" needs a `program`, e.g. program = \"claude\" with args = [\"-p\", \"{prompt}\"]"
                    .into(),
            );
            return None;
        }
    };
    let mut env = Vec::new();
    if let Some(e) = &b.env {
        for (k, v) in e.get_ref() {
            if k.is_empty() || k.contains('=') || k.contains('\0') || v.contains('\0') {
                err(
                    Some(e.span()),
                    field("env"),
                    format!("`{k}` is not a valid environment variable name (or its value holds a NUL byte)"),
                );
            } else {
                env.push((k.clone(), v.clone()));
            }
        }
    }
    let cwd = b.cwd.as_ref().map(|c| {
        let path = PathBuf::from(c.get_ref());
        if !path.is_dir() {
            err(
                Some(c.span()),
                field("cwd"),
                format!("`{}` is not a directory", c.get_ref()),
            );
        }
        path
    });
    let error_patterns = b.error_patterns.as_ref().map_or_else(Vec::new, |p| {
        if p.get_ref().iter().any(|s| s.is_empty()) {
            err(
                Some(p.span()),
                field("error_patterns"),
                "an empty pattern would match every output; remove it".into(),
            );
        }
        p.get_ref().iter().filter(|s| !s.is_empty()).cloned().collect()
    });
    let max_output_bytes = int(
        &format!("backends.{name}.max_output_bytes"),
        &b.max_output_bytes,
        256 << 10,
        1,
        64 << 20,
        err,
    ) as i64;
    Some(CommandSettings {
        program,
        args: b.args.as_ref().map_or_else(Vec::new, |a| a.get_ref().clone()),
        env,
        cwd,
        timeout: secs(
            &format!("backends.{name}.timeout_secs"),
            &b.timeout_secs,
            3600.0,
            Duration::from_secs(120),
            err,
        ),
        max_output_bytes: max_output_bytes as usize,
        error_patterns,
    })
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, Provider};

    use super::*;

    fn parse(backend: &str) -> Result<Config, String> {
        let text = format!("[backends.b]\n{backend}\n[[agents]]\nname = \"A\"\nbackend = \"b\"\n");
        Config::parse("agents.toml", &text).map_err(|e| e.to_string())
    }

    fn http(backend: &str) -> HttpSettings {
        match parse(backend).unwrap_or_else(|e| panic!("{e}")).backends["b"]
            .provider
            .clone()
        {
            Provider::OpenAi(s) | Provider::Anthropic(s) => s,
            other => panic!("not an HTTP provider: {other:?}"),
        }
    }

    #[test]
    fn every_openai_compatible_provider_has_a_default_url() {
        for (word, kind) in ProviderKind::WORDS {
            let has_url = OPENAI_COMPATIBLE.iter().any(|(n, _)| n == word);
            assert_eq!(has_url, *kind == ProviderKind::OpenAiCompatible, "{word}");
        }
        assert_eq!(
            OPENAI_COMPATIBLE.len(),
            ProviderKind::WORDS
                .iter()
                .filter(|(_, k)| *k == ProviderKind::OpenAiCompatible)
                .count()
        );
    }

    #[test]
    fn openai_defaults() {
        let s = http("provider = \"openai\"\nmodel = \"gpt-4o-mini\"\napi_key_env = \"OPENAI_API_KEY\"");
        assert_eq!(s.base_url, "https://api.openai.com/v1");
        assert_eq!(s.api_key, ApiKeySource::Env("OPENAI_API_KEY".into()));
        assert_eq!(s.tokens, TokenLadder::default());
        assert_eq!(s.on_truncation, OnTruncation::Regenerate);
        assert_eq!(s.retries, RetrySettings::default());
        assert!(s.stream_usage);
    }

    #[test]
    fn context_windows_default_by_model_name_and_are_validated() {
        let s = http("provider = \"openai\"\nmodel = \"gpt-4o-mini\"\napi_key_env = \"K\"");
        assert_eq!(s.context_tokens, 128_000);
        assert_eq!(default_context_tokens("anthropic/claude-sonnet-4"), 200_000);
        assert_eq!(default_context_tokens("gpt-4-0613"), 8_192);
        assert_eq!(default_context_tokens("llama3.2"), DEFAULT_CONTEXT_TOKENS);
        let s = http("provider = \"llamacpp\"\nmodel = \"qwen\"\ncontext_tokens = 4096");
        assert_eq!(s.context_tokens, 4096);
        let e = parse("provider = \"llamacpp\"\nmodel = \"qwen\"\ncontext_tokens = 100").unwrap_err();
        assert!(
            e.contains("agents.toml:4: backends.b.context_tokens: 100 is out of range; use 512 to 10000000"),
            "{e}"
        );
        let e = parse("provider = \"llamacpp\"\nmodel = \"qwen\"\ncontext_tokens = 1024").unwrap_err();
        assert!(
            e.contains("agents.toml:4: backends.b.tokens.until: 2048 leaves no room for a prompt in the context window (1024 tokens"),
            "{e}"
        );
        // A default window is a guess: a large ladder is not an error against it.
        let s = http("provider = \"llamacpp\"\nmodel = \"qwen\"\ntokens = { from = 8192, until = 8192 }");
        assert_eq!(s.context_tokens, DEFAULT_CONTEXT_TOKENS);
        let e = parse("provider = \"echo\"\ncontext_tokens = 4096").unwrap_err();
        assert!(e.contains("context_tokens"), "{e}");
    }

    #[test]
    fn aliases_get_their_base_url_and_local_ones_need_no_key() {
        let s = http("provider = \"ollama\"\nmodel = \"llama3.2\"");
        assert_eq!(s.base_url, "http://127.0.0.1:11434/v1");
        assert_eq!(s.api_key, ApiKeySource::None);
        let s = http("provider = \"perplexity\"\nmodel = \"sonar\"\napi_key_file = \"/run/pplx\"");
        assert_eq!(s.base_url, "https://api.perplexity.ai");
        // A hosted provider pointed at a custom URL (a proxy, a local server) may go without a key.
        let s = http("provider = \"openai\"\nmodel = \"m\"\nbase_url = \"http://127.0.0.1:9/v1/\"");
        assert_eq!(s.base_url, "http://127.0.0.1:9/v1");
    }

    #[test]
    fn anthropic_settings() {
        let text = "provider = \"anthropic\"\nmodel = \"claude\"\napi_key_env = \"K\"\ntokens = { from = 256, until = 4096, step = 256 }\non_truncation = \"continue\"\ntimeouts = { connect_secs = 2, first_token_secs = 0.5, total_secs = 30 }\nretries = { max_attempts = 3, base_delay_ms = 1, max_delay_ms = 10 }";
        let s = http(text);
        assert_eq!(s.flavor, "anthropic");
        assert_eq!(s.anthropic_version, "2023-06-01");
        assert_eq!(s.tokens.limits().len(), 16);
        assert_eq!(s.on_truncation, OnTruncation::Continue);
        assert_eq!(s.timeouts.first_token, Duration::from_millis(500));
        assert_eq!(s.timeouts.connect, Duration::from_secs(2));
        assert_eq!(s.retries.max_delay, Duration::from_millis(10));
    }

    #[test]
    fn ladder_limits_end_at_until() {
        let l = TokenLadder {
            from: 256,
            until: 1000,
            step: 256,
        };
        assert_eq!(l.limits(), vec![256, 512, 768, 1000]);
        let l = TokenLadder {
            from: 100,
            until: 100,
            step: 1,
        };
        assert_eq!(l.limits(), vec![100]);
    }

    #[test]
    fn missing_model_and_key_are_reported_at_the_provider_line() {
        let e = parse("provider = \"anthropic\"").unwrap_err();
        assert!(
            e.contains("agents.toml:2: backends.b.model: provider \"anthropic\" needs a `model`"),
            "{e}"
        );
        assert!(e.contains("agents.toml:2: backends.b.api_key_env: provider \"anthropic\" needs an API key; set api_key_env = \"ANTHROPIC_API_KEY\""), "{e}");
    }

    #[test]
    fn bad_values_name_line_and_field() {
        let text = "provider = \"openai\"\nmodel = \"m\"\napi_key_env = \"K\"\nbase_url = \"ftp://x\"\ntokens = { from = 0, until = 10, step = 1 }\non_truncation = \"resume\"\ntimeouts = { total_secs = 10, first_token_secs = 20 }\nretries = { max_attempts = 0, base_delay_ms = 100, max_delay_ms = 50 }\ntemperature = 3.5\nmax_tokens_param = \"max\"";
        let e = parse(text).unwrap_err();
        for want in [
            "agents.toml:5: backends.b.base_url: `ftp://x` is not an http(s) URL",
            "agents.toml:6: backends.b.tokens.from: 0 is out of range; use 1 to 1000000",
            "agents.toml:7: backends.b.on_truncation: unknown mode `resume`; use \"regenerate\" or \"continue\"",
            "agents.toml:8: backends.b.timeouts.first_token_secs: 20 is longer than total_secs (10)",
            "agents.toml:9: backends.b.retries.max_attempts: 0 is out of range; use 1 to 10",
            "agents.toml:9: backends.b.retries.max_delay_ms: 50 is below base_delay_ms (100)",
            "agents.toml:10: backends.b.temperature: 3.5 is out of range; use 0 to 2",
            "agents.toml:11: backends.b.max_tokens_param: unknown parameter `max`",
        ] {
            assert!(e.contains(want), "missing {want:?} in:\n{e}");
        }
    }

    #[test]
    fn ladder_must_be_ordered_and_short() {
        let e = parse("provider = \"ollama\"\nmodel = \"m\"\ntokens = { from = 512, until = 256 }").unwrap_err();
        assert!(
            e.contains("agents.toml:4: backends.b.tokens.until: 256 is below `from` (512)"),
            "{e}"
        );
        let e =
            parse("provider = \"ollama\"\nmodel = \"m\"\ntokens = { from = 1, until = 4096, step = 1 }").unwrap_err();
        assert!(
            e.contains("backends.b.tokens: from 1 to 4096 by 1 is 4096 requests; at most 32"),
            "{e}"
        );
    }

    #[test]
    fn both_key_sources_is_an_error() {
        let e = parse("provider = \"openai\"\nmodel = \"m\"\napi_key_env = \"K\"\napi_key_file = \"f\"").unwrap_err();
        assert!(
            e.contains("agents.toml:4: backends.b.api_key_env: set either api_key_env or api_key_file, not both"),
            "{e}"
        );
    }

    #[test]
    fn fields_of_other_providers_are_rejected() {
        let e = parse("provider = \"echo\"\nmodel = \"m\"").unwrap_err();
        assert!(
            e.contains("agents.toml:3: backends.b.model: `model` does not apply to provider \"echo\""),
            "{e}"
        );
        let e = parse(
            "provider = \"anthropic\"\nmodel = \"m\"\napi_key_env = \"K\"\nstream_usage = false\nprogram = \"x\"",
        )
        .unwrap_err();
        assert!(e.contains("agents.toml:5: backends.b.stream_usage: `stream_usage` does not apply to provider \"anthropic\"; it is for OpenAI-compatible providers"), "{e}");
        assert!(
            e.contains("agents.toml:6: backends.b.program: `program` does not apply"),
            "{e}"
        );
    }

    #[test]
    fn command_settings_and_errors() {
        let c = parse("provider = \"command\"\nprogram = \"claude\"\nargs = [\"-p\", \"{prompt}\"]\nenv = { NO_COLOR = \"1\" }\ntimeout_secs = 90\nerror_patterns = [\"Error:\"]").unwrap();
        let Provider::Command(s) = &c.backends["b"].provider else {
            panic!()
        };
        assert!(s.prompt_in_args());
        assert_eq!(s.env, vec![("NO_COLOR".to_string(), "1".to_string())]);
        assert_eq!(s.timeout, Duration::from_secs(90));
        assert_eq!(s.max_output_bytes, 256 << 10);
        let e = parse("provider = \"command\"").unwrap_err();
        assert!(
            e.contains("agents.toml:2: backends.b.program: provider \"command\" needs a `program`"),
            "{e}"
        );
        let e = parse("provider = \"command\"\nprogram = \"q\"\ntimeout_secs = 0\nmax_output_bytes = -1\nerror_patterns = [\"\"]\ncwd = \"/no/such/dir\"").unwrap_err();
        for want in [
            "agents.toml:4: backends.b.timeout_secs: 0 is out of range",
            "agents.toml:5: backends.b.max_output_bytes: -1 is out of range",
            "agents.toml:6: backends.b.error_patterns: an empty pattern would match every output",
            "agents.toml:7: backends.b.cwd: `/no/such/dir` is not a directory",
        ] {
            assert!(e.contains(want), "missing {want:?} in:\n{e}");
        }
    }

    #[test]
    fn readme_backends_example_is_valid() {
        let readme = include_str!("../../README.md");
        let section = &readme[readme.find("## LLM backends").expect("README has the section")..];
        let start = section.find("```toml\n").expect("a toml example") + "```toml\n".len();
        let example = &section[start..start + section[start..].find("```").unwrap()];
        let text = format!("{example}\n[[agents]]\nname = \"A\"\nbackend = \"gpt\"\n");
        let c = Config::parse("README.md", &text).unwrap_or_else(|e| panic!("{e}"));
        let kinds: Vec<&str> = c
            .backends
            .values()
            .map(|b| match b.provider {
                Provider::OpenAi(_) => "openai",
                Provider::Anthropic(_) => "anthropic",
                Provider::Command(_) => "command",
                Provider::Echo(_) => "echo",
            })
            .collect();
        assert_eq!(kinds, ["anthropic", "command", "openai", "openai", "openai"]);
    }

    #[test]
    fn key_errors_name_the_source_never_the_value() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        std::fs::write(&path, "  sk-secret-value\n").unwrap();
        let key = ApiKeySource::File(path.clone()).resolve("b").unwrap().unwrap();
        assert_eq!(key.expose(), "sk-secret-value");
        assert_eq!(format!("{key:?}"), "Secret([redacted])");
        std::fs::write(&path, "\n").unwrap();
        let e = ApiKeySource::File(path).resolve("b").unwrap_err();
        assert!(e.contains("api_key_file") && e.contains("is empty"), "{e}");
        let e = ApiKeySource::Env("TROUPE_TEST_UNSET_KEY_VAR".into())
            .resolve("b")
            .unwrap_err();
        assert!(e.contains("TROUPE_TEST_UNSET_KEY_VAR"), "{e}");
    }
}
