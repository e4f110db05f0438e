//! The gateway over a memory store: both eras' transport rules, the tools, and the relay to a
//! human in both its forms (a 2025 stream whose client answers with a POST, and 2026 MRTR).

use std::cell::{Cell, RefCell};
use std::future::Future;

use serde_json::{Value, json};

use super::relay::Outbound;
use super::*;
use crate::service;
use crate::store::MemoryStore;
use crate::token;

const SECRET: &str = "gateway-test-secret";

/// A change made while a call waits.
type During = Box<dyn FnOnce(&TestEnv)>;

/// A memory store, a clock that waits move on, and ids counted up.
struct TestEnv {
    store: MemoryStore,
    now: Cell<u64>,
    ids: Cell<u32>,
    /// Run once at the next park (a change made while a call waits).
    during: RefCell<Option<During>>,
}

impl TestEnv {
    fn new() -> Self {
        Self {
            store: MemoryStore::new(),
            now: Cell::new(1_800_000_000_000),
            ids: Cell::new(0),
            during: RefCell::new(None),
        }
    }
}

impl Changes for TestEnv {
    fn until_changed(&self, _: Vec<String>, _: i64, ms: u64) -> impl Future<Output = ()> {
        let during = self.during.borrow_mut().take();
        match during {
            Some(f) => f(self),
            None => self.now.set(self.now.get() + ms),
        }
        std::future::ready(())
    }
}

impl Env for TestEnv {
    type Store = MemoryStore;
    fn store(&self) -> &MemoryStore {
        &self.store
    }
    fn now(&self) -> Timestamp {
        Timestamp(self.now.get())
    }
    fn new_id(&self) -> String {
        self.ids.set(self.ids.get() + 1);
        format!("el_{:04}", self.ids.get())
    }
    fn sleep(&self, ms: u64) -> impl Future<Output = ()> {
        self.now.set(self.now.get() + ms);
        std::future::ready(())
    }
}

fn settings() -> Settings {
    Settings {
        secrets: api::Secrets {
            limits: service::Limits::default(),
            token_secret: SECRET.into(),
            admin_token: "admin".into(),
            realm: token::Realm {
                issuer: "lh".into(),
                audience: "lh".into(),
            },
        },
        allowed_origins: vec!["https://console.example".into()],
        session_ttl_seconds: 3600,
        read: api::ReadOptions::default(),
    }
}

/// Runs `f`, which never waits on a memory store (waits here only move the clock), so callbacks
/// may run calls of their own from inside another.
fn block_on<F: Future>(f: F) -> F::Output {
    futures::FutureExt::now_or_never(f).expect("nothing here waits")
}

/// A client of one agent: its token, and the session or the 2026 `_meta` it sends.
struct Client<'a> {
    env: &'a TestEnv,
    token: String,
    session: Option<String>,
    capabilities: Value,
    stateless: bool,
    next_id: Cell<i64>,
}

impl<'a> Client<'a> {
    fn new(env: &'a TestEnv, agent: &str, capabilities: Value, stateless: bool) -> Self {
        let now = env.now();
        let token = token::mint(
            SECRET.as_bytes(),
            &settings().secrets.realm,
            agent,
            now,
            now.plus_secs(86_400),
        );
        let mut c = Self {
            env,
            token,
            session: None,
            capabilities,
            stateless,
            next_id: Cell::new(0),
        };
        if !stateless {
            let r = c.post(&json!({"jsonrpc": "2.0", "id": 0, "method": "initialize",
                "params": {"protocolVersion": "2025-11-25", "capabilities": c.capabilities,
                    "clientInfo": {"name": "test", "version": "1"}}}));
            assert_eq!(r.status, 200);
            c.session = header(&r, "mcp-session-id");
        }
        c
    }

    fn request(&self, method: &str, mut params: Value) -> api::Request {
        let id = self.next_id.get() + 1;
        self.next_id.set(id);
        let mut headers = vec![];
        if self.stateless {
            params["_meta"] = json!({
                META_VERSION: STATELESS_VERSION,
                META_CAPABILITIES: self.capabilities,
            });
            headers.push(("mcp-protocol-version".into(), STATELESS_VERSION.into()));
            headers.push(("mcp-method".into(), method.into()));
            if let Some(name) = params.get("name").and_then(Value::as_str) {
                headers.push(("mcp-name".into(), name.into()));
            }
        } else if let Some(s) = &self.session {
            headers.push(("mcp-session-id".into(), s.clone()));
            headers.push(("mcp-protocol-version".into(), "2025-11-25".into()));
        }
        let body = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        self.raw(&body, headers)
    }

