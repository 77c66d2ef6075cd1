//! How gateway payloads travel: the connection URL's `v`, `encoding` and `compress` parameters,
//! and `compress=zlib-stream` (one zlib context per connection, every payload flushed with
//! `Z_SYNC_FLUSH` so it ends in `00 00 ff ff` and is sent as one binary frame), as Discord does.

use axum::extract::ws::Message as WsMessage;
use flate2::{Compress, Compression, FlushCompress};

/// Gateway versions Discord still serves (the docs list 10 and 9 as available).
pub const SUPPORTED_VERSIONS: [u8; 2] = [9, 10];

/// What a connection asked for in its URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectParams {
    /// The gateway version (`v`); 10 when absent.
    pub version: u8,
    /// Whether `compress=zlib-stream` was asked for.
    pub zlib_stream: bool,
}

/// Reads the connection URL's query string. A version Discord does not serve closes the
/// connection with 4012 (Invalid API version); an encoding other than `json` (the sandbox does not
/// speak ETF) or an unknown compression closes it with 4002 (Decode error): the client would not
/// understand what the sandbox sends, nor the sandbox what it sends.
pub fn parse_query(query: Option<&str>) -> Result<ConnectParams, (u16, &'static str)> {
    let mut params = ConnectParams {
        version: 10,
        zlib_stream: false,
    };
    for pair in query.unwrap_or_default().split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "v" => {
                params.version = value
                    .parse::<u8>()
                    .ok()
                    .filter(|v| SUPPORTED_VERSIONS.contains(v))
                    .ok_or((4012, "Invalid API version"))?;
            }
            "encoding" if value == "json" => {}
            "encoding" => return Err((4002, "Decode error: unsupported encoding (the sandbox speaks json)")),
            "compress" if value == "zlib-stream" => params.zlib_stream = true,
            "compress" => return Err((4002, "Decode error: unsupported compression (zlib-stream only)")),
            _ => {}
        }
    }
    Ok(params)
}

/// Turns payloads into websocket frames for one connection: JSON text frames, or with
/// zlib-stream binary frames cut from one continuous zlib stream.
pub struct Encoder {
    zlib: Option<Compress>,
}

impl std::fmt::Debug for Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encoder")
            .field("zlib_stream", &self.zlib.is_some())
            .finish()
    }
}

impl Encoder {
    /// An encoder for a connection with these parameters.
    pub fn new(params: ConnectParams) -> Self {
        Self {
            zlib: params.zlib_stream.then(|| Compress::new(Compression::default(), true)),
        }
    }

    /// The frame carrying `payload`.
    pub fn frame(&mut self, payload: String) -> WsMessage {
        match &mut self.zlib {
            None => WsMessage::Text(payload.into()),
            Some(z) => WsMessage::Binary(deflate_sync(z, payload.as_bytes()).into()),
        }
    }
}

/// Compresses `input` into the stream `z` and sync-flushes, so the output ends with the
/// `00 00 ff ff` marker that tells a zlib-stream client a whole payload has arrived.
fn deflate_sync(z: &mut Compress, input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len() / 2 + 64);
    let mut consumed = 0;
    loop {
        if out.capacity() - out.len() < 64 {
            out.reserve(out.capacity().max(1024));
        }
        let before = z.total_in();
        let status = z.compress_vec(&input[consumed..], &mut out, FlushCompress::Sync);
        consumed += (z.total_in() - before) as usize;
        // Done once all input is in and the flush left room to spare (a full buffer may hold more).
        if status.is_err() || (consumed == input.len() && out.len() < out.capacity()) {
            return out;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::{Decompress, FlushDecompress};

    fn inflate(d: &mut Decompress, input: &[u8]) -> String {
        let mut out = Vec::with_capacity(input.len() * 8 + 1024);
        let mut consumed = 0;
        while consumed < input.len() {
            let before = d.total_in();
            d.decompress_vec(&input[consumed..], &mut out, FlushDecompress::Sync)
                .unwrap();
            consumed += (d.total_in() - before) as usize;
            out.reserve(4096);
        }
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn versions_and_encodings_are_checked_like_discord() {
        assert_eq!(
            parse_query(None),
            Ok(ConnectParams {
                version: 10,
                zlib_stream: false
            })
        );
        assert_eq!(parse_query(Some("v=9&encoding=json")).unwrap().version, 9);
        assert!(
            parse_query(Some("v=10&encoding=json&compress=zlib-stream"))
                .unwrap()
                .zlib_stream
        );
        assert_eq!(parse_query(Some("v=8")).unwrap_err().0, 4012);
        assert_eq!(parse_query(Some("v=ten")).unwrap_err().0, 4012);
        assert_eq!(parse_query(Some("v=10&encoding=etf")).unwrap_err().0, 4002);
        assert_eq!(parse_query(Some("compress=zstd-stream")).unwrap_err().0, 4002);
    }

    #[test]
    fn zlib_stream_frames_share_one_context_and_end_in_the_sync_marker() {
        let mut enc = Encoder::new(ConnectParams {
            version: 10,
            zlib_stream: true,
        });
        let mut dec = Decompress::new(true);
        let big = format!("{{\"d\":\"{}\"}}", "x".repeat(200_000));
        for payload in [r#"{"op":10}"#, big.as_str(), r#"{"op":11}"#] {
            let WsMessage::Binary(bytes) = enc.frame(payload.to_string()) else {
                panic!("not binary")
            };
            assert!(bytes.ends_with(&[0, 0, 0xff, 0xff]), "{:?}", &bytes[bytes.len() - 4..]);
            assert_eq!(inflate(&mut dec, &bytes), payload);
        }
    }

    #[test]
    fn without_compression_frames_are_text() {
        let mut enc = Encoder::new(ConnectParams {
            version: 10,
            zlib_stream: false,
        });
        assert!(matches!(enc.frame("{}".to_string()), WsMessage::Text(t) if t.as_str() == "{}"));
    }
}
