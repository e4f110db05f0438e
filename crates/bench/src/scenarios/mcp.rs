//! The `mcp` scenario: `--mcp-pairs` pairs of agents, each pair doing `--mcp-rounds` sequential
//! round trips (the asker asks, the addressee learns of it and accepts, the asker learns of the
//! answer), one every `--mcp-interval-ms` per pair (the pairs' starts spread over one interval;
//! a round trip that takes longer delays the next one), three ways on a fresh server each, so
//! every way is offered the same load:
//!
//! - **mcp** — both agents in MCP sessions (2025-11-25, over `/mcp`): the addressee sits in
//!   `inbox {waitSeconds: 25, since}` and answers with `respond`; the asker calls `ask` with
//!   `waitSeconds: 25`, which returns with the answer;
//! - **http** — the same over the plain HTTP API: the addressee holds its SSE event stream and
//!   answers with `POST …/response`; the asker creates, then reads with `?wait=25`;
//! - **mcp-poll** — the seed's way over MCP: both agents loop on the deprecated
//!   `wait_for_messages {since, timeout: 25}` tool (the store looked at every `legacy_poll_ms`),
//!   the asker after an `ask` without waiting.
//!
//! Delivery is question sent → the addressee's call (or stream) returned it; round trip is
//! question sent → the asker's call returned the answer. Every figure counts what arrived, as in
//! the other scenarios: answered/s divides the answers the askers received by the time from the
//! first question sent to the last answer received.

use std::sync::Mutex;
use std::sync::atomic::AtomicI64;

use hdrhistogram::Histogram;

use super::*;

/// One way of doing the round trips.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Way {
    Mcp,
    Http,
    PollTool,
}

impl Way {
    const ALL: [Self; 3] = [Self::Mcp, Self::Http, Self::PollTool];

    fn name(self) -> &'static str {
        match self {
            Self::Mcp => "mcp",
            Self::Http => "http",
            Self::PollTool => "mcp-poll",
        }
    }
}

/// What one way measured, shared by its agents.
struct Tally {
    sent: u64,
    accepted: u64,
    delivered: u64,
    duplicates: u64,
    answered: u64,
    delivery: Histogram<u64>,
    round_trip: Histogram<u64>,
    create: Histogram<u64>,
    first_sent: Option<Instant>,
    last_ack: Option<Instant>,
    last_delivered: Option<Instant>,
    last_answered: Option<Instant>,
    /// When each question was sent, by its key (the message), until it is delivered.
    sent_at: HashMap<String, Instant>,
    seen: HashSet<String>,
    errors: BTreeMap<String, u64>,
}

impl Tally {
    fn new() -> Self {
        let h = || Histogram::new_with_bounds(1, 600_000_000, 3).expect("histogram bounds");
        Self {
            sent: 0,
            accepted: 0,
            delivered: 0,
            duplicates: 0,
            answered: 0,
            delivery: h(),
            round_trip: h(),
            create: h(),
            first_sent: None,
            last_ack: None,
            last_delivered: None,
            last_answered: None,
            sent_at: HashMap::new(),
            seen: HashSet::new(),
            errors: BTreeMap::new(),
        }
    }
}

fn us(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_micros())
        .unwrap_or(u64::MAX)
        .clamp(1, 600_000_000)
}

#[derive(Clone)]
struct Shared(Arc<Mutex<Tally>>);

impl Shared {
    fn with<T>(&self, f: impl FnOnce(&mut Tally) -> T) -> T {
        f(&mut self.0.lock().expect("tally"))
    }

    fn sent(&self, key: &str) -> Instant {
        let now = Instant::now();
        self.with(|t| {
            t.sent += 1;
            t.first_sent.get_or_insert(now);
            t.sent_at.insert(key.to_string(), now);
        });
        now
    }

    /// The create was acknowledged; `sent` when the acknowledgement is a create's own response
    /// (not an `ask` that returned with the answer).
    fn acknowledged(&self, sent: Option<Instant>) {
        self.with(|t| {
            t.accepted += 1;
            t.last_ack = Some(Instant::now());
            if let Some(at) = sent {
                let _ = t.create.record(us(at));
            }
        });
    }

    fn delivered(&self, key: &str) {
        self.with(|t| {
            if !t.seen.insert(key.to_string()) {
                t.duplicates += 1;
                return;
            }
            if let Some(at) = t.sent_at.get(key).copied() {
                let _ = t.delivery.record(us(at));
            }
            t.delivered += 1;
            t.last_delivered = Some(Instant::now());
        });
    }

