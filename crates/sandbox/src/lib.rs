//! The sandbox: a local Discord-compatible server (gateway websocket + REST API v10) with a
//! control API and a web page, so troupe and any serenity bot run with no Discord account.
//!
//! - [`spec`]: the world declared in `agents.toml` (`[sandbox]`).
//! - [`world`]: users, guilds, channels, messages and Discord's rules over them; its children
//!   keep edits and pins, reactions, threads from messages, webhooks and attachments.
//! - [`validate`]: Discord's limits on embeds, `allowed_mentions`, webhook names and nonces.
//! - [`image_size`]: image width and height read from PNG/JPEG/GIF/WebP headers.
//! - [`render`]: the world as Discord API v10 JSON.
//! - [`mentions`]: mentions in content and `allowed_mentions`.
//! - [`gateway`]: the websocket protocol and the sessions dispatches reach; `gateway::events`
//!   builds and sends the events that follow a message (update, delete, reactions, pins);
//!   `gateway::shards` routes guilds to shards and checks IDENTIFY's shard and concurrency.
//! - [`rest`]: the REST API under `/api/v10` (messages, reactions, threads, webhooks, guilds,
//!   multipart uploads) and the `/attachments/...` CDN.
//! - [`control`]: `/sandbox/*`, the tester's API.
//! - [`commands`]: applications' global and guild commands, and their validation.
//! - [`interactions`]: interactions, their 3-second and 15-minute windows, ephemeral messages.
//! - [`sessions`]: which connection (and shard) holds each bot, in `/sandbox/state`.
//! - [`faults`]: injected REST errors, delays and dropped sessions.
//! - [`ratelimit`]: Discord's rate limits (per-route buckets, global limit), pure.
//! - [`throttle`]: the rate limits applied to REST answers, with their headers.
//! - [`tls`]: the sandbox's CA and its certificate for `discord.com`.
//! - [`tunnel`]: `CONNECT discord.com:443`, served over that TLS by the same router.
//! - [`timing`]: dispatch-to-reply timings on the sandbox's clock, for benchmarks.
//! - [`error`]: Discord's error bodies.
//! - [`snowflake`]: IDs with real timestamps.
#![recursion_limit = "256"]

pub mod commands;
pub mod control;
pub mod error;
pub mod faults;
pub mod gateway;
pub mod image_size;
pub mod interactions;
pub mod mentions;
pub mod ratelimit;
pub mod render;
pub mod rest;
pub mod sessions;
pub mod snowflake;
pub mod spec;
pub mod throttle;
pub mod timing;
pub mod tls;
pub mod tunnel;
pub mod validate;
pub mod world;

use std::future::IntoFuture;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::{OriginalUri, RawQuery, Request, State, WebSocketUpgrade};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use self::faults::RestFaults;
use self::gateway::Gateway;
use self::spec::WorldSpec;
use self::world::World;

/// The most REST requests kept in the log (oldest dropped first).
const REQUEST_LOG_CAP: usize = 1_000_000;

/// State shared by every handler.
#[derive(Debug)]
pub struct Shared {
    /// The world.
    pub world: Mutex<World>,
    /// Gateway sessions.
    pub gateway: Gateway,
    /// Pending REST faults.
    pub faults: Mutex<RestFaults>,
    /// Every `/api/v10` request, in order.
    pub requests: Mutex<Vec<RequestRecord>>,
    /// When messages were dispatched and bots' replies to them arrived.
    pub timings: timing::Timings,
    /// `ws://ADDR`, the base of the gateway URL.
    pub ws_base: String,
    /// Application commands, interactions and ephemeral messages (lock after `world`).
    pub interactions: Mutex<interactions::Interactions>,
    /// Rate-limit buckets, per bot.
    pub ratelimits: Mutex<ratelimit::RateLimits>,
    /// The CONNECT tunnel to `https://discord.com` and its CA.
    pub tunnel: tunnel::Tunnel,
}

