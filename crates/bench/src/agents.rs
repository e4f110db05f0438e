//! The load generator's agents and what they measure.
//!
//! Each agent holds its event stream (push, floor) or loops on the legacy `wait_for_messages` route
//! (poll), answers (declines) every request it is told of unless it is one of the silent agents, and
//! records on one process clock when each request reached its addressee and when the answer reached
//! the requester. Every request carries a key (`bench-<key>` as its message) that ties the events
//! back to the create that caused them.
//!
//! A streaming agent behaves as an `EventSource` does: it parses the stream itself ([`crate::sse`]),
//! keeps the reconnection time the server sets with `retry:` (every `retry:` field it reads, on
//! any stream; [`DEFAULT_RETRY_MS`] until the first), and whenever a stream ends — a planned end
//! (the app's closing comment, then the end of the body) or a cut (the body ended or failed
//! without that comment, or the request got an HTTP error) — it waits that long and reconnects
//! with `Last-Event-ID` set to the last id it received (the `ready` frame's cursor counts). Each
//! end is counted, planned or cut, with the `retry:` in effect when it came.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use futures::StreamExt;
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::sse;

/// The reconnection time before a server sent any `retry:` (the standard leaves it to the client).
pub const DEFAULT_RETRY_MS: u64 = 1000;

/// The comment by which the app announces a planned end (`: stream ends, reconnect with …`).
const CLOSING_COMMENT: &str = "stream ends";

/// How long any request other than a stream or a long poll may take: a server that stops
/// answering shows as failed requests (`… transport (timeout)`) instead of a run that never ends.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Which server the agents talk to, and how.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Mode {
    /// SSE streams from the app.
    Push,
    /// The app's legacy polling route.
    Poll,
    /// The native in-memory SSE server.
    Floor,
}

impl Mode {
    /// Parses `push`, `poll` or `floor`.
    pub fn parse(s: &str) -> anyhow::Result<Self> {
        Ok(match s {
            "push" => Self::Push,
            "poll" => Self::Poll,
            "floor" => Self::Floor,
            other => anyhow::bail!("unknown mode {other:?} (push, poll, floor)"),
        })
    }

    /// The name used in reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::Push => "push",
            Self::Poll => "poll",
            Self::Floor => "floor",
        }
    }
}

/// Percentiles of one latency distribution, in milliseconds.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Percentiles {
    /// Samples.
    pub count: u64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest.
    pub max: f64,
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("histogram bounds")
}

impl Percentiles {
    /// From a histogram of microseconds.
    pub fn of(h: &Histogram<u64>) -> Self {
        let ms = |us: u64| us as f64 / 1000.0;
        if h.is_empty() {
            return Self::default();
        }
        Self {
            count: h.len(),
            p50: ms(h.value_at_quantile(0.5)),
            p90: ms(h.value_at_quantile(0.9)),
            p99: ms(h.value_at_quantile(0.99)),
            max: ms(h.max()),
        }
    }
}

/// The distribution as (milliseconds, fraction at or below) points, for CDF plots.
pub fn cdf(h: &Histogram<u64>) -> Vec<(f64, f64)> {
    if h.is_empty() {
        return Vec::new();
    }
    let mut points: Vec<(f64, f64)> = (0..=200)
        .map(|i| f64::from(i) / 200.0)
        .chain([0.995, 0.999])
        .map(|q| (h.value_at_quantile(q) as f64 / 1000.0, q))
        .collect();
    points.sort_by(|a, b| a.1.total_cmp(&b.1));
    points
}

/// What was sent for one key.
#[derive(Debug, Clone)]
struct Sent {
    at: Instant,
    to: usize,
}

/// The latency histograms of one phase of a scenario.
#[derive(Default)]
pub struct PhaseHistograms {
    /// Create sent → addressee's event received.
    pub delivery: Option<Histogram<u64>>,
    /// Create sent → requester's answered event received.
    pub round_trip: Option<Histogram<u64>>,
    /// Create sent → 201 received.
    pub create: Option<Histogram<u64>>,
    /// Deadline → requester's expired event received.
    pub expiry_lateness: Option<Histogram<u64>>,
    /// When the first create of the phase was sent.
    pub first_sent: Option<Instant>,
    /// When the last acknowledgement of a create arrived.
    pub last_ack: Option<Instant>,
    /// When the last first delivery (created event at the addressee) arrived.
    pub last_delivered: Option<Instant>,
    /// When the last first answered event at a requester arrived.
    pub last_answered: Option<Instant>,
}

fn earliest(t: &mut Option<Instant>, at: Instant) {
    *t = Some(t.map_or(at, |f| f.min(at)));
}

