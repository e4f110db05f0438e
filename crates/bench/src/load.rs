//! One run = one mode × one agent count: start the server, connect the agents, measure idle cost,
//! apply the load, wait for every event, and summarise.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::StreamExt;
use hdrhistogram::Histogram;
use serde::Serialize;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::RunArgs;
use crate::proc_stats;

const ADMIN: &str = "bench-admin-token";

/// Percentiles of one latency distribution, in milliseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Stats {
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

impl Stats {
    fn of(h: &Histogram<u64>) -> Self {
        let ms = |us: u64| us as f64 / 1000.0;
        Self {
            count: h.len(),
            p50: ms(h.value_at_quantile(0.5)),
            p90: ms(h.value_at_quantile(0.9)),
            p99: ms(h.value_at_quantile(0.99)),
            max: ms(h.max()),
        }
    }
}

/// Everything one run measured.
#[derive(Debug, Clone, Serialize)]
pub struct RunResult {
    /// push, poll or floor.
    pub mode: String,
    /// Concurrent agents (each with an open stream or poll loop).
    pub agents: usize,
    /// Requested total create rate (1/s).
    pub rate: f64,
    /// Seconds of load.
    pub duration: f64,
    /// Creates sent.
    pub sent: u64,
    /// Creates the server accepted (201; 202 for the floor).
    pub accepted: u64,
    /// Distinct created events the addressees received.
    pub delivered: u64,
    /// Events received more than once.
    pub duplicates: u64,
    /// Distinct answered events the requesters received.
    pub answered: u64,
    /// `delivered / accepted`, percent.
    pub delivery_rate: f64,
    /// Failed requests by status (or transport error).
    pub errors: BTreeMap<String, u64>,
    /// Create request sent → addressee's event received.
    pub delivery: Stats,
    /// Create request sent → requester's answered event received.
    pub round_trip: Stats,
    /// Created events delivered per second during the load.
    pub throughput: f64,
    /// Server CPU with every agent connected and no traffic, percent of one core.
    pub idle_cpu_percent: f64,
    /// Server CPU during the load, percent of one core.
    pub load_cpu_percent: f64,
    /// Server RSS before the agents connected, bytes.
    pub rss_before: u64,
    /// Server RSS with every agent connected (idle), bytes.
    pub rss_connected: u64,
    /// Server RSS at the end of the load, bytes.
    pub rss_after: u64,
    /// Seconds until every agent was connected.
    pub connect_seconds: f64,
    /// What the host's own counters (`/.well-known/spin/stats`) showed; none for the floor.
    pub host: Option<HostFigures>,
}

/// Figures from the host's counters.
#[derive(Debug, Clone, Default, Serialize)]
pub struct HostFigures {
    /// Keys read per second with every agent connected and no traffic.
    pub kv_reads_idle: f64,
    /// Keys read per second during the load.
    pub kv_reads_load: f64,
    /// Keys written per second during the load.
    pub kv_writes_load: f64,
    /// Instances of the `events` component alive while every stream was open (idle).
    pub stream_instances: u64,
    /// Instances of every component started during the run.
    pub instances_started: u64,
}

/// One sample of the host's counters.
#[derive(Debug, Clone, Copy, Default)]
struct HostSample {
    at: Option<Instant>,
    reads: u64,
    writes: u64,
    stream_instances: u64,
    started: u64,
}

impl HostSample {
    async fn take(http: &reqwest::Client, base: &str) -> Self {
        let Ok(r) = http
            .get(format!("{base}/.well-known/spin/stats"))
            .send()
            .await
        else {
            return Self::default();
        };
        let v: Value = r.json().await.unwrap_or(Value::Null);
        let comps = v["components"].as_object();
        Self {
            at: Some(Instant::now()),
            reads: v["keyValue"]["keysRead"].as_u64().unwrap_or(0),
            writes: v["keyValue"]["keysWritten"].as_u64().unwrap_or(0),
            stream_instances: v["components"]["events"]["instancesLive"]
                .as_u64()
                .unwrap_or(0),
            started: comps.map_or(0, |c| {
                c.values()
                    .map(|c| c["instancesStarted"].as_u64().unwrap_or(0))
                    .sum()
            }),
        }
    }

    /// Keys read and written per second between `self` and `later`.
    fn rates(&self, later: &Self) -> (f64, f64) {
        let secs = match (self.at, later.at) {
            (Some(a), Some(b)) => (b - a).as_secs_f64().max(1e-9),
            _ => return (0.0, 0.0),
        };
        (
            later.reads.saturating_sub(self.reads) as f64 / secs,
            later.writes.saturating_sub(self.writes) as f64 / secs,
        )
    }
}

