//! Splits a reply into parts that each fit in one Discord message, cutting where a reader would.
//!
//! # Rules
//!
//! - Lengths are counted in characters (`char`s), as Discord counts them, never in bytes.
//! - A cut goes at the best boundary that fits, in this order of preference: paragraph (a blank
//!   line), line, sentence end (`.`, `!`, `?` or `…`, maybe followed by closing quotes or
//!   brackets, then whitespace; or `。`, `！`, `？`), word (any whitespace), and last a hard cut
//!   between two grapheme clusters, so emoji with ZWJ, flags and accented letters stay whole.
//! - Of each kind the latest boundary that fits is taken, but a paragraph, line or sentence
//!   boundary is only taken if the part gets at least half the room; otherwise the next kind
//!   is tried. The latest word boundary is taken whatever the part's size, since a short
//!   part is better than a word cut in two; hard cuts are for text with no whitespace.
//! - Whitespace at a cut is dropped: every part is trimmed at the end, and starts after the
//!   blank lines before it, keeping the indentation of its first line (code stays indented).
//!   Whitespace at the start and end of the whole text is dropped the same way, so empty or
//!   whitespace-only text gives no part at all, and no part is ever empty or blank.
//! - Code blocks fenced with ```` ``` ```` survive the cut: a part that ends inside a block
//!   gets a closing fence (`\n` + ```` ``` ````) and the next part reopens the block with the
//!   same language tag (```` ```rust ```` + `\n`). These added fences count toward the limit.
//!   A line is a fence when it starts with three backticks after optional whitespace; each
//!   fence line opens or closes a block. A text ending inside a block gets a closing fence
//!   too, so every part has an even number of fence lines. A language tag is repeated only
//!   if it looks like one (up to 24 of `A-Z a-z 0-9 + - # . _`) and the fences take at most
//!   half the limit; otherwise the block is reopened with a bare fence.
//! - A cut does not split the three backticks of a fence, put backticks from the middle of a
//!   line at the start of a part (where they would become a fence), or leave a code block
//!   empty, as long as any other cut fits. When none does (only with limits of a few dozen
//!   characters, or a run of backticks longer than the room), the closing fence of a part
//!   follows the fence lines as written in that part, so every part stays balanced.
//! - `~~~` fences are plain text here: Discord does not render them as code blocks.
//!
//! Putting the parts back together, less the fences added at the cuts, gives the text back
//! except for whitespace at the cuts: the tests check exactly this.
//!
//! # Small limits
//!
//! A `limit` of 0 counts as 1. Below 16 characters there is no room for fences, so code
//! blocks are not repaired and fence lines are plain text. A part is longer than `limit` only
//! when a single grapheme cluster is (for instance a ZWJ family emoji of 7 characters with a
//! limit of 5): that cluster then goes alone in its part. A cluster that fits the limit but
//! not together with the fences of its code block is sent alone, without them.

use std::ops::Range;

use unicode_segmentation::UnicodeSegmentation;

/// Discord's limit on the length of one message, in characters.
pub const DISCORD_LIMIT: usize = 2000;

/// What opens and closes a code block.
const FENCE: &str = "```";

/// Characters in [`FENCE`].
const FENCE_CHARS: usize = 3;

/// What ends a part cut inside a code block.
const CLOSING_FENCE: &str = "\n```";

/// Characters in [`CLOSING_FENCE`].
const CLOSING_FENCE_CHARS: usize = 4;

/// The smallest limit at which code blocks are repaired across parts.
const MIN_FENCED_LIMIT: usize = 16;

/// The longest language tag that is repeated when a code block is reopened.
const MAX_TAG_CHARS: usize = 24;

/// What may end a sentence.
const SENTENCE_ENDS: [&str; 7] = [".", "!", "?", "…", "。", "！", "？"];

/// What ends a sentence even without whitespace after it (scripts written without spaces).
const SPACELESS_SENTENCE_ENDS: [&str; 3] = ["。", "！", "？"];

/// What may follow a sentence end before the whitespace: closing quotes, brackets, emphasis.
const SENTENCE_CLOSERS: [&str; 10] = ["\"", "'", ")", "]", "”", "’", "»", "*", "_", "」"];

/// How many closers may follow a sentence end.
const MAX_SENTENCE_CLOSERS: usize = 3;

/// Splits `text` into parts of at most `limit` characters each, to send as consecutive
/// Discord messages (pass [`DISCORD_LIMIT`], or less to keep room for a prefix).
///
/// See the [module documentation](self) for where cuts go, what happens to whitespace and
/// code blocks, and how small limits behave. Empty or whitespace-only text gives no parts.
pub fn split_message(text: &str, limit: usize) -> Vec<String> {
    plan(text, limit).iter().map(|part| part.render(text)).collect()
}

