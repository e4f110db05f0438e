//! Scale-out: several `spin-local` nodes serving the same `spin.toml` over one Redis, behind HAProxy
//! configured by `deploy/haproxy.cfg` — as `scripts/serve --nodes N` runs them. An agent may create
//! on any node and stream from any other; a stream may move between nodes; a node may die or join
//! while traffic flows; and an idle node's cost to the store does not grow with its streams.
//!
//! These tests always run on Redis (their own server), whatever `E2E_BACKEND` says.

use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use e2e::{Client, Cluster, Host, Sse, Traffic, agent, check_exactly_once_in_order};
use serde_json::{Value, json};

/// The idle-cost measurement runs alone: the other tests' traffic on the same two cores would slow
/// its idle nodes' polling in one window and not the other. Every other test holds this shared.
static MACHINE: RwLock<()> = RwLock::new(());

fn sharing_the_machine() -> std::sync::RwLockReadGuard<'static, ()> {
    MACHINE.read().unwrap_or_else(|e| e.into_inner())
}

#[test]
fn an_agent_asks_on_one_node_and_is_answered_from_another() {
    let _machine = sharing_the_machine();
    let cluster = Cluster::start(2, &[]);
    let (n0, n1) = (cluster.nodes[0].client(), cluster.nodes[1].client());
    let (a, b) = (agent("asker"), agent("answerer"));
    let (ta, tb) = (n0.token(&a), n1.token(&b));
    let sa = n1.events(&a, &ta, None);
    let sb = n0.events(&b, &tb, None);
    assert_eq!((sa.expect_open(), sb.expect_open()), (0, 0));

    let id = n1.ask(
        &ta,
        &b,
        json!({ "requestedSchema": {
            "type": "object",
            "properties": { "ok": { "type": "boolean" } },
            "required": ["ok"],
        }}),
    );
    sb.expect_event("elicitation.created", &id);
    n0.answer(
        &tb,
        &id,
        &json!({ "action": "accept", "content": { "ok": true } }),
    )
    .expect(200);
    let answered = sa.expect_event("elicitation.answered", &id);
    assert_eq!(
        answered.json()["elicitation"]["response"]["content"]["ok"],
        true
    );
    // The second answer loses on any node, and every node and the balancer see the same record.
    n1.answer(&tb, &id, &json!({ "action": "decline" }))
        .expect_problem(409);
    for c in [&n0, &n1, &cluster.client()] {
        let e = c
            .get(&format!("/v1/elicitations/{id}"), Some(&ta))
            .expect(200);
        assert_eq!(e["status"], "accepted");
    }
    let inbox = cluster
        .client()
        .get(
            &format!("/v1/agents/{b}/elicitations?role=inbox"),
            Some(&tb),
        )
        .expect(200);
    assert_eq!(inbox["items"][0]["id"], id, "{inbox}");
}

#[test]
fn a_stream_that_moves_between_nodes_misses_and_repeats_nothing() {
    let _machine = sharing_the_machine();
    // Streams end every second; the reader's next connection goes to the other node, and the
    // writers are split between the nodes.
    let cluster = Cluster::start(2, &["--variable", "stream_max_seconds=1"]);
    let nodes = Arc::new(Mutex::new(
        cluster.nodes.iter().map(|n| n.base.clone()).collect(),
    ));
    let traffic = Traffic::start(&cluster.client(), &[agent("mover")], &nodes, 8, &nodes);
    std::thread::sleep(Duration::from_millis(3500));
    for (_, f, acknowledged) in traffic.finish() {
        assert!(
            f.connections >= 3,
            "the stream moved between the nodes ({} connections)",
            f.connections
        );
        check_exactly_once_in_order(&f.events, &acknowledged, true);
        assert_eq!(f.events.len(), acknowledged.len(), "nothing else arrived");
    }
}

/// How many stream requests `node` has been sent.
fn streams_on(node: &Host) -> u64 {
    let stats = node.client().get("/.well-known/spin/stats", None);
    stats.json()["components"]["events"]["requests"]
        .as_u64()
        .unwrap_or(0)
}

