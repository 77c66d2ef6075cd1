//! The sandbox's REST answers checked against Discord's published OpenAPI spec (vendored in
//! `tests/fixtures`): every field a response schema requires is present, with the documented
//! type, recursively through `$ref`, `oneOf`, arrays and nullable fields.

mod common;

use common::{id, Env, ADA};
use reqwest::multipart::{Form, Part};
use reqwest::Method;
use serde_json::{json, Value};

/// The spec and a checker of values against its schemas.
struct Spec(Value);

impl Spec {
    fn load() -> Self {
        let text = include_str!("fixtures/discord-openapi.json");
        Self(serde_json::from_str(text).unwrap())
    }

    fn resolve<'a>(&'a self, mut s: &'a Value) -> &'a Value {
        while let Some(r) = s.get("$ref").and_then(Value::as_str) {
            let name = r.rsplit('/').next().unwrap();
            s = &self.0["components"]["schemas"][name];
        }
        s
    }

    /// The 200 (or 201) JSON schema of `method path`.
    fn response(&self, path: &str, method: &str) -> &Value {
        let r = &self.0["paths"][path][method]["responses"];
        let ok = if r.get("200").is_some() { &r["200"] } else { &r["201"] };
        assert!(ok.is_object(), "no success response for {method} {path}");
        &ok["content"]["application/json"]["schema"]
    }

