//! The elicitation contract: identity from the token, MCP form schemas, exactly-once answers, exact
//! expiry, idempotent create, inbox/outbox paging, history, limits, and the per-agent event log.

use std::collections::BTreeSet;
use std::sync::{Arc, Barrier};
use std::time::Duration;

use e2e::{ADMIN_TOKEN, Client, TOKEN_SECRET, agent, shared};
use elicitation::Timestamp;
use serde_json::{Value, json};

/// Two agents with tokens on the shared host.
struct Pair {
    c: Client,
    a: String,
    b: String,
    ta: String,
    tb: String,
}

fn pair() -> Pair {
    let c = shared().client();
    let (a, b) = (agent("asker"), agent("answerer"));
    let (ta, tb) = (c.token(&a), c.token(&b));
    Pair { c, a, b, ta, tb }
}

/// How many elicitations the answerer's inbox lists.
fn inbox_len(p: &Pair) -> usize {
    let inbox =
        p.c.get(&format!("/v1/agents/{}/elicitations", p.b), Some(&p.tb))
            .expect(200);
    inbox["items"].as_array().map_or(0, Vec::len)
}

/// The `key` field of every object in the array `list`.
fn strings<'a>(list: &'a Value, key: &str) -> Vec<&'a str> {
    list.as_array()
        .into_iter()
        .flatten()
        .map(|e| e[key].as_str().unwrap_or(""))
        .collect()
}

fn id_of(v: &Value) -> String {
    v["id"].as_str().expect("id").to_string()
}

fn ask(p: &Pair, extra: Value) -> String {
    p.c.ask(&p.ta, &p.b, extra)
}

/// Every event in `agent`'s log after `since`, read through the legacy route (no waiting).
fn events(c: &Client, token: &str, agent: &str, since: i64) -> Vec<Value> {
    let r = c
        .get(
            &format!("/v1/agents/{agent}/messages?since={since}&timeout=0"),
            Some(token),
        )
        .expect(200);
    r["events"].as_array().cloned().unwrap_or_default()
}

fn all_events(c: &Client, token: &str, agent: &str) -> Vec<Value> {
    let mut out = Vec::new();
    loop {
        let since = out
            .last()
            .map_or(0, |e: &Value| e["sequence"].as_i64().unwrap());
        let batch = events(c, token, agent, since);
        if batch.is_empty() {
            return out;
        }
        out.extend(batch);
    }
}

// ---------------------------------------------------------------------------------------------
// Identity
// ---------------------------------------------------------------------------------------------

