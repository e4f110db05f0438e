//! The elicitation operations: create, read, answer, withdraw, list, history.
//!
//! Every state change is one compare-and-swap on the elicitation's record, so under any number of
//! concurrent callers exactly one transition wins; the winner then appends the events. Expiry needs no
//! sweeper: whoever first observes a pending elicitation past its deadline writes the transition
//! (with the deadline as its time), and every read already shows `expired` from the deadline on.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::changes;
use crate::error::Error;
use crate::keys::{self, Role};
use crate::log::{self, Attempt};
use crate::model::{Action, Answer, AuditEntry, Elicitation, EventKind, Mode, Record, Status};
use crate::schema::{self, FieldError};
use crate::store::{Store, Swap};
use crate::time::Timestamp;
use crate::token::is_valid_agent_id;

/// Longest `message`, in characters.
pub const MAX_MESSAGE_CHARS: usize = 4000;
/// Default `ttlSeconds`.
pub const DEFAULT_TTL_SECONDS: u64 = 300;
/// Largest `ttlSeconds`.
pub const MAX_TTL_SECONDS: u64 = 86_400;
/// Longest `context`, in characters.
pub const MAX_CONTEXT_CHARS: usize = 256;
/// How long an `Idempotency-Key` is remembered.
pub const IDEMPOTENCY_WINDOW_SECONDS: u64 = 86_400;
/// Longest `Idempotency-Key`.
pub const MAX_IDEMPOTENCY_KEY_CHARS: usize = 255;

/// A stored record together with the exact bytes it was read from (the compare-and-swap witness).
struct Loaded {
    raw: Vec<u8>,
    record: Record,
}

fn parse_object(body: &[u8]) -> Result<Map<String, Value>, Error> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| Error::BadRequest(format!("the body is not valid JSON: {e}")))?;
    match value {
        Value::Object(map) => Ok(map),
        _ => Err(Error::invalid("", "the body must be a JSON object")),
    }
}

fn unknown_fields(map: &Map<String, Value>, allowed: &[&str]) -> Vec<FieldError> {
    map.keys()
        .filter(|k| !allowed.contains(&k.as_str()))
        .map(|k| FieldError {
            pointer: format!("/{}", k.replace('~', "~0").replace('/', "~1")),
            detail: "unknown field".into(),
        })
        .collect()
}

fn fail(errors: Vec<FieldError>) -> Result<(), Error> {
    if errors.is_empty() {
        return Ok(());
    }
    let detail = errors
        .iter()
        .map(|e| format!("{}: {}", e.pointer, e.detail))
        .collect::<Vec<_>>()
        .join("; ");
    Err(Error::Invalid { detail, errors })
}

fn field(pointer: &str, detail: impl Into<String>) -> FieldError {
    FieldError {
        pointer: pointer.into(),
        detail: detail.into(),
    }
}

/// A validated create request.
#[derive(Debug, Clone)]
struct Draft {
    to: String,
    mode: Mode,
    message: String,
    requested_schema: Option<Value>,
    url: Option<String>,
    ttl_seconds: u64,
    context: Option<String>,
}

fn is_loopback_host(host: &str) -> bool {
    matches!(host, "localhost" | "127.0.0.1" | "[::1]") || host.starts_with("127.")
}

fn check_url(url: &str) -> Result<(), String> {
    let (scheme, rest) = url.split_once("://").ok_or("must be an absolute URL")?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if host_port.starts_with('[') {
        host_port.split_inclusive(']').next().unwrap_or("")
    } else {
        host_port.split(':').next().unwrap_or("")
    };
    if host.is_empty() || url.chars().any(char::is_whitespace) {
        return Err("must be an absolute URL with a host".into());
    }
    match scheme.to_ascii_lowercase().as_str() {
        "https" => Ok(()),
        "http" if is_loopback_host(&host.to_ascii_lowercase()) => Ok(()),
        "http" => Err("must use https (plain http only for loopback hosts)".into()),
        _ => Err("must be an https URL".into()),
    }
}

