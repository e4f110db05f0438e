//! The key layout in the key-value store. Agent ids never contain `/`, elicitation ids are
//! URL-safe, so every key is unambiguous.
//!
//! | key | value |
//! |---|---|
//! | `el/<id>` | the [`Record`](crate::model::Record) of one elicitation (JSON) |
//! | `log/<agent>/head` | the last sequence number handed out in the agent's event log (8-byte LE counter) |
//! | `log/<agent>/<seq>` | one [`Event`](crate::model::Event) (JSON) |
//! | `ix/<agent>/<in\|out>/head` | the last position handed out in the agent's inbox / outbox index |
//! | `ix/<agent>/<in\|out>/<n>` | the elicitation id at position `n` |
//! | `idem/<agent>/<sha256(key)>` | an idempotency record (JSON) |
//! | `once/<agent>/<id>/<kind>` | the sequence number taken for that event of that elicitation in the agent's log (decimal) |
//! | `epoch` | the change feed's counter: every change to an agent's log or index takes a number from it |
//! | `chg/<n % 4096>` | the change feed's ring: `"<n> <agent>"`, the agent whose change took number `n` |

/// The record of elicitation `id`.
pub fn record(id: &str) -> String {
    format!("el/{id}")
}

/// The counter of `agent`'s event log.
pub fn log_head(agent: &str) -> String {
    format!("log/{agent}/head")
}

/// Event `seq` of `agent`'s log.
pub fn log_event(agent: &str, seq: i64) -> String {
    format!("log/{agent}/{seq}")
}

/// Which index of an agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Elicitations addressed to the agent.
    Inbox,
    /// Elicitations the agent asked.
    Outbox,
}

impl Role {
    fn segment(self) -> &'static str {
        match self {
            Self::Inbox => "in",
            Self::Outbox => "out",
        }
    }
}

/// The counter of an agent's index.
pub fn index_head(agent: &str, role: Role) -> String {
    format!("ix/{agent}/{}/head", role.segment())
}

/// Position `n` of an agent's index.
pub fn index_entry(agent: &str, role: Role, n: i64) -> String {
    format!("ix/{agent}/{}/{n}", role.segment())
}

/// The sequence number taken for the `kind` event of elicitation `id` in `agent`'s log.
pub fn event_marker(agent: &str, id: &str, kind: crate::model::EventKind) -> String {
    format!("once/{agent}/{id}/{}", kind.as_str())
}

/// An idempotency record (`key_hash` is the hex SHA-256 of the header value).
pub fn idempotency(agent: &str, key_hash: &str) -> String {
    format!("idem/{agent}/{key_hash}")
}

/// The change feed's counter (see [`changes`](crate::changes)).
pub const EPOCH: &str = "epoch";

/// Slot `i` of the change feed's ring.
pub fn change_slot(i: i64) -> String {
    format!("chg/{i}")
}
