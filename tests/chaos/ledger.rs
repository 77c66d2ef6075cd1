//! The ledger: every message the humans posted, what it should get, and the pure attribution of
//! troupe's replies to those messages, which turns a channel's contents into counts (answered,
//! given up, lost, duplicate, spurious).
//!
//! How a reply is traced to what it answers:
//!
//! - Every human message carries a unique marker (`mk17`), and the fault-injecting LLM test
//!   server echoes the markers of the user turns it was asked to answer (`ack mk17 mk18`).
//! - A reply answers its **target**: the message it references (`message_reference`), or, for a
//!   webhook reply (webhooks cannot reference) or a later part of a split reply, the newest
//!   marker it echoes.
//! - A backlog batch is answered with one reply that references only its newest message, so a
//!   reply also answers the other markers it echoes, **if** that message could have been in a
//!   batch: troupe read it through history (`GET /channels/{id}/messages?after=..` by that
//!   agent, after it was posted), or it was posted while troupe was not steady (down, starting,
//!   replaying, reconnecting). Otherwise the echo is a message that stayed in the model's memory
//!   after its own turn failed: the model saw it, but nobody answered it ("swept").
//!   One exception: a message whose turn failed (the LLM server answered it with the outage)
//!   and that troupe then left behind stays in the model's memory, and rides along in the next
//!   reply of its conversation without being answered. So after a failure a message counts as
//!   answered in a batch only if the reply's target was in the failed batch too (the batch was
//!   retried), or troupe read it through history again after the failure (it still owed it).
//! - A reply carrying the failure notice gives up on its target.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use serde_json::Value;

/// Prefix of the markers in human messages (and of the echoes).
pub const MARKER_PREFIX: &str = "mk";

/// What a human message should get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Exactly one reply (or one failure notice).
    Answer,
    /// No reply at all (no mention, not a listen channel).
    Quiet,
}

/// One human message the harness posted.
#[derive(Debug, Clone)]
pub struct Posted {
    /// `mk17`.
    pub marker: String,
    /// Message ID.
    pub id: u64,
    /// Channel ID.
    pub channel: u64,
    /// The agent that should answer (empty for quiet messages).
    pub agent: String,
    /// What it should get.
    pub expect: Expect,
    /// How kind of traffic it is (for the lost list): `mention`, `listen`, `dm`, `new-dm`, ...
    pub kind: &'static str,
    /// How many REST requests the sandbox had logged just before it was posted.
    pub log_at_post: usize,
    /// When it was posted.
    pub at: Instant,
}

/// A message troupe sent (as a bot user or through a webhook), as the sandbox shows it.
#[derive(Debug, Clone)]
pub struct Sent {
    /// Message ID.
    pub id: u64,
    /// Channel ID.
    pub channel: u64,
    /// The persona: the bot user's or the webhook's name.
    pub agent: String,
    /// `message_reference.message_id`.
    pub reference: Option<u64>,
    /// Text.
    pub content: String,
}

impl Sent {
    /// Reads a sandbox message object; `None` for messages not sent by a bot or webhook.
    pub fn from_json(v: &Value) -> Option<Sent> {
        let webhook = v["webhook_id"].is_string();
        if !webhook && v["author"]["bot"] != Value::Bool(true) {
            return None;
        }
        let id = |x: &Value| x.as_str().and_then(|s| s.parse::<u64>().ok());
        Some(Sent {
            id: id(&v["id"])?,
            channel: id(&v["channel_id"])?,
            agent: v["author"]["username"].as_str().unwrap_or_default().to_string(),
            reference: id(&v["message_reference"]["message_id"]),
            content: v["content"].as_str().unwrap_or_default().to_string(),
        })
    }
}

/// A history read troupe made: `GET /channels/{channel}/messages?after={after}`.
#[derive(Debug, Clone)]
pub struct HistoryRead {
    /// The agent whose bot made it.
    pub agent: String,
    /// Channel ID.
    pub channel: u64,
    /// The `after` parameter.
    pub after: u64,
    /// Its index in the sandbox's request log.
    pub log_index: usize,
    /// When the sandbox answered it (Unix ms).
    pub unix_ms: u64,
}

/// An LLM request that failed (got the outage): the markers of its newest user turns.
#[derive(Debug, Clone)]
pub struct FailedBatch {
    /// The markers the model was asked to answer.
    pub markers: Vec<String>,
    /// When the request arrived (Unix ms).
    pub unix_ms: u64,
}

