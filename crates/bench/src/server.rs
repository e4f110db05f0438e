//! The servers under test, as child processes: the release `spin-local` serving the app on a fresh
//! state directory — its key-value store in SQLite there (`--backend sqlite`, Spin's default) or in
//! a Redis server of its own ([`crate::redis`], `--backend redis`, named by a runtime config file
//! in Spin's syntax) — or this binary's native floor server.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::RunArgs;
use crate::agents::{DEFAULT_RETRY_MS, Mode};
use crate::proc_stats;
use crate::redis::{self, Redis};

/// The admin token the host is started with.
pub const ADMIN: &str = "bench-admin-token";

/// Where the app keeps its key-value data.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, clap::ValueEnum)]
pub enum Backend {
    /// SQLite in the host's state directory (Spin's default store).
    Sqlite,
    /// A Redis server (Spin's `type = "redis"`).
    Redis,
}

impl Backend {
    /// The name used in results.
    pub fn name(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Redis => "redis",
        }
    }

    /// The name used in prose.
    pub fn title(self) -> &'static str {
        match self {
            Self::Sqlite => "SQLite",
            Self::Redis => "Redis",
        }
    }
}

/// The `retry:` values the floor's streams send (opening, closing): those the app was seen to send
/// earlier in this run, so that both are measured under the same client behaviour.
static APP_RETRY: std::sync::Mutex<(Option<u64>, Option<u64>)> =
    std::sync::Mutex::new((None, None));

/// Remembers the `retry:` values the app sent (from a push session's agents).
pub fn note_app_retry(opening: Option<u64>, closing: Option<u64>) {
    if let Ok(mut r) = APP_RETRY.lock() {
        r.0 = opening.or(r.0);
        r.1 = closing.or(r.1);
    }
}

/// The floor's (opening, closing) `retry:` values: the app's as seen so far in this run, else the
/// client's default; a closing value never seen follows the opening one.
pub fn floor_retry() -> (u64, u64) {
    let (o, c) = APP_RETRY.lock().map(|r| *r).unwrap_or((None, None));
    let opening = o.unwrap_or(DEFAULT_RETRY_MS);
    (opening, c.unwrap_or(opening))
}

/// The `stream_max_seconds` the app runs with: `--stream-max-seconds`, else its default.
pub fn stream_max_seconds(args: &RunArgs) -> u64 {
    args.stream_max_seconds
        .or_else(|| app_default("stream_max_seconds").and_then(|v| v.parse().ok()))
        .unwrap_or(25)
}

/// This binary, to start as the floor server: `/proc/self/exe` where there is one, which still
/// runs this very build when a rebuild has replaced the file meanwhile.
fn own_exe() -> std::io::Result<PathBuf> {
    let proc = PathBuf::from("/proc/self/exe");
    if proc.exists() {
        return Ok(proc);
    }
    std::env::current_exe()
}

/// What the benchmark sets the app's create limits to: out of reach (see the report's method).
pub const LIFTED_LIMIT: u64 = 1_000_000;

/// What the app's store holds at one moment.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct StoreStats {
    /// Its size: the SQLite file with its journal, or Redis's `used_memory`.
    pub bytes: u64,
    /// Its keys.
    pub keys: u64,
    /// Its keys other than the agents' log slots (`log/<agent>/<n>…`, of which each log keeps a
    /// bounded tail) and the change feed's ring (`chg/<n>`, 4096 slots): everything retention
    /// governs (SQLite only).
    pub keys_outside_logs: Option<u64>,
}

