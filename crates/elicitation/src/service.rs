//! The elicitation operations: create, read, answer, withdraw, list, history.
//!
//! Every state change is one compare-and-swap on the elicitation's record (over the record as it
//! was read: records are created with a plain write under a fresh id, never by a swap), so under
//! any number of concurrent callers exactly one transition wins. A transition's writer takes the
//! numbers of its events in both parties' logs *before* its swap and the record it swaps in names
//! them, so the record alone says where its events are: the winner commits them, a loser gives its
//! numbers up, and whoever later finds a transition cut short (a retried answer, a repeated
//! withdrawal, an `Idempotency-Key` replay, a stream at a deadline) completes exactly those
//! events — or, if a reader sealed one because its writer was too slow, moves it to a new number
//! with one more swap of the record. Expiry needs no sweeper: whoever first observes a pending
//! elicitation past its deadline writes the transition (with the deadline as its time), and every
//! read already shows `expired` from the deadline on; the expiry pass ([`due`]) writes it for
//! those nobody reads. Limits are counted at create ([`admit`]), and retention is bounded upkeep
//! that creates do ([`upkeep`]): past `retention_seconds` an elicitation is gone for every read at
//! once, and deleted with everything stored for it when the retention pass takes its second.

use serde::Serialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::changes::{self, Mention};
use crate::due;
use crate::error::Error;
use crate::keys::{self, Role};
use crate::log::{self, Decided, Logged};
use crate::model::{
    Action, Answer, AuditEntry, Elicitation, Event, EventKind, Mode, Record, Slots, Status,
};
use crate::schema::{self, FieldError};
use crate::store::{Store, Swapped, get_all, swap};
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
/// How long a pending-limit refusal asks the requester to wait (`Retry-After`, seconds): the
/// addressee frees room by answering, which nobody can predict.
pub const PENDING_RETRY_AFTER_SECONDS: u64 = 30;

/// The limits every create is held to (app variables of the same names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Elicitations one requester may create in a calendar minute (`create_rate_per_minute`).
    pub create_rate_per_minute: u64,
    /// Pending elicitations one agent may have addressed to it (`max_pending_per_agent`).
    pub max_pending_per_agent: u64,
    /// How long an elicitation is kept once final (`retention_seconds`): then it is gone, with
    /// everything stored for it.
    pub retention_seconds: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            create_rate_per_minute: 600,
            max_pending_per_agent: 1000,
            retention_seconds: 604_800,
        }
    }
}

/// Takes one unit of `actor`'s create rate in this minute and one of `to`'s pending allowance,
/// both with the store's atomic increments, so the limits hold exactly however many instances and
/// nodes create at once: a create is admitted only if neither count passed its limit, counting
/// itself. A refused one gives both units back, so it leaves nothing changed. The pending count is
/// given back again by the transition that ends the elicitation ([`transition`]).
async fn admit<S: Store>(
    store: &S,
    actor: &str,
    to: &str,
    limits: &Limits,
    now: Timestamp,
) -> Result<(), Error> {
    let rate_key = keys::create_rate(actor, now);
    let pending_key = keys::pending(to);
    let (rate, pending) = futures::future::join(
        store.increment(&rate_key, 1),
        store.increment(&pending_key, 1),
    )
    .await;
    // A count below zero (pending elicitations created before the limit existed, given back
    // since) is within any limit.
    let over = |n: &Result<i64, _>, limit: u64| matches!(n, Ok(n) if *n > i64::try_from(limit).unwrap_or(i64::MAX));
    let refusal = if over(&rate, limits.create_rate_per_minute) {
        Some(Error::TooManyRequests {
            detail: format!(
                "{actor} may create at most {} elicitations a minute",
                limits.create_rate_per_minute
            ),
            retry_after: 60 - (now.0 / 1000) % 60,
        })
    } else if over(&pending, limits.max_pending_per_agent) {
        Some(Error::TooManyRequests {
            detail: format!(
                "{to} already has {} pending requests, the most it may have",
                limits.max_pending_per_agent
            ),
            retry_after: PENDING_RETRY_AFTER_SECONDS,
        })
    } else {
        None
    };
    let failed = rate.is_err() || pending.is_err();
    if refusal.is_some() || failed {
        give_back(
            store,
            rate.is_ok().then_some(rate_key.as_str()),
            pending.is_ok().then_some(pending_key.as_str()),
        )
        .await?;
    }
    rate?;
    pending?;
    refusal.map_or(Ok(()), Err)
}

/// Gives back the units [`admit`] took (those it got).
async fn give_back<S: Store>(
    store: &S,
    rate_key: Option<&str>,
    pending_key: Option<&str>,
) -> Result<(), Error> {
    let undo = |k: Option<&str>| {
        let k = k.map(str::to_string);
        async move {
            match k {
                Some(k) => store.increment(&k, -1).await.map(|_| ()),
                None => Ok(()),
            }
        }
    };
    let (a, b) = futures::future::join(undo(rate_key), undo(pending_key)).await;
    a?;
    b?;
    Ok(())
}

