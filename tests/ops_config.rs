//! Configuration sources and `troupe check-config`, through the real binary: the resolved
//! configuration with secrets redacted, precise errors, a configuration served over HTTPS with a
//! private CA, and one read from S3 (moto's server on loopback) with good and bad credentials.
//!
//! The S3 test needs moto (`pip install 'moto[server]'`). Without it the test fails; `make test`
//! installs it when it can, and otherwise leaves the test out and says so (`tests/tools.sh`).

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Variables that could point the binary at real credentials or services: never inherited.
const SCRUBBED: &[&str] = &[
    "TROUPE_CONFIG",
    "TROUPE_EXTRA_CA_FILE",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ENDPOINT",
    "AWS_ENDPOINT_URL",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
];

struct Outcome {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

async fn troupe(args: &[&str], envs: &[(&str, &str)]) -> Outcome {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_troupe"));
    cmd.args(args).current_dir(env!("CARGO_MANIFEST_DIR"));
    for var in SCRUBBED {
        cmd.env_remove(var);
    }
    cmd.envs(envs.iter().copied());
    let out = tokio::time::timeout(common::DEADLINE, cmd.output())
        .await
        .expect("troupe finished")
        .unwrap();
    Outcome {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

const TOKEN: &str = "tok-Zq81-check-config-secret";
const API_KEY: &str = "sk-proj-check-config-5ecret-key";

const LIVE: &str = r#"mode = "live"

[backends.remote]
provider = "openai"
base_url = "http://127.0.0.1:9/v1"
model = "m"
api_key_env = "TROUPE_OPS_KEY"

[[agents]]
name = "Ada"
backend = "remote"
token_env = "TROUPE_OPS_TOKEN"
breaker = { on_trip = "isolate", cooldown_secs = 30 }
"#;

#[tokio::test]
async fn check_config_prints_the_resolved_configuration_with_secrets_redacted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agents.toml");
    std::fs::write(&path, LIVE).unwrap();
    let out = troupe(
        &["check-config", "--config", path.to_str().unwrap()],
        &[("TROUPE_OPS_TOKEN", TOKEN), ("TROUPE_OPS_KEY", API_KEY)],
    )
    .await;
    for secret in [TOKEN, API_KEY] {
        assert!(
            !out.stdout.contains(secret) && !out.stderr.contains(secret),
            "a secret was printed"
        );
    }
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let resolved: Value = serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", out.stdout));
    assert_eq!(resolved["mode"], "live");
    assert_eq!(
        resolved["agents"][0]["token"],
        serde_json::json!({"env": "TROUPE_OPS_TOKEN", "found": true})
    );
    assert_eq!(resolved["backends"]["remote"]["api_key"]["found"], true);
    assert_eq!(resolved["agents"][0]["breaker"]["on_trip"], "isolate");
    assert_eq!(
        resolved["agents"][0]["breaker"]["max_failures"], 5,
        "the rest comes from [breaker]"
    );
    assert_eq!(resolved["http"]["listen"], "0.0.0.0:23459");
    assert_eq!(resolved["limits"]["max_load_average"], 21.0);
}

#[tokio::test]
async fn check_config_names_what_is_missing_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agents.toml");
    std::fs::write(&path, LIVE).unwrap();
    let out = troupe(
        &["check-config", "--config", path.to_str().unwrap()],
        &[("TROUPE_OPS_KEY", API_KEY)],
    )
    .await;
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("agent `Ada`: environment variable TROUPE_OPS_TOKEN (token_env) is not set or empty"),
        "{}",
        out.stderr
    );
    assert!(
        out.stdout.is_empty(),
        "nothing is printed for an unusable configuration"
    );
}

#[tokio::test]
async fn bad_operations_settings_are_all_reported_with_lines() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agents.toml");
    let text = "[http]\nlisten = \"nowhere\"\n[breaker]\non_trip = \"exitt\"\nmax_failures = 0\n\
                [limits]\nmax_load_average = -1\n[restarts]\nbackoff_initial_ms = 500\nbackoff_max_ms = 100\n\
                [backends.b]\nprovider = \"echo\"\n[[agents]]\nname = \"Ada\"\nbackend = \"b\"\n";
    std::fs::write(&path, text).unwrap();
    let out = troupe(&["check-config", "--config", path.to_str().unwrap()], &[]).await;
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    for needle in [
        ":2: http.listen: `nowhere` is not an address",
        ":4: breaker.on_trip: unknown on_trip `exitt`; did you mean \"exit\"?",
        ":5: breaker.max_failures: 0 is out of range; use 1 to 1000",
        ":7: limits.max_load_average: -1 is out of range",
        ":10: restarts.backoff_max_ms: 100 is below backoff_initial_ms (500)",
    ] {
        assert!(out.stderr.contains(needle), "missing `{needle}` in:\n{}", out.stderr);
    }
}

