//! Another Discord library against the sandbox: a discord.py bot (`tests/clients/discordpy_bot.py`)
//! with only its REST base URL and gateway URL changed logs in and runs thirteen everyday checks
//! (login, reply, embed, DM, history, typing, edit, delete, files, reactions, threads, webhooks, a
//! slash command). Each must print `ok NAME`.
//!
//! discord.py is installed from PyPI, at a pinned version, into a virtual environment under
//! `target/tmp` that later runs reuse. Without Python or without the install this test fails
//! saying so (it never passes without having run); `make test` installs it when it can and
//! otherwise leaves this test out by name (`tests/tools.sh`; under CI nothing is left out).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use troupe::sandbox::spec::WorldSpec;
use troupe::sandbox::Sandbox;

/// The discord.py release the checks are written against (tests/tools.sh installs the same).
const DISCORD_PY: &str = "2.6.4";
/// Every check the script must report, in its order.
const CHECKS: &[&str] = &[
    "login",
    "reply",
    "embed",
    "dm",
    "history",
    "typing",
    "edit",
    "delete",
    "files",
    "reactions",
    "threads",
    "webhooks",
    "slash_command",
];
/// The whole run's limit: thirteen checks, each waiting at most 20 s for an event.
const RUN_LIMIT: Duration = Duration::from_secs(300);

/// `target/tmp/discordpy-VERSION`: where the virtual environment lives (tests/tools.sh agrees).
fn venv_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("discordpy-{DISCORD_PY}"))
}

fn venv_python(venv: &Path) -> PathBuf {
    venv.join("bin").join("python")
}

/// Whether `python` imports discord.py at the pinned version.
fn has_discord_py(python: &Path) -> bool {
    Command::new(python)
        .args([
            "-c",
            &format!("import discord, sys; sys.exit(discord.__version__ != {DISCORD_PY:?})"),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The venv's Python with discord.py in it, installing it when missing; fails the test (never
/// skips it) when Python or the install is unavailable.
fn discord_py() -> PathBuf {
    let venv = venv_dir();
    let python = venv_python(&venv);
    if has_discord_py(&python) {
        return python;
    }
    let install = format!("pip install discord.py=={DISCORD_PY}, from PyPI; needs python3 with venv");
    let made = Command::new("python3")
        .args(["-m", "venv", "--clear"])
        .arg(&venv)
        .output();
    match made {
        Ok(out) if out.status.success() => {}
        Ok(out) => common::tool_missing(
            &format!(
                "a Python virtual environment ({})",
                String::from_utf8_lossy(&out.stderr).trim()
            ),
            &install,
        ),
        Err(e) => common::tool_missing(&format!("python3 ({e})"), &install),
    }
    let pip = Command::new(&python)
        .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check"])
        .arg(format!("discord.py=={DISCORD_PY}"))
        .output()
        .expect("run pip");
    if !pip.status.success() || !has_discord_py(&python) {
        let err = String::from_utf8_lossy(&pip.stderr);
        let last = err.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("no output");
        common::tool_missing(&format!("discord.py {DISCORD_PY} (pip: {last})"), &install);
    }
    python
}

/// Each check's result from the script's output: `Ok(())` or the reason it failed.
fn results(stdout: &str) -> Vec<(String, Result<(), String>)> {
    stdout
        .lines()
        .filter_map(|line| {
            if let Some(name) = line.strip_prefix("ok ") {
                Some((name.trim().to_string(), Ok(())))
            } else {
                let rest = line.strip_prefix("fail ")?;
                let (name, why) = rest.split_once(": ").unwrap_or((rest, ""));
                Some((name.to_string(), Err(why.to_string())))
            }
        })
        .collect()
}

/// Every check named in [`CHECKS`] that did not report `ok`, with why.
fn failures(results: &[(String, Result<(), String>)]) -> Vec<String> {
    CHECKS
        .iter()
        .filter_map(|name| match results.iter().find(|(n, _)| n == name) {
            Some((_, Ok(()))) => None,
            Some((_, Err(why))) => Some(format!("{name}: {why}")),
            None => Some(format!("{name}: not reported")),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_discord_py_bot_works_against_the_sandbox() {
    // Installing takes a while and blocks; a failure there is this test's failure, as it said.
    let python = match tokio::task::spawn_blocking(discord_py).await {
        Ok(python) => python,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    };
    let bots = [("Ada".to_string(), "sandbox.ada".to_string())];
    let sandbox = Sandbox::start(&WorldSpec::default(), &bots, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients/discordpy_bot.py");
    let child = tokio::process::Command::new(&python)
        .arg(script)
        .env("SANDBOX_URL", sandbox.url())
        .env("BOT_TOKEN", "sandbox.ada")
        .env("CHANNEL", "general")
        .env("HUMAN", "alice")
        .env("CHECK_TRACEBACKS", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start the discord.py bot");
    let started = Instant::now();
    // On timeout the child is dropped, which kills it (`kill_on_drop`).
    let out = match tokio::time::timeout(RUN_LIMIT, child.wait_with_output()).await {
        Ok(out) => out.expect("the bot's output"),
        Err(_) => panic!("the discord.py bot did not finish within {RUN_LIMIT:?}"),
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("discord.py {DISCORD_PY}, {:.1?}:\n{stdout}", started.elapsed());
    sandbox.stop().await;
    let failed = failures(&results(&stdout));
    assert!(
        failed.is_empty() && stdout.lines().any(|l| l == "done"),
        "{} of {} discord.py checks failed:\n  {}\n--- bot stderr ---\n{stderr}",
        failed.len(),
        CHECKS.len(),
        failed.join("\n  ")
    );
}

#[test]
fn a_check_missing_from_the_output_counts_as_failed() {
    let r = results("ok login\nfail reply: NotFound: 404\nnoise\nok embed\n");
    let failed = failures(&r);
    assert!(failed.contains(&"reply: NotFound: 404".to_string()), "{failed:?}");
    assert!(failed.contains(&"dm: not reported".to_string()), "{failed:?}");
    assert!(!failed.iter().any(|f| f.starts_with("login") || f.starts_with("embed")));
    assert_eq!(failed.len(), CHECKS.len() - 2);
}
