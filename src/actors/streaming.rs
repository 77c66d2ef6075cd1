//! Runs a streamed reply: follows the model's text as it grows and does what the plan
//! ([`crate::stream_reply`]) asks (post, edit, delete) through the outbox, one call at a time,
//! while the model call goes on. Each posted message is recorded in the store at once
//! ([`crate::store::Store::save_stream_parts`]) so a later attempt (after a crash, a failed model
//! call, or a give-up) edits it instead of posting a second reply beside it. The typing
//! indicator is renewed until the first message is out.

use std::future::Future;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::discord::outbox::{DeliveryError, Reply};
use crate::discord::Outbox;
use crate::store::Store;
use crate::stream_reply::{Action, Next, StreamPlan};

/// How often the typing indicator is renewed (Discord shows it for about 10 s).
const TYPING_EVERY: Duration = Duration::from_secs(8);

/// Where a streamed reply goes.
pub struct StreamTarget<'a> {
    /// Sends it.
    pub outbox: &'a Outbox,
    /// Records its messages (`None` in dry runs).
    pub store: Option<&'a Store>,
    /// The agent.
    pub agent: &'a str,
    /// The message it answers (the record's key).
    pub answers: u64,
    /// Channel, reference, footer, courtesy, slowmode and nonces (its `text` is not used).
    pub reply: Reply,
    /// Show the typing indicator after this delay and renew it until the first message is out
    /// (`None`: not at all).
    pub typing: Option<Duration>,
    /// The users a text may ping.
    pub allowed_users: &'a (dyn Fn(&str) -> Vec<u64> + Sync),
    /// The text as shown (agents' `@Name` turned into mentions).
    pub render: &'a (dyn Fn(&str) -> String + Sync),
}

/// What a streamed reply left on Discord.
#[derive(Debug, Default)]
pub struct Streamed {
    /// Every message of the reply now, in order (earlier attempts' included).
    pub message_ids: Vec<u64>,
    /// Messages posted by this attempt.
    pub posted: Vec<u64>,
    /// Writes made by this attempt (posts, edits and deletes).
    pub writes: usize,
    /// The complete reply is shown.
    pub complete: bool,
    /// Why Discord calls stopped early, if they did.
    pub error: Option<DeliveryError>,
    /// What the last message shows (its index and view), when this attempt wrote it.
    pub last_shown: Option<(usize, crate::stream_reply::PartView)>,
}

/// Streams the text published on `progress` while `model` runs; `model` ends with the complete
/// text and a value handed back. Ends when the complete reply is shown, when the model fails
/// (what was posted stays, recorded, for the next attempt to edit), or when Discord refuses a
/// call (the model call is then dropped). Returns the model's outcome, if it ended.
pub async fn run<T, E, F>(
    target: &StreamTarget<'_>,
    existing: &[u64],
    mut progress: watch::Receiver<String>,
    model: F,
) -> (Option<Result<T, E>>, Streamed)
where
    F: Future<Output = Result<(String, T), E>>,
{
    let mut plan = StreamPlan::new(Instant::now(), target.reply.courtesy.is_some(), existing);
    let mut model = std::pin::pin!(model);
    let mut outcome: Option<Result<T, E>> = None;
    let mut complete_text: Option<String> = None;
    let mut progress_open = true;
    let mut streamed = Streamed::default();
    let mut typing = target
        .typing
        .filter(|_| !plan.first_posted())
        .map(|delay| super::typing::Typing::start(target.outbox, target.reply.channel_id, delay, Some(TYPING_EVERY)));
    let ended = |r: Result<(String, T), E>, outcome: &mut Option<Result<T, E>>, text: &mut Option<String>| match r {
        Ok((t, v)) => {
            *text = Some(t);
            *outcome = Some(Ok(v));
        }
        Err(e) => *outcome = Some(Err(e)),
    };
    loop {
        if matches!(outcome, Some(Err(_))) {
            break;
        }
        let finished = complete_text.is_some();
        let text = match &complete_text {
            Some(t) => t.clone(),
            None => (target.render)(&progress.borrow_and_update()),
        };
        match plan.next(&text, finished, Instant::now()) {
            Next::Done => {
                streamed.complete = true;
                break;
            }
            Next::Act(action) => {
                let result = {
                    let call = execute(target, &action);
                    let mut call = std::pin::pin!(call);
                    loop {
                        tokio::select! {
                            r = &mut call => break r,
                            r = &mut model, if outcome.is_none() => ended(r, &mut outcome, &mut complete_text),
                        }
                    }
                };
                let now = Instant::now();
                match (action, result) {
                    (Action::Post { part, view }, Ok(Some(id))) => {
                        plan.posted(part, id, view, now);
                        streamed.posted.push(id);
                        if let Some(t) = typing.take() {
                            t.stop();
                        }
                        record(target, &plan).await;
                    }
                    (Action::Edit { part, view, .. }, Ok(_)) => plan.edited(part, view, now),
                    (Action::Delete { part, .. }, Ok(_)) => {
                        plan.deleted(part);
                        record(target, &plan).await;
                    }
                    (_, Err(e)) => {
                        streamed.error = Some(e);
                        break;
                    }
                    (Action::Post { .. }, Ok(None)) => unreachable!("a post returns its message"),
                }
                streamed.writes += 1;
            }
            Next::WaitUntil(at) => {
                tokio::select! {
                    _ = tokio::time::sleep_until(at) => {}
                    r = &mut model, if outcome.is_none() => ended(r, &mut outcome, &mut complete_text),
                    r = progress.changed(), if progress_open && !finished => progress_open = r.is_ok(),
                }
            }
            Next::WaitForText => {
                tokio::select! {
                    r = &mut model, if outcome.is_none() => ended(r, &mut outcome, &mut complete_text),
                    r = progress.changed(), if progress_open => progress_open = r.is_ok(),
                    else => break,
                }
            }
        }
    }
    if let Some(t) = typing {
        t.stop();
    }
    streamed.message_ids = plan.message_ids();
    streamed.last_shown = plan
        .last_shown()
        .map(|v| (streamed.message_ids.len().saturating_sub(1), v.clone()));
    (outcome, streamed)
}

