//! The Spin capabilities a component imports besides WASI and `wasi:http`, as `wit/host.wit` lists them:
//! `spin:key-value/key-value@3.0.0`, `wasi:keyvalue/{store,atomics,batch}@0.2.0-draft2` and
//! `spin:variables/variables@3.0.0`. Each component sees only the store labels and variables its
//! manifest entry grants.
//!
//! The host side follows Spin's `factor-key-value` host, over the backends of [`kv`](crate::kv):
//!
//! - a `wasi:keyvalue/atomics` `cas` is the backend's own cas object ([`KvBackend::new_cas`]);
//!   `current()` and `swap` go to it. When a swap reports `cas-failed`, the host makes a new cas
//!   for the same key and calls its `current()` (on SQLite that keeps the value for the next swap;
//!   on Redis it `WATCH`es the key) before it returns it in `cas-failed`; a store error on the way
//!   is a `store-error` instead;
//! - batch calls with no keys answer at once, without a store call;
//! - `list-keys` with a cursor is an error (Spin never returns one), unless `--kv-semantics
//!   interface`, where it lists the keys after the cursor in key order;
//! - opening a store lets the backend connect (Redis connects on the first open).

use std::collections::BTreeMap;
use std::sync::Arc;

use wasmtime::component::{
    Accessor, FutureReader, HasSelf, Linker, Resource, ResourceTable, StreamReader,
};

use crate::kv::{KvBackend, KvCas, KvFuture, KvResult, Semantics, Stores, Swapped};
use crate::server::HostState;

mod bindings {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "lighthouse:host/spin-host",
        // `wasi:keyvalue` functions are blocking to the guest but wait without holding a thread.
        imports: { "wasi:keyvalue": async | trappable, default: trappable },
        with: {
            "spin:key-value/key-value.store": super::SpinStore,
            "wasi:keyvalue/store.bucket": super::Bucket,
            "wasi:keyvalue/atomics.cas": super::Cas,
        },
        require_store_data_send: true,
    });
}

use bindings::spin::key_value::key_value as spin_kv;
use bindings::spin::variables::variables as spin_vars;
use bindings::wasi::keyvalue::{atomics, batch, store as wasi_kv};

/// An open `spin:key-value` store.
pub struct SpinStore(Arc<dyn KvBackend>);
/// An open `wasi:keyvalue` bucket.
pub struct Bucket(Arc<dyn KvBackend>);
/// A `wasi:keyvalue/atomics` `cas`: the backend's cas object, with the store and the key the host
/// needs to make a new one after a failed swap.
pub struct Cas {
    store: Arc<dyn KvBackend>,
    key: String,
    inner: Box<dyn KvCas>,
}

impl Cas {
    /// `cas.new`: the backend's cas on `key` (SQLite reads nothing; Redis connects).
    async fn new(store: Arc<dyn KvBackend>, key: String) -> KvResult<Self> {
        let inner = store.new_cas(&key).await?;
        Ok(Self { store, key, inner })
    }

    /// `cas.current()`.
    fn current(&self) -> KvFuture<Option<Vec<u8>>> {
        self.inner.current()
    }
}

/// Why `swap` did not succeed.
enum SwapFailure {
    /// `cas-failed`, with the new cas the host made.
    CasFailed(Cas),
    /// `store-error`.
    Store(String),
}

/// `swap` as Spin's host does it: the backend's swap, and after a reported `cas-failed` a new cas
/// on the same key whose `current()` has been called.
async fn swap(cas: Cas, value: Vec<u8>) -> Result<(), SwapFailure> {
    let Cas { store, key, inner } = cas;
    match inner.swap(value).await {
        Ok(Swapped::Done) => Ok(()),
        Ok(Swapped::Failed { .. }) => {
            let fresh = Cas::new(store, key).await.map_err(SwapFailure::Store)?;
            fresh.current().await.map_err(SwapFailure::Store)?;
            Err(SwapFailure::CasFailed(fresh))
        }
        Err(e) => Err(SwapFailure::Store(e)),
    }
}

/// `get-many` as Spin's host does it: no keys, no store call.
async fn get_many(
    store: &Arc<dyn KvBackend>,
    keys: Vec<String>,
) -> KvResult<Vec<(String, Option<Vec<u8>>)>> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    store.get_many(&keys).await
}

/// `set-many` as Spin's host does it: no entries, no store call.
async fn set_many(store: &Arc<dyn KvBackend>, entries: Vec<(String, Vec<u8>)>) -> KvResult<()> {
    if entries.is_empty() {
        return Ok(());
    }
    store.set_many(&entries).await
}

