//! File uploads as Discord takes them (`multipart/form-data`: `payload_json` plus `files[n]`),
//! attachments served back from the sandbox's CDN-like URL with size, type and image
//! dimensions, Discord's 413 over the 10 MiB limit, and the control API's attachments.

mod common;

use common::{id, Env, ADA};
use reqwest::multipart::{Form, Part};
use reqwest::Method;
use serde_json::json;

/// A PNG header claiming 640×480: enough for the size to be read.
fn png() -> Vec<u8> {
    let mut b = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
    b.extend_from_slice(&640u32.to_be_bytes());
    b.extend_from_slice(&480u32.to_be_bytes());
    b.extend_from_slice(&[0; 32]);
    b
}

async fn upload(env: &Env, path: &str, form: Form) -> common::Resp {
    let r = env
        .http
        .post(env.url(path))
        .header("Authorization", format!("Bot {ADA}"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    common::Resp::read(r).await
}

#[tokio::test]
async fn multipart_upload_is_attached_and_served() {
    let env = Env::start().await;
    let general = env.channel("general");
    let payload = json!({"content": "a picture", "attachments": [{"id": 0, "description": "a test image"}]});
    let form = Form::new()
        .text("payload_json", payload.to_string())
        .part("files[0]", Part::bytes(png()).file_name("my pic.png"))
        .part(
            "files[1]",
            Part::text("hello")
                .file_name("note.txt")
                .mime_str("text/plain")
                .unwrap(),
        );
    let r = upload(&env, &format!("/channels/{general}/messages"), form).await;
    let m = r.expect(200).clone();
    let parsed: serenity::model::channel::Message = serde_json::from_value(m.clone()).unwrap();
    assert_eq!(parsed.attachments.len(), 2);
    let img = &m["attachments"][0];
    assert_eq!(img["filename"], "my_pic.png");
    assert_eq!((img["width"].as_u64(), img["height"].as_u64()), (Some(640), Some(480)));
    assert_eq!(img["content_type"], "image/png");
    assert_eq!(img["description"], "a test image");
    assert_eq!(img["size"].as_u64(), Some(png().len() as u64));
    let url = img["url"].as_str().unwrap();
    assert!(url.starts_with(&env.sandbox.url()), "{url}");
    assert_eq!(img["proxy_url"], img["url"]);
    let served = env.http.get(url).send().await.unwrap();
    assert_eq!(served.status(), 200);
    assert_eq!(served.headers()["content-type"], "image/png");
    assert_eq!(served.bytes().await.unwrap().to_vec(), png());
    let note = &m["attachments"][1];
    assert_eq!(note["content_type"], "text/plain");
    assert!(note.get("width").is_none());
    let text = env.http.get(note["url"].as_str().unwrap()).send().await.unwrap();
    assert_eq!(text.text().await.unwrap(), "hello");
    let missing = env.http.get(format!("{url}x")).send().await.unwrap();
    assert_eq!(missing.status(), 404);
    // An edit listing no attachments removes them, as Discord's does.
    let mid = id(&m["id"]);
    let r = env
        .api(
            Method::PATCH,
            &format!("/channels/{general}/messages/{mid}"),
            Some(ADA),
            Some(json!({"attachments": [{"id": note["id"]}]})),
        )
        .await;
    assert_eq!(r.expect(200)["attachments"].as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn an_upload_over_10_mib_is_413_40005() {
    let env = Env::start().await;
    let general = env.channel("general");
    let form = Form::new()
        .text("payload_json", json!({"content": "big"}).to_string())
        .part("files[0]", Part::bytes(vec![0u8; (10 << 20) + 1]).file_name("big.bin"));
    upload(&env, &format!("/channels/{general}/messages"), form)
        .await
        .expect_error(413, 40005);
    let form = Form::new().part("files[0]", Part::bytes(vec![1u8; 1 << 20]).file_name("ok.bin"));
    let r = upload(&env, &format!("/channels/{general}/messages"), form).await;
    assert_eq!(r.expect(200)["attachments"][0]["size"].as_u64(), Some(1 << 20));
}

#[tokio::test]
async fn control_api_posts_a_human_message_with_attachments() {
    let env = Env::start().await;
    let body = json!({
        "channel": "general",
        "author": "alice",
        "content": "see attached",
        "attachments": [{"filename": "notes.txt", "content_type": "text/plain", "text": "line one"}],
    });
    let r = env
        .http
        .post(format!("{}/sandbox/messages", env.sandbox.url()))
        .json(&body)
        .send()
        .await
        .unwrap();
    let m = common::Resp::read(r).await.expect(200).clone();
    let a = &m["attachments"][0];
    assert_eq!(a["filename"], "notes.txt");
    let served = env.http.get(a["url"].as_str().unwrap()).send().await.unwrap();
    assert_eq!(served.text().await.unwrap(), "line one");
    let bad = json!({"channel": "general", "author": "alice", "attachments": [{"filename": "x", "base64": "!!"}]});
    let r = env
        .http
        .post(format!("{}/sandbox/messages", env.sandbox.url()))
        .json(&bad)
        .send()
        .await
        .unwrap();
    common::Resp::read(r).await.expect_error(400, 50035);
}