/// One part to send: a slice of the text, maybe wrapped in fences that keep a code block open.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Part<'t> {
    /// The language tag of the code block to reopen before the body (empty for a bare
    /// fence), or `None` when the part starts outside a code block.
    reopen: Option<&'t str>,
    /// Where the body is in the text, in bytes.
    body: Range<usize>,
    /// Whether a closing fence goes after the body.
    close: bool,
}

impl Part<'_> {
    fn render(&self, text: &str) -> String {
        let body = text.get(self.body.clone()).unwrap_or_default();
        let mut part = String::with_capacity(body.len() + 2 * MAX_TAG_CHARS);
        if let Some(tag) = self.reopen {
            part.push_str(FENCE);
            part.push_str(tag);
            part.push('\n');
        }
        part.push_str(body);
        if self.close {
            part.push_str(CLOSING_FENCE);
        }
        part
    }
}

/// Decides the parts of `text`; [`split_message`] renders them.
fn plan(text: &str, limit: usize) -> Vec<Part<'_>> {
    let limit = limit.max(1);
    let layout = Layout::new(text, limit >= MIN_FENCED_LIMIT);
    let len = layout.len();
    let text_end = layout.content_end[len];
    let mut parts = Vec::new();
    let mut start = layout.skip_blank(0);
    while start < text_end {
        let reopen = layout.inside(start).then(|| layout.reopen_tag(start, limit));
        let reopen_chars = reopen.map_or(0, |tag| FENCE_CHARS + tag.chars().count() + 1);
        let room = limit.saturating_sub(reopen_chars);
        let cut = layout.find_cut(start, room);
        let body_chars = layout.chars[cut.end] - layout.chars[cut.start];
        let close = layout.needs_close(cut.start, cut.end);
        let fence_chars = reopen_chars + if close { CLOSING_FENCE_CHARS } else { 0 };
        let mut part = Part {
            reopen,
            body: layout.bytes[cut.start]..layout.bytes[cut.end],
            close,
        };
        if body_chars + fence_chars > limit {
            // Only a lone grapheme cluster too long for its fences gets here: send it bare.
            part.reopen = None;
            part.close = false;
        }
        parts.push(part);
        start = cut.next;
    }
    parts
}

/// Where one part's body starts and ends, and where the next part starts, as grapheme
/// boundaries.
#[derive(Clone, Copy, Debug)]
struct Cut {
    start: usize,
    end: usize,
    next: usize,
}

/// The kinds of place a cut may go, best first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Boundary {
    Paragraph = 0,
    Line = 1,
    Sentence = 2,
    Word = 3,
    /// Between two grapheme clusters, whitespace or not.
    Hard = 4,
}

/// The best cut of each kind found so far while scanning a part's room.
#[derive(Default)]
struct Candidates {
    /// The latest tidy cut at a boundary at least as good as each kind of [`Boundary`] but
    /// [`Boundary::Hard`].
    natural: [Option<Cut>; 4],
    /// The latest tidy hard cut.
    hard: Option<Cut>,
    /// The latest cut that keeps fences balanced.
    balanced: Option<Cut>,
    /// The latest cut that fits at all.
    any: Option<Cut>,
}

/// A fence line: where its backticks start and where its line ends, as grapheme indices.
#[derive(Clone, Copy, Debug)]
struct Fence<'t> {
    at: usize,
    line_end: usize,
    tag: &'t str,
}

/// The text cut into grapheme clusters, with what the splitter needs to know at each
/// boundary. Boundary `i` is just before grapheme `i`; boundary `len()` is the end.
struct Layout<'t> {
    text: &'t str,
    /// Byte offset of each boundary.
    bytes: Vec<usize>,
    /// Characters before each boundary.
    chars: Vec<usize>,
    /// Newlines before each boundary.
    newlines: Vec<usize>,
    /// Whether each grapheme is whitespace only.
    blank: Vec<bool>,
    /// The first boundary at or after each boundary that is followed by a non-blank grapheme
    /// (`len()` if none).
    next_content: Vec<usize>,
    /// The last boundary at or before each boundary that follows a non-blank grapheme (0 if
    /// none).
    content_end: Vec<usize>,
    /// The start of the line each boundary is on.
    line_start: Vec<usize>,
    /// Fence lines in text order; empty when fences are not repaired.
    fences: Vec<Fence<'t>>,
    /// Whether code blocks are repaired across parts.
    repair_fences: bool,
}

