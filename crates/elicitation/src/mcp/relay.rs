//! `relay_to_human`: the caller's human answers the questions addressed to the caller through the
//! client's native elicitation, and their accept, decline or cancel becomes the caller's answer.
//!
//! Which questions: the one `id` (it must be addressed to the caller and pending), else the
//! caller's pending inbox, oldest first, at most [`MAX_RELAYED`]; with none pending the tool
//! waits up to `waitSeconds` for one. A question is asked in the mode it was made in — form with
//! its message and `requestedSchema`, or URL — and only in a mode the client declared; a client
//! that declared no elicitation at all gets a tool error.
//!
//! **2025 (sessions).** The tool call is answered with an SSE stream ([`Streamed`]): one
//! `elicitation/create` request at a time, then the tool result. The request's JSON-RPC id is
//! `relay:<elicitation id>:<tag>`, the tag a MAC over the session, the agent and the elicitation
//! ([`crate::token::tag`]), so the client's answer — a POST of a JSON-RPC response, possibly to
//! another instance or node — is recorded by whoever receives it ([`answered`]), with no state
//! kept in between and even after the stream has ended. The stream learns of it like any wait:
//! the recorded answer changes the elicitation (the change feed wakes the stream); an answer that
//! could not be recorded (content the schema rejects, an error from the client) is written under
//! [`keys::relay_refusal`] and announced with [`changes::nudge`].
//!
//! **2026 (MRTR).** The first call returns `input_required` with one `elicitation/create` per
//! question (keyed by elicitation id) and a `requestState` sealed with a MAC: the agent, the
//! questions, a digest of the arguments and an expiry ([`STATE_TTL_SECONDS`]). The client's retry
//! brings the human's answers in `inputResponses`; each is recorded, and questions left without
//! one are asked again. Recording goes through [`service::respond`], so a replayed
//! `requestState` cannot answer anything twice: the same answer again is a no-op, another one a
//! conflict.

use std::future::Future;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::tools::{Args, Call, Outcome, done, failed};
use super::{Caller, Env, Settings, success};
use crate::changes;
use crate::error::Error;
use crate::keys::{self, Role};
use crate::model::{Elicitation, Mode, Status};
use crate::service::{self, ListQuery};
use crate::store::Store;
use crate::time::Timestamp;
use crate::token;
use crate::wait;

/// Most questions one call relays.
pub const MAX_RELAYED: usize = 10;
/// How long a 2026 `requestState` stays good: the human's time to answer.
pub const STATE_TTL_SECONDS: u64 = 600;
/// How long a 2025 relay waits for the human when the call gives no `waitSeconds`.
pub const DEFAULT_WAIT_SECONDS: u64 = super::tools::MAX_WAIT_SECONDS;

const RELAY_ID_PURPOSE: &str = "mcp-relay-id";
const STATE_PURPOSE: &str = "mcp-request-state";

/// What a 2025 relay stream has to do.
#[derive(Debug, Clone)]
pub struct Job {
    id: Option<String>,
    wait_ms: u64,
    secret: String,
}

/// Where a client's messages go while a stream is open.
pub trait Outbound {
    /// Sends one JSON-RPC message; `false` when the client is gone.
    fn send(&mut self, message: &Value) -> impl Future<Output = bool>;
}

/// Which elicitation modes the client declared (`elicitation: {}` means form only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Modes {
    /// Form mode.
    pub form: bool,
    /// URL mode.
    pub url: bool,
}

impl Modes {
    /// The modes in a client's capabilities, or `None` without `elicitation`.
    pub fn declared(capabilities: &Value) -> Option<Self> {
        let e = capabilities.get("elicitation")?.as_object()?;
        let (form, url) = (e.contains_key("form"), e.contains_key("url"));
        Some(Self {
            form: form || !url,
            url,
        })
    }
}

