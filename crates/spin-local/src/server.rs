//! Serving: one wasmtime engine, one [`ProxyHandler`] per component (which pools and reuses WASIp3
//! instances as Spin 4 does), Spin's routing and request headers, and the built-in `/.well-known/spin`
//! routes, over hyper HTTP/1.1.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use wasmtime::component::{Component, GuestTaskId, Linker, ResourceTable};
use wasmtime::{Config, Engine, Store, StoreContextMut};
use wasmtime_wasi::cli::OutputFile;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::handler::{
    HandlerState, Instance, InstantiationError, Proxy, ProxyHandler, ShouldAccept,
    WorkerExpiration, WorkerState, WorkerStatus,
};
use wasmtime_wasi_http::p3::bindings::ServicePre;
use wasmtime_wasi_http::{WasiBody, WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks, WasiHttpView};

use crate::admission::InstanceCap;
use crate::capabilities::{self, CapabilityView, Grants};
use crate::kv::Stores;
use crate::manifest::{App, RouteDecl};
use crate::routes::{Route, Router};
use crate::stats::{ComponentStats, Stats};
use crate::variables::Variables;

/// How WASIp3 instances are reused (Spin 4's `spin up` options of the same names).
#[derive(Debug, Clone, Copy)]
pub struct Reuse {
    /// Requests one instance serves in total before it is retired.
    pub max_instance_reuse_count: usize,
    /// Requests one instance serves at the same time.
    pub max_instance_concurrent_reuse_count: usize,
    /// An instance idle this long is dropped.
    pub idle_instance_timeout: Duration,
}

/// Everything `serve` needs.
pub struct ServeOptions {
    /// Address to listen on (port 0 picks a free port).
    pub listen: SocketAddr,
    /// Where logs and default stores live (`.spin`).
    pub state_dir: PathBuf,
    /// Instance reuse.
    pub reuse: Reuse,
    /// Per-component overrides of `max_instance_concurrent_reuse_count`.
    pub concurrent_reuse_overrides: BTreeMap<String, usize>,
    /// Per-component caps on instances that accept requests.
    pub max_instances_per_component: BTreeMap<String, usize>,
    /// Instances the pooling allocator reserves room for.
    pub max_instances: u32,
    /// Requests per component that may wait for room in its instances.
    pub max_queued_requests: usize,
}

/// Set once the server stops accepting: instances cancelled by the shutdown are not errors.
pub static SHUTTING_DOWN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Per-instance host state.
pub struct HostState {
    table: ResourceTable,
    wasi: WasiCtx,
    http: WasiHttpCtx,
    hooks: DenyOutbound,
    grants: Grants,
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for HostState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

impl CapabilityView for HostState {
    fn table(&mut self) -> &mut ResourceTable {
        &mut self.table
    }

    fn grants(&self) -> &Grants {
        &self.grants
    }
}

/// Outbound HTTP is not granted to any component by this runtime.
struct DenyOutbound;

impl WasiHttpHooks for DenyOutbound {
    fn send_request(
        &mut self,
        _request: http::Request<WasiBody>,
        _options: Option<wasmtime_wasi_http::RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
    ) -> Box<
        dyn Future<
                Output = Result<
                    (
                        http::Response<WasiBody>,
                        Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
                    ),
                    wasmtime_wasi_http::Error,
                >,
            > + Send,
    > {
        Box::new(async { Err(wasmtime_wasi_http::Error::HttpRequestDenied) })
    }
}

/// One component ready to serve.
struct ComponentServer {
    engine: Engine,
    pre: ServicePre<HostState>,
    grants: Grants,
    environment: Vec<(String, String)>,
    stdout: OutputFile,
    stderr: OutputFile,
    reuse: Reuse,
}

struct Expiry {
    idle_timeout: Duration,
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl WorkerExpiration for Expiry {
    fn poll(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        state: WorkerStatus,
        start: Instant,
    ) -> Poll<()> {
        if state != WorkerStatus::Idle {
            self.timer = None;
            return Poll::Pending;
        }
        let deadline = tokio::time::Instant::from_std(start + self.idle_timeout);
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if timer.deadline() != deadline {
            timer.as_mut().reset(deadline);
        }
        timer.as_mut().poll(cx)
    }
}

struct Worker {
    reuse: Reuse,
    component: Arc<str>,
    stats: Arc<ComponentStats>,
    cap: Arc<InstanceCap>,
    /// Set once the instance stops taking requests for good (its place under the cap is free).
    retired: AtomicBool,
}

impl Worker {
    fn retire(&self) {
        if !self.retired.swap(true, Relaxed) {
            self.cap.release();
        }
    }
}

/// Instantiation refused because the component has as many accepting instances as it may; the
/// request waits for room in one of them.
#[derive(Debug)]
struct AtCapacity;

impl std::fmt::Display for AtCapacity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the component has as many instances as it may")
    }
}

