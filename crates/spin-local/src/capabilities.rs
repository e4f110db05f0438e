//! The Spin capabilities a component imports besides WASI and `wasi:http`, as `wit/host.wit` lists them:
//! `spin:key-value/key-value@3.0.0`, `wasi:keyvalue/{store,atomics,batch}@0.2.0-draft2` and
//! `spin:variables/variables@3.0.0`. Each component sees only the store labels and variables its
//! manifest entry grants.

use std::collections::BTreeMap;
use std::sync::Arc;

use wasmtime::component::{
    Accessor, FutureReader, HasSelf, Linker, Resource, ResourceTable, StreamReader,
};

use crate::kv::{KvBackend, Stores};
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
/// A pending compare-and-swap: the value `key` had when the handle was made.
pub struct Cas {
    backend: Arc<dyn KvBackend>,
    key: String,
    seen: Option<Vec<u8>>,
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
        acc.with(|mut a| {
            let host = a.get();
            match host.grants().open(&label) {
                Ok(b) => Ok(Ok(host.table().push(SpinStore(b))?)),
                Err(Denied::AccessDenied) => Ok(Err(spin_kv::Error::AccessDenied)),
                Err(Denied::NoSuchStore) => Ok(Err(spin_kv::Error::NoSuchStore)),
            }
        })
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
        let (keys, result) = match backend_of(acc, &s)?.keys().await {
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
        match self.grants().open(&label) {
            Ok(b) => Ok(Ok(self.table().push(Bucket(b))?)),
            Err(Denied::AccessDenied) => Ok(Err(wasi_kv::Error::AccessDenied)),
            Err(Denied::NoSuchStore) => Ok(Err(wasi_kv::Error::NoSuchStore)),
        }
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
        // One page holds every key after the cursor (keys are sorted; the cursor is the last key seen).
        let keys = match self.bucket(&b)?.keys().await {
            Ok(k) => k,
            Err(e) => return Ok(Err(wasi_err(e))),
        };
        let keys = match cursor {
            Some(c) => keys.into_iter().filter(|k| *k > c).collect(),
            None => keys,
        };
        Ok(Ok(wasi_kv::KeyResponse { keys, cursor: None }))
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
        match cas
            .backend
            .compare_and_swap(&cas.key, cas.seen.as_deref(), &value)
            .await
        {
            Ok(None) => Ok(Ok(())),
            Ok(Some(current)) => {
                let fresh = self.table().push(Cas {
                    backend: cas.backend,
                    key: cas.key,
                    seen: current,
                })?;
                Ok(Err(atomics::CasError::CasFailed(fresh)))
            }
            Err(e) => Ok(Err(atomics::CasError::StoreError(wasi_err(e)))),
        }
    }
}

impl atomics::HostCas for HostState {
    async fn new(
        &mut self,
        b: Resource<Bucket>,
        key: String,
    ) -> wasmtime::Result<Result<Resource<Cas>, wasi_kv::Error>> {
        let backend = self.bucket(&b)?;
        let seen = match backend.get(&key).await {
            Ok(v) => v,
            Err(e) => return Ok(Err(wasi_err(e))),
        };
        Ok(Ok(self.table().push(Cas { backend, key, seen })?))
    }

    async fn current(
        &mut self,
        cas: Resource<Cas>,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, wasi_kv::Error>> {
        Ok(Ok(self.table().get(&cas)?.seen.clone()))
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
        Ok(self
            .bucket(&b)?
            .get_many(&keys)
            .await
            .map(|values| keys.into_iter().zip(values).collect())
            .map_err(wasi_err))
    }

    async fn set_many(
        &mut self,
        b: Resource<Bucket>,
        entries: Vec<(String, Vec<u8>)>,
    ) -> wasmtime::Result<Result<(), wasi_kv::Error>> {
        Ok(self.bucket(&b)?.set_many(&entries).await.map_err(wasi_err))
    }

    async fn delete_many(
        &mut self,
        b: Resource<Bucket>,
        keys: Vec<String>,
    ) -> wasmtime::Result<Result<(), wasi_kv::Error>> {
        Ok(self.bucket(&b)?.delete_many(&keys).await.map_err(wasi_err))
    }
}
