//! Slash commands: troupe's own view of a command use ([`Invocation`], converted from serenity
//! at the edge in `discord/interactions.rs`), the commands it understands ([`Command`]) and who
//! may use them. Pure; the agent actor runs them (`actors/agent/commands.rs`).
//!
//! - [`definitions`]: the command objects each bot registers, and whether what Discord already
//!   has is the same (so a restart writes nothing).
//! - [`forget`]: what `/forget-me` removes from a conversation's memory.
//! - [`replies`]: the texts and embeds the commands answer with.

pub mod definitions;
pub mod forget;
pub mod replies;

/// Permission bit ADMINISTRATOR: every permission.
pub const ADMINISTRATOR: u64 = 1 << 3;
/// Permission bit MANAGE_CHANNELS: who may `/pause` and `/resume` an agent in a channel.
pub const MANAGE_CHANNELS: u64 = 1 << 4;
/// Permission bit MANAGE_GUILD: who may see and set users' budgets with `/budget`.
pub const MANAGE_GUILD: u64 = 1 << 5;

/// A slash command as a user used it, in troupe's own terms.
#[derive(Debug, Clone, PartialEq)]
pub struct Invocation {
    /// The interaction's ID (for the initial response).
    pub id: u64,
    /// The interaction's token (for the response and later edits; valid 15 minutes).
    pub token: String,
    /// The command's name.
    pub name: String,
    /// Its options, by name, as given (subcommands are not used by troupe's commands).
    pub options: Vec<(String, OptionValue)>,
    /// Who used it.
    pub user_id: u64,
    /// Their display name.
    pub user_name: String,
    /// Where.
    pub channel_id: u64,
    /// The guild, or `None` in a DM.
    pub guild_id: Option<u64>,
    /// The member's permissions in the channel, as Discord computed them (`None` in a DM).
    pub permissions: Option<u64>,
}

/// An option's value.
#[derive(Debug, Clone, PartialEq)]
pub enum OptionValue {
    /// STRING (and anything troupe reads as text).
    Text(String),
    /// INTEGER.
    Integer(i64),
    /// USER: the user's ID.
    User(u64),
}

/// Which agents `/forget-me` applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForgetScope {
    /// The agent whose command was used (the default).
    ThisAgent,
    /// Every agent of the troupe (in this process).
    EveryAgent,
}

/// A command troupe understands, with its options read.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Forget the caller's conversation with this agent.
    Reset,
    /// Delete what is remembered about the caller.
    ForgetMe(ForgetScope),
    /// The cast.
    Agents,
    /// What the caller, this channel and this agent spent.
    Usage,
    /// Silence the agent in this channel.
    Pause,
    /// Let the agent answer in this channel again.
    Resume,
    /// See (`tokens: None`) or set a user's budget with this agent.
    Budget {
        /// The user.
        user: u64,
        /// The new limit in tokens (0 lifts the override).
        tokens: Option<u64>,
    },
}

/// Why a command use cannot be run; each has a short, polite text for the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Not a command troupe registered (an old registration, or another build's).
    Unknown,
    /// A required option is missing or has the wrong type.
    BadOption(&'static str),
    /// The caller lacks the permission the command needs.
    NotAllowed,
    /// A moderator command used outside a guild.
    GuildOnly,
}

impl Refusal {
    /// What the user is told (ephemeral).
    pub fn text(&self) -> String {
        match self {
            Refusal::Unknown => "Sorry, I don't know that command.".into(),
            Refusal::BadOption(name) => format!("Sorry, the `{name}` option is missing or not valid."),
            Refusal::NotAllowed => "Sorry, only moderators can use this command.".into(),
            Refusal::GuildOnly => "This command works in a server channel, not in DMs.".into(),
        }
    }

    /// The metric outcome label.
    pub fn label(&self) -> &'static str {
        match self {
            Refusal::Unknown => "unknown",
            Refusal::BadOption(_) => "bad_option",
            Refusal::NotAllowed => "refused",
            Refusal::GuildOnly => "guild_only",
        }
    }
}

impl Command {
    /// Every command's name, for metrics (series exist from the start).
    pub const NAMES: [&'static str; 7] = ["reset", "forget-me", "agents", "usage", "pause", "resume", "budget"];

    /// The command's name.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Reset => "reset",
            Command::ForgetMe(_) => "forget-me",
            Command::Agents => "agents",
            Command::Usage => "usage",
            Command::Pause => "pause",
            Command::Resume => "resume",
            Command::Budget { .. } => "budget",
        }
    }

    /// The permission a moderator command needs (`None`: anyone may use it).
    pub fn permission(&self) -> Option<u64> {
        match self {
            Command::Pause | Command::Resume => Some(MANAGE_CHANNELS),
            Command::Budget { .. } => Some(MANAGE_GUILD),
            _ => None,
        }
    }

    /// Reads a use of a command, and checks the caller may use it: Discord hides moderator
    /// commands from members without `default_member_permissions`, and troupe checks the
    /// member's permissions again (a server's admins can change who sees a command).
    pub fn parse(inv: &Invocation) -> Result<Command, Refusal> {
        let command = match inv.name.as_str() {
            "reset" => Command::Reset,
            "forget-me" => Command::ForgetMe(match text(inv, "scope") {
                None | Some("agent") => ForgetScope::ThisAgent,
                Some("all") => ForgetScope::EveryAgent,
                Some(_) => return Err(Refusal::BadOption("scope")),
            }),
            "agents" => Command::Agents,
            "usage" => Command::Usage,
            "pause" => Command::Pause,
            "resume" => Command::Resume,
            "budget" => {
                let user = match option(inv, "user") {
                    Some(OptionValue::User(u)) => *u,
                    _ => return Err(Refusal::BadOption("user")),
                };
                let tokens = match option(inv, "tokens") {
                    None => None,
                    Some(OptionValue::Integer(n)) if *n >= 0 => Some(*n as u64),
                    Some(_) => return Err(Refusal::BadOption("tokens")),
                };
                Command::Budget { user, tokens }
            }
            _ => return Err(Refusal::Unknown),
        };
        if let Some(needed) = command.permission() {
            let Some(perms) = inv.permissions.filter(|_| inv.guild_id.is_some()) else {
                return Err(Refusal::GuildOnly);
            };
            if !allowed(perms, needed) {
                return Err(Refusal::NotAllowed);
            }
        }
        Ok(command)
    }
}

