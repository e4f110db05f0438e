//! The floor: a minimal native SSE fan-out server (tokio + hyper, one channel per subscriber, in
//! memory). `GET /sub/<agent>` streams; `POST /pub/<agent>` with a JSON body sends it to that agent's
//! streams as one event. What the app is compared against: the same load with no Wasm and no store.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::StreamExt;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper_util::rt::TokioIo;
use tokio::sync::mpsc;

type Subscribers = Arc<Mutex<HashMap<String, Vec<mpsc::UnboundedSender<Bytes>>>>>;
type Body = http_body_util::combinators::BoxBody<Bytes, Infallible>;

fn full(status: u16, text: &'static str) -> hyper::Response<Body> {
    let mut r = hyper::Response::new(Full::new(Bytes::from_static(text.as_bytes())).boxed());
    *r.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::OK);
    r
}

async fn handle(
    req: hyper::Request<hyper::body::Incoming>,
    subs: Subscribers,
    seq: Arc<Mutex<u64>>,
) -> hyper::Response<Body> {
    let path = req.uri().path().to_string();
    if let Some(agent) = path.strip_prefix("/sub/") {
        let (tx, rx) = mpsc::unbounded_channel::<Bytes>();
        let _ = tx.send(Bytes::from_static(
            b"retry: 1000\nevent: ready\ndata: {}\n\n",
        ));
        subs.lock()
            .map(|mut s| s.entry(agent.to_string()).or_default().push(tx))
            .ok();
        let stream = tokio_stream_from(rx).map(|b| Ok::<_, Infallible>(Frame::data(b)));
        let mut r = hyper::Response::new(BodyExt::boxed(StreamBody::new(stream)));
        r.headers_mut().insert(
            "content-type",
            http::HeaderValue::from_static("text/event-stream"),
        );
        return r;
    }
    if let Some(agent) = path.strip_prefix("/pub/") {
        let agent = agent.to_string();
        let Ok(body) = req.into_body().collect().await.map(|b| b.to_bytes()) else {
            return full(400, "body");
        };
        let n = seq.lock().map(|mut s| {
            *s += 1;
            *s
        });
        let frame = Bytes::from(format!(
            "id: {}\nevent: message\ndata: {}\n\n",
            n.unwrap_or(0),
            String::from_utf8_lossy(&body)
        ));
        if let Ok(mut s) = subs.lock()
            && let Some(list) = s.get_mut(&agent)
        {
            list.retain(|tx| tx.send(frame.clone()).is_ok());
        }
        return full(202, "");
    }
    full(404, "")
}

fn tokio_stream_from(mut rx: mpsc::UnboundedReceiver<Bytes>) -> impl futures::Stream<Item = Bytes> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// Serves until killed; prints `Serving http://<addr>` like `spin up`.
pub async fn serve(listen: SocketAddr) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    eprintln!("Serving http://{}", listener.local_addr()?);
    let subs: Subscribers = Arc::default();
    let seq = Arc::new(Mutex::new(0));
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let (subs, seq) = (subs.clone(), seq.clone());
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| {
                let (subs, seq) = (subs.clone(), seq.clone());
                async move { Ok::<_, Infallible>(handle(req, subs, seq).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}
