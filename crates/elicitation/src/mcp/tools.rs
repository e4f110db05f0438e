//! The tools: what each takes (`inputSchema`), what it returns (`outputSchema`), and what it does.
//!
//! A tool's `structuredContent` is exactly what the HTTP API returns for the same operation (an
//! elicitation, a page of the inbox, the legacy poll's body, or an RFC 9457 problem when it
//! fails), so an agent can mix both; `content` is a short text for the model to read. Arguments
//! are checked as strictly as HTTP bodies: an unknown argument or a value of the wrong type is a
//! `422` problem with a JSON pointer to it, returned as a tool result with `isError: true`, and
//! changes nothing.

use serde_json::{Map, Value, json};

use super::{Caller, Env, Settings, relay};
use crate::api;
use crate::error::Error;
use crate::keys::Role;
use crate::model::{Elicitation, Status};
use crate::service::{self, ListQuery, Page, fail, unknown_fields};
use crate::wait;

/// Longest `waitSeconds` of a tool (hosted platforms end requests at 30 s).
pub const MAX_WAIT_SECONDS: u64 = api::MAX_WAIT_SECONDS;

/// The tools, in the order `tools/list` gives them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    /// Create an elicitation, optionally waiting for its answer.
    Ask,
    /// My pending requests, optionally waiting for one.
    Inbox,
    /// Answer one.
    Respond,
    /// One elicitation, optionally waiting until it is no longer pending.
    Check,
    /// Take back one I asked.
    Withdraw,
    /// The seed's polling tool.
    WaitForMessages,
    /// Let my human answer through the client's native elicitation.
    RelayToHuman,
}

impl Tool {
    /// Every tool.
    pub const ALL: [Self; 7] = [
        Self::Ask,
        Self::Inbox,
        Self::Respond,
        Self::Check,
        Self::Withdraw,
        Self::WaitForMessages,
        Self::RelayToHuman,
    ];