fn modes_of(caller: &Caller) -> Result<Modes, Error> {
    Modes::declared(&caller.capabilities).ok_or_else(|| {
        Error::BadRequest(
            "this client did not declare the elicitation capability, so it cannot ask its \
             human: answer with respond, or connect with a client that supports elicitation"
                .into(),
        )
    })
}

/// The `elicitation/create` params that put `e` to the human, or why this client cannot.
pub fn elicit_params(e: &Elicitation, caller: &Caller, modes: Modes) -> Result<Value, Error> {
    let cannot = |mode: &str| {
        Error::BadRequest(format!(
            "{} is a {mode}-mode question and this client did not declare {mode}-mode elicitation",
            e.id
        ))
    };
    match e.mode {
        Mode::Form if !modes.form => Err(cannot("form")),
        Mode::Url if !modes.url => Err(cannot("url")),
        Mode::Form => {
            let schema = e
                .requested_schema
                .clone()
                .unwrap_or_else(|| json!({"type": "object", "properties": {}}));
            let mut p = json!({"message": e.message, "requestedSchema": schema});
            // `mode` came with 2025-11-25; older clients know only forms.
            if caller.version.as_str() >= "2025-11-25" {
                p["mode"] = json!("form");
            }
            Ok(p)
        }
        Mode::Url => {
            let mut p = json!({"mode": "url", "message": e.message, "url": e.url});
            if !caller.stateless() {
                p["elicitationId"] = json!(e.id);
            }
            Ok(p)
        }
    }
}

/// Records the human's answer (an `ElicitResult`: `{action, content?}`) to `id` as `agent`'s.
pub async fn record<E: Env>(
    env: &E,
    agent: &str,
    id: &str,
    result: &Value,
) -> Result<Elicitation, Error> {
    let mut body = Map::new();
    for key in ["action", "content"] {
        if let Some(v) = result.get(key) {
            body.insert(key.into(), v.clone());
        }
    }
    let body = serde_json::to_vec(&body).unwrap_or_default();
    service::respond(env.store(), agent, id, &body, env.now()).await
}

/// The questions to relay: the one `id`, or the pending inbox (oldest first), waiting up to
/// `wait_ms` for one when there is none.
async fn targets<E: Env>(
    env: &E,
    who: &crate::token::Verified,
    id: Option<&str>,
    wait_ms: u64,
) -> Result<Vec<Elicitation>, Error> {
    let agent = who.agent.as_str();
    if let Some(id) = id {
        let e = service::get(env.store(), agent, id, env.now()).await?;
        if e.to != agent {
            return Err(Error::Forbidden(
                "only the addressee's human may answer an elicitation".into(),
            ));
        }
        if e.status != Status::Pending {
            return Err(Error::Conflict {
                detail: format!("elicitation {id} is already {}", e.status.as_str()),
                current: Some(Box::new(e)),
            });
        }
        return Ok(vec![e]);
    }
    let q = ListQuery::pending(Role::Inbox, MAX_RELAYED);
    let clock = || env.now();
    let page = wait::inbox(env.store(), who, &q, wait_ms, &clock, env).await?;
    Ok(page.items.into_iter().rev().collect())
}

fn problem(e: &Error) -> Value {
    serde_json::to_value(e.problem()).unwrap_or_else(|_| json!({}))
}

/// The tool result after a relay: the questions as they are now, and those whose answer was not
/// recorded, each with its problem document.
fn outcome(relayed: &[Elicitation], refused: &[(String, Value)], agent: &str) -> Value {
    let mut lines: Vec<String> = relayed
        .iter()
        .map(|e| super::tools::describe(e, agent))
        .collect();
    for (id, p) in refused {
        let detail = p["detail"].as_str().unwrap_or("refused");
        lines.push(format!("{id}: not recorded: {detail}"));
    }
    if lines.is_empty() {
        lines.push("No pending questions to relay.".into());
    }
    let mut structured = json!({"relayed": relayed});
    if !refused.is_empty() {
        structured["refused"] = refused
            .iter()
            .map(|(id, p)| json!({"id": id, "problem": p}))
            .collect();
    }
    done(&lines.join("\n"), &structured)
}

