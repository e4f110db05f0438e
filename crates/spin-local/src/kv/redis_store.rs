//! The Redis backend (`[key_value_store.<label>] type = "redis"`, `url = "redis://host:port[/db]"`),
//! after Spin's `key-value-redis`: the same client (the `redis` crate, 0.32) sending the same
//! commands, so a server shows the same command counts (`INFO commandstats`) under spin-local as
//! under `spin up`.
//!
//! Invariants, with [`Semantics::Spin`] (the default):
//!
//! - The label is not part of the keys: every label on one server and database shares one
//!   keyspace. Values are plain Redis strings.
//! - One [`ConnectionManager`] per label, made when a component first opens the store (nothing
//!   is contacted at start-up), then shared by every call; it reconnects by itself after the
//!   server restarts. The client's defaults apply, as in Spin: connecting tries again 6 times,
//!   after 1–2 s and then 60–120 s each, so an open while the server is down waits that long
//!   before it fails (and the next open starts over); a call that finds the connection broken
//!   fails at once and starts a reconnection, and the calls made while it runs wait for it.
//!   Each call runs as a tokio task of its own, which the guest's call waits for: the requests on
//!   the shared connection then go out and complete however wasmtime polls the guest.
//! - `get`/`set`/`delete`/`exists` are `GET`/`SET`/`DEL`/`EXISTS`; `increment` is `INCRBY`
//!   (atomic; the value is ASCII decimal, `"42"`); `set-many` is `MSET`; `delete-many` is
//!   `DEL k1 k2 …`; `list-keys` is `KEYS *` and `spin:key-value` `get-keys` is `SCAN`.
//! - `get-many` sends `KEYS k1 k2 …`, as Spin does, and reads the reply as Spin's client does: two
//!   or more keys are an error (wrong number of arguments); one missing key answers `[]`; one
//!   existing key makes Spin's host panic (an odd-length reply read as pairs) and is an error here.
//!   (The one key is a glob pattern to `KEYS`, so `a*` with `ab` and `ac` present answers
//!   `[("ab", "ac")]`, as on Spin.)
//! - `cas.new` opens a connection of its own; `current()` sends `WATCH k` and `GET k` on it; `swap`
//!   sends `MULTI; SET k v; EXEC` (applied only if `k` did not change since the `WATCH`, which for
//!   a missing key means it is still missing) and then `UNWATCH k`, which Redis rejects (it takes
//!   no argument), so every swap reports `cas-failed`, also when its `EXEC` wrote.
//!
//! With [`Semantics::Interface`], `get-many` is `MGET` (every key in order, `none` for missing) and
//! a swap reports what `EXEC` did (`cas-failed` only when the watched key had changed), with no
//! `UNWATCH` after it (`EXEC` ends the watch).

use std::future::Future;
use std::sync::Arc;

use anyhow::Context;
use redis::aio::ConnectionManager;
use redis::{AsyncCommands, Client, RedisResult, Value};
use tokio::sync::OnceCell;

use super::{KvBackend, KvCas, KvFuture, KvResult, Semantics, Swapped};

/// A Redis store: one label's connection to one server (Spin's `KeyValueRedis` and `RedisStore`).
pub struct RedisKv(Arc<Shared>);

struct Shared {
    client: Client,
    /// Made by the first open (or call) that finds it missing, as Spin's `OnceCell`.
    connection: OnceCell<ConnectionManager>,
    semantics: Semantics,
}

/// Errors as Spin formats them for the guest (`{:?}`).
fn err(e: impl std::fmt::Debug) -> String {
    format!("{e:?}")
}

impl RedisKv {
    /// A store for `url` (checked as Spin checks it; nothing is contacted yet).
    pub fn new(url: &str, semantics: Semantics) -> anyhow::Result<Self> {
        let parsed =
            redis::parse_redis_url(url).with_context(|| format!("invalid Redis URL {url:?}"))?;
        let client = Client::open(parsed).with_context(|| format!("invalid Redis URL {url:?}"))?;
        Ok(Self(Arc::new(Shared {
            client,
            connection: OnceCell::new(),
            semantics,
        })))
    }

