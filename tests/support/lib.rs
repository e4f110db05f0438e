//! The one test-client helper of the end-to-end tests: builds the components and `spin-local` once,
//! starts the host on port 0 against a temporary state directory, and talks to it over real HTTP.
//! [`cluster`] runs several hosts on one Redis behind a load balancer; [`follow`] reads a stream
//! across reconnections as an EventSource client does.

mod cluster;
mod follow;
mod mcp;

pub use cluster::{Balancer, Cluster};
pub use follow::{Followed, Traffic, check_exactly_once_in_order, follow};
pub use mcp::Mcp;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// Admin token the tests' hosts run with.
pub const ADMIN_TOKEN: &str = "test-admin-token";
/// Token secret the tests' hosts run with.
pub const TOKEN_SECRET: &str = "test-token-secret";

/// The issuer and audience the app's tokens carry (`spin.toml`'s defaults).
pub fn realm() -> elicitation::token::Realm {
    elicitation::token::Realm {
        issuer: "lighthouse".into(),
        audience: "lighthouse-elicitation".into(),
    }
}

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// Cargo's target directory (`CARGO_TARGET_DIR`, else `target/` in the checkout).
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target"))
}

/// The Wasm components the tests serve.
pub const COMPONENTS: [&str; 7] = [
    "tokens",
    "create",
    "respond",
    "subscribe",
    "events",
    "gateway",
    "probe",
];

/// Why `artifact` is not built from this checkout's current sources, if it is not: cargo's
/// dep-info file beside it (`<name>.d`) lists every source file the build read, and each of those
/// in this checkout must be older than the artifact. A build from another checkout (a shared
/// target directory) lists none of this checkout's files, so it does not count either.
fn stale(artifact: &Path) -> Option<String> {
    let built = match std::fs::metadata(artifact).and_then(|m| m.modified()) {
        Ok(t) => t,
        Err(_) => return Some("it is missing".into()),
    };
    let info = artifact.with_extension("d");
    let Ok(text) = std::fs::read_to_string(&info) else {
        return Some(format!("{} is missing", info.display()));
    };
    let root = repo();
    let sources: Vec<&Path> = text
        .split_once(": ")
        .map_or("", |(_, deps)| deps)
        .split_whitespace()
        .map(Path::new)
        .filter(|p| p.starts_with(&root))
        .collect();
    if sources.is_empty() {
        return Some(format!(
            "it was built from another checkout than {}",
            root.display()
        ));
    }
    sources.into_iter().find_map(|p| {
        let t = std::fs::metadata(p).and_then(|m| m.modified());
        (t.map_or(true, |t| t > built)).then(|| format!("{} is newer", p.display()))
    })
}

/// Checks that `scripts/test` (or the same cargo commands) built `spin-local` and every component
/// from the current sources. Building here instead would change cargo's feature selection and
/// rebuild the host's dependencies, so the test command builds first and the tests only check.
pub fn ensure_built() {
    static CHECKED: OnceLock<()> = OnceLock::new();
    CHECKED.get_or_init(|| {
        let artifacts = std::iter::once(target_dir().join("release/spin-local")).chain(
            COMPONENTS
                .iter()
                .map(|c| target_dir().join(format!("wasm32-wasip2/release/{c}.wasm"))),
        );
        for artifact in artifacts {
            if let Some(why) = stale(&artifact) {
                panic!(
                    "{} is not built from the current sources ({why}): run the tests with \
                     scripts/test, which builds first",
                    artifact.display()
                );
            }
        }
    });
}

/// Whether the application's hosts store their key-value data in Redis: `E2E_BACKEND=redis`
/// (`scripts/test` runs the suite once on each backend); otherwise the embedded SQLite.
pub fn on_redis() -> bool {
    std::env::var("E2E_BACKEND").is_ok_and(|b| b == "redis")
}

/// A background process started by [`Kept::start`], killed (SIGKILL) when this is dropped.
pub struct Kept {
    keeper: Child,
    pid: u32,
}

impl Kept {
    /// Starts `command` (a shell command line) in the background with a shell beside it that
    /// holds a pipe from this process and kills the command (SIGKILL) when the pipe closes: when
    /// this is dropped, and when the test process exits however it exits.
    pub fn start(command: &str) -> Self {
        let script = format!("{command} & echo $!; cat >/dev/null; kill -9 $! 2>/dev/null");
        let mut keeper = Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {command}: {e}"));
        let mut line = String::new();
        BufReader::new(keeper.stdout.take().expect("piped"))
            .read_line(&mut line)
            .expect("the command's pid");
        let pid = line.trim().parse().expect("the command's pid");
        Self { keeper, pid }
    }

