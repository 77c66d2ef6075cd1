//! The results table, printed and saved as Markdown (`target/tmp/chaos-latest.md`), so a run's
//! figures can be pasted into `docs/reliability.md`.

use std::fmt::Write;

use super::ledger::Tally;
use super::scenario::{Knobs, ScenarioResult};
use super::store::StoreCheck;

/// What the run is about to do.
pub fn preamble(k: &Knobs) {
    println!(
        "chaos: {} kill -9 cycles, {} fault cycles, LLM outages {:?}, settle ≤ {:?} (quiet {:?}), seed {:#x}",
        k.kill_cycles, k.fault_cycles, k.outages, k.settle, k.quiet, k.seed
    );
    println!(
        "troupe supports: [delivery] give_up_after_secs: {}, failure_notice: {}",
        yes(k.support.give_up),
        yes(k.support.failure_notice)
    );
}

fn yes(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no (not configured; no notice can be recognised)"
    }
}

/// One line as each scenario ends.
pub fn progress(r: &ScenarioResult) {
    let t = &r.tally;
    println!(
        "chaos: {:<13} {:>6.0} s  expected {} answered {} given up {} lost {} duplicate {} spurious {} half-written {}",
        r.name, r.secs, t.expected, t.answered, t.given_up, t.lost, t.duplicate, t.spurious, t.half_written
    );
}

fn exits(r: &ScenarioResult) -> String {
    if r.lifecycle.exits.is_empty() {
        return "-".into();
    }
    r.lifecycle
        .exits
        .iter()
        .map(|(code, n)| format!("{code}×{n}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The table (Markdown), the problems per scenario and the store checks.
pub fn render(k: &Knobs, results: &[ScenarioResult], store: Option<&[StoreCheck]>) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| scenario | kill -9 | starts | exits | faults | expected | answered | given up | **lost** | **duplicate** | quiet | **spurious** | unattributed | **half-written** | seconds |"
    );
    let _ = writeln!(out, "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|");
    let mut total = Tally::default();
    let (mut kills, mut starts, mut faults, mut secs) = (0, 0, 0, 0.0);
    let row = |out: &mut String, name: &str, kills, starts, exits: &str, faults, t: &Tally, secs: f64| {
        let _ = writeln!(
            out,
            "| {name} | {kills} | {starts} | {exits} | {faults} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {secs:.0} |",
            t.expected, t.answered, t.given_up, t.lost, t.duplicate, t.quiet, t.spurious, t.unattributed, t.half_written
        );
    };
    for r in results {
        row(
            &mut out,
            r.name,
            r.lifecycle.kills,
            r.lifecycle.starts,
            &exits(r),
            r.faults,
            &r.tally,
            r.secs,
        );
        total.add(&r.tally);
        kills += r.lifecycle.kills;
        starts += r.lifecycle.starts;
        faults += r.faults;
        secs += r.secs;
    }
    if results.len() > 1 {
        row(&mut out, "**total**", kills, starts, "", faults, &total, secs);
    }
    if let Some(checks) = store {
        let passed = checks.iter().filter(|c| c.passed()).count();
        let _ = writeln!(
            out,
            "\nDamaged store (separate check, not traffic): {passed} of {} refused with exit code 6 and left untouched.",
            checks.len()
        );
        for c in checks {
            let _ = writeln!(
                out,
                "- {}: exit code {}, files {}",
                c.damage,
                c.code.map_or("none (kept running; killed)".into(), |c| c.to_string()),
                if c.untouched { "untouched" } else { "CHANGED" }
            );
        }
    }
    for r in results {
        if r.problems.is_empty() && r.notes.is_empty() {
            continue;
        }
        let _ = writeln!(out, "\n{}:", r.name);
        for n in &r.notes {
            let _ = writeln!(out, "- note: {n}");
        }
        let mut by_kind: std::collections::BTreeMap<(&str, &str), usize> = Default::default();
        for p in &r.problems {
            *by_kind.entry((p.what, p.posted.kind)).or_default() += 1;
        }
        for ((what, kind), n) in by_kind {
            let _ = writeln!(out, "- {what}: {n} × {kind}");
        }
        for p in r.problems.iter().take(8) {
            let _ = writeln!(
                out,
                "  - {} {} ({} for {}, message {} in channel {}, {} repl{}{})",
                p.what,
                p.posted.marker,
                p.posted.kind,
                if p.posted.agent.is_empty() {
                    "nobody"
                } else {
                    &p.posted.agent
                },
                p.posted.id,
                p.posted.channel,
                p.replies,
                if p.replies == 1 { "y" } else { "ies" },
                if p.swept { "; a later reply echoed it" } else { "" },
            );
        }
    }
    let _ = writeln!(out, "\nseed {:#x}", k.seed);
    out
}

/// Saves the table as `target/tmp/chaos-latest.md`.
pub fn save(table: &str) {
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("chaos-latest.md");
    match std::fs::write(&path, table) {
        Ok(()) => println!("chaos: table saved to {}", path.display()),
        Err(e) => println!("chaos: cannot save the table to {}: {e}", path.display()),
    }
}
