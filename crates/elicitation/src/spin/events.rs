//! `GET /v1/agents/:agent/events`: each agent's event log as a Server-Sent Events stream.
//!
//! Spin gives an HTTP component no change notification, so all the streams an instance holds are
//! served by one loop, the instance's *hub* (WASIp3 instances serve many requests at once and share
//! their statics). A stream request only checks its token, reads its agent's log head, opens the
//! response body and hands it to the hub. Every `stream_tick_ms` (`stream_idle_tick_ms` after a
//! quiet second) the hub reads the [change feed](crate::changes) — one read per tick per instance,
//! however many streams it holds — which names the agents that changed and the number each one's
//! log grew to; only those agents' streams read their events after their cursor, up to that number.
//! So the reads follow the changes, not the streams. When the feed cannot tell (it fell behind, or a
//! publisher died mid-way) the hub reads every stream's log head once. Correctness does not depend
//! on sharing: with one stream per instance the same code runs, it just polls more.
//!
//! The hub writes each stream's body through the component-model stream of its response directly,
//! from its own task: waking one task from another with Rust wakers needs a wit-bindgen feature the
//! current wasmtime traps on, and writes that complete through the component model need none.
//! A write may outlast its tick: the hub polls the writes in flight while it waits for the next
//! tick, never waits for one client, and cuts only a stream whose client stopped reading
//! ([`outlet`](crate::outlet)); the body then ends with why, which the host counts.
//!
//! Once a second the hub also runs the expiry pass ([`due`](crate::due)): the elicitations whose
//! deadline fell in the second just over get their expiry written if they are still pending (the
//! compare-and-swap in [`service`] makes it happen once however many hubs try), and the expired
//! event arrives through the log like any other — so a stream keeps no deadlines and reads no
//! lists, and every pending request of an agent is pushed at its expiry however many there are.
//!
//! A stream opens with `retry: 1000` (how long a client waits after an unplanned end) and, just
//! before it ends on its own, sends `retry: 1`: an EventSource client waits the last hint it got
//! before reconnecting with `Last-Event-ID`, so a planned end costs it a millisecond, not a second.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};

use spin_sdk::http::{IntoResponse, Request};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll as TaskPoll};

use spin_sdk::wasip3::http::types::{ErrorCode, Fields, Response as WasiResponse};
use spin_sdk::wasip3::http_compat::{BodyResult, BodyWriter};
use spin_sdk::wasip3::wit_bindgen::{FutureWriter, StreamWriter};

use super::{SpinStore, into_response, number_variable, prepare, sleep_ms};
use crate::api;
use crate::changes::{self, Poll};
use crate::log::{self, Reader, Resume};
use crate::outlet::{self, Cut, Pending};
use crate::service;
use crate::sse;
use crate::store::Store;
use crate::time::{Timestamp, next_tick};
use crate::token;

/// Stream settings, from Spin variables.
#[derive(Debug, Clone, Copy)]
pub struct StreamOptions {
    /// How often the hub looks for changes.
    pace: Pace,
    /// A stream ends after this long (`stream_max_seconds`, default 25: hosted platforms cut at 30 s).
    pub max_seconds: u64,
    /// Heartbeat interval while idle (`stream_heartbeat_seconds`, default 10).
    pub heartbeat_seconds: u64,
    /// The `retry:` hint a stream opens with, milliseconds: how long a client waits before it
    /// reconnects after an unplanned end.
    pub retry_ms: u64,
    /// The `retry:` hint sent just before a planned end: an EventSource client waits that long
    /// before it reconnects, so a planned end costs it next to nothing.
    pub planned_retry_ms: u64,
    /// Streams one agent may hold open (`max_streams_per_agent`): one more ends its oldest.
    pub max_streams: u64,
}

impl StreamOptions {
    /// Reads the variables.
    pub async fn load() -> Self {
        Self {
            pace: Pace::load().await,
            max_seconds: number_variable("stream_max_seconds", 25).await.max(1),
            heartbeat_seconds: number_variable("stream_heartbeat_seconds", 10).await.max(1),
            retry_ms: 1000,
            planned_retry_ms: 1,
            max_streams: number_variable("max_streams_per_agent", outlet::MAX_STREAMS_PER_AGENT)
                .await
                .max(1),
        }
    }
}

