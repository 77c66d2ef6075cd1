//! Incremental Server-Sent Events parser: turns arbitrary network byte chunks into complete SSE events.
//!
//! Follows the WHATWG "event stream interpretation" rules: `\n`, `\r\n` and `\r` line endings
//! (also when `\r\n` is split across chunks), a leading UTF-8 BOM is dropped, lines starting with
//! `:` are comments, `field: value` with one optional space after the colon, `data` lines joined
//! with `\n`, `event` names the event, `id`/`retry`/unknown fields are ignored, and a blank line
//! dispatches the event (an event with no `data` line is not dispatched).
//!
//! Deliberate choices:
//! - Bytes are buffered and only complete lines are decoded, so multibyte UTF-8 characters split
//!   across chunks survive; invalid UTF-8 becomes U+FFFD, never a panic.
//! - [`SseParser::finish`] (EOF) processes an unterminated last line and dispatches a pending
//!   event even without the closing blank line. The spec discards it, but real recorded streams
//!   end right after `data: {"type":"message_stop"}` with no newline.
//! - Memory is bounded: a line longer than the limit (default [`DEFAULT_MAX_LINE_BYTES`]) is cut
//!   at the limit (on a char boundary) and the rest of that line is dropped; an event's joined
//!   data is capped the same way. The event is still dispatched, so a cut JSON payload fails to
//!   decode downstream and surfaces as a `Malformed` stream error rather than silently vanishing.
//!   [`SseParser::truncated_lines`] counts these cuts.

/// Default cap on one line and on one event's data, in bytes (1 MiB).
pub const DEFAULT_MAX_LINE_BYTES: usize = 1 << 20;

/// One dispatched Server-Sent Event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field, or `None` when absent or empty (the spec's default type `message`).
    pub event: Option<String>,
    /// The `data:` lines joined with `\n` (no trailing newline). Trailing spaces are kept.
    pub data: String,
}

/// Incremental SSE parser. Feed it chunks with [`push`](Self::push), then call [`finish`](Self::finish) at EOF.
#[derive(Debug, Clone)]
pub struct SseParser {
    /// Bytes of the current, not yet terminated line (at most `max_bytes`).
    line: Vec<u8>,
    /// The current line exceeded `max_bytes`; its excess bytes are being dropped.
    line_overflow: bool,
    /// The previous byte was a `\r` that ended a line; a following `\n` belongs to it.
    after_cr: bool,
    /// No line has been decoded yet (a BOM may still need stripping).
    first_line: bool,
    /// Data buffer: each `data` value followed by `\n`.
    data: String,
    /// Event type buffer.
    event: String,
    /// Cap on `line` and `data`, in bytes.
    max_bytes: usize,
    /// How many lines or data buffers were cut at the cap.
    truncated: u64,
}

impl Default for SseParser {
    fn default() -> Self {
        Self::new()
    }
}

impl SseParser {
    /// A parser with the default 1 MiB line and event limit.
    pub fn new() -> Self {
        Self::with_max_line_bytes(DEFAULT_MAX_LINE_BYTES)
    }

    /// A parser whose lines and event data are cut at `max_bytes` bytes (at least 1).
    pub fn with_max_line_bytes(max_bytes: usize) -> Self {
        SseParser {
            line: Vec::new(),
            line_overflow: false,
            after_cr: false,
            first_line: true,
            data: String::new(),
            event: String::new(),
            max_bytes: max_bytes.max(1),
            truncated: 0,
        }
    }

    /// How many overlong lines or event data buffers have been cut so far.
    pub fn truncated_lines(&self) -> u64 {
        self.truncated
    }