#[test]
fn every_route_needs_a_valid_token() {
    let p = pair();
    let id = ask(&p, json!({}));
    let routes = [
        ("POST", "/v1/elicitations".to_string()),
        ("GET", format!("/v1/elicitations/{id}")),
        ("GET", format!("/v1/elicitations/{id}/history")),
        ("POST", format!("/v1/elicitations/{id}/response")),
        ("POST", format!("/v1/elicitations/{id}/withdraw")),
        ("GET", format!("/v1/agents/{}/elicitations", p.b)),
        ("GET", format!("/v1/agents/{}/messages?timeout=0", p.b)),
    ];
    let now = Timestamp::now();
    let realm = e2e::realm();
    let mint = elicitation::token::mint;
    let forged = mint(b"not-the-secret", &realm, &p.b, now, now.plus_secs(600));
    let expired = mint(
        TOKEN_SECRET.as_bytes(),
        &realm,
        &p.b,
        Timestamp(now.0 - 120_000),
        Timestamp(now.0 - 60_000),
    );
    // Signed with the right secret, but for another issuer, another audience, or from the future.
    let other = |issuer: &str, audience: &str| elicitation::token::Realm {
        issuer: issuer.into(),
        audience: audience.into(),
    };
    let foreign_issuer = mint(
        TOKEN_SECRET.as_bytes(),
        &other("someone-else", &realm.audience),
        &p.b,
        now,
        now.plus_secs(600),
    );
    let foreign_audience = mint(
        TOKEN_SECRET.as_bytes(),
        &other(&realm.issuer, "another-app"),
        &p.b,
        now,
        now.plus_secs(600),
    );
    let from_the_future = mint(
        TOKEN_SECRET.as_bytes(),
        &realm,
        &p.b,
        now.plus_secs(3600),
        now.plus_secs(7200),
    );
    let body = Some(("application/json", br#"{"to":"x","message":"m"}"#.to_vec()));
    for (method, path) in &routes {
        for token in [
            None,
            Some("garbage"),
            Some(forged.as_str()),
            Some(expired.as_str()),
            Some(foreign_issuer.as_str()),
            Some(foreign_audience.as_str()),
            Some(from_the_future.as_str()),
        ] {
            let r = p.c.send(method, path, token, body.clone(), &[]);
            let problem = r.expect_problem(401);
            assert_eq!(
                r.header("www-authenticate"),
                Some("Bearer"),
                "{method} {path}: {problem}"
            );
        }
    }
    let detail = p.c.get(&routes[1].1, Some(&expired)).expect_problem(401)["detail"].clone();
    assert_eq!(detail, "token expired");
    // Nothing was created by any of those requests.
    assert_eq!(inbox_len(&p), 1);
}

#[test]
fn tokens_are_minted_only_with_the_admin_token() {
    let c = shared().client();
    let ok = c
        .post(
            "/v1/tokens",
            Some(ADMIN_TOKEN),
            &json!({ "agent": "agent.one_2-x", "ttlSeconds": 60 }),
        )
        .expect(201);
    assert_eq!(ok["agent"], "agent.one_2-x");
    let exp = Timestamp::parse(ok["expiresAt"].as_str().unwrap()).unwrap();
    let now = Timestamp::now();
    assert!(exp > now && exp <= now.plus_secs(62), "{ok}");
    c.post("/v1/tokens", Some("wrong"), &json!({ "agent": "a" }))
        .expect_problem(401);
    c.post("/v1/tokens", None, &json!({ "agent": "a" }))
        .expect_problem(401);
    // An agent token is not the admin token.
    let t = c.token(&agent("x"));
    c.post("/v1/tokens", Some(&t), &json!({ "agent": "a" }))
        .expect_problem(401);
    for (body, pointer) in [
        (json!({ "agent": "-bad" }), "/agent"),
        (json!({ "agent": "a".repeat(65) }), "/agent"),
        (json!({ "agent": "a/b" }), "/agent"),
        (json!({}), "/agent"),
        (json!({ "agent": "a", "ttlSeconds": 0 }), "/ttlSeconds"),
        (json!({ "agent": "a", "role": "admin" }), "/role"),
    ] {
        let p = c
            .post("/v1/tokens", Some(ADMIN_TOKEN), &body)
            .expect_problem(422);
        assert_eq!(p["errors"][0]["pointer"], pointer, "{body}");
    }
}

#[test]
fn the_acting_agent_is_always_the_token_subject() {
    let p = pair();
    // A body cannot claim to come from someone else.
    let r = p.c.post(
        "/v1/elicitations",
        Some(&p.ta),
        &json!({ "to": p.b, "message": "m", "from": "mallory" }),
    );
    assert_eq!(r.expect_problem(422)["errors"][0]["pointer"], "/from");
    let e = p.c.create(&p.ta, &json!({ "to": p.b, "message": "m" }));
    assert_eq!(e["from"], p.a.as_str());
}

#[test]
fn only_the_parties_see_an_elicitation_and_each_does_only_its_part() {
    let p = pair();
    let mallory = agent("mallory");
    let tm = p.c.token(&mallory);
    let id = ask(&p, json!({}));
    let accept = json!({ "action": "decline" });
    // A third agent: 404 everywhere, as if it did not exist.
    p.c.get(&format!("/v1/elicitations/{id}"), Some(&tm))
        .expect_problem(404);
    p.c.get(&format!("/v1/elicitations/{id}/history"), Some(&tm))
        .expect_problem(404);
    p.c.answer(&tm, &id, &accept).expect_problem(404);
    p.c.post(
        &format!("/v1/elicitations/{id}/withdraw"),
        Some(&tm),
        &json!({}),
    )
    .expect_problem(404);
    // The requester cannot answer; the addressee cannot withdraw.
    p.c.answer(&p.ta, &id, &accept).expect_problem(403);
    p.c.post(
        &format!("/v1/elicitations/{id}/withdraw"),
        Some(&p.tb),
        &json!({}),
    )
    .expect_problem(403);
    // Lists and message logs are private.
    p.c.get(&format!("/v1/agents/{}/elicitations", p.b), Some(&tm))
        .expect_problem(403);
    p.c.get(&format!("/v1/agents/{}/messages?timeout=0", p.b), Some(&tm))
        .expect_problem(403);
    // None of that changed anything.
    let e =
        p.c.get(&format!("/v1/elicitations/{id}"), Some(&p.tb))
            .expect(200);
    assert_eq!(e["status"], "pending");
    assert_eq!(
        p.c.get(&format!("/v1/elicitations/{id}/history"), Some(&p.ta))
            .expect(200)["events"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // Unknown ids are 404 too.
    p.c.get("/v1/elicitations/el_doesnotexist", Some(&p.ta))
        .expect_problem(404);
}

// ---------------------------------------------------------------------------------------------
// Schemas and answers
// ---------------------------------------------------------------------------------------------

fn full_schema() -> Value {
    json!({
        "type": "object",
        "title": "Release check",
        "description": "Everything the release needs",
        "properties": {
            "name": { "type": "string", "title": "Name", "description": "who", "minLength": 2, "maxLength": 10, "pattern": "^[a-z]+$", "default": "bob" },
            "email": { "type": "string", "format": "email" },
            "site": { "type": "string", "format": "uri" },
            "day": { "type": "string", "format": "date" },
            "when": { "type": "string", "format": "date-time" },
            "ratio": { "type": "number", "minimum": 0, "maximum": 1.5, "default": 0.5 },
            "count": { "type": "integer", "minimum": 1, "maximum": 10 },
            "ok": { "type": "boolean", "default": false },
            "color": { "type": "string", "enum": ["red", "green"], "enumNames": ["Red", "Green"], "default": "red" },
            "size": { "type": "string", "oneOf": [{ "const": "s", "title": "Small" }, { "const": "l", "title": "Large" }] },
            "tags": { "type": "array", "items": { "type": "string", "enum": ["a", "b", "c"] }, "minItems": 1, "maxItems": 2, "default": ["a"] },
            "picks": { "type": "array", "items": { "anyOf": [{ "const": "x", "title": "X" }, { "const": "y", "title": "Y" }] } }
        },
        "required": ["name", "ok"]
    })
}

#[test]
fn every_schema_keyword_of_the_mcp_subset_is_accepted_and_enforced() {
    let p = pair();
    let id = ask(&p, json!({ "requestedSchema": full_schema() }));
    let bad = json!({
        "name": "B0b", "email": "no-at-sign", "site": "not a uri", "day": "2025-02-29", "when": "2025-01-01 10:00",
        "ratio": 2, "count": 1.5, "ok": "yes", "color": "blue", "size": "m", "tags": ["a", "b", "c"], "picks": ["z"],
        "extra": 1
    });
    let problem =
        p.c.answer(&p.tb, &id, &json!({ "action": "accept", "content": bad }))
            .expect_problem(422);
    let pointers: BTreeSet<String> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["pointer"].as_str().unwrap().to_string())
        .collect();
    for field in [
        "name", "email", "site", "day", "when", "ratio", "count", "ok", "color", "size", "tags",
        "extra",
    ] {
        assert!(
            pointers
                .iter()
                .any(|p| p.starts_with(&format!("/content/{field}"))),
            "{field} not reported: {problem}"
        );
    }
    assert!(
        pointers.iter().any(|p| p.starts_with("/content/picks")),
        "{problem}"
    );
    // Missing required fields, one entry each.
    let problem =
        p.c.answer(&p.tb, &id, &json!({ "action": "accept", "content": {} }))
            .expect_problem(422);
    let pointers = strings(&problem["errors"], "pointer");
    assert_eq!(pointers, ["/content/name", "/content/ok"]);
    // Still pending after every rejected answer.
    assert_eq!(
        p.c.get(&format!("/v1/elicitations/{id}"), Some(&p.tb))
            .expect(200)["status"],
        "pending"
    );
    let good = json!({
        "name": "bob", "email": "bob@example.com", "site": "https://example.com/x", "day": "2024-02-29",
        "when": "2025-01-01T10:00:00.5+02:00", "ratio": 1.5, "count": 10, "ok": true, "color": "green", "size": "l",
        "tags": ["a", "c"], "picks": ["x", "y"]
    });
    let e =
        p.c.answer(&p.tb, &id, &json!({ "action": "accept", "content": good }))
            .expect(200);
    assert_eq!(e["response"]["content"], good);
}

#[test]
fn schemas_outside_the_subset_are_rejected_with_the_offending_pointer() {
    let p = pair();
    let cases = [
        (
            json!({ "type": "object", "properties": { "a": { "type": "object", "properties": {} } } }),
            "/requestedSchema/properties/a",
        ),
        (
            json!({ "type": "object", "properties": { "a": { "$ref": "#/x" } } }),
            "/requestedSchema/properties/a",
        ),
        (
            json!({ "type": "object", "properties": { "a": { "type": "array", "items": { "type": "object" } } } }),
            "/requestedSchema/properties/a/items",
        ),
        (
            json!({ "type": "object", "properties": { "a": { "type": "string", "format": "ipv4" } } }),
            "/requestedSchema/properties/a/format",
        ),
        (
            json!({ "type": "object", "properties": { "a": { "type": "string", "minLength": 5, "default": "abc" } } }),
            "/requestedSchema/properties/a/default",
        ),
        (
            json!({ "type": "object", "properties": { "a": { "type": "number", "minimum": 5, "maximum": 1 } } }),
            "/requestedSchema/properties/a/minimum",
        ),
        (
            json!({ "type": "object", "properties": { "a": { "type": "string", "pattern": "(" } } }),
            "/requestedSchema/properties/a/pattern",
        ),
        (
            json!({ "type": "object", "properties": { "a": { "type": "string", "enum": [] } } }),
            "/requestedSchema/properties/a/enum",
        ),
        (
            json!({ "type": "object", "properties": { "a": { "type": "boolean" } }, "required": ["b"] }),
            "/requestedSchema/required/0",
        ),
        (json!({ "type": "string" }), "/requestedSchema/type"),
        (
            json!({ "type": "object", "properties": { "a": { "type": "null" } } }),
            "/requestedSchema/properties/a/type",
        ),
        (
            json!({ "type": "object", "properties": { "a": { "type": "integer", "default": 1.5 } } }),
            "/requestedSchema/properties/a/default",
        ),
    ];
    for (schema, pointer) in cases {
        let r = p.c.post(
            "/v1/elicitations",
            Some(&p.ta),
            &json!({ "to": p.b, "message": "m", "requestedSchema": schema }),
        );
        let problem = r.expect_problem(422);
        let pointers = strings(&problem["errors"], "pointer");
        assert!(
            pointers.iter().any(|p| p.starts_with(pointer)),
            "expected {pointer} for {schema}: {problem}"
        );
    }
    let props: serde_json::Map<String, Value> = (0..51)
        .map(|i| (format!("p{i}"), json!({ "type": "boolean" })))
        .collect();
    let r = p.c.post("/v1/elicitations", Some(&p.ta), &json!({ "to": p.b, "message": "m", "requestedSchema": { "type": "object", "properties": props } }));
    r.expect_problem(422);
    let props: serde_json::Map<String, Value> = (0..50)
        .map(|i| (format!("p{i}"), json!({ "type": "boolean" })))
        .collect();
    p.c.create(&p.ta, &json!({ "to": p.b, "message": "m", "requestedSchema": { "type": "object", "properties": props } }));
    // Only the one valid create above reached the inbox.
    assert_eq!(inbox_len(&p), 1);
}

#[test]
fn decline_and_cancel_carry_no_content_and_url_mode_accepts_without_content() {
    let p = pair();
    let id = ask(
        &p,
        json!({ "requestedSchema": { "type": "object", "properties": { "a": { "type": "boolean" } } } }),
    );
    let pr =
        p.c.answer(
            &p.tb,
            &id,
            &json!({ "action": "decline", "content": { "a": true } }),
        )
        .expect_problem(422);
    assert_eq!(pr["errors"][0]["pointer"], "/content");
    p.c.answer(&p.tb, &id, &json!({ "action": "maybe" }))
        .expect_problem(422);
    p.c.answer(&p.tb, &id, &json!({ "action": "cancel", "note": "x" }))
        .expect_problem(422);
    assert_eq!(
        p.c.answer(&p.tb, &id, &json!({ "action": "cancel" }))
            .expect(200)["status"],
        "cancelled"
    );

    let url = ask(
        &p,
        json!({ "mode": "url", "url": "https://auth.example.com/consent?x=1" }),
    );
    p.c.answer(
        &p.tb,
        &url,
        &json!({ "action": "accept", "content": { "a": 1 } }),
    )
    .expect_problem(422);
    let e =
        p.c.answer(&p.tb, &url, &json!({ "action": "accept" }))
            .expect(200);
    assert_eq!(
        (e["status"].as_str(), e["mode"].as_str()),
        (Some("accepted"), Some("url"))
    );

    for (extra, pointer) in [
        (
            json!({ "mode": "url", "url": "http://example.com/x" }),
            "/url",
        ),
        (
            json!({ "mode": "url", "url": "ftp://example.com/x" }),
            "/url",
        ),
        // A name that only starts like a loopback address is not one.
        (
            json!({ "mode": "url", "url": "http://127.attacker.example/x" }),
            "/url",
        ),
        (
            json!({ "mode": "url", "url": "http://localhost.attacker.example/x" }),
            "/url",
        ),
        (
            json!({ "mode": "url", "url": "http://user@127.0.0.1.attacker.example/" }),
            "/url",
        ),
        (json!({ "mode": "url", "url": "http://10.0.0.1/x" }), "/url"),
        (json!({ "mode": "url", "url": "/relative" }), "/url"),
        (json!({ "mode": "url" }), "/url"),
        (
            json!({ "mode": "url", "url": "https://e.com", "requestedSchema": { "type": "object", "properties": { "a": { "type": "boolean" } } } }),
            "/requestedSchema",
        ),
        (json!({ "mode": "chat" }), "/mode"),
    ] {
        let mut body = json!({ "to": p.b, "message": "m" });
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().cloned().unwrap());
        let pr =
            p.c.post("/v1/elicitations", Some(&p.ta), &body)
                .expect_problem(422);
        assert_eq!(pr["errors"][0]["pointer"], pointer, "{body}");
    }
    // Plain http only to a loopback host: 127.0.0.0/8, localhost, [::1].
    for url in [
        "http://127.0.0.1:8080/callback",
        "http://127.8.9.10/",
        "http://localhost:3000/cb",
        "http://[::1]:8080/cb",
    ] {
        ask(&p, json!({ "mode": "url", "url": url }));
    }
}

// ---------------------------------------------------------------------------------------------
// Exactly once
// ---------------------------------------------------------------------------------------------

#[test]
fn under_a_32_way_race_exactly_one_answer_wins() {
    let p = pair();
    let schema = json!({ "type": "object", "properties": { "n": { "type": "integer" } }, "required": ["n"] });
    for round in 0..8 {
        let id = ask(&p, json!({ "requestedSchema": schema }));
        let barrier = Arc::new(Barrier::new(32));
        let threads: Vec<_> = (0..32)
            .map(|i| {
                let (c, tb, id, barrier) = (p.c.clone(), p.tb.clone(), id.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    let body = match i % 3 {
                        0 => json!({ "action": "accept", "content": { "n": i } }),
                        1 => json!({ "action": "decline" }),
                        _ => json!({ "action": "cancel" }),
                    };
                    (body.clone(), c.answer(&tb, &id, &body))
                })
            })
            .collect();
        let results: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        let final_state =
            p.c.get(&format!("/v1/elicitations/{id}"), Some(&p.ta))
                .expect(200);
        let winner = &final_state["response"];
        let mut winners = 0;
        for (body, r) in &results {
            match r.status {
                // Only the winning answer, or an identical copy of it, gets 200.
                200 => {
                    assert_eq!(&r.json()["response"], winner, "round {round}");
                    assert_eq!(body["action"], winner["action"]);
                    winners += usize::from(body == winner);
                }
                409 => assert_eq!(
                    r.expect_problem(409)["current"]["response"],
                    *winner,
                    "round {round}"
                ),
                s => panic!("round {round}: unexpected {s}: {}", r.text),
            }
        }
        assert!(winners >= 1, "round {round}: no 200 for the winning answer");
        let distinct_200: BTreeSet<String> = results
            .iter()
            .filter(|(_, r)| r.status == 200)
            .map(|(b, _)| b.to_string())
            .collect();
        assert_eq!(
            distinct_200.len(),
            1,
            "round {round}: two different answers both won"
        );
        let history =
            p.c.get(&format!("/v1/elicitations/{id}/history"), Some(&p.ta))
                .expect(200);
        let answered = history["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["type"] == "elicitation.answered")
            .count();
        assert_eq!(answered, 1, "round {round}");
    }
    // Exactly one answered event per elicitation reached the requester's log.
    let answered: Vec<String> = all_events(&p.c, &p.ta, &p.a)
        .iter()
        .filter(|e| e["eventType"] == "elicitation.answered")
        .map(|e| e["data"]["elicitation"]["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(answered.len(), 8);
    assert_eq!(answered.iter().collect::<BTreeSet<_>>().len(), 8);
}

#[test]
fn an_identical_retry_gets_the_same_200_and_a_different_answer_a_409() {
    let p = pair();
    let id = ask(
        &p,
        json!({ "requestedSchema": { "type": "object", "properties": { "a": { "type": "string" } } } }),
    );
    let answer = json!({ "action": "accept", "content": { "a": "x" } });
    let first = p.c.answer(&p.tb, &id, &answer).expect(200);
    let again = p.c.answer(&p.tb, &id, &answer).expect(200);
    assert_eq!(first, again);
    let conflict =
        p.c.answer(
            &p.tb,
            &id,
            &json!({ "action": "accept", "content": { "a": "y" } }),
        )
        .expect_problem(409);
    assert_eq!(conflict["current"]["response"], answer);
    p.c.answer(&p.tb, &id, &json!({ "action": "decline" }))
        .expect_problem(409);
    p.c.post(
        &format!("/v1/elicitations/{id}/withdraw"),
        Some(&p.ta),
        &json!({}),
    )
    .expect_problem(409);
}

#[test]
fn withdrawal_by_the_requester_is_final_and_idempotent() {
    let p = pair();
    let id = ask(&p, json!({}));
    let w =
        p.c.send(
            "POST",
            &format!("/v1/elicitations/{id}/withdraw"),
            Some(&p.ta),
            None,
            &[],
        )
        .expect(200);
    assert_eq!(w["status"], "withdrawn");
    let again =
        p.c.post(
            &format!("/v1/elicitations/{id}/withdraw"),
            Some(&p.ta),
            &json!({}),
        )
        .expect(200);
    assert_eq!(again, w);
    let pr =
        p.c.answer(&p.tb, &id, &json!({ "action": "cancel" }))
            .expect_problem(409);
    assert_eq!(pr["current"]["status"], "withdrawn");
    let kinds: Vec<Value> = all_events(&p.c, &p.tb, &p.b)
        .iter()
        .map(|e| e["eventType"].clone())
        .collect();
    assert_eq!(
        kinds,
        [json!("elicitation.created"), json!("elicitation.withdrawn")]
    );
    let kinds: Vec<Value> = all_events(&p.c, &p.ta, &p.a)
        .iter()
        .map(|e| e["eventType"].clone())
        .collect();
    assert_eq!(kinds, [json!("elicitation.withdrawn")]);
}

// ---------------------------------------------------------------------------------------------
// Expiry
// ---------------------------------------------------------------------------------------------

#[test]
fn expiry_is_exact_at_the_deadline_without_a_sweeper() {
    let p = pair();
    let e = p.c.create(
        &p.ta,
        &json!({ "to": p.b, "message": "quick", "ttlSeconds": 1 }),
    );
    let id = id_of(&e);
    let expires = Timestamp::parse(e["expiresAt"].as_str().unwrap()).unwrap();
    let created = Timestamp::parse(e["createdAt"].as_str().unwrap()).unwrap();
    assert_eq!(expires.0 - created.0, 1000);
    // Before the deadline: pending (the request is sent well before it).
    assert_eq!(
        p.c.get(&format!("/v1/elicitations/{id}"), Some(&p.tb))
            .expect(200)["status"],
        "pending"
    );
    let wait = expires.0.saturating_sub(Timestamp::now().0) + 20;
    std::thread::sleep(Duration::from_millis(wait));
    // From the deadline on, every read says expired and answers get 410.
    let list =
        p.c.get(&format!("/v1/agents/{}/elicitations", p.b), Some(&p.tb))
            .expect(200);
    assert_eq!(list["items"][0]["status"], "expired");
    let pr =
        p.c.answer(&p.tb, &id, &json!({ "action": "decline" }))
            .expect_problem(410);
    assert_eq!(pr["current"]["status"], "expired");
    let seen =
        p.c.get(&format!("/v1/elicitations/{id}"), Some(&p.ta))
            .expect(200);
    assert_eq!(
        (seen["status"].as_str(), seen["respondedAt"].as_str()),
        (Some("expired"), e["expiresAt"].as_str())
    );
    p.c.post(
        &format!("/v1/elicitations/{id}/withdraw"),
        Some(&p.ta),
        &json!({}),
    )
    .expect_problem(410);
    // The transition was written once, and both parties got one expired event.
    let history =
        p.c.get(&format!("/v1/elicitations/{id}/history"), Some(&p.tb))
            .expect(200);
    let kinds = strings(&history["events"], "type");
    assert_eq!(kinds, ["elicitation.created", "elicitation.expired"]);
    for (token, who) in [(&p.ta, &p.a), (&p.tb, &p.b)] {
        let expired = all_events(&p.c, token, who)
            .iter()
            .filter(|e| e["eventType"] == "elicitation.expired")
            .count();
        assert_eq!(expired, 1, "{who}");
    }
}

#[test]
fn wait_returns_when_answered_or_at_its_limit() {
    let p = pair();
    let id = ask(&p, json!({}));
    let (c, tb, id2) = (p.c.clone(), p.tb.clone(), id.clone());
    let answerer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        c.answer(&tb, &id2, &json!({ "action": "decline" }))
            .expect(200);
    });
    let started = std::time::Instant::now();
    let e =
        p.c.get(&format!("/v1/elicitations/{id}?wait=10"), Some(&p.ta))
            .expect(200);
    assert_eq!(e["status"], "declined");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "returned long after the answer"
    );
    answerer.join().unwrap();

    let pending = ask(&p, json!({}));
    let started = std::time::Instant::now();
    let e =
        p.c.get(&format!("/v1/elicitations/{pending}?wait=1"), Some(&p.ta))
            .expect(200);
    assert_eq!(e["status"], "pending");
    assert!(started.elapsed() >= Duration::from_millis(950));
    p.c.get(&format!("/v1/elicitations/{pending}?wait=26"), Some(&p.ta))
        .expect_problem(400);
    p.c.get(&format!("/v1/elicitations/{pending}?wait=x"), Some(&p.ta))
        .expect_problem(400);
}

// ---------------------------------------------------------------------------------------------
// Idempotency, limits, bad input
// ---------------------------------------------------------------------------------------------

#[test]
fn an_idempotent_retry_returns_the_original() {
    let p = pair();
    let body = json!({ "to": p.b, "message": "once only", "ttlSeconds": 60 });
    let send = |token: &str, body: &Value, key: &str| {
        p.c.send(
            "POST",
            "/v1/elicitations",
            Some(token),
            Some(("application/json", body.to_string().into_bytes())),
            &[("idempotency-key", key)],
        )
    };
    let first = send(&p.ta, &body, "key-1");
    let original = first.expect(201);
    let retry = send(&p.ta, &body, "key-1");
    assert_eq!(retry.expect(201)["id"], original["id"]);
    assert_eq!(retry.header("idempotent-replayed"), Some("true"));
    assert_eq!(retry.header("location"), first.header("location"));
    // Same key, different body: 422, nothing created.
    let other = json!({ "to": p.b, "message": "something else" });
    send(&p.ta, &other, "key-1").expect_problem(422);
    // The key is per agent.
    let tc = p.c.token(&agent("other"));
    assert_ne!(send(&tc, &body, "key-1").expect(201)["id"], original["id"]);
    assert_eq!(inbox_len(&p), 2);
}

#[test]
fn bad_input_gets_a_precise_4xx_and_changes_nothing() {
    let p = pair();
    let post = |ct: &str, body: Vec<u8>| {
        p.c.send(
            "POST",
            "/v1/elicitations",
            Some(&p.ta),
            Some((ct, body)),
            &[],
        )
    };
    post("application/json", b"{not json".to_vec()).expect_problem(400);
    post("application/json", b"[1,2]".to_vec()).expect_problem(422);
    post(
        "text/plain",
        json!({ "to": p.b, "message": "m" })
            .to_string()
            .into_bytes(),
    )
    .expect_problem(415);
    p.c.send("POST", "/v1/elicitations", Some(&p.ta), None, &[])
        .expect_problem(415);
    let huge = json!({ "to": p.b, "message": "m", "context": "x".repeat(70 * 1024) });
    post("application/json", huge.to_string().into_bytes()).expect_problem(413);
    let cases = [
        (
            json!({ "to": p.b, "message": "x".repeat(4001) }),
            "/message",
        ),
        (json!({ "to": p.b, "message": "" }), "/message"),
        (json!({ "to": p.b }), "/message"),
        (json!({ "message": "m" }), "/to"),
        (json!({ "to": "not valid!", "message": "m" }), "/to"),
        (json!({ "to": 7, "message": "m" }), "/to"),
        (
            json!({ "to": p.b, "message": "m", "ttlSeconds": 0 }),
            "/ttlSeconds",
        ),
        (
            json!({ "to": p.b, "message": "m", "ttlSeconds": 86401 }),
            "/ttlSeconds",
        ),
        (
            json!({ "to": p.b, "message": "m", "ttlSeconds": "60" }),
            "/ttlSeconds",
        ),
        (
            json!({ "to": p.b, "message": "m", "context": 5 }),
            "/context",
        ),
        (
            json!({ "to": p.b, "message": "m", "surprise": true }),
            "/surprise",
        ),
    ];
    for (body, pointer) in cases {
        let pr = post("application/json", body.to_string().into_bytes()).expect_problem(422);
        assert_eq!(pr["errors"][0]["pointer"], pointer, "{body}");
    }
    // 4000 characters (multi-byte ones count once) is fine.
    p.c.create(&p.ta, &json!({ "to": p.b, "message": "é".repeat(4000) }));
    assert_eq!(inbox_len(&p), 1);
    assert_eq!(events(&p.c, &p.tb, &p.b, 0).len(), 1);
    // Wrong methods.
    let r =
        p.c.send("DELETE", "/v1/elicitations", Some(&p.ta), None, &[]);
    r.expect_problem(405);
    assert_eq!(r.header("allow"), Some("POST"));
    p.c.send(
        "PUT",
        &format!("/v1/agents/{}/elicitations", p.a),
        Some(&p.ta),
        None,
        &[],
    )
    .expect_problem(405);
    // Bad list parameters.
    for q in [
        "role=all",
        "limit=0",
        "limit=101",
        "cursor=abc",
        "status=done",
        "colour=red",
    ] {
        p.c.get(&format!("/v1/agents/{}/elicitations?{q}", p.b), Some(&p.tb))
            .expect_problem(400);
    }
}

// ---------------------------------------------------------------------------------------------
// Lists, history, events
// ---------------------------------------------------------------------------------------------

#[test]
fn lists_page_newest_first_and_stay_stable_under_concurrent_inserts() {
    let p = pair();
    let first: Vec<String> = (0..5)
        .map(|i| ask(&p, json!({ "message": format!("q{i}") })))
        .collect();
    let path = format!("/v1/agents/{}/elicitations", p.b);
    let page1 = p.c.get(&format!("{path}?limit=2"), Some(&p.tb)).expect(200);
    let ids = |page: &Value| {
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(id_of)
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(&page1), [first[4].clone(), first[3].clone()]);
    // New elicitations arrive between pages: they do not shift the pages already being read.
    for i in 0..3 {
        ask(&p, json!({ "message": format!("late{i}") }));
    }
    let cursor = page1["nextCursor"].as_str().unwrap();
    let page2 =
        p.c.get(&format!("{path}?limit=2&cursor={cursor}"), Some(&p.tb))
            .expect(200);
    assert_eq!(ids(&page2), [first[2].clone(), first[1].clone()]);
    let cursor = page2["nextCursor"].as_str().unwrap();
    let page3 =
        p.c.get(&format!("{path}?limit=2&cursor={cursor}"), Some(&p.tb))
            .expect(200);
    assert_eq!(ids(&page3), [first[0].clone()]);
    assert!(page3["nextCursor"].is_null());
    // Outbox and status filters.
    p.c.answer(&p.tb, &first[0], &json!({ "action": "decline" }))
        .expect(200);
    let outbox =
        p.c.get(
            &format!(
                "/v1/agents/{}/elicitations?role=outbox&status=declined",
                p.a
            ),
            Some(&p.ta),
        )
        .expect(200);
    assert_eq!(ids(&outbox), [first[0].clone()]);
    let pending =
        p.c.get(
            &format!("{path}?status=pending,accepted&limit=100"),
            Some(&p.tb),
        )
        .expect(200);
    assert_eq!(ids(&pending).len(), 7);
    let empty =
        p.c.get(&format!("/v1/agents/{}/elicitations", p.a), Some(&p.ta))
            .expect(200);
    assert_eq!(empty["items"], json!([]));
}

#[test]
fn history_lists_every_state_change_in_order() {
    let p = pair();
    let id = ask(&p, json!({}));
    p.c.answer(&p.tb, &id, &json!({ "action": "cancel" }))
        .expect(200);
    let h =
        p.c.get(&format!("/v1/elicitations/{id}/history"), Some(&p.ta))
            .expect(200);
    let events = h["events"].as_array().unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(
        (events[0]["type"].as_str(), events[0]["actor"].as_str()),
        (Some("elicitation.created"), Some(p.a.as_str()))
    );
    assert_eq!(events[1]["type"], "elicitation.answered");
    assert_eq!(
        (events[1]["actor"].as_str(), events[1]["action"].as_str()),
        (Some(p.b.as_str()), Some("cancel"))
    );
    assert!(events[0]["at"].as_str() <= events[1]["at"].as_str());
}

#[test]
fn concurrent_creators_to_one_addressee_lose_and_duplicate_no_event() {
    let c = shared().client();
    let target = agent("popular");
    let tt = c.token(&target);
    let barrier = Arc::new(Barrier::new(32));
    let threads: Vec<_> = (0..32)
        .map(|i| {
            let (c, target, barrier) = (c.clone(), target.clone(), barrier.clone());
            std::thread::spawn(move || {
                let me = agent(&format!("writer{i}"));
                let t = c.token(&me);
                barrier.wait();
                (0..4)
                    .map(|j| {
                        id_of(
                            &c.create(&t, &json!({ "to": target, "message": format!("{i}/{j}") })),
                        )
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let created: BTreeSet<String> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    assert_eq!(created.len(), 128);
    let log = all_events(&c, &tt, &target);
    let sequences: Vec<i64> = log
        .iter()
        .map(|e| e["sequence"].as_i64().unwrap())
        .collect();
    assert_eq!(
        sequences,
        (1..=128).collect::<Vec<_>>(),
        "sequences are gap-free and strictly increasing"
    );
    let delivered: BTreeSet<String> = log
        .iter()
        .map(|e| e["data"]["elicitation"]["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        delivered, created,
        "every created elicitation has exactly one event"
    );
    // Resuming from any point gives exactly the rest.
    let rest = events(&c, &tt, &target, 100);
    assert_eq!(
        rest.first().map(|e| e["sequence"].clone()),
        Some(json!(101))
    );
}

#[test]
fn the_legacy_route_waits_for_events_and_times_out() {
    let p = pair();
    let r = p.c.get(
        &format!("/v1/agents/{}/messages?since=0&timeout=1", p.b),
        Some(&p.tb),
    );
    let body = r.expect(200);
    assert_eq!(
        body,
        json!({ "events": [], "count": 0, "status": "timeout" })
    );
    assert_eq!(r.header("deprecation"), Some("true"));
    assert!(r.header("sunset").is_some_and(|s| s.ends_with("GMT")));
    assert_eq!(
        r.header("link"),
        Some(format!("</v1/agents/{}/events>; rel=\"successor-version\"", p.b).as_str())
    );
    let id = ask(&p, json!({}));
    let body =
        p.c.get(
            &format!("/v1/agents/{}/messages?since=0&timeout=5", p.b),
            Some(&p.tb),
        )
        .expect(200);
    assert_eq!(
        (body["status"].as_str(), body["count"].as_u64()),
        (Some("new_events"), Some(1))
    );
    let ev = &body["events"][0];
    assert_eq!(
        (ev["sequence"].as_i64(), ev["eventType"].as_str()),
        (Some(1), Some("elicitation.created"))
    );
    assert_eq!(ev["data"]["elicitation"]["id"], id.as_str());
    p.c.get(
        &format!("/v1/agents/{}/messages?timeout=26", p.b),
        Some(&p.tb),
    )
    .expect_problem(400);
}

#[test]
fn revoking_an_agent_refuses_its_tokens_everywhere_and_ends_its_streams() {
    let c = shared().client();
    let (a, b) = (agent("revoked"), agent("peer"));
    let (ta, tb) = (c.token(&a), c.token(&b));
    let id = c.ask(&tb, &a, json!({}));
    let stream = c.events(&a, &ta, None);
    stream.expect_open();
    let mcp = e2e::Mcp::session(&c, &ta, json!({}));
    // Only the admin revokes, and only a well-formed agent.
    c.post("/v1/tokens/revoke", Some(&ta), &json!({ "agent": a }))
        .expect_problem(401);
    c.post(
        "/v1/tokens/revoke",
        Some(ADMIN_TOKEN),
        &json!({ "agent": "no such/agent" }),
    )
    .expect_problem(422);
    c.post(
        "/v1/tokens/revoke",
        Some(ADMIN_TOKEN),
        &json!({ "agent": a, "x": 1 }),
    )
    .expect_problem(422);
    // A ?wait= read and an MCP wait of the agent are parked when the revocation comes.
    let read = {
        let (c, ta, id) = (c.clone(), ta.clone(), id.clone());
        std::thread::spawn(move || c.get(&format!("/v1/elicitations/{id}?wait=20"), Some(&ta)))
    };
    let mcp_wait = {
        let mcp = e2e::Mcp::stateless(&c, &ta, json!({}));
        std::thread::spawn(move || {
            let call = mcp.request(
                "tools/call",
                json!({ "name": "inbox", "arguments": { "waitSeconds": 20, "since": 1 } }),
            );
            mcp.post(&call, &[])
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    let revoked_at = std::time::Instant::now();
    let r = c
        .post(
            "/v1/tokens/revoke",
            Some(ADMIN_TOKEN),
            &json!({ "agent": a }),
        )
        .expect(200);
    assert_eq!(r["agent"], a.as_str());
    // The open stream ends within 2 s.
    loop {
        match stream.next(Duration::from_millis(100)) {
            Some(e2e::SseMsg::Closed) => break,
            _ => assert!(
                revoked_at.elapsed() < Duration::from_secs(2),
                "the stream of a revoked token is still open"
            ),
        }
    }
    // Both waits ended within 2 s of the revocation, refused.
    read.join().unwrap().expect_problem(401);
    let r = mcp_wait.join().unwrap();
    let body = r.json();
    assert_eq!(
        body["result"]["structuredContent"]["status"], 401,
        "{}",
        r.text
    );
    assert!(
        revoked_at.elapsed() < Duration::from_millis(2500),
        "the waits took {:?} to end",
        revoked_at.elapsed()
    );
    // Every route refuses the old token, the MCP gateway too; nothing changes.
    let body = Some(("application/json", br#"{"to":"x","message":"m"}"#.to_vec()));
    for (method, path) in [
        ("POST", "/v1/elicitations".to_string()),
        ("GET", format!("/v1/elicitations/{id}")),
        ("POST", format!("/v1/elicitations/{id}/response")),
        ("GET", format!("/v1/agents/{a}/elicitations")),
        ("GET", format!("/v1/agents/{a}/events")),
    ] {
        let problem = c
            .send(method, &path, Some(&ta), body.clone(), &[])
            .expect_problem(401);
        assert_eq!(problem["detail"], "token revoked", "{method} {path}");
    }
    let r = mcp.post(
        &json!({ "jsonrpc": "2.0", "id": 9, "method": "tools/list" }),
        &[],
    );
    assert_eq!(r.status, 401, "{}", r.text);
    // The peer's token is untouched, and the request is still pending.
    let e = c
        .get(&format!("/v1/elicitations/{id}"), Some(&tb))
        .expect(200);
    assert_eq!(e["status"], "pending");
    // A token minted after the revocation works.
    let fresh = c.token(&a);
    c.get(&format!("/v1/elicitations/{id}"), Some(&fresh))
        .expect(200);
    c.answer(&fresh, &id, &json!({ "action": "decline" }))
        .expect(200);
}

#[test]
fn a_stream_ends_when_its_token_expires() {
    let c = shared().client();
    let a = agent("brief");
    let t = c.token_with_ttl(&a, 2);
    let opened = std::time::Instant::now();
    let stream = c.events(&a, &t, None);
    stream.expect_open();
    loop {
        match stream.next(Duration::from_millis(100)) {
            Some(e2e::SseMsg::Closed) => break,
            _ => assert!(opened.elapsed() < Duration::from_secs(5), "still open"),
        }
    }
    // It ended at the token's expiry (whole seconds), not before it.
    assert!(
        opened.elapsed() >= Duration::from_millis(900),
        "{:?}",
        opened.elapsed()
    );
    c.get(&format!("/v1/agents/{a}/events"), Some(&t))
        .expect_problem(401);
}

// ---------------------------------------------------------------------------------------------
// Abuse limits
// ---------------------------------------------------------------------------------------------

#[test]
fn creates_past_the_rate_or_the_pending_limit_are_429_and_change_nothing() {
    let host = e2e::Host::start(
        &e2e::repo().join("spin.toml"),
        &[
            "--variable",
            "create_rate_per_minute=3",
            "--variable",
            "max_pending_per_agent=2",
        ],
    );
    let c = host.client();
    let (a, b, d) = (agent("flood"), agent("inbox"), agent("other"));
    let (ta, tb, td) = (c.token(&a), c.token(&b), c.token(&d));
    // Whichever minute this is, the rate check below must not straddle two: wait out a late one.
    let into_minute = Timestamp::now().0 % 60_000;
    if into_minute > 50_000 {
        std::thread::sleep(Duration::from_millis(60_500 - into_minute));
    }
    let first = c.ask(&ta, &b, json!({}));
    c.ask(&td, &b, json!({}));
    // b has 2 pending: a third is refused, whoever asks, over HTTP and MCP alike.
    let before = c
        .get(&format!("/v1/agents/{b}/elicitations"), Some(&tb))
        .expect(200);
    let refused = c.post(
        "/v1/elicitations",
        Some(&ta),
        &json!({ "to": b, "message": "one more?" }),
    );
    let problem = refused.expect_problem(429);
    assert_eq!(problem["type"], "/problems/too-many-requests");
    assert!(
        problem["detail"].as_str().unwrap().contains("pending"),
        "{problem}"
    );
    assert_eq!(refused.header("retry-after"), Some("30"));
    let mcp = e2e::Mcp::stateless(&c, &ta, json!({}));
    let r = mcp.call("ask", &json!({ "to": b, "message": "via MCP?" }));
    assert_eq!(r["isError"], true, "{r}");
    assert_eq!(r["structuredContent"]["status"], 429, "{r}");
    let after = c
        .get(&format!("/v1/agents/{b}/elicitations"), Some(&tb))
        .expect(200);
    assert_eq!(
        before["items"], after["items"],
        "a refused create changed b's inbox"
    );
    // Answering one frees its room.
    c.answer(&tb, &first, &json!({ "action": "decline" }))
        .expect(200);
    c.ask(&ta, &b, json!({}));
    // a has now made 3 creates this minute (the refused ones do not count): a fourth is a 429.
    c.ask(&ta, &d, json!({}));
    let refused = c.post(
        "/v1/elicitations",
        Some(&ta),
        &json!({ "to": d, "message": "and another?" }),
    );
    let problem = refused.expect_problem(429);
    assert!(
        problem["detail"].as_str().unwrap().contains("a minute"),
        "{problem}"
    );
    let retry: u64 = refused.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
    // The limit is the requester's: d is not held to a's count.
    c.ask(&td, &a, json!({}));
}

// ---------------------------------------------------------------------------------------------
// Retention
// ---------------------------------------------------------------------------------------------

#[test]
fn past_its_retention_an_elicitation_is_gone_with_everything_stored_for_it() {
    let host = e2e::Host::start(
        &e2e::repo().join("spin.toml"),
        &["--variable", "retention_seconds=2"],
    );
    let c = host.client();
    let (a, b, d) = (agent("keeper"), agent("answerer"), agent("bystander"));
    let (ta, tb, td) = (c.token(&a), c.token(&b), c.token(&d));
    // One answered, one withdrawn (created with an Idempotency-Key), one left to expire.
    let answered = c.ask(&ta, &b, json!({ "ttlSeconds": 3 }));
    c.answer(&tb, &answered, &json!({ "action": "decline" }))
        .expect(200);
    let keyed = c
        .send(
            "POST",
            "/v1/elicitations",
            Some(&ta),
            Some((
                "application/json",
                json!({ "to": b, "message": "m", "ttlSeconds": 3 })
                    .to_string()
                    .into_bytes(),
            )),
            &[("idempotency-key", "retained-once")],
        )
        .expect(201);
    let keyed = id_of(&keyed);
    c.post(
        &format!("/v1/elicitations/{keyed}/withdraw"),
        Some(&ta),
        &json!({}),
    )
    .expect(200);
    let expiring = c.ask(&ta, &b, json!({ "ttlSeconds": 1 }));
    let ids = [&answered, &keyed, &expiring];
    // Within its retention a final one is there for both parties.
    c.get(&format!("/v1/elicitations/{answered}"), Some(&tb))
        .expect(200);
    std::thread::sleep(Duration::from_millis(2300));
    // Then it is gone: GET and history are 404, lists leave it out (the expired one's retention
    // runs from its deadline, so it is still listed).
    for (token, path) in [
        (&ta, format!("/v1/elicitations/{answered}")),
        (&tb, format!("/v1/elicitations/{answered}/history")),
        (&ta, format!("/v1/elicitations/{keyed}")),
    ] {
        c.get(&path, Some(token)).expect_problem(404);
    }
    let outbox = c
        .get(
            &format!("/v1/agents/{a}/elicitations?role=outbox"),
            Some(&ta),
        )
        .expect(200);
    assert_eq!(strings(&outbox["items"], "id"), [expiring.as_str()]);
    // The retention pass runs in creates' upkeep: once every deadline's second plus the retention
    // is over, what was stored for the three goes (a create takes one second of deadlines).
    let stored = |keys: &[String]| -> Vec<String> {
        keys.iter()
            .filter(|k| {
                ids.iter().any(|id| k.ends_with(id.as_str()))
                    || k.starts_with(&format!("idem/{a}/"))
                    || k.starts_with(&format!("rate/{a}/"))
                    || (k.starts_with(&format!("ix/{a}/")) && !k.ends_with("/head"))
                    || (k.starts_with(&format!("ix/{b}/")) && !k.ends_with("/head"))
            })
            .cloned()
            .collect()
    };
    // Three records, the key's claim and request, a rate count, six index entries.
    let before = stored(&host.store_keys());
    assert!(before.len() >= 12, "{before:?}");
    std::thread::sleep(Duration::from_millis(3500));
    let left = e2e::eventually(Duration::from_secs(10), || {
        c.ask(&td, &d, json!({}));
        let left = stored(&host.store_keys());
        left.is_empty().then_some(())
    });
    assert!(left.is_some(), "{:?}", stored(&host.store_keys()));
    // The expired one is gone too, and so is what the logs said of the three: each of their
    // slots holds the void marker (which a reader passes at once), nothing else of the slot is
    // left, and reading the whole log finds no event.
    c.get(&format!("/v1/elicitations/{expiring}"), Some(&ta))
        .expect_problem(404);
    let logs: Vec<String> = host
        .store_keys()
        .into_iter()
        .filter(|k| k.starts_with(&format!("log/{a}/")) || k.starts_with(&format!("log/{b}/")))
        .filter(|k| !k.ends_with("/head"))
        .collect();
    assert_eq!(logs.len(), 9, "{logs:?}");
    for k in &logs {
        assert_eq!(
            host.store_value(k).as_deref(),
            Some(br#"{"void":true}"#.as_slice()),
            "{k}"
        );
    }
    assert_eq!(all_events(&c, &tb, &b), Vec::<Value>::new());
    assert_eq!(all_events(&c, &ta, &a), Vec::<Value>::new());
}
