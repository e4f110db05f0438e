//! The platform: Spin routing and headers, built-in routes, store grants, variables, persistence
//! across restarts, traps, and the create → list → answer → read path.

use e2e::{Host, agent, repo, shared};
use serde_json::json;

fn probe() -> Host {
    Host::start(&repo().join("tests/probe/spin.toml"), &[])
}

#[test]
fn health_and_info_are_built_in() {
    let c = shared().client();
    let r = c.get("/.well-known/spin/health", None);
    assert_eq!((r.status, r.text.as_str()), (200, "OK"));
    let info = c.get("/.well-known/spin/info", None).expect(200);
    assert_eq!(info["name"], "lighthouse-elicitation");
}

#[test]
fn unmatched_paths_are_404_with_an_empty_body() {
    let r = shared().client().get("/no/such/route", None);
    assert_eq!((r.status, r.text.as_str()), (404, ""));
}

#[test]
fn spin_headers_for_a_parameter_route() {
    let host = probe();
    let body = host.client().get("/items/42?x=1", None).expect(200);
    let h = &body["headers"];
    assert_eq!(h["spin-path-match-item-id"], "42");
    assert_eq!(h["spin-matched-route"], "/items/:item_id");
    assert_eq!(h["spin-component-route"], "/items/:item_id");
    assert_eq!(h["spin-path-info"], "");
    assert_eq!(h["spin-base-path"], "/");
    assert_eq!(h["spin-full-url"], format!("{}/items/42?x=1", host.base));
    assert!(
        h["spin-client-addr"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:")
    );
    assert_eq!(body["uri"], format!("{}/items/42?x=1", host.base));
}

#[test]
fn spin_headers_for_wildcard_and_exact_routes() {
    let host = probe();
    let c = host.client();
    let h = c.get("/probe/headers/deeper", None).expect(200)["headers"].clone();
    assert_eq!(h["spin-matched-route"], "/probe/...");
    assert_eq!(h["spin-raw-component-route"], "/probe/...");
    assert_eq!(h["spin-component-route"], "/probe");
    assert_eq!(h["spin-path-info"], "/headers/deeper");
    let h = c.get("/exact", None).expect(200)["headers"].clone();
    assert_eq!(h["spin-matched-route"], "/exact");
    assert_eq!(c.get("/exact/more", None).status, 404);
}

#[test]
fn a_component_may_open_only_granted_stores() {
    let host = probe();
    let c = host.client();
    assert_eq!(
        c.get("/probe/kv/default", None).expect(200),
        json!("opened")
    );
    assert_eq!(
        c.get("/probe/kv/secrets", None).expect(403),
        json!("access-denied")
    );
}

#[test]
fn variables_and_environment_come_from_the_manifest() {
    let host = probe();
    let c = host.client();
    assert_eq!(
        c.get("/probe/variable/greeting", None).expect(200),
        json!("hello, world")
    );
    assert_eq!(c.get("/probe/variable/nope", None).status, 404);
    assert_eq!(
        c.get("/probe/env/FROM_MANIFEST", None).expect(200),
        json!("yes")
    );
    let overridden = Host::start(
        &repo().join("tests/probe/spin.toml"),
        &["--variable", "greeting=hi"],
    );
    assert_eq!(
        overridden
            .client()
            .get("/probe/variable/greeting", None)
            .expect(200),
        json!("hi, world")
    );
}

#[test]
fn a_trap_is_a_500_and_serving_goes_on() {
    let mut host = probe();
    let c = host.client();
    for _ in 0..3 {
        let r = c.get("/probe/panic", None);
        assert_eq!((r.status, r.text.as_str()), (500, ""));
        c.get("/exact", None).expect(200);
    }
    assert!(host.is_running());
    let log =
        std::fs::read_to_string(host.state_dir().join("logs/probe_stderr.txt")).unwrap_or_default();
    assert!(
        log.contains("probe asked to trap"),
        "component stderr goes to .spin/logs: {log:?}"
    );
}

#[test]
fn create_list_answer_read() {
    let c = shared().client();
    let (alice, bob) = (agent("alice"), agent("bob"));
    let (ta, tb) = (c.token(&alice), c.token(&bob));
    let schema = json!({
        "type": "object",
        "properties": { "approve": { "type": "boolean" }, "note": { "type": "string", "maxLength": 200 } },
        "required": ["approve"]
    });
    let r = c.post(
        "/v1/elicitations",
        Some(&ta),
        &json!({ "to": bob, "message": "Ship it?", "requestedSchema": schema }),
    );
    let created = r.expect(201);
    let id = created["id"].as_str().unwrap().to_string();
    assert_eq!(
        r.header("location"),
        Some(format!("/v1/elicitations/{id}").as_str())
    );
    assert_eq!(created["status"], "pending");
    assert_eq!(created["from"], alice.as_str());

    let inbox = c
        .get(&format!("/v1/agents/{bob}/elicitations"), Some(&tb))
        .expect(200);
    assert_eq!(inbox["items"][0]["id"], id.as_str());

    let answered = c
        .answer(
            &tb,
            &id,
            &json!({ "action": "accept", "content": { "approve": true } }),
        )
        .expect(200);
    assert_eq!(answered["status"], "accepted");

    let seen = c
        .get(&format!("/v1/elicitations/{id}"), Some(&ta))
        .expect(200);
    assert_eq!(
        seen["response"],
        json!({ "action": "accept", "content": { "approve": true } })
    );
    assert!(seen["respondedAt"].is_string());
}

#[test]
fn the_store_persists_across_a_restart() {
    let mut host = Host::app();
    let c = host.client();
    let (alice, bob) = (agent("alice"), agent("bob"));
    let ta = c.token(&alice);
    let id = c.create(&ta, &json!({ "to": bob, "message": "still there?" }))["id"]
        .as_str()
        .unwrap()
        .to_string();
    host.restart();
    let c = host.client();
    let seen = c
        .get(&format!("/v1/elicitations/{id}"), Some(&ta))
        .expect(200);
    assert_eq!(seen["message"], "still there?");
    assert_eq!(
        host.state_dir().join("sqlite_key_value.db").exists(),
        !e2e::on_redis()
    );
}

/// A probe host whose component has one instance that serves two requests at a time, and room
/// for `queued` more to wait.
fn capped_probe(queued: usize) -> Host {
    let queued = queued.to_string();
    Host::start(
        &repo().join("tests/probe/spin.toml"),
        &[
            "--component-max-instances",
            "probe=1",
            "--component-concurrent-reuse",
            "probe=2",
            "--max-queued-requests",
            &queued,
        ],
    )
}

#[test]
fn requests_beyond_a_capped_component_wait_their_turn_in_order() {
    let host = capped_probe(16);
    let c = host.client();
    c.get("/exact", None).expect(200);
    // Ten requests of 300 ms, sent 20 ms apart, into room for two at a time: five rounds. Each
    // is answered, and they finish in the order they arrived.
    let started = std::time::Instant::now();
    let finished = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let threads: Vec<_> = (0..10)
        .map(|i| {
            let (c, finished) = (c.clone(), finished.clone());
            std::thread::sleep(std::time::Duration::from_millis(20));
            std::thread::spawn(move || {
                c.get("/probe/hold/300", None).expect(200);
                finished.lock().unwrap().push(i);
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let took = started.elapsed();
    assert_eq!(*finished.lock().unwrap(), (0..10).collect::<Vec<_>>());
    assert!(
        took >= std::time::Duration::from_millis(1500) && took < std::time::Duration::from_secs(4),
        "two at a time, five rounds of 300 ms: {took:?}"
    );
    let stats = c.get("/.well-known/spin/stats", None).expect(200);
    let queue = &stats["components"]["probe"]["queue"];
    assert!(queue["waited"].as_u64().unwrap() >= 8, "{queue}");
    assert_eq!(queue["rejected"], 0, "{queue}");
}

#[test]
fn a_full_queue_is_a_503_with_retry_after_and_the_rest_are_served() {
    let host = capped_probe(2);
    let c = host.client();
    c.get("/exact", None).expect(200);
    // Two in the instance and two waiting fill it: the next ones are turned away at once.
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let c = c.clone();
            let t = std::thread::spawn(move || c.get("/probe/hold/1500", None).status);
            std::thread::sleep(std::time::Duration::from_millis(50));
            t
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(200));
    let asked = std::time::Instant::now();
    let r = c.get("/probe/hold/0", None);
    assert_eq!(r.status, 503);
    assert_eq!(r.header("retry-after"), Some("1"));
    assert!(asked.elapsed() < std::time::Duration::from_millis(500));
    let statuses: Vec<u16> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(statuses, [200; 4]);
    let stats = c.get("/.well-known/spin/stats", None).expect(200);
    assert_eq!(stats["components"]["probe"]["queue"]["rejected"], 1);
    // And with room again, a request is served.
    c.get("/probe/hold/0", None).expect(200);
}
