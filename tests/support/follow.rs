//! Traffic for the delivery tests: stream readers that behave as EventSource clients do across
//! reconnections, writers that create toward them, and the check that what each reader got is
//! exactly what was acknowledged.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::{Client, Sse, SseEvent, SseMsg, agent};

/// What [`follow`] read.
pub struct Followed {
    /// Every event, in the order it arrived.
    pub events: Vec<SseEvent>,
    /// How many stream requests it made.
    pub connections: usize,
    /// The longest time from the end of a stream (or a failed request) to the ready frame of the
    /// next one: how long the client was not streaming.
    pub longest_gap: Duration,
}

/// Reads `agent`'s stream across reconnections, as an EventSource client would: every time the
/// stream ends it waits the last `retry:` hint it got, then reconnects with its last id — the
/// `n`th connection to `bases[n % len]` as the list is at that moment (one address for a host,
/// several to move between nodes). Returns once `done` is set and the stream has been quiet for
/// longer than the log's hole grace period.
pub fn follow(
    bases: Arc<Mutex<Vec<String>>>,
    agent: String,
    token: String,
    done: Arc<AtomicBool>,
) -> std::thread::JoinHandle<Followed> {
    std::thread::spawn(move || {
        let mut got: Vec<SseEvent> = Vec::new();
        // From the start of the log: the writers may already be running when the reader connects.
        let mut last = Some("0".to_string());
        let mut connections = 0;
        let mut quiet_since = None;
        let mut retry = Duration::from_millis(1000);
        let mut ended: Option<Instant> = None;
        let mut longest_gap = Duration::ZERO;
        loop {
            let base = {
                let bases = bases.lock().unwrap();
                bases[connections % bases.len()].clone()
            };
            let s = Sse::open(&base, &agent, &token, last.as_deref(), "");
            connections += 1;
            let opened = Instant::now();
            let (mut status_ok, mut ready) = (false, false);
            loop {
                // A stream that answered 200 must open with its ready frame promptly.
                assert!(
                    !status_ok || ready || opened.elapsed() < Duration::from_secs(5),
                    "a stream answered 200 but sent no ready frame within 5 s"
                );
                // Every stream request is answered: one that stalls is a defect, not a wait.
                assert!(
                    status_ok || opened.elapsed() < Duration::from_secs(5),
                    "{agent}: a stream request went unanswered for 5 s"
                );
                match s.next(Duration::from_millis(300)) {
                    Some(SseMsg::Event(e)) if e.event == "ready" => {
                        ready = true;
                        if let Some(t) = ended.take() {
                            longest_gap = longest_gap.max(t.elapsed());
                        }
                        assert_eq!(
                            Some(&e.id),
                            last.as_ref(),
                            "the stream resumes exactly where the client left off"
                        );
                    }
                    Some(SseMsg::Event(e)) => {
                        assert!(e.event.starts_with("elicitation."), "{e:?}");
                        last = Some(e.id.clone());
                        got.push(e);
                        quiet_since = None;
                    }
                    Some(SseMsg::Status(200)) => status_ok = true,
                    Some(SseMsg::Status(s)) => panic!("status {s}"),
                    Some(SseMsg::Closed) => break,
                    // Quiet only counts on an open stream (one that sent its ready frame).
                    None => {
                        if done.load(Ordering::SeqCst) && ready {
                            let q = *quiet_since.get_or_insert_with(Instant::now);
                            // Longer than the log's hole grace period, so a sealed hole is passed.
                            if q.elapsed() > Duration::from_secs(4) {
                                return Followed {
                                    events: got,
                                    connections,
                                    longest_gap,
                                };
                            }
                        }
                    }
                }
            }
            ended.get_or_insert_with(Instant::now);
            if let Some(r) = s.retry() {
                retry = r;
            }
            std::thread::sleep(retry);
        }
    })
}

