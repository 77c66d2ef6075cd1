//! The sandbox's gateway: Discord's websocket protocol (HELLO, IDENTIFY, READY, GUILD_CREATE,
//! dispatches with sequence numbers, heartbeats, RESUME, RECONNECT, INVALID_SESSION) and the
//! registry of sessions that dispatches reach.
//!
//! A session outlives its connection, as on Discord: events dispatched while a bot is
//! disconnected are buffered (up to [`RESUME_BUFFER`]) and replayed on RESUME, unless the bot
//! logged off (closed with 1000 or 1001), which ends its session. An event is serialized once
//! for all the sessions it reaches ([`Dispatch`]). A session is one shard of its bot and
//! receives only the events of its shard's guilds (DMs: shard 0), see [`shards`].

use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message as WsMessage, WebSocket};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::world::{ChannelKind, Message, World};
use super::Shared;

pub mod events;
use events::is_own;
pub use events::EventKind;
mod members;
pub mod shards;
pub mod transport;
use shards::{BotSharding, IdentifyBuckets};

/// Events kept per session for RESUME; older ones make a resume fail with INVALID_SESSION.
pub const RESUME_BUFFER: usize = 4096;
/// IDENTIFY budget a token has per day, as Discord's `session_start_limit.total`.
pub const IDENTIFY_BUDGET: u32 = 1000;

/// Gateway intents the sandbox honours.
pub mod intents {
    /// GUILDS.
    pub const GUILDS: u64 = 1 << 0;
    /// GUILD_MEMBERS (privileged).
    pub const GUILD_MEMBERS: u64 = 1 << 1;
    /// GUILD_PRESENCES (privileged).
    pub const GUILD_PRESENCES: u64 = 1 << 8;
    /// GUILD_MESSAGE_REACTIONS.
    pub const GUILD_MESSAGE_REACTIONS: u64 = 1 << 10;
    /// DIRECT_MESSAGE_REACTIONS.
    pub const DIRECT_MESSAGE_REACTIONS: u64 = 1 << 13;
    /// The privileged intents: a bot must be granted them (4014 otherwise).
    pub const PRIVILEGED: u64 = GUILD_MEMBERS | GUILD_PRESENCES | MESSAGE_CONTENT;
    /// Every intent Discord defines (up to DIRECT_MESSAGE_POLLS, `1 << 25`); other bits are
    /// invalid (4013).
    pub const ALL_DEFINED: u64 = (1 << 26) - 1;
    /// GUILD_MESSAGES.
    pub const GUILD_MESSAGES: u64 = 1 << 9;
    /// DIRECT_MESSAGES.
    pub const DIRECT_MESSAGES: u64 = 1 << 12;
    /// MESSAGE_CONTENT (privileged).
    pub const MESSAGE_CONTENT: u64 = 1 << 15;
}

/// What a connection task is asked to write.
#[derive(Debug)]
enum Outbound {
    Frame(String),
    /// A dispatch with the sequence number the session gave it.
    Dispatch(u64, Arc<Dispatch>),
    Close(u16, &'static str),
}

/// A dispatch (op 0) as the sessions it goes to share it: its name and payload, serialized
/// once. Each session numbers it (`s`) and the connection writes the frame, so fanning an event
/// out to N sessions serializes it once, not N times, and a disconnected session's resume
/// buffer holds a reference, not a copy (the fan-out was most of the sandbox's work per message
/// with many bots connected: docs/benchmarks.md, issue 18).
#[derive(Debug)]
pub struct Dispatch {
    /// The event name as a JSON string, quotes included.
    t: String,
    /// The payload as JSON.
    d: String,
}

impl Dispatch {
    /// Serializes event `t` with payload `d`.
    pub fn new(t: &str, d: &Value) -> Arc<Dispatch> {
        Arc::new(Dispatch {
            t: Value::from(t).to_string(),
            d: d.to_string(),
        })
    }