/// `delete-many` as Spin's host does it: no keys, no store call.
async fn delete_many(store: &Arc<dyn KvBackend>, keys: Vec<String>) -> KvResult<()> {
    if keys.is_empty() {
        return Ok(());
    }
    store.delete_many(&keys).await
}

/// `list-keys`: one page with every key. Spin refuses a cursor; with interface semantics the
/// page holds the keys after it (the cursor being the last key seen), in key order.
async fn list_keys(
    store: &Arc<dyn KvBackend>,
    cursor: Option<String>,
    semantics: Semantics,
) -> KvResult<Vec<String>> {
    match (cursor, semantics) {
        (None, _) => store.keys().await,
        (Some(_), Semantics::Spin) => Err("list_keys: cursor not supported".into()),
        (Some(c), Semantics::Interface) => {
            let mut keys = store.keys().await?;
            keys.retain(|k| *k > c);
            keys.sort();
            keys.dedup();
            Ok(keys)
        }
    }
}

/// What one component may reach: its granted stores and its resolved variables.
#[derive(Clone)]
pub struct Grants {
    /// All stores of the application.
    pub stores: Stores,
    /// Labels listed in the component's `key_value_stores`.
    pub store_labels: Arc<Vec<String>>,
    /// Component variable name → resolved value.
    pub variables: Arc<BTreeMap<String, String>>,
}

impl Grants {
    fn open(&self, label: &str) -> Result<Arc<dyn KvBackend>, Denied> {
        if !self.store_labels.iter().any(|l| l == label) {
            return Err(Denied::AccessDenied);
        }
        self.stores.get(label).ok_or(Denied::NoSuchStore)
    }
}

enum Denied {
    AccessDenied,
    NoSuchStore,
}

/// Per-instance host state these capabilities need.
pub trait CapabilityView: Send {
    /// The resource table of the instance.
    fn table(&mut self) -> &mut ResourceTable;
    /// The component's grants.
    fn grants(&self) -> &Grants;
}

/// Adds every capability to `linker`.
pub fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    spin_kv::add_to_linker::<HostState, HasSelf<HostState>>(linker, |t| t)?;
    spin_vars::add_to_linker::<HostState, HasSelf<HostState>>(linker, |t| t)?;
    wasi_kv::add_to_linker::<HostState, HasSelf<HostState>>(linker, |t| t)?;
    atomics::add_to_linker::<HostState, HasSelf<HostState>>(linker, |t| t)?;
    batch::add_to_linker::<HostState, HasSelf<HostState>>(linker, |t| t)?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// spin:key-value@3.0.0 (async functions)
// ---------------------------------------------------------------------------------------------

fn spin_err(e: String) -> spin_kv::Error {
    spin_kv::Error::Other(e)
}

fn backend_of<U>(
    acc: &Accessor<U, HasSelf<HostState>>,
    store: &Resource<SpinStore>,
) -> wasmtime::Result<Arc<dyn KvBackend>> {
    acc.with(|mut a| Ok(a.get().table().get(store)?.0.clone()))
}

impl spin_kv::Host for HostState {}

impl spin_kv::HostStore for HostState {
    fn drop(&mut self, rep: Resource<SpinStore>) -> wasmtime::Result<()> {
        self.table().delete(rep)?;
        Ok(())
    }
}

impl<U: Send> spin_kv::HostStoreWithStore<U> for HasSelf<HostState> {
    async fn open(
        acc: &Accessor<U, Self>,
        label: String,
    ) -> wasmtime::Result<Result<Resource<SpinStore>, spin_kv::Error>> {
        let store = match acc.with(|mut a| a.get().grants().open(&label)) {
            Ok(b) => b,
            Err(Denied::AccessDenied) => return Ok(Err(spin_kv::Error::AccessDenied)),
            Err(Denied::NoSuchStore) => return Ok(Err(spin_kv::Error::NoSuchStore)),
        };
        if let Err(e) = store.open().await {
            return Ok(Err(spin_err(e)));
        }
        acc.with(|mut a| Ok(Ok(a.get().table().push(SpinStore(store))?)))
    }

