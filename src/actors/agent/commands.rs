//! An agent's slash commands: registered once per scope when the session comes up, and run
//! when used. The agent never waits on Discord: answers go out from spawned tasks, directly
//! when the work is done within 2 seconds, otherwise after a deferral by editing the response
//! (`/reset` and `/forget-me` wait for a turn in flight to end).

use std::collections::HashSet;

use ractor::RpcReplyPort;

use super::*;
use crate::actors::conversation::Control;
use crate::commands::replies::{self, Usage};
use crate::commands::{Command, ForgetScope, Invocation};
use crate::config::{CommandScope, MemoryMode};
use crate::discord::interactions::{self, Answer, Registered};
use crate::quota::{self, Window};
use crate::store::Forgotten;

/// How long a deferred command waits for its conversations (an interaction's token lasts 15
/// minutes; a turn in flight may take a while).
const CONTROL_TIMEOUT: Duration = Duration::from_secs(600);
/// Attempts at registering a scope's commands before giving up until the next start.
const REGISTER_ATTEMPTS: u32 = 8;

/// What every agent's state keeps for commands.
#[derive(Debug, Default)]
pub struct CommandState {
    /// The bot's application, from READY.
    application_id: Option<u64>,
    /// Scopes registered (or being registered) this run: `None` is global.
    registered: HashSet<Option<u64>>,
    /// Channels where the agent is paused.
    pub paused: HashSet<u64>,
}

impl CommandState {
    /// The state at start: the pauses kept in the store.
    pub fn load(spec: &SharedSpec) -> Self {
        let paused = match spec.store.paused_channels(&spec.config.name) {
            Ok(channels) => channels.into_iter().collect(),
            Err(e) => {
                tracing::error!(agent = %spec.config.name, error = %e, "cannot read the channels where the agent is paused");
                HashSet::new()
            }
        };
        Self {
            paused,
            ..Self::default()
        }
    }
}

/// READY named the bot's application: REST calls about commands need it.
pub(super) fn on_application(state: &mut AgentState, app: u64) {
    state.commands.application_id = Some(app);
    state.http.set_application_id(serenity::all::ApplicationId::new(app));
    if state.spec.discord.commands == CommandScope::Global {
        register(state, std::iter::once(None));
    }
}

/// The bot is in these guilds: with guild-scoped commands, each is registered once per run.
pub(super) fn on_guilds(state: &mut AgentState, guilds: impl IntoIterator<Item = u64>) {
    if state.spec.discord.commands == CommandScope::Guild {
        register(state, guilds.into_iter().map(Some));
    }
}

/// Registers the commands of new scopes, each in its own task, retried with back-off; the agent
/// answers messages meanwhile.
fn register(state: &mut AgentState, scopes: impl IntoIterator<Item = Option<u64>>) {
    let Some(app) = state.commands.application_id else {
        return;
    };
    if state.spec.run.dry_run != DryRun::None || state.spec.run.mode != RunMode::Monitor {
        return;
    }
    for scope in scopes {
        if !state.commands.registered.insert(scope) {
            continue;
        }
        let (http, name) = (state.http.clone(), state.spec.config.name.clone());
        tokio::spawn(async move {
            for attempt in 1..=REGISTER_ATTEMPTS {
                match interactions::register(&http, app, scope).await {
                    Ok(done) => {
                        let written = done == Registered::Written;
                        tracing::info!(agent = %name, guild = ?scope, written, "slash commands registered");
                        return;
                    }
                    Err(e) => {
                        let wait = crate::retry::backoff(
                            Duration::from_secs(1),
                            Duration::from_secs(120),
                            attempt,
                            rand::random(),
                        );
                        tracing::warn!(agent = %name, guild = ?scope, attempt, error = %e, wait_ms = wait.as_millis() as u64, "cannot register slash commands; trying again");
                        tokio::time::sleep(wait).await;
                    }
                }
            }
            tracing::error!(agent = %name, guild = ?scope, "slash commands not registered; they are tried again at the next start");
        });
    }
}