    /// Where the data goes, as Spin says it (`Redis at host:port`).
    pub fn summary(&self) -> String {
        format!("Redis at {}", self.0.client.get_connection_info().addr)
    }

    /// Runs `op` on the shared connection, made first if no open made it yet.
    fn with<T, F, Fut>(&self, op: F) -> KvFuture<T>
    where
        T: Send + 'static,
        F: FnOnce(ConnectionManager) -> Fut + Send + 'static,
        Fut: Future<Output = RedisResult<T>> + Send,
    {
        let shared = self.0.clone();
        detached(async move {
            let conn = shared.connection().await.map_err(err)?;
            op(conn).await.map_err(err)
        })
    }
}

/// Runs `call` as a task of its own on the host's runtime, and waits for it.
fn detached<T: Send + 'static>(
    call: impl Future<Output = KvResult<T>> + Send + 'static,
) -> KvFuture<T> {
    let task = tokio::spawn(call);
    Box::pin(async move { task.await.map_err(err)? })
}

impl Shared {
    async fn connection(&self) -> RedisResult<ConnectionManager> {
        self.connection
            .get_or_try_init(|| self.client.get_connection_manager())
            .await
            .cloned()
    }
}

/// What Spin's `get_many` makes of the reply to `KEYS k1 k2 …`: its client reads the array of
/// matching key names as (key, value) pairs, and panics on an odd number of names.
fn keys_reply_as_spin_reads_it(reply: Value) -> KvResult<Vec<(String, Option<Vec<u8>>)>> {
    if let Value::Array(names) = &reply
        && names.len() % 2 == 1
    {
        return Err(format!(
            "get-many: Redis answered `KEYS` with {} key name(s), which Spin's Redis client cannot \
             read as key-value pairs (Spin's host panics here)",
            names.len()
        ));
    }
    redis::from_owned_redis_value(reply).map_err(err)
}

impl KvBackend for RedisKv {
    fn open(&self) -> KvFuture<()> {
        self.with(|mut c| async move {
            // Spin's `after_open`: a ping whose failure only starts a reconnection.
            let _ = c.ping::<()>().await;
            Ok(())
        })
    }

    fn get(&self, key: &str) -> KvFuture<Option<Vec<u8>>> {
        let key = key.to_string();
        self.with(|mut c| async move { c.get(key).await })
    }

    fn set(&self, key: &str, value: &[u8]) -> KvFuture<()> {
        let (key, value) = (key.to_string(), value.to_vec());
        self.with(|mut c| async move { c.set(key, value).await })
    }

    fn delete(&self, key: &str) -> KvFuture<()> {
        let key = key.to_string();
        self.with(|mut c| async move { c.del(key).await })
    }

    fn exists(&self, key: &str) -> KvFuture<bool> {
        let key = key.to_string();
        self.with(|mut c| async move { c.exists(key).await })
    }

    fn keys(&self) -> KvFuture<Vec<String>> {
        self.with(|mut c| async move { c.keys("*").await })
    }

    fn scan_keys(&self) -> KvFuture<Vec<String>> {
        self.with(|mut c| async move {
            let mut keys = Vec::new();
            // Like Spin's: the client's iterator ends quietly on an error.
            let mut scan = c.scan::<String>().await?;
            while let Some(k) = scan.next_item().await {
                keys.push(k);
            }
            Ok(keys)
        })
    }

