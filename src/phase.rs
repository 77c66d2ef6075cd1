//! Where an agent stands between a READY and real time: connecting (waiting for the READY of
//! every shard and every GUILD_CREATE that follows), replaying what it missed (live messages
//! wait in a queue), then live. Each READY, of any shard, starts over with a new replay
//! generation, so results of a superseded replay are recognised and ignored. Pure: the agent
//! actor drives it.

use std::collections::{HashMap, HashSet};

use crate::message::Inbound;

/// The phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Waiting for READY and every GUILD_CREATE.
    Connecting,
    /// Reading and answering the backlog; live messages wait.
    Replaying,
    /// Real time.
    Live,
}

/// One gateway shard of a bot: `id` of `total` (`0` of `1` unsharded).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// This shard, `0..total`.
    pub id: u32,
    /// How many shards the bot runs.
    pub total: u32,
}

/// A shard's session since its READY: the guilds READY announced, those whose GUILD_CREATE has
/// arrived.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct ShardProgress {
    expected: HashSet<u64>,
    seen: HashSet<u64>,
}

impl ShardProgress {
    fn complete(&self) -> bool {
        self.seen.len() >= self.expected.len()
    }
}

/// An agent's replay phase and the messages it holds back meanwhile.
#[derive(Debug)]
pub struct ReplayPhase {
    phase: Phase,
    generation: u64,
    /// Per shard of the current gateway client: `None` until its READY.
    shards: Vec<Option<ShardProgress>>,
    /// Per shard, GUILD_CREATEs its current session did not expect: most often the GUILD_CREATE
    /// of a READY that has not reached the agent yet (serenity runs each event handler on its
    /// own task, so the GUILD_CREATE that follows a READY can arrive first). The next READY of
    /// the shard counts them.
    early: HashMap<u32, HashSet<u64>>,
    /// Messages that arrived before READY and every GUILD_CREATE (serenity dispatches each event
    /// on its own task, so they can overtake those events), then during the replay.
    held: Vec<Inbound>,
    /// Messages the current replay handed out, so the held ones are not answered twice.
    replayed: std::collections::HashSet<u64>,
}

impl Default for ReplayPhase {
    fn default() -> Self {
        Self {
            phase: Phase::Connecting,
            generation: 0,
            shards: Vec::new(),
            early: HashMap::new(),
            held: Vec::new(),
            replayed: Default::default(),
        }
    }
}

impl ReplayPhase {
    /// Where the agent stands.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// The current replay's generation.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// A new gateway client starts: every shard will identify again, and the replay waits for
    /// all of their READYs.
    pub fn reconnecting(&mut self) {
        self.shards.clear();
        self.early.clear();
    }

    /// A READY of `shard`, announcing `guilds`: a new session (first connect, or a re-identify),
    /// whose missed messages are replayed before going live again. The other shards' sessions
    /// carry on; the replay reads every channel, so whatever this shard's guilds and DMs missed
    /// is found. A GUILD_CREATE of these guilds that arrived before this READY counts.
    pub fn ready(&mut self, shard: Shard, guilds: &[u64]) {
        self.phase = Phase::Connecting;
        let total = shard.total.max(1) as usize;
        if self.shards.len() != total {
            // A different shard count is a new client: the old shards' sessions are gone.
            self.shards = vec![None; total];
        }
        let early = self.early.remove(&shard.id).unwrap_or_default();
        if let Some(slot) = self.shards.get_mut(shard.id as usize) {
            let expected: HashSet<u64> = guilds.iter().copied().collect();
            let seen = expected.intersection(&early).copied().collect();
            *slot = Some(ShardProgress { expected, seen });
        }
    }

    /// The GUILD_CREATE of `guild` arrived on `shard`.
    pub fn guild_seen(&mut self, shard: u32, guild: u64) {
        match self.shards.get_mut(shard as usize) {
            Some(Some(p)) if p.expected.contains(&guild) && !p.seen.contains(&guild) => {
                p.seen.insert(guild);
            }
            // Not for the current session: for the READY that follows, or a guild joined.
            _ => {
                self.early.entry(shard).or_default().insert(guild);
            }
        }
    }