impl std::error::Error for AtCapacity {}

/// Told when an instance takes the request in.
struct Admitted(tokio::sync::oneshot::Sender<()>);

impl WorkerState for Worker {
    type StoreData = HostState;
    type RequestData = Admitted;

    fn should_accept_request(&self, concurrent: usize, total: usize) -> ShouldAccept {
        if total >= self.reuse.max_instance_reuse_count {
            self.retire();
            ShouldAccept::Never
        } else if concurrent >= self.reuse.max_instance_concurrent_reuse_count {
            ShouldAccept::No
        } else {
            self.cap.instance_has_room();
            ShouldAccept::Yes
        }
    }

    fn on_request_start(
        &self,
        _: StoreContextMut<'_, HostState>,
        admitted: Admitted,
        _: GuestTaskId,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + Sync>> {
        // The request is in: the next one in the queue may be handed in.
        let _ = admitted.0.send(());
        // Requests never expire on the host side; a streaming response ends when the guest ends it.
        Box::pin(std::future::pending())
    }

    fn drop(&self, _store: Store<HostState>, result: wasmtime::Result<()>) {
        self.stats.instance_ended();
        self.retire();
        if let Err(e) = result
            && !SHUTTING_DOWN.load(std::sync::atomic::Ordering::Relaxed)
        {
            eprintln!(
                "component {:?}: instance ended with an error: {e:#}",
                self.component
            );
        }
    }
}

struct Handler {
    id: Arc<str>,
    server: ComponentServer,
    stats: Arc<ComponentStats>,
    cap: Arc<InstanceCap>,
}

impl HandlerState for Handler {
    type StoreData = HostState;
    type WorkerExpiration = Expiry;
    type WorkerState = Worker;

    #[allow(
        clippy::manual_async_fn,
        reason = "the trait asks for an explicitly Send future"
    )]
    fn instantiate(
        &self,
    ) -> impl Future<Output = wasmtime::Result<Instance<HostState, Expiry, Worker>>> + Send {
        async move {
            if !self.cap.acquire() {
                return Err(wasmtime::Error::new(AtCapacity));
            }
            // From here on the place is the worker's, released when it retires or is dropped.
            let worker = Worker {
                reuse: self.server.reuse,
                component: self.id.clone(),
                stats: self.stats.clone(),
                cap: self.cap.clone(),
                retired: AtomicBool::new(false),
            };
            let s = &self.server;
            let wasi = WasiCtxBuilder::new()
                .stdout(s.stdout.clone())
                .stderr(s.stderr.clone())
                .envs(&s.environment)
                .build();
            let host = HostState {
                table: ResourceTable::new(),
                wasi,
                http: WasiHttpCtx::new(),
                hooks: DenyOutbound,
                grants: s.grants.clone(),
            };
            let mut store = Store::new(&s.engine, host);
            let proxy = Proxy::P3(s.pre.instantiate_async(&mut store).await?);
            self.stats.instance_started();
            Ok(Instance {
                store,
                proxy,
                view: <HostState as WasiHttpView>::http,
                expiration: Expiry {
                    idle_timeout: s.reuse.idle_instance_timeout,
                    timer: None,
                },
                state: worker,
            })
        }
    }
}

/// The running application.
pub struct Server {
    router: Router,
    handlers: BTreeMap<String, ProxyHandler<Handler>>,
    stats: Stats,
    app_name: String,
    app_version: Option<String>,
}

fn engine(max_instances: u32) -> anyhow::Result<Engine> {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.wasm_component_model_async(true);
    let mut pool = wasmtime::PoolingAllocationConfig::default();
    pool.total_component_instances(max_instances)
        .total_core_instances(max_instances * 4)
        .total_memories(max_instances * 2)
        .total_tables(max_instances * 4)
        .total_stacks(max_instances)
        .max_memory_size(64 << 20);
    config.allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(pool));
    Engine::new(&config).map_err(|e| anyhow::anyhow!("{e:#}"))
}