/// `relay_to_human` called.
pub(super) async fn start<E: Env>(env: &E, call: &Call<'_>) -> Outcome {
    match begin(env, call).await {
        Ok(outcome) => outcome,
        Err(e) => Outcome::Result(failed(&e)),
    }
}

async fn begin<E: Env>(env: &E, call: &Call<'_>) -> Result<Outcome, Error> {
    let args = Args::only(call.arguments, &["id", "waitSeconds"])?;
    let id = args.text("id")?;
    let wait_ms = match call.arguments.get("waitSeconds") {
        None => DEFAULT_WAIT_SECONDS * 1000,
        Some(_) => args.wait_ms()?,
    };
    let caller = call.caller;
    let modes = modes_of(caller)?;
    let secret = &call.settings.secrets.token_secret;
    if !caller.stateless() {
        return Ok(Outcome::Stream(Job {
            id: id.map(str::to_string),
            wait_ms,
            secret: secret.clone(),
        }));
    }
    let state = match call.params.get("requestState") {
        None => None,
        Some(raw) => Some(State::open(secret, raw, caller, call.arguments, env.now())?),
    };
    let Some(state) = state else {
        let asked = targets(env, &caller.token, id, wait_ms).await?;
        let ids = asked.iter().map(|e| e.id.clone()).collect();
        return Ok(Outcome::Result(
            ask_again(env, caller, call, modes, ids, Vec::new()).await?,
        ));
    };
    // The retry: record what the human answered, ask again what they did not.
    let responses = call.params.get("inputResponses").and_then(Value::as_object);
    let mut refused = Vec::new();
    let mut done_ids = state.done;
    let mut open = Vec::new();
    for id in state.open {
        match responses.and_then(|r| r.get(&id)) {
            None => open.push(id),
            Some(answer) => match record(env, &caller.token.agent, &id, answer).await {
                Ok(_) => done_ids.push(id),
                Err(e) => refused.push((id, problem(&e))),
            },
        }
    }
    if open.is_empty() {
        let relayed = current(env, &caller.token.agent, &done_ids).await?;
        return Ok(Outcome::Result(outcome(
            &relayed,
            &refused,
            &caller.token.agent,
        )));
    }
    Ok(Outcome::Result(
        ask_again(env, caller, call, modes, open, done_ids).await?,
    ))
}

/// The elicitations `ids` as `agent` sees them now.
async fn current<E: Env>(env: &E, agent: &str, ids: &[String]) -> Result<Vec<Elicitation>, Error> {
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        out.push(service::get(env.store(), agent, id, env.now()).await?);
    }
    Ok(out)
}

/// An MRTR `input_required` result asking the human about `open` (those still pending and in a
/// mode the client can show), or — when none is left to ask — the final result.
async fn ask_again<E: Env>(
    env: &E,
    caller: &Caller,
    call: &Call<'_>,
    modes: Modes,
    open: Vec<String>,
    done_ids: Vec<String>,
) -> Result<Value, Error> {
    let mut requests = Map::new();
    let mut refused = Vec::new();
    let mut asked = Vec::new();
    let mut finished = done_ids;
    for e in current(env, &caller.token.agent, &open).await? {
        if e.status != Status::Pending {
            finished.push(e.id);
            continue;
        }
        match elicit_params(&e, caller, modes) {
            Ok(params) => {
                requests.insert(
                    e.id.clone(),
                    json!({"method": "elicitation/create", "params": params}),
                );
                asked.push(e.id);
            }
            Err(why) => refused.push((e.id, problem(&why))),
        }
    }
    if asked.is_empty() {
        let relayed = current(env, &caller.token.agent, &finished).await?;
        return Ok(outcome(&relayed, &refused, &caller.token.agent));
    }
    let state = State {
        agent: caller.token.agent.clone(),
        digest: digest(call.arguments),
        open: asked,
        done: finished,
        expires: env.now().plus_secs(STATE_TTL_SECONDS).0,
    };
    Ok(json!({
        "resultType": "input_required",
        "inputRequests": requests,
        "requestState": state.seal(&call.settings.secrets.token_secret),
    }))
}