    /// Kills the command (SIGKILL), as a crash would; the keeper then ends too.
    pub fn kill(&mut self) {
        let _ = Command::new("kill")
            .args(["-9", &self.pid.to_string()])
            .status();
        let _ = self.keeper.wait();
    }
}

impl Drop for Kept {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-9", &self.pid.to_string()])
            .status();
        let _ = self.keeper.kill();
        let _ = self.keeper.wait();
    }
}

/// A free port on 127.0.0.1 (free when this returns; the caller binds it soon after).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// A `redis-server` of the tests' own, on a free loopback port, with its data in `dir` and every
/// write on disk before it is acknowledged (`appendonly yes`, `appendfsync always`). It stops
/// when dropped, and also when the test process exits: a shell beside it holds a pipe from this
/// process and kills it when the pipe closes.
pub struct Redis {
    process: Kept,
    /// Its port on 127.0.0.1.
    pub port: u16,
    dir: PathBuf,
}

impl Redis {
    /// Starts a server on a free port with its data in `dir`.
    pub fn start(dir: &Path) -> Self {
        Self::on(dir, free_port())
    }

    fn on(dir: &Path, port: u16) -> Self {
        let bin = "/usr/bin/redis-server";
        assert!(
            Path::new(bin).exists(),
            "{bin} is missing: install Debian's redis-server (.ci/run does)"
        );
        let process = Kept::start(&format!(
            "{bin} --port {port} --bind 127.0.0.1 --dir '{}' --save '' --appendonly yes \
             --appendfsync always --logfile redis.log",
            dir.display()
        ));
        let ready = eventually(Duration::from_secs(20), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).ok()
        });
        assert!(ready.is_some(), "redis-server did not start on port {port}");
        Self {
            process,
            port,
            dir: dir.to_path_buf(),
        }
    }

    /// Kills the server (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        self.process.kill();
    }

    /// Starts the server again on the same port and data.
    pub fn start_again(&mut self) {
        let next = Self::on(&self.dir, self.port);
        let old = std::mem::replace(self, next);
        drop(old);
    }

    /// Runs one command with `redis-cli` (installed with Debian's redis-server); returns its output.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .args(args)
            .output()
            .expect("redis-cli runs");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Commands the server has executed since it started (`INFO commandstats`, all commands).
    pub fn commands(&self) -> u64 {
        self.cli(&["INFO", "commandstats"])
            .lines()
            .filter_map(|l| {
                l.split_once("calls=")?
                    .1
                    .split(',')
                    .next()?
                    .parse::<u64>()
                    .ok()
            })
            .sum()
    }

    /// Spin's runtime configuration that puts the `default` store here.
    pub fn runtime_config(&self) -> String {
        format!(
            "[key_value_store.default]\ntype = \"redis\"\nurl = \"redis://127.0.0.1:{}\"\n",
            self.port
        )
    }
}

/// A running `spin-local`.
pub struct Host {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    manifest: PathBuf,
    state_dir: PathBuf,
    /// The Redis server its store is in, when it has one.
    pub redis: Option<Redis>,
    _temp: Option<tempfile::TempDir>,
    extra: Vec<String>,
}

impl Host {
    /// Serves the application (`spin.toml`) on a fresh state directory (and, with
    /// `E2E_BACKEND=redis`, a fresh Redis).
    pub fn app() -> Self {
        Self::start(&repo().join("spin.toml"), &[])
    }

    /// Serves the application with its store in a Redis server of its own.
    pub fn app_on_redis() -> Self {
        Self::with_store(&repo().join("spin.toml"), &[], true)
    }

    /// Serves `manifest` on a fresh state directory with extra `spin-local up` arguments; the
    /// application's manifest gets the backend `E2E_BACKEND` names.
    pub fn start(manifest: &Path, extra: &[&str]) -> Self {
        let app = manifest == repo().join("spin.toml");
        Self::with_store(manifest, extra, app && on_redis())
    }

