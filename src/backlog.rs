//! Backlog planning: which channels to replay in which order, where each replay starts, which
//! missed messages are kept within the bounds, and each channel's progress, from which the
//! cursor (the last message finished with) is derived. Pure: no I/O, no actors.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::snowflake;

/// The kinds of channel replayed, in replay order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    /// Direct messages.
    Dms,
    /// The bot-DMs channel.
    BotDms,
    /// Guild text channels.
    Text,
}

impl Scope {
    /// Parses a `--scope` value; `all` gives every scope.
    pub fn parse_list(value: &str) -> Result<Vec<Scope>, String> {
        match value {
            "dms" => Ok(vec![Scope::Dms]),
            "botdms" => Ok(vec![Scope::BotDms]),
            "text" => Ok(vec![Scope::Text]),
            "all" => Ok(vec![Scope::Dms, Scope::BotDms, Scope::Text]),
            other => Err(format!("unknown scope `{other}`; use dms, botdms, text or all")),
        }
    }

    /// Label for output.
    pub fn label(self) -> &'static str {
        match self {
            Scope::Dms => "dm",
            Scope::BotDms => "bot-dms",
            Scope::Text => "text",
        }
    }
}

/// Limits on what a replay catches up on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// Messages older than this are not replayed.
    pub max_age: Duration,
    /// At most this many (the newest) messages are replayed per channel.
    pub max_messages: usize,
}

impl Default for Bounds {
    fn default() -> Self {
        Self {
            max_age: Duration::from_secs(7 * 24 * 3600),
            max_messages: 1_000,
        }
    }
}

/// Where a channel's replay starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// Never seen: no history is owed; the cursor jumps to the channel's newest message.
    Fresh,
    /// Fetch messages after this ID (the cursor, or the age limit if that is later).
    After(u64),
}

/// Where to start replaying a channel, given its cursor and the time now (Unix ms).
pub fn start(cursor: Option<u64>, now_unix_ms: u64, bounds: Bounds) -> Start {
    match cursor {
        None => Start::Fresh,
        Some(c) => {
            let oldest = now_unix_ms.saturating_sub(bounds.max_age.as_millis() as u64);
            Start::After(c.max(snowflake::from_unix_ms(oldest).saturating_sub(1)))
        }
    }
}

/// Keeps the newest `max_messages` of a channel's missed messages (given oldest first);
/// returns how many older ones were skipped.
pub fn keep_newest<T>(messages: &mut Vec<T>, bounds: Bounds) -> usize {
    let skipped = messages.len().saturating_sub(bounds.max_messages);
    messages.drain(..skipped);
    skipped
}

/// Progress through one channel: which messages are being worked on, and the newest finished.
/// The cursor may only pass a message once it and every earlier one are finished.
///
/// It also tracks the cursor last saved, so that saves can be spaced out: every agent finishes
/// every message it sees, and a store write for each was the largest cost of routing under load
/// (`docs/benchmarks.md`). A saved cursor that lags is safe: a replay re-reads a few messages,
/// which are routed again (answered ones are recognised by their records).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChannelProgress {
    in_flight: BTreeSet<u64>,
    newest_done: u64,
    /// The channel's backlog after this message could not be read: the cursor stays here.
    hold: Option<u64>,
    saved: u64,
    saved_at: Option<std::time::Instant>,
}

impl ChannelProgress {
    /// A message is being worked on.
    pub fn start(&mut self, id: u64) {
        self.in_flight.insert(id);
    }

    /// A message is finished (answered or decided not to answer).
    pub fn finish(&mut self, id: u64) {
        self.in_flight.remove(&id);
        self.newest_done = self.newest_done.max(id);
    }

    /// The cursor this progress allows: every message up to it is finished, and it does not
    /// pass a hold.
    pub fn cursor(&self) -> u64 {
        let cursor = match self.in_flight.first() {
            Some(oldest_open) => self.newest_done.min(oldest_open - 1),
            None => self.newest_done,
        };
        self.hold.map_or(cursor, |hold| cursor.min(hold))
    }

    /// The backlog after `cursor` could not be read: the cursor may not pass it until
    /// [`ChannelProgress::release`], whatever live messages finish meanwhile.
    pub fn hold(&mut self, cursor: u64) {
        self.hold = Some(self.hold.map_or(cursor, |h| h.min(cursor)));
    }

    /// The backlog was read: the cursor follows progress again.
    pub fn release(&mut self) {
        self.hold = None;
    }

    /// How many messages are being worked on.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Nothing in this channel is being worked on.
    pub fn is_idle(&self) -> bool {
        self.in_flight.is_empty()
    }

    /// Whether a message is being worked on.
    pub fn is_in_flight(&self, id: u64) -> bool {
        self.in_flight.contains(&id)
    }