    /// The tool's name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Ask => "ask",
            Self::Inbox => "inbox",
            Self::Respond => "respond",
            Self::Check => "check",
            Self::Withdraw => "withdraw",
            Self::WaitForMessages => "wait_for_messages",
            Self::RelayToHuman => "relay_to_human",
        }
    }

    /// The tool called `name`.
    pub fn named(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.name() == name)
    }

    fn description(self) -> &'static str {
        match self {
            Self::Ask => {
                "Ask another agent a question. Give `requestedSchema` (a flat JSON object schema: \
                 string, number, integer, boolean and enum properties) for a structured answer, or \
                 `mode: \"url\"` with a `url` to send them to a page. With `waitSeconds` (up to 25) \
                 the call returns as soon as they answer; otherwise it returns at once, pending, \
                 and `check` waits for the answer later."
            }
            Self::Inbox => {
                "The pending questions addressed to you, newest first. With `waitSeconds` it \
                 returns the moment one is pending. Pass the `position` a previous call returned \
                 as `since` to see (and wait for) only questions that arrived after it."
            }
            Self::Respond => {
                "Answer a question addressed to you: `action` accept (with `content` matching its \
                 `requestedSchema`; none for a URL request), decline, or cancel. A question is \
                 answered once."
            }
            Self::Check => {
                "One question you asked or were asked, by id. With `waitSeconds` it returns the \
                 moment it is no longer pending (answered, withdrawn or expired)."
            }
            Self::Withdraw => "Withdraw a pending question you asked.",
            Self::WaitForMessages => {
                "Deprecated: polls your event log like the legacy wait_for_messages (returns \
                 events after `since`, or at `timeout`). Use `inbox` and `check` with \
                 `waitSeconds`, which return the moment something happens."
            }
            Self::RelayToHuman => {
                "Ask your human user to answer the questions addressed to you (or the one `id`) \
                 through this client's own elicitation dialog, and record their accept, decline \
                 or cancel as your answer. With no question pending it waits up to `waitSeconds` \
                 for one. Needs a client that supports elicitation."
            }
        }
    }

    fn input_schema(self) -> Value {
        let wait = json!({"type": "integer", "minimum": 0, "maximum": MAX_WAIT_SECONDS,
            "description": "Seconds to wait (0 to 25)."});
        let id = json!({"type": "string", "description": "The elicitation id (el_…)."});
        let (properties, required): (Value, &[&str]) = match self {
            Self::Ask => (
                json!({
                    "to": {"type": "string", "description": "The agent to ask."},
                    "message": {"type": "string", "maxLength": service::MAX_MESSAGE_CHARS},
                    "requestedSchema": {"type": "object",
                        "description": "The MCP form schema of the answer's content."},
                    "mode": {"type": "string", "enum": ["form", "url"]},
                    "url": {"type": "string", "description": "URL mode: https, or http to loopback."},
                    "ttlSeconds": {"type": "integer", "minimum": 1, "maximum": service::MAX_TTL_SECONDS},
                    "context": {"type": "string", "maxLength": service::MAX_CONTEXT_CHARS},
                    "waitSeconds": wait,
                }),
                &["to", "message"],
            ),
            Self::Inbox => (
                json!({
                    "waitSeconds": wait,
                    "since": {"type": "integer", "minimum": 0,
                        "description": "A position from an earlier inbox: only newer questions."},
                    "limit": {"type": "integer", "minimum": 1, "maximum": service::MAX_LIMIT},
                    "cursor": {"type": "string", "description": "nextCursor of the previous page."},
                }),
                &[],
            ),
            Self::Respond => (
                json!({
                    "id": id,
                    "action": {"type": "string", "enum": ["accept", "decline", "cancel"]},
                    "content": {"type": "object"},
                }),
                &["id", "action"],
            ),
            Self::Check => (json!({"id": id, "waitSeconds": wait}), &["id"]),
            Self::Withdraw => (json!({"id": id}), &["id"]),
            Self::WaitForMessages => (
                json!({
                    "since": {"type": "integer", "minimum": 0},
                    "timeout": {"type": "integer", "minimum": 0,
                        "maximum": api::MAX_LEGACY_TIMEOUT_SECONDS},
                }),
                &[],
            ),
            Self::RelayToHuman => (json!({"id": id, "waitSeconds": wait}), &[]),
        };
        json!({"type": "object", "properties": properties, "required": required,
            "additionalProperties": false})
    }

    /// What `structuredContent` is: the tool's result, or — when `isError` — the problem document
    /// (clients validate both against this schema).
    fn output_schema(self) -> Value {
        json!({"type": "object", "anyOf": [self.result_schema(), problem_schema()]})
    }

    fn result_schema(self) -> Value {
        match self {
            Self::Ask | Self::Respond | Self::Check | Self::Withdraw => elicitation_schema(),
            Self::Inbox => json!({
                "type": "object",
                "properties": {
                    "items": {"type": "array", "items": elicitation_schema()},
                    "nextCursor": {"type": ["string", "null"]},
                    "position": {"type": "integer"},
                },
                "required": ["items", "position"],
            }),
            Self::WaitForMessages => json!({
                "type": "object",
                "properties": {
                    "events": {"type": "array", "items": {"type": "object"}},
                    "count": {"type": "integer"},
                    "status": {"type": "string", "enum": ["new_events", "timeout", "reset"]},
                    "head": {"type": "integer"},
                },
                "required": ["events", "count", "status"],
            }),
            Self::RelayToHuman => json!({
                "type": "object",
                "properties": {
                    "relayed": {"type": "array", "items": elicitation_schema()},
                    "refused": {"type": "array", "items": {
                        "type": "object",
                        "properties": {"id": {"type": "string"}, "problem": {"type": "object"}},
                        "required": ["id", "problem"],
                    }},
                },
                "required": ["relayed"],
            }),
        }
    }
}

/// An RFC 9457 problem document, as the HTTP API returns it.
fn problem_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "type": {"type": "string"},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string"},
            "errors": {"type": "array", "items": {
                "type": "object",
                "properties": {"pointer": {"type": "string"}, "detail": {"type": "string"}},
                "required": ["pointer", "detail"],
            }},
            "current": {"type": "object"},
        },
        "required": ["type", "title", "status", "detail"],
    })
}

