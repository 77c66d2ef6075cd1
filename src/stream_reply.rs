//! Streaming a reply into Discord messages while the model writes it (pure): when the first
//! message goes out, when a message is edited, where a part ends, and what is left to tidy once
//! the reply is complete. The caller owns the clock and the Discord calls; it asks [`StreamPlan::next`]
//! what to do, does it, and reports back.
//!
//! # Rules
//!
//! - The first message is posted once the text holds a first sentence (a sentence end followed
//!   by whitespace, or a line break), or [`FIRST_POST_AFTER`] after the stream started, whichever
//!   comes first; never while there is no text at all.
//! - Parts are cut exactly as a whole reply is ([`crate::split::split_message`]: fences kept
//!   balanced, graphemes whole), so the finished reply reads the same streamed or not. While the
//!   text grows, every part but the last is final; the last one is still being written.
//! - One message is written (posted or edited) at most once per [`EDIT_EVERY`]; a part that
//!   became final, or the whole reply once complete, is written as soon as that allows.
//! - Messages an earlier attempt posted (known from the store after a crash or a failed try)
//!   are edited, never posted again; what they show is unknown, so each is written once at
//!   least. Posted messages the complete reply no longer needs are deleted.
//! - The courtesy notice (the reply at the chain limit) goes on the last part of the complete
//!   reply.

use std::time::Duration;

use tokio::time::Instant;

use crate::split::{split_message, DISCORD_LIMIT};

/// The longest wait for a first sentence before the first message is posted anyway.
pub const FIRST_POST_AFTER: Duration = Duration::from_secs(1);

/// The shortest time between two writes of one message.
pub const EDIT_EVERY: Duration = Duration::from_secs(1);

/// What one message should show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartView {
    /// Its text (at most 2,000 characters).
    pub content: String,
    /// Whether it carries the courtesy notice (the last part of a complete reply at the limit).
    pub courtesy: bool,
}

/// One Discord call to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Post part `part` (the next one: every earlier part is posted).
    Post {
        /// Its index.
        part: usize,
        /// What it shows.
        view: PartView,
    },
    /// Edit the message of part `part`.
    Edit {
        /// Its index.
        part: usize,
        /// Its message.
        message_id: u64,
        /// What it shows from now on.
        view: PartView,
    },
    /// Delete the message of part `part` (the last posted one), which the reply no longer needs.
    Delete {
        /// Its index.
        part: usize,
        /// Its message.
        message_id: u64,
    },
}

/// What the caller does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Make this call, then report it.
    Act(Action),
    /// Nothing until this time (or until the text changes).
    WaitUntil(Instant),
    /// Nothing until the text changes.
    WaitForText,
    /// The complete reply is shown.
    Done,
}

/// A posted message of the reply.
#[derive(Debug, Clone)]
struct Posted {
    id: u64,
    /// What it shows, when known (unknown for a message an earlier attempt posted).
    shown: Option<PartView>,
    /// When it was last written by this attempt.
    last_write: Option<Instant>,
}

/// The state of one streamed reply.
#[derive(Debug, Clone)]
pub struct StreamPlan {
    started: Instant,
    courtesy: bool,
    limit: usize,
    parts: Vec<Posted>,
}

impl StreamPlan {
    /// A reply whose stream started at `started`; `existing` are the messages earlier attempts
    /// posted for it, in order. `courtesy`: the complete reply's last part carries the notice.
    pub fn new(started: Instant, courtesy: bool, existing: &[u64]) -> Self {
        Self {
            started,
            courtesy,
            limit: DISCORD_LIMIT,
            parts: existing
                .iter()
                .map(|&id| Posted {
                    id,
                    shown: None,
                    last_write: None,
                })
                .collect(),
        }
    }

    /// The same with a smaller part limit (for tests).
    pub fn with_limit(mut self, limit: usize) -> Self {
        self.limit = limit;
        self
    }

    /// The posted messages, in order.
    pub fn message_ids(&self) -> Vec<u64> {
        self.parts.iter().map(|p| p.id).collect()
    }

    /// What the last posted message shows, when this attempt knows it.
    pub fn last_shown(&self) -> Option<&PartView> {
        self.parts.last().and_then(|p| p.shown.as_ref())
    }

    /// Whether the first message is out.
    pub fn first_posted(&self) -> bool {
        !self.parts.is_empty()
    }

    /// What the messages should show for `text` (the complete reply when `finished`).
    pub fn desired(&self, text: &str, finished: bool) -> Vec<PartView> {
        let mut parts: Vec<PartView> = split_message(text, self.limit)
            .into_iter()
            .map(|content| PartView {
                content,
                courtesy: false,
            })
            .collect();
        if finished {
            if parts.is_empty() {
                parts.push(PartView {
                    content: "…".into(),
                    courtesy: false,
                });
            }
            if let Some(last) = parts.last_mut() {
                last.courtesy = self.courtesy;
            }
        }
        parts
    }