/// A running server.
pub struct Server {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// Its process id.
    pub pid: u32,
    /// State directory (host only); kept across a restart.
    state: Option<tempfile::TempDir>,
    /// The runtime config file the host reads (`--backend redis`).
    runtime_config: Option<PathBuf>,
    /// The Redis server behind the host (`--backend redis`); it outlives a host restart.
    pub redis: Option<Redis>,
    /// CPU seconds of this server's earlier processes (killed in a recovery run).
    cpu_before: f64,
    /// Further nodes serving the app on the same Redis ([`Server::add_nodes`], scale-out).
    pub nodes: Vec<Server>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The default of application variable `name` in spin.toml (for the report).
pub fn app_default(name: &str) -> Option<String> {
    let manifest = std::fs::read_to_string(repo_root().join("spin.toml")).ok()?;
    let line = manifest
        .lines()
        .find(|l| l.trim_start().starts_with(&format!("{name} =")))?;
    line.split('"').nth(1).map(str::to_string)
}

async fn spawn(mut cmd: Command) -> anyhow::Result<(Child, String, u32)> {
    cmd.stderr(Stdio::piped())
        .stdout(Stdio::null())
        .stdin(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().context("cannot start the server")?;
    let pid = child.id().context("pid")?;
    let mut lines = BufReader::new(child.stderr.take().context("stderr")?).lines();
    // What the server said before its banner: the reason, when it does not start.
    let mut said = Vec::new();
    let base = tokio::time::timeout(Duration::from_secs(120), async {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(url) = line.strip_prefix("Serving ") {
                return Some(url.trim().to_string());
            }
            said.push(line);
        }
        None
    })
    .await
    .ok()
    .flatten();
    let Some(base) = base else {
        let tail = said.len().saturating_sub(8);
        anyhow::bail!("the server did not start: {}", said[tail..].join(" / "));
    };
    // The host's own messages after the banner (failed requests, instance errors) go to stderr of
    // the benchmark when BENCH_HOST_STDERR is set.
    let echo = std::env::var_os("BENCH_HOST_STDERR").is_some();
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            if echo {
                eprintln!("host: {line}");
            }
        }
    });
    Ok((child, base, pid))
}

fn host_command(
    args: &RunArgs,
    state: &Path,
    listen: &str,
    runtime_config: Option<&Path>,
) -> anyhow::Result<Command> {
    let root = repo_root();
    // SPIN_LOCAL_BIN points at another build of the host (e.g. one with symbols, for profiling).
    let bin = std::env::var_os("SPIN_LOCAL_BIN")
        .map_or_else(|| root.join("target/release/spin-local"), PathBuf::from);
    anyhow::ensure!(
        bin.exists(),
        "{} is missing: build it with `cargo build --release`",
        bin.display()
    );
    let mut cmd = Command::new(bin);
    cmd.arg("up")
        // The host stops when the benchmark exits, however it exits.
        .arg("--exit-on-stdin-eof")
        .arg("--from")
        .arg(root.join("spin.toml"))
        .args(["--listen", listen, "--state-dir"])
        .arg(state)
        .args([
            "--component-concurrent-reuse",
            &format!("events={}", args.stream_reuse),
            "--component-concurrent-reuse",
            &format!("subscribe={}", args.stream_reuse),
            "--component-concurrent-reuse",
            &format!("gateway={}", args.stream_reuse),
        ])
        .args(["--variable", "legacy_poll_ms=1000"])
        .args([
            "--variable",
            &format!("create_rate_per_minute={LIFTED_LIMIT}"),
            "--variable",
            &format!("max_pending_per_agent={LIFTED_LIMIT}"),
        ])
        .env("SPIN_VARIABLE_TOKEN_SECRET", "bench-secret")
        .env("SPIN_VARIABLE_ADMIN_TOKEN", ADMIN);
    if let Some(file) = runtime_config {
        cmd.arg("--runtime-config-file").arg(file);
    }
    if args.stream_instances > 0 {
        for component in ["events", "subscribe", "gateway"] {
            cmd.args([
                "--component-max-instances",
                &format!("{component}={}", args.stream_instances),
            ]);
        }
    }
    if let Some(t) = args.tick_ms {
        cmd.args(["--variable", &format!("stream_tick_ms={t}")]);
    }
    if let Some(s) = args.stream_max_seconds {
        cmd.args(["--variable", &format!("stream_max_seconds={s}")]);
    }
    if let Some(r) = args.retention_seconds {
        cmd.args(["--variable", &format!("retention_seconds={r}")]);
    }
    Ok(cmd)
}

