//! The agent-facing MCP server at `/mcp` (component `gateway`): JSON-RPC over Streamable HTTP, in
//! both protocol eras at once.
//!
//! - **2025** (`2025-11-25`, also `2025-06-18` and `2025-03-26` clients): `initialize` mints a
//!   session ([`session`]) kept in the key-value store; every later request names it in
//!   `MCP-Session-Id`. A tool call that must ask the client something first (`relay_to_human`)
//!   is answered with an SSE stream carrying the `elicitation/create` request, then the result;
//!   the client's answer comes back as a POST of a JSON-RPC response ([`relay`]).
//! - **2026** (`2026-07-28`): stateless. A request that carries
//!   `_meta["io.modelcontextprotocol/protocolVersion"]` brings its client's capabilities along;
//!   `server/discover` describes the server; the `Mcp-Method` / `Mcp-Name` headers must match the
//!   body; a server→client request becomes an `input_required` result with an HMAC-sealed
//!   `requestState` that the client's retry brings back (MRTR, [`relay`]).
//!
//! Identity is always the bearer token's agent, as on the HTTP API. The layers answer failures
//! differently, each in one way: what is wrong before a JSON-RPC message is understood (origin,
//! token, media type, body, session, protocol version header) is an HTTP status with an RFC 9457
//! problem document; an unknown method or malformed params is a JSON-RPC error; a tool whose
//! arguments break the contract returns a result with `isError: true` whose `structuredContent`
//! is the very problem document the HTTP API would return.
//!
//! [`tools`] holds the tools and their semantics; waits go through [`crate::wait`], so a tool that
//! waits costs no polling of its own.

pub mod relay;
pub mod session;
pub mod tools;

use std::future::Future;

use serde_json::{Map, Value, json};

use crate::api::{self, Request, Response};
use crate::error::Error;
use crate::store::Store;
use crate::time::Timestamp;
use crate::wait::Changes;

/// The protocol revision of the 2025 era this server prefers.
pub const LATEST_SESSION_VERSION: &str = "2025-11-25";
/// The 2025-era revisions `initialize` accepts (newest first).
pub const SESSION_VERSIONS: [&str; 3] = ["2025-11-25", "2025-06-18", "2025-03-26"];
/// The stateless revision.
pub const STATELESS_VERSION: &str = "2026-07-28";
/// The `_meta` key of a 2026 request's protocol version.
pub const META_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
/// The `_meta` key of a 2026 request's client capabilities.
pub const META_CAPABILITIES: &str = "io.modelcontextprotocol/clientCapabilities";

/// JSON-RPC: the method does not exist.
pub const METHOD_NOT_FOUND: i64 = -32601;
/// JSON-RPC: invalid params.
pub const INVALID_PARAMS: i64 = -32602;
/// JSON-RPC: invalid request.
pub const INVALID_REQUEST: i64 = -32600;
/// MCP 2026: a required header (`MCP-Protocol-Version`, `Mcp-Method`, `Mcp-Name`) is missing or
/// does not match the body.
pub const HEADER_MISMATCH: i64 = -32020;
/// MCP 2026: the request's protocol version is not supported.
pub const UNSUPPORTED_VERSION: i64 = -32022;
/// How long a 2026 client may cache `server/discover` and `tools/list` (they change only with a
/// deployment).
pub const CACHE_TTL_MS: u64 = 3_600_000;

/// The gateway's settings, from Spin variables.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The token secret (also the key of what the gateway seals) and the admin token.
    pub secrets: api::Secrets,
    /// `Origin`s a browser may call from (`mcp_allowed_origins`, comma-separated); a request
    /// without `Origin` (not from a browser) is always allowed.
    pub allowed_origins: Vec<String>,
    /// How long a session lasts after `initialize` (`mcp_session_ttl_seconds`).
    pub session_ttl_seconds: u64,
    /// The legacy `wait_for_messages` tool's poll interval (`legacy_poll_ms`).
    pub read: api::ReadOptions,
}

