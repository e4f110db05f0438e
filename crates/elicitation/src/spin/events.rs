//! `GET /v1/agents/:agent/events`: each agent's event log as a Server-Sent Events stream.
//!
//! Spin gives an HTTP component no change notification. Each stream checks the global
//! [`EPOCH`](keys::EPOCH) counter every `stream_tick_ms` (one read; every event append bumps it) and
//! reads its own log only when that moved. This costs one wake-up per stream per tick; sharing one
//! poller among the streams of an instance needs one component-model task to wake another, which the
//! current wit-bindgen/wasmtime pair traps on (see the push issue's notes), so it is not done yet.
//!
//! Each stream also keeps the deadlines of the pending elicitations its agent is a party to, and at
//! a deadline writes the expiry (the compare-and-swap in [`service`] makes it happen once however
//! many streams try); the expired event then arrives through the log like any other.

use std::collections::BTreeSet;

use futures::SinkExt;
use futures::channel::mpsc;
use spin_sdk::http::{BoxBody, Request, Response, box_body};

use super::{SpinStore, into_response, number_variable, prepare, sleep_ms};
use crate::api;
use crate::keys::{self, Role};
use crate::log::{self, Resume};
use crate::model::{EventKind, Record, Status};
use crate::service::{self, ListQuery};
use crate::sse;
use crate::store::{Store, decode_counter};
use crate::time::Timestamp;

/// Stream settings, from Spin variables.
#[derive(Debug, Clone, Copy)]
pub struct StreamOptions {
    /// How often a stream looks for changes (`stream_tick_ms`, default 10).
    pub tick_ms: u64,
    /// A stream ends after this long (`stream_max_seconds`, default 25: hosted platforms cut at 30 s).
    pub max_seconds: u64,
    /// Heartbeat interval while idle (`stream_heartbeat_seconds`, default 10).
    pub heartbeat_seconds: u64,
    /// The `retry:` hint, milliseconds.
    pub retry_ms: u64,
}

impl StreamOptions {
    /// Reads the variables.
    pub async fn load() -> Self {
        Self {
            tick_ms: number_variable("stream_tick_ms", 10).await.max(1),
            max_seconds: number_variable("stream_max_seconds", 25).await.max(1),
            heartbeat_seconds: number_variable("stream_heartbeat_seconds", 10).await.max(1),
            retry_ms: 1000,
        }
    }
}

/// How many events one read takes.
const BATCH: usize = 100;

/// Serves one event-stream request.
pub async fn serve(req: Request) -> Response<BoxBody> {
    let (req, secrets, store) = match prepare(req).await {
        Ok(x) => x,
        Err(resp) => return resp,
    };
    let start = match api::open_stream(&req, &secrets, Timestamp::now()) {
        Ok(s) => s,
        Err(resp) => return into_response(resp),
    };
    let opts = StreamOptions::load().await;
    let head = match log::head(&store, &start.agent).await {
        Ok(h) => h,
        Err(e) => return into_response(api::Response::problem(&e.into())),
    };
    let resume = log::resume(start.cursor, head);
    let (tx, body) = spin_sdk::http::body::stream::<String>();
    spin_sdk::wasip3::spawn(async move {
        // An error here means the client went away: that ends the stream like its natural end.
        let _ = Stream {
            store,
            agent: start.agent,
            tx,
            opts,
        }
        .run(resume, start.cursor)
        .await;
    });
    Response::builder()
        .status(200)
        .header("content-type", "text/event-stream")
        .header("cache-control", "no-cache")
        .header("x-accel-buffering", "no")
        .body(box_body(body))
        .unwrap_or_else(|_| {
            into_response(api::Response::problem(&crate::Error::Storage(
                "response".into(),
            )))
        })
}

struct Stream {
    store: SpinStore,
    agent: String,
    tx: mpsc::Sender<String>,
    opts: StreamOptions,
}

/// The client is gone (or the store failed): the stream ends.
struct End;

impl Stream {
    async fn send(&mut self, frame: String) -> Result<(), End> {
        self.tx.send(frame).await.map_err(|_| End)
    }

    /// Pending elicitations `agent` is a party to, as `(deadline, id)`.
    async fn pending(&self, role: Role) -> Result<Vec<(u64, String)>, End> {
        let q = ListQuery {
            role,
            statuses: vec![Status::Pending],
            limit: service::MAX_LIMIT,
            cursor: None,
        };
        let page = service::list(&self.store, &self.agent, &self.agent, &q, Timestamp::now())
            .await
            .map_err(|_| End)?;
        Ok(page
            .items
            .into_iter()
            .map(|e| (e.expires_at.0, e.id))
            .collect())
    }