    fn with_store(manifest: &Path, extra: &[&str], redis: bool) -> Self {
        let temp = tempfile::tempdir().expect("temp dir");
        let state_dir = temp.path().to_path_buf();
        let mut extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        let redis = redis.then(|| {
            let dir = state_dir.join("redis");
            std::fs::create_dir_all(&dir).expect("redis dir");
            let r = Redis::start(&dir);
            let config = state_dir.join("runtime-config.toml");
            std::fs::write(&config, r.runtime_config()).expect("runtime config");
            extra.push("--runtime-config-file".into());
            extra.push(config.display().to_string());
            r
        });
        let mut host = Self::spawn(manifest, &state_dir, extra);
        host.redis = redis;
        host.own_state(temp);
        host
    }

    /// A node of a deployment of several: the application with its store in `redis`, which other
    /// nodes share, on a state directory of its own, each stream-serving component as one instance
    /// as `scripts/serve` runs them, with extra `spin-local up` arguments.
    pub fn node(redis: &Redis, extra: &[&str]) -> Self {
        let temp = tempfile::tempdir().expect("temp dir");
        let config = temp.path().join("runtime-config.toml");
        std::fs::write(&config, redis.runtime_config()).expect("runtime config");
        let mut args: Vec<String> = [
            "--component-concurrent-reuse",
            "events=4096",
            "--component-max-instances",
            "events=1",
            "--component-concurrent-reuse",
            "subscribe=4096",
            "--component-max-instances",
            "subscribe=1",
            "--component-concurrent-reuse",
            "gateway=4096",
            "--component-max-instances",
            "gateway=1",
        ]
        .iter()
        .chain(extra)
        .map(|s| s.to_string())
        .collect();
        args.push("--runtime-config-file".into());
        args.push(config.display().to_string());
        let mut host = Self::spawn(&repo().join("spin.toml"), temp.path(), args);
        host.own_state(temp);
        host
    }

    /// Removes the state directory with the host, unless E2E_KEEP_STATE=1 asks to keep every host's
    /// state directory (logs, store) for a post-mortem.
    fn own_state(&mut self, temp: tempfile::TempDir) {
        if std::env::var_os("E2E_KEEP_STATE").is_some() {
            eprintln!("state of {} kept in {}", self.base, temp.keep().display());
        } else {
            self._temp = Some(temp);
        }
    }

