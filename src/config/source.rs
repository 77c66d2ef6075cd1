//! Where `agents.toml` comes from: `--config` takes a path, `file:PATH`, an `https://` URL or
//! `s3://bucket/key`. Remote reads have a timeout and a size cap; their errors name the source
//! and the likely fix, never a credential.
//!
//! - **https**: plain `http://` is refused, because the configuration decides where prompts and
//!   API keys are sent. The bundled web PKI roots are trusted, plus the PEM certificates in the
//!   file named by `TROUPE_EXTRA_CA_FILE` (a private CA). `SSL_CERT_FILE` is not consulted:
//!   troupe's TLS does not read the system trust store settings, so one documented variable is
//!   the only switch.
//! - **s3**: object_store's AWS client with the standard variables: `AWS_ACCESS_KEY_ID`,
//!   `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, web identity (`AWS_WEB_IDENTITY_TOKEN_FILE`,
//!   `AWS_ROLE_ARN`: EKS), the ECS container credentials, then the EC2 instance metadata;
//!   `AWS_REGION` (default `us-east-1`); `AWS_ENDPOINT_URL` and `AWS_ALLOW_HTTP=true` for an
//!   S3-compatible server.

use std::path::PathBuf;
use std::time::Duration;

use futures::StreamExt;

use super::{Config, ConfigError, ConfigErrors};

/// Largest configuration read from a remote source.
pub const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// Longest a remote read may take.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// The environment variable naming extra trusted CA certificates (PEM) for `https://` sources.
pub const EXTRA_CA_ENV: &str = "TROUPE_EXTRA_CA_FILE";

/// A parsed `--config` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigSource {
    /// A local file.
    File(PathBuf),
    /// An `https://` URL.
    Https(String),
    /// An S3 object.
    S3 {
        /// Bucket.
        bucket: String,
        /// Object key.
        key: String,
    },
}

impl ConfigSource {
    /// Parses a `--config` value.
    pub fn parse(spec: &str) -> Result<Self, ConfigErrors> {
        let whole = |message: String| ConfigErrors(vec![ConfigError::whole(spec, message)]);
        if let Some(path) = spec.strip_prefix("file:") {
            return Ok(ConfigSource::File(PathBuf::from(path)));
        }
        if spec.starts_with("https://") {
            return Ok(ConfigSource::Https(spec.to_string()));
        }
        if spec.starts_with("http://") {
            return Err(whole(
                "plain http:// is refused (the configuration decides where API keys are sent); serve it over https://"
                    .into(),
            ));
        }
        if let Some(rest) = spec.strip_prefix("s3://") {
            return match rest.split_once('/') {
                Some((bucket, key)) if !bucket.is_empty() && !key.is_empty() => Ok(ConfigSource::S3 {
                    bucket: bucket.to_string(),
                    key: key.to_string(),
                }),
                _ => Err(whole("an S3 source needs a bucket and a key: s3://BUCKET/KEY".into())),
            };
        }
        Ok(ConfigSource::File(PathBuf::from(spec)))
    }

    /// How errors name this source: the path, or the URL without its query (a pre-signed URL's
    /// query is a credential).
    pub fn name(&self) -> String {
        match self {
            ConfigSource::File(path) => path.display().to_string(),
            ConfigSource::Https(url) => url.split(['?', '#']).next().unwrap_or(url).to_string(),
            ConfigSource::S3 { bucket, key } => format!("s3://{bucket}/{key}"),
        }
    }

    /// Reads, parses and validates the configuration.
    pub async fn load(&self) -> Result<Config, ConfigErrors> {
        let text = match self {
            ConfigSource::File(path) => return Config::load(path),
            ConfigSource::Https(url) => fetch_https(url).await,
            ConfigSource::S3 { bucket, key } => fetch_s3(bucket, key).await,
        };
        let text = text.map_err(|message| ConfigErrors(vec![ConfigError::whole(&self.name(), message)]))?;
        Config::parse(&self.name(), &text)
    }
}

/// Reads the configuration named by a `--config` value.
pub async fn load(spec: &str) -> Result<Config, ConfigErrors> {
    ConfigSource::parse(spec)?.load().await
}

async fn fetch_https(url: &str) -> Result<String, String> {
    let mut builder = reqwest::Client::builder()
        .https_only(true)
        .timeout(FETCH_TIMEOUT)
        .connect_timeout(FETCH_TIMEOUT)
        .redirect(reqwest::redirect::Policy::limited(5))
        .user_agent(concat!("troupe/", env!("CARGO_PKG_VERSION")));
    if let Some(path) = std::env::var_os(EXTRA_CA_ENV).filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        let pem = std::fs::read(&path).map_err(|e| format!("cannot read {EXTRA_CA_ENV}={}: {e}", path.display()))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| format!("{EXTRA_CA_ENV}={} holds no usable PEM certificate: {e}", path.display()))?;
        if certs.is_empty() {
            return Err(format!("{EXTRA_CA_ENV}={} holds no PEM certificate", path.display()));
        }
        for cert in certs {
            builder = builder.add_root_certificate(cert);
        }
    }
    let client = builder
        .build()
        .map_err(|e| format!("cannot build the HTTPS client: {e}"))?;
    let response = client.get(url).send().await.map_err(|e| {
        let detail = error_chain(&e.without_url());
        let hint = if detail.to_lowercase().contains("certificate") {
            format!("; for a private CA, point {EXTRA_CA_ENV} at its PEM certificate")
        } else {
            String::new()
        };
        format!("cannot fetch the configuration: {detail}{hint}")
    })?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!(
            "the server answered {status} (expected 200 with the TOML file)"
        ));
    }
    if response.content_length().is_some_and(|n| n > MAX_CONFIG_BYTES) {
        return Err(too_big());
    }
    let mut body = Vec::new();
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk =
            chunk.map_err(|e| format!("reading the configuration failed: {}", error_chain(&e.without_url())))?;
        body.extend_from_slice(&chunk);
        if body.len() as u64 > MAX_CONFIG_BYTES {
            return Err(too_big());
        }
    }
    String::from_utf8(body).map_err(|_| "the configuration is not UTF-8 text".to_string())
}

