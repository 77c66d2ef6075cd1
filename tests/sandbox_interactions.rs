//! Application commands and interactions in the sandbox, against Discord's documented
//! behaviour: command registration (global, guild, bulk overwrite) over REST; a human's use of
//! a command through the control API reaching the bot as INTERACTION_CREATE; the callback
//! (message, deferred, ephemeral), followups and `@original` edits and deletes with their
//! MESSAGE_CREATE/UPDATE/DELETE dispatches; component clicks answered with UPDATE_MESSAGE; and a
//! bare serenity bot answering a slash command end to end. Every dispatched payload is
//! deserialised with serenity's models, which drop incomplete ones.

#[path = "support/gateway_client.rs"]
mod gateway_client;

use std::sync::Arc;

use gateway_client::Gateway;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use troupe::sandbox::spec::WorldSpec;
use troupe::sandbox::Sandbox;

const GUILD_MESSAGES: u64 = 1 << 9;
const DIRECT_MESSAGES: u64 = 1 << 12;
const MESSAGE_CONTENT: u64 = 1 << 15;
const ADA: &str = "sandbox.ada";

struct Env {
    sb: Sandbox,
    http: reqwest::Client,
    ada: String,
    guild: String,
}

impl Env {
    async fn start() -> Self {
        let bots = [("Ada".to_string(), ADA.to_string())];
        let sb = Sandbox::start(&WorldSpec::default(), &bots, "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let (ada, guild) = {
            let w = sb.shared().world.lock().unwrap();
            (
                w.user_by_name("Ada").unwrap().id.to_string(),
                w.guilds()[0].id.to_string(),
            )
        };
        Self {
            sb,
            http: reqwest::Client::new(),
            ada,
            guild,
        }
    }

    /// A REST call (as Ada unless `token` is `None`): status and JSON body (Null if none).
    async fn api(&self, method: Method, path: &str, token: Option<&str>, body: Option<Value>) -> (StatusCode, Value) {
        let mut req = self.http.request(method, format!("{}/api/v10{path}", self.sb.url()));
        if let Some(t) = token {
            req = req.header("authorization", format!("Bot {t}"));
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let bytes = resp.bytes().await.unwrap();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap()
        };
        (status, body)
    }

    async fn control(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut req = self.http.request(method, format!("{}/sandbox{path}", self.sb.url()));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        (resp.status(), resp.json().await.unwrap_or(Value::Null))
    }

    async fn session(&self) -> Gateway {
        let mut g = Gateway::hello(&format!("ws://{}/gateway?v=10&encoding=json", self.sb.addr()), false).await;
        g.identify(ADA, GUILD_MESSAGES | DIRECT_MESSAGES | MESSAGE_CONTENT)
            .await;
        g.dispatch("READY").await;
        g
    }