    fn spawn(manifest: &Path, state_dir: &Path, extra: Vec<String>) -> Self {
        ensure_built();
        let bin = target_dir().join("release").join("spin-local");
        let mut child = Command::new(&bin)
            .arg("up")
            .arg("--from")
            .arg(manifest)
            .args(["--listen", "127.0.0.1:0", "--state-dir"])
            .arg(state_dir)
            .args(&extra)
            .env("SPIN_VARIABLE_TOKEN_SECRET", TOKEN_SECRET)
            .env("SPIN_VARIABLE_ADMIN_TOKEN", ADMIN_TOKEN)
            // The suite's traffic puts thousands of pending requests in front of one agent within
            // a minute on purpose; the test of the create limits sets its own with --variable.
            .env("SPIN_VARIABLE_CREATE_RATE_PER_MINUTE", "1000000")
            .env("SPIN_VARIABLE_MAX_PENDING_PER_AGENT", "1000000")
            .env_remove("SPIN_HTTP_LISTEN_ADDR")
            // The host stops when this pipe closes: when the test process exits, even for the
            // shared host, which as a static is never dropped.
            .arg("--exit-on-stdin-eof")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let stderr = child.stderr.take().expect("stderr is piped");
        let (tx, rx) = std::sync::mpsc::channel();
        let log_path = state_dir.join("host-stderr.txt");
        std::thread::spawn(move || {
            let mut log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(log_path)
                .ok();
            let mut sent = false;
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(l) = log.as_mut() {
                    let _ = writeln!(l, "{line}");
                }
                if !sent && let Some(url) = line.strip_prefix("Serving ") {
                    let _ = tx.send(url.trim().to_string());
                    sent = true;
                }
            }
        });
        let base = match rx.recv_timeout(Duration::from_secs(120)) {
            Ok(base) => base,
            Err(_) => {
                let _ = child.kill();
                let log =
                    std::fs::read_to_string(state_dir.join("host-stderr.txt")).unwrap_or_default();
                panic!("spin-local did not start:\n{log}");
            }
        };
        Self {
            child,
            base,
            manifest: manifest.to_path_buf(),
            state_dir: state_dir.to_path_buf(),
            redis: None,
            _temp: None,
            extra,
        }
    }

    /// Every key of the application's default store, read from the store itself (its SQLite file
    /// or its Redis server).
    pub fn store_keys(&self) -> Vec<String> {
        if let Some(redis) = &self.redis {
            return redis
                .cli(&["--raw", "KEYS", "*"])
                .lines()
                .filter(|l| !l.is_empty())
                .map(str::to_string)
                .collect();
        }
        let conn = self.store_file();
        let mut q = conn
            .prepare("SELECT key FROM spin_key_value WHERE store = 'default'")
            .expect("query");
        q.query_map([], |r| r.get::<_, String>(0))
            .expect("keys")
            .map(|k| k.expect("key"))
            .collect()
    }

    /// The SQLite file of the application's stores, opened read-only.
    fn store_file(&self) -> rusqlite::Connection {
        let db = self.state_dir.join("sqlite_key_value.db");
        rusqlite::Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap_or_else(|e| panic!("{}: {e}", db.display()))
    }

    /// The value of `key` in the application's default store, read from the store itself.
    pub fn store_value(&self, key: &str) -> Option<Vec<u8>> {
        if let Some(redis) = &self.redis {
            if redis.cli(&["--raw", "EXISTS", key]).trim() != "1" {
                return None;
            }
            let mut value = redis.cli(&["--raw", "GET", key]).into_bytes();
            // `--raw` ends the value with a newline of its own.
            value.pop();
            return Some(value);
        }
        let conn = self.store_file();
        conn.query_row(
            "SELECT value FROM spin_key_value WHERE store = 'default' AND key = ?1",
            [key],
            |r| r.get::<_, Vec<u8>>(0),
        )
        .ok()
    }

    /// Kills the host (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Kills the host (SIGKILL) and starts it again on the same state directory (new port).
    pub fn restart(&mut self) {
        self.kill();
        let temp = self._temp.take();
        let redis = self.redis.take();
        let next = Self::spawn(&self.manifest, &self.state_dir, self.extra.clone());
        let old = std::mem::replace(self, next);
        drop(old);
        self._temp = temp;
        self.redis = redis;
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The state directory (`.spin` equivalent).
    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// A client for this host.
    pub fn client(&self) -> Client {
        Client::new(&self.base)
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The host shared by tests that need no restart (each test uses its own agent names).
pub fn shared() -> &'static Host {
    static HOST: OnceLock<Host> = OnceLock::new();
    HOST.get_or_init(Host::app)
}

/// A unique agent name for this test process.
pub fn agent(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// An HTTP response, read whole.
#[derive(Debug, Clone)]
pub struct Resp {
    /// Status code.
    pub status: u16,
    /// Headers, names lower-case.
    pub headers: Vec<(String, String)>,
    /// Body text.
    pub text: String,
}

impl Resp {
    /// The body as JSON (`Null` if it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or(Value::Null)
    }

    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Asserts the status, showing the body when it differs; returns the JSON body.
    #[track_caller]
    pub fn expect(&self, status: u16) -> Value {
        assert_eq!(
            self.status, status,
            "unexpected status; body: {}",
            self.text
        );
        self.json()
    }

    /// Asserts an RFC 9457 problem with this status; returns it.
    #[track_caller]
    pub fn expect_problem(&self, status: u16) -> Value {
        let p = self.expect(status);
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json"),
            "{}",
            self.text
        );
        assert_eq!(p["status"], status, "{}", self.text);
        assert!(
            p["type"].is_string() && p["title"].is_string() && p["detail"].is_string(),
            "{}",
            self.text
        );
        p
    }
}

/// A blocking HTTP client bound to one host.
#[derive(Clone)]
pub struct Client {
    http: reqwest::blocking::Client,
    /// Base URL.
    pub base: String,
}

impl Client {
    /// A client for `base`.
    pub fn new(base: &str) -> Self {
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .expect("client builds");
        Self {
            http,
            base: base.to_string(),
        }
    }

    /// Sends a request: `token` as bearer, `body` as JSON (or raw with `content_type`).
    #[track_caller]
    pub fn send(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<(&str, Vec<u8>)>,
        headers: &[(&str, &str)],
    ) -> Resp {
        self.try_send(method, path, token, body, headers)
            .unwrap_or_else(|e| panic!("request to {path} failed: {e}"))
    }

