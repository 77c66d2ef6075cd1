//! The progressive token strategy (from AmiBot): ask for few tokens first and more only when
//! the reply was cut, so short answers stay cheap and long ones still finish.
//!
//! - `regenerate`: ask again from scratch with `step` more tokens, up to `until`.
//! - `continue`: ask the model to continue the cut reply, `step` tokens at a time, until `until`
//!   tokens were asked for in all. Cheaper for long replies: nothing is generated twice.
//!
//! Either way the number of requests is bounded, and a reply still cut at the end is returned
//! with [`FinishReason::Length`] and [`CUT_NOTE`] appended, never passed off as complete.

use std::future::Future;

use super::stream::{Completion, FinishReason, Usage};
use super::LlmError;
use crate::config::{OnTruncation, TokenLadder};

/// Appended to a reply that is still cut when the token budget is spent.
pub const CUT_NOTE: &str = " […] (reply cut at the token limit)";

/// One request of the strategy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// The request's token limit.
    pub max_tokens: u32,
    /// The cut reply so far, to be continued (continue mode only). The request must then
    /// return the whole reply: this text followed by its continuation.
    pub continue_from: Option<String>,
}

impl Step {
    /// The step's label for `troupe_llm_ladder_steps_total`: `first`, `regenerate` or `continue`.
    pub fn mode(&self, ladder: &TokenLadder) -> &'static str {
        match (&self.continue_from, self.max_tokens == ladder.from) {
            (Some(_), _) => "continue",
            (None, true) => "first",
            (None, false) => "regenerate",
        }
    }
}

/// Runs the strategy, calling `request` for each step. Usage is summed over all requests:
/// every one of them was paid for.
pub async fn complete<F, Fut>(ladder: &TokenLadder, mode: OnTruncation, mut request: F) -> Result<Completion, LlmError>
where
    F: FnMut(Step) -> Fut,
    Fut: Future<Output = Result<Completion, LlmError>>,
{
    let mut usage: Option<Usage> = None;
    let mut asked: u32 = 0;
    let mut step = Step {
        max_tokens: ladder.from,
        continue_from: None,
    };
    loop {
        let limit = step.max_tokens;
        let c = request(step).await?;
        asked = asked.saturating_add(limit);
        usage = sum(usage, c.usage);
        if !c.finish.is_truncated() {
            if c.text.trim().is_empty() {
                return Err(LlmError::Backend(format!(
                    "the model returned an empty reply (finish reason {:?})",
                    c.finish
                )));
            }
            return Ok(Completion { usage, ..c });
        }
        // Cut before its own limit: the model ran into its context window, and asking for more
        // (continuing, or regenerating with a larger limit) would only be cut again.
        let context_full = c.usage.is_some_and(|u| u.output_tokens < u64::from(limit));
        let next = match mode {
            _ if context_full => None,
            OnTruncation::Regenerate => (limit < ladder.until).then(|| Step {
                max_tokens: limit.saturating_add(ladder.step).min(ladder.until),
                continue_from: None,
            }),
            OnTruncation::Continue => (asked < ladder.until).then(|| Step {
                max_tokens: ladder.step.min(ladder.until - asked),
                continue_from: Some(c.text.clone()),
            }),
        };
        match next {
            Some(s) => {
                tracing::debug!(
                    limit,
                    next = s.max_tokens,
                    ?mode,
                    "reply cut by the token limit; asking for more"
                );
                step = s;
            }
            None => {
                tracing::info!(
                    limit,
                    asked,
                    "reply still cut when the token budget was spent; sending it marked as cut"
                );
                return Ok(Completion {
                    text: format!("{}{CUT_NOTE}", c.text.trim_end()),
                    finish: FinishReason::Length,
                    usage,
                });
            }
        }
    }
}