fn parse_object(body: &[u8]) -> Result<Map<String, Value>, Error> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| Error::BadRequest(format!("the body is not valid JSON: {e}")))?;
    match value {
        Value::Object(map) => Ok(map),
        _ => Err(Error::invalid("", "the body must be a JSON object")),
    }
}

pub(crate) fn unknown_fields(map: &Map<String, Value>, allowed: &[&str]) -> Vec<FieldError> {
    map.keys()
        .filter(|k| !allowed.contains(&k.as_str()))
        .map(|k| FieldError {
            pointer: format!("/{}", k.replace('~', "~0").replace('/', "~1")),
            detail: "unknown field".into(),
        })
        .collect()
}

pub(crate) fn fail(errors: Vec<FieldError>) -> Result<(), Error> {
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

/// Checks a URL-mode request's URL (parsed as browsers do, by the `url` crate): `https`, or plain
/// `http` to a loopback host only (`localhost`, 127.0.0.0/8, `::1`) — a name that merely starts
/// with `127.` is not one.
fn check_url(raw: &str) -> Result<(), String> {
    if raw.chars().any(char::is_whitespace) {
        return Err("must be an absolute URL without white space".into());
    }
    let url = url::Url::parse(raw).map_err(|e| format!("must be an absolute URL ({e})"))?;
    let loopback = match url.host() {
        None => return Err("must be an absolute URL with a host".into()),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
    };
    match url.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
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
/// `new_id` is used unless an `Idempotency-Key` seen before names an existing one. The record is
/// written under its fresh id before anything else refers to it; a key's claim then names it, so
/// a twin request that finds the claim finds the record too.
pub async fn create<S: Store>(
    store: &S,
    actor: &str,
    body: &[u8],
    idempotency_key: Option<&str>,
    limits: &Limits,
    now: Timestamp,
    new_id: String,
) -> Result<Created, Error> {
    let draft = parse_create(body)?;
    let claim = match idempotency_key {
        None => None,
        Some(key) => {
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
            let k = keys::idempotency(actor, &hex_sha256(key.as_bytes()));
            let request_hash = hex_sha256(canonical.as_bytes());
            if let Some(held) = idempotency::live(store, &k, now).await? {
                return replay(store, &held, &request_hash).await;
            }
            Some((k, request_hash))
        }
    };
    admit(store, actor, &draft.to, limits, now).await?;
    let id = new_id;
    let to = draft.to.clone();
    let expires_at = now.plus_secs(draft.ttl_seconds);
    let (created, inbox, outbox, due_place) = futures::future::join4(
        log::take(store, &to),
        store.increment(&keys::index_head(&to, Role::Inbox), 1),
        store.increment(&keys::index_head(actor, Role::Outbox), 1),
        due::place(store, expires_at),
    )
    .await;
    let due_place = due_place?;
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
        expires_at,
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
        slots: Slots {
            created: created?,
            inbox: inbox?,
            outbox: outbox?,
            ..Slots::default()
        },
        retention_seconds: Some(limits.retention_seconds),
        idempotency: claim.as_ref().map(|(k, _)| k.clone()),
    };
    let json = serde_json::to_vec(&record).unwrap_or_default();
    let (attempt, epoch) = match claim {
        None => {
            // A fresh id: nobody else writes this key before it is announced. The record, its
            // index entries and the event's pending copy go together, and so does taking the
            // change number that announces it; the event is decided after.
            let body = event_body(&record, EventKind::Created, record.slots.created);
            let (written, indexed, staged, epoch, filed) = futures::future::join5(
                store.set(&keys::record(&id), &json),
                index(store, &record),
                log::stage(store, &to, record.slots.created, &body),
                changes::take(store),
                due::file(store, expires_at, due_place, &id),
            )
            .await;
            written?;
            indexed?;
            staged?;
            filed?;
            (Attempt::Staged, Some(epoch?))
        }
        Some((k, request_hash)) => {
            // With an Idempotency-Key the record is written first, then the key claimed for it.
            store.set(&keys::record(&id), &json).await?;
            let mine = idempotency::Request {
                request_hash,
                id: id.clone(),
                at: now,
            };
            if let idempotency::Claim::Held(held) =
                idempotency::claim(store, &k, &mine, now).await?
            {
                // A twin with the same key got there first; ours was never announced, and what
                // it took of the limits goes back.
                store.delete_many(&[keys::record(&id)]).await?;
                log::void(store, &to, record.slots.created).await?;
                give_back(
                    store,
                    Some(&keys::create_rate(actor, now)),
                    Some(&keys::pending(&to)),
                )
                .await?;
                return replay(store, &held, &mine.request_hash).await;
            }
            let (indexed, filed) = futures::future::join(
                index(store, &record),
                due::file(store, expires_at, due_place, &id),
            )
            .await;
            indexed?;
            filed?;
            (Attempt::First, None)
        }
    };
    // The upkeep goes alongside the events; its failure is nobody's but the next create's to
    // retry.
    let (settled, _) = futures::future::join(
        settle(store, &record, Events::Created, attempt, epoch),
        upkeep(store, limits, &id, now),
    )
    .await;
    settled?;
    Ok(Created {
        elicitation,
        replayed: false,
    })
}

/// The bounded upkeep each create does: the expiry pass and the retention pass take the next
/// second of deadlines each, if one is ready (see [`due`]); `me` is unique to the caller.
pub async fn upkeep<S: Store>(
    store: &S,
    limits: &Limits,
    me: &str,
    now: Timestamp,
) -> Result<(), Error> {
    let retention = due::Pass::Retention(limits.retention_seconds.saturating_mul(1000));
    let (expiring, forgetting) = futures::future::join(
        due::take(store, due::Pass::Expiry, me, now),
        due::take(store, retention, me, now),
    )
    .await;
    let mut result = Ok(());
    if let Some(t) = expiring? {
        result = expire_all(store, &t.ids, now).await;
    }
    if let Some(t) = forgetting? {
        let forgotten = futures::future::join_all(t.ids.iter().map(|id| forget(store, id, now)));
        for r in forgotten.await {
            result = result.and(r);
        }
        store.delete_many(&t.keys).await?;
    }
    result
}

/// The expiry pass alone, which the stream hubs run every second so that expiries are pushed on
/// time however seldom anybody creates.
pub async fn expire_pass<S: Store>(store: &S, me: &str, now: Timestamp) -> Result<(), Error> {
    match due::take(store, due::Pass::Expiry, me, now).await? {
        Some(t) => expire_all(store, &t.ids, now).await,
        None => Ok(()),
    }
}

/// Writes the expiry of each of `ids` that is still pending past its deadline.
async fn expire_all<S: Store>(store: &S, ids: &[String], now: Timestamp) -> Result<(), Error> {
    let expiries = ids.iter().map(|id| async move {
        match store.get(&keys::record(id)).await? {
            Some(raw) if parse_record(id, &raw)?.elicitation.status == Status::Pending => {
                expire_unwritten(store, id, now).await.map(|_| ())
            }
            _ => Ok(()),
        }
    });
    futures::future::join_all(expiries)
        .await
        .into_iter()
        .collect()
}

/// Writes the expiry of `id` if it is pending past its deadline (whoever its parties are), and
/// returns the record as it is then (`None` when there is none).
async fn expire_unwritten<S: Store>(
    store: &S,
    id: &str,
    now: Timestamp,
) -> Result<Option<Record>, Error> {
    loop {
        let (cas, raw) = store.cas_read(&keys::record(id)).await?;
        let Some(raw) = raw else { return Ok(None) };
        let record = parse_record(id, &raw)?;
        let e = &record.elicitation;
        if e.status != Status::Pending || now < e.expires_at {
            return Ok(Some(record));
        }
        if let Some(next) = transition(store, cas, &record, expiry(&record)).await? {
            return Ok(Some(next));
        }
    }
}

/// Deletes everything stored for `id` (the retention pass, which takes it by the retention in
/// force now, whatever the record was created with): its record, its index entries,
/// its `Idempotency-Key` claim (unless a later request holds the key now) and its requester's
/// rate count of its minute. A pending one past its deadline whose expiry nobody wrote is
/// expired first, so its addressee's pending count is given back. Its events in both logs are
/// voided ([`log::forget`]): what they said goes too, and a reader passes their numbers.
async fn forget<S: Store>(store: &S, id: &str, now: Timestamp) -> Result<(), Error> {
    let Some(record) = expire_unwritten(store, id, now).await? else {
        return Ok(());
    };
    let e = &record.elicitation;
    let mut doomed = vec![
        keys::record(id),
        keys::index_entry(&e.to, Role::Inbox, record.slots.inbox),
        keys::index_entry(&e.from, Role::Outbox, record.slots.outbox),
        keys::create_rate(&e.from, e.created_at),
    ];
    let slots = events_of(&record, Events::Created)
        .into_iter()
        .chain(events_of(&record, Events::Final));
    let voided = slots.map(|(agent, _, n)| async move { log::forget(store, &agent, n).await });
    for keys in futures::future::join_all(voided).await {
        doomed.extend(keys?);
    }
    if let Some(claim) = &record.idempotency {
        let nonce = idempotency::nonce(id);
        doomed.push(keys::idempotency_request(claim, &nonce));
        if store.get(claim).await?.as_deref() == Some(nonce.as_bytes()) {
            doomed.push(claim.clone());
        }
    }
    Ok(store.delete_many(&doomed).await?)
}

/// Writes the index entries of `record` (at the positions it took).
async fn index<S: Store>(store: &S, record: &Record) -> Result<(), Error> {
    let e = &record.elicitation;
    let (a, b) = futures::future::join(
        store.set(
            &keys::index_entry(&e.to, Role::Inbox, record.slots.inbox),
            e.id.as_bytes(),
        ),
        store.set(
            &keys::index_entry(&e.from, Role::Outbox, record.slots.outbox),
            e.id.as_bytes(),
        ),
    )
    .await;
    a?;
    b?;
    Ok(())
}

/// Answers a request whose `Idempotency-Key` is held by `held`: the elicitation it created,
/// finished if a crash cut that request short.
async fn replay<S: Store>(
    store: &S,
    held: &idempotency::Request,
    request_hash: &str,
) -> Result<Created, Error> {
    if held.request_hash != request_hash {
        return Err(Error::Invalid {
            detail: "this Idempotency-Key was already used with a different body".into(),
            errors: vec![field("", "Idempotency-Key reused with a different body")],
        });
    }
    let Some(raw) = store.get(&keys::record(&held.id)).await? else {
        return Err(Error::Storage(format!(
            "the elicitation {} of this Idempotency-Key is missing",
            held.id
        )));
    };
    let record = parse_record(&held.id, &raw)?;
    index(store, &record).await?;
    settle(store, &record, Events::Created, Attempt::Again, None).await?;
    Ok(Created {
        elicitation: record.elicitation,
        replayed: true,
    })
}

/// `Idempotency-Key` claims: one counter per key, created by `increment(k, 0)`, then swapped (over
/// the value read) to an eight-digit nonce naming the request that holds it. Eight digits, because
/// the claim was created as a counter and is read through `increment(k, 0)`, and both backends can
/// increment eight digits (see [`crate::store::SEAL`]); the digits are also what `get` returns.
mod idempotency {
    use serde::{Deserialize, Serialize};

    use super::{IDEMPOTENCY_WINDOW_SECONDS, hex_sha256};
    use crate::keys;
    use crate::store::{Store, StoreResult, swap, zero};
    use crate::time::Timestamp;

    /// The request that holds a claim.
    #[derive(Debug, Clone, Serialize, Deserialize)]
    pub struct Request {
        pub request_hash: String,
        pub id: String,
        pub at: Timestamp,
    }

    impl Request {
        fn live(&self, now: Timestamp) -> bool {
            self.at.plus_secs(IDEMPOTENCY_WINDOW_SECONDS) > now
        }
    }

    /// The outcome of [`claim`].
    pub enum Claim {
        /// The claim names this request now.
        Won,
        /// Another request holds it.
        Held(Request),
    }

    /// The nonce of the request that creates `id` (ids are unique; two nonces that collide still
    /// name different requests, which [`claim`] tells apart).
    pub fn nonce(id: &str) -> String {
        let h = hex_sha256(id.as_bytes());
        let n = u64::from_str_radix(&h[..15], 16).unwrap_or(0) % 90_000_000;
        (10_000_000 + n).to_string()
    }

    async fn holder<S: Store>(store: &S, k: &str, held: &[u8]) -> StoreResult<Option<Request>> {
        let Ok(nonce) = std::str::from_utf8(held) else {
            return Ok(None);
        };
        Ok(store
            .get(&keys::idempotency_request(k, nonce))
            .await?
            .and_then(|raw| serde_json::from_slice(&raw).ok()))
    }

    /// The request holding claim `k`, if it is still within the idempotency window.
    pub async fn live<S: Store>(
        store: &S,
        k: &str,
        now: Timestamp,
    ) -> StoreResult<Option<Request>> {
        if store.increment(k, 0).await? == 0 {
            return Ok(None);
        }
        let Some(held) = store.get(k).await? else {
            return Ok(None);
        };
        Ok(holder(store, k, &held).await?.filter(|r| r.live(now)))
    }

    /// Makes claim `k` name `mine`, unless another request within the window holds it.
    pub async fn claim<S: Store>(
        store: &S,
        k: &str,
        mine: &Request,
        now: Timestamp,
    ) -> StoreResult<Claim> {
        let nonce = nonce(&mine.id);
        let json = serde_json::to_vec(mine).unwrap_or_default();
        store
            .set(&keys::idempotency_request(k, &nonce), &json)
            .await?;
        loop {
            store.increment(k, 0).await?;
            let zero = zero(store).await?;
            let (cas, seen) = store.cas_read(k).await?;
            let Some(seen) = seen else { continue };
            if seen != zero {
                match holder(store, k, &seen).await? {
                    Some(r) if r.id == mine.id => return Ok(Claim::Won),
                    Some(r) if r.live(now) => return Ok(Claim::Held(r)),
                    // Expired: it may be taken over (the swap is over the value read).
                    Some(_) => {}
                    None => continue,
                }
            }
            if swap(store, k, cas, nonce.as_bytes()).await?
                && holder(store, k, nonce.as_bytes())
                    .await?
                    .is_some_and(|r| r.id == mine.id)
            {
                return Ok(Claim::Won);
            }
        }
    }
}

fn parse_record(id: &str, raw: &[u8]) -> Result<Record, Error> {
    serde_json::from_slice(raw).map_err(|e| Error::Storage(format!("unreadable record {id}: {e}")))
}

/// The kind of the event a final status is announced with.
pub(crate) fn final_kind(status: Status) -> Option<EventKind> {
    match status {
        Status::Pending => None,
        Status::Accepted | Status::Declined | Status::Cancelled => Some(EventKind::Answered),
        Status::Withdrawn => Some(EventKind::Withdrawn),
        Status::Expired => Some(EventKind::Expired),
    }
}

/// The event `kind` of `record`, as a log holds it at number `seq`: a function of the record, so
/// whoever writes it writes the same bytes.
fn event_body(record: &Record, kind: EventKind, seq: i64) -> Vec<u8> {
    let e = &record.elicitation;
    let (at, elicitation) = if kind == EventKind::Created {
        let mut pending = e.clone();
        pending.status = Status::Pending;
        pending.responded_at = None;
        pending.response = None;
        (e.created_at, pending)
    } else {
        (e.responded_at.unwrap_or(e.created_at), e.clone())
    };
    Logged::new(Event {
        sequence: seq,
        kind,
        at,
        elicitation,
    })
    .json
    .into_bytes()
}

/// Which events of a record [`settle`] looks after.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Events {
    /// The created event (addressee).
    Created,
    /// The final transition's events (both parties).
    Final,
}

