//! The MCP server at `/mcp`, over real HTTP on the real component: both protocol eras, the tools
//! with their waits, the relay to a human (an SSE stream in 2025, MRTR in 2026), and the same
//! elicitations as the HTTP API.

use std::time::{Duration, Instant};

use e2e::{Mcp, agent, shared};
use serde_json::{Value, json};

fn form(field: &str, kind: &str) -> Value {
    json!({"type": "object", "properties": {field: {"type": kind}}, "required": [field]})
}

fn id_of(result: &Value) -> String {
    result["structuredContent"]["id"]
        .as_str()
        .expect("an id")
        .to_string()
}

/// Ask → the addressee's waiting inbox returns it → respond → the asker's waiting ask returns the
/// answer: in a 2025 session and in 2026 stateless requests.
#[test]
fn an_ask_waiting_for_its_answer_returns_the_moment_the_addressee_responds() {
    let c = shared().client();
    for stateless in [false, true] {
        let (a, b) = (agent("mcp-asker"), agent("mcp-answerer"));
        let open = |token: &str| {
            if stateless {
                Mcp::stateless(&c, token, json!({}))
            } else {
                Mcp::session(&c, token, json!({}))
            }
        };
        let (alice, bob) = (open(&c.token(&a)), open(&c.token(&b)));
        let names: Vec<String> = alice.rpc("tools/list", json!({}))["tools"]
            .as_array()
            .expect("tools")
            .iter()
            .map(|t| t["name"].as_str().unwrap_or("").to_string())
            .collect();
        assert_eq!(names.len(), 7, "{names:?}");
        let started = Instant::now();
        let (asked, answered) = std::thread::scope(|s| {
            let asking = s.spawn(|| {
                alice.call(
                    "ask",
                    &json!({"to": b, "message": "ship it?",
                    "requestedSchema": form("answer", "string"), "waitSeconds": 20}),
                )
            });
            let inbox = bob.call("inbox", &json!({"waitSeconds": 20}));
            let item = inbox["structuredContent"]["items"][0].clone();
            assert_eq!(item["message"], "ship it?");
            let id = item["id"].as_str().expect("id").to_string();
            let answered = bob.call(
                "respond",
                &json!({"id": id, "action": "accept",
                "content": {"answer": "yes"}}),
            );
            (asking.join().expect("ask"), answered)
        });
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(answered["isError"], false);
        assert_eq!(asked["structuredContent"]["status"], "accepted", "{asked}");
        assert_eq!(
            asked["structuredContent"]["response"]["content"]["answer"],
            "yes"
        );
        if stateless {
            assert_eq!(asked["resultType"], "complete");
        }
    }
}

