//! Reactions and threads over HTTP: add/list/remove with MESSAGE_REACTION_* events (checked
//! with serenity's models), and threads started from a message or without one (THREAD_CREATE).

mod common;

use common::{id, Env, ADA, ALL_INTENTS, BEA};
use reqwest::Method;
use serde_json::{json, Value};
use serenity::model::event::{ReactionAddEvent, ReactionRemoveAllEvent, ReactionRemoveEvent, ThreadCreateEvent};

fn parse<T: serde::de::DeserializeOwned>(v: Value) -> T {
    serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("{e}: {v}"))
}

/// `👍`, percent-encoded as clients put it in the path.
const THUMBS: &str = "%F0%9F%91%8D";

#[tokio::test]
async fn reactions_add_list_remove_with_events() {
    let env = Env::start().await;
    let general = env.channel("general");
    let mut ws = env.session(BEA, ALL_INTENTS).await;
    let m = env.post(general, BEA, "react to me").await;
    let base = format!("/channels/{general}/messages/{m}/reactions");
    env.api(Method::PUT, &format!("{base}/{THUMBS}/@me"), Some(ADA), None)
        .await
        .expect(204);
    let add: ReactionAddEvent = parse(ws.dispatch("MESSAGE_REACTION_ADD").await);
    assert_eq!(add.reaction.user_id.map(|u| u.get()), Some(env.user("Ada")));
    assert_eq!(add.reaction.message_author_id.map(|u| u.get()), Some(env.user("Bea")));
    assert!(add.reaction.emoji.unicode_eq("👍"));
    let who = env.api(Method::GET, &format!("{base}/{THUMBS}"), Some(BEA), None).await;
    assert_eq!(id(&who.expect(200)[0]["id"]), env.user("Ada"));
    let msg = env
        .api(
            Method::GET,
            &format!("/channels/{general}/messages/{m}"),
            Some(ADA),
            None,
        )
        .await;
    let reactions = &msg.expect(200)["reactions"];
    assert_eq!(
        (reactions[0]["count"].as_u64(), reactions[0]["me"].as_bool()),
        (Some(1), Some(true))
    );
    env.api(Method::DELETE, &format!("{base}/{THUMBS}/@me"), Some(ADA), None)
        .await
        .expect(204);
    let rm: ReactionRemoveEvent = parse(ws.dispatch("MESSAGE_REACTION_REMOVE").await);
    assert_eq!(rm.reaction.message_id.get(), m);
    env.api(Method::DELETE, &base, Some(ADA), None).await.expect(204);
    let all: ReactionRemoveAllEvent = parse(ws.dispatch("MESSAGE_REACTION_REMOVE_ALL").await);
    assert_eq!(all.message_id.get(), m);
}

#[tokio::test]
async fn reaction_errors_are_discords() {
    let env = Env::start().await;
    let general = env.channel("general");
    let m = env.post(general, BEA, "x").await;
    let base = format!("/channels/{general}/messages/{m}/reactions");
    env.api(Method::PUT, &format!("{base}/notanemoji/@me"), Some(ADA), None)
        .await
        .expect_error(400, 10014);
    env.api(Method::PUT, &format!("{base}/blob:123/@me"), Some(ADA), None)
        .await
        .expect_error(400, 10014);
    env.api(
        Method::PUT,
        &format!("/channels/{general}/messages/42/reactions/{THUMBS}/@me"),
        Some(ADA),
        None,
    )
    .await
    .expect_error(404, 10008);
    env.api(Method::PUT, &format!("{base}/{THUMBS}/@me"), None, None)
        .await
        .expect_error(401, 0);
}

#[tokio::test]
async fn thread_from_a_message_takes_its_id_and_dispatches_thread_create() {
    let env = Env::start().await;
    let general = env.channel("general");
    let mut ws = env.session(BEA, ALL_INTENTS).await;
    let m = env.post(general, ADA, "a topic").await;
    let path = format!("/channels/{general}/messages/{m}/threads");
    let r = env
        .api(Method::POST, &path, Some(ADA), Some(json!({"name": "talk"})))
        .await;
    let thread = r.expect(201);
    assert_eq!(id(&thread["id"]), m);
    assert_eq!(thread["type"], 11);
    let created: ThreadCreateEvent = parse(ws.dispatch("THREAD_CREATE").await);
    assert_eq!(created.thread.id.get(), m);
    env.api(Method::POST, &path, Some(ADA), Some(json!({"name": "again"})))
        .await
        .expect_error(400, 160004);
    let starter = env
        .api(
            Method::GET,
            &format!("/channels/{general}/messages/{m}"),
            Some(ADA),
            None,
        )
        .await;
    assert_eq!(id(&starter.expect(200)["thread"]["id"]), m);
    env.post(m, BEA, "inside the thread").await;
}

#[tokio::test]
async fn thread_without_a_message() {
    let env = Env::start().await;
    let general = env.channel("general");
    let mut ws = env.session(BEA, ALL_INTENTS).await;
    let path = format!("/channels/{general}/threads");
    let r = env
        .api(
            Method::POST,
            &path,
            Some(ADA),
            Some(json!({"name": "standalone", "type": 11})),
        )
        .await;
    let thread_id = id(&r.expect(201)["id"]);
    let created: ThreadCreateEvent = parse(ws.dispatch("THREAD_CREATE").await);
    assert_eq!(created.thread.id.get(), thread_id);
    let r = env.api(Method::POST, &path, Some(ADA), Some(json!({"type": 11}))).await;
    assert!(r.expect_error(400, 50035)["errors"]["name"].is_object());
    let r = env
        .api(Method::POST, &path, Some(ADA), Some(json!({"name": "private"})))
        .await;
    assert!(r.expect_error(400, 50035)["errors"]["type"].is_object());
}
