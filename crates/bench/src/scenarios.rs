//! The scenarios. Each runs every requested mode with the same parameters, one fresh server per
//! mode (and per backend: the scaling and saturation scenarios run push on every `--backend`, poll
//! on the first, the floor once; the others run on the first backend), and turns what the agents
//! measured into result rows.
//!
//! Figures every row has, with one definition for every mode:
//! - **elicitations/s** created, delivered and answered: accepted creates ÷ (first create sent →
//!   last acknowledgement received), first deliveries to the addressee ÷ (first create sent → last
//!   delivery received), first answered events at the requester ÷ (first create sent → last
//!   answer received) — each count divided by the time it took to *arrive*, not by the time
//!   spent sending;
//! - **stream ends**: planned (the server's closing comment, then the end of the body) and cuts
//!   (closed without it, a body error or an HTTP error), while the step ran;
//! - CPU (% of one core) of the server, of Redis (`--backend redis`) and of this load generator,
//!   from the start of sending until everything settled, all from `/proc/<pid>`; all of them share
//!   the machine's cores;
//! - the store's work per elicitation created in that window: every key-value counter the host
//!   reports, and for Redis the commands it executed (`INFO commandstats`), all told — background
//!   polling included.
//!
//! Saturation ([`saturation`]) finds its offered rate with an open-loop ramp and then holds it for
//! longer than `stream_max_seconds`; see there.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::IsTerminal;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinHandle;

use crate::RunArgs;
use crate::agents::{Ctx, Metrics, Mode, PHASE, Percentiles, REQUEST_TIMEOUT, agent_id, cdf};
use crate::proc_stats;
use crate::server::{
    ADMIN, Backend, Balancer, HostFigures, HostSample, Server, stream_max_seconds,
};

mod mcp;
pub use mcp::mcp;

/// What a `kill -9` in the middle of a run cost.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Recovery {
    /// Kill → the restarted host answers requests, seconds.
    pub serving_after: f64,
    /// Kill → the first request created after the restart reached its addressee, seconds.
    pub first_delivery_after: f64,
    /// Creates acknowledged (2xx) before the kill.
    pub acknowledged_before_kill: u64,
    /// How many of those reached their addressee (exactly once: duplicates count separately).
    pub delivered_of_those: u64,
    /// Streams cut from the kill on.
    pub streams_cut: u64,
    /// Of those, agents not streaming again at the end.
    pub not_streaming_again: u64,
    /// The longest time from a cut to streaming again, seconds.
    pub longest_to_stream_again: f64,
}

/// Elicitations per second, each count divided by the time from the first create sent to the
/// last of its kind arriving.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Rates {
    /// Accepted creates ÷ (first sent → last acknowledgement received).
    pub created: f64,
    /// Created events first received by addressees ÷ (first sent → last such arrival).
    pub delivered: f64,
    /// Answered events first received by requesters ÷ (first sent → last such arrival).
    pub answered: f64,
}

fn per_second(n: u64, from: Option<Instant>, to: Option<Instant>) -> f64 {
    match (from, to) {
        (Some(a), Some(b)) if n > 0 => {
            n as f64 / b.saturating_duration_since(a).as_secs_f64().max(1e-6)
        }
        _ => 0.0,
    }
}

/// One step of the saturation ramp.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct RampStep {
    /// Creates per second offered.
    pub offered: f64,
    /// Creates per second actually sent (below `offered` when the in-flight cap held the sender).
    pub sent: f64,
    /// Created events per second that reached their addressee during the step.
    pub delivered: f64,
    /// Creates sent but not yet delivered at the end of the step, as seconds of offered load.
    pub backlog_seconds: f64,
    /// Whether arrivals kept up with the offered rate.
    pub kept_up: bool,
}

/// One row of the report: one scenario step in one mode (on one backend).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunResult {
    /// Addressees that missed accepted creates, how many, and where their stream stood at the end.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub undelivered: Vec<String>,
    /// single-pair, scaling, saturation, burst, timeout-cascade, contention, sustained, recovery.
    pub scenario: String,
    /// The step (e.g. "1000 agents", "phase 2: 200 agents", "50 writers").
    pub label: String,
    /// push, poll or floor.
    pub mode: String,
    /// The app's key-value backend (sqlite, redis); none for the floor.
    pub backend: Option<String>,
    /// Agents taking part.
    pub agents: usize,
    /// The offered rate of creates per second, where the step has one.
    pub offered_rate: Option<f64>,
    /// Creates sent.
    pub sent: u64,
    /// Creates the server accepted.
    pub accepted: u64,
    /// Distinct created events addressees received.
    pub delivered: u64,
    /// Events received more than once.
    pub duplicates: u64,
    /// Distinct answered events requesters received.
    pub answered: u64,
    /// Answers expected (accepted creates to agents that answer).
    pub expected_answers: u64,
    /// Distinct expired events requesters received.
    pub expired: u64,
    /// Expiries expected (accepted creates to silent agents).
    pub expected_expiries: u64,
    /// `delivered / accepted`, percent.
    pub delivery_rate: f64,
    /// Failed requests by kind (outside an intended outage).
    pub errors: BTreeMap<String, u64>,
    /// Failed requests while the host was down on purpose (recovery only).
    pub outage_errors: BTreeMap<String, u64>,
    /// Sequence numbers an agent received out of order (not above the previous one).
    pub order_violations: u64,
    /// Sequence numbers skipped: slots sealed after their writer died (only a crash makes them).
    pub gaps: u64,
    /// Times an agent fell a retained window (1000 events) behind and re-synced from its inbox.
    pub resets: u64,
    /// Streams that ended as the server planned while the step ran.
    pub planned_ends: u64,
    /// Streams cut while the step ran, by how.
    pub stream_cuts: BTreeMap<String, u64>,
    /// The `retry:` in effect at the planned ends (ms → ends).
    pub retry_at_planned_end: BTreeMap<u64, u64>,
    /// Create sent → addressee's event received.
    pub delivery: Percentiles,
    /// Create sent → requester's answered event received.
    pub round_trip: Percentiles,
    /// Create sent → the server's acknowledgement received.
    pub create: Percentiles,
    /// Deadline → requester's expired event received (timeout cascade).
    pub expiry_lateness: Option<Percentiles>,
    /// Delivery latency distribution, (ms, fraction), for plots.
    pub delivery_cdf: Vec<(f64, f64)>,
    /// Elicitations per second created, delivered and answered.
    pub elicitations_per_second: Rates,
    /// Seconds from the first create sent until every create was acknowledged.
    pub seconds: f64,
    /// Server CPU with every agent connected and no traffic, percent of one core.
    pub idle_cpu_percent: Option<f64>,
    /// Redis CPU over the same idle window.
    pub idle_store_cpu_percent: Option<f64>,
    /// Server CPU from the start of sending until everything settled, percent of one core.
    pub load_cpu_percent: f64,
    /// Redis CPU over the same window.
    pub store_cpu_percent: Option<f64>,
    /// This load generator's CPU over the same window.
    pub client_cpu_percent: f64,
    /// Server RSS before the agents connected, bytes.
    pub rss_before: u64,
    /// Server RSS with every agent connected, bytes.
    pub rss_connected: u64,
    /// Server RSS at the end, bytes.
    pub rss_after: u64,
    /// Redis RSS at the end, bytes.
    pub store_rss_after: Option<u64>,
    /// Seconds until every agent was connected.
    pub connect_seconds: f64,
    /// The host's own counters, and Redis's.
    pub host: Option<HostFigures>,
    /// (seconds since the start of sending, RSS bytes), every 5 s (sustained).
    pub rss_series: Vec<(f64, u64)>,
    /// (seconds since the start of sending, host RSS bytes, what the store holds), every
    /// `--soak-sample-seconds` (soak).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub soak_series: Vec<(f64, u64, crate::server::StoreStats)>,
    /// The app's `retention_seconds` and the elicitations' `ttlSeconds` (soak).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub soak_lifetime: Option<(u64, u64)>,
    /// The crash (recovery).
    pub recovery: Option<Recovery>,
    /// The ramp that found the saturating rate (saturation).
    pub ramp: Vec<RampStep>,
    /// Hosts serving the app (scale-out; 1 elsewhere, 0 for the floor).
    #[serde(default)]
    pub nodes: usize,
    /// Each node's CPU from the start of sending until everything settled, percent of one core.
    #[serde(default)]
    pub node_cpu_percent: Vec<f64>,
    /// Each node's CPU with every agent connected and no traffic, percent of one core.
    #[serde(default)]
    pub node_idle_cpu_percent: Vec<f64>,
    /// Each node's RSS at the end, bytes.
    #[serde(default)]
    pub node_rss: Vec<u64>,
}