    /// The frame as sequence number `seq`, its fields in the order Discord sends them.
    fn frame(&self, seq: u64) -> String {
        let mut f = String::with_capacity(self.d.len() + self.t.len() + 40);
        // Writing to a String cannot fail.
        let _ = write!(f, r#"{{"t":{},"s":{seq},"op":0,"d":{}}}"#, self.t, self.d);
        f
    }
}

#[derive(Debug)]
struct Session {
    bot_id: u64,
    token: String,
    intents: u64,
    seq: u64,
    buffer: VecDeque<(u64, Arc<Dispatch>)>,
    conn: Option<(u64, mpsc::UnboundedSender<Outbound>)>,
    /// `[shard_id, num_shards]` from IDENTIFY (`[0, 1]` without one).
    shard: [u64; 2],
}

impl Session {
    /// Whether this session receives events of `guild` (`None`: a DM), by its shard.
    fn routes(&self, guild: Option<u64>) -> bool {
        shards::shard_of(guild, self.shard[1]) == self.shard[0]
    }

    /// Whether this session receives events of channel `channel_id`: its bot sees the channel
    /// and the channel's guild (or DM) is on this session's shard.
    fn receives(&self, world: &World, channel_id: u64) -> bool {
        world.can_view(self.bot_id, channel_id)
            && world
                .channel(channel_id)
                .is_some_and(|c| self.routes(world.guild_of(c)))
    }

    /// Numbers `dispatch`, keeps it for RESUME and hands it to the connection, if any.
    fn push(&mut self, dispatch: &Arc<Dispatch>) {
        self.seq += 1;
        if self.buffer.len() == RESUME_BUFFER {
            self.buffer.pop_front();
        }
        self.buffer.push_back((self.seq, dispatch.clone()));
        if let Some((_, tx)) = &self.conn {
            let _ = tx.send(Outbound::Dispatch(self.seq, dispatch.clone()));
        }
    }

    /// [`Session::push`] of an event only this session receives.
    fn push_value(&mut self, t: &str, d: &Value) {
        self.push(&Dispatch::new(t, d));
    }
}

/// A fault the control API can inject into a bot's gateway connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GatewayFault {
    /// Close the socket abruptly (code 4000); the session stays resumable.
    Close,
    /// Send op 7 RECONNECT; the client reconnects and resumes.
    Reconnect,
    /// Send op 9 INVALID_SESSION (not resumable) and forget the session: the client must
    /// IDENTIFY again and missed events are not replayed.
    InvalidSession,
}

/// All gateway sessions.
#[derive(Debug, Default)]
pub struct Gateway {
    sessions: Mutex<HashMap<String, Session>>,
    identifies: Mutex<HashMap<u64, u32>>,
    refused_until: Mutex<HashMap<u64, Instant>>,
    /// Bots' sharding, where set (`POST /sandbox/shards`); others get [`BotSharding::default`].
    sharding: Mutex<HashMap<u64, BotSharding>>,
    identify_buckets: Mutex<IdentifyBuckets>,
    next_conn: AtomicU64,
    next_session: AtomicU64,
}

impl Gateway {
    /// Number of IDENTIFYs a bot has made since the sandbox started.
    pub fn identify_count(&self, bot: u64) -> u32 {
        self.identifies
            .lock()
            .map(|m| m.get(&bot).copied().unwrap_or(0))
            .unwrap_or(0)
    }

    /// A bot's sharding: what `GET /gateway/bot` reports and IDENTIFY enforces.
    pub fn sharding(&self, bot: u64) -> BotSharding {
        self.sharding
            .lock()
            .map(|m| m.get(&bot).copied().unwrap_or_default())
            .unwrap_or_default()
    }

    /// Sets a bot's sharding (its IDENTIFYs are limited per bucket from now on).
    pub fn set_sharding(&self, bot: u64, sharding: BotSharding) {
        self.sharding.lock().expect("gateway lock").insert(bot, sharding);
    }

    /// Bots with a live connection.
    pub fn connected_bots(&self) -> Vec<u64> {
        let sessions = self.sessions.lock().expect("gateway lock");
        let mut bots: Vec<u64> = sessions
            .values()
            .filter(|s| s.conn.is_some())
            .map(|s| s.bot_id)
            .collect();
        bots.sort_unstable();
        bots.dedup();
        bots
    }

    /// Every session with a live connection, by bot. A bot listed twice with one shard has two
    /// processes receiving its events.
    pub fn live_sessions(&self) -> Vec<crate::sessions::LiveSession> {
        let sessions = self.sessions.lock().expect("gateway lock");
        let mut live: Vec<crate::sessions::LiveSession> = sessions
            .iter()
            .filter_map(|(id, s)| {
                s.conn.as_ref().map(|(conn, _)| crate::sessions::LiveSession {
                    bot: s.bot_id,
                    session: id.clone(),
                    connection: *conn,
                    shard: s.shard,
                })
            })
            .collect();
        live.sort();
        live
    }

