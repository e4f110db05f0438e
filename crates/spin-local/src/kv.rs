//! Key-value storage behind the `spin:key-value` and `wasi:keyvalue` interfaces.
//!
//! [`KvBackend`] is the seam: the components see one store per label, and every backend offers the
//! operations both interfaces need, shaped like Spin's own `Store` trait: plain reads and writes,
//! batches, `increment`, and compare-and-swap as a backend-specific [`KvCas`] object that
//! [`KvBackend::new_cas`] makes and whose [`KvCas::current`] and [`KvCas::swap`] the
//! `wasi:keyvalue/atomics` `cas` resource calls. Two backends exist, as in Spin:
//!
//! - SQLite (`type = "spin"`, the default), with Spin's own schema, so a `.spin/sqlite_key_value.db`
//!   written here can be read by `spin up` and the other way round;
//! - Redis (`type = "redis"`, `url = "redis://host:port[/db]"`, [`redis_store`]), with the client
//!   and the command sequences of Spin's `key-value-redis`.
//!
//! # Semantics
//!
//! By default ([`Semantics::Spin`]) both backends reproduce what Spin's backends do, defects
//! included, so that an application tested here behaves the same on `spin up`. For SQLite:
//!
//! - `get-many` leaves missing keys out and answers the found ones in key order, each once (Spin
//!   runs `SELECT key, value … WHERE key IN rarray(…)`);
//! - `cas.new` reads nothing; `current()` reads the value and keeps it in the cas; `swap(v)` with a
//!   kept value `old` writes only `WHERE value = old` (atomic; no row → `cas-failed`), but with no
//!   kept value (`current()` found no key, or was never called) it is an unconditional upsert that
//!   reports success, so a racing creator is silently overwritten;
//! - `increment` of a value that is not 8 bytes fails the call (Spin's host panics instead).
//!
//! [`Semantics::Interface`] (`spin-local up --kv-semantics interface`) follows the `wasi:keyvalue`
//! documentation instead: `get-many` answers every requested key in order with `none` for missing
//! ones, a swap after `current()` found no key creates the key only if it is still absent, and
//! every swap reports what it did. (A swap without `current()` overwrites in both modes: the
//! interface lets `current()` be skipped when overwriting is all that is needed.) The Redis
//! differences are listed in [`redis_store`].
//!
//! # Calls
//!
//! Every call returns a future, so a component instance waiting on the store holds no thread. The
//! SQLite backend commits in groups. A call that finds the file idle runs at once on the caller's
//! thread (a write in a transaction of its own, a read in none), and so do the calls that queue
//! behind it meanwhile, for up to [`LEAD_FOR`]; after that a writer thread runs whatever has
//! queued, each time all of it in one transaction. Each call still sees the effects of those
//! before it in the queue, and its caller hears back only after the commit, so order and
//! atomicity are those of one call per transaction. What changes is the cost: a commit appends the
//! pages it touched to the write-ahead log once for the whole group. A SQLite call is queued when
//! it is made (its future only carries the answer); `increment`, `cas.current()` and `swap` are
//! calls in that queue like the others. A Redis call is sent when its future is first polled.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::{Duration, Instant};

use anyhow::Context;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior};
use serde::Deserialize;
use tokio::sync::oneshot;

use crate::stats::{Counted, KvStats};

pub mod redis_store;

/// Errors a backend reports to the guest as `other(..)`.
pub type KvResult<T> = Result<T, String>;

/// The answer to one call.
pub type KvFuture<T> = Pin<Box<dyn Future<Output = KvResult<T>> + Send>>;

/// Which behaviour the backends give where Spin's backends depart from the interfaces' documentation
/// (see the module documentation).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Semantics {
    /// What Spin's own backends do, defects included (the default).
    #[default]
    Spin,
    /// What the `wasi:keyvalue` documentation asks for.
    Interface,
}

/// How a swap ended when the store answered it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Swapped {
    /// The value was written, and the swap reports success.
    Done,
    /// The swap reports `cas-failed`.
    Failed {
        /// Whether the value was written nonetheless (Spin's Redis backend reports every swap as
        /// failed); counted as a written key.
        wrote: bool,
        /// Why the backend reported the failure (for logs and tests; the guest sees no reason).
        reason: String,
    },
}