    async fn register_roll(&self) -> Value {
        let roll = json!({"name": "roll", "description": "Roll a die", "options": [
            {"type": 4, "name": "sides", "description": "Sides", "required": true, "min_value": 2},
            {"type": 6, "name": "for", "description": "Who it is for"},
        ]});
        let (status, cmd) = self
            .api(
                Method::POST,
                &format!("/applications/{}/commands", self.ada),
                Some(ADA),
                Some(roll),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{cmd}");
        cmd
    }

    /// Alice uses `/roll sides:20 for:bob` in #general; returns the INTERACTION_CREATE `d`.
    async fn invoke_roll(&self, g: &mut Gateway) -> Value {
        let (status, sent) = self
            .control(
                Method::POST,
                "/interactions",
                Some(json!({"author": "alice", "channel": "general", "command": "roll",
                    "options": [{"name": "sides", "value": 20}, {"name": "for", "value": "bob"}]})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{sent}");
        let d = g.dispatch("INTERACTION_CREATE").await;
        assert_eq!(d["id"], sent["id"]);
        d
    }

    async fn callback(&self, d: &Value, body: Value) -> (StatusCode, Value) {
        let path = format!(
            "/interactions/{}/{}/callback",
            d["id"].as_str().unwrap(),
            d["token"].as_str().unwrap()
        );
        self.api(Method::POST, &path, None, Some(body)).await
    }

    fn webhook(&self, d: &Value, rest: &str) -> String {
        format!("/webhooks/{}/{}{rest}", self.ada, d["token"].as_str().unwrap())
    }
}

fn serenity_interaction(d: &Value) -> serenity::model::application::Interaction {
    serde_json::from_value(d.clone()).unwrap_or_else(|e| panic!("{e}: {d}"))
}

fn serenity_message(d: &Value) -> serenity::model::channel::Message {
    serde_json::from_value(d.clone()).unwrap_or_else(|e| panic!("{e}: {d}"))
}

#[tokio::test]
async fn commands_register_list_edit_delete_and_bulk_overwrite() {
    let env = Env::start().await;
    let global = format!("/applications/{}/commands", env.ada);
    let cmd = env.register_roll().await;
    let parsed: serenity::model::application::Command = serde_json::from_value(cmd.clone()).unwrap();
    assert_eq!(parsed.options.len(), 2);
    let id = cmd["id"].as_str().unwrap();
    let (status, again) = env
        .api(
            Method::POST,
            &global,
            Some(ADA),
            Some(json!({"name": "roll", "description": "Roll again"})),
        )
        .await;
    assert_eq!(
        (status, &again["id"]),
        (StatusCode::OK, &cmd["id"]),
        "same name: replaced"
    );
    let (_, listed) = env.api(Method::GET, &global, Some(ADA), None).await;
    assert_eq!(listed.as_array().unwrap().len(), 1);
    let one = format!("{global}/{id}");
    let (status, edited) = env
        .api(Method::PATCH, &one, Some(ADA), Some(json!({"description": "Edited"})))
        .await;
    assert_eq!(
        (status, edited["description"].as_str()),
        (StatusCode::OK, Some("Edited"))
    );
    assert_ne!(edited["version"], cmd["version"]);
    assert_eq!(
        env.api(Method::DELETE, &one, Some(ADA), None).await.0,
        StatusCode::NO_CONTENT
    );
    let (status, gone) = env.api(Method::GET, &one, Some(ADA), None).await;
    assert_eq!((status, gone["code"].as_u64()), (StatusCode::NOT_FOUND, Some(10063)));

    let guild = format!("/applications/{}/guilds/{}/commands", env.ada, env.guild);
    let (status, put) = env
        .api(
            Method::PUT,
            &guild,
            Some(ADA),
            Some(json!([{"name": "ping", "description": "p"}, {"type": 3, "name": "Quote this"}])),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{put}");
    for c in put.as_array().unwrap() {
        let c: serenity::model::application::Command = serde_json::from_value(c.clone()).unwrap();
        assert_eq!(c.guild_id.map(|g| g.get().to_string()), Some(env.guild.clone()));
    }
    let (status, err) = env
        .api(
            Method::PUT,
            &guild,
            Some(ADA),
            Some(json!([{"name": "Bad Name", "description": "x"}])),
        )
        .await;
    assert_eq!((status, err["code"].as_u64()), (StatusCode::BAD_REQUEST, Some(50035)));
    assert!(err.pointer("/errors/0/name/_errors/0/code").is_some(), "{err}");
    assert_eq!(
        env.api(Method::GET, &guild, Some(ADA), None)
            .await
            .1
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let other_app = format!("/applications/{}/commands", env.guild);
    assert_eq!(
        env.api(Method::GET, &other_app, Some(ADA), None).await.0,
        StatusCode::FORBIDDEN
    );
    let no_guild = format!("/applications/{}/guilds/1/commands", env.ada);
    assert_eq!(env.api(Method::GET, &no_guild, Some(ADA), None).await.1["code"], 10004);
    assert_eq!(
        env.api(Method::GET, &global, None, None).await.0,
        StatusCode::UNAUTHORIZED
    );
    env.sb.stop().await;
}

#[tokio::test]
async fn a_slash_command_reaches_the_bot_and_its_responses_are_messages() {
    let env = Env::start().await;
    env.register_roll().await;
    let mut g = env.session().await;
    let d = env.invoke_roll(&mut g).await;
    let serenity::model::application::Interaction::Command(cmd) = serenity_interaction(&d) else {
        panic!("not a command interaction: {d}")
    };
    assert_eq!(cmd.data.name, "roll");
    assert_eq!(cmd.user.name, "alice", "the member's user");
    assert_eq!(d["data"]["options"][0]["value"], 20);
    let bob = d["data"]["options"][1]["value"].as_str().unwrap();
    assert_eq!(d["data"]["resolved"]["users"][bob]["username"], "bob");
    assert_eq!(d["context"], 0);

    assert_eq!(
        env.callback(&d, json!({"type": 4, "data": {"content": "You rolled 7"}}))
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    let m = g.dispatch("MESSAGE_CREATE").await;
    assert_eq!(
        (m["content"].as_str(), m["type"].as_u64()),
        (Some("You rolled 7"), Some(20))
    );
    assert_eq!(m["author"]["id"], env.ada.as_str());
    assert_eq!(m["interaction_metadata"]["user"]["username"], "alice");
    assert!(serenity_message(&m).interaction_metadata.is_some());
    let (status, twice) = env.callback(&d, json!({"type": 4, "data": {"content": "again"}})).await;
    assert_eq!((status, twice["code"].as_u64()), (StatusCode::BAD_REQUEST, Some(40060)));

    // An ephemeral followup: never dispatched, kept out of history, listed for alice only.
    let (status, hidden) = env
        .api(
            Method::POST,
            &env.webhook(&d, ""),
            None,
            Some(json!({"content": "psst", "flags": 64})),
        )
        .await;
    assert_eq!((status, hidden["flags"].as_u64()), (StatusCode::OK, Some(64)));
    let (_, shown) = env
        .api(
            Method::POST,
            &env.webhook(&d, ""),
            None,
            Some(json!({"content": "for all"})),
        )
        .await;
    let next = g.dispatch("MESSAGE_CREATE").await;
    assert_eq!(next["id"], shown["id"], "the ephemeral followup was not dispatched");
    let (_, history) = env.control(Method::GET, "/channels/general/messages", None).await;
    let contents: Vec<&str> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].as_str().unwrap())
        .collect();
    assert_eq!(contents, ["You rolled 7", "for all"]);
    let (_, ephemeral) = env.control(Method::GET, "/channels/general/ephemeral", None).await;
    assert_eq!(ephemeral[0]["content"], "psst");
    assert_eq!(ephemeral[0]["ephemeral_to"], d["member"]["user"]["id"]);

    let original = env.webhook(&d, "/messages/@original");
    let (status, edited) = env
        .api(Method::PATCH, &original, None, Some(json!({"content": "You rolled 8"})))
        .await;
    assert_eq!(status, StatusCode::OK, "{edited}");
    let update = g.dispatch("MESSAGE_UPDATE").await;
    assert_eq!(update["content"], "You rolled 8");
    assert!(update["edited_timestamp"].is_string(), "{update}");
    let _: serenity::model::event::MessageUpdateEvent = serde_json::from_value(update.clone()).unwrap();
    assert_eq!(
        env.api(Method::GET, &original, None, None).await.1["content"],
        "You rolled 8"
    );
    assert_eq!(
        env.api(Method::DELETE, &original, None, None).await.0,
        StatusCode::NO_CONTENT
    );
    let deleted = g.dispatch("MESSAGE_DELETE").await;
    assert_eq!(deleted["id"], m["id"]);
    let _: serenity::model::event::MessageDeleteEvent = serde_json::from_value(deleted).unwrap();
    assert_eq!(env.api(Method::GET, &original, None, None).await.1["code"], 10008);
    env.sb.stop().await;
}

#[tokio::test]
async fn a_deferred_ephemeral_response_is_edited_in_place_and_seen_only_by_the_user() {
    let env = Env::start().await;
    env.register_roll().await;
    let mut g = env.session().await;
    let d = env.invoke_roll(&mut g).await;
    let path = format!(
        "/interactions/{}/{}/callback?with_response=true",
        d["id"].as_str().unwrap(),
        d["token"].as_str().unwrap()
    );
    let (status, r) = env
        .api(
            Method::POST,
            &path,
            None,
            Some(json!({"type": 5, "data": {"flags": 64}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{r}");
    assert_eq!(r["interaction"]["response_message_loading"], true);
    assert_eq!(r["interaction"]["response_message_ephemeral"], true);
    assert_eq!(r["resource"]["message"]["flags"], 64 | 128);
    let original = env.webhook(&d, "/messages/@original");
    let (_, edited) = env
        .api(
            Method::PATCH,
            &original,
            None,
            Some(json!({"content": "Thought about it: 4"})),
        )
        .await;
    assert_eq!(
        (edited["content"].as_str(), edited["flags"].as_u64()),
        (Some("Thought about it: 4"), Some(64))
    );
    let (_, shown) = env
        .control(
            Method::GET,
            &format!("/interactions/{}", d["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(
        (shown["callback_type"].as_u64(), shown["original"]["content"].as_str()),
        (Some(5), Some("Thought about it: 4"))
    );
    assert_eq!(shown["original"]["ephemeral_to"], d["member"]["user"]["id"]);
    // Nothing reached the channel or the bot: the next dispatch is a later human message.
    env.control(
        Method::POST,
        "/messages",
        Some(json!({"channel": "general", "author": "bob", "content": "barrier"})),
    )
    .await;
    assert_eq!(g.dispatch("MESSAGE_CREATE").await["content"], "barrier");
    let (status, refused) = env.callback(&d, json!({"type": 4, "data": {"content": "late"}})).await;
    assert_eq!(
        (status, refused["code"].as_u64()),
        (StatusCode::BAD_REQUEST, Some(40060))
    );
    let bad = json!({"id": d["id"], "token": "not-the-token"});
    assert_eq!(
        env.callback(&bad, json!({"type": 4, "data": {"content": "x"}})).await.1["code"],
        10062
    );
    env.sb.stop().await;
}

#[tokio::test]
async fn commands_in_a_dm_carry_the_user_and_components_update_their_message() {
    let env = Env::start().await;
    env.register_roll().await;
    let mut g = env.session().await;
    let (status, _) = env
        .control(
            Method::POST,
            "/interactions",
            Some(
                json!({"author": "alice", "dm": "Ada", "command": "roll", "options": [{"name": "sides", "value": 6}]}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let d = g.dispatch("INTERACTION_CREATE").await;
    assert_eq!(
        (d["user"]["username"].as_str(), d["context"].as_u64()),
        (Some("alice"), Some(1))
    );
    assert!(d.get("member").is_none() && d.get("guild_id").is_none(), "{d}");
    serenity_interaction(&d);
    let button = json!([{"type": 1, "components": [{"type": 2, "style": 1, "label": "Again", "custom_id": "again"}]}]);
    env.callback(&d, json!({"type": 4, "data": {"content": "3", "components": button}}))
        .await;
    let m = g.dispatch("MESSAGE_CREATE").await;
    assert_eq!(m["components"][0]["components"][0]["custom_id"], "again");

    let click = json!({"author": "alice", "message": m["id"], "custom_id": "again"});
    let (status, _) = env.control(Method::POST, "/interactions", Some(click.clone())).await;
    assert_eq!(status, StatusCode::OK);
    let c = g.dispatch("INTERACTION_CREATE").await;
    assert_eq!(
        (c["type"].as_u64(), c["data"]["custom_id"].as_str()),
        (Some(3), Some("again"))
    );
    let serenity::model::application::Interaction::Component(parsed) = serenity_interaction(&c) else {
        panic!("not a component interaction: {c}")
    };
    assert_eq!(parsed.message.id.get().to_string(), m["id"].as_str().unwrap());
    assert_eq!(
        env.callback(&c, json!({"type": 7, "data": {"content": "5"}})).await.0,
        StatusCode::NO_CONTENT
    );
    let update = g.dispatch("MESSAGE_UPDATE").await;
    assert_eq!(
        (update["id"].as_str(), update["content"].as_str()),
        (m["id"].as_str(), Some("5"))
    );
    let _: serenity::model::event::MessageUpdateEvent = serde_json::from_value(update).unwrap();

    // UPDATE_MESSAGE is for components only.
    env.control(
        Method::POST,
        "/interactions",
        Some(json!({"author": "alice", "dm": "Ada", "command": "roll", "options": [{"name": "sides", "value": 6}]})),
    )
    .await;
    let d = g.dispatch("INTERACTION_CREATE").await;
    let (status, err) = env.callback(&d, json!({"type": 7, "data": {"content": "x"}})).await;
    assert_eq!((status, err["code"].as_u64()), (StatusCode::BAD_REQUEST, Some(50035)));
    let (status, err) = env
        .control(
            Method::POST,
            "/interactions",
            Some(json!({"author": "alice", "channel": "general", "command": "nope"})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{err}");
    env.sb.stop().await;
}

/// A bare serenity bot (no troupe code) registers a command, is used through the control API,
/// and answers with serenity's own interaction response builders.
struct Roller {
    followed_up: Arc<tokio::sync::Notify>,
}

#[serenity::async_trait]
impl serenity::all::EventHandler for Roller {
    async fn interaction_create(&self, ctx: serenity::all::Context, interaction: serenity::all::Interaction) {
        use serenity::all::{
            CreateInteractionResponse, CreateInteractionResponseFollowup, CreateInteractionResponseMessage,
        };
        let serenity::all::Interaction::Command(cmd) = interaction else {
            return;
        };
        let sides = cmd.data.options.first().and_then(|o| o.value.as_i64()).unwrap_or(0);
        let reply = CreateInteractionResponseMessage::new().content(format!("d{sides}: 1"));
        cmd.create_response(&ctx.http, CreateInteractionResponse::Message(reply))
            .await
            .expect("response accepted");
        cmd.create_followup(
            &ctx.http,
            CreateInteractionResponseFollowup::new()
                .content("followup")
                .ephemeral(true),
        )
        .await
        .expect("followup accepted");
        self.followed_up.notify_one();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bare_serenity_bot_answers_a_slash_command() {
    use serenity::all::{CreateCommand, CreateCommandOption, GatewayIntents, HttpBuilder};
    let env = Env::start().await;
    let ada: u64 = env.ada.parse().unwrap();
    // On Discord, READY's `application.id` sets it; here the command is registered before
    // connecting, as a bot's setup script would.
    let http = HttpBuilder::new(ADA)
        .proxy(env.sb.url())
        .ratelimiter_disabled(true)
        .application_id(serenity::all::ApplicationId::new(ada))
        .build();
    let option = CreateCommandOption::new(serenity::all::CommandOptionType::Integer, "sides", "Sides").required(true);
    serenity::all::Command::create_global_command(
        &http,
        CreateCommand::new("roll").description("Roll").add_option(option),
    )
    .await
    .expect("command registered");
    let followed_up = Arc::new(tokio::sync::Notify::new());
    let mut client = serenity::client::ClientBuilder::new_with_http(http, GatewayIntents::GUILDS)
        .event_handler(Roller {
            followed_up: followed_up.clone(),
        })
        .await
        .unwrap();
    let shards = client.shard_manager.clone();
    let task = tokio::spawn(async move { client.start().await });
    let sb = env.sb.shared().clone();
    gateway_client::wait_until("serenity to connect", || sb.gateway.connected_bots().contains(&ada)).await;
    let (status, sent) = env
        .control(
            Method::POST,
            "/interactions",
            Some(json!({"author": "alice", "channel": "general", "command": "roll", "options": [{"name": "sides", "value": 12}]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{sent}");
    tokio::time::timeout(gateway_client::FRAME_DEADLINE, followed_up.notified())
        .await
        .expect("serenity answered the interaction");
    let (_, shown) = env
        .control(
            Method::GET,
            &format!("/interactions/{}", sent["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(shown["original"]["content"], "d12: 1");
    assert_eq!(shown["followups"][0]["content"], "followup");
    assert_eq!(shown["followups"][0]["flags"], 64);
    shards.shutdown_all().await;
    let _ = task.await;
    env.sb.stop().await;
}
