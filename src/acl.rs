//! The Agent Chain Length (ACL) protocol: how deep a chain of agent replies is, and whether to answer.
//!
//! Every message an agent sends carries an embed footer `acl:N • <tagline>`. A human message
//! has chain length 0; an agent's reply has chain length 1 + the chain length of what it
//! answers. Agents stop answering once a chain reaches `max_chain` (default 4), which keeps
//! two agents from talking to each other forever.
//!
//! Safety rules, all pure functions here:
//!
//! - A footer is only ever trusted to *raise* a chain length, never to lower it below what is
//!   already known ([`effective_chain`], [`chain_of_message`]).
//! - A message written by a bot is at least one link of a chain even without a valid footer
//!   ([`chain_of_message`]), so foreign bots that strip or mangle footers cannot reset a chain.
//! - Chain lengths are capped at [`ChainLength::MAX`] (99): exactly the values a footer can
//!   carry, so every length written can be read back.

use std::fmt;

/// What every agent footer starts with.
const FOOTER_TAG: &str = "acl:";

/// The separator between the chain length and the tagline in a footer.
const SEPARATOR: char = '•';

/// The chain length a message written by a bot has at least, whatever its footers say.
const BOT_MINIMUM: ChainLength = ChainLength(1);

/// How many agent messages deep a reply chain is: 0 for a human message, N + 1 for an
/// agent's reply to a chain of length N.
///
/// Always between 0 and [`ChainLength::MAX`] (99), the range a footer can carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "u8", into = "u8")]
pub struct ChainLength(u8);

impl TryFrom<u8> for ChainLength {
    type Error = String;

    fn try_from(n: u8) -> Result<Self, String> {
        ChainLength::new(n).ok_or_else(|| format!("chain length {n} is above {}", ChainLength::MAX.0))
    }
}

impl From<ChainLength> for u8 {
    fn from(c: ChainLength) -> u8 {
        c.0
    }
}

impl ChainLength {
    /// The chain length of a message written by a human.
    pub const HUMAN: ChainLength = ChainLength(0);

    /// The longest chain length there is: the largest number a footer may carry (two digits).
    pub const MAX: ChainLength = ChainLength(99);

    /// The chain length `n`, or `None` when `n` is larger than [`ChainLength::MAX`].
    pub const fn new(n: u8) -> Option<ChainLength> {
        if n <= ChainLength::MAX.0 {
            Some(ChainLength(n))
        } else {
            None
        }
    }

    /// The chain length as a number.
    pub const fn get(self) -> u8 {
        self.0
    }

    /// The chain length of a reply to this message; stays at [`ChainLength::MAX`] once there.
    pub const fn next(self) -> ChainLength {
        if self.0 < ChainLength::MAX.0 {
            ChainLength(self.0 + 1)
        } else {
            ChainLength::MAX
        }
    }
}