fn parse_create(body: &[u8]) -> Result<Draft, Error> {
    let map = parse_object(body)?;
    let mut errors = unknown_fields(
        &map,
        &[
            "to",
            "message",
            "requestedSchema",
            "mode",
            "url",
            "ttlSeconds",
            "context",
        ],
    );

    let to = match map.get("to") {
        Some(Value::String(s)) if is_valid_agent_id(s) => Some(s.clone()),
        Some(Value::String(_)) => {
            errors.push(field("/to", "must match ^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"));
            None
        }
        Some(_) => {
            errors.push(field("/to", "must be a string"));
            None
        }
        None => {
            errors.push(field("/to", "required"));
            None
        }
    };
    let message = match map.get("message") {
        Some(Value::String(s)) if s.trim().is_empty() => {
            errors.push(field("/message", "must not be empty"));
            None
        }
        Some(Value::String(s)) if s.chars().count() > MAX_MESSAGE_CHARS => {
            errors.push(field(
                "/message",
                format!("must be at most {MAX_MESSAGE_CHARS} characters"),
            ));
            None
        }
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => {
            errors.push(field("/message", "must be a string"));
            None
        }
        None => {
            errors.push(field("/message", "required"));
            None
        }
    };
    let mode = match map.get("mode") {
        None | Some(Value::Null) => Mode::Form,
        Some(Value::String(s)) if s == "form" => Mode::Form,
        Some(Value::String(s)) if s == "url" => Mode::Url,
        Some(_) => {
            errors.push(field("/mode", "must be \"form\" or \"url\""));
            Mode::Form
        }
    };
    let requested_schema = map.get("requestedSchema").cloned();
    let url = map.get("url").cloned();
    match mode {
        Mode::Form => {
            if let Some(s) = &requested_schema
                && let Err(mut e) = schema::validate_schema(s)
            {
                errors.append(&mut e);
            }
            if url.is_some() {
                errors.push(field("/url", "only allowed with mode \"url\""));
            }
        }
        Mode::Url => {
            if requested_schema.is_some() {
                errors.push(field("/requestedSchema", "not allowed with mode \"url\""));
            }
            match &url {
                Some(Value::String(u)) => {
                    if let Err(e) = check_url(u) {
                        errors.push(field("/url", e));
                    }
                }
                Some(_) => errors.push(field("/url", "must be a string")),
                None => errors.push(field("/url", "required with mode \"url\"")),
            }
        }
    }
    let ttl_seconds = match map.get("ttlSeconds") {
        None | Some(Value::Null) => DEFAULT_TTL_SECONDS,
        Some(v) => match v.as_u64() {
            Some(n) if (1..=MAX_TTL_SECONDS).contains(&n) => n,
            _ => {
                errors.push(field(
                    "/ttlSeconds",
                    format!("must be an integer from 1 to {MAX_TTL_SECONDS}"),
                ));
                DEFAULT_TTL_SECONDS
            }
        },
    };
    let context = match map.get("context") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.chars().count() <= MAX_CONTEXT_CHARS => Some(s.clone()),
        Some(_) => {
            errors.push(field(
                "/context",
                format!("must be a string of at most {MAX_CONTEXT_CHARS} characters"),
            ));
            None
        }
    };
    fail(errors)?;
    let (Some(to), Some(message)) = (to, message) else {
        return Err(Error::invalid("", "incomplete request"));
    };
    Ok(Draft {
        to,
        mode,
        message,
        requested_schema,
        url: url.and_then(|u| u.as_str().map(str::to_string)),
        ttl_seconds,
        context,
    })
}

#[derive(Serialize, Deserialize)]
struct IdempotencyRecord {
    request_hash: String,
    id: String,
    at: Timestamp,
}