    fn get_many(&self, keys: &[String]) -> KvFuture<Vec<(String, Option<Vec<u8>>)>> {
        let keys = keys.to_vec();
        match self.0.semantics {
            Semantics::Spin => {
                let sent = self.with(|mut c| async move {
                    redis::cmd("KEYS")
                        .arg(keys)
                        .query_async::<Value>(&mut c)
                        .await
                });
                Box::pin(async move { keys_reply_as_spin_reads_it(sent.await?) })
            }
            Semantics::Interface => self.with(|mut c| async move {
                let values: Vec<Option<Vec<u8>>> =
                    redis::cmd("MGET").arg(&keys).query_async(&mut c).await?;
                Ok(keys.into_iter().zip(values).collect())
            }),
        }
    }

    fn set_many(&self, entries: &[(String, Vec<u8>)]) -> KvFuture<()> {
        let entries = entries.to_vec();
        self.with(|mut c| async move { c.mset(&entries).await })
    }

    fn delete_many(&self, keys: &[String]) -> KvFuture<()> {
        let keys = keys.to_vec();
        self.with(|mut c| async move { c.del(keys).await })
    }

    fn increment(&self, key: &str, delta: i64) -> KvFuture<i64> {
        let key = key.to_string();
        self.with(move |mut c| async move { c.incr(key, delta).await })
    }

    fn new_cas(&self, key: &str) -> KvFuture<Box<dyn KvCas>> {
        let (shared, key) = (self.0.clone(), key.to_string());
        detached(async move {
            // A connection of its own: a `WATCH` belongs to the connection that sent it.
            let connection = shared.client.get_connection_manager().await.map_err(err)?;
            Ok(Box::new(RedisCas {
                key,
                connection,
                semantics: shared.semantics,
            }) as Box<dyn KvCas>)
        })
    }
}

/// A compare-and-swap on a Redis store, on a connection of its own (Spin's `CompareAndSwap`).
struct RedisCas {
    key: String,
    connection: ConnectionManager,
    semantics: Semantics,
}

impl KvCas for RedisCas {
    fn current(&self) -> KvFuture<Option<Vec<u8>>> {
        let (key, mut c) = (self.key.clone(), self.connection.clone());
        detached(async move {
            redis::cmd("WATCH")
                .arg(&key)
                .exec_async(&mut c)
                .await
                .map_err(err)?;
            c.get(&key).await.map_err(err)
        })
    }

    fn swap(self: Box<Self>, value: Vec<u8>) -> KvFuture<Swapped> {
        let Self {
            key,
            connection: mut c,
            semantics,
        } = *self;
        detached(async move {
            // `EXEC` answers nil when a watched key changed, and the transaction did nothing.
            let exec = redis::pipe()
                .atomic()
                .set(&key, value)
                .query_async::<Value>(&mut c)
                .await;
            let wrote = matches!(exec, Ok(ref v) if *v != Value::Nil);
            if semantics == Semantics::Spin {
                // `UNWATCH` takes no argument, so Redis rejects this one every time, and Spin
                // reports the rejection as `cas-failed` before it looks at the `EXEC`.
                let unwatch = redis::cmd("UNWATCH").arg(&key).exec_async(&mut c).await;
                return Ok(match (unwatch, exec) {
                    (Err(e), _) | (Ok(()), Err(e)) => Swapped::Failed {
                        wrote,
                        reason: err(e),
                    },
                    (Ok(()), Ok(_)) => Swapped::Done,
                });
            }
            match exec {
                Ok(Value::Nil) => Ok(Swapped::Failed {
                    wrote: false,
                    reason: format!("{key:?} changed since `current()`"),
                }),
                Ok(_) => Ok(Swapped::Done),
                Err(e) => Err(err(e)),
            }
        })
    }
}

/// A private `redis-server` for tests, killed when dropped.
#[cfg(test)]
pub mod testing {
    use std::collections::BTreeMap;
    use std::io::{Read, Write};
    use std::path::PathBuf;
    use std::process::{Child, Command, Stdio};
    use std::time::{Duration, Instant};

    use super::super::tests::Dir;

    /// The server binary: `$REDIS_SERVER`, else `redis-server` on the `PATH`.
    fn binary() -> String {
        std::env::var("REDIS_SERVER").unwrap_or_else(|_| "redis-server".into())
    }