/// How many events one read takes.
const BATCH: usize = 100;

/// After a change, a poller keeps the faster tick this long.
const ACTIVE_MS: u64 = 1000;

/// How fast a poller of the change feed (a stream hub, a wait watcher) ticks: `stream_tick_ms`
/// while changes keep coming, `stream_idle_tick_ms` after a quiet second.
#[derive(Debug, Clone, Copy)]
pub(super) struct Pace {
    tick_ms: u64,
    idle_tick_ms: u64,
    last_change: Timestamp,
    /// When the last fast tick was due (monotonic clock, ns).
    due: Option<u64>,
}

impl Pace {
    /// Reads the variables.
    pub(super) async fn load() -> Self {
        Self {
            tick_ms: number_variable("stream_tick_ms", 1).await.max(1),
            idle_tick_ms: number_variable("stream_idle_tick_ms", 5).await.max(1),
            last_change: Timestamp(0),
            due: None,
        }
    }

    /// Something changed at `now`.
    pub(super) fn changed(&mut self, now: Timestamp) {
        self.last_change = now;
    }

    /// Sleeps until the next look. The fast ticks are due at a fixed rate ([`next_tick`]):
    /// sleeping `tick_ms` after each tick's work, with the timer rounding each sleep up to the
    /// next whole millisecond, put about 2 ms between looks instead of 1. The idle ticks sleep
    /// `idle_tick_ms` after the work (that is the idle store load).
    pub(super) async fn wait(&mut self) {
        use spin_sdk::wasip3::clocks::monotonic_clock;
        let active = self.last_change.millis_until(Timestamp::now()) < ACTIVE_MS;
        if !active {
            self.due = None;
            return sleep_ms(self.idle_tick_ms).await;
        }
        let period = self.tick_ms.saturating_mul(1_000_000);
        let due = next_tick(self.due, monotonic_clock::now(), period);
        self.due = Some(due);
        monotonic_clock::wait_until(due).await;
    }
}

/// How many new streams the hub opens per tick.
const STARTS_PER_TICK: usize = 64;

/// A stream handed to the hub.
struct Job {
    agent: String,
    /// Its number among the agent's streams ([`outlet::opened`]).
    number: i64,
    /// The token it was opened with.
    token: token::Verified,
    /// The log's head when the request came.
    head: i64,
    resume: Resume,
    requested: Option<i64>,
    body: BodyWriter,
}

#[derive(Default)]
struct Hub {
    incoming: Vec<Job>,
    running: bool,
}

thread_local! {
    static HUB: RefCell<Hub> = RefCell::new(Hub::default());
}

/// Converts a plain response (an error, here) into the WASI response this handler returns.
pub(super) fn to_wasi(resp: api::Response) -> WasiResponse {
    match into_response(resp).into_response() {
        Ok(r) => r,
        Err(_) => {
            let (_, body, result) = BodyWriter::new();
            WasiResponse::new(Fields::new(), Some(body), result).0
        }
    }
}

pub(super) fn internal(what: &str) -> api::Response {
    api::Response::problem(&crate::Error::Storage(what.to_string()))
}

/// A `text/event-stream` response (not cached, not buffered by proxies such as nginx) and the
/// writer of its body.
pub(super) fn open_sse() -> Option<(BodyWriter, WasiResponse)> {
    let headers = [
        ("content-type", "text/event-stream"),
        ("cache-control", "no-cache"),
        ("x-accel-buffering", "no"),
    ]
    .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()));
    let fields = Fields::from_list(&headers).ok()?;
    let (body, body_rx, result_rx) = BodyWriter::new();
    let (response, _sent) = WasiResponse::new(fields, Some(body_rx), result_rx);
    Some((body, response))
}

