//! Token budgets (`[budgets]`): the windows usage is counted over, and whether a model call
//! fits what a user and an agent have left. Pure: the store keeps the counts (`store/usage.rs`),
//! the turn asks before each call (`actors/turn.rs`).

use std::time::Duration;

/// How long one hour-bucket of usage lasts, in milliseconds.
pub const HOUR_MS: u64 = 3_600_000;
const DAY_MS: u64 = 24 * HOUR_MS;

/// The span usage is counted over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    /// Since midnight UTC.
    Daily,
    /// Since the first of the month, midnight UTC.
    Monthly,
    /// The last this long (whole hours).
    Rolling(Duration),
}

impl Window {
    /// When the window that holds `now_ms` began (ms since the Unix epoch). Usage is kept in
    /// hour buckets, so a rolling window starts at the top of an hour.
    pub fn start(self, now_ms: u64) -> u64 {
        match self {
            Window::Daily => now_ms - now_ms % DAY_MS,
            Window::Monthly => {
                let days = (now_ms / DAY_MS) as i64;
                let (y, m, _) = civil_from_days(days);
                days_from_civil(y, m, 1) as u64 * DAY_MS
            }
            Window::Rolling(d) => {
                let hours = (d.as_millis() as u64 / HOUR_MS).max(1);
                hour_of(now_ms).saturating_sub(hours - 1) * HOUR_MS
            }
        }
    }

    /// A short name for messages (`today`, `this month`, `the last 12 h`).
    pub fn describe(self) -> String {
        match self {
            Window::Daily => "today".into(),
            Window::Monthly => "this month".into(),
            Window::Rolling(d) => format!("the last {} h", d.as_secs() / 3600),
        }
    }
}

/// The hour bucket of a moment.
pub fn hour_of(ms: u64) -> u64 {
    ms / HOUR_MS
}

/// Whose spending a user's budget counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserScope {
    /// What the user spent with this agent.
    Agent,
    /// What the user spent with every agent of the troupe.
    Troupe,
}

/// One agent's budgets.
#[derive(Debug, Clone, PartialEq)]
pub struct Budgets {
    /// The window both limits are counted over.
    pub window: Window,
    /// Most tokens one user may spend (per agent or across the troupe: `user_scope`).
    pub user_tokens: Option<u64>,
    /// Whose spending `user_tokens` counts.
    pub user_scope: UserScope,
    /// Most tokens the agent may spend, all users together.
    pub agent_tokens: Option<u64>,
    /// Sent once per window to a user whose message is not answered for budget; empty: silence.
    pub notice: String,
}

/// The notice sent by default when a budget is spent.
pub const DEFAULT_NOTICE: &str = "Sorry, the token budget for this is spent; I'll answer again when it renews.";

impl Default for Budgets {
    fn default() -> Self {
        Self {
            window: Window::Daily,
            user_tokens: None,
            user_scope: UserScope::Agent,
            agent_tokens: None,
            notice: DEFAULT_NOTICE.into(),
        }
    }
}

impl Budgets {
    /// Whether any limit is set (otherwise nothing is checked, but usage is still counted).
    pub fn limited(&self) -> bool {
        self.user_tokens.is_some() || self.agent_tokens.is_some()
    }
}

/// Which budget a call would overrun.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Over {
    /// The user's.
    User,
    /// The agent's.
    Agent,
}

impl Over {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Over::User => "user",
            Over::Agent => "agent",
        }
    }
}

/// Whether a call estimated at `estimate` tokens fits: it is made only if it cannot take the
/// agent's or any of the users' spending past their limit. `users` are what each user the
/// call answers has spent in the window; the call's cost is shared among them.
pub fn check(budgets: &Budgets, agent_used: u64, users: &[u64], estimate: u64) -> Result<(), Over> {
    let users: Vec<(u64, Option<u64>)> = users.iter().map(|u| (*u, budgets.user_tokens)).collect();
    check_each(budgets, agent_used, &users, estimate)
}

/// Like [`check`], each user with their own limit (`(spent, limit)`): a moderator's override
/// (`/budget`) or the configured one ([`user_limit`]).
pub fn check_each(budgets: &Budgets, agent_used: u64, users: &[(u64, Option<u64>)], estimate: u64) -> Result<(), Over> {
    if let Some(limit) = budgets.agent_tokens {
        if agent_used.saturating_add(estimate) > limit {
            return Err(Over::Agent);
        }
    }
    let share = share(estimate, users.len());
    if users
        .iter()
        .any(|(used, limit)| limit.is_some_and(|l| used.saturating_add(share) > l))
    {
        return Err(Over::User);
    }
    Ok(())
}