    /// Where a test server listens.
    enum Address {
        Unix(PathBuf),
        Tcp(u16),
    }

    /// A `redis-server` with no persistence in a directory of its own; killed (and waited for)
    /// on drop, so no test leaves one behind.
    pub struct RedisServer {
        child: Option<Child>,
        address: Address,
        dir: Dir,
    }

    impl RedisServer {
        /// A server on a unix socket in its directory.
        pub fn start() -> Self {
            let dir = Dir::new();
            let address = Address::Unix(dir.path().join("redis.sock"));
            let mut server = Self {
                child: None,
                address,
                dir,
            };
            server.restart();
            server
        }

        /// A server on a free TCP port of 127.0.0.1 (a few ports are tried if one is taken
        /// between choosing and binding it).
        pub fn start_tcp() -> Self {
            for _ in 0..5 {
                let port = std::net::TcpListener::bind("127.0.0.1:0")
                    .and_then(|l| l.local_addr())
                    .expect("a free port")
                    .port();
                let mut server = Self {
                    child: None,
                    address: Address::Tcp(port),
                    dir: Dir::new(),
                };
                if server.spawn().is_ok() {
                    return server;
                }
            }
            panic!("cannot start {} on a free TCP port", binary());
        }

        /// Its URL, in Spin's runtime-config syntax.
        pub fn url(&self) -> String {
            match &self.address {
                Address::Unix(p) => format!("redis+unix://{}", p.display()),
                Address::Tcp(port) => format!("redis://127.0.0.1:{port}"),
            }
        }

        /// Kills the server (SIGKILL) and waits for it.
        pub fn kill(&mut self) {
            if let Some(mut child) = self.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }

        /// Starts the server again on the same address (killing it first if it runs), with an
        /// empty keyspace.
        pub fn restart(&mut self) {
            self.kill();
            if let Err(log) = self.spawn() {
                panic!("{log}");
            }
        }

        /// Starts the server and waits until it answers; `Err` holds what went wrong.
        fn spawn(&mut self) -> Result<(), String> {
            let log = self.dir.path().join("redis.log");
            let mut cmd = Command::new(binary());
            cmd.args(["--save", "", "--appendonly", "no", "--bind", "127.0.0.1"])
                .arg("--dir")
                .arg(self.dir.path())
                .arg("--logfile")
                .arg(&log)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            match &self.address {
                Address::Unix(p) => cmd.args(["--port", "0", "--unixsocket"]).arg(p),
                Address::Tcp(port) => cmd.arg("--port").arg(port.to_string()),
            };
            let child = cmd.spawn().unwrap_or_else(|e| {
                panic!(
                    "cannot run {:?} ({e}): the Redis backend tests need a Redis server \
                     (apt-get install redis-server, or set REDIS_SERVER to its path)",
                    binary()
                )
            });
            self.child = Some(child);
            let until = Instant::now() + Duration::from_secs(10);
            while Instant::now() < until {
                if self.answers_ping() {
                    return Ok(());
                }
                let exited = self
                    .child
                    .as_mut()
                    .and_then(|c| c.try_wait().ok().flatten());
                if exited.is_some() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            self.kill();
            Err(format!(
                "{} did not come up at {}; its log:\n{}",
                binary(),
                self.url(),
                std::fs::read_to_string(&log).unwrap_or_default()
            ))
        }

        fn answers_ping(&self) -> bool {
            fn ping(mut s: impl Read + Write) -> bool {
                let mut reply = [0u8; 7];
                s.write_all(b"PING\r\n").is_ok()
                    && s.read_exact(&mut reply).is_ok()
                    && &reply == b"+PONG\r\n"
            }
            match &self.address {
                Address::Unix(p) => std::os::unix::net::UnixStream::connect(p).is_ok_and(ping),
                Address::Tcp(port) => {
                    std::net::TcpStream::connect(("127.0.0.1", *port)).is_ok_and(ping)
                }
            }
        }

        /// A plain connection of the test's own, to look at the server from outside the store.
        pub async fn client(&self) -> redis::aio::MultiplexedConnection {
            redis::Client::open(self.url())
                .unwrap()
                .get_multiplexed_async_connection()
                .await
                .unwrap()
        }

        /// `CONFIG RESETSTAT`: command counts start again from zero.
        pub async fn reset_stats(&self) {
            redis::cmd("CONFIG")
                .arg("RESETSTAT")
                .exec_async(&mut self.client().await)
                .await
                .unwrap();
        }

        /// `INFO commandstats`: command (lower case) → (calls, rejected calls), leaving out the
        /// commands a connection sends by itself (`client`, `config`, `info`).
        pub async fn command_counts(&self) -> BTreeMap<String, (u64, u64)> {
            let info: String = redis::cmd("INFO")
                .arg("commandstats")
                .query_async(&mut self.client().await)
                .await
                .unwrap();
            info.lines()
                .filter_map(|l| {
                    let (name, fields) = l.strip_prefix("cmdstat_")?.split_once(':')?;
                    let field = |f: &str| {
                        fields
                            .split(',')
                            .find_map(|kv| kv.strip_prefix(f)?.strip_prefix('='))
                            .and_then(|n| n.parse().ok())
                            .unwrap_or(0)
                    };
                    let name = name.split('|').next().unwrap_or(name);
                    (!["client", "config", "info"].contains(&name))
                        .then(|| (name.to_string(), (field("calls"), field("rejected_calls"))))
                })
                .collect()
        }
    }

