//! The HTTP API as plain functions over plain request and response values, one entry point per
//! component. The Spin components only convert to and from these types, so every route's behaviour
//! (status codes, problem documents, headers) is defined — and unit-testable — here.

use std::collections::BTreeMap;
use std::future::Future;

use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::changes;
use crate::error::Error;
use crate::keys;
use crate::service::{self, ListQuery};
use crate::store::Store;
use crate::time::Timestamp;
use crate::token;
use crate::wait;

/// Largest request body accepted.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Longest `?wait=` for an elicitation read, in seconds.
pub const MAX_WAIT_SECONDS: u64 = 25;
/// Longest token lifetime `POST /v1/tokens` grants.
pub const MAX_TOKEN_TTL_SECONDS: u64 = 30 * 86_400;

/// An incoming request, as the component saw it.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// `GET`, `POST`, ….
    pub method: String,
    /// The Spin route that matched (`spin-matched-route`), e.g. `/v1/elicitations/:id`.
    pub route: String,
    /// `:name` captures of the route (`spin-path-match-<name>`).
    pub params: BTreeMap<String, String>,
    /// The raw query string (without `?`).
    pub query: String,
    /// `Authorization` header.
    pub authorization: Option<String>,
    /// `Content-Type` header.
    pub content_type: Option<String>,
    /// `Idempotency-Key` header.
    pub idempotency_key: Option<String>,
    /// `Last-Event-ID` header (SSE resumption).
    pub last_event_id: Option<String>,
    /// Every header, names lower-case (the MCP gateway reads its own ones from here).
    pub headers: Vec<(String, String)>,
    /// The body (at most [`MAX_BODY_BYTES`]; the adapter answers 413 beyond).
    pub body: Vec<u8>,
}

impl Request {
    /// The first value of header `name` (lower-case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn param(&self, name: &str) -> Result<&str, Error> {
        self.params
            .get(name)
            .map(String::as_str)
            .ok_or_else(|| Error::NotFound(format!("the route has no :{name}")))
    }

    pub(crate) fn require_method(&self, allowed: &'static str) -> Result<(), Error> {
        if allowed.split(", ").any(|m| m == self.method) {
            Ok(())
        } else {
            Err(Error::MethodNotAllowed(allowed))
        }
    }

    pub(crate) fn require_json(&self) -> Result<(), Error> {
        let ok = self.content_type.as_deref().is_some_and(|ct| {
            let essence = ct
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            essence == "application/json"
                || (essence.starts_with("application/") && essence.ends_with("+json"))
        });
        if ok {
            Ok(())
        } else {
            Err(Error::UnsupportedMediaType)
        }
    }
}

/// An outgoing response.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    /// HTTP status.
    pub status: u16,
    /// Headers (names lower-case).
    pub headers: Vec<(String, String)>,
    /// Body bytes.
    pub body: Vec<u8>,
}

impl Response {
    /// A JSON response.
    pub fn json(status: u16, value: &impl Serialize) -> Self {
        Self {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: serde_json::to_vec(value).unwrap_or_default(),
        }
    }

    /// This response with one more header.
    pub fn with_header(mut self, name: &str, value: String) -> Self {
        self.headers.push((name.to_string(), value));
        self
    }

    /// The RFC 9457 response for `e`.
    pub fn problem(e: &Error) -> Self {
        let mut r = Self {
            status: e.status(),
            headers: vec![("content-type".into(), "application/problem+json".into())],
            body: e.problem().to_json(),
        };
        for (name, value) in e.headers() {
            r.headers.push((name.to_string(), value));
        }
        r
    }
}

fn respond(result: Result<Response, Error>) -> Response {
    result.unwrap_or_else(|e| Response::problem(&e))
}

/// Secrets and limits the API needs, from Spin variables.
#[derive(Debug, Clone)]
pub struct Secrets {
    /// What every create is held to.
    pub limits: service::Limits,
    /// HMAC key of agent tokens.
    pub token_secret: String,
    /// Bearer token that may mint agent tokens.
    pub admin_token: String,
    /// The issuer and audience agent tokens carry (`token_issuer`, `token_audience`).
    pub realm: token::Realm,
}