impl RunResult {
    /// Every accepted create delivered and answered once, no request failed.
    pub fn clean(&self) -> bool {
        self.delivered == self.accepted
            && self.answered == self.accepted
            && self.duplicates == 0
            && self.errors.is_empty()
    }

    /// Idle RSS per connected agent, bytes.
    pub fn rss_per_agent(&self) -> f64 {
        self.rss_connected.saturating_sub(self.rss_before) as f64 / self.agents.max(1) as f64
    }
}

/// A server child process.
struct Server {
    child: Child,
    base: String,
    pid: u32,
    _state: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

async fn spawn(mut cmd: Command) -> anyhow::Result<Server> {
    let state = tempfile::tempdir()?;
    cmd.stderr(Stdio::piped())
        .stdout(Stdio::null())
        .kill_on_drop(true);
    let mut child = cmd.spawn().context("cannot start the server")?;
    let pid = child.id().context("pid")?;
    let mut lines = BufReader::new(child.stderr.take().context("stderr")?).lines();
    let base = tokio::time::timeout(Duration::from_secs(120), async {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(url) = line.strip_prefix("Serving ") {
                return Some(url.trim().to_string());
            }
        }
        None
    })
    .await
    .ok()
    .flatten()
    .context("the server did not start")?;
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok(Server {
        child,
        base,
        pid,
        _state: state,
    })
}

async fn start_host(args: &RunArgs) -> anyhow::Result<Server> {
    let root = repo_root();
    // SPIN_LOCAL_BIN points at another build of the host (e.g. one with symbols, for profiling).
    let bin = std::env::var_os("SPIN_LOCAL_BIN")
        .map_or_else(|| root.join("target/release/spin-local"), PathBuf::from);
    anyhow::ensure!(
        bin.exists(),
        "{} is missing: build it with `cargo build --release`",
        bin.display()
    );
    let state = tempfile::tempdir()?;
    let mut cmd = Command::new(bin);
    cmd.arg("up")
        .arg("--from")
        .arg(root.join("spin.toml"))
        .args(["--listen", "127.0.0.1:0", "--state-dir"])
        .arg(state.path())
        .args([
            "--component-concurrent-reuse",
            &format!("events={}", args.stream_reuse),
        ])
        .args(["--variable", &format!("stream_tick_ms={}", args.tick_ms)])
        .args(
            (args.stream_instances > 0)
                .then(|| {
                    [
                        "--component-max-instances".to_string(),
                        format!("events={}", args.stream_instances),
                    ]
                })
                .into_iter()
                .flatten(),
        )
        .args(["--variable", "legacy_poll_ms=1000"])
        .env("SPIN_VARIABLE_TOKEN_SECRET", "bench-secret")
        .env("SPIN_VARIABLE_ADMIN_TOKEN", ADMIN);
    let mut server = spawn(cmd).await?;
    server._state = state;
    Ok(server)
}

async fn start_floor() -> anyhow::Result<Server> {
    let mut cmd = Command::new(std::env::current_exe()?);
    cmd.args(["floor-server", "--listen", "127.0.0.1:0"]);
    spawn(cmd).await
}

/// Shared measurements of one run.
#[derive(Default)]
struct Metrics {
    sent: Mutex<HashMap<u64, Instant>>,
    delivered: Mutex<HashSet<u64>>,
    answered: Mutex<HashSet<u64>>,
    duplicates: Mutex<u64>,
    delivery: Mutex<Option<Histogram<u64>>>,
    round_trip: Mutex<Option<Histogram<u64>>>,
    errors: Mutex<BTreeMap<String, u64>>,
    accepted: Mutex<u64>,
    ready: Mutex<usize>,
}

fn record(h: &Mutex<Option<Histogram<u64>>>, since: Instant) {
    let us = u64::try_from(since.elapsed().as_micros())
        .unwrap_or(u64::MAX)
        .max(1);
    if let Ok(mut h) = h.lock() {
        let h = h.get_or_insert_with(|| {
            Histogram::new_with_bounds(1, 600_000_000, 3).expect("histogram bounds")
        });
        let _ = h.record(us.min(600_000_000));
    }
}

impl Metrics {
    fn error(&self, what: String) {
        *self.errors.lock().unwrap().entry(what).or_default() += 1;
    }

    fn key_of(message: &str) -> Option<u64> {
        message.strip_prefix("bench-")?.parse().ok()
    }