    /// Sends MESSAGE_CREATE to every session whose bot can see the channel and asked for the
    /// matching intent. Content is blanked without MESSAGE_CONTENT, except where Discord still
    /// delivers it (DMs, mentions of the bot, the bot's own messages). Call with the world locked.
    pub fn dispatch_message_create(&self, world: &World, msg: &Message) {
        let Some(channel) = world.channel(msg.channel_id) else {
            return;
        };
        let is_dm = matches!(channel.kind, ChannelKind::Dm { .. });
        let needed = if is_dm {
            intents::DIRECT_MESSAGES
        } else {
            intents::GUILD_MESSAGES
        };
        let mut sessions = self.sessions.lock().expect("gateway lock");
        let mut rendered: [Option<Arc<Dispatch>>; 2] = [None, None];
        for session in sessions.values_mut() {
            if session.intents & needed == 0 || !session.receives(world, msg.channel_id) {
                continue;
            }
            let own = is_own(msg, session.bot_id);
            let content = session.intents & intents::MESSAGE_CONTENT != 0
                || is_dm
                || own
                || msg.mentions.contains(&session.bot_id);
            let d = rendered[content as usize].get_or_insert_with(|| {
                let mut v = world.message_json(msg, content);
                members::add_message_members(world, msg, &mut v);
                Dispatch::new("MESSAGE_CREATE", &v)
            });
            session.push(d);
        }
    }

    /// Sends `t` (CHANNEL_CREATE or CHANNEL_UPDATE) about guild channel `channel_id` to every
    /// session (with the GUILDS intent) whose bot can see it, or is one of `also` (bots that
    /// could see it before an update). Call with the world locked.
    pub fn dispatch_channel(&self, world: &World, t: &str, channel_id: u64, also: &[u64]) {
        let Some(channel) = world.channel(channel_id) else {
            return;
        };
        let d = Dispatch::new(t, &world.channel_json(channel));
        let guild = world.guild_of(channel);
        let mut sessions = self.sessions.lock().expect("gateway lock");
        for session in sessions.values_mut() {
            let told = session.receives(world, channel_id) || (also.contains(&session.bot_id) && session.routes(guild));
            if session.intents & intents::GUILDS != 0 && told {
                session.push(&d);
            }
        }
    }

    /// Sends THREAD_CREATE to every session (with the GUILDS intent) whose bot can see the new
    /// thread. Call with the world locked.
    pub fn dispatch_thread_create(&self, world: &World, thread_id: u64) {
        let Some(thread) = world.channel(thread_id) else { return };
        let mut d = world.channel_json(thread);
        d["newly_created"] = json!(true);
        let d = Dispatch::new("THREAD_CREATE", &d);
        let mut sessions = self.sessions.lock().expect("gateway lock");
        for session in sessions.values_mut() {
            if session.intents & intents::GUILDS != 0 && session.receives(world, thread_id) {
                session.push(&d);
            }
        }
    }

    /// Injects a gateway fault into every session of `bot` (only the one on shard `shard`, if
    /// given); returns how many were affected. `refuse_for` keeps the bot from connecting again
    /// for that long (its IDENTIFY is closed with 4000 and its RESUME answered INVALID_SESSION).
    pub fn inject(&self, bot: u64, fault: GatewayFault, refuse_for: Option<Duration>, shard: Option<u64>) -> usize {
        if let Some(d) = refuse_for {
            self.refused_until
                .lock()
                .expect("gateway lock")
                .insert(bot, Instant::now() + d);
        }
        let mut sessions = self.sessions.lock().expect("gateway lock");
        let mut affected = 0;
        let mut forget = Vec::new();
        let chosen = |s: &Session| s.bot_id == bot && shard.is_none_or(|k| s.shard[0] == k);
        for (id, s) in sessions.iter_mut().filter(|(_, s)| chosen(s)) {
            if let Some((_, tx)) = &s.conn {
                affected += 1;
                let _ = match fault {
                    GatewayFault::Close => tx.send(Outbound::Close(4000, "Unknown error")),
                    GatewayFault::Reconnect => tx.send(Outbound::Frame(
                        json!({"op": 7, "d": null, "s": null, "t": null}).to_string(),
                    )),
                    GatewayFault::InvalidSession => tx.send(Outbound::Frame(
                        json!({"op": 9, "d": false, "s": null, "t": null}).to_string(),
                    )),
                };
            }
            if fault == GatewayFault::InvalidSession {
                forget.push(id.clone());
            }
        }
        for id in forget {
            sessions.remove(&id);
        }
        affected
    }

