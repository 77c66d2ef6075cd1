//! Context budgeting: how many tokens a prompt takes, and how it is trimmed to fit the model's
//! context window beside the reply. Pure.
//!
//! Counting is an estimate that errs on the large side, for every provider: an ASCII character
//! is a third of a token (English runs near four characters a token), any other character a
//! whole token (CJK text runs near one a token), and each turn adds [`TURN_OVERHEAD`] for its
//! role, name and separators. A real tokenizer (tiktoken-rs) would be exact for OpenAI models
//! only, adds ~4 MB of vocabulary to the binary and parses it at first use; the estimate covers
//! every backend, and a provider's own overflow error still makes the turn trim harder.

use super::{Prompt, PromptTurn};

/// Tokens a turn costs besides its text (role markers, separators, the `name: ` prefix).
pub const TURN_OVERHEAD: usize = 8;

/// Tokens an image is counted as. Anthropic bills `width × height / 750` tokens and scales
/// images down to about 1.15 megapixels (~1,600 tokens); OpenAI's high detail costs at most
/// ~1,100 for the sizes it scales to. The larger figure, whatever the image's size.
pub const IMAGE_TOKENS: usize = 1_600;

/// Tokens the system prompt costs besides its text.
pub const SYSTEM_OVERHEAD: usize = 8;

/// Ends a message cut to fit the window, so the model (and anyone reading the prompt) sees it.
pub const CUT_MARKER: &str = "\n[… cut here: the rest of this message did not fit the context window]";

/// Added to the system prompt when the newest message was cut, so the reply says so.
pub const CUT_NOTICE: &str = "\n\nThe last message was too long for your context window and was cut: you saw only its start. Say briefly in your reply that you read only the beginning.";

/// A model's context window and the room kept for its reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// The whole window, prompt and reply together.
    pub context_tokens: u32,
    /// The largest `max_tokens` a request of the reply asks for.
    pub reply_tokens: u32,
}

impl Window {
    /// Tokens left for the prompt. The reply never takes more than half the window, so a
    /// token ladder larger than the window still leaves room for a prompt.
    pub fn prompt_budget(self) -> usize {
        let reply = self.reply_tokens.min(self.context_tokens / 2);
        (self.context_tokens - reply) as usize
    }
}

/// Estimated tokens of a text (see the module doc).
pub fn estimate_tokens(text: &str) -> usize {
    let mut cost = Cost::default();
    text.chars().for_each(|c| cost.add(c));
    cost.tokens()
}

/// Estimated tokens of one turn, overhead included.
pub fn turn_tokens(turn: &PromptTurn) -> usize {
    TURN_OVERHEAD + estimate_tokens(&turn.author) + estimate_tokens(&turn.content) + IMAGE_TOKENS * turn.images.len()
}

/// Estimated tokens of a whole prompt.
pub fn prompt_tokens(prompt: &Prompt) -> usize {
    SYSTEM_OVERHEAD + estimate_tokens(&prompt.system) + prompt.turns.iter().map(turn_tokens).sum::<usize>()
}

/// What [`fit`] did to a prompt.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Fit {
    /// Turns dropped, oldest first.
    pub dropped: usize,
    /// The newest turn was cut (with [`CUT_MARKER`]; the system prompt got [`CUT_NOTICE`]).
    pub cut: bool,
}