    /// Feeds a chunk of bytes and returns the events completed by it, in order.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<SseEvent> {
        let mut out = Vec::new();
        let mut rest = chunk;
        while !rest.is_empty() {
            if self.after_cr {
                self.after_cr = false;
                if let Some((b'\n', tail)) = rest.split_first() {
                    rest = tail;
                    continue;
                }
            }
            let end = rest.iter().position(|&b| b == b'\n' || b == b'\r');
            match end.and_then(|p| rest.split_at_checked(p)) {
                Some((line, terminated)) => {
                    self.append_line_bytes(line);
                    let (terminator, tail) = terminated.split_first().unwrap_or((&b'\n', &[]));
                    self.after_cr = *terminator == b'\r';
                    rest = tail;
                    self.end_line(&mut out);
                }
                None => {
                    self.append_line_bytes(rest);
                    break;
                }
            }
        }
        out
    }

    /// Signals EOF: processes an unterminated last line, dispatches a pending event even without
    /// the closing blank line, and resets the parser for reuse.
    pub fn finish(&mut self) -> Vec<SseEvent> {
        let mut out = Vec::new();
        if !self.line.is_empty() || self.line_overflow {
            self.end_line(&mut out);
        }
        self.dispatch(&mut out);
        let max = self.max_bytes;
        let truncated = self.truncated;
        *self = Self::with_max_line_bytes(max);
        self.truncated = truncated;
        out
    }

    /// Appends bytes to the current line, dropping whatever exceeds the cap.
    fn append_line_bytes(&mut self, bytes: &[u8]) {
        if self.line_overflow {
            return;
        }
        let room = self.max_bytes.saturating_sub(self.line.len());
        match bytes.get(..room) {
            Some(fits) if fits.len() < bytes.len() => {
                self.line.extend_from_slice(fits);
                self.line_overflow = true;
            }
            _ => self.line.extend_from_slice(bytes),
        }
    }

    /// Decodes and interprets the buffered line.
    fn end_line(&mut self, out: &mut Vec<SseEvent>) {
        let mut bytes = std::mem::take(&mut self.line);
        if self.line_overflow {
            self.line_overflow = false;
            self.truncated += 1;
            let keep = utf8_cut_point(&bytes);
            bytes.truncate(keep);
        }
        let decoded = String::from_utf8_lossy(&bytes);
        let mut line: &str = &decoded;
        if self.first_line {
            self.first_line = false;
            line = line.strip_prefix('\u{FEFF}').unwrap_or(line);
        }
        self.process_line(line, out);
        // Reuse the allocation for the next line.
        bytes.clear();
        self.line = bytes;
    }

    /// Applies one decoded line to the event being built.
    fn process_line(&mut self, line: &str, out: &mut Vec<SseEvent>) {
        if line.is_empty() {
            self.dispatch(out);
            return;
        }
        if line.starts_with(':') {
            return;
        }
        let (field, value) = match line.find(':') {
            Some(p) => {
                let v = &line[p + 1..];
                (&line[..p], v.strip_prefix(' ').unwrap_or(v))
            }
            None => (line, ""),
        };
        match field {
            "event" => {
                self.event.clear();
                self.event.push_str(value);
            }
            "data" => self.append_data(value),
            // `id`, `retry` and unknown fields are ignored.
            _ => {}
        }
    }

    /// Appends a `data` value and a newline to the data buffer, within the cap.
    fn append_data(&mut self, value: &str) {
        if self.data.len() >= self.max_bytes {
            self.truncated += 1;
            return;
        }
        let room = self.max_bytes - self.data.len();
        if value.len() > room {
            let mut cut = room;
            while !value.is_char_boundary(cut) {
                cut -= 1;
            }
            self.data.push_str(&value[..cut]);
            self.truncated += 1;
        } else {
            self.data.push_str(value);
        }
        self.data.push('\n');
    }

    /// Dispatches the pending event if it has data, and resets the buffers.
    fn dispatch(&mut self, out: &mut Vec<SseEvent>) {
        let event = std::mem::take(&mut self.event);
        if self.data.is_empty() {
            return;
        }
        let mut data = std::mem::take(&mut self.data);
        if data.ends_with('\n') {
            data.pop();
        }
        out.push(SseEvent {
            event: if event.is_empty() { None } else { Some(event) },
            data,
        });
    }
}

