//! 2025-era sessions: minted by `initialize`, kept in the key-value store under
//! [`keys::mcp_session`], named by every later request's `MCP-Session-Id`.
//!
//! A session belongs to the agent whose token initialized it: the same id under another agent's
//! token is unknown (`404`), like an expired or ended one — the client then initializes again. It
//! lasts `mcp_session_ttl_seconds` from `initialize` (a fixed lifetime, so a request costs one
//! read and no write); `DELETE` ends it at once. The session remembers what `initialize`
//! negotiated: the protocol version and the client's capabilities (whether it can be asked to
//! elicit from its human).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::{
    Caller, Env, INSTRUCTIONS, INVALID_PARAMS, LATEST_SESSION_VERSION, Reply, SESSION_VERSIONS,
    Settings, capabilities, failure, rpc, server_info, success,
};
use crate::api::Request;
use crate::error::Error;
use crate::keys;
use crate::store::Store;
use crate::time::Timestamp;

/// A session as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Session {
    agent: String,
    protocol_version: String,
    capabilities: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    client_info: Option<Value>,
    expires_at: Timestamp,
}

/// The version `initialize` answers for a client that asked for `requested`: the same if this
/// server speaks it, else the newest it does (the client then decides whether to go on).
pub fn negotiate(requested: &str) -> &'static str {
    SESSION_VERSIONS
        .iter()
        .find(|v| **v == requested)
        .copied()
        .unwrap_or(LATEST_SESSION_VERSION)
}

/// `initialize`: negotiates the version, stores the session, answers with its id in
/// `MCP-Session-Id`.
pub(super) async fn initialize<E: Env>(
    env: &E,
    agent: &str,
    id: &Value,
    params: &Map<String, Value>,
    settings: &Settings,
) -> Result<Reply, Error> {
    let (Some(requested), capabilities_declared) = (
        params.get("protocolVersion").and_then(Value::as_str),
        params.get("capabilities").cloned().unwrap_or(json!({})),
    ) else {
        let message = "initialize needs a protocolVersion";
        return Ok(rpc(&failure(id, INVALID_PARAMS, message, None)).into());
    };
    if !capabilities_declared.is_object() {
        let message = "capabilities must be an object";
        return Ok(rpc(&failure(id, INVALID_PARAMS, message, None)).into());
    }
    let version = negotiate(requested);
    let session_id = format!(
        "mcp_{}",
        env.new_id().trim_start_matches("el_").to_ascii_lowercase()
    );
    let session = Session {
        agent: agent.to_string(),
        protocol_version: version.to_string(),
        capabilities: capabilities_declared,
        client_info: params.get("clientInfo").cloned(),
        expires_at: env.now().plus_secs(settings.session_ttl_seconds),
    };
    let bytes = serde_json::to_vec(&session).unwrap_or_default();
    env.store()
        .set(&keys::mcp_session(&session_id), &bytes)
        .await?;
    let result = json!({
        "protocolVersion": version,
        "capabilities": capabilities(),
        "serverInfo": server_info(),
        "instructions": INSTRUCTIONS,
    });
    Ok(rpc(&success(id, &result))
        .with_header("mcp-session-id", session_id)
        .into())
}

/// The caller of a request in session `MCP-Session-Id`: `400` without one, `404` when it is
/// unknown, expired, ended or another agent's, `400` when `MCP-Protocol-Version` names a version
/// this server does not speak.
pub(super) async fn resume<S: Store>(
    store: &S,
    req: &Request,
    token: &crate::token::Verified,
    now: Timestamp,
) -> Result<Caller, Error> {
    let Some(id) = req.header("mcp-session-id") else {
        return Err(Error::BadRequest(
            "send MCP-Session-Id (from initialize), or _meta with a 2026 protocol version".into(),
        ));
    };
    if let Some(v) = req.header("mcp-protocol-version")
        && !SESSION_VERSIONS.contains(&v)
    {
        return Err(Error::BadRequest(format!(
            "MCP-Protocol-Version {v} is not supported in a session (supported: {})",
            SESSION_VERSIONS.join(", ")
        )));
    }
    let unknown = || {
        Error::NotFound(format!(
            "session {id} is unknown, expired or ended: initialize a new one"
        ))
    };
    let raw = store
        .get(&keys::mcp_session(id))
        .await?
        .ok_or_else(unknown)?;
    let session: Session = serde_json::from_slice(&raw).map_err(|_| unknown())?;
    if session.agent != token.agent || now >= session.expires_at {
        return Err(unknown());
    }
    Ok(Caller {
        token: token.clone(),
        version: session.protocol_version,
        capabilities: session.capabilities,
        session: Some(id.to_string()),
    })
}

/// `DELETE /mcp`: ends the session (as [`resume`] finds it).
pub(super) async fn end<S: Store>(
    store: &S,
    req: &Request,
    token: &crate::token::Verified,
    now: Timestamp,
) -> Result<(), Error> {
    let caller = resume(store, req, token, now).await?;
    let id = caller.session.unwrap_or_default();
    store.delete_many(&[keys::mcp_session(&id)]).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::negotiate;

    #[test]
    fn initialize_answers_the_requested_version_when_supported_and_else_the_newest() {
        assert_eq!(negotiate("2025-06-18"), "2025-06-18");
        assert_eq!(negotiate("2025-03-26"), "2025-03-26");
        assert_eq!(negotiate("2024-11-05"), "2025-11-25");
        assert_eq!(negotiate("2026-07-28"), "2025-11-25");
    }
}