#[test]
fn when_a_node_is_killed_its_clients_stream_again_through_the_balancer_and_lose_nothing() {
    let _machine = sharing_the_machine();
    let mut cluster = Cluster::start(2, &[]);
    let balancer = Arc::new(Mutex::new(vec![cluster.balancer.base.clone()]));
    let agents: Vec<String> = (0..6).map(|i| agent(&format!("reader{i}"))).collect();
    let traffic = Traffic::start(&cluster.client(), &agents, &balancer, 4, &balancer);
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        cluster.nodes.iter().all(|n| streams_on(n) > 0),
        "the balancer spread the streams over both nodes"
    );
    cluster.nodes[0].kill();
    std::thread::sleep(Duration::from_millis(2500));
    let results = traffic.finish();
    let acknowledged: usize = results.iter().map(|(_, _, mine)| mine.len()).sum();
    assert!(
        acknowledged > 40,
        "writers made progress through the balancer"
    );
    let mut moved = 0;
    for (a, f, mine) in results {
        moved += usize::from(f.connections > 1);
        // An EventSource client waits the stream's `retry:` hint (1 s) after an unplanned end.
        assert!(
            f.longest_gap < Duration::from_secs(2),
            "{a} was streaming again within 2 s of losing its node (took {:?})",
            f.longest_gap
        );
        check_exactly_once_in_order(&f.events, &mine, false);
    }
    assert!(moved > 0, "some streams were on the killed node and moved");
}

#[test]
fn a_node_added_while_traffic_flows_takes_streams_and_requests_at_once() {
    let _machine = sharing_the_machine();
    let mut cluster = Cluster::start(2, &["--variable", "stream_max_seconds=1"]);
    let c = cluster.client();
    let balancer = Arc::new(Mutex::new(vec![cluster.balancer.base.clone()]));
    let agents: Vec<String> = (0..4).map(|i| agent(&format!("reader{i}"))).collect();
    let traffic = Traffic::start(&c, &agents, &balancer, 4, &balancer);
    std::thread::sleep(Duration::from_millis(1000));
    let added = cluster.add_node();
    // The new node serves at once: a stream on it is pushed what another node creates.
    let (x, y) = (agent("x"), agent("y"));
    let (tx, ty) = (c.token(&x), c.token(&y));
    let s = cluster.nodes[added].client().events(&y, &ty, None);
    assert_eq!(s.expect_open(), 0);
    let id = cluster.nodes[0].client().ask(&tx, &y, json!({}));
    s.expect_event("elicitation.created", &id);
    std::thread::sleep(Duration::from_millis(2500));
    let results = traffic.finish();
    let name = format!("n{added}");
    let sent = cluster
        .balancer
        .servers()
        .iter()
        .find(|s| s.name == name)
        .map_or(0, |s| s.sessions);
    assert!(sent > 0, "the balancer sent the new node traffic");
    assert!(
        streams_on(&cluster.nodes[added]) > 1,
        "streams reconnecting through the balancer reached the new node"
    );
    for (_, f, mine) in results {
        check_exactly_once_in_order(&f.events, &mine, true);
    }
}

/// Store calls one node made per second over `window` (its host's own counters).
fn store_calls_per_second(node: &Client, window: Duration) -> f64 {
    let calls = |v: &Value| v["keyValue"]["calls"].as_u64().unwrap_or(0);
    let before = calls(&node.get("/.well-known/spin/stats", None).expect(200));
    let started = Instant::now();
    std::thread::sleep(window);
    let after = calls(&node.get("/.well-known/spin/stats", None).expect(200));
    (after - before) as f64 / started.elapsed().as_secs_f64()
}