/// One key-value store (one label), shaped like Spin's `Store`.
pub trait KvBackend: Send + Sync {
    /// Called when a component opens the store: Spin's `StoreManager::get` and `after_open` (Redis
    /// makes its connection on the first open and pings; SQLite has nothing to do).
    fn open(&self) -> KvFuture<()>;
    /// The value of `key`, if any.
    fn get(&self, key: &str) -> KvFuture<Option<Vec<u8>>>;
    /// Upserts `key`.
    fn set(&self, key: &str, value: &[u8]) -> KvFuture<()>;
    /// Removes `key` (absent is fine).
    fn delete(&self, key: &str) -> KvFuture<()>;
    /// Whether `key` exists.
    fn exists(&self, key: &str) -> KvFuture<bool>;
    /// Every key, as `wasi:keyvalue` `list-keys` gets them (SQLite: sorted; Redis: `KEYS *`).
    fn keys(&self) -> KvFuture<Vec<String>>;
    /// Every key, as `spin:key-value@3.0.0` `get-keys` gets them (Spin streams them; Redis: `SCAN`,
    /// which may repeat a key). The same as [`KvBackend::keys`] unless a backend says otherwise.
    fn scan_keys(&self) -> KvFuture<Vec<String>> {
        self.keys()
    }
    /// `get-many`: pairs of key and value, as the backend answers (see the module documentation
    /// for which keys, in which order). Never called with no keys: the host answers that itself.
    fn get_many(&self, keys: &[String]) -> KvFuture<Vec<(String, Option<Vec<u8>>)>>;
    /// Upserts several keys at once (all or nothing).
    fn set_many(&self, entries: &[(String, Vec<u8>)]) -> KvFuture<()>;
    /// Removes several keys at once.
    fn delete_many(&self, keys: &[String]) -> KvFuture<()>;
    /// Adds `delta` to the integer at `key` (absent = 0) and returns the result (SQLite: 8
    /// little-endian bytes; Redis: `INCRBY`, ASCII decimal).
    fn increment(&self, key: &str, delta: i64) -> KvFuture<i64>;
    /// `cas.new`: a compare-and-swap on `key`, in the backend's own way (SQLite reads nothing;
    /// Redis opens a connection of its own).
    fn new_cas(&self, key: &str) -> KvFuture<Box<dyn KvCas>>;
}

/// One compare-and-swap on one key, made by [`KvBackend::new_cas`]: Spin's `Cas`.
pub trait KvCas: Send + Sync {
    /// `cas.current()`: the value of the key now (and what the backend keeps for the swap).
    fn current(&self) -> KvFuture<Option<Vec<u8>>>;
    /// `swap`: writes `value` as the backend's compare-and-swap does and says how it ended; an
    /// `Err` is a store error.
    fn swap(self: Box<Self>, value: Vec<u8>) -> KvFuture<Swapped>;
}

/// SQLite store: table `spin_key_value(store, key, value)` exactly as Spin creates it. Stores of
/// several labels may share one file, and so one [`Writer`].
#[derive(Clone)]
pub struct SqliteKv {
    writer: Arc<Writer>,
    label: Arc<str>,
    semantics: Semantics,
}

/// What a SQLite cas keeps between `current()` and `swap`, like Spin's `CompareAndSwap::value`
/// (which cannot tell `Unread` from `Read(None)`).
#[derive(Clone, Debug)]
enum Seen {
    /// `current()` was not called (not answered yet).
    Unread,
    /// What the last `current()` read.
    Read(Option<Vec<u8>>),
}

/// A compare-and-swap on a SQLite store (see the module documentation).
struct SqliteCas {
    store: SqliteKv,
    key: Arc<str>,
    /// Set by the `current()` call itself, as it runs in the queue, so a swap queued behind it
    /// compares with what it read.
    seen: Arc<Mutex<Seen>>,
}

/// One call waiting for the connection.
trait Job: Send {
    /// Whether the call only reads.
    fn read_only(&self) -> bool;
    /// Runs inside the group's transaction, keeping its result; it may run again (alone) if the
    /// group is rolled back.
    fn run(&mut self, conn: &Connection) -> rusqlite::Result<()>;
    /// Answers the caller: with the kept result if the transaction committed, else with `failed`.
    fn answer(self: Box<Self>, failed: Option<String>);
}

struct Call<T, F> {
    op: F,
    read_only: bool,
    result: Option<T>,
    reply: oneshot::Sender<KvResult<T>>,
}

impl<T: Send, F: FnMut(&Connection) -> rusqlite::Result<T> + Send> Job for Call<T, F> {
    fn read_only(&self) -> bool {
        self.read_only
    }

    fn run(&mut self, conn: &Connection) -> rusqlite::Result<()> {
        self.result = Some((self.op)(conn)?);
        Ok(())
    }

    fn answer(self: Box<Self>, failed: Option<String>) {
        let answer = match (failed, self.result) {
            (None, Some(r)) => Ok(r),
            (Some(e), _) => Err(e),
            (None, None) => Err("the key-value call was not run".into()),
        };
        // A caller that stopped waiting does not need the answer.
        let _ = self.reply.send(answer);
    }
}

/// The serving connection of one SQLite file and the calls queued for it.
struct Writer {
    conn: Mutex<Connection>,
    queue: Mutex<Queue>,
    /// Wakes the writer thread when the queue is handed to it, or when a call comes while it lingers.
    wake: Condvar,
    /// Transactions committed (or rolled back), for tests and diagnostics.
    transactions: AtomicU64,
}

#[derive(Default)]
struct Queue {
    jobs: Vec<Box<dyn Job>>,
    /// Someone (a caller or the writer thread) is running transactions; new calls queue.
    busy: bool,
    /// The writer thread should take over the queue.
    handed_over: bool,
    /// The writer thread waits for more calls before it lets callers run their own.
    lingering: bool,
}

