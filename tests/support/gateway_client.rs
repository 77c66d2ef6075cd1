//! A raw gateway client for the sandbox tests that speak the protocol themselves: JSON text
//! frames, or `compress=zlib-stream` binary frames inflated with one zlib context per
//! connection, as a Discord library does. Every read has a deadline.
// Each test binary that includes this file uses a part of it.
#![allow(dead_code)]

use std::time::Duration;

use flate2::{Decompress, FlushDecompress};
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long one frame may take.
pub const FRAME_DEADLINE: Duration = Duration::from_secs(20);

/// What the server sent next.
#[derive(Debug)]
pub enum Frame {
    /// A payload.
    Payload(Value),
    /// A close, with its code.
    Close(Option<u16>),
}

/// One gateway connection.
pub struct Gateway {
    stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
    zlib: Option<Decompress>,
    buffer: Vec<u8>,
    /// Binary frames received (zlib-stream).
    pub binary_frames: usize,
}

impl Gateway {
    /// Connects to `url`; `zlib` expects zlib-stream binary frames (the URL must ask for them).
    pub async fn connect(url: &str, zlib: bool) -> Self {
        let (stream, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        Self {
            stream,
            zlib: zlib.then(|| Decompress::new(true)),
            buffer: Vec::new(),
            binary_frames: 0,
        }
    }

    /// Connects and reads HELLO.
    pub async fn hello(url: &str, zlib: bool) -> Self {
        let mut g = Self::connect(url, zlib).await;
        let hello = g.payload().await;
        assert_eq!(hello["op"], 10, "first frame must be HELLO: {hello}");
        g
    }

    /// Sends a payload.
    pub async fn send(&mut self, v: Value) {
        self.stream.send(WsMessage::text(v.to_string())).await.unwrap();
    }

    /// Sends IDENTIFY.
    pub async fn identify(&mut self, token: &str, intents: u64) {
        let d =
            json!({"token": token, "intents": intents, "properties": {"os": "linux", "browser": "t", "device": "t"}});
        self.send(json!({"op": 2, "d": d})).await;
    }

    fn inflate(&mut self, bytes: &[u8]) -> Option<Value> {
        self.buffer.extend_from_slice(bytes);
        if !self.buffer.ends_with(&[0, 0, 0xff, 0xff]) {
            return None;
        }
        let z = self
            .zlib
            .as_mut()
            .expect("a binary frame on a connection without zlib-stream");
        let mut out = Vec::with_capacity(self.buffer.len() * 8 + 4096);
        let mut consumed = 0;
        while consumed < self.buffer.len() {
            let before = z.total_in();
            z.decompress_vec(&self.buffer[consumed..], &mut out, FlushDecompress::Sync)
                .expect("valid zlib stream");
            consumed += (z.total_in() - before) as usize;
            out.reserve(out.capacity().max(4096));
        }
        self.buffer.clear();
        Some(serde_json::from_slice(&out).expect("inflated payload is JSON"))
    }

    /// The next frame, or a panic after the deadline.
    pub async fn frame(&mut self) -> Frame {
        loop {
            let next = tokio::time::timeout(FRAME_DEADLINE, self.stream.next())
                .await
                .unwrap_or_else(|_| panic!("no gateway frame within {FRAME_DEADLINE:?}"));
            match next {
                Some(Ok(WsMessage::Text(t))) => {
                    assert!(self.zlib.is_none(), "a text frame on a zlib-stream connection: {t}");
                    return Frame::Payload(serde_json::from_str(t.as_str()).unwrap());
                }
                Some(Ok(WsMessage::Binary(b))) => {
                    self.binary_frames += 1;
                    if let Some(v) = self.inflate(&b) {
                        return Frame::Payload(v);
                    }
                }
                Some(Ok(WsMessage::Close(c))) => return Frame::Close(c.map(|c| u16::from(c.code))),
                Some(Ok(_)) => continue,
                Some(Err(e)) => panic!("websocket error: {e}"),
                None => return Frame::Close(None),
            }
        }
    }

    /// The next payload (a close is a failure).
    pub async fn payload(&mut self) -> Value {
        match self.frame().await {
            Frame::Payload(v) => v,
            Frame::Close(c) => panic!("expected a payload, got close {c:?}"),
        }
    }

    /// The next dispatch of type `t`, skipping other dispatches.
    pub async fn until(&mut self, t: &str) -> Value {
        loop {
            let v = self.payload().await;
            if v["op"] == 0 && v["t"] == t {
                return v["d"].clone();
            }
        }
    }

    /// The next payload, which must be a dispatch of type `t`.
    pub async fn dispatch(&mut self, t: &str) -> Value {
        let v = self.payload().await;
        assert_eq!(
            (v["op"].as_u64(), v["t"].as_str()),
            (Some(0), Some(t)),
            "expected {t}: {v}"
        );
        v["d"].clone()
    }

    /// The code the server closes with next (a payload first is a failure).
    pub async fn close_code(&mut self) -> Option<u16> {
        match self.frame().await {
            Frame::Close(c) => c,
            Frame::Payload(v) => panic!("expected the gateway to close, got {v}"),
        }
    }
}

/// Polls `check` until it holds, or panics with `what` after [`FRAME_DEADLINE`].
pub async fn wait_until(what: &str, check: impl Fn() -> bool) {
    let start = std::time::Instant::now();
    while !check() {
        assert!(start.elapsed() < FRAME_DEADLINE, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