#[tokio::test]
async fn check_config_refuses_what_troupe_would_refuse_at_start() {
    // Regression: check-config said "valid" for a sandbox world naming an unknown bot, and
    // troupe then refused to start (exit 3) when the sandbox built that world.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agents.toml");
    let text = "[sandbox]\nhumans = [\"alice\", \"ada\"]\n[[sandbox.guilds]]\nname = \"G\"\n\
                channels = [{ name = \"general\" }, { name = \"staff\", hidden_from = [\"Basl\"] }]\n\
                [backends.b]\nprovider = \"echo\"\n[[agents]]\nname = \"Ada\"\nbackend = \"b\"\n\
                [[agents]]\nname = \"Basil\"\nbackend = \"b\"\n";
    std::fs::write(&path, text).unwrap();
    let config = path.to_str().unwrap();
    let state = dir.path().join("state");
    let needles = [
        ":5: sandbox.guilds[0].channels[1].hidden_from: channel `staff`: hidden_from names `Basl`, who is not in the sandbox",
        ":9: agents[0].name: agent `Ada` has the name of human `ada`",
    ];
    let checked = troupe(&["check-config", "--config", config], &[]).await;
    let started = troupe(
        &[
            "--config",
            config,
            "--state-dir",
            state.to_str().unwrap(),
            "--http-listen",
            "127.0.0.1:0",
            "--sandbox-listen",
            "127.0.0.1:0",
        ],
        &[],
    )
    .await;
    for out in [&checked, &started] {
        assert_eq!(out.code, Some(2), "{}", out.stderr);
        for needle in needles {
            assert!(out.stderr.contains(needle), "missing `{needle}` in:\n{}", out.stderr);
        }
    }
    assert!(!state.exists(), "nothing was started");
}

#[tokio::test]
async fn a_missing_webhook_token_is_reported_by_check_config_and_refused_at_start() {
    // Regression: the webhook's token was read only when the agent started, which then failed
    // and restarted forever; check-config said nothing.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agents.toml");
    let text = "[backends.b]\nprovider = \"echo\"\n[[agents]]\nname = \"Ada\"\nbackend = \"b\"\n\
                webhook = { id = \"42\", token_env = \"TROUPE_OPS_HOOK_TOKEN\" }\n";
    std::fs::write(&path, text).unwrap();
    let config = path.to_str().unwrap();
    let state = dir.path().join("state");
    let needle = "environment variable TROUPE_OPS_HOOK_TOKEN (token_env) is not set or empty (the webhook's token)";
    let checked = troupe(&["check-config", "--config", config], &[]).await;
    assert_eq!(checked.code, Some(2), "{}", checked.stderr);
    assert!(checked.stderr.contains(needle), "{}", checked.stderr);
    let args = [
        "--config",
        config,
        "--state-dir",
        state.to_str().unwrap(),
        "--http-listen",
        "127.0.0.1:0",
        "--sandbox-listen",
        "127.0.0.1:0",
    ];
    let started = troupe(&args, &[]).await;
    assert_eq!(started.code, Some(3), "{}", started.stderr);
    assert!(started.stderr.contains(needle), "{}", started.stderr);
}

