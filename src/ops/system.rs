//! The system watchdog: every `[limits] check_interval_secs` it reads the host's 1-minute load
//! average and troupe's resident memory (sysinfo), exports both as metrics, and requests a clean
//! exit (codes 8 and 9) when one reaches its limit. An overloaded host answers slowly and
//! unreliably; exiting lets the orchestrator place troupe elsewhere, and the crash-loop back-off
//! (`[restarts]`) keeps it from hammering Discord meanwhile.

use std::time::Duration;

use tokio::task::JoinHandle;

use super::exit::{ExitReason, ExitRequests};
use super::telemetry;

/// `[limits]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SystemLimits {
    /// Exit when the 1-minute load average is at or above this.
    pub max_load_average: f64,
    /// Exit when troupe's resident memory reaches this many MiB (`None`: no ceiling).
    pub max_rss_mb: Option<u64>,
    /// How often to check.
    pub check_interval: Duration,
}

impl Default for SystemLimits {
    fn default() -> Self {
        Self {
            max_load_average: 21.0,
            max_rss_mb: None,
            check_interval: Duration::from_secs(30),
        }
    }
}

/// One reading.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// 1-minute load average.
    pub load_average: f64,
    /// Resident memory in bytes, when it could be read.
    pub rss_bytes: Option<u64>,
}

/// Whether a reading breaks a limit (load first: it is the likelier cause of both).
pub fn verdict(sample: Sample, limits: &SystemLimits) -> Option<ExitReason> {
    if sample.load_average >= limits.max_load_average {
        return Some(ExitReason::LoadTooHigh {
            load: sample.load_average,
            max: limits.max_load_average,
        });
    }
    let rss_mb = sample.rss_bytes? / (1024 * 1024);
    let max_mb = limits.max_rss_mb?;
    (rss_mb >= max_mb).then_some(ExitReason::MemoryTooHigh { rss_mb, max_mb })
}

/// Reads the load average and this process's resident memory.
pub fn sample(system: &mut Option<sysinfo::System>) -> Sample {
    let load_average = sysinfo::System::load_average().map(|l| l.one).unwrap_or(0.0);
    let rss_bytes = sysinfo::get_current_pid().ok().and_then(|pid| {
        let system = system.as_mut()?;
        system.refresh_processes_specifics(
            sysinfo::ProcessesToUpdate::Some(&[pid]),
            true,
            sysinfo::ProcessRefreshKind::nothing().with_memory(),
        );
        system.process(pid).map(|p| p.memory())
    });
    Sample {
        load_average,
        rss_bytes,
    }
}

/// Starts the watchdog; the first check runs at once.
pub fn spawn(limits: SystemLimits, exits: ExitRequests) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut system = sysinfo::System::new().ok();
        let mut ticks = tokio::time::interval(limits.check_interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let reading = sample(&mut system);
            telemetry::system(reading.load_average, reading.rss_bytes);
            tracing::debug!(
                load_average = reading.load_average,
                rss_bytes = reading.rss_bytes,
                "system check"
            );
            if let Some(reason) = verdict(reading, &limits) {
                exits.request(reason);
                return;
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1024 * 1024;

    fn limits(max_rss_mb: Option<u64>) -> SystemLimits {
        SystemLimits {
            max_load_average: 21.0,
            max_rss_mb,
            check_interval: Duration::from_secs(30),
        }
    }

    #[test]
    fn load_at_or_above_the_limit_exits() {
        let at = Sample {
            load_average: 21.0,
            rss_bytes: None,
        };
        assert_eq!(
            verdict(at, &limits(None)),
            Some(ExitReason::LoadTooHigh { load: 21.0, max: 21.0 })
        );
        let below = Sample {
            load_average: 20.9,
            rss_bytes: Some(10 * MIB),
        };
        assert_eq!(verdict(below, &limits(None)), None);
    }

    #[test]
    fn memory_ceiling_applies_only_when_set() {
        let big = Sample {
            load_average: 1.0,
            rss_bytes: Some(600 * MIB),
        };
        assert_eq!(verdict(big, &limits(None)), None);
        assert_eq!(
            verdict(big, &limits(Some(512))),
            Some(ExitReason::MemoryTooHigh {
                rss_mb: 600,
                max_mb: 512
            })
        );
        assert_eq!(verdict(big, &limits(Some(601))), None);
    }

    #[test]
    fn this_process_has_a_resident_size() {
        let mut system = sysinfo::System::new().ok();
        let s = sample(&mut system);
        assert!(s.rss_bytes.is_some_and(|b| b > 0), "{s:?}");
        assert!(s.load_average >= 0.0);
    }
}