/// Serves one event-stream request: checks it, opens the body and gives it to the hub.
pub async fn serve(req: Request) -> WasiResponse {
    let (req, secrets, store) = match prepare(req).await {
        Ok(x) => x,
        Err(resp) => {
            return resp
                .into_response()
                .unwrap_or_else(|_| to_wasi(internal("response")));
        }
    };
    let start = match api::open_stream(&store, &req, &secrets, Timestamp::now()).await {
        Ok(s) => s,
        Err(resp) => return to_wasi(resp),
    };
    let head = match log::head(&store, &start.agent).await {
        Ok(h) => h,
        Err(e) => return to_wasi(api::Response::problem(&e.into())),
    };
    let opts = StreamOptions::load().await;
    let Some((body, response)) = open_sse() else {
        return to_wasi(internal("stream headers"));
    };
    let number = match outlet::opened(&store, &start.agent).await {
        Ok(n) => n,
        Err(e) => return to_wasi(api::Response::problem(&e.into())),
    };
    let job = Job {
        number,
        agent: start.agent,
        token: start.token,
        head,
        resume: log::resume(start.cursor, head),
        requested: start.cursor,
        body,
    };
    let start_hub = HUB.with(|h| {
        let mut h = h.borrow_mut();
        h.incoming.push(job);
        !std::mem::replace(&mut h.running, true)
    });
    if start_hub {
        spin_sdk::wasip3::spawn(hub(opts));
    }
    response
}

/// One open stream.
struct Live {
    agent: String,
    /// Its number among the agent's streams.
    number: i64,
    /// The agent's streams opened after it and still open: too many, and it gives way.
    newer: outlet::Newer,
    /// The token it was opened with: it ends when that expires or is revoked.
    token: token::Verified,
    /// The feed said the agent's tokens were revoked: look whether this one is.
    check_token: bool,
    reader: Reader,
    /// The highest number the stream knows its agent's log has (read at its start, then from the
    /// change feed): its reads go up to it.
    head: i64,
    end: Timestamp,
    last_write: Timestamp,
    /// Read the log at the next tick regardless of the heads (new streams, after an expiry).
    dirty: bool,
    /// The body's byte stream, while no write holds it.
    stream: Option<StreamWriter<u8>>,
    /// The write in flight (it holds the byte stream until it completes), and when it started.
    write: Option<(Write, Pending)>,
    /// How the body ends.
    result: FutureWriter<BodyResult>,
    /// Frames not yet handed to a write.
    out: String,
    /// Ended as planned: it goes once its last frames are written.
    finished: bool,
    /// Cut: it goes at once.
    cut: Option<Cut>,
}

/// A write of frames to a stream's body: it gives the byte stream back, and whether the client
/// took everything.
type Write = Pin<Box<dyn Future<Output = (StreamWriter<u8>, bool)>>>;

impl Live {
    /// Opens a stream; `spread` in [0, 1) staggers its timers against streams opened with it.
    async fn start<S: Store>(store: &S, job: Job, opts: &StreamOptions, spread: f64) -> Self {
        let now = Timestamp::now();
        // Streams opened together (a reconnect wave after a restart) would otherwise send their
        // heartbeats and end all on the same tick, and reconnect together again: the first
        // heartbeat comes anywhere within the interval, and the stream ends within the last fifth
        // of `stream_max_seconds`.
        let max_ms = opts.max_seconds * 1000;
        let end = Timestamp(now.0 + max_ms - (spread * (max_ms / 5) as f64) as u64);
        let quiet_for = (spread * (opts.heartbeat_seconds * 1000) as f64) as u64;
        let last_write = Timestamp(now.0.saturating_sub(quiet_for));
        let mut out = String::new();
        let head = job.head;
        let reader = match job.resume {
            Resume::After(c) => Reader::new(&job.agent, c),
            Resume::Head(head) | Resume::Reset { head } => {
                match Reader::fresh(store, &job.agent, head).await {
                    Ok(r) => r,
                    Err(_) => Reader::new(&job.agent, head),
                }
            }
        };
        out.push_str(&sse::opening(opts.retry_ms, reader.cursor()));
        if let Resume::Reset { .. } = job.resume {
            out.push_str(&sse::reset(job.requested.unwrap_or(-1), reader.cursor()));
        }
        Self {
            reader,
            number: job.number,
            newer: outlet::Newer::of(job.number),
            agent: job.agent,
            token: job.token,
            check_token: false,
            head,
            end,
            last_write,
            dirty: true,
            stream: Some(job.body.stream_writer),
            write: None,
            result: job.body.result_writer,
            out,
            finished: false,
            cut: None,
        }
    }

