//! The servers under test, as child processes: the release `spin-local` serving the app on a fresh
//! state directory, or this binary's native floor server.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::RunArgs;
use crate::agents::Mode;
use crate::proc_stats;

/// The admin token the host is started with.
pub const ADMIN: &str = "bench-admin-token";

/// A running server.
pub struct Server {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// Its process id.
    pub pid: u32,
    /// State directory (host only); kept across a restart.
    state: Option<tempfile::TempDir>,
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

fn host_command(args: &RunArgs, state: &Path, listen: &str) -> anyhow::Result<Command> {
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
        ])
        .args(["--variable", "legacy_poll_ms=1000"])
        .env("SPIN_VARIABLE_TOKEN_SECRET", "bench-secret")
        .env("SPIN_VARIABLE_ADMIN_TOKEN", ADMIN);
    if args.stream_instances > 0 {
        for component in ["events", "subscribe"] {
            cmd.args([
                "--component-max-instances",
                &format!("{component}={}", args.stream_instances),
            ]);
        }
    }
    if let Some(t) = args.tick_ms {
        cmd.args(["--variable", &format!("stream_tick_ms={t}")]);
    }
    Ok(cmd)
}

impl Server {
    /// Starts the server `mode` talks to.
    pub async fn start(args: &RunArgs, mode: Mode) -> anyhow::Result<Self> {
        if mode == Mode::Floor {
            let mut cmd = Command::new(std::env::current_exe()?);
            cmd.args(["floor-server", "--listen", "127.0.0.1:0"]);
            let (child, base, pid) = spawn(cmd).await?;
            return Ok(Self {
                child,
                base,
                pid,
                state: None,
            });
        }
        let mut state = tempfile::tempdir()?;
        if std::env::var_os("BENCH_KEEP_STATE").is_some() {
            // For a post-mortem: the store and the components' logs stay.
            state.disable_cleanup(true);
            eprintln!("host state kept in {}", state.path().display());
        }
        let (child, base, pid) = spawn(host_command(args, state.path(), "127.0.0.1:0")?).await?;
        Ok(Self {
            child,
            base,
            pid,
            state: Some(state),
        })
    }

    /// `kill -9`, then starts the host again on the same address and state; returns when it
    /// serves.
    pub async fn crash_and_restart(&mut self, args: &RunArgs) -> anyhow::Result<()> {
        self.child.start_kill()?;
        let _ = self.child.wait().await;
        let state = self.state.as_ref().context("only the host restarts")?;
        let listen = self.base.trim_start_matches("http://").to_string();
        let started = Instant::now();
        loop {
            match spawn(host_command(args, state.path(), &listen)?).await {
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

    /// Resident memory now, bytes.
    pub fn rss(&self) -> u64 {
        proc_stats::rss_bytes(self.pid).unwrap_or(0)
    }

    /// CPU seconds used so far.
    pub fn cpu_seconds(&self) -> f64 {
        proc_stats::cpu_seconds(self.pid).unwrap_or(0.0)
    }
}

/// Figures from the host's counters over one run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct HostFigures {
    /// Keys read per second with every agent connected and no traffic.
    pub kv_reads_idle: f64,
    /// Keys read per second during the load.
    pub kv_reads_load: f64,
    /// Keys written per second during the load.
    pub kv_writes_load: f64,
    /// Instances of the `events` component alive with every stream open.
    pub stream_instances: u64,
    /// Instances of any component started during the run.
    pub instances_started: u64,
}

/// One reading of the host's counters (`/.well-known/spin/stats`).
#[derive(Debug, Clone, Copy, Default)]
pub struct HostSample {
    at: Option<Instant>,
    reads: u64,
    writes: u64,
    /// Live `events` instances.
    pub stream_instances: u64,
    started: u64,
}

impl HostSample {
    /// Reads the counters (all zero for the floor or when unreachable).
    pub async fn take(http: &reqwest::Client, base: &str, mode: Mode) -> Self {
        if mode == Mode::Floor {
            return Self::default();
        }
        let Ok(r) = http
            .get(format!("{base}/.well-known/spin/stats"))
            .send()
            .await
        else {
            return Self::default();
        };
        let v: Value = r.json().await.unwrap_or(Value::Null);
        Self {
            at: Some(Instant::now()),
            reads: v["keyValue"]["keysRead"].as_u64().unwrap_or(0),
            writes: v["keyValue"]["keysWritten"].as_u64().unwrap_or(0),
            stream_instances: v["components"]["events"]["instancesLive"]
                .as_u64()
                .unwrap_or(0),
            started: v["components"].as_object().map_or(0, |c| {
                c.values()
                    .map(|c| c["instancesStarted"].as_u64().unwrap_or(0))
                    .sum()
            }),
        }
    }

    /// Keys read and written per second from `self` to `later`.
    pub fn rates(&self, later: &Self) -> (f64, f64) {
        let secs = match (self.at, later.at) {
            (Some(a), Some(b)) => (b - a).as_secs_f64().max(1e-9),
            _ => return (0.0, 0.0),
        };
        (
            later.reads.saturating_sub(self.reads) as f64 / secs,
            later.writes.saturating_sub(self.writes) as f64 / secs,
        )
    }

    /// The figures of a run: idle from `idle0` to `idle1`, load from `load0` to `load1`.
    pub fn figures(idle0: &Self, idle1: &Self, load0: &Self, load1: &Self) -> HostFigures {
        HostFigures {
            kv_reads_idle: idle0.rates(idle1).0,
            kv_reads_load: load0.rates(load1).0,
            kv_writes_load: load0.rates(load1).1,
            stream_instances: idle1.stream_instances,
            instances_started: load1.started,
        }
    }
}