/// What the gateway needs of its platform: the store, time, fresh ids, sleeping, and waiting for
/// changes ([`Changes`]).
pub trait Env: Changes {
    /// The store.
    type Store: Store;
    /// The store every request uses.
    fn store(&self) -> &Self::Store;
    /// The current time.
    fn now(&self) -> Timestamp;
    /// A fresh unguessable id (`el_…`).
    fn new_id(&self) -> String;
    /// Sleeps `ms` (the legacy polling tool only).
    fn sleep(&self, ms: u64) -> impl Future<Output = ()>;
}

/// Who is calling, in which era, with what client.
#[derive(Debug, Clone, PartialEq)]
pub struct Caller {
    /// The verified token (its agent, and when it was issued and expires: a wait ends when it
    /// is revoked or expires).
    pub token: crate::token::Verified,
    /// The negotiated (2025) or requested (2026) protocol version.
    pub version: String,
    /// The client's capabilities (`initialize`'s, or the request's `_meta`).
    pub capabilities: Value,
    /// The 2025 session, if any.
    pub session: Option<String>,
}

impl Caller {
    /// Whether this is a stateless 2026 request.
    pub fn stateless(&self) -> bool {
        self.session.is_none()
    }
}

/// How the component answers.
pub enum Reply {
    /// One HTTP response.
    Done(Response),
    /// An SSE response: the component opens it and runs [`relay::Streamed::run`] on it.
    Stream(Box<relay::Streamed>),
}

impl From<Response> for Reply {
    fn from(r: Response) -> Self {
        Self::Done(r)
    }
}

/// A JSON-RPC success.
pub fn success(id: &Value, result: &Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "result": result})
}

/// A JSON-RPC error.
pub fn failure(id: &Value, code: i64, message: &str, data: Option<Value>) -> Value {
    let mut error = json!({"code": code, "message": message});
    if let Some(d) = data {
        error["data"] = d;
    }
    json!({"jsonrpc": "2.0", "id": id, "error": error})
}

pub(super) fn rpc(message: &Value) -> Response {
    Response::json(200, message)
}

/// A JSON-RPC error as an HTTP response: in 2025 always `200`; a 2026 error also has its HTTP
/// status (`404` for an unknown method, `400` for the rest of what the client got wrong).
fn rpc_error(caller: &Caller, id: &Value, code: i64, message: &str) -> Response {
    let status = match (caller.stateless(), code) {
        (false, _) => 200,
        (true, METHOD_NOT_FOUND) => 404,
        (true, _) => 400,
    };
    Response::json(status, &failure(id, code, message, None))
}

fn accepted() -> Response {
    Response {
        status: 202,
        headers: Vec::new(),
        body: Vec::new(),
    }
}

/// Checks `Origin` against the allowed list (absent: not a browser, allowed).
fn check_origin(req: &Request, settings: &Settings) -> Result<(), Error> {
    match req.header("origin") {
        None => Ok(()),
        Some(o) if settings.allowed_origins.iter().any(|a| a == o) => Ok(()),
        Some(o) => Err(Error::Forbidden(format!(
            "origin {o} may not call this server (mcp_allowed_origins)"
        ))),
    }
}

/// One message, classified.
enum Message<'a> {
    Request {
        id: &'a Value,
        method: &'a str,
        params: Map<String, Value>,
    },
    Notification,
    Response {
        id: &'a Value,
        outcome: Result<&'a Value, &'a Value>,
    },
}

fn classify(value: &Value) -> Result<Message<'_>, Error> {
    let Value::Object(m) = value else {
        return Err(Error::BadRequest(
            "the body must be one JSON-RPC message (batches are not supported)".into(),
        ));
    };
    if m.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return Err(Error::BadRequest(
            "not a JSON-RPC 2.0 message (jsonrpc must be \"2.0\")".into(),
        ));
    }
    let id = m.get("id").filter(|id| id.is_string() || id.is_number());
    match (m.get("method").and_then(Value::as_str), id) {
        (Some(method), Some(id)) => {
            let params = match m.get("params") {
                None | Some(Value::Null) => Map::new(),
                Some(Value::Object(p)) => p.clone(),
                Some(_) => return Err(Error::BadRequest("params must be an object".into())),
            };
            Ok(Message::Request { id, method, params })
        }
        (Some(_), None) => Ok(Message::Notification),
        (None, Some(id)) => match (m.get("result"), m.get("error")) {
            (Some(r), None) => Ok(Message::Response { id, outcome: Ok(r) }),
            (None, Some(e)) => Ok(Message::Response {
                id,
                outcome: Err(e),
            }),
            _ => Err(Error::BadRequest(
                "a JSON-RPC response has a result or an error".into(),
            )),
        },
        (None, None) => Err(Error::BadRequest(
            "not a JSON-RPC request, notification or response".into(),
        )),
    }
}

