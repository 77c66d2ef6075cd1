//! Backlog replay for one agent: the task that reads what was missed (DMs, then the bot-DMs
//! channel, then guild text channels, subject to `--scope`), page by page, and hands each
//! channel's messages to the agent; and the tracker through which agents report, so
//! `--no-monitoring`, `--show-backlog` and `--clear-backlog` know when every agent is done.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use crate::discord::Rest;
use ractor::ActorRef;
use tokio::sync::Notify;

use super::agent::AgentMsg;
use super::SharedSpec;
use crate::backlog::{self, Scope, Start};
use crate::config::RunMode;
use crate::discord::history;
use crate::snowflake;

/// One line of `--show-backlog`.
#[derive(Debug, Clone, PartialEq)]
pub struct BacklogLine {
    /// Agent.
    pub agent: String,
    /// Channel kind.
    pub scope: Scope,
    /// Channel (name, or ID for DMs).
    pub channel: String,
    /// Messages that would be replayed.
    pub count: usize,
    /// Oldest and newest of them (Unix ms), if any.
    pub span: Option<(u64, u64)>,
    /// Older messages beyond the bounds, not replayed.
    pub skipped: usize,
}

/// Where agents report the end of their replay.
#[derive(Debug, Default)]
pub struct ReplayTracker {
    inner: Mutex<TrackerState>,
    notify: Notify,
}

#[derive(Debug, Default)]
struct TrackerState {
    waiting: HashSet<String>,
    lines: Vec<BacklogLine>,
}

impl ReplayTracker {
    /// A tracker waiting for these agents.
    pub fn new<'a>(agents: impl IntoIterator<Item = &'a str>) -> Arc<Self> {
        let t = Self::default();
        t.inner.lock().expect("tracker lock").waiting = agents.into_iter().map(str::to_string).collect();
        Arc::new(t)
    }

    /// An agent finished its backlog (and, with `--no-monitoring`, every turn it started).
    pub fn done(&self, agent: &str, lines: Vec<BacklogLine>) {
        let mut s = self.inner.lock().expect("tracker lock");
        if s.waiting.remove(agent) {
            s.lines.extend(lines);
        }
        drop(s);
        self.notify.notify_waiters();
    }

    /// Waits until every agent is done; returns the backlog lines, agents and channels in order.
    pub async fn all_done(&self) -> Vec<BacklogLine> {
        loop {
            let notified = self.notify.notified();
            {
                let s = self.inner.lock().expect("tracker lock");
                if s.waiting.is_empty() {
                    let mut lines = s.lines.clone();
                    lines.sort_by(|a, b| (&a.agent, a.scope).cmp(&(&b.agent, b.scope)));
                    return lines;
                }
            }
            notified.await;
        }
    }
}

/// A channel to replay.
#[derive(Debug, Clone)]
pub struct ReplayChannel {
    /// Its kind.
    pub scope: Scope,
    /// ID.
    pub id: u64,
    /// Name for output.
    pub name: String,
}