    /// Appends to `errs` every way `v` breaks `schema`: a missing required field or a wrong type.
    // Why this is long: one match over the JSON Schema keywords the spec uses, each a few lines.
    fn check(&self, v: &Value, schema: &Value, at: &str, errs: &mut Vec<String>) {
        let s = self.resolve(schema);
        if let Some(options) = s.get("oneOf").or_else(|| s.get("anyOf")).and_then(Value::as_array) {
            let mut best: Option<Vec<String>> = None;
            for o in options {
                let mut e = Vec::new();
                self.check(v, o, at, &mut e);
                if e.is_empty() {
                    return;
                }
                if best.as_ref().is_none_or(|b| e.len() < b.len()) {
                    best = Some(e);
                }
            }
            errs.extend(best.unwrap_or_default());
            return;
        }
        if let Some(all) = s.get("allOf").and_then(Value::as_array) {
            for o in all {
                self.check(v, o, at, errs);
            }
            return;
        }
        let types: Vec<&str> = match s.get("type") {
            Some(Value::String(t)) => vec![t.as_str()],
            Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        let allows = |t: &str| types.contains(&t);
        match v {
            Value::Null if !types.is_empty() && !allows("null") => errs.push(format!("{at}: null")),
            Value::Null => {}
            Value::Object(o) if allows("object") || s.get("properties").is_some() => {
                for r in s["required"].as_array().into_iter().flatten().filter_map(Value::as_str) {
                    if !o.contains_key(r) {
                        errs.push(format!("{at}.{r}: missing"));
                    }
                }
                for (k, ps) in s["properties"].as_object().into_iter().flatten() {
                    if let Some(x) = o.get(k) {
                        self.check(x, ps, &format!("{at}.{k}"), errs);
                    }
                }
            }
            Value::Array(a) if allows("array") => {
                for (i, x) in a.iter().enumerate() {
                    self.check(x, &s["items"], &format!("{at}[{i}]"), errs);
                }
            }
            Value::String(_) if allows("string") || types.is_empty() => {}
            Value::Number(n) if allows("number") || (allows("integer") && (n.is_i64() || n.is_u64())) => {}
            Value::Bool(_) if allows("boolean") => {}
            _ if types.is_empty() => {}
            other => errs.push(format!("{at}: {other} is not {types:?}")),
        }
    }

    #[track_caller]
    fn assert_matches(&self, path: &str, method: &str, v: &Value) {
        let mut errs = Vec::new();
        self.check(v, self.response(path, method), path, &mut errs);
        assert!(errs.is_empty(), "{method} {path} breaks the spec: {errs:?}\n{v}");
    }
}

#[test]
fn the_checker_catches_missing_and_mistyped_fields() {
    let spec = Spec::load();
    let user = json!({"$ref": "#/components/schemas/UserResponse"});
    let mut errs = Vec::new();
    spec.check(&json!({"id": "1", "username": 5}), &user, "u", &mut errs);
    assert!(errs.iter().any(|e| e == "u.primary_guild: missing"), "{errs:?}");
    assert!(errs.iter().any(|e| e.starts_with("u.username:")), "{errs:?}");
}

#[tokio::test]
async fn rest_answers_have_the_shapes_discord_documents() {
    let spec = Spec::load();
    let env = Env::start().await;
    let (general, g, alice) = (env.channel("general"), env.guild(), env.user("alice"));
    let env = &env;
    let get = |path: String| async move { env.api(Method::GET, &path, Some(ADA), None).await.expect(200).clone() };
    for (path, url) in [
        ("/users/@me", "/users/@me".to_string()),
        ("/oauth2/applications/@me", "/oauth2/applications/@me".into()),
        ("/applications/@me", "/applications/@me".into()),
        ("/users/@me/guilds", "/users/@me/guilds".into()),
        ("/guilds/{guild_id}", format!("/guilds/{g}")),
        ("/guilds/{guild_id}/roles", format!("/guilds/{g}/roles")),
        ("/guilds/{guild_id}/channels", format!("/guilds/{g}/channels")),
        (
            "/guilds/{guild_id}/members/{user_id}",
            format!("/guilds/{g}/members/{alice}"),
        ),
    ] {
        spec.assert_matches(path, "get", &get(url).await);
    }

    let png = [
        &b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR"[..],
        &[0, 0, 0, 2, 0, 0, 0, 2],
        &[0; 8],
    ]
    .concat();
    let form = Form::new()
        .text(
            "payload_json",
            json!({"content": "x", "embeds": [{"title": "t"}]}).to_string(),
        )
        .part("files[0]", Part::bytes(png).file_name("a.png"));
    let r = env
        .http
        .post(env.url(&format!("/channels/{general}/messages")))
        .header("Authorization", format!("Bot {ADA}"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    let created = common::Resp::read(r).await.expect(200).clone();
    spec.assert_matches("/channels/{channel_id}/messages", "post", &created);
    let m = id(&created["id"]);
    let react = format!("/channels/{general}/messages/{m}/reactions/%F0%9F%91%8D");
    env.api(Method::PUT, &format!("{react}/@me"), Some(ADA), None)
        .await
        .expect(204);
    env.api(
        Method::PUT,
        &format!("/channels/{general}/messages/pins/{m}"),
        Some(ADA),
        None,
    )
    .await
    .expect(204);
    let edited = env
        .api(
            Method::PATCH,
            &format!("/channels/{general}/messages/{m}"),
            Some(ADA),
            Some(json!({"content": "y"})),
        )
        .await;
    spec.assert_matches(
        "/channels/{channel_id}/messages/{message_id}",
        "patch",
        edited.expect(200),
    );
    let thread = env
        .api(
            Method::POST,
            &format!("/channels/{general}/messages/{m}/threads"),
            Some(ADA),
            Some(json!({"name": "t"})),
        )
        .await;
    spec.assert_matches(
        "/channels/{channel_id}/messages/{message_id}/threads",
        "post",
        thread.expect(201),
    );
    for (path, url) in [
        (
            "/channels/{channel_id}/messages/{message_id}",
            format!("/channels/{general}/messages/{m}"),
        ),
        (
            "/channels/{channel_id}/messages",
            format!("/channels/{general}/messages"),
        ),
        (
            "/channels/{channel_id}/messages/pins",
            format!("/channels/{general}/messages/pins"),
        ),
        ("/channels/{channel_id}/pins", format!("/channels/{general}/pins")),
        (
            "/channels/{channel_id}/messages/{message_id}/reactions/{emoji_name}",
            react.clone(),
        ),
        (
            "/guilds/{guild_id}/threads/active",
            format!("/guilds/{g}/threads/active"),
        ),
        ("/guilds/{guild_id}/members", format!("/guilds/{g}/members?limit=5")),
    ] {
        spec.assert_matches(path, "get", &get(url).await);
    }

    let hook = env
        .api(
            Method::POST,
            &format!("/channels/{general}/webhooks"),
            Some(ADA),
            Some(json!({"name": "Persona"})),
        )
        .await
        .expect(200)
        .clone();
    spec.assert_matches("/channels/{channel_id}/webhooks", "post", &hook);
    let (hid, token) = (id(&hook["id"]), hook["token"].as_str().unwrap());
    spec.assert_matches("/webhooks/{webhook_id}", "get", &get(format!("/webhooks/{hid}")).await);
    spec.assert_matches(
        "/channels/{channel_id}/webhooks",
        "get",
        &get(format!("/channels/{general}/webhooks")).await,
    );
    spec.assert_matches(
        "/guilds/{guild_id}/webhooks",
        "get",
        &get(format!("/guilds/{g}/webhooks")).await,
    );
    let by_token = env
        .api(Method::GET, &format!("/webhooks/{hid}/{token}"), None, None)
        .await;
    spec.assert_matches("/webhooks/{webhook_id}/{webhook_token}", "get", by_token.expect(200));
    let sent = env
        .api(
            Method::POST,
            &format!("/webhooks/{hid}/{token}?wait=true"),
            None,
            Some(json!({"content": "in character", "username": "Persona"})),
        )
        .await;
    spec.assert_matches("/webhooks/{webhook_id}/{webhook_token}", "post", sent.expect(200));
}