/// The conversation a user's command acts on, under the agent's memory mode (DMs are the
/// user's own).
fn conversation_of(mode: MemoryMode, inv: &Invocation) -> ConversationKey {
    match (inv.guild_id, mode) {
        (None, _) | (Some(_), MemoryMode::User) => ConversationKey::User(inv.user_id),
        (Some(_), MemoryMode::Channel) => ConversationKey::Channel(inv.channel_id),
        (Some(_), MemoryMode::ChannelUser) => ConversationKey::ChannelUser(inv.channel_id, inv.user_id),
    }
}

/// Runs a command use.
pub(super) async fn on_command(myself: &ActorRef<AgentMsg>, state: &mut AgentState, inv: Invocation) {
    let name = state.spec.config.name.clone();
    let command = match Command::parse(&inv) {
        Ok(c) => c,
        Err(refusal) => {
            tracing::info!(agent = %name, command = %inv.name, outcome = refusal.label(), "slash command refused");
            telemetry::command_used(&name, &inv.name, refusal.label());
            answer_now(state, inv, Answer::private(refusal.text()), "refused");
            return;
        }
    };
    tracing::info!(agent = %name, command = command.name(), channel = inv.channel_id, "slash command");
    match command {
        Command::Agents => {
            let answer = Answer {
                content: String::new(),
                embed: Some(replies::agents_embed(&state.spec.roster.members)),
                ephemeral: false,
            };
            answer_now(state, inv, answer, "ok");
        }
        Command::Usage => {
            let text = replies::usage_text(&usage(&state.spec, &inv));
            answer_now(state, inv, Answer::private(text), "ok");
        }
        Command::Pause | Command::Resume => {
            let pause = command == Command::Pause;
            let channel = inv.channel_id;
            if pause {
                state.commands.paused.insert(channel);
            } else {
                state.commands.paused.remove(&channel);
            }
            let spec = state.spec.clone();
            answer_in_time(state, inv, async move {
                let saved = spec.store.set_paused(&spec.config.name, channel, pause).await;
                match (saved, pause) {
                    (Ok(()), true) => ok(format!("{} is paused in this channel.", spec.config.name)),
                    (Ok(()), false) => ok(format!("{} answers in this channel again.", spec.config.name)),
                    (Err(e), _) => {
                        tracing::error!(agent = %spec.config.name, channel, error = %e, "cannot save a pause");
                        sorry()
                    }
                }
            });
        }
        Command::Budget { user, tokens } => {
            let spec = state.spec.clone();
            answer_in_time(state, inv, async move {
                let agent = &spec.config.name;
                if let Some(t) = tokens {
                    if let Err(e) = spec.store.set_budget_override(agent, user, (t > 0).then_some(t)).await {
                        tracing::error!(agent = %agent, error = %e, "cannot save a budget");
                        return sorry();
                    }
                }
                let b = &spec.config.budgets;
                let overridden = spec.store.budget_override(agent, user).ok().flatten();
                let limit = quota::user_limit(b, overridden);
                let since = b.window.start(crate::actors::turn::now_ms());
                let used = spec.store.user_usage(user_scope(&spec), user, since).unwrap_or(0);
                ok(replies::budget_text(user, limit, overridden.is_some(), used, b.window))
            });
        }
        Command::Reset => {
            let key = conversation_of(state.spec.config.memory, &inv);
            let (reply, done) = port();
            control(myself, state, key, Control::Reset(reply)).await;
            answer_in_time(state, inv, async move {
                if matches!(tokio::time::timeout(CONTROL_TIMEOUT, done).await, Ok(Ok(()))) {
                    ok("Done: I have forgotten our conversation here.")
                } else {
                    sorry()
                }
            });
        }
        Command::ForgetMe(scope) => {
            let waits = forget_here(state, inv.user_id, &inv.user_name).await;
            let others = match scope {
                ForgetScope::ThisAgent => Vec::new(),
                ForgetScope::EveryAgent => state.spec.roster.others(&name),
            };
            let spec = state.spec.clone();
            let (user, user_name) = (inv.user_id, inv.user_name.clone());
            answer_in_time(state, inv, async move {
                let mut done = waits.await;
                for agent in others {
                    let (reply, forgotten) = port();
                    let name = user_name.clone();
                    let asked = agent.cast(AgentMsg::Forget { user, name, reply }).is_ok();
                    done &= asked && matches!(tokio::time::timeout(CONTROL_TIMEOUT, forgotten).await, Ok(Ok(true)));
                }
                if scope == ForgetScope::EveryAgent {
                    done &= spec.store.forget_user_troupe(user).await.is_ok();
                }
                match (done, scope) {
                    (true, ForgetScope::ThisAgent) => ok(format!(
                        "Done: {} has forgotten everything about you.",
                        spec.config.name
                    )),
                    (true, ForgetScope::EveryAgent) => ok("Done: every agent has forgotten everything about you."),
                    (false, _) => sorry(),
                }
            });
        }
    }
}

