//! Server-sent events cut out of a byte stream as chunks arrive. The stream path reads
//! every event of every answer, so this stays allocation-light: an event is a slice of
//! the received bytes (split off, never copied), and its `data` is borrowed unless it
//! spans several lines.

use bytes::{Buf, Bytes, BytesMut};
use std::borrow::Cow;

#[derive(Default)]
pub struct SseSplitter {
    buf: BytesMut,
    /// Where to resume looking for the blank line that ends the pending event.
    scanned: usize,
}

/// One event as received: its field lines, without the blank line that ended it.
pub struct SseEvent {
    raw: Bytes,
}

impl SseSplitter {
    pub fn push(&mut self, chunk: &[u8]) {
        self.buf.extend_from_slice(chunk);
    }

    /// The next complete event, if the bytes so far hold one.
    pub fn next_event(&mut self) -> Option<SseEvent> {
        loop {
            let Some((end, skip)) = event_end(&self.buf, self.scanned) else {
                self.scanned = self.buf.len();
                return None;
            };
            let raw = self.buf.split_to(end).freeze();
            self.buf.advance(skip);
            self.scanned = 0;
            let event = SseEvent { raw };
            // As the spec says: a block without data (a comment, a stray blank line)
            // dispatches nothing.
            if event.lines().any(|(field, _)| field == "data") {
                return Some(event);
            }
        }
    }
}

/// The end of the first event at or after `from`, and the length of the blank line
/// (`\n\n`, `\r\n\r\n`, `\r\r`) ending it; `None` if it has not arrived yet.
fn event_end(buf: &[u8], from: usize) -> Option<(usize, usize)> {
    let mut i = from.saturating_sub(3);
    while i < buf.len() {
        match buf[i] {
            b'\n' if buf.get(i + 1) == Some(&b'\n') => return Some((i, 2)),
            b'\r' if buf.get(i + 1) == Some(&b'\r') => return Some((i, 2)),
            b'\r' if buf[i..].starts_with(b"\r\n\r\n") => return Some((i, 4)),
            _ => {}
        }
        i += 1;
    }
    None
}

impl SseEvent {
    fn lines(&self) -> impl Iterator<Item = (&str, &str)> {
        self.raw
            .split(|&b| b == b'\n')
            .map(|line| line.strip_suffix(b"\r").unwrap_or(line))
            .flat_map(|line| line.split(|&b| b == b'\r'))
            .filter_map(|line| {
                let line = std::str::from_utf8(line).ok()?;
                // A line starting with ':' is a comment.
                let (field, value) = match line.split_once(':') {
                    Some(("", _)) => return None,
                    Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
                    None => (line, ""),
                };
                Some((field, value))
            })
    }

    /// The `event:` field; empty for a plain `message`.
    pub fn event(&self) -> &str {
        self.lines()
            .filter(|(f, _)| *f == "event")
            .last()
            .map(|(_, v)| v)
            .unwrap_or("")
    }

    /// Every `data:` line, joined by newlines as the SSE spec says.
    pub fn data(&self) -> Cow<'_, str> {
        let mut data = self.lines().filter(|(f, _)| *f == "data").map(|(_, v)| v);
        let Some(first) = data.next() else {
            return Cow::Borrowed("");
        };
        match data.next() {
            None => Cow::Borrowed(first),
            Some(second) => {
                let mut joined = format!("{first}\n{second}");
                for more in data {
                    joined.push('\n');
                    joined.push_str(more);
                }
                Cow::Owned(joined)
            }
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