/// An elicitation, as the HTTP API returns it.
fn elicitation_schema() -> Value {
    let text = json!({"type": "string"});
    json!({
        "type": "object",
        "properties": {
            "id": text, "from": text, "to": text,
            "mode": {"type": "string", "enum": ["form", "url"]},
            "message": text,
            "requestedSchema": {"type": "object"},
            "url": text,
            "status": {"type": "string", "enum": ["pending", "accepted", "declined", "cancelled",
                "withdrawn", "expired"]},
            "createdAt": text, "expiresAt": text, "respondedAt": text,
            "response": {
                "type": "object",
                "properties": {
                    "action": {"type": "string", "enum": ["accept", "decline", "cancel"]},
                    "content": {"type": "object"},
                },
                "required": ["action"],
            },
            "context": text,
        },
        "required": ["id", "from", "to", "mode", "message", "status", "createdAt", "expiresAt"],
    })
}

/// `tools/list`'s tools.
pub fn catalogue() -> Vec<Value> {
    Tool::ALL
        .into_iter()
        .map(|t| {
            json!({
                "name": t.name(),
                "description": t.description(),
                "inputSchema": t.input_schema(),
                "outputSchema": t.output_schema(),
                "annotations": {
                    "readOnlyHint": matches!(t, Tool::Inbox | Tool::Check | Tool::WaitForMessages),
                    "openWorldHint": false,
                },
            })
        })
        .collect()
}

/// One tool call.
pub struct Call<'a> {
    /// Who calls.
    pub caller: &'a Caller,
    /// The tool's arguments.
    pub arguments: &'a Map<String, Value>,
    /// The whole `tools/call` params (MRTR's `inputResponses` and `requestState` are there).
    pub params: &'a Map<String, Value>,
    /// The gateway's settings.
    pub settings: &'a Settings,
}

/// What a call comes to.
pub enum Outcome {
    /// The `tools/call` result.
    Result(Value),
    /// A 2025 `relay_to_human`: the result comes at the end of an SSE stream that first asks the
    /// client to elicit.
    Stream(relay::Job),
}

/// A successful tool result.
pub fn done(text: &str, structured: &impl serde::Serialize) -> Value {
    json!({
        "content": [{"type": "text", "text": text}],
        "structuredContent": structured,
        "isError": false,
    })
}

/// A failed tool result: the problem document the HTTP API would answer.
pub fn failed(e: &Error) -> Value {
    let problem = e.problem();
    json!({
        "content": [{"type": "text", "text": format!("{}: {}", problem.title, problem.detail)}],
        "structuredContent": problem,
        "isError": true,
    })
}

/// Runs a call.
pub async fn call<E: Env>(env: &E, tool: Tool, call: &Call<'_>) -> Outcome {
    let result = match tool {
        Tool::RelayToHuman => return relay::start(env, call).await,
        Tool::Ask => ask(env, call).await,
        Tool::Inbox => inbox(env, call).await,
        Tool::Respond => respond(env, call).await,
        Tool::Check => check(env, call).await,
        Tool::Withdraw => withdraw(env, call).await,
        Tool::WaitForMessages => wait_for_messages(env, call).await,
    };
    Outcome::Result(result.unwrap_or_else(|e| failed(&e)))
}

/// The arguments, checked against the names a tool takes.
pub(super) struct Args<'a>(pub(super) &'a Map<String, Value>);

impl<'a> Args<'a> {
    pub(super) fn only(map: &'a Map<String, Value>, allowed: &[&str]) -> Result<Self, Error> {
        fail(unknown_fields(map, allowed))?;
        Ok(Self(map))
    }

    fn bad(name: &str, detail: impl Into<String>) -> Error {
        Error::invalid(&format!("/{name}"), detail)
    }