impl Queue {
    /// The next group: the oldest calls, at most [`GROUP_MAX`].
    fn take_group(&mut self) -> Vec<Box<dyn Job>> {
        let n = self.jobs.len().min(GROUP_MAX);
        self.jobs.drain(..n).collect()
    }
}

/// The most calls one transaction runs.
const GROUP_MAX: usize = 1024;

/// How long the writer thread waits for more calls once the queue is empty.
const LINGER: Duration = Duration::from_micros(500);

/// How long a caller that found the store idle runs the calls queued behind its own.
const LEAD_FOR: Duration = Duration::from_millis(1);

impl Writer {
    /// Gives the queue (still busy) to the writer thread.
    fn hand_over(&self, queue: &mut Queue) {
        queue.handed_over = true;
        self.wake.notify_one();
    }

    fn submit(&self, job: Box<dyn Job>) {
        let mut queue = lock(&self.queue);
        if queue.busy {
            queue.jobs.push(job);
            if queue.lingering {
                self.wake.notify_one();
            }
            return;
        }
        // Idle: run it here, now, and then whatever queued meanwhile, for up to LEAD_FOR; past
        // that the writer thread takes over, so this caller can go on.
        queue.busy = true;
        drop(queue);
        // Should a call panic here, the writer thread carries on with the queue.
        struct HandOverOnPanic<'a>(&'a Writer);
        impl Drop for HandOverOnPanic<'_> {
            fn drop(&mut self) {
                if std::thread::panicking() {
                    self.0.hand_over(&mut lock(&self.0.queue));
                }
            }
        }
        let _guard = HandOverOnPanic(self);
        let until = Instant::now() + LEAD_FOR;
        let mut group = vec![job];
        loop {
            self.run(group);
            let mut queue = lock(&self.queue);
            if queue.jobs.is_empty() {
                queue.busy = false;
                return;
            }
            if Instant::now() >= until {
                self.hand_over(&mut queue);
                return;
            }
            group = queue.take_group();
        }
    }

    /// The writer thread's work once handed the queue: groups until the queue stays empty for
    /// [`LINGER`]. While it lingers, new calls still queue, so under load they keep forming groups
    /// instead of each running alone on its caller's thread.
    fn drain(&self) {
        loop {
            let group = {
                let mut queue = lock(&self.queue);
                if queue.jobs.is_empty() {
                    queue.lingering = true;
                    queue = self
                        .wake
                        .wait_timeout_while(queue, LINGER, |q| q.jobs.is_empty())
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .0;
                    queue.lingering = false;
                }
                if queue.jobs.is_empty() {
                    queue.busy = false;
                    queue.handed_over = false;
                    return;
                }
                queue.take_group()
            };
            self.run(group);
        }
    }

    /// Runs `group` in one transaction, then answers each call. If the transaction fails, each call
    /// runs again in a transaction of its own, so one call's error is not another's.
    fn run(&self, mut group: Vec<Box<dyn Job>>) {
        let mut conn = lock(&self.conn);
        if let [job] = group.as_mut_slice()
            && job.read_only()
        {
            // A read alone needs no transaction of its own (nor the write lock one would take).
            let failed = job.run(&conn).err().map(|e| e.to_string());
            group.into_iter().for_each(|j| j.answer(failed.clone()));
            return;
        }
        let together = self.transaction(&mut conn, &mut group);
        match together {
            Ok(()) => group.into_iter().for_each(|j| j.answer(None)),
            Err(e) if group.len() == 1 => group
                .into_iter()
                .for_each(|j| j.answer(Some(e.to_string()))),
            Err(_) => {
                for mut job in group {
                    let alone = self.transaction(&mut conn, std::slice::from_mut(&mut job));
                    job.answer(alone.err().map(|e| e.to_string()));
                }
            }
        }
    }

    fn transaction(
        &self,
        conn: &mut Connection,
        group: &mut [Box<dyn Job>],
    ) -> rusqlite::Result<()> {
        self.transactions.fetch_add(1, Relaxed);
        // Immediate: the write lock is taken (waiting out another process's writer, up to the busy
        // timeout) before anything is read, so no call can find its snapshot stale when it writes.
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        for job in group.iter_mut() {
            job.run(&tx)?;
        }
        tx.commit()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding these locks leaves nothing half-done that a later call could observe
    // (transactions roll back on drop), so a poisoned lock is still usable.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The writer thread of one file: runs the queue whenever a caller hands it over, until the
/// file's stores are all gone.
fn writer_thread(writer: &Weak<Writer>) {
    loop {
        let Some(w) = writer.upgrade() else { return };
        let queue = lock(&w.queue);
        let (queue, _) = w
            .wake
            .wait_timeout_while(queue, Duration::from_secs(1), |q| !q.handed_over)
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let handed_over = queue.handed_over;
        drop(queue);
        if handed_over {
            // A call that panics loses its answer (its caller hears that the store stopped), not
            // the thread: the queue stays handed over and is drained on the next turn.
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| w.drain()));
        }
    }
}