/// An error and its causes, `outer: inner: innermost` (reqwest's own text is only the outer).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

fn too_big() -> String {
    format!("the configuration is larger than {MAX_CONFIG_BYTES} bytes; is this the right file?")
}

async fn fetch_s3(bucket: &str, key: &str) -> Result<String, String> {
    use object_store::aws::AmazonS3Builder;
    use object_store::{ClientConfigKey, ObjectStore, RetryConfig};

    let mut builder = AmazonS3Builder::from_env()
        .with_bucket_name(bucket)
        .with_config(
            object_store::aws::AmazonS3ConfigKey::Client(ClientConfigKey::Timeout),
            format!("{}s", FETCH_TIMEOUT.as_secs()),
        )
        .with_config(
            object_store::aws::AmazonS3ConfigKey::Client(ClientConfigKey::ConnectTimeout),
            format!("{}s", FETCH_TIMEOUT.as_secs()),
        )
        .with_retry(RetryConfig {
            max_retries: 2,
            retry_timeout: FETCH_TIMEOUT * 2,
            ..RetryConfig::default()
        });
    if std::env::var_os("AWS_REGION").is_none() && std::env::var_os("AWS_DEFAULT_REGION").is_none() {
        builder = builder.with_region("us-east-1");
    }
    let s3 = builder
        .build()
        .map_err(|e| format!("cannot set up the S3 client: {}", redact_aws(&e.to_string())))?;
    let path = object_store::path::Path::from(key);
    let found = s3.get(&path).await.map_err(|e| match e {
        object_store::Error::NotFound { .. } => {
            format!("the object does not exist (bucket `{bucket}`, key `{key}`); check both, and the region")
        }
        object_store::Error::PermissionDenied { source, .. } | object_store::Error::Unauthenticated { source, .. } => {
            format!(
                "access denied: check the AWS credentials (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or the \
                 role) and that they may s3:GetObject this key; S3 said: {}",
                redact_aws(&source.to_string())
            )
        }
        other => format!("cannot read the object: {}", redact_aws(&other.to_string())),
    })?;
    if found.meta.size > MAX_CONFIG_BYTES {
        return Err(too_big());
    }
    let bytes = found
        .bytes()
        .await
        .map_err(|e| format!("reading the object failed: {}", redact_aws(&e.to_string())))?;
    String::from_utf8(bytes.to_vec()).map_err(|_| "the configuration is not UTF-8 text".to_string())
}

/// Removes the AWS credentials in the environment from an error text, in case a library or a
/// server ever echoes one.
fn redact_aws(text: &str) -> String {
    let mut text = text.to_string();
    for var in ["AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ACCESS_KEY_ID"] {
        if let Ok(value) = std::env::var(var) {
            if value.len() >= 4 {
                text = text.replace(&value, "[redacted]");
            }
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_form() {
        assert_eq!(
            ConfigSource::parse("agents.toml").unwrap(),
            ConfigSource::File("agents.toml".into())
        );
        assert_eq!(
            ConfigSource::parse("file:/etc/t.toml").unwrap(),
            ConfigSource::File("/etc/t.toml".into())
        );
        assert_eq!(
            ConfigSource::parse("https://h/a.toml").unwrap(),
            ConfigSource::Https("https://h/a.toml".into())
        );
        assert_eq!(
            ConfigSource::parse("s3://bucket/dir/agents.toml").unwrap(),
            ConfigSource::S3 {
                bucket: "bucket".into(),
                key: "dir/agents.toml".into()
            }
        );
    }

    #[test]
    fn refuses_plain_http_and_incomplete_s3() {
        let e = ConfigSource::parse("http://h/a.toml").unwrap_err().to_string();
        assert!(e.starts_with("http://h/a.toml: plain http:// is refused"), "{e}");
        let e = ConfigSource::parse("s3://bucket").unwrap_err().to_string();
        assert!(e.contains("s3://BUCKET/KEY"), "{e}");
    }

    #[test]
    fn names_hide_a_presigned_query() {
        let s = ConfigSource::parse("https://h/a.toml?X-Amz-Signature=abc").unwrap();
        assert_eq!(s.name(), "https://h/a.toml");
    }
}