#[test]
fn an_idle_node_costs_the_store_the_same_whatever_its_streams() {
    let _alone = MACHINE.write().unwrap_or_else(|e| e.into_inner());
    // Streams that outlast the measurement, so reconnecting is not counted as idling.
    let cluster = Cluster::start(2, &["--variable", "stream_max_seconds=600"]);
    let c = cluster.client();
    let nodes: Vec<Client> = cluster.nodes.iter().map(|n| n.client()).collect();
    let open = |count: usize| -> Vec<Sse> {
        let streams: Vec<Sse> = (0..count)
            .map(|i| {
                let a = agent(&format!("idle{i}"));
                // Half on each node.
                nodes[i % 2].events(&a, &c.token(&a), None)
            })
            .collect();
        for s in &streams {
            assert_eq!(s.expect_open(), 0);
        }
        streams
    };
    let window = Duration::from_secs(5);
    let mut streams = open(4);
    std::thread::sleep(Duration::from_secs(1));
    let few: Vec<f64> = nodes
        .iter()
        .map(|n| store_calls_per_second(n, window))
        .collect();
    streams.extend(open(400));
    std::thread::sleep(Duration::from_secs(1));
    let redis_before = cluster.redis.commands();
    let started = Instant::now();
    let many: Vec<f64> = nodes
        .iter()
        .map(|n| store_calls_per_second(n, window))
        .collect();
    let redis_rate = (cluster.redis.commands() - redis_before) as f64
        / started.elapsed().as_secs_f64()
        / nodes.len() as f64;
    eprintln!(
        "store calls/s per idle node: {few:.0?} with 2 streams each, {many:.0?} with 202 each; \
         Redis commands/s per node: {redis_rate:.0}"
    );
    for (f, m) in few.iter().zip(&many) {
        assert!(
            *m <= f * 1.05 + 2.0,
            "an idle node's store calls grew with its streams: {f:.1}/s with 2, {m:.1}/s with 202"
        );
    }
    drop(streams);
}

/// The create limits are one count across nodes (the store's increments), and so is the limit of
/// streams per agent: creates racing on both nodes get exactly the limit through, and a third
/// stream on the other node ends the agent's oldest.
#[test]
fn limits_hold_across_nodes() {
    let _machine = sharing_the_machine();
    let cluster = Cluster::start(
        2,
        &[
            "--variable",
            "create_rate_per_minute=1000000",
            "--variable",
            "max_pending_per_agent=6",
            "--variable",
            "max_streams_per_agent=2",
        ],
    );
    let (n0, n1) = (cluster.nodes[0].client(), cluster.nodes[1].client());
    let b = agent("crowded");
    let tb = n0.token(&b);
    let askers: Vec<(Client, String)> = (0..16)
        .map(|i| {
            let node = if i % 2 == 0 { &n0 } else { &n1 };
            (node.clone(), node.token(&agent("asker")))
        })
        .collect();
    let threads: Vec<_> = askers
        .into_iter()
        .map(|(c, t)| {
            let b = b.clone();
            std::thread::spawn(move || {
                c.post(
                    "/v1/elicitations",
                    Some(&t),
                    &json!({ "to": b, "message": "room?" }),
                )
                .status
            })
        })
        .collect();
    let statuses: Vec<u16> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        6,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        10,
        "{statuses:?}"
    );
    let inbox = n1
        .get(
            &format!("/v1/agents/{b}/elicitations?role=inbox"),
            Some(&tb),
        )
        .expect(200);
    assert_eq!(inbox["items"].as_array().map(Vec::len), Some(6));
    // Streams: two on node 0, then one on node 1 ends the first.
    let first = n0.events(&b, &tb, None);
    first.expect_open();
    let second = n0.events(&b, &tb, None);
    second.expect_open();
    let third = n1.events(&b, &tb, None);
    third.expect_open();
    let opened = Instant::now();
    loop {
        match first.next(Duration::from_millis(100)) {
            Some(e2e::SseMsg::Closed) => break,
            _ => assert!(
                opened.elapsed() < Duration::from_secs(2),
                "the oldest stream is still open"
            ),
        }
    }
    // The two newest, one on each node, are live: b withdraws a question of its own.
    let c = agent("elsewhere");
    let id = n1.ask(&tb, &c, json!({}));
    n1.post(
        &format!("/v1/elicitations/{id}/withdraw"),
        Some(&tb),
        &json!({}),
    )
    .expect(200);
    for s in [&second, &third] {
        s.expect_event("elicitation.withdrawn", &id);
    }
}