/// Who is settling a record's events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Attempt {
    /// The writer that has just taken their numbers: it commits them.
    First,
    /// The same, having written the events' pending copies alongside its other writes
    /// ([`log::stage`]): it decides them.
    Staged,
    /// A re-drive (a retried request, a replay, a stream at a deadline): the events may be there.
    Again,
}

/// Where the record says an event is: (agent, kind, number) for each.
fn events_of(record: &Record, which: Events) -> Vec<(String, EventKind, i64)> {
    let e = &record.elicitation;
    match which {
        Events::Created => vec![(e.to.clone(), EventKind::Created, record.slots.created)],
        Events::Final => {
            let Some(kind) = final_kind(e.status) else {
                return Vec::new();
            };
            let mut out = Vec::new();
            if let Some(n) = record.slots.to {
                out.push((e.to.clone(), kind, n));
            }
            if let (Some(n), true) = (record.slots.from, e.from != e.to) {
                out.push((e.from.clone(), kind, n));
            }
            out
        }
    }
}

/// Moves `record`'s event of `kind` in `agent`'s log from `old` to `new`.
fn moved(record: &Record, agent: &str, kind: EventKind, new: i64) -> Record {
    let mut next = record.clone();
    if kind == EventKind::Created {
        next.slots.created = new;
    } else if agent == record.elicitation.to {
        next.slots.to = Some(new);
    } else {
        next.slots.from = Some(new);
    }
    next
}

