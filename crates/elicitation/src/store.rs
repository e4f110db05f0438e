//! The storage the domain needs: Spin key-value semantics plus the atomics Spin offers
//! (`wasi:keyvalue` increment and compare-and-swap). Components implement it over Spin; tests use
//! [`MemoryStore`].

use std::cell::RefCell;
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

/// Outcome of a compare-and-swap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Swap {
    /// The new value is stored.
    Done,
    /// The value had changed; here is what it is now.
    Changed(Option<Vec<u8>>),
}

/// A key-value store with atomics.
pub trait Store {
    /// The value at `key`.
    fn get(&self, key: &str) -> impl Future<Output = StoreResult<Option<Vec<u8>>>>;
    /// Values at several keys, in order.
    fn get_many(&self, keys: &[String]) -> impl Future<Output = StoreResult<Vec<Option<Vec<u8>>>>>;
    /// Upserts `key`.
    fn set(&self, key: &str, value: &[u8]) -> impl Future<Output = StoreResult<()>>;
    /// Removes `key` (absent is fine).
    fn delete(&self, key: &str) -> impl Future<Output = StoreResult<()>>;
    /// Atomically adds `delta` to the integer at `key` (absent = 0) and returns the new value.
    fn increment(&self, key: &str, delta: i64) -> impl Future<Output = StoreResult<i64>>;
    /// Writes `new` only if the value is still `expected` (`None` = absent).
    fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        new: &[u8],
    ) -> impl Future<Output = StoreResult<Swap>>;
}

/// Decodes a counter written by [`Store::increment`] (8 little-endian bytes).
pub fn decode_counter(bytes: Option<&[u8]>) -> i64 {
    bytes
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map(i64::from_le_bytes)
        .unwrap_or(0)
}

/// An in-memory store for tests and native use.
#[derive(Debug, Default)]
pub struct MemoryStore {
    map: RefCell<BTreeMap<String, Vec<u8>>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Store for MemoryStore {
    async fn get(&self, key: &str) -> StoreResult<Option<Vec<u8>>> {
        Ok(self.map.borrow().get(key).cloned())
    }

    async fn get_many(&self, keys: &[String]) -> StoreResult<Vec<Option<Vec<u8>>>> {
        let map = self.map.borrow();
        Ok(keys.iter().map(|k| map.get(k).cloned()).collect())
    }

    async fn set(&self, key: &str, value: &[u8]) -> StoreResult<()> {
        self.map
            .borrow_mut()
            .insert(key.to_string(), value.to_vec());
        Ok(())
    }

    async fn delete(&self, key: &str) -> StoreResult<()> {
        self.map.borrow_mut().remove(key);
        Ok(())
    }

    async fn increment(&self, key: &str, delta: i64) -> StoreResult<i64> {
        let mut map = self.map.borrow_mut();
        let next = decode_counter(map.get(key).map(Vec::as_slice)) + delta;
        map.insert(key.to_string(), next.to_le_bytes().to_vec());
        Ok(next)
    }

    async fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        new: &[u8],
    ) -> StoreResult<Swap> {
        let mut map = self.map.borrow_mut();
        let current = map.get(key).cloned();
        if current.as_deref() != expected {
            return Ok(Swap::Changed(current));
        }
        map.insert(key.to_string(), new.to_vec());
        Ok(Swap::Done)
    }
}
