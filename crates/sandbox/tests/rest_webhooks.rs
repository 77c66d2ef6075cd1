//! Webhook routes over HTTP: create (Discord's name rules), list, get/modify/delete by ID and by
//! token, Discord's 401 for a wrong token, execute into a thread, and edit/delete of the
//! webhook's own messages (the streaming edit a persona bot makes).

mod common;

use common::{id, Env, ADA, ALL_INTENTS, BEA};
use reqwest::Method;
use serde_json::{json, Value};
use serenity::model::event::MessageUpdateEvent;

async fn make_hook(env: &Env, channel: u64, name: &str) -> Value {
    let r = env
        .api(
            Method::POST,
            &format!("/channels/{channel}/webhooks"),
            Some(ADA),
            Some(json!({"name": name})),
        )
        .await;
    r.expect(200).clone()
}

#[tokio::test]
async fn webhook_tokens_look_like_discords() {
    let env = Env::start().await;
    let hook = make_hook(&env, env.channel("general"), "Persona").await;
    let token = hook["token"].as_str().unwrap();
    assert_eq!(token.len(), 68);
    assert!(token
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
    assert_eq!(hook["user"]["username"], "Ada");
    assert!(hook["url"]
        .as_str()
        .unwrap()
        .ends_with(&format!("/webhooks/{}/{token}", id(&hook["id"]))));
    let _: serenity::model::webhook::Webhook = serde_json::from_value(hook.clone()).unwrap();
}

#[tokio::test]
async fn forbidden_webhook_names_are_refused() {
    let env = Env::start().await;
    let path = format!("/channels/{}/webhooks", env.channel("general"));
    for name in ["Clyde", "my discord bot"] {
        let r = env
            .api(Method::POST, &path, Some(ADA), Some(json!({"name": name})))
            .await;
        assert_eq!(
            r.expect_error(400, 50035)["errors"]["name"]["_errors"][0]["code"],
            "USERNAME_INVALID_CONTAINS"
        );
    }
    let hook = make_hook(&env, env.channel("general"), "Persona").await;
    let exec = format!("/webhooks/{}/{}", id(&hook["id"]), hook["token"].as_str().unwrap());
    let r = env
        .api(
            Method::POST,
            &exec,
            None,
            Some(json!({"content": "x", "username": "clyde"})),
        )
        .await;
    assert!(r.expect_error(400, 50035)["errors"]["username"].is_object());
}

#[tokio::test]
async fn list_get_modify_delete() {
    let env = Env::start().await;
    let general = env.channel("general");
    let hook = make_hook(&env, general, "One").await;
    make_hook(&env, general, "Two").await;
    let hid = id(&hook["id"]);
    let token = hook["token"].as_str().unwrap();
    let list = env
        .api(Method::GET, &format!("/channels/{general}/webhooks"), Some(BEA), None)
        .await;
    assert_eq!(list.expect(200).as_array().map(Vec::len), Some(2));
    let got = env.api(Method::GET, &format!("/webhooks/{hid}"), Some(BEA), None).await;
    assert_eq!(got.expect(200)["name"], "One");
    let renamed = env
        .api(
            Method::PATCH,
            &format!("/webhooks/{hid}"),
            Some(ADA),
            Some(json!({"name": "Uno"})),
        )
        .await;
    assert_eq!(renamed.expect(200)["name"], "Uno");
    let by_token = env
        .api(
            Method::PATCH,
            &format!("/webhooks/{hid}/{token}"),
            None,
            Some(json!({"name": "Eins"})),
        )
        .await;
    assert_eq!(by_token.expect(200)["name"], "Eins");
    let wrong = format!("/webhooks/{hid}/{}", "x".repeat(68));
    env.api(Method::GET, &wrong, None, None).await.expect_error(401, 50027);
    env.api(Method::POST, &wrong, None, Some(json!({"content": "x"})))
        .await
        .expect_error(401, 50027);
    env.api(Method::DELETE, &format!("/webhooks/{hid}/{token}"), None, None)
        .await
        .expect(204);
    env.api(Method::GET, &format!("/webhooks/{hid}"), Some(ADA), None)
        .await
        .expect_error(404, 10015);
}

#[tokio::test]
async fn execute_into_a_thread_then_edit_and_delete_the_message() {
    let env = Env::start().await;
    let general = env.channel("general");
    let mut ws = env.session(BEA, ALL_INTENTS).await;
    let starter = env.post(general, ADA, "topic").await;
    let thread = env
        .api(
            Method::POST,
            &format!("/channels/{general}/messages/{starter}/threads"),
            Some(ADA),
            Some(json!({"name": "t"})),
        )
        .await;
    let thread_id = id(&thread.expect(201)["id"]);
    let hook = make_hook(&env, general, "Persona").await;
    let exec = format!("/webhooks/{}/{}", id(&hook["id"]), hook["token"].as_str().unwrap());
    let r = env
        .api(
            Method::POST,
            &format!("{exec}?wait=true&thread_id={thread_id}"),
            None,
            Some(json!({"content": "The"})),
        )
        .await;
    let msg = r.expect(200).clone();
    assert_eq!(id(&msg["channel_id"]), thread_id);
    let mid = id(&msg["id"]);
    let edit = format!("{exec}/messages/{mid}?thread_id={thread_id}");
    let r = env
        .api(Method::PATCH, &edit, None, Some(json!({"content": "The whole answer"})))
        .await;
    assert_eq!(r.expect(200)["content"], "The whole answer");
    let update: MessageUpdateEvent = serde_json::from_value(ws.dispatch("MESSAGE_UPDATE").await).unwrap();
    assert_eq!(update.content.as_deref(), Some("The whole answer"));
    assert_eq!(update.webhook_id.flatten().map(|w| w.get()), Some(id(&hook["id"])));
    // Without thread_id the message is looked for in the webhook's channel: unknown there.
    env.api(Method::GET, &format!("{exec}/messages/{mid}"), None, None)
        .await
        .expect_error(404, 10008);
    // A message the webhook did not send is unknown to it.
    env.api(
        Method::PATCH,
        &format!("{exec}/messages/{starter}"),
        None,
        Some(json!({"content": "x"})),
    )
    .await
    .expect_error(404, 10008);
    env.api(
        Method::POST,
        &format!("{exec}?thread_id=42"),
        None,
        Some(json!({"content": "x"})),
    )
    .await
    .expect_error(404, 10003);
    env.api(Method::DELETE, &edit, None, None).await.expect(204);
    env.api(Method::GET, &edit, None, None).await.expect_error(404, 10008);
}
