//! Where an agent stands between a READY and real time: connecting (waiting for every
//! GUILD_CREATE), replaying what it missed (live messages wait in a queue), then live. Each
//! READY starts over with a new replay generation, so results of a superseded replay are
//! recognised and ignored. Pure: the agent actor drives it.

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

/// An agent's replay phase and the messages it holds back meanwhile.
#[derive(Debug)]
pub struct ReplayPhase {
    phase: Phase,
    generation: u64,
    guilds_seen: usize,
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
            guilds_seen: 0,
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

    /// A READY: a new session, whose missed messages are replayed before going live again.
    pub fn ready(&mut self) {
        self.phase = Phase::Connecting;
        self.guilds_seen = 0;
    }

    /// A GUILD_CREATE arrived.
    pub fn guild_seen(&mut self) {
        self.guilds_seen += 1;
    }

    /// Whether every guild of the session (`guilds`) has arrived while still connecting: the
    /// replay may begin.
    pub fn may_begin(&self, guilds: usize) -> bool {
        self.phase == Phase::Connecting && self.guilds_seen >= guilds
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
        p.ready();
        assert!(!p.may_begin(2));
        p.guild_seen();
        p.guild_seen();
        assert!(p.may_begin(2));
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
        p.ready();
        let first = p.begin();
        p.go_live();
        p.ready();
        assert_eq!(p.phase(), Phase::Connecting);
        assert!(p.may_begin(0));
        let second = p.begin();
        assert!(second > first && !p.is_current(first));
    }
}