/// Another agent's `/forget-me` for every agent: forget the user here, and say when done.
pub(super) async fn on_forget(state: &mut AgentState, user: u64, name: &str, reply: RpcReplyPort<bool>) {
    let waits = forget_here(state, user, name).await;
    tokio::spawn(async move {
        let _ = reply.send(waits.await);
    });
}

/// Forgets the user in this agent: live conversations forget in their actors (after any turn
/// in flight); the store's records of the others are edited now, while no conversation of
/// theirs can start (the agent is busy with this). Returns what to wait for.
async fn forget_here(state: &mut AgentState, user: u64, user_name: &str) -> impl std::future::Future<Output = bool> {
    let mut waiting = Vec::new();
    let mut live = Vec::new();
    for key in state.conversations.keys() {
        let (reply, done) = port();
        let control = Control::Forget {
            user,
            name: user_name.to_string(),
            reply,
        };
        if let Some(conversation) = state.conversations.get_mut(key) {
            conversation.receive(ConversationMsg::Control(control)).await;
            live.push(key);
            waiting.push(done);
        }
    }
    let name = state.spec.config.name.clone();
    let stored = match state.spec.store.forget_user(&name, user, user_name, &live).await {
        Ok(done) => {
            let Forgotten {
                conversations,
                pending,
                usage,
            } = done;
            tracing::info!(agent = %name, conversations, pending, usage, live = live.len(), "forgot a user on their request");
            true
        }
        Err(e) => {
            tracing::error!(agent = %name, error = %e, "cannot forget a user in the store");
            false
        }
    };
    async move {
        let mut ok = stored;
        for done in waiting {
            ok &= matches!(tokio::time::timeout(CONTROL_TIMEOUT, done).await, Ok(Ok(())));
        }
        ok
    }
}

/// Hands a control to the conversation of `key`, starting it if needed.
async fn control(myself: &ActorRef<AgentMsg>, state: &mut AgentState, key: ConversationKey, control: Control) {
    conversation_for(myself, state, key)
        .receive(ConversationMsg::Control(control))
        .await;
}

fn port<T>() -> (RpcReplyPort<T>, ractor::concurrency::OneshotReceiver<T>) {
    let (tx, rx) = ractor::concurrency::oneshot();
    (RpcReplyPort::from(tx), rx)
}

/// Whose spending a user's budget counts with this agent.
fn user_scope(spec: &SharedSpec) -> &str {
    match spec.config.budgets.user_scope {
        quota::UserScope::Agent => &spec.config.name,
        quota::UserScope::Troupe => crate::store::TROUPE,
    }
}

/// `/usage`'s figures, read from the store (a store that cannot be read shows 0).
fn usage(spec: &SharedSpec, inv: &Invocation) -> Usage {
    let (store, agent, now) = (&spec.store, &spec.config.name, crate::actors::turn::now_ms());
    let (today, month) = (Window::Daily.start(now), Window::Monthly.start(now));
    let scope = user_scope(spec);
    let user = |since| store.user_usage(scope, inv.user_id, since).unwrap_or(0);
    let channel = |since| store.channel_usage(agent, inv.channel_id, since).unwrap_or(0);
    let all = |since| store.agent_usage(agent, since).unwrap_or(0);
    let b = &spec.config.budgets;
    let since = b.window.start(now);
    let overridden = store.budget_override(agent, inv.user_id).ok().flatten();
    Usage {
        user: (user(today), user(month)),
        channel: (channel(today), channel(month)),
        agent: (all(today), all(month)),
        user_limit: quota::user_limit(b, overridden).map(|l| (l, user(since))),
        agent_limit: b.agent_tokens.map(|l| (l, all(since))),
        window: b.window,
    }
}

