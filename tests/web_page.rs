//! The sandbox's web page (`crates/sandbox/src/web/index.html`) works in a real browser: headless
//! Chromium, driven over the Chrome DevTools Protocol, shows the channels and DMs, posts a
//! human's message through the composer, and renders the agent's reply.
//!
//! Needs `chromium` on PATH (Debian: `apt-get install chromium`). Without it the test fails;
//! `make test` installs it when it can, and otherwise leaves the test out and says so
//! (`tests/tools.sh`).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{two_agents, wait_for, Control};
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long one DevTools command may take.
const CDP_TIMEOUT: Duration = Duration::from_secs(30);

/// `chromium` on PATH, if any.
fn find_chromium() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("chromium"))
        .find(|p| p.is_file())
}

/// A headless Chromium in its own process group; the whole group is killed on drop (also when
/// the test panics).
struct Browser {
    child: Child,
    dir: tempfile::TempDir,
}

impl Browser {
    fn launch(exe: &Path) -> Browser {
        use std::os::unix::process::CommandExt;
        let dir = tempfile::tempdir().unwrap();
        let stderr = std::fs::File::create(dir.path().join("chromium.log")).unwrap();
        let profile = dir.path().join("profile");
        let child = Command::new(exe)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--window-size=1200,800",
                &format!("--user-data-dir={}", profile.display()),
                "--remote-debugging-port=0",
                "about:blank",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", exe.display()));
        Browser { child, dir }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("chromium.log")).unwrap_or_default()
    }

    /// The DevTools HTTP port, from `<user-data-dir>/DevToolsActivePort`.
    async fn devtools_port(&mut self) -> u16 {
        let file = self.dir.path().join("profile").join("DevToolsActivePort");
        let start = std::time::Instant::now();
        loop {
            // The file is written once Chromium listens: first line the port, second the path.
            if let Ok(text) = std::fs::read_to_string(&file) {
                if let Some(port) = text.lines().next().and_then(|l| l.trim().parse().ok()) {
                    if text.lines().count() >= 2 {
                        return port;
                    }
                }
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("chromium exited early ({status}); its log:\n{}", self.log());
            }
            if start.elapsed() > common::DEADLINE {
                panic!(
                    "no DevToolsActivePort after {:?}; chromium log:\n{}",
                    common::DEADLINE,
                    self.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Kill the whole process group (renderers, zygote, ...) that we created, by its id.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A minimal Chrome DevTools Protocol client for one target: sends `{id, method, params}` and
/// waits for the response with the same id, ignoring events.
struct Cdp {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    next_id: u64,
}

impl Cdp {
    async fn connect(url: &str) -> Cdp {
        let (ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to DevTools at {url}: {e}"));
        Cdp { ws, next_id: 0 }
    }

    /// Sends a command; returns its `result`, or its `error` as `Err`.
    async fn call(&mut self, method: &str, params: Value) -> Result<Value, Value> {
        self.next_id += 1;
        let id = self.next_id;
        let request = json!({"id": id, "method": method, "params": params});
        let exchange = async {
            self.ws
                .send(Message::Text(request.to_string().into()))
                .await
                .unwrap_or_else(|e| panic!("DevTools send failed: {e}"));
            loop {
                let msg = match self.ws.next().await {
                    Some(Ok(msg)) => msg,
                    Some(Err(e)) => panic!("DevTools read failed during {method}: {e}"),
                    None => panic!("DevTools connection closed during {method}"),
                };
                let Message::Text(text) = msg else { continue };
                let v: Value = serde_json::from_str(&text).expect("DevTools sends JSON");
                if v["id"].as_u64() != Some(id) {
                    continue; // an event, or a late answer to something else
                }
                return match v.get("error") {
                    Some(e) => Err(e.clone()),
                    None => Ok(v["result"].clone()),
                };
            }
        };
        tokio::time::timeout(CDP_TIMEOUT, exchange)
            .await
            .unwrap_or_else(|_| panic!("DevTools command {method} took longer than {CDP_TIMEOUT:?}"))
    }

    /// Evaluates a JS expression in the page (awaiting promises); its value, or `None` when it
    /// threw or the page is between documents.
    async fn eval(&mut self, expression: &str) -> Option<Value> {
        let r = self
            .call(
                "Runtime.evaluate",
                json!({"expression": expression, "awaitPromise": true, "returnByValue": true}),
            )
            .await
            .ok()?;
        if r.get("exceptionDetails").is_some() {
            return None;
        }
        r["result"].get("value").cloned()
    }

    /// Polls `expression` until it yields a value for which `accept` is true; returns it.
    async fn wait_eval(&mut self, what: &str, expression: &str, accept: impl Fn(&Value) -> bool) -> Value {
        let cdp = &tokio::sync::Mutex::new(self);
        let accept = &accept;
        wait_for(what, move || async move {
            let v = cdp.lock().await.eval(expression).await?;
            accept(&v).then_some(v)
        })
        .await
    }
}

/// Decodes standard base64 (as in `Page.captureScreenshot`).
fn base64_decode(s: &str) -> Vec<u8> {
    let value = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => (c - b'A') as u32,
            b'a'..=b'z' => (c - b'a' + 26) as u32,
            b'0'..=b'9' => (c - b'0' + 52) as u32,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("not base64: {c:?}"),
        }
    };
    let clean: Vec<u8> = s.bytes().filter(|c| !c.is_ascii_whitespace() && *c != b'=').collect();
    let mut out = Vec::with_capacity(clean.len() * 3 / 4);
    for chunk in clean.chunks(4) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, &c)| acc | value(c) << (18 - 6 * i));
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_page_lists_channels_posts_and_shows_the_reply() {
    let Some(chromium) = find_chromium() else {
        common::tool_missing("chromium", "Debian: apt-get install chromium");
    };

    let (config, _state) = two_agents();
    let running = troupe::app::start(config).await.unwrap();
    let url = running.sandbox_url().unwrap().trim_end_matches('/').to_string();
    let sb = Control::new(&url);
    sb.wait_connected(&["Ada", "Basil"]).await;
    let ada_id = sb.id_of("users", "Ada").await;

    let mut browser = Browser::launch(&chromium);
    let port = browser.devtools_port().await;
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let ws_url = wait_for("a page target in DevTools /json/list", || async {
        let targets: Vec<Value> = http
            .get(format!("http://127.0.0.1:{port}/json/list"))
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        targets
            .iter()
            .find(|t| t["type"] == "page")
            .and_then(|t| t["webSocketDebuggerUrl"].as_str())
            .map(String::from)
    })
    .await;
    let mut cdp = Cdp::connect(&ws_url).await;

    let nav = cdp
        .call("Page.navigate", json!({"url": format!("{url}/#channel=general")}))
        .await
        .unwrap_or_else(|e| panic!("Page.navigate failed: {e}"));
    assert!(nav.get("errorText").is_none(), "navigation failed: {nav}");

    // The navigation lists the text channels and one DM entry per bot, and opens #general.
    let nav_state = cdp
        .wait_eval(
            "the page to list channels and DMs with #general open",
            r#"({
                channels: [...document.querySelectorAll('#channels button')].map((b) => b.textContent),
                dms: [...document.querySelectorAll('#dms button')].map((b) => b.textContent),
                title: document.getElementById('title').textContent,
                authors: [...document.getElementById('author').options].map((o) => o.value),
            })"#,
            |v| v["title"] == "# general" && v["dms"].as_array().is_some_and(|a| a.len() >= 2),
        )
        .await;
    assert_eq!(
        nav_state["channels"],
        json!(["# general", "# random", "# bot-dms"]),
        "{nav_state}"
    );
    assert_eq!(nav_state["dms"], json!(["@ Ada", "@ Basil"]), "{nav_state}");
    assert!(
        nav_state["authors"].as_array().unwrap().contains(&json!("alice")),
        "{nav_state}"
    );

    // A human writes through the composer.
    let submitted = cdp
        .eval(
            r#"(() => {
                document.getElementById('author').value = 'alice';
                document.getElementById('content').value = '@Ada hello from the browser';
                document.getElementById('composer').requestSubmit();
                return document.getElementById('author').value;
            })()"#,
        )
        .await;
    assert_eq!(
        submitted,
        Some(json!("alice")),
        "could not fill in and submit the composer"
    );

    let expected = format!("<@{ada_id}> hello from the browser");
    let asked = wait_for("alice's message from the browser in #general", || async {
        sb.messages("general")
            .await
            .into_iter()
            .find(|m| m["author"]["username"] == "alice" && m["content"] == expected.as_str())
    })
    .await;
    let reply = sb.reply_to("general", "Ada", asked["id"].as_str().unwrap()).await;
    let reply_content = reply["content"].as_str().unwrap().to_string();
    assert!(reply_content.starts_with("Ada heard alice:"), "{reply_content}");
    assert!(reply_content.contains("hello from the browser"), "{reply_content}");

    // The page shows both: alice's mention rendered by name, and Ada's reply (it polls every second).
    let shown = cdp
        .wait_eval(
            "the page to render Ada's reply",
            &format!(
                r#"(() => {{
                    const text = (id) => {{
                        const m = document.querySelector('#messages .msg[data-id="' + id + '"]');
                        if (!m) return null;
                        const quote = m.querySelector('.reply');
                        return {{
                            who: m.querySelector('.who').textContent,
                            content: m.querySelector('.content').textContent,
                            quote: quote && quote.textContent,
                        }};
                    }};
                    return {{ asked: text({asked:?}), reply: text({reply:?}), input: document.getElementById('content').value }};
                }})()"#,
                asked = asked["id"].as_str().unwrap(),
                reply = reply["id"].as_str().unwrap(),
            ),
            |v| v["reply"].is_object(),
        )
        .await;
    assert_eq!(shown["asked"]["who"], "alice", "{shown}");
    assert_eq!(shown["asked"]["content"], "@Ada hello from the browser", "{shown}");
    assert_eq!(shown["reply"]["who"], "Ada", "{shown}");
    // The quoted message shows the mention by name too, not as a raw `<@ID>`.
    assert_eq!(
        shown["reply"]["quote"], "↪ alice: @Ada hello from the browser",
        "{shown}"
    );
    let rendered = shown["reply"]["content"].as_str().unwrap();
    assert!(rendered.starts_with("Ada heard alice:"), "{shown}");
    assert!(rendered.contains("hello from the browser"), "{shown}");
    assert_eq!(shown["input"], "", "the composer is cleared after sending: {shown}");

    // A screenshot for humans to look at.
    let shot = cdp
        .call("Page.captureScreenshot", json!({"format": "png"}))
        .await
        .unwrap_or_else(|e| panic!("Page.captureScreenshot failed: {e}"));
    let png = base64_decode(shot["data"].as_str().expect("screenshot data"));
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    let out = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target")
        .join("web_page.png");
    std::fs::create_dir_all(out.parent().unwrap()).unwrap();
    std::fs::write(&out, &png).unwrap();
    eprintln!("screenshot: {}", out.display());

    drop(cdp);
    drop(browser);
    running.stop().await;
}