    async fn get(
        acc: &Accessor<U, Self>,
        s: Resource<SpinStore>,
        key: String,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, spin_kv::Error>> {
        Ok(backend_of(acc, &s)?.get(&key).await.map_err(spin_err))
    }

    async fn set(
        acc: &Accessor<U, Self>,
        s: Resource<SpinStore>,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), spin_kv::Error>> {
        Ok(backend_of(acc, &s)?
            .set(&key, &value)
            .await
            .map_err(spin_err))
    }

    async fn delete(
        acc: &Accessor<U, Self>,
        s: Resource<SpinStore>,
        key: String,
    ) -> wasmtime::Result<Result<(), spin_kv::Error>> {
        Ok(backend_of(acc, &s)?.delete(&key).await.map_err(spin_err))
    }

    async fn exists(
        acc: &Accessor<U, Self>,
        s: Resource<SpinStore>,
        key: String,
    ) -> wasmtime::Result<Result<bool, spin_kv::Error>> {
        Ok(backend_of(acc, &s)?.exists(&key).await.map_err(spin_err))
    }

    async fn get_keys(
        acc: &Accessor<U, Self>,
        s: Resource<SpinStore>,
    ) -> wasmtime::Result<(
        StreamReader<String>,
        FutureReader<Result<(), spin_kv::Error>>,
    )> {
        let (keys, result) = match backend_of(acc, &s)?.scan_keys().await {
            Ok(k) => (k, Ok(())),
            Err(e) => (Vec::new(), Err(spin_err(e))),
        };
        acc.with(|mut a| {
            let stream = StreamReader::new(&mut a, keys)?;
            let done = FutureReader::new(&mut a, async move { wasmtime::Result::<_>::Ok(result) })?;
            Ok((stream, done))
        })
    }
}

// ---------------------------------------------------------------------------------------------
// spin:variables@3.0.0
// ---------------------------------------------------------------------------------------------

impl spin_vars::Host for HostState {}

impl<U: Send> spin_vars::HostWithStore<U> for HasSelf<HostState> {
    async fn get(
        acc: &Accessor<U, Self>,
        name: String,
    ) -> wasmtime::Result<Result<String, spin_vars::Error>> {
        acc.with(|mut a| {
            Ok(a.get()
                .grants()
                .variables
                .get(&name)
                .cloned()
                .ok_or(spin_vars::Error::Undefined(format!(
                    "no variable for {name:?}"
                ))))
        })
    }
}

// ---------------------------------------------------------------------------------------------
// wasi:keyvalue@0.2.0-draft2 (synchronous functions)
// ---------------------------------------------------------------------------------------------

fn wasi_err(e: String) -> wasi_kv::Error {
    wasi_kv::Error::Other(e)
}

impl wasi_kv::Host for HostState {
    async fn open(
        &mut self,
        label: String,
    ) -> wasmtime::Result<Result<Resource<Bucket>, wasi_kv::Error>> {
        let store = match self.grants().open(&label) {
            Ok(b) => b,
            Err(Denied::AccessDenied) => return Ok(Err(wasi_kv::Error::AccessDenied)),
            Err(Denied::NoSuchStore) => return Ok(Err(wasi_kv::Error::NoSuchStore)),
        };
        if let Err(e) = store.open().await {
            return Ok(Err(wasi_err(e)));
        }
        Ok(Ok(self.table().push(Bucket(store))?))
    }
}

impl HostState {
    fn bucket(&mut self, b: &Resource<Bucket>) -> wasmtime::Result<Arc<dyn KvBackend>> {
        Ok(self.table().get(b)?.0.clone())
    }
}

impl wasi_kv::HostBucket for HostState {
    async fn get(
        &mut self,
        b: Resource<Bucket>,
        key: String,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, wasi_kv::Error>> {
        Ok(self.bucket(&b)?.get(&key).await.map_err(wasi_err))
    }

    async fn set(
        &mut self,
        b: Resource<Bucket>,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), wasi_kv::Error>> {
        Ok(self.bucket(&b)?.set(&key, &value).await.map_err(wasi_err))
    }

    async fn delete(
        &mut self,
        b: Resource<Bucket>,
        key: String,
    ) -> wasmtime::Result<Result<(), wasi_kv::Error>> {
        Ok(self.bucket(&b)?.delete(&key).await.map_err(wasi_err))
    }

    async fn exists(
        &mut self,
        b: Resource<Bucket>,
        key: String,
    ) -> wasmtime::Result<Result<bool, wasi_kv::Error>> {
        Ok(self.bucket(&b)?.exists(&key).await.map_err(wasi_err))
    }

    async fn list_keys(
        &mut self,
        b: Resource<Bucket>,
        cursor: Option<String>,
    ) -> wasmtime::Result<Result<wasi_kv::KeyResponse, wasi_kv::Error>> {
        let semantics = self.grants().stores.semantics();
        Ok(list_keys(&self.bucket(&b)?, cursor, semantics)
            .await
            .map(|keys| wasi_kv::KeyResponse { keys, cursor: None })
            .map_err(wasi_err))
    }

    async fn drop(&mut self, rep: Resource<Bucket>) -> wasmtime::Result<()> {
        self.table().delete(rep)?;
        Ok(())
    }
}

impl atomics::Host for HostState {
    async fn increment(
        &mut self,
        b: Resource<Bucket>,
        key: String,
        delta: i64,
    ) -> wasmtime::Result<Result<i64, wasi_kv::Error>> {
        Ok(self
            .bucket(&b)?
            .increment(&key, delta)
            .await
            .map_err(wasi_err))
    }