    fn answered(&self, sent: Instant) {
        self.with(|t| {
            t.answered += 1;
            let _ = t.round_trip.record(us(sent));
            t.last_answered = Some(Instant::now());
        });
    }

    fn error(&self, what: impl Into<String>) {
        self.with(|t| *t.errors.entry(what.into()).or_default() += 1);
    }
}

/// One agent's MCP session (2025-11-25).
struct McpSession {
    http: reqwest::Client,
    url: String,
    token: String,
    session: String,
    next: AtomicI64,
}

impl McpSession {
    async fn open(http: &reqwest::Client, base: &str, token: &str) -> anyhow::Result<Self> {
        let url = format!("{base}/mcp");
        let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {},
            "clientInfo": {"name": "lighthouse-bench", "version": "1"}}});
        let r = http
            .post(&url)
            .bearer_auth(token)
            .header("accept", "application/json, text/event-stream")
            .json(&init)
            .timeout(REQUEST_TIMEOUT)
            .send()
            .await?;
        anyhow::ensure!(r.status() == 200, "initialize: {}", r.status());
        let session = r
            .headers()
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
            .context("no MCP-Session-Id")?
            .to_string();
        let s = Self {
            http: http.clone(),
            url,
            token: token.to_string(),
            session,
            next: AtomicI64::new(1),
        };
        let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        let r = s.post(&initialized).await?;
        anyhow::ensure!(r.status() == 202, "initialized: {}", r.status());
        Ok(s)
    }

    async fn post(&self, body: &Value) -> reqwest::Result<reqwest::Response> {
        self.http
            .post(&self.url)
            .bearer_auth(&self.token)
            .header("accept", "application/json, text/event-stream")
            .header("mcp-session-id", &self.session)
            .header("mcp-protocol-version", "2025-11-25")
            .json(body)
            .timeout(REQUEST_TIMEOUT)
            .send()
            .await
    }

    /// Calls a tool; its `structuredContent`, or what went wrong (an error kind for the report).
    async fn call(&self, tool: &str, arguments: Value) -> Result<Value, String> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let body = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
            "params": {"name": tool, "arguments": arguments}});
        let r = self
            .post(&body)
            .await
            .map_err(|_| format!("{tool} transport"))?;
        if r.status() != 200 {
            return Err(format!("{tool} {}", r.status().as_u16()));
        }
        let v: Value = r.json().await.map_err(|_| format!("{tool} body"))?;
        let result = &v["result"];
        if result["isError"] != false {
            return Err(format!(
                "{tool} isError {}",
                result["structuredContent"]["status"]
            ));
        }
        Ok(result["structuredContent"].clone())
    }

    /// The addressee learned of question `e`: counts its delivery and accepts it with `respond`.
    async fn accept(&self, e: &Value, t: &Shared) {
        t.delivered(e["message"].as_str().unwrap_or(""));
        let answer = json!({"id": e["id"], "action": "accept", "content": {"ok": true}});
        if let Err(err) = self.call("respond", answer).await {
            t.error(err);
        }
    }
}