    /// What to do now, given the text so far (complete when `finished`).
    pub fn next(&self, text: &str, finished: bool, now: Instant) -> Next {
        let desired = self.desired(text, finished);
        let mut wake: Option<Instant> = None;
        for (i, want) in desired.iter().enumerate() {
            let Some(posted) = self.parts.get(i) else {
                if i == 0 && !finished && !has_first_sentence(text) {
                    let at = self.started + FIRST_POST_AFTER;
                    if now < at {
                        return Next::WaitUntil(at);
                    }
                }
                return Next::Act(Action::Post {
                    part: i,
                    view: want.clone(),
                });
            };
            if posted.shown.as_ref() == Some(want) {
                continue;
            }
            let at = posted.last_write.map_or(now, |t| t + EDIT_EVERY);
            if at <= now {
                return Next::Act(Action::Edit {
                    part: i,
                    message_id: posted.id,
                    view: want.clone(),
                });
            }
            wake = Some(wake.map_or(at, |w| w.min(at)));
        }
        if finished && self.parts.len() > desired.len() {
            let part = self.parts.len() - 1;
            return Next::Act(Action::Delete {
                part,
                message_id: self.parts[part].id,
            });
        }
        match wake {
            Some(at) => Next::WaitUntil(at),
            None if finished => Next::Done,
            None => Next::WaitForText,
        }
    }

    /// Part `part` was posted as message `id` at `now`.
    pub fn posted(&mut self, part: usize, id: u64, view: PartView, now: Instant) {
        let p = Posted {
            id,
            shown: Some(view),
            last_write: Some(now),
        };
        match self.parts.get_mut(part) {
            Some(slot) => *slot = p,
            None => self.parts.push(p),
        }
    }

    /// Part `part` was edited to `view` at `now`.
    pub fn edited(&mut self, part: usize, view: PartView, now: Instant) {
        if let Some(p) = self.parts.get_mut(part) {
            p.shown = Some(view);
            p.last_write = Some(now);
        }
    }

    /// The message of part `part` was deleted (or was already gone).
    pub fn deleted(&mut self, part: usize) {
        if part < self.parts.len() {
            self.parts.remove(part);
        }
    }
}

/// What a partial reply shows while its answer waits for a retry after a failure mid-stream:
/// its text and a line saying so, within `limit` characters (the text is shortened when needed).
pub fn interrupted(content: &str, limit: usize) -> String {
    let room = limit.saturating_sub(INTERRUPTED_NOTE.chars().count());
    let kept: String = match content.chars().count() > room {
        true => {
            let cut: String = content.chars().take(room.saturating_sub(1)).collect();
            format!("{}…", cut.trim_end())
        }
        false => content.to_string(),
    };
    format!("{kept}{INTERRUPTED_NOTE}")
}

/// The line [`interrupted`] adds.
pub const INTERRUPTED_NOTE: &str = "\n\n*(interrupted; trying again…)*";