impl fmt::Display for ChainLength {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// How long a chain may grow before agents stop answering, unless configured otherwise.
pub const DEFAULT_MAX_CHAIN: ChainLength = ChainLength(4);

/// The tagline agents put after the chain length in their footer, unless configured otherwise.
pub const DEFAULT_TAGLINE: &str = "Sent by a troupe agent";

/// The note an agent adds to a reply that reaches the chain limit.
pub const DEFAULT_COURTESY: &str = "For your information only: this chain has reached its limit, no reply is expected.";

/// The footer text for a message of chain length `n`: `acl:N • tagline`, or just `acl:N` when
/// the tagline is empty or only whitespace.
pub fn footer_text(n: ChainLength, tagline: &str) -> String {
    if tagline.trim().is_empty() {
        format!("{FOOTER_TAG}{n}")
    } else {
        format!("{FOOTER_TAG}{n} {SEPARATOR} {tagline}")
    }
}

/// Reads the chain length from an embed footer text.
///
/// The grammar is strict, so that look-alikes can never pass for a footer:
///
/// - the text starts with exactly the ASCII, lowercase `acl:` (no leading whitespace; `ACL:`,
///   fullwidth letters or colon, and Cyrillic look-alikes are rejected);
/// - then one or two ASCII digits `0`-`9`, right after the colon: no sign, no space, no other
///   script's digits, and no leading zero (`acl:0` is fine, `acl:07` is not), so every chain
///   length has exactly one spelling, the one [`footer_text`] writes;
/// - then the end of the text, any whitespace, or `•`; whatever follows is the tagline and is
///   ignored.
///
/// Three or more digits are rejected rather than read as a large number: see
/// [`ChainLength::MAX`].
pub fn parse_footer(text: &str) -> Result<ChainLength, FooterError> {
    if text.is_empty() {
        return Err(FooterError::new(FooterErrorKind::Empty));
    }
    let rest = text
        .strip_prefix(FOOTER_TAG)
        .ok_or(FooterError::new(FooterErrorKind::MissingTag))?;
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    // ASCII digits are one byte each, so `digits` is a char boundary.
    let (number, after) = rest.split_at(digits);
    match digits {
        0 => return Err(FooterError::new(FooterErrorKind::MissingNumber)),
        1 | 2 => {}
        _ => return Err(FooterError::new(FooterErrorKind::TooManyDigits)),
    }
    if digits == 2 && number.starts_with('0') {
        return Err(FooterError::new(FooterErrorKind::LeadingZero));
    }
    match after.chars().next() {
        None => {}
        Some(c) if c.is_whitespace() || c == SEPARATOR => {}
        Some(_) => return Err(FooterError::new(FooterErrorKind::TrailingText)),
    }
    let value = number.bytes().fold(0u8, |value, digit| value * 10 + (digit - b'0'));
    Ok(ChainLength(value))
}

/// Why an embed footer text carries no chain length.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FooterError {
    kind: FooterErrorKind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FooterErrorKind {
    Empty,
    MissingTag,
    MissingNumber,
    TooManyDigits,
    LeadingZero,
    TrailingText,
}

impl FooterError {
    fn new(kind: FooterErrorKind) -> FooterError {
        FooterError { kind }
    }
}

impl fmt::Display for FooterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            FooterErrorKind::Empty => write!(f, "footer text is empty"),
            FooterErrorKind::MissingTag => {
                write!(f, "footer does not start with \"{FOOTER_TAG}\"")
            }
            FooterErrorKind::MissingNumber => write!(
                f,
                "footer has no chain length right after \"{FOOTER_TAG}\" (expected ASCII digits)"
            ),
            FooterErrorKind::TooManyDigits => write!(
                f,
                "chain length in footer has more than two digits (the largest is {})",
                ChainLength::MAX
            ),
            FooterErrorKind::LeadingZero => {
                write!(f, "chain length in footer has a leading zero")
            }
            FooterErrorKind::TrailingText => write!(
                f,
                "chain length in footer is followed by \
                 something other than a space or \"{SEPARATOR}\""
            ),
        }
    }
}

impl std::error::Error for FooterError {}

/// The chain length of one Discord message, from the footer texts of its embeds (`None` for
/// an embed without a footer) and whether a bot wrote it.
///
/// The result is the highest valid chain length among the footers; invalid footers are
/// ignored. A message written by a bot counts as at least 1 even without a valid footer, so
/// a foreign bot (or one of ours whose footer got lost) still counts as a link in the chain.
/// A human message counts as 0 unless it carries a valid footer: a footer only ever raises
/// the count.
pub fn chain_of_message<'a>(footers: impl IntoIterator<Item = Option<&'a str>>, author_is_bot: bool) -> ChainLength {
    let floor = if author_is_bot { BOT_MINIMUM } else { ChainLength::HUMAN };
    footers
        .into_iter()
        .flatten()
        .filter_map(|text| parse_footer(text).ok())
        .fold(floor, Ord::max)
}

/// The chain length to act on, given every value known for one reply chain: lengths
/// remembered from earlier messages and the one read from the footer.
///
/// The longest wins, so a footer is trusted only to raise the count; with nothing known the
/// chain is [`ChainLength::HUMAN`].
pub fn effective_chain(known: impl IntoIterator<Item = ChainLength>) -> ChainLength {
    longest(known)
}

/// The chain length of a batch of messages answered with one reply: the longest chain in it
/// ([`ChainLength::HUMAN`] for an empty batch). Pass it to [`decide_reply`].
pub fn batch_chain(chains: impl IntoIterator<Item = ChainLength>) -> ChainLength {
    longest(chains)
}