    /// Reads and frames everything after the cursor, up to the head it knows of.
    async fn deliver<S: Store>(&mut self, store: &S) {
        loop {
            let now = Timestamp::now();
            let Ok(batch) = self.reader.next_upto(store, now, BATCH, self.head).await else {
                // Read again on the next tick.
                self.dirty = true;
                return;
            };
            if let Some((from, head)) = self.reader.take_reset() {
                // The client fell a whole retained window behind: it must re-sync.
                self.out.push_str(&sse::reset(from, head));
            }
            for (seq, why) in self.reader.take_unreadable() {
                eprintln!("log {}: slot {seq} holds no event: {why}", self.agent);
                self.out.push_str(&sse::unreadable(seq, &why));
            }
            for logged in &batch {
                self.out.push_str(&sse::event(logged));
            }
            if !self.reader.more_below(self.head) {
                return;
            }
        }
    }

    /// Hands the frames waiting to a new write, unless one is in flight.
    fn start_write(&mut self, tick: u64, now: Timestamp) {
        if self.out.is_empty() || self.cut.is_some() {
            return;
        }
        let Some(mut stream) = self.stream.take() else {
            return;
        };
        let bytes = std::mem::take(&mut self.out).into_bytes();
        let write: Write = Box::pin(async move {
            let unwritten = stream.write_all(bytes).await;
            (stream, unwritten.is_empty())
        });
        self.write = Some((write, Pending { tick, at: now.0 }));
    }

    /// Polls the write in flight; ready when it has completed.
    fn poll_write(&mut self, cx: &mut Context<'_>) -> TaskPoll<()> {
        let Some((write, _)) = self.write.as_mut() else {
            return TaskPoll::Pending;
        };
        let TaskPoll::Ready((stream, complete)) = write.as_mut().poll(cx) else {
            return TaskPoll::Pending;
        };
        self.write = None;
        self.stream = Some(stream);
        if !complete {
            self.cut = Some(Cut::ClientGone);
        }
        TaskPoll::Ready(())
    }

    /// Whether it is done with: cut, or ended as planned with everything written.
    fn over(&self) -> bool {
        self.cut.is_some() || (self.finished && self.out.is_empty() && self.write.is_none())
    }
}

/// Polls every write in flight once; ready when any has completed.
fn poll_writes(streams: &mut [Live], cx: &mut Context<'_>) -> TaskPoll<()> {
    let mut any = false;
    for s in streams.iter_mut() {
        any |= s.poll_write(cx).is_ready();
    }
    if any {
        TaskPoll::Ready(())
    } else {
        TaskPoll::Pending
    }
}

/// Waits for the next tick while the writes in flight go on.
async fn wait_writing(pace: &mut Pace, streams: &mut [Live]) {
    let mut tick = std::pin::pin!(pace.wait());
    loop {
        let written = std::future::poll_fn(|cx| poll_writes(streams, cx));
        match futures::future::select(tick.as_mut(), std::pin::pin!(written)).await {
            futures::future::Either::Left(_) => return,
            futures::future::Either::Right(_) => {}
        }
    }
}

/// Marks the streams whose log the feed says moved, and ends the streams that `max_streams` newer
/// ones of their agent replace.
fn apply(streams: &mut [Live], changed: &BTreeMap<String, changes::Change>, max_streams: u64) {
    for s in streams.iter_mut() {
        let Some(c) = changed.get(&s.agent) else {
            continue;
        };
        if let Some(h) = c.head {
            s.head = s.head.max(h);
        }
        if s.head > s.reader.cursor() {
            s.dirty = true;
        }
        s.check_token |= c.revoked;
        s.newer.apply(c);
        if s.newer.crowded(max_streams) && s.cut.is_none() {
            s.cut = Some(Cut::Replaced);
        }
    }
}