    fn raw(&self, body: &Value, headers: Vec<(String, String)>) -> api::Request {
        api::Request {
            method: "POST".into(),
            route: "/mcp".into(),
            authorization: Some(format!("Bearer {}", self.token)),
            content_type: Some("application/json".into()),
            headers,
            body: body.to_string().into_bytes(),
            ..Default::default()
        }
    }

    fn post(&self, body: &Value) -> Response {
        let mut headers = vec![];
        if let Some(s) = &self.session {
            headers.push(("mcp-session-id".into(), s.clone()));
        }
        self.send(&self.raw(body, headers))
    }

    fn send(&self, req: &api::Request) -> Response {
        match block_on(handle(self.env, req, &settings())) {
            Reply::Done(r) => r,
            Reply::Stream(_) => panic!("a stream where a response was expected"),
        }
    }

    /// A `tools/call`'s result (`result` of the JSON-RPC response).
    fn call(&self, tool: &str, arguments: &Value) -> Value {
        let r =
            self.send(&self.request("tools/call", json!({"name": tool, "arguments": arguments})));
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        let body: Value = serde_json::from_slice(&r.body).unwrap();
        body["result"].clone()
    }
}

fn header(r: &Response, name: &str) -> Option<String> {
    r.headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.clone())
}

fn json_of(r: &Response) -> Value {
    serde_json::from_slice(&r.body).unwrap()
}

#[test]
fn initialize_mints_a_session_that_later_requests_must_name() {
    let env = TestEnv::new();
    let bob = Client::new(&env, "bob", json!({}), false);
    let session = bob.session.clone().expect("a session id");
    assert!(session.starts_with("mcp_"));
    let listed = bob.send(&bob.request("tools/list", json!({})));
    let names: Vec<String> = json_of(&listed)["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        names,
        [
            "ask",
            "inbox",
            "respond",
            "check",
            "withdraw",
            "wait_for_messages",
            "relay_to_human"
        ]
    );
    // Without the session: 400; a made-up one, or bob's under alice's token: 404.
    let mut req = bob.request("tools/list", json!({}));
    req.headers.retain(|(n, _)| n != "mcp-session-id");
    assert_eq!(bob.send(&req).status, 400);
    let mut req = bob.request("tools/list", json!({}));
    req.headers = vec![("mcp-session-id".into(), "mcp_nope".into())];
    assert_eq!(bob.send(&req).status, 404);
    let alice = Client::new(&env, "alice", json!({}), false);
    let mut req = alice.request("tools/list", json!({}));
    req.headers = vec![("mcp-session-id".into(), session)];
    assert_eq!(alice.send(&req).status, 404);
    // An unsupported MCP-Protocol-Version: 400.
    let mut req = bob.request("ping", json!({}));
    req.headers
        .push(("mcp-protocol-version".into(), "1999-01-01".into()));
    req.headers
        .retain(|(n, v)| n != "mcp-protocol-version" || v == "1999-01-01");
    assert_eq!(bob.send(&req).status, 400);
    // DELETE ends it; then it is unknown; and it expires after its ttl.
    let mut del = bob.request("ping", json!({}));
    del.method = "DELETE".into();
    assert_eq!(bob.send(&del).status, 204);
    assert_eq!(bob.send(&bob.request("ping", json!({}))).status, 404);
    let carol = Client::new(&env, "carol", json!({}), false);
    assert_eq!(carol.send(&carol.request("ping", json!({}))).status, 200);
    env.now.set(env.now.get() + 3_600_000);
    assert_eq!(carol.send(&carol.request("ping", json!({}))).status, 404);
}