fn longest(chains: impl IntoIterator<Item = ChainLength>) -> ChainLength {
    chains.into_iter().fold(ChainLength::HUMAN, Ord::max)
}

/// What an agent may do about a message it would answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplyDecision {
    /// Reply normally; the reply carries chain length `chain`.
    Send {
        /// The chain length to write in the reply's footer.
        chain: ChainLength,
    },
    /// Reply, but the reply reaches the limit: add the courtesy note (e.g.
    /// [`DEFAULT_COURTESY`]) so other agents know not to answer.
    SendWithCourtesy {
        /// The chain length to write in the reply's footer; equals the limit.
        chain: ChainLength,
    },
    /// Do not reply: the reply would exceed the limit.
    Block {
        /// The chain length the reply would have had (at most [`ChainLength::MAX`]).
        would_be: ChainLength,
    },
}

impl ReplyDecision {
    /// The chain length to write in the reply's footer, or `None` when the reply is blocked.
    pub fn chain(self) -> Option<ChainLength> {
        match self {
            ReplyDecision::Send { chain } | ReplyDecision::SendWithCourtesy { chain } => Some(chain),
            ReplyDecision::Block { .. } => None,
        }
    }
}

/// Whether, and how, to answer a message (or batch, see [`batch_chain`]) of chain length
/// `inbound` when chains may be at most `max` long.
///
/// The reply's chain length is `inbound + 1`: above `max` it is blocked, equal to `max` it is
/// sent with the courtesy note, below it is sent normally.
pub fn decide_reply(inbound: ChainLength, max: ChainLength) -> ReplyDecision {
    if !should_process_inbound(inbound, max) {
        return ReplyDecision::Block {
            would_be: inbound.next(),
        };
    }
    // `inbound < max <= MAX`, so `next` is exact here.
    let chain = inbound.next();
    if chain == max {
        ReplyDecision::SendWithCourtesy { chain }
    } else {
        ReplyDecision::Send { chain }
    }
}

/// Whether a message of chain length `inbound` is worth handing to an agent at all: false
/// when the chain already has `max` links, since any reply would be blocked.
pub fn should_process_inbound(inbound: ChainLength, max: ChainLength) -> bool {
    inbound < max
}

/// The chain length troupe uses for an inbound message: the highest it knows. Footers are
/// trusted only to raise it. `recorded` is what the store remembers for this message, and
/// `replied` what it remembers for the message this one replies to. A bot (or webhook) replying
/// to a message of chain `c` is at least `c + 1`, whatever its footer says, so a forged `acl:0`
/// cannot reset a chain troupe is part of. A human message is not raised by what it replies to:
/// a person stepping in starts a new chain.
pub fn inbound_chain(
    from_footers: ChainLength,
    recorded: Option<ChainLength>,
    author_is_bot: bool,
    replied: Option<ChainLength>,
) -> ChainLength {
    let via_reply = if author_is_bot {
        replied.map(ChainLength::next)
    } else {
        None
    };
    effective_chain([Some(from_footers), recorded, via_reply].into_iter().flatten())
}

