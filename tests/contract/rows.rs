//! The contract test's table: one row per REST operation and case (errors included), in the
//! order they run, each naming the spec operation it exercises, what it sends, the status (and
//! Discord error code) it expects and the IDs it saves for later rows. A table, not code, so a
//! missing endpoint is one failing row.

/// The bot the rows act as.
pub const TOKEN: &str = "sandbox.ada";
/// A snowflake nothing in the world has.
pub const UNKNOWN: &str = "100000000000000001";
/// 👍, percent-encoded as Discord's emoji path segments are.
pub const THUMBS_UP: &str = "%F0%9F%91%8D";

/// What a row sends.
#[derive(Clone)]
pub enum Body {
    None,
    /// JSON text; `{{key}}` is replaced by the saved value `key`.
    Json(&'static str),
    /// `multipart/form-data` with `payload_json` and one file `files[0]`.
    Multipart {
        payload: &'static str,
        filename: &'static str,
        content_type: &'static str,
        bytes: &'static [u8],
    },
}

/// Where a row goes.
#[derive(Clone)]
pub enum Target {
    /// A REST operation: method and the spec's path template (`/channels/{channel_id}`).
    Api { method: &'static str, path: &'static str },
    /// A tester's action on the control API (`/sandbox/...`), e.g. a human using a slash
    /// command; not checked against the spec, only needed to succeed.
    Control { path: &'static str },
}

/// One checked call.
#[derive(Clone)]
pub struct Row {
    pub name: &'static str,
    pub target: Target,
    /// Path parameter → saved value to fill it with (default: the saved value of the same name).
    pub params: Vec<(&'static str, &'static str)>,
    pub query: &'static str,
    pub body: Body,
    /// `Authorization: Bot ...` sent, if any.
    pub token: Option<&'static str>,
    pub status: u16,
    /// Discord's JSON error code, for error rows.
    pub code: Option<i64>,
    /// Saved value name → JSON pointer in the answer.
    pub save: Vec<(&'static str, &'static str)>,
}

pub fn op(name: &'static str, method: &'static str, path: &'static str, status: u16) -> Row {
    Row {
        name,
        target: Target::Api { method, path },
        params: Vec::new(),
        query: "",
        body: Body::None,
        token: Some(TOKEN),
        status,
        code: None,
        save: Vec::new(),
    }
}

pub fn control(name: &'static str, path: &'static str, body: &'static str) -> Row {
    Row {
        target: Target::Control { path },
        body: Body::Json(body),
        ..op(name, "POST", "", 200)
    }
}

impl Row {
    pub fn json(mut self, body: &'static str) -> Self {
        self.body = Body::Json(body);
        self
    }
    pub fn with(mut self, param: &'static str, saved: &'static str) -> Self {
        self.params.push((param, saved));
        self
    }
    pub fn query(mut self, q: &'static str) -> Self {
        self.query = q;
        self
    }
    pub fn anonymous(mut self) -> Self {
        self.token = None;
        self
    }
    pub fn token(mut self, token: &'static str) -> Self {
        self.token = Some(token);
        self
    }
    pub fn code(mut self, code: i64) -> Self {
        self.code = Some(code);
        self
    }
    pub fn save(mut self, key: &'static str, pointer: &'static str) -> Self {
        self.save.push((key, pointer));
        self
    }
    pub fn file(mut self, payload: &'static str) -> Self {
        self.body = Body::Multipart {
            payload,
            filename: "pixel.png",
            content_type: "image/png",
            bytes: PIXEL_PNG,
        };
        self
    }
}

/// A 1×1 PNG, so image attachments carry width and height.
pub const PIXEL_PNG: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52, 0x00, 0x00, 0x00,
    0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1f, 0x15, 0xc4, 0x89, 0x00, 0x00, 0x00, 0x0d, 0x49,
    0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0xf8, 0xcf, 0xc0, 0xf0, 0x1f, 0x00, 0x05, 0x00, 0x01, 0xff, 0x89, 0x99, 0x3d,
    0x1d, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
];

/// Every row, in the order they run. Later rows use values earlier ones saved.
// A table over several functions (one per area), not logic: long by nature.
pub fn rows() -> Vec<Row> {
    let mut rows = vec![
        // Gateway discovery and the bot itself.
        op("get gateway", "GET", "/gateway", 200).anonymous(),
        op("get bot gateway", "GET", "/gateway/bot", 200),
        op("get bot gateway without a token: 401", "GET", "/gateway/bot", 401)
            .anonymous()
            .code(0),
        op("get my user", "GET", "/users/@me", 200),
        op("get my user with a bad token: 401", "GET", "/users/@me", 401)
            .token("sandbox.nobody")
            .code(0),
        op("get a user", "GET", "/users/{user_id}", 200).with("user_id", "human"),
        op("get an unknown user: 404", "GET", "/users/{user_id}", 404)
            .with("user_id", "unknown")
            .code(10013),
        op("get my oauth2 application", "GET", "/oauth2/applications/@me", 200).save("application_id", "/id"),
        op("get my application", "GET", "/applications/@me", 200),
        op("list my guilds", "GET", "/users/@me/guilds", 200),
        // Guilds.
        op("get a guild", "GET", "/guilds/{guild_id}", 200),
        op("get an unknown guild: 404", "GET", "/guilds/{guild_id}", 404)
            .with("guild_id", "unknown")
            .code(10004),
        op("list guild channels", "GET", "/guilds/{guild_id}/channels", 200),
        op("list guild roles", "GET", "/guilds/{guild_id}/roles", 200),
        op("get a guild member", "GET", "/guilds/{guild_id}/members/{user_id}", 200).with("user_id", "human"),
        op(
            "get an unknown member: 404",
            "GET",
            "/guilds/{guild_id}/members/{user_id}",
            404,
        )
        .with("user_id", "unknown")
        .code(10007),
        // Channels and DMs.
        op("get a channel", "GET", "/channels/{channel_id}", 200),
        op("get an unknown channel: 404", "GET", "/channels/{channel_id}", 404)
            .with("channel_id", "unknown")
            .code(10003),
        op("open a DM", "POST", "/users/@me/channels", 200)
            .json(r#"{"recipient_id": "{{human}}"}"#)
            .save("dm_channel", "/id"),
        op("trigger typing", "POST", "/channels/{channel_id}/typing", 204),
        // Messages.
        op("create a message", "POST", "/channels/{channel_id}/messages", 200)
            .json(r#"{"content": "hello"}"#)
            .save("message_id", "/id"),
        op(
            "create a message with an embed",
            "POST",
            "/channels/{channel_id}/messages",
            200,
        )
        .json(
            r#"{"embeds": [{"title": "T", "description": "D", "color": 255,
                "fields": [{"name": "f", "value": "v", "inline": true}], "footer": {"text": "foot"}}]}"#,
        ),
        op("create a reply", "POST", "/channels/{channel_id}/messages", 200)
            .json(r#"{"content": "re", "message_reference": {"message_id": "{{message_id}}"}}"#),
        op(
            "create a message with a file",
            "POST",
            "/channels/{channel_id}/messages",
            200,
        )
        .file(r#"{"content": "a file", "attachments": [{"id": 0, "filename": "pixel.png"}]}"#),
        op("create a DM message", "POST", "/channels/{channel_id}/messages", 200)
            .with("channel_id", "dm_channel")
            .json(r#"{"content": "psst"}"#),
        op(
            "create an empty message: 400",
            "POST",
            "/channels/{channel_id}/messages",
            400,
        )
        .json(r#"{"content": ""}"#)
        .code(50006),
        op(
            "create a message with a 257-character embed title: 400",
            "POST",
            "/channels/{channel_id}/messages",
            400,
        )
        .json(r#"{"embeds": [{"title": "{{long_title}}"}]}"#)
        .code(50035),
        op(
            "create a message with contradictory allowed_mentions: 400",
            "POST",
            "/channels/{channel_id}/messages",
            400,
        )
        .json(r#"{"content": "x", "allowed_mentions": {"parse": ["users"], "users": ["{{human}}"]}}"#)
        .code(50035),
        op(
            "create a message in an unknown channel: 404",
            "POST",
            "/channels/{channel_id}/messages",
            404,
        )
        .with("channel_id", "unknown")
        .json(r#"{"content": "x"}"#)
        .code(10003),
        op("list messages", "GET", "/channels/{channel_id}/messages", 200).query("?limit=10"),
        op(
            "get a message",
            "GET",
            "/channels/{channel_id}/messages/{message_id}",
            200,
        ),
        op(
            "get an unknown message: 404",
            "GET",
            "/channels/{channel_id}/messages/{message_id}",
            404,
        )
        .with("message_id", "unknown")
        .code(10008),
        op(
            "edit a message",
            "PATCH",
            "/channels/{channel_id}/messages/{message_id}",
            200,
        )
        .json(r#"{"content": "edited", "embeds": [{"description": "now with an embed"}]}"#),
        op(
            "edit an unknown message: 404",
            "PATCH",
            "/channels/{channel_id}/messages/{message_id}",
            404,
        )
        .with("message_id", "unknown")
        .json(r#"{"content": "x"}"#)
        .code(10008),
    ];
    rows.extend(reaction_and_pin_rows());
    rows.extend(thread_and_webhook_rows());
    rows.extend(command_and_interaction_rows());
    rows.extend(deletion_rows());
    rows
}

pub fn reaction_and_pin_rows() -> Vec<Row> {
    vec![
        op(
            "add a reaction",
            "PUT",
            "/channels/{channel_id}/messages/{message_id}/reactions/{emoji_name}/@me",
            204,
        ),
        op(
            "add a reaction with an unknown emoji: 400",
            "PUT",
            "/channels/{channel_id}/messages/{message_id}/reactions/{emoji_name}/@me",
            400,
        )
        .with("emoji_name", "bad_emoji")
        .code(10014),
        op(
            "list a reaction's users",
            "GET",
            "/channels/{channel_id}/messages/{message_id}/reactions/{emoji_name}",
            200,
        ),
        op(
            "remove my reaction",
            "DELETE",
            "/channels/{channel_id}/messages/{message_id}/reactions/{emoji_name}/@me",
            204,
        ),
        op(
            "remove a user's reaction",
            "DELETE",
            "/channels/{channel_id}/messages/{message_id}/reactions/{emoji_name}/{user_id}",
            204,
        )
        .with("user_id", "human"),
        op(
            "remove all reactions for an emoji",
            "DELETE",
            "/channels/{channel_id}/messages/{message_id}/reactions/{emoji_name}",
            204,
        ),
        op(
            "remove all reactions",
            "DELETE",
            "/channels/{channel_id}/messages/{message_id}/reactions",
            204,
        ),
        op(
            "pin a message",
            "PUT",
            "/channels/{channel_id}/messages/pins/{message_id}",
            204,
        ),
        op("list pins", "GET", "/channels/{channel_id}/messages/pins", 200),
        op(
            "list pins (deprecated route)",
            "GET",
            "/channels/{channel_id}/pins",
            200,
        ),
        op(
            "unpin a message",
            "DELETE",
            "/channels/{channel_id}/messages/pins/{message_id}",
            204,
        ),
        op(
            "pin a message (deprecated route)",
            "PUT",
            "/channels/{channel_id}/pins/{message_id}",
            204,
        ),
        op(
            "unpin a message (deprecated route)",
            "DELETE",
            "/channels/{channel_id}/pins/{message_id}",
            204,
        ),
        op(
            "pin an unknown message: 404",
            "PUT",
            "/channels/{channel_id}/messages/pins/{message_id}",
            404,
        )
        .with("message_id", "unknown")
        .code(10008),
    ]
}

pub fn thread_and_webhook_rows() -> Vec<Row> {
    vec![
        op(
            "start a thread from a message",
            "POST",
            "/channels/{channel_id}/messages/{message_id}/threads",
            201,
        )
        .json(r#"{"name": "from a message"}"#)
        .save("thread_id", "/id"),
        op(
            "start a thread without a message",
            "POST",
            "/channels/{channel_id}/threads",
            201,
        )
        .json(r#"{"name": "no message", "type": 11}"#),
        op("post in a thread", "POST", "/channels/{channel_id}/messages", 200)
            .with("channel_id", "thread_id")
            .json(r#"{"content": "in the thread"}"#),
        op("create a webhook", "POST", "/channels/{channel_id}/webhooks", 200)
            .json(r#"{"name": "hook"}"#)
            .save("webhook_id", "/id")
            .save("webhook_token", "/token"),
        op(
            "create a webhook named clyde: 400",
            "POST",
            "/channels/{channel_id}/webhooks",
            400,
        )
        .json(r#"{"name": "clyde"}"#)
        .code(50035),
        op(
            "list a channel's webhooks",
            "GET",
            "/channels/{channel_id}/webhooks",
            200,
        ),
        op("get a webhook", "GET", "/webhooks/{webhook_id}", 200),
        op(
            "get a webhook by token",
            "GET",
            "/webhooks/{webhook_id}/{webhook_token}",
            200,
        )
        .anonymous(),
        op(
            "get a webhook with a bad token: 401",
            "GET",
            "/webhooks/{webhook_id}/{webhook_token}",
            401,
        )
        .with("webhook_token", "bad_token")
        .anonymous()
        .code(50027),
        op("modify a webhook", "PATCH", "/webhooks/{webhook_id}", 200).json(r#"{"name": "hook two"}"#),
        op(
            "execute a webhook (wait)",
            "POST",
            "/webhooks/{webhook_id}/{webhook_token}",
            200,
        )
        .anonymous()
        .query("?wait=true")
        .json(r#"{"content": "from a hook", "username": "Hooky"}"#)
        .save("webhook_message_id", "/id"),
        op(
            "execute a webhook (no wait)",
            "POST",
            "/webhooks/{webhook_id}/{webhook_token}",
            204,
        )
        .anonymous()
        .json(r#"{"content": "fire and forget"}"#),
        op(
            "execute a webhook into a thread",
            "POST",
            "/webhooks/{webhook_id}/{webhook_token}",
            200,
        )
        .anonymous()
        .query("?wait=true&thread_id={{thread_id}}")
        .json(r#"{"content": "hook in thread"}"#),
        op(
            "get a webhook message",
            "GET",
            "/webhooks/{webhook_id}/{webhook_token}/messages/{message_id}",
            200,
        )
        .anonymous()
        .with("message_id", "webhook_message_id"),
        op(
            "edit a webhook message",
            "PATCH",
            "/webhooks/{webhook_id}/{webhook_token}/messages/{message_id}",
            200,
        )
        .anonymous()
        .with("message_id", "webhook_message_id")
        .json(r#"{"content": "hook edited"}"#),
        op(
            "delete a webhook message",
            "DELETE",
            "/webhooks/{webhook_id}/{webhook_token}/messages/{message_id}",
            204,
        )
        .anonymous()
        .with("message_id", "webhook_message_id"),
        op(
            "create a webhook to delete by token",
            "POST",
            "/channels/{channel_id}/webhooks",
            200,
        )
        .json(r#"{"name": "short-lived hook"}"#)
        .save("webhook_2_id", "/id")
        .save("webhook_2_token", "/token"),
        op(
            "delete a webhook by token",
            "DELETE",
            "/webhooks/{webhook_id}/{webhook_token}",
            204,
        )
        .anonymous()
        .with("webhook_id", "webhook_2_id")
        .with("webhook_token", "webhook_2_token"),
        op(
            "execute a webhook deleted by token: 404",
            "POST",
            "/webhooks/{webhook_id}/{webhook_token}",
            404,
        )
        .anonymous()
        .with("webhook_id", "webhook_2_id")
        .with("webhook_token", "webhook_2_token")
        .json(r#"{"content": "too late"}"#)
        .code(10015),
    ]
}

pub fn command_and_interaction_rows() -> Vec<Row> {
    let cmd = r#"{"name": "ping", "description": "Replies pong", "type": 1}"#;
    vec![
        op(
            "overwrite global commands",
            "PUT",
            "/applications/{application_id}/commands",
            200,
        )
        .json(
            r#"[{"name": "ping", "description": "Replies pong", "type": 1},
                {"name": "echo", "description": "Says it back", "options": [
                    {"type": 3, "name": "text", "description": "What to say", "required": true}]}]"#,
        ),
        op(
            "create a global command",
            "POST",
            "/applications/{application_id}/commands",
            201,
        )
        .json(r#"{"name": "weather", "description": "Tells the weather"}"#)
        .save("command_id", "/id"),
        op(
            "list global commands",
            "GET",
            "/applications/{application_id}/commands",
            200,
        ),
        op(
            "get a global command",
            "GET",
            "/applications/{application_id}/commands/{command_id}",
            200,
        ),
        op(
            "edit a global command",
            "PATCH",
            "/applications/{application_id}/commands/{command_id}",
            200,
        )
        .json(r#"{"description": "Tells tomorrow's weather"}"#),
        op(
            "create a command with an invalid name: 400",
            "POST",
            "/applications/{application_id}/commands",
            400,
        )
        .json(r#"{"name": "Not Valid", "description": "upper case and a space"}"#)
        .code(50035),
        // Overwriting first, with another name, so the ping created next is new (201, not 200).
        op(
            "overwrite guild commands",
            "PUT",
            "/applications/{application_id}/guilds/{guild_id}/commands",
            200,
        )
        .json(r#"[{"name": "hello", "description": "Says hello"}]"#),
        op(
            "create a guild command",
            "POST",
            "/applications/{application_id}/guilds/{guild_id}/commands",
            201,
        )
        .json(cmd)
        .save("guild_command_id", "/id"),
        op(
            "get a guild command",
            "GET",
            "/applications/{application_id}/guilds/{guild_id}/commands/{command_id}",
            200,
        )
        .with("command_id", "guild_command_id"),
        op(
            "edit a guild command",
            "PATCH",
            "/applications/{application_id}/guilds/{guild_id}/commands/{command_id}",
            200,
        )
        .with("command_id", "guild_command_id")
        .json(r#"{"description": "Replies pong, in this guild"}"#),
        op(
            "list guild commands",
            "GET",
            "/applications/{application_id}/guilds/{guild_id}/commands",
            200,
        ),
        op(
            "delete a guild command",
            "DELETE",
            "/applications/{application_id}/guilds/{guild_id}/commands/{command_id}",
            204,
        )
        .with("command_id", "guild_command_id"),
        op(
            "delete a global command",
            "DELETE",
            "/applications/{application_id}/commands/{command_id}",
            204,
        ),
        control(
            "a human uses /ping (control API)",
            "/interactions",
            r#"{"channel": "general", "author": "alice", "command": "ping"}"#,
        )
        .save("interaction_id", "/id")
        .save("interaction_token", "/token"),
        op(
            "respond to an interaction",
            "POST",
            "/interactions/{interaction_id}/{interaction_token}/callback",
            204,
        )
        .anonymous()
        .json(r#"{"type": 4, "data": {"content": "pong"}}"#),
        op(
            "respond twice: 400",
            "POST",
            "/interactions/{interaction_id}/{interaction_token}/callback",
            400,
        )
        .anonymous()
        .json(r#"{"type": 4, "data": {"content": "again"}}"#)
        .code(40060),
        op(
            "respond to an unknown interaction: 404",
            "POST",
            "/interactions/{interaction_id}/{interaction_token}/callback",
            404,
        )
        .with("interaction_id", "unknown")
        .anonymous()
        .json(r#"{"type": 4, "data": {"content": "x"}}"#)
        .code(10062),
        op(
            "get the original response",
            "GET",
            "/webhooks/{webhook_id}/{webhook_token}/messages/@original",
            200,
        )
        .with("webhook_id", "application_id")
        .with("webhook_token", "interaction_token")
        .anonymous(),
        op(
            "edit the original response",
            "PATCH",
            "/webhooks/{webhook_id}/{webhook_token}/messages/@original",
            200,
        )
        .with("webhook_id", "application_id")
        .with("webhook_token", "interaction_token")
        .anonymous()
        .json(r#"{"content": "pong, edited"}"#),
        op("send a followup", "POST", "/webhooks/{webhook_id}/{webhook_token}", 200)
            .with("webhook_id", "application_id")
            .with("webhook_token", "interaction_token")
            .anonymous()
            .json(r#"{"content": "followup", "flags": 64}"#),
        op(
            "delete the original response",
            "DELETE",
            "/webhooks/{webhook_id}/{webhook_token}/messages/@original",
            204,
        )
        .with("webhook_id", "application_id")
        .with("webhook_token", "interaction_token")
        .anonymous(),
    ]
}

pub fn deletion_rows() -> Vec<Row> {
    vec![
        op(
            "create a message to bulk delete",
            "POST",
            "/channels/{channel_id}/messages",
            200,
        )
        .json(r#"{"content": "bulk 1"}"#)
        .save("bulk_1", "/id"),
        op(
            "create another message to bulk delete",
            "POST",
            "/channels/{channel_id}/messages",
            200,
        )
        .json(r#"{"content": "bulk 2"}"#)
        .save("bulk_2", "/id"),
        op(
            "bulk delete messages",
            "POST",
            "/channels/{channel_id}/messages/bulk-delete",
            204,
        )
        .json(r#"{"messages": ["{{bulk_1}}", "{{bulk_2}}"]}"#),
        op(
            "bulk delete one message: 400",
            "POST",
            "/channels/{channel_id}/messages/bulk-delete",
            400,
        )
        // Discord documents both 50035 (the array's length) and 50016 for this; any 400.
        .json(r#"{"messages": ["{{message_id}}"]}"#),
        op(
            "delete a message",
            "DELETE",
            "/channels/{channel_id}/messages/{message_id}",
            204,
        ),
        op(
            "delete it again: 404",
            "DELETE",
            "/channels/{channel_id}/messages/{message_id}",
            404,
        )
        .code(10008),
        op("delete a webhook", "DELETE", "/webhooks/{webhook_id}", 204),
        op("get a deleted webhook: 404", "GET", "/webhooks/{webhook_id}", 404).code(10015),
    ]
}