    /// Whether, still connecting, every shard has had its READY and all of its guilds have
    /// arrived: the replay may begin.
    pub fn may_begin(&self) -> bool {
        self.phase == Phase::Connecting
            && !self.shards.is_empty()
            && self
                .shards
                .iter()
                .all(|s| s.as_ref().is_some_and(ShardProgress::complete))
    }

    /// Shards whose READY and every GUILD_CREATE have arrived, of the current client's total.
    pub fn shards_ready(&self) -> (usize, usize) {
        let ready = self
            .shards
            .iter()
            .filter(|s| s.as_ref().is_some_and(ShardProgress::complete))
            .count();
        (ready, self.shards.len())
    }

    /// A live message: returned when it can be handled now, held otherwise.
    pub fn live(&mut self, m: Inbound) -> Option<Inbound> {
        match self.phase {
            Phase::Live => Some(m),
            Phase::Connecting | Phase::Replaying => {
                self.held.push(m);
                None
            }
        }
    }

    /// The replay begins; returns its generation.
    pub fn begin(&mut self) -> u64 {
        self.generation += 1;
        self.phase = Phase::Replaying;
        self.replayed.clear();
        self.generation
    }

    /// Whether a replay's result belongs to the current replay.
    pub fn is_current(&self, generation: u64) -> bool {
        generation == self.generation
    }

    /// The replay handed out this message.
    pub fn replayed(&mut self, id: u64) {
        self.replayed.insert(id);
    }

    /// The oldest held message of a channel, if any.
    pub fn oldest_held(&self, channel: u64) -> Option<u64> {
        self.held.iter().filter(|m| m.channel_id == channel).map(|m| m.id).min()
    }

    /// How many live messages are held.
    pub fn held(&self) -> usize {
        self.held.len()
    }