/// The agent a request's bearer token proves, unless the token was revoked since it was issued.
pub(crate) async fn authenticate<S: Store>(
    store: &S,
    req: &Request,
    secrets: &Secrets,
    now: Timestamp,
) -> Result<token::Verified, Error> {
    let verified = token::verify_bearer(
        secrets.token_secret.as_bytes(),
        &secrets.realm,
        req.authorization.as_deref(),
        now,
    )?;
    still_valid(store, &verified, now).await?;
    Ok(verified)
}

/// Refuses a token verified earlier once it expired, or once its agent's tokens were revoked
/// after it was issued: what a long request (a wait) checks again as it goes on.
pub(crate) async fn still_valid<S: Store>(
    store: &S,
    verified: &token::Verified,
    now: Timestamp,
) -> Result<(), Error> {
    if verified.expires <= now {
        return Err(Error::Unauthorized("token expired".into()));
    }
    if token::revoked(verified, revoked_at(store, &verified.agent).await?) {
        return Err(Error::Unauthorized("token revoked".into()));
    }
    Ok(())
}

/// When `agent`'s tokens were last revoked (ms), if ever.
pub async fn revoked_at<S: Store>(store: &S, agent: &str) -> Result<Option<Timestamp>, Error> {
    Ok(store
        .get(&keys::revoked(agent))
        .await?
        .and_then(|v| std::str::from_utf8(&v).ok()?.parse().ok())
        .map(Timestamp))
}

/// Checks the admin token.
fn require_admin(req: &Request, secrets: &Secrets, what: &str) -> Result<(), Error> {
    let presented = token::bearer(req.authorization.as_deref())?;
    if !token::secrets_match(presented.as_bytes(), secrets.admin_token.as_bytes()) {
        return Err(Error::Unauthorized(format!("{what} needs the admin token")));
    }
    Ok(())
}

/// The body's JSON object, with only these fields, and its `agent`.
fn admin_body(req: &Request, allowed: &[&str]) -> Result<(Map<String, Value>, String), Error> {
    req.require_json()?;
    let body: Value = serde_json::from_slice(&req.body)
        .map_err(|e| Error::BadRequest(format!("the body is not valid JSON: {e}")))?;
    let Value::Object(map) = body else {
        return Err(Error::invalid("", "the body must be a JSON object"));
    };
    if let Some(k) = map.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(Error::invalid(&format!("/{k}"), "unknown field"));
    }
    let agent = match map.get("agent") {
        Some(Value::String(a)) if token::is_valid_agent_id(a) => a.clone(),
        Some(_) => {
            return Err(Error::invalid(
                "/agent",
                "must match ^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$",
            ));
        }
        None => return Err(Error::invalid("/agent", "required")),
    };
    Ok((map, agent))
}

/// `POST /v1/tokens/revoke` (component `tokens`): with the admin token, takes back every token of
/// `agent` issued up to now — each is answered 401 from then on, on every route — and announces
/// it on the change feed, so the agent's open streams end. Tokens minted afterwards work.
pub async fn revoke<S: Store>(
    store: &S,
    req: &Request,
    secrets: &Secrets,
    now: Timestamp,
) -> Response {
    respond(
        async {
            req.require_method("POST")?;
            require_admin(req, secrets, "revoking tokens")?;
            let (_, agent) = admin_body(req, &["agent"])?;
            // A later revocation never moves the time back (two admins at once, a retry).
            let at = revoked_at(store, &agent).await?.map_or(now, |t| t.max(now));
            store
                .set(&keys::revoked(&agent), at.0.to_string().as_bytes())
                .await?;
            changes::publish(store, &[changes::Mention::Revoked(&agent)]).await?;
            Ok(Response::json(
                200,
                &json!({ "agent": agent, "revokedAt": at }),
            ))
        }
        .await,
    )
}