/// Trims `prompt` to at most `budget` estimated tokens: the oldest turns go first; the system
/// prompt and the newest turn are kept. A newest turn that does not fit alone is cut with
/// [`CUT_MARKER`], and the system prompt tells the model it saw only the start.
pub fn fit(prompt: &mut Prompt, budget: usize) -> Fit {
    let mut total = prompt_tokens(prompt);
    let mut dropped = 0;
    while total > budget && prompt.turns.len() - dropped > 1 {
        total -= turn_tokens(&prompt.turns[dropped]);
        dropped += 1;
    }
    prompt.turns.drain(..dropped);
    if total <= budget {
        return Fit { dropped, cut: false };
    }
    let Some(newest) = prompt.turns.last_mut() else {
        // Only a system prompt, larger than the window: nothing of the conversation to cut.
        return Fit { dropped, cut: false };
    };
    // A harder trim of a prompt already cut keeps one notice and one marker.
    if !prompt.system.ends_with(CUT_NOTICE) {
        prompt.system.push_str(CUT_NOTICE);
    }
    let others = SYSTEM_OVERHEAD + estimate_tokens(&prompt.system) + TURN_OVERHEAD + estimate_tokens(&newest.author);
    let room = budget.saturating_sub(others + estimate_tokens(CUT_MARKER));
    let text = newest.content.strip_suffix(CUT_MARKER).unwrap_or(&newest.content);
    let kept = prefix_within(text, room);
    newest.content = format!("{}{CUT_MARKER}", &text[..kept]);
    Fit { dropped, cut: true }
}

/// Keeps only the newest turn (the last resort when the provider still finds the prompt too long).
pub fn newest_only(prompt: &mut Prompt) {
    let older = prompt.turns.len().saturating_sub(1);
    prompt.turns.drain(..older);
}

/// The byte length of the longest prefix of `text` estimated at most `tokens`.
fn prefix_within(text: &str, tokens: usize) -> usize {
    let mut cost = Cost::default();
    for (i, c) in text.char_indices() {
        cost.add(c);
        if cost.tokens() > tokens {
            return i;
        }
    }
    text.len()
}

/// A running estimate: ASCII characters count a third of a token, others a whole one.
#[derive(Default)]
struct Cost {
    ascii: usize,
    other: usize,
}

impl Cost {
    fn add(&mut self, c: char) {
        if c.is_ascii() {
            self.ascii += 1;
        } else {
            self.other += 1;
        }
    }