impl RunResult {
    /// Every accepted create delivered once and answered or expired as expected, in order, and no
    /// request failed outside an intended outage.
    pub fn clean(&self) -> bool {
        self.delivered == self.accepted
            && self.answered == self.expected_answers
            && self.expired == self.expected_expiries
            && self.duplicates == 0
            && self.order_violations == 0
            && self.errors.is_empty()
            && self
                .recovery
                .as_ref()
                .is_none_or(|r| r.delivered_of_those == r.acknowledged_before_kill)
    }

    /// Idle RSS per connected agent, bytes.
    pub fn rss_per_agent(&self) -> f64 {
        self.rss_connected.saturating_sub(self.rss_before) as f64 / self.agents.max(1) as f64
    }

    /// Whether the step's deliveries fell behind its offered rate (saturation).
    pub fn saturated(&self) -> Option<bool> {
        self.offered_rate
            .map(|o| self.elicitations_per_second.delivered < 0.95 * o)
    }
}

/// One way to run a scenario: a mode and, for the app, its backend.
#[derive(Clone, Copy, Debug)]
struct Variant {
    mode: Mode,
    backend: Option<Backend>,
}

impl Variant {
    fn name(self) -> String {
        match self.backend {
            Some(b) => format!("{} on {}", self.mode.name(), b.name()),
            None => self.mode.name().to_string(),
        }
    }
}

/// The variants a scenario runs, in order: push (on every backend when `every_backend`, else on
/// the first), poll on the first backend, the floor when the scenario is plain delivery.
fn variants(
    args: &RunArgs,
    floor_applies: bool,
    every_backend: bool,
) -> anyhow::Result<Vec<Variant>> {
    let first = args.backend[0];
    let mut out = Vec::new();
    for m in &args.modes {
        match Mode::parse(m)? {
            Mode::Push if every_backend => out.extend(args.backend.iter().map(|b| Variant {
                mode: Mode::Push,
                backend: Some(*b),
            })),
            Mode::Floor if !floor_applies => {}
            Mode::Floor => out.push(Variant {
                mode: Mode::Floor,
                backend: None,
            }),
            mode => out.push(Variant {
                mode,
                backend: Some(first),
            }),
        }
    }
    Ok(out)
}

/// One server with its agents.
struct Session {
    variant: Variant,
    server: Server,
    _balancer: Option<Balancer>,
    ctx: Arc<Ctx>,
    running: HashMap<usize, (Arc<Notify>, JoinHandle<()>)>,
    rss_before: u64,
}

