//! One serenity client per bot token: connects to Discord (in sandbox mode, over the sandbox's
//! HTTPS proxy, [`super::route`]) with the agent's shards (serenity's shard manager runs them)
//! and forwards what happens as [`GatewayEvent`]s to a callback. Also builds bots' REST clients
//! ([`http_client`]), on one process-wide HTTP connection pool.

use std::sync::Arc;

use serenity::all::{
    Context, EventHandler, GatewayIntents, Guild, GuildChannel, GuildId, GuildMemberUpdateEvent, Http, HttpBuilder,
    Interaction, Member, Message, PartialGuild, Ready, ResumedEvent, Role, RoleId, ShardStageUpdateEvent,
    UnavailableGuild, UserId,
};
use serenity::gateway::{ConnectionStage, ShardManager};
use tokio::task::JoinHandle;

use super::ordered::{Edge, OrderedSource};
use super::route::Route;
use super::threads::ThreadParents;
use crate::config::Shards;
use crate::message::{BotIdentity, Inbound};
pub use crate::phase::Shard;
use crate::secret::Secret;

/// What the gateway tells an agent.
#[derive(Debug, Clone)]
pub enum GatewayEvent {
    /// A new session of a shard is ready (first connect or re-identify).
    Ready {
        /// The bot; its `guilds` count is the shard's.
        me: BotIdentity,
        /// Which shard.
        shard: Shard,
        /// The IDs of the shard's guilds, each followed by a GUILD_CREATE.
        guilds: Vec<u64>,
    },
    /// A lost session was resumed; no events were missed.
    Resumed,
    /// A message was created somewhere the bot can see.
    Message(Inbound),
    /// A message was created that the agent will not answer, recognised at the edge
    /// ([`crate::skip`]): its IDs, not its text.
    Skipped(crate::skip::Skipped),
    /// Guild text channels and active threads the bot can see (from a GUILD_CREATE on `shard`).
    Channels {
        /// The shard whose session received the guild.
        shard: u32,
        /// The guild.
        guild: u64,
        /// The guild's channels and threads.
        channels: Vec<ChannelInfo>,
    },
    /// A thread or channel was created where the bot can see it, or a channel was changed
    /// (its name, slowmode or the bot's permissions there).
    Channel(ChannelInfo),
    /// How many of the bot's `total` shards have a connected session, as serenity's shard
    /// manager reports it, polled every [`STAGE_POLL`]: sent once when all are up, and at every
    /// poll while any is down (serenity reconnecting it).
    Connection {
        /// Shards whose session is up.
        connected: u32,
        /// Shards the bot runs.
        total: u32,
    },
    /// The bot's application ID (from READY, sent just before [`GatewayEvent::Ready`]).
    Application(u64),
    /// Someone used one of the bot's slash commands.
    Command(crate::commands::Invocation),
}

impl GatewayEvent {
    /// For [`GatewayEvent::Connection`]: every shard is up.
    pub fn all_connected(connected: u32, total: u32) -> bool {
        total > 0 && connected >= total
    }
}

/// How often the shards' connection stages are read for [`GatewayEvent::Connection`].
pub const STAGE_POLL: std::time::Duration = std::time::Duration::from_millis(250);

pub use crate::channels::ChannelInfo;

/// Where events go.
pub type EventSink = Arc<dyn Fn(GatewayEvent) + Send + Sync>;

/// One bot's event handler, shared by its shards. troupe builds serenity without its cache:
/// what the handler needs beyond each event is kept here.
struct Handler {
    sink: EventSink,
    /// Messages in gateway order (see [`super::ordered`]).
    ordered: Arc<OrderedSource>,
    /// The bot's user ID, from READY. serenity runs each handler on its own task, so a
    /// GUILD_CREATE's may run before READY's has set it: handlers that need it wait
    /// ([`Handler::me`]); READY always comes first on a session.
    me: tokio::sync::watch::Sender<Option<UserId>>,
}

impl Handler {
    fn new(sink: EventSink, edge: Edge) -> Self {
        Self {
            ordered: OrderedSource::new(sink.clone(), edge),
            sink,
            me: tokio::sync::watch::Sender::new(None),
        }
    }

    /// The bot's user ID, once READY's handler has recorded it.
    async fn me(&self) -> Option<UserId> {
        let mut me = self.me.subscribe();
        me.wait_for(Option::is_some).await.ok().and_then(|id| *id)
    }

    /// What decides new threads' permissions (see [`super::threads`]), shared with the
    /// collectors that announce new threads.
    fn threads(&self) -> std::sync::MutexGuard<'_, ThreadParents> {
        self.ordered.threads()
    }
}