    fn tokens(&self) -> usize {
        self.ascii.div_ceil(3) + self.other
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::Role;

    fn turn(author: &str, content: &str) -> PromptTurn {
        PromptTurn {
            role: Role::User,
            author: author.into(),
            content: content.into(),
            images: Vec::new(),
        }
    }

    fn prompt(turns: Vec<PromptTurn>) -> Prompt {
        Prompt {
            agent: "Ada".into(),
            system: "You are Ada.".into(),
            turns,
        }
    }

    #[test]
    fn counting_errs_on_the_large_side() {
        assert_eq!(estimate_tokens(""), 0);
        assert_eq!(estimate_tokens("abc"), 1);
        assert_eq!(estimate_tokens("abcd"), 2);
        // One token per non-ASCII character: CJK and emoji are never undercounted.
        assert_eq!(estimate_tokens("日本語"), 3);
        assert_eq!(estimate_tokens("é!"), 2);
        // "Hello, how are you today?" is 7 tokens for OpenAI's tokenizers.
        assert!(estimate_tokens("Hello, how are you today?") >= 7);
        assert_eq!(turn_tokens(&turn("bob", "abcdef")), TURN_OVERHEAD + 1 + 2);
        let p = prompt(vec![turn("bob", "abcdef")]);
        assert_eq!(prompt_tokens(&p), SYSTEM_OVERHEAD + 4 + TURN_OVERHEAD + 3);
        let mut with_image = turn("bob", "abcdef");
        with_image.images.push(crate::llm::PromptImage {
            media_type: "image/png".into(),
            base64: "AAAA".into(),
        });
        assert_eq!(turn_tokens(&with_image), TURN_OVERHEAD + 1 + 2 + IMAGE_TOKENS);
    }

    #[test]
    fn the_reply_keeps_its_room_but_never_more_than_half() {
        let w = Window {
            context_tokens: 8192,
            reply_tokens: 2048,
        };
        assert_eq!(w.prompt_budget(), 6144);
        let w = Window {
            context_tokens: 1024,
            reply_tokens: 4096,
        };
        assert_eq!(w.prompt_budget(), 512);
    }

    #[test]
    fn a_prompt_that_fits_is_untouched() {
        let mut p = prompt(vec![turn("a", "one"), turn("b", "two")]);
        let before = p.clone();
        let budget = prompt_tokens(&p);
        assert_eq!(fit(&mut p, budget), Fit::default());
        assert_eq!(p, before);
    }

    #[test]
    fn history_is_trimmed_oldest_first_and_the_newest_turn_kept() {
        let turns: Vec<_> = (0..6)
            .map(|i| turn("a", &format!("message {i} {}", "x".repeat(60))))
            .collect();
        let mut p = prompt(turns);
        let budget = prompt_tokens(&p) - 2 * turn_tokens(&p.turns[0]);
        let f = fit(&mut p, budget);
        assert_eq!(f, Fit { dropped: 2, cut: false });
        assert!(p.turns[0].content.starts_with("message 2"));
        assert!(p.turns.last().unwrap().content.starts_with("message 5"));
        assert_eq!(p.system, "You are Ada.");
        assert!(prompt_tokens(&p) <= budget);
        // A budget too small for any history keeps the newest turn alone.
        let budget = prompt_tokens(&prompt(vec![p.turns[3].clone()]));
        assert_eq!(fit(&mut p, budget), Fit { dropped: 3, cut: false });
        assert_eq!(p.turns.len(), 1);
        assert!(p.turns[0].content.starts_with("message 5"));
    }

    #[test]
    fn a_single_message_larger_than_the_window_is_cut_with_a_marker() {
        let huge = format!("START {}", "word ".repeat(10_000));
        let mut p = prompt(vec![turn("a", "old"), turn("alice", &huge)]);
        let f = fit(&mut p, 500);
        assert_eq!(f, Fit { dropped: 1, cut: true });
        assert_eq!(p.turns.len(), 1);
        let kept = &p.turns[0].content;
        assert!(kept.starts_with("START word"), "{kept}");
        assert!(kept.ends_with(CUT_MARKER));
        assert!(p.system.ends_with(CUT_NOTICE));
        assert!(prompt_tokens(&p) <= 500, "{}", prompt_tokens(&p));
        assert!(prompt_tokens(&p) > 450, "the cut keeps as much as fits");
    }

    #[test]
    fn a_harder_trim_of_a_cut_prompt_cuts_again_with_one_marker_and_one_notice() {
        let mut p = prompt(vec![turn("alice", &"word ".repeat(2000))]);
        assert!(fit(&mut p, 400).cut);
        let first = p.turns[0].content.len();
        assert!(fit(&mut p, 200).cut);
        assert!(p.turns[0].content.len() < first);
        assert_eq!(p.turns[0].content.matches(CUT_MARKER).count(), 1);
        assert_eq!(p.system.matches(CUT_NOTICE).count(), 1);
        assert!(prompt_tokens(&p) <= 200);
    }

    #[test]
    fn cutting_never_splits_a_character() {
        let mut p = prompt(vec![turn("a", &"日本語".repeat(1000))]);
        assert!(fit(&mut p, 200).cut);
        let kept = p.turns[0].content.strip_suffix(CUT_MARKER).unwrap();
        assert!(kept.chars().all(|c| "日本語".contains(c)) && !kept.is_empty());
    }

    #[test]
    fn a_window_smaller_than_the_system_prompt_leaves_only_the_marker() {
        let mut p = prompt(vec![turn("a", "hello there")]);
        assert!(fit(&mut p, 10).cut);
        assert_eq!(p.turns[0].content, CUT_MARKER);
    }

    #[test]
    fn newest_only_keeps_the_last_turn() {
        let mut p = prompt(vec![turn("a", "1"), turn("b", "2"), turn("c", "3")]);
        newest_only(&mut p);
        assert_eq!(p.turns, vec![turn("c", "3")]);
        let mut empty = prompt(Vec::new());
        newest_only(&mut empty);
        assert!(empty.turns.is_empty());
    }
}