impl SqliteKv {
    /// A read: like a write, except that run alone it needs no transaction.
    fn read<T: Send + 'static>(
        &self,
        op: impl FnMut(&Connection, &str) -> rusqlite::Result<T> + Send + 'static,
    ) -> KvFuture<T> {
        self.submit(true, op)
    }

    /// A write (see the module documentation).
    fn call<T: Send + 'static>(
        &self,
        op: impl FnMut(&Connection, &str) -> rusqlite::Result<T> + Send + 'static,
    ) -> KvFuture<T> {
        self.submit(false, op)
    }

    fn submit<T: Send + 'static>(
        &self,
        read_only: bool,
        mut op: impl FnMut(&Connection, &str) -> rusqlite::Result<T> + Send + 'static,
    ) -> KvFuture<T> {
        let (reply, answer) = oneshot::channel();
        let label = self.label.clone();
        self.writer.submit(Box::new(Call {
            op: move |c: &Connection| op(c, &label),
            read_only,
            result: None,
            reply,
        }));
        Box::pin(async move {
            answer
                .await
                .unwrap_or_else(|_| Err("the key-value store stopped".into()))
        })
    }

    /// Transactions run so far on this store's file.
    #[cfg(test)]
    fn transactions(&self) -> u64 {
        self.writer.transactions.load(Relaxed)
    }
}

fn read(conn: &Connection, label: &str, key: &str) -> rusqlite::Result<Option<Vec<u8>>> {
    conn.prepare_cached("SELECT value FROM spin_key_value WHERE store = ?1 AND key = ?2")?
        .query_row((label, key), |r| r.get(0))
        .optional()
}

fn write(conn: &Connection, label: &str, key: &str, value: &[u8]) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO spin_key_value (store, key, value) VALUES (?1, ?2, ?3)
         ON CONFLICT(store, key) DO UPDATE SET value = excluded.value",
    )?
    .execute((label, key, value))
    .map(drop)
}

fn remove(conn: &Connection, label: &str, key: &str) -> rusqlite::Result<()> {
    conn.prepare_cached("DELETE FROM spin_key_value WHERE store = ?1 AND key = ?2")?
        .execute((label, key))
        .map(drop)
}

/// Writes `new` over `old` only: Spin's `UPDATE … WHERE value = old`. Returns the rows changed.
fn write_over(
    conn: &Connection,
    label: &str,
    key: &str,
    old: &[u8],
    new: &[u8],
) -> rusqlite::Result<usize> {
    conn.prepare_cached(
        "UPDATE spin_key_value SET value = ?4 WHERE store = ?1 AND key = ?2 AND value = ?3",
    )?
    .execute((label, key, old, new))
}

/// Creates `key` only if it is absent. Returns the rows changed.
fn create(conn: &Connection, label: &str, key: &str, value: &[u8]) -> rusqlite::Result<usize> {
    conn.prepare_cached(
        "INSERT INTO spin_key_value (store, key, value) VALUES (?1, ?2, ?3)
         ON CONFLICT(store, key) DO NOTHING",
    )?
    .execute((label, key, value))
}

impl KvBackend for SqliteKv {
    fn open(&self) -> KvFuture<()> {
        Box::pin(std::future::ready(Ok(())))
    }

    fn get(&self, key: &str) -> KvFuture<Option<Vec<u8>>> {
        let key = key.to_string();
        self.read(move |c, l| read(c, l, &key))
    }

    fn set(&self, key: &str, value: &[u8]) -> KvFuture<()> {
        let (key, value) = (key.to_string(), value.to_vec());
        self.call(move |c, l| write(c, l, &key, &value))
    }

    fn delete(&self, key: &str) -> KvFuture<()> {
        let key = key.to_string();
        self.call(move |c, l| remove(c, l, &key))
    }

    fn exists(&self, key: &str) -> KvFuture<bool> {
        let key = key.to_string();
        self.read(move |c, l| {
            c.prepare_cached("SELECT 1 FROM spin_key_value WHERE store = ?1 AND key = ?2")?
                .exists((l, &key))
        })
    }

    fn keys(&self) -> KvFuture<Vec<String>> {
        // Spin's `SELECT key … WHERE store = ?` walks the primary-key index, so in key order too.
        self.read(|c, l| {
            let mut st =
                c.prepare_cached("SELECT key FROM spin_key_value WHERE store = ?1 ORDER BY key")?;
            st.query_map([l], |r| r.get(0))?.collect()
        })
    }

    fn get_many(&self, keys: &[String]) -> KvFuture<Vec<(String, Option<Vec<u8>>)>> {
        match self.semantics {
            Semantics::Spin => {
                // `key IN rarray(…)` probes the index once per distinct key, in key order, and
                // yields only the rows it finds.
                let keys: BTreeSet<String> = keys.iter().cloned().collect();
                self.read(move |c, l| {
                    let mut found = Vec::new();
                    for k in &keys {
                        if let Some(v) = read(c, l, k)? {
                            found.push((k.clone(), Some(v)));
                        }
                    }
                    Ok(found)
                })
            }
            Semantics::Interface => {
                let keys = keys.to_vec();
                self.read(move |c, l| {
                    keys.iter()
                        .map(|k| Ok((k.clone(), read(c, l, k)?)))
                        .collect()
                })
            }
        }
    }