#[serenity::async_trait]
impl EventHandler for Handler {
    async fn ready(&self, ctx: Context, ready: Ready) {
        self.me.send_replace(Some(ready.user.id));
        self.ordered.set_me(ready.user.id);
        self.ordered.install(&ctx.shard, ctx.shard_id.0);
        let shard = match ready.shard {
            Some(info) => Shard {
                id: info.id.0,
                total: info.total,
            },
            None => Shard {
                id: ctx.shard_id.0,
                total: 1,
            },
        };
        (self.sink)(GatewayEvent::Application(ready.application.id.get()));
        let me = BotIdentity {
            user_id: ready.user.id.get(),
            name: ready.user.name.clone(),
            guilds: ready.guilds.len(),
        };
        let guilds = ready.guilds.iter().map(|g| g.id.get()).collect();
        (self.sink)(GatewayEvent::Ready { me, shard, guilds });
    }

    async fn resume(&self, ctx: Context, _: ResumedEvent) {
        self.ordered.install(&ctx.shard, ctx.shard_id.0);
        (self.sink)(GatewayEvent::Resumed);
    }

    async fn guild_create(&self, ctx: Context, guild: Guild, _is_new: Option<bool>) {
        let Some(me) = self.me().await else { return };
        self.threads().guild_create(&guild, me);
        let channels = guild
            .channels
            .values()
            .chain(guild.threads.iter())
            .map(|c| channel_info(&guild, me, c))
            .collect();
        (self.sink)(GatewayEvent::Channels {
            shard: ctx.shard_id.0,
            guild: guild.id.get(),
            channels,
        });
    }

    async fn thread_create(&self, _ctx: Context, thread: GuildChannel) {
        self.ordered.on_handler_thread(&thread);
    }

    async fn guild_delete(&self, _ctx: Context, guild: UnavailableGuild, _full: Option<Guild>) {
        self.threads().guild_delete(guild.id);
    }

    async fn guild_update(&self, _ctx: Context, _old: Option<Guild>, guild: PartialGuild) {
        self.threads().guild_update(guild.id, guild.owner_id, &guild.roles);
    }

    async fn channel_create(&self, _ctx: Context, channel: GuildChannel) {
        let Some(me) = self.me().await else { return };
        self.ordered.on_handler_channel(&channel, me);
    }

    async fn channel_update(&self, _ctx: Context, _old: Option<GuildChannel>, channel: GuildChannel) {
        let Some(me) = self.me().await else { return };
        self.ordered.on_handler_channel(&channel, me);
    }

    async fn channel_delete(&self, _ctx: Context, channel: GuildChannel, _messages: Option<Vec<Message>>) {
        self.threads().channel_delete(channel.guild_id, channel.id);
    }

    async fn guild_role_create(&self, _ctx: Context, role: Role) {
        self.threads().role_upsert(&role);
    }

    async fn guild_role_update(&self, _ctx: Context, _old: Option<Role>, role: Role) {
        self.threads().role_upsert(&role);
    }

    async fn guild_role_delete(&self, _ctx: Context, guild: GuildId, role: RoleId, _old: Option<Role>) {
        self.threads().role_delete(guild, role);
    }

    async fn guild_member_update(
        &self,
        _ctx: Context,
        _old: Option<Member>,
        _new: Option<Member>,
        event: GuildMemberUpdateEvent,
    ) {
        self.threads()
            .member_update(event.guild_id, event.user.id, &event.roles);
    }

    async fn shard_stage_update(&self, ctx: Context, _: ShardStageUpdateEvent) {
        // The earliest event of a new shard runner: its collectors start empty.
        self.ordered.install(&ctx.shard, ctx.shard_id.0);
    }

    async fn message(&self, _ctx: Context, message: Message) {
        self.ordered.on_handler_message(&message);
    }

    async fn interaction_create(&self, _ctx: Context, interaction: Interaction) {
        if let Interaction::Command(command) = interaction {
            (self.sink)(GatewayEvent::Command(super::interactions::invocation(&command)));
        }
    }
}

/// Our view of a guild channel or thread. Permissions are computed from the guild's roles and
/// the channel's overwrites (a thread follows its parent: View Channel and Send Messages in
/// Threads), so the agent never tries and fails.
fn channel_info(guild: &Guild, me: UserId, c: &GuildChannel) -> ChannelInfo {
    let member = guild.members.get(&me);
    let thread_parent = c
        .thread_metadata
        .as_ref()
        .and(c.parent_id)
        .and_then(|p| guild.channels.get(&p));
    // A category, forum or directory holds no messages of its own: nothing is sent or read
    // there (a forum's posts are threads, which follow it).
    let writable = c.is_text_based()
        && member.is_some_and(|m| match thread_parent {
            Some(parent) => {
                let p = guild.user_permissions_in(parent, m);
                p.view_channel() && p.send_messages_in_threads()
            }
            None => {
                let p = guild.user_permissions_in(c, m);
                p.view_channel() && p.send_messages()
            }
        });
    ChannelInfo {
        id: c.id.get(),
        name: c.name.clone(),
        guild_id: guild.id.get(),
        writable,
        slowmode: std::time::Duration::from_secs(u64::from(c.rate_limit_per_user.unwrap_or(0))),
        parent_id: thread_parent.map(|p| p.id.get()),
    }
}