impl Server {
    /// Starts the server `mode` talks to; the app keeps its state in `backend` (none for the floor).
    pub async fn start(
        args: &RunArgs,
        mode: Mode,
        backend: Option<Backend>,
    ) -> anyhow::Result<Self> {
        if mode == Mode::Floor {
            let (retry, closing) = floor_retry();
            let mut cmd = Command::new(own_exe()?);
            cmd.args(["floor-server", "--listen", "127.0.0.1:0"])
                .args(["--max-seconds", &stream_max_seconds(args).to_string()])
                .args(["--retry-ms", &retry.to_string()])
                .args(["--closing-retry-ms", &closing.to_string()]);
            let (child, base, pid) = spawn(cmd).await?;
            return Ok(Self {
                child,
                base,
                pid,
                state: None,
                runtime_config: None,
                redis: None,
                cpu_before: 0.0,
                nodes: Vec::new(),
            });
        }
        let mut state = tempfile::tempdir()?;
        if std::env::var_os("BENCH_KEEP_STATE").is_some() {
            // For a post-mortem: the store and the components' logs stay.
            state.disable_cleanup(true);
            eprintln!("host state kept in {}", state.path().display());
        }
        let (redis, runtime_config) = match backend {
            Some(Backend::Redis) => {
                let redis = Redis::start().await?;
                let file = state.path().join("runtime-config.toml");
                std::fs::write(
                    &file,
                    format!(
                        "[key_value_store.default]\ntype = \"redis\"\nurl = \"{}\"\n",
                        redis.url()
                    ),
                )?;
                (Some(redis), Some(file))
            }
            _ => (None, None),
        };
        let (child, base, pid) = spawn(host_command(
            args,
            state.path(),
            "127.0.0.1:0",
            runtime_config.as_deref(),
        )?)
        .await?;
        Ok(Self {
            child,
            base,
            pid,
            state: Some(state),
            runtime_config,
            redis,
            cpu_before: 0.0,
            nodes: Vec::new(),
        })
    }

    /// Starts `count` more hosts serving the app on this server's Redis (its runtime config),
    /// each on a state directory of its own, as more machines would; returns when they serve.
    pub async fn add_nodes(&mut self, args: &RunArgs, count: usize) -> anyhow::Result<()> {
        let config = self
            .runtime_config
            .clone()
            .context("nodes share one store: run them on Redis")?;
        for _ in 0..count {
            let state = tempfile::tempdir()?;
            let cmd = host_command(args, state.path(), "127.0.0.1:0", Some(&config))?;
            let (child, base, pid) = spawn(cmd).await?;
            self.nodes.push(Self {
                child,
                base,
                pid,
                state: Some(state),
                runtime_config: Some(config.clone()),
                redis: None,
                cpu_before: 0.0,
                nodes: Vec::new(),
            });
        }
        Ok(())
    }

    /// Kills this host (SIGKILL) for good, as a machine that dies.
    pub async fn kill(&mut self) -> anyhow::Result<()> {
        self.child.start_kill()?;
        let _ = self.child.wait().await;
        Ok(())
    }

    /// Every node's base URL, this one's first.
    pub fn bases(&self) -> Vec<String> {
        std::iter::once(self.base.clone())
            .chain(self.nodes.iter().map(|n| n.base.clone()))
            .collect()
    }

    /// Every node's process id, this one's first.
    pub fn pids(&self) -> Vec<u32> {
        std::iter::once(self.pid)
            .chain(self.nodes.iter().map(|n| n.pid))
            .collect()
    }

    /// CPU seconds of each node so far, this one's first (its earlier processes included, when a
    /// recovery run restarted it).
    pub fn node_cpu_seconds(&self) -> Vec<f64> {
        std::iter::once(self.cpu_before + proc_stats::cpu_seconds(self.pid).unwrap_or(0.0))
            .chain(
                self.nodes
                    .iter()
                    .map(|n| proc_stats::cpu_seconds(n.pid).unwrap_or(0.0)),
            )
            .collect()
    }

