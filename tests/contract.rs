//! Contract test: every REST endpoint of the sandbox, errors included, answers with the status
//! and the body shape Discord's OpenAPI spec documents (`crates/sandbox/tests/fixtures/discord-openapi.json`,
//! vendored with its provenance). The spec's own known quirks are excused only by the explicit
//! list in `tests/contract/exceptions.rs`.
//!
//! The check is a table: one row per operation and case, run in order against one sandbox, each
//! row able to save IDs from its answer for later rows. A missing endpoint is one failing row
//! with its name; the test prints the whole table and fails if any row does.

#[path = "contract/exceptions.rs"]
mod exceptions;
#[path = "contract/rows.rs"]
mod rows;
#[path = "contract/schema.rs"]
mod schema;

use std::collections::HashMap;

use reqwest::Method;
use serde_json::Value;
use troupe::sandbox::spec::WorldSpec;
use troupe::sandbox::Sandbox;

use rows::{rows, Body, Row, Target, THUMBS_UP, TOKEN, UNKNOWN};
use schema::Spec;

/// What one row came to.
struct Outcome {
    name: &'static str,
    operation: String,
    failures: Vec<String>,
}

/// Fills `{param}` in a path template from saved values.
fn fill_path(template: &str, params: &[(&str, &str)], saved: &HashMap<String, String>) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        let end = rest[start..].find('}').ok_or("unclosed { in path")? + start;
        let param = &rest[start + 1..end];
        let key = params.iter().find(|(p, _)| *p == param).map_or(param, |(_, k)| *k);
        let value = saved
            .get(key)
            .ok_or_else(|| format!("needs `{key}`, which no earlier row saved"))?;
        out.push_str(&rest[..start]);
        out.push_str(value);
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Replaces `{{key}}` in a body or query with saved values.
fn fill_text(text: &str, saved: &HashMap<String, String>) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let end = rest[start..].find("}}").ok_or("unclosed {{")? + start;
        let key = &rest[start + 2..end];
        let value = saved
            .get(key)
            .ok_or_else(|| format!("needs `{key}`, which no earlier row saved"))?;
        out.push_str(&rest[..start]);
        out.push_str(value);
        rest = &rest[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// A `multipart/form-data` body as Discord takes uploads: `payload_json` and `files[0]`.
fn multipart(payload: &str, filename: &str, content_type: &str, bytes: &[u8]) -> (String, Vec<u8>) {
    let boundary = "contract-test-boundary-7d1e";
    let mut body = Vec::new();
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"payload_json\"\r\nContent-Type: application/json\r\n\r\n{payload}\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"files[0]\"; filename=\"{filename}\"\r\nContent-Type: {content_type}\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// The runner: one sandbox, the spec, the values rows saved.
struct Runner {
    base: String,
    http: reqwest::Client,
    spec: Spec,
    saved: HashMap<String, String>,
    exceptions_used: Vec<&'static str>,
}

impl Runner {
    /// Runs one row; never panics, so one broken endpoint cannot hide the others.
    async fn run(&mut self, row: &Row) -> Outcome {
        let operation = match &row.target {
            Target::Api { method, path } => self
                .spec
                .operation_id(method, path)
                .unwrap_or_else(|e| format!("(not in the spec: {e})")),
            Target::Control { path } => format!("control POST /sandbox{path}"),
        };
        let failures = match self.call(row).await {
            Ok(failures) => failures,
            Err(e) => vec![e],
        };
        Outcome {
            name: row.name,
            operation,
            failures,
        }
    }

    async fn call(&mut self, row: &Row) -> Result<Vec<String>, String> {
        let (method, url, spec_path) = match &row.target {
            Target::Api { method, path } => {
                self.spec.operation_id(method, path)?;
                let filled = fill_path(path, &row.params, &self.saved)?;
                let query = fill_text(row.query, &self.saved)?;
                (*method, format!("{}/api/v10{filled}{query}", self.base), Some(*path))
            }
            Target::Control { path } => ("POST", format!("{}/sandbox{path}", self.base), None),
        };
        let mut req = self.http.request(Method::from_bytes(method.as_bytes()).unwrap(), &url);
        if let Some(token) = row.token {
            req = req.header("Authorization", format!("Bot {token}"));
        }
        req = match &row.body {
            Body::None => req,
            Body::Json(text) => req
                .header("Content-Type", "application/json")
                .body(fill_text(text, &self.saved)?),
            Body::Multipart {
                payload,
                filename,
                content_type,
                bytes,
            } => {
                let (ct, body) = multipart(&fill_text(payload, &self.saved)?, filename, content_type, bytes);
                req.header("Content-Type", ct).body(body)
            }
        };
        let mut failures = Vec::new();
        let (status, bytes) = self
            .send_waiting_out_429s(req, spec_path.map(|p| (method, p)), &mut failures)
            .await?;
        let text = String::from_utf8_lossy(&bytes);
        if status != row.status {
            failures.push(format!("status {status}, expected {}: {}", row.status, clip(&text)));
        }
        let body: Option<Value> = if bytes.is_empty() {
            None
        } else {
            match serde_json::from_slice(&bytes) {
                Ok(v) => Some(v),
                Err(e) => {
                    failures.push(format!("body is not JSON ({e}): {}", clip(&text)));
                    return Ok(failures);
                }
            }
        };
        if let Some(code) = row.code {
            let got = body
                .as_ref()
                .and_then(|b| b.get("code"))
                .cloned()
                .unwrap_or(Value::Null);
            if got.as_i64() != Some(code) {
                failures.push(format!("error code {got}, expected {code}"));
            }
        }
        if let Some(path) = spec_path {
            failures.extend(self.check_shape(method, path, status, body.as_ref()));
        }
        for (key, pointer) in &row.save {
            match body.as_ref().and_then(|b| b.pointer(pointer)).and_then(Value::as_str) {
                Some(v) => {
                    self.saved.insert(key.to_string(), v.to_string());
                }
                None => failures.push(format!("no string at {pointer} to save as `{key}`")),
            }
        }
        Ok(failures)
    }

    /// Sends `req` as a client of Discord must: a 429 (whose body is checked against the spec
    /// too) is waited out for its `retry_after` and the request sent again, a few times at most.
    /// Rate limits are not what this test is about, but the sandbox enforces Discord's.
    async fn send_waiting_out_429s(
        &mut self,
        req: reqwest::RequestBuilder,
        operation: Option<(&str, &str)>,
        failures: &mut Vec<String>,
    ) -> Result<(u16, Vec<u8>), String> {
        for _ in 0..5 {
            let attempt = req.try_clone().ok_or("the request cannot be resent")?;
            let resp = attempt.send().await.map_err(|e| format!("request failed: {e}"))?;
            let status = resp.status().as_u16();
            let bytes = resp
                .bytes()
                .await
                .map_err(|e| format!("reading the body failed: {e}"))?;
            if status != 429 || operation.is_none() {
                return Ok((status, bytes.to_vec()));
            }
            let body: Value = serde_json::from_slice(&bytes).map_err(|e| format!("a 429 body is not JSON: {e}"))?;
            if let Some((method, path)) = operation {
                failures.extend(self.check_shape(method, path, 429, Some(&body)));
            }
            let retry_after = body["retry_after"].as_f64().ok_or("a 429 without retry_after")?;
            tokio::time::sleep(std::time::Duration::from_secs_f64(retry_after.clamp(0.0, 10.0))).await;
        }
        Err("still rate limited after 5 tries".to_string())
    }

    /// The body against the schema the spec documents for this status.
    fn check_shape(&mut self, method: &str, path: &str, status: u16, body: Option<&Value>) -> Vec<String> {
        let schema = match self.spec.response_schema(method, path, status) {
            Ok(s) => s.cloned(),
            Err(e) => return vec![e],
        };
        match (schema, body) {
            (None, None) => Vec::new(),
            (None, Some(b)) => vec![format!(
                "the spec documents no body for {status}, got {}",
                clip(&b.to_string())
            )],
            (Some(_), None) => vec![format!("the spec documents a JSON body for {status}, got none")],
            (Some(schema), Some(body)) => {
                let checked = self.spec.validate(&schema, body);
                self.exceptions_used.extend(checked.excused);
                let mut lines = Vec::new();
                for v in &checked.violations {
                    v.lines(0, &mut lines);
                }
                lines.into_iter().map(|l| format!("shape: {l}")).collect()
            }
        }
    }
}

fn clip(text: &str) -> String {
    let t: String = text.chars().take(300).collect();
    if t.len() < text.len() {
        format!("{t}…")
    } else {
        t
    }
}

/// The values rows start from: the world's IDs and a few fixed inputs.
fn seed(state: &Value) -> HashMap<String, String> {
    let id_of = |kind: &str, name: &str| -> String {
        state[kind]
            .as_array()
            .and_then(|a| a.iter().find(|x| x["name"] == name))
            .and_then(|x| x["id"].as_str())
            .unwrap_or_else(|| panic!("no {kind} named {name} in {state}"))
            .to_string()
    };
    let bot = id_of("users", "Ada");
    let guild = state["guilds"][0]["id"].as_str().expect("a guild").to_string();
    [
        ("channel_id", id_of("channels", "general")),
        ("guild_id", guild),
        ("human", id_of("users", "alice")),
        ("user_id", bot.clone()),
        // Discord gives a bot the ID of its application; rows read the real one when they can.
        ("application_id", bot),
        ("unknown", UNKNOWN.to_string()),
        ("emoji_name", THUMBS_UP.to_string()),
        ("bad_emoji", "not_an_emoji".to_string()),
        ("bad_token", "x".repeat(68)),
        // One character over Discord's 256 for an embed title.
        ("long_title", "T".repeat(257)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// The table: every row with its operation, each failure under it, then the quirks used.
fn print_table(outcomes: &[Outcome], exceptions_used: &[&'static str]) {
    let failed = outcomes.iter().filter(|o| !o.failures.is_empty()).count();
    println!("contract: {} rows, {failed} failed", outcomes.len());
    for o in outcomes {
        let mark = if o.failures.is_empty() { "ok  " } else { "FAIL" };
        println!("{mark} {} [{}]", o.name, o.operation);
        for f in &o.failures {
            println!("       {f}");
        }
    }
    let mut used = exceptions_used.to_vec();
    used.sort();
    used.dedup();
    for name in used {
        let e = exceptions::EXCEPTIONS
            .iter()
            .find(|e| e.name == name)
            .expect("a listed exception");
        println!("excused by the spec's known quirk \"{}\": {}", e.name, e.why);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rest_answer_matches_discords_openapi_spec() {
    let spec_text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/crates/sandbox/tests/fixtures/discord-openapi.json"
    ))
    .expect("the vendored spec");
    let spec = Spec::new(serde_json::from_str(&spec_text).expect("the spec is JSON")).with_excuses(exceptions::excuse);
    let bots = [("Ada".to_string(), TOKEN.to_string())];
    let sandbox = Sandbox::start(&WorldSpec::default(), &bots, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let state: Value = reqwest::get(format!("{}/sandbox/state", sandbox.url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let saved = seed(&state);
    let mut runner = Runner {
        base: sandbox.url(),
        http: reqwest::Client::new(),
        spec,
        saved,
        exceptions_used: Vec::new(),
    };

    let mut outcomes = Vec::new();
    for row in rows() {
        outcomes.push(runner.run(&row).await);
    }

    let failed: Vec<&Outcome> = outcomes.iter().filter(|o| !o.failures.is_empty()).collect();
    print_table(&outcomes, &runner.exceptions_used);
    sandbox.stop().await;
    let names: Vec<&str> = failed.iter().map(|o| o.name).collect();
    assert!(
        failed.is_empty(),
        "{} of {} contract rows failed: {names:?} (details above)",
        failed.len(),
        outcomes.len()
    );
}

#[test]
fn paths_and_bodies_are_filled_from_saved_values_or_say_what_is_missing() {
    let saved: HashMap<String, String> = [("channel_id", "1"), ("thread_id", "2"), ("m", "3")]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let path = "/channels/{channel_id}/messages/{message_id}";
    assert_eq!(
        fill_path(path, &[("message_id", "m")], &saved).unwrap(),
        "/channels/1/messages/3"
    );
    assert_eq!(
        fill_path(path, &[("channel_id", "thread_id"), ("message_id", "m")], &saved).unwrap(),
        "/channels/2/messages/3"
    );
    assert!(fill_path(path, &[], &saved).unwrap_err().contains("`message_id`"));
    assert_eq!(fill_text(r#"{"id": "{{m}}"}"#, &saved).unwrap(), r#"{"id": "3"}"#);
    assert!(fill_text("{{nope}}", &saved).unwrap_err().contains("`nope`"));
}

#[test]
fn an_upload_is_a_multipart_body_with_payload_json_and_files_0() {
    let (content_type, body) = multipart(r#"{"content": "x"}"#, "a.png", "image/png", b"PNG");
    let boundary = content_type.strip_prefix("multipart/form-data; boundary=").unwrap();
    let text = String::from_utf8(body).unwrap();
    assert!(text.starts_with(&format!("--{boundary}\r\n")));
    assert!(text.contains("name=\"payload_json\"\r\nContent-Type: application/json\r\n\r\n{\"content\": \"x\"}\r\n"));
    assert!(text.contains("name=\"files[0]\"; filename=\"a.png\"\r\nContent-Type: image/png\r\n\r\nPNG\r\n"));
    assert!(text.ends_with(&format!("--{boundary}--\r\n")));
}