impl<'t> Layout<'t> {
    fn new(text: &'t str, repair_fences: bool) -> Layout<'t> {
        let mut bytes = Vec::new();
        let mut chars = vec![0];
        let mut newlines = vec![0];
        let mut blank = Vec::new();
        for (at, grapheme) in text.grapheme_indices(true) {
            let is_newline = grapheme.contains('\n');
            bytes.push(at);
            chars.push(chars.last().copied().unwrap_or(0) + grapheme.chars().count());
            newlines.push(newlines.last().copied().unwrap_or(0) + usize::from(is_newline));
            blank.push(grapheme.chars().all(char::is_whitespace));
        }
        bytes.push(text.len());
        let len = blank.len();

        let mut next_content = vec![len; len + 1];
        for i in (0..len).rev() {
            next_content[i] = if blank[i] { next_content[i + 1] } else { i };
        }
        let mut content_end = vec![0; len + 1];
        let mut line_start = vec![0; len + 1];
        for i in 0..len {
            content_end[i + 1] = if blank[i] { content_end[i] } else { i + 1 };
            line_start[i + 1] = if newlines[i + 1] > newlines[i] {
                i + 1
            } else {
                line_start[i]
            };
        }

        let mut layout = Layout {
            text,
            bytes,
            chars,
            newlines,
            blank,
            next_content,
            content_end,
            line_start,
            fences: Vec::new(),
            repair_fences,
        };
        if repair_fences {
            layout.fences = layout.find_fences();
        }
        layout
    }

    /// How many graphemes there are.
    fn len(&self) -> usize {
        self.blank.len()
    }

    fn find_fences(&self) -> Vec<Fence<'t>> {
        let len = self.len();
        let mut fences = Vec::new();
        let mut line = 0;
        while line < len {
            let line_end = self.line_end(line);
            if let Some(at) = self.first_content_of_line(line) {
                let rest = self.slice(at, line_end);
                if let Some(info) = rest.strip_prefix(FENCE) {
                    fences.push(Fence {
                        at,
                        line_end,
                        tag: language_tag(info),
                    });
                }
            }
            line = line_end + 1;
        }
        fences
    }

    /// The boundary before the newline that ends the line of boundary `at` (or the end).
    fn line_end(&self, at: usize) -> usize {
        let line = self.newlines[at];
        let after = self.newlines[at..].partition_point(|&count| count == line);
        // `newlines[at + after]` counts the newline grapheme at `at + after - 1`.
        (at + after).saturating_sub(1)
    }

    /// The first non-blank grapheme of the line boundary `at` is on, if the line has one.
    fn first_content_of_line(&self, at: usize) -> Option<usize> {
        let start = self.line_start[at];
        let content = self.next_content[start];
        (content < self.len() && self.newlines[content] == self.newlines[start]).then_some(content)
    }