/// Makes sure `record`'s events (`which`) are in their logs, once each. Every event it writes is
/// announced in the change feed first (taking the change's number before the commit: see
/// [`changes`]); `epoch` is a number the caller took for that alongside its own writes. An event
/// whose slot a reader sealed (its writer was too slow) gets a new number, which the record then
/// names (one swap decides it among concurrent re-drives).
async fn settle<S: Store>(
    store: &S,
    record: &Record,
    which: Events,
    attempt: Attempt,
    epoch: Option<i64>,
) -> Result<(), Error> {
    let events = events_of(record, which);
    // A re-drive writes only the events whose slots are still empty.
    let found: Vec<Option<Decided>> = match attempt {
        Attempt::Again => futures::future::join_all(
            events
                .iter()
                .map(|(agent, _, n)| log::written(store, agent, *n)),
        )
        .await
        .into_iter()
        .collect::<Result<_, _>>()?,
        Attempt::First | Attempt::Staged => vec![None; events.len()],
    };
    let mut sealed: Vec<usize> = (0..events.len())
        .filter(|i| found[*i] == Some(Decided::Sealed))
        .collect();
    let writes: Vec<usize> = (0..events.len()).filter(|i| found[*i].is_none()).collect();
    let mentions: Vec<Mention<'_>> = writes
        .iter()
        .map(|i| Mention::Log(&events[*i].0, events[*i].2))
        .collect();
    let epoch = match epoch {
        Some(n) => Some(n),
        None if !mentions.is_empty() => Some(changes::take(store).await?),
        None => None,
    };
    let announce = async {
        match epoch {
            Some(n) => changes::write(store, n, &mentions).await,
            None => Ok(()),
        }
    };
    let commits = futures::future::join_all(writes.iter().map(|i| {
        let (agent, kind, n) = &events[*i];
        let body = event_body(record, *kind, *n);
        async move {
            match attempt {
                Attempt::Staged => log::decide(store, agent, *n, &body).await,
                Attempt::First | Attempt::Again => log::commit(store, agent, *n, &body).await,
            }
        }
    }));
    let (announced, decided) = futures::future::join(announce, commits).await;
    for (i, d) in writes.iter().zip(decided) {
        if d? == Decided::Sealed {
            sealed.push(*i);
        }
    }
    announced?;
    for i in sealed {
        let (agent, kind, n) = &events[i];
        reappend(store, record, agent, *kind, *n).await?;
    }
    Ok(())
}