fn form() -> Value {
    json!({"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]})
}

/// What every agent of one way shares.
#[derive(Clone)]
struct Run {
    way: Way,
    base: String,
    http: reqwest::Client,
    t: Shared,
    /// When the first pair asks first, the pairs, and the time between a pair's questions.
    start: Instant,
    pairs: usize,
    interval: Duration,
}

/// Who answers: sits in its way's wait and accepts what arrives, until aborted.
async fn addressee(run: Run, token: String, me: String) {
    let Run {
        way, base, http, t, ..
    } = run;
    match way {
        Way::Mcp => {
            let Ok(s) = McpSession::open(&http, &base, &token).await else {
                return t.error("initialize");
            };
            let mut since = 0;
            loop {
                let page = match s
                    .call("inbox", json!({"waitSeconds": 25, "since": since}))
                    .await
                {
                    Ok(p) => p,
                    Err(e) => {
                        t.error(e);
                        continue;
                    }
                };
                since = page["position"].as_i64().unwrap_or(since);
                for e in page["items"].as_array().into_iter().flatten() {
                    s.accept(e, &t).await;
                }
            }
        }
        Way::PollTool => {
            let Ok(s) = McpSession::open(&http, &base, &token).await else {
                return t.error("initialize");
            };
            let mut since = 0;
            loop {
                let polled = match s
                    .call("wait_for_messages", json!({"since": since, "timeout": 25}))
                    .await
                {
                    Ok(p) => p,
                    Err(e) => {
                        t.error(e);
                        continue;
                    }
                };
                for ev in polled["events"].as_array().into_iter().flatten() {
                    since = since.max(ev["sequence"].as_i64().unwrap_or(since));
                    if ev["eventType"] != "elicitation.created" {
                        continue;
                    }
                    s.accept(&ev["data"]["elicitation"], &t).await;
                }
            }
        }
        Way::Http => {
            let mut last_id: Option<String> = None;
            loop {
                let mut req = http
                    .get(format!("{base}/v1/agents/{me}/events"))
                    .bearer_auth(&token);
                if let Some(id) = &last_id {
                    req = req.header("last-event-id", id);
                }
                let resp = match req.send().await {
                    Ok(r) if r.status() == 200 => r,
                    _ => {
                        t.error("stream open");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let mut body = resp.bytes_stream();
                let mut parser = crate::sse::Parser::default();
                let mut items = Vec::new();
                while let Some(Ok(chunk)) = body.next().await {
                    parser.push(&chunk, &mut items);
                    for item in items.drain(..) {
                        let crate::sse::Item::Event(ev) = item else {
                            continue;
                        };
                        if let Some(id) = ev.id {
                            last_id = Some(id);
                        }
                        if ev.event != "elicitation.created" {
                            continue;
                        }
                        let data: Value = serde_json::from_str(&ev.data).unwrap_or(Value::Null);
                        let e = &data["elicitation"];
                        t.delivered(e["message"].as_str().unwrap_or(""));
                        let r = http
                            .post(format!(
                                "{base}/v1/elicitations/{}/response",
                                e["id"].as_str().unwrap_or("")
                            ))
                            .bearer_auth(&token)
                            .json(&json!({"action": "accept", "content": {"ok": true}}))
                            .timeout(REQUEST_TIMEOUT)
                            .send()
                            .await;
                        if !r.is_ok_and(|r| r.status().is_success()) {
                            t.error("response");
                        }
                    }
                }
            }
        }
    }
}

/// Who asks: `rounds` questions one after the other, each once the previous answer arrived.
async fn asker(run: Run, token: String, to: String, pair: usize, rounds: u64) {
    let first = run.start + run.interval.mul_f64(pair as f64 / run.pairs.max(1) as f64);
    let Run {
        way,
        base,
        http,
        t,
        interval,
        ..
    } = run;
    let session = match way {
        Way::Http => None,
        _ => match McpSession::open(&http, &base, &token).await {
            Ok(s) => Some(s),
            Err(_) => return t.error("initialize"),
        },
    };
    let mut since = 0;
    for round in 0..rounds {
        let due = first + interval.mul_f64(round as f64);
        tokio::time::sleep_until(due.into()).await;
        let key = format!("pair {pair} round {round}");
        let sent = t.sent(&key);
        let settled = match (way, &session) {
            (Way::Mcp, Some(s)) => {
                let ask = json!({"to": to, "message": key, "requestedSchema": form(),
                    "waitSeconds": 25});
                match s.call("ask", ask).await {
                    Ok(mut e) => {
                        t.acknowledged(None);
                        while e["status"] == "pending" {
                            match s
                                .call("check", json!({"id": e["id"], "waitSeconds": 25}))
                                .await
                            {
                                Ok(next) => e = next,
                                Err(err) => {
                                    t.error(err);
                                    break;
                                }
                            }
                        }
                        e["status"] == "accepted"
                    }
                    Err(e) => {
                        t.error(e);
                        false
                    }
                }
            }
            (Way::PollTool, Some(s)) => {
                let ask = json!({"to": to, "message": key, "requestedSchema": form()});
                match s.call("ask", ask).await {
                    Ok(e) => {
                        t.acknowledged(Some(sent));
                        let id = e["id"].clone();
                        'poll: loop {
                            let polled = match s
                                .call("wait_for_messages", json!({"since": since, "timeout": 25}))
                                .await
                            {
                                Ok(p) => p,
                                Err(err) => {
                                    t.error(err);
                                    break false;
                                }
                            };
                            for ev in polled["events"].as_array().into_iter().flatten() {
                                since = since.max(ev["sequence"].as_i64().unwrap_or(since));
                                if ev["eventType"] == "elicitation.answered"
                                    && ev["data"]["elicitation"]["id"] == id
                                {
                                    break 'poll true;
                                }
                            }
                        }
                    }
                    Err(e) => {
                        t.error(e);
                        false
                    }
                }
            }
            _ => {
                let created = http
                    .post(format!("{base}/v1/elicitations"))
                    .bearer_auth(&token)
                    .json(&json!({"to": to, "message": key, "requestedSchema": form()}))
                    .timeout(REQUEST_TIMEOUT)
                    .send()
                    .await;
                let id = match created {
                    Ok(r) if r.status() == 201 => {
                        t.acknowledged(Some(sent));
                        let e: Value = r.json().await.unwrap_or(Value::Null);
                        e["id"].as_str().unwrap_or("").to_string()
                    }
                    _ => {
                        t.error("create");
                        continue;
                    }
                };
                let mut status = Value::from("pending");
                while status == "pending" {
                    let r = http
                        .get(format!("{base}/v1/elicitations/{id}?wait=25"))
                        .bearer_auth(&token)
                        .timeout(REQUEST_TIMEOUT)
                        .send()
                        .await;
                    match r {
                        Ok(r) if r.status() == 200 => {
                            let e: Value = r.json().await.unwrap_or(Value::Null);
                            status = e["status"].clone();
                        }
                        _ => {
                            t.error("wait");
                            break;
                        }
                    }
                }
                status == "accepted"
            }
        };
        if settled {
            t.answered(sent);
        } else {
            t.error("not answered");
        }
    }
}

/// The scenario: each way on a fresh server, the same pairs and rounds.
pub async fn mcp(args: &RunArgs) -> anyhow::Result<Vec<RunResult>> {
    let mut rows = Vec::new();
    let (pairs, rounds) = (args.mcp_pairs, args.mcp_rounds);
    for way in Way::ALL {
        let variant = Variant {
            mode: Mode::Push,
            backend: Some(args.backend[0]),
        };
        let s = Session::open(args, variant, 2 * pairs, HashSet::new()).await?;
        let tally = Shared(Arc::new(Mutex::new(Tally::new())));
        let interval = Duration::from_millis(args.mcp_interval_ms.max(1));
        let mut run = Run {
            way,
            base: s.server.base.clone(),
            http: s.ctx.http.clone(),
            t: tally.clone(),
            start: Instant::now(),
            pairs,
            interval,
        };
        let answering: Vec<JoinHandle<()>> = (0..pairs)
            .map(|p| {
                let i = 2 * p + 1;
                tokio::spawn(addressee(run.clone(), s.ctx.tokens[i].clone(), agent_id(i)))
            })
            .collect();
        // Addressees are waiting (or streaming) before the first question.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let progress = Progress::start(format!("mcp, {}", way.name()), s.ctx.metrics.clone());
        let mark = Mark::now(&s).await;
        let started = Instant::now();
        run.start = started;
        let asking: Vec<JoinHandle<()>> = (0..pairs)
            .map(|p| {
                let i = 2 * p;
                tokio::spawn(asker(
                    run.clone(),
                    s.ctx.tokens[i].clone(),
                    agent_id(i + 1),
                    p,
                    rounds,
                ))
            })
            .collect();
        let limit = interval.mul_f64(rounds as f64 + 1.0) + Duration::from_secs(60);
        if tokio::time::timeout(limit, futures::future::join_all(asking))
            .await
            .is_err()
        {
            tally.error("round trips unfinished");
        }
        let seconds = started.elapsed().as_secs_f64();
        for a in answering {
            a.abort();
        }
        drop(progress);
        let mut step = Step::new(
            "mcp",
            format!(
                "{pairs} pairs × {rounds} round trips, one per {:.1} s per pair",
                interval.as_secs_f64()
            ),
            2 * pairs,
            0,
        );
        step.seconds = seconds;
        step.rss_connected = s.server.rss();
        step.accepted = Some(tally.with(|t| t.accepted));
        let mut r = finish(&s, &mark, step).await;
        tally.with(|t| {
            r.mode = way.name().to_string();
            r.sent = t.sent;
            r.accepted = t.accepted;
            r.delivered = t.delivered;
            r.duplicates = t.duplicates;
            r.answered = t.answered;
            r.expected_answers = t.accepted;
            r.delivery_rate = if t.accepted == 0 {
                0.0
            } else {
                100.0 * t.delivered as f64 / t.accepted as f64
            };
            r.delivery = Percentiles::of(&t.delivery);
            r.round_trip = Percentiles::of(&t.round_trip);
            r.create = Percentiles::of(&t.create);
            r.delivery_cdf = cdf(&t.delivery);
            r.elicitations_per_second = Rates {
                created: per_second(t.accepted, t.first_sent, t.last_ack),
                delivered: per_second(t.delivered, t.first_sent, t.last_delivered),
                answered: per_second(t.answered, t.first_sent, t.last_answered),
            };
            for (k, v) in &t.errors {
                *r.errors.entry(k.clone()).or_default() += v;
            }
        });
        say(&r);
        rows.push(r);
        s.stop();
    }
    Ok(rows)
}
