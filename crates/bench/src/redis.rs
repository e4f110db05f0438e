//! The Redis server behind `--backend redis`: the benchmark starts its own `redis-server` for each
//! host it starts, on a free loopback port in a fresh temporary directory, with no snapshots and
//! an append-only file synced on every write (`--save '' --appendonly yes --appendfsync always`,
//! so an acknowledged write is on disk as SQLite's is; [`appendfsync`] can relax it), and flushes it (`FLUSHALL`) before the
//! host starts: every run begins on an empty store, like a fresh SQLite state directory.
//!
//! It talks to Redis with a few lines of RESP over TCP (no client library): `PING`, `FLUSHALL`
//! and `INFO commandstats`, whose per-command call counts give the store operations of a run.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

/// Where `redis-server` is (`BENCH_REDIS_SERVER` overrides it).
pub fn binary() -> PathBuf {
    std::env::var_os("BENCH_REDIS_SERVER")
        .map_or_else(|| PathBuf::from("/usr/bin/redis-server"), PathBuf::from)
}

/// Redis's `appendfsync` policy for the servers the benchmark starts: `always` (every write synced
/// before it is acknowledged, the default), or what `BENCH_REDIS_APPENDFSYNC` says (`everysec`:
/// synced once a second, so up to a second of acknowledged writes can be lost on a crash; `no`).
pub fn appendfsync() -> anyhow::Result<String> {
    let policy = std::env::var("BENCH_REDIS_APPENDFSYNC").unwrap_or_else(|_| "always".into());
    anyhow::ensure!(
        ["always", "everysec", "no"].contains(&policy.as_str()),
        "BENCH_REDIS_APPENDFSYNC must be always, everysec or no, not {policy:?}"
    );
    Ok(policy)
}

/// Fails clearly when `redis-server` is not installed.
pub fn check_installed() -> anyhow::Result<()> {
    appendfsync()?;
    let bin = binary();
    anyhow::ensure!(
        bin.exists(),
        "--backend redis needs redis-server, and {} is missing (install it, e.g. `apt-get install redis-server`, or point BENCH_REDIS_SERVER at one)",
        bin.display()
    );
    Ok(())
}

/// Commands the benchmark itself sends inside a measured window, left out of the store operations
/// it reports: its `INFO` samples. (Its `PING`s and `FLUSHALL` come before the host starts, so
/// they fall in no window, and a host's own `PING`s count.)
pub const OWN_COMMANDS: [&str; 1] = ["info"];

/// A running `redis-server`.
pub struct Redis {
    /// Kills the server if the benchmark dies without dropping this (its stdin is our pipe).
    _watchdog: Child,
    /// The server (killed when this is dropped).
    _child: Child,
    /// Its TCP port on 127.0.0.1.
    pub port: u16,
    /// Its process id.
    pub pid: u32,
    /// Its directory (append-only file, log), removed with it.
    _dir: tempfile::TempDir,
}