/// Announces `agent`'s event of `kind` at `n` in the change feed, then commits it there.
async fn announce_and_commit<S: Store>(
    store: &S,
    record: &Record,
    agent: &str,
    kind: EventKind,
    n: i64,
) -> Result<Decided, Error> {
    changes::publish(store, &[Mention::Log(agent, n)]).await?;
    Ok(log::commit(store, agent, n, &event_body(record, kind, n)).await?)
}

/// Gives `agent`'s event of `kind`, sealed at `sealed`, a new number: the record is swapped to
/// name it, then the event announced and committed there.
async fn reappend<S: Store>(
    store: &S,
    record: &Record,
    agent: &str,
    kind: EventKind,
    mut sealed: i64,
) -> Result<(), Error> {
    let key = keys::record(&record.elicitation.id);
    loop {
        let (cas, raw) = store.cas_read(&key).await?;
        let Some(raw) = raw else {
            return Err(Error::Storage(format!("record {key} vanished")));
        };
        let current = parse_record(&record.elicitation.id, &raw)?;
        let which = if kind == EventKind::Created {
            Events::Created
        } else {
            Events::Final
        };
        let now_at = events_of(&current, which)
            .into_iter()
            .find(|(a, k, _)| a == agent && *k == kind)
            .map(|(_, _, n)| n);
        match now_at {
            None => return Ok(()),
            Some(n) if n != sealed => {
                // Another re-drive moved it already: make sure it is there.
                let decided = match log::written(store, agent, n).await? {
                    Some(d) => d,
                    None => announce_and_commit(store, &current, agent, kind, n).await?,
                };
                match decided {
                    Decided::Committed => return Ok(()),
                    Decided::Sealed => {
                        sealed = n;
                        continue;
                    }
                }
            }
            Some(_) => {}
        }
        let m = log::take(store, agent).await?;
        let next = moved(&current, agent, kind, m);
        let json = serde_json::to_vec(&next).unwrap_or_default();
        // `m` is unique to this writer, so finding `json` there means this swap won.
        if swap(store, &key, cas, &json).await? {
            match announce_and_commit(store, &next, agent, kind, m).await? {
                Decided::Committed => return Ok(()),
                Decided::Sealed => sealed = m,
            }
        } else {
            log::void(store, agent, m).await?;
        }
    }
}