#[test]
fn the_transport_refuses_what_it_cannot_serve_with_problems_and_changes_nothing() {
    let env = TestEnv::new();
    let bob = Client::new(&env, "bob", json!({}), true);
    let req = bob.request("tools/list", json!({}));
    let keys_before = env.store.keys();
    // No token, a forged one: 401 with WWW-Authenticate.
    let mut anonymous = req.clone();
    anonymous.authorization = None;
    let r = bob.send(&anonymous);
    assert_eq!(r.status, 401);
    assert_eq!(header(&r, "www-authenticate").as_deref(), Some("Bearer"));
    let mut forged = req.clone();
    forged.authorization = Some("Bearer x.y.z".into());
    assert_eq!(bob.send(&forged).status, 401);
    // A browser origin not allowed: 403; an allowed one passes.
    let mut browser = req.clone();
    browser
        .headers
        .push(("origin".into(), "https://evil.example".into()));
    assert_eq!(bob.send(&browser).status, 403);
    browser.headers.pop();
    browser
        .headers
        .push(("origin".into(), "https://console.example".into()));
    assert_eq!(bob.send(&browser).status, 200);
    // GET: 405 with Allow; not JSON: 415; unreadable: 400; a batch: 400.
    let mut get = req.clone();
    get.method = "GET".into();
    let r = bob.send(&get);
    assert_eq!(
        (r.status, header(&r, "allow").as_deref()),
        (405, Some("POST, DELETE"))
    );
    let mut text = req.clone();
    text.content_type = Some("text/plain".into());
    assert_eq!(bob.send(&text).status, 415);
    let mut broken = req;
    broken.body = b"{".to_vec();
    assert_eq!(bob.send(&broken).status, 400);
    assert_eq!(
        bob.send(&bob.raw(&json!([{"jsonrpc": "2.0"}]), vec![]))
            .status,
        400
    );
    assert_eq!(env.store.keys(), keys_before, "nothing was written");
}

#[test]
fn a_2026_request_needs_headers_that_match_its_body_and_a_supported_version() {
    let env = TestEnv::new();
    let bob = Client::new(&env, "bob", json!({}), true);
    let code = |r: &Response| json_of(r)["error"]["code"].as_i64();
    let mut req = bob.request("tools/call", json!({"name": "inbox", "arguments": {}}));
    req.headers.retain(|(n, _)| n != "mcp-name");
    req.headers.push(("mcp-name".into(), "ask".into()));
    let r = bob.send(&req);
    assert_eq!((r.status, code(&r)), (400, Some(HEADER_MISMATCH)));
    let mut req = bob.request("tools/list", json!({}));
    req.headers.retain(|(n, _)| n != "mcp-method");
    assert_eq!(code(&bob.send(&req)), Some(HEADER_MISMATCH));
    // Header and body agree on an unsupported version: -32022 listing what is supported.
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list",
        "params": {"_meta": {META_VERSION: "2099-01-01", META_CAPABILITIES: {}}}});
    let headers = vec![
        ("mcp-protocol-version".into(), "2099-01-01".into()),
        ("mcp-method".into(), "tools/list".into()),
    ];
    let r = bob.send(&bob.raw(&body, headers));
    assert_eq!((r.status, code(&r)), (400, Some(UNSUPPORTED_VERSION)));
    assert_eq!(
        json_of(&r)["error"]["data"]["supported"],
        json!([STATELESS_VERSION])
    );
    // initialize and ping do not exist in 2026: 404 -32601.
    for method in ["initialize", "ping"] {
        let r = bob.send(&bob.request(method, json!({})));
        assert_eq!(
            (r.status, code(&r)),
            (404, Some(METHOD_NOT_FOUND)),
            "{method}"
        );
    }
    let r = bob.send(&bob.request("server/discover", json!({})));
    let result = &json_of(&r)["result"];
    assert_eq!(result["supportedVersions"], json!([STATELESS_VERSION]));
    assert_eq!(result["resultType"], "complete");
    assert!(result["ttlMs"].is_u64() && result["cacheScope"].is_string());
    assert!(result["capabilities"]["tools"].is_object());
}