fn hex_sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The result of a create.
#[derive(Debug)]
pub struct Created {
    /// The elicitation (as it is now, for a replay).
    pub elicitation: Elicitation,
    /// True when an earlier request with the same `Idempotency-Key` created it.
    pub replayed: bool,
}

/// Creates an elicitation from `actor` as described by `body`.
///
/// `new_id` is used unless an `Idempotency-Key` seen before names an existing one.
pub async fn create<S: Store>(
    store: &S,
    actor: &str,
    body: &[u8],
    idempotency_key: Option<&str>,
    now: Timestamp,
    new_id: String,
) -> Result<Created, Error> {
    let draft = parse_create(body)?;
    let mut id = new_id;
    let mut idem_key = None;
    if let Some(key) = idempotency_key {
        if key.is_empty()
            || key.chars().count() > MAX_IDEMPOTENCY_KEY_CHARS
            || key.chars().any(|c| c.is_control())
        {
            return Err(Error::BadRequest(format!(
                "Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY_CHARS} printable characters"
            )));
        }
        // Same body = same JSON value (key order and white space do not matter).
        let canonical = serde_json::from_slice::<Value>(body)
            .map(|v| v.to_string())
            .unwrap_or_default();
        let request_hash = hex_sha256(canonical.as_bytes());
        let k = keys::idempotency(actor, &hex_sha256(key.as_bytes()));
        loop {
            let current = store.get(&k).await?;
            let live = current
                .as_deref()
                .and_then(|raw| serde_json::from_slice::<IdempotencyRecord>(raw).ok())
                .filter(|r| r.at.plus_secs(IDEMPOTENCY_WINDOW_SECONDS) > now);
            if let Some(r) = live {
                if r.request_hash != request_hash {
                    return Err(Error::Invalid {
                        detail: "this Idempotency-Key was already used with a different body"
                            .into(),
                        errors: vec![field("", "Idempotency-Key reused with a different body")],
                    });
                }
                if let Some(existing) = load(store, &r.id).await? {
                    // The first attempt may have been cut short before its event was written.
                    let e = existing.record.elicitation;
                    let appended = log::append_once(
                        store,
                        &e.to,
                        EventKind::Created,
                        e.created_at,
                        &e,
                        Attempt::Again,
                    )
                    .await?;
                    if appended.written {
                        changes::publish(store, &parties(&e)).await?;
                    }
                    return Ok(Created {
                        elicitation: e,
                        replayed: true,
                    });
                }
                // The first attempt stopped before writing the record: finish it under the same id.
                id = r.id;
                break;
            }
            let rec = IdempotencyRecord {
                request_hash: request_hash.clone(),
                id: id.clone(),
                at: now,
            };
            let json = serde_json::to_vec(&rec).unwrap_or_default();
            if store
                .compare_and_swap(&k, current.as_deref(), &json)
                .await?
                == Swap::Done
            {
                break;
            }
        }
        idem_key = Some(k);
    }

    let elicitation = Elicitation {
        id: id.clone(),
        from: actor.to_string(),
        to: draft.to,
        mode: draft.mode,
        message: draft.message,
        requested_schema: draft.requested_schema,
        url: draft.url,
        status: Status::Pending,
        created_at: now,
        expires_at: now.plus_secs(draft.ttl_seconds),
        responded_at: None,
        response: None,
        context: draft.context,
    };
    let record = Record {
        elicitation: elicitation.clone(),
        history: vec![AuditEntry {
            kind: EventKind::Created,
            at: now,
            actor: Some(actor.to_string()),
            action: None,
        }],
    };
    let json = serde_json::to_vec(&record).unwrap_or_default();
    if let Swap::Changed(Some(raw)) = store
        .compare_and_swap(&keys::record(&id), None, &json)
        .await?
    {
        // Only a concurrent twin with the same Idempotency-Key can get here first.
        if idem_key.is_some()
            && let Ok(existing) = serde_json::from_slice::<Record>(&raw)
        {
            return Ok(Created {
                elicitation: existing.elicitation,
                replayed: true,
            });
        }
        return Err(Error::Storage(format!(
            "elicitation id {id} already exists"
        )));
    }
    for (agent, role) in [
        (&elicitation.to, Role::Inbox),
        (&elicitation.from, Role::Outbox),
    ] {
        let n = store.increment(&keys::index_head(agent, role), 1).await?;
        store
            .set(&keys::index_entry(agent, role, n), id.as_bytes())
            .await?;
    }
    log::append_once(
        store,
        &elicitation.to,
        EventKind::Created,
        now,
        &elicitation,
        Attempt::First,
    )
    .await?;
    // The addressee's log changed, and the requester's outbox: streams track the deadlines there.
    changes::publish(store, &parties(&elicitation)).await?;
    Ok(Created {
        elicitation,
        replayed: false,
    })
}

