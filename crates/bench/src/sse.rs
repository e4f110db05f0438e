//! The client side of Server-Sent Events (WHATWG `text/event-stream`), as an `EventSource` parses
//! it, keeping the three things the benchmark's agents need beyond the events themselves:
//!
//! - every `retry:` field, as soon as it is read (it sets the reconnection time whether or not its
//!   frame carries data; a `retry:`-only frame dispatches nothing but still counts);
//! - comments (`: …` lines), so that the app's closing comment tells a planned end from a cut;
//! - `id:` of a frame without data (it still sets the last event id).
//!
//! Lines end with LF, CRLF or CR; a frame ends at an empty line; an incomplete frame at the end of
//! the stream is discarded, as the standard says.

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// `id:` of this frame, if it had one.
    pub id: Option<String>,
    /// `event:` (`message` when absent).
    pub event: String,
    /// The `data:` lines joined by LF.
    pub data: String,
}

/// What the parser found, in stream order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// A frame with data.
    Event(Event),
    /// A frame without data that set the last event id.
    Id(String),
    /// A comment line, without its leading `:` (and one leading space).
    Comment(String),
    /// A `retry:` field: the new reconnection time, milliseconds.
    Retry(u64),
}

/// Incremental parser: feed it the body's chunks as they come.
#[derive(Debug, Default)]
pub struct Parser {
    buf: Vec<u8>,
    started: bool,
    event: String,
    data: String,
    has_data: bool,
    id: Option<String>,
}

impl Parser {
    /// Parses `bytes` (any split of the stream) and appends what completed to `out`.
    pub fn push(&mut self, bytes: &[u8], out: &mut Vec<Item>) {
        self.buf.extend_from_slice(bytes);
        if !self.started {
            // A byte order mark at the very start is skipped.
            if self.buf.len() < 3 && b"\xEF\xBB\xBF".starts_with(&self.buf) {
                return;
            }
            if self.buf.starts_with(b"\xEF\xBB\xBF") {
                self.buf.drain(..3);
            }
            self.started = true;
        }
        let mut start = 0;
        while let Some(rel) = self.buf[start..]
            .iter()
            .position(|&b| b == b'\n' || b == b'\r')
        {
            let end = start + rel;
            let mut next = end + 1;
            if self.buf[end] == b'\r' {
                match self.buf.get(next) {
                    // A CR as the last byte may be the first half of a CRLF: wait for more.
                    None => break,
                    Some(b'\n') => next += 1,
                    Some(_) => {}
                }
            }
            let line = String::from_utf8_lossy(&self.buf[start..end]).into_owned();
            self.line(&line, out);
            start = next;
        }
        self.buf.drain(..start);
    }

    fn line(&mut self, line: &str, out: &mut Vec<Item>) {
        if line.is_empty() {
            let id = self.id.take();
            if self.has_data {
                let event = if self.event.is_empty() {
                    "message".to_string()
                } else {
                    std::mem::take(&mut self.event)
                };
                out.push(Item::Event(Event {
                    id,
                    event,
                    data: std::mem::take(&mut self.data),
                }));
            } else if let Some(id) = id {
                out.push(Item::Id(id));
            }
            self.event.clear();
            self.data.clear();
            self.has_data = false;
            return;
        }
        if let Some(comment) = line.strip_prefix(':') {
            out.push(Item::Comment(
                comment.strip_prefix(' ').unwrap_or(comment).to_string(),
            ));
            return;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "event" => value.clone_into(&mut self.event),
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            "id" if !value.contains('\0') => self.id = Some(value.to_string()),
            "retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                if let Ok(ms) = value.parse() {
                    out.push(Item::Retry(ms));
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(chunks: &[&[u8]]) -> Vec<Item> {
        let mut p = Parser::default();
        let mut out = Vec::new();
        for c in chunks {
            p.push(c, &mut out);
        }
        out
    }

    fn ev(id: Option<&str>, event: &str, data: &str) -> Item {
        Item::Event(Event {
            id: id.map(str::to_string),
            event: event.into(),
            data: data.into(),
        })
    }

    #[test]
    fn the_apps_frames() {
        let stream = b"retry: 1000\nid: 4\nevent: ready\ndata: {\"cursor\":4}\n\n\
            id: 5\nevent: elicitation.created\ndata: {}\n\n: keep-alive\n\n\
            : stream ends, reconnect with Last-Event-ID\nretry: 50\n\n";
        let want = vec![
            Item::Retry(1000),
            ev(Some("4"), "ready", "{\"cursor\":4}"),
            ev(Some("5"), "elicitation.created", "{}"),
            Item::Comment("keep-alive".into()),
            Item::Comment("stream ends, reconnect with Last-Event-ID".into()),
            Item::Retry(50),
        ];
        assert_eq!(parse(&[stream]), want);
        // Any split of the bytes gives the same items.
        for at in 0..stream.len() {
            assert_eq!(
                parse(&[&stream[..at], &stream[at..]]),
                want,
                "split at {at}"
            );
        }
    }

    #[test]
    fn line_endings_fields_and_the_unfinished_tail() {
        assert_eq!(
            parse(&[b"\xEF\xBB\xBFdata:a\r\ndata\r\n\r", b"\nid: 7\r\rdata: x\n"]),
            vec![ev(None, "message", "a\n"), Item::Id("7".into())]
        );
        // A bad retry is ignored; an unknown field too.
        assert_eq!(
            parse(&[b"retry: 1x\nretry:\nfoo: bar\ndata: y\n\n"]),
            vec![ev(None, "message", "y")]
        );
    }
}
