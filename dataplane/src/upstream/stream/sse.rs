//! Server-sent events cut out of a byte stream as chunks arrive. The stream path reads
//! every event of every answer, so this stays allocation-light: an event borrows the
//! received bytes (no copy, no reference count per event), and its `data` is borrowed
//! unless it spans several lines.

use std::borrow::Cow;
use std::ops::Range;

/// The largest event (or NDJSON line) an upstream stream may send.
pub const MAX_EVENT_BYTES: usize = 16 * 1024 * 1024;

/// Why such a stream is cut off, as its error tail says.
pub const OVERSIZED_EVENT: &str = "the upstream sent an event larger than 16 MiB";

#[derive(Default)]
pub struct SseSplitter {
    buf: Vec<u8>,
    /// The front of `buf` already handed out as events; dropped on the next push.
    consumed: usize,
    /// Where to resume (past `consumed`) looking for the blank line that ends the
    /// pending event.
    scanned: usize,
}

/// One event as received, its fields located once.
pub struct SseEvent<'a> {
    raw: &'a [u8],
    fields: Fields,
}

struct Fields {
    event: Option<Range<usize>>,
    /// The first `data:` line; events almost always have just this one.
    data: Range<usize>,
    more_data: Vec<Range<usize>>,
}

impl SseSplitter {
    pub fn push(&mut self, chunk: &[u8]) {
        if self.consumed == self.buf.len() {
            self.buf.clear();
        } else {
            self.buf.drain(..self.consumed);
        }
        self.consumed = 0;
        self.buf.extend_from_slice(chunk);
    }

    /// Whether the event still waiting for its end has grown past what any provider
    /// sends: a stream that never ends its event must not grow the buffer forever.
    pub fn oversized(&self) -> bool {
        self.buf.len() - self.consumed > MAX_EVENT_BYTES
    }

    /// The next complete event, if the bytes so far hold one.
    pub fn next_event(&mut self) -> Option<SseEvent<'_>> {
        loop {
            let pending = &self.buf[self.consumed..];
            let Some((end, skip)) = event_end(pending, self.scanned) else {
                self.scanned = pending.len();
                return None;
            };
            let start = self.consumed;
            self.consumed += end + skip;
            self.scanned = 0;
            // As the spec says: a block without data (a comment, a stray blank line)
            // dispatches nothing.
            let raw = &self.buf[start..start + end];
            if let Some(fields) = Fields::parse(raw) {
                return Some(SseEvent { raw, fields });
            }
        }
    }
}

/// The end of the first event at or after `from`, and the length of the blank line
/// (`\n\n`, `\r\n\r\n`, `\r\r`) ending it; `None` if it has not arrived yet.
fn event_end(buf: &[u8], from: usize) -> Option<(usize, usize)> {
    let mut i = from.saturating_sub(3);
    while let Some(at) = memchr::memchr2(b'\n', b'\r', &buf[i..]) {
        i += at;
        let rest = &buf[i..];
        if rest.starts_with(b"\n\n") || rest.starts_with(b"\r\r") {
            return Some((i, 2));
        }
        if rest.starts_with(b"\r\n\r\n") {
            return Some((i, 4));
        }
        i += 1;
    }
    None
}

impl Fields {
    fn parse(raw: &[u8]) -> Option<Self> {
        let mut event = None;
        let mut data = None;
        let mut more_data = Vec::new();
        let mut start = 0;
        while start < raw.len() {
            let end = memchr::memchr2(b'\n', b'\r', &raw[start..]).map_or(raw.len(), |n| start + n);
            let line = &raw[start..end];
            // A line starting with ':' is a comment; a field without ':' has no value.
            let (name, value) = match memchr::memchr(b':', line) {
                Some(0) => (&line[..0], start..start),
                Some(colon) => {
                    let mut v = start + colon + 1;
                    if raw.get(v) == Some(&b' ') && v < end {
                        v += 1;
                    }
                    (&line[..colon], v..end)
                }
                None => (line, end..end),
            };
            match name {
                b"event" => event = Some(value),
                b"data" if data.is_none() => data = Some(value),
                b"data" => more_data.push(value),
                _ => {}
            }
            start = end + 1;
        }
        data.map(|data| Self {
            event,
            data,
            more_data,
        })
    }
}

impl<'a> SseEvent<'a> {
    /// The `event:` field; empty for a plain `message`.
    pub fn event(&self) -> &'a str {
        self.fields
            .event
            .as_ref()
            .and_then(|r| std::str::from_utf8(&self.raw[r.clone()]).ok())
            .unwrap_or("")
    }

    /// Every `data:` line, joined by newlines as the SSE spec says, as received: the
    /// passthrough path reads it as bytes and never needs it checked as text.
    pub fn data_bytes(&self) -> Cow<'a, [u8]> {
        if self.fields.more_data.is_empty() {
            return Cow::Borrowed(&self.raw[self.fields.data.clone()]);
        }
        let lines: Vec<&[u8]> = std::iter::once(&self.fields.data)
            .chain(&self.fields.more_data)
            .map(|r| &self.raw[r.clone()])
            .collect();
        Cow::Owned(lines.join(&b'\n'))
    }

    /// [`SseEvent::data_bytes`] as text; empty if it is not UTF-8.
    pub fn data(&self) -> Cow<'a, str> {
        match self.data_bytes() {
            Cow::Borrowed(b) => Cow::Borrowed(std::str::from_utf8(b).unwrap_or("")),
            Cow::Owned(v) => Cow::Owned(String::from_utf8(v).unwrap_or_default()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(chunks: &[&[u8]]) -> Vec<(String, String)> {
        let mut splitter = SseSplitter::default();
        let mut out = Vec::new();
        for chunk in chunks {
            splitter.push(chunk);
            while let Some(e) = splitter.next_event() {
                out.push((e.event().to_string(), e.data().into_owned()));
            }
        }
        out
    }

    #[test]
    fn events_split_across_reads_and_line_endings() {
        let got = events(&[
            b"event: message_start\ndata: {\"a\":",
            b"1}\n",
            b"\n: keep-alive comment\n\ndata: one\r\ndata: two\r\n\r\ndata:[DONE]\r\r",
        ]);
        assert_eq!(
            got,
            [
                ("message_start".into(), "{\"a\":1}".into()),
                ("".into(), "one\ntwo".into()),
                ("".into(), "[DONE]".into()),
            ]
        );
    }

    #[test]
    fn an_unfinished_event_waits_for_its_blank_line() {
        let mut splitter = SseSplitter::default();
        splitter.push(b"data: x\n");
        assert!(splitter.next_event().is_none());
        splitter.push(b"\n");
        assert_eq!(
            splitter.next_event().map(|e| e.data().into_owned()),
            Some("x".into())
        );
    }
}