/// Whether permissions `perms` include `needed` (ADMINISTRATOR includes everything).
pub fn allowed(perms: u64, needed: u64) -> bool {
    perms & ADMINISTRATOR != 0 || perms & needed == needed
}

fn option<'a>(inv: &'a Invocation, name: &str) -> Option<&'a OptionValue> {
    inv.options.iter().find(|(n, _)| n == name).map(|(_, v)| v)
}

fn text<'a>(inv: &'a Invocation, name: &str) -> Option<&'a str> {
    match option(inv, name) {
        Some(OptionValue::Text(t)) => Some(t),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inv(name: &str, options: Vec<(&str, OptionValue)>, permissions: Option<u64>) -> Invocation {
        Invocation {
            id: 1,
            token: "t".into(),
            name: name.into(),
            options: options.into_iter().map(|(n, v)| (n.to_string(), v)).collect(),
            user_id: 7,
            user_name: "alice".into(),
            channel_id: 3,
            guild_id: permissions.map(|_| 9),
            permissions,
        }
    }

    #[test]
    fn everyone_commands_parse_with_their_options() {
        assert_eq!(Command::parse(&inv("reset", vec![], Some(0))), Ok(Command::Reset));
        assert_eq!(Command::parse(&inv("agents", vec![], None)), Ok(Command::Agents));
        assert_eq!(
            Command::parse(&inv("forget-me", vec![], None)),
            Ok(Command::ForgetMe(ForgetScope::ThisAgent))
        );
        assert_eq!(
            Command::parse(&inv(
                "forget-me",
                vec![("scope", OptionValue::Text("all".into()))],
                None
            )),
            Ok(Command::ForgetMe(ForgetScope::EveryAgent))
        );
        assert_eq!(
            Command::parse(&inv("forget-me", vec![("scope", OptionValue::Text("x".into()))], None)),
            Err(Refusal::BadOption("scope"))
        );
        assert_eq!(Command::parse(&inv("roll", vec![], None)), Err(Refusal::Unknown));
    }

    #[test]
    fn moderator_commands_need_the_permission_in_a_guild() {
        assert_eq!(Command::parse(&inv("pause", vec![], Some(0))), Err(Refusal::NotAllowed));
        assert_eq!(
            Command::parse(&inv("pause", vec![], Some(MANAGE_GUILD))),
            Err(Refusal::NotAllowed),
            "the wrong permission"
        );
        assert_eq!(
            Command::parse(&inv("pause", vec![], Some(MANAGE_CHANNELS))),
            Ok(Command::Pause)
        );
        assert_eq!(
            Command::parse(&inv("resume", vec![], Some(ADMINISTRATOR))),
            Ok(Command::Resume)
        );
        assert_eq!(Command::parse(&inv("pause", vec![], None)), Err(Refusal::GuildOnly));
        let budget = |perms| {
            Command::parse(&inv(
                "budget",
                vec![("user", OptionValue::User(8)), ("tokens", OptionValue::Integer(500))],
                Some(perms),
            ))
        };
        assert_eq!(budget(MANAGE_CHANNELS), Err(Refusal::NotAllowed));
        assert_eq!(
            budget(MANAGE_GUILD),
            Ok(Command::Budget {
                user: 8,
                tokens: Some(500)
            })
        );
        let negative = inv(
            "budget",
            vec![("user", OptionValue::User(8)), ("tokens", OptionValue::Integer(-1))],
            Some(MANAGE_GUILD),
        );
        assert_eq!(Command::parse(&negative), Err(Refusal::BadOption("tokens")));
        let no_user = inv("budget", vec![], Some(MANAGE_GUILD));
        assert_eq!(Command::parse(&no_user), Err(Refusal::BadOption("user")));
    }

    #[test]
    fn refusals_are_short_and_name_no_internals() {
        for r in [
            Refusal::Unknown,
            Refusal::BadOption("tokens"),
            Refusal::NotAllowed,
            Refusal::GuildOnly,
        ] {
            assert!(
                r.text().len() < 80 && r.text().starts_with(|c: char| c.is_uppercase()),
                "{r:?}"
            );
        }
    }
}