impl Redis {
    /// Starts a server in a fresh directory, waits until it answers and flushes it.
    pub async fn start() -> anyhow::Result<Self> {
        check_installed()?;
        let mut last_error = None;
        // The free port is found by binding it and letting it go, so another process may take
        // it in between: try again on another one.
        for _ in 0..5 {
            match Self::try_start().await {
                Ok(r) => return Ok(r),
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.unwrap_or_else(|| anyhow::anyhow!("redis-server did not start")))
    }

    async fn try_start() -> anyhow::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let mut dir = tempfile::tempdir()?;
        if std::env::var_os("BENCH_KEEP_STATE").is_some() {
            dir.disable_cleanup(true);
            eprintln!("redis state kept in {}", dir.path().display());
        }
        let mut cmd = Command::new(binary());
        cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--dir"])
            .arg(dir.path())
            .args([
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                &appendfsync()?,
            ])
            .args(["--daemonize", "no", "--logfile"])
            .arg(dir.path().join("redis.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        let mut child = cmd
            .spawn()
            .with_context(|| format!("cannot start {}", binary().display()))?;
        let pid = child.id().context("pid")?;
        // A shell that waits for our end of its stdin to close, then kills the server: a
        // benchmark killed with SIGKILL leaves no Redis behind.
        let watchdog = Command::new("sh")
            .args(["-c", &format!("cat >/dev/null; kill -9 {pid} 2>/dev/null")])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("cannot start the redis watchdog")?;
        let started = Instant::now();
        loop {
            if let Some(status) = child.try_wait()? {
                let log = std::fs::read_to_string(dir.path().join("redis.log")).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(5).collect();
                anyhow::bail!(
                    "redis-server exited ({status}): {}",
                    tail.into_iter().rev().collect::<Vec<_>>().join(" / ")
                );
            }
            if let Ok(reply) = command(port, &["PING"]).await
                && reply == "PONG"
            {
                break;
            }
            anyhow::ensure!(
                started.elapsed() < Duration::from_secs(10),
                "redis-server on port {port} did not answer PING within 10 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let ok = command(port, &["FLUSHALL"]).await?;
        anyhow::ensure!(ok == "OK", "FLUSHALL answered {ok:?}");
        Ok(Self {
            _watchdog: watchdog,
            _child: child,
            port,
            pid,
            _dir: dir,
        })
    }

    /// `redis://127.0.0.1:<port>`, as the runtime config names it.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Calls per command so far (`INFO commandstats`), by lower-case command name (subcommands as
    /// `config|get`).
    pub async fn commandstats(&self) -> anyhow::Result<BTreeMap<String, u64>> {
        let info = command(self.port, &["INFO", "commandstats"]).await?;
        Ok(parse_commandstats(&info))
    }
}

/// Parses `cmdstat_<name>:calls=N,usec=…` lines.
fn parse_commandstats(info: &str) -> BTreeMap<String, u64> {
    info.lines()
        .filter_map(|l| {
            let (name, rest) = l.trim().strip_prefix("cmdstat_")?.split_once(':')?;
            let calls = rest
                .split(',')
                .find_map(|kv| kv.strip_prefix("calls="))?
                .parse()
                .ok()?;
            Some((name.to_ascii_lowercase(), calls))
        })
        .collect()
}

/// Sends one command on a fresh connection and returns its reply as text (a simple string, a bulk
/// string or an integer); an error reply is an error.
pub async fn command(port: u16, args: &[&str]) -> anyhow::Result<String> {
    let mut conn = tokio::time::timeout(
        Duration::from_secs(5),
        TcpStream::connect(("127.0.0.1", port)),
    )
    .await
    .context("connect timed out")??;
    let mut req = format!("*{}\r\n", args.len());
    for a in args {
        req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
    }
    conn.write_all(req.as_bytes()).await?;
    let mut buf = Vec::new();
    let read = async {
        loop {
            if let Some(reply) = parse_reply(&buf)? {
                return Ok::<_, anyhow::Error>(reply);
            }
            let mut chunk = [0u8; 16384];
            let n = conn.read(&mut chunk).await?;
            anyhow::ensure!(n > 0, "redis closed the connection");
            buf.extend_from_slice(&chunk[..n]);
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .context("redis did not answer")?
}

/// One complete reply at the start of `buf`, or `None` if more bytes are needed.
fn parse_reply(buf: &[u8]) -> anyhow::Result<Option<String>> {
    let Some(eol) = buf.windows(2).position(|w| w == b"\r\n") else {
        return Ok(None);
    };
    let head = String::from_utf8_lossy(&buf[1..eol]).into_owned();
    match buf.first() {
        Some(b'+' | b':') => Ok(Some(head)),
        Some(b'-') => anyhow::bail!("redis error: {head}"),
        Some(b'$') => {
            let len: i64 = head.parse().context("bulk length")?;
            if len < 0 {
                return Ok(Some(String::new()));
            }
            let (from, to) = (eol + 2, eol + 2 + len as usize);
            if buf.len() < to + 2 {
                return Ok(None);
            }
            Ok(Some(String::from_utf8_lossy(&buf[from..to]).into_owned()))
        }
        _ => anyhow::bail!("unexpected redis reply {head:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_and_commandstats() {
        assert_eq!(parse_reply(b"+PONG\r\n").unwrap().as_deref(), Some("PONG"));
        assert_eq!(parse_reply(b"$5\r\nhel").unwrap(), None);
        assert_eq!(
            parse_reply(b"$5\r\nhello\r\n").unwrap().as_deref(),
            Some("hello")
        );
        assert!(parse_reply(b"-ERR no\r\n").is_err());
        let info = "# Commandstats\r\ncmdstat_get:calls=12,usec=30,usec_per_call=2.50,rejected_calls=0,failed_calls=0\r\ncmdstat_config|get:calls=1,usec=5\r\ncmdstat_EVALSHA:calls=3,usec=9\r\n";
        let s = parse_commandstats(info);
        assert_eq!(s["get"], 12);
        assert_eq!(s["config|get"], 1);
        assert_eq!(s["evalsha"], 3);
    }
}