/// The intents troupe needs: guilds (channels and permissions), guild and direct messages,
/// and message content.
pub fn intents() -> GatewayIntents {
    GatewayIntents::GUILDS
        | GatewayIntents::GUILD_MESSAGES
        | GatewayIntents::DIRECT_MESSAGES
        | GatewayIntents::MESSAGE_CONTENT
}

/// The process's one HTTP connection pool for Discord REST: every agent's clients share it, so
/// 100 agents build one TLS configuration and root store instead of 300 (see
/// `docs/benchmarks.md`). Requests carry their own token, so sharing the pool shares nothing else.
/// `None` if it cannot be built (the TLS backend failed to initialise): each client then builds
/// its own, as serenity does by default.
fn shared_reqwest() -> Option<reqwest::Client> {
    static SHARED: std::sync::OnceLock<Option<reqwest::Client>> = std::sync::OnceLock::new();
    SHARED
        .get_or_init(|| super::route::rest_client_builder().build().ok())
        .clone()
}

/// A REST client for a token, with serenity's rate limiter on, for `https://discord.com` over
/// `route` (in sandbox mode, the sandbox's HTTPS proxy and CA); only an `ApiBase` route (a
/// rate-limiting proxy) turns the limiter off. Build one per bot and share it (`Arc`,
/// [`super::Rest`]): serenity's rate limiter lives in the client, so two clients for one token
/// would not see each other's buckets. The gateway's serenity client is the exception: its
/// `ClientBuilder` takes an `Http` by value, so [`GatewayConnection::connect`] builds a second
/// one, which serenity uses to connect and troupe never sends with.
pub fn http_client(token: &Secret, route: &Route) -> Http {
    let mut builder = HttpBuilder::new(token.expose());
    let client = match route {
        Route::Sandbox(client) => Some(client.clone()),
        Route::Discord | Route::ApiBase(_) => shared_reqwest(),
    };
    if let Some(client) = client {
        builder = builder.client(client);
    }
    match route {
        Route::ApiBase(base) => builder.proxy(base).ratelimiter_disabled(true).build(),
        Route::Discord | Route::Sandbox(_) => builder.build(),
    }
}

/// A running gateway connection.
pub struct GatewayConnection {
    shard_manager: Arc<ShardManager>,
    task: JoinHandle<()>,
    watcher: JoinHandle<()>,
}

impl std::fmt::Debug for GatewayConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GatewayConnection")
    }
}

/// Why a gateway could not start or stopped.
#[derive(Debug, thiserror::Error)]
#[error("gateway: {0}")]
pub struct GatewayError(String);

impl GatewayConnection {
    /// Connects `shards` shards and starts forwarding events to `sink` (messages the agent's
    /// view at `edge` skips as [`GatewayEvent::Skipped`]); `on_end` is called once
    /// when the client stops by itself (fatal gateway error), with the reason. Sharded bots read
    /// `GET /gateway/bot` first: `"auto"` takes its recommended count, and no shard starts when
    /// fewer session starts remain than there are shards (Discord resets the token of a bot
    /// that runs out).
    pub async fn connect(
        token: &Secret,
        route: &Route,
        shards: Shards,
        sink: EventSink,
        edge: Edge,
        on_end: Box<dyn FnOnce(String) + Send>,
    ) -> Result<Self, GatewayError> {
        let http = http_client(token, route);
        let total = shard_count(&http, shards)
            .await
            .map_err(|e| GatewayError(redact(&e, token)))?;
        let watch_sink = sink.clone();
        let mut client = serenity::client::ClientBuilder::new_with_http(http, intents())
            .event_handler(Handler::new(sink, edge))
            .await
            .map_err(|e| GatewayError(redact(&e.to_string(), token)))?;
        let shard_manager = client.shard_manager.clone();
        let watcher = tokio::spawn(watch_connection(shard_manager.clone(), total, watch_sink));
        let token = token.clone();
        let task = tokio::spawn(async move {
            // serenity's shard manager starts the shards one every 5 seconds (its queuer), so
            // it never exceeds any `max_concurrency`, and restarts a shard whose session is lost.
            let reason = match client.start_shards(total).await {
                Ok(()) => "gateway client stopped".to_string(),
                Err(e) => redact(&e.to_string(), &token),
            };
            on_end(reason);
        });
        Ok(Self {
            shard_manager,
            task,
            watcher,
        })
    }