async fn load<S: Store>(store: &S, id: &str) -> Result<Option<Loaded>, Error> {
    let Some(raw) = store.get(&keys::record(id)).await? else {
        return Ok(None);
    };
    let record = serde_json::from_slice(&raw)
        .map_err(|e| Error::Storage(format!("unreadable record {id}: {e}")))?;
    Ok(Some(Loaded { raw, record }))
}

/// Writes `next` over `loaded` if nobody changed it meanwhile. Returns false on a lost race.
async fn swap<S: Store>(store: &S, loaded: &Loaded, next: &Record) -> Result<bool, Error> {
    let json = serde_json::to_vec(next).unwrap_or_default();
    let id = &next.elicitation.id;
    Ok(store
        .compare_and_swap(&keys::record(id), Some(&loaded.raw), &json)
        .await?
        == Swap::Done)
}

/// The agents an elicitation concerns: its addressee and, if another, its requester.
fn parties(e: &Elicitation) -> Vec<&str> {
    let mut agents = vec![e.to.as_str()];
    if e.from != e.to {
        agents.push(e.from.as_str());
    }
    agents
}

/// Appends the event of a transition to both parties' logs, once, then publishes both in one
/// change: announcing it again (after a crash cut the first attempt short) only adds what is
/// missing.
async fn announce<S: Store>(
    store: &S,
    kind: EventKind,
    at: Timestamp,
    e: &Elicitation,
    attempt: Attempt,
) -> Result<(), Error> {
    let mut changed = Vec::new();
    for agent in parties(e) {
        if log::append_once(store, agent, kind, at, e, attempt)
            .await?
            .written
        {
            changed.push(agent);
        }
    }
    changes::publish(store, &changed).await?;
    Ok(())
}

/// Makes sure the events of `e`'s final state are in both parties' logs (a no-op when they are):
/// for whoever finds an elicitation already answered, withdrawn or expired after a crash may have
/// cut its transition short.
pub async fn announced<S: Store>(store: &S, e: &Elicitation) -> Result<(), Error> {
    let kind = match e.status {
        Status::Pending => return Ok(()),
        Status::Accepted | Status::Declined | Status::Cancelled => EventKind::Answered,
        Status::Withdrawn => EventKind::Withdrawn,
        Status::Expired => EventKind::Expired,
    };
    announce(
        store,
        kind,
        e.responded_at.unwrap_or(e.created_at),
        e,
        Attempt::Again,
    )
    .await
}

/// Loads `id` as seen by `actor` (a party to it), writing the expiry transition if it is due.
async fn load_for<S: Store>(
    store: &S,
    actor: &str,
    id: &str,
    now: Timestamp,
) -> Result<Loaded, Error> {
    loop {
        let loaded = load(store, id)
            .await?
            .filter(|l| l.record.elicitation.involves(actor));
        let Some(loaded) = loaded else {
            return Err(Error::NotFound(format!(
                "no elicitation {id} for agent {actor}"
            )));
        };
        let e = &loaded.record.elicitation;
        if e.status != Status::Pending || now < e.expires_at {
            return Ok(loaded);
        }
        let mut next = loaded.record.clone();
        let deadline = e.expires_at;
        next.elicitation.status = Status::Expired;
        next.elicitation.responded_at = Some(deadline);
        next.history.push(AuditEntry {
            kind: EventKind::Expired,
            at: deadline,
            actor: None,
            action: None,
        });
        if swap(store, &loaded, &next).await? {
            announce(
                store,
                EventKind::Expired,
                deadline,
                &next.elicitation,
                Attempt::First,
            )
            .await?;
            return Ok(Loaded {
                raw: serde_json::to_vec(&next).unwrap_or_default(),
                record: next,
            });
        }
    }
}