async fn tokens(http: &reqwest::Client, base: &str, n: usize) -> anyhow::Result<Vec<String>> {
    let futs = (0..n).map(|i| async move {
        let r: Value = http
            .post(format!("{base}/v1/tokens"))
            .bearer_auth(ADMIN)
            .json(&json!({ "agent": agent_id(i), "ttlSeconds": 3600 }))
            .timeout(REQUEST_TIMEOUT)
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

impl Session {
    /// Starts a server and mints tokens for `agents` agents (none connected yet).
    async fn open(
        args: &RunArgs,
        variant: Variant,
        agents: usize,
        silent: HashSet<usize>,
    ) -> anyhow::Result<Self> {
        Self::open_on(args, variant, agents, silent, 1, false).await
    }

    /// As [`open`](Self::open), the app on `nodes` hosts sharing its Redis; with `balanced`, the
    /// agents reach them only through HAProxy.
    async fn open_on(
        args: &RunArgs,
        variant: Variant,
        agents: usize,
        silent: HashSet<usize>,
        nodes: usize,
        balanced: bool,
    ) -> anyhow::Result<Self> {
        let mode = variant.mode;
        let mut server = Server::start(args, mode, variant.backend).await?;
        if nodes > 1 {
            server.add_nodes(args, nodes - 1).await?;
        }
        let balancer = if balanced {
            Some(Balancer::start(&server.bases()).await?)
        } else {
            None
        };
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(4096)
            .tcp_nodelay(true)
            .build()?;
        let tokens = if mode == Mode::Floor {
            vec![String::new(); agents]
        } else {
            tokens(&http, &server.base, agents).await?
        };
        tokio::time::sleep(Duration::from_millis(300)).await;
        let rss_before = server.rss();
        let ctx = Arc::new(Ctx {
            mode,
            base: server.base.clone(),
            nodes: match &balancer {
                Some(b) => vec![b.base.clone()],
                None => server.bases(),
            },
            http,
            metrics: Arc::new(Metrics::default()),
            tokens,
            silent,
        });
        Ok(Self {
            variant,
            server,
            _balancer: balancer,
            ctx,
            running: HashMap::new(),
            rss_before,
        })
    }

    fn metrics(&self) -> &Metrics {
        &self.ctx.metrics
    }

    /// Connects agents `range`; returns the seconds until all were up.
    async fn connect(&mut self, range: Range<usize>) -> anyhow::Result<f64> {
        let started = Instant::now();
        let target = self.metrics().counts().ready + range.len();
        for i in range {
            let stop = Arc::new(Notify::new());
            let task = tokio::spawn(self.ctx.clone().agent(i, stop.clone()));
            self.running.insert(i, (stop, task));
        }
        while self.metrics().counts().ready < target {
            anyhow::ensure!(
                started.elapsed() < Duration::from_secs(120),
                "agents did not connect"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(started.elapsed().as_secs_f64())
    }

    /// Disconnects agents `range`.
    fn disconnect(&mut self, range: Range<usize>) {
        for i in range {
            if let Some((stop, task)) = self.running.remove(&i) {
                stop.notify_one();
                task.abort();
            }
        }
    }

    fn sample(&self) -> impl Future<Output = HostSample> + '_ {
        self.server.sample(&self.ctx.http)
    }

    /// Sends one create in the background.
    fn create(&self, key: u64, from: usize, to: usize, ttl: Option<u64>) -> JoinHandle<bool> {
        let ctx = self.ctx.clone();
        tokio::spawn(async move { ctx.create(key, from, to, ttl).await })
    }

    /// Waits (at most `limit`) until everything accepted was delivered and answered or expired.
    async fn settle(&self, limit: Duration) {
        let started = Instant::now();
        while !self.metrics().settled(&self.ctx.silent) && started.elapsed() < limit {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn stop(mut self) {
        if self.variant.mode == Mode::Push {
            // The floor's streams send the `retry:` values the app's did.
            let (opening, closing) = self.metrics().usual_retry();
            crate::server::note_app_retry(opening, closing);
        }
        let all: Vec<usize> = self.running.keys().copied().collect();
        for i in all {
            self.disconnect(i..i + 1);
        }
    }
}

/// How long a scenario waits for every accepted create to be delivered and answered.
const SETTLE: Duration = Duration::from_secs(30);

/// The plan of `paced` in which request `k` goes from agent `k mod n` to the next one.
fn round_robin(n: usize) -> impl Fn(u64) -> (usize, usize) {
    move |k| ((k as usize) % n, (k as usize + 1) % n)
}

/// An open-loop load: creates at `rate` per second (missed ticks are sent at once, so the count
/// offered by any moment is `rate × elapsed`), keys `phase * PHASE + i`.
struct OpenLoop<'a> {
    phase: usize,
    rate: f64,
    ttl: Option<u64>,
    /// Stops sending early when set.
    stop: Option<&'a AtomicBool>,
    /// At most this many creates awaiting acknowledgement; the sender waits for room.
    cap: Option<Arc<Semaphore>>,
}

impl OpenLoop<'_> {
    fn at(phase: usize, rate: f64) -> Self {
        Self {
            phase,
            rate,
            ttl: None,
            stop: None,
            cap: None,
        }
    }

    /// Sends `n` creates, `plan(i)` giving (from, to) of the `i`-th; returns their tasks (each
    /// ends when its create was answered by the server).
    async fn send(
        &self,
        ctx: &Arc<Ctx>,
        n: u64,
        plan: &impl Fn(u64) -> (usize, usize),
    ) -> Vec<JoinHandle<bool>> {
        let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / self.rate.max(0.001)));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        let mut sends = Vec::new();
        for i in 0..n {
            if self.stop.is_some_and(|s| s.load(Ordering::Relaxed)) {
                break;
            }
            ticker.tick().await;
            let permit = match &self.cap {
                Some(cap) => cap.clone().acquire_owned().await.ok(),
                None => None,
            };
            let (from, to) = plan(i);
            let ctx = ctx.clone();
            let key = self.phase as u64 * PHASE + i;
            let ttl = self.ttl;
            sends.push(tokio::spawn(async move {
                let ok = ctx.create(key, from, to, ttl).await;
                drop(permit);
                ok
            }));
        }
        sends
    }

    /// Sends `n` creates and returns the seconds until every one was answered by the server.
    async fn run(&self, ctx: &Arc<Ctx>, n: u64, plan: impl Fn(u64) -> (usize, usize)) -> f64 {
        let started = Instant::now();
        for t in self.send(ctx, n, &plan).await {
            let _ = t.await;
        }
        started.elapsed().as_secs_f64()
    }
}

/// Sends `n` creates at `rate` per second (fewer if `stop` is set first), `plan(i)` giving
/// (from, to) of the `i`-th; keys are `phase * PHASE + i`. Returns the seconds it took until every
/// create was answered by the server.
async fn paced(
    ctx: &Arc<Ctx>,
    phase: usize,
    n: u64,
    rate: f64,
    ttl: Option<u64>,
    plan: impl Fn(u64) -> (usize, usize),
    stop: Option<&AtomicBool>,
) -> f64 {
    let load = OpenLoop {
        ttl,
        stop,
        ..OpenLoop::at(phase, rate)
    };
    load.run(ctx, n, plan).await
}

/// A live progress line on a terminal (nothing when stderr is not one).
struct Progress {
    task: Option<JoinHandle<()>>,
}

impl Progress {
    fn start(what: String, metrics: Arc<Metrics>) -> Self {
        if !std::io::stderr().is_terminal() {
            return Self { task: None };
        }
        let started = Instant::now();
        let task = tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(250)).await;
                let c = metrics.counts();
                eprint!(
                    "\r\x1b[2K  {what}: {:.0} s, {} agents up, sent {}, accepted {}, delivered {}, answered {}, expired {}, errors {}, stream ends {}",
                    started.elapsed().as_secs_f64(),
                    c.ready,
                    c.sent,
                    c.accepted,
                    c.delivered,
                    c.answered,
                    c.expired,
                    c.errors,
                    c.planned_ends
                );
            }
        });
        Self { task: Some(task) }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
            eprint!("\r\x1b[2K");
        }
    }
}

/// What a scenario step measured beyond the agents' metrics.
struct Step {
    scenario: &'static str,
    label: String,
    agents: usize,
    phases: Vec<usize>,
    offered_rate: Option<f64>,
    seconds: f64,
    connect_seconds: f64,
    idle_cpu_percent: Option<f64>,
    idle_store_cpu_percent: Option<f64>,
    /// Host counters at the start and the end of the idle window.
    idle: Option<(HostSample, HostSample)>,
    rss_connected: u64,
    rss_series: Vec<(f64, u64)>,
    soak_series: Vec<(f64, u64, crate::server::StoreStats)>,
    soak_lifetime: Option<(u64, u64)>,
    recovery: Option<Recovery>,
    outage_errors: BTreeMap<String, u64>,
    ramp: Vec<RampStep>,
    node_idle_cpu_percent: Vec<f64>,
    /// The creates the step's own agents counted accepted, when they are not the shared agents'
    /// (the MCP scenario's): the host's work is divided by these.
    accepted: Option<u64>,
}

impl Step {
    fn new(scenario: &'static str, label: String, agents: usize, phase: usize) -> Self {
        Self {
            scenario,
            label,
            agents,
            phases: vec![phase],
            offered_rate: None,
            seconds: 0.0,
            connect_seconds: 0.0,
            idle_cpu_percent: None,
            idle_store_cpu_percent: None,
            idle: None,
            rss_connected: 0,
            rss_series: Vec::new(),
            soak_series: Vec::new(),
            soak_lifetime: None,
            recovery: None,
            outage_errors: BTreeMap::new(),
            ramp: Vec::new(),
            node_idle_cpu_percent: Vec::new(),
            accepted: None,
        }
    }
}

/// Counts at the start of a step, so a step reports only its own.
struct Mark {
    counts: crate::agents::Counts,
    expected: (u64, u64),
    errors: BTreeMap<String, u64>,
    cuts: BTreeMap<String, u64>,
    retry_at_planned_end: BTreeMap<u64, u64>,
    order_violations: u64,
    gaps: u64,
    resets: u64,
    /// Each node's CPU seconds (their sum is the server's).
    node_cpu: Vec<f64>,
    store_cpu: Option<f64>,
    client_cpu: f64,
    sample: HostSample,
    at: Instant,
}