#[test]
fn ask_inbox_respond_and_the_askers_wait_returns_the_answer() {
    for stateless in [false, true] {
        let env = TestEnv::new();
        let alice = Client::new(&env, "alice", json!({}), stateless);
        let bob = Client::new(&env, "bob", json!({}), stateless);
        let empty = bob.call("inbox", &json!({}));
        assert_eq!(empty["structuredContent"]["items"], json!([]));
        let schema = json!({"type": "object", "properties": {"answer": {"type": "string"}},
            "required": ["answer"]});
        let asked = alice.call(
            "ask",
            &json!({"to": "bob", "message": "ship it?",
            "requestedSchema": schema}),
        );
        assert_eq!(asked["isError"], false);
        let id = asked["structuredContent"]["id"]
            .as_str()
            .unwrap()
            .to_string();
        let inbox = bob.call("inbox", &json!({"waitSeconds": 5}));
        let items = &inbox["structuredContent"]["items"];
        assert_eq!(items[0]["id"], json!(id));
        let text = inbox["content"][0]["text"].as_str().unwrap();
        assert!(text.contains("answer (string, required)"), "{text}");
        // The asker waits; bob answers while it waits.
        let answer = id.clone();
        *env.during.borrow_mut() = Some(Box::new(move |env: &TestEnv| {
            let bob = Client::new(env, "bob", json!({}), true);
            let r = bob.call(
                "respond",
                &json!({"id": answer, "action": "accept",
                "content": {"answer": "yes"}}),
            );
            assert_eq!(r["isError"], false, "{r}");
        }));
        let settled = alice.call("check", &json!({"id": id, "waitSeconds": 20}));
        assert_eq!(settled["structuredContent"]["status"], "accepted");
        assert_eq!(
            settled["structuredContent"]["response"]["content"]["answer"],
            "yes"
        );
        if stateless {
            assert_eq!(settled["resultType"], "complete");
        }
    }
}

