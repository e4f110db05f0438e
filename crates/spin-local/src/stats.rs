//! Counters the host keeps about its own work, served as JSON at `/.well-known/spin/stats` (the
//! host's reserved path space, like `health` and `info`): key-value calls by operation and keys
//! touched, and per component the requests routed to it, its live and started instances, and what
//! its admission queue did (`queue`: requests that `waited` for room, requests `rejected` with 503
//! because the queue was full, `longestWaitMicros`), and how its response bodies ended (`bodyEnds`,
//! by cause: `complete`, `client closed the connection`, or the error the component ended the body
//! with — an event stream cut for a slow client says so).
//! The benchmark samples them before and after a run to report store load and instance sharing.
//!
//! `keyValue` holds `calls` (every store operation, opens excepted), `keysRead`, `keysWritten`,
//! `swapConflicts` (swaps that reported `cas-failed`), `errors`, and `operations`: the calls of
//! each operation by name (`open`, `get`, `set`, `delete`, `exists`, `keys`, `getMany`,
//! `setMany`, `deleteMany`, `increment`, `casNew`, `casCurrent`, `swap`, `swapFailed`), whatever
//! their outcome. The calls the host makes by itself count too: after a failed swap, Spin's host
//! makes a new cas and calls its `current()`, so one failed swap counts `swap`, `swapFailed`,
//! `casNew` and `casCurrent`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::kv::{KvBackend, KvCas, KvFuture, Swapped};

/// The operations counted one by one.
#[derive(Clone, Copy)]
enum Op {
    Open,
    Get,
    Set,
    Delete,
    Exists,
    Keys,
    GetMany,
    SetMany,
    DeleteMany,
    Increment,
    CasNew,
    CasCurrent,
    Swap,
    SwapFailed,
}

/// Each [`Op`]'s name in the JSON document, in the order of the enum.
const OP_NAMES: [&str; 14] = [
    "open",
    "get",
    "set",
    "delete",
    "exists",
    "keys",
    "getMany",
    "setMany",
    "deleteMany",
    "increment",
    "casNew",
    "casCurrent",
    "swap",
    "swapFailed",
];

/// Key-value counters, shared by every store.
#[derive(Default)]
pub struct KvStats {
    /// Calls of any operation but `open`.
    calls: AtomicU64,
    /// Keys read (`get`, `exists`, each key asked of `get_many`, the keys `keys` listed, a cas's
    /// `current()`, the read of `increment`).
    reads: AtomicU64,
    /// Keys written or removed (`set`, `delete`, `increment`, each key of a batch, a swap that
    /// wrote, whatever it reported).
    writes: AtomicU64,
    /// Swaps that reported `cas-failed`.
    swap_conflicts: AtomicU64,
    /// Calls (not opens) that returned an error.
    errors: AtomicU64,
    /// Calls by operation, indexed by [`Op`].
    ops: [AtomicU64; OP_NAMES.len()],
}

impl KvStats {
    fn op(&self, op: Op) {
        self.ops[op as usize].fetch_add(1, Relaxed);
    }
}

/// Per-component counters.
#[derive(Default)]
pub struct ComponentStats {
    requests: AtomicU64,
    instances_live: AtomicU64,
    instances_started: AtomicU64,
    /// The admission queue's counters.
    pub queue: QueueCounters,
    /// How response bodies ended, by cause.
    body_ends: std::sync::Mutex<BTreeMap<String, u64>>,
}

/// What a component's admission queue did.
#[derive(Default)]
pub struct QueueCounters {
    /// Requests the instance cap refused that then waited for room.
    pub waited: AtomicU64,
    /// Requests answered 503 because the queue was full.
    pub rejected: AtomicU64,
    /// The longest wait for admission, in microseconds.
    pub longest_wait_us: AtomicU64,
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