/// A question asked over HTTP is in the MCP inbox, one asked over MCP in the HTTP inbox, and the
/// tool's structuredContent is what the HTTP API returns.
#[test]
fn the_mcp_tools_and_the_http_api_share_every_elicitation() {
    let c = shared().client();
    let (a, b) = (agent("mcp-mixed-a"), agent("mcp-mixed-b"));
    let (ta, tb) = (c.token(&a), c.token(&b));
    let over_http = c.ask(&ta, &b, json!({}));
    let bob = Mcp::session(&c, &tb, json!({}));
    let inbox = bob.call("inbox", &json!({}));
    let ids: Vec<&str> = inbox["structuredContent"]["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|e| e["id"].as_str())
        .collect();
    assert_eq!(ids, [over_http.as_str()]);
    let alice = Mcp::stateless(&c, &ta, json!({}));
    let asked = alice.call("ask", &json!({"to": b, "message": "over mcp"}));
    let over_mcp = id_of(&asked);
    let listed = c
        .get(
            &format!("/v1/agents/{b}/elicitations?role=inbox&status=pending"),
            Some(&tb),
        )
        .expect(200);
    assert_eq!(listed["items"][0]["id"], json!(over_mcp));
    let got = c
        .get(&format!("/v1/elicitations/{over_mcp}"), Some(&ta))
        .expect(200);
    assert_eq!(asked["structuredContent"], got);
    // Withdrawn over MCP, it is withdrawn over HTTP.
    let withdrawn = alice.call("withdraw", &json!({"id": over_mcp}));
    assert_eq!(withdrawn["structuredContent"]["status"], "withdrawn");
    let got = c
        .get(&format!("/v1/elicitations/{over_mcp}"), Some(&tb))
        .expect(200);
    assert_eq!(got["status"], "withdrawn");
}

/// In a 2025 session relay_to_human answers with an SSE stream carrying `elicitation/create`;
/// the client's POSTed answer is recorded as the addressee's. In 2026 the same goes through an
/// `input_required` result and the client's retry.
#[test]
fn relay_to_human_records_the_humans_answer_in_both_eras() {
    let c = shared().client();
    let (a, b) = (agent("mcp-relay-a"), agent("mcp-relay-b"));
    let (ta, tb) = (c.token(&a), c.token(&b));
    let alice = Mcp::stateless(&c, &ta, json!({}));
    let schema = form("approve", "boolean");
    let ask = || {
        id_of(&alice.call(
            "ask",
            &json!({"to": b, "message": "deploy?",
        "requestedSchema": schema}),
        ))
    };

    let first = ask();
    let bob = Mcp::session(&c, &tb, json!({"elicitation": {"form": {}}}));
    let (result, asked) = bob.call_streamed("relay_to_human", &json!({"id": first}), |request| {
        assert_eq!(request["method"], "elicitation/create");
        assert_eq!(request["params"]["message"], "deploy?");
        assert_eq!(request["params"]["requestedSchema"], schema);
        json!({"action": "accept", "content": {"approve": true}})
    });
    assert_eq!(asked.len(), 1);
    assert_eq!(
        result["structuredContent"]["relayed"][0]["status"], "accepted",
        "{result}"
    );
    let seen = alice.call("check", &json!({"id": first}));
    assert_eq!(
        seen["structuredContent"]["response"]["content"]["approve"],
        true
    );

    let second = ask();
    let bob = Mcp::stateless(&c, &tb, json!({"elicitation": {}}));
    let interim = bob.call("relay_to_human", &json!({}));
    assert_eq!(interim["resultType"], "input_required", "{interim}");
    assert_eq!(
        interim["inputRequests"][&second]["params"]["requestedSchema"],
        schema
    );
    let retry = json!({"name": "relay_to_human", "arguments": {},
        "inputResponses": {&second: {"action": "decline"}},
        "requestState": interim["requestState"]});
    let done = bob.rpc("tools/call", retry);
    assert_eq!(done["resultType"], "complete");
    assert_eq!(
        done["structuredContent"]["relayed"][0]["status"], "declined",
        "{done}"
    );
    let seen = alice.call("check", &json!({"id": second}));
    assert_eq!(seen["structuredContent"]["status"], "declined");

    // A client that declared no elicitation cannot relay.
    let plain = Mcp::session(&c, &tb, json!({}));
    let refused = plain.call("relay_to_human", &json!({}));
    assert_eq!(refused["isError"], true);
}

/// What the transport refuses: no token (401 with WWW-Authenticate), an unknown or ended session
/// (404), a foreign browser origin (403), GET (405), a schema outside the subset (a tool error
/// with the HTTP API's problem), 2026 headers that do not match the body (-32020).
#[test]
fn the_gateway_refuses_bad_requests_precisely() {
    let c = shared().client();
    let token = c.token(&agent("mcp-bad"));
    let ping = json!({"jsonrpc": "2.0", "id": 1, "method": "ping"});
    let body = serde_json::to_vec(&ping).expect("json");
    let r = c.send(
        "POST",
        "/mcp",
        None,
        Some(("application/json", body.clone())),
        &[],
    );
    assert_eq!(r.status, 401);
    assert_eq!(r.header("www-authenticate"), Some("Bearer"));
    let r = c.send("GET", "/mcp", Some(&token), None, &[]);
    assert_eq!((r.status, r.header("allow")), (405, Some("POST, DELETE")));
    let r = c.send(
        "POST",
        "/mcp",
        Some(&token),
        Some(("application/json", body.clone())),
        &[("mcp-session-id", "mcp_unknown")],
    );
    r.expect_problem(404);
    let r = c.send(
        "POST",
        "/mcp",
        Some(&token),
        Some(("application/json", body)),
        &[("origin", "https://elsewhere.example")],
    );
    r.expect_problem(403);

    let session = Mcp::session(&c, &token, json!({}));
    assert_eq!(session.rpc("ping", json!({})), json!({}));
    let id = session.session.clone().expect("session");
    let r = c.send(
        "DELETE",
        "/mcp",
        Some(&token),
        None,
        &[("mcp-session-id", &id)],
    );
    assert_eq!(r.status, 204);
    session
        .post(&session.request("ping", json!({})), &[])
        .expect_problem(404);

    let stateless = Mcp::stateless(&c, &token, json!({}));
    let nested = json!({"type": "object", "properties": {"x": {"type": "object"}}});
    let r = stateless.call(
        "ask",
        &json!({"to": "someone", "message": "m", "requestedSchema": nested}),
    );
    assert_eq!(r["isError"], true);
    assert_eq!(r["structuredContent"]["status"], 422);
    let pointer = r["structuredContent"]["errors"][0]["pointer"]
        .as_str()
        .unwrap_or("");
    assert!(pointer.starts_with("/requestedSchema"), "{pointer}");
    let call = stateless.request("tools/call", json!({"name": "inbox", "arguments": {}}));
    let r = stateless.post(&call, &[("mcp-name", "ask")]);
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["code"], -32020);
}
