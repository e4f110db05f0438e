//! The key-value backend under the app: Redis, the store a scaled-out Spin app shares, going away
//! and coming back while the app serves.

use std::collections::BTreeMap;
use std::time::Duration;

use e2e::{Host, agent, eventually};
use serde_json::json;

/// Redis is killed (SIGKILL) while the app serves and started again on its data two seconds
/// later: the app serves again by itself, with no restart of its own; every create it
/// acknowledged (before, during and after the outage) is there, and the addressee's stream gets
/// each of their events exactly once (Redis runs with `appendonly yes` and `appendfsync always`).
#[test]
fn redis_restarts_and_nothing_acknowledged_is_lost() {
    let mut host = Host::app_on_redis();
    let c = host.client();
    let (alice, bob) = (agent("alice"), agent("bob"));
    let (ta, tb) = (c.token(&alice), c.token(&bob));
    let ask = |msg: String| {
        c.try_send(
            "POST",
            "/v1/elicitations",
            Some(&ta),
            Some((
                "application/json",
                json!({ "to": bob, "message": msg })
                    .to_string()
                    .into_bytes(),
            )),
            &[],
        )
        .ok()
        .filter(|r| r.status == 201)
        .and_then(|r| r.json()["id"].as_str().map(str::to_string))
    };
    let mut acknowledged = Vec::new();
    for i in 0..20 {
        acknowledged.push(ask(format!("before {i}")).expect("created before the crash"));
    }
    let redis = host.redis.as_mut().expect("the host runs on Redis");
    redis.kill();
    // A request made while Redis is down waits for the connection or fails; it is not
    // acknowledged unless its writes reached Redis once it was back.
    let during = std::thread::scope(|s| {
        let during = s.spawn(|| ask("while down".into()));
        std::thread::sleep(Duration::from_secs(2));
        redis.start_again();
        during.join().expect("the request thread")
    });
    acknowledged.extend(during);
    // The app's connection to Redis comes back by itself — on the Redis client's schedule, as on
    // Spin (`crates/spin-local/src/kv/redis_store.rs`): a reconnection that began while the server
    // was down tries again after 1–2 s and then only after 60–120 s, and every call waits for it.
    let back = eventually(Duration::from_secs(150), || ask("after".into()));
    acknowledged.push(back.expect("the app serves again once Redis is back"));
    for i in 0..10 {
        acknowledged.push(ask(format!("after {i}")).expect("created after the restart"));
    }
    for id in &acknowledged {
        c.get(&format!("/v1/elicitations/{id}"), Some(&ta))
            .expect(200);
    }
    // Bob's stream from the start: every acknowledged create exactly once.
    let mut seen: BTreeMap<String, u32> = BTreeMap::new();
    let mut cursor = "0".to_string();
    let all_seen = eventually(Duration::from_secs(60), || {
        let sse = c.events(&bob, &tb, Some(&cursor));
        sse.expect_open();
        while let Some(e) = sse.next_event(Duration::from_secs(3)) {
            if e.event == "elicitation.created" {
                let id = e.json()["elicitation"]["id"]
                    .as_str()
                    .unwrap_or("")
                    .to_string();
                *seen.entry(id).or_default() += 1;
            }
            if e.event != "ready" || e.seq() > 0 {
                cursor = e.id.clone();
            }
            if acknowledged.iter().all(|id| seen.contains_key(id)) {
                return Some(());
            }
        }
        None
    });
    assert!(
        all_seen.is_some(),
        "missing: {:?}",
        acknowledged
            .iter()
            .filter(|id| !seen.contains_key(*id))
            .collect::<Vec<_>>()
    );
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "delivered more than once: {twice:?}");
}