/// Marks a reply the model failed part way as interrupted (its last message gets a line saying
/// so), so it is not left half-written without explanation while the answer waits for its retry
/// or its give-up notice. Best effort: the next attempt edits it either way.
pub async fn mark_interrupted(target: &StreamTarget<'_>, streamed: &Streamed) {
    let (Some((_, view)), Some(&id)) = (&streamed.last_shown, streamed.message_ids.last()) else {
        return;
    };
    let content = crate::stream_reply::interrupted(&view.content, crate::split::DISCORD_LIMIT);
    if let Err(e) = target.outbox.edit_part(&target.reply, id, &content, false).await {
        tracing::warn!(agent = %target.agent, message_id = target.answers, error = %e, "cannot mark a streamed reply as interrupted");
    }
}

/// One Discord call; a post returns its message.
async fn execute(target: &StreamTarget<'_>, action: &Action) -> Result<Option<u64>, DeliveryError> {
    let with_mentions = |content: &str| Reply {
        allowed_users: (target.allowed_users)(content),
        ..target.reply.clone()
    };
    match action {
        Action::Post { part, view } => target
            .outbox
            .post_part(&with_mentions(&view.content), *part, &view.content, view.courtesy)
            .await
            .map(Some),
        Action::Edit { message_id, view, .. } => target
            .outbox
            .edit_part(&with_mentions(&view.content), *message_id, &view.content, view.courtesy)
            .await
            .map(|()| None),
        Action::Delete { message_id, .. } => target
            .outbox
            .delete_part(target.reply.channel_id, *message_id)
            .await
            .map(|()| None),
    }
}

/// Records the reply's messages durably; a store that does not take them is logged (the nonce
/// of a re-posted part still makes Discord return the message already posted).
async fn record(target: &StreamTarget<'_>, plan: &StreamPlan) {
    let Some(store) = target.store else { return };
    if let Err(e) = store
        .save_stream_parts(target.agent, target.answers, &plan.message_ids())
        .await
    {
        tracing::warn!(agent = %target.agent, message_id = target.answers, error = %e, "cannot record a streamed reply's messages");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acl::ChainLength;

    fn reply() -> Reply {
        Reply {
            channel_id: 1,
            reply_to: Some(9),
            text: String::new(),
            chain: ChainLength::HUMAN.next(),
            tagline: "t".into(),
            courtesy: None,
            allowed_users: vec![],
            slowmode: Duration::ZERO,
            nonce_seed: "Ada".into(),
            first_part: 0,
            check_existing: false,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_streamed_reply_is_posted_once_then_edited_to_the_complete_text() {
        let outbox = Outbox::printing();
        let none = |_: &str| Vec::new();
        let same = |t: &str| t.to_string();
        let target = StreamTarget {
            outbox: &outbox,
            store: None,
            agent: "Ada",
            answers: 9,
            reply: reply(),
            typing: None,
            allowed_users: &none,
            render: &same,
        };
        let (tx, rx) = watch::channel(String::new());
        let model = async {
            for w in ["Hello.", " This", " goes", " on", " for", " a", " while."] {
                let so_far = format!("{}{w}", tx.borrow().as_str());
                tx.send_replace(so_far);
                tokio::time::sleep(Duration::from_millis(400)).await;
            }
            Ok::<_, ()>((tx.borrow().clone(), 7))
        };
        let (outcome, streamed) = run(&target, &[], rx, model).await;
        assert_eq!(outcome, Some(Ok(7)));
        assert!(streamed.complete && streamed.error.is_none());
        // One message posted (the printing outbox numbers them from 1); the rest were edits.
        assert_eq!(streamed.posted, vec![1]);
        assert_eq!(outbox.printed().len(), 1);
        assert!(streamed.writes >= 2, "{streamed:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_model_leaves_the_posted_part_for_the_next_attempt() {
        let outbox = Outbox::printing();
        let none = |_: &str| Vec::new();
        let same = |t: &str| t.to_string();
        let target = StreamTarget {
            outbox: &outbox,
            store: None,
            agent: "Ada",
            answers: 9,
            reply: reply(),
            typing: None,
            allowed_users: &none,
            render: &same,
        };
        let (tx, rx) = watch::channel(String::new());
        let model = async {
            tx.send_replace("Half a sentence. and".into());
            tokio::time::sleep(Duration::from_millis(1500)).await;
            Err::<(String, ()), _>("cut")
        };
        let (outcome, streamed) = run(&target, &[], rx, model).await;
        assert_eq!(outcome, Some(Err("cut")));
        assert!(!streamed.complete);
        assert_eq!(streamed.message_ids, vec![1]);
    }
}