/// Makes sure the events of `record`'s final state are in both parties' logs (a no-op when they
/// are): whoever finds an elicitation answered, withdrawn or expired after a crash may have cut
/// its transition short.
async fn announced<S: Store>(store: &S, record: &Record) -> Result<(), Error> {
    settle(store, record, Events::Final, Attempt::Again, None).await
}

/// What a transition does to a pending elicitation.
struct Change {
    kind: EventKind,
    status: Status,
    at: Timestamp,
    actor: Option<String>,
    answer: Option<Answer>,
}

/// Makes `change` to `record`, which `cas` read, unless somebody changed it first: the winner's
/// record names the event numbers it took, then it commits the events. `None` when it lost (its
/// numbers are given up, so readers pass them at once).
async fn transition<S: Store>(
    store: &S,
    cas: S::Cas,
    record: &Record,
    change: Change,
) -> Result<Option<Record>, Error> {
    let e = &record.elicitation;
    let key = keys::record(&e.id);
    let (to, from) = futures::future::join(log::take(store, &e.to), async {
        if e.from == e.to {
            Ok(None)
        } else {
            log::take(store, &e.from).await.map(Some)
        }
    })
    .await;
    let (to, from) = (to?, from?);
    let mut next = record.clone();
    next.elicitation.status = change.status;
    next.elicitation.responded_at = Some(change.at);
    next.elicitation.response = change.answer.clone();
    next.history.push(AuditEntry {
        kind: change.kind,
        at: change.at,
        actor: change.actor,
        action: change.answer.map(|a| a.action),
    });
    next.slots.to = Some(to);
    next.slots.from = from;
    next.slots.attempt = Some(to);
    let json = serde_json::to_vec(&next).unwrap_or_default();
    // The events' pending copies go with the swap: the numbers are this writer's alone, and a
    // loser's copies are overwritten when it gives the numbers up.
    let staged = events_of(&next, Events::Final)
        .into_iter()
        .map(|(agent, kind, n)| {
            let body = event_body(&next, kind, n);
            async move { log::stage(store, &agent, n, &body).await }
        });
    let (swapped, staged) = futures::future::join(
        store.cas_swap(cas, &json),
        futures::future::join_all(staged),
    )
    .await;
    staged.into_iter().collect::<Result<(), _>>()?;
    let won = match swapped? {
        Swapped::Done => true,
        // Read back: `to` is unique to this writer, and a later re-drive keeps `attempt`.
        Swapped::Unsure => store
            .get(&key)
            .await?
            .and_then(|raw| serde_json::from_slice::<Record>(&raw).ok())
            .is_some_and(|r| r.slots.attempt == Some(to)),
    };
    if !won {
        let (a, b) = futures::future::join(log::void(store, &e.to, to), async {
            match from {
                Some(n) => log::void(store, &e.from, n).await,
                None => Ok(()),
            }
        })
        .await;
        a?;
        b?;
        return Ok(None);
    }
    // The one winner gives back the addressee's pending unit its create took, alongside its
    // events.
    let (given_back, settled) = futures::future::join(
        store.increment(&keys::pending(&e.to), -1),
        settle(store, &next, Events::Final, Attempt::Staged, None),
    )
    .await;
    given_back?;
    settled?;
    Ok(Some(next))
}