/// When the feed cannot tell what changed: reads every stream's log head.
async fn check_everything<S: Store>(store: &S, streams: &mut [Live]) {
    let agents: BTreeSet<String> = streams.iter().map(|s| s.agent.clone()).collect();
    let heads: HashMap<String, i64> =
        futures::future::join_all(agents.into_iter().map(|a| async move {
            let h = log::head(store, &a).await;
            (a, h)
        }))
        .await
        .into_iter()
        .filter_map(|(a, h)| Some((a, h.ok()?)))
        .collect();
    for s in streams.iter_mut() {
        if let Some(h) = heads.get(&s.agent) {
            s.head = s.head.max(*h);
        }
        s.dirty = true;
        s.check_token = true;
    }
}

/// The instance's one loop over all its streams; it stops when it holds none.
async fn hub(opts: StreamOptions) {
    // However the hub ends — its loop finishing, or its task being dropped by the host — the next
    // stream request must find it not running and start a new one for the queued streams.
    struct Running;
    impl Drop for Running {
        fn drop(&mut self) {
            HUB.with(|h| h.borrow_mut().running = false);
        }
    }
    let _running = Running;
    let opened = SpinStore::open_default().await;
    let Ok(store) = opened.as_ref() else { return };
    let mut streams: Vec<Live> = Vec::new();
    let mut feed: Option<changes::Feed> = None;
    let mut pace = opts.pace;
    let heartbeat = opts.heartbeat_seconds * 1000;
    let mut opened: u64 = 0;
    // The hub's ticks so far: the clock a slow client is judged by.
    let mut ticks: u64 = 0;
    // Until when a tick with no change and no new stream has nothing to do (see `Quiet`).
    let mut quiet = Quiet::Until(0);
    // Who this hub is to the expiry pass's cursor, and when it next runs the pass.
    let me = super::new_id();
    let mut next_pass = 0;
    loop {
        // New streams join a bounded number per tick, so a reconnect wave does not hold up
        // delivery to the streams already open.
        let jobs: Vec<Job> = HUB.with(|h| {
            let mut h = h.borrow_mut();
            let n = h.incoming.len().min(STARTS_PER_TICK);
            h.incoming.drain(..n).collect()
        });
        // The reads of a tick are issued together, not one after another: a busy host answers
        // them in one turn of the instance's event loop instead of one turn per read.
        let joining = !jobs.is_empty();
        let starts = jobs.into_iter().map(|job| {
            opened += 1;
            // A low-discrepancy sequence: consecutive streams get well spread values.
            let spread = (opened as f64 * 0.618_033_988_749_895).fract();
            Live::start(store, job, &opts, spread)
        });
        streams.extend(futures::future::join_all(starts).await);
        if streams.is_empty() {
            break;
        }
        // One read tells whether anything changed anywhere since the last tick, and a few more
        // which agents; only their streams look at their heads.
        let now = Timestamp::now();
        let poll = match feed.as_mut() {
            Some(f) => f.poll(store, now).await.unwrap_or(Poll::Everything),
            None => {
                feed = changes::Feed::start(store, now).await.ok();
                Poll::Everything
            }
        };
        // Once a second, the expiry pass, in a task of its own: no stream waits for it.
        if now.0 >= next_pass {
            next_pass = (now.0 / 1000 + 1) * 1000 + crate::due::GRACE_MS;
            spawn_expiry_pass(&me);
        }
        // Nothing changed, no stream joined, and no heartbeat or stream end is due:
        // the tick is over without a look at each stream.
        if poll == Poll::Quiet && !joining && quiet.holds_at(now) {
            ticks += 1;
            wait_writing(&mut pace, &mut streams).await;
            continue;
        }
        if poll != Poll::Quiet {
            pace.changed(now);
        }
        match &poll {
            Poll::Everything => check_everything(store, &mut streams).await,
            Poll::Agents(changed) => apply(&mut streams, changed, opts.max_streams),
            Poll::Quiet => {}
        }
        // Streams whose agent's tokens were revoked end if theirs is one of them.
        let checks = streams
            .iter_mut()
            .filter(|s| s.check_token)
            .map(|s| async move {
                s.check_token = false;
                match api::revoked_at(store, &s.agent).await {
                    Ok(at) if token::revoked(&s.token, at) => s.cut = Some(Cut::Revoked),
                    Ok(_) => {}
                    Err(_) => s.check_token = true,
                }
            });
        futures::future::join_all(checks).await;
        let now = Timestamp::now();
        let deliveries = streams
            .iter_mut()
            .filter(|s| !s.finished && (s.dirty || s.reader.has_hole()))
            .map(|s| {
                s.dirty = false;
                s.deliver(store)
            });
        futures::future::join_all(deliveries).await;
        for s in streams.iter_mut().filter(|s| !s.finished) {
            if now >= s.token.expires && s.cut.is_none() {
                s.cut = Some(Cut::Expired);
            }
            // At its end a stream sends its last frames and nothing after them; it goes once
            // they are written.
            if now >= s.end {
                s.out.push_str(&sse::closing(opts.planned_retry_ms));
                s.finished = true;
            } else if s.out.is_empty() && s.last_write.millis_until(now) >= heartbeat {
                s.out.push_str(sse::HEARTBEAT);
            }
            if !s.out.is_empty() {
                s.last_write = now;
            }
        }
        // Only streams with something to say are written, each by a write of its own that
        // may outlast the tick: the hub does not wait for any client. A stream whose client
        // stopped reading is cut ([`outlet::cut`]), never one that only shares a stalled host.
        ticks += 1;
        for s in &mut streams {
            s.start_write(ticks, now);
            if s.cut.is_none() {
                s.cut = outlet::cut(s.write.as_ref().map(|w| w.1), s.out.len(), ticks, now.0);
            }
        }
        if streams.iter().any(Live::over) {
            let (ended, open): (Vec<Live>, Vec<Live>) = streams.into_iter().partition(Live::over);
            streams = open;
            for s in ended {
                // Close the body, then report how it ended without holding up the loop: cleanly
                // (no trailers), or failed with why it was cut, which the host counts.
                let result = match s.cut {
                    Some(cut) => Err(ErrorCode::InternalError(Some(cut.message().into()))),
                    None => Ok(None),
                };
                drop(s.write);
                drop(s.stream);
                let result_writer = s.result;
                let (agent, number) = (s.agent, s.number);
                spin_sdk::wasip3::spawn(async move {
                    let _ = result_writer.write(result).await;
                    // Its agent's older streams stop counting it.
                    if let Ok(store) = SpinStore::open_default().await {
                        let _ = outlet::closed(&store, &agent, number).await;
                    }
                });
            }
        }
        quiet = Quiet::after(&streams, heartbeat);
        wait_writing(&mut pace, &mut streams).await;
    }
}