impl Mark {
    async fn now(s: &Session) -> Self {
        let sample = s.sample().await;
        Self {
            counts: s.metrics().counts(),
            expected: s.metrics().expected(&s.ctx.silent),
            errors: s.metrics().errors(),
            cuts: s.metrics().cuts(),
            retry_at_planned_end: s.metrics().retry_at_planned_end(),
            order_violations: s.metrics().order_violations(),
            gaps: s.metrics().gaps(),
            resets: s.metrics().resets(),
            node_cpu: s.server.node_cpu_seconds(),
            store_cpu: s.server.redis_cpu_seconds(),
            client_cpu: proc_stats::own_cpu_seconds(),
            sample,
            at: Instant::now(),
        }
    }
}

fn minus<K: Ord + Clone>(a: &BTreeMap<K, u64>, b: &BTreeMap<K, u64>) -> BTreeMap<K, u64> {
    a.iter()
        .filter_map(|(k, v)| {
            let d = v.saturating_sub(b.get(k).copied().unwrap_or(0));
            (d > 0).then(|| (k.clone(), d))
        })
        .collect()
}

/// The row of a step that began at `mark`: call it once everything settled.
async fn finish(s: &Session, mark: &Mark, step: Step) -> RunResult {
    let end = s.sample().await;
    let node_cpu = s.server.node_cpu_seconds();
    let m = s.metrics();
    let c = m.counts();
    let (expected_answers, expected_expiries) = m.expected(&s.ctx.silent);
    let h = m.take_phases(&step.phases);
    let pct = |h: &Option<hdrhistogram::Histogram<u64>>| {
        h.as_ref().map(Percentiles::of).unwrap_or_default()
    };
    let accepted = step.accepted.unwrap_or(c.accepted - mark.counts.accepted);
    let delivered = c.delivered - mark.counts.delivered;
    let answered = c.answered - mark.counts.answered;
    let secs = mark.at.elapsed().as_secs_f64().max(1e-9);
    let percent = |now: f64, then: f64| 100.0 * (now - then) / secs;
    let errors = minus(&minus(&m.errors(), &mark.errors), &step.outage_errors);
    let mut undelivered = m.undelivered();
    undelivered.truncate(20);
    let host = HostSample::figures(
        step.idle.as_ref().map(|(a, b)| (a, b)),
        &mark.sample,
        &end,
        accepted,
    );
    RunResult {
        undelivered,
        scenario: step.scenario.to_string(),
        label: step.label,
        mode: s.variant.mode.name().to_string(),
        backend: s.variant.backend.map(|b| b.name().to_string()),
        agents: step.agents,
        offered_rate: step.offered_rate,
        sent: c.sent - mark.counts.sent,
        accepted,
        delivered,
        duplicates: c.duplicates - mark.counts.duplicates,
        answered,
        expected_answers: expected_answers - mark.expected.0,
        expired: c.expired - mark.counts.expired,
        expected_expiries: expected_expiries - mark.expected.1,
        delivery_rate: if accepted == 0 {
            0.0
        } else {
            100.0 * delivered as f64 / accepted as f64
        },
        errors,
        outage_errors: step.outage_errors,
        order_violations: m.order_violations() - mark.order_violations,
        gaps: m.gaps() - mark.gaps,
        resets: m.resets() - mark.resets,
        planned_ends: c.planned_ends - mark.counts.planned_ends,
        stream_cuts: minus(&m.cuts(), &mark.cuts),
        retry_at_planned_end: minus(&m.retry_at_planned_end(), &mark.retry_at_planned_end),
        delivery: pct(&h.delivery),
        round_trip: pct(&h.round_trip),
        create: pct(&h.create),
        expiry_lateness: h.expiry_lateness.as_ref().map(Percentiles::of),
        delivery_cdf: h.delivery.as_ref().map(cdf).unwrap_or_default(),
        elicitations_per_second: Rates {
            created: per_second(accepted, h.first_sent, h.last_ack),
            delivered: per_second(delivered, h.first_sent, h.last_delivered),
            answered: per_second(answered, h.first_sent, h.last_answered),
        },
        seconds: step.seconds,
        idle_cpu_percent: step.idle_cpu_percent,
        idle_store_cpu_percent: step.idle_store_cpu_percent,
        load_cpu_percent: percent(node_cpu.iter().sum(), mark.node_cpu.iter().sum()),
        store_cpu_percent: s
            .server
            .redis_cpu_seconds()
            .zip(mark.store_cpu)
            .map(|(now, then)| percent(now, then)),
        client_cpu_percent: percent(proc_stats::own_cpu_seconds(), mark.client_cpu),
        rss_before: s.rss_before,
        rss_connected: step.rss_connected,
        rss_after: s.server.rss(),
        store_rss_after: s.server.redis_rss(),
        connect_seconds: step.connect_seconds,
        host,
        rss_series: step.rss_series,
        soak_series: step.soak_series,
        soak_lifetime: step.soak_lifetime,
        recovery: step.recovery,
        ramp: step.ramp,
        nodes: if s.variant.mode == Mode::Floor {
            0
        } else {
            1 + s.server.nodes.len()
        },
        node_cpu_percent: node_cpu
            .iter()
            .zip(&mark.node_cpu)
            .map(|(now, then)| percent(*now, *then))
            .collect(),
        node_idle_cpu_percent: step.node_idle_cpu_percent,
        node_rss: s.server.node_rss(),
    }
}

fn say(r: &RunResult) {
    let mode = match &r.backend {
        Some(b) => format!("{} ({b})", r.mode),
        None => r.mode.clone(),
    };
    let e = r.elicitations_per_second;
    let mut line = format!(
        "  {:<15} {:<22} {:<14} delivery p50 {:>8.2} ms p99 {:>8.2} ms, round trip p50 {:>8.2} ms, {}/{} delivered, {:.0}/{:.0}/{:.0} elicitations/s created/delivered/answered",
        r.scenario,
        r.label,
        mode,
        r.delivery.p50,
        r.delivery.p99,
        r.round_trip.p50,
        r.delivered,
        r.accepted,
        e.created,
        e.delivered,
        e.answered
    );
    if r.planned_ends > 0 || !r.stream_cuts.is_empty() {
        line.push_str(&format!(
            ", streams ended {} planned / {} cut",
            r.planned_ends,
            r.stream_cuts.values().sum::<u64>()
        ));
    }
    if let Some(cpu) = r.idle_cpu_percent {
        line.push_str(&format!(
            ", idle CPU {cpu:.1} %, {:.1} KiB/agent",
            r.rss_per_agent() / 1024.0
        ));
    }
    if let Some(redis) = r.host.as_ref().and_then(|h| h.redis.as_ref()) {
        line.push_str(&format!(
            ", {:.1} Redis commands/elicitation",
            redis.per_elicitation
        ));
    }
    if let Some(e) = &r.expiry_lateness {
        line.push_str(&format!(
            ", expiry late p50 {:.0} ms p99 {:.0} ms",
            e.p50, e.p99
        ));
    }
    if let Some(rec) = &r.recovery {
        line.push_str(&format!(
            ", serving after {:.2} s, first delivery after {:.2} s, {}/{} acknowledged before the kill delivered",
            rec.serving_after, rec.first_delivery_after, rec.delivered_of_those, rec.acknowledged_before_kill
        ));
    }
    if !r.clean() {
        line.push_str("  << NOT CLEAN");
    }
    for u in &r.undelivered {
        line.push_str(&format!("\n      undelivered to {u}"));
    }
    eprintln!("{line}");
}