/// Splits a query string into decoded pairs.
pub fn query_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    fn hex(b: u8) -> Option<u8> {
        (b as char).to_digit(16).and_then(|d| u8::try_from(d).ok())
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match (
            bytes[i],
            bytes.get(i + 1).copied().and_then(hex),
            bytes.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(hi), Some(lo)) => {
                out.push(hi * 16 + lo);
                i += 3;
            }
            (b'+', _, _) => {
                out.push(b' ');
                i += 1;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A whole number of seconds from 0 to `max` in query parameter `name`.
fn seconds_param(name: &str, value: &str, max: u64) -> Result<u64, Error> {
    value
        .parse()
        .ok()
        .filter(|n| *n <= max)
        .ok_or_else(|| Error::BadRequest(format!("{name} must be 0 to {max} seconds")))
}

/// `POST /v1/tokens` (component `tokens`).
pub fn tokens(req: &Request, secrets: &Secrets, now: Timestamp) -> Response {
    respond((|| {
        req.require_method("POST")?;
        require_admin(req, secrets, "minting tokens")?;
        let (map, agent) = admin_body(req, &["agent", "ttlSeconds"])?;
        let ttl = match map.get("ttlSeconds") {
            None => 3600,
            Some(v) => v
                .as_u64()
                .filter(|n| (1..=MAX_TOKEN_TTL_SECONDS).contains(n))
                .ok_or_else(|| {
                    Error::invalid(
                        "/ttlSeconds",
                        format!("must be an integer from 1 to {MAX_TOKEN_TTL_SECONDS}"),
                    )
                })?,
        };
        // JWT `exp` has whole seconds: the token expires at the start of the second after now + ttl.
        let expires = Timestamp((now.plus_secs(ttl).0 / 1000) * 1000);
        let jwt = token::mint(
            secrets.token_secret.as_bytes(),
            &secrets.realm,
            &agent,
            now,
            expires,
        );
        Ok(Response::json(
            201,
            &json!({ "token": jwt, "agent": agent, "expiresAt": expires }),
        ))
    })())
}

/// `POST /v1/elicitations` (component `create`). `new_id` is a fresh unguessable id.
pub async fn create<S: Store>(
    store: &S,
    req: &Request,
    secrets: &Secrets,
    now: Timestamp,
    new_id: String,
) -> Response {
    respond(
        async {
            req.require_method("POST")?;
            let actor = authenticate(store, req, secrets, now).await?.agent;
            req.require_json()?;
            let created = service::create(
                store,
                &actor,
                &req.body,
                req.idempotency_key.as_deref(),
                &secrets.limits,
                now,
                new_id,
            )
            .await?;
            let location = format!("/v1/elicitations/{}", created.elicitation.id);
            let mut r = Response::json(201, &created.elicitation).with_header("location", location);
            if created.replayed {
                r = r.with_header("idempotent-replayed", "true".into());
            }
            Ok(r)
        }
        .await,
    )
}

/// `POST /v1/elicitations/:id/response` and `POST /v1/elicitations/:id/withdraw` (component `respond`).
pub async fn respond_route<S: Store>(
    store: &S,
    req: &Request,
    secrets: &Secrets,
    now: Timestamp,
) -> Response {
    respond(
        async {
            req.require_method("POST")?;
            let actor = authenticate(store, req, secrets, now).await?.agent;
            let id = req.param("id")?;
            let e = if req.route.ends_with("/withdraw") {
                if !req.body.is_empty() {
                    req.require_json()?;
                }
                service::withdraw(store, &actor, id, now).await?
            } else {
                req.require_json()?;
                service::respond(store, &actor, id, &req.body, now).await?
            };
            Ok(Response::json(200, &e))
        }
        .await,
    )
}

/// Settings of the read routes, from Spin variables.
#[derive(Debug, Clone)]
pub struct ReadOptions {
    /// How often the legacy `wait_for_messages` route looks at the store (`legacy_poll_ms`).
    pub legacy_poll_ms: u64,
}

impl Default for ReadOptions {
    fn default() -> Self {
        Self {
            legacy_poll_ms: 1000,
        }
    }
}

/// The read routes (component `subscribe`): one elicitation (optionally waiting), its history, an
/// agent's list, and the legacy polling route. `sleep` waits the given milliseconds; `clock` reads
/// the time; `until_changed(agents, since, ms)` waits until one of `agents` changed after change-feed
/// position `since`, or `ms` passed (a `?wait=` read waits with it).
pub async fn read<S, F, Fut, W>(
    store: &S,
    req: &Request,
    secrets: &Secrets,
    opts: &ReadOptions,
    clock: impl Fn() -> Timestamp,
    sleep: F,
    until_changed: W,
) -> Response
where
    S: Store,
    F: Fn(u64) -> Fut,
    Fut: Future<Output = ()>,
    W: wait::Changes,
{
    respond(
        async {
            req.require_method("GET")?;
            let started = clock();
            let verified = authenticate(store, req, secrets, started).await?;
            let actor = verified.agent.clone();
            if req.route.ends_with("/messages") {
                return legacy_messages(store, req, &actor, opts, &clock, &sleep).await;
            }
            if req.route.ends_with("/elicitations") && req.params.contains_key("agent") {
                let query = ListQuery::parse(&req.query)?;
                let page =
                    service::list(store, &actor, req.param("agent")?, &query, started).await?;
                return Ok(Response::json(200, &page));
            }
            let id = req.param("id")?;
            if req.route.ends_with("/history") {
                let events = service::history(store, &actor, id, started).await?;
                return Ok(Response::json(200, &json!({ "id": id, "events": events })));
            }
            let mut wait_ms = 0;
            for (k, v) in query_pairs(&req.query) {
                match k.as_str() {
                    "wait" => {
                        wait_ms = seconds_param("wait", &v, MAX_WAIT_SECONDS)? * 1000;
                    }
                    _ => return Err(Error::BadRequest(format!("unknown query parameter {k:?}"))),
                }
            }
            let e = wait::settled(store, &verified, id, wait_ms, &clock, &until_changed).await?;
            Ok(Response::json(200, &e))
        }
        .await,
    )
}

/// Longest `timeout` of the legacy route, in seconds (hosted platforms end requests at 30 s).
pub const MAX_LEGACY_TIMEOUT_SECONDS: u64 = 25;
/// Events one legacy poll returns at most.
pub const LEGACY_BATCH: usize = 100;

/// `GET /v1/agents/:agent/messages?since=&timeout=` — the seed's `wait_for_messages`, kept for
/// migration and as the benchmark baseline: it looks at the store once per `legacy_poll_ms` and returns
/// as soon as there are events after `since`, or at the timeout.
async fn legacy_messages<S, F, Fut>(
    store: &S,
    req: &Request,
    actor: &str,
    opts: &ReadOptions,
    clock: &impl Fn() -> Timestamp,
    sleep: &F,
) -> Result<Response, Error>
where
    S: Store,
    F: Fn(u64) -> Fut,
    Fut: Future<Output = ()>,
{
    let agent = req.param("agent")?;
    if agent != actor {
        return Err(Error::Forbidden(
            "an agent may only read its own messages".into(),
        ));
    }
    let (mut since, mut timeout) = (0_i64, MAX_LEGACY_TIMEOUT_SECONDS);
    for (k, v) in query_pairs(&req.query) {
        match k.as_str() {
            "since" => {
                since =
                    v.parse().ok().filter(|n| *n >= 0).ok_or_else(|| {
                        Error::BadRequest("since must be a sequence number".into())
                    })?;
            }
            "timeout" => {
                timeout = seconds_param("timeout", &v, MAX_LEGACY_TIMEOUT_SECONDS)?;
            }
            _ => return Err(Error::BadRequest(format!("unknown query parameter {k:?}"))),
        }
    }
    let body = legacy_poll(store, agent, since, timeout, opts, clock, sleep).await?;
    Ok(Response::json(200, &body)
        .with_header("deprecation", "true".into())
        .with_header("sunset", LEGACY_SUNSET.into())
        .with_header(
            "link",
            format!("</v1/agents/{agent}/events>; rel=\"successor-version\""),
        ))
}

/// The seed's `wait_for_messages` for `agent`: looks at its log once per `legacy_poll_ms` and
/// returns as soon as there are events after `since`, or after `timeout` seconds — the body of
/// both the legacy route and the MCP tool of that name.
pub async fn legacy_poll<S, F, Fut>(
    store: &S,
    agent: &str,
    since: i64,
    timeout: u64,
    opts: &ReadOptions,
    clock: &impl Fn() -> Timestamp,
    sleep: &F,
) -> Result<Value, Error>
where
    S: Store,
    F: Fn(u64) -> Fut,
    Fut: Future<Output = ()>,
{
    let started = clock();
    let deadline = started.plus_secs(timeout);
    let mut reader = crate::log::Reader::new(agent, since);
    let (events, reset) = loop {
        let now = clock();
        let events = reader.next(store, now, LEGACY_BATCH).await?;
        let reset = reader.take_reset();
        if !events.is_empty() || reset.is_some() || now >= deadline {
            break (events, reset);
        }
        sleep(opts.legacy_poll_ms.max(1).min(now.millis_until(deadline))).await;
    };
    let items: Vec<Value> = events
        .iter()
        .map(|l| &l.event)
        .map(|e| json!({ "sequence": e.sequence, "eventType": e.kind.as_str(), "data": { "at": e.at, "elicitation": e.elicitation } }))
        .collect();
    Ok(match reset {
        // `since` is older than the retained history: the client re-syncs from its inbox list,
        // then polls again from `head`.
        Some((_, head)) => json!({ "events": [], "count": 0, "status": "reset", "head": head }),
        None if events.is_empty() => json!({ "events": [], "count": 0, "status": "timeout" }),
        None => json!({ "events": items, "count": items.len(), "status": "new_events" }),
    })
}

/// When the legacy polling route goes away (HTTP-date).
pub const LEGACY_SUNSET: &str = "Thu, 01 Jul 2027 00:00:00 GMT";

/// Where an event stream starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamStart {
    /// The agent whose log is streamed (the token's subject).
    pub agent: String,
    /// The token the stream was opened with: the stream ends when it expires or is revoked.
    pub token: token::Verified,
    /// The client's cursor (`Last-Event-ID`, else `?after=`); none = only new events.
    pub cursor: Option<i64>,
}

/// Checks a `GET /v1/agents/:agent/events` request (component `events`): the token's agent must be
/// `:agent`; the cursor comes from `Last-Event-ID` or, for clients that cannot set headers, `?after=`.
pub async fn open_stream<S: Store>(
    store: &S,
    req: &Request,
    secrets: &Secrets,
    now: Timestamp,
) -> Result<StreamStart, Response> {
    async {
        req.require_method("GET")?;
        let verified = authenticate(store, req, secrets, now).await?;
        let actor = verified.agent.clone();
        let agent = req.param("agent")?;
        if agent != actor {
            return Err(Error::Forbidden(
                "an agent may only stream its own events".into(),
            ));
        }
        let parse = |v: &str| {
            v.trim()
                .parse::<i64>()
                .ok()
                .filter(|n| *n >= 0)
                .ok_or_else(|| Error::BadRequest(format!("invalid event id {v:?}")))
        };
        let mut cursor = None;
        for (k, v) in query_pairs(&req.query) {
            match k.as_str() {
                "after" => cursor = Some(parse(&v)?),
                _ => return Err(Error::BadRequest(format!("unknown query parameter {k:?}"))),
            }
        }
        if let Some(h) = req
            .last_event_id
            .as_deref()
            .filter(|h| !h.trim().is_empty())
        {
            cursor = Some(parse(h)?);
        }
        Ok(StreamStart {
            agent: actor,
            token: verified,
            cursor,
        })
    }
    .await
    .map_err(|e| Response::problem(&e))
}
