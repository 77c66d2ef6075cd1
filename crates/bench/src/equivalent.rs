//! The equivalent bot: the minimal program that does troupe's job per reply, so troupe's
//! overhead is measured against the work itself, not only against the Discord plumbing. A bare
//! serenity client that, for every human message mentioning it, makes the same streaming
//! OpenAI request to the same LLM test server (system prompt + the message, `stream: true`,
//! usage asked for), reads the stream to its end, makes one durable write (a sled insert of the
//! exchange, then a flush, as a group commit like troupe's store), and replies with the streamed text. No history, no queue, no retry:
//! the floor for "call the model, remember, answer". Its REST client is troupe's and the bare
//! bot's ([`crate::baseline::sandbox_rest_client`]: TLS through the sandbox's proxy, serenity's
//! rate limiter on). `troupe-bench equivalent` runs one client per token in this process.

use std::sync::Arc;

use futures::StreamExt;
use serenity::all::{Context, EventHandler, GatewayIntents, HttpBuilder, Message};

use crate::{BenchError, Context as _, Result};

struct Equivalent {
    llm: reqwest::Client,
    /// `{base_url}/chat/completions`.
    completions: String,
    db: sled::Db,
    flusher: Arc<Flusher>,
    /// The bot's user ID, from READY.
    me: std::sync::OnceLock<serenity::all::UserId>,
}

/// Group commit, as troupe's store does it: one flush at a time (sled 0.34.7's `flush_async`
/// deadlocks when called concurrently, spacejam/sled#1308), and a caller whose write an already
/// completed flush covered returns at once.
#[derive(Default)]
struct Flusher {
    /// Writes counted so far (each counted after it was made).
    requested: std::sync::atomic::AtomicU64,
    /// The highest count a completed flush covers.
    covered: tokio::sync::Mutex<u64>,
}

#[serenity::async_trait]
impl EventHandler for Equivalent {
    async fn ready(&self, _ctx: Context, ready: serenity::all::Ready) {
        let _ = self.me.set(ready.user.id);
    }

    async fn message(&self, ctx: Context, msg: Message) {
        if msg.author.bot {
            return;
        }
        if !crate::baseline::is_mentioned(&self.me, &msg) {
            return;
        }
        let Ok(text) = self.complete(&msg.content).await else {
            return; // unanswered: the harness's deadline reports it
        };
        let key = format!("{}/{}", msg.channel_id, msg.id);
        let record = serde_json::json!({"user": msg.content, "assistant": text}).to_string();
        if self.db.insert(key.as_bytes(), record.as_bytes()).is_err() || !self.flush().await {
            return;
        }
        let _ = msg.reply(&ctx.http, text).await;
    }
}

impl Equivalent {
    /// Makes every write so far durable; `false` if it failed.
    async fn flush(&self) -> bool {
        use std::sync::atomic::Ordering::SeqCst;
        let mine = self.flusher.requested.fetch_add(1, SeqCst) + 1;
        let mut covered = self.flusher.covered.lock().await;
        if *covered >= mine {
            return true;
        }
        let upto = self.flusher.requested.load(SeqCst);
        let db = self.db.clone();
        let ok = matches!(tokio::task::spawn_blocking(move || db.flush()).await, Ok(Ok(_)));
        if ok {
            *covered = upto;
        }
        ok
    }

    /// The streamed reply's text.
    async fn complete(&self, content: &str) -> Result<String> {
        let body = serde_json::json!({
            "model": "m",
            "messages": [
                {"role": "system", "content": "You are a helpful persona."},
                {"role": "user", "content": content},
            ],
            "stream": true,
            "max_tokens": 1024,
            "stream_options": {"include_usage": true},
        });
        let resp = self
            .llm
            .post(&self.completions)
            .json(&body)
            .send()
            .await
            .context("LLM request")?;
        if !resp.status().is_success() {
            return Err(BenchError(format!("LLM status {}", resp.status())));
        }
        let mut stream = resp.bytes_stream();
        let mut buffer = Vec::new();
        let mut text = String::new();
        while let Some(chunk) = stream.next().await {
            buffer.extend_from_slice(&chunk.context("LLM stream")?);
            while let Some(end) = buffer.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = buffer.drain(..=end).collect();
                text.push_str(&delta(&line));
            }
        }
        text.push_str(&delta(&buffer));
        Ok(text)
    }
}

/// The content delta of one server-sent-event line (`data: {...}`), or "".
fn delta(line: &[u8]) -> String {
    let line = String::from_utf8_lossy(line);
    let Some(data) = line.trim().strip_prefix("data:") else {
        return String::new();
    };
    serde_json::from_str::<serde_json::Value>(data.trim())
        .ok()
        .and_then(|v| v["choices"][0]["delta"]["content"].as_str().map(str::to_string))
        .unwrap_or_default()
}

/// Connects one equivalent bot per token to the sandbox, with the LLM at `llm_base` and the
/// store in `store`, and runs until killed.
pub async fn run(sandbox_url: &str, tokens: &[String], llm_base: &str, store: &str) -> Result<()> {
    let intents = GatewayIntents::GUILDS
        | GatewayIntents::GUILD_MESSAGES
        | GatewayIntents::DIRECT_MESSAGES
        | GatewayIntents::MESSAGE_CONTENT;
    let db = sled::open(store).context("opening the equivalent bot's store")?;
    let llm = reqwest::Client::new();
    let rest = crate::baseline::sandbox_rest_client(sandbox_url).await?;
    let flusher = Arc::new(Flusher::default());
    let mut tasks = Vec::new();
    for token in tokens {
        let http = HttpBuilder::new(token).client(rest.clone()).build();
        let handler = Arc::new(Equivalent {
            llm: llm.clone(),
            completions: format!("{llm_base}/chat/completions"),
            db: db.clone(),
            flusher: flusher.clone(),
            me: std::sync::OnceLock::new(),
        });
        let mut client = serenity::client::ClientBuilder::new_with_http(http, intents)
            .event_handler_arc(handler)
            .await
            .context("building a serenity client")?;
        tasks.push(tokio::spawn(async move { client.start().await }));
    }
    for task in tasks {
        task.await
            .context("an equivalent bot panicked")?
            .context("an equivalent bot stopped")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_deltas_are_read_from_data_lines() {
        assert_eq!(delta(br#"data: {"choices":[{"delta":{"content":"po"}}]}"#), "po");
        assert_eq!(delta(b"data: [DONE]"), "");
        assert_eq!(delta(br#"data: {"choices":[],"usage":{"total_tokens":3}}"#), "");
        assert_eq!(delta(b": keep-alive"), "");
    }
}