#[test]
fn an_inbox_since_a_position_waits_for_a_newer_request() {
    let env = TestEnv::new();
    let alice = Client::new(&env, "alice", json!({}), true);
    let bob = Client::new(&env, "bob", json!({}), true);
    alice.call("ask", &json!({"to": "bob", "message": "old"}));
    let first = bob.call("inbox", &json!({}));
    let position = first["structuredContent"]["position"].as_i64().unwrap();
    *env.during.borrow_mut() = Some(Box::new(|env: &TestEnv| {
        Client::new(env, "alice", json!({}), true)
            .call("ask", &json!({"to": "bob", "message": "new"}));
    }));
    let next = bob.call("inbox", &json!({"since": position, "waitSeconds": 10}));
    let items = next["structuredContent"]["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["message"], "new");
}

#[test]
fn bad_arguments_are_tool_errors_with_the_http_problem_and_change_nothing() {
    let env = TestEnv::new();
    let alice = Client::new(&env, "alice", json!({}), false);
    let keys_before = env.store.keys();
    let nested = json!({"type": "object", "properties": {"x": {"type": "object"}}});
    let r = alice.call(
        "ask",
        &json!({"to": "bob", "message": "m", "requestedSchema": nested}),
    );
    assert_eq!(r["isError"], true);
    assert_eq!(r["structuredContent"]["status"], 422);
    let pointer = r["structuredContent"]["errors"][0]["pointer"]
        .as_str()
        .unwrap();
    assert!(pointer.starts_with("/requestedSchema"), "{pointer}");
    for (tool, args, at) in [
        (
            "ask",
            json!({"to": "bob", "message": "m", "waitSeconds": 99}),
            "/waitSeconds",
        ),
        (
            "ask",
            json!({"to": "bob", "message": "m", "colour": 1}),
            "/colour",
        ),
        ("inbox", json!({"limit": 0}), "/limit"),
        ("respond", json!({"action": "accept"}), "/id"),
        ("check", json!({"id": 7}), "/id"),
    ] {
        let r = alice.call(tool, &args);
        assert_eq!(r["isError"], true, "{tool}");
        assert_eq!(
            r["structuredContent"]["errors"][0]["pointer"], at,
            "{tool}: {r}"
        );
    }
    assert_eq!(env.store.keys(), keys_before, "nothing was written");
    let r = alice.call("check", &json!({"id": "el_none"}));
    assert_eq!(r["structuredContent"]["status"], 404);
    // An unknown tool is a protocol error.
    let r = alice.send(&alice.request("tools/call", json!({"name": "nope", "arguments": {}})));
    assert_eq!(json_of(&r)["error"]["code"], INVALID_PARAMS);
}

#[test]
fn relay_needs_a_client_that_declared_elicitation() {
    for stateless in [false, true] {
        let env = TestEnv::new();
        let bob = Client::new(&env, "bob", json!({}), stateless);
        let r = bob.call("relay_to_human", &json!({}));
        assert_eq!(r["isError"], true);
        let text = r["content"][0]["text"].as_str().unwrap();
        assert!(text.contains("elicitation capability"), "{text}");
    }
}

#[test]
fn relay_over_mrtr_asks_for_input_and_records_the_humans_answer_from_the_retry() {
    let env = TestEnv::new();
    let alice = Client::new(&env, "alice", json!({}), true);
    let bob = Client::new(&env, "bob", json!({"elicitation": {}}), true);
    let schema = json!({"type": "object", "properties": {"approve": {"type": "boolean"}},
        "required": ["approve"]});
    let asked = alice.call(
        "ask",
        &json!({"to": "bob", "message": "deploy?", "requestedSchema": schema}),
    );
    let id = asked["structuredContent"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let first = bob.call("relay_to_human", &json!({"id": id}));
    assert_eq!(first["resultType"], "input_required");
    let request = &first["inputRequests"][&id];
    assert_eq!(request["method"], "elicitation/create");
    assert_eq!(request["params"]["message"], "deploy?");
    assert_eq!(request["params"]["requestedSchema"], schema);
    let state = first["requestState"].clone();
    let retry = |state: &Value, answer: Value, arguments: Value| {
        let params = json!({"name": "relay_to_human", "arguments": arguments,
            "inputResponses": {&id: answer}, "requestState": state});
        let r = bob.send(&bob.request("tools/call", params));
        json_of(&r)["result"].clone()
    };
    // A tampered state, another's arguments, or content the schema rejects: refused, unrecorded.
    let mut forged = state.as_str().unwrap().to_string();
    forged.insert(3, 'x');
    let r = retry(
        &json!(forged),
        json!({"action": "accept", "content": {"approve": true}}),
        json!({"id": id}),
    );
    assert_eq!(r["isError"], true);
    let r = retry(
        &state,
        json!({"action": "accept", "content": {"approve": true}}),
        json!({}),
    );
    assert_eq!(
        r["structuredContent"]["errors"][0]["pointer"],
        "/requestState"
    );
    let r = retry(
        &state,
        json!({"action": "accept", "content": {"approve": "yes"}}),
        json!({"id": id}),
    );
    assert_eq!(
        r["structuredContent"]["refused"][0]["problem"]["status"], 422,
        "{r}"
    );
    let check = alice.call("check", &json!({"id": id}));
    assert_eq!(check["structuredContent"]["status"], "pending");
    // The human's real answer is recorded as bob's.
    let r = retry(
        &state,
        json!({"action": "accept", "content": {"approve": true}}),
        json!({"id": id}),
    );
    assert_eq!(r["resultType"], "complete");
    assert_eq!(r["structuredContent"]["relayed"][0]["status"], "accepted");
    let check = alice.call("check", &json!({"id": id}));
    assert_eq!(
        check["structuredContent"]["response"]["content"]["approve"],
        true
    );
    // Someone else's token cannot use bob's state.
    let mallory = Client::new(&env, "mallory", json!({"elicitation": {}}), true);
    let params = json!({"name": "relay_to_human", "arguments": {"id": id},
        "inputResponses": {&id: {"action": "decline"}}, "requestState": state});
    let r = json_of(&mallory.send(&mallory.request("tools/call", params)));
    assert_eq!(r["result"]["isError"], true);
}

/// A 2025 client's side of a relay stream: answers each `elicitation/create` by POSTing
/// `answer` back (through the gateway, as another request would).
struct Human<'a> {
    client: &'a Client<'a>,
    answer: Value,
    sent: Vec<Value>,
}

impl Outbound for Human<'_> {
    fn send(&mut self, message: &Value) -> impl Future<Output = bool> {
        self.sent.push(message.clone());
        if message["method"] == "elicitation/create" {
            let reply = json!({"jsonrpc": "2.0", "id": message["id"], "result": self.answer});
            let r = self.client.post(&reply);
            assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
        }
        std::future::ready(true)
    }
}