/// Whether the store's chain records can raise a message's chain above its footers': for a
/// bot's or webhook's message, or a human's carrying a footer, but not for a message of this
/// troupe's own cast (`from_cast`), whose embed footer troupe wrote from the chain it records
/// for the message (the model cannot write an embed). Every agent sees every message, so this
/// spares each agent two store reads per reply of another agent.
pub fn needs_recorded_chain(from_cast: bool, author_is_bot: bool, from_footers: ChainLength) -> bool {
    !from_cast && (author_is_bot || from_footers > ChainLength::HUMAN)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn chain(n: u8) -> ChainLength {
        ChainLength::new(n).expect("test chain lengths are at most 99")
    }

    fn rejection(text: &str) -> FooterErrorKind {
        parse_footer(text).expect_err("footer should be rejected").kind
    }

    #[test]
    fn only_messages_from_outside_the_cast_that_may_be_in_a_chain_need_the_records() {
        assert!(needs_recorded_chain(false, true, ChainLength::HUMAN), "a foreign bot");
        assert!(
            needs_recorded_chain(false, false, chain(2)),
            "a footer on a human's message"
        );
        assert!(
            !needs_recorded_chain(false, false, ChainLength::HUMAN),
            "a plain human message"
        );
        assert!(!needs_recorded_chain(true, true, chain(3)), "the cast's own reply");
    }

    #[test]
    fn human_is_zero() {
        assert_eq!(ChainLength::HUMAN.get(), 0);
    }

    #[test]
    fn new_caps_at_max() {
        assert_eq!(ChainLength::new(99), Some(ChainLength::MAX));
        assert_eq!(ChainLength::new(100), None);
        assert_eq!(ChainLength::new(255), None);
    }

    #[test]
    fn next_adds_one() {
        assert_eq!(chain(0).next(), chain(1));
        assert_eq!(chain(98).next(), chain(99));
    }

    #[test]
    fn next_saturates_at_max() {
        assert_eq!(ChainLength::MAX.next(), ChainLength::MAX);
    }

    #[test]
    fn display_is_the_number() {
        assert_eq!(chain(7).to_string(), "7");
        assert_eq!(chain(42).to_string(), "42");
    }

    #[test]
    fn order_follows_the_number() {
        assert!(chain(3) < chain(4));
        assert!(chain(10) > chain(9));
    }

    #[test]
    fn default_max_chain_is_four() {
        assert_eq!(DEFAULT_MAX_CHAIN.get(), 4);
    }

    #[test]
    fn footer_with_tagline() {
        assert_eq!(footer_text(chain(2), DEFAULT_TAGLINE), "acl:2 • Sent by a troupe agent");
    }

    #[test]
    fn footer_without_tagline() {
        assert_eq!(footer_text(chain(3), ""), "acl:3");
        assert_eq!(footer_text(chain(3), "  \n"), "acl:3");
    }

    #[test]
    fn parses_every_valid_length() {
        for n in 0..=99 {
            assert_eq!(parse_footer(&format!("acl:{n}")), Ok(chain(n)), "acl:{n}");
            let footer = footer_text(chain(n), DEFAULT_TAGLINE);
            assert_eq!(parse_footer(&footer), Ok(chain(n)), "{footer}");
        }
    }

    #[test]
    fn parses_separators() {
        assert_eq!(parse_footer("acl:1 • tag"), Ok(chain(1)));
        assert_eq!(parse_footer("acl:1•tag"), Ok(chain(1)));
        assert_eq!(parse_footer("acl:1 trailing text"), Ok(chain(1)));
        assert_eq!(parse_footer("acl:12\ttab"), Ok(chain(12)));
        assert_eq!(parse_footer("acl:3\n"), Ok(chain(3)));
    }

    #[test]
    fn rejects_empty() {
        assert_eq!(rejection(""), FooterErrorKind::Empty);
    }

    #[test]
    fn rejects_missing_tag() {
        assert_eq!(rejection("Sent by a troupe agent"), FooterErrorKind::MissingTag);
        assert_eq!(rejection("acl"), FooterErrorKind::MissingTag);
        assert_eq!(rejection("acl1"), FooterErrorKind::MissingTag);
    }

    #[test]
    fn rejects_other_case() {
        assert_eq!(rejection("ACL:1"), FooterErrorKind::MissingTag);
        assert_eq!(rejection("Acl:1"), FooterErrorKind::MissingTag);
    }

    #[test]
    fn rejects_leading_whitespace() {
        assert_eq!(rejection(" acl:1"), FooterErrorKind::MissingTag);
        assert_eq!(rejection("\u{feff}acl:1"), FooterErrorKind::MissingTag);
    }

    #[test]
    fn rejects_look_alike_tags() {
        // Fullwidth letters, Cyrillic "а", fullwidth colon.
        assert_eq!(rejection("ａｃｌ:１"), FooterErrorKind::MissingTag);
        assert_eq!(rejection("\u{430}cl:1"), FooterErrorKind::MissingTag);
        assert_eq!(rejection("acl\u{ff1a}1"), FooterErrorKind::MissingTag);
    }

    #[test]
    fn rejects_missing_number() {
        assert_eq!(rejection("acl:"), FooterErrorKind::MissingNumber);
        assert_eq!(rejection("acl: 1"), FooterErrorKind::MissingNumber);
        assert_eq!(rejection("acl:• tag"), FooterErrorKind::MissingNumber);
    }

    #[test]
    fn rejects_signs() {
        assert_eq!(rejection("acl:-1"), FooterErrorKind::MissingNumber);
        assert_eq!(rejection("acl:+1"), FooterErrorKind::MissingNumber);
    }

    #[test]
    fn rejects_look_alike_digits() {
        // Fullwidth, Arabic-Indic and Devanagari digits.
        assert_eq!(rejection("acl:１"), FooterErrorKind::MissingNumber);
        assert_eq!(rejection("acl:\u{663}"), FooterErrorKind::MissingNumber);
        assert_eq!(rejection("acl:\u{967}"), FooterErrorKind::MissingNumber);
    }

    #[test]
    fn rejects_look_alike_digit_after_ascii_digit() {
        assert_eq!(rejection("acl:1１"), FooterErrorKind::TrailingText);
        assert_eq!(rejection("acl:1\u{663}"), FooterErrorKind::TrailingText);
    }

    #[test]
    fn rejects_too_many_digits() {
        assert_eq!(rejection("acl:100"), FooterErrorKind::TooManyDigits);
        assert_eq!(rejection("acl:007"), FooterErrorKind::TooManyDigits);
        assert_eq!(rejection("acl:99999999999999999999"), FooterErrorKind::TooManyDigits);
    }

    #[test]
    fn rejects_leading_zero() {
        assert_eq!(rejection("acl:00"), FooterErrorKind::LeadingZero);
        assert_eq!(rejection("acl:07"), FooterErrorKind::LeadingZero);
    }

    #[test]
    fn rejects_text_glued_to_number() {
        assert_eq!(rejection("acl:1x"), FooterErrorKind::TrailingText);
        assert_eq!(rejection("acl:1."), FooterErrorKind::TrailingText);
        assert_eq!(rejection("acl:1:2"), FooterErrorKind::TrailingText);
    }

    #[test]
    fn error_names_the_problem() {
        let message = |text| parse_footer(text).expect_err("footer should be rejected").to_string();
        assert_eq!(message(""), "footer text is empty");
        assert_eq!(message("ACL:1"), "footer does not start with \"acl:\"");
        assert!(message("acl:x").contains("no chain length"));
        assert!(message("acl:100").contains("more than two digits"));
        assert!(message("acl:01").contains("leading zero"));
        assert!(message("acl:1x").contains("followed by"));
    }

    #[test]
    fn human_message_without_footer_is_zero() {
        assert_eq!(chain_of_message([], false), ChainLength::HUMAN);
        assert_eq!(chain_of_message([None], false), ChainLength::HUMAN);
    }

    #[test]
    fn bot_message_without_footer_is_one() {
        assert_eq!(chain_of_message([], true), chain(1));
        assert_eq!(chain_of_message([None, Some("junk")], true), chain(1));
    }

    #[test]
    fn bot_footer_zero_still_counts_as_one() {
        assert_eq!(chain_of_message([Some("acl:0")], true), chain(1));
    }

    #[test]
    fn highest_footer_among_embeds_wins() {
        let footers = [Some("acl:2 • a"), None, Some("acl:3 • b"), Some("ACL:9")];
        assert_eq!(chain_of_message(footers, true), chain(3));
    }

    #[test]
    fn forged_footer_on_human_message_only_raises() {
        assert_eq!(chain_of_message([Some("acl:3")], false), chain(3));
        assert_eq!(chain_of_message([Some("acl:-3")], false), ChainLength::HUMAN);
    }

    #[test]
    fn effective_chain_keeps_the_longest() {
        assert_eq!(effective_chain([chain(3), chain(1)]), chain(3));
        assert_eq!(effective_chain([chain(1), chain(3)]), chain(3));
    }

    #[test]
    fn effective_chain_of_nothing_is_human() {
        assert_eq!(effective_chain([]), ChainLength::HUMAN);
    }

    #[test]
    fn batch_chain_is_the_longest() {
        assert_eq!(batch_chain([chain(0), chain(2), chain(1)]), chain(2));
        assert_eq!(batch_chain([]), ChainLength::HUMAN);
    }

    #[test]
    fn replies_below_the_limit_are_sent() {
        for inbound in 0..=2 {
            assert_eq!(
                decide_reply(chain(inbound), DEFAULT_MAX_CHAIN),
                ReplyDecision::Send {
                    chain: chain(inbound + 1)
                }
            );
        }
    }

    #[test]
    fn reply_reaching_the_limit_gets_courtesy() {
        assert_eq!(
            decide_reply(chain(3), DEFAULT_MAX_CHAIN),
            ReplyDecision::SendWithCourtesy { chain: chain(4) }
        );
    }

    #[test]
    fn replies_past_the_limit_are_blocked() {
        assert_eq!(
            decide_reply(chain(4), DEFAULT_MAX_CHAIN),
            ReplyDecision::Block { would_be: chain(5) }
        );
        assert_eq!(
            decide_reply(chain(5), DEFAULT_MAX_CHAIN),
            ReplyDecision::Block { would_be: chain(6) }
        );
    }

    #[test]
    fn inbound_at_the_limit_is_not_processed() {
        let processed: Vec<bool> = (0..=5)
            .map(|n| should_process_inbound(chain(n), DEFAULT_MAX_CHAIN))
            .collect();
        assert_eq!(processed, [true, true, true, true, false, false]);
    }

    #[test]
    fn processing_agrees_with_decision() {
        for max in 0..=99 {
            for inbound in 0..=99 {
                let decision = decide_reply(chain(inbound), chain(max));
                let blocked = matches!(decision, ReplyDecision::Block { .. });
                assert_eq!(should_process_inbound(chain(inbound), chain(max)), !blocked);
            }
        }
    }

    #[test]
    fn max_zero_blocks_everything() {
        assert_eq!(
            decide_reply(ChainLength::HUMAN, chain(0)),
            ReplyDecision::Block { would_be: chain(1) }
        );
    }

    #[test]
    fn block_at_max_saturates() {
        assert_eq!(
            decide_reply(ChainLength::MAX, ChainLength::MAX),
            ReplyDecision::Block {
                would_be: ChainLength::MAX
            }
        );
    }

    #[test]
    fn decision_chain() {
        assert_eq!(ReplyDecision::Send { chain: chain(2) }.chain(), Some(chain(2)));
        assert_eq!(
            ReplyDecision::SendWithCourtesy { chain: chain(4) }.chain(),
            Some(chain(4))
        );
        assert_eq!(ReplyDecision::Block { would_be: chain(5) }.chain(), None);
    }

    proptest::proptest! {
        #[test]
        fn footer_round_trips(n in 0u8..=99, tagline in any::<String>()) {
            let n = chain(n);
            prop_assert_eq!(parse_footer(&footer_text(n, &tagline)), Ok(n));
        }

        #[test]
        fn parse_never_panics(text in any::<String>()) {
            let _ = parse_footer(&text);
        }

        #[test]
        fn parse_never_panics_after_tag(rest in any::<String>()) {
            let _ = parse_footer(&format!("acl:{rest}"));
        }

        #[test]
        fn parsed_lengths_are_in_range(text in "acl:[0-9]{0,4}.{0,3}") {
            if let Ok(n) = parse_footer(&text) {
                prop_assert!(n <= ChainLength::MAX);
            }
        }

        #[test]
        fn footers_only_raise(remembered in 0u8..=99, footer in any::<String>(), bot in any::<bool>()) {
            let remembered = chain(remembered);
            let from_message = chain_of_message([Some(footer.as_str())], bot);
            prop_assert!(effective_chain([remembered, from_message]) >= remembered);
        }
    }

    #[test]
    fn forged_footer_on_a_bot_reply_cannot_reset_the_chain() {
        let c = |n| ChainLength::new(n).unwrap();
        // A webhook replies to an agent message at acl:2 with a forged acl:0: it is at least 3.
        assert_eq!(inbound_chain(c(1), None, true, Some(c(2))), c(3));
        // An honest footer higher than what we know wins.
        assert_eq!(inbound_chain(c(4), None, true, Some(c(2))), c(4));
        // What the store recorded for the message itself also counts.
        assert_eq!(inbound_chain(c(1), Some(c(3)), true, None), c(3));
        // A human stepping in starts again, even when replying to a long chain.
        assert_eq!(
            inbound_chain(ChainLength::HUMAN, None, false, Some(c(3))),
            ChainLength::HUMAN
        );
        assert_eq!(inbound_chain(c(2), None, false, Some(c(3))), c(2));
    }
}