    fn set_many(&self, entries: &[(String, Vec<u8>)]) -> KvFuture<()> {
        let entries = entries.to_vec();
        self.call(move |c, l| entries.iter().try_for_each(|(k, v)| write(c, l, k, v)))
    }

    fn delete_many(&self, keys: &[String]) -> KvFuture<()> {
        let keys = keys.to_vec();
        self.call(move |c, l| keys.iter().try_for_each(|k| remove(c, l, k)))
    }

    fn increment(&self, key: &str, delta: i64) -> KvFuture<i64> {
        let key = key.to_string();
        let done = self.call(move |c, l| {
            let current = match read(c, l, &key)? {
                None => 0,
                Some(bytes) => match <[u8; 8]>::try_from(bytes.as_slice()) {
                    Ok(b) => i64::from_le_bytes(b),
                    // Spin's host panics here (`expect("incorrect length")`); an error is kinder.
                    Err(_) => {
                        return Ok(Err(format!(
                            "cannot increment {key:?}: its value is {} bytes, not an 8-byte integer",
                            bytes.len()
                        )));
                    }
                },
            };
            let next = current.wrapping_add(delta);
            write(c, l, &key, &next.to_le_bytes())?;
            Ok(Ok(next))
        });
        Box::pin(async move { done.await? })
    }

    fn new_cas(&self, key: &str) -> KvFuture<Box<dyn KvCas>> {
        let cas = SqliteCas {
            store: self.clone(),
            key: key.into(),
            seen: Arc::new(Mutex::new(Seen::Unread)),
        };
        Box::pin(std::future::ready(Ok(Box::new(cas) as Box<dyn KvCas>)))
    }
}

impl KvCas for SqliteCas {
    fn current(&self) -> KvFuture<Option<Vec<u8>>> {
        let (key, seen) = (self.key.clone(), self.seen.clone());
        self.store.read(move |c, l| {
            let value = read(c, l, &key)?;
            *lock(&seen) = Seen::Read(value.clone());
            Ok(value)
        })
    }

    fn swap(self: Box<Self>, value: Vec<u8>) -> KvFuture<Swapped> {
        let Self { store, key, seen } = *self;
        let semantics = store.semantics;
        store.call(move |c, l| {
            // What `current()` kept by the time this call runs, as Spin reads it at the swap.
            let seen = lock(&seen).clone();
            let changed = match (seen, semantics) {
                (Seen::Read(Some(old)), _) => write_over(c, l, &key, &old, &value)?,
                (Seen::Read(None), Semantics::Interface) => create(c, l, &key, &value)?,
                // Spin: nothing kept, so an upsert, which always changes its one row.
                (Seen::Read(None) | Seen::Unread, _) => {
                    write(c, l, &key, &value)?;
                    1
                }
            };
            Ok(if changed == 1 {
                Swapped::Done
            } else {
                Swapped::Failed {
                    wrote: false,
                    reason: "failed to update 1 row".into(),
                }
            })
        })
    }
}

/// Spin's table.
const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS spin_key_value (
    store TEXT NOT NULL,
    key   TEXT NOT NULL,
    value BLOB NOT NULL,
    PRIMARY KEY (store, key)
);";

/// Opens (creating if needed) a SQLite key-value file with Spin's schema.
fn open_sqlite(path: &Path) -> anyhow::Result<Arc<Writer>> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let conn = Connection::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // Checkpoints (copying the write-ahead log into the database, with an fsync) happen on a
    // connection of their own, so the one that serves the components rarely stalls on them; it
    // checkpoints itself only if the log still grows past 16000 pages (64 MiB; a write rate the
    // background checkpoints cannot keep up with), so the log cannot grow without bound. At 4000
    // pages, saturation runs had it checkpointing inside its commits. Its page cache may
    // hold 64 MiB (SQLite's default is 2): elicitations touch keys all over the table, and with the
    // default under load most lookups went to the file.
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA wal_autocheckpoint = 16000;
         PRAGMA cache_size = -65536;",
    )?;
    conn.execute_batch(SCHEMA)?;
    let writer = Writer::new(conn)?;
    let checkpoints = Connection::open(path)
        .with_context(|| format!("cannot open {} for checkpoints", path.display()))?;
    checkpoints.busy_timeout(BUSY_TIMEOUT)?;
    let serving = Arc::downgrade(&writer);
    std::thread::Builder::new()
        .name("sqlite-checkpoint".into())
        .spawn(move || {
            // Until the serving connection is gone.
            while serving.strong_count() > 0 {
                std::thread::sleep(CHECKPOINT_EVERY);
                let _ = checkpoints.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
            }
        })
        .context("cannot start the checkpoint thread")?;
    Ok(writer)
}

