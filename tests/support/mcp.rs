//! An MCP client for the tests, over the real `/mcp` route: a 2025 session (`initialize`, then
//! `MCP-Session-Id`) or 2026 stateless requests (`_meta` and the `Mcp-*` headers), tool calls,
//! and the SSE response of a call that asks the client something first.

use std::sync::atomic::{AtomicI64, Ordering};

use serde_json::{Value, json};

use crate::{Client, Resp};

/// The 2026 revision's version string.
pub const STATELESS: &str = "2026-07-28";
/// The 2025 revision the session client asks for.
pub const SESSION: &str = "2025-11-25";

/// One agent's MCP client.
pub struct Mcp {
    http: Client,
    token: String,
    capabilities: Value,
    /// The session id `initialize` returned (2025), or `None` (2026, stateless).
    pub session: Option<String>,
    next_id: AtomicI64,
}

impl Mcp {
    /// A 2025 client: `initialize` with `capabilities`, then `notifications/initialized`.
    #[track_caller]
    pub fn session(http: &Client, token: &str, capabilities: Value) -> Self {
        let mut c = Self::stateless(http, token, capabilities);
        let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": SESSION, "capabilities": c.capabilities,
            "clientInfo": {"name": "e2e", "version": "1"}}});
        let r = c.post(&init, &[]);
        let result = r.expect(200)["result"].clone();
        assert_eq!(result["protocolVersion"], SESSION);
        c.session = Some(
            r.header("mcp-session-id")
                .expect("a session id")
                .to_string(),
        );
        let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        assert_eq!(c.post(&initialized, &[]).status, 202);
        c
    }

    /// A 2026 client: every request carries its version and capabilities.
    pub fn stateless(http: &Client, token: &str, capabilities: Value) -> Self {
        Self {
            http: http.clone(),
            token: token.to_string(),
            capabilities,
            session: None,
            next_id: AtomicI64::new(1),
        }
    }

    /// POSTs `message` with the session's (or the 2026) headers and `extra` ones.
    #[track_caller]
    pub fn post(&self, message: &Value, extra: &[(&str, &str)]) -> Resp {
        let mut headers: Vec<(&str, String)> =
            vec![("accept", "application/json, text/event-stream".to_string())];
        match &self.session {
            Some(s) => {
                headers.push(("mcp-session-id", s.clone()));
                headers.push(("mcp-protocol-version", SESSION.into()));
            }
            None if message["method"] != "initialize" => {
                headers.push(("mcp-protocol-version", STATELESS.into()));
                if let Some(m) = message["method"].as_str() {
                    headers.push(("mcp-method", m.into()));
                }
                if let Some(n) = message["params"]["name"].as_str() {
                    headers.push(("mcp-name", n.into()));
                }
            }
            None => {}
        }
        // An extra header replaces the client's own of that name.
        let mut all: Vec<(&str, &str)> = headers
            .iter()
            .filter(|(n, _)| !extra.iter().any(|(e, _)| e == n))
            .map(|(n, v)| (*n, v.as_str()))
            .collect();
        all.extend_from_slice(extra);
        let body = serde_json::to_vec(message).expect("json");
        self.http.send(
            "POST",
            "/mcp",
            Some(&self.token),
            Some(("application/json", body)),
            &all,
        )
    }

    /// The JSON-RPC request for `method` (a 2026 one carries `_meta`).
    pub fn request(&self, method: &str, mut params: Value) -> Value {
        if self.session.is_none() {
            params["_meta"] = json!({
                "io.modelcontextprotocol/protocolVersion": STATELESS,
                "io.modelcontextprotocol/clientCapabilities": self.capabilities,
            });
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
    }

    /// Calls `method` and returns its `result` (200 expected).
    #[track_caller]
    pub fn rpc(&self, method: &str, params: Value) -> Value {
        let r = self.post(&self.request(method, params), &[]);
        let body = r.expect(200);
        assert!(body.get("error").is_none(), "{method}: {body}");
        body["result"].clone()
    }

    /// Calls tool `name` and returns its result.
    #[track_caller]
    pub fn call(&self, name: &str, arguments: &Value) -> Value {
        self.rpc("tools/call", json!({"name": name, "arguments": arguments}))
    }

    /// Calls tool `name` in a 2025 session, reading the SSE response: each request the server
    /// sends on it is answered with `answer(request)` (POSTed back, as a client does); returns
    /// the tool's result and the requests the server sent.
    #[track_caller]
    pub fn call_streamed(
        &self,
        name: &str,
        arguments: &Value,
        mut answer: impl FnMut(&Value) -> Value,
    ) -> (Value, Vec<Value>) {
        let request = self.request("tools/call", json!({"name": name, "arguments": arguments}));
        let session = self.session.clone().expect("a 2025 session");
        let url = format!("{}/mcp", self.http.base);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            use eventsource_stream::Eventsource;
            use futures::StreamExt;
            let http = reqwest::Client::new();
            let post = |body: &Value| {
                http.post(&url)
                    .bearer_auth(&self.token)
                    .header("accept", "application/json, text/event-stream")
                    .header("mcp-session-id", &session)
                    .header("mcp-protocol-version", SESSION)
                    .json(body)
                    .send()
            };
            let resp = post(&request).await.expect("tools/call");
            assert_eq!(resp.status(), 200);
            let ct = resp.headers()["content-type"]
                .to_str()
                .unwrap_or("")
                .to_string();
            assert!(ct.starts_with("text/event-stream"), "not a stream: {ct}");
            let mut events = resp.bytes_stream().eventsource();
            let mut asked = Vec::new();
            while let Some(event) = events.next().await {
                let message: Value = serde_json::from_str(&event.expect("sse").data).expect("json");
                if message.get("method").is_some() {
                    let reply = json!({"jsonrpc": "2.0", "id": message["id"],
                        "result": answer(&message)});
                    let r = post(&reply).await.expect("the answer");
                    assert_eq!(r.status(), 202);
                    asked.push(message);
                } else {
                    assert_eq!(message["id"], request["id"]);
                    return (message["result"].clone(), asked);
                }
            }
            panic!("the stream ended without the tool's result");
        })
    }
}