/// The expiry of `record` (pending, past its deadline).
fn expiry(record: &Record) -> Change {
    Change {
        kind: EventKind::Expired,
        status: Status::Expired,
        at: record.elicitation.expires_at,
        actor: None,
        answer: None,
    }
}

/// Reads `id` for a compare-and-swap.
async fn load_for_swap<S: Store>(
    store: &S,
    actor: &str,
    id: &str,
    now: Timestamp,
) -> Result<(S::Cas, Vec<u8>, Record), Error> {
    let (cas, raw) = store.cas_read(&keys::record(id)).await?;
    let record = raw.as_deref().map(|r| parse_record(id, r)).transpose()?;
    match (raw, record) {
        (Some(raw), Some(record))
            if record.elicitation.involves(actor) && !record.forgotten(now) =>
        {
            Ok((cas, raw, record))
        }
        _ => Err(Error::NotFound(format!(
            "no elicitation {id} for agent {actor}"
        ))),
    }
}

/// Loads `id` as seen by `actor` (a party to it), writing the expiry transition if it is due.
async fn load_for<S: Store>(
    store: &S,
    actor: &str,
    id: &str,
    now: Timestamp,
) -> Result<Record, Error> {
    let not_found = || Error::NotFound(format!("no elicitation {id} for agent {actor}"));
    let raw = store.get(&keys::record(id)).await?;
    let record = raw.as_deref().map(|r| parse_record(id, r)).transpose()?;
    let record = record
        .filter(|r| r.elicitation.involves(actor) && !r.forgotten(now))
        .ok_or_else(not_found)?;
    let e = &record.elicitation;
    if e.status != Status::Pending || now < e.expires_at {
        return Ok(record);
    }
    expire_unwritten(store, id, now)
        .await?
        .filter(|r| !r.forgotten(now))
        .ok_or_else(not_found)
}

/// Elicitation `id` as `actor` (a party to it) sees it now; writes the expiry first if it is due.
pub async fn get<S: Store>(
    store: &S,
    actor: &str,
    id: &str,
    now: Timestamp,
) -> Result<Elicitation, Error> {
    Ok(load_for(store, actor, id, now).await?.elicitation)
}

/// At a deadline a stream watches: writes the expiry of `id` if nobody has, and makes sure the
/// events of its final state are there (whoever expired it may have crashed before them).
pub async fn expire_due<S: Store>(
    store: &S,
    actor: &str,
    id: &str,
    now: Timestamp,
) -> Result<Elicitation, Error> {
    let record = load_for(store, actor, id, now).await?;
    announced(store, &record).await?;
    Ok(record.elicitation)
}