impl Writer {
    /// Serves `conn`, with a writer thread for the groups.
    fn new(conn: Connection) -> anyhow::Result<Arc<Self>> {
        let writer = Arc::new(Self {
            conn: Mutex::new(conn),
            queue: Mutex::new(Queue::default()),
            wake: Condvar::new(),
            transactions: AtomicU64::new(0),
        });
        let weak = Arc::downgrade(&writer);
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || writer_thread(&weak))
            .context("cannot start the key-value writer thread")?;
        Ok(writer)
    }
}

/// How long a connection waits for a lock another process holds.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// How often the write-ahead log is checkpointed.
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(200);

/// `runtime-config.toml`, the parts about key-value stores.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeConfig {
    /// `[key_value_store.<label>]` tables.
    #[serde(default)]
    pub key_value_store: BTreeMap<String, StoreConfig>,
}

/// One `[key_value_store.<label>]`.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum StoreConfig {
    /// SQLite file (Spin's default kind).
    Spin {
        /// File path, relative to the runtime config file; default `<state dir>/sqlite_key_value.db`.
        path: Option<PathBuf>,
    },
    /// Redis server; the label is not part of the keys, so every label on one server (and
    /// database) shares one keyspace, as in Spin.
    Redis {
        /// Connection URL: `redis://host:port[/db]` (also `redis+unix:///path`).
        url: String,
    },
}

impl RuntimeConfig {
    /// Reads `path`.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read runtime config {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("invalid runtime config {}", path.display()))
    }
}

/// Every store label the application may open, with its backend.
#[derive(Clone, Default)]
pub struct Stores {
    by_label: BTreeMap<String, Arc<dyn KvBackend>>,
    semantics: Semantics,
}

impl Stores {
    /// Builds the stores: `default` plus every label the runtime config defines, all with
    /// `semantics`. `config_dir` resolves relative paths of the runtime config. No Redis server
    /// is contacted yet: each Redis label connects when a component first opens it.
    pub fn open(
        config: &RuntimeConfig,
        config_dir: &Path,
        state_dir: &Path,
        semantics: Semantics,
    ) -> anyhow::Result<(Self, Vec<String>)> {
        let mut by_label: BTreeMap<String, Arc<dyn KvBackend>> = BTreeMap::new();
        let mut files: BTreeMap<PathBuf, Arc<Writer>> = BTreeMap::new();
        let mut notes = Vec::new();
        let default_path = state_dir.join("sqlite_key_value.db");
        let mut labels: Vec<(&str, Option<&StoreConfig>)> = vec![("default", None)];
        labels.extend(
            config
                .key_value_store
                .iter()
                .map(|(l, c)| (l.as_str(), Some(c))),
        );
        for (label, cfg) in labels {
            let path = match cfg {
                None if config.key_value_store.contains_key("default") => continue,
                None | Some(StoreConfig::Spin { path: None }) => default_path.clone(),
                Some(StoreConfig::Spin { path: Some(p) }) => config_dir.join(p),
                Some(StoreConfig::Redis { url }) => {
                    let redis = redis_store::RedisKv::new(url, semantics)
                        .with_context(|| format!("key-value store {label:?}"))?;
                    notes.push(format!(
                        "Storing {label} key-value data to {}.",
                        redis.summary()
                    ));
                    by_label.insert(label.to_string(), Arc::new(redis));
                    continue;
                }
            };
            let writer = match files.get(&path) {
                Some(w) => w.clone(),
                None => {
                    let w = open_sqlite(&path)?;
                    files.insert(path.clone(), w.clone());
                    w
                }
            };
            notes.push(format!(
                "Storing {label} key-value data to {:?}.",
                path.display().to_string()
            ));
            by_label.insert(
                label.to_string(),
                Arc::new(SqliteKv {
                    writer,
                    label: label.into(),
                    semantics,
                }),
            );
        }
        Ok((
            Self {
                by_label,
                semantics,
            },
            notes,
        ))
    }

    /// The backend for `label`, if the application has one.
    pub fn get(&self, label: &str) -> Option<Arc<dyn KvBackend>> {
        self.by_label.get(label).cloned()
    }

    /// Whether `label` is defined.
    pub fn contains(&self, label: &str) -> bool {
        self.by_label.contains_key(label)
    }

    /// The semantics the stores were opened with (the host follows them too).
    pub fn semantics(&self) -> Semantics {
        self.semantics
    }

    /// The same stores, each counting its operations into `stats`.
    pub fn counted(&self, stats: &Arc<KvStats>) -> Self {
        let by_label = self
            .by_label
            .iter()
            .map(|(label, b)| {
                let counted: Arc<dyn KvBackend> = Arc::new(Counted::new(b.clone(), stats.clone()));
                (label.clone(), counted)
            })
            .collect();
        Self {
            by_label,
            semantics: self.semantics,
        }
    }
}

/// A store in a directory of its own that is removed when the returned guard is dropped, for tests.
#[cfg(test)]
pub fn scratch() -> (tests::Dir, Arc<dyn KvBackend>) {
    scratch_with(Semantics::Spin)
}