    async fn swap(
        &mut self,
        cas: Resource<Cas>,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), atomics::CasError>> {
        let cas = self.table().delete(cas)?;
        match swap(cas, value).await {
            Ok(()) => Ok(Ok(())),
            Err(SwapFailure::CasFailed(fresh)) => {
                Ok(Err(atomics::CasError::CasFailed(self.table().push(fresh)?)))
            }
            Err(SwapFailure::Store(e)) => Ok(Err(atomics::CasError::StoreError(wasi_err(e)))),
        }
    }
}

impl atomics::HostCas for HostState {
    async fn new(
        &mut self,
        b: Resource<Bucket>,
        key: String,
    ) -> wasmtime::Result<Result<Resource<Cas>, wasi_kv::Error>> {
        match Cas::new(self.bucket(&b)?, key).await {
            Ok(cas) => Ok(Ok(self.table().push(cas)?)),
            Err(e) => Ok(Err(wasi_err(e))),
        }
    }

    async fn current(
        &mut self,
        cas: Resource<Cas>,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, wasi_kv::Error>> {
        let current = self.table().get(&cas)?.current();
        Ok(current.await.map_err(wasi_err))
    }

    async fn drop(&mut self, rep: Resource<Cas>) -> wasmtime::Result<()> {
        self.table().delete(rep)?;
        Ok(())
    }
}

impl batch::Host for HostState {
    async fn get_many(
        &mut self,
        b: Resource<Bucket>,
        keys: Vec<String>,
    ) -> wasmtime::Result<Result<Vec<(String, Option<Vec<u8>>)>, wasi_kv::Error>> {
        Ok(get_many(&self.bucket(&b)?, keys).await.map_err(wasi_err))
    }

    async fn set_many(
        &mut self,
        b: Resource<Bucket>,
        entries: Vec<(String, Vec<u8>)>,
    ) -> wasmtime::Result<Result<(), wasi_kv::Error>> {
        Ok(set_many(&self.bucket(&b)?, entries).await.map_err(wasi_err))
    }

    async fn delete_many(
        &mut self,
        b: Resource<Bucket>,
        keys: Vec<String>,
    ) -> wasmtime::Result<Result<(), wasi_kv::Error>> {
        Ok(delete_many(&self.bucket(&b)?, keys).await.map_err(wasi_err))
    }
}

#[cfg(test)]
mod tests {
    //! The host side of `wasi:keyvalue` as the guest reaches it: [`Cas::new`], [`Cas::current`],
    //! [`swap`] and the batch and listing helpers that the `Host` impls above call.

    use std::sync::Arc;

    use super::*;
    use crate::kv::redis_store::testing::RedisServer;
    use crate::kv::{RuntimeConfig, Semantics, Stores, scratch, scratch_with};
    use crate::stats::{Counted, KvStats, Stats};

    fn sqlite(semantics: Semantics) -> (impl Drop, Arc<dyn KvBackend>) {
        let (dir, kv) = scratch_with(semantics);
        (dir, kv)
    }

    /// The `default` store on `server`, as `[key_value_store.default] type = "redis"` makes it.
    async fn redis(server: &RedisServer, semantics: Semantics) -> Arc<dyn KvBackend> {
        let config: RuntimeConfig = toml::from_str(&format!(
            "[key_value_store.default]\ntype = \"redis\"\nurl = \"{}\"\n",
            server.url()
        ))
        .unwrap();
        let here = std::env::temp_dir();
        let (stores, _) = Stores::open(&config, &here, &here, semantics).unwrap();
        let kv = stores.get("default").unwrap();
        kv.open().await.unwrap();
        kv
    }