    impl Drop for RedisServer {
        fn drop(&mut self) {
            self.kill();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use redis::AsyncCommands;

    use super::testing::RedisServer;
    use super::*;
    use crate::kv::{RuntimeConfig, Stores};

    fn store(server: &RedisServer, semantics: Semantics) -> RedisKv {
        RedisKv::new(&server.url(), semantics).unwrap()
    }

    /// Counts as (calls, rejected) for the commands named, in that order.
    fn counts(all: &BTreeMap<String, (u64, u64)>, names: &[&str]) -> Vec<(u64, u64)> {
        names
            .iter()
            .map(|n| all.get(*n).copied().unwrap_or((0, 0)))
            .collect()
    }

    /// Spin's `get`/`set`/`delete`/`exists` are `GET`/`SET`/`DEL`/`EXISTS` on plain strings.
    #[tokio::test]
    async fn redis_plain_calls_are_plain_commands_like_spin() {
        let server = RedisServer::start();
        let kv = store(&server, Semantics::Spin);
        kv.open().await.unwrap();
        server.reset_stats().await;
        kv.set("a", b"1").await.unwrap();
        assert_eq!(kv.get("a").await.unwrap(), Some(b"1".to_vec()));
        assert!(kv.exists("a").await.unwrap());
        kv.delete("a").await.unwrap();
        assert!(!kv.exists("a").await.unwrap());
        assert_eq!(kv.get("a").await.unwrap(), None);
        let all = server.command_counts().await;
        assert_eq!(
            counts(&all, &["set", "get", "exists", "del"]),
            [(1, 0), (2, 0), (2, 0), (1, 0)]
        );
        let mut outside = server.client().await;
        kv.set("s", b"text").await.unwrap();
        let raw: String = outside.get("s").await.unwrap();
        assert_eq!(raw, "text", "values are plain Redis strings");
    }

    /// Spin's `increment` is `INCRBY`: atomic, and the value is stored as ASCII decimal.
    #[tokio::test]
    async fn redis_increment_is_decimal() {
        let server = RedisServer::start();
        let kv = store(&server, Semantics::Spin);
        assert_eq!(kv.increment("n", 40).await.unwrap(), 40);
        assert_eq!(kv.increment("n", 2).await.unwrap(), 42);
        assert_eq!(kv.get("n").await.unwrap(), Some(b"42".to_vec()));
        // A value Redis cannot read as an integer fails the call.
        kv.set("s", b"abc").await.unwrap();
        assert!(
            kv.increment("s", 1)
                .await
                .unwrap_err()
                .contains("not an integer")
        );
        // Concurrent increments are not lost.
        let all = futures::future::join_all((0..50).map(|_| kv.increment("c", 1))).await;
        let mut all: Vec<i64> = all.into_iter().map(Result::unwrap).collect();
        all.sort_unstable();
        assert_eq!(all, (1..=50).collect::<Vec<_>>());
    }

    /// Spin's Redis store ignores the label: every label on one URL shares one keyspace.
    #[tokio::test]
    async fn redis_ignores_the_store_label() {
        let server = RedisServer::start_tcp();
        let config: RuntimeConfig = toml::from_str(&format!(
            "[key_value_store.default]\ntype = \"redis\"\nurl = \"{0}\"\n\
             [key_value_store.other]\ntype = \"redis\"\nurl = \"{0}/0\"\n",
            server.url()
        ))
        .unwrap();
        let dir = super::super::tests::Dir::new();
        let (stores, notes) =
            Stores::open(&config, dir.path(), dir.path(), Semantics::Spin).unwrap();
        assert!(notes[0].contains("Redis at 127.0.0.1:"), "{notes:?}");
        let (default, other) = (stores.get("default").unwrap(), stores.get("other").unwrap());
        default.open().await.unwrap();
        other.open().await.unwrap();
        default.set("k", b"from default").await.unwrap();
        assert_eq!(
            other.get("k").await.unwrap(),
            Some(b"from default".to_vec())
        );
        assert_eq!(other.keys().await.unwrap(), ["k"]);
    }

    /// Spin's `get_many` sends `KEYS k1 k2`, which Redis refuses for two keys or more.
    #[tokio::test]
    async fn redis_get_many_of_two_keys_fails_like_spin() {
        let server = RedisServer::start();
        let kv = store(&server, Semantics::Spin);
        kv.set("a", b"1").await.unwrap();
        kv.set("b", b"2").await.unwrap();
        server.reset_stats().await;
        let e = kv.get_many(&["a".into(), "b".into()]).await.unwrap_err();
        assert!(e.contains("wrong number of arguments"), "{e}");
        let all = server.command_counts().await;
        assert_eq!(counts(&all, &["keys", "mget"]), [(0, 1), (0, 0)]);
    }

    /// With one existing key, `KEYS k` answers `["k"]`, which Spin's client cannot read as pairs
    /// and panics on; here the call fails instead.
    #[tokio::test]
    async fn redis_get_many_of_one_existing_key_is_an_error_where_spin_panics() {
        let server = RedisServer::start();
        let kv = store(&server, Semantics::Spin);
        kv.set("a", b"1").await.unwrap();
        let e = kv.get_many(&["a".into()]).await.unwrap_err();
        assert!(e.contains("Spin's host panics"), "{e}");
    }

    /// With one missing key, `KEYS k` answers `[]`, so Spin's `get_many` answers no pairs; and a
    /// glob matching two keys answers them as one (name, name) pair, as Spin reads it.
    #[tokio::test]
    async fn redis_get_many_of_one_key_reads_the_keys_reply_like_spin() {
        let server = RedisServer::start();
        let kv = store(&server, Semantics::Spin);
        kv.set("ab", b"1").await.unwrap();
        kv.set("ac", b"2").await.unwrap();
        assert_eq!(kv.get_many(&["missing".into()]).await.unwrap(), []);
        let pairs = kv.get_many(&["a*".into()]).await.unwrap();
        assert_eq!(pairs.len(), 1);
        let mut names = [pairs[0].0.clone().into_bytes(), pairs[0].1.clone().unwrap()];
        names.sort();
        assert_eq!(names, [b"ab".to_vec(), b"ac".to_vec()]);
    }

    /// Spin's `set_many` is `MSET` (atomic), `delete_many` is one `DEL`, `list-keys` is `KEYS *`
    /// and `spin:key-value` `get-keys` is `SCAN`.
    #[tokio::test]
    async fn redis_batches_and_key_listings_are_spins_commands() {
        let server = RedisServer::start();
        let kv = store(&server, Semantics::Spin);
        kv.open().await.unwrap();
        server.reset_stats().await;
        let entries: Vec<(String, Vec<u8>)> = ["a", "b", "c"]
            .map(|k| (k.to_string(), k.as_bytes().to_vec()))
            .into();
        kv.set_many(&entries).await.unwrap();
        let mut keys = kv.keys().await.unwrap();
        keys.sort();
        assert_eq!(keys, ["a", "b", "c"]);
        let mut scanned = kv.scan_keys().await.unwrap();
        scanned.sort();
        assert_eq!(scanned, ["a", "b", "c"]);
        kv.delete_many(&["a".into(), "b".into(), "nope".into()])
            .await
            .unwrap();
        assert_eq!(kv.keys().await.unwrap(), ["c"]);
        let all = server.command_counts().await;
        assert_eq!(
            counts(&all, &["mset", "keys", "scan", "del", "set"]),
            [(1, 0), (2, 0), (1, 0), (1, 0), (0, 0)]
        );
    }

    /// `cas.current()` is `WATCH k` + `GET k` on the cas's own connection, and `swap` is
    /// `MULTI; SET; EXEC` followed by `UNWATCH k`, which Redis rejects, so the swap reports
    /// `cas-failed` although it wrote.
    #[tokio::test]
    async fn redis_swap_reports_cas_failed_even_when_it_wrote_like_spin() {
        let server = RedisServer::start();
        let kv = store(&server, Semantics::Spin);
        kv.set("k", b"old").await.unwrap();
        server.reset_stats().await;
        let cas = kv.new_cas("k").await.unwrap();
        assert_eq!(cas.current().await.unwrap(), Some(b"old".to_vec()));
        let Swapped::Failed { wrote, reason } = cas.swap(b"new".to_vec()).await.unwrap() else {
            panic!("Spin's Redis swap never reports success");
        };
        assert!(wrote, "EXEC committed");
        assert!(reason.contains("unwatch"), "{reason}");
        assert_eq!(kv.get("k").await.unwrap(), Some(b"new".to_vec()));
        let all = server.command_counts().await;
        assert_eq!(
            counts(&all, &["watch", "get", "multi", "set", "exec", "unwatch"]),
            [(1, 0), (2, 0), (1, 0), (1, 0), (1, 0), (0, 1)]
        );
    }

    /// The swap's `EXEC` is guarded by the `WATCH` of `current()`: a write in between (also the
    /// creation of a key `current()` found missing) makes the transaction do nothing.
    #[tokio::test]
    async fn redis_swap_is_watch_guarded() {
        let server = RedisServer::start();
        let kv = store(&server, Semantics::Spin);
        let mut outside = server.client().await;
        kv.set("k", b"old").await.unwrap();
        for key in ["k", "fresh"] {
            let cas = kv.new_cas(key).await.unwrap();
            cas.current().await.unwrap();
            let () = outside.set(key, "theirs").await.unwrap();
            let swapped = cas.swap(b"mine".to_vec()).await.unwrap();
            assert!(
                matches!(swapped, Swapped::Failed { wrote: false, .. }),
                "{key}: {swapped:?}"
            );
            assert_eq!(
                kv.get(key).await.unwrap(),
                Some(b"theirs".to_vec()),
                "{key}"
            );
        }
        // Without `current()` nothing is watched, and the transaction writes whatever happened.
        let cas = kv.new_cas("k").await.unwrap();
        let () = outside.set("k", "later").await.unwrap();
        let swapped = cas.swap(b"blind".to_vec()).await.unwrap();
        assert!(matches!(swapped, Swapped::Failed { wrote: true, .. }));
        assert_eq!(kv.get("k").await.unwrap(), Some(b"blind".to_vec()));
    }

    /// With `--kv-semantics interface`, `get-many` is `MGET` (every key, in order) and a swap
    /// reports what its `EXEC` did, with no `UNWATCH` after it.
    #[tokio::test]
    async fn redis_interface_mode_answers_every_key_and_reports_the_swap_truthfully() {
        let server = RedisServer::start();
        let kv = store(&server, Semantics::Interface);
        let mut outside = server.client().await;
        kv.set("a", b"1").await.unwrap();
        kv.set("b", b"2").await.unwrap();
        server.reset_stats().await;
        assert_eq!(
            kv.get_many(&["b".into(), "none".into(), "a".into()])
                .await
                .unwrap(),
            [
                ("b".to_string(), Some(b"2".to_vec())),
                ("none".to_string(), None),
                ("a".to_string(), Some(b"1".to_vec())),
            ]
        );
        assert_eq!(
            kv.get_many(&["a".into()]).await.unwrap(),
            [("a".to_string(), Some(b"1".to_vec()))]
        );
        let cas = kv.new_cas("a").await.unwrap();
        cas.current().await.unwrap();
        assert_eq!(cas.swap(b"3".to_vec()).await.unwrap(), Swapped::Done);
        assert_eq!(kv.get("a").await.unwrap(), Some(b"3".to_vec()));
        let cas = kv.new_cas("a").await.unwrap();
        cas.current().await.unwrap();
        let () = outside.set("a", "theirs").await.unwrap();
        assert!(matches!(
            cas.swap(b"4".to_vec()).await.unwrap(),
            Swapped::Failed { wrote: false, .. }
        ));
        assert_eq!(kv.get("a").await.unwrap(), Some(b"theirs".to_vec()));
        let all = server.command_counts().await;
        assert_eq!(
            counts(&all, &["mget", "keys", "exec", "unwatch"]),
            [(2, 0), (0, 0), (2, 0), (0, 0)]
        );
    }

    /// Like Spin, start-up does not contact the server: the stores open while it is down, and
    /// work once it is up.
    #[tokio::test]
    async fn redis_start_up_does_not_need_the_server() {
        let mut server = RedisServer::start();
        server.kill();
        let config: RuntimeConfig = toml::from_str(&format!(
            "[key_value_store.default]\ntype = \"redis\"\nurl = \"{}\"\n",
            server.url()
        ))
        .unwrap();
        let dir = super::super::tests::Dir::new();
        let (stores, _) = Stores::open(&config, dir.path(), dir.path(), Semantics::Spin)
            .expect("opening the stores contacts no server");
        server.restart();
        let kv = stores.get("default").unwrap();
        kv.open().await.unwrap();
        kv.set("k", b"v").await.unwrap();
        assert_eq!(kv.get("k").await.unwrap(), Some(b"v".to_vec()));
    }

    /// The shared `ConnectionManager` reconnects by itself: after the server restarts, the first
    /// call fails (the connection broke) and the next ones work again.
    #[tokio::test]
    async fn redis_reconnects_after_a_server_restart() {
        let mut server = RedisServer::start();
        let kv = store(&server, Semantics::Spin);
        kv.open().await.unwrap();
        kv.set("k", b"v").await.unwrap();
        server.kill();
        let during = tokio::time::timeout(Duration::from_secs(10), kv.get("k"))
            .await
            .expect("a call on a broken connection fails, it does not hang");
        assert!(during.is_err(), "{during:?}");
        server.restart();
        // The manager's next attempt comes 1–2 s after the failed one.
        let after = tokio::time::timeout(Duration::from_secs(10), kv.set("k", b"again"))
            .await
            .expect("the manager reconnects");
        after.unwrap();
        assert_eq!(kv.get("k").await.unwrap(), Some(b"again".to_vec()));
    }
}
