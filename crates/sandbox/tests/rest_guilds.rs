//! The reads a library makes at login and when it looks around: the application
//! (`/oauth2/applications/@me`, which discord.py's `Client.login` calls), the current user with
//! `locale`, guilds, their channels, roles and members. Shapes checked with serenity's models.

mod common;

use common::{id, Env, ADA};
use reqwest::Method;
use serde_json::Value;

fn parse<T: serde::de::DeserializeOwned>(v: &Value) -> T {
    serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("{e}: {v}"))
}

#[tokio::test]
async fn application_and_current_user() {
    let env = Env::start().await;
    for path in ["/oauth2/applications/@me", "/applications/@me"] {
        let r = env.api(Method::GET, path, Some(ADA), None).await;
        let app = r.expect(200);
        assert_eq!(id(&app["id"]), env.user("Ada"));
        assert_eq!(app["bot"]["username"], "Ada");
        let _: serenity::model::application::CurrentApplicationInfo = parse(app);
        env.api(Method::GET, path, None, None).await.expect_error(401, 0);
    }
    let me = env.api(Method::GET, "/users/@me", Some(ADA), None).await;
    let me = me.expect(200);
    assert_eq!(me["locale"], "en-US");
    assert!(me.get("primary_guild").is_some(), "{me}");
    let guilds = env.api(Method::GET, "/users/@me/guilds", Some(ADA), None).await;
    assert_eq!(id(&guilds.expect(200)[0]["id"]), env.guild());
}

#[tokio::test]
async fn guild_channels_roles_and_members() {
    let env = Env::start().await;
    let g = env.guild();
    let r = env.api(Method::GET, &format!("/guilds/{g}"), Some(ADA), None).await;
    let guild: serenity::model::guild::PartialGuild = parse(r.expect(200));
    assert_eq!(guild.id.get(), g);
    let r = env
        .api(Method::GET, &format!("/guilds/{g}/channels"), Some(ADA), None)
        .await;
    let channels: Vec<serenity::model::channel::GuildChannel> = parse(r.expect(200));
    assert!(channels.iter().any(|c| c.id.get() == env.channel("general")));
    let r = env
        .api(Method::GET, &format!("/guilds/{g}/roles"), Some(ADA), None)
        .await;
    let roles: Vec<serenity::model::guild::Role> = parse(r.expect(200));
    assert_eq!(roles[0].id.get(), g);
    let alice = env.user("alice");
    let r = env
        .api(Method::GET, &format!("/guilds/{g}/members/{alice}"), Some(ADA), None)
        .await;
    let member: serenity::model::guild::Member = parse(r.expect(200));
    assert_eq!(member.user.id.get(), alice);
    let r = env
        .api(Method::GET, &format!("/guilds/{g}/members?limit=2"), Some(ADA), None)
        .await;
    let listed: Vec<serenity::model::guild::Member> = parse(r.expect(200));
    assert_eq!(listed.len(), 2);
    let after = listed[0].user.id.get();
    let r = env
        .api(
            Method::GET,
            &format!("/guilds/{g}/members?limit=1&after={after}"),
            Some(ADA),
            None,
        )
        .await;
    assert_eq!(id(&r.expect(200)[0]["user"]["id"]), listed[1].user.id.get());
    env.api(Method::GET, &format!("/guilds/{g}/members?limit=1001"), Some(ADA), None)
        .await
        .expect_error(400, 50035);
    env.api(Method::GET, "/guilds/42", Some(ADA), None)
        .await
        .expect_error(404, 10004);
    env.api(Method::GET, &format!("/guilds/{g}/members/42"), Some(ADA), None)
        .await
        .expect_error(404, 10007);
}

#[tokio::test]
async fn guild_webhooks_and_active_threads() {
    let env = Env::start().await;
    let (g, general) = (env.guild(), env.channel("general"));
    let hook = env
        .api(
            Method::POST,
            &format!("/channels/{general}/webhooks"),
            Some(ADA),
            Some(serde_json::json!({"name": "Persona"})),
        )
        .await;
    let hook_id = id(&hook.expect(200)["id"]);
    let r = env
        .api(Method::GET, &format!("/guilds/{g}/webhooks"), Some(ADA), None)
        .await;
    assert_eq!(id(&r.expect(200)[0]["id"]), hook_id);
    let m = env.post(general, ADA, "topic").await;
    env.api(
        Method::POST,
        &format!("/channels/{general}/messages/{m}/threads"),
        Some(ADA),
        Some(serde_json::json!({"name": "t"})),
    )
    .await
    .expect(201);
    let r = env
        .api(Method::GET, &format!("/guilds/{g}/threads/active"), Some(ADA), None)
        .await;
    let body = r.expect(200);
    assert_eq!(id(&body["threads"][0]["id"]), m);
    assert_eq!(body["has_more"], false);
    env.api(Method::GET, "/guilds/42/webhooks", Some(ADA), None)
        .await
        .expect_error(404, 10004);
}