impl HistoryRead {
    /// Parses a request-log path; `None` unless it is a history read with `after`.
    pub fn parse(method: &str, path: &str, agent: &str, log_index: usize, unix_ms: u64) -> Option<HistoryRead> {
        if method != "GET" {
            return None;
        }
        let rest = path.strip_prefix("/api/v10/channels/")?;
        let (channel, query) = rest.split_once("/messages?")?;
        let after = query
            .split('&')
            .find_map(|kv| kv.strip_prefix("after="))?
            .parse()
            .ok()?;
        Some(HistoryRead {
            agent: agent.to_string(),
            channel: channel.parse().ok()?,
            after,
            log_index,
            unix_ms,
        })
    }
}

/// Periods when troupe was not steady (down, starting, replaying, reconnecting): messages
/// posted then may be answered in a batch.
#[derive(Debug, Clone, Default)]
pub struct Unsteady {
    /// `(from, until)`; `until` is `None` while it lasts.
    pub windows: Vec<(Instant, Option<Instant>)>,
}

impl Unsteady {
    /// Whether `t` falls in a window.
    pub fn covers(&self, t: Instant) -> bool {
        self.windows
            .iter()
            .any(|(from, until)| *from <= t && until.is_none_or(|u| t <= u))
    }
}

/// What troupe did with the posted messages.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    /// Messages that should be answered.
    pub expected: usize,
    /// Answered exactly once.
    pub answered: usize,
    /// Given up on with exactly one failure notice.
    pub given_up: usize,
    /// Neither answered nor given up on.
    pub lost: usize,
    /// Answered (or given up on) more than once.
    pub duplicate: usize,
    /// Messages that should not be answered.
    pub quiet: usize,
    /// Quiet messages that were answered.
    pub spurious: usize,
    /// Troupe messages that answer no posted message (e.g. a notice without a reference).
    pub unattributed: usize,
    /// Troupe messages left half-written: neither a complete echo (`ack` and markers, or
    /// `ack (no marker)`) nor a notice, e.g. a streamed reply's `ack` cut by a kill.
    pub half_written: usize,
}

impl Tally {
    /// Adds another tally.
    pub fn add(&mut self, o: &Tally) {
        self.expected += o.expected;
        self.answered += o.answered;
        self.given_up += o.given_up;
        self.lost += o.lost;
        self.duplicate += o.duplicate;
        self.quiet += o.quiet;
        self.spurious += o.spurious;
        self.unattributed += o.unattributed;
        self.half_written += o.half_written;
    }

    /// Whether the promise held: nothing lost, duplicated or answered that should not be.
    pub fn clean(&self) -> bool {
        self.lost == 0 && self.duplicate == 0 && self.spurious == 0 && self.half_written == 0
    }
}

/// A message that did not get what it should, for the report.
#[derive(Debug, Clone)]
pub struct Problem {
    /// `lost`, `duplicate` or `spurious`.
    pub what: &'static str,
    /// The message.
    pub posted: Posted,
    /// How many troupe messages answered it.
    pub replies: usize,
    /// Whether a later reply echoed it without answering it (the model saw it).
    pub swept: bool,
}

/// How one posted message was answered.
#[derive(Debug, Default, Clone)]
struct Outcome {
    answers: Vec<u64>,
    notices: Vec<u64>,
    swept: bool,
}

/// Everything needed to attribute replies.
#[derive(Debug, Default)]
pub struct Evidence<'a> {
    /// What the humans posted.
    pub posted: &'a [Posted],
    /// What troupe sent, in the channels of `posted`.
    pub sent: &'a [Sent],
    /// Troupe's history reads.
    pub reads: &'a [HistoryRead],
    /// When troupe was not steady.
    pub unsteady: Option<&'a Unsteady>,
    /// The LLM requests that failed.
    pub failed: &'a [FailedBatch],
    /// The failure notice's text (`None` when this troupe has none).
    pub notice: Option<&'a str>,
}

/// Every marker in `text`, in order.
pub fn markers(text: &str) -> Vec<&str> {
    text.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| w.len() > MARKER_PREFIX.len() && w.starts_with(MARKER_PREFIX))
        .collect()
}