    /// Whether session `id` exists and is served by connection `conn`.
    fn attached(&self, id: &str, conn: u64) -> bool {
        let sessions = self.sessions.lock().expect("gateway lock");
        sessions
            .get(id)
            .is_some_and(|s| s.conn.as_ref().is_some_and(|(c, _)| *c == conn))
    }

    /// Whether `bot` is currently refused (fault injection).
    pub fn refused(&self, bot: u64) -> bool {
        let mut refused = self.refused_until.lock().expect("gateway lock");
        match refused.get(&bot) {
            Some(until) if *until > Instant::now() => true,
            Some(_) => {
                refused.remove(&bot);
                false
            }
            None => false,
        }
    }
}

/// Serves one websocket connection until it closes. `query` is the connection URL's query
/// string (`v`, `encoding`, `compress`; see [`transport::parse_query`]).
pub async fn serve_connection(mut socket: WebSocket, shared: Arc<Shared>, query: Option<String>) {
    let params = match transport::parse_query(query.as_deref()) {
        Ok(p) => p,
        Err((code, reason)) => return close(&mut socket, code, reason).await,
    };
    let mut encoder = transport::Encoder::new(params);
    let conn_id = shared.gateway.next_conn.fetch_add(1, Ordering::Relaxed);
    let heartbeat = shared.world.lock().map(|w| w.heartbeat_interval_ms).unwrap_or(41_250);
    let hello = json!({"op": 10, "d": {"heartbeat_interval": heartbeat}, "s": null, "t": null});
    if socket.send(encoder.frame(hello.to_string())).await.is_err() {
        return;
    }
    let (tx, mut rx) = mpsc::unbounded_channel::<Outbound>();
    let mut session_id: Option<String> = None;
    // Whether the client logged off: closed with 1000 or 1001 (below).
    let mut logged_off = false;
    loop {
        tokio::select! {
            incoming = socket.recv() => {
                let text = match incoming {
                    Some(Ok(WsMessage::Text(t))) => t.to_string(),
                    Some(Ok(WsMessage::Binary(_))) => { close(&mut socket, 4002, "Decode error").await; break; }
                    // Discord's Gateway docs: a close with 1000 or 1001 invalidates the session
                    // (the bot logs off); any other close, or a dropped connection, leaves it
                    // resumable.
                    Some(Ok(WsMessage::Close(frame))) => {
                        logged_off = frame.is_some_and(|f| matches!(f.code, 1000 | 1001));
                        break;
                    }
                    None | Some(Err(_)) => break,
                    Some(Ok(_)) => continue,
                };
                let Ok(payload) = serde_json::from_str::<Value>(&text) else {
                    close(&mut socket, 4002, "Decode error").await;
                    break;
                };
                // A session invalidated (or resumed elsewhere) leaves this connection
                // unauthenticated: it may IDENTIFY afresh.
                if session_id.as_deref().is_some_and(|id| !shared.gateway.attached(id, conn_id)) {
                    session_id = None;
                }
                match payload.get("op").and_then(Value::as_u64) {
                    Some(1) => {
                        let ack = json!({"op": 11, "d": null, "s": null, "t": null}).to_string();
                        if socket.send(encoder.frame(ack)).await.is_err() { break; }
                    }
                    Some(2) if session_id.is_some() => { close(&mut socket, 4005, "Already authenticated").await; break; }
                    Some(2) => match identify(&shared, &payload["d"], conn_id, &tx) {
                        Ok(id) => session_id = Some(id),
                        // Over max_concurrency: Discord answers op 9 and leaves the socket open.
                        Err(IDENTIFY_TOO_SOON) => {
                            let invalid = json!({"op": 9, "d": false, "s": null, "t": null}).to_string();
                            if socket.send(encoder.frame(invalid)).await.is_err() { break; }
                        }
                        Err((code, reason)) => { close(&mut socket, code, reason).await; break; }
                    },
                    Some(6) if session_id.is_some() => { close(&mut socket, 4005, "Already authenticated").await; break; }
                    Some(6) => match resume(&shared, &payload["d"], conn_id, &tx) {
                        Some(id) => session_id = Some(id),
                        None => {
                            let invalid = json!({"op": 9, "d": false, "s": null, "t": null}).to_string();
                            if socket.send(encoder.frame(invalid)).await.is_err() { break; }
                        }
                    },
                    // Presence and voice state updates, and requests for soundboard sounds (31),
                    // are accepted and have no effect here: the sandbox has none of them.
                    Some(3) | Some(4) | Some(31) if session_id.is_some() => {}
                    Some(8) => match session_id.as_deref().map(|id| members::request_guild_members(&shared, id, &payload["d"])) {
                        None => { close(&mut socket, 4003, "Not authenticated").await; break; }
                        Some(Ok(())) => {}
                        Some(Err((code, reason))) => { close(&mut socket, code, reason).await; break; }
                    },
                    Some(_) | None => {
                        if session_id.is_none() { close(&mut socket, 4003, "Not authenticated").await; break; }
                        close(&mut socket, 4001, "Unknown opcode").await;
                        break;
                    }
                }
            }
            Some(out) = rx.recv() => match out {
                Outbound::Frame(f) => if socket.send(encoder.frame(f)).await.is_err() { break; },
                Outbound::Dispatch(seq, d) => if socket.send(encoder.frame(d.frame(seq))).await.is_err() { break; },
                Outbound::Close(code, reason) => { close(&mut socket, code, reason).await; break; }
            }
        }
    }
    if let Some(id) = session_id {
        if let Ok(mut sessions) = shared.gateway.sessions.lock() {
            if let Some(s) = sessions.get_mut(&id) {
                if s.conn.as_ref().is_some_and(|(c, _)| *c == conn_id) {
                    s.conn = None;
                    if logged_off {
                        sessions.remove(&id);
                    }
                }
            }
        }
    }
}

async fn close(socket: &mut WebSocket, code: u16, reason: &'static str) {
    let _ = socket
        .send(WsMessage::Close(Some(CloseFrame {
            code,
            reason: reason.into(),
        })))
        .await;
}

/// [`identify`]'s answer to an IDENTIFY over the bot's `max_concurrency`: not a close, an op 9
/// INVALID_SESSION (Discord's Gateway docs, "Identifying").
const IDENTIFY_TOO_SOON: (u16, &str) = (0, "identify rate limited");

fn identify(
    shared: &Shared,
    d: &Value,
    conn_id: u64,
    tx: &mpsc::UnboundedSender<Outbound>,
) -> Result<String, (u16, &'static str)> {
    let token = d.get("token").and_then(Value::as_str).unwrap_or_default();
    let token = token.strip_prefix("Bot ").unwrap_or(token);
    let intents = d
        .get("intents")
        .and_then(Value::as_u64)
        .filter(|i| i & !intents::ALL_DEFINED == 0)
        .ok_or((4013, "Invalid intent(s)"))?;
    let world = shared.world.lock().expect("world lock");
    let bot = world
        .user_by_token(token)
        .filter(|u| u.bot)
        .ok_or((4004, "Authentication failed"))?;
    let bot_id = bot.id;
    if shared.gateway.refused(bot_id) {
        return Err((4000, "Unknown error"));
    }
    if intents & intents::PRIVILEGED & !world.granted_privileged_intents(bot_id) != 0 {
        return Err((4014, "Disallowed intent(s)"));
    }
    let sharding = shared.gateway.sharding(bot_id);
    let guild_ids: Vec<u64> = world.guilds_of(bot_id).iter().map(|g| g.id).collect();
    let shard = shards::check_identify(d.get("shard"), &guild_ids, &sharding)?;
    if sharding.limit_identify {
        let mut buckets = shared.gateway.identify_buckets.lock().expect("gateway lock");
        if !buckets.admit(bot_id, shard[0], sharding.max_concurrency, Instant::now()) {
            return Err(IDENTIFY_TOO_SOON);
        }
    }
    {
        let mut counts = shared.gateway.identifies.lock().expect("gateway lock");
        let n = counts.entry(bot_id).or_insert(0);
        if *n >= IDENTIFY_BUDGET {
            return Err((4008, "Rate limited"));
        }
        *n += 1;
    }
    // Unique per IDENTIFY: a connection that identifies again must not reuse the old ID.
    let n = shared.gateway.next_session.fetch_add(1, Ordering::Relaxed);
    let session_id = format!("sandbox-{bot_id}-{conn_id}-{n}");
    let guilds: Vec<&super::world::Guild> = world
        .guilds_of(bot_id)
        .iter()
        .filter(|g| shards::shard_of(Some(g.id), shard[1]) == shard[0])
        .collect();
    let mut session = Session {
        bot_id,
        token: token.to_string(),
        intents,
        seq: 0,
        buffer: VecDeque::new(),
        conn: Some((conn_id, tx.clone())),
        shard,
    };
    let ready = json!({
        "v": 10,
        "user": world.current_user_json(bot_id),
        "guilds": guilds.iter().map(|g| json!({"id": g.id.to_string(), "unavailable": true})).collect::<Vec<_>>(),
        "session_id": session_id,
        "resume_gateway_url": format!("{}/gateway", shared.ws_base),
        "shard": shard,
        "application": {"id": bot_id.to_string(), "flags": 0},
        "private_channels": [],
        "relationships": [],
        "user_settings": {},
        "presences": [],
        "guild_join_requests": [],
        "geo_ordered_rtc_regions": [],
    });
    session.push_value("READY", &ready);
    if intents & intents::GUILDS != 0 {
        let presences = intents & intents::GUILD_PRESENCES != 0;
        for g in guilds {
            session.push_value("GUILD_CREATE", &world.guild_create_json(g, bot_id, presences));
        }
    }
    shared
        .gateway
        .sessions
        .lock()
        .expect("gateway lock")
        .insert(session_id.clone(), session);
    Ok(session_id)
}

fn resume(shared: &Shared, d: &Value, conn_id: u64, tx: &mpsc::UnboundedSender<Outbound>) -> Option<String> {
    let token = d.get("token").and_then(Value::as_str)?;
    let token = token.strip_prefix("Bot ").unwrap_or(token);
    let id = d.get("session_id").and_then(Value::as_str)?;
    let seq = d.get("seq").and_then(Value::as_u64).unwrap_or(0);
    let mut sessions = shared.gateway.sessions.lock().expect("gateway lock");
    let session = sessions.get_mut(id)?;
    if session.token != token || shared.gateway.refused(session.bot_id) {
        return None;
    }
    let oldest = session.buffer.front().map_or(session.seq + 1, |(s, _)| *s);
    if seq + 1 < oldest || seq > session.seq {
        sessions.remove(id);
        return None;
    }
    session.conn = Some((conn_id, tx.clone()));
    for (s, dispatch) in &session.buffer {
        if *s > seq {
            let _ = tx.send(Outbound::Dispatch(*s, dispatch.clone()));
        }
    }
    session.push_value("RESUMED", &json!({}));
    Some(id.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dispatch_frame_is_the_payload_numbered_once_serialized() {
        let d = json!({"content": "say \"hi\"\n", "id": "1"});
        let dispatch = Dispatch::new("MESSAGE_CREATE", &d);
        for seq in [1, 42] {
            let frame: Value = serde_json::from_str(&dispatch.frame(seq)).unwrap();
            assert_eq!(frame, json!({"op": 0, "s": seq, "t": "MESSAGE_CREATE", "d": d}));
        }
    }

    #[test]
    fn sessions_share_a_dispatch_and_number_it_each_their_own() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let session = |seq, conn: Option<(u64, mpsc::UnboundedSender<Outbound>)>| Session {
            bot_id: 1,
            token: "t".into(),
            intents: 0,
            seq,
            buffer: VecDeque::new(),
            conn,
            shard: [0, 1],
        };
        let (mut live, mut gone) = (session(6, Some((1, tx))), session(2, None));
        let dispatch = Dispatch::new("TYPING_START", &json!({}));
        live.push(&dispatch);
        gone.push(&dispatch);
        assert!(matches!(rx.try_recv(), Ok(Outbound::Dispatch(7, ref d)) if Arc::ptr_eq(d, &dispatch)));
        assert_eq!(gone.buffer.back().map(|(s, _)| *s), Some(3));
        assert!(Arc::ptr_eq(&gone.buffer[0].1, &live.buffer[0].1));
    }
}
