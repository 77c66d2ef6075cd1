//! The channels an agent can see, and what derives from them once, when they change (not on
//! every message): the channels where it answers everything (configured ones and their
//! threads), the bot-DMs channel, and the text channels a replay reads, in order. Pure: the
//! gateway adapter converts serenity's channels into [`ChannelInfo`] at the edge.

use std::time::Duration;

/// A guild text channel or thread, by ID and name.
#[derive(Debug, Clone, PartialEq)]
pub struct ChannelInfo {
    /// Snowflake.
    pub id: u64,
    /// Name without `#`.
    pub name: String,
    /// Guild.
    pub guild_id: u64,
    /// The bot can view the channel and send messages in it.
    pub writable: bool,
    /// Slowmode (`rate_limit_per_user`).
    pub slowmode: Duration,
    /// For a thread: the channel it belongs to.
    pub parent_id: Option<u64>,
}

/// An agent's channels and what derives from them.
#[derive(Debug, Clone, Default)]
pub struct ChannelDirectory {
    /// Configured listen channels (names or IDs).
    wanted_listen: Vec<String>,
    /// The configured bot-DMs channel (name or ID).
    wanted_bot_dms: Option<String>,
    channels: Vec<ChannelInfo>,
    listen: Vec<u64>,
    bot_dms: Option<u64>,
}

impl ChannelDirectory {
    /// A directory for an agent that listens in `listen` (names or IDs) and talks to other
    /// agents in `bot_dms`.
    pub fn new(listen: Vec<String>, bot_dms: Option<String>) -> Self {
        Self {
            wanted_listen: listen,
            wanted_bot_dms: bot_dms,
            ..Self::default()
        }
    }

    /// Adds or replaces channels (a GUILD_CREATE's, or a new thread).
    pub fn update(&mut self, channels: impl IntoIterator<Item = ChannelInfo>) {
        for c in channels {
            self.channels.retain(|x| x.id != c.id);
            self.channels.push(c);
        }
        self.listen = listen_channels(&self.wanted_listen, &self.channels);
        self.bot_dms = self.wanted_bot_dms.as_ref().and_then(|c| resolve(c, &self.channels));
    }

    /// The channels where the agent answers everything.
    pub fn listen_channels(&self) -> &[u64] {
        &self.listen
    }

    /// The bot-DMs channel, once known.
    pub fn bot_dms(&self) -> Option<u64> {
        self.bot_dms
    }

    /// Known channels where the agent does not answer everything: neither a listen channel
    /// (nor one of their threads) nor the bot-DMs channel.
    pub fn quiet_channels(&self) -> impl Iterator<Item = u64> + '_ {
        self.channels
            .iter()
            .map(|c| c.id)
            .filter(|id| !self.listen.contains(id) && Some(*id) != self.bot_dms)
    }

    /// Whether the agent can write in a channel.
    pub fn writable(&self, id: u64) -> bool {
        self.channels.iter().any(|c| c.id == id && c.writable)
    }

    /// A channel's slowmode (zero for DMs and unknown channels).
    pub fn slowmode(&self, id: u64) -> Duration {
        self.channels
            .iter()
            .find(|c| c.id == id)
            .map_or(Duration::ZERO, |c| c.slowmode)
    }

    /// A channel's name, if known.
    pub fn name_of(&self, id: u64) -> Option<&str> {
        self.channels.iter().find(|c| c.id == id).map(|c| c.name.as_str())
    }

    /// A configured channel (name, `#name` or ID) as an ID, if known.
    pub fn resolve(&self, wanted: &str) -> Option<u64> {
        resolve(wanted, &self.channels)
    }

    /// The bot-DMs channel, when the agent can write in it.
    pub fn writable_bot_dms(&self) -> Option<&ChannelInfo> {
        self.bot_dms
            .and_then(|id| self.channels.iter().find(|c| c.id == id && c.writable))
    }

    /// The text channels a replay reads (writable, not the bot-DMs channel), by guild and name.
    pub fn replayed_text_channels(&self) -> Vec<&ChannelInfo> {
        let mut text: Vec<&ChannelInfo> = self
            .channels
            .iter()
            .filter(|c| c.writable && Some(c.id) != self.bot_dms)
            .collect();
        text.sort_by(|a, b| (a.guild_id, &a.name).cmp(&(b.guild_id, &b.name)));
        text
    }
}