/// Elicitation `id` as `actor` (a party to it) sees it now; writes the expiry first if it is due.
pub async fn get<S: Store>(
    store: &S,
    actor: &str,
    id: &str,
    now: Timestamp,
) -> Result<Elicitation, Error> {
    Ok(load_for(store, actor, id, now).await?.record.elicitation)
}

/// The audit history of `id`, oldest first.
pub async fn history<S: Store>(
    store: &S,
    actor: &str,
    id: &str,
    now: Timestamp,
) -> Result<Vec<AuditEntry>, Error> {
    Ok(load_for(store, actor, id, now).await?.record.history)
}

fn parse_answer(body: &[u8], e: &Elicitation) -> Result<Answer, Error> {
    let map = parse_object(body)?;
    let mut errors = unknown_fields(&map, &["action", "content"]);
    let action = match map.get("action") {
        Some(Value::String(s)) if s == "accept" => Some(Action::Accept),
        Some(Value::String(s)) if s == "decline" => Some(Action::Decline),
        Some(Value::String(s)) if s == "cancel" => Some(Action::Cancel),
        Some(_) => {
            errors.push(field(
                "/action",
                "must be \"accept\", \"decline\" or \"cancel\"",
            ));
            None
        }
        None => {
            errors.push(field("/action", "required"));
            None
        }
    };
    let content = map.get("content").filter(|c| !c.is_null()).cloned();
    fail(errors)?;
    let Some(action) = action else {
        return Err(Error::invalid("/action", "required"));
    };
    match (action, e.mode, &e.requested_schema) {
        (Action::Decline | Action::Cancel, _, _) if content.is_some() => Err(Error::invalid(
            "/content",
            "only an accept answer carries content",
        )),
        (Action::Accept, Mode::Url, _) if content.is_some() => Err(Error::invalid(
            "/content",
            "a URL-mode elicitation is accepted without content",
        )),
        (Action::Accept, Mode::Form, None)
            if content
                .as_ref()
                .is_some_and(|c| c != &Value::Object(Map::new())) =>
        {
            Err(Error::invalid(
                "/content",
                "this elicitation asks for no content",
            ))
        }
        (Action::Accept, Mode::Form, Some(schema)) => {
            let given = content.unwrap_or_else(|| Value::Object(Map::new()));
            if let Err(errors) = schema::validate_content(schema, &given) {
                fail(errors)?;
            }
            Ok(Answer {
                action,
                content: Some(given),
            })
        }
        _ => Ok(Answer {
            action,
            content: None,
        }),
    }
}