/// Checks that `events` hold every acknowledged id once, in strictly increasing sequence; `gap_free`
/// also demands consecutive numbers (a killed writer's number may be sealed and skipped).
pub fn check_exactly_once_in_order(
    events: &[SseEvent],
    acknowledged: &BTreeSet<String>,
    gap_free: bool,
) {
    let seqs: Vec<i64> = events.iter().map(SseEvent::seq).collect();
    assert!(seqs.windows(2).all(|w| w[1] > w[0]), "in order: {seqs:?}");
    if gap_free {
        assert!(
            seqs.windows(2).all(|w| w[1] == w[0] + 1),
            "gap-free: {seqs:?}"
        );
    }
    let ids: Vec<String> = events
        .iter()
        .map(|e| e.json()["elicitation"]["id"].as_str().unwrap().to_string())
        .collect();
    let distinct: BTreeSet<String> = ids.iter().cloned().collect();
    assert_eq!(distinct.len(), ids.len(), "no event twice");
    let missing: Vec<&String> = acknowledged.difference(&distinct).collect();
    assert!(
        missing.is_empty(),
        "every acknowledged create was delivered; missing {missing:?}; received {seqs:?}"
    );
}

/// Writers creating elicitations toward some agents, each followed by a reader, until stopped.
pub struct Traffic {
    stop: Arc<AtomicBool>,
    done: Arc<AtomicBool>,
    writers: Vec<std::thread::JoinHandle<Vec<(String, String)>>>,
    readers: Vec<(String, std::thread::JoinHandle<Followed>)>,
}

impl Traffic {
    /// A [`follow`]er of each of `agents` through `read_from`, and `writers` writers creating
    /// toward them in turn, every 20 ms, writer `i` through `write_to[i % len]` as the list is at
    /// each request. `c` mints the tokens.
    pub fn start(
        c: &Client,
        agents: &[String],
        read_from: &Arc<Mutex<Vec<String>>>,
        writers: usize,
        write_to: &Arc<Mutex<Vec<String>>>,
    ) -> Self {
        let (stop, done) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicBool::new(false)),
        );
        let readers = agents
            .iter()
            .map(|a| {
                let f = follow(read_from.clone(), a.clone(), c.token(a), done.clone());
                (a.clone(), f)
            })
            .collect();
        let writers = (0..writers)
            .map(|i| {
                let (to, stop, bases) = (agents.to_vec(), stop.clone(), write_to.clone());
                let t = c.token(&agent(&format!("writer{i}")));
                std::thread::spawn(move || write(i, &bases, &to, &t, &stop))
            })
            .collect();
        Self {
            stop,
            done,
            writers,
            readers,
        }
    }

    /// Stops the writers and waits until every reader has read everything; returns what each
    /// reader got, with the ids acknowledged to the writers for its agent.
    pub fn finish(self) -> Vec<(String, Followed, BTreeSet<String>)> {
        self.stop.store(true, Ordering::SeqCst);
        let acknowledged: Vec<(String, String)> = self
            .writers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect();
        self.done.store(true, Ordering::SeqCst);
        self.readers
            .into_iter()
            .map(|(a, r)| {
                let mine = acknowledged
                    .iter()
                    .filter(|(to, _)| *to == a)
                    .map(|(_, id)| id.clone())
                    .collect();
                (a, r.join().unwrap(), mine)
            })
            .collect()
    }
}

/// Writer `i`'s loop: returns the (addressee, id) of each create answered 201. A create cut by a
/// killed host is not acknowledged (it may or may not have committed).
fn write(
    i: usize,
    bases: &Mutex<Vec<String>>,
    to: &[String],
    token: &str,
    stop: &AtomicBool,
) -> Vec<(String, String)> {
    let mut acknowledged = Vec::new();
    let mut n = i;
    let mut client: Option<Client> = None;
    while !stop.load(Ordering::SeqCst) {
        let base = {
            let bases = bases.lock().unwrap();
            bases[i % bases.len()].clone()
        };
        let c = match client.take() {
            Some(c) if c.base == base => c,
            _ => Client::new(&base),
        };
        let addressee = &to[n % to.len()];
        n += 1;
        let body = json!({ "to": addressee, "message": "m" })
            .to_string()
            .into_bytes();
        match c.try_send(
            "POST",
            "/v1/elicitations",
            Some(token),
            Some(("application/json", body)),
            &[],
        ) {
            Ok(r) if r.status == 201 => acknowledged.push((
                addressee.clone(),
                r.json()["id"].as_str().unwrap().to_string(),
            )),
            _ => std::thread::sleep(Duration::from_millis(50)),
        }
        client = Some(c);
        std::thread::sleep(Duration::from_millis(20));
    }
    acknowledged
}