fn digest(arguments: &Map<String, Value>) -> String {
    let bytes = serde_json::to_vec(arguments).unwrap_or_default();
    B64.encode(&Sha256::digest(&bytes)[..16])
}

/// What an MRTR `requestState` carries (sealed, so the client can neither read nor change it
/// meaningfully).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct State {
    #[serde(rename = "a")]
    agent: String,
    #[serde(rename = "h")]
    digest: String,
    #[serde(rename = "o")]
    open: Vec<String>,
    #[serde(rename = "d")]
    done: Vec<String>,
    #[serde(rename = "x")]
    expires: u64,
}

impl State {
    fn seal(&self, secret: &str) -> String {
        let payload = B64.encode(serde_json::to_vec(self).unwrap_or_default());
        let tag = token::tag(secret.as_bytes(), STATE_PURPOSE, payload.as_bytes());
        format!("{payload}.{tag}")
    }

    /// The state `raw` seals, if it is intact, this agent's, for these arguments and not expired.
    fn open(
        secret: &str,
        raw: &Value,
        caller: &Caller,
        arguments: &Map<String, Value>,
        now: Timestamp,
    ) -> Result<Self, Error> {
        let bad = |why: &str| Error::invalid("/requestState", why.to_string());
        let raw = raw.as_str().ok_or_else(|| bad("must be a string"))?;
        let (payload, tag) = raw
            .split_once('.')
            .ok_or_else(|| bad("not a state this server issued"))?;
        if !token::tag_matches(secret.as_bytes(), STATE_PURPOSE, payload.as_bytes(), tag) {
            return Err(bad("not a state this server issued"));
        }
        let state: Self = B64
            .decode(payload)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or_else(|| bad("not a state this server issued"))?;
        if state.agent != caller.token.agent {
            return Err(bad("issued to another agent"));
        }
        if state.digest != digest(arguments) {
            return Err(bad("issued for other arguments"));
        }
        if now.0 >= state.expires {
            return Err(bad("expired: call relay_to_human again"));
        }
        Ok(state)
    }
}

/// The JSON-RPC id of the 2025 `elicitation/create` that asks about `elicitation` in `session`.
fn relay_id(secret: &str, session: &str, agent: &str, elicitation: &str) -> String {
    let data = format!("{session}\n{agent}\n{elicitation}");
    let tag = token::tag(secret.as_bytes(), RELAY_ID_PURPOSE, data.as_bytes());
    format!("relay:{elicitation}:{tag}")
}

/// The elicitation a relay id names, if this server issued it for this session and agent.
fn relayed_by(secret: &str, session: &str, agent: &str, id: &Value) -> Option<String> {
    let (elicitation, tag) = id.as_str()?.strip_prefix("relay:")?.split_once(':')?;
    let data = format!("{session}\n{agent}\n{elicitation}");
    token::tag_matches(secret.as_bytes(), RELAY_ID_PURPOSE, data.as_bytes(), tag)
        .then(|| elicitation.to_string())
}