fn latest(t: &mut Option<Instant>, at: Instant) {
    *t = Some(t.map_or(at, |f| f.max(at)));
}

fn record(h: &mut Option<Histogram<u64>>, us: u64) {
    let _ = h
        .get_or_insert_with(histogram)
        .record(us.clamp(1, 600_000_000));
}

fn since_us(t: Instant) -> u64 {
    u64::try_from(t.elapsed().as_micros()).unwrap_or(u64::MAX)
}

#[derive(Default)]
struct Inner {
    sent: HashMap<u64, Sent>,
    accepted: HashSet<u64>,
    delivered: HashSet<u64>,
    answered: HashSet<u64>,
    expired: HashSet<u64>,
    duplicates: u64,
    /// Elicitation id → key, and its deadline, for requests that may expire.
    deadlines: HashMap<u64, (String, usize, SystemTime)>,
    phases: BTreeMap<usize, PhaseHistograms>,
    errors: BTreeMap<String, u64>,
    ready: usize,
    /// Last sequence number each agent received (push, poll), to check order.
    last_sequence: HashMap<usize, i64>,
    order_violations: u64,
    gaps: u64,
    resets: u64,
    /// Requests learnt of from the inbox list after a reset.
    resynced: HashSet<u64>,
    /// Who wants to know the id the server gives a request.
    pending_ids: HashMap<u64, tokio::sync::oneshot::Sender<String>>,
    /// Where each agent's stream stands, to explain a delivery that never came.
    streams: HashMap<usize, StreamState>,
    /// Each agent's last four streams: the id it resumed after, the first and last ids it got, and
    /// how the stream ended.
    history: HashMap<usize, Vec<String>>,
    /// Streams that ended as the server planned (closing comment, then the end of the body).
    planned_ends: u64,
    /// Streams cut, by how (closed without the closing comment, body error, HTTP status).
    cuts: BTreeMap<String, u64>,
    /// The `retry:` in effect at each planned end, by value (ms → ends).
    retry_at_planned_end: BTreeMap<u64, u64>,
    /// The first `retry:` of each stream that sent one, by value (ms → streams).
    retry_at_opening: BTreeMap<u64, u64>,
    /// Agents whose stream was cut and that have not streamed since: when it was cut.
    cut_at: HashMap<usize, Instant>,
    /// Each cut stream's (cut, streaming again) moments.
    reopened: Vec<(Instant, Instant)>,
}

/// Where one agent's stream (or poll) stands.
#[derive(Debug, Clone, Copy)]
enum StreamState {
    /// Request sent at this moment, no response headers yet.
    Connecting(Instant),
    /// Response open since `opened`; its last bytes came at `last_bytes`.
    Open {
        opened: Instant,
        last_bytes: Instant,
    },
    /// The stream ended at this moment; the agent waits this many ms before reconnecting.
    Waiting(Instant, u64),
}

/// Everything the agents observed, shared by all of them.
#[derive(Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

/// Counts at one moment.
#[derive(Debug, Clone, Copy, Default)]
pub struct Counts {
    /// Creates sent.
    pub sent: u64,
    /// Creates the server accepted.
    pub accepted: u64,
    /// Distinct created events received by addressees.
    pub delivered: u64,
    /// Distinct answered events received by requesters.
    pub answered: u64,
    /// Distinct expired events received by requesters.
    pub expired: u64,
    /// Events received twice.
    pub duplicates: u64,
    /// Failed requests.
    pub errors: u64,
    /// Agents whose stream (or poll loop) is up.
    pub ready: usize,
    /// Streams that ended as planned.
    pub planned_ends: u64,
}

impl Metrics {
    fn with<R>(&self, f: impl FnOnce(&mut Inner) -> R) -> R {
        f(&mut self.inner.lock().expect("metrics lock"))
    }

    /// Counts a failed request under `what`.
    pub fn error(&self, what: String) {
        self.with(|m| *m.errors.entry(what).or_default() += 1);
    }

    /// The failures so far, by kind.
    pub fn errors(&self) -> BTreeMap<String, u64> {
        self.with(|m| m.errors.clone())
    }

    /// Counts now.
    pub fn counts(&self) -> Counts {
        self.with(|m| Counts {
            sent: m.sent.len() as u64,
            accepted: m.accepted.len() as u64,
            delivered: m.delivered.len() as u64,
            answered: m.answered.len() as u64,
            expired: m.expired.len() as u64,
            duplicates: m.duplicates,
            errors: m.errors.values().sum(),
            ready: m.ready,
            planned_ends: m.planned_ends,
        })
    }