/// Answers `id` as `actor`, who must be its addressee. Exactly one answer wins; an identical retry of
/// the winning answer gets the same result.
pub async fn respond<S: Store>(
    store: &S,
    actor: &str,
    id: &str,
    body: &[u8],
    now: Timestamp,
) -> Result<Elicitation, Error> {
    loop {
        let loaded = load_for(store, actor, id, now).await?;
        let e = &loaded.record.elicitation;
        if e.to != actor {
            return Err(Error::Forbidden(
                "only the addressee may answer an elicitation".into(),
            ));
        }
        let current = Some(Box::new(e.clone()));
        match e.status {
            Status::Expired => {
                return Err(Error::Gone {
                    detail: format!("elicitation {id} expired at {}", e.expires_at.to_rfc3339()),
                    current,
                });
            }
            Status::Withdrawn => {
                return Err(Error::Conflict {
                    detail: format!("elicitation {id} was withdrawn"),
                    current,
                });
            }
            Status::Accepted | Status::Declined | Status::Cancelled => {
                let answer = parse_answer(body, e);
                return match answer {
                    // The same answer again (a retry): its events are in place, or put there now.
                    Ok(a) if Some(&a) == e.response.as_ref() => {
                        announced(store, e).await?;
                        Ok(e.clone())
                    }
                    _ => Err(Error::Conflict {
                        detail: format!("elicitation {id} is already {}", e.status.as_str()),
                        current,
                    }),
                };
            }
            Status::Pending => {}
        }
        let answer = parse_answer(body, e)?;
        let mut next = loaded.record.clone();
        next.elicitation.status = answer.action.status();
        next.elicitation.responded_at = Some(now);
        next.history.push(AuditEntry {
            kind: EventKind::Answered,
            at: now,
            actor: Some(actor.to_string()),
            action: Some(answer.action),
        });
        next.elicitation.response = Some(answer);
        if swap(store, &loaded, &next).await? {
            announce(
                store,
                EventKind::Answered,
                now,
                &next.elicitation,
                Attempt::First,
            )
            .await?;
            return Ok(next.elicitation);
        }
    }
}

/// Withdraws `id` as `actor`, who must be its requester. Withdrawing twice is fine.
pub async fn withdraw<S: Store>(
    store: &S,
    actor: &str,
    id: &str,
    now: Timestamp,
) -> Result<Elicitation, Error> {
    loop {
        let loaded = load_for(store, actor, id, now).await?;
        let e = &loaded.record.elicitation;
        if e.from != actor {
            return Err(Error::Forbidden(
                "only the requester may withdraw an elicitation".into(),
            ));
        }
        let current = Some(Box::new(e.clone()));
        match e.status {
            Status::Withdrawn => {
                announced(store, e).await?;
                return Ok(e.clone());
            }
            Status::Expired => {
                return Err(Error::Gone {
                    detail: format!("elicitation {id} expired at {}", e.expires_at.to_rfc3339()),
                    current,
                });
            }
            Status::Accepted | Status::Declined | Status::Cancelled => {
                return Err(Error::Conflict {
                    detail: format!("elicitation {id} is already {}", e.status.as_str()),
                    current,
                });
            }
            Status::Pending => {}
        }
        let mut next = loaded.record.clone();
        next.elicitation.status = Status::Withdrawn;
        next.elicitation.responded_at = Some(now);
        next.history.push(AuditEntry {
            kind: EventKind::Withdrawn,
            at: now,
            actor: Some(actor.to_string()),
            action: None,
        });
        if swap(store, &loaded, &next).await? {
            announce(
                store,
                EventKind::Withdrawn,
                now,
                &next.elicitation,
                Attempt::First,
            )
            .await?;
            return Ok(next.elicitation);
        }
    }
}

/// A list query.
#[derive(Debug, Clone)]
pub struct ListQuery {
    /// Inbox or outbox.
    pub role: Role,
    /// Only these statuses (empty = all).
    pub statuses: Vec<Status>,
    /// Page size.
    pub limit: usize,
    /// Continue below this index position.
    pub cursor: Option<i64>,
}

/// Default page size.
pub const DEFAULT_LIMIT: usize = 20;
/// Largest page size.
pub const MAX_LIMIT: usize = 100;
/// Index entries one list request looks at, at most (a sparse filter returns a short page and a cursor).
const MAX_SCAN: i64 = 1000;