/// An HTTPS server on loopback with a fresh self-signed certificate; answers `GET path` from
/// `routes` (404 otherwise). Returns its address and the certificate in PEM.
async fn https_server(routes: HashMap<&'static str, String>) -> (SocketAddr, String) {
    use tokio_rustls::rustls;
    let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(certified.signing_key.serialize_der().into());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![certified.cert.der().clone()], key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let routes = Arc::new(routes);
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else { return };
            let (acceptor, routes) = (acceptor.clone(), routes.clone());
            tokio::spawn(async move {
                // A client that refuses the certificate ends the handshake: nothing to answer.
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&head);
                let path = head.split_whitespace().nth(1).unwrap_or("/");
                let (status, body) = match routes.get(path) {
                    Some(body) => ("200 OK", body.clone()),
                    None => ("404 Not Found", "no such file".to_string()),
                };
                let response = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tls.write_all(response.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    (addr, certified.cert.pem())
}

const SIMPLE: &str = "[backends.b]\nprovider = \"echo\"\n[[agents]]\nname = \"Remote\"\nbackend = \"b\"\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configuration_from_an_https_url_trusts_the_extra_ca() {
    let (addr, pem) = https_server(HashMap::from([("/agents.toml", SIMPLE.to_string())])).await;
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, pem).unwrap();
    let url = format!("https://{addr}/agents.toml");

    let out = troupe(
        &["check-config", "--config", &url],
        &[("TROUPE_EXTRA_CA_FILE", ca.to_str().unwrap())],
    )
    .await;
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let resolved: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(resolved["source"], url.as_str());
    assert_eq!(resolved["agents"][0]["name"], "Remote");

    // Without the CA the certificate is refused, and the error says what to do.
    let out = troupe(&["check-config", "--config", &url], &[]).await;
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(
        out.stderr.contains(&format!("{url}: cannot fetch the configuration")),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("TROUPE_EXTRA_CA_FILE"), "{}", out.stderr);

    // A wrong path names the status.
    let missing = format!("https://{addr}/nope.toml");
    let out = troupe(
        &["check-config", "--config", &missing],
        &[("TROUPE_EXTRA_CA_FILE", ca.to_str().unwrap())],
    )
    .await;
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(
        out.stderr.contains("the server answered 404 Not Found"),
        "{}",
        out.stderr
    );
}

#[tokio::test]
async fn plain_http_sources_are_refused() {
    let out = troupe(&["check-config", "--config", "http://127.0.0.1:9/agents.toml"], &[]).await;
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("plain http:// is refused"), "{}", out.stderr);
}

/// moto's S3-compatible server on loopback, killed on drop.
struct Moto {
    child: std::process::Child,
    endpoint: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Moto {
    /// Starts `moto_server` (or `python3 -m moto.server`) with IAM authentication on after
    /// `free_actions` requests, or `None` when moto is not installed.
    fn start(free_actions: u32) -> Option<Moto> {
        use std::io::BufRead;
        let installed = |program: &str, args: &[&str]| {
            std::process::Command::new(program)
                .args(args)
                .arg("--help")
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        let (program, prefix): (&str, &[&str]) = if installed("moto_server", &[]) {
            ("moto_server", &[])
        } else if installed("python3", &["-m", "moto.server"]) {
            ("python3", &["-m", "moto.server"])
        } else {
            return None;
        };
        let mut child = std::process::Command::new(program)
            .args(prefix)
            .args(["-H", "127.0.0.1", "-p", "0"])
            .env("INITIAL_NO_AUTH_ACTION_COUNT", free_actions.to_string())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .ok()?;
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(at) = line.find("Running on http://") {
                    let _ = tx.send(line[at + "Running on ".len()..].trim().to_string());
                }
            }
        });
        let endpoint = rx
            .recv_timeout(common::DEADLINE)
            .expect("moto_server prints its address");
        Some(Moto { child, endpoint })
    }

    /// One of the unauthenticated requests moto allows before IAM applies; moto routes it by the
    /// service in the (unchecked) credential scope.
    async fn unsigned(&self, service: &str, method: reqwest::Method, path: &str, form: &[(&str, &str)]) -> String {
        let auth = format!(
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20240101/us-east-1/{service}/aws4_request, \
             SignedHeaders=host, Signature=0"
        );
        let resp = reqwest::Client::new()
            .request(method, format!("{}{path}", self.endpoint))
            .header("authorization", auth)
            .form(form)
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let body = resp.text().await.unwrap();
        assert!(status.is_success(), "moto {service} {path}: {status} {body}");
        body
    }
}