/// A user's limit: a moderator's override if one is set, else the configured `user_tokens`.
pub fn user_limit(budgets: &Budgets, overridden: Option<u64>) -> Option<u64> {
    overridden.or(budgets.user_tokens)
}

/// Each of `n` users' share of `tokens` (rounded up, so shares never undercount).
pub fn share(tokens: u64, n: usize) -> u64 {
    if n == 0 {
        return 0;
    }
    tokens.div_ceil(n as u64)
}

/// Whether a notice may be sent now: none was sent since the window began.
pub fn notice_due(last_notice_ms: Option<u64>, window: Window, now_ms: u64) -> bool {
    last_notice_ms.is_none_or(|last| last < window.start(now_ms))
}

/// Howard Hinnant's `civil_from_days`: (year, month 1..=12, day 1..=31) of a day count since
/// 1970-01-01.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// The inverse: days since 1970-01-01 of a civil date.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let (m, d) = (m as i64, d as i64);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-12-01T13:45:00Z.
    const NOW: u64 = 1_796_132_700_000;

    #[test]
    fn windows_start_at_midnight_the_first_of_the_month_or_whole_hours_back() {
        assert_eq!(Window::Daily.start(NOW), 1_796_083_200_000, "2026-12-01T00:00Z");
        assert_eq!(Window::Monthly.start(NOW), 1_796_083_200_000, "2026-12-01 is the first");
        let mid_month = NOW + 14 * DAY_MS;
        assert_eq!(Window::Monthly.start(mid_month), 1_796_083_200_000);
        // 2024-03-10 → 2024-03-01 (a leap year's March).
        assert_eq!(Window::Monthly.start(1_710_072_000_000), 1_709_251_200_000);
        let rolling = Window::Rolling(Duration::from_secs(3 * 3600));
        assert_eq!(
            rolling.start(NOW),
            (hour_of(NOW) - 2) * HOUR_MS,
            "this hour and the two before"
        );
    }

    #[test]
    fn civil_dates_round_trip() {
        for days in [-1, 0, 59, 365, 10_957, 20_423, 40_000] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days, "{y}-{m}-{d}");
        }
        assert_eq!(civil_from_days(20_788), (2026, 12, 1));
    }

    #[test]
    fn a_call_is_made_only_if_it_cannot_overrun_a_limit() {
        let b = Budgets {
            user_tokens: Some(1_000),
            agent_tokens: Some(10_000),
            ..Budgets::default()
        };
        assert_eq!(check(&b, 0, &[0], 1_000), Ok(()));
        assert_eq!(check(&b, 0, &[1], 1_000), Err(Over::User));
        assert_eq!(check(&b, 9_500, &[0], 600), Err(Over::Agent));
        // Shared by two users: 1,200 costs each 600.
        assert_eq!(check(&b, 0, &[400, 400], 1_200), Ok(()));
        assert_eq!(check(&b, 0, &[400, 401], 1_200), Err(Over::User));
        // No user (a bot's message): only the agent's budget applies.
        assert_eq!(check(&b, 0, &[], 5_000), Ok(()));
        assert_eq!(check(&Budgets::default(), u64::MAX, &[u64::MAX], 1), Ok(()));
    }

    #[test]
    fn a_moderators_override_replaces_the_configured_user_limit() {
        let b = Budgets {
            user_tokens: Some(1_000),
            ..Budgets::default()
        };
        assert_eq!(user_limit(&b, Some(100)), Some(100));
        assert_eq!(user_limit(&b, None), Some(1_000));
        assert_eq!(user_limit(&Budgets::default(), Some(5)), Some(5));
        assert_eq!(check_each(&b, 0, &[(0, Some(100))], 500), Err(Over::User));
        assert_eq!(check_each(&b, 0, &[(0, Some(5_000))], 2_000), Ok(()));
        assert_eq!(check_each(&Budgets::default(), 0, &[(0, None)], 5_000), Ok(()));
        // Shared: one user's lower limit refuses the call for both.
        assert_eq!(check_each(&b, 0, &[(0, Some(100)), (0, None)], 400), Err(Over::User));
    }

    #[test]
    fn one_notice_per_window() {
        assert!(notice_due(None, Window::Daily, NOW));
        assert!(!notice_due(Some(NOW - HOUR_MS), Window::Daily, NOW), "earlier today");
        assert!(notice_due(Some(NOW - DAY_MS), Window::Daily, NOW), "yesterday");
        let rolling = Window::Rolling(Duration::from_secs(2 * 3600));
        assert!(!notice_due(Some(NOW - HOUR_MS), rolling, NOW));
        assert!(notice_due(Some(NOW - 3 * HOUR_MS), rolling, NOW));
    }
}
