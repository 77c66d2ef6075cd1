//! Where a bot's Discord REST requests go. Live and sandbox mode build the same serenity client
//! (rate limiter on, `https://discord.com`); sandbox mode only routes that host through the
//! sandbox's HTTPS proxy and trusts the sandbox's CA.

use std::time::Duration;

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
        let client = reqwest::Client::builder()
            // What serenity's own builder does (`use_rustls_tls`), plus the route.
            .use_rustls_tls()
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

    #[test]
    fn a_sandbox_route_needs_a_certificate() {
        assert!(Route::sandbox("http://127.0.0.1:1", "not a certificate").is_err());
    }
}
