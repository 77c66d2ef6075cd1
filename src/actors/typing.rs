//! The typing indicator of a turn, sent only when the reply is not ready after a delay
//! (`[discord] typing_delay_ms`): a fast reply never pays for the second REST call, a slow one
//! shows "typing…" while the reader waits. A request under way when the reply is ready is waited
//! for, so the indicator never arrives after the reply (it would show for ~10 s more).

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::discord::Outbox;

/// The indicator has not been sent yet.
const WAITING: u8 = 0;
/// Its request has started: the reply waits for it.
const SENDING: u8 = 1;
/// The reply was ready first: no request will be made.
const CANCELLED: u8 = 2;

/// Who won the race between the delay and the reply: exactly one of [`claim_send`] and
/// [`claim_cancel`] succeeds on a fresh state.
fn claim(state: &AtomicU8, to: u8) -> bool {
    state
        .compare_exchange(WAITING, to, Ordering::AcqRel, Ordering::Acquire)
        .is_ok()
}

/// The delay's side: may the request start?
fn claim_send(state: &AtomicU8) -> bool {
    claim(state, SENDING)
}

/// The reply's side: is the request cancelled before it started?
fn claim_cancel(state: &AtomicU8) -> bool {
    claim(state, CANCELLED)
}

/// A typing indicator that shows after `delay`, renewed every `renew` when given.
#[derive(Debug)]
pub struct Typing {
    state: Arc<AtomicU8>,
    task: tokio::task::JoinHandle<()>,
}

impl Typing {
    /// Starts the delay; the indicator goes out when it passes before [`Typing::settle`] or
    /// [`Typing::stop`]. A zero delay sends it at once.
    pub fn start(outbox: &Outbox, channel_id: u64, delay: Duration, renew: Option<Duration>) -> Self {
        let state = Arc::new(AtomicU8::new(WAITING));
        let (outbox, flag) = (outbox.clone(), state.clone());
        let task = tokio::spawn(async move {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            if !claim_send(&flag) {
                return;
            }
            loop {
                outbox.typing(channel_id).await;
                match renew {
                    Some(every) => tokio::time::sleep(every).await,
                    None => return,
                }
            }
        });
        Self { state, task }
    }

    /// The reply is ready: an indicator not yet sent never will be; one under way is waited
    /// for, at most `wait` (a request that hangs does not hold the reply).
    pub async fn settle(mut self, wait: Duration) {
        if claim_cancel(&self.state) {
            self.task.abort();
            return;
        }
        if tokio::time::timeout(wait, &mut self.task).await.is_err() {
            self.task.abort();
        }
    }

    /// Stops the indicator at once (a failed turn, a streamed reply's first post).
    pub fn stop(self) {
        claim_cancel(&self.state);
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reply_ready_first_cancels_the_request() {
        let state = AtomicU8::new(WAITING);
        assert!(claim_cancel(&state));
        assert!(!claim_send(&state), "the delay passing later must not send");
    }

    #[test]
    fn a_request_already_started_is_not_cancelled() {
        let state = AtomicU8::new(WAITING);
        assert!(claim_send(&state));
        assert!(!claim_cancel(&state), "the reply must wait for the request under way");
    }

    /// The indicator's state once the reply is ready `reply_after` into a 500 ms delay.
    async fn state_when_the_reply_is_ready(reply_after: Duration) -> u8 {
        let outbox = Outbox::printing();
        let typing = Typing::start(&outbox, 1, Duration::from_millis(500), None);
        tokio::time::sleep(reply_after).await;
        let state = typing.state.clone();
        typing.settle(Duration::from_secs(5)).await;
        state.load(Ordering::Acquire)
    }

    #[tokio::test(start_paused = true)]
    async fn a_reply_ready_before_the_delay_sends_no_indicator() {
        assert_eq!(
            state_when_the_reply_is_ready(Duration::from_millis(100)).await,
            CANCELLED
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_reply_after_the_delay_finds_the_indicator_sent() {
        assert_eq!(state_when_the_reply_is_ready(Duration::from_millis(600)).await, SENDING);
    }
}
