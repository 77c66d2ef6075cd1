//! `CONNECT discord.com:443` on the plain listener: the sandbox is a bot's HTTPS proxy, ends the
//! tunnel's TLS with its own certificate ([`super::tls`]) and serves the requests inside with the
//! same router, so a bot talks to `https://discord.com/api/v10` exactly as in production.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper_util::rt::TokioIo;
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;

use super::tls::{self, Authority};
use super::Shared;

/// How long a tunnel's client has to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// One tunnelled connection, its TLS terminated.
pub type TlsConnection = TlsStream<TokioIo<hyper::upgrade::Upgraded>>;

/// Marks a request that arrived through the tunnel (an extension), for the request log.
#[derive(Debug, Clone, Copy)]
pub struct Tunnelled;

/// The CA and where accepted tunnels go.
#[derive(Debug)]
pub struct Tunnel {
    authority: Authority,
    connections: mpsc::UnboundedSender<TlsConnection>,
}

impl Tunnel {
    /// A tunnel presenting `authority`'s certificate; connections come out of the
    /// [`TunnelListener`] returned beside it, which `addr` (the plain listener's) names.
    pub fn new(authority: Authority, addr: SocketAddr) -> (Self, TunnelListener) {
        let (connections, incoming) = mpsc::unbounded_channel();
        (Self { authority, connections }, TunnelListener { incoming, addr })
    }

    /// The CA certificate bots must trust, PEM-encoded.
    pub fn ca_pem(&self) -> &str {
        self.authority.ca_pem()
    }
}

/// The TLS connections out of the tunnel, as a listener `axum::serve` can serve.
#[derive(Debug)]
pub struct TunnelListener {
    incoming: mpsc::UnboundedReceiver<TlsConnection>,
    addr: SocketAddr,
}

impl axum::serve::Listener for TunnelListener {
    type Io = TlsConnection;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.incoming.recv().await {
            Some(conn) => (conn, self.addr),
            // The sandbox (which holds the sender) is gone: nothing will ever arrive.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.addr)
    }
}

/// `GET /sandbox/ca.pem`: the CA certificate a bot trusts to reach the sandbox as
/// `https://discord.com` through its CONNECT proxy.
pub async fn ca_pem(State(shared): State<Arc<Shared>>) -> Response {
    (
        [("content-type", "application/x-pem-file")],
        shared.tunnel.ca_pem().to_string(),
    )
        .into_response()
}

/// Whether a CONNECT target is one the sandbox holds a certificate for, on HTTPS's port.
pub fn is_discord_target(authority: &str) -> bool {
    authority
        .rsplit_once(':')
        .is_some_and(|(host, port)| port == "443" && tls::HOSTS.iter().any(|h| h.eq_ignore_ascii_case(host)))
}

/// Outermost layer of the plain listener: a CONNECT to Discord's host is accepted (200), its
/// connection upgraded, TLS-terminated and handed to the [`TunnelListener`]; a CONNECT to
/// anywhere else is refused, as a proxy that only knows Discord. Other methods pass through.
pub async fn intercept(State(shared): State<Arc<Shared>>, mut req: Request, next: Next) -> Response {
    if req.method() != Method::CONNECT {
        return next.run(req).await;
    }
    let target = req
        .uri()
        .authority()
        .map(|a| a.as_str().to_string())
        .unwrap_or_default();
    if !is_discord_target(&target) {
        let body = format!("the sandbox only tunnels to {}:443, not {target:?}", tls::HOSTS[0]);
        return (StatusCode::FORBIDDEN, body).into_response();
    }
    let upgrade = hyper::upgrade::on(&mut req);
    let acceptor = shared.tunnel.authority.acceptor().clone();
    let connections = shared.tunnel.connections.clone();
    tokio::spawn(async move {
        let upgraded = match upgrade.await {
            Ok(u) => u,
            Err(e) => return tracing::debug!(error = %e, "tunnel upgrade failed"),
        };
        // A client that opens a tunnel and says nothing is not waited for forever.
        let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(TokioIo::new(upgraded)));
        match handshake.await {
            Ok(Ok(tls)) => {
                let _ = connections.send(tls);
            }
            Ok(Err(e)) => tracing::debug!(error = %e, "tunnel TLS handshake failed"),
            Err(_) => tracing::debug!("tunnel TLS handshake timed out"),
        }
    });
    Response::new(Body::empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_discord_on_443_is_tunnelled() {
        assert!(is_discord_target("discord.com:443"));
        assert!(is_discord_target("Discord.COM:443"));
        assert!(!is_discord_target("discord.com:80"));
        assert!(!is_discord_target("example.com:443"));
        assert!(!is_discord_target("discord.com"));
    }
}
