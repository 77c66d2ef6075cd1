//! The sandbox's web page (`crates/sandbox/src/web/index.html`) works in a real browser: headless
//! Chromium, driven over the Chrome DevTools Protocol, shows the channels and DMs, posts a
//! human's message through the composer, and renders the agent's reply; it uses a bot's slash
//! command as a human, shows the bot's response, its later edit (marked "(edited)") and its
//! attachments (images inline, other files as links); and shows a streamed reply grow live as
//! the agent edits it.
//!
//! Needs `chromium` on PATH (Debian: `apt-get install chromium`). Without it the test fails;
//! `make test` installs it when it can, and otherwise leaves the test out and says so
//! (`tests/tools.sh`).

mod common;
#[path = "support/gateway_client.rs"]
mod gateway_client;

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

    let (browser, mut cdp) = open_page(&chromium, &format!("{url}/#channel=general")).await;

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_page_shows_a_streamed_reply_grow_live() {
    let Some(chromium) = find_chromium() else {
        common::tool_missing("chromium", "Debian: apt-get install chromium");
    };
    const TEXT: &str = "Hello there. This reply is streamed word by word, and the page shows it grow \
                        while the model is still writing the rest of it out.";
    let llm = troupe_llm_test_server::LlmTestServer::start().await.unwrap();
    llm.set_default(troupe_llm_test_server::Reply::text(TEXT).token_delay(Duration::from_millis(300)));
    let (config, _state) = common::config(&format!(
        "[backends.model]\nprovider = \"openai\"\nmodel = \"m\"\nbase_url = \"{}\"\n\n[[agents]]\nname = \"Ada\"\nbackend = \"model\"\nstream = true\n",
        llm.openai_base_url()
    ));
    let running = troupe::app::start(config).await.unwrap();
    let url = running.sandbox_url().unwrap().trim_end_matches('/').to_string();
    let sb = Control::new(&url);
    sb.wait_connected(&["Ada"]).await;
    let (browser, mut cdp) = open_page(&chromium, &format!("{url}/#channel=general")).await;
    let asked = sb.say("general", "alice", "<@Ada> tell me something").await;
    let reply = sb.reply_to("general", "Ada", asked["id"].as_str().unwrap()).await;
    let id = reply["id"].as_str().unwrap().to_string();
    let shown = |id: &str| {
        format!(
            r#"(() => {{
                const m = document.querySelector('#messages .msg[data-id="{id}"]');
                if (!m) return null;
                return {{ content: m.querySelector('.content').textContent, edited: !!m.querySelector('.edited') }};
            }})()"#
        )
    };
    // A part of the reply, edited, before the whole of it: the page follows the edits.
    let partial = cdp
        .wait_eval("the page to show the reply part written", &shown(&id), |v| {
            v["edited"] == true && v["content"].as_str().is_some_and(|c| !c.starts_with(TEXT))
        })
        .await;
    let partial = partial["content"]
        .as_str()
        .unwrap()
        .trim_end_matches("(edited)")
        .to_string();
    assert!(TEXT.starts_with(&partial) && partial.len() < TEXT.len(), "{partial}");
    let complete = cdp
        .wait_eval("the page to show the complete reply", &shown(&id), |v| {
            v["content"].as_str().is_some_and(|c| c.starts_with(TEXT))
        })
        .await;
    assert_eq!(complete["content"], format!("{TEXT}(edited)"), "{complete}");
    drop(cdp);
    drop(browser);
    running.stop().await;
}

/// Opens `url` in a fresh headless Chromium; returns the browser (killed on drop) and a
/// DevTools connection to its page.
async fn open_page(chromium: &Path, url: &str) -> (Browser, Cdp) {
    let mut browser = Browser::launch(chromium);
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
        .call("Page.navigate", json!({"url": url}))
        .await
        .unwrap_or_else(|e| panic!("Page.navigate failed: {e}"));
    assert!(nav.get("errorText").is_none(), "navigation failed: {nav}");
    (browser, cdp)
}