/// The 2026 protocol version a request's `_meta` names, if it names one.
fn meta_version(params: &Map<String, Value>) -> Option<&Value> {
    params.get("_meta")?.get(META_VERSION)
}

/// Serves one request to `/mcp`.
pub async fn handle<E: Env>(env: &E, req: &Request, settings: &Settings) -> Reply {
    match serve(env, req, settings).await {
        Ok(reply) => reply,
        Err(e) => Reply::Done(Response::problem(&e)),
    }
}

async fn serve<E: Env>(env: &E, req: &Request, settings: &Settings) -> Result<Reply, Error> {
    check_origin(req, settings)?;
    let now = env.now();
    match req.method.as_str() {
        "POST" => {}
        "DELETE" => {
            let verified = api::authenticate(env.store(), req, &settings.secrets, now).await?;
            session::end(env.store(), req, &verified, now).await?;
            return Ok(Response {
                status: 204,
                headers: Vec::new(),
                body: Vec::new(),
            }
            .into());
        }
        _ => return Err(Error::MethodNotAllowed("POST, DELETE")),
    }
    let verified = api::authenticate(env.store(), req, &settings.secrets, now).await?;
    let agent = verified.agent.clone();
    req.require_json()?;
    let body: Value = serde_json::from_slice(&req.body)
        .map_err(|e| Error::BadRequest(format!("the body is not valid JSON: {e}")))?;
    match classify(&body)? {
        Message::Request { id, method, params } => {
            let caller = match meta_version(&params) {
                Some(v) => match stateless_caller(req, &verified, v, method, &params) {
                    Ok(c) => c,
                    Err(message) => return Ok(Response::json(400, &message(id)).into()),
                },
                None if method == "initialize" => {
                    return session::initialize(env, &agent, id, &params, settings).await;
                }
                None if method == "server/discover" => Caller {
                    token: verified,
                    version: STATELESS_VERSION.into(),
                    capabilities: json!({}),
                    session: None,
                },
                None => session::resume(env.store(), req, &verified, now).await?,
            };
            dispatch(env, &caller, id, method, params, settings).await
        }
        Message::Notification => {
            // Notifications (`initialized`, `cancelled`, …) need no answer; a session they name
            // must still be live.
            if req.header("mcp-session-id").is_some() {
                session::resume(env.store(), req, &verified, now).await?;
            }
            Ok(accepted().into())
        }
        Message::Response { id, outcome } => {
            let caller = session::resume(env.store(), req, &verified, now).await?;
            relay::answered(env, &caller, id, outcome, settings).await?;
            Ok(accepted().into())
        }
    }
}

type RpcError = Box<dyn Fn(&Value) -> Value>;

/// The caller of a 2026 request, once its headers agree with its body (else `-32020`), its
/// version is supported (else `-32022`) and it declares its capabilities (else `-32602`); or the
/// JSON-RPC error to answer with HTTP `400`.
fn stateless_caller(
    req: &Request,
    token: &crate::token::Verified,
    version: &Value,
    method: &str,
    params: &Map<String, Value>,
) -> Result<Caller, RpcError> {
    let mut expected = vec![
        ("mcp-protocol-version", version.as_str().map(str::to_string)),
        ("mcp-method", Some(method.to_string())),
    ];
    if method == "tools/call" {
        let name = params.get("name").and_then(Value::as_str);
        expected.push(("mcp-name", name.map(str::to_string)));
    }
    for (header, want) in expected {
        let got = req.header(header).map(str::to_string);
        if got.is_none() || got != want {
            return Err(Box::new(move |id| {
                let message = match &got {
                    None => format!("the {header} header is required"),
                    Some(_) => format!("the {header} header does not match the request body"),
                };
                failure(
                    id,
                    HEADER_MISMATCH,
                    &message,
                    Some(json!({"header": header, "value": got, "expected": want})),
                )
            }));
        }
    }
    if version.as_str() != Some(STATELESS_VERSION) {
        let requested = version.clone();
        return Err(Box::new(move |id| {
            failure(
                id,
                UNSUPPORTED_VERSION,
                "unsupported protocol version",
                Some(json!({"supported": [STATELESS_VERSION], "requested": requested})),
            )
        }));
    }
    let Some(capabilities) = params
        .get("_meta")
        .and_then(|m| m.get(META_CAPABILITIES))
        .filter(|c| c.is_object())
        .cloned()
    else {
        return Err(Box::new(|id| {
            failure(
                id,
                INVALID_PARAMS,
                &format!("_meta[\"{META_CAPABILITIES}\"] is required (an object)"),
                None,
            )
        }));
    };
    Ok(Caller {
        token: token.clone(),
        version: STATELESS_VERSION.into(),
        capabilities,
        session: None,
    })
}

