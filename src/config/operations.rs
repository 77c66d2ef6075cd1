//! The operations tables validated: `[http]`, `[breaker]` (and agents' `breaker = {...}`),
//! `[limits]` and `[restarts]`. Every bad value is reported with its line, field and range.
//! The range helpers every table uses (`int`, `float`, `secs`) live here.

use std::net::SocketAddr;
use std::time::Duration;

use toml::Spanned;

use super::choice::{parse_enum, Choice};
use super::error::Report;
use super::raw::{RawBreaker, RawHttp, RawLimits, RawRestarts};
use crate::breaker::{BreakerSettings, OnTrip};
use crate::ops::restarts::RestartPolicy;
use crate::ops::system::SystemLimits;

/// Where the operations HTTP server listens unless told otherwise.
pub const DEFAULT_HTTP_LISTEN: &str = "0.0.0.0:23459";

/// An integer in `min..=max`, or `default` (the error is reported).
pub(crate) fn int(
    field: &str,
    v: &Option<Spanned<i64>>,
    default: u64,
    min: i64,
    max: i64,
    err: &mut Report<'_>,
) -> u64 {
    match v.as_ref().map(|m| (*m.get_ref(), m.span())) {
        None => default,
        Some((n, _)) if (min..=max).contains(&n) => n as u64,
        Some((n, span)) => {
            err(
                Some(span),
                field.to_string(),
                format!("{n} is out of range; use {min} to {max}"),
            );
            default
        }
    }
}

/// A number in `min..=max`, or `default`.
pub(crate) fn float(
    field: &str,
    v: &Option<Spanned<f64>>,
    default: f64,
    min: f64,
    max: f64,
    err: &mut Report<'_>,
) -> f64 {
    match v.as_ref().map(|m| (*m.get_ref(), m.span())) {
        None => default,
        Some((n, _)) if (min..=max).contains(&n) => n,
        Some((n, span)) => {
            err(
                Some(span),
                field.to_string(),
                format!("{n} is out of range; use {min} to {max}"),
            );
            default
        }
    }
}

/// A duration in seconds within `0 < secs <= max`, or `default`.
pub(crate) fn secs(
    field: &str,
    v: &Option<Spanned<f64>>,
    max: f64,
    default: Duration,
    err: &mut Report<'_>,
) -> Duration {
    match v {
        None => default,
        Some(s) if *s.get_ref() > 0.0 && *s.get_ref() <= max => Duration::from_secs_f64(*s.get_ref()),
        Some(s) => {
            err(
                Some(s.span()),
                field.to_string(),
                format!(
                    "{} is out of range; use a number of seconds above 0 and at most {max}",
                    s.get_ref()
                ),
            );
            default
        }
    }
}

impl Choice for OnTrip {
    const WHAT: &'static str = "on_trip";
    const WORDS: &'static [(&'static str, Self)] = &[("exit", OnTrip::Exit), ("isolate", OnTrip::Isolate)];
}

/// `[http] listen`.
pub(crate) fn http_listen(raw: &RawHttp, err: &mut Report<'_>) -> SocketAddr {
    let default: SocketAddr = DEFAULT_HTTP_LISTEN.parse().expect("default address parses");
    let Some(listen) = &raw.listen else { return default };
    listen.get_ref().parse().unwrap_or_else(|_| {
        err(
            Some(listen.span()),
            "http.listen".into(),
            format!(
                "`{}` is not an address; write HOST:PORT, e.g. \"0.0.0.0:23459\"",
                listen.get_ref()
            ),
        );
        default
    })
}

/// `[breaker]` over `base` (the defaults, or the global table for an agent's override); `at` is
/// the field prefix in messages (`breaker` or `agents[1].breaker`).
pub(crate) fn breaker(raw: &RawBreaker, base: BreakerSettings, at: &str, err: &mut Report<'_>) -> BreakerSettings {
    let on_trip = parse_enum(raw.on_trip.as_ref(), format!("{at}.on_trip"), "", err).unwrap_or(base.on_trip);
    BreakerSettings {
        max_failures: int(
            &format!("{at}.max_failures"),
            &raw.max_failures,
            u64::from(base.max_failures),
            1,
            1_000,
            err,
        ) as u32,
        on_trip,
        cooldown: Duration::from_secs(int(
            &format!("{at}.cooldown_secs"),
            &raw.cooldown_secs,
            base.cooldown.as_secs(),
            1,
            86_400,
            err,
        )),
    }
}

/// `[limits]`.
pub(crate) fn limits(raw: &RawLimits, err: &mut Report<'_>) -> SystemLimits {
    let d = SystemLimits::default();
    let max_rss_mb = raw
        .max_rss_mb
        .as_ref()
        .map(|_| int("limits.max_rss_mb", &raw.max_rss_mb, 0, 1, 1 << 30, err));
    let interval = float(
        "limits.check_interval_secs",
        &raw.check_interval_secs,
        d.check_interval.as_secs_f64(),
        0.01,
        86_400.0,
        err,
    );
    SystemLimits {
        max_load_average: float(
            "limits.max_load_average",
            &raw.max_load_average,
            d.max_load_average,
            0.0,
            1e6,
            err,
        ),
        max_rss_mb: max_rss_mb.filter(|mb| *mb > 0),
        check_interval: Duration::from_secs_f64(interval),
    }
}

/// `[restarts]`.
pub(crate) fn restarts(raw: &RawRestarts, err: &mut Report<'_>) -> RestartPolicy {
    let d = RestartPolicy::default();
    let initial = int(
        "restarts.backoff_initial_ms",
        &raw.backoff_initial_ms,
        d.initial_backoff.as_millis() as u64,
        1,
        86_400_000,
        err,
    );
    let max = int(
        "restarts.backoff_max_ms",
        &raw.backoff_max_ms,
        d.max_backoff.as_millis() as u64,
        1,
        86_400_000,
        err,
    );
    if let (Some(m), true) = (&raw.backoff_max_ms, max < initial) {
        err(
            Some(m.span()),
            "restarts.backoff_max_ms".into(),
            format!("{max} is below backoff_initial_ms ({initial}); make it at least as long"),
        );
    }
    RestartPolicy {
        window: Duration::from_secs(int(
            "restarts.window_secs",
            &raw.window_secs,
            d.window.as_secs(),
            1,
            604_800,
            err,
        )),
        free_starts: int(
            "restarts.free_starts",
            &raw.free_starts,
            u64::from(d.free_starts),
            0,
            1_000,
            err,
        ) as u32,
        initial_backoff: Duration::from_millis(initial),
        max_backoff: Duration::from_millis(max.max(initial)),
    }
}