/// The channels where the agent answers everything: the configured ones and their threads.
fn listen_channels(wanted: &[String], known: &[ChannelInfo]) -> Vec<u64> {
    let direct: Vec<u64> = wanted.iter().filter_map(|w| resolve(w, known)).collect();
    let threads = known
        .iter()
        .filter(|c| c.parent_id.is_some_and(|p| direct.contains(&p)))
        .map(|c| c.id);
    let mut all: Vec<u64> = direct.iter().copied().chain(threads).collect();
    all.sort_unstable();
    all.dedup();
    all
}

/// A configured channel's ID: a number is an ID, a name (with or without `#`) is looked up
/// among channels that are not threads.
fn resolve(wanted: &str, known: &[ChannelInfo]) -> Option<u64> {
    let w = wanted.trim_start_matches('#');
    w.parse::<u64>().ok().or_else(|| {
        known
            .iter()
            .find(|c| c.name == w && c.parent_id.is_none())
            .map(|c| c.id)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn channel(id: u64, name: &str, writable: bool, parent: Option<u64>) -> ChannelInfo {
        ChannelInfo {
            id,
            name: name.into(),
            guild_id: 1,
            writable,
            slowmode: Duration::from_secs(id % 3),
            parent_id: parent,
        }
    }

    #[test]
    fn listen_channels_include_their_threads_and_are_derived_on_update() {
        let mut d = ChannelDirectory::new(vec!["#random".into(), "99".into()], Some("bot-dms".into()));
        assert!(d.listen_channels().is_empty() && d.bot_dms().is_none());
        d.update([channel(10, "general", true, None), channel(11, "random", true, None)]);
        assert_eq!(d.listen_channels(), &[11, 99]);
        // A thread of a listen channel is listened to as well; one of another channel is not.
        d.update([
            channel(20, "chatter", true, Some(11)),
            channel(21, "plans", true, Some(10)),
        ]);
        assert_eq!(d.listen_channels(), &[11, 20, 99]);
        // A thread named like a channel does not shadow it.
        d.update([channel(22, "bot-dms", true, Some(10))]);
        assert_eq!(d.bot_dms(), None);
        d.update([channel(12, "bot-dms", false, None)]);
        assert_eq!(d.bot_dms(), Some(12));
        assert!(d.writable_bot_dms().is_none(), "not writable");
        // Quiet: every known channel that is neither listened in nor the bot-DMs channel.
        let mut quiet: Vec<u64> = d.quiet_channels().collect();
        quiet.sort_unstable();
        assert_eq!(quiet, [10, 21, 22]);
    }

    #[test]
    fn replayed_text_channels_are_writable_ordered_and_exclude_bot_dms() {
        let mut d = ChannelDirectory::new(vec![], Some("bot-dms".into()));
        d.update([
            channel(3, "zeta", true, None),
            channel(1, "alpha", true, None),
            channel(2, "hidden", false, None),
            channel(4, "bot-dms", true, None),
        ]);
        let names: Vec<&str> = d.replayed_text_channels().iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["alpha", "zeta"]);
        assert_eq!(d.writable_bot_dms().map(|c| c.id), Some(4));
        assert!(d.writable(1) && !d.writable(2) && !d.writable(77));
        assert_eq!(d.slowmode(4), Duration::from_secs(1));
        assert_eq!(d.slowmode(77), Duration::ZERO);
        // Updating a channel replaces it.
        d.update([channel(1, "alpha", false, None)]);
        assert!(!d.writable(1));
    }
}