fn sum(a: Option<Usage>, b: Option<Usage>) -> Option<Usage> {
    match (a, b) {
        (None, x) | (x, None) => x,
        (Some(a), Some(b)) => Some(Usage {
            input_tokens: a.input_tokens + b.input_tokens,
            output_tokens: a.output_tokens + b.output_tokens,
        }),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    const LADDER: TokenLadder = TokenLadder {
        from: 256,
        until: 1024,
        step: 256,
    };

    /// A model whose reply needs `needed` tokens; one word per token.
    fn model(
        needed: u32,
        calls: &Mutex<Vec<Step>>,
    ) -> impl FnMut(Step) -> std::future::Ready<Result<Completion, LlmError>> + '_ {
        move |step: Step| {
            calls.lock().unwrap().push(step.clone());
            let done = step
                .continue_from
                .as_deref()
                .map_or(0, |t| t.split_whitespace().count() as u32);
            let n = (needed - done).min(step.max_tokens);
            let words: Vec<String> = (done..done + n).map(|i| format!("w{i}")).collect();
            let mut text = step.continue_from.clone().map(|t| t + " ").unwrap_or_default();
            text.push_str(&words.join(" "));
            let finish = if done + n < needed {
                FinishReason::Length
            } else {
                FinishReason::Stop
            };
            std::future::ready(Ok(Completion {
                text,
                finish,
                usage: Some(Usage {
                    input_tokens: 10,
                    output_tokens: n.into(),
                }),
            }))
        }
    }

    fn limits(calls: &Mutex<Vec<Step>>) -> Vec<u32> {
        calls.lock().unwrap().iter().map(|s| s.max_tokens).collect()
    }

    #[tokio::test]
    async fn short_reply_takes_one_request() {
        let calls = Mutex::new(Vec::new());
        let c = complete(&LADDER, OnTruncation::Regenerate, model(10, &calls))
            .await
            .unwrap();
        assert_eq!(limits(&calls), [256]);
        assert_eq!(c.finish, FinishReason::Stop);
    }

    #[tokio::test]
    async fn regenerate_climbs_the_ladder_and_sums_usage() {
        let calls = Mutex::new(Vec::new());
        let c = complete(&LADDER, OnTruncation::Regenerate, model(300, &calls))
            .await
            .unwrap();
        assert_eq!(limits(&calls), [256, 512]);
        assert_eq!(c.finish, FinishReason::Stop);
        assert_eq!(c.text.split_whitespace().count(), 300);
        assert_eq!(
            c.usage,
            Some(Usage {
                input_tokens: 20,
                output_tokens: 556
            })
        );
    }

    #[tokio::test]
    async fn continue_asks_for_step_tokens_more_with_the_reply_so_far() {
        let calls = Mutex::new(Vec::new());
        let c = complete(&LADDER, OnTruncation::Continue, model(600, &calls))
            .await
            .unwrap();
        assert_eq!(limits(&calls), [256, 256, 256]);
        let calls = calls.lock().unwrap();
        assert_eq!(calls[0].continue_from, None);
        assert_eq!(
            calls[1].continue_from.as_deref().unwrap().split_whitespace().count(),
            256
        );
        assert_eq!(c.text.split_whitespace().count(), 600);
        assert!(c.text.ends_with("w599"));
        assert_eq!(c.usage.unwrap().output_tokens, 600);
    }

    #[tokio::test]
    async fn reply_still_cut_at_until_is_marked_as_cut() {
        for mode in [OnTruncation::Regenerate, OnTruncation::Continue] {
            let calls = Mutex::new(Vec::new());
            let c = complete(&LADDER, mode, model(5000, &calls)).await.unwrap();
            assert_eq!(c.finish, FinishReason::Length, "{mode:?}");
            assert!(c.text.ends_with(CUT_NOTE), "{mode:?}");
            assert_eq!(calls.lock().unwrap().len(), 4, "{mode:?}: bounded by the ladder");
            assert_eq!(
                limits(&calls).iter().sum::<u32>(),
                if mode == OnTruncation::Continue { 1024 } else { 2560 }
            );
        }
    }

    #[tokio::test]
    async fn a_reply_cut_by_the_context_window_is_not_continued() {
        for mode in [OnTruncation::Regenerate, OnTruncation::Continue] {
            let mut calls = 0;
            let c = complete(&LADDER, mode, |_| {
                calls += 1;
                std::future::ready(Ok(Completion {
                    text: "the window filled up after a".into(),
                    finish: FinishReason::Length,
                    usage: Some(Usage {
                        input_tokens: 4000,
                        output_tokens: 96,
                    }),
                }))
            })
            .await
            .unwrap();
            assert_eq!(calls, 1, "{mode:?}");
            assert_eq!(c.text, format!("the window filled up after a{CUT_NOTE}"));
        }
    }

    #[tokio::test]
    async fn errors_stop_the_ladder() {
        let mut calls = 0;
        let r = complete(&LADDER, OnTruncation::Regenerate, |_| {
            calls += 1;
            std::future::ready(Err(LlmError::Auth("no".into())))
        })
        .await;
        assert_eq!(r.unwrap_err().kind(), "auth");
        assert_eq!(calls, 1);
    }

    #[tokio::test]
    async fn empty_reply_is_an_error() {
        let r = complete(&LADDER, OnTruncation::Regenerate, |_| {
            std::future::ready(Ok(Completion {
                text: "  ".into(),
                finish: FinishReason::Stop,
                usage: None,
            }))
        })
        .await;
        assert_eq!(r.unwrap_err().kind(), "backend");
    }
}