thread_local! {
    static PASSING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs the expiry pass in a task of its own, unless the last one is still running.
fn spawn_expiry_pass(me: &str) {
    struct Passing;
    impl Drop for Passing {
        fn drop(&mut self) {
            PASSING.with(|p| p.set(false));
        }
    }
    if PASSING.with(|p| p.replace(true)) {
        return;
    }
    let me = me.to_string();
    spin_sdk::wasip3::spawn(async move {
        let _passing = Passing;
        if let Ok(store) = SpinStore::open_default().await {
            let _ = service::expire_pass(&store, &me, Timestamp::now()).await;
        }
    });
}

/// Whether the hub's next ticks may skip the streams while nothing changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Quiet {
    /// Until this time (ms): the earliest heartbeat or stream end of any stream.
    Until(u64),
    /// A stream has work left over (a log read to finish, a hole to wait at, frames to write).
    No,
}

impl Quiet {
    /// The state the streams are left in after a tick.
    fn after(streams: &[Live], heartbeat: u64) -> Self {
        let mut until = u64::MAX;
        for s in streams {
            if s.dirty || s.check_token || s.reader.has_hole() || !s.out.is_empty() {
                return Self::No;
            }
            until = until
                .min(s.last_write.0 + heartbeat)
                .min(s.end.0)
                .min(s.token.expires.0);
            if let Some((_, p)) = &s.write {
                // When it would count as slow.
                until = until.min(p.at + outlet::SLOW_CLIENT_MS);
            }
        }
        Self::Until(until)
    }

    fn holds_at(self, now: Timestamp) -> bool {
        matches!(self, Self::Until(t) if now.0 < t)
    }
}
