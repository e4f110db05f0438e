//! Server-Sent Events framing (WHATWG `text/event-stream`) for the per-agent streams.

use serde_json::json;

use crate::log::Logged;

/// The stream's opening: a `retry:` hint and a priming frame that carries the cursor the stream
/// continues from (as its `id`, so `Last-Event-ID` is set even before the first event).
pub fn opening(retry_ms: u64, cursor: i64) -> String {
    format!(
        "retry: {retry_ms}\nid: {cursor}\nevent: ready\ndata: {}\n\n",
        json!({ "cursor": cursor })
    )
}

/// One event frame: `id` is the per-agent sequence, `event` the kind, `data` the event JSON.
pub fn event(logged: &Logged) -> String {
    let e = &logged.event;
    format!(
        "id: {}\nevent: {}\ndata: {}\n\n",
        e.sequence,
        e.kind.as_str(),
        logged.json
    )
}

/// Tells the client its cursor is not in the retained history: it should re-read its inbox list,
/// then it continues from `head`, which this frame's `id` carries.
pub fn reset(requested: i64, head: i64) -> String {
    let data = json!({ "reason": "cursor outside the retained history", "requested": requested, "head": head });
    format!("id: {head}\nevent: reset\ndata: {data}\n\n")
}

/// Reports slot `seq` of the log, which holds something that is not an event: the stream moves
/// past it (this frame's `id`), and the client learns it missed one.
pub fn unreadable(seq: i64, detail: &str) -> String {
    let data = json!({
        "type": "/problems/unreadable-event",
        "title": "An event in this log cannot be read",
        "status": 500,
        "sequence": seq,
        "detail": detail,
    });
    format!("id: {seq}\nevent: error\ndata: {data}\n\n")
}

/// A heartbeat comment (ignored by clients, keeps intermediaries from closing an idle stream).
pub const HEARTBEAT: &str = ": keep-alive\n\n";

/// The last frame before the stream ends on its own; clients reconnect with their last id.
pub fn closing(retry_ms: u64) -> String {
    format!(": stream ends, reconnect with Last-Event-ID\nretry: {retry_ms}\n\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Elicitation, Event, EventKind, Mode, Status};
    use crate::time::Timestamp;

    #[test]
    fn frames_are_well_formed() {
        assert_eq!(
            opening(1000, 4),
            "retry: 1000\nid: 4\nevent: ready\ndata: {\"cursor\":4}\n\n"
        );
        let e = Event {
            sequence: 9,
            kind: EventKind::Answered,
            at: Timestamp(0),
            elicitation: Elicitation {
                id: "el_x".into(),
                from: "a".into(),
                to: "b".into(),
                mode: Mode::Form,
                message: "line one\nline two".into(),
                requested_schema: None,
                url: None,
                status: Status::Declined,
                created_at: Timestamp(0),
                expires_at: Timestamp(1000),
                responded_at: None,
                response: None,
                context: None,
            },
        };
        let f = event(&Logged::new(e));
        assert!(f.starts_with("id: 9\nevent: elicitation.answered\ndata: {"));
        // Newlines inside the JSON are escaped, so the data is one line.
        assert_eq!(f.matches('\n').count(), 4, "{f}");
        assert!(reset(3, 2000).starts_with("id: 2000\nevent: reset\n"));
        // A planned end: a comment, then the short hint a client waits before it reconnects.
        assert_eq!(
            closing(1),
            ": stream ends, reconnect with Last-Event-ID\nretry: 1\n\n"
        );
    }
}