/// What this server is: the body of `initialize`'s result and of `server/discover`.
pub fn server_info() -> Value {
    json!({
        "name": "lighthouse-elicitation",
        "title": "Lighthouse Elicitation",
        "version": env!("CARGO_PKG_VERSION"),
    })
}

/// The server's capabilities.
pub fn capabilities() -> Value {
    json!({"tools": {"listChanged": false}})
}

/// What an agent should know of the tools, shown to its model.
pub const INSTRUCTIONS: &str = "Lighthouse lets agents ask each other structured questions and \
get the answer pushed. Ask another agent with `ask` (give `waitSeconds` to wait for the answer). \
Look for questions addressed to you with `inbox` (with `waitSeconds` it returns the moment one \
arrives; pass the `position` it returned as `since` to wait only for newer ones), then answer with \
`respond`. `check` waits on one request, `withdraw` takes back one you asked. To let your human \
user answer a question addressed to you, call `relay_to_human`.";

async fn dispatch<E: Env>(
    env: &E,
    caller: &Caller,
    id: &Value,
    method: &str,
    params: Map<String, Value>,
    settings: &Settings,
) -> Result<Reply, Error> {
    let stateless = caller.stateless();
    let mut result = match method {
        "ping" if !stateless => json!({}),
        "server/discover" => json!({
            "supportedVersions": [STATELESS_VERSION],
            "capabilities": capabilities(),
            "instructions": INSTRUCTIONS,
            "ttlMs": CACHE_TTL_MS,
            "cacheScope": "public",
            "_meta": {"io.modelcontextprotocol/serverInfo": server_info()},
        }),
        "tools/list" if stateless => json!({
            "tools": tools::catalogue(),
            "ttlMs": CACHE_TTL_MS,
            "cacheScope": "public",
        }),
        "tools/list" => json!({"tools": tools::catalogue()}),
        "tools/call" => {
            let name = params.get("name").and_then(Value::as_str);
            let arguments = match params.get("arguments") {
                None | Some(Value::Null) => Some(Map::new()),
                Some(Value::Object(a)) => Some(a.clone()),
                Some(_) => None,
            };
            let (Some(name), Some(arguments)) = (name, arguments) else {
                let message = "tools/call needs a name and an object of arguments";
                return Ok(rpc_error(caller, id, INVALID_PARAMS, message).into());
            };
            let Some(tool) = tools::Tool::named(name) else {
                let message = format!("unknown tool {name:?}");
                return Ok(rpc_error(caller, id, INVALID_PARAMS, &message).into());
            };
            let call = tools::Call {
                caller,
                arguments: &arguments,
                params: &params,
                settings,
            };
            match tools::call(env, tool, &call).await {
                tools::Outcome::Result(result) => result,
                tools::Outcome::Stream(job) => {
                    return Ok(Reply::Stream(Box::new(relay::Streamed::new(
                        id.clone(),
                        caller.clone(),
                        job,
                    ))));
                }
            }
        }
        _ => {
            let message = format!("method {method:?} not found");
            return Ok(rpc_error(caller, id, METHOD_NOT_FOUND, &message).into());
        }
    };
    if stateless && result.get("resultType").is_none() {
        result["resultType"] = json!("complete");
    }
    Ok(rpc(&success(id, &result)).into())
}

#[cfg(test)]
mod tests;