    /// Out-of-order or missing sequence numbers seen by any agent.
    pub fn order_violations(&self) -> u64 {
        self.with(|m| m.order_violations)
    }

    /// Takes the histograms of `phases`, merged.
    pub fn take_phases(&self, phases: &[usize]) -> PhaseHistograms {
        self.with(|m| {
            let mut out = PhaseHistograms::default();
            for p in phases {
                let Some(h) = m.phases.remove(p) else {
                    continue;
                };
                for (into, from) in [
                    (&mut out.delivery, h.delivery),
                    (&mut out.round_trip, h.round_trip),
                    (&mut out.create, h.create),
                    (&mut out.expiry_lateness, h.expiry_lateness),
                ] {
                    if let Some(from) = from {
                        let _ = into.get_or_insert_with(histogram).add(&from);
                    }
                }
                if let Some(t) = h.first_sent {
                    earliest(&mut out.first_sent, t);
                }
                for (into, from) in [
                    (&mut out.last_ack, h.last_ack),
                    (&mut out.last_delivered, h.last_delivered),
                    (&mut out.last_answered, h.last_answered),
                ] {
                    if let Some(t) = from {
                        latest(into, t);
                    }
                }
            }
            out
        })
    }

    /// Whether every accepted create has reached its addressee and, as `expect` says, been
    /// answered or expired.
    pub fn settled(&self, silent: &HashSet<usize>) -> bool {
        self.with(|m| {
            m.accepted.iter().all(|k| {
                let to_silent = m.sent.get(k).is_some_and(|s| silent.contains(&s.to));
                m.delivered.contains(k)
                    && if to_silent {
                        m.expired.contains(k)
                    } else {
                        m.answered.contains(k)
                    }
            })
        })
    }

    /// Accepted creates addressed to silent agents (which should expire) and to the others.
    pub fn expected(&self, silent: &HashSet<usize>) -> (u64, u64) {
        self.with(|m| {
            let to_silent = m
                .accepted
                .iter()
                .filter(|k| m.sent.get(k).is_some_and(|s| silent.contains(&s.to)))
                .count() as u64;
            (m.accepted.len() as u64 - to_silent, to_silent)
        })
    }

    /// How many of `keys` reached their addressee.
    pub fn delivered_among(&self, keys: &HashSet<u64>) -> u64 {
        self.with(|m| keys.iter().filter(|k| m.delivered.contains(k)).count() as u64)
    }

    /// The keys accepted so far.
    pub fn accepted_keys(&self) -> HashSet<u64> {
        self.with(|m| m.accepted.clone())
    }

    /// Requests past their deadline that their requester has not seen expire: (key, id, from).
    pub fn overdue(&self, now: SystemTime) -> Vec<(u64, String, usize)> {
        self.with(|m| {
            m.deadlines
                .iter()
                .filter(|(k, (_, _, at))| *at <= now && !m.expired.contains(k))
                .map(|(k, (id, from, _))| (*k, id.clone(), *from))
                .collect()
        })
    }

    /// The log was reset (the agent fell a retained window behind): its next event follows `head`.
    fn reset_sequence(&self, me: usize, head: i64) {
        self.with(|m| {
            m.last_sequence.insert(me, head);
            m.resets += 1;
        });
    }

    /// How many times an agent was told to re-sync.
    pub fn resets(&self) -> u64 {
        self.with(|m| m.resets)
    }

    /// Streams cut so far, by how.
    pub fn cuts(&self) -> BTreeMap<String, u64> {
        self.with(|m| m.cuts.clone())
    }

    /// The `retry:` values in effect at planned ends so far (ms → ends).
    pub fn retry_at_planned_end(&self) -> BTreeMap<u64, u64> {
        self.with(|m| m.retry_at_planned_end.clone())
    }

    /// The most frequent first `retry:` of a stream and `retry:` at a planned end, if seen.
    pub fn usual_retry(&self) -> (Option<u64>, Option<u64>) {
        let most = |h: &BTreeMap<u64, u64>| h.iter().max_by_key(|(_, n)| **n).map(|(v, _)| *v);
        self.with(|m| (most(&m.retry_at_opening), most(&m.retry_at_planned_end)))
    }

    /// Marks `key` as learnt of by re-sync, unless it was delivered already; true if it was not.
    fn resync_key(&self, key: u64) -> bool {
        self.with(|m| !m.delivered.contains(&key) && m.resynced.insert(key))
    }

