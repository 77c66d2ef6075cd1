//! What a benchmark run produces: figures (each beside its baseline or bound), the machine they
//! were measured on, the table printed at the end, and the JSON written for comparing runs.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

/// One measured figure.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Figure {
    /// Scenario, e.g. `overhead`.
    pub scenario: String,
    /// What was measured, e.g. `p50 reply latency`.
    pub figure: String,
    /// Unit of `value` and `baseline`.
    pub unit: String,
    /// troupe's figure; `None` when it could not be measured (see `note`).
    pub value: Option<f64>,
    /// The baseline (bare serenity bot) or the theoretical bound, in the same unit.
    pub baseline: Option<f64>,
    /// `value / baseline`.
    pub ratio: Option<f64>,
    /// Anything the figure needs to be read right ("not available: ...", "bound", counts).
    pub note: String,
}

impl Figure {
    /// A figure with a baseline (or bound) to compare with.
    pub fn new(scenario: &str, figure: &str, unit: &str, value: f64, baseline: Option<f64>) -> Self {
        let ratio = baseline.filter(|b| *b != 0.0).map(|b| value / b);
        Self {
            scenario: scenario.into(),
            figure: figure.into(),
            unit: unit.into(),
            value: Some(value),
            baseline,
            ratio,
            note: String::new(),
        }
    }

    /// A figure that could not be measured, and why.
    pub fn unavailable(scenario: &str, figure: &str, unit: &str, why: &str) -> Self {
        Self {
            scenario: scenario.into(),
            figure: figure.into(),
            unit: unit.into(),
            value: None,
            baseline: None,
            ratio: None,
            note: format!("not available: {why}"),
        }
    }

    /// Adds a note.
    pub fn note(mut self, note: impl Into<String>) -> Self {
        self.note = note.into();
        self
    }
}

/// The machine and build a run was measured on.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Machine {
    /// Logical CPUs available.
    pub cores: usize,
    /// `model name` from /proc/cpuinfo.
    pub cpu: String,
    /// Kernel release.
    pub kernel: String,
    /// Total memory, MiB.
    pub memory_mib: u64,
    /// Build profile of the harness and of the troupe binary it ran.
    pub profile: String,
    /// The troupe commit when the run started, if it was made in a git checkout.
    pub commit: String,
}

impl Machine {
    /// Reads the facts of this machine.
    pub fn detect(troupe_bin: &std::path::Path) -> Self {
        let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
        let cpu = read("/proc/cpuinfo")
            .lines()
            .find_map(|l| {
                l.strip_prefix("model name")
                    .map(|r| r.trim_start_matches([' ', '\t', ':']).to_string())
            })
            .unwrap_or_else(|| "unknown".into());
        let memory_mib = read("/proc/meminfo")
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |kb| kb / 1024);
        let troupe_profile = troupe_bin
            .parent()
            .and_then(|p| p.file_name())
            .map_or_else(|| "unknown".into(), |p| p.to_string_lossy().into_owned());
        let harness_profile = if cfg!(debug_assertions) { "debug" } else { "release" };
        let git = |args: &[&str]| {
            std::process::Command::new("git")
                .args(args)
                .output()
                .ok()
                .filter(|o| o.status.success())
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        };
        let commit = match (git(&["rev-parse", "--short", "HEAD"]), git(&["status", "--porcelain"])) {
            (Some(c), Some(changes)) if !changes.is_empty() => format!("{c}+uncommitted changes"),
            (Some(c), _) => c,
            _ => String::new(),
        };
        Self {
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu,
            kernel: read("/proc/sys/kernel/osrelease").trim().to_string(),
            memory_mib,
            profile: format!("harness {harness_profile}, troupe {troupe_profile}"),
            commit,
        }
    }
}

/// A whole run, as written to JSON.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// `full` or `quick`.
    pub mode: String,
    /// The command line.
    pub command: String,
    /// Unix time the run started.
    pub started_unix: u64,
    /// How long the run took.
    pub duration_secs: f64,
    /// Where it ran.
    pub machine: Machine,
    /// Every figure, in scenario order.
    pub figures: Vec<Figure>,
}