/// Length of `bytes` without a trailing incomplete UTF-8 sequence (so a cut lands on a char boundary).
fn utf8_cut_point(bytes: &[u8]) -> usize {
    let len = bytes.len();
    // Walk back over at most 3 continuation bytes to the lead byte of the last sequence.
    let mut start = len;
    for _ in 0..4 {
        if start == 0 {
            return len;
        }
        start -= 1;
        let Some(&b) = bytes.get(start) else {
            return len;
        };
        if b & 0xC0 != 0x80 {
            let need = match b {
                0x00..=0x7F => 1,
                0xC0..=0xDF => 2,
                0xE0..=0xEF => 3,
                0xF0..=0xF7 => 4,
                _ => return len, // invalid lead byte: leave it to the lossy decoder
            };
            return if len - start >= need { len } else { start };
        }
    }
    len
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::stream::test_support::{chunks, events, load_fixtures, MODES};

    fn ev(event: Option<&str>, data: &str) -> SseEvent {
        SseEvent {
            event: event.map(str::to_string),
            data: data.to_string(),
        }
    }

    fn parse_all(input: &[u8]) -> Vec<SseEvent> {
        events(input, None)
    }

    #[test]
    fn basic_lf() {
        let got = parse_all(b"data: hello\n\ndata: world\n\n");
        assert_eq!(got, vec![ev(None, "hello"), ev(None, "world")]);
    }

    #[test]
    fn crlf_and_cr_line_endings() {
        let want = vec![ev(Some("a"), "1"), ev(None, "2")];
        assert_eq!(parse_all(b"event: a\r\ndata: 1\r\n\r\ndata: 2\r\n\r\n"), want);
        assert_eq!(parse_all(b"event: a\rdata: 1\r\rdata: 2\r\r"), want);
        assert_eq!(parse_all(b"event: a\r\ndata: 1\n\rdata: 2\r\n\n"), want);
    }

    #[test]
    fn crlf_split_across_chunks() {
        // Counting a split `\r\n` as two line endings would dispatch "1" and "2" separately.
        let mut p = SseParser::new();
        let mut got = p.push(b"data: 1\r");
        got.extend(p.push(b"\ndata: 2\r"));
        got.extend(p.push(b"\n"));
        got.extend(p.push(b"\r"));
        got.extend(p.push(b"\n"));
        got.extend(p.finish());
        assert_eq!(got, vec![ev(None, "1\n2")]);

        // A lone `\r` at a chunk end followed by a non-`\n` byte is a line ending on its own.
        let mut p = SseParser::new();
        let mut got = p.push(b"data: x\r");
        got.extend(p.push(b"\rdata: y\r"));
        got.extend(p.push(b"\r"));
        assert_eq!(got, vec![ev(None, "x"), ev(None, "y")]);
    }

    #[test]
    fn comments_are_ignored() {
        let got = parse_all(b": ping\n\n: OPENROUTER PROCESSING\n\ndata: x\n: inside\ndata: y\n\n:\n\n");
        assert_eq!(got, vec![ev(None, "x\ny")]);
    }

    #[test]
    fn multi_line_data_joined() {
        let got = parse_all(b"data: a\ndata:b\ndata:  c\ndata\n\n");
        assert_eq!(got, vec![ev(None, "a\nb\n c\n")]);
    }

    #[test]
    fn empty_data_line_dispatches_empty_event() {
        assert_eq!(parse_all(b"data:\n\n"), vec![ev(None, "")]);
        assert_eq!(parse_all(b"data\n\n"), vec![ev(None, "")]);
    }

    #[test]
    fn optional_single_space_only() {
        assert_eq!(parse_all(b"data:x\n\n"), vec![ev(None, "x")]);
        assert_eq!(parse_all(b"data:   x\n\n"), vec![ev(None, "  x")]);
        assert_eq!(parse_all(b"event:e\ndata:1\n\n"), vec![ev(Some("e"), "1")]);
    }

    #[test]
    fn event_field_and_reset() {
        let got = parse_all(b"event: message_start\ndata: {}\n\ndata: plain\n\nevent: \ndata: z\n\n");
        assert_eq!(
            got,
            vec![ev(Some("message_start"), "{}"), ev(None, "plain"), ev(None, "z")]
        );
        // An event without data is not dispatched and its type does not leak into the next one.
        let got = parse_all(b"event: lonely\n\ndata: after\n\n");
        assert_eq!(got, vec![ev(None, "after")]);
    }

    #[test]
    fn id_retry_and_unknown_fields_ignored() {
        let got = parse_all(b"id: 7\nretry: 1000\nfoo: bar\ndata: d\nid\n\n");
        assert_eq!(got, vec![ev(None, "d")]);
    }

    #[test]
    fn field_names_are_exact() {
        // "Data" or " data" are unknown fields per spec.
        let got = parse_all(b"Data: no\n data: no\ndata: yes\n\n");
        assert_eq!(got, vec![ev(None, "yes")]);
    }

    #[test]
    fn trailing_spaces_kept() {
        let got = parse_all(b"data: {\"a\":1}    \n\n");
        assert_eq!(got, vec![ev(None, "{\"a\":1}    ")]);
    }

    #[test]
    fn bom_stripped_once() {
        let got = parse_all(b"\xEF\xBB\xBFdata: 1\n\n\xEF\xBB\xBFdata: 2\n\n");
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0], ev(None, "1"));
        // BOM split across chunks.
        let mut p = SseParser::new();
        let mut got = p.push(b"\xEF");
        got.extend(p.push(b"\xBB"));
        got.extend(p.push(b"\xBFdata: ok\n\n"));
        assert_eq!(got, vec![ev(None, "ok")]);
    }

    #[test]
    fn utf8_split_across_chunks() {
        let text = "data: héllo wörld — 日本語 🎉\n\n".as_bytes();
        for split in 0..=text.len() {
            let mut p = SseParser::new();
            let mut got = p.push(&text[..split]);
            got.extend(p.push(&text[split..]));
            got.extend(p.finish());
            assert_eq!(got, vec![ev(None, "héllo wörld — 日本語 🎉")], "split at {split}");
        }
        assert_eq!(events(text, Some(0)), vec![ev(None, "héllo wörld — 日本語 🎉")]);
    }

    #[test]
    fn invalid_utf8_becomes_replacement_char() {
        let got = parse_all(b"data: a\xFF\xFEb\xC3\n\n");
        assert_eq!(got, vec![ev(None, "a\u{FFFD}\u{FFFD}b\u{FFFD}")]);
        let got = parse_all(b"\xC3\xA9vent: x\ndata: \xE6\x97\n\n");
        assert_eq!(got, vec![ev(None, "\u{FFFD}")]);
    }

    #[test]
    fn finish_flushes_unterminated_event() {
        let mut p = SseParser::new();
        let got = p.push(b"event: message_stop\ndata: {\"type\":\"message_stop\"}");
        assert!(got.is_empty());
        assert_eq!(
            p.finish(),
            vec![ev(Some("message_stop"), "{\"type\":\"message_stop\"}")]
        );
        // Terminated line but no blank line.
        let mut p = SseParser::new();
        assert!(p.push(b"data: [DONE]\n").is_empty());
        assert_eq!(p.finish(), vec![ev(None, "[DONE]")]);
        // Nothing pending: nothing dispatched; a trailing `\r` is harmless.
        let mut p = SseParser::new();
        assert_eq!(p.push(b"data: 1\r\r"), vec![ev(None, "1")]);
        assert!(p.finish().is_empty());
        // Reusable after finish.
        assert_eq!(p.push(b"data: 2\n\n"), vec![ev(None, "2")]);
    }

    #[test]
    fn overlong_line_is_cut() {
        let mut p = SseParser::with_max_line_bytes(16);
        let mut input = b"data: ".to_vec();
        input.extend(std::iter::repeat_n(b'x', 100));
        input.extend(b"\n\ndata: short\n\n");
        let mut got = Vec::new();
        for c in input.chunks(7) {
            got.extend(p.push(c));
        }
        got.extend(p.finish());
        assert_eq!(got, vec![ev(None, "xxxxxxxxxx"), ev(None, "short")]);
        assert_eq!(p.truncated_lines(), 1);
    }

    #[test]
    fn overlong_line_cut_on_char_boundary() {
        // "data: " is 6 bytes; "é" is 2 bytes; a cap of 9 would split the second "é".
        let mut p = SseParser::with_max_line_bytes(9);
        let mut got = p.push("data: ééé\n\n".as_bytes());
        got.extend(p.finish());
        assert_eq!(got, vec![ev(None, "é")]);
        assert_eq!(utf8_cut_point("a日".as_bytes()), 4);
        assert_eq!(utf8_cut_point(&"a日".as_bytes()[..3]), 1);
        assert_eq!(utf8_cut_point(&"🎉".as_bytes()[..3]), 0);
        assert_eq!(utf8_cut_point(b"\x80\x80\x80\x80\x80"), 5);
        assert_eq!(utf8_cut_point(b""), 0);
    }

    #[test]
    fn many_data_lines_capped() {
        let mut p = SseParser::with_max_line_bytes(32);
        let mut got = Vec::new();
        for _ in 0..100 {
            got.extend(p.push(b"data: 0123456789\n"));
        }
        got.extend(p.push(b"\n"));
        assert_eq!(got.len(), 1);
        assert!(got[0].data.len() <= 33, "{}", got[0].data.len());
        assert!(p.truncated_lines() > 0);
    }

    #[test]
    fn unchunked_equals_chunked_on_synthetic_input() {
        let input = "\u{FEFF}: hi\r\nevent: a\r\ndata: 1\r\ndata: ü\r\n\r\nid: 3\rdata:日本\r\rdata: last".as_bytes();
        let whole = events(input, None);
        assert_eq!(whole, vec![ev(Some("a"), "1\nü"), ev(None, "日本"), ev(None, "last")]);
        for mode in MODES {
            assert_eq!(events(input, mode), whole, "mode {mode:?}");
        }
    }

    #[test]
    fn garbage_never_panics() {
        let mut rng = crate::llm::stream::test_support::Rng::new(99);
        let mut bytes = Vec::new();
        let alphabet = b"data:event \r\n:\xC3\xA9\xFF\xF0\x9F";
        for _ in 0..20_000 {
            bytes.push(alphabet[rng.next_in(alphabet.len()) - 1]);
        }
        let whole = events(&bytes, None);
        for mode in MODES {
            assert_eq!(events(&bytes, mode), whole);
        }
        let mut small = SseParser::with_max_line_bytes(1);
        for c in chunks(&bytes, Some(5)) {
            let _ = small.push(c);
        }
        let _ = small.finish();
    }

    #[test]
    fn fixtures_byte_by_byte_match_whole() {
        let files = load_fixtures("");
        for (name, bytes) in &files {
            let whole = events(bytes, None);
            assert!(!whole.is_empty(), "{name}: no events");
            for e in &whole {
                assert!(!e.data.is_empty(), "{name}: empty data");
                assert!(!e.data.contains('\n'), "{name}: fixture events are single-line");
            }
            for mode in MODES {
                assert_eq!(events(bytes, mode), whole, "{name}: mode {mode:?}");
            }
            // The same stream with CRLF line endings gives the same events.
            let crlf: Vec<u8> = bytes
                .iter()
                .flat_map(|&b| if b == b'\n' { vec![b'\r', b'\n'] } else { vec![b] })
                .collect();
            assert_eq!(events(&crlf, Some(0)), whole, "{name}: CRLF");
            assert_eq!(events(&crlf, Some(3)), whole, "{name}: CRLF random");
        }
    }

    #[test]
    fn fixture_event_counts() {
        let files = load_fixtures("");
        let expected: &[(&str, usize)] = &[
            ("anthropic-long-thinking.sse", 21),
            ("anthropic-max-tokens.sse", 16),
            ("anthropic-refusal.sse", 5),
            ("anthropic-text-end-turn.sse", 9),
            ("anthropic-tool-use.sse", 15),
            ("openai-finish-length.sse", 5),
            ("openai-long-text.sse", 181),
            ("openai-refusal.sse", 14),
            ("openai-text-stop.sse", 34),
            ("openai-three-choices.sse", 50),
            ("openai-tool-calls.sse", 18),
        ];
        for (name, count) in expected {
            let (_, bytes) = files
                .iter()
                .find(|(n, _)| n == name)
                .unwrap_or_else(|| panic!("fixture {name} missing"));
            let evs = events(bytes, None);
            assert_eq!(evs.len(), *count, "{name}");
            if name.starts_with("anthropic") {
                // Every Anthropic event has an `event:` line naming the JSON `type`.
                for e in &evs {
                    let name = e.event.as_deref().unwrap_or_default();
                    assert!(
                        e.data.contains(&format!("\"type\":\"{name}\""))
                            || e.data.contains(&format!("\"type\": \"{name}\""))
                    );
                }
            } else {
                assert!(evs.iter().all(|e| e.event.is_none()));
                assert_eq!(evs.last().map(|e| e.data.as_str()), Some("[DONE]"));
            }
        }
    }
}