    /// Checks that `me` receives strictly increasing sequence numbers. A skipped number is not a
    /// violation: it is a slot whose writer died (a crash) and that readers sealed.
    fn note_sequence(&self, me: usize, seq: i64) {
        self.with(|m| match m.last_sequence.insert(me, seq) {
            Some(last) if seq <= last => m.order_violations += 1,
            Some(last) if seq > last + 1 => m.gaps += (seq - last - 1) as u64,
            _ => {}
        });
    }

    /// Sequence numbers skipped (sealed after a writer died).
    pub fn gaps(&self) -> u64 {
        self.with(|m| m.gaps)
    }

    /// Streams cut since `since`: how many, how many of their agents have not streamed again,
    /// and the longest time from a cut to streaming again (seconds).
    pub fn cuts_since(&self, since: Instant) -> (u64, u64, f64) {
        self.with(|m| {
            let back: Vec<f64> = m
                .reopened
                .iter()
                .filter(|(cut, _)| *cut >= since)
                .map(|(cut, again)| (*again - *cut).as_secs_f64())
                .collect();
            let waiting = m.cut_at.values().filter(|cut| **cut >= since).count() as u64;
            (
                back.len() as u64 + waiting,
                waiting,
                back.into_iter().fold(0.0, f64::max),
            )
        })
    }

    fn connecting(&self, me: usize) {
        self.with(|m| {
            m.streams
                .insert(me, StreamState::Connecting(Instant::now()))
        });
    }

    fn opened(&self, me: usize) {
        let now = Instant::now();
        self.with(|m| {
            if let Some(cut) = m.cut_at.remove(&me) {
                m.reopened.push((cut, now));
            }
            m.streams.insert(
                me,
                StreamState::Open {
                    opened: now,
                    last_bytes: now,
                },
            )
        });
    }

    fn bytes_arrived(&self, me: usize) {
        self.with(|m| {
            if let Some(StreamState::Open { last_bytes, .. }) = m.streams.get_mut(&me) {
                *last_bytes = Instant::now();
            }
        });
    }

    /// For accepted creates that never reached their addressee: each such addressee, how many it
    /// missed and where its stream stood at the end.
    pub fn undelivered(&self) -> Vec<String> {
        self.with(|m| {
            let mut missed: BTreeMap<usize, u64> = BTreeMap::new();
            for k in m.accepted.iter().filter(|k| !m.delivered.contains(k)) {
                if let Some(s) = m.sent.get(k) {
                    *missed.entry(s.to).or_default() += 1;
                }
            }
            missed
                .into_iter()
                .map(|(to, n)| {
                    let state = match m.streams.get(&to) {
                        None => "no stream".to_string(),
                        Some(StreamState::Connecting(at)) => format!(
                            "stream request unanswered for {:.1} s",
                            at.elapsed().as_secs_f64()
                        ),
                        Some(StreamState::Open { opened, last_bytes }) => format!(
                            "stream open {:.1} s, last bytes {:.1} s ago",
                            opened.elapsed().as_secs_f64(),
                            last_bytes.elapsed().as_secs_f64()
                        ),
                        Some(StreamState::Waiting(at, ms)) => format!(
                            "stream ended {:.1} s ago, reconnecting after {ms} ms",
                            at.elapsed().as_secs_f64()
                        ),
                    };
                    let history = m
                        .history
                        .get(&to)
                        .map(|h| h.join(" | "))
                        .unwrap_or_default();
                    format!("{}: {n} missed; {state}; streams: {history}", agent_id(to))
                })
                .collect()
        })
    }

    /// Stream of `me` ended: `cut` says how if it was not a planned end; `retry_ms` is the
    /// reconnection time in effect, `opening` the first `retry:` the stream sent. The agent now
    /// waits `retry_ms`.
    fn stream_ended(
        &self,
        me: usize,
        summary: String,
        cut: Option<String>,
        retry_ms: u64,
        opening: Option<u64>,
    ) {
        self.with(|m| {
            if let Some(r) = opening {
                *m.retry_at_opening.entry(r).or_default() += 1;
            }
            let h = m.history.entry(me).or_default();
            if h.len() == 4 {
                h.remove(0);
            }
            h.push(summary);
            match cut {
                Some(how) => {
                    *m.cuts.entry(how).or_default() += 1;
                    m.cut_at.entry(me).or_insert_with(Instant::now);
                }
                None => {
                    m.planned_ends += 1;
                    *m.retry_at_planned_end.entry(retry_ms).or_default() += 1;
                }
            }
            m.streams
                .insert(me, StreamState::Waiting(Instant::now(), retry_ms));
        });
    }

    fn on_ready(&self) {
        self.with(|m| m.ready += 1);
    }

