//! Message routes over HTTP against Discord's documented behaviour: get, edit, delete, bulk
//! delete, pins, flags and components, validation errors; each event checked by deserialising
//! it with serenity's model types, since serenity drops incomplete dispatches.

mod common;

use common::{id, Env, ADA, ALL_INTENTS, BEA};
use reqwest::Method;
use serde_json::{json, Value};
use serenity::model::event::{ChannelPinsUpdateEvent, MessageDeleteBulkEvent, MessageDeleteEvent, MessageUpdateEvent};

fn parse<T: serde::de::DeserializeOwned>(v: Value) -> T {
    serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("{e}: {v}"))
}

#[tokio::test]
async fn get_one_message_and_unknown_message() {
    let env = Env::start().await;
    let general = env.channel("general");
    let m = env.post(general, ADA, "hello").await;
    let r = env
        .api(
            Method::GET,
            &format!("/channels/{general}/messages/{m}"),
            Some(BEA),
            None,
        )
        .await;
    assert_eq!(r.expect(200)["content"], "hello");
    let _: serenity::model::channel::Message = parse(r.body.clone());
    env.api(
        Method::GET,
        &format!("/channels/{general}/messages/42"),
        Some(BEA),
        None,
    )
    .await
    .expect_error(404, 10008);
}

#[tokio::test]
async fn edit_sets_edited_timestamp_and_dispatches_message_update() {
    let env = Env::start().await;
    let general = env.channel("general");
    let mut ws = env.session(BEA, ALL_INTENTS).await;
    let m = env.post(general, ADA, "The").await;
    let path = format!("/channels/{general}/messages/{m}");
    let r = env
        .api(
            Method::PATCH,
            &path,
            Some(ADA),
            Some(json!({"content": "The streamed answer"})),
        )
        .await;
    let body = r.expect(200);
    assert_eq!(body["content"], "The streamed answer");
    assert!(body["edited_timestamp"].is_string(), "{body}");
    let d = ws.dispatch("MESSAGE_UPDATE").await;
    let update: MessageUpdateEvent = parse(d);
    assert_eq!(update.id.get(), m);
    assert_eq!(update.content.as_deref(), Some("The streamed answer"));
    assert!(update.edited_timestamp.is_some());
    // Someone else's message cannot be edited, not even by a bot with Manage Messages.
    env.api(Method::PATCH, &path, Some(BEA), Some(json!({"content": "x"})))
        .await
        .expect_error(403, 50005);
    // An edit that leaves nothing is refused as an empty message.
    env.api(Method::PATCH, &path, Some(ADA), Some(json!({"content": ""})))
        .await
        .expect_error(400, 50006);
}

#[tokio::test]
async fn delete_dispatches_message_delete() {
    let env = Env::start().await;
    let general = env.channel("general");
    let mut ws = env.session(BEA, ALL_INTENTS).await;
    let m = env.post(general, ADA, "oops").await;
    let path = format!("/channels/{general}/messages/{m}");
    assert_eq!(
        env.api(Method::DELETE, &path, Some(ADA), None).await.expect(204),
        &Value::Null
    );
    let gone: MessageDeleteEvent = parse(ws.dispatch("MESSAGE_DELETE").await);
    assert_eq!((gone.message_id.get(), gone.channel_id.get()), (m, general));
    env.api(Method::DELETE, &path, Some(ADA), None)
        .await
        .expect_error(404, 10008);
    env.api(Method::GET, &path, Some(ADA), None)
        .await
        .expect_error(404, 10008);
}

#[tokio::test]
async fn bulk_delete_needs_two_to_a_hundred_and_dispatches_once() {
    let env = Env::start().await;
    let general = env.channel("general");
    let mut ws = env.session(BEA, ALL_INTENTS).await;
    let a = env.post(general, ADA, "a").await;
    let b = env.post(general, ADA, "b").await;
    let path = format!("/channels/{general}/messages/bulk-delete");
    let one = json!({"messages": [a.to_string()]});
    let r = env.api(Method::POST, &path, Some(ADA), Some(one)).await;
    assert!(r.expect_error(400, 50035)["errors"]["messages"].is_object());
    let both = json!({"messages": [a.to_string(), b.to_string()]});
    env.api(Method::POST, &path, Some(ADA), Some(both)).await.expect(204);
    let bulk: MessageDeleteBulkEvent = parse(ws.dispatch("MESSAGE_DELETE_BULK").await);
    let mut ids: Vec<u64> = bulk.ids.iter().map(|i| i.get()).collect();
    ids.sort_unstable();
    assert_eq!(ids, vec![a, b]);
    let r = env
        .api(Method::GET, &format!("/channels/{general}/messages"), Some(ADA), None)
        .await;
    assert_eq!(r.expect(200).as_array().map(Vec::len), Some(0));
}

