//! Push delivery: each agent's event log as a Server-Sent Events stream, read with a real SSE client
//! (`eventsource-stream`): live delivery, resumption, the seam when a stream ends, reset for a lost
//! cursor, expiry pushed once, and recovery after the host is killed.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use e2e::{Host, Sse, SseMsg, Traffic, agent, check_exactly_once_in_order, shared};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(10);

#[test]
fn both_parties_are_pushed_every_kind_of_event() {
    let c = shared().client();
    let (a, b) = (agent("req"), agent("resp"));
    let (ta, tb) = (c.token(&a), c.token(&b));
    let sa = c.events(&a, &ta, None);
    let sb = c.events(&b, &tb, None);
    assert_eq!((sa.expect_open(), sb.expect_open()), (0, 0));

    let id = c.ask(&ta, &b, json!({}));
    let created = sb.expect_event("elicitation.created", &id);
    assert_eq!(created.seq(), 1);
    c.answer(&tb, &id, &json!({ "action": "decline" }))
        .expect(200);
    assert_eq!(
        sb.expect_event("elicitation.answered", &id).json()["elicitation"]["status"],
        "declined"
    );
    assert_eq!(sa.expect_event("elicitation.answered", &id).seq(), 1);

    let w = c.ask(&ta, &b, json!({}));
    sb.expect_event("elicitation.created", &w);
    c.post(
        &format!("/v1/elicitations/{w}/withdraw"),
        Some(&ta),
        &json!({}),
    )
    .expect(200);
    sb.expect_event("elicitation.withdrawn", &w);
    sa.expect_event("elicitation.withdrawn", &w);

    // Nobody touches this one: the open streams notice the deadline and push the expiry, once.
    let x = c.ask(&ta, &b, json!({ "ttlSeconds": 1 }));
    sb.expect_event("elicitation.created", &x);
    let before = Instant::now();
    sb.expect_event("elicitation.expired", &x);
    sa.expect_event("elicitation.expired", &x);
    assert!(before.elapsed() < Duration::from_secs(5));
    // Exactly once: nothing else arrives on either stream.
    for s in [&sa, &sb] {
        match s.next(Duration::from_millis(1500)) {
            None => {}
            Some(SseMsg::Event(e)) => panic!("unexpected extra event {e:?}"),
            Some(other) => panic!("stream ended: {other:?}"),
        }
    }
    let log = c
        .get(&format!("/v1/agents/{a}/messages?timeout=0"), Some(&ta))
        .expect(200);
    let expired = log["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["eventType"] == "elicitation.expired")
        .count();
    assert_eq!(expired, 1);
}

#[test]
fn streams_resume_by_last_event_id_and_by_after() {
    let c = shared().client();
    let (a, b) = (agent("req"), agent("resp"));
    let (ta, tb) = (c.token(&a), c.token(&b));
    let ids: Vec<String> = (0..5).map(|_| c.ask(&ta, &b, json!({}))).collect();
    // Last-Event-ID: 2 → events 3, 4, 5, in order, then live.
    let s = c.events(&b, &tb, Some("2"));
    assert_eq!(s.expect_open(), 2);
    for (seq, id) in (3..=5).zip(&ids[2..]) {
        assert_eq!(s.expect_event("elicitation.created", id).seq(), seq);
    }
    let live = c.ask(&ta, &b, json!({}));
    assert_eq!(s.expect_event("elicitation.created", &live).seq(), 6);
    // ?after= for clients that cannot set headers.
    let s = Sse::open(&c.base, &b, &tb, None, "?after=4");
    assert_eq!(s.expect_open(), 4);
    assert_eq!(s.expect_event("elicitation.created", &ids[4]).seq(), 5);
    assert_eq!(s.expect_event("elicitation.created", &live).seq(), 6);
    // Without a cursor the stream starts at the head: only new events.
    let s = c.events(&b, &tb, None);
    assert_eq!(s.expect_open(), 6);
}

#[test]
fn a_cursor_outside_the_retained_history_gets_an_explicit_reset() {
    let c = shared().client();
    let (a, b) = (agent("req"), agent("resp"));
    let (ta, tb) = (c.token(&a), c.token(&b));
    c.ask(&ta, &b, json!({}));
    // A cursor ahead of the log (e.g. from a store that was recreated).
    let s = c.events(&b, &tb, Some("99"));
    assert_eq!(s.expect_open(), 1);
    let reset = s.next_event(WAIT).expect("reset");
    assert_eq!((reset.event.as_str(), reset.seq()), ("reset", 1));
    assert_eq!(reset.json()["requested"], 99);
    // A cursor older than the retained history (the log keeps its newest 1000 events).
    let writers: Vec<_> = (0..8)
        .map(|_| {
            let (c, ta, b) = (c.clone(), ta.clone(), b.clone());
            std::thread::spawn(move || (0..126).for_each(|_| drop(c.ask(&ta, &b, json!({})))))
        })
        .collect();
    writers.into_iter().for_each(|w| w.join().unwrap());
    let s = c.events(&b, &tb, Some("3"));
    assert_eq!(s.expect_open(), 1009);
    let reset = s.next_event(WAIT).expect("reset");
    assert_eq!((reset.event.as_str(), reset.seq()), ("reset", 1009));
    // A cursor still inside the history resumes normally.
    let s = c.events(&b, &tb, Some("1005"));
    assert_eq!(s.expect_open(), 1005);
    assert_eq!(s.next_event(WAIT).expect("event").seq(), 1006);
}

#[test]
fn only_the_agent_itself_may_open_its_stream() {
    let c = shared().client();
    let (a, b) = (agent("a"), agent("b"));
    let ta = c.token(&a);
    let r = c.get(&format!("/v1/agents/{b}/events"), Some(&ta));
    r.expect_problem(403);
    c.get(&format!("/v1/agents/{b}/events"), None)
        .expect_problem(401);
    c.get(&format!("/v1/agents/{a}/events?after=x"), Some(&ta))
        .expect_problem(400);
}

#[test]
fn reconnecting_at_the_stream_seam_loses_and_repeats_nothing() {
    let host = Host::start(
        &e2e::repo().join("spin.toml"),
        &["--variable", "stream_max_seconds=1"],
    );
    let c = host.client();
    let base = Arc::new(Mutex::new(vec![c.base.clone()]));
    let traffic = Traffic::start(&c, &[agent("busy")], &base, 8, &base);
    std::thread::sleep(Duration::from_millis(3500));
    for (_, f, acknowledged) in traffic.finish() {
        assert!(
            f.connections >= 3,
            "the stream ended on its own and was resumed ({} connections)",
            f.connections
        );
        check_exactly_once_in_order(&f.events, &acknowledged, true);
        assert_eq!(f.events.len(), acknowledged.len());
    }
}

#[test]
fn after_a_kill_9_every_committed_event_arrives_exactly_once() {
    let mut host = Host::app();
    let c = host.client();
    let agents: Vec<String> = (0..3).map(|i| agent(&format!("victim{i}"))).collect();
    let base = Arc::new(Mutex::new(vec![c.base.clone()]));
    let traffic = Traffic::start(&c, &agents, &base, 4, &base);
    std::thread::sleep(Duration::from_millis(1500));
    host.restart(); // SIGKILL, then start again on the same state directory
    *base.lock().unwrap() = vec![host.base.clone()];
    std::thread::sleep(Duration::from_millis(1500));
    let results = traffic.finish();
    let acknowledged: usize = results.iter().map(|(_, _, mine)| mine.len()).sum();
    assert!(
        acknowledged > 20,
        "writers made progress before and after the kill"
    );
    for (a, f, mine) in results {
        assert!(f.connections >= 2, "{a} reconnected after the kill");
        check_exactly_once_in_order(&f.events, &mine, false);
    }
}

/// A host that runs `component` as one instance holding up to 64 requests, as `scripts/serve` does.
fn one_instance_of(component: &str) -> Host {
    let reuse = format!("{component}=64");
    let cap = format!("{component}=1");
    Host::start(
        &e2e::repo().join("spin.toml"),
        &[
            "--component-concurrent-reuse",
            &reuse,
            "--component-max-instances",
            &cap,
        ],
    )
}

#[test]
fn with_one_events_instance_every_stream_is_held_and_served_by_it() {
    // Streams opened together queue for room in the one instance.
    let host = one_instance_of("events");
    let c = host.client();
    let a = agent("asker");
    let ta = c.token(&a);
    let peers: Vec<(String, String)> = (0..24)
        .map(|i| {
            let b = agent(&format!("held{i}"));
            let t = c.token(&b);
            (b, t)
        })
        .collect();
    let streams: Vec<Sse> = peers.iter().map(|(b, t)| c.events(b, t, None)).collect();
    for s in &streams {
        assert_eq!(s.expect_open(), 0);
    }
    let stats = c.get("/.well-known/spin/stats", None).expect(200);
    assert_eq!(stats["components"]["events"]["instancesLive"], 1, "{stats}");
    assert_eq!(
        stats["components"]["events"]["instancesStarted"], 1,
        "{stats}"
    );
    assert!(stats["components"]["events"]["requests"].as_u64() >= Some(24));
    for ((b, _), s) in peers.iter().zip(&streams) {
        let id = c.ask(&ta, b, json!({}));
        assert_eq!(s.expect_event("elicitation.created", &id).seq(), 1);
    }
    let after = c.get("/.well-known/spin/stats", None).expect(200);
    let read = |v: &Value| v["keyValue"]["keysRead"].as_u64().unwrap_or(0);
    let written = |v: &Value| v["keyValue"]["keysWritten"].as_u64().unwrap_or(0);
    assert!(read(&after) > read(&stats) && written(&after) > written(&stats));
    assert_eq!(after["components"]["events"]["instancesStarted"], 1);
}

#[test]
fn waiting_reads_in_one_instance_share_its_watcher_and_all_wake() {
    let host = one_instance_of("subscribe");
    let c = host.client();
    let (a, b) = (agent("waiter"), agent("answerer"));
    let (ta, tb) = (c.token(&a), c.token(&b));
    let ids: Vec<String> = (0..12).map(|_| c.ask(&ta, &b, json!({}))).collect();
    let expiring = c.ask(&ta, &b, json!({ "ttlSeconds": 1 }));
    let waits: Vec<_> = ids
        .iter()
        .chain([&expiring])
        .map(|id| {
            let (c, ta, id) = (c.clone(), ta.clone(), id.clone());
            std::thread::spawn(move || {
                let started = Instant::now();
                let e = c
                    .get(&format!("/v1/elicitations/{id}?wait=20"), Some(&ta))
                    .expect(200);
                (
                    e["status"].as_str().unwrap_or("").to_string(),
                    started.elapsed(),
                )
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    for id in &ids {
        c.answer(&tb, id, &json!({ "action": "decline" }))
            .expect(200);
    }
    let results: Vec<(String, Duration)> = waits.into_iter().map(|w| w.join().unwrap()).collect();
    for (status, took) in &results[..ids.len()] {
        assert_eq!(status, "declined");
        assert!(
            *took < Duration::from_secs(10),
            "woken by the answer, not the limit"
        );
    }
    let (status, took) = &results[ids.len()];
    assert_eq!(status, "expired");
    assert!(
        *took < Duration::from_secs(10),
        "woken at the deadline, not the limit"
    );
    let stats = c.get("/.well-known/spin/stats", None).expect(200);
    assert_eq!(
        stats["components"]["subscribe"]["instancesStarted"], 1,
        "{stats}"
    );
}

/// A stream whose client stopped reading is cut, with its cause counted by the host; the streams
/// of the same instance are not held up meanwhile.
#[test]
fn a_client_that_stops_reading_is_cut_and_nobody_else_waits_for_it() {
    use std::io::{Read, Write};
    let host = Host::app();
    let c = host.client();
    let (a, slow, fine) = (agent("req"), agent("slow"), agent("fine"));
    let (ta, ts, tf) = (c.token(&a), c.token(&slow), c.token(&fine));
    // The slow client: a raw connection that reads the response head and then nothing more.
    let addr = host.base.trim_start_matches("http://").to_string();
    let mut raw = std::net::TcpStream::connect(&addr).unwrap();
    write!(
        raw,
        "GET /v1/agents/{slow}/events HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {ts}\r\n\r\n"
    )
    .unwrap();
    let mut head = [0u8; 256];
    let n = raw.read(&mut head).unwrap();
    assert!(String::from_utf8_lossy(&head[..n]).starts_with("HTTP/1.1 200"));
    let sf = c.events(&fine, &tf, None);
    sf.expect_open();
    // Several megabytes of events for the slow one fill every buffer between it and the host.
    let message = "x".repeat(3900);
    let writers: Vec<_> = (0..4)
        .map(|_| {
            let (c, ta, slow, message) = (c.clone(), ta.clone(), slow.clone(), message.clone());
            std::thread::spawn(move || {
                for _ in 0..400 {
                    c.ask(&ta, &slow, json!({ "message": message }));
                }
            })
        })
        .collect();
    // Meanwhile the other stream of the same instance gets its events at once.
    for _ in 0..5 {
        let sent = Instant::now();
        let id = c.ask(&ta, &fine, json!({}));
        sf.expect_event("elicitation.created", &id);
        assert!(
            sent.elapsed() < Duration::from_millis(500),
            "{:?}",
            sent.elapsed()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    for w in writers {
        w.join().unwrap();
    }
    // The slow client reads again: it finds its stream ended by the host (the connection closes
    // with no last chunk: the body failed), and the host counted why.
    raw.set_read_timeout(Some(WAIT)).unwrap();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        match raw.read(&mut buf) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => panic!("the slow stream did not end: {e}"),
        }
    }
    let stats = c.get("/.well-known/spin/stats", None).expect(200);
    let ends = &stats["components"]["events"]["bodyEnds"];
    let cuts: u64 = ends
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| k.contains("event stream cut"))
        .map(|(_, v)| v.as_u64().unwrap())
        .sum();
    assert_eq!(cuts, 1, "{ends}");
    // The fine stream is still open and live.
    let id = c.ask(&ta, &fine, json!({}));
    sf.expect_event("elicitation.created", &id);
}

/// One stream more than `max_streams_per_agent` ends that agent's oldest within 2 s, however many
/// it opens, and touches nobody else's; the host counts why it ended.
#[test]
fn a_stream_past_the_agents_limit_ends_its_oldest() {
    let host = Host::start(
        &e2e::repo().join("spin.toml"),
        &["--variable", "max_streams_per_agent=2"],
    );
    let c = host.client();
    let (a, b) = (agent("many"), agent("other"));
    let (ta, tb) = (c.token(&a), c.token(&b));
    let sb = c.events(&b, &tb, None);
    sb.expect_open();
    let mut open: Vec<Sse> = Vec::new();
    for n in 0..4 {
        let s = c.events(&a, &ta, None);
        s.expect_open();
        open.push(s);
        if n >= 2 {
            // The one opened two before this one ends, within 2 s.
            let oldest = open.remove(0);
            let opened = Instant::now();
            loop {
                match oldest.next(Duration::from_millis(100)) {
                    Some(SseMsg::Closed) => break,
                    _ => assert!(
                        opened.elapsed() < Duration::from_secs(2),
                        "stream {} of {a} is still open past the limit",
                        n - 2
                    ),
                }
            }
        }
    }
    // The two newest and the other agent's stream are open and live.
    let id = c.ask(&tb, &a, json!({}));
    for s in &open {
        s.expect_event("elicitation.created", &id);
    }
    let id = c.ask(&ta, &b, json!({}));
    sb.expect_event("elicitation.created", &id);
    let stats = c.get("/.well-known/spin/stats", None).expect(200);
    let ends = &stats["components"]["events"]["bodyEnds"];
    let replaced = ends
        .as_object()
        .unwrap()
        .iter()
        .find(|(k, _)| k.contains("max_streams_per_agent"))
        .map(|(_, v)| v.as_u64().unwrap());
    assert_eq!(replaced, Some(2), "{ends}");
}

/// Every pending request of an agent is pushed at its expiry, however many there are and whether
/// or not a stream was open when they were asked (the hubs' expiry pass reads no lists).
#[test]
fn every_pending_request_is_pushed_at_its_expiry_however_many() {
    let c = shared().client();
    let (a, b) = (agent("many-asks"), agent("many-pending"));
    let (ta, tb) = (c.token(&a), c.token(&b));
    let ids: std::collections::BTreeSet<String> = (0..150)
        .map(|_| c.ask(&ta, &b, json!({ "ttlSeconds": 3 })))
        .collect();
    // Both streams open after every request was made, at the head of their logs.
    let (sa, sb) = (c.events(&a, &ta, None), c.events(&b, &tb, None));
    sa.expect_open();
    sb.expect_open();
    for s in [&sa, &sb] {
        let mut expired = std::collections::BTreeSet::new();
        let deadline = Instant::now() + WAIT;
        while expired.len() < ids.len() && Instant::now() < deadline {
            if let Some(e) = s.next_event(Duration::from_millis(200))
                && e.event == "elicitation.expired"
            {
                let id = e.json()["elicitation"]["id"].as_str().unwrap().to_string();
                assert!(expired.insert(id), "an expiry pushed twice");
            }
        }
        assert_eq!(expired, ids);
    }
}