/// One REST request, as the request log shows it.
#[derive(Debug, Clone, Serialize)]
pub struct RequestRecord {
    /// HTTP method.
    pub method: String,
    /// Path and query, e.g. `/api/v10/channels/1/messages?after=5&limit=100`.
    pub path: String,
    /// The bot user ID the request authenticated as, if any.
    pub bot: Option<String>,
    /// Status returned.
    pub status: u16,
    /// When it was answered (Unix milliseconds), to line it up with other logs.
    pub unix_ms: u64,
    /// Whether it came through the CONNECT tunnel, as `https://discord.com`.
    pub tls: bool,
}

/// A running sandbox.
#[derive(Debug)]
pub struct Sandbox {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl Sandbox {
    /// Binds `listen` (port 0 picks a free port) and serves the world built from `spec` plus
    /// `bots` (`(name, token)` pairs, e.g. troupe's agents).
    pub async fn start(spec: &WorldSpec, bots: &[(String, String)], listen: SocketAddr) -> Result<Self, SandboxError> {
        let world = World::new(spec, bots).map_err(SandboxError::World)?;
        let listener = TcpListener::bind(listen)
            .await
            .map_err(|e| SandboxError::Bind(listen, e))?;
        let addr = listener.local_addr().map_err(|e| SandboxError::Bind(listen, e))?;
        let authority = tls::Authority::generate().map_err(SandboxError::Tls)?;
        let (tunnel, tunnelled) = tunnel::Tunnel::new(authority, addr);
        let shared = Arc::new(Shared {
            world: Mutex::new(world),
            gateway: Gateway::default(),
            faults: Mutex::new(RestFaults::default()),
            requests: Mutex::new(Vec::new()),
            timings: timing::Timings::default(),
            ws_base: format!("ws://{addr}"),
            interactions: Mutex::default(),
            ratelimits: Mutex::new(ratelimit::RateLimits::default()),
            tunnel,
        });
        let app = router(shared.clone());
        let tunnelled_app = app.clone().layer(axum::Extension(tunnel::Tunnelled));
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            // Both servers live in this task and stop together: dropping a graceful server
            // (when `stop` aborts the task) also closes the connections it spawned.
            let (tls_stop, tls_stopped) = oneshot::channel::<()>();
            // As Discord's edge does, small writes go out at once (no Nagle): a gateway
            // dispatch, or an HTTP/2 frame on a connection many requests share, would otherwise
            // wait for the peer's delayed ACK (up to 40 ms on Linux).
            let listener = axum::serve::ListenerExt::tap_io(listener, |tcp: &mut tokio::net::TcpStream| {
                if let Err(e) = tcp.set_nodelay(true) {
                    tracing::debug!(error = %e, "cannot set TCP_NODELAY");
                }
            });
            let serve = axum::serve(listener, app).with_graceful_shutdown(async {
                let _ = stopped.await;
                let _ = tls_stop.send(());
            });
            let tls = axum::serve(tunnelled, tunnelled_app).with_graceful_shutdown(async {
                let _ = tls_stopped.await;
            });
            let (served, _) = tokio::join!(serve.into_future(), tls.into_future());
            if let Err(e) = served {
                tracing::error!(error = %e, "sandbox server failed");
            }
        });
        Ok(Self {
            addr,
            shared,
            stop: Some(stop),
            task,
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The PEM of the CA that signs the sandbox's `discord.com` certificate (also served at
    /// `GET /sandbox/ca.pem`).
    pub fn ca_pem(&self) -> &str {
        self.shared.tunnel.ca_pem()
    }

    /// The shared state, for in-process inspection.
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Stops serving. Open websockets are closed when the server task ends.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.abort();
        let _ = (&mut self.task).await;
    }
}

/// Why the sandbox could not start.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The `[sandbox]` world is inconsistent.
    #[error("invalid [sandbox] world: {0}")]
    World(String),
    /// The listen address could not be bound.
    #[error(
        "sandbox cannot listen on {0}: {1} (pick another address with --sandbox-listen, or port 0 for any free port)"
    )]
    Bind(SocketAddr, #[source] std::io::Error),
    /// The CA or its certificate could not be generated.
    #[error(transparent)]
    Tls(tls::TlsError),
}