    fn on_created(&self, key: u64) -> bool {
        self.with(|m| {
            if !m.delivered.insert(key) {
                // After a re-sync the client learns of a request from the list and may then see
                // its event too: that is one delivery, not two.
                if !m.resynced.remove(&key) {
                    m.duplicates += 1;
                }
                return false;
            }
            if let Some(s) = m.sent.get(&key) {
                let us = since_us(s.at);
                let p = m.phases.entry(phase_of(key)).or_default();
                record(&mut p.delivery, us);
                latest(&mut p.last_delivered, Instant::now());
            }
            true
        })
    }

    fn on_answered(&self, key: u64) {
        self.with(|m| {
            if !m.answered.insert(key) {
                m.duplicates += 1;
                return;
            }
            if let Some(s) = m.sent.get(&key) {
                let us = since_us(s.at);
                let p = m.phases.entry(phase_of(key)).or_default();
                record(&mut p.round_trip, us);
                latest(&mut p.last_answered, Instant::now());
            }
        });
    }

    fn on_expired(&self, key: u64, expires_at: Option<SystemTime>) {
        self.with(|m| {
            if !m.expired.insert(key) {
                m.duplicates += 1;
                return;
            }
            if let Some(at) = expires_at {
                let late = SystemTime::now()
                    .duration_since(at)
                    .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
                    .unwrap_or(1);
                record(
                    &mut m.phases.entry(phase_of(key)).or_default().expiry_lateness,
                    late,
                );
            }
        });
    }
}

/// Keys of phase `p` are `p * PHASE + i`.
pub const PHASE: u64 = 1 << 32;

fn phase_of(key: u64) -> usize {
    usize::try_from(key / PHASE).unwrap_or(0)
}

/// Parses an RFC 3339 timestamp the app wrote.
fn parse_time(s: &str) -> Option<SystemTime> {
    humantime::parse_rfc3339(s).ok()
}

/// What every agent shares.
pub struct Ctx {
    /// How the agents talk to the server.
    pub mode: Mode,
    /// The server's base URL (the first node's).
    pub base: String,
    /// Every node's base URL (one, unless the app is scaled out): agent `i` streams, polls and
    /// answers on node `i mod n`, and a create to agent `i` goes to node `i + 1 mod n`, so with
    /// several nodes it never goes to the node that holds its addressee's stream.
    pub nodes: Vec<String>,
    /// One connection pool for all agents.
    pub http: reqwest::Client,
    /// What they observe.
    pub metrics: Arc<Metrics>,
    /// Agent `i`'s token (empty for the floor).
    pub tokens: Vec<String>,
    /// Agents that never answer.
    pub silent: HashSet<usize>,
}

/// Agent `i`'s id.
pub fn agent_id(i: usize) -> String {
    format!("agent-{i}")
}

impl Ctx {
    /// The node agent `i` holds its stream on, polls and answers.
    fn node(&self, i: usize) -> &str {
        &self.nodes[i % self.nodes.len()]
    }

    /// The node a create to agent `to` is sent to.
    fn node_for_create(&self, to: usize) -> &str {
        &self.nodes[(to + 1) % self.nodes.len()]
    }

    /// Sends request `key` from `from` to `to` (expiring after `ttl` seconds if given); returns
    /// whether the server accepted it.
    pub async fn create(&self, key: u64, from: usize, to: usize, ttl: Option<u64>) -> bool {
        let at = Instant::now();
        self.metrics.with(|m| {
            m.sent.insert(key, Sent { at, to });
            earliest(
                &mut m.phases.entry(phase_of(key)).or_default().first_sent,
                at,
            );
        });
        let r = match self.mode {
            Mode::Floor => {
                self.http
                    .post(format!("{}/pub/{}", self.base, agent_id(to)))
                    .json(&json!({ "kind": "created", "key": key, "from": from }))
                    .timeout(REQUEST_TIMEOUT)
                    .send()
                    .await
            }
            _ => {
                let mut body = json!({ "to": agent_id(to), "message": format!("bench-{key}") });
                if let Some(ttl) = ttl {
                    body["ttlSeconds"] = json!(ttl);
                }
                self.http
                    .post(format!("{}/v1/elicitations", self.node_for_create(to)))
                    .bearer_auth(&self.tokens[from])
                    .json(&body)
                    .timeout(REQUEST_TIMEOUT)
                    .send()
                    .await
            }
        };
        match r {
            Ok(r) if r.status().is_success() => {
                let body: Value = r.json().await.unwrap_or(Value::Null);
                self.metrics.with(|m| {
                    m.accepted.insert(key);
                    if let (Some(tx), Some(id)) = (m.pending_ids.remove(&key), body["id"].as_str())
                    {
                        let _ = tx.send(id.to_string());
                    }
                    let p = m.phases.entry(phase_of(key)).or_default();
                    record(&mut p.create, since_us(at));
                    latest(&mut p.last_ack, Instant::now());
                    if ttl.is_some()
                        && let (Some(id), Some(exp)) = (
                            body["id"].as_str(),
                            body["expiresAt"].as_str().and_then(parse_time),
                        )
                    {
                        m.deadlines.insert(key, (id.to_string(), from, exp));
                    }
                });
                true
            }
            Ok(r) => {
                self.metrics
                    .error(format!("create {}", r.status().as_u16()));
                false
            }
            Err(e) => {
                self.metrics
                    .error(format!("create transport ({})", kind_of(&e)));
                false
            }
        }
    }