/// A 1×1 PNG, as an attachment URL the browser can load without a network.
const DOT_PNG: &str = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_page_uses_slash_commands_and_shows_edits_and_attachments() {
    let Some(chromium) = find_chromium() else {
        common::tool_missing("chromium", "Debian: apt-get install chromium");
    };
    let token = "sandbox.ada";
    let bots = [("Ada".to_string(), token.to_string())];
    let spec = troupe::sandbox::spec::WorldSpec::default();
    let sandbox = troupe::sandbox::Sandbox::start(&spec, &bots, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let url = sandbox.url();
    let ada = sandbox
        .shared()
        .world
        .lock()
        .unwrap()
        .user_by_name("Ada")
        .unwrap()
        .id
        .to_string();
    let http = reqwest::Client::builder().no_proxy().build().unwrap();

    // The bot: a raw gateway session, and a /roll command registered over REST.
    let mut bot =
        gateway_client::Gateway::hello(&format!("ws://{}/gateway?v=10&encoding=json", sandbox.addr()), false).await;
    bot.identify(token, (1 << 9) | (1 << 15)).await;
    bot.dispatch("READY").await;
    let roll = json!({"name": "roll", "description": "Roll a die", "options": [
        {"type": 4, "name": "sides", "description": "Sides", "required": true},
        {"type": 3, "name": "mood", "description": "Mood", "choices": [{"name": "Calm", "value": "calm"}, {"name": "Angry", "value": "angry"}]},
    ]});
    let registered = http
        .post(format!("{url}/api/v10/applications/{ada}/commands"))
        .header("authorization", format!("Bot {token}"))
        .json(&roll)
        .send()
        .await
        .unwrap();
    assert_eq!(registered.status(), 201);

    let (browser, mut cdp) = open_page(&chromium, &format!("{url}/#channel=general")).await;
    cdp.wait_eval(
        "the page to offer /roll",
        r#"[...document.getElementById('command').options].map((o) => o.textContent)"#,
        |v| v == &json!(["/roll (Ada)"]),
    )
    .await;
    let used = cdp
        .eval(
            r#"(() => {
                document.getElementById('author').value = 'alice';
                document.querySelector('#command-options [data-name="sides"]').value = '20';
                document.querySelector('#command-options [data-name="mood"]').value = 'angry';
                document.getElementById('slash').requestSubmit();
                return document.getElementById('slash').hidden;
            })()"#,
        )
        .await;
    assert_eq!(
        used,
        Some(json!(false)),
        "could not fill in and submit the command form"
    );

    let interaction = bot.dispatch("INTERACTION_CREATE").await;
    assert_eq!(interaction["data"]["name"], "roll");
    assert_eq!(
        interaction["data"]["options"],
        json!([{"name": "sides", "type": 4, "value": 20}, {"name": "mood", "type": 3, "value": "angry"}])
    );
    assert_eq!(interaction["member"]["user"]["username"], "alice");
    let (id, itoken) = (
        interaction["id"].as_str().unwrap(),
        interaction["token"].as_str().unwrap(),
    );
    let answered = http
        .post(format!("{url}/api/v10/interactions/{id}/{itoken}/callback"))
        .json(&json!({"type": 4, "data": {"content": "You rolled 13"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(answered.status(), 204);
    let response = bot.dispatch("MESSAGE_CREATE").await;
    let message_id = response["id"].as_str().unwrap().to_string();
    let message = |id: &str| {
        format!(
            r#"(() => {{
                const m = document.querySelector('#messages .msg[data-id="{id}"]');
                if (!m) return null;
                const img = m.querySelector('img.attachment');
                return {{
                    used: m.querySelector('.used') && m.querySelector('.used').textContent,
                    who: m.querySelector('.who').textContent,
                    content: m.querySelector('.content').textContent,
                    edited: !!m.querySelector('.edited'),
                    image: img && {{ alt: img.alt, width: img.naturalWidth, complete: img.complete, src: img.src }},
                    links: [...m.querySelectorAll('a.attachment')].map((a) => a.textContent),
                }};
            }})()"#
        )
    };
    let shown = cdp
        .wait_eval("the page to show Ada's response", &message(&message_id), |v| {
            v.is_object()
        })
        .await;
    assert_eq!(shown["used"], "⤷ alice used /roll", "{shown}");
    assert_eq!(
        (shown["who"].as_str(), shown["content"].as_str()),
        (Some("Ada"), Some("You rolled 13")),
        "{shown}"
    );
    assert_eq!(shown["edited"], false, "{shown}");

    // The bot edits its response: the page replaces the content and marks it edited.
    let edited = http
        .patch(format!("{url}/api/v10/webhooks/{ada}/{itoken}/messages/@original"))
        .json(&json!({"content": "You rolled 14"}))
        .send()
        .await
        .unwrap();
    assert_eq!(edited.status(), 200);
    assert_eq!(bot.dispatch("MESSAGE_UPDATE").await["content"], "You rolled 14");
    let shown = cdp
        .wait_eval("the page to show the edit", &message(&message_id), |v| {
            v["edited"] == true
        })
        .await;
    assert_eq!(shown["content"], "You rolled 14(edited)", "{shown}");

    // Attachments, as a message's JSON carries them (uploads are another route's job): the
    // image inline and loaded, the text file as a link.
    sandbox
        .shared()
        .world
        .lock()
        .unwrap()
        .message_extras
        .entry(message_id.parse().unwrap())
        .or_default()
        .insert(
            "attachments".into(),
            json!([
                {"id": "1", "filename": "dot.png", "content_type": "image/png", "size": 70, "url": DOT_PNG, "proxy_url": DOT_PNG},
                {"id": "2", "filename": "notes.txt", "content_type": "text/plain", "size": 2, "url": "data:text/plain,hi", "proxy_url": "data:text/plain,hi"},
            ]),
        );
    let shown = cdp
        .wait_eval("the page to show the attachments", &message(&message_id), |v| {
            v["image"]["complete"] == true
        })
        .await;
    assert_eq!(shown["image"]["alt"], "dot.png", "{shown}");
    assert_eq!(shown["image"]["width"], 1, "the image is shown inline: {shown}");
    assert_eq!(shown["links"], json!(["📎 notes.txt (2 bytes)"]), "{shown}");

    // An image uploaded by a person (the control API, as multipart uploads do): shown inline,
    // loaded from the sandbox's CDN.
    let posted: Value = http
        .post(format!("{url}/sandbox/messages"))
        .json(&json!({"channel": "general", "author": "alice", "content": "look", "attachments": [
            {"filename": "dot.png", "content_type": "image/png", "base64": DOT_PNG.trim_start_matches("data:image/png;base64,")},
        ]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let uploaded = posted["id"].as_str().unwrap().to_string();
    let shown = cdp
        .wait_eval("the page to show the uploaded image", &message(&uploaded), |v| {
            v["image"]["complete"] == true
        })
        .await;
    assert_eq!(
        shown["image"]["width"], 1,
        "the uploaded image is shown inline: {shown}"
    );
    assert!(
        shown["image"]["src"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{url}/attachments/")),
        "{shown}"
    );

    // A screenshot for humans to look at.
    let shot = cdp
        .call("Page.captureScreenshot", json!({"format": "png"}))
        .await
        .unwrap_or_else(|e| panic!("Page.captureScreenshot failed: {e}"));
    let out = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target")
        .join("web_page_commands.png");
    std::fs::create_dir_all(out.parent().unwrap()).unwrap();
    std::fs::write(&out, base64_decode(shot["data"].as_str().expect("screenshot data"))).unwrap();
    eprintln!("screenshot: {}", out.display());

    drop(cdp);
    drop(browser);
    sandbox.stop().await;
}

/// troupe's own slash commands from the page: `/agents` shows the cast's embed to everyone, and a
/// moderator's `/pause` answers with a message only they see.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_page_invokes_troupes_slash_commands() {
    let Some(chromium) = find_chromium() else {
        common::tool_missing("chromium", "Debian: apt-get install chromium");
    };
    let (config, _state) = two_agents();
    let running = troupe::app::start(config).await.unwrap();
    let url = running.sandbox_url().unwrap().trim_end_matches('/').to_string();
    let sb = Control::new(&url);
    sb.wait_connected(&["Ada", "Basil"]).await;

    let (browser, mut cdp) = open_page(&chromium, &format!("{url}/#channel=general")).await;
    let offered = cdp
        .wait_eval(
            "the page to offer both agents' commands",
            r#"[...document.getElementById('command').options].map((o) => o.textContent)"#,
            |v| v.as_array().is_some_and(|a| a.len() == 14),
        )
        .await;
    let offered: Vec<String> = serde_json::from_value(offered).unwrap();
    let pick = |label: &str| {
        let index = offered
            .iter()
            .position(|o| o == label)
            .unwrap_or_else(|| panic!("{label} not offered: {offered:?}"));
        format!(
            r#"(() => {{
                document.getElementById('author').value = 'alice';
                document.getElementById('command').value = '{index}';
                document.getElementById('command').dispatchEvent(new Event('change'));
                document.getElementById('slash').requestSubmit();
                return true;
            }})()"#
        )
    };
    assert_eq!(cdp.eval(&pick("/agents (Ada)")).await, Some(json!(true)));
    let cast = cdp
        .wait_eval(
            "the page to show the cast",
            r#"[...document.querySelectorAll('#messages .msg .embed-field')].map((f) => f.textContent)"#,
            |v| v.as_array().is_some_and(|a| a.len() == 2),
        )
        .await;
    assert_eq!(
        cast[0].as_str().unwrap(),
        "Ada: You are Ada.\nBackend: offline (echo) · Model: echo",
        "{cast}"
    );
    assert!(cast[1].as_str().unwrap().starts_with("Basil: "), "{cast}");

    assert_eq!(cdp.eval(&pick("/pause (Ada)")).await, Some(json!(true)));
    let paused = cdp
        .wait_eval(
            "the page to show the pause, to alice only",
            r#"[...document.querySelectorAll('#messages .msg.ephemeral')].map((m) => m.querySelector('.content').textContent)"#,
            |v| v.as_array().is_some_and(|a| !a.is_empty()),
        )
        .await;
    assert_eq!(paused, json!(["Ada is paused in this channel."]));

    drop(cdp);
    drop(browser);
    running.stop().await;
}