    /// A whole number from `min` to `max`, if given.
    pub(super) fn integer(&self, name: &str, min: i64, max: i64) -> Result<Option<i64>, Error> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .as_i64()
                .filter(|n| (min..=max).contains(n))
                .map(Some)
                .ok_or_else(|| Self::bad(name, format!("must be an integer from {min} to {max}"))),
        }
    }

    /// `waitSeconds` in milliseconds (0 when absent).
    pub(super) fn wait_ms(&self) -> Result<u64, Error> {
        let max = i64::try_from(MAX_WAIT_SECONDS).unwrap_or(25);
        let secs = self.integer("waitSeconds", 0, max)?.unwrap_or(0);
        Ok(u64::try_from(secs).unwrap_or(0) * 1000)
    }

    /// A string, if given.
    pub(super) fn text(&self, name: &str) -> Result<Option<&'a str>, Error> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(Self::bad(name, "must be a string")),
        }
    }

    /// A required string.
    pub(super) fn id(&self) -> Result<&'a str, Error> {
        self.text("id")?.ok_or_else(|| Self::bad("id", "required"))
    }

    /// The arguments except `names`, as a JSON body for the service.
    fn body_without(&self, names: &[&str]) -> Vec<u8> {
        let rest: Map<String, Value> = self
            .0
            .iter()
            .filter(|(k, _)| !names.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        serde_json::to_vec(&rest).unwrap_or_default()
    }
}

async fn ask<E: Env>(env: &E, call: &Call<'_>) -> Result<Value, Error> {
    let args = Args(call.arguments);
    let wait_ms = args.wait_ms()?;
    let body = args.body_without(&["waitSeconds"]);
    let agent = &call.caller.token.agent;
    let created = service::create(
        env.store(),
        agent,
        &body,
        None,
        &call.settings.secrets.limits,
        env.now(),
        env.new_id(),
    )
    .await?;
    let e = if wait_ms > 0 {
        let clock = || env.now();
        wait::settled(
            env.store(),
            &call.caller.token,
            &created.elicitation.id,
            wait_ms,
            &clock,
            env,
        )
        .await?
    } else {
        created.elicitation
    };
    Ok(done(&describe(&e, agent), &e))
}

async fn inbox<E: Env>(env: &E, call: &Call<'_>) -> Result<Value, Error> {
    let args = Args::only(call.arguments, &["waitSeconds", "since", "limit", "cursor"])?;
    let wait_ms = args.wait_ms()?;
    let max_limit = i64::try_from(service::MAX_LIMIT).unwrap_or(100);
    let limit = args.integer("limit", 1, max_limit)?.unwrap_or(20);
    let mut q = ListQuery::pending(Role::Inbox, usize::try_from(limit).unwrap_or(20));
    q.after = args.integer("since", 0, i64::MAX)?;
    q.cursor = match call.arguments.get("cursor") {
        None | Some(Value::Null) => None,
        Some(c) => Some(
            c.as_str()
                .and_then(|s| s.parse().ok())
                .or_else(|| c.as_i64())
                .filter(|n| *n > 0)
                .ok_or_else(|| Args::bad("cursor", "must be a nextCursor an inbox returned"))?,
        ),
    };
    let clock = || env.now();
    let agent = &call.caller.token.agent;
    let page = wait::inbox(env.store(), &call.caller.token, &q, wait_ms, &clock, env).await?;
    Ok(done(&describe_page(&page, agent), &page))
}

async fn respond<E: Env>(env: &E, call: &Call<'_>) -> Result<Value, Error> {
    let args = Args::only(call.arguments, &["id", "action", "content"])?;
    let id = args.id()?;
    let body = args.body_without(&["id"]);
    let agent = &call.caller.token.agent;
    let e = service::respond(env.store(), agent, id, &body, env.now()).await?;
    Ok(done(&describe(&e, agent), &e))
}

async fn check<E: Env>(env: &E, call: &Call<'_>) -> Result<Value, Error> {
    let args = Args::only(call.arguments, &["id", "waitSeconds"])?;
    let (id, wait_ms) = (args.id()?, args.wait_ms()?);
    let clock = || env.now();
    let agent = &call.caller.token.agent;
    let e = wait::settled(env.store(), &call.caller.token, id, wait_ms, &clock, env).await?;
    Ok(done(&describe(&e, agent), &e))
}