/// The whole HTTP surface: web page, gateway, REST, control API.
pub fn router(shared: Arc<Shared>) -> Router {
    let api = rest::routes()
        .layer(middleware::from_fn_with_state(
            shared.clone(),
            rest::interactions::interaction_webhooks,
        ))
        .layer(middleware::from_fn_with_state(shared.clone(), rest_middleware));
    Router::new()
        .route("/", get(|| async { Html(include_str!("web/index.html")) }))
        .route("/gateway", get(upgrade))
        .nest("/api/v10", api)
        .nest("/sandbox", control::routes())
        .merge(rest::cdn_routes())
        .layer(middleware::from_fn_with_state(shared.clone(), tunnel::intercept))
        .with_state(shared)
}

async fn upgrade(State(shared): State<Arc<Shared>>, RawQuery(query): RawQuery, ws: WebSocketUpgrade) -> Response {
    ws.max_message_size(4 << 20)
        .on_upgrade(move |socket| gateway::serve_connection(socket, shared, query))
        .into_response()
}

/// Around every REST call: injected delay and faults, `X-RateLimit-*` headers, the request log.
async fn rest_middleware(State(shared): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    let method = req.method().to_string();
    // Nested routers see the path without `/api/v10`; log what the client sent.
    let uri = req
        .extensions()
        .get::<OriginalUri>()
        .map_or_else(|| req.uri().clone(), |o| o.0.clone());
    let path = uri.path_and_query().map(|p| p.as_str().to_string()).unwrap_or_default();
    let bot = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let token = v.strip_prefix("Bot ").unwrap_or(v);
            shared.world.lock().ok()?.user_by_token(token).map(|u| u.id.to_string())
        });
    let (delay, fault) = {
        let mut f = shared.faults.lock().expect("faults lock");
        (f.delay, f.take_for(&method, &path))
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let tls = req.extensions().get::<tunnel::Tunnelled>().is_some();
    // Over the limits: Discord's 429. Else an injected fault, reported as its bucket would be.
    let (mut resp, bucket) = match (throttle::admit(&shared, &method, &path, bot.as_deref()), fault) {
        (Err(limited), _) => (*limited, None),
        (Ok(bucket), Some(err)) => {
            let bucket = throttle::injected(&err, bucket);
            (err.into_response(), bucket)
        }
        (Ok(bucket), None) => (next.run(req).await, bucket),
    };
    if resp.status().is_client_error() || resp.status().is_server_error() {
        resp = discord_error_body(resp);
    }
    throttle::finish(&mut resp, bucket.as_ref());
    let status = resp.status().as_u16();
    if let Ok(mut log) = shared.requests.lock() {
        if log.len() >= REQUEST_LOG_CAP {
            log.drain(..REQUEST_LOG_CAP / 10);
        }
        log.push(RequestRecord {
            method,
            path,
            bot,
            status,
            unix_ms: snowflake::now_unix_ms(),
            tls,
        });
    }
    resp
}

/// Replaces a non-JSON error body (axum's own rejections: unknown method, unparsable query, body
/// too large) with the JSON Discord sends, so clients can always parse an error.
fn discord_error_body(resp: Response) -> Response {
    let is_json = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        return resp;
    }
    let status = resp.status();
    let (code, message) = match status.as_u16() {
        400 => (50035, "Invalid Form Body".to_string()),
        413 => (40005, "Request entity too large".to_string()),
        s => (0, format!("{s}: {}", status.canonical_reason().unwrap_or("Error"))),
    };
    let mut fixed = (
        status,
        axum::Json(serde_json::json!({"message": message, "code": code})),
    )
        .into_response();
    for (k, v) in resp.headers() {
        if k != "content-type" && k != "content-length" {
            fixed.headers_mut().insert(k, v.clone());
        }
    }
    fixed
}