fn xml_field(xml: &str, tag: &str) -> String {
    let start = xml
        .find(&format!("<{tag}>"))
        .unwrap_or_else(|| panic!("no {tag} in {xml}"))
        + tag.len()
        + 2;
    let end = xml[start..].find("</").unwrap() + start;
    xml[start..end].to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configuration_from_s3_with_good_and_bad_credentials() {
    // Four free actions: create a user, allow it everything, give it a key, create the bucket.
    let Some(moto) = Moto::start(4) else {
        common::tool_missing("moto", "pip install 'moto[server]'");
    };
    let iam = |action: &'static str| {
        let mut form = vec![("Action", action), ("UserName", "troupe"), ("Version", "2010-05-08")];
        if action == "PutUserPolicy" {
            form.extend([
                ("PolicyName", "all"),
                (
                    "PolicyDocument",
                    r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#,
                ),
            ]);
        }
        form
    };
    moto.unsigned("iam", reqwest::Method::POST, "/", &iam("CreateUser"))
        .await;
    moto.unsigned("iam", reqwest::Method::POST, "/", &iam("PutUserPolicy"))
        .await;
    let key = moto
        .unsigned("iam", reqwest::Method::POST, "/", &iam("CreateAccessKey"))
        .await;
    let (key_id, secret) = (xml_field(&key, "AccessKeyId"), xml_field(&key, "SecretAccessKey"));
    moto.unsigned("s3", reqwest::Method::PUT, "/troupe-config", &[]).await;
    // From here on every request must be signed with the user's key.
    let s3 = object_store::aws::AmazonS3Builder::new()
        .with_endpoint(&moto.endpoint)
        .with_allow_http(true)
        .with_region("us-east-1")
        .with_bucket_name("troupe-config")
        .with_access_key_id(&key_id)
        .with_secret_access_key(&secret)
        .build()
        .unwrap();
    object_store::ObjectStore::put(&s3, &"prod/agents.toml".into(), SIMPLE.as_bytes().to_vec().into())
        .await
        .unwrap();

    let env = |secret: &str| -> Vec<(&str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", key_id.clone()),
            ("AWS_SECRET_ACCESS_KEY", secret.to_string()),
            ("AWS_ENDPOINT_URL", moto.endpoint.clone()),
            ("AWS_ALLOW_HTTP", "true".to_string()),
            ("AWS_REGION", "us-east-1".to_string()),
        ]
    };
    let run = |source: &'static str, env: Vec<(&'static str, String)>| async move {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        troupe(&["check-config", "--config", source], &env).await
    };

    let out = run("s3://troupe-config/prod/agents.toml", env(&secret)).await;
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let resolved: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(resolved["source"], "s3://troupe-config/prod/agents.toml");
    assert_eq!(resolved["agents"][0]["name"], "Remote");

    let wrong = "wrong-secret-access-key-0123456789abcdef";
    let out = run("s3://troupe-config/prod/agents.toml", env(wrong)).await;
    for s in [wrong, secret.as_str()] {
        assert!(
            !out.stderr.contains(s) && !out.stdout.contains(s),
            "a secret key was printed"
        );
    }
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("s3://troupe-config/prod/agents.toml: access denied: check the AWS credentials"),
        "{}",
        out.stderr
    );

    let out = run("s3://troupe-config/prod/missing.toml", env(&secret)).await;
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("the object does not exist (bucket `troupe-config`, key `prod/missing.toml`)"),
        "{}",
        out.stderr
    );
}

#[tokio::test]
async fn the_kubernetes_configmap_holds_a_valid_configuration() {
    let manifest = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/k8s/configmap.yaml")).unwrap();
    let text: String = manifest
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("agents.toml: |"))
        .skip(1)
        .map(|l| format!("{}\n", l.strip_prefix("    ").unwrap_or(l.trim())))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agents.toml");
    std::fs::write(&path, text).unwrap();
    let out = troupe(
        &["check-config", "--config", path.to_str().unwrap()],
        &[("ADA_DISCORD_TOKEN", "t"), ("OPENAI_API_KEY", "k")],
    )
    .await;
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let resolved: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(resolved["http"]["listen"], "0.0.0.0:23459", "the probes' port");
}

#[tokio::test]
async fn help_names_the_operations_flags() {
    let out = troupe(&["--help"], &[]).await;
    for needle in ["--http-listen", "check-config", "s3://BUCKET/KEY"] {
        assert!(
            out.stdout.contains(needle),
            "--help does not mention {needle}:\n{}",
            out.stdout
        );
    }
}