    /// `cas.new` then `current()`, as a guest does.
    async fn cas_read(kv: &Arc<dyn KvBackend>, key: &str) -> (Cas, Option<Vec<u8>>) {
        let cas = Cas::new(kv.clone(), key.into()).await.unwrap();
        let seen = cas.current().await.unwrap();
        (cas, seen)
    }

    /// The new cas of a `cas-failed`.
    fn failed(outcome: Result<(), SwapFailure>) -> Cas {
        match outcome {
            Err(SwapFailure::CasFailed(fresh)) => fresh,
            Ok(()) => panic!("the swap succeeded"),
            Err(SwapFailure::Store(e)) => panic!("store error: {e}"),
        }
    }

    fn value(kv: &Arc<dyn KvBackend>, key: &str) -> Option<Vec<u8>> {
        futures::executor::block_on(kv.get(key)).unwrap()
    }

    /// Spin's SQLite swap with no value kept (here `current()` found the key missing) is an
    /// unconditional upsert that reports success, so a creator racing in between is silently
    /// overwritten.
    #[tokio::test]
    async fn sqlite_cas_from_missing_is_an_upsert_like_spin() {
        let (_d, kv) = sqlite(Semantics::Spin);
        let (cas, seen) = cas_read(&kv, "k").await;
        assert_eq!(seen, None);
        kv.set("k", b"racer").await.unwrap();
        assert!(swap(cas, b"mine".to_vec()).await.is_ok());
        assert_eq!(value(&kv, "k"), Some(b"mine".to_vec()));
    }

    /// Spin's SQLite swap without any `current()` is the same upsert, whatever the value is.
    #[tokio::test]
    async fn sqlite_cas_without_current_is_an_upsert_like_spin() {
        let (_d, kv) = sqlite(Semantics::Spin);
        kv.set("k", b"old").await.unwrap();
        let cas = Cas::new(kv.clone(), "k".into()).await.unwrap();
        kv.set("k", b"changed").await.unwrap();
        assert!(swap(cas, b"blind".to_vec()).await.is_ok());
        assert_eq!(value(&kv, "k"), Some(b"blind".to_vec()));
    }

    /// Spin's SQLite swap over a value `current()` read is `UPDATE … WHERE value = old`: it fails
    /// when the value changed and succeeds when it did not.
    #[tokio::test]
    async fn sqlite_cas_over_a_read_value_is_atomic_like_spin() {
        let (_d, kv) = sqlite(Semantics::Spin);
        kv.set("k", b"a").await.unwrap();
        let (cas, seen) = cas_read(&kv, "k").await;
        assert_eq!(seen, Some(b"a".to_vec()));
        kv.set("k", b"b").await.unwrap();
        failed(swap(cas, b"c".to_vec()).await);
        assert_eq!(value(&kv, "k"), Some(b"b".to_vec()));
        let (cas, _) = cas_read(&kv, "k").await;
        assert!(swap(cas, b"c".to_vec()).await.is_ok());
        assert_eq!(value(&kv, "k"), Some(b"c".to_vec()));
    }

    /// After `cas-failed`, Spin's host returns a new cas on which it called `current()`: on SQLite
    /// it keeps the value it read, so its swap is guarded by that value (a blind new cas would
    /// upsert).
    #[tokio::test]
    async fn sqlite_failed_swap_answers_a_cas_that_read_the_value_like_spin() {
        let (_d, kv) = sqlite(Semantics::Spin);
        kv.set("k", b"a").await.unwrap();
        let (cas, _) = cas_read(&kv, "k").await;
        kv.set("k", b"b").await.unwrap();
        let fresh = failed(swap(cas, b"c".to_vec()).await);
        // The new cas read `b`; a change after that makes its swap fail too…
        kv.set("k", b"d").await.unwrap();
        let fresh = failed(swap(fresh, b"e".to_vec()).await);
        assert_eq!(value(&kv, "k"), Some(b"d".to_vec()));
        // …and with no change it succeeds.
        assert!(swap(fresh, b"e".to_vec()).await.is_ok());
        assert_eq!(value(&kv, "k"), Some(b"e".to_vec()));
    }

    /// With `--kv-semantics interface`, a swap after `current()` found the key missing only
    /// creates it: a racing creator wins and the swap reports `cas-failed`.
    #[tokio::test]
    async fn sqlite_interface_mode_cas_from_missing_is_create_only() {
        let (_d, kv) = sqlite(Semantics::Interface);
        let (cas, _) = cas_read(&kv, "k").await;
        kv.set("k", b"racer").await.unwrap();
        let fresh = failed(swap(cas, b"mine".to_vec()).await);
        assert_eq!(value(&kv, "k"), Some(b"racer".to_vec()));
        assert!(swap(fresh, b"mine".to_vec()).await.is_ok());
        let (cas, _) = cas_read(&kv, "new").await;
        assert!(swap(cas, b"created".to_vec()).await.is_ok());
        assert_eq!(value(&kv, "new"), Some(b"created".to_vec()));
    }