/// The audit history of `id`, oldest first.
pub async fn history<S: Store>(
    store: &S,
    actor: &str,
    id: &str,
    now: Timestamp,
) -> Result<Vec<AuditEntry>, Error> {
    Ok(load_for(store, actor, id, now).await?.history)
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
        let (cas, _, record) = load_for_swap(store, actor, id, now).await?;
        let e = &record.elicitation;
        if e.status == Status::Pending && now >= e.expires_at {
            transition(store, cas, &record, expiry(&record)).await?;
            continue;
        }
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
                return match parse_answer(body, e) {
                    // The same answer again (a retry): its events are in place, or put there now.
                    Ok(a) if Some(&a) == e.response.as_ref() => {
                        announced(store, &record).await?;
                        Ok(record.elicitation)
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
        let change = Change {
            kind: EventKind::Answered,
            status: answer.action.status(),
            at: now,
            actor: Some(actor.to_string()),
            answer: Some(answer),
        };
        if let Some(next) = transition(store, cas, &record, change).await? {
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
        let (cas, _, record) = load_for_swap(store, actor, id, now).await?;
        let e = &record.elicitation;
        if e.status == Status::Pending && now >= e.expires_at {
            transition(store, cas, &record, expiry(&record)).await?;
            continue;
        }
        if e.from != actor {
            return Err(Error::Forbidden(
                "only the requester may withdraw an elicitation".into(),
            ));
        }
        let current = Some(Box::new(e.clone()));
        match e.status {
            Status::Withdrawn => {
                announced(store, &record).await?;
                return Ok(record.elicitation);
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
        let change = Change {
            kind: EventKind::Withdrawn,
            status: Status::Withdrawn,
            at: now,
            actor: Some(actor.to_string()),
            answer: None,
        };
        if let Some(next) = transition(store, cas, &record, change).await? {
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
    /// Only entries above this index position (a `position` an earlier page returned).
    pub after: Option<i64>,
}

/// Default page size.
pub const DEFAULT_LIMIT: usize = 20;
/// Largest page size.
pub const MAX_LIMIT: usize = 100;
/// Index entries one list request looks at, at most (a sparse filter returns a short page and a cursor).
const MAX_SCAN: i64 = 1000;

impl ListQuery {
    /// The pending entries of one list, newest first, a page of `limit`.
    pub fn pending(role: Role, limit: usize) -> Self {
        Self {
            role,
            statuses: vec![Status::Pending],
            limit,
            cursor: None,
            after: None,
        }
    }

    /// Parses `role`, `status` (comma-separated), `limit`, `cursor` from a query string.
    pub fn parse(query: &str) -> Result<Self, Error> {
        let mut q = Self {
            role: Role::Inbox,
            statuses: Vec::new(),
            limit: DEFAULT_LIMIT,
            cursor: None,
            after: None,
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
                "after" => {
                    q.after = Some(
                        v.parse()
                            .ok()
                            .filter(|n| *n >= 0)
                            .ok_or_else(|| Error::BadRequest("after must be a position".into()))?,
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
    /// The newest position of the list when it was read: pass it as `after` to see only what
    /// arrives later.
    pub position: i64,
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
    let head = store.increment(&keys::index_head(agent, q.role), 0).await?;
    // `pos` is the next position to examine; positions are examined downwards.
    let mut pos = q.cursor.map_or(head, |c| (c - 1).min(head));
    let after = q.after.unwrap_or(0);
    let floor = (pos - MAX_SCAN).max(after);
    let chunk = i64::try_from(q.limit * 2).unwrap_or(64).max(16);
    let mut items = Vec::new();
    'scan: while pos > floor && items.len() < q.limit {
        let low = (pos - chunk).max(floor);
        let positions: Vec<i64> = (low + 1..=pos).rev().collect();
        let index_keys: Vec<String> = positions
            .iter()
            .map(|n| keys::index_entry(agent, q.role, *n))
            .collect();
        let ids: Vec<Option<String>> = get_all(store, &index_keys)
            .await?
            .into_iter()
            .map(|v| v.and_then(|b| String::from_utf8(b).ok()))
            .collect();
        let record_keys: Vec<String> = ids.iter().flatten().map(|id| keys::record(id)).collect();
        let mut records = get_all(store, &record_keys).await?.into_iter();
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
            if record.forgotten(now) {
                continue;
            }
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
    let next_cursor = (pos > after).then(|| (pos + 1).to_string());
    Ok(Page {
        items,
        next_cursor,
        position: head,
    })
}

#[cfg(test)]
mod tests {
    use super::check_url;

    #[test]
    fn a_url_is_https_or_plain_http_to_a_loopback_host() {
        for ok in [
            "https://example.com/form?x=1",
            "https://user@example.com:8443/",
            "http://localhost:8080/callback",
            "http://LOCALHOST/",
            "http://127.0.0.1:8080/callback",
            "http://127.8.9.10/",
            "http://[::1]:3000/",
        ] {
            assert_eq!(check_url(ok), Ok(()), "{ok}");
        }
        for bad in [
            // Names that only look like loopback addresses.
            "http://127.attacker.example/",
            "http://localhost.attacker.example/",
            "http://user@127.0.0.1.attacker.example/",
            "http://example.com/",
            "http://10.0.0.1/",
            "ftp://example.com/",
            "javascript:alert(1)",
            "https://",
            "example.com/form",
            "https://exa mple.com/",
        ] {
            assert!(check_url(bad).is_err(), "{bad}");
        }
    }
}
