//! The key layout in the key-value store. Agent ids never contain `/`, elicitation ids are
//! URL-safe, so every key is unambiguous.
//!
//! | key | value |
//! |---|---|
//! | `el/<id>` | the [`Record`](crate::model::Record) of one elicitation (JSON) |
//! | `log/<agent>/head` | the last sequence number handed out in the agent's event log (a counter) |
//! | `log/<agent>/<seq>` | one [`Event`](crate::model::Event) (JSON), or the void marker; written once its claim is decided |
//! | `log/<agent>/<seq>/p` | the event its writer is about to commit at `seq` (JSON), written before the claim |
//! | `log/<agent>/<seq>/c` | the slot's claim: a counter its writer increments to commit, or the seal (see [`log`](crate::log)) |
//! | `ix/<agent>/<in\|out>/head` | the last position handed out in the agent's inbox / outbox index |
//! | `ix/<agent>/<in\|out>/<n>` | the elicitation id at position `n` |
//! | `idem/<agent>/<sha256(key)>` | an `Idempotency-Key`'s claim: created as a counter, then swapped to an eight-digit nonce |
//! | `idem/<agent>/<sha256(key)>/<nonce>` | the request that holds the claim with that nonce (JSON) |
//! | `zero` | a counter only ever incremented by zero: the bytes of a counter at zero |
//! | `epoch` | the change feed's counter: every published change takes a number from it |
//! | `chg/<n % 4096>` | the change feed's ring: `"<n> <mention> …"`, the agents whose change took number `n` |
//! | `rate/<agent>/<minute>` | how many elicitations the agent created in that minute since the epoch (a counter) |
//! | `pend/<agent>` | how many pending elicitations are addressed to the agent (a counter) |
//! | `str/<agent>` | how many event streams the agent has opened: each open takes the next number (a counter) |
//! | `due/<second>` | how many elicitations have their deadline in that second since the epoch (a counter; see [`due`](crate::due)) |
//! | `due/<second>/<n>` | the id of the `n`th of them |
//! | `due/m/<minute>` | that minute has seconds with deadlines |
//! | `due/x`, `due/r` | the second the expiry pass, and the retention pass, takes next (`"<second> <who moved it>"`) |
//! | `rev/<agent>` | when the agent's tokens were last revoked (ms, decimal): tokens issued up to then are refused |
//! | `mcp/s/<session>` | an MCP session (2025 era): its agent, protocol version, client capabilities and expiry (JSON) |
//! | `mcp/r/<session>/<id>` | why the human's answer relayed for elicitation `id` in that session was not recorded (a problem, JSON) |

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

/// The pending copy of event `seq` of `agent`'s log.
pub fn log_pending(agent: &str, seq: i64) -> String {
    format!("log/{agent}/{seq}/p")
}

/// The claim counter of slot `seq` of `agent`'s log.
pub fn log_claim(agent: &str, seq: i64) -> String {
    format!("log/{agent}/{seq}/c")
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

/// The claim of an `Idempotency-Key` (`key_hash` is the hex SHA-256 of the header value).
pub fn idempotency(agent: &str, key_hash: &str) -> String {
    format!("idem/{agent}/{key_hash}")
}

/// The request that holds an idempotency claim with `nonce`.
pub fn idempotency_request(claim: &str, nonce: &str) -> String {
    format!("{claim}/{nonce}")
}

/// A counter that always holds zero: its bytes are what any counter holding zero looks like on
/// this backend (see [`store::zero`](crate::store::zero)).
pub const ZERO: &str = "zero";

/// The change feed's counter (see [`changes`](crate::changes)).
pub const EPOCH: &str = "epoch";

/// Slot `i` of the change feed's ring.
pub fn change_slot(i: i64) -> String {
    format!("chg/{i}")
}

/// How many elicitations `agent` created in the calendar minute of `at`.
pub fn create_rate(agent: &str, at: crate::Timestamp) -> String {
    format!("rate/{agent}/{}", at.0 / 60_000)
}

/// How many pending elicitations are addressed to `agent`.
pub fn pending(agent: &str) -> String {
    format!("pend/{agent}")
}

/// The numbers of `agent`'s event streams.
pub fn streams(agent: &str) -> String {
    format!("str/{agent}")
}

/// How many deadlines fall in `second` (since the Unix epoch).
pub fn due_count(second: u64) -> String {
    format!("due/{second}")
}

/// The `n`th deadline filed under `second`.
pub fn due_entry(second: u64, n: i64) -> String {
    format!("due/{second}/{n}")
}

/// The mark of a minute with deadlines.
pub fn due_minute(minute: u64) -> String {
    format!("due/m/{minute}")
}

/// The expiry pass's cursor.
pub const DUE_EXPIRY_CURSOR: &str = "due/x";

/// The retention pass's cursor.
pub const DUE_RETENTION_CURSOR: &str = "due/r";

/// When `agent`'s tokens were last revoked.
pub fn revoked(agent: &str) -> String {
    format!("rev/{agent}")
}

/// MCP session `id`.
pub fn mcp_session(id: &str) -> String {
    format!("mcp/s/{id}")
}

/// Why the answer a session's client relayed for elicitation `id` was not recorded.
pub fn relay_refusal(session: &str, id: &str) -> String {
    format!("mcp/r/{session}/{id}")
}
