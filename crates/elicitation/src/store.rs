//! The storage the domain needs, and what it may assume of it.
//!
//! The components run on Spin's key-value stores, whose real backends are weaker than the
//! interfaces they implement (`../shared/notes/spin-kv-backends.md`): on SQLite a compare-and-swap
//! over a key that does not exist is a plain upsert; on Redis `swap` reports a failure every time,
//! also when its write landed, and the batch `get_many` does not work at all; counters are 8
//! little-endian bytes on one and ASCII decimal on the other. So [`Store`] offers only what is
//! correct on both, and the domain keeps to these rules:
//!
//! - a counter is touched only by [`Store::increment`], and read only through it (`delta` 0),
//!   never by decoding its bytes; nothing else is ever written to a counter except [`SEAL`],
//!   which both backends can still increment (see there);
//! - a compare-and-swap is only ever made over a value that was read ([`Store::cas_read`] returned
//!   `Some`): a key is created first (a record under a fresh id with [`Store::set`], a claim
//!   counter with `increment(k, 0)`), never by a swap; and nothing is written to the key between
//!   the read and the swap, not even an increment by zero (Redis's `WATCH` counts it as a change);
//!   whether a claim read still holds zero is told by comparing it with [`zero`];
//! - a swap reported [`Swapped::Unsure`] is settled by reading the key back ([`swap`]): every value
//!   the domain swaps in is unique to its writer, so finding it there means the swap won;
//! - several keys are read with concurrent [`Store::get`]s ([`get_all`]), never with a batch read.
//!
//! [`MemoryStore`] is the plain in-memory store for tests; [`SpinSqlite`] and [`SpinRedis`] model
//! what Spin's two backends really do, defects included, and flag any call the rules above forbid.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::future::Future;

/// A storage failure (the platform's message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreError(pub String);

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Result of a storage call.
pub type StoreResult<T> = Result<T, StoreError>;

/// What a backend said of a swap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Swapped {
    /// The new value is stored.
    Done,
    /// The backend reported a failure, which may not be true (Spin's Redis backend reports one
    /// every time): read the key to know.
    Unsure,
}

/// What the domain writes into a claim counter to seal it (see [`log`](crate::log)): eight ASCII
/// digits. Both backends can still increment it — Spin's SQLite reads any 8 bytes as a
/// little-endian integer, Redis parses the digits — so a writer that increments the claim after
/// the seal gets a number far from the small ones a commit gives, and no call ever panics or
/// fails on it. Decoded either way it is above [`COMMITTED_MAX`].
pub const SEAL: &[u8] = b"99999999";

/// Counter values up to this are commits (each committer adds one); above it (or below zero) a
/// seal. `increment(claim, 0)` tells them apart without decoding any bytes.
pub const COMMITTED_MAX: i64 = 1_000_000;

/// A key-value store with the atomics Spin offers.
pub trait Store {
    /// A compare-and-swap in progress (the value it read).
    type Cas;
    /// The value at `key`.
    fn get(&self, key: &str) -> impl Future<Output = StoreResult<Option<Vec<u8>>>>;
    /// Upserts `key`.
    fn set(&self, key: &str, value: &[u8]) -> impl Future<Output = StoreResult<()>>;
    /// Removes these keys (absent ones are fine).
    fn delete_many(&self, keys: &[String]) -> impl Future<Output = StoreResult<()>>;
    /// Atomically adds `delta` to the counter at `key` (absent = 0) and returns the new value.
    fn increment(&self, key: &str, delta: i64) -> impl Future<Output = StoreResult<i64>>;
    /// Starts a compare-and-swap on `key`: reads its value now.
    fn cas_read(
        &self,
        key: &str,
    ) -> impl Future<Output = StoreResult<(Self::Cas, Option<Vec<u8>>)>>;
    /// Writes `new` if the key still holds what [`cas_read`](Self::cas_read) read. Only call it
    /// after a read that found the key.
    fn cas_swap(&self, cas: Self::Cas, new: &[u8]) -> impl Future<Output = StoreResult<Swapped>>;
}