    /// The replay is done: live from now on. Returns the held messages the replay did not
    /// cover, oldest first.
    pub fn go_live(&mut self) -> Vec<Inbound> {
        self.phase = Phase::Live;
        let mut held = std::mem::take(&mut self.held);
        held.retain(|m| !self.replayed.contains(&m.id));
        held.sort_by_key(|m| m.id);
        self.replayed.clear();
        held
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acl::ChainLength;

    const ONE: Shard = Shard { id: 0, total: 1 };

    fn message(id: u64, channel: u64) -> Inbound {
        Inbound {
            id,
            channel_id: channel,
            guild_id: Some(1),
            author_id: 7,
            author_name: "alice".into(),
            author_is_bot: false,
            webhook_id: None,
            content: String::new(),
            mentions: vec![],
            mention_everyone: false,
            reply_to: None,
            footers: vec![],
            chain: ChainLength::HUMAN,
            attachments: Vec::new(),
        }
    }

    #[test]
    fn messages_wait_until_the_replay_is_done_and_are_not_answered_twice() {
        let mut p = ReplayPhase::default();
        assert_eq!(p.live(message(5, 1)), None, "before READY");
        assert!(!p.may_begin(), "no READY yet");
        p.ready(ONE, &[10, 11]);
        assert!(!p.may_begin());
        p.guild_seen(0, 10);
        p.guild_seen(0, 10);
        assert!(!p.may_begin(), "the same guild twice is one guild");
        p.guild_seen(0, 11);
        assert!(p.may_begin());
        let generation = p.begin();
        assert!(p.is_current(generation) && !p.is_current(generation - 1));
        assert_eq!(p.live(message(3, 1)), None, "during the replay");
        assert_eq!(p.live(message(9, 2)), None);
        assert_eq!(p.oldest_held(1), Some(3));
        assert_eq!(p.held(), 3);
        // The replay covered message 5.
        p.replayed(5);
        let ids: Vec<u64> = p.go_live().iter().map(|m| m.id).collect();
        assert_eq!(ids, vec![3, 9]);
        assert_eq!(p.phase(), Phase::Live);
        assert!(p.live(message(10, 1)).is_some());
    }

    #[test]
    fn a_new_ready_starts_a_new_generation() {
        let mut p = ReplayPhase::default();
        p.ready(ONE, &[]);
        let first = p.begin();
        p.go_live();
        p.ready(ONE, &[]);
        assert_eq!(p.phase(), Phase::Connecting);
        assert!(p.may_begin());
        let second = p.begin();
        assert!(second > first && !p.is_current(first));
    }

    #[test]
    fn a_guild_create_that_overtakes_its_ready_still_counts() {
        // Regression: serenity runs each event handler on its own task, so the GUILD_CREATE
        // that follows a READY can reach the agent first. Counting it and then resetting the
        // count at READY left the agent connecting for good, holding every live message.
        let mut p = ReplayPhase::default();
        p.guild_seen(0, 10);
        p.ready(ONE, &[10]);
        assert!(p.may_begin(), "the guild arrived, before its READY");
        p.begin();
        p.go_live();
        // A re-identify: the new session's GUILD_CREATE overtakes its READY again.
        p.guild_seen(0, 10);
        p.ready(ONE, &[10]);
        assert!(p.may_begin());
        // A guild joined while live counts for the next READY (its channels are known); that
        // READY still waits for its other guilds.
        p.begin();
        p.go_live();
        p.guild_seen(0, 12);
        p.ready(ONE, &[10, 12]);
        assert!(!p.may_begin(), "guild 10 of the new session has not arrived");
        p.guild_seen(0, 10);
        assert!(p.may_begin());
    }

    fn shard(id: u32) -> Shard {
        Shard { id, total: 3 }
    }

    #[test]
    fn the_replay_waits_for_the_ready_and_guilds_of_every_shard() {
        let mut p = ReplayPhase::default();
        p.ready(shard(0), &[10]);
        p.guild_seen(0, 10);
        assert!(!p.may_begin(), "shards 1 and 2 have not identified");
        p.ready(shard(2), &[20, 21]);
        p.guild_seen(2, 20);
        p.ready(shard(1), &[]);
        assert_eq!(p.shards_ready(), (2, 3));
        assert!(!p.may_begin(), "a guild of shard 2 is missing");
        p.guild_seen(2, 21);
        assert_eq!(p.shards_ready(), (3, 3));
        assert!(p.may_begin());
        p.guild_seen(7, 70); // a shard that does not exist changes nothing
        assert!(p.may_begin());
        p.begin();
        assert_eq!(p.live(message(3, 1)), None, "held during the replay");
        assert_eq!(p.go_live().len(), 1);
    }

    #[test]
    fn a_re_identify_of_one_shard_holds_messages_and_replays_again() {
        let mut p = ReplayPhase::default();
        for id in 0..3 {
            p.ready(shard(id), &[u64::from(id)]);
            p.guild_seen(id, u64::from(id));
        }
        let first = p.begin();
        p.go_live();
        assert!(p.live(message(1, 1)).is_some());
        // Shard 1 lost its session and identified again: its guilds may have missed messages.
        p.ready(shard(1), &[1]);
        assert_eq!(p.phase(), Phase::Connecting);
        assert_eq!(p.live(message(2, 1)), None, "held until the new replay is done");
        assert!(!p.may_begin(), "shard 1's guild has not arrived");
        assert_eq!(p.shards_ready(), (2, 3));
        p.guild_seen(1, 1);
        assert!(p.may_begin(), "the other shards' sessions carried on");
        let second = p.begin();
        assert!(!p.is_current(first) && p.is_current(second));
        assert_eq!(p.go_live().iter().map(|m| m.id).collect::<Vec<_>>(), vec![2]);
    }

    #[test]
    fn a_new_client_waits_for_every_shard_again() {
        let mut p = ReplayPhase::default();
        for id in 0..3 {
            p.ready(shard(id), &[]);
        }
        p.begin();
        p.go_live();
        p.reconnecting();
        p.ready(shard(0), &[]);
        assert!(!p.may_begin(), "shards 1 and 2 of the new client have not identified");
        // A READY with another shard count (`shards = "auto"` read a new recommendation).
        p.ready(Shard { id: 0, total: 1 }, &[]);
        assert!(p.may_begin());
        assert_eq!(p.shards_ready(), (1, 1));
    }
}