async fn withdraw<E: Env>(env: &E, call: &Call<'_>) -> Result<Value, Error> {
    let args = Args::only(call.arguments, &["id"])?;
    let agent = &call.caller.token.agent;
    let e = service::withdraw(env.store(), agent, args.id()?, env.now()).await?;
    Ok(done(&describe(&e, agent), &e))
}

async fn wait_for_messages<E: Env>(env: &E, call: &Call<'_>) -> Result<Value, Error> {
    let args = Args::only(call.arguments, &["since", "timeout"])?;
    let since = args.integer("since", 0, i64::MAX)?.unwrap_or(0);
    let max = i64::try_from(api::MAX_LEGACY_TIMEOUT_SECONDS).unwrap_or(25);
    let timeout = args.integer("timeout", 0, max)?.unwrap_or(max);
    let clock = || env.now();
    let sleep = |ms| env.sleep(ms);
    let timeout = u64::try_from(timeout).unwrap_or(0);
    let agent = &call.caller.token.agent;
    let body = api::legacy_poll(
        env.store(),
        agent,
        since,
        timeout,
        &call.settings.read,
        &clock,
        &sleep,
    )
    .await?;
    let text = match body["status"].as_str() {
        Some("new_events") => format!("{} new event(s)", body["count"]),
        Some("reset") => "history reset: read your inbox, then poll again from head".into(),
        _ => "no new events".into(),
    };
    Ok(done(&text, &body))
}

/// The fields a form asks for, for the model to read: `name (type, required)`.
fn fields(e: &Elicitation) -> String {
    let Some(props) = e
        .requested_schema
        .as_ref()
        .and_then(|s| s.get("properties"))
        .and_then(Value::as_object)
    else {
        return String::new();
    };
    let required: Vec<&str> = e
        .requested_schema
        .as_ref()
        .and_then(|s| s.get("required"))
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let list: Vec<String> = props
        .iter()
        .map(|(name, p)| {
            let kind = if let Some(options) = p.get("enum").or_else(|| p.get("oneOf")) {
                let n = options.as_array().map_or(0, Vec::len);
                format!("one of {n} options")
            } else {
                p.get("type")
                    .and_then(Value::as_str)
                    .unwrap_or("value")
                    .to_string()
            };
            let req = if required.contains(&name.as_str()) {
                ", required"
            } else {
                ""
            };
            format!("{name} ({kind}{req})")
        })
        .collect();
    format!("; answer fields: {}", list.join(", "))
}

/// One line about `e` for `agent`'s model.
pub fn describe(e: &Elicitation, agent: &str) -> String {
    let who = if e.to == agent {
        format!("from {}", e.from)
    } else {
        format!("to {}", e.to)
    };
    match e.status {
        Status::Pending => {
            let what = match &e.url {
                Some(url) => format!("; URL: {url}"),
                None => fields(e),
            };
            format!(
                "{} {who} is pending until {}: {:?}{what}",
                e.id,
                e.expires_at.to_rfc3339(),
                e.message
            )
        }
        Status::Accepted | Status::Declined | Status::Cancelled => {
            let content = e
                .response
                .as_ref()
                .and_then(|r| r.content.as_ref())
                .map(|c| format!(" with {c}"))
                .unwrap_or_default();
            format!("{} {who}: {}{content}", e.id, e.status.as_str())
        }
        Status::Withdrawn | Status::Expired => format!("{} {who}: {}", e.id, e.status.as_str()),
    }
}

fn describe_page(page: &Page, agent: &str) -> String {
    let mut text = match page.items.len() {
        0 => format!("No pending questions for you (position {}).", page.position),
        n => format!(
            "{n} pending question(s) for you (position {}):",
            page.position
        ),
    };
    for e in &page.items {
        text.push_str("\n- ");
        text.push_str(&describe(e, agent));
    }
    if let Some(c) = &page.next_cursor {
        text.push_str(&format!("\nMore: call inbox with cursor {c:?}."));
    }
    text
}