    fn slice(&self, start: usize, end: usize) -> &'t str {
        self.text.get(self.bytes[start]..self.bytes[end]).unwrap_or_default()
    }

    /// Where the part after a cut at boundary `at` starts: past the whitespace, keeping the
    /// indentation of the line it starts on.
    fn skip_blank(&self, at: usize) -> usize {
        let content = self.next_content[at];
        if content >= self.len() {
            self.len()
        } else if self.newlines[content] > self.newlines[at] {
            self.line_start[content]
        } else {
            content
        }
    }

    /// The number of fence lines whose backticks start before boundary `at`.
    fn fences_before(&self, at: usize) -> usize {
        self.fences.partition_point(|fence| fence.at < at)
    }

    /// Whether boundary `at` is inside a code block.
    fn inside(&self, at: usize) -> bool {
        self.fences_before(at) % 2 == 1
    }

    /// The last fence line whose backticks start before boundary `at`: inside a code block,
    /// the one that opened it.
    fn last_fence_before(&self, at: usize) -> Option<&Fence<'t>> {
        self.fences_before(at)
            .checked_sub(1)
            .and_then(|index| self.fences.get(index))
    }

    /// The language tag to reopen the code block boundary `at` is in, if it leaves at least
    /// half the limit for the body.
    fn reopen_tag(&self, at: usize, limit: usize) -> &'t str {
        let tag = self.last_fence_before(at).map_or("", |fence| fence.tag);
        let fences = FENCE_CHARS + tag.chars().count() + 1 + CLOSING_FENCE_CHARS;
        if fences <= limit / 2 {
            tag
        } else {
            ""
        }
    }

    /// Characters of a body from `start` to `end`, plus the closing fence it needs.
    fn cost(&self, start: usize, end: usize) -> usize {
        let close = if self.needs_close(start, end) {
            CLOSING_FENCE_CHARS
        } else {
            0
        };
        self.chars[end] - self.chars[start] + close
    }

    /// Whether a body from `start` to `end` needs a closing fence: when the part, reopening
    /// fence included, has an odd number of fence lines as written in the part.
    ///
    /// After cuts that keep fences ([`Layout::keeps_fences`]) this is whether the text is
    /// inside a code block at `end`; after the cuts taken when no such cut fits, counting the
    /// lines as written still keeps the part balanced.
    fn needs_close(&self, start: usize, end: usize) -> bool {
        let mut fence_lines = usize::from(self.inside(start));
        fence_lines += self.fences_before(end) - self.fences_before(start);
        if self.splits_backticks(end) && self.last_fence_before(end).is_some_and(|fence| fence.at >= start) {
            fence_lines -= 1;
        }
        if self.makes_fence(start, end) {
            fence_lines += 1;
        }
        fence_lines % 2 == 1
    }

    /// Whether a part ending at `end` would end with only one or two of a fence's backticks.
    fn splits_backticks(&self, end: usize) -> bool {
        self.last_fence_before(end)
            .is_some_and(|fence| self.bytes[end] < self.bytes[fence.at] + FENCE_CHARS)
    }

    /// Whether a part from `start` to `end` would start with a fence line that is not one in
    /// the text: backticks from the middle of a line.
    fn makes_fence(&self, start: usize, end: usize) -> bool {
        self.repair_fences
            && start < self.len()
            && self.first_content_of_line(start).is_some_and(|first| first < start)
            && self
                .slice(start, self.line_end(start).min(end))
                .trim_start()
                .starts_with(FENCE)
    }

    /// Whether a body ending at `end` and a next part starting at `next` keep every part's
    /// fence lines the fence lines of the text.
    fn keeps_fences(&self, end: usize, next: usize) -> bool {
        !self.splits_backticks(end) && !self.makes_fence(next, self.len())
    }

    /// Whether a cut leaves no empty code block: a part ending right after the fence that
    /// opened its block, or a part starting with the fence that closes its block.
    fn is_tidy(&self, start: usize, end: usize, next: usize) -> bool {
        let ends_at_opener = self.inside(end)
            && self
                .last_fence_before(end)
                .is_some_and(|fence| fence.at >= start && end <= fence.line_end);
        let starts_at_closer = next < self.len()
            && self.inside(next)
            && self.first_content_of_line(next).is_some_and(|first| {
                first >= next && self.fences.binary_search_by_key(&first, |fence| fence.at).is_ok()
            });
        !ends_at_opener && !starts_at_closer
    }

    /// Whether a sentence ends just before boundary `at`.
    fn ends_sentence(&self, at: usize) -> bool {
        let mut index = at;
        for _ in 0..=MAX_SENTENCE_CLOSERS {
            let Some(previous) = index.checked_sub(1) else {
                return false;
            };
            let grapheme = self.slice(previous, index);
            if SENTENCE_ENDS.contains(&grapheme) {
                return true;
            }
            if !SENTENCE_CLOSERS.contains(&grapheme) {
                return false;
            }
            index = previous;
        }
        false
    }

    /// The kind of boundary `at` is, if it is where a cut may go: the start of a whitespace
    /// run, or between two non-blank graphemes.
    fn boundary(&self, at: usize) -> Option<Boundary> {
        let before_blank = self.blank[at - 1];
        let after_blank = self.blank.get(at).copied().unwrap_or(true);
        match (before_blank, after_blank) {
            (true, _) => None,
            (false, true) => {
                let content = self.next_content[at];
                let kind = match self.newlines[content] - self.newlines[at] {
                    0 if self.ends_sentence(at) => Boundary::Sentence,
                    0 => Boundary::Word,
                    1 => Boundary::Line,
                    _ => Boundary::Paragraph,
                };
                Some(kind)
            }
            (false, false) if SPACELESS_SENTENCE_ENDS.contains(&self.slice(at - 1, at)) => Some(Boundary::Sentence),
            (false, false) => Some(Boundary::Hard),
        }
    }

    /// Where to cut a part starting at `start` whose body and closing fence have `room`
    /// characters.
    fn find_cut(&self, start: usize, room: usize) -> Cut {
        let len = self.len();
        let text_end = self.content_end[len];
        if self.cost(start, text_end) <= room {
            return Cut {
                start,
                end: text_end,
                next: len,
            };
        }
        let found = self.candidates(start, room);
        let content = self.next_content[start];
        if found.balanced.is_none() && content > start {
            // The indentation leaves no room for a good cut: drop it.
            return self.find_cut(content, room);
        }
        self.choose(start, room, &found)
    }

    /// Every way to cut a part starting at `start` whose body and closing fence have `room`
    /// characters, short of taking the rest of the text.
    fn candidates(&self, start: usize, room: usize) -> Candidates {
        let mut found = Candidates::default();
        for end in start + 1..self.len() {
            if self.chars[end] - self.chars[start] > room {
                break;
            }
            let Some(kind) = self.boundary(end) else {
                continue;
            };
            let next = self.skip_blank(end);
            if next >= self.len() || self.cost(start, end) > room {
                continue;
            }
            let cut = Cut { start, end, next };
            found.any = Some(cut);
            if !self.keeps_fences(end, next) {
                continue;
            }
            found.balanced = Some(cut);
            if !self.is_tidy(start, end, next) {
                continue;
            }
            if kind == Boundary::Hard {
                found.hard = Some(cut);
            } else {
                for slot in found.natural.iter_mut().skip(kind as usize) {
                    *slot = Some(cut);
                }
            }
        }
        found
    }

    /// The best of the cuts `found` for a part starting at `start` with `room` characters.
    fn choose(&self, start: usize, room: usize, found: &Candidates) -> Cut {
        let half = room / 2;
        let roomy = [Boundary::Paragraph, Boundary::Line, Boundary::Sentence]
            .iter()
            .filter_map(|&kind| found.natural[kind as usize])
            .find(|cut| self.chars[cut.end] - self.chars[start] >= half);
        roomy
            .or(found.natural[Boundary::Word as usize])
            .or(found.hard)
            .or(found.balanced)
            .or(found.any)
            .unwrap_or_else(|| self.single_grapheme(start))
    }

    /// The cut when not even one grapheme fits: the first non-blank grapheme alone.
    fn single_grapheme(&self, start: usize) -> Cut {
        let first = self.next_content[start].min(self.len().saturating_sub(1));
        let end = first + 1;
        Cut {
            start: first,
            end,
            next: self.skip_blank(end),
        }
    }
}