/// The bytes of a counter at zero on this store: those of a counter only ever incremented by zero
/// ([`keys::ZERO`](crate::keys::ZERO)). A counter's bytes are a function of its value on each
/// backend, so a value read from another counter equals these exactly when it is zero — which
/// says nothing about how other values are encoded, and decodes nothing.
pub async fn zero<S: Store>(store: &S) -> StoreResult<Vec<u8>> {
    if let Some(z) = store.get(crate::keys::ZERO).await? {
        return Ok(z);
    }
    store.increment(crate::keys::ZERO, 0).await?;
    store
        .get(crate::keys::ZERO)
        .await?
        .ok_or_else(|| StoreError("the zero counter vanished".into()))
}

/// Reads several keys with concurrent gets, in order.
pub async fn get_all<S: Store>(store: &S, keys: &[String]) -> StoreResult<Vec<Option<Vec<u8>>>> {
    futures::future::join_all(keys.iter().map(|k| store.get(k)))
        .await
        .into_iter()
        .collect()
}

/// Swaps `new` (a value unique to this writer) over the value `cas` read, and says whether it is
/// there now: a reported failure is checked by reading the key back.
pub async fn swap<S: Store>(store: &S, key: &str, cas: S::Cas, new: &[u8]) -> StoreResult<bool> {
    if store.cas_swap(cas, new).await? == Swapped::Done {
        return Ok(true);
    }
    Ok(store.get(key).await?.as_deref() == Some(new))
}

/// Compare-and-swap from a value the caller has already read (`expected`): reads again, and swaps
/// only if the key still holds `expected`. False when it did not (or the swap lost).
pub async fn replace<S: Store>(
    store: &S,
    key: &str,
    expected: &[u8],
    new: &[u8],
) -> StoreResult<bool> {
    let (cas, current) = store.cas_read(key).await?;
    if current.as_deref() != Some(expected) {
        return Ok(false);
    }
    swap(store, key, cas, new).await
}

/// A read-then-swap in progress on an in-memory model.
#[derive(Debug)]
pub struct MemoryCas {
    key: String,
    seen: Option<Vec<u8>>,
    /// The key's write count at the read (Redis's `WATCH`).
    version: u64,
}

/// The bytes of an in-memory map, shared by the models below, with a write count per key.
#[derive(Debug, Default)]
struct Map {
    values: RefCell<BTreeMap<String, Vec<u8>>>,
    versions: RefCell<BTreeMap<String, u64>>,
}

impl Map {
    fn get(&self, key: &str) -> Option<Vec<u8>> {
        self.values.borrow().get(key).cloned()
    }
    fn touch(&self, key: &str) {
        *self
            .versions
            .borrow_mut()
            .entry(key.to_string())
            .or_default() += 1;
    }
    fn version(&self, key: &str) -> u64 {
        self.versions.borrow().get(key).copied().unwrap_or(0)
    }
    fn set(&self, key: &str, value: &[u8]) {
        self.values
            .borrow_mut()
            .insert(key.to_string(), value.to_vec());
        self.touch(key);
    }
    fn delete_many(&self, keys: &[String]) {
        for k in keys {
            self.values.borrow_mut().remove(k);
            self.touch(k);
        }
    }
    fn keys(&self) -> Vec<String> {
        self.values.borrow().keys().cloned().collect()
    }
    fn read(&self, key: &str) -> (MemoryCas, Option<Vec<u8>>) {
        let seen = self.get(key);
        (
            MemoryCas {
                key: key.to_string(),
                seen: seen.clone(),
                version: self.version(key),
            },
            seen,
        )
    }
}

/// The calls every in-memory model makes the same way: plain reads and writes, and the read of a
/// compare-and-swap (the models differ in their counters and their swaps).
macro_rules! plain_calls {
    () => {
        async fn get(&self, key: &str) -> StoreResult<Option<Vec<u8>>> {
            Ok(self.map.get(key))
        }

        async fn set(&self, key: &str, value: &[u8]) -> StoreResult<()> {
            self.map.set(key, value);
            Ok(())
        }

        async fn delete_many(&self, keys: &[String]) -> StoreResult<()> {
            self.map.delete_many(keys);
            Ok(())
        }

        async fn cas_read(&self, key: &str) -> StoreResult<(MemoryCas, Option<Vec<u8>>)> {
            Ok(self.map.read(key))
        }
    };
}

/// An in-memory store with the semantics the interfaces promise (an atomic create-if-absent
/// swap that reports the truth; counters as 8 little-endian bytes), for tests and native use.
#[derive(Debug, Default)]
pub struct MemoryStore {
    map: Map,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every key, sorted (for tests).
    pub fn keys(&self) -> Vec<String> {
        self.map.keys()
    }
}