/// 1. Single pair: `pair_count` sequential elicitations from agent 0 to agent 1, each sent once the
///    previous answer arrived.
pub async fn single_pair(args: &RunArgs) -> anyhow::Result<Vec<RunResult>> {
    let mut rows = Vec::new();
    for v in variants(args, true, false)? {
        let mode = v.mode;
        let mut s = Session::open(args, v, 2, HashSet::new()).await?;
        let connect = s.connect(0..2).await?;
        let progress = Progress::start(format!("single pair, {}", v.name()), s.ctx.metrics.clone());
        let mark = Mark::now(&s).await;
        let started = Instant::now();
        let mut done = 0;
        for i in 0..args.pair_count {
            if !s.create(i, 0, 1, None).await.unwrap_or(false) {
                continue;
            }
            done += 1;
            let until = Instant::now() + Duration::from_secs(30);
            while s.metrics().counts().answered < mark.counts.answered + done
                && Instant::now() < until
            {
                tokio::time::sleep(Duration::from_micros(200)).await;
            }
        }
        let mut step = Step::new(
            "single-pair",
            format!("{} sequential", args.pair_count),
            2,
            0,
        );
        step.seconds = started.elapsed().as_secs_f64();
        step.connect_seconds = connect;
        step.rss_connected = s.server.rss();
        s.settle(Duration::from_secs(10)).await;
        drop(progress);
        let r = finish(&s, &mark, step).await;
        say(&r);
        rows.push(r);
        if mode == Mode::Push {
            rows.push(single_pair_waiting(args, &mut s).await?);
        }
        s.stop();
    }
    Ok(rows)
}

/// The single pair again, the requester without a stream: after each create it reads the request
/// with `?wait=25`, which returns when the answer is in. Round trip = create sent → that read's
/// response received.
async fn single_pair_waiting(args: &RunArgs, s: &mut Session) -> anyhow::Result<RunResult> {
    s.disconnect(0..1);
    let mark = Mark::now(s).await;
    let mut waits = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 600_000_000, 3)?;
    let mut answered = 0;
    let started = Instant::now();
    let mut last_answer = None;
    for i in 0..args.pair_count {
        let sent = Instant::now();
        let key = PHASE + i;
        let Some(id) = s.ctx.create_returning_id(key, 0, 1).await else {
            continue;
        };
        let r = s
            .ctx
            .http
            .get(format!("{}/v1/elicitations/{id}?wait=25", s.server.base))
            .bearer_auth(&s.ctx.tokens[0])
            .timeout(REQUEST_TIMEOUT)
            .send()
            .await;
        match r {
            Ok(r) if r.status().is_success() => {
                let e: Value = r.json().await.unwrap_or(Value::Null);
                if e["status"] == "declined" {
                    answered += 1;
                    last_answer = Some(Instant::now());
                    let us = u64::try_from(sent.elapsed().as_micros()).unwrap_or(u64::MAX);
                    let _ = waits.record(us.clamp(1, 600_000_000));
                } else {
                    s.metrics().error(format!("wait returned {}", e["status"]));
                }
            }
            Ok(r) => s.metrics().error(format!("wait {}", r.status().as_u16())),
            Err(_) => s.metrics().error("wait transport".into()),
        }
    }
    let mut step = Step::new(
        "single-pair",
        format!(
            "{} sequential, requester waits with ?wait=",
            args.pair_count
        ),
        2,
        1,
    );
    step.seconds = started.elapsed().as_secs_f64();
    step.rss_connected = s.server.rss();
    let mut r = finish(s, &mark, step).await;
    r.round_trip = Percentiles::of(&waits);
    r.answered = answered;
    r.expected_answers = r.accepted;
    // The answer arrives as the wait's response here.
    r.elicitations_per_second.answered = per_second(answered, Some(started), last_answer);
    say(&r);
    Ok(r)
}

/// 2. Scaling: for each agent count, every agent connected, idle cost measured, then `rate`
///    creates/s for `duration` s, agent k asking agent k+1 (push on every backend).
pub async fn scaling(args: &RunArgs) -> anyhow::Result<Vec<RunResult>> {
    let mut rows = Vec::new();
    for &n in &args.agents {
        for v in variants(args, true, true)? {
            let mut s = Session::open(args, v, n, HashSet::new()).await?;
            let progress =
                Progress::start(format!("scaling {n}, {}", v.name()), s.ctx.metrics.clone());
            let r = steady(
                &mut s,
                args,
                n,
                Step::new("scaling", format!("{n} agents"), n, 0),
            )
            .await?;
            drop(progress);
            say(&r);
            rows.push(r);
            s.stop();
        }
    }
    Ok(rows)
}

/// Connects `n` agents of `s`, measures every node's idle cost, then offers `--rate` creates per
/// second for `--duration`, agent k asking agent k+1, and waits until everything settled: the row
/// of `step`.
async fn steady(
    s: &mut Session,
    args: &RunArgs,
    n: usize,
    mut step: Step,
) -> anyhow::Result<RunResult> {
    let connect = s.connect(0..n).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle0 = s.sample().await;
    let mut pids = s.server.pids();
    let nodes = pids.len();
    pids.extend(s.server.redis.as_ref().map(|r| r.pid));
    let idle_cpu =
        proc_stats::cpu_percent_over(&pids, Duration::from_secs_f64(args.idle_seconds)).await;
    let idle1 = s.sample().await;
    let rss_connected = s.server.rss();
    let mark = Mark::now(s).await;
    let total = (args.rate * args.duration).round() as u64;
    let seconds = paced(&s.ctx, 0, total, args.rate, None, round_robin(n), None).await;
    s.settle(SETTLE).await;
    step.offered_rate = Some(args.rate);
    step.seconds = seconds;
    step.connect_seconds = connect;
    let node_idle: Option<Vec<f64>> = idle_cpu[..nodes].iter().copied().collect();
    step.idle_cpu_percent = Some(node_idle.as_ref().map_or(-1.0, |c| c.iter().sum()));
    step.node_idle_cpu_percent = node_idle.unwrap_or_default();
    step.idle_store_cpu_percent = idle_cpu.get(nodes).copied().flatten();
    step.idle = (s.variant.mode != Mode::Floor).then_some((idle0, idle1));
    step.rss_connected = rss_connected;
    Ok(finish(s, &mark, step).await)
}

/// Scale-out: the largest `--agents` count at `--rate` for `--duration`, push on Redis over each
/// of `--nodes` hosts (agent `i` streams from node `i mod n`, creates to it go to another node),
/// and the floor with the same load.
pub async fn scale_out(args: &RunArgs) -> anyhow::Result<Vec<RunResult>> {
    crate::redis::check_installed()?;
    let n = args.agents.iter().copied().max().unwrap_or(1000);
    let push = Variant {
        mode: Mode::Push,
        backend: Some(Backend::Redis),
    };
    let mut runs: Vec<(Variant, usize)> = args.nodes.iter().map(|k| (push, (*k).max(1))).collect();
    if args.modes.iter().any(|m| m == "floor") {
        let floor = Variant {
            mode: Mode::Floor,
            backend: None,
        };
        runs.push((floor, 1));
    }
    let mut rows = Vec::new();
    for (v, k) in runs {
        let mut s = Session::open_on(args, v, n, HashSet::new(), k, false).await?;
        let label = if v.mode == Mode::Floor {
            format!("{n} agents")
        } else {
            format!("{n} agents, {k} node{}", if k == 1 { "" } else { "s" })
        };
        let progress = Progress::start(format!("scale-out {label}"), s.ctx.metrics.clone());
        let r = steady(&mut s, args, n, Step::new("scale-out", label, n, 0)).await?;
        drop(progress);
        say(&r);
        rows.push(r);
        s.stop();
    }
    Ok(rows)
}