/// A 2025 client's answer to a relay's `elicitation/create` (a POSTed JSON-RPC response): records
/// the human's answer, or writes why it could not be recorded for the relay's stream to report.
pub(super) async fn answered<E: Env>(
    env: &E,
    caller: &Caller,
    id: &Value,
    outcome: Result<&Value, &Value>,
    settings: &Settings,
) -> Result<(), Error> {
    let session = caller.session.clone().unwrap_or_default();
    let secret = &settings.secrets.token_secret;
    let Some(elicitation) = relayed_by(secret, &session, &caller.token.agent, id) else {
        return Err(Error::BadRequest(format!(
            "this server sent no request with id {id} in this session"
        )));
    };
    let refusal = match outcome {
        Ok(result) => match record(env, &caller.token.agent, &elicitation, result).await {
            Ok(_) => return Ok(()),
            // Answered already (by this very answer, retried, or by another): nothing to report.
            Err(Error::Conflict { .. } | Error::Gone { .. }) => return Ok(()),
            Err(e) => e,
        },
        Err(error) => Error::BadRequest(format!(
            "the client could not ask its human: {}",
            error
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("an error without a message")
        )),
    };
    let note = refusal.problem().to_json();
    env.store()
        .set(&keys::relay_refusal(&session, &elicitation), &note)
        .await?;
    changes::nudge(env.store(), &caller.token.agent).await?;
    Ok(())
}

/// A 2025 `relay_to_human` answered with an SSE stream.
pub struct Streamed {
    request: Value,
    caller: Caller,
    job: Job,
}

impl Streamed {
    /// The stream for the `tools/call` with JSON-RPC id `request`.
    pub fn new(request: Value, caller: Caller, job: Job) -> Self {
        Self {
            request,
            caller,
            job,
        }
    }

    /// Asks the client about each question in turn, waits for each answer to be recorded (or
    /// refused), then sends the tool result. Returns when the client is gone, too.
    pub async fn run<E: Env>(self, env: &E, out: &mut impl Outbound) {
        let result = match self.relay(env, out).await {
            Ok(Some(result)) => result,
            Ok(None) => return,
            Err(e) => failed(&e),
        };
        out.send(&success(&self.request, &result)).await;
    }

    async fn relay<E: Env>(
        &self,
        env: &E,
        out: &mut impl Outbound,
    ) -> Result<Option<Value>, Error> {
        let agent = &self.caller.token.agent;
        let session = self.caller.session.clone().unwrap_or_default();
        let modes = modes_of(&self.caller)?;
        let started = env.now();
        let asked = targets(
            env,
            &self.caller.token,
            self.job.id.as_deref(),
            self.job.wait_ms,
        )
        .await?;
        let (mut relayed, mut refused) = (Vec::new(), Vec::new());
        for e in asked {
            let params = match elicit_params(&e, &self.caller, modes) {
                Ok(p) => p,
                Err(why) => {
                    refused.push((e.id.clone(), problem(&why)));
                    continue;
                }
            };
            let id = relay_id(&self.job.secret, &session, agent, &e.id);
            let request = json!({"jsonrpc": "2.0", "id": id, "method": "elicitation/create",
                "params": params});
            if !out.send(&request).await {
                return Ok(None);
            }
            let left = self
                .job
                .wait_ms
                .saturating_sub(started.millis_until(env.now()));
            match self.answer(env, &session, &e, left).await? {
                Ok(now) => relayed.push(now),
                Err(why) => refused.push((e.id.clone(), why)),
            }
            if started.millis_until(env.now()) >= self.job.wait_ms {
                break;
            }
        }
        Ok(Some(outcome(&relayed, &refused, agent)))
    }

    /// Waits up to `wait_ms` for the human's answer to `e`: the elicitation as it is then
    /// (answered, or still pending), or why the answer was refused.
    async fn answer<E: Env>(
        &self,
        env: &E,
        session: &str,
        e: &Elicitation,
        wait_ms: u64,
    ) -> Result<Result<Elicitation, Value>, Error> {
        let note = keys::relay_refusal(session, &e.id);
        let refused = async || -> Result<Option<Value>, Error> {
            let Some(raw) = env.store().get(&note).await? else {
                return Ok(None);
            };
            env.store().delete_many(std::slice::from_ref(&note)).await?;
            Ok(Some(
                serde_json::from_slice(&raw).unwrap_or_else(|_| json!({})),
            ))
        };
        let clock = || env.now();
        let who = &self.caller.token;
        wait::settled_or(env.store(), who, &e.id, wait_ms, &clock, env, refused).await
    }
}