/// What the user is told when something went wrong on troupe's side.
const SORRY: &str = "Sorry, something went wrong; please try again in a moment.";

/// How long a command may take before it is deferred: Discord wants the first response within
/// 3 seconds.
const ANSWER_WITHIN: Duration = Duration::from_secs(2);

/// An ephemeral answer and its outcome `ok`.
fn ok(text: impl Into<String>) -> (Answer, &'static str) {
    (Answer::private(text), "ok")
}

/// The polite error and its outcome `error`.
fn sorry() -> (Answer, &'static str) {
    (Answer::private(SORRY), "error")
}

/// Answers from a task, so the agent goes on at once.
fn answer_now(state: &AgentState, inv: Invocation, answer: Answer, outcome: &'static str) {
    answer_in_time(state, inv, async move { (answer, outcome) });
}

/// Runs `work` in a task and answers with what it returns: directly when it is done within
/// [`ANSWER_WITHIN`], otherwise after a deferral ("thinking…", ephemeral), by editing the
/// response.
fn answer_in_time(
    state: &AgentState,
    inv: Invocation,
    work: impl std::future::Future<Output = (Answer, &'static str)> + Send + 'static,
) {
    let (spec, http) = (state.spec.clone(), state.http.clone());
    tokio::spawn(async move {
        let mut work = std::pin::pin!(work);
        let (answer, outcome, deferred) = tokio::select! {
            (answer, outcome) = &mut work => (answer, outcome, false),
            () = tokio::time::sleep(ANSWER_WITHIN) => {
                let deferred = spec.run.dry_run == DryRun::None
                    && interactions::defer(&http, &inv, true).await.is_ok();
                let (answer, outcome) = work.await;
                (answer, outcome, deferred)
            }
        };
        finish(&spec, &http, &inv, answer, outcome, deferred).await;
    });
}

/// Sends the answer (as the response, or by editing a deferred one) and counts the outcome.
async fn finish(
    spec: &SharedSpec,
    http: &Rest,
    inv: &Invocation,
    answer: Answer,
    outcome: &'static str,
    deferred: bool,
) {
    let name = &spec.config.name;
    if outcome != "refused" {
        telemetry::command_used(name, &inv.name, outcome);
    }
    if spec.run.dry_run != DryRun::None {
        return;
    }
    let sent = if deferred {
        interactions::edit_original(http, inv, &answer).await
    } else {
        interactions::respond(http, inv, &answer).await
    };
    if let Err(e) = sent {
        tracing::warn!(agent = %name, command = %inv.name, error = %e, "cannot answer a slash command");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inv(guild: Option<u64>) -> Invocation {
        Invocation {
            id: 1,
            token: "t".into(),
            name: "reset".into(),
            options: vec![],
            user_id: 7,
            user_name: "alice".into(),
            channel_id: 3,
            guild_id: guild,
            permissions: None,
        }
    }

    #[test]
    fn reset_acts_on_the_callers_conversation_under_the_memory_mode() {
        assert_eq!(
            conversation_of(MemoryMode::Channel, &inv(Some(9))),
            ConversationKey::Channel(3)
        );
        assert_eq!(
            conversation_of(MemoryMode::ChannelUser, &inv(Some(9))),
            ConversationKey::ChannelUser(3, 7)
        );
        assert_eq!(
            conversation_of(MemoryMode::User, &inv(Some(9))),
            ConversationKey::User(7)
        );
        assert_eq!(
            conversation_of(MemoryMode::Channel, &inv(None)),
            ConversationKey::User(7),
            "a DM"
        );
    }
}
