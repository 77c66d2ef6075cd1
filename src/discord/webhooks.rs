//! Webhook personas: looking up an existing webhook (to learn its channel and check its token),
//! and creating one once per agent and channel (remembered in the store, so restarts reuse it).

use serenity::all::{ChannelId, CreateWebhook, Http, WebhookId};

use super::outbox::WebhookIdentity;
use crate::secret::Secret;
use crate::store::Store;

/// An existing webhook, looked up by ID and token; an error names the agent and the webhook.
pub async fn existing(
    http: &Http,
    agent: &str,
    avatar_url: Option<String>,
    id: u64,
    token: &Secret,
) -> Result<WebhookIdentity, String> {
    let hook = http
        .get_webhook_with_token(WebhookId::new(id), token.expose())
        .await
        .map_err(|e| format!("agent `{agent}`: webhook {id} cannot be used: {e}"))?;
    Ok(WebhookIdentity {
        id,
        token: token.clone(),
        channel_id: hook.channel_id.map_or(0, |c| c.get()),
        username: agent.to_string(),
        avatar_url,
    })
}

/// The webhook troupe created for `agent` in `channel_id` before (kept in the store), or a new
/// one. `None` (logged) when Discord refuses to create it: the agent speaks as its bot user.
pub async fn created(
    http: &Http,
    store: &Store,
    agent: &str,
    avatar_url: Option<String>,
    channel_id: u64,
) -> Option<WebhookIdentity> {
    let (id, token) = match store.webhook(agent, channel_id) {
        Ok(Some(known)) => known,
        _ => {
            let builder = CreateWebhook::new(format!("troupe {agent}"));
            match ChannelId::new(channel_id).create_webhook(http, builder).await {
                Ok(hook) => {
                    // The token is the last segment of the webhook's execute URL.
                    let token = hook
                        .url()
                        .ok()
                        .and_then(|u| u.rsplit('/').next().map(str::to_string))
                        .unwrap_or_default();
                    if let Err(e) = store.save_webhook(agent, channel_id, hook.id.get(), &token).await {
                        tracing::warn!(agent, error = %e, "cannot remember the created webhook");
                    }
                    (hook.id.get(), token)
                }
                Err(e) => {
                    tracing::error!(agent, channel = channel_id, error = %e, "cannot create the persona's webhook; speaking as the bot user");
                    return None;
                }
            }
        }
    };
    Some(WebhookIdentity {
        id,
        token: Secret::new(token),
        channel_id,
        username: agent.to_string(),
        avatar_url,
    })
}