/// Keys of ramp step `i` are in phase `RAMP_PHASE + i`.
const RAMP_PHASE: usize = 100;

/// A ramp step falls behind when less than this share of its offered rate arrived during it…
const KEEPS_UP: f64 = 0.8;

/// … and more than this many seconds of its offered load are outstanding at its end (a stream
/// reconnecting after its `retry:` delays some deliveries, but builds no lasting backlog).
const BACKLOG_SECONDS: f64 = 1.0;

/// The ramp raises the offered rate by this factor per step.
const RAMP_FACTOR: f64 = 1.5;

/// The measured saturation step holds the offered rate this many times the best arrival rate the
/// ramp saw.
const HOLD_OVER_CAPACITY: f64 = 1.25;

/// Seconds of the measured saturation step: `--saturation-seconds`, else 1.4 ×
/// `stream_max_seconds`, so every stream ends (and its client reconnects) during it.
pub fn saturation_seconds(args: &RunArgs) -> f64 {
    args.saturation_seconds
        .unwrap_or(1.4 * stream_max_seconds(args) as f64)
}

/// Saturation: 1000 agents (push on every backend, poll, the floor), offered more creates per
/// second than the server delivers, to measure its capacity in elicitations/s; latency here is
/// queueing.
///
/// The offered rate is found with an open-loop ramp: starting at `--saturation-rate`, creates are
/// sent at a fixed rate for `--saturation-step-seconds`, and the rate is raised ×1.5 per step until a
/// step falls behind: its arrivals (created events reaching their addressees during the step)
/// fall below 80 % of what it offered while more than one second of offered load is outstanding
/// (sent, not yet delivered), or the sender could not send 90 % of it (at most `--max-in-flight`
/// creates await their acknowledgement at once). After everything the ramp sent has settled, the measured
/// step offers 1.25 × the best arrival rate the ramp saw — more than the server delivered at any
/// step, so it saturates — for `saturation_seconds` (longer than `stream_max_seconds`, so streams
/// end and reconnect during it), with the same in-flight cap. Its elicitations/s, each count
/// divided by the time it took to arrive, are the capacity; "saturated" says whether deliveries
/// did fall behind the offered rate (below 95 % of it).
pub async fn saturation(args: &RunArgs) -> anyhow::Result<Vec<RunResult>> {
    let n = if args.quick { 10 } else { 1000 };
    let max_steps = if args.quick { 3 } else { 16 };
    let hold = saturation_seconds(args);
    let step_seconds = args.saturation_step_seconds.max(0.1);
    let mut rows = Vec::new();
    for v in variants(args, true, true)? {
        let mut s = Session::open(args, v, n, HashSet::new()).await?;
        let progress = Progress::start(format!("saturation, {}", v.name()), s.ctx.metrics.clone());
        let connect = s.connect(0..n).await?;
        let cap = Arc::new(Semaphore::new(args.max_in_flight.max(1)));
        let plan = round_robin(n);
        let mut ramp: Vec<RampStep> = Vec::new();
        let mut rate = args.saturation_rate.max(1.0);
        for i in 0..max_steps {
            let before = s.metrics().counts().delivered;
            let started = Instant::now();
            let count = (rate * step_seconds).round().max(1.0) as u64;
            let load = OpenLoop {
                cap: Some(cap.clone()),
                ..OpenLoop::at(RAMP_PHASE + i, rate)
            };
            // The creates go on in the background; the step ends on time.
            drop(load.send(&s.ctx, count, &plan).await);
            tokio::time::sleep_until((started + Duration::from_secs_f64(step_seconds)).into())
                .await;
            let elapsed = started.elapsed().as_secs_f64();
            let now = s.metrics().counts();
            let sent = count as f64 / elapsed;
            let delivered = (now.delivered - before) as f64 / elapsed;
            let backlog_seconds = now.sent.saturating_sub(now.delivered) as f64 / rate;
            let behind = delivered < KEEPS_UP * rate && backlog_seconds > BACKLOG_SECONDS;
            let kept_up = !behind && sent >= 0.9 * rate;
            ramp.push(RampStep {
                offered: rate,
                sent,
                delivered,
                backlog_seconds,
                kept_up,
            });
            if !kept_up {
                break;
            }
            rate *= RAMP_FACTOR;
        }
        let best = ramp.iter().map(|r| r.delivered).fold(0.0, f64::max);
        let offered = if ramp.iter().all(|r| r.kept_up) {
            // The ramp ran out of steps before the server did: go on raising.
            rate
        } else {
            HOLD_OVER_CAPACITY * best
        }
        .max(1.0);
        eprintln!(
            "    ramp ({}): {}",
            v.name(),
            ramp.iter()
                .map(|r| format!("{:.0}→{:.0}", r.offered, r.delivered))
                .collect::<Vec<_>>()
                .join(", ")
        );
        // What the ramp sent settles before the measured step, and its figures are left out.
        s.settle(Duration::from_secs(60)).await;
        let ramp_phases: Vec<usize> = (0..ramp.len()).map(|i| RAMP_PHASE + i).collect();
        drop(s.metrics().take_phases(&ramp_phases));
        tokio::time::sleep(Duration::from_secs(1)).await;
        let mark = Mark::now(&s).await;
        let total = (offered * hold).round() as u64;
        let load = OpenLoop {
            cap: Some(cap.clone()),
            ..OpenLoop::at(0, offered)
        };
        let seconds = load.run(&s.ctx, total, round_robin(n)).await;
        s.settle(Duration::from_secs_f64((2.0 * hold).max(60.0)))
            .await;
        drop(progress);
        let mut step = Step::new(
            "saturation",
            format!("{n} agents, {offered:.0} /s offered for {hold:.0} s"),
            n,
            0,
        );
        step.offered_rate = Some(offered);
        step.seconds = seconds;
        step.connect_seconds = connect;
        step.rss_connected = s.server.rss();
        step.ramp = ramp;
        let r = finish(&s, &mark, step).await;
        say(&r);
        rows.push(r);
        s.stop();
    }
    Ok(rows)
}