    /// Through the host: Spin's Redis swap reports `cas-failed` even when its transaction wrote,
    /// and the host's new cas has `WATCH`ed the key again (its `current()`), so that cas's swap is
    /// guarded from then on.
    #[tokio::test]
    async fn redis_failed_swap_answers_a_cas_that_watches_again_like_spin() {
        let server = RedisServer::start();
        let kv = redis(&server, Semantics::Spin).await;
        kv.set("k", b"a").await.unwrap();
        let (cas, seen) = cas_read(&kv, "k").await;
        assert_eq!(seen, Some(b"a".to_vec()));
        server.reset_stats().await;
        let fresh = failed(swap(cas, b"b".to_vec()).await);
        assert_eq!(kv.get("k").await.unwrap(), Some(b"b".to_vec()), "it wrote");
        let stats = server.command_counts().await;
        assert_eq!(stats.get("watch"), Some(&(1, 0)), "the host's current()");
        // A write after the host's WATCH makes the new cas's transaction do nothing.
        let mut outside = server.client().await;
        let () = redis::AsyncCommands::set(&mut outside, "k", "theirs")
            .await
            .unwrap();
        failed(swap(fresh, b"c".to_vec()).await);
        assert_eq!(kv.get("k").await.unwrap(), Some(b"theirs".to_vec()));
    }

    /// With `--kv-semantics interface`, a Redis swap that wrote reports success.
    #[tokio::test]
    async fn redis_interface_mode_swap_reports_the_truth() {
        let server = RedisServer::start();
        let kv = redis(&server, Semantics::Interface).await;
        let (cas, seen) = cas_read(&kv, "k").await;
        assert_eq!(seen, None);
        assert!(swap(cas, b"created".to_vec()).await.is_ok());
        let (cas, _) = cas_read(&kv, "k").await;
        kv.set("k", b"racer").await.unwrap();
        let fresh = failed(swap(cas, b"mine".to_vec()).await);
        assert_eq!(kv.get("k").await.unwrap(), Some(b"racer".to_vec()));
        assert!(swap(fresh, b"mine".to_vec()).await.is_ok());
        assert_eq!(kv.get("k").await.unwrap(), Some(b"mine".to_vec()));
    }

    /// Spin's host answers batch calls with no keys itself: no store call is made (on Redis, an
    /// `MSET` or `DEL` with no keys would be an error).
    #[tokio::test]
    async fn batches_of_no_keys_make_no_store_call_like_spin() {
        let stats = Arc::new(KvStats::default());
        let (_d, kv) = scratch();
        let kv: Arc<dyn KvBackend> = Arc::new(Counted::new(kv, stats.clone()));
        assert_eq!(get_many(&kv, Vec::new()).await.unwrap(), []);
        set_many(&kv, Vec::new()).await.unwrap();
        delete_many(&kv, Vec::new()).await.unwrap();
        set_many(&kv, vec![("a".into(), b"1".to_vec())])
            .await
            .unwrap();
        let all = Stats {
            kv: stats,
            components: Default::default(),
        }
        .to_json();
        assert_eq!(all["keyValue"]["calls"], 1, "{all}");
        assert_eq!(all["keyValue"]["operations"]["setMany"], 1);
    }

    /// Spin's `list-keys` refuses a cursor (it never returns one); with `--kv-semantics
    /// interface` the page holds the keys after the cursor.
    #[tokio::test]
    async fn list_keys_with_a_cursor_fails_like_spin() {
        for semantics in [Semantics::Spin, Semantics::Interface] {
            let (_d, kv) = sqlite(semantics);
            kv.set_many(&[("a".into(), b"1".to_vec()), ("b".into(), b"2".to_vec())])
                .await
                .unwrap();
            assert_eq!(list_keys(&kv, None, semantics).await.unwrap(), ["a", "b"]);
            let after_a = list_keys(&kv, Some("a".into()), semantics).await;
            match semantics {
                Semantics::Spin => assert!(after_a.unwrap_err().contains("cursor not supported")),
                Semantics::Interface => assert_eq!(after_a.unwrap(), ["b"]),
            }
        }
    }
}