fn le_counter(key: &str, bytes: Option<&[u8]>) -> StoreResult<i64> {
    match bytes {
        None => Ok(0),
        Some(b) => <[u8; 8]>::try_from(b)
            .map(i64::from_le_bytes)
            .map_err(|_| StoreError(format!("{key:?} is not a counter"))),
    }
}

impl Store for MemoryStore {
    type Cas = MemoryCas;

    plain_calls!();

    async fn increment(&self, key: &str, delta: i64) -> StoreResult<i64> {
        let next = le_counter(key, self.map.get(key).as_deref())?.wrapping_add(delta);
        self.map.set(key, &next.to_le_bytes());
        Ok(next)
    }

    async fn cas_swap(&self, cas: MemoryCas, new: &[u8]) -> StoreResult<Swapped> {
        if self.map.get(&cas.key) != cas.seen {
            return Ok(Swapped::Unsure);
        }
        self.map.set(&cas.key, new);
        Ok(Swapped::Done)
    }
}

/// A call the domain's rules forbid, as a model saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Violation {
    /// A swap over a key its read found absent (Spin's SQLite would upsert without a check).
    SwapFromMissing(String),
    /// An increment of a value that is not a counter (Spin's SQLite host panics; Redis errors).
    IncrementOfNonCounter(String),
}

/// What Spin's SQLite backend (`key-value-spin`) really does: counters are 8 little-endian bytes
/// (incrementing anything else panics Spin's host: here it is an error and a [`Violation`]); a
/// swap over a value the read found is atomic and reports the truth, but a swap whose read found
/// nothing is an unconditional upsert that reports success.
#[derive(Debug, Default)]
pub struct SpinSqlite {
    map: Map,
    violations: RefCell<Vec<Violation>>,
}

impl SpinSqlite {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// The forbidden calls made so far.
    pub fn violations(&self) -> Vec<Violation> {
        self.violations.borrow().clone()
    }

    /// Every key, sorted.
    pub fn keys(&self) -> Vec<String> {
        self.map.keys()
    }
}

impl Store for SpinSqlite {
    type Cas = MemoryCas;

    plain_calls!();

    async fn increment(&self, key: &str, delta: i64) -> StoreResult<i64> {
        let current = le_counter(key, self.map.get(key).as_deref()).inspect_err(|_| {
            self.violations
                .borrow_mut()
                .push(Violation::IncrementOfNonCounter(key.to_string()));
        })?;
        let next = current.wrapping_add(delta);
        self.map.set(key, &next.to_le_bytes());
        Ok(next)
    }

    async fn cas_swap(&self, cas: MemoryCas, new: &[u8]) -> StoreResult<Swapped> {
        match &cas.seen {
            None => {
                self.violations
                    .borrow_mut()
                    .push(Violation::SwapFromMissing(cas.key.clone()));
                self.map.set(&cas.key, new);
                Ok(Swapped::Done)
            }
            Some(old) if self.map.get(&cas.key).as_ref() == Some(old) => {
                self.map.set(&cas.key, new);
                Ok(Swapped::Done)
            }
            Some(_) => Ok(Swapped::Unsure),
        }
    }
}

/// What Spin's Redis backend (`key-value-redis`) really does: counters are ASCII decimal
/// (`INCRBY`; incrementing a non-number is an error, and a [`Violation`]); a swap is
/// `WATCH`-guarded (applied only if nothing wrote the key since the read — an increment by zero
/// counts — and created only if still absent) but always reports a failure.
#[derive(Debug, Default)]
pub struct SpinRedis {
    map: Map,
    violations: RefCell<Vec<Violation>>,
    swaps_landed: Cell<u64>,
}

impl SpinRedis {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// The forbidden calls made so far.
    pub fn violations(&self) -> Vec<Violation> {
        self.violations.borrow().clone()
    }

    /// Swaps whose write landed (each reported as a failure).
    pub fn swaps_landed(&self) -> u64 {
        self.swaps_landed.get()
    }

    /// Every key, sorted.
    pub fn keys(&self) -> Vec<String> {
        self.map.keys()
    }
}

impl Store for SpinRedis {
    type Cas = MemoryCas;

    plain_calls!();