    /// Resident memory of each node now, bytes, this one's first.
    pub fn node_rss(&self) -> Vec<u64> {
        self.pids()
            .into_iter()
            .map(|p| proc_stats::rss_bytes(p).unwrap_or(0))
            .collect()
    }

    /// `kill -9`, then starts the host again on the same address and state (and the same Redis,
    /// which keeps running); returns when it serves.
    pub async fn crash_and_restart(&mut self, args: &RunArgs) -> anyhow::Result<()> {
        let cpu = proc_stats::cpu_seconds(self.pid).unwrap_or(0.0);
        self.child.start_kill()?;
        let _ = self.child.wait().await;
        self.cpu_before += cpu;
        let state = self.state.as_ref().context("only the host restarts")?;
        let listen = self.base.trim_start_matches("http://").to_string();
        let started = Instant::now();
        loop {
            let cmd = host_command(args, state.path(), &listen, self.runtime_config.as_deref())?;
            match spawn(cmd).await {
                Ok((child, _, pid)) => {
                    self.child = child;
                    self.pid = pid;
                    return Ok(());
                }
                // The port may linger for a moment after the kill.
                Err(_) if started.elapsed() < Duration::from_secs(20) => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Resident memory now, bytes (every node's, summed).
    pub fn rss(&self) -> u64 {
        self.node_rss().iter().sum()
    }

    /// What the app's store holds now (the soak's samples): read from the SQLite file in the
    /// state directory, or from Redis (`DBSIZE`, `used_memory`).
    pub async fn store_stats(&self) -> Option<StoreStats> {
        if let Some(r) = &self.redis {
            let keys = crate::redis::command(r.port, &["DBSIZE"]).await.ok()?;
            let memory = crate::redis::command(r.port, &["INFO", "memory"])
                .await
                .ok()?;
            let used = memory
                .lines()
                .find_map(|l| l.trim().strip_prefix("used_memory:")?.parse().ok())?;
            return Some(StoreStats {
                bytes: used,
                keys: keys.trim().trim_start_matches(':').parse().ok()?,
                keys_outside_logs: None,
            });
        }
        let db = self.state.as_ref()?.path().join("sqlite_key_value.db");
        let bytes = ["", "-wal", "-shm"]
            .iter()
            .filter_map(|suffix| {
                let mut p = db.clone().into_os_string();
                p.push(suffix);
                std::fs::metadata(p).ok().map(|m| m.len())
            })
            .sum();
        let db2 = db.clone();
        let counted = tokio::task::spawn_blocking(move || {
            let conn = rusqlite::Connection::open_with_flags(
                &db2,
                rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
            )?;
            conn.query_row(
                "SELECT count(*), coalesce(sum(key NOT LIKE 'log/%' AND key NOT LIKE 'chg/%'), 0) FROM spin_key_value WHERE store = 'default'",
                [],
                |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)),
            )
        })
        .await
        .ok()?
        .ok()?;
        Some(StoreStats {
            bytes,
            keys: u64::try_from(counted.0).unwrap_or(0),
            keys_outside_logs: u64::try_from(counted.1).ok(),
        })
    }

    /// The Redis process's CPU seconds so far, if there is one.
    pub fn redis_cpu_seconds(&self) -> Option<f64> {
        self.redis
            .as_ref()
            .and_then(|r| proc_stats::cpu_seconds(r.pid))
    }

    /// The Redis process's resident memory, bytes, if there is one.
    pub fn redis_rss(&self) -> Option<u64> {
        self.redis
            .as_ref()
            .and_then(|r| proc_stats::rss_bytes(r.pid))
    }

    /// Reads the host's counters and Redis's command counts (nothing for the floor).
    pub async fn sample(&self, http: &reqwest::Client) -> HostSample {
        if self.state.is_none() {
            return HostSample::default();
        }
        let redis = match &self.redis {
            Some(r) => r.commandstats().await.ok(),
            None => None,
        };
        // Every node's counters, summed.
        let mut sample = HostSample {
            redis,
            ..HostSample::default()
        };
        for base in self.bases() {
            let Ok(r) = http
                .get(format!("{base}/.well-known/spin/stats"))
                .send()
                .await
            else {
                return HostSample {
                    redis: sample.redis,
                    ..HostSample::default()
                };
            };
            let v: Value = r.json().await.unwrap_or(Value::Null);
            let mut kv = BTreeMap::new();
            flatten("", &v["keyValue"], &mut kv);
            for (k, n) in kv {
                *sample.kv.entry(k).or_insert(0) += n;
            }
            sample.stream_instances += v["components"]["events"]["instancesLive"]
                .as_u64()
                .unwrap_or(0);
            sample.started += v["components"].as_object().map_or(0, |c| {
                c.values()
                    .map(|c| c["instancesStarted"].as_u64().unwrap_or(0))
                    .sum()
            });
        }
        sample.at = Some(Instant::now());
        sample.pid = self.pid;
        sample
    }
}

/// HAProxy (Debian's package) in front of the nodes, configured by `deploy/haproxy.cfg` as
/// `scripts/serve --nodes` runs it.
pub struct Balancer {
    _child: Child,
    /// `http://127.0.0.1:<port>`: where clients connect.
    pub base: String,
    _dir: tempfile::TempDir,
}

/// Where Debian installs HAProxy.
pub const HAPROXY: &str = "/usr/sbin/haproxy";

impl Balancer {
    /// Starts HAProxy sending to `nodes` (base URLs); returns once a request through it is
    /// answered by a node.
    pub async fn start(nodes: &[String]) -> anyhow::Result<Self> {
        anyhow::ensure!(
            Path::new(HAPROXY).exists(),
            "{HAPROXY} is missing: install Debian's haproxy"
        );
        let dir = tempfile::tempdir()?;
        let mut config = std::fs::read_to_string(repo_root().join("deploy/haproxy.cfg"))?;
        for (i, b) in nodes.iter().enumerate() {
            config.push_str(&format!(
                "    server n{i} {}\n",
                b.trim_start_matches("http://")
            ));
        }
        let path = dir.path().join("haproxy.cfg");
        std::fs::write(&path, config)?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let child = Command::new(HAPROXY)
            .arg("-db")
            .arg("-f")
            .arg(&path)
            .env("LH_LISTEN", format!("127.0.0.1:{port}"))
            .env("LH_BALANCER_SOCKET", dir.path().join("haproxy.sock"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("cannot start haproxy")?;
        let base = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        loop {
            let up = reqwest::get(format!("{base}/.well-known/spin/stats"))
                .await
                .is_ok_and(|r| r.status().is_success());
            if up {
                break;
            }
            anyhow::ensure!(
                started.elapsed() < Duration::from_secs(20),
                "the balancer did not forward to the nodes"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(Self {
            _child: child,
            base,
            _dir: dir,
        })
    }
}

/// Every unsigned number in `v`, by its path (`a.b`), into `out`.
fn flatten(prefix: &str, v: &Value, out: &mut BTreeMap<String, u64>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&path, v, out);
            }
        }
        Value::Number(n) => {
            if let Some(n) = n.as_u64() {
                out.insert(prefix.to_string(), n);
            }
        }
        _ => {}
    }
}

/// The host's key-value load over a measured window.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct KvLoad {
    /// Keys read per second.
    pub reads_per_second: f64,
    /// Keys written per second.
    pub writes_per_second: f64,
    /// Every counter of the host's `keyValue` section (calls, keysRead, keysWritten, and whatever
    /// else this host reports, e.g. per operation), per elicitation created in the window.
    pub per_elicitation: BTreeMap<String, f64>,
}

/// What Redis executed over a measured window (`INFO commandstats`, the benchmark's own `INFO`
/// samples left out).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RedisLoad {
    /// Commands per elicitation created in the window, all told.
    pub per_elicitation: f64,
    /// Commands per second.
    pub per_second: f64,
    /// Per command, per elicitation.
    pub by_command: BTreeMap<String, f64>,
}

