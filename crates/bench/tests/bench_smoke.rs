//! The benchmark harness (`make bench`) is not part of `make test`, so it could rot unseen:
//! this runs its smallest scenario once (overhead, a handful of messages, debug build) and
//! checks that it produced figures. No timing is asserted; benchmarks print figures.

use std::process::Command;

#[test]
fn the_quick_overhead_scenario_produces_figures() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("bench.json");
    let out = Command::new(env!("CARGO_BIN_EXE_troupe-bench"))
        .args(["--quick", "--only", "overhead", "--overhead-messages", "5", "--json"])
        .arg(&json)
        .output()
        .expect("troupe-bench runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "troupe-bench failed:\n{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("p50 reply latency"),
        "no table printed:\n{stdout}\n{stderr}"
    );

    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert!(report["machine"]["cores"].as_u64().unwrap() >= 1, "{report}");
    let figures = report["figures"].as_array().unwrap();
    let p50 = figures
        .iter()
        .find(|f| f["scenario"] == "overhead" && f["figure"].as_str().unwrap().starts_with("p50"))
        .unwrap_or_else(|| panic!("no p50 figure: {report}"));
    // Both sides were measured: troupe's figure and the bare serenity baseline's.
    assert!(p50["value"].as_f64().unwrap() > 0.0, "{p50}");
    assert!(p50["baseline"].as_f64().unwrap() > 0.0, "{p50}");
    assert!(p50["ratio"].as_f64().is_some(), "{p50}");
    // And the equivalent bot (LLM stream + durable write per reply) answered too.
    let equiv = figures
        .iter()
        .find(|f| f["scenario"] == "overhead" && f["figure"] == "p50 vs equivalent bot")
        .unwrap_or_else(|| panic!("no equivalent-bot figure: {report}"));
    assert!(equiv["baseline"].as_f64().unwrap() > 0.0, "{equiv}");
}