    /// Like [`Self::send`], but a transport failure (e.g. the host was killed) is an `Err`.
    pub fn try_send(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<(&str, Vec<u8>)>,
        headers: &[(&str, &str)],
    ) -> Result<Resp, reqwest::Error> {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut rb = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            rb = rb.bearer_auth(t);
        }
        if let Some((ct, bytes)) = body {
            rb = rb.header("content-type", ct).body(bytes);
        }
        for (n, v) in headers {
            rb = rb.header(*n, *v);
        }
        let r = rb.send()?;
        let status = r.status().as_u16();
        let headers = r
            .headers()
            .iter()
            .map(|(n, v)| (n.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
            .collect();
        let text = r.text()?;
        Ok(Resp {
            status,
            headers,
            text,
        })
    }

    /// `GET path`.
    pub fn get(&self, path: &str, token: Option<&str>) -> Resp {
        self.send("GET", path, token, None, &[])
    }

    /// `POST path` with a JSON body.
    pub fn post(&self, path: &str, token: Option<&str>, body: &Value) -> Resp {
        self.send(
            "POST",
            path,
            token,
            Some(("application/json", body.to_string().into_bytes())),
            &[],
        )
    }

    /// Mints a token for `agent` with the admin token.
    pub fn token(&self, agent: &str) -> String {
        self.token_with_ttl(agent, 3600)
    }

    /// Mints a token for `agent` valid `ttl` seconds.
    pub fn token_with_ttl(&self, agent: &str, ttl: u64) -> String {
        let r = self.post(
            "/v1/tokens",
            Some(ADMIN_TOKEN),
            &json!({ "agent": agent, "ttlSeconds": ttl }),
        );
        r.expect(201)["token"].as_str().expect("token").to_string()
    }

    /// Creates an elicitation from the holder of `token`; returns it (asserting 201).
    #[track_caller]
    pub fn create(&self, token: &str, body: &Value) -> Value {
        self.post("/v1/elicitations", Some(token), body).expect(201)
    }

    /// Asks `to` a plain question from the holder of `token`, with the fields of `extra` added to
    /// the body (`json!({})` for none); returns the new elicitation's id.
    #[track_caller]
    pub fn ask(&self, token: &str, to: &str, extra: Value) -> String {
        let mut body = json!({ "to": to, "message": "question" });
        if let (Some(fields), Value::Object(extra)) = (body.as_object_mut(), extra) {
            fields.extend(extra);
        }
        self.create(token, &body)["id"]
            .as_str()
            .expect("id")
            .to_string()
    }

    /// Answers elicitation `id`.
    pub fn answer(&self, token: &str, id: &str, body: &Value) -> Resp {
        self.post(
            &format!("/v1/elicitations/{id}/response"),
            Some(token),
            body,
        )
    }
}

/// Waits until `f` returns `Some`, polling every 10 ms, for at most `timeout`.
pub fn eventually<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if start.elapsed() > timeout {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// What an event stream delivered.
#[derive(Debug, Clone, PartialEq)]
pub enum SseMsg {
    /// The response status (first message of every stream).
    Status(u16),
    /// One event.
    Event(SseEvent),
    /// The server ended the stream.
    Closed,
}

/// One server-sent event, as the SSE client parsed it.
#[derive(Debug, Clone, PartialEq)]
pub struct SseEvent {
    /// `id:` (the per-agent sequence).
    pub id: String,
    /// `event:`.
    pub event: String,
    /// `data:`.
    pub data: String,
    /// `retry:`, if the frame had one.
    pub retry: Option<Duration>,
}

impl SseEvent {
    /// `data` as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.data).unwrap_or(Value::Null)
    }

    /// The sequence number in `id`.
    pub fn seq(&self) -> i64 {
        self.id.parse().unwrap_or(-1)
    }
}

/// An open event stream, read by the `eventsource-stream` SSE parser on a background thread.
pub struct Sse {
    rx: std::sync::mpsc::Receiver<SseMsg>,
    retry: Arc<Mutex<Option<Duration>>>,
}

impl Sse {
    /// Opens `GET /v1/agents/<agent>/events<query>` with `token`, resuming from `last_event_id`.
    pub fn open(
        base: &str,
        agent: &str,
        token: &str,
        last_event_id: Option<&str>,
        query: &str,
    ) -> Self {
        let url = format!("{base}/v1/agents/{agent}/events{query}");
        let token = token.to_string();
        let last = last_event_id.map(str::to_string);
        let (tx, rx) = std::sync::mpsc::channel();
        let retry = Arc::new(Mutex::new(None));
        let hint = retry.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                use eventsource_stream::Eventsource;
                use futures::StreamExt;
                let mut req = reqwest::Client::new().get(&url).bearer_auth(&token);
                if let Some(id) = &last {
                    req = req.header("last-event-id", id);
                }
                let resp = match req.send().await {
                    Ok(r) => r,
                    Err(_) => {
                        let _ = tx.send(SseMsg::Closed);
                        return;
                    }
                };
                if tx.send(SseMsg::Status(resp.status().as_u16())).is_err() {
                    return;
                }
                // The parser drops a frame that has no data, and with it a `retry:` hint sent
                // alone (as before a planned end), so the hints are also picked from the lines.
                let mut partial = String::new();
                let bytes = resp.bytes_stream().inspect(move |chunk| {
                    let Ok(chunk) = chunk else { return };
                    partial.push_str(&String::from_utf8_lossy(chunk));
                    while let Some(end) = partial.find('\n') {
                        let line: String = partial.drain(..=end).collect();
                        if let Some(ms) = line.strip_prefix("retry:")
                            && let Ok(ms) = ms.trim().parse::<u64>()
                        {
                            *hint.lock().unwrap() = Some(Duration::from_millis(ms));
                        }
                    }
                });
                let mut events = bytes.eventsource();
                while let Some(item) = events.next().await {
                    let Ok(e) = item else { break };
                    let msg = SseMsg::Event(SseEvent {
                        id: e.id,
                        event: e.event,
                        data: e.data,
                        retry: e.retry,
                    });
                    if tx.send(msg).is_err() {
                        return; // the test dropped the stream: disconnect
                    }
                }
                let _ = tx.send(SseMsg::Closed);
            });
        });
        Self { rx, retry }
    }

    /// The last `retry:` hint the stream sent, if any.
    pub fn retry(&self) -> Option<Duration> {
        *self.retry.lock().unwrap()
    }

    /// The next message, or `None` after `timeout`.
    pub fn next(&self, timeout: Duration) -> Option<SseMsg> {
        self.rx.recv_timeout(timeout).ok()
    }

    /// Asserts the response status and the opening (`retry:` and the `ready` frame); returns its cursor.
    #[track_caller]
    pub fn expect_open(&self) -> i64 {
        assert_eq!(
            self.next(Duration::from_secs(10)),
            Some(SseMsg::Status(200))
        );
        let ready = self
            .next_event(Duration::from_secs(10))
            .expect("opening frame");
        assert_eq!(ready.event, "ready");
        assert!(ready.retry.is_some(), "the opening carries a retry hint");
        assert_eq!(ready.json()["cursor"].as_i64(), Some(ready.seq()));
        ready.seq()
    }

    /// Asserts that the next event, within 10 s, is the `kind` event of elicitation `id`, with
    /// the same type and sequence in its data as in its frame; returns it.
    #[track_caller]
    pub fn expect_event(&self, kind: &str, id: &str) -> SseEvent {
        let e = self
            .next_event(Duration::from_secs(10))
            .unwrap_or_else(|| panic!("no {kind} event for {id}"));
        assert_eq!(e.event, kind, "{e:?}");
        let data = e.json();
        assert_eq!(data["elicitation"]["id"], id, "{e:?}");
        assert_eq!(data["type"], kind);
        assert_eq!(data["sequence"].as_i64(), Some(e.seq()));
        e
    }

    /// The next event (skipping nothing), or `None` if the stream ended or `timeout` passed.
    pub fn next_event(&self, timeout: Duration) -> Option<SseEvent> {
        match self.next(timeout)? {
            SseMsg::Event(e) => Some(e),
            _ => None,
        }
    }
}

impl Client {
    /// Opens `agent`'s event stream.
    pub fn events(&self, agent: &str, token: &str, last_event_id: Option<&str>) -> Sse {
        Sse::open(&self.base, agent, token, last_event_id, "")
    }
}