/// [`scratch`] with the given semantics.
#[cfg(test)]
pub fn scratch_with(semantics: Semantics) -> (tests::Dir, Arc<dyn KvBackend>) {
    let dir = tests::Dir::new();
    let (stores, _) =
        Stores::open(&RuntimeConfig::default(), dir.path(), dir.path(), semantics).unwrap();
    let kv = stores.get("default").unwrap();
    (dir, kv)
}

#[cfg(test)]
mod tests {
    use futures::FutureExt;

    use super::*;

    fn now<T>(call: KvFuture<T>) -> KvResult<T> {
        futures::executor::block_on(call)
    }

    fn store() -> (Dir, Arc<dyn KvBackend>) {
        scratch()
    }

    /// A directory of its own, removed on drop.
    pub struct Dir(PathBuf);

    impl Dir {
        pub fn new() -> Self {
            static N: AtomicU64 = AtomicU64::new(0);
            let p = std::env::temp_dir().join(format!(
                "spin-local-kv-{}-{}",
                std::process::id(),
                N.fetch_add(1, Relaxed)
            ));
            let _ = std::fs::remove_dir_all(&p);
            std::fs::create_dir_all(&p).unwrap();
            Self(p)
        }

        pub fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn pairs(list: &[(&str, Option<&[u8]>)]) -> Vec<(String, Option<Vec<u8>>)> {
        list.iter()
            .map(|(k, v)| ((*k).to_string(), v.map(<[u8]>::to_vec)))
            .collect()
    }

    #[test]
    fn set_get_delete_keys() {
        let (_d, kv) = store();
        now(kv.set("b", b"2")).unwrap();
        now(kv.set("a", b"1")).unwrap();
        now(kv.set("a", b"3")).unwrap();
        assert_eq!(now(kv.get("a")).unwrap(), Some(b"3".to_vec()));
        assert_eq!(now(kv.keys()).unwrap(), ["a", "b"]);
        assert_eq!(now(kv.scan_keys()).unwrap(), ["a", "b"]);
        now(kv.delete("a")).unwrap();
        assert!(!now(kv.exists("a")).unwrap());
        assert!(now(kv.exists("b")).unwrap());
        now(kv.set_many(&[("c".into(), b"4".to_vec()), ("d".into(), b"5".to_vec())])).unwrap();
        now(kv.delete_many(&["b".into(), "c".into(), "nope".into()])).unwrap();
        assert_eq!(now(kv.keys()).unwrap(), ["d"]);
    }

    /// Spin's SQLite `get_many` is `SELECT key, value … WHERE key IN rarray(…)`: only the keys it
    /// finds, each once, in key order.
    #[test]
    fn sqlite_get_many_leaves_missing_keys_out_like_spin() {
        let (_d, kv) = store();
        now(kv.set("b", b"2")).unwrap();
        now(kv.set("a", b"1")).unwrap();
        let keys = ["b", "missing", "a", "b"].map(String::from);
        assert_eq!(
            now(kv.get_many(&keys)).unwrap(),
            pairs(&[("a", Some(b"1")), ("b", Some(b"2"))])
        );
        assert_eq!(now(kv.get_many(&["missing".into()])).unwrap(), []);
    }

    /// With `--kv-semantics interface`, `get_many` answers every key asked, in order, with `None`
    /// for the missing ones.
    #[test]
    fn sqlite_get_many_in_interface_mode_answers_every_key_in_order() {
        let (_d, kv) = scratch_with(Semantics::Interface);
        now(kv.set("b", b"2")).unwrap();
        now(kv.set("a", b"1")).unwrap();
        let keys = ["b", "missing", "a", "b"].map(String::from);
        assert_eq!(
            now(kv.get_many(&keys)).unwrap(),
            pairs(&[
                ("b", Some(b"2")),
                ("missing", None),
                ("a", Some(b"1")),
                ("b", Some(b"2")),
            ])
        );
    }

    /// Spin's SQLite `increment` reads, adds and writes back 8 little-endian bytes; a missing key
    /// counts as 0.
    #[test]
    fn sqlite_increment_is_eight_le_bytes_like_spin() {
        let (_d, kv) = store();
        assert_eq!(now(kv.increment("n", 1)).unwrap(), 1);
        assert_eq!(now(kv.increment("n", 5)).unwrap(), 6);
        assert_eq!(now(kv.increment("n", -10)).unwrap(), -4);
        assert_eq!(
            now(kv.get("n")).unwrap(),
            Some((-4i64).to_le_bytes().to_vec())
        );
    }

    /// Spin's host panics (`expect("incorrect length")`) when the value is not 8 bytes; here the
    /// call fails and the value stays.
    #[test]
    fn sqlite_increment_of_a_non_counter_is_an_error_where_spin_panics() {
        let (_d, kv) = store();
        now(kv.set("s", b"abc")).unwrap();
        assert!(
            now(kv.increment("s", 1))
                .unwrap_err()
                .contains("not an 8-byte integer")
        );
        assert_eq!(now(kv.get("s")).unwrap(), Some(b"abc".to_vec()));
    }

