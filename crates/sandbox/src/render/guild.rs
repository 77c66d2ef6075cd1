//! Guilds, roles, members and the bot's application as `GET /guilds/{id}`, `/roles`,
//! `/members/{user}` and `/applications/@me` return them (fields per Discord's OpenAPI spec).

use serde_json::{json, Value};

use crate::snowflake;
use crate::world::{perms, Guild, World};

impl World {
    /// The @everyone role of a guild (its ID is the guild's).
    pub fn everyone_role_json(&self, g: &Guild) -> Value {
        json!({
            "id": g.id.to_string(),
            "name": "@everyone",
            "description": null,
            "color": 0,
            "colors": {"primary_color": 0, "secondary_color": null, "tertiary_color": null},
            "hoist": false,
            "icon": null,
            "unicode_emoji": null,
            "position": 0,
            "permissions": perms::EVERYONE.to_string(),
            "managed": false,
            "mentionable": false,
            "flags": 0,
        })
    }

    /// A guild member object (every user is a member of every sandbox guild).
    pub fn member_json(&self, user: u64) -> Value {
        let joined = self.guilds().first().map_or(user, |g| g.id);
        json!({
            "user": self.user_json(user),
            "nick": null,
            "avatar": null,
            "banner": null,
            "roles": [],
            "joined_at": snowflake::iso8601(joined),
            "premium_since": null,
            "deaf": false,
            "mute": false,
            "flags": 0,
            "pending": false,
            "communication_disabled_until": null,
        })
    }

    /// A guild object as `GET /guilds/{id}` returns it (no members or channels).
    pub fn guild_json(&self, g: &Guild) -> Value {
        json!({
            "id": g.id.to_string(),
            "name": g.name,
            "icon": null,
            "description": null,
            "home_header": null,
            "splash": null,
            "discovery_splash": null,
            "features": [],
            "banner": null,
            "owner_id": g.owner_id.to_string(),
            "application_id": null,
            "region": "deprecated",
            "afk_channel_id": null,
            "afk_timeout": 300,
            "system_channel_id": null,
            "system_channel_flags": 0,
            "widget_enabled": false,
            "widget_channel_id": null,
            "verification_level": 0,
            "roles": [self.everyone_role_json(g)],
            "default_message_notifications": 1,
            "mfa_level": 0,
            "explicit_content_filter": 0,
            "max_presences": null,
            "max_members": 500000,
            "max_stage_video_channel_users": 50,
            "max_video_channel_users": 25,
            "vanity_url_code": null,
            "premium_tier": 0,
            "premium_subscription_count": 0,
            "preferred_locale": "en-US",
            "rules_channel_id": null,
            "safety_alerts_channel_id": null,
            "public_updates_channel_id": null,
            "premium_progress_bar_enabled": false,
            "nsfw": false,
            "nsfw_level": 0,
            "emojis": [],
            "stickers": [],
            "incidents_data": null,
        })
    }

    /// The bot's application (`GET /applications/@me`, `/oauth2/applications/@me`): its ID is
    /// the bot user's, as for bots created on Discord; the owner is the guilds' owner.
    pub fn application_json(&self, bot: u64) -> Value {
        let name = self.user(bot).map_or("", |u| u.name.as_str());
        let owner = self.guilds().first().map_or(bot, |g| g.owner_id);
        json!({
            "id": bot.to_string(),
            "name": name,
            "icon": null,
            "description": "",
            "type": null,
            "bot": self.user_json(bot),
            "bot_public": true,
            "bot_require_code_grant": false,
            "verify_key": format!("{:064x}", u128::from(bot)),
            "flags": 1 << 19 | 1 << 15 | 1 << 13,
            "flags_new": (1u64 << 19 | 1 << 15 | 1 << 13).to_string(),
            "redirect_uris": [],
            "interactions_endpoint_url": null,
            "role_connections_verification_url": null,
            "owner": self.user_json(owner),
            "approximate_guild_count": self.guilds().len(),
            "approximate_user_install_count": 0,
            "approximate_user_authorization_count": 0,
            "explicit_content_filter": 0,
            "team": null,
            "summary": "",
            "rpc_origins": [],
            "tags": [],
            "eligible_oauth2_scopes": ["bot", "applications.commands"],
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::world::tests::world;

    #[test]
    fn guild_role_member_and_application_deserialize_as_serenity_models() {
        let (w, alice, ada, _) = world();
        let g = w.guilds()[0].clone();
        let v = w.guild_json(&g);
        let guild: serenity::model::guild::PartialGuild =
            serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("{e}: {v}"));
        assert_eq!(guild.roles.len(), 1);
        let v = w.member_json(alice);
        let m: serenity::model::guild::Member =
            serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("{e}: {v}"));
        assert_eq!(m.user.id.get(), alice);
        let v = w.application_json(ada);
        let app: serenity::model::application::CurrentApplicationInfo =
            serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("{e}: {v}"));
        assert_eq!(app.id.get(), ada);
    }
}