#[tokio::test]
async fn pins_put_list_and_remove_with_channel_pins_update() {
    let env = Env::start().await;
    let general = env.channel("general");
    let mut ws = env.session(BEA, ALL_INTENTS).await;
    let m = env.post(general, ADA, "remember this").await;
    let pin = format!("/channels/{general}/messages/pins/{m}");
    env.api(Method::PUT, &pin, Some(ADA), None).await.expect(204);
    let update: ChannelPinsUpdateEvent = parse(ws.dispatch("CHANNEL_PINS_UPDATE").await);
    assert!(update.last_pin_timestamp.is_some());
    // Discord posts a "pinned a message" system message (type 6) referencing the pin.
    let notice: serenity::model::channel::Message = parse(ws.dispatch("MESSAGE_CREATE").await);
    assert_eq!(notice.kind, serenity::model::channel::MessageType::PinsAdd);
    assert_eq!(
        notice.message_reference.and_then(|r| r.message_id).map(|i| i.get()),
        Some(m)
    );
    let r = env
        .api(
            Method::GET,
            &format!("/channels/{general}/messages/pins"),
            Some(BEA),
            None,
        )
        .await;
    let body = r.expect(200);
    assert_eq!(body["has_more"], false);
    assert_eq!(id(&body["items"][0]["message"]["id"]), m);
    assert_eq!(body["items"][0]["message"]["pinned"], true);
    assert!(body["items"][0]["pinned_at"].is_string());
    let legacy = env
        .api(Method::GET, &format!("/channels/{general}/pins"), Some(BEA), None)
        .await;
    assert_eq!(id(&legacy.expect(200)[0]["id"]), m);
    env.api(
        Method::DELETE,
        &format!("/channels/{general}/pins/{m}"),
        Some(ADA),
        None,
    )
    .await
    .expect(204);
    let update: ChannelPinsUpdateEvent = parse(ws.dispatch("CHANNEL_PINS_UPDATE").await);
    assert!(update.last_pin_timestamp.is_none());
    env.api(
        Method::PUT,
        &format!("/channels/{general}/messages/pins/42"),
        Some(ADA),
        None,
    )
    .await
    .expect_error(404, 10008);
}

#[tokio::test]
async fn flags_and_components_are_kept_and_returned() {
    let env = Env::start().await;
    let general = env.channel("general");
    let row = json!({"type": 1, "components": [{"type": 2, "style": 1, "label": "Go", "custom_id": "go"}]});
    let body = json!({"content": "quiet", "flags": 4096 | 2, "components": [row]});
    let r = env
        .api(
            Method::POST,
            &format!("/channels/{general}/messages"),
            Some(ADA),
            Some(body),
        )
        .await;
    let m = r.expect(200);
    // SUPPRESS_NOTIFICATIONS is kept; CROSSPOSTED (2) is not a sender's to set.
    assert_eq!(m["flags"], 4096);
    assert_eq!(m["components"][0]["components"][0]["custom_id"], "go");
    let parsed: serenity::model::channel::Message = parse(m.clone());
    assert_eq!(parsed.components.len(), 1);
    let again = env
        .api(
            Method::GET,
            &format!("/channels/{general}/messages/{}", id(&m["id"])),
            Some(ADA),
            None,
        )
        .await;
    assert_eq!(again.expect(200)["flags"], 4096);
}

#[tokio::test]
async fn validation_refusals_carry_discords_error_bodies() {
    let env = Env::start().await;
    let path = format!("/channels/{}/messages", env.channel("general"));
    let send = |body: Value| env.api(Method::POST, &path, Some(ADA), Some(body));
    let big = json!({"description": "d".repeat(3000)});
    let r = send(json!({"embeds": [big.clone(), big, {"title": "t"}]})).await;
    assert_eq!(
        r.expect_error(400, 50035)["errors"]["embeds"]["_errors"][0]["code"],
        "MAX_EMBED_SIZE_EXCEEDED"
    );
    let r = send(json!({"embeds": [{"title": "t".repeat(257)}]})).await;
    assert!(r.expect_error(400, 50035)["errors"]["embeds"]["0"]["title"].is_object());
    let am = json!({"parse": ["users"], "users": ["1"]});
    let r = send(json!({"content": "x", "allowed_mentions": am})).await;
    assert_eq!(
        r.expect_error(400, 50035)["errors"]["allowed_mentions"]["_errors"][0]["code"],
        "MESSAGE_ALLOWED_MENTIONS_PARSE_EXCLUSIVE"
    );
    let r = send(json!({"content": "x", "nonce": "n".repeat(26)})).await;
    assert!(r.expect_error(400, 50035)["errors"]["nonce"].is_object());
    let r = send(json!({"content": "x", "nonce": 1.5})).await;
    assert!(r.expect_error(400, 50035)["errors"]["nonce"].is_object());
    let ok = send(json!({"embeds": [{"title": "t", "type": "video"}]})).await;
    assert_eq!(ok.expect(200)["embeds"][0]["type"], "rich");
}