fn log_file(dir: &Path, component: &str, stream: &str) -> anyhow::Result<OutputFile> {
    let path = dir.join(format!("{component}_{stream}.txt"));
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    Ok(OutputFile::new(file))
}

impl Server {
    /// Compiles every component and opens every store; prints what `spin up` prints first.
    pub fn prepare(
        app: &App,
        stores: &Stores,
        variables: &Variables,
        opts: &ServeOptions,
    ) -> anyhow::Result<Self> {
        let engine = engine(opts.max_instances)?;
        let log_dir = opts.state_dir.join("logs");
        std::fs::create_dir_all(&log_dir)
            .with_context(|| format!("cannot create {}", log_dir.display()))?;
        eprintln!(
            "Logging component stdio to {:?}",
            format!("{}/", log_dir.display())
        );

        let mut linker: Linker<HostState> = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        wasmtime_wasi::p3::add_to_linker(&mut linker)?;
        wasmtime_wasi_http::p3::add_to_linker(&mut linker)?;
        capabilities::add_to_linker(&mut linker)?;

        let mut handlers = BTreeMap::new();
        let mut stats = Stats::default();
        let stores = &stores.counted(&stats.kv);
        let routed: std::collections::BTreeSet<&String> = app
            .manifest
            .trigger
            .http
            .iter()
            .map(|t| &t.component)
            .collect();
        // Without a cap of its own, a component may have an equal share of half the pool:
        // instances still finishing their streams after they retire do not count against a cap,
        // and the other half leaves room for them. A request over the cap waits for room instead
        // of the pool running out under load.
        let default_cap = (opts.max_instances as usize / (2 * routed.len().max(1))).max(1);
        for (id, decl) in &app.manifest.component {
            for label in &decl.key_value_stores {
                anyhow::ensure!(
                    stores.contains(label),
                    "component {id:?} uses key-value store {label:?}, which is not defined (add it to the runtime config)"
                );
            }
            if !routed.contains(id) {
                continue;
            }
            let path = app.source_path(decl);
            let started = Instant::now();
            let component = Component::from_file(&engine, &path)
                .map_err(|e| anyhow::anyhow!("{e:#}"))
                .with_context(|| format!("cannot load component {id:?} from {}", path.display()))?;
            let pre = linker
                .instantiate_pre(&component)
                .map_err(|e| anyhow::anyhow!("{e:#}"))
                .with_context(|| {
                    format!("component {id:?} imports something this runtime does not provide")
                })?;
            let pre = ServicePre::new(pre)
                .map_err(|e| anyhow::anyhow!("{e:#}"))
                .with_context(|| {
                    format!("component {id:?} does not export wasi:http/handler@0.3.0")
                })?;
            tracing_compile(id, started.elapsed());
            let mut reuse = opts.reuse;
            if let Some(n) = opts.concurrent_reuse_overrides.get(id) {
                // An instance meant to hold N requests at once may serve at least N in total.
                reuse.max_instance_concurrent_reuse_count = *n;
                reuse.max_instance_reuse_count = reuse.max_instance_reuse_count.max(*n);
            }
            let grants = Grants {
                stores: stores.clone(),
                store_labels: Arc::new(decl.key_value_stores.clone()),
                variables: Arc::new(variables.for_component(id, &decl.variables)?),
            };
            let server = ComponentServer {
                engine: engine.clone(),
                pre,
                grants,
                environment: decl
                    .environment
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
                stdout: log_file(&log_dir, id, "stdout")?,
                stderr: log_file(&log_dir, id, "stderr")?,
                reuse,
            };
            let component_stats = Arc::new(ComponentStats::default());
            stats.components.insert(id.clone(), component_stats.clone());
            handlers.insert(
                id.clone(),
                ProxyHandler::new(Handler {
                    id: id.as_str().into(),
                    server,
                    stats: component_stats.clone(),
                    cap: Arc::new(InstanceCap::new(
                        opts.max_instances_per_component
                            .get(id)
                            .copied()
                            .unwrap_or(default_cap),
                        opts.max_queued_requests,
                        component_stats.clone(),
                    )),
                }),
            );
        }

        let routes = app
            .manifest
            .trigger
            .http
            .iter()
            .filter_map(|t| match &t.route {
                RouteDecl::Path(p) => Some(Route::new(p, &t.component)),
                RouteDecl::Private { .. } => None,
            })
            .collect();
        Ok(Self {
            router: Router::new(routes)?,
            handlers,
            stats,
            app_name: app.manifest.application.name.clone(),
            app_version: app.manifest.application.version.clone(),
        })
    }