impl ListQuery {
    /// Parses `role`, `status` (comma-separated), `limit`, `cursor` from a query string.
    pub fn parse(query: &str) -> Result<Self, Error> {
        let mut q = Self {
            role: Role::Inbox,
            statuses: Vec::new(),
            limit: DEFAULT_LIMIT,
            cursor: None,
        };
        for (k, v) in crate::api::query_pairs(query) {
            match k.as_str() {
                "role" => {
                    q.role = match v.as_str() {
                        "inbox" => Role::Inbox,
                        "outbox" => Role::Outbox,
                        _ => return Err(Error::BadRequest("role must be inbox or outbox".into())),
                    }
                }
                "status" => {
                    for s in v.split(',').filter(|s| !s.is_empty()) {
                        q.statuses.push(
                            Status::parse(s).ok_or_else(|| {
                                Error::BadRequest(format!("unknown status {s:?}"))
                            })?,
                        );
                    }
                }
                "limit" => {
                    q.limit = v
                        .parse()
                        .ok()
                        .filter(|n| (1..=MAX_LIMIT).contains(n))
                        .ok_or_else(|| {
                            Error::BadRequest(format!("limit must be 1 to {MAX_LIMIT}"))
                        })?;
                }
                "cursor" => {
                    q.cursor = Some(
                        v.parse()
                            .ok()
                            .filter(|n| *n > 0)
                            .ok_or_else(|| Error::BadRequest("invalid cursor".into()))?,
                    );
                }
                _ => return Err(Error::BadRequest(format!("unknown query parameter {k:?}"))),
            }
        }
        Ok(q)
    }
}

/// One page of a list.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Page {
    /// Newest first.
    pub items: Vec<Elicitation>,
    /// Pass as `cursor` for the next page; absent on the last one.
    pub next_cursor: Option<String>,
}

/// Lists `agent`'s inbox or outbox, newest first. Positions are handed out by an atomic counter, so a
/// cursor stays valid however many elicitations arrive meanwhile (they land above it).
pub async fn list<S: Store>(
    store: &S,
    actor: &str,
    agent: &str,
    q: &ListQuery,
    now: Timestamp,
) -> Result<Page, Error> {
    if actor != agent {
        return Err(Error::Forbidden(
            "an agent may only list its own elicitations".into(),
        ));
    }
    let head = crate::store::decode_counter(
        store
            .get(&keys::index_head(agent, q.role))
            .await?
            .as_deref(),
    );
    // `pos` is the next position to examine; positions are examined downwards.
    let mut pos = q.cursor.map_or(head, |c| (c - 1).min(head));
    let floor = (pos - MAX_SCAN).max(0);
    let chunk = i64::try_from(q.limit * 2).unwrap_or(64).max(16);
    let mut items = Vec::new();
    'scan: while pos > floor && items.len() < q.limit {
        let low = (pos - chunk).max(floor);
        let positions: Vec<i64> = (low + 1..=pos).rev().collect();
        let index_keys: Vec<String> = positions
            .iter()
            .map(|n| keys::index_entry(agent, q.role, *n))
            .collect();
        let ids: Vec<Option<String>> = store
            .get_many(&index_keys)
            .await?
            .into_iter()
            .map(|v| v.and_then(|b| String::from_utf8(b).ok()))
            .collect();
        let record_keys: Vec<String> = ids.iter().flatten().map(|id| keys::record(id)).collect();
        let mut records = store.get_many(&record_keys).await?.into_iter();
        for (n, id) in positions.iter().zip(&ids) {
            pos = n - 1;
            if id.is_none() {
                continue; // a slot whose writer has not finished
            }
            let Some(record) = records
                .next()
                .flatten()
                .and_then(|r| serde_json::from_slice::<Record>(&r).ok())
            else {
                continue;
            };
            let mut e = record.elicitation;
            if e.status_at(now) == Status::Expired && e.status == Status::Pending {
                e.status = Status::Expired;
                e.responded_at = Some(e.expires_at);
            }
            if q.statuses.is_empty() || q.statuses.contains(&e.status) {
                items.push(e);
                if items.len() == q.limit {
                    break 'scan;
                }
            }
        }
    }
    let next_cursor = (pos > 0).then(|| (pos + 1).to_string());
    Ok(Page { items, next_cursor })
}
