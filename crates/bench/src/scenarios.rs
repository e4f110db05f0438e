//! The scenarios. Each runs every requested mode with the same parameters, one fresh server per
//! mode, and turns what the agents measured into result rows.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::IsTerminal;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use futures::StreamExt;
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::RunArgs;
use crate::agents::{Ctx, Metrics, Mode, PHASE, Percentiles, agent_id, cdf};
use crate::server::{ADMIN, HostFigures, HostSample, Server};

/// What a `kill -9` in the middle of a run cost.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Recovery {
    /// Kill → the restarted host answers requests, seconds.
    pub serving_after: f64,
    /// Kill → the first request created after the restart reached its addressee, seconds.
    pub first_delivery_after: f64,
    /// Creates acknowledged (2xx) before the kill.
    pub acknowledged_before_kill: u64,
    /// How many of those reached their addressee (exactly once: duplicates count separately).
    pub delivered_of_those: u64,
}

/// One row of the report: one scenario step in one mode.
#[derive(Debug, Clone, Serialize)]
pub struct RunResult {
    /// Addressees that missed accepted creates, how many, and where their stream stood at the end.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub undelivered: Vec<String>,
    /// single-pair, scaling, burst, timeout-cascade, contention, sustained, recovery.
    pub scenario: String,
    /// The step (e.g. "1000 agents", "phase 2: 200 agents", "50 writers").
    pub label: String,
    /// push, poll or floor.
    pub mode: String,
    /// Agents taking part.
    pub agents: usize,
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
    /// Created events delivered per second while sending.
    pub throughput: f64,
    /// Events of every kind (created, answered to both parties, expired, …) the agents received
    /// per second, from the first create sent to the last event received.
    pub events_per_second: f64,
    /// Seconds of sending.
    pub seconds: f64,
    /// Server CPU with every agent connected and no traffic, percent of one core.
    pub idle_cpu_percent: Option<f64>,
    /// Server CPU from the start of sending until everything settled, percent of one core.
    pub load_cpu_percent: f64,
    /// Server RSS before the agents connected, bytes.
    pub rss_before: u64,
    /// Server RSS with every agent connected, bytes.
    pub rss_connected: u64,
    /// Server RSS at the end, bytes.
    pub rss_after: u64,
    /// Seconds until every agent was connected.
    pub connect_seconds: f64,
    /// The host's own counters.
    pub host: Option<HostFigures>,
    /// (seconds since the start of sending, RSS bytes), every 5 s (sustained).
    pub rss_series: Vec<(f64, u64)>,
    /// The crash (recovery).
    pub recovery: Option<Recovery>,
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
}