    /// Binds, prints the `Serving …` banner and serves until `shutdown` resolves.
    pub async fn run(
        self,
        listen: SocketAddr,
        shutdown: impl Future<Output = ()>,
    ) -> anyhow::Result<()> {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        let local = listener.local_addr()?;
        let base = format!("http://{local}");
        eprintln!("\nServing {base}");
        eprintln!("Available Routes:");
        let mut listed: Vec<&Route> = self.router.routes().iter().collect();
        listed.sort_by(|a, b| (&a.component, &a.pattern).cmp(&(&b.component, &b.pattern)));
        for r in listed {
            let suffix = if r.is_wildcard() { " (wildcard)" } else { "" };
            eprintln!("  {}: {base}{}{suffix}", r.component, r.base());
        }
        let server = Arc::new(self);
        tokio::pin!(shutdown);
        loop {
            let (stream, peer) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        eprintln!("accept failed: {e}");
                        continue;
                    }
                },
                () = &mut shutdown => break,
            };
            // SSE frames are small: send them at once.
            let _ = stream.set_nodelay(true);
            let server = server.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| {
                    let server = server.clone();
                    async move {
                        Ok::<_, std::convert::Infallible>(server.handle(req, peer, local).await)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .keep_alive(true)
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
        SHUTTING_DOWN.store(true, std::sync::atomic::Ordering::Relaxed);
        eprintln!("Shutting down");
        Ok(())
    }

    async fn handle(
        &self,
        req: Request<Incoming>,
        peer: SocketAddr,
        local: SocketAddr,
    ) -> Response<WasiBody> {
        let path = req.uri().path().to_string();
        match path.as_str() {
            "/.well-known/spin/health" => return text(StatusCode::OK, "text/plain", "OK"),
            "/.well-known/spin/info" => {
                let info = serde_json::json!({
                    "name": self.app_name,
                    "version": self.app_version,
                    "runtime": "spin-local",
                    "runtimeVersion": env!("CARGO_PKG_VERSION"),
                });
                return text(StatusCode::OK, "application/json", &info.to_string());
            }
            "/.well-known/spin/stats" => {
                let stats = self.stats.to_json();
                return text(StatusCode::OK, "application/json", &stats.to_string());
            }
            _ => {}
        }
        let Some(m) = self.router.find(&path) else {
            return empty(StatusCode::NOT_FOUND);
        };
        let Some(handler) = self.handlers.get(&m.route.component) else {
            return empty(StatusCode::NOT_FOUND);
        };
        if let Some(s) = self.stats.components.get(&m.route.component) {
            s.request();
        }
        let (mut parts, body) = req.into_parts();
        let authority = parts
            .headers
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(str::to_string)
            .unwrap_or_else(|| local.to_string());
        let path_and_query = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/")
            .to_string();
        let full_url = format!("http://{authority}{path_and_query}");
        if let Ok(uri) = full_url.parse::<Uri>() {
            parts.uri = uri;
        }
        let h = &mut parts.headers;
        let mut put = |name: &str, value: &str| {
            if let (Ok(n), Ok(v)) = (
                http::HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(value),
            ) {
                h.insert(n, v);
            }
        };
        put("spin-full-url", &full_url);
        put("spin-path-info", &m.path_info);
        put("spin-matched-route", &m.route.pattern);
        put("spin-raw-component-route", &m.route.pattern);
        put("spin-component-route", m.route.base());
        put("spin-base-path", "/");
        put("spin-client-addr", &peer.to_string());
        for (name, value) in &m.params {
            put(
                &format!("spin-path-match-{}", name.replace('_', "-")),
                value,
            );
        }
        let body = body.map_err(wasmtime_wasi_http::Error::from).boxed_unsync();
        let mut request = Request::from_parts(parts, body);
        let cap = &handler.state().cap;
        let Some(place) = cap.enter() else {
            // The queue is full: answered at once, and the request never reached the component.
            return unavailable();
        };
        let queued_at = Instant::now();
        let mut head = Some(cap.head(place).await);
        let mut refused = false;
        // The error, and whether it is that no instance could be made at all.
        let (e, no_instance) = loop {
            let room = head.as_ref().map(|h| h.room());
            let mut room = std::pin::pin!(room);
            if let Some(r) = room.as_mut().as_pin_mut() {
                r.enable();
            }
            let (tx, mut admitted) = tokio::sync::oneshot::channel();
            let mut attempt = std::pin::pin!(handler.handle(Admitted(tx), request));
            let result = loop {
                tokio::select! {
                    biased;
                    r = &mut attempt => break r,
                    Ok(()) = &mut admitted, if head.is_some() => {
                        // Taken in: leave the queue and let the next request be handed in.
                        cap.admitted(queued_at.elapsed(), refused);
                        head = None;
                    }
                }
            };
            let e = match result {
                Ok(resp) => return counted(resp, &handler.state().stats),
                Err(e) => e,
            };
            match e.downcast::<InstantiationError<Admitted>>() {
                // At the instance cap: wait for room, then hand the same request in again.
                Ok(refused_now) if refused_now.error.downcast_ref::<AtCapacity>().is_some() => {
                    request = match refused_now.request.into_inner() {
                        Ok(r) => r,
                        Err(poisoned) => poisoned.into_inner(),
                    };
                    refused = true;
                    if let Some(r) = room.as_mut().as_pin_mut() {
                        r.await;
                    }
                }
                Ok(refused_now) => break (refused_now.into(), true),
                Err(e) => break (e, false),
            }
        };
        drop(head);
        eprintln!(
            "component {:?}: request {path} failed: {e:#}",
            m.route.component
        );
        if no_instance {
            // The pool is exhausted: the request did not reach the component, so the client may
            // safely send it again.
            return unavailable();
        }
        empty(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

fn tracing_compile(id: &str, took: Duration) {
    if std::env::var_os("SPIN_LOCAL_VERBOSE").is_some() {
        eprintln!("compiled component {id:?} in {took:?}");
    }
}

fn text(status: StatusCode, content_type: &'static str, s: &str) -> Response<WasiBody> {
    let body = Full::new(Bytes::from(s.to_string()))
        .map_err(|e: std::convert::Infallible| match e {})
        .boxed_unsync();
    let mut r = Response::new(body);
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static(content_type),
    );
    r
}

/// A response body that reports how it ended: complete, failed (with the component's error), or
/// dropped before its end because the client closed the connection.
struct Ends {
    inner: WasiBody,
    stats: Arc<ComponentStats>,
    ended: bool,
}

impl hyper::body::Body for Ends {
    type Data = Bytes;
    type Error = wasmtime_wasi_http::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(None) if !self.ended => {
                self.ended = true;
                self.stats.body_ended("complete");
            }
            Poll::Ready(Some(Err(e))) if !self.ended => {
                self.ended = true;
                self.stats.body_ended(&format!("{e}"));
            }
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Ends {
    fn drop(&mut self) {
        if !self.ended {
            // hyper stops polling a body that says it is at its end.
            let cause = if hyper::body::Body::is_end_stream(&self.inner) {
                "complete"
            } else {
                "client closed the connection"
            };
            self.stats.body_ended(cause);
        }
    }
}

fn counted(resp: Response<WasiBody>, stats: &Arc<ComponentStats>) -> Response<WasiBody> {
    resp.map(|inner| {
        Ends {
            inner,
            stats: stats.clone(),
            ended: false,
        }
        .boxed_unsync()
    })
}

/// `503` with `Retry-After: 1`: the request did not reach the component.
fn unavailable() -> Response<WasiBody> {
    let mut r = empty(StatusCode::SERVICE_UNAVAILABLE);
    r.headers_mut()
        .insert(http::header::RETRY_AFTER, HeaderValue::from_static("1"));
    r
}

fn empty(status: StatusCode) -> Response<WasiBody> {
    let body = Empty::<Bytes>::new()
        .map_err(|e: std::convert::Infallible| match e {})
        .boxed_unsync();
    let mut r = Response::new(body);
    *r.status_mut() = status;
    r
}