#[test]
fn relay_over_a_2025_stream_sends_elicitation_create_and_records_the_posted_answer() {
    let env = TestEnv::new();
    let alice = Client::new(&env, "alice", json!({}), false);
    let bob = Client::new(&env, "bob", json!({"elicitation": {"form": {}}}), false);
    let schema = json!({"type": "object", "properties": {"approve": {"type": "boolean"}}});
    let id = alice.call(
        "ask",
        &json!({"to": "bob", "message": "deploy?", "requestedSchema": schema}),
    )["structuredContent"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let stream = |answer: Value| {
        let req = bob.request(
            "tools/call",
            json!({"name": "relay_to_human", "arguments": {}}),
        );
        let Reply::Stream(job) = block_on(handle(&env, &req, &settings())) else {
            panic!("relay_to_human in a session answers with a stream");
        };
        let mut human = Human {
            client: &bob,
            answer,
            sent: Vec::new(),
        };
        block_on(job.run(&env, &mut human));
        human.sent
    };
    // Content the schema rejects: reported on the stream, nothing recorded.
    let sent = stream(json!({"action": "accept", "content": {"approve": 3}}));
    assert_eq!(sent[0]["params"]["mode"], "form");
    assert_eq!(sent[0]["params"]["message"], "deploy?");
    let result = &sent[1]["result"];
    assert_eq!(
        result["structuredContent"]["refused"][0]["id"],
        json!(id),
        "{result}"
    );
    assert_eq!(
        alice.call("check", &json!({"id": id}))["structuredContent"]["status"],
        "pending"
    );
    // A real answer: recorded as bob's, the stream's result shows it.
    let sent = stream(json!({"action": "decline"}));
    assert_eq!(sent.len(), 2);
    assert_eq!(
        sent[1]["result"]["structuredContent"]["relayed"][0]["status"],
        "declined"
    );
    assert_eq!(
        alice.call("check", &json!({"id": id}))["structuredContent"]["status"],
        "declined"
    );
    // A response to an id this server never sent: 400.
    let r = bob.post(
        &json!({"jsonrpc": "2.0", "id": format!("relay:{id}:forged"),
        "result": {"action": "accept"}}),
    );
    assert_eq!(r.status, 400);
}

#[test]
fn a_url_question_is_relayed_in_url_mode_only_to_a_client_that_declared_it() {
    let env = TestEnv::new();
    let alice = Client::new(&env, "alice", json!({}), true);
    let asked = alice.call(
        "ask",
        &json!({"to": "bob", "message": "sign in", "mode": "url",
            "url": "https://example.com/login"}),
    );
    let id = asked["structuredContent"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    // A form-only client: the question is refused, not shown as a form.
    let form_only = Client::new(&env, "bob", json!({"elicitation": {}}), true);
    let r = form_only.call("relay_to_human", &json!({"id": id}));
    assert_eq!(r["resultType"], "complete");
    let refused = &r["structuredContent"]["refused"][0];
    assert_eq!(refused["id"], json!(id));
    assert!(
        refused["problem"]["detail"]
            .as_str()
            .unwrap()
            .contains("url-mode")
    );
    // A client that declared url mode gets the link (2026: no elicitationId); its accept is
    // consent, recorded without content.
    let bob = Client::new(&env, "bob", json!({"elicitation": {"url": {}}}), true);
    let r = bob.call("relay_to_human", &json!({"id": id}));
    let params = &r["inputRequests"][&id]["params"];
    assert_eq!(params["mode"], "url");
    assert_eq!(params["url"], "https://example.com/login");
    assert!(params.get("elicitationId").is_none());
    let retry = json!({"name": "relay_to_human", "arguments": {"id": id},
        "inputResponses": {&id: {"action": "accept"}}, "requestState": r["requestState"]});
    let done = json_of(&bob.send(&bob.request("tools/call", retry)))["result"].clone();
    assert_eq!(
        done["structuredContent"]["relayed"][0]["status"], "accepted",
        "{done}"
    );
    // In a 2025 session the same question carries its elicitationId.
    let e = crate::service::get(&env.store, "bob", &id, env.now());
    let e = futures::FutureExt::now_or_never(e).unwrap().unwrap();
    let caller = Caller {
        token: crate::token::Verified {
            agent: "bob".into(),
            issued: env.now(),
            expires: Timestamp(env.now().0 + 60_000),
        },
        version: "2025-11-25".into(),
        capabilities: json!({"elicitation": {"url": {}}}),
        session: Some("mcp_x".into()),
    };
    let modes = relay::Modes::declared(&caller.capabilities).unwrap();
    let params = relay::elicit_params(&e, &caller, modes).unwrap();
    assert_eq!(params["elicitationId"], json!(id));
}