/// One server with its agents.
struct Session {
    mode: Mode,
    server: Server,
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
        mode: Mode,
        agents: usize,
        silent: HashSet<usize>,
    ) -> anyhow::Result<Self> {
        let server = Server::start(args, mode).await?;
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
            http,
            metrics: Arc::new(Metrics::default()),
            tokens,
            silent,
        });
        Ok(Self {
            mode,
            server,
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
        HostSample::take(&self.ctx.http, &self.server.base, self.mode)
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
    let started = Instant::now();
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / rate.max(0.001)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut sends = Vec::new();
    for i in 0..n {
        if stop.is_some_and(|s| s.load(Ordering::Relaxed)) {
            break;
        }
        ticker.tick().await;
        let (from, to) = plan(i);
        let ctx = ctx.clone();
        let key = phase as u64 * PHASE + i;
        sends.push(tokio::spawn(
            async move { ctx.create(key, from, to, ttl).await },
        ));
    }
    for t in sends {
        let _ = t.await;
    }
    started.elapsed().as_secs_f64()
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
                    "\r\x1b[2K  {what}: {:.0} s, {} agents up, sent {}, accepted {}, delivered {}, answered {}, expired {}, errors {}",
                    started.elapsed().as_secs_f64(),
                    c.ready,
                    c.sent,
                    c.accepted,
                    c.delivered,
                    c.answered,
                    c.expired,
                    c.errors
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
    seconds: f64,
    connect_seconds: f64,
    idle_cpu_percent: Option<f64>,
    load_cpu_percent: f64,
    rss_connected: u64,
    host: Option<HostFigures>,
    rss_series: Vec<(f64, u64)>,
    recovery: Option<Recovery>,
    outage_errors: BTreeMap<String, u64>,
}

impl Step {
    fn new(scenario: &'static str, label: String, agents: usize, phase: usize) -> Self {
        Self {
            scenario,
            label,
            agents,
            phases: vec![phase],
            seconds: 0.0,
            connect_seconds: 0.0,
            idle_cpu_percent: None,
            load_cpu_percent: 0.0,
            rss_connected: 0,
            host: None,
            rss_series: Vec::new(),
            recovery: None,
            outage_errors: BTreeMap::new(),
        }
    }
}

/// Counts at the start of a step, so a step reports only its own.
struct Mark {
    counts: crate::agents::Counts,
    expected: (u64, u64),
    errors: BTreeMap<String, u64>,
    order_violations: u64,
    gaps: u64,
    resets: u64,
    cpu: f64,
    at: Instant,
}

impl Mark {
    fn now(s: &Session) -> Self {
        Self {
            counts: s.metrics().counts(),
            expected: s.metrics().expected(&s.ctx.silent),
            errors: s.metrics().errors(),
            order_violations: s.metrics().order_violations(),
            gaps: s.metrics().gaps(),
            resets: s.metrics().resets(),
            cpu: s.server.cpu_seconds(),
            at: Instant::now(),
        }
    }
}

fn minus(a: &BTreeMap<String, u64>, b: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    a.iter()
        .filter_map(|(k, v)| {
            let d = v - b.get(k).copied().unwrap_or(0);
            (d > 0).then(|| (k.clone(), d))
        })
        .collect()
}

fn finish(s: &Session, mark: &Mark, mut step: Step) -> RunResult {
    let m = s.metrics();
    let c = m.counts();
    let (expected_answers, expected_expiries) = m.expected(&s.ctx.silent);
    let h = m.take_phases(&step.phases);
    let pct = |h: &Option<hdrhistogram::Histogram<u64>>| {
        h.as_ref().map(Percentiles::of).unwrap_or_default()
    };
    let accepted = c.accepted - mark.counts.accepted;
    let delivered = c.delivered - mark.counts.delivered;
    if step.load_cpu_percent == 0.0 {
        step.load_cpu_percent =
            100.0 * (s.server.cpu_seconds() - mark.cpu) / mark.at.elapsed().as_secs_f64().max(1e-9);
    }
    let errors = minus(&minus(&m.errors(), &mark.errors), &step.outage_errors);
    let mut undelivered = m.undelivered();
    undelivered.truncate(20);
    RunResult {
        undelivered,
        scenario: step.scenario.to_string(),
        label: step.label,
        mode: s.mode.name().to_string(),
        agents: step.agents,
        sent: c.sent - mark.counts.sent,
        accepted,
        delivered,
        duplicates: c.duplicates - mark.counts.duplicates,
        answered: c.answered - mark.counts.answered,
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
        delivery: pct(&h.delivery),
        round_trip: pct(&h.round_trip),
        create: pct(&h.create),
        expiry_lateness: h.expiry_lateness.as_ref().map(Percentiles::of),
        delivery_cdf: h.delivery.as_ref().map(cdf).unwrap_or_default(),
        throughput: delivered as f64 / step.seconds.max(1e-9),
        events_per_second: {
            let span = m
                .last_event()
                .map_or(0.0, |t| t.saturating_duration_since(mark.at).as_secs_f64());
            (c.events - mark.counts.events) as f64 / span.max(1e-9)
        },
        seconds: step.seconds,
        idle_cpu_percent: step.idle_cpu_percent,
        load_cpu_percent: step.load_cpu_percent,
        rss_before: s.rss_before,
        rss_connected: step.rss_connected,
        rss_after: s.server.rss(),
        connect_seconds: step.connect_seconds,
        host: step.host,
        rss_series: step.rss_series,
        recovery: step.recovery,
    }
}

fn say(r: &RunResult) {
    let mut line = format!(
        "  {:<15} {:<22} {:<5} delivery p50 {:>8.2} ms p99 {:>8.2} ms, round trip p50 {:>8.2} ms, {}/{} delivered",
        r.scenario,
        r.label,
        r.mode,
        r.delivery.p50,
        r.delivery.p99,
        r.round_trip.p50,
        r.delivered,
        r.accepted
    );
    if let Some(cpu) = r.idle_cpu_percent {
        line.push_str(&format!(
            ", idle CPU {cpu:.1} %, {:.1} KiB/agent",
            r.rss_per_agent() / 1024.0
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

fn modes(args: &RunArgs, floor_applies: bool) -> anyhow::Result<Vec<Mode>> {
    let mut out = Vec::new();
    for m in &args.modes {
        let m = Mode::parse(m)?;
        if m != Mode::Floor || floor_applies {
            out.push(m);
        }
    }
    Ok(out)
}

/// 1. Single pair: `pair_count` sequential elicitations from agent 0 to agent 1, each sent once the
///    previous answer arrived.
pub async fn single_pair(args: &RunArgs) -> anyhow::Result<Vec<RunResult>> {
    let mut rows = Vec::new();
    for mode in modes(args, true)? {
        let mut s = Session::open(args, mode, 2, HashSet::new()).await?;
        let connect = s.connect(0..2).await?;
        let progress = Progress::start(
            format!("single pair, {}", mode.name()),
            s.ctx.metrics.clone(),
        );
        let mark = Mark::now(&s);
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
        let r = finish(&s, &mark, step);
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
    let mark = Mark::now(s);
    let mut waits = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 600_000_000, 3)?;
    let mut answered = 0;
    let started = Instant::now();
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
            .send()
            .await;
        match r {
            Ok(r) if r.status().is_success() => {
                let e: Value = r.json().await.unwrap_or(Value::Null);
                if e["status"] == "declined" {
                    answered += 1;
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
    let mut r = finish(s, &mark, step);
    r.round_trip = Percentiles::of(&waits);
    r.answered = answered;
    r.expected_answers = r.accepted;
    say(&r);
    Ok(r)
}

/// 2. Scaling: for each agent count, every agent connected, idle cost measured, then `rate`
///    creates/s for `duration` s, agent k asking agent k+1.
pub async fn scaling(args: &RunArgs) -> anyhow::Result<Vec<RunResult>> {
    let mut rows = Vec::new();
    for &n in &args.agents {
        for mode in modes(args, true)? {
            let mut s = Session::open(args, mode, n, HashSet::new()).await?;
            let progress = Progress::start(
                format!("scaling {n}, {}", mode.name()),
                s.ctx.metrics.clone(),
            );
            let connect = s.connect(0..n).await?;
            tokio::time::sleep(Duration::from_secs(1)).await;
            let idle0 = s.sample().await;
            let idle_cpu = crate::proc_stats::cpu_percent_over(
                s.server.pid,
                Duration::from_secs_f64(args.idle_seconds),
            )
            .await
            .unwrap_or(-1.0);
            let idle1 = s.sample().await;
            let rss_connected = s.server.rss();
            let mark = Mark::now(&s);
            let total = (args.rate * args.duration).round() as u64;
            let seconds = paced(&s.ctx, 0, total, args.rate, None, round_robin(n), None).await;
            s.settle(SETTLE).await;
            let load1 = s.sample().await;
            drop(progress);
            let mut step = Step::new("scaling", format!("{n} agents"), n, 0);
            step.seconds = seconds;
            step.connect_seconds = connect;
            step.idle_cpu_percent = Some(idle_cpu);
            step.rss_connected = rss_connected;
            step.host =
                (mode != Mode::Floor).then(|| HostSample::figures(&idle0, &idle1, &idle1, &load1));
            let r = finish(&s, &mark, step);
            say(&r);
            rows.push(r);
            s.stop();
        }
    }
    Ok(rows)
}

/// Saturation: 1000 agents and far more creates per second than the server can take, to see
/// how many events per second it delivers when it is the bottleneck (latency is queueing here).
pub async fn saturation(args: &RunArgs) -> anyhow::Result<Vec<RunResult>> {
    let n = if args.quick { 10 } else { 1000 };
    let rate = if args.quick {
        100.0
    } else {
        args.saturation_rate
    };
    let mut rows = Vec::new();
    for mode in modes(args, true)? {
        let mut s = Session::open(args, mode, n, HashSet::new()).await?;
        let progress = Progress::start(
            format!("saturation, {}", mode.name()),
            s.ctx.metrics.clone(),
        );
        let connect = s.connect(0..n).await?;
        let mark = Mark::now(&s);
        let load0 = s.sample().await;
        let total = (rate * args.phase_seconds).round() as u64;
        let seconds = paced(&s.ctx, 0, total, rate, None, round_robin(n), None).await;
        s.settle(Duration::from_secs(60)).await;
        let load1 = s.sample().await;
        drop(progress);
        let mut step = Step::new("saturation", format!("{n} agents, {rate} /s offered"), n, 0);
        step.seconds = seconds;
        step.connect_seconds = connect;
        step.rss_connected = s.server.rss();
        step.host =
            (mode != Mode::Floor).then(|| HostSample::figures(&load0, &load0, &load0, &load1));
        let r = finish(&s, &mark, step);
        say(&r);
        eprintln!(
            "    {:.0} events/s delivered (every kind)",
            r.events_per_second
        );
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
    for mode in modes(args, true)? {
        let mut s = Session::open(args, mode, big, HashSet::new()).await?;
        let progress = Progress::start(format!("burst, {}", mode.name()), s.ctx.metrics.clone());
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
            let mark = Mark::now(&s);
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
            let r = finish(&s, &mark, step);
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
    for mode in modes(args, false)? {
        let mut s = Session::open(args, mode, n, silent.clone()).await?;
        let progress = Progress::start(
            format!("timeout cascade, {}", mode.name()),
            s.ctx.metrics.clone(),
        );
        let connect = s.connect(0..n).await?;
        let mark = Mark::now(&s);
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
        let r = finish(&s, &mark, step);
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
        for mode in modes(args, true)? {
            let mut s = Session::open(args, mode, w + 1, HashSet::new()).await?;
            let progress = Progress::start(
                format!("contention {w}, {}", mode.name()),
                s.ctx.metrics.clone(),
            );
            let connect = s.connect(0..w + 1).await?;
            let mark = Mark::now(&s);
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
            let r = finish(&s, &mark, step);
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
    for mode in modes(args, true)? {
        let mut s = Session::open(args, mode, n, HashSet::new()).await?;
        let progress =
            Progress::start(format!("sustained, {}", mode.name()), s.ctx.metrics.clone());
        let connect = s.connect(0..n).await?;
        let mark = Mark::now(&s);
        let load0 = s.sample().await;
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
        let load1 = s.sample().await;
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
        step.host =
            (mode != Mode::Floor).then(|| HostSample::figures(&load0, &load0, &load0, &load1));
        let r = finish(&s, &mark, step);
        say(&r);
        rows.push(r);
        s.stop();
    }
    Ok(rows)
}

/// 7. Failure recovery: 100 agents, 100 creates/s for `phase_seconds`; half-way the host is
///    killed with SIGKILL while creates keep coming, and started again on the same address and
///    state. Clients reconnect on their own (push: with their last event id); creates sent while it
///    is down fail and are counted as outage errors, not as losses.
pub async fn recovery(args: &RunArgs) -> anyhow::Result<Vec<RunResult>> {
    let n = if args.quick { 10 } else { 100 };
    let rate = if args.quick { 20.0 } else { 100.0 };
    let mut rows = Vec::new();
    for mode in modes(args, false)? {
        let mut s = Session::open(args, mode, n, HashSet::new()).await?;
        let progress = Progress::start(format!("recovery, {}", mode.name()), s.ctx.metrics.clone());
        let connect = s.connect(0..n).await?;
        let mark = Mark::now(&s);
        // Creates keep coming at `rate` until `phase_seconds / 2` after the restart.
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
        s.server.crash_and_restart(args).await?;
        let serving_after = killed.elapsed().as_secs_f64();
        // The first create accepted after the restart, and when it reached its addressee.
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
        let mut step = Step::new("recovery", format!("{n} agents, kill -9 half-way"), n, 0);
        step.seconds = seconds;
        step.connect_seconds = connect;
        step.rss_connected = s.server.rss();
        step.outage_errors = outage_errors;
        step.recovery = Some(Recovery {
            serving_after,
            first_delivery_after,
            acknowledged_before_kill: acknowledged.len() as u64,
            delivered_of_those: s.metrics().delivered_among(&acknowledged),
        });
        let r = finish(&s, &mark, step);
        say(&r);
        rows.push(r);
        s.stop();
    }
    Ok(rows)
}