    /// An addressee learned of request `key`; returns true the first time.
    fn on_created(&self, key: u64) -> bool {
        let t = self.sent.lock().unwrap().get(&key).copied();
        if !self.delivered.lock().unwrap().insert(key) {
            *self.duplicates.lock().unwrap() += 1;
            return false;
        }
        if let Some(t) = t {
            record(&self.delivery, t);
        }
        true
    }

    fn on_answered(&self, key: u64) {
        let t = self.sent.lock().unwrap().get(&key).copied();
        if !self.answered.lock().unwrap().insert(key) {
            *self.duplicates.lock().unwrap() += 1;
            return;
        }
        if let Some(t) = t {
            record(&self.round_trip, t);
        }
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Push,
    Poll,
    Floor,
}

struct Ctx {
    mode: Mode,
    base: String,
    http: reqwest::Client,
    metrics: Arc<Metrics>,
    tokens: Vec<String>,
}

impl Ctx {
    /// What an agent does with one event: the addressee answers, the requester notes the answer.
    async fn handle(self: &Arc<Self>, me: usize, kind: &str, data: &Value) {
        let (key, id, from) = match self.mode {
            Mode::Floor => (
                data["key"].as_u64(),
                None,
                data["from"].as_u64().map(|f| f as usize),
            ),
            _ => (
                Metrics::key_of(data["elicitation"]["message"].as_str().unwrap_or("")),
                data["elicitation"]["id"].as_str().map(str::to_string),
                None,
            ),
        };
        let Some(key) = key else { return };
        match kind {
            "elicitation.created" | "created" => {
                if !self.metrics.on_created(key) {
                    return;
                }
                let ctx = self.clone();
                tokio::spawn(async move {
                    let r = match ctx.mode {
                        Mode::Floor => {
                            let to = from.unwrap_or(0);
                            ctx.http
                                .post(format!("{}/pub/agent-{to}", ctx.base))
                                .json(&json!({ "kind": "answered", "key": key }))
                                .send()
                                .await
                        }
                        _ => {
                            let id = id.unwrap_or_default();
                            ctx.http
                                .post(format!("{}/v1/elicitations/{id}/response", ctx.base))
                                .bearer_auth(&ctx.tokens[me])
                                .json(&json!({ "action": "decline" }))
                                .send()
                                .await
                        }
                    };
                    match r {
                        Ok(r) if r.status().is_success() => {}
                        Ok(r) => ctx.metrics.error(format!("answer {}", r.status().as_u16())),
                        Err(e) => ctx.metrics.error(format!("answer transport: {e}")),
                    }
                });
            }
            // Both parties get the answered event; the round trip ends at the requester.
            "elicitation.answered"
                if data["elicitation"]["from"] == format!("agent-{me}").as_str() =>
            {
                self.metrics.on_answered(key);
            }
            "answered" => self.metrics.on_answered(key),
            _ => {}
        }
    }