    /// Closes the connection and waits for the client to stop.
    pub async fn shutdown(mut self) {
        self.watcher.abort();
        self.shard_manager.shutdown_all().await;
        let _ = (&mut self.task).await;
    }
}

impl Drop for GatewayConnection {
    fn drop(&mut self) {
        // If nobody called `shutdown` (e.g. the owning actor was killed), do not leave a
        // connected client behind.
        self.task.abort();
        self.watcher.abort();
    }
}

/// How many shards to run: `Fixed(1)` needs no request; otherwise `GET /gateway/bot` gives the
/// recommended count (for `"auto"`) and the session starts left, which must cover every shard.
async fn shard_count(http: &Http, shards: Shards) -> Result<u32, String> {
    if shards == Shards::Fixed(1) {
        return Ok(1);
    }
    let bot = http
        .get_bot_gateway()
        .await
        .map_err(|e| format!("cannot read GET /gateway/bot: {e}"))?;
    let total = match shards {
        Shards::Auto => bot.shards.max(1),
        Shards::Fixed(n) => n,
    };
    check_session_starts(
        total,
        bot.session_start_limit.remaining,
        bot.session_start_limit.reset_after,
    )?;
    tracing::info!(
        shards = total,
        recommended = bot.shards,
        max_concurrency = bot.session_start_limit.max_concurrency,
        session_starts_left = bot.session_start_limit.remaining,
        "starting gateway shards"
    );
    Ok(total)
}

/// Refuses to start `shards` shards when fewer session starts (`remaining`) are left: each
/// shard's IDENTIFY uses one, and a bot that runs out has its token reset by Discord.
fn check_session_starts(shards: u32, remaining: u64, reset_after_ms: u64) -> Result<(), String> {
    if remaining < u64::from(shards) {
        return Err(format!(
            "only {remaining} gateway session starts are left today for {shards} shards; Discord resets the count in {} s",
            reset_after_ms / 1000
        ));
    }
    Ok(())
}

/// Reports the shards' sessions going down and coming back. serenity reconnects by itself
/// (RESUME, or a new IDENTIFY after INVALID_SESSION) and tells the event handler nothing
/// reliable when a session drops, so the shard manager's record of each shard's stage is polled
/// instead. A shard not started yet (serenity starts one every 5 seconds) counts as down.
///
/// "Down" is repeated at every poll: READY (handled elsewhere) may have marked the session up
/// between two polls, and a drop right after must still be reported.
async fn watch_connection(manager: Arc<ShardManager>, total: u32, sink: EventSink) {
    let mut up = false;
    loop {
        tokio::time::sleep(STAGE_POLL).await;
        let connected = {
            let runners = manager.runners.lock().await;
            runners
                .values()
                .filter(|r| r.stage == ConnectionStage::Connected)
                .count() as u32
        };
        let now_up = GatewayEvent::all_connected(connected, total);
        if !now_up || !up {
            sink(GatewayEvent::Connection { connected, total });
        }
        up = now_up;
    }
}

/// Removes a token from an error text, in case a library ever echoes it.
fn redact(text: &str, token: &Secret) -> String {
    if token.expose().is_empty() {
        text.to_string()
    } else {
        text.replace(token.expose(), "[redacted]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shard_needs_a_session_start() {
        assert!(check_session_starts(4, 4, 0).is_ok());
        let e = check_session_starts(4, 3, 86_400_000).unwrap_err();
        assert!(
            e.contains("only 3 gateway session starts") && e.contains("for 4 shards") && e.contains("86400 s"),
            "{e}"
        );
    }

    #[test]
    fn only_channels_that_hold_messages_are_writable() {
        use serenity::all::ChannelType;

        use crate::discord::threads::tests::{guild, ME};
        let mut g = guild();
        let me = UserId::new(ME);
        let text = g
            .channels
            .values()
            .find(|c| channel_info(&g, me, c).writable)
            .unwrap()
            .clone();
        for (kind, holds) in [
            (ChannelType::Text, true),
            (ChannelType::News, true),
            (ChannelType::Voice, true),
            (ChannelType::Category, false),
            (ChannelType::Forum, false),
            (ChannelType::Directory, false),
        ] {
            let mut c = text.clone();
            c.kind = kind;
            g.channels.insert(c.id, c.clone());
            assert_eq!(channel_info(&g, me, &c).writable, holds, "{kind:?} at GUILD_CREATE");
            let mut later = ThreadParents::default();
            later.guild_create(&g, me);
            later.channel_upsert(&c, me);
            assert_eq!(
                later.channel_info(&c).unwrap().writable,
                holds,
                "{kind:?} created later"
            );
        }
    }

    #[test]
    fn connected_means_every_shard_up() {
        assert!(GatewayEvent::all_connected(4, 4));
        assert!(!GatewayEvent::all_connected(3, 4));
        assert!(!GatewayEvent::all_connected(0, 0), "no shard yet");
    }
}