impl Evidence<'_> {
    /// Could `p` have been answered in a batch whose reply `by` sent?
    fn batch_member(&self, p: &Posted, by: &str) -> bool {
        let read = self
            .reads
            .iter()
            .any(|r| r.agent == by && r.channel == p.channel && r.after < p.id && r.log_index >= p.log_at_post);
        read || self.unsteady.is_some_and(|u| u.covers(p.at))
    }

    /// The counts, and the messages that did not get what they should.
    pub fn tally(&self) -> (Tally, Vec<Problem>) {
        let by_marker: HashMap<&str, usize> = self
            .posted
            .iter()
            .enumerate()
            .map(|(i, p)| (p.marker.as_str(), i))
            .collect();
        let by_id: HashMap<(u64, u64), usize> = self
            .posted
            .iter()
            .enumerate()
            .map(|(i, p)| ((p.channel, p.id), i))
            .collect();
        // Posted message → the failed batches it was in.
        let mut failed_in: HashMap<usize, Vec<usize>> = HashMap::new();
        let failed: Vec<Vec<usize>> = self
            .failed
            .iter()
            .map(|b| {
                b.markers
                    .iter()
                    .filter_map(|m| by_marker.get(m.as_str()).copied())
                    .collect()
            })
            .collect();
        for (b, batch) in failed.iter().enumerate() {
            for &i in batch {
                failed_in.entry(i).or_default().push(b);
            }
        }
        // Whether `i`, if it failed before, may count as answered in a batch whose reply by
        // `agent` targets `t`: the failed batch was retried, or troupe read `i` again since.
        let retried = |i: usize, t: Option<usize>, agent: &str| {
            let Some(batches) = failed_in.get(&i) else {
                return true;
            };
            if t.is_some_and(|t| batches.iter().any(|&b| failed[b].contains(&t))) {
                return true;
            }
            let last_failure = batches.iter().map(|&b| self.failed[b].unix_ms).max().unwrap_or(0);
            let p = &self.posted[i];
            self.reads
                .iter()
                .any(|r| r.agent == agent && r.channel == p.channel && r.after < p.id && r.unix_ms > last_failure)
        };
        let mut outcomes: BTreeMap<usize, Outcome> = BTreeMap::new();
        let mut tally = Tally::default();
        // Notices without a reference or marker (a webhook's), per channel and agent.
        let mut loose_notices: HashMap<(u64, String), usize> = HashMap::new();
        for s in self.sent {
            let echoed: Vec<usize> = markers(&s.content)
                .into_iter()
                .filter_map(|m| by_marker.get(m).copied())
                .filter(|&i| self.posted[i].channel == s.channel)
                .collect();
            let is_notice = self.notice.is_some_and(|n| s.content.contains(n));
            if !is_notice && markers(&s.content).is_empty() && !s.content.contains("(no marker)") {
                // Not an answer (yet): a streamed reply still being written is waited for, one
                // never completed leaves its message lost.
                tally.half_written += 1;
                continue;
            }
            let referenced = s.reference.and_then(|r| by_id.get(&(s.channel, r)).copied());
            let target = match referenced {
                // A split reply's first part references the message but may not echo it: the
                // part that echoes it answers it.
                Some(t) if echoed.is_empty() || echoed.contains(&t) => Some(t),
                Some(_) => None,
                None => echoed.iter().copied().max_by_key(|&i| self.posted[i].id),
            };
            let mut credited: Vec<usize> = target.into_iter().collect();
            for &i in &echoed {
                if Some(i) == target || referenced == Some(i) {
                    continue;
                }
                if self.batch_member(&self.posted[i], &s.agent) && retried(i, target.or(referenced), &s.agent) {
                    credited.push(i);
                } else {
                    outcomes.entry(i).or_default().swept = true;
                }
            }
            if credited.is_empty() && referenced.is_none() {
                if is_notice {
                    *loose_notices.entry((s.channel, s.agent.clone())).or_default() += 1;
                } else {
                    tally.unattributed += 1;
                }
                continue;
            }
            for i in credited {
                let o = outcomes.entry(i).or_default();
                if is_notice {
                    o.notices.push(s.id);
                } else {
                    o.answers.push(s.id);
                }
            }
        }
        let mut problems = Vec::new();
        for (i, p) in self.posted.iter().enumerate() {
            let o = outcomes.remove(&i).unwrap_or_default();
            let replies = o.answers.len() + o.notices.len();
            let problem = |what| Problem {
                what,
                posted: p.clone(),
                replies,
                swept: o.swept,
            };
            match p.expect {
                Expect::Quiet => {
                    tally.quiet += 1;
                    if replies > 0 {
                        tally.spurious += 1;
                        problems.push(problem("spurious"));
                    }
                }
                Expect::Answer => {
                    tally.expected += 1;
                    match (o.answers.len(), o.notices.len()) {
                        (0, 0) => {
                            // A notice that names no message gives up on the oldest lost one
                            // of its channel and agent.
                            match loose_notices.get_mut(&(p.channel, p.agent.clone())) {
                                Some(n) if *n > 0 => {
                                    *n -= 1;
                                    tally.given_up += 1;
                                }
                                _ => {
                                    tally.lost += 1;
                                    problems.push(problem("lost"));
                                }
                            }
                        }
                        (1, 0) => tally.answered += 1,
                        (0, 1) => tally.given_up += 1,
                        _ => {
                            tally.duplicate += 1;
                            problems.push(problem("duplicate"));
                        }
                    }
                }
            }
        }
        tally.unattributed += loose_notices.values().sum::<usize>();
        (tally, problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn posted(n: u64, channel: u64, expect: Expect, log_at_post: usize, at: Instant) -> Posted {
        Posted {
            marker: format!("mk{n}"),
            id: 1000 + n,
            channel,
            agent: if expect == Expect::Answer {
                "Ada".into()
            } else {
                String::new()
            },
            expect,
            kind: "mention",
            log_at_post,
            at,
        }
    }

    fn reply(id: u64, channel: u64, reference: Option<u64>, content: &str) -> Sent {
        Sent {
            id,
            channel,
            agent: "Ada".into(),
            reference,
            content: content.into(),
        }
    }

    #[test]
    fn markers_are_found_in_echoes_and_mentions() {
        assert_eq!(markers("ack mk1 mk22"), ["mk1", "mk22"]);
        assert_eq!(markers("<@123> mk5 hello"), ["mk5"]);
        assert!(markers("mk nothing mkx-").iter().all(|m| *m == "mkx"));
    }

    #[test]
    fn references_and_echoes_attribute_replies() {
        let t = Instant::now();
        let posted = [
            posted(1, 7, Expect::Answer, 0, t),
            posted(2, 7, Expect::Answer, 0, t),
            posted(3, 7, Expect::Quiet, 0, t),
            posted(4, 8, Expect::Answer, 0, t),
            posted(5, 8, Expect::Answer, 0, t),
        ];
        let sent = [
            reply(1, 7, Some(1001), "ack mk1"),
            // mk2 answered twice.
            reply(2, 7, Some(1002), "ack mk2"),
            reply(3, 7, Some(1002), "ack mk2"),
            // A webhook reply: by its marker.
            reply(4, 8, None, "ack mk4"),
        ];
        let e = Evidence {
            posted: &posted,
            sent: &sent,
            ..Default::default()
        };
        let (tally, problems) = e.tally();
        assert_eq!(
            tally,
            Tally {
                expected: 4,
                answered: 2,
                duplicate: 1,
                lost: 1,
                quiet: 1,
                ..Default::default()
            }
        );
        let lost: Vec<&str> = problems
            .iter()
            .filter(|p| p.what == "lost")
            .map(|p| p.posted.marker.as_str())
            .collect();
        assert_eq!(lost, ["mk5"]);
    }

    #[test]
    fn a_batch_answers_what_was_read_through_history_but_a_swept_turn_is_lost() {
        let t = Instant::now();
        // mk1 and mk2 were posted while troupe was down and read on replay (log index 10);
        // mk3 failed in its own turn, and mk4's reply echoes it from memory.
        let posted = [
            posted(1, 7, Expect::Answer, 5, t),
            posted(2, 7, Expect::Answer, 6, t),
            posted(3, 7, Expect::Answer, 20, t),
            posted(4, 7, Expect::Answer, 21, t),
        ];
        let reads = [HistoryRead::parse(
            "GET",
            "/api/v10/channels/7/messages?after=999&limit=100",
            "Ada",
            10,
            100,
        )
        .unwrap()];
        let sent = [
            reply(1, 7, Some(1002), "ack mk1 mk2"),
            reply(2, 7, Some(1004), "ack mk3 mk4"),
        ];
        let e = Evidence {
            posted: &posted,
            sent: &sent,
            reads: &reads,
            ..Default::default()
        };
        let (tally, problems) = e.tally();
        assert_eq!((tally.answered, tally.lost), (3, 1));
        assert!(problems[0].swept && problems[0].posted.marker == "mk3");
        // Posted while troupe was unsteady, mk3 counts as part of a batch.
        let unsteady = Unsteady {
            windows: vec![(t - Duration::from_secs(1), None)],
        };
        let e = Evidence {
            unsteady: Some(&unsteady),
            ..e
        };
        assert_eq!(e.tally().0.answered, 4);
        // Unless its own batch failed (after the replay read, at 200) and mk4 was not in it:
        // then mk3 was swept along.
        let batch = |markers: &[&str], unix_ms| FailedBatch {
            markers: markers.iter().map(|m| m.to_string()).collect(),
            unix_ms,
        };
        let failed = [batch(&["mk3"], 200)];
        let e = Evidence { failed: &failed, ..e };
        assert_eq!(e.tally().0.lost, 1);
        // A failed batch retried as a whole is answered ...
        let failed = [batch(&["mk3", "mk4"], 200)];
        let e = Evidence { failed: &failed, ..e };
        assert_eq!(e.tally().0.answered, 4);
        // ... and so is one troupe read again after the failure (at 100, the read is later).
        let failed = [batch(&["mk3"], 50)];
        let e = Evidence { failed: &failed, ..e };
        assert_eq!(e.tally().0.answered, 4);
    }

    #[test]
    fn a_reply_without_its_markers_is_half_written() {
        let t = Instant::now();
        let posted = [posted(1, 7, Expect::Answer, 0, t)];
        // A streamed reply cut by a kill before its markers arrived, never completed.
        let sent = [reply(1, 7, Some(1001), "ack")];
        let e = Evidence {
            posted: &posted,
            sent: &sent,
            ..Default::default()
        };
        let (tally, _) = e.tally();
        assert_eq!((tally.half_written, tally.answered, tally.lost), (1, 0, 1));
        assert!(!tally.clean());
        let complete = [reply(1, 7, Some(1001), "ack mk1")];
        let e = Evidence { sent: &complete, ..e };
        assert_eq!(e.tally().0.half_written, 0);
    }

    #[test]
    fn a_split_reply_answers_its_reference_once() {
        let t = Instant::now();
        let posted = [posted(1, 7, Expect::Answer, 0, t), posted(2, 7, Expect::Answer, 0, t)];
        let reads =
            [HistoryRead::parse("GET", "/api/v10/channels/7/messages?after=1&limit=100", "Ada", 1, 100).unwrap()];
        // Part one references mk2 but echoes only mk1; part two echoes mk2.
        let sent = [reply(1, 7, Some(1002), "ack mk1"), reply(2, 7, None, "mk2")];
        let e = Evidence {
            posted: &posted,
            sent: &sent,
            reads: &reads,
            ..Default::default()
        };
        assert_eq!(e.tally().0.answered, 2);
    }

    #[test]
    fn notices_give_up_and_loose_notices_cover_the_oldest_lost() {
        let t = Instant::now();
        let posted = [posted(1, 7, Expect::Answer, 0, t), posted(2, 8, Expect::Answer, 0, t)];
        let sent = [
            reply(1, 7, Some(1001), "Sorry, I could not answer this."),
            reply(2, 8, None, "Sorry, I could not answer this."),
        ];
        let e = Evidence {
            posted: &posted,
            sent: &sent,
            notice: Some("could not answer"),
            ..Default::default()
        };
        let (tally, _) = e.tally();
        assert_eq!((tally.given_up, tally.lost, tally.unattributed), (2, 0, 0));
    }

    #[test]
    fn only_history_reads_with_after_count() {
        assert!(HistoryRead::parse("GET", "/api/v10/channels/7/messages?limit=1", "Ada", 0, 0).is_none());
        assert!(HistoryRead::parse("POST", "/api/v10/channels/7/messages", "Ada", 0, 0).is_none());
        let r = HistoryRead::parse("GET", "/api/v10/channels/7/messages?after=12&limit=100", "Ada", 3, 0).unwrap();
        assert_eq!((r.channel, r.after), (7, 12));
    }
}
