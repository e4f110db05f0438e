//! The elicitation record, its answer, its audit trail and the events agents receive.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::time::Timestamp;

/// How the addressee is asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// A form described by `requestedSchema`; an accept answer carries `content`.
    Form,
    /// The addressee is sent to `url`; an accept answer carries no content.
    Url,
}

/// Where an elicitation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Waiting for the addressee.
    Pending,
    /// Answered with `accept`.
    Accepted,
    /// Answered with `decline`.
    Declined,
    /// Answered with `cancel`.
    Cancelled,
    /// Withdrawn by the requester before an answer.
    Withdrawn,
    /// Reached `expiresAt` unanswered.
    Expired,
}

impl Status {
    /// The lower-case name used in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Accepted => "accepted",
            Self::Declined => "declined",
            Self::Cancelled => "cancelled",
            Self::Withdrawn => "withdrawn",
            Self::Expired => "expired",
        }
    }

    /// Parses an API status name.
    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Pending,
            Self::Accepted,
            Self::Declined,
            Self::Cancelled,
            Self::Withdrawn,
            Self::Expired,
        ]
        .into_iter()
        .find(|st| st.as_str() == s)
    }
}

/// The addressee's choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Accepted (with content in form mode).
    Accept,
    /// Explicitly refused.
    Decline,
    /// Dismissed without a choice.
    Cancel,
}

impl Action {
    /// The status an answer with this action leads to.
    pub fn status(self) -> Status {
        match self {
            Self::Accept => Status::Accepted,
            Self::Decline => Status::Declined,
            Self::Cancel => Status::Cancelled,
        }
    }
}

/// An answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Answer {
    /// What the addressee chose.
    pub action: Action,
    /// The form content (accept in form mode only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<Value>,
}

/// An elicitation as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Elicitation {
    /// Unguessable id.
    pub id: String,
    /// The requesting agent.
    pub from: String,
    /// The addressed agent.
    pub to: String,
    /// Form or URL mode.
    pub mode: Mode,
    /// What is asked, for a human or an agent to read.
    pub message: String,
    /// Form mode: the MCP form schema of the expected content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_schema: Option<Value>,
    /// URL mode: where the addressee goes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Current status.
    pub status: Status,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it expires unless answered.
    pub expires_at: Timestamp,
    /// When it was answered, withdrawn or expired.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub responded_at: Option<Timestamp>,
    /// The answer, once there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<Answer>,
    /// Opaque thread id chosen by the requester.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
}

impl Elicitation {
    /// The status as of `now`: a pending elicitation past its deadline is expired, whether or not the
    /// transition has been written yet.
    pub fn status_at(&self, now: Timestamp) -> Status {
        if self.status == Status::Pending && now >= self.expires_at {
            Status::Expired
        } else {
            self.status
        }
    }

    /// Whether `agent` is the requester or the addressee.
    pub fn involves(&self, agent: &str) -> bool {
        self.from == agent || self.to == agent
    }
}

/// What happened to an elicitation; the `type` of events and audit entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventKind {
    /// Created (sent to the addressee).
    #[serde(rename = "elicitation.created")]
    Created,
    /// Answered (accept, decline or cancel).
    #[serde(rename = "elicitation.answered")]
    Answered,
    /// Withdrawn by the requester.
    #[serde(rename = "elicitation.withdrawn")]
    Withdrawn,
    /// Expired unanswered.
    #[serde(rename = "elicitation.expired")]
    Expired,
}

impl EventKind {
    /// The SSE event name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "elicitation.created",
            Self::Answered => "elicitation.answered",
            Self::Withdrawn => "elicitation.withdrawn",
            Self::Expired => "elicitation.expired",
        }
    }
}

/// One entry of an elicitation's audit history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditEntry {
    /// What happened.
    #[serde(rename = "type")]
    pub kind: EventKind,
    /// When.
    pub at: Timestamp,
    /// Who did it (`None` for expiry, which nobody does).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// The answer's action, for `answered`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<Action>,
}

/// The stored record: the elicitation plus what only the service needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    /// The elicitation.
    #[serde(flatten)]
    pub elicitation: Elicitation,
    /// Every state change, oldest first.
    pub history: Vec<AuditEntry>,
    /// Where its events and index entries are.
    #[serde(default)]
    pub slots: Slots,
    /// How long it is kept once final (`retention_seconds` when it was created; absent on
    /// records from before retention, which are kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_seconds: Option<u64>,
    /// The hex SHA-256 of the `Idempotency-Key` it was created with, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency: Option<String>,
}

impl Record {
    /// When it became final: its answer's or withdrawal's time, or its deadline (also for a
    /// pending record past it, whose expiry nobody wrote yet); `None` while it is pending.
    pub fn final_at(&self, now: Timestamp) -> Option<Timestamp> {
        let e = &self.elicitation;
        match e.status {
            Status::Pending if now < e.expires_at => None,
            Status::Pending => Some(e.expires_at),
            _ => Some(e.responded_at.unwrap_or(e.expires_at)),
        }
    }

    /// Whether its retention is over at `now`: then it is gone for everybody.
    pub fn forgotten(&self, now: Timestamp) -> bool {
        match (self.retention_seconds, self.final_at(now)) {
            (Some(r), Some(at)) => at.plus_secs(r) <= now,
            _ => false,
        }
    }
}

/// Where an elicitation's events and index entries are: the record says which numbers its events
/// have, so whoever finds a transition cut short can finish it without adding a duplicate.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Slots {
    /// The created event's number in the addressee's log.
    pub created: i64,
    /// The position in the addressee's inbox index.
    pub inbox: i64,
    /// The position in the requester's outbox index.
    pub outbox: i64,
    /// The final transition's event number in the addressee's log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<i64>,
    /// The final transition's event number in the requester's log (when it is another agent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<i64>,
    /// The addressee's number the transition's writer took first: unique to that writer, so it
    /// tells a writer whether its swap won (a later re-drive may move `to`, never this).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<i64>,
}

/// One event in an agent's log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    /// Position in the agent's log (1, 2, …).
    pub sequence: i64,
    /// What happened.
    #[serde(rename = "type")]
    pub kind: EventKind,
    /// When it happened.
    pub at: Timestamp,
    /// The elicitation as it was right after.
    pub elicitation: Elicitation,
}