    /// Sends request `key` from `from` to `to` and returns its id if the server accepted it.
    pub async fn create_returning_id(&self, key: u64, from: usize, to: usize) -> Option<String> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.metrics.with(|m| m.pending_ids.insert(key, tx));
        if !self.create(key, from, to, None).await {
            return None;
        }
        rx.await.ok()
    }

    /// Reads request `id` as its requester `from`: how a polling client notices an expiry (the
    /// read writes it, and the expired event then appears in both logs).
    pub async fn look(&self, from: usize, id: &str) {
        let r = self
            .http
            .get(format!("{}/v1/elicitations/{id}", self.node(from)))
            .bearer_auth(&self.tokens[from])
            .timeout(REQUEST_TIMEOUT)
            .send()
            .await;
        if let Ok(r) = r
            && !r.status().is_success()
        {
            self.metrics.error(format!("read {}", r.status().as_u16()));
        }
    }

    /// After a reset: learns of the pending requests in `me`'s inbox from the list, as a client
    /// must, and handles those it had not been told of.
    async fn resync(self: &Arc<Self>, me: usize) {
        let mut cursor: Option<String> = None;
        loop {
            let mut url = format!(
                "{}/v1/agents/{}/elicitations?role=inbox&status=pending&limit=100",
                self.node(me),
                agent_id(me)
            );
            if let Some(c) = &cursor {
                url.push_str(&format!("&cursor={c}"));
            }
            let page: Value = match self
                .http
                .get(url)
                .bearer_auth(&self.tokens[me])
                .timeout(REQUEST_TIMEOUT)
                .send()
                .await
            {
                Ok(r) if r.status().is_success() => r.json().await.unwrap_or(Value::Null),
                Ok(r) => {
                    self.metrics.error(format!("list {}", r.status().as_u16()));
                    return;
                }
                Err(e) => {
                    self.metrics
                        .error(format!("list transport ({})", kind_of(&e)));
                    return;
                }
            };
            for el in page["items"].as_array().into_iter().flatten() {
                let key = el["message"]
                    .as_str()
                    .and_then(|m| m.strip_prefix("bench-"))
                    .and_then(|k| k.parse().ok());
                if key.is_some_and(|k| self.metrics.resync_key(k)) {
                    let data = json!({ "elicitation": el });
                    self.handle(me, "elicitation.created", &data).await;
                }
            }
            match page["nextCursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => return,
            }
        }
    }

    /// What agent `me` does with one event.
    async fn handle(self: &Arc<Self>, me: usize, kind: &str, data: &Value) {
        let (key, id, from) = match self.mode {
            Mode::Floor => (
                data["key"].as_u64(),
                None,
                data["from"].as_u64().map(|f| f as usize),
            ),
            _ => {
                let el = &data["elicitation"];
                let key = el["message"]
                    .as_str()
                    .and_then(|m| m.strip_prefix("bench-"))
                    .and_then(|k| k.parse().ok());
                (key, el["id"].as_str().map(str::to_string), None)
            }
        };
        let Some(key) = key else { return };
        let mine = data["elicitation"]["from"] == agent_id(me).as_str();
        match kind {
            "elicitation.created" | "created" => {
                if !self.metrics.on_created(key) || self.silent.contains(&me) {
                    return;
                }
                let ctx = self.clone();
                tokio::spawn(async move { ctx.answer(me, key, id, from).await });
            }
            // Both parties get answered and expired events; the requester's copy counts.
            "elicitation.answered" if mine => self.metrics.on_answered(key),
            "answered" => self.metrics.on_answered(key),
            "elicitation.expired" if mine => {
                let at = data["elicitation"]["expiresAt"]
                    .as_str()
                    .and_then(parse_time);
                self.metrics.on_expired(key, at);
            }
            _ => {}
        }
    }

    /// Declines request `key`, retrying while the server is unreachable (a restart).
    async fn answer(&self, me: usize, key: u64, id: Option<String>, from: Option<usize>) {
        for attempt in 0..100 {
            let r = match self.mode {
                Mode::Floor => {
                    self.http
                        .post(format!("{}/pub/{}", self.base, agent_id(from.unwrap_or(0))))
                        .json(&json!({ "kind": "answered", "key": key }))
                        .timeout(REQUEST_TIMEOUT)
                        .send()
                        .await
                }
                _ => {
                    self.http
                        .post(format!(
                            "{}/v1/elicitations/{}/response",
                            self.node(me),
                            id.as_deref().unwrap_or_default()
                        ))
                        .bearer_auth(&self.tokens[me])
                        .json(&json!({ "action": "decline" }))
                        .timeout(REQUEST_TIMEOUT)
                        .send()
                        .await
                }
            };
            match r {
                Ok(r) if r.status().is_success() => return,
                Ok(r) if r.status().is_server_error() && attempt < 99 => {}
                Ok(r) => {
                    self.metrics
                        .error(format!("answer {}", r.status().as_u16()));
                    return;
                }
                // The server is restarting: try again (a request it never answered is not retried).
                Err(e) if attempt < 99 && !e.is_timeout() => {}
                Err(e) => {
                    self.metrics
                        .error(format!("answer transport ({})", kind_of(&e)));
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Runs agent `me` until `stop` is notified: holds its stream (push, floor; reconnecting with
    /// its last event id) or polls (poll).
    pub async fn agent(self: Arc<Self>, me: usize, stop: Arc<tokio::sync::Notify>) {
        let name = agent_id(me);
        let pause = || tokio::time::sleep(Duration::from_millis(100));
        if self.mode == Mode::Poll {
            self.metrics.on_ready();
            let mut since = 0;
            loop {
                let req = self
                    .http
                    .get(format!(
                        "{}/v1/agents/{name}/messages?since={since}&timeout=25",
                        self.node(me)
                    ))
                    .bearer_auth(&self.tokens[me])
                    .timeout(REQUEST_TIMEOUT + Duration::from_secs(25))
                    .send();
                let r = tokio::select! { r = req => r, () = stop.notified() => return };
                let body: Value = match r {
                    Ok(r) if r.status().is_success() => r.json().await.unwrap_or(Value::Null),
                    Ok(r) => {
                        self.metrics.error(format!("poll {}", r.status().as_u16()));
                        pause().await;
                        continue;
                    }
                    Err(e) => {
                        // The server is gone (a restart): try again shortly.
                        self.metrics
                            .error(format!("poll transport ({})", kind_of(&e)));
                        pause().await;
                        continue;
                    }
                };
                if body["status"] == "reset" {
                    since = body["head"].as_i64().unwrap_or(since);
                    self.metrics.reset_sequence(me, since);
                    self.resync(me).await;
                    continue;
                }
                for e in body["events"].as_array().into_iter().flatten() {
                    let seq = e["sequence"].as_i64().unwrap_or(since);
                    self.metrics.note_sequence(me, seq);
                    since = since.max(seq);
                    self.handle(me, e["eventType"].as_str().unwrap_or(""), &e["data"])
                        .await;
                }
            }
        }
        self.stream(me, &name, &stop).await;
    }

    /// Holds agent `me`'s stream as an `EventSource` would, until `stop` is notified.
    async fn stream(self: &Arc<Self>, me: usize, name: &str, stop: &tokio::sync::Notify) {
        let mut last: Option<String> = None;
        let mut first = true;
        // The reconnection time: set by every `retry:` field the server sends.
        let mut retry_ms = DEFAULT_RETRY_MS;
        loop {
            let url = match self.mode {
                Mode::Floor => format!("{}/sub/{name}", self.base),
                _ => format!("{}/v1/agents/{name}/events", self.node(me)),
            };
            let mut req = self.http.get(url).bearer_auth(&self.tokens[me]);
            if let Some(id) = &last {
                req = req.header("last-event-id", id);
            }
            self.metrics.connecting(me);
            let resp = tokio::select! { r = req.send() => r, () = stop.notified() => return };
            let resp = match resp {
                Ok(r) if r.status().is_success() => {
                    self.metrics.opened(me);
                    r
                }
                Ok(r) => {
                    // The server refused the stream: a cut, and a failed request.
                    let status = r.status().as_u16();
                    self.metrics.error(format!("stream {status}"));
                    self.metrics.stream_ended(
                        me,
                        format!("after {last:?}: HTTP {status}"),
                        Some(format!("HTTP {status}")),
                        retry_ms,
                        None,
                    );
                    if !wait(retry_ms, stop).await {
                        return;
                    }
                    continue;
                }
                Err(e) => {
                    // No server to talk to (a restart): no stream was cut.
                    self.metrics
                        .error(format!("stream transport ({})", kind_of(&e)));
                    if !wait(retry_ms, stop).await {
                        return;
                    }
                    continue;
                }
            };
            let mut body = resp.bytes_stream();
            let mut parser = sse::Parser::default();
            let mut items = Vec::new();
            let resumed = last.clone();
            // The first and the last frame this stream brought, and how many.
            let (mut first_got, mut last_got, mut frames) = (String::new(), String::new(), 0u64);
            let mut planned = false;
            let mut opening_retry = None;
            let cut = loop {
                let chunk = tokio::select! { c = body.next() => c, () = stop.notified() => return };
                let bytes = match chunk {
                    Some(Ok(b)) => b,
                    // After the closing comment the server meant to end: however the body ends.
                    _ if planned => break None,
                    Some(Err(e)) => break Some(format!("body error ({})", kind_of(&e))),
                    None => break Some("closed without the closing comment".to_string()),
                };
                self.metrics.bytes_arrived(me);
                parser.push(&bytes, &mut items);
                for item in std::mem::take(&mut items) {
                    let e = match item {
                        sse::Item::Retry(ms) => {
                            retry_ms = ms;
                            opening_retry.get_or_insert(ms);
                            continue;
                        }
                        sse::Item::Comment(c) => {
                            planned |= c.starts_with(CLOSING_COMMENT);
                            continue;
                        }
                        sse::Item::Id(id) => {
                            last = Some(id);
                            continue;
                        }
                        sse::Item::Event(e) => e,
                    };
                    frames += 1;
                    last_got = format!(
                        "{}:{}",
                        e.event.trim_start_matches("elicitation."),
                        e.id.as_deref().unwrap_or("")
                    );
                    self.frame(me, e, &mut last, &mut first).await;
                    if frames == 1 {
                        first_got.clone_from(&last_got);
                    }
                }
            };
            let how = cut.as_deref().unwrap_or("planned end");
            self.metrics.stream_ended(
                me,
                format!("after {resumed:?} got {first_got}..{last_got} ({frames}) {how}"),
                cut,
                retry_ms,
                opening_retry,
            );
            if !wait(retry_ms, stop).await {
                return;
            }
        }
    }

    /// What agent `me` does with one frame of its stream; `last` is its last event id.
    async fn frame(
        self: &Arc<Self>,
        me: usize,
        e: sse::Event,
        last: &mut Option<String>,
        first: &mut bool,
    ) {
        let id = e.id.unwrap_or_default();
        if e.event == "ready" {
            // The opening frame carries the cursor the stream starts from: a stream cut before
            // its first event must resume from there, not from the live head.
            if !id.is_empty() {
                *last = Some(id);
            }
            if *first {
                self.metrics.on_ready();
                *first = false;
            }
            return;
        }
        if e.event == "reset" {
            let head = id.parse().unwrap_or(0);
            self.metrics.reset_sequence(me, head);
            *last = Some(id);
            if self.mode == Mode::Floor {
                // The floor has no inbox to re-read: what it dropped is lost, and shows as such.
                self.metrics.error("floor reset".into());
            } else {
                self.resync(me).await;
            }
            return;
        }
        if !id.is_empty() {
            if let Ok(seq) = id.parse() {
                self.metrics.note_sequence(me, seq);
            }
            *last = Some(id);
        }
        let data: Value = serde_json::from_str(&e.data).unwrap_or(Value::Null);
        let kind = if self.mode == Mode::Floor {
            data["kind"].as_str().unwrap_or("").to_string()
        } else {
            e.event
        };
        self.handle(me, &kind, &data).await;
    }
}

/// Waits `ms` before a reconnection; false if `stop` came first.
async fn wait(ms: u64, stop: &tokio::sync::Notify) -> bool {
    tokio::select! {
        () = tokio::time::sleep(Duration::from_millis(ms)) => true,
        () = stop.notified() => false,
    }
}

/// A short name for a transport error.
fn kind_of(e: &reqwest::Error) -> &'static str {
    if e.is_connect() {
        "connect"
    } else if e.is_timeout() {
        "timeout"
    } else if e.is_body() || e.is_decode() {
        "body"
    } else {
        "other"
    }
}