    async fn outbox_head(&self) -> Result<i64, End> {
        let raw = self
            .store
            .get(&keys::index_head(&self.agent, Role::Outbox))
            .await
            .map_err(|_| End)?;
        Ok(decode_counter(raw.as_deref()))
    }

    /// Deadlines of the elicitations the agent asked at outbox positions `(from, to]`.
    async fn new_outgoing(&self, from: i64, to: i64) -> Result<Vec<(u64, String)>, End> {
        let positions: Vec<String> = (from + 1..=to)
            .map(|n| keys::index_entry(&self.agent, Role::Outbox, n))
            .collect();
        let ids: Vec<String> = self
            .store
            .get_many(&positions)
            .await
            .map_err(|_| End)?
            .into_iter()
            .flatten()
            .filter_map(|b| String::from_utf8(b).ok())
            .collect();
        let records = self
            .store
            .get_many(&ids.iter().map(|i| keys::record(i)).collect::<Vec<_>>())
            .await
            .map_err(|_| End)?;
        Ok(records
            .into_iter()
            .flatten()
            .filter_map(|r| serde_json::from_slice::<Record>(&r).ok())
            .filter(|r| r.elicitation.status == Status::Pending)
            .map(|r| (r.elicitation.expires_at.0, r.elicitation.id))
            .collect())
    }

    async fn run(mut self, resume: Resume, requested: Option<i64>) -> Result<(), End> {
        let opts = self.opts;
        let cursor = match resume {
            Resume::After(c) => {
                self.send(sse::opening(opts.retry_ms, c)).await?;
                c
            }
            Resume::Reset { head } => {
                self.send(sse::opening(opts.retry_ms, head)).await?;
                self.send(sse::reset(requested.unwrap_or(-1), head)).await?;
                head
            }
        };
        let started = Timestamp::now();
        let end = started.plus_secs(opts.max_seconds);
        let heartbeat = opts.heartbeat_seconds * 1000;
        let mut out_head = self.outbox_head().await?;
        let mut deadlines: BTreeSet<(u64, String)> = BTreeSet::new();
        deadlines.extend(self.pending(Role::Inbox).await?);
        deadlines.extend(self.pending(Role::Outbox).await?);
        let mut last_write = started;
        let mut last_epoch = None;
        let mut reader = log::Reader::new(&self.agent, cursor);
        loop {
            // 1. Only when something was appended anywhere: everything after the cursor, in order.
            let epoch = self.store.get(keys::EPOCH).await.map_err(|_| End)?;
            let changed = last_epoch.as_ref() != Some(&epoch);
            last_epoch = Some(epoch);
            while changed || reader.has_hole() {
                let batch = reader
                    .next(&self.store, Timestamp::now(), BATCH)
                    .await
                    .map_err(|_| End)?;
                for e in &batch {
                    self.send(sse::event(e)).await?;
                    let el = &e.elicitation;
                    if e.kind == EventKind::Created && el.status == Status::Pending {
                        deadlines.insert((el.expires_at.0, el.id.clone()));
                    } else if e.kind != EventKind::Created {
                        deadlines.retain(|(_, id)| *id != el.id);
                    }
                }
                if !batch.is_empty() {
                    last_write = Timestamp::now();
                }
                if batch.len() < BATCH {
                    break;
                }
            }
            // 2. Elicitations this agent asked since the last look: their deadlines matter too.
            let oh = if changed {
                self.outbox_head().await?
            } else {
                out_head
            };
            if oh > out_head {
                deadlines.extend(self.new_outgoing(out_head, oh).await?);
                out_head = oh;
            }
            // 3. Deadlines that passed: write the expiry (once, whoever gets there first), then deliver it.
            let now = Timestamp::now();
            let due: Vec<(u64, String)> = deadlines
                .iter()
                .take_while(|(t, _)| *t <= now.0)
                .cloned()
                .collect();
            if !due.is_empty() {
                for d in &due {
                    let _ = service::get(&self.store, &self.agent, &d.1, now).await;
                    deadlines.remove(d);
                }
                last_epoch = None;
                continue;
            }
            // 4. The natural end, so clients reconnect before a platform cuts the request.
            if now >= end {
                let _ = self.send(sse::closing(opts.retry_ms)).await;
                return Ok(());
            }
            // 5. Heartbeat while idle (it also finds out when the client has gone).
            if last_write.millis_until(now) >= heartbeat {
                self.send(sse::HEARTBEAT.to_string()).await?;
                last_write = now;
            }
            // 6. Sleep for a tick, or less if the next deadline, the heartbeat or the end comes sooner.
            let mut until = end
                .0
                .min(last_write.0 + heartbeat)
                .min(now.0 + opts.tick_ms);
            if let Some((t, _)) = deadlines.first() {
                until = until.min(*t);
            }
            sleep_ms(now.millis_until(Timestamp(until)).max(1)).await;
        }
    }
}