/// 3. Burst: 20 → 200 → 20 agents in phases of `phase_seconds`, each agent asking 1 per second
///    (so the load follows the agents), agent k asking agent k+1 among those connected.
pub async fn burst(args: &RunArgs) -> anyhow::Result<Vec<RunResult>> {
    let (small, big) = if args.quick { (5, 20) } else { (20, 200) };
    let mut rows = Vec::new();
    for v in variants(args, true, false)? {
        let mut s = Session::open(args, v, big, HashSet::new()).await?;
        let progress = Progress::start(format!("burst, {}", v.name()), s.ctx.metrics.clone());
        let mut connected = 0;
        for (phase, n) in [small, big, small].into_iter().enumerate() {
            let connect = if n > connected {
                let secs = s.connect(connected..n).await?;
                connected = n;
                secs
            } else {
                s.disconnect(n..connected);
                connected = n;
                0.0
            };
            let mark = Mark::now(&s).await;
            let rate = n as f64;
            let total = (rate * args.phase_seconds).round() as u64;
            let seconds = paced(&s.ctx, phase, total, rate, None, round_robin(n), None).await;
            s.settle(SETTLE).await;
            let mut step = Step::new(
                "burst",
                format!("phase {}: {n} agents", phase + 1),
                n,
                phase,
            );
            step.seconds = seconds;
            step.connect_seconds = connect;
            step.rss_connected = s.server.rss();
            let r = finish(&s, &mark, step).await;
            say(&r);
            rows.push(r);
        }
        drop(progress);
        s.stop();
    }
    Ok(rows)
}

/// 4. Timeout cascade: 50 agents, of which 10 never answer; every agent asks its neighbour with a
///    short deadline. The expiries must reach the requesters on time while the others' latency
///    holds. A polling client notices an expiry only by reading: in poll mode each requester reads
///    its overdue requests once per second (the legacy cadence).
pub async fn timeout_cascade(args: &RunArgs) -> anyhow::Result<Vec<RunResult>> {
    let (n, silent_n) = (50usize, 10usize);
    let ttl = 2;
    let silent: HashSet<usize> = (0..silent_n).map(|i| i * (n / silent_n)).collect();
    let mut rows = Vec::new();
    for v in variants(args, false, false)? {
        let mode = v.mode;
        let mut s = Session::open(args, v, n, silent.clone()).await?;
        let progress = Progress::start(
            format!("timeout cascade, {}", v.name()),
            s.ctx.metrics.clone(),
        );
        let connect = s.connect(0..n).await?;
        let mark = Mark::now(&s).await;
        let nudger = (mode == Mode::Poll).then(|| {
            let ctx = s.ctx.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    for (_, id, from) in ctx.metrics.overdue(SystemTime::now()) {
                        ctx.look(from, &id).await;
                    }
                }
            })
        });
        let rate = if args.quick { 10.0 } else { 50.0 };
        let total = (rate * args.phase_seconds).round() as u64;
        let seconds = paced(&s.ctx, 0, total, rate, Some(ttl), round_robin(n), None).await;
        s.settle(SETTLE).await;
        if let Some(t) = nudger {
            t.abort();
        }
        drop(progress);
        let mut step = Step::new(
            "timeout-cascade",
            format!("{n} agents, {silent_n} silent, ttl {ttl} s"),
            n,
            0,
        );
        step.seconds = seconds;
        step.connect_seconds = connect;
        step.rss_connected = s.server.rss();
        let r = finish(&s, &mark, step).await;
        say(&r);
        rows.push(r);
        s.stop();
    }
    Ok(rows)
}

/// 5. Store contention: W writers each ask agent 0 as fast as their previous request is
///    acknowledged, for `phase_seconds`; agent 0 answers everything.
pub async fn contention(args: &RunArgs) -> anyhow::Result<Vec<RunResult>> {
    let writers: Vec<usize> = if args.quick {
        vec![10]
    } else {
        vec![10, 50, 100, 200]
    };
    let mut rows = Vec::new();
    for &w in &writers {
        for v in variants(args, true, false)? {
            let mut s = Session::open(args, v, w + 1, HashSet::new()).await?;
            let progress = Progress::start(
                format!("contention {w}, {}", v.name()),
                s.ctx.metrics.clone(),
            );
            let connect = s.connect(0..w + 1).await?;
            let mark = Mark::now(&s).await;
            let started = Instant::now();
            let until = started + Duration::from_secs_f64(args.phase_seconds);
            let tasks: Vec<_> = (1..=w)
                .map(|writer| {
                    let ctx = s.ctx.clone();
                    tokio::spawn(async move {
                        let mut i = 0u64;
                        // Writers take turns in one key space, so no count of sends per
                        // writer makes two of them use the same key.
                        while Instant::now() < until {
                            ctx.create(i * w as u64 + (writer - 1) as u64, writer, 0, None)
                                .await;
                            i += 1;
                        }
                    })
                })
                .collect();
            for t in tasks {
                let _ = t.await;
            }
            let seconds = started.elapsed().as_secs_f64();
            s.settle(SETTLE).await;
            drop(progress);
            let mut step = Step::new("contention", format!("{w} writers"), w + 1, 0);
            step.seconds = seconds;
            step.connect_seconds = connect;
            step.rss_connected = s.server.rss();
            let r = finish(&s, &mark, step).await;
            say(&r);
            rows.push(r);
            s.stop();
        }
    }
    Ok(rows)
}