    async fn increment(&self, key: &str, delta: i64) -> StoreResult<i64> {
        let current = match self.map.get(key) {
            None => 0,
            Some(v) => std::str::from_utf8(&v)
                .ok()
                .and_then(|s| s.parse::<i64>().ok())
                .ok_or_else(|| {
                    self.violations
                        .borrow_mut()
                        .push(Violation::IncrementOfNonCounter(key.to_string()));
                    StoreError("ERR value is not an integer or out of range".into())
                })?,
        };
        let next = current
            .checked_add(delta)
            .ok_or_else(|| StoreError("ERR increment or decrement would overflow".into()))?;
        self.map.set(key, next.to_string().as_bytes());
        Ok(next)
    }

    async fn cas_swap(&self, cas: MemoryCas, new: &[u8]) -> StoreResult<Swapped> {
        if cas.seen.is_none() {
            // Atomic on Redis, but the domain must not rely on it (SQLite would upsert).
            self.violations
                .borrow_mut()
                .push(Violation::SwapFromMissing(cas.key.clone()));
        }
        // WATCH: any write to the key since the read aborts the transaction, even one that left
        // the same bytes (an increment by zero).
        if self.map.version(&cas.key) == cas.version {
            self.map.set(&cas.key, new);
            self.swaps_landed.set(self.swaps_landed.get() + 1);
        }
        Ok(Swapped::Unsure)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::executor::block_on;

    #[test]
    fn the_seal_is_a_counter_to_both_backends_and_far_from_a_commit() {
        block_on(async {
            let sqlite = SpinSqlite::new();
            let redis = SpinRedis::new();
            sqlite.set("c", SEAL).await.unwrap();
            redis.set("c", SEAL).await.unwrap();
            for v in [
                sqlite.increment("c", 0).await.unwrap(),
                sqlite.increment("c", 1).await.unwrap(),
                redis.increment("c", 0).await.unwrap(),
                redis.increment("c", 1).await.unwrap(),
            ] {
                assert!(!(0..=COMMITTED_MAX).contains(&v), "{v}");
            }
            // Increment by zero leaves the seal's bytes as they were on both.
            sqlite.set("d", SEAL).await.unwrap();
            sqlite.increment("d", 0).await.unwrap();
            assert_eq!(sqlite.get("d").await.unwrap().as_deref(), Some(SEAL));
            redis.set("d", SEAL).await.unwrap();
            redis.increment("d", 0).await.unwrap();
            assert_eq!(redis.get("d").await.unwrap().as_deref(), Some(SEAL));
            assert!(sqlite.violations().is_empty() && redis.violations().is_empty());
        });
    }

    #[test]
    fn the_models_reproduce_each_backends_defects() {
        block_on(async {
            // SQLite: a swap whose read found nothing overwrites a racing creator.
            let sqlite = SpinSqlite::new();
            let (cas, seen) = sqlite.cas_read("k").await.unwrap();
            assert_eq!(seen, None);
            sqlite.set("k", b"racer").await.unwrap();
            assert_eq!(sqlite.cas_swap(cas, b"mine").await.unwrap(), Swapped::Done);
            assert_eq!(
                sqlite.get("k").await.unwrap().as_deref(),
                Some(&b"mine"[..])
            );
            assert_eq!(
                sqlite.violations(),
                [Violation::SwapFromMissing("k".into())]
            );
            // Redis: a swap that landed reports a failure; `swap` reads it back.
            let redis = SpinRedis::new();
            redis.set("k", b"old").await.unwrap();
            let (cas, _) = redis.cas_read("k").await.unwrap();
            assert!(swap(&redis, "k", cas, b"new").await.unwrap());
            assert_eq!(redis.swaps_landed(), 1);
            let (cas, _) = redis.cas_read("k").await.unwrap();
            redis.set("k", b"other").await.unwrap();
            assert!(!swap(&redis, "k", cas, b"late").await.unwrap());
            // Counters: 8 LE bytes on one, decimal on the other; neither increments a document.
            assert_eq!(redis.increment("n", 42).await.unwrap(), 42);
            assert_eq!(redis.get("n").await.unwrap().as_deref(), Some(&b"42"[..]));
            assert!(redis.increment("k", 1).await.is_err());
            assert!(sqlite.increment("k", 1).await.is_err());
            assert_eq!(
                sqlite.get("n").await.unwrap(),
                None,
                "the stores are separate"
            );
        });
    }
}