/// Figures from the host's counters (and Redis's) over one run.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct HostFigures {
    /// Keys read per second with every agent connected and no traffic (scaling).
    pub kv_reads_idle: Option<f64>,
    /// Redis commands per second over the same idle window.
    pub redis_commands_idle: Option<f64>,
    /// The host's key-value load (none when the host restarted in the window: so did its counters).
    pub load: Option<KvLoad>,
    /// Redis's load (`--backend redis`).
    pub redis: Option<RedisLoad>,
    /// Elicitations created (accepted) in the window, which the per-elicitation figures divide by.
    pub elicitations: u64,
    /// Instances of the `events` component alive with every stream open.
    pub stream_instances: u64,
    /// Instances of any component started during the run.
    pub instances_started: u64,
}

/// One reading of the host's counters (`/.well-known/spin/stats`) and Redis's command counts.
#[derive(Debug, Clone, Default)]
pub struct HostSample {
    at: Option<Instant>,
    pid: u32,
    /// `keyValue.*` counters.
    kv: BTreeMap<String, u64>,
    /// Live `events` instances.
    pub stream_instances: u64,
    started: u64,
    /// Calls per Redis command.
    redis: Option<BTreeMap<String, u64>>,
}

fn seconds(a: &HostSample, b: &HostSample) -> Option<f64> {
    Some((b.at? - a.at?).as_secs_f64().max(1e-9))
}