/// Whether `text` holds a first sentence worth showing: a sentence end followed by whitespace,
/// or a line break after some text.
pub fn has_first_sentence(text: &str) -> bool {
    let text = text.trim_start();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\n' {
            return true;
        }
        if matches!(c, '.' | '!' | '?' | '…' | '。' | '！' | '？') && chars.peek().is_some_and(|n| n.is_whitespace())
        {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(s: &str) -> PartView {
        PartView {
            content: s.into(),
            courtesy: false,
        }
    }

    /// Plays one step: does what the plan asks (IDs 100, 101, …) and returns it.
    fn step(plan: &mut StreamPlan, text: &str, finished: bool, now: Instant) -> Next {
        let next = plan.next(text, finished, now);
        match &next {
            Next::Act(Action::Post { part, view }) => plan.posted(*part, 100 + *part as u64, view.clone(), now),
            Next::Act(Action::Edit { part, view, .. }) => plan.edited(*part, view.clone(), now),
            Next::Act(Action::Delete { part, .. }) => plan.deleted(*part),
            _ => {}
        }
        next
    }

    #[test]
    fn a_first_sentence_is_a_sentence_end_then_whitespace_or_a_line_break() {
        assert!(has_first_sentence("Hello there. And"));
        assert!(has_first_sentence("Sure!\n"));
        assert!(has_first_sentence("A list:\n- one"));
        assert!(!has_first_sentence("Version 3.14 is"));
        assert!(!has_first_sentence("Hello there."));
        assert!(!has_first_sentence("\n\n  "));
        assert!(!has_first_sentence(""));
    }

    #[tokio::test(start_paused = true)]
    async fn the_first_message_waits_for_a_sentence_or_a_second_whichever_comes_first() {
        let t0 = Instant::now();
        let plan = StreamPlan::new(t0, false, &[]);
        assert_eq!(plan.next("", false, t0), Next::WaitForText);
        assert_eq!(plan.next("Hello", false, t0), Next::WaitUntil(t0 + FIRST_POST_AFTER));
        // A sentence: at once.
        assert_eq!(
            plan.next("Hello. Then", false, t0 + Duration::from_millis(200)),
            Next::Act(Action::Post {
                part: 0,
                view: view("Hello. Then")
            })
        );
        // No sentence, but a second passed.
        assert!(matches!(
            plan.next("Hello", false, t0 + FIRST_POST_AFTER),
            Next::Act(Action::Post { part: 0, .. })
        ));
        // No text after a second: nothing to show yet.
        assert_eq!(plan.next("", false, t0 + FIRST_POST_AFTER * 2), Next::WaitForText);
    }

    #[tokio::test(start_paused = true)]
    async fn a_message_is_edited_at_most_once_a_second_and_ends_with_the_full_text() {
        let t0 = Instant::now();
        let mut plan = StreamPlan::new(t0, false, &[]);
        assert!(matches!(
            step(&mut plan, "One. ", false, t0),
            Next::Act(Action::Post { .. })
        ));
        let soon = t0 + Duration::from_millis(300);
        assert_eq!(
            step(&mut plan, "One. Two", false, soon),
            Next::WaitUntil(t0 + EDIT_EVERY)
        );
        let later = t0 + EDIT_EVERY;
        assert_eq!(
            step(&mut plan, "One. Two three", false, later),
            Next::Act(Action::Edit {
                part: 0,
                message_id: 100,
                view: view("One. Two three")
            })
        );
        // Nothing changed: wait for text.
        assert_eq!(step(&mut plan, "One. Two three", false, later), Next::WaitForText);
        // Complete within the second: the last edit waits its turn, then holds everything.
        let done = "One. Two three four.";
        assert_eq!(
            step(&mut plan, done, true, later + Duration::from_millis(10)),
            Next::WaitUntil(later + EDIT_EVERY)
        );
        assert!(matches!(
            step(&mut plan, done, true, later + EDIT_EVERY),
            Next::Act(Action::Edit { view, .. }) if view.content == done
        ));
        assert_eq!(step(&mut plan, done, true, later + EDIT_EVERY), Next::Done);
    }

    #[tokio::test(start_paused = true)]
    async fn text_past_the_limit_continues_in_a_new_message_cut_like_a_whole_reply() {
        let t0 = Instant::now();
        let mut plan = StreamPlan::new(t0, true, &[]).with_limit(40);
        let full = "First paragraph is here.\n\nSecond paragraph goes on and on. Third one ends it.";
        let mut now = t0;
        let mut text = String::new();
        // Feed word by word, a tenth of a second apart, playing every step.
        for word in full.split_inclusive(' ') {
            text.push_str(word);
            now += Duration::from_millis(100);
            while let Next::Act(_) = step(&mut plan, &text, false, now) {}
        }
        loop {
            match step(&mut plan, full, true, now) {
                Next::Done => break,
                Next::WaitUntil(t) => now = t,
                Next::Act(_) => {}
                Next::WaitForText => panic!("finished text never waits for text"),
            }
        }
        let whole = split_message(full, 40);
        assert!(whole.len() >= 2, "{whole:?}");
        assert_eq!(plan.message_ids().len(), whole.len());
        let shown: Vec<PartView> = plan.parts.iter().map(|p| p.shown.clone().unwrap()).collect();
        for (i, (s, w)) in shown.iter().zip(&whole).enumerate() {
            assert_eq!(&s.content, w);
            // The courtesy notice is on the last part only.
            assert_eq!(s.courtesy, i == whole.len() - 1);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn messages_of_an_earlier_attempt_are_edited_and_extra_ones_deleted() {
        let t0 = Instant::now();
        let mut plan = StreamPlan::new(t0, false, &[7, 8]);
        // Even before a sentence: the known message is edited, never posted again.
        assert_eq!(
            step(&mut plan, "Hi", false, t0),
            Next::Act(Action::Edit {
                part: 0,
                message_id: 7,
                view: view("Hi")
            })
        );
        assert_eq!(step(&mut plan, "Hi", false, t0), Next::WaitForText);
        // Complete, and shorter than before: the second message goes.
        let end = t0 + EDIT_EVERY;
        assert!(matches!(
            step(&mut plan, "Hi there.", true, end),
            Next::Act(Action::Edit { .. })
        ));
        assert_eq!(
            step(&mut plan, "Hi there.", true, end),
            Next::Act(Action::Delete { part: 1, message_id: 8 })
        );
        assert_eq!(step(&mut plan, "Hi there.", true, end), Next::Done);
        assert_eq!(plan.message_ids(), vec![7]);
    }

    #[test]
    fn an_interrupted_part_says_so_within_the_limit() {
        assert_eq!(interrupted("Hello", 2000), format!("Hello{INTERRUPTED_NOTE}"));
        let long = "a".repeat(2000);
        let shown = interrupted(&long, 2000);
        assert_eq!(shown.chars().count(), 2000);
        assert!(shown.ends_with(INTERRUPTED_NOTE) && shown.contains("a…"));
    }

    #[tokio::test(start_paused = true)]
    async fn an_empty_complete_reply_still_shows_something() {
        let t0 = Instant::now();
        let plan = StreamPlan::new(t0, false, &[]);
        assert_eq!(
            plan.next("  ", true, t0),
            Next::Act(Action::Post {
                part: 0,
                view: view("…")
            })
        );
    }
}
