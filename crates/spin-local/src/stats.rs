//! Counters the host keeps about its own work, served as JSON at `/.well-known/spin/stats` (the
//! host's reserved path space, like `health` and `info`): key-value operations by kind and keys
//! touched, and per component the requests routed to it and its live and started instances.
//! The benchmark samples them before and after a run to report store load and instance sharing.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::kv::{KvBackend, KvFuture};

/// Key-value counters, shared by every store.
#[derive(Default)]
pub struct KvStats {
    /// Calls of any operation.
    calls: AtomicU64,
    /// Keys read (`get`, `exists`, each key of `get_many`, the read of a compare-and-swap).
    reads: AtomicU64,
    /// Keys written or removed (`set`, `delete`, `increment`, each key of a batch, a successful swap).
    writes: AtomicU64,
    /// Compare-and-swap calls that found the value changed.
    swap_conflicts: AtomicU64,
    /// Calls that returned an error.
    errors: AtomicU64,
}

/// Per-component counters.
#[derive(Default)]
pub struct ComponentStats {
    requests: AtomicU64,
    instances_live: AtomicU64,
    instances_started: AtomicU64,
}

impl ComponentStats {
    /// A request was routed to the component.
    pub fn request(&self) {
        self.requests.fetch_add(1, Relaxed);
    }

    /// An instance was created.
    pub fn instance_started(&self) {
        self.instances_started.fetch_add(1, Relaxed);
        self.instances_live.fetch_add(1, Relaxed);
    }

    /// An instance was dropped.
    pub fn instance_ended(&self) {
        self.instances_live.fetch_sub(1, Relaxed);
    }
}

/// Everything the stats endpoint reports.
#[derive(Default)]
pub struct Stats {
    /// Shared by all stores.
    pub kv: Arc<KvStats>,
    /// By component id.
    pub components: BTreeMap<String, Arc<ComponentStats>>,
}

impl Stats {
    /// The JSON document of `/.well-known/spin/stats`.
    pub fn to_json(&self) -> serde_json::Value {
        let kv = &self.kv;
        let components: serde_json::Map<String, serde_json::Value> = self
            .components
            .iter()
            .map(|(id, c)| {
                (
                    id.clone(),
                    serde_json::json!({
                        "requests": c.requests.load(Relaxed),
                        "instancesLive": c.instances_live.load(Relaxed),
                        "instancesStarted": c.instances_started.load(Relaxed),
                    }),
                )
            })
            .collect();
        serde_json::json!({
            "keyValue": {
                "calls": kv.calls.load(Relaxed),
                "keysRead": kv.reads.load(Relaxed),
                "keysWritten": kv.writes.load(Relaxed),
                "swapConflicts": kv.swap_conflicts.load(Relaxed),
                "errors": kv.errors.load(Relaxed),
            },
            "components": components,
        })
    }
}

/// A store that counts what passes through it.
pub struct Counted {
    inner: Arc<dyn KvBackend>,
    stats: Arc<KvStats>,
}

impl Counted {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn KvBackend>, stats: Arc<KvStats>) -> Self {
        Self { inner, stats }
    }

    /// Counts `call` once it is answered: one call, and the keys `tally` finds it read and wrote.
    fn count<R: Send + 'static>(
        &self,
        call: KvFuture<R>,
        tally: impl FnOnce(&KvStats, &R) -> (usize, usize) + Send + 'static,
    ) -> KvFuture<R> {
        let s = self.stats.clone();
        Box::pin(async move {
            let r = call.await;
            s.calls.fetch_add(1, Relaxed);
            match &r {
                Err(_) => {
                    s.errors.fetch_add(1, Relaxed);
                }
                Ok(v) => {
                    let (reads, writes) = tally(&s, v);
                    s.reads.fetch_add(reads as u64, Relaxed);
                    s.writes.fetch_add(writes as u64, Relaxed);
                }
            }
            r
        })
    }
}

impl KvBackend for Counted {
    fn get(&self, key: &str) -> KvFuture<Option<Vec<u8>>> {
        self.count(self.inner.get(key), |_, _| (1, 0))
    }

    fn set(&self, key: &str, value: &[u8]) -> KvFuture<()> {
        self.count(self.inner.set(key, value), |_, _| (0, 1))
    }

    fn delete(&self, key: &str) -> KvFuture<()> {
        self.count(self.inner.delete(key), |_, _| (0, 1))
    }

    fn exists(&self, key: &str) -> KvFuture<bool> {
        self.count(self.inner.exists(key), |_, _| (1, 0))
    }

    fn keys(&self) -> KvFuture<Vec<String>> {
        self.count(self.inner.keys(), |_, keys| (keys.len(), 0))
    }

    fn get_many(&self, keys: &[String]) -> KvFuture<Vec<Option<Vec<u8>>>> {
        let n = keys.len();
        self.count(self.inner.get_many(keys), move |_, _| (n, 0))
    }

    fn set_many(&self, entries: &[(String, Vec<u8>)]) -> KvFuture<()> {
        let n = entries.len();
        self.count(self.inner.set_many(entries), move |_, _| (0, n))
    }

    fn delete_many(&self, keys: &[String]) -> KvFuture<()> {
        let n = keys.len();
        self.count(self.inner.delete_many(keys), move |_, _| (0, n))
    }

    fn increment(&self, key: &str, delta: i64) -> KvFuture<i64> {
        self.count(self.inner.increment(key, delta), |_, _| (1, 1))
    }

    fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        new: &[u8],
    ) -> KvFuture<Option<Option<Vec<u8>>>> {
        self.count(
            self.inner.compare_and_swap(key, expected, new),
            |s, changed| match changed {
                None => (1, 1),
                Some(_) => {
                    s.swap_conflicts.fetch_add(1, Relaxed);
                    (1, 0)
                }
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::executor::block_on;

    #[test]
    fn counts_keys_by_kind_and_swap_conflicts() {
        let stats = Arc::new(KvStats::default());
        let (_dir, kv) = crate::kv::scratch();
        let kv = Counted::new(kv, stats.clone());
        block_on(kv.set("a", b"1")).unwrap();
        block_on(kv.get("a")).unwrap();
        block_on(kv.get_many(&["a".into(), "b".into(), "c".into()])).unwrap();
        assert_eq!(
            block_on(kv.compare_and_swap("a", Some(b"1"), b"2")).unwrap(),
            None
        );
        assert!(
            block_on(kv.compare_and_swap("a", Some(b"1"), b"3"))
                .unwrap()
                .is_some()
        );
        block_on(kv.increment("n", 1)).unwrap();
        let all = Stats {
            kv: stats,
            components: BTreeMap::new(),
        }
        .to_json();
        let kv = &all["keyValue"];
        assert_eq!(kv["calls"], 6);
        assert_eq!(kv["keysRead"], 1 + 3 + 2 + 1);
        assert_eq!(kv["keysWritten"], 1 + 1 + 1);
        assert_eq!(kv["swapConflicts"], 1);
        assert_eq!(kv["errors"], 0);
    }
}