    /// A response body ended, for this reason.
    pub fn body_ended(&self, cause: &str) {
        let mut ends = self.body_ends.lock().unwrap_or_else(|p| p.into_inner());
        *ends.entry(cause.to_string()).or_default() += 1;
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
                        "bodyEnds": c.body_ends.lock().map(|e| e.clone()).unwrap_or_default(),
                        "queue": {
                            "waited": c.queue.waited.load(Relaxed),
                            "rejected": c.queue.rejected.load(Relaxed),
                            "longestWaitMicros": c.queue.longest_wait_us.load(Relaxed),
                        },
                    }),
                )
            })
            .collect();
        let operations: serde_json::Map<String, serde_json::Value> = OP_NAMES
            .iter()
            .zip(&kv.ops)
            .map(|(name, n)| ((*name).to_string(), n.load(Relaxed).into()))
            .collect();
        serde_json::json!({
            "keyValue": {
                "calls": kv.calls.load(Relaxed),
                "keysRead": kv.reads.load(Relaxed),
                "keysWritten": kv.writes.load(Relaxed),
                "swapConflicts": kv.swap_conflicts.load(Relaxed),
                "errors": kv.errors.load(Relaxed),
                "operations": operations,
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
}

/// Counts `call` once it is answered: one call of `op`, and the keys `tally` finds it read and
/// wrote.
fn count<R: Send + 'static>(
    stats: &Arc<KvStats>,
    op: Op,
    call: KvFuture<R>,
    tally: impl FnOnce(&KvStats, &R) -> (usize, usize) + Send + 'static,
) -> KvFuture<R> {
    let s = stats.clone();
    Box::pin(async move {
        let r = call.await;
        s.op(op);
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

impl KvBackend for Counted {
    fn open(&self) -> KvFuture<()> {
        let (s, call) = (self.stats.clone(), self.inner.open());
        Box::pin(async move {
            let r = call.await;
            s.op(Op::Open);
            r
        })
    }

    fn get(&self, key: &str) -> KvFuture<Option<Vec<u8>>> {
        count(&self.stats, Op::Get, self.inner.get(key), |_, _| (1, 0))
    }

    fn set(&self, key: &str, value: &[u8]) -> KvFuture<()> {
        count(&self.stats, Op::Set, self.inner.set(key, value), |_, _| {
            (0, 1)
        })
    }

    fn delete(&self, key: &str) -> KvFuture<()> {
        count(&self.stats, Op::Delete, self.inner.delete(key), |_, _| {
            (0, 1)
        })
    }

    fn exists(&self, key: &str) -> KvFuture<bool> {
        count(&self.stats, Op::Exists, self.inner.exists(key), |_, _| {
            (1, 0)
        })
    }

    fn keys(&self) -> KvFuture<Vec<String>> {
        count(&self.stats, Op::Keys, self.inner.keys(), |_, keys| {
            (keys.len(), 0)
        })
    }

    fn scan_keys(&self) -> KvFuture<Vec<String>> {
        count(&self.stats, Op::Keys, self.inner.scan_keys(), |_, keys| {
            (keys.len(), 0)
        })
    }

    fn get_many(&self, keys: &[String]) -> KvFuture<Vec<(String, Option<Vec<u8>>)>> {
        let n = keys.len();
        count(
            &self.stats,
            Op::GetMany,
            self.inner.get_many(keys),
            move |_, _| (n, 0),
        )
    }

    fn set_many(&self, entries: &[(String, Vec<u8>)]) -> KvFuture<()> {
        let n = entries.len();
        count(
            &self.stats,
            Op::SetMany,
            self.inner.set_many(entries),
            move |_, _| (0, n),
        )
    }

    fn delete_many(&self, keys: &[String]) -> KvFuture<()> {
        let n = keys.len();
        count(
            &self.stats,
            Op::DeleteMany,
            self.inner.delete_many(keys),
            move |_, _| (0, n),
        )
    }

    fn increment(&self, key: &str, delta: i64) -> KvFuture<i64> {
        count(
            &self.stats,
            Op::Increment,
            self.inner.increment(key, delta),
            |_, _| (1, 1),
        )
    }

    fn new_cas(&self, key: &str) -> KvFuture<Box<dyn KvCas>> {
        let (s, call) = (self.stats.clone(), self.inner.new_cas(key));
        let counted = count(&self.stats, Op::CasNew, call, |_, _| (0, 0));
        Box::pin(async move {
            let inner = counted.await?;
            Ok(Box::new(CountedCas { inner, stats: s }) as Box<dyn KvCas>)
        })
    }
}

/// A cas that counts its calls.
struct CountedCas {
    inner: Box<dyn KvCas>,
    stats: Arc<KvStats>,
}

impl KvCas for CountedCas {
    fn current(&self) -> KvFuture<Option<Vec<u8>>> {
        count(&self.stats, Op::CasCurrent, self.inner.current(), |_, _| {
            (1, 0)
        })
    }

    fn swap(self: Box<Self>, value: Vec<u8>) -> KvFuture<Swapped> {
        let Self { inner, stats } = *self;
        count(
            &stats,
            Op::Swap,
            inner.swap(value),
            |s, swapped| match swapped {
                Swapped::Done => (0, 1),
                Swapped::Failed { wrote, .. } => {
                    s.op(Op::SwapFailed);
                    s.swap_conflicts.fetch_add(1, Relaxed);
                    (0, usize::from(*wrote))
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
    fn counts_calls_by_operation_keys_by_kind_and_swap_conflicts() {
        let stats = Arc::new(KvStats::default());
        let (_dir, kv) = crate::kv::scratch();
        let kv = Counted::new(kv, stats.clone());
        block_on(kv.open()).unwrap();
        block_on(kv.set("a", b"1")).unwrap();
        block_on(kv.get("a")).unwrap();
        block_on(kv.get_many(&["a".into(), "b".into(), "c".into()])).unwrap();
        let cas = block_on(kv.new_cas("a")).unwrap();
        block_on(cas.current()).unwrap();
        assert_eq!(block_on(cas.swap(b"2".to_vec())).unwrap(), Swapped::Done);
        let stale = block_on(kv.new_cas("a")).unwrap();
        block_on(stale.current()).unwrap();
        block_on(kv.set("a", b"3")).unwrap();
        assert!(matches!(
            block_on(stale.swap(b"4".to_vec())).unwrap(),
            Swapped::Failed { .. }
        ));
        block_on(kv.increment("n", 1)).unwrap();
        block_on(kv.set("s", b"text")).unwrap();
        assert!(block_on(kv.increment("s", 1)).is_err());
        let all = Stats {
            kv: stats,
            components: BTreeMap::new(),
        }
        .to_json();
        let kv = &all["keyValue"];
        assert_eq!(kv["calls"], 13);
        assert_eq!(kv["keysRead"], 1 + 3 + 1 + 1 + 1);
        assert_eq!(kv["keysWritten"], 1 + 1 + 1 + 1 + 1);
        assert_eq!(kv["swapConflicts"], 1);
        assert_eq!(kv["errors"], 1);
        let ops = &kv["operations"];
        for (op, n) in [
            ("open", 1),
            ("get", 1),
            ("set", 3),
            ("getMany", 1),
            ("casNew", 2),
            ("casCurrent", 2),
            ("swap", 2),
            ("swapFailed", 1),
            ("increment", 2),
            ("delete", 0),
        ] {
            assert_eq!(ops[op], n, "{op}");
        }
    }
}
