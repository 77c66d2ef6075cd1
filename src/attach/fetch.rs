//! The bounded downloader: only allowed origins ([`super::origin`]), no redirects (a redirect
//! could lead anywhere), a timeout over the whole download, and a size cap enforced while the
//! body streams, so a file larger than it claims is never read past the cap.

use std::time::Duration;

use reqwest::redirect::Policy;

use super::origin::{Origins, Refusal};

/// Why a file was not fetched. The text is what the model is told (no URLs, no internals).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    /// The URL is not on an allowed host.
    #[error("{0}")]
    Refused(#[from] Refusal),
    /// The server answered with an error status.
    #[error("the server answered {0}")]
    Status(u16),
    /// The server redirected (never followed).
    #[error("the server redirected elsewhere")]
    Redirect,
    /// The body is larger than the cap.
    #[error("it is larger than {}", super::render::size(*max))]
    TooLarge {
        /// The cap, in bytes.
        max: u64,
    },
    /// The download took too long.
    #[error("the download timed out")]
    Timeout,
    /// The connection failed.
    #[error("the download failed")]
    Network,
}

/// What to do when a body passes the cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overflow {
    /// Fail with [`FetchError::TooLarge`] (images: a cut image is no image).
    Fail,
    /// Keep the first bytes and say so (text files: the start is still worth reading).
    Truncate,
}

/// A fetched file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    /// Its bytes (at most the cap).
    pub bytes: Vec<u8>,
    /// The `content-type` the server gave.
    pub content_type: Option<String>,
    /// The body went on past the cap ([`Overflow::Truncate`]).
    pub truncated: bool,
}

/// Fetches attachments from allowed origins.
#[derive(Debug)]
pub struct Fetcher {
    client: reqwest::Client,
    origins: Origins,
}

impl Fetcher {
    /// A downloader for `origins`.
    pub fn new(origins: Origins) -> Self {
        let client = reqwest::Client::builder()
            .redirect(Policy::none())
            .connect_timeout(Duration::from_secs(10))
            .build()
            .unwrap_or_default();
        Self { client, origins }
    }

    /// Whether `url` may be fetched at all.
    pub fn check(&self, url: &str) -> Result<(), Refusal> {
        self.origins.check(url).map(|_| ())
    }

    /// Fetches `url`, reading at most `max_bytes` of its body, within `timeout`.
    pub async fn get(
        &self,
        url: &str,
        max_bytes: u64,
        overflow: Overflow,
        timeout: Duration,
    ) -> Result<Fetched, FetchError> {
        let parsed = self.origins.check(url)?;
        match tokio::time::timeout(timeout, self.read(parsed, max_bytes, overflow)).await {
            Ok(result) => result,
            Err(_) => Err(FetchError::Timeout),
        }
    }

    async fn read(&self, url: reqwest::Url, max_bytes: u64, overflow: Overflow) -> Result<Fetched, FetchError> {
        let mut response = self.client.get(url).send().await.map_err(|e| {
            if e.is_timeout() {
                FetchError::Timeout
            } else {
                FetchError::Network
            }
        })?;
        let status = response.status();
        if status.is_redirection() {
            return Err(FetchError::Redirect);
        }
        if !status.is_success() {
            return Err(FetchError::Status(status.as_u16()));
        }
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        // A declared length over the cap is refused before any byte is read.
        if overflow == Overflow::Fail && response.content_length().is_some_and(|n| n > max_bytes) {
            return Err(FetchError::TooLarge { max: max_bytes });
        }
        let cap = usize::try_from(max_bytes).unwrap_or(usize::MAX);
        let mut bytes = Vec::new();
        let mut truncated = false;
        while let Some(chunk) = response.chunk().await.map_err(|_| FetchError::Network)? {
            if bytes.len() + chunk.len() > cap {
                if overflow == Overflow::Fail {
                    return Err(FetchError::TooLarge { max: max_bytes });
                }
                bytes.extend_from_slice(&chunk[..cap - bytes.len()]);
                truncated = true;
                break;
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(Fetched {
            bytes,
            content_type,
            truncated,
        })
    }
}
