//! An agent's cursors: each channel's progress, and when the cursor it allows is saved.

use super::*;

/// How often, at most, a channel's cursor is saved while its messages flow; a replay and a stop
/// save every cursor that moved.
pub(super) const CURSOR_SAVE_INTERVAL: Duration = Duration::from_secs(1);

/// How far behind real time a saved cursor stays. serenity dispatches each event on its own
/// task, and a stop drops the events still in the agent's mailbox: a message can be finished
/// (and the cursor moved past it) while an older message's event is still on its way. A cursor
/// saved no later than this long ago makes the replay after a crash or a stop read those
/// messages again; answered ones are recognised by their records, others are routed again.
pub(super) const EVENT_SKEW: Duration = Duration::from_secs(10);

/// The newest cursor that may be saved now: the snowflake of `EVENT_SKEW` ago.
fn horizon() -> u64 {
    let now = crate::actors::turn::now_ms();
    crate::snowflake::from_unix_ms(now.saturating_sub(EVENT_SKEW.as_millis() as u64))
}

/// A message is finished with: advance the channel's cursor as far as progress allows, and save
/// it (no later than `EVENT_SKEW` ago) unless it was saved less than `CURSOR_SAVE_INTERVAL` ago.
pub(super) fn finish(state: &mut AgentState, channel: u64, id: u64) {
    let progress = state.progress.entry(channel).or_default();
    progress.finish(id);
    let now = Instant::now();
    if let Some(cursor) = progress.cursor_to_save(now, CURSOR_SAVE_INTERVAL) {
        let cursor = cursor.min(horizon());
        if save_cursor(&state.spec, channel, cursor) {
            progress.saved(cursor, now);
        }
    }
}

/// Saves every cursor that moved since its last save: before a replay reads them, and on stop.
pub(super) fn save_cursors(state: &mut AgentState) {
    let now = Instant::now();
    let horizon = horizon();
    for (channel, progress) in &mut state.progress {
        if let Some(cursor) = progress.unsaved_cursor() {
            let cursor = cursor.min(horizon);
            if save_cursor(&state.spec, *channel, cursor) {
                progress.saved(cursor, now);
            }
        }
    }
}

/// Saves a cursor (dry runs leave the store untouched); false when the store refused, so the
/// next finished message tries again.
pub(super) fn save_cursor(spec: &SharedSpec, channel: u64, cursor: u64) -> bool {
    if spec.run.dry_run != DryRun::None {
        return true;
    }
    match spec.store.advance_cursor(&spec.config.name, channel, cursor) {
        Ok(()) => {
            tracing::debug!(agent = %spec.config.name, channel, cursor, "cursor saved");
            true
        }
        Err(e) => {
            tracing::warn!(agent = %spec.config.name, error = %e, "cannot save a cursor");
            false
        }
    }
}

/// With `--no-monitoring`, `--show-backlog` or `--clear-backlog`: once live and with nothing in
/// flight, tell the tracker this agent is done. Also publishes how many messages are in flight.
pub(super) fn check_done(state: &mut AgentState) {
    let in_flight: usize = state.progress.values().map(ChannelProgress::in_flight).sum();
    state.series.in_flight(in_flight + state.phase.held(), in_flight);
    if state.reported || state.phase.phase() != Phase::Live {
        return;
    }
    if state.progress.values().all(ChannelProgress::is_idle) {
        state.reported = true;
        state.spec.tracker.done(&state.spec.config.name, state.lines.clone());
    }
}

/// Conversations finished these `(channel, message)` pairs: their cursors advance.
pub(super) fn on_finished(state: &mut AgentState, done: Vec<(u64, u64)>) {
    for (channel, id) in done {
        // Only what this run admitted moves a cursor: a conversation may also finish a message
        // owed from before a restart, in a channel the replay has not reached yet (that replay
        // recognises it as answered).
        if state.progress.get(&channel).is_some_and(|p| p.is_in_flight(id)) {
            finish(state, channel, id);
        }
    }
    check_done(state);
}