/// Reads each channel's backlog in order and casts it to the agent, then `ReplayDone`.
/// In `--show-backlog` mode it only counts; in `--clear-backlog` mode it moves cursors to the
/// newest message. Channels never seen before start at their newest message.
// Why this is long: one loop over channels whose per-channel branches (fresh, clear, read) share the progress output.
pub async fn run(
    spec: SharedSpec,
    http: Rest,
    agent: ActorRef<AgentMsg>,
    channels: Vec<ReplayChannel>,
    generation: u64,
    me: Option<u64>,
) {
    let name = spec.config.name.clone();
    let mut lines = Vec::new();
    let mut fresh = Vec::new();
    let mut read = Vec::new();
    let mut unread = Vec::new();
    let progress = progress_bar(&name, channels.len());
    for c in channels {
        let cursor = match spec.store.cursor(&name, c.id) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(agent = %name, channel = c.id, error = %e, "cannot read the cursor; channel skipped");
                continue;
            }
        };
        let now = snowflake::unix_ms(snowflake::from_unix_ms(now_ms()));
        let after = match backlog::start(cursor, now, spec.backlog) {
            Start::Fresh => {
                // Nothing is owed for history never seen: the cursor starts at the newest
                // message. The agent writes it, so it never passes a live message that arrived
                // meanwhile and is still being answered.
                match with_retries(&spec.delivery, &name, || history::newest(&http, c.id)).await {
                    Ok(newest) if spec.run.mode == RunMode::ClearBacklog => {
                        let _ = spec.store.advance_cursor(&name, c.id, newest.unwrap_or(1));
                    }
                    Ok(newest) => fresh.push((c.id, newest.unwrap_or(1))),
                    Err(e) => tracing::warn!(agent = %name, error = %e, "cannot read the newest message"),
                }
                lines.push(BacklogLine {
                    agent: name.clone(),
                    scope: c.scope,
                    channel: c.name.clone(),
                    count: 0,
                    span: None,
                    skipped: 0,
                });
                progress.inc();
                continue;
            }
            Start::After(after) => after,
        };
        if spec.run.mode == RunMode::ClearBacklog {
            match with_retries(&spec.delivery, &name, || history::newest(&http, c.id)).await {
                Ok(Some(newest)) => {
                    let _ = spec.store.advance_cursor(&name, c.id, newest);
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(agent = %name, error = %e, "cannot read the newest message"),
            }
            progress.inc();
            continue;
        }
        match with_retries(&spec.delivery, &name, || {
            history::messages_after(&http, c.id, after, spec.backlog.max_messages)
        })
        .await
        {
            Ok((messages, skipped)) => {
                read.push(c.id);
                if skipped > 0 {
                    tracing::warn!(agent = %name, channel = %c.name, skipped, kept = messages.len(), "backlog longer than [backlog] max_messages; oldest messages skipped");
                }
                // Missed: what the agent neither wrote nor answered (a saved cursor stays a few
                // seconds behind, so a replay also reads a few messages already dealt with).
                let missed: Vec<u64> = messages
                    .iter()
                    .filter(|m| Some(m.author_id) != me && !spec.store.answered(&name, m.id).unwrap_or(false))
                    .map(|m| m.id)
                    .collect();
                let span = missed
                    .first()
                    .zip(missed.last())
                    .map(|(a, b)| (snowflake::unix_ms(*a), snowflake::unix_ms(*b)));
                lines.push(BacklogLine {
                    agent: name.clone(),
                    scope: c.scope,
                    channel: c.name.clone(),
                    count: missed.len(),
                    span,
                    skipped,
                });
                progress.message(&c.name, missed.len());
                if spec.run.mode != RunMode::ShowBacklog && !messages.is_empty() {
                    let _ = agent.cast(AgentMsg::Backlog {
                        channel: c.id,
                        messages,
                        generation,
                    });
                }
            }
            Err(e) => {
                tracing::error!(agent = %name, error = %e, "backlog of this channel could not be read; it is held and read again");
                unread.push((c.clone(), after));
            }
        }
        progress.inc();
    }
    progress.finish();
    let _ = agent.cast(AgentMsg::ReplayDone {
        lines,
        fresh,
        read,
        unread,
        generation,
    });
}

/// Tries a history read up to [`READ_ATTEMPTS`] times, with the `[delivery]` back-off: Discord's
/// 429s and 5xx are passing. (serenity waits out rate limits itself in live mode.)
async fn with_retries<T, F, Fut>(
    policy: &crate::config::delivery::DeliverySettings,
    agent: &str,
    mut read: F,
) -> Result<T, history::HistoryError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, history::HistoryError>>,
{
    let mut attempt = 1;
    loop {
        match read().await {
            Ok(v) => return Ok(v),
            Err(e) if attempt >= READ_ATTEMPTS => return Err(e),
            Err(e) => {
                let wait =
                    crate::retry::backoff(policy.retry_initial, policy.retry_max, attempt, rand::random::<f64>());
                tracing::warn!(agent, error = %e, attempt, wait_ms = wait.as_millis() as u64, "history read failed; retrying");
                crate::ops::telemetry::message_retry(agent, crate::ops::telemetry::RetryCause::History);
                tokio::time::sleep(wait).await;
                attempt += 1;
            }
        }
    }
}

/// Attempts of one history read before the channel is reported unread (and read again later).
const READ_ATTEMPTS: u32 = 6;

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A progress bar on a terminal, plain log lines otherwise.
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    agent: String,
}

fn progress_bar(agent: &str, channels: usize) -> Progress {
    use std::io::IsTerminal;
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new(channels as u64);
        if let Ok(style) =
            indicatif::ProgressStyle::with_template("{prefix} replay [{bar:30}] {pos}/{len} channels {msg}")
        {
            bar.set_style(style);
        }
        bar.set_prefix(agent.to_string());
        bar
    });
    if bar.is_none() {
        tracing::info!(agent, channels, "backlog replay started");
    }
    Progress {
        bar,
        agent: agent.to_string(),
    }
}

impl Progress {
    fn message(&self, channel: &str, count: usize) {
        match &self.bar {
            Some(bar) => bar.set_message(format!("#{channel}: {count} missed")),
            None if count > 0 => tracing::info!(agent = %self.agent, channel, missed = count, "replaying channel"),
            None => {}
        }
    }

    fn inc(&self) {
        if let Some(bar) = &self.bar {
            bar.inc(1);
        }
    }

    fn finish(&self) {
        match &self.bar {
            Some(bar) => bar.finish_and_clear(),
            None => tracing::info!(agent = %self.agent, "backlog read"),
        }
    }
}
