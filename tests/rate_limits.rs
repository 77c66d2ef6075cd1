//! Sandbox mode is live mode (issue 15): troupe reaches the sandbox as `https://discord.com`
//! through its CONNECT proxy with serenity's rate limiter on, and the sandbox rate limits as
//! Discord does (buckets that count down, the global limit, 429s whose body and headers agree).
//! Each test waits on conditions with deadlines; the time checks are lower bounds that follow
//! from the protocol (a retry cannot come before the wait it was told), never thresholds.

mod common;

use common::{config, wait_for, Control};
use reqwest::StatusCode;
use serde_json::{json, Value};
use troupe::sandbox::spec::WorldSpec;
use troupe::sandbox::Sandbox;

const ADA: &str = "sandbox.ada";

fn one_agent() -> (troupe::config::Config, tempfile::TempDir) {
    config("[[agents]]\nname = \"Ada\"\nbackend = \"offline\"\n")
}

/// A client that reaches the sandbox as `https://discord.com`, as troupe's sandbox mode does.
fn discord_client(sandbox: &Sandbox) -> reqwest::Client {
    reqwest::Client::builder()
        .use_rustls_tls()
        .proxy(reqwest::Proxy::https(sandbox.url()).unwrap())
        .add_root_certificate(reqwest::Certificate::from_pem(sandbox.ca_pem().as_bytes()).unwrap())
        .build()
        .unwrap()
}

async fn sandbox() -> Sandbox {
    let bots = [("Ada".to_string(), ADA.to_string())];
    Sandbox::start(&WorldSpec::default(), &bots, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

fn header<'a>(r: &'a reqwest::Response, name: &str) -> &'a str {
    r.headers()
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .to_str()
        .unwrap()
}

