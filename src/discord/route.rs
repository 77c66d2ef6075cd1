//! Where a bot's Discord REST requests go. Live and sandbox mode build the same serenity client
//! (rate limiter on, `https://discord.com`); sandbox mode only routes that host through the
//! sandbox's HTTPS proxy and trusts the sandbox's CA.

use std::time::Duration;

/// Idle keep-alive connections the REST pool keeps per host. reqwest's default keeps every one
/// for 90 s: a burst of replies opens a connection per concurrent request (thousands when 10,000
/// conversations answer at once), and each then stays open, a TLS session and hyper's buffers
/// (~60 KiB), long after the burst (heap profile in `docs/benchmarks.md`, issue 18). 64 is the
/// default `max_concurrency`. Over HTTP/2 (Discord and the sandbox offer it; reqwest is built
/// with `http2`) concurrent requests share one connection and the cap does not bind; it matters
/// for an HTTP/1.1-only route (`[discord] api_url` proxies), where a flood above the cap closes
/// and reopens connections.
pub const IDLE_CONNECTIONS_PER_HOST: usize = 64;

/// The builder of a Discord REST client: what serenity's own builder does (`use_rustls_tls`),
/// with the idle pool capped ([`IDLE_CONNECTIONS_PER_HOST`]).
pub fn rest_client_builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .use_rustls_tls()
        .pool_max_idle_per_host(IDLE_CONNECTIONS_PER_HOST)
}

/// The route to Discord's API.
#[derive(Debug, Clone, Default)]
pub enum Route {
    /// `https://discord.com`, directly.
    #[default]
    Discord,
    /// `[discord] api_url`: a Discord-compatible base that rate limits for its clients (e.g.
    /// twilight's http-proxy); serenity's own limiter is off, as that needs.
    ApiBase(String),
    /// The sandbox: `https://discord.com` through its CONNECT proxy, with its CA trusted. The
    /// client is built once and shared by every bot (requests carry their own token).
    Sandbox(reqwest::Client),
}

/// Why the sandbox route could not be built.
#[derive(Debug, thiserror::Error)]
#[error("cannot reach the sandbox as https://discord.com: {0}")]
pub struct RouteError(String);

impl Route {
    /// The sandbox route: `proxy` is the sandbox's plain `http://ADDR` (it accepts
    /// `CONNECT discord.com:443`) and `ca_pem` its CA (`GET /sandbox/ca.pem`).
    pub fn sandbox(proxy: &str, ca_pem: &str) -> Result<Self, RouteError> {
        let err = |e: reqwest::Error| RouteError(e.to_string());
        // reqwest skips what is not a certificate in a PEM; an empty root would fail later, per request.
        if !ca_pem.contains("-----BEGIN CERTIFICATE-----") {
            return Err(RouteError("the sandbox's CA is not a PEM certificate".into()));
        }
        let ca = reqwest::Certificate::from_pem(ca_pem.as_bytes()).map_err(err)?;
        let client = rest_client_builder()
            .proxy(reqwest::Proxy::https(proxy).map_err(err)?)
            .add_root_certificate(ca)
            .build()
            .map_err(err)?;
        Ok(Self::Sandbox(client))
    }

    /// Reads a running sandbox's CA from `GET {url}/sandbox/ca.pem`.
    pub async fn fetch_sandbox_ca(url: &str) -> Result<String, RouteError> {
        let fail = |e: reqwest::Error| RouteError(format!("cannot read {url}/sandbox/ca.pem: {e}"));
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(fail)?;
        client
            .get(format!("{url}/sandbox/ca.pem"))
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(fail)?
            .text()
            .await
            .map_err(fail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A burst of `BURST` concurrent requests opens a connection each (the server answers none
    /// until all have arrived); once answered, the pool keeps at most
    /// [`IDLE_CONNECTIONS_PER_HOST`] of them and closes the rest (reqwest's default would keep
    /// all `BURST` for 90 s).
    #[tokio::test]
    async fn a_burst_leaves_at_most_the_capped_idle_connections_open() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::Arc;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};

        const BURST: usize = IDLE_CONNECTIONS_PER_HOST + 16;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let arrived = Arc::new(tokio::sync::Barrier::new(BURST));
        let closed = Arc::new(AtomicUsize::new(0));
        let (accepted, server_closed) = (arrived.clone(), closed.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut socket, _)) = listener.accept().await else {
                    return;
                };
                let (arrived, closed) = (accepted.clone(), server_closed.clone());
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    let mut head = Vec::new();
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match socket.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    arrived.wait().await;
                    let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
                    if socket.write_all(ok).await.is_err() {
                        return;
                    }
                    // Keep-alive: the connection stays until the client closes it.
                    while let Ok(n) = socket.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                    }
                    closed.fetch_add(1, Ordering::SeqCst);
                });
            }
        });
        let client = rest_client_builder().build().unwrap();
        let requests: Vec<_> = (0..BURST)
            .map(|_| {
                let (client, url) = (client.clone(), url.clone());
                tokio::spawn(async move { client.get(url).send().await.map(|r| r.status()) })
            })
            .collect();
        for request in requests {
            assert!(request.await.unwrap().unwrap().is_success());
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while closed.load(Ordering::SeqCst) < BURST - IDLE_CONNECTIONS_PER_HOST {
            assert!(
                std::time::Instant::now() < deadline,
                "{} of {BURST} connections closed, expected at least {}",
                closed.load(Ordering::SeqCst),
                BURST - IDLE_CONNECTIONS_PER_HOST
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        drop(client);
    }

    #[test]
    fn a_sandbox_route_needs_a_certificate() {
        assert!(Route::sandbox("http://127.0.0.1:1", "not a certificate").is_err());
    }
}