fn redis_delta(a: &HostSample, b: &HostSample) -> Option<BTreeMap<String, u64>> {
    let (a, b) = (a.redis.as_ref()?, b.redis.as_ref()?);
    Some(
        b.iter()
            .filter(|(k, _)| !redis::OWN_COMMANDS.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.saturating_sub(a.get(k).copied().unwrap_or(0))))
            .filter(|(_, d)| *d > 0)
            .collect(),
    )
}

impl HostSample {
    fn kv_delta(&self, later: &Self, key: &str) -> u64 {
        later
            .kv
            .get(key)
            .copied()
            .unwrap_or(0)
            .saturating_sub(self.kv.get(key).copied().unwrap_or(0))
    }

    /// The figures of a run: idle from `idle.0` to `idle.1` (if measured), load from `load0` to
    /// `load1`, in which `elicitations` were created. None for the floor.
    pub fn figures(
        idle: Option<(&Self, &Self)>,
        load0: &Self,
        load1: &Self,
        elicitations: u64,
    ) -> Option<HostFigures> {
        if load0.at.is_none() && load0.redis.is_none() {
            return None;
        }
        let per = |n: u64| n as f64 / elicitations.max(1) as f64;
        let load = (load0.pid == load1.pid)
            .then(|| seconds(load0, load1))
            .flatten()
            .map(|secs| KvLoad {
                reads_per_second: load0.kv_delta(load1, "keysRead") as f64 / secs,
                writes_per_second: load0.kv_delta(load1, "keysWritten") as f64 / secs,
                per_elicitation: load1
                    .kv
                    .keys()
                    .map(|k| (k.clone(), per(load0.kv_delta(load1, k))))
                    .collect(),
            });
        let redis = redis_delta(load0, load1).map(|d| RedisLoad {
            per_elicitation: per(d.values().sum()),
            per_second: seconds(load0, load1).map_or(0.0, |s| d.values().sum::<u64>() as f64 / s),
            by_command: d.iter().map(|(k, v)| (k.clone(), per(*v))).collect(),
        });
        Some(HostFigures {
            kv_reads_idle: idle
                .and_then(|(a, b)| Some(a.kv_delta(b, "keysRead") as f64 / seconds(a, b)?)),
            redis_commands_idle: idle.and_then(|(a, b)| {
                Some(redis_delta(a, b)?.values().sum::<u64>() as f64 / seconds(a, b)?)
            }),
            load,
            redis,
            elicitations,
            stream_instances: idle.map_or(load0.stream_instances, |(_, b)| b.stream_instances),
            instances_started: load1.started,
        })
    }
}