/// POSTs of one bot's replies to one channel, from the request log.
fn message_posts(requests: &[Value], channel: &str) -> Vec<Value> {
    let path = format!("/api/v10/channels/{channel}/messages");
    requests
        .iter()
        .filter(|r| r["method"] == "POST" && r["path"] == path)
        .cloned()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sandbox_is_https_discord_com_through_its_connect_proxy() {
    let sandbox = sandbox().await;
    let http = discord_client(&sandbox);
    let me: Value = http
        .get("https://discord.com/api/v10/users/@me")
        .header("authorization", format!("Bot {ADA}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["username"], "Ada");
    // The CA is served on the control API, the same as the in-process one.
    let pem = reqwest::get(format!("{}/sandbox/ca.pem", sandbox.url()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(pem, sandbox.ca_pem());
    // Without the CA the certificate is refused: it is not Discord's.
    let untrusting = reqwest::Client::builder()
        .use_rustls_tls()
        .proxy(reqwest::Proxy::https(sandbox.url()).unwrap())
        .build()
        .unwrap();
    assert!(untrusting
        .get("https://discord.com/api/v10/gateway")
        .send()
        .await
        .is_err());
    // The proxy tunnels only to Discord.
    let elsewhere = discord_client(&sandbox).get("https://example.com/").send().await;
    assert!(elsewhere.is_err(), "{elsewhere:?}");
    // The log tells tunnelled requests from plain ones.
    let log: Vec<Value> = Control::new(&sandbox.url()).requests().await;
    assert_eq!(log[0]["path"], "/api/v10/users/@me");
    assert_eq!(log[0]["tls"], true);
    sandbox.stop().await;
}

/// As Discord's API does, the sandbox speaks HTTP/2 to a client that offers it in TLS (one
/// connection carries concurrent requests) and HTTP/1.1 to one that does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sandbox_speaks_http2_to_clients_that_offer_it_and_http1_to_others() {
    let sandbox = sandbox().await;
    let me = |http: reqwest::Client| async move {
        http.get("https://discord.com/api/v10/users/@me")
            .header("authorization", format!("Bot {ADA}"))
            .send()
            .await
            .unwrap()
    };
    // troupe's own client (its sandbox route) offers h2.
    let troupe::discord::route::Route::Sandbox(h2) =
        troupe::discord::route::Route::sandbox(&sandbox.url(), sandbox.ca_pem()).unwrap()
    else {
        panic!("not a sandbox route");
    };
    let answers = futures::future::join_all((0..20).map(|_| me(h2.clone()))).await;
    for r in answers {
        assert_eq!(r.version(), reqwest::Version::HTTP_2);
        assert_eq!(r.status(), StatusCode::OK);
        assert!(!header(&r, "x-ratelimit-bucket").is_empty());
    }
    let http1 = reqwest::Client::builder()
        .use_rustls_tls()
        .http1_only()
        .proxy(reqwest::Proxy::https(sandbox.url()).unwrap())
        .add_root_certificate(reqwest::Certificate::from_pem(sandbox.ca_pem().as_bytes()).unwrap())
        .build()
        .unwrap();
    let r = me(http1).await;
    assert_eq!(r.version(), reqwest::Version::HTTP_11);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["username"], "Ada");
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_buckets_count_down_and_a_429_agrees_with_itself() {
    let sandbox = sandbox().await;
    let sb = Control::new(&sandbox.url());
    let channel = sb.id_of("channels", "general").await;
    let http = discord_client(&sandbox);
    let post = || {
        http.post(format!("https://discord.com/api/v10/channels/{channel}/messages"))
            .header("authorization", format!("Bot {ADA}"))
            .json(&json!({"content": "hi"}))
            .send()
    };
    let mut bucket = None;
    for left in (0..5).rev() {
        let r = post().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(header(&r, "x-ratelimit-limit"), "5");
        assert_eq!(header(&r, "x-ratelimit-remaining"), left.to_string());
        assert_eq!(header(&r, "via"), "1.1 google");
        let id = header(&r, "x-ratelimit-bucket").to_string();
        assert_eq!(bucket.get_or_insert(id.clone()), &id);
    }
    let r = post().await.unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header(&r, "x-ratelimit-remaining"), "0");
    assert_eq!(header(&r, "x-ratelimit-scope"), "user");
    assert_eq!(header(&r, "via"), "1.1 google");
    let reset_after: f64 = header(&r, "x-ratelimit-reset-after").parse().unwrap();
    let retry_header: f64 = header(&r, "retry-after").parse().unwrap();
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["global"], false);
    assert_eq!(body["code"], 0);
    let retry_after = body["retry_after"].as_f64().unwrap();
    assert!(retry_after > 0.0 && retry_after <= 5.0, "{body}");
    assert_eq!(retry_after, reset_after);
    assert_eq!(retry_header, retry_after.ceil());
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slowmode_429_says_20016_and_its_wait_in_body_and_header() {
    let mut spec = WorldSpec::default();
    spec.guilds[0].channels[0].slowmode = 30;
    let bots = [("Ada".to_string(), ADA.to_string())];
    let sandbox = Sandbox::start(&spec, &bots, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let channel = Control::new(&sandbox.url())
        .id_of("channels", &spec.guilds[0].channels[0].name)
        .await;
    let http = discord_client(&sandbox);
    let post = || {
        http.post(format!("https://discord.com/api/v10/channels/{channel}/messages"))
            .header("authorization", format!("Bot {ADA}"))
            .json(&json!({"content": "hi"}))
            .send()
    };
    assert_eq!(post().await.unwrap().status(), StatusCode::OK);
    let r = post().await.unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header(&r, "via"), "1.1 google");
    assert_eq!(header(&r, "x-ratelimit-scope"), "user");
    // The route's bucket is not what refused it: it still has room.
    assert_eq!(header(&r, "x-ratelimit-remaining"), "3");
    let retry_header: f64 = header(&r, "retry-after").parse().unwrap();
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], 20016);
    let retry_after = body["retry_after"].as_f64().unwrap();
    assert!(retry_after > 0.0 && retry_after <= 30.0, "{body}");
    assert_eq!(retry_header, retry_after.ceil());
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_global_limit_is_fifty_requests_a_second_per_bot() {
    let sandbox = sandbox().await;
    let http = discord_client(&sandbox);
    let mut statuses = Vec::new();
    // Different routes, so no route bucket runs out first; 51 requests in well under a second
    // unless the machine stalls, in which case the window restarts and the test says so.
    let started = std::time::Instant::now();
    let mut global = None;
    for i in 0..51 {
        let r = http
            .get(format!("https://discord.com/api/v10/users/{}", 1000 + i))
            .header("authorization", format!("Bot {ADA}"))
            .send()
            .await
            .unwrap();
        statuses.push(r.status());
        if r.status() == StatusCode::TOO_MANY_REQUESTS {
            assert_eq!(header(&r, "x-ratelimit-global"), "true");
            assert_eq!(header(&r, "x-ratelimit-scope"), "global");
            let body: Value = r.json().await.unwrap();
            global = Some(body);
        }
    }
    if started.elapsed() < std::time::Duration::from_secs(1) {
        let body = global.expect("the 51st request within a second is refused");
        assert_eq!(body["global"], true);
        assert!(body["retry_after"].as_f64().unwrap() <= 1.0);
    }
    assert!(statuses[..50].iter().all(|s| *s != StatusCode::TOO_MANY_REQUESTS));
    sandbox.stop().await;
}

/// The "done when": a 429 with `retry_after` is waited out by troupe's live-mode code
/// (serenity's rate limiter, over TLS), and the reply arrives once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_is_waited_out_by_serenity_and_the_reply_arrives_once() {
    let (config, _state) = one_agent();
    let running = troupe::app::start(config).await.unwrap();
    let sb = Control::new(running.sandbox_url().unwrap());
    sb.wait_connected(&["Ada"]).await;
    let channel = sb.id_of("channels", "general").await;
    sb.faults(json!({"rest": {"status": 429, "count": 1, "retry_after": 1.5,
        "method": "POST", "path_contains": "/messages"}}))
        .await;
    let asked = sb.say("general", "alice", "<@Ada> hello").await;
    sb.reply_to("general", "Ada", asked["id"].as_str().unwrap()).await;

    let posts = message_posts(&sb.requests().await, &channel);
    assert_eq!(posts.len(), 2, "one refused, one retried: {posts:#?}");
    assert_eq!(posts[0]["status"], 429);
    assert_eq!(posts[1]["status"], 200);
    assert!(posts.iter().all(|p| p["tls"] == true), "{posts:#?}");
    let waited = posts[1]["unix_ms"].as_u64().unwrap() - posts[0]["unix_ms"].as_u64().unwrap();
    assert!(waited >= 1_500, "retried {waited} ms after a retry_after of 1.5 s");
    let replies: Vec<Value> = sb
        .messages("general")
        .await
        .into_iter()
        .filter(|m| m["author"]["username"] == "Ada")
        .collect();
    assert_eq!(replies.len(), 1, "{replies:#?}");
    running.stop().await;
}

/// More replies in one channel than its bucket holds: serenity reads the headers, waits for the
/// bucket to reset instead of being refused, and every reply arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_beyond_the_channel_bucket_wait_for_its_reset() {
    let (config, _state) = one_agent();
    let running = troupe::app::start(config).await.unwrap();
    let sb = Control::new(running.sandbox_url().unwrap());
    sb.wait_connected(&["Ada"]).await;
    let channel = sb.id_of("channels", "general").await;
    let asks: Vec<String> = (0..7).map(|i| format!("<@Ada> question {i}")).collect();
    let asked = sb.burst("general", "alice", &asks).await;
    assert_eq!(asked.len(), 7);
    wait_for("seven replies", || async {
        let n = sb
            .messages("general")
            .await
            .iter()
            .filter(|m| m["author"]["username"] == "Ada")
            .count();
        (n == 7).then_some(())
    })
    .await;
    let posts = message_posts(&sb.requests().await, &channel);
    assert!(posts.iter().all(|p| p["status"] == 200), "refused: {posts:#?}");
    assert_eq!(posts.len(), 7);
    // The sixth went out only after the first's window (5 s) had ended.
    let gap = posts[5]["unix_ms"].as_u64().unwrap() - posts[0]["unix_ms"].as_u64().unwrap();
    assert!(gap >= 4_000, "the sixth reply came {gap} ms after the first");
    running.stop().await;
}