    /// Spin's SQLite `cas.new` reads nothing: it is answered while the store is busy, with nothing
    /// queued.
    #[test]
    fn sqlite_cas_new_reads_nothing_like_spin() {
        let held = Held::new();
        let cas = held.0.new_cas("k").now_or_never();
        assert!(matches!(cas, Some(Ok(_))), "answered without the store");
        assert!(lock(&held.0.writer.queue).jobs.is_empty());
    }

    #[test]
    fn increments_from_many_threads_are_not_lost() {
        let (_d, kv) = store();
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let kv = kv.clone();
                std::thread::spawn(move || {
                    (0..50)
                        .map(|_| now(kv.increment("c", 1)).unwrap())
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut all: Vec<i64> = threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect();
        all.sort_unstable();
        assert_eq!(all, (1..=400).collect::<Vec<_>>());
    }

    /// A store whose writer is held busy: writes made now queue, and [`Held::release`] hands them
    /// all to the writer thread as one group.
    struct Held(SqliteKv);

    impl Held {
        fn new() -> Self {
            let conn = Connection::open_in_memory().unwrap();
            conn.execute_batch(SCHEMA).unwrap();
            let kv = SqliteKv {
                writer: Writer::new(conn).unwrap(),
                label: "default".into(),
                semantics: Semantics::Spin,
            };
            lock(&kv.writer.queue).busy = true;
            Self(kv)
        }

        fn release(&self) {
            let writer = &self.0.writer;
            writer.hand_over(&mut lock(&writer.queue));
        }
    }

    #[test]
    fn calls_made_while_busy_commit_as_one_group_in_their_order() {
        let held = Held::new();
        let kv = &held.0;
        let before = kv.transactions();
        let set = kv.set("k", b"a");
        // Two cas on `k` read `a`; the first swap wins, the second finds `b` and fails.
        let (first, second) = (now(kv.new_cas("k")).unwrap(), now(kv.new_cas("k")).unwrap());
        let (read_first, read_second) = (first.current(), second.current());
        let swapped = first.swap(b"b".to_vec());
        let stale = second.swap(b"c".to_vec());
        let counts: Vec<_> = (0..100).map(|_| kv.increment("n", 1)).collect();
        let read = kv.get_many(&["k".into(), "n".into()]);
        held.release();
        now(set).unwrap();
        assert_eq!(now(read_first).unwrap(), Some(b"a".to_vec()));
        assert_eq!(now(read_second).unwrap(), Some(b"a".to_vec()));
        assert_eq!(now(swapped).unwrap(), Swapped::Done);
        assert!(matches!(
            now(stale).unwrap(),
            Swapped::Failed { wrote: false, .. }
        ));
        let counts: Vec<i64> = counts.into_iter().map(|c| now(c).unwrap()).collect();
        assert_eq!(counts, (1..=100).collect::<Vec<_>>());
        assert_eq!(
            now(read).unwrap(),
            pairs(&[("k", Some(b"b")), ("n", Some(&100i64.to_le_bytes()))])
        );
        assert_eq!(
            kv.transactions() - before,
            1,
            "one transaction for the whole group"
        );
        // Idle again: the next call runs at once on this thread; a read alone takes no transaction.
        assert_eq!(now(kv.get("k")).unwrap(), Some(b"b".to_vec()));
        now(kv.set("k", b"d")).unwrap();
        assert_eq!(kv.transactions() - before, 2);
    }

    #[test]
    fn a_failing_call_leaves_the_rest_of_its_group_intact() {
        let held = Held::new();
        let kv = &held.0;
        let before = kv.transactions();
        let first = kv.set("a", b"1");
        let bad_value = kv.set("s", b"text");
        let bad_increment = kv.increment("s", 1);
        let broken = kv.call(|c, _| c.execute("INSERT INTO no_such_table VALUES (1)", []));
        let last = kv.set("b", b"2");
        held.release();
        now(first).unwrap();
        now(bad_value).unwrap();
        assert!(
            now(bad_increment)
                .unwrap_err()
                .contains("not an 8-byte integer")
        );
        assert!(now(broken).unwrap_err().contains("no_such_table"));
        now(last).unwrap();
        assert_eq!(now(kv.get("a")).unwrap(), Some(b"1".to_vec()));
        assert_eq!(now(kv.get("s")).unwrap(), Some(b"text".to_vec()));
        assert_eq!(now(kv.get("b")).unwrap(), Some(b"2".to_vec()));
        // The group rolled back, then each of its five calls ran alone.
        assert_eq!(kv.transactions() - before, 1 + 5);
    }

    #[test]
    fn a_panicking_call_does_not_stall_the_store() {
        let held = Held::new();
        let kv = &held.0;
        let panics = kv.call(|_, _| -> rusqlite::Result<()> { panic!("a bug in a call") });
        held.release();
        assert!(now(panics).unwrap_err().contains("stopped"));
        // The writer thread lived on, and the store serves the next calls.
        now(kv.set("k", b"1")).unwrap();
        assert_eq!(now(kv.get("k")).unwrap(), Some(b"1".to_vec()));
    }
}