/// The language tag in the info string after a fence's backticks: its first word, if it
/// looks like a language name.
fn language_tag(info: &str) -> &str {
    let word = info
        .trim_start_matches('`')
        .split_whitespace()
        .next()
        .unwrap_or_default();
    let is_tag =
        word.chars().count() <= MAX_TAG_CHARS && word.chars().all(|c| c.is_ascii_alphanumeric() || "+-#._".contains(c));
    if is_tag {
        word
    } else {
        ""
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn chars(text: &str) -> usize {
        text.chars().count()
    }

    fn fence_lines(part: &str) -> usize {
        part.lines().filter(|line| line.trim_start().starts_with(FENCE)).count()
    }

    fn without_whitespace(text: &str) -> String {
        text.chars().filter(|c| !c.is_whitespace()).collect()
    }

    /// Checks the promises every split keeps, for text without grapheme clusters longer than
    /// half the limit.
    fn assert_well_formed(text: &str, limit: usize, parts: &[String]) {
        for part in parts {
            assert!(chars(part) <= limit, "part of {} chars: {part:?}", chars(part));
            assert!(!part.trim().is_empty(), "blank part in {parts:?}");
            if limit >= MIN_FENCED_LIMIT {
                assert_eq!(fence_lines(part) % 2, 0, "unbalanced part: {part:?}");
            }
        }
        assert_body_order(text, limit);
    }

    /// Checks that the bodies of the parts are the text in order, less whitespace at the cuts,
    /// and cut only between grapheme clusters.
    fn assert_body_order(text: &str, limit: usize) {
        let boundaries: Vec<usize> = text
            .grapheme_indices(true)
            .map(|(at, _)| at)
            .chain([text.len()])
            .collect();
        let mut position = 0;
        for part in plan(text, limit) {
            let gap = &text[position..part.body.start];
            assert!(gap.trim().is_empty(), "dropped {gap:?}");
            let is_boundary = |at: usize| boundaries.binary_search(&at).is_ok();
            assert!(is_boundary(part.body.start), "cut inside a grapheme");
            assert!(is_boundary(part.body.end), "cut inside a grapheme");
            assert!(part.body.start < part.body.end);
            position = part.body.end;
        }
        assert!(text[position..].trim().is_empty(), "lost the end of {text:?}");
    }

    /// A rendered part less the fences the splitter added around its body.
    fn without_added_fences<'r>(part: &Part<'_>, rendered: &'r str) -> &'r str {
        let mut body = rendered;
        if let Some(tag) = part.reopen {
            body = body
                .strip_prefix(&format!("{FENCE}{tag}\n"))
                .expect("reopened part starts with a fence");
        }
        if part.close {
            body = body.strip_suffix(CLOSING_FENCE).expect("closed part ends with a fence");
        }
        body
    }

    fn sentence(index: usize) -> String {
        format!("This is sentence number {index} of a fairly ordinary reply.")
    }

    #[test]
    fn empty_text_has_no_parts() {
        assert!(split_message("", DISCORD_LIMIT).is_empty());
    }

    #[test]
    fn blank_text_has_no_parts() {
        assert!(split_message(" \n\t\r\n ", DISCORD_LIMIT).is_empty());
    }

    #[test]
    fn short_text_is_one_part() {
        assert_eq!(split_message("Hello, world!", DISCORD_LIMIT), ["Hello, world!"]);
    }

    #[test]
    fn surrounding_blank_lines_are_dropped() {
        assert_eq!(split_message("\n\n  hi  \n\n", DISCORD_LIMIT), ["  hi"]);
    }

    #[test]
    fn exactly_the_limit_is_one_part() {
        let text = "word ".repeat(400);
        let text = format!("{}x", &text[..1999]);
        assert_eq!(chars(&text), 2000);
        assert_eq!(split_message(&text, DISCORD_LIMIT), [text]);
    }

    #[test]
    fn one_past_the_limit_is_two_parts() {
        let text = format!("{}wordy", "word ".repeat(399));
        assert_eq!(chars(&text), 2000);
        let text = format!("{text}!");
        let parts = split_message(&text, DISCORD_LIMIT);
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[1], "wordy!");
        assert_well_formed(&text, DISCORD_LIMIT, &parts);
    }

    #[test]
    fn counts_characters_not_bytes() {
        let text = "é".repeat(2000);
        assert_eq!(split_message(&text, DISCORD_LIMIT), [text]);
    }

    #[test]
    fn cuts_at_paragraphs() {
        let paragraph = "word ".repeat(160).trim_end().to_string();
        let text = [paragraph.as_str(); 3].join("\n\n");
        let parts = split_message(&text, DISCORD_LIMIT);
        assert_eq!(parts, [format!("{paragraph}\n\n{paragraph}"), paragraph]);
    }

    #[test]
    fn skips_paragraph_that_leaves_a_tiny_part() {
        let line = "a line of text here";
        let text = format!("Hi.\n\n{}", [line; 10].join("\n"));
        let parts = split_message(&text, 100);
        assert!(parts[0].starts_with("Hi.\n\na line"), "{parts:?}");
        assert!(parts[0].ends_with("here"));
        assert_well_formed(&text, 100, &parts);
    }

    #[test]
    fn cuts_at_lines() {
        let text = ["one line of text"; 20].join("\n");
        let parts = split_message(&text, 100);
        for part in &parts {
            assert!(part.starts_with("one") && part.ends_with("text"), "{part:?}");
        }
        assert_well_formed(&text, 100, &parts);
    }

    #[test]
    fn cuts_at_sentences() {
        let text: Vec<String> = (0..60).map(sentence).collect();
        let text = text.join(" ");
        let parts = split_message(&text, 500);
        assert!(parts.len() > 1);
        for part in &parts {
            assert!(part.starts_with("This") && part.ends_with('.'), "{part:?}");
        }
        assert_well_formed(&text, 500, &parts);
    }

    #[test]
    fn sentence_end_may_be_followed_by_closers() {
        let text = format!("{} (He said \"stop.\") {}", "a ".repeat(40), "b ".repeat(40));
        let parts = split_message(&text, 110);
        assert!(parts[0].ends_with("stop.\")"), "{parts:?}");
    }

    #[test]
    fn cuts_at_words() {
        let text = "lorem ipsum dolor sit amet ".repeat(100);
        let parts = split_message(&text, 97);
        let words = ["lorem", "ipsum", "dolor", "sit", "amet"];
        for part in &parts {
            assert!(part.split(' ').all(|word| words.contains(&word)), "{part:?}");
        }
        assert_well_formed(&text, 97, &parts);
    }

    #[test]
    fn long_word_is_cut_hard() {
        let text = "x".repeat(5000);
        let parts = split_message(&text, DISCORD_LIMIT);
        let sizes: Vec<usize> = parts.iter().map(|part| chars(part)).collect();
        assert_eq!(sizes, [2000, 2000, 1000]);
    }

    #[test]
    fn word_boundary_beats_hard_cut() {
        let text = format!("short {}", "x".repeat(30));
        assert_eq!(split_message(&text, 20), ["short", &"x".repeat(20), &"x".repeat(10)]);
    }

    #[test]
    fn emoji_are_never_cut() {
        let text = "😀".repeat(3000);
        let parts = split_message(&text, DISCORD_LIMIT);
        assert_eq!(parts, ["😀".repeat(2000), "😀".repeat(1000)]);
    }

    #[test]
    fn zwj_families_stay_whole() {
        let family = "👨\u{200d}👩\u{200d}👧\u{200d}👦";
        let text = family.repeat(1000);
        let parts = split_message(&text, DISCORD_LIMIT);
        for part in &parts {
            assert!(part.graphemes(true).all(|g| g == family));
            assert!(chars(part) <= DISCORD_LIMIT);
        }
        assert_eq!(parts.concat(), text);
    }

    #[test]
    fn flags_stay_whole() {
        let text = "🇫🇷".repeat(1500);
        let parts = split_message(&text, 999);
        for part in &parts {
            assert!(part.graphemes(true).all(|g| g == "🇫🇷"), "{part:?}");
        }
        assert_eq!(parts.concat(), text);
    }

    #[test]
    fn combining_accents_stay_whole() {
        let text = "e\u{301}".repeat(1500);
        let parts = split_message(&text, 999);
        for part in &parts {
            assert!(part.starts_with('e') && part.ends_with('\u{301}'));
        }
        assert_eq!(parts.concat(), text);
    }

    #[test]
    fn cjk_cuts_after_full_stops() {
        let text = "日本語の文章です。".repeat(300);
        let parts = split_message(&text, DISCORD_LIMIT);
        assert!(parts.len() > 1);
        for part in &parts {
            assert!(part.ends_with('。'), "{part:?}");
        }
        assert_eq!(parts.concat(), text);
    }

    #[test]
    fn code_block_spanning_parts_is_reopened() {
        let intro: Vec<String> = (0..20).map(sentence).collect();
        let code: Vec<String> = (0..200)
            .map(|i| format!("    result_{i} = compute(value_{i}, factor={i})"))
            .collect();
        let text = format!(
            "{}\n\n```python\ndef main():\n{}\n```\n\n{}",
            intro.join(" "),
            code.join("\n"),
            intro.join(" ")
        );
        assert!(chars(&text) > 9000);
        let parts = split_message(&text, DISCORD_LIMIT);
        assert!(parts.len() >= 5);
        assert_well_formed(&text, DISCORD_LIMIT, &parts);
        assert!(parts[0].ends_with("reply."), "intro stays outside the code block");
        assert!(parts[1].starts_with("```python\ndef main():"));
        for part in &parts[2..parts.len() - 1] {
            assert!(part.starts_with("```python\n    result_"), "{part:?}");
        }
        for part in &parts[1..parts.len() - 2] {
            assert!(part.ends_with(")\n```"), "{part:?}");
        }
    }

    #[test]
    fn reopened_block_keeps_indentation() {
        let text = format!("```rust\n{}```", "    let x = 1;\n".repeat(10));
        let parts = split_message(&text, 60);
        assert_well_formed(&text, 60, &parts);
        assert!(parts[1].starts_with("```rust\n    let x = 1;"), "{parts:?}");
    }

    #[test]
    fn unclosed_block_is_closed() {
        assert_eq!(
            split_message("See:\n```sh\nls -la", DISCORD_LIMIT),
            ["See:\n```sh\nls -la\n```"]
        );
    }

    #[test]
    fn part_does_not_end_right_after_opening_fence() {
        let text = format!("{}\n```js\n{}```", "a".repeat(30), "bbbbbbbbbb();\n".repeat(8));
        let parts = split_message(&text, 45);
        assert_eq!(parts[0], "a".repeat(30));
        assert_well_formed(&text, 45, &parts);
    }

    #[test]
    fn part_does_not_start_with_closing_fence() {
        let text = format!("```\n{}\n```\n{}", "c".repeat(26), "d".repeat(10));
        let parts = split_message(&text, 40);
        assert!(parts.iter().all(|part| !part.starts_with("```\n```")), "{parts:?}");
        assert_well_formed(&text, 40, &parts);
    }

    #[test]
    fn backticks_inside_a_line_never_start_a_part() {
        let text = format!("{} ```inline``` {}", "x".repeat(14), "y ".repeat(20));
        let parts = split_message(&text, 20);
        assert!(parts.iter().all(|part| !part.starts_with("```")), "{parts:?}");
        assert_well_formed(&text, 20, &parts);
    }

    #[test]
    fn fence_backticks_are_never_split() {
        let text = format!("```\n{}\n```", "z".repeat(40));
        for limit in MIN_FENCED_LIMIT..40 {
            let parts = split_message(&text, limit);
            assert_well_formed(&text, limit, &parts);
        }
    }

    #[test]
    fn tildes_are_plain_text() {
        let text = format!("~~~\n{}\n~~~", "t ".repeat(30));
        let parts = split_message(&text, 30);
        assert!(parts.iter().all(|part| !part.contains("```")));
        assert_well_formed(&text, 30, &parts);
    }

    #[test]
    fn long_language_tag_is_not_repeated() {
        assert_eq!(language_tag("rust"), "rust");
        assert_eq!(language_tag("c++ title=main"), "c++");
        assert_eq!(language_tag(&"x".repeat(MAX_TAG_CHARS + 1)), "");
        assert_eq!(language_tag("not/a tag"), "");
    }

    #[test]
    fn small_limit_reopens_without_tag() {
        let text = format!("```python\n{}```", "x = 1\n".repeat(10));
        let parts = split_message(&text, 20);
        assert!(parts[1].starts_with("```\n"), "{parts:?}");
        assert_well_formed(&text, 20, &parts);
    }

    #[test]
    fn zero_limit_counts_as_one() {
        assert_eq!(split_message("abc", 0), ["a", "b", "c"]);
    }

    #[test]
    fn tiny_limits_terminate() {
        let text = "Hi 👋🏽 there! ```rs\nfn main() {}\n``` 🇯🇵 e\u{301}";
        for limit in 0..MIN_FENCED_LIMIT {
            let parts = split_message(text, limit);
            assert!(!parts.is_empty());
            assert_body_order(text, limit);
        }
    }

    #[test]
    fn grapheme_too_long_for_fences_goes_bare() {
        let accented = format!("a{}", "\u{301}".repeat(9));
        let text = format!("```\n{accented}\n```");
        let parts = split_message(&text, MIN_FENCED_LIMIT);
        assert_eq!(parts, ["```\n```", accented.as_str(), "```\n```"]);
    }

    #[test]
    fn grapheme_longer_than_limit_goes_alone() {
        let family = "👨\u{200d}👩\u{200d}👧\u{200d}👦";
        let text = format!("ab {family} cd");
        assert_eq!(split_message(&text, 3), ["ab", family, "cd"]);
    }

    /// Text made of pieces a reply is likely to hold, fences and multibyte text included.
    fn reply_text() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            4 => "[a-z]{1,12}",
            3 => Just(" ".to_string()),
            2 => Just("\n".to_string()),
            1 => Just("\n\n".to_string()),
            1 => Just(". ".to_string()),
            1 => Just("? ".to_string()),
            1 => Just("```".to_string()),
            1 => Just("```python\n".to_string()),
            1 => Just("\n```\n".to_string()),
            1 => Just("    ".to_string()),
            1 => Just("`".to_string()),
            1 => Just("~~~".to_string()),
            1 => Just("\r\n".to_string()),
            1 => Just("日本語。".to_string()),
            1 => Just("😀".to_string()),
            1 => Just("👨\u{200d}👩\u{200d}👧".to_string()),
            1 => Just("🇫🇷".to_string()),
            1 => Just("e\u{301}".to_string()),
            1 => "\\PC{1,6}",
        ];
        proptest::collection::vec(piece, 0..400).prop_map(|pieces| pieces.concat())
    }

    /// Text thick with backticks, fences and indentation, to corner the fence rules.
    fn fence_heavy_text() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            Just("`"),
            Just("```"),
            Just("```py\n"),
            Just("\n"),
            Just("\n\n"),
            Just(" "),
            Just("    "),
            Just("a"),
            Just("bb."),
            Just("😀"),
            Just("👨\u{200d}👩\u{200d}👧\u{200d}👦"),
        ];
        proptest::collection::vec(piece, 0..300).prop_map(|pieces| pieces.concat())
    }

    fn any_limit() -> impl Strategy<Value = usize> {
        prop_oneof![20usize..=120, 20usize..=DISCORD_LIMIT]
    }

    proptest::proptest! {
        #[test]
        fn replies_split_well(text in reply_text(), limit in any_limit()) {
            let parts = split_message(&text, limit);
            assert_well_formed(&text, limit, &parts);
        }

        #[test]
        fn fence_heavy_text_splits_well(text in fence_heavy_text(), limit in MIN_FENCED_LIMIT..=60) {
            let parts = split_message(&text, limit);
            assert_well_formed(&text, limit, &parts);
        }

        #[test]
        fn any_text_splits_well(text in any::<String>(), limit in 20usize..=200) {
            let parts = split_message(&text, limit);
            assert_well_formed(&text, limit, &parts);
        }

        #[test]
        fn tiny_limits_split_well(text in reply_text(), limit in 0usize..MIN_FENCED_LIMIT) {
            let parts = split_message(&text, limit);
            for part in &parts {
                let alone = part.graphemes(true).count() == 1;
                prop_assert!(chars(part) <= limit.max(1) || alone, "{:?}", part);
                prop_assert!(!part.trim().is_empty());
            }
            assert_body_order(&text, limit);
        }

        #[test]
        fn never_panics(text in any::<String>(), limit in 0usize..=40) {
            let _ = split_message(&text, limit);
        }

        #[test]
        fn only_added_fences_and_cut_whitespace_change(text in reply_text(), limit in any_limit()) {
            let parts = split_message(&text, limit);
            let planned = plan(&text, limit);
            prop_assert_eq!(parts.len(), planned.len());
            let mut rejoined = String::new();
            for (part, rendered) in planned.iter().zip(&parts) {
                let body = without_added_fences(part, rendered);
                prop_assert_eq!(body, &text[part.body.clone()]);
                rejoined.push_str(body);
            }
            prop_assert_eq!(without_whitespace(&rejoined), without_whitespace(&text));
        }
    }
}