    /// The cursor to save now, if it moved since the last save and that save is at least
    /// `interval` old (the first save is never held back).
    pub fn cursor_to_save(&self, now: std::time::Instant, interval: Duration) -> Option<u64> {
        let due = self
            .saved_at
            .is_none_or(|at| now.saturating_duration_since(at) >= interval);
        self.unsaved_cursor().filter(|_| due)
    }

    /// The cursor, if it moved since the last save (to save before a replay or a stop).
    pub fn unsaved_cursor(&self) -> Option<u64> {
        let cursor = self.cursor();
        (cursor > self.saved).then_some(cursor)
    }

    /// Records that `cursor` was saved at `now`.
    pub fn saved(&mut self, cursor: u64, now: std::time::Instant) {
        self.saved = self.saved.max(cursor);
        self.saved_at = Some(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_parse() {
        assert_eq!(
            Scope::parse_list("all").unwrap(),
            vec![Scope::Dms, Scope::BotDms, Scope::Text]
        );
        assert_eq!(Scope::parse_list("botdms").unwrap(), vec![Scope::BotDms]);
        assert!(Scope::parse_list("everything")
            .unwrap_err()
            .contains("use dms, botdms, text or all"));
    }

    #[test]
    fn unseen_channels_start_fresh_and_old_cursors_are_clamped_to_the_age_limit() {
        let bounds = Bounds {
            max_age: Duration::from_secs(3600),
            max_messages: 10,
        };
        let now = 1_700_000_000_000;
        assert_eq!(start(None, now, bounds), Start::Fresh);
        let recent = snowflake::from_unix_ms(now - 60_000);
        assert_eq!(start(Some(recent), now, bounds), Start::After(recent));
        let ancient = snowflake::from_unix_ms(now - 10 * 3600 * 1000);
        let Start::After(after) = start(Some(ancient), now, bounds) else {
            panic!()
        };
        assert_eq!(snowflake::unix_ms(after + 1), now - 3600 * 1000);
    }

    #[test]
    fn keeps_the_newest_messages() {
        let mut v: Vec<u32> = (1..=12).collect();
        assert_eq!(
            keep_newest(
                &mut v,
                Bounds {
                    max_age: Duration::MAX,
                    max_messages: 5
                }
            ),
            7
        );
        assert_eq!(v, vec![8, 9, 10, 11, 12]);
        let mut few = vec![1, 2];
        assert_eq!(keep_newest(&mut few, Bounds::default()), 0);
    }

    #[test]
    fn the_cursor_never_passes_an_unfinished_message() {
        let mut p = ChannelProgress::default();
        assert_eq!(p.cursor(), 0);
        p.start(10);
        p.start(20);
        p.finish(20);
        assert_eq!(p.cursor(), 9, "20 is done but 10 is not");
        p.start(30);
        p.finish(10);
        assert_eq!(p.cursor(), 20);
        p.finish(30);
        assert_eq!(p.cursor(), 30);
        // Ignored messages finish at once.
        p.finish(40);
        assert_eq!(p.cursor(), 40);
        assert!(!p.is_in_flight(30));
    }

    #[test]
    fn a_hold_keeps_the_cursor_before_an_unread_backlog() {
        let mut p = ChannelProgress::default();
        p.finish(10);
        p.hold(10);
        // Live messages after the unread backlog are answered, but cannot move the cursor.
        p.start(50);
        p.finish(50);
        assert_eq!(p.cursor(), 10);
        assert_eq!(p.unsaved_cursor(), Some(10));
        p.release();
        assert_eq!(p.cursor(), 50);
    }

    #[test]
    fn cursor_saves_are_spaced_out_but_none_is_lost() {
        let second = Duration::from_secs(1);
        let t0 = std::time::Instant::now();
        let mut p = ChannelProgress::default();
        assert_eq!(p.cursor_to_save(t0, second), None, "nothing finished yet");
        p.finish(10);
        assert_eq!(
            p.cursor_to_save(t0, second),
            Some(10),
            "the first save is not held back"
        );
        p.saved(10, t0);
        assert_eq!(p.unsaved_cursor(), None);
        p.finish(11);
        p.finish(12);
        let soon = t0 + Duration::from_millis(300);
        assert_eq!(p.cursor_to_save(soon, second), None, "saved 300 ms ago: wait");
        assert_eq!(p.unsaved_cursor(), Some(12), "but a stop or a replay saves it");
        let later = t0 + second;
        assert_eq!(p.cursor_to_save(later, second), Some(12));
        p.saved(12, later);
        // A save never moves the record back.
        p.saved(5, later);
        assert_eq!(p.unsaved_cursor(), None);
        // A message in flight holds the cursor back, saved or not.
        p.start(13);
        p.finish(14);
        assert_eq!(p.cursor_to_save(later + second, second), None, "cursor is still 12");
        p.finish(13);
        assert_eq!(p.cursor_to_save(later + second, second), Some(14));
    }
}