fn number(v: f64) -> String {
    let a = v.abs();
    if a == 0.0 {
        "0".into()
    } else if a >= 1000.0 {
        format!("{v:.0}")
    } else if a >= 100.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

fn cell(v: Option<f64>) -> String {
    v.map_or_else(|| "—".into(), number)
}

impl Report {
    /// The table printed at the end of a run; with `previous`, a column comparing each figure
    /// with the same figure of an earlier run.
    pub fn table(&self, previous: Option<&Report>) -> String {
        let mut rows: Vec<[String; 7]> = vec![[
            "scenario".into(),
            "figure".into(),
            "value".into(),
            "unit".into(),
            "baseline".into(),
            "ratio".into(),
            if previous.is_some() { "vs previous" } else { "note" }.into(),
        ]];
        for f in &self.figures {
            let last = match previous {
                Some(p) => p
                    .figures
                    .iter()
                    .find(|o| o.scenario == f.scenario && o.figure == f.figure)
                    .and_then(|o| o.value)
                    .zip(f.value)
                    .map_or_else(
                        || "—".into(),
                        |(o, n)| format!("{} → {} ({:+.0}%)", number(o), number(n), (n / o - 1.0) * 100.0),
                    ),
                None => f.note.clone(),
            };
            rows.push([
                f.scenario.clone(),
                f.figure.clone(),
                cell(f.value),
                f.unit.clone(),
                cell(f.baseline),
                f.ratio.map_or_else(|| "—".into(), |r| format!("{r:.2}×")),
                last,
            ]);
        }
        let mut widths = [0usize; 7];
        for row in &rows {
            for (w, c) in widths.iter_mut().zip(row) {
                *w = (*w).max(c.chars().count());
            }
        }
        let m = &self.machine;
        let mut out = format!(
            "troupe benchmarks ({} mode, {:.0} s) on {} cores, {}, {} MiB, kernel {}; {}{}\n\n",
            self.mode,
            self.duration_secs,
            m.cores,
            m.cpu,
            m.memory_mib,
            m.kernel,
            m.profile,
            if m.commit.is_empty() {
                String::new()
            } else {
                format!(", commit {}", m.commit)
            },
        );
        for (i, row) in rows.iter().enumerate() {
            let mut line = String::new();
            for (j, (c, w)) in row.iter().zip(widths).enumerate() {
                let pad = w - c.chars().count();
                // Numbers right-aligned, text left-aligned; the last column unpadded.
                match j {
                    2 | 4 | 5 => line.push_str(&format!("{}{c}  ", " ".repeat(pad))),
                    6 => line.push_str(c),
                    _ => line.push_str(&format!("{c}{}  ", " ".repeat(pad))),
                }
            }
            let _ = writeln!(out, "{}", line.trim_end());
            if i == 0 {
                let _ = writeln!(out, "{}", "-".repeat(widths.iter().sum::<usize>() + 12));
            }
        }
        out
    }
}

/// The `q`-quantile (0..=1) of samples, nearest rank; `None` when there are none.
pub fn quantile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_nearest_rank() {
        let s: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&s, 0.5), Some(50.0));
        assert_eq!(quantile(&s, 0.99), Some(99.0));
        assert_eq!(quantile(&s, 1.0), Some(100.0));
        assert_eq!(quantile(&[7.0], 0.9), Some(7.0));
        assert_eq!(quantile(&[], 0.5), None);
    }

    #[test]
    fn ratios_come_from_the_baseline_and_unavailable_figures_say_why() {
        let f = Figure::new("overhead", "p50", "ms", 3.0, Some(1.5));
        assert_eq!(f.ratio, Some(2.0));
        let u = Figure::unavailable("replay", "seconds", "s", "no answers within 30 s");
        assert_eq!(u.value, None);
        assert!(u.note.contains("not available"));
        let report = Report {
            mode: "quick".into(),
            command: String::new(),
            started_unix: 0,
            duration_secs: 1.0,
            machine: Machine::detect(std::path::Path::new("/x/release/troupe")),
            figures: vec![f, u],
        };
        let table = report.table(None);
        assert!(table.contains("2.00×"), "{table}");
        assert!(table.contains("not available: no answers"), "{table}");
        let compared = report.table(Some(&report));
        assert!(compared.contains("3.00 → 3.00 (+0%)"), "{compared}");
    }
}
