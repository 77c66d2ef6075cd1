//! Where attachments may be fetched from: an allowlist of origins (scheme, host, port), so a
//! crafted URL in a message or a payload cannot make troupe request anything else (no SSRF).
//! Live mode allows Discord's CDN hosts over https; sandbox mode the sandbox's own address.
//! Also reads a Discord CDN URL's expiry (`ex=`). Pure.

use reqwest::Url;

/// Discord's CDN hosts (attachments and their media proxy).
pub const DISCORD_CDN_HOSTS: &[&str] = &["cdn.discordapp.com", "media.discordapp.net"];

/// One allowed origin.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Origin {
    scheme: String,
    host: String,
    port: u16,
}

/// The origins attachments may come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origins(Vec<Origin>);

/// Why a URL is not fetched.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Not a URL.
    #[error("not a valid URL")]
    Malformed,
    /// A URL with a user name or password in it.
    #[error("a URL with credentials")]
    Credentials,
    /// Not on an allowed host.
    #[error("host {0} is not an allowed attachment host")]
    Host(String),
}

impl Origins {
    /// Nothing at all.
    pub fn none() -> Self {
        Self(Vec::new())
    }

    /// Discord's CDN, https only.
    pub fn discord() -> Self {
        Self(
            DISCORD_CDN_HOSTS
                .iter()
                .map(|h| Origin {
                    scheme: "https".into(),
                    host: (*h).into(),
                    port: 443,
                })
                .collect(),
        )
    }

    /// Only the sandbox at `base_url` (`http://127.0.0.1:8686`); `None` if it is not a URL.
    pub fn sandbox(base_url: &str) -> Option<Self> {
        let url = Url::parse(base_url).ok()?;
        Some(Self(vec![Origin {
            scheme: url.scheme().to_string(),
            host: url.host_str()?.to_ascii_lowercase(),
            port: url.port_or_known_default()?,
        }]))
    }

    /// `url` parsed, if it may be fetched: an allowed scheme, host and port, and no credentials.
    /// The URL parser normalises hosts (case, IP forms, percent-encoding) before the comparison,
    /// so `HTTPS://CDN.DISCORDAPP.COM.` and `http://2130706433/` are judged as what they are.
    pub fn check(&self, url: &str) -> Result<Url, Refusal> {
        let parsed = Url::parse(url).map_err(|_| Refusal::Malformed)?;
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(Refusal::Credentials);
        }
        let host = parsed.host_str().unwrap_or("").to_ascii_lowercase();
        let port = parsed.port_or_known_default();
        let allowed = self
            .0
            .iter()
            .any(|o| o.scheme == parsed.scheme() && o.host == host && Some(o.port) == port);
        if allowed {
            Ok(parsed)
        } else {
            Err(Refusal::Host(host))
        }
    }
}

/// When a Discord CDN URL stops working: its `ex` parameter, hex Unix seconds. `None` when it
/// has none (the sandbox's URLs do not expire).
pub fn expires_at(url: &str) -> Option<u64> {
    let parsed = Url::parse(url).ok()?;
    let ex = parsed.query_pairs().find(|(k, _)| k == "ex")?.1;
    u64::from_str_radix(&ex, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_discord_cdn_over_https_in_live_mode() {
        let o = Origins::discord();
        assert!(o
            .check("https://cdn.discordapp.com/attachments/1/2/a.png?ex=1&is=2&hm=3")
            .is_ok());
        assert!(o.check("https://media.discordapp.net/attachments/1/2/a.png").is_ok());
        assert!(o.check("HTTPS://CDN.DISCORDAPP.COM/attachments/1/2/a.png").is_ok());
        for bad in [
            "http://cdn.discordapp.com/attachments/1/2/a.png",
            "https://cdn.discordapp.com:8443/a.png",
            "https://cdn.discordapp.com.evil.example/a.png",
            "https://evil.example/cdn.discordapp.com/a.png",
            "https://evil.example/?u=https://cdn.discordapp.com/",
            "https://127.0.0.1/a.png",
            "https://169.254.169.254/latest/meta-data/",
            "file:///etc/passwd",
            "gopher://cdn.discordapp.com/",
        ] {
            assert!(matches!(o.check(bad), Err(Refusal::Host(_))), "{bad}");
        }
        assert_eq!(
            o.check("https://user:pw@cdn.discordapp.com/a.png"),
            Err(Refusal::Credentials)
        );
        // `@` makes what precedes it credentials: the host is the one after.
        assert!(o.check("https://cdn.discordapp.com@evil.example/a.png").is_err());
        assert_eq!(o.check("not a url"), Err(Refusal::Malformed));
    }

    #[test]
    fn only_the_sandbox_itself_in_sandbox_mode() {
        let o = Origins::sandbox("http://127.0.0.1:8686").unwrap();
        assert!(o.check("http://127.0.0.1:8686/attachments/1/2/a.png").is_ok());
        for bad in [
            "http://127.0.0.1:8687/attachments/1/2/a.png",
            "http://localhost:8686/attachments/1/2/a.png",
            "http://127.0.0.1/attachments/1/2/a.png",
            "https://cdn.discordapp.com/attachments/1/2/a.png",
            // 2130706433 is 127.0.0.1 as one number: normalised, and still on the wrong port.
            "http://2130706433/a.png",
        ] {
            assert!(o.check(bad).is_err(), "{bad}");
        }
        assert!(Origins::sandbox("nonsense").is_none());
    }

    #[test]
    fn expiry_is_read_from_ex() {
        assert_eq!(
            expires_at("https://cdn.discordapp.com/attachments/1/2/a.png?ex=6789abcd&is=1&hm=2"),
            Some(0x6789_abcd)
        );
        assert_eq!(expires_at("http://127.0.0.1:8686/attachments/1/2/a.png"), None);
        assert_eq!(expires_at("https://cdn.discordapp.com/a.png?ex=zz"), None);
    }
}