    /// Holds agent `me`'s stream open (push, floor) or polls (poll) until `stop`.
    async fn agent(self: Arc<Self>, me: usize, stop: Arc<tokio::sync::Notify>) {
        let name = format!("agent-{me}");
        match self.mode {
            Mode::Poll => {
                *self.metrics.ready.lock().unwrap() += 1;
                let mut since = 0;
                loop {
                    let req = self
                        .http
                        .get(format!(
                            "{}/v1/agents/{name}/messages?since={since}&timeout=25",
                            self.base
                        ))
                        .bearer_auth(&self.tokens[me])
                        .send();
                    let r = tokio::select! { r = req => r, () = stop.notified() => return };
                    let body: Value = match r {
                        Ok(r) if r.status().is_success() => r.json().await.unwrap_or(Value::Null),
                        Ok(r) => {
                            self.metrics.error(format!("poll {}", r.status().as_u16()));
                            continue;
                        }
                        Err(e) => {
                            self.metrics.error(format!("poll transport: {e}"));
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            continue;
                        }
                    };
                    for e in body["events"].as_array().into_iter().flatten() {
                        since = since.max(e["sequence"].as_i64().unwrap_or(since));
                        self.handle(me, e["eventType"].as_str().unwrap_or(""), &e["data"])
                            .await;
                    }
                }
            }
            Mode::Push | Mode::Floor => {
                let mut last: Option<String> = None;
                let mut first = true;
                loop {
                    let url = match self.mode {
                        Mode::Floor => format!("{}/sub/{name}", self.base),
                        _ => format!("{}/v1/agents/{name}/events", self.base),
                    };
                    let mut req = self.http.get(url).bearer_auth(&self.tokens[me]);
                    if let Some(id) = &last {
                        req = req.header("last-event-id", id);
                    }
                    let resp = match req.send().await {
                        Ok(r) if r.status().is_success() => r,
                        Ok(r) => {
                            self.metrics
                                .error(format!("stream {}", r.status().as_u16()));
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            continue;
                        }
                        Err(e) => {
                            self.metrics.error(format!("stream transport: {e}"));
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            continue;
                        }
                    };
                    let mut events =
                        eventsource_stream::Eventsource::eventsource(resp.bytes_stream());
                    loop {
                        let next = tokio::select! { n = events.next() => n, () = stop.notified() => return };
                        let Some(Ok(e)) = next else { break };
                        if self.mode == Mode::Push && !e.id.is_empty() {
                            last = Some(e.id.clone());
                        }
                        if e.event == "ready" {
                            if first {
                                *self.metrics.ready.lock().unwrap() += 1;
                                first = false;
                            }
                            continue;
                        }
                        let data: Value = serde_json::from_str(&e.data).unwrap_or(Value::Null);
                        let kind = if self.mode == Mode::Floor {
                            data["kind"].as_str().unwrap_or("").to_string()
                        } else {
                            e.event.clone()
                        };
                        self.handle(me, &kind, &data).await;
                    }
                }
            }
        }
    }
}

async fn tokens(http: &reqwest::Client, base: &str, n: usize) -> anyhow::Result<Vec<String>> {
    let futs = (0..n).map(|i| async move {
        let r: Value = http
            .post(format!("{base}/v1/tokens"))
            .bearer_auth(ADMIN)
            .json(&json!({ "agent": format!("agent-{i}"), "ttlSeconds": 3600 }))
            .send()
            .await?
            .json()
            .await?;
        r["token"].as_str().map(str::to_string).context("no token")
    });
    futures::stream::iter(futs)
        .buffered(32)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect()
}

/// Runs one mode at one agent count.
async fn run_one(args: &RunArgs, mode_name: &str, n: usize) -> anyhow::Result<RunResult> {
    let mode = match mode_name {
        "push" => Mode::Push,
        "poll" => Mode::Poll,
        "floor" => Mode::Floor,
        other => anyhow::bail!("unknown mode {other}"),
    };
    let server = if mode == Mode::Floor {
        start_floor().await?
    } else {
        start_host(args).await?
    };
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(4096)
        .tcp_nodelay(true)
        .build()?;
    let tokens = if mode == Mode::Floor {
        vec![String::new(); n]
    } else {
        tokens(&http, &server.base, n).await?
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_before = proc_stats::rss_bytes(server.pid).unwrap_or(0);
    let metrics = Arc::new(Metrics::default());
    let ctx = Arc::new(Ctx {
        mode,
        base: server.base.clone(),
        http: http.clone(),
        metrics: metrics.clone(),
        tokens,
    });
    let stop = Arc::new(tokio::sync::Notify::new());
    let connect_start = Instant::now();
    let agents: Vec<_> = (0..n)
        .map(|i| tokio::spawn(ctx.clone().agent(i, stop.clone())))
        .collect();
    while *metrics.ready.lock().unwrap() < n {
        anyhow::ensure!(
            connect_start.elapsed() < Duration::from_secs(120),
            "agents did not connect"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let connect_seconds = connect_start.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let on_host = mode != Mode::Floor;
    let sample = || HostSample::take(&http, &server.base);
    let idle0 = if on_host {
        sample().await
    } else {
        HostSample::default()
    };
    let idle_cpu_percent =
        proc_stats::cpu_percent_over(server.pid, Duration::from_secs_f64(args.idle_seconds))
            .await
            .unwrap_or(-1.0);
    let idle1 = if on_host {
        sample().await
    } else {
        HostSample::default()
    };
    let rss_connected = proc_stats::rss_bytes(server.pid).unwrap_or(0);

    // The load: `rate` creates per second, agent k % n asks agent (k + 1) % n.
    let total = (args.rate * args.duration).round() as u64;
    let interval = Duration::from_secs_f64(1.0 / args.rate);
    let cpu0 = proc_stats::cpu_seconds(server.pid).unwrap_or(0.0);
    let load_start = Instant::now();
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut creates = Vec::with_capacity(total as usize);
    for k in 0..total {
        ticker.tick().await;
        let (from, to) = ((k as usize) % n, (k as usize + 1) % n);
        let ctx = ctx.clone();
        creates.push(tokio::spawn(async move {
            ctx.metrics.sent.lock().unwrap().insert(k, Instant::now());
            let r = match ctx.mode {
                Mode::Floor => {
                    ctx.http
                        .post(format!("{}/pub/agent-{to}", ctx.base))
                        .json(&json!({ "kind": "created", "key": k, "from": from }))
                        .send()
                        .await
                }
                _ => ctx
                    .http
                    .post(format!("{}/v1/elicitations", ctx.base))
                    .bearer_auth(&ctx.tokens[from])
                    .json(&json!({ "to": format!("agent-{to}"), "message": format!("bench-{k}") }))
                    .send()
                    .await,
            };
            match r {
                Ok(r) if r.status().is_success() => *ctx.metrics.accepted.lock().unwrap() += 1,
                Ok(r) => ctx.metrics.error(format!("create {}", r.status().as_u16())),
                Err(e) => ctx.metrics.error(format!("create transport: {e}")),
            }
        }));
    }
    for c in creates {
        let _ = c.await;
    }
    let load_seconds = load_start.elapsed().as_secs_f64();
    // Drain: wait for every accepted create to be delivered and answered (at most 30 s).
    let drain_start = Instant::now();
    loop {
        let accepted = *metrics.accepted.lock().unwrap();
        let done = metrics.delivered.lock().unwrap().len() as u64 >= accepted
            && metrics.answered.lock().unwrap().len() as u64 >= accepted;
        if done || drain_start.elapsed() > Duration::from_secs(30) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let cpu1 = proc_stats::cpu_seconds(server.pid).unwrap_or(0.0);
    let load1 = if on_host {
        sample().await
    } else {
        HostSample::default()
    };
    let busy_seconds = load_start.elapsed().as_secs_f64();
    let rss_after = proc_stats::rss_bytes(server.pid).unwrap_or(0);
    // Late duplicates would show up here.
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.notify_waiters();
    for a in agents {
        a.abort();
    }
    let empty = || Histogram::<u64>::new_with_bounds(1, 600_000_000, 3).expect("bounds");
    let delivery = Stats::of(
        metrics
            .delivery
            .lock()
            .unwrap()
            .as_ref()
            .unwrap_or(&empty()),
    );
    let round_trip = Stats::of(
        metrics
            .round_trip
            .lock()
            .unwrap()
            .as_ref()
            .unwrap_or(&empty()),
    );
    let accepted = *metrics.accepted.lock().unwrap();
    let delivered = metrics.delivered.lock().unwrap().len() as u64;
    let answered = metrics.answered.lock().unwrap().len() as u64;
    let errors = metrics.errors.lock().unwrap().clone();
    let duplicates = *metrics.duplicates.lock().unwrap();
    drop(server);
    let host = on_host.then(|| {
        let (kv_reads_idle, _) = idle0.rates(&idle1);
        let (kv_reads_load, kv_writes_load) = idle1.rates(&load1);
        HostFigures {
            kv_reads_idle,
            kv_reads_load,
            kv_writes_load,
            stream_instances: idle1.stream_instances,
            instances_started: load1.started,
        }
    });
    Ok(RunResult {
        mode: mode_name.to_string(),
        agents: n,
        rate: args.rate,
        duration: args.duration,
        sent: total,
        accepted,
        delivered,
        duplicates,
        answered,
        delivery_rate: if accepted == 0 {
            0.0
        } else {
            100.0 * delivered as f64 / accepted as f64
        },
        errors,
        delivery,
        round_trip,
        throughput: delivered as f64 / load_seconds.max(1e-9),
        idle_cpu_percent,
        load_cpu_percent: 100.0 * (cpu1 - cpu0) / busy_seconds,
        rss_before,
        rss_connected,
        rss_after,
        connect_seconds,
        host,
    })
}

/// Runs every agent count × mode, printing progress as it goes.
pub async fn run_all(args: &RunArgs) -> anyhow::Result<Vec<RunResult>> {
    let mut results = Vec::new();
    for &n in &args.agents {
        for mode in &args.modes {
            eprint!("{mode:>5} × {n:>4} agents … ");
            let r = run_one(args, mode, n)
                .await
                .with_context(|| format!("{mode} with {n} agents"))?;
            eprintln!(
                "delivery p50 {:.2} ms p99 {:.2} ms, round trip p50 {:.2} ms, {}/{} delivered, idle CPU {:.1} %, {:.1} KiB/agent{}{}",
                r.delivery.p50,
                r.delivery.p99,
                r.round_trip.p50,
                r.delivered,
                r.accepted,
                r.idle_cpu_percent,
                r.rss_per_agent() / 1024.0,
                r.host.as_ref().map_or(String::new(), |h| format!(
                    ", {} stream instances, KV reads/s idle {:.0} load {:.0}",
                    h.stream_instances, h.kv_reads_idle, h.kv_reads_load
                )),
                if r.clean() { "" } else { "  << NOT CLEAN" }
            );
            results.push(r);
        }
    }
    Ok(results)
}
