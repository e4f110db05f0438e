//! The floor: a minimal native SSE fan-out server (tokio + hyper, in memory, no Wasm, no store).
//! `GET /sub/<agent>` streams that agent's events; `POST /pub/<agent>` with a JSON body appends it
//! to the agent's log as one event and sends it to the agent's open streams. What the app is
//! compared against: the same load with no Wasm and no store.
//!
//! Its streams behave as the app's do towards a client, so that both are measured under the same
//! client behaviour: each agent has its own sequence numbers (`id:`), the newest
//! [`RETAINED`] events are kept so a client resumes after its `Last-Event-ID` (older cursors get
//! `event: reset`), a stream opens with `retry:` and a `ready` frame carrying its cursor, and it
//! ends by itself within the last fifth of `--max-seconds` (the same low-discrepancy spread as the
//! app's hub) with the app's closing comment and a `retry:` — the values the benchmark saw the
//! app send in this run, passed as `--retry-ms` and `--closing-retry-ms`.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper_util::rt::TokioIo;
use tokio::sync::mpsc;

/// Events kept per agent for resumption (the app keeps the same number).
pub const RETAINED: usize = 1000;

/// How the floor's streams behave.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// A stream ends by itself at the latest after this long (the app's `stream_max_seconds`).
    pub max_seconds: u64,
    /// `retry:` at the opening of a stream, milliseconds.
    pub retry_ms: u64,
    /// `retry:` with the closing comment of a planned end, milliseconds.
    pub closing_retry_ms: u64,
}

#[derive(Default)]
struct Agent {
    head: u64,
    log: VecDeque<(u64, Bytes)>,
    streams: Vec<(u64, mpsc::UnboundedSender<Bytes>)>,
}

#[derive(Default)]
struct State {
    agents: HashMap<String, Agent>,
    /// Streams opened so far (for the spread of their ends) and the next stream's id.
    opened: u64,
}

type Shared = Arc<Mutex<State>>;
type Body = http_body_util::combinators::BoxBody<Bytes, Infallible>;

fn full(status: u16, text: &'static str) -> hyper::Response<Body> {
    let mut r = hyper::Response::new(Full::new(Bytes::from_static(text.as_bytes())).boxed());
    *r.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::OK);
    r
}

/// Opens a stream for `agent` after `last_id`: the opening, what it missed, then live events.
fn subscribe(
    state: &Shared,
    opts: Options,
    agent: &str,
    last_id: Option<u64>,
) -> hyper::Response<Body> {
    let (tx, rx) = mpsc::unbounded_channel::<Bytes>();
    let (stream_id, spread) = {
        let Ok(mut st) = state.lock() else {
            return full(500, "");
        };
        st.opened += 1;
        let stream_id = st.opened;
        // The app's spread: consecutive streams get well spread values in [0, 1).
        let spread = (stream_id as f64 * 0.618_033_988_749_895).fract();
        let a = st.agents.entry(agent.to_string()).or_default();
        let oldest = a.log.front().map_or(a.head + 1, |(seq, _)| *seq);
        let mut out = String::new();
        match last_id {
            Some(c) if c <= a.head && c + 1 >= oldest => {
                out.push_str(&opening(opts.retry_ms, c));
                let _ = tx.send(Bytes::from(out));
                for (_, frame) in a.log.iter().filter(|(seq, _)| *seq > c) {
                    let _ = tx.send(frame.clone());
                }
            }
            Some(c) => {
                out.push_str(&opening(opts.retry_ms, a.head));
                out.push_str(&format!(
                    "id: {}\nevent: reset\ndata: {{\"requested\":{c},\"head\":{}}}\n\n",
                    a.head, a.head
                ));
                let _ = tx.send(Bytes::from(out));
            }
            None => {
                let _ = tx.send(Bytes::from(opening(opts.retry_ms, a.head)));
            }
        }
        a.streams.push((stream_id, tx.clone()));
        (stream_id, spread)
    };
    // The planned end, as the app's: within the last fifth of max_seconds.
    let max_ms = opts.max_seconds * 1000;
    let end = Duration::from_millis(max_ms - (spread * (max_ms / 5) as f64) as u64);
    let (state, agent) = (state.clone(), agent.to_string());
    tokio::spawn(async move {
        tokio::time::sleep(end).await;
        if let Ok(mut st) = state.lock()
            && let Some(a) = st.agents.get_mut(&agent)
        {
            a.streams.retain(|(id, _)| *id != stream_id);
        }
        // Sent after the stream left the fan-out, so nothing follows it; dropping the last
        // sender then ends the body.
        let _ = tx.send(Bytes::from(format!(
            ": stream ends, reconnect with Last-Event-ID\nretry: {}\n\n",
            opts.closing_retry_ms
        )));
    });
    let stream = tokio_stream_from(rx).map(|b| Ok::<_, Infallible>(Frame::data(b)));
    let mut r = hyper::Response::new(BodyExt::boxed(StreamBody::new(stream)));
    r.headers_mut().insert(
        "content-type",
        http::HeaderValue::from_static("text/event-stream"),
    );
    r
}

fn opening(retry_ms: u64, cursor: u64) -> String {
    format!("retry: {retry_ms}\nid: {cursor}\nevent: ready\ndata: {{\"cursor\":{cursor}}}\n\n")
}

async fn handle(
    req: hyper::Request<hyper::body::Incoming>,
    state: Shared,
    opts: Options,
) -> hyper::Response<Body> {
    let path = req.uri().path().to_string();
    if let Some(agent) = path.strip_prefix("/sub/") {
        let last_id = req
            .headers()
            .get("last-event-id")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok());
        return subscribe(&state, opts, agent, last_id);
    }
    if let Some(agent) = path.strip_prefix("/pub/") {
        let agent = agent.to_string();
        let Ok(body) = req.into_body().collect().await.map(|b| b.to_bytes()) else {
            return full(400, "body");
        };
        let Ok(mut st) = state.lock() else {
            return full(500, "");
        };
        let a = st.agents.entry(agent).or_default();
        a.head += 1;
        let frame = Bytes::from(format!(
            "id: {}\nevent: message\ndata: {}\n\n",
            a.head,
            String::from_utf8_lossy(&body)
        ));
        a.log.push_back((a.head, frame.clone()));
        if a.log.len() > RETAINED {
            a.log.pop_front();
        }
        a.streams.retain(|(_, tx)| tx.send(frame.clone()).is_ok());
        return full(202, "");
    }
    full(404, "")
}

fn tokio_stream_from(mut rx: mpsc::UnboundedReceiver<Bytes>) -> impl futures::Stream<Item = Bytes> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// Serves until killed or until its standard input closes; prints `Serving http://<addr>` like
/// `spin up`.
pub async fn serve(listen: SocketAddr, opts: Options) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    eprintln!("Serving http://{}", listener.local_addr()?);
    // The benchmark holds the other end of stdin: when it exits, however it exits, so does this.
    tokio::spawn(async {
        let mut sink = Vec::new();
        let _ = tokio::io::AsyncReadExt::read_to_end(&mut tokio::io::stdin(), &mut sink).await;
        std::process::exit(0);
    });
    let state: Shared = Arc::default();
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let state = state.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(handle(req, state, opts).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}