/// 6. Sustained load: `sustained_agents` agents, `sustained_rate` creates/s for
///    `sustained_seconds`, server RSS sampled every 5 s.
pub async fn sustained(args: &RunArgs) -> anyhow::Result<Vec<RunResult>> {
    let n = args.sustained_agents;
    let mut rows = Vec::new();
    for v in variants(args, true, false)? {
        let mut s = Session::open(args, v, n, HashSet::new()).await?;
        let progress = Progress::start(format!("sustained, {}", v.name()), s.ctx.metrics.clone());
        let connect = s.connect(0..n).await?;
        let mark = Mark::now(&s).await;
        let pid = s.server.pid;
        let series = Arc::new(std::sync::Mutex::new(Vec::new()));
        let samples = series.clone();
        let sampler = tokio::spawn(async move {
            let started = Instant::now();
            loop {
                let rss = crate::proc_stats::rss_bytes(pid).unwrap_or(0);
                samples
                    .lock()
                    .expect("samples")
                    .push((started.elapsed().as_secs_f64(), rss));
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        });
        let total = (args.sustained_rate * args.sustained_seconds).round() as u64;
        let seconds = paced(
            &s.ctx,
            0,
            total,
            args.sustained_rate,
            None,
            round_robin(n),
            None,
        )
        .await;
        s.settle(SETTLE).await;
        sampler.abort();
        let mut series = std::mem::take(&mut *series.lock().expect("samples"));
        series.push((seconds, s.server.rss()));
        drop(progress);
        let mut step = Step::new(
            "sustained",
            format!(
                "{n} agents, {} /s, {} s",
                args.sustained_rate, args.sustained_seconds
            ),
            n,
            0,
        );
        step.seconds = seconds;
        step.connect_seconds = connect;
        step.rss_connected = s.server.rss();
        step.rss_series = series;
        step.offered_rate = Some(args.sustained_rate);
        let r = finish(&s, &mark, step).await;
        say(&r);
        rows.push(r);
        s.stop();
    }
    Ok(rows)
}

/// Soak: `--soak-agents` agents at `--soak-rate` elicitations/s for `--soak-seconds`, each
///    elicitation with `ttlSeconds` = `--soak-ttl-seconds`, on a host whose `retention_seconds`
///    is `--soak-retention-seconds`, so that elicitations are answered, kept, and deleted by the
///    retention pass over and over during the run. Every `--soak-sample-seconds` the host's RSS
///    and the store's size and key count are sampled; the report fits a line to the samples after
///    the warm-up (two lifetimes) and gives its slope.
pub async fn soak(args: &RunArgs) -> anyhow::Result<Vec<RunResult>> {
    let mut args = args.clone();
    args.retention_seconds = Some(args.soak_retention_seconds);
    let args = &args;
    let n = args.soak_agents;
    let v = Variant {
        mode: Mode::Push,
        backend: args.backend.first().copied(),
    };
    let mut s = Session::open(args, v, n, HashSet::new()).await?;
    let progress = Progress::start(format!("soak, {}", v.name()), s.ctx.metrics.clone());
    let connect = s.connect(0..n).await?;
    let mark = Mark::now(&s).await;
    let series = Arc::new(tokio::sync::Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let total = (args.soak_rate * args.soak_seconds).round() as u64;
    let every = Duration::from_secs_f64(args.soak_sample_seconds.max(1.0));
    let seconds = {
        let sampling = async {
            let started = Instant::now();
            while !stop.load(Ordering::SeqCst) {
                let at = started.elapsed().as_secs_f64();
                let rss = s.server.rss();
                if let Some(store) = s.server.store_stats().await {
                    series.lock().await.push((at, rss, store));
                }
                let next = started + every.mul_f64((at / every.as_secs_f64()).floor() + 1.0);
                tokio::time::sleep_until(next.into()).await;
            }
        };
        let load = async {
            let secs = paced(
                &s.ctx,
                0,
                total,
                args.soak_rate,
                Some(args.soak_ttl_seconds),
                round_robin(n),
                None,
            )
            .await;
            stop.store(true, Ordering::SeqCst);
            secs
        };
        futures::future::join(sampling, load).await.1
    };
    s.settle(SETTLE).await;
    drop(progress);
    let mut step = Step::new(
        "soak",
        format!(
            "{n} agents, {} /s, {} s, ttlSeconds {}, retention_seconds {}",
            args.soak_rate, args.soak_seconds, args.soak_ttl_seconds, args.soak_retention_seconds
        ),
        n,
        0,
    );
    step.seconds = seconds;
    step.connect_seconds = connect;
    step.rss_connected = s.server.rss();
    step.soak_series = std::mem::take(&mut *series.lock().await);
    step.soak_lifetime = Some((args.soak_retention_seconds, args.soak_ttl_seconds));
    step.offered_rate = Some(args.soak_rate);
    let r = finish(&s, &mark, step).await;
    say(&r);
    s.stop();
    Ok(vec![r])
}

/// 7. Failure recovery: 100 agents, 100 creates/s for `phase_seconds`; half-way the host is
///    killed with SIGKILL while creates keep coming, and started again on the same address and
///    state. Clients reconnect on their own (push: with their last event id); creates sent while it
///    is down fail and are counted as outage errors, not as losses.
pub async fn recovery(args: &RunArgs) -> anyhow::Result<Vec<RunResult>> {
    let mut rows = Vec::new();
    for v in variants(args, false, false)? {
        rows.push(kill_half_way(args, v, Kill::Host).await?);
    }
    Ok(rows)
}

/// Node kill: the app on two nodes over one Redis behind HAProxy (`deploy/haproxy.cfg`), the
/// agents reaching them only through it; one node is killed (`kill -9`) half-way and not brought
/// back, while creates keep coming.
pub async fn node_kill(args: &RunArgs) -> anyhow::Result<Vec<RunResult>> {
    crate::redis::check_installed()?;
    let push = Variant {
        mode: Mode::Push,
        backend: Some(Backend::Redis),
    };
    Ok(vec![kill_half_way(args, push, Kill::Node).await?])
}

/// What [`kill_half_way`] kills.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kill {
    /// The one host, restarted at once on the same address and store.
    Host,
    /// One of two nodes behind the balancer, for good.
    Node,
}

/// Agents at a steady rate, `kill` half-way while creates keep coming, and what it cost.
async fn kill_half_way(args: &RunArgs, v: Variant, kill: Kill) -> anyhow::Result<RunResult> {
    let n = if args.quick { 10 } else { 100 };
    let rate = if args.quick { 20.0 } else { 100.0 };
    let mut s = match kill {
        Kill::Host => Session::open(args, v, n, HashSet::new()).await?,
        Kill::Node => Session::open_on(args, v, n, HashSet::new(), 2, true).await?,
    };
    let (scenario, label) = match kill {
        Kill::Host => ("recovery", format!("{n} agents, kill -9 half-way")),
        Kill::Node => (
            "node-kill",
            format!("{n} agents, 2 nodes behind HAProxy, one killed (-9) half-way"),
        ),
    };
    let progress = Progress::start(format!("{scenario}, {}", v.name()), s.ctx.metrics.clone());
    let connect = s.connect(0..n).await?;
    let mark = Mark::now(&s).await;
    // Creates keep coming at `rate` until `phase_seconds / 2` after the kill.
    let stop = Arc::new(AtomicBool::new(false));
    let (ctx, stopped) = (s.ctx.clone(), stop.clone());
    let sender = tokio::spawn(async move {
        paced(
            &ctx,
            0,
            u64::MAX,
            rate,
            None,
            round_robin(n),
            Some(&stopped),
        )
        .await
    });
    tokio::time::sleep(Duration::from_secs_f64(args.phase_seconds / 2.0)).await;
    let errors_before = s.metrics().errors();
    let acknowledged = s.metrics().accepted_keys();
    let killed = Instant::now();
    match kill {
        Kill::Host => s.server.crash_and_restart(args).await?,
        Kill::Node => {
            s.server.nodes[0].kill().await?;
            // Served again: a request through the balancer is answered.
            let url = format!("{}/.well-known/spin/stats", s.ctx.nodes[0]);
            while !s
                .ctx
                .http
                .get(&url)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                anyhow::ensure!(
                    killed.elapsed() < Duration::from_secs(30),
                    "the balancer stopped answering"
                );
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
    }
    let serving_after = killed.elapsed().as_secs_f64();
    // The first create accepted after the kill, and when it reached its addressee.
    let mut first_delivery_after = f64::NAN;
    let until = Instant::now() + Duration::from_secs(30);
    while Instant::now() < until {
        let fresh: HashSet<u64> = s
            .metrics()
            .accepted_keys()
            .difference(&acknowledged)
            .copied()
            .collect();
        if s.metrics().delivered_among(&fresh) > 0 {
            first_delivery_after = killed.elapsed().as_secs_f64();
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let outage_errors = minus(&s.metrics().errors(), &errors_before);
    tokio::time::sleep(Duration::from_secs_f64(args.phase_seconds / 2.0)).await;
    stop.store(true, Ordering::Relaxed);
    let seconds = sender.await.unwrap_or(0.0);
    s.settle(SETTLE).await;
    drop(progress);
    let mut step = Step::new(scenario, label, n, 0);
    step.seconds = seconds;
    step.connect_seconds = connect;
    step.rss_connected = s.server.rss();
    step.outage_errors = outage_errors;
    let (streams_cut, not_streaming_again, longest_to_stream_again) =
        s.metrics().cuts_since(killed);
    step.recovery = Some(Recovery {
        serving_after,
        first_delivery_after,
        acknowledged_before_kill: acknowledged.len() as u64,
        delivered_of_those: s.metrics().delivered_among(&acknowledged),
        streams_cut,
        not_streaming_again,
        longest_to_stream_again,
    });
    let r = finish(&s, &mark, step).await;
    say(&r);
    s.stop();
    Ok(r)
}
