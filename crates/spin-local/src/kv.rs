//! Key-value storage behind the `spin:key-value` and `wasi:keyvalue` interfaces.
//!
//! [`KvBackend`] is the seam: the components see one store per label, and every backend offers the
//! operations both interfaces need, including the atomic ones (`increment`, compare-and-swap). The
//! default backend is SQLite with Spin's own schema, so a `.spin/sqlite_key_value.db` written here can
//! be read by `spin up` and the other way round. A networked backend (Redis, as Spin's `type = "redis"`)
//! implements the same trait; the calls are short and synchronous, which suits both.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{Context, bail};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior};
use serde::Deserialize;

use crate::stats::{Counted, KvStats};

/// Errors a backend reports to the guest as `other(..)`.
pub type KvResult<T> = Result<T, String>;

/// One key-value store (one label).
pub trait KvBackend: Send + Sync {
    /// The value of `key`, if any.
    fn get(&self, key: &str) -> KvResult<Option<Vec<u8>>>;
    /// Upserts `key`.
    fn set(&self, key: &str, value: &[u8]) -> KvResult<()>;
    /// Removes `key` (absent is fine).
    fn delete(&self, key: &str) -> KvResult<()>;
    /// Whether `key` exists.
    fn exists(&self, key: &str) -> KvResult<bool>;
    /// Every key, sorted.
    fn keys(&self) -> KvResult<Vec<String>>;
    /// Values of several keys, in order.
    fn get_many(&self, keys: &[String]) -> KvResult<Vec<Option<Vec<u8>>>>;
    /// Upserts several keys at once (all or nothing).
    fn set_many(&self, entries: &[(String, Vec<u8>)]) -> KvResult<()>;
    /// Removes several keys at once.
    fn delete_many(&self, keys: &[String]) -> KvResult<()>;
    /// Adds `delta` to the 8-byte little-endian integer at `key` (absent = 0) and returns the result.
    fn increment(&self, key: &str, delta: i64) -> KvResult<i64>;
    /// Writes `new` only if the current value is still `expected` (`None` = the key is absent).
    /// Returns `Ok(None)` on success, or `Ok(Some(current))` when the value had changed.
    fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        new: &[u8],
    ) -> KvResult<Option<Option<Vec<u8>>>>;
}

/// SQLite store: table `spin_key_value(store, key, value)` exactly as Spin creates it.
pub struct SqliteKv {
    conn: Arc<Mutex<Connection>>,
    label: String,
}

impl SqliteKv {
    fn with<R>(&self, f: impl FnOnce(&mut Connection, &str) -> rusqlite::Result<R>) -> KvResult<R> {
        let mut conn = self
            .conn
            .lock()
            .map_err(|_| "key-value store lock poisoned".to_string())?;
        f(&mut conn, &self.label).map_err(|e| e.to_string())
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

impl KvBackend for SqliteKv {
    fn get(&self, key: &str) -> KvResult<Option<Vec<u8>>> {
        self.with(|c, l| read(c, l, key))
    }

    fn set(&self, key: &str, value: &[u8]) -> KvResult<()> {
        self.with(|c, l| write(c, l, key, value))
    }

    fn delete(&self, key: &str) -> KvResult<()> {
        self.with(|c, l| remove(c, l, key))
    }

    fn exists(&self, key: &str) -> KvResult<bool> {
        self.with(|c, l| {
            c.prepare_cached("SELECT 1 FROM spin_key_value WHERE store = ?1 AND key = ?2")?
                .exists((l, key))
        })
    }

    fn keys(&self) -> KvResult<Vec<String>> {
        self.with(|c, l| {
            let mut st =
                c.prepare_cached("SELECT key FROM spin_key_value WHERE store = ?1 ORDER BY key")?;
            st.query_map([l], |r| r.get(0))?.collect()
        })
    }

    fn get_many(&self, keys: &[String]) -> KvResult<Vec<Option<Vec<u8>>>> {
        self.with(|c, l| keys.iter().map(|k| read(c, l, k)).collect())
    }

    fn set_many(&self, entries: &[(String, Vec<u8>)]) -> KvResult<()> {
        self.with(|c, l| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            for (k, v) in entries {
                write(&tx, l, k, v)?;
            }
            tx.commit()
        })
    }

    fn delete_many(&self, keys: &[String]) -> KvResult<()> {
        self.with(|c, l| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            for k in keys {
                remove(&tx, l, k)?;
            }
            tx.commit()
        })
    }

    fn increment(&self, key: &str, delta: i64) -> KvResult<i64> {
        let mut bad_value = None;
        let result = self.with(|c, l| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let current = match read(&tx, l, key)? {
                None => 0,
                Some(bytes) => match <[u8; 8]>::try_from(bytes.as_slice()) {
                    Ok(b) => i64::from_le_bytes(b),
                    Err(_) => {
                        bad_value = Some(bytes.len());
                        return Ok(0);
                    }
                },
            };
            let next = current.wrapping_add(delta);
            write(&tx, l, key, &next.to_le_bytes())?;
            tx.commit()?;
            Ok(next)
        })?;
        match bad_value {
            Some(len) => Err(format!(
                "cannot increment {key:?}: its value is {len} bytes, not an 8-byte integer"
            )),
            None => Ok(result),
        }
    }

    fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        new: &[u8],
    ) -> KvResult<Option<Option<Vec<u8>>>> {
        self.with(|c, l| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let current = read(&tx, l, key)?;
            if current.as_deref() != expected {
                return Ok(Some(current));
            }
            write(&tx, l, key, new)?;
            tx.commit()?;
            Ok(None)
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
fn open_sqlite(path: &Path) -> anyhow::Result<Arc<Mutex<Connection>>> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let conn = Connection::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    // Checkpoints (copying the write-ahead log into the database, with an fsync) happen on a
    // connection of their own, so the one that serves the components rarely stalls on them; it
    // checkpoints itself only if the log still grows past 4000 pages (a write rate the background
    // checkpoints cannot keep up with), so the log cannot grow without bound.
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA wal_autocheckpoint = 4000;",
    )?;
    conn.execute_batch(SCHEMA)?;
    let conn = Arc::new(Mutex::new(conn));
    let checkpoints = Connection::open(path)
        .with_context(|| format!("cannot open {} for checkpoints", path.display()))?;
    checkpoints.busy_timeout(std::time::Duration::from_secs(5))?;
    let serving = Arc::downgrade(&conn);
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
    Ok(conn)
}

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
    /// Redis (recognised, not offered by this runtime yet).
    Redis {
        /// Connection URL.
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
}

impl Stores {
    /// Builds the stores: `default` plus every label the runtime config defines.
    /// `config_dir` resolves relative paths of the runtime config.
    pub fn open(
        config: &RuntimeConfig,
        config_dir: &Path,
        state_dir: &Path,
    ) -> anyhow::Result<(Self, Vec<String>)> {
        let mut by_label: BTreeMap<String, Arc<dyn KvBackend>> = BTreeMap::new();
        let mut files: BTreeMap<PathBuf, Arc<Mutex<Connection>>> = BTreeMap::new();
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
                    bail!(
                        "key-value store {label:?}: type \"redis\" ({url}) is not available in spin-local yet"
                    )
                }
            };
            let conn = match files.get(&path) {
                Some(c) => c.clone(),
                None => {
                    let c = open_sqlite(&path)?;
                    files.insert(path.clone(), c.clone());
                    c
                }
            };
            notes.push(format!(
                "Storing {label} key-value data to {:?}.",
                path.display().to_string()
            ));
            by_label.insert(
                label.to_string(),
                Arc::new(SqliteKv {
                    conn,
                    label: label.to_string(),
                }),
            );
        }
        Ok((Self { by_label }, notes))
    }

    /// The backend for `label`, if the application has one.
    pub fn get(&self, label: &str) -> Option<Arc<dyn KvBackend>> {
        self.by_label.get(label).cloned()
    }

    /// Whether `label` is defined.
    pub fn contains(&self, label: &str) -> bool {
        self.by_label.contains_key(label)
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
        Self { by_label }
    }
}

/// A private in-memory SQLite store, for tests.
#[cfg(test)]
pub fn memory() -> Arc<dyn KvBackend> {
    let conn = Connection::open_in_memory().unwrap();
    conn.execute_batch(SCHEMA).unwrap();
    Arc::new(SqliteKv {
        conn: Arc::new(Mutex::new(conn)),
        label: "default".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempdir::Dir, Arc<dyn KvBackend>) {
        let dir = tempdir::Dir::new();
        let (stores, _) = Stores::open(&RuntimeConfig::default(), dir.path(), dir.path()).unwrap();
        (dir, stores.get("default").unwrap())
    }

    mod tempdir {
        use std::path::{Path, PathBuf};
        pub struct Dir(PathBuf);
        impl Dir {
            pub fn new() -> Self {
                let p = std::env::temp_dir().join(format!(
                    "spin-local-kv-{}-{:?}",
                    std::process::id(),
                    std::thread::current().id()
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
    }

    #[test]
    fn set_get_delete_keys() {
        let (_d, kv) = store();
        kv.set("b", b"2").unwrap();
        kv.set("a", b"1").unwrap();
        kv.set("a", b"3").unwrap();
        assert_eq!(kv.get("a").unwrap(), Some(b"3".to_vec()));
        assert_eq!(kv.keys().unwrap(), ["a", "b"]);
        kv.delete("a").unwrap();
        assert!(!kv.exists("a").unwrap());
        assert_eq!(
            kv.get_many(&["a".into(), "b".into()]).unwrap(),
            vec![None, Some(b"2".to_vec())]
        );
    }

    #[test]
    fn increment_is_eight_le_bytes_and_rejects_other_values() {
        let (_d, kv) = store();
        assert_eq!(kv.increment("n", 1).unwrap(), 1);
        assert_eq!(kv.increment("n", 5).unwrap(), 6);
        assert_eq!(kv.get("n").unwrap(), Some(6i64.to_le_bytes().to_vec()));
        kv.set("s", b"abc").unwrap();
        assert!(kv.increment("s", 1).is_err());
        assert_eq!(kv.get("s").unwrap(), Some(b"abc".to_vec()));
    }

    #[test]
    fn compare_and_swap_including_absent_keys() {
        let (_d, kv) = store();
        assert_eq!(kv.compare_and_swap("k", None, b"1").unwrap(), None);
        assert_eq!(
            kv.compare_and_swap("k", None, b"2").unwrap(),
            Some(Some(b"1".to_vec()))
        );
        assert_eq!(kv.compare_and_swap("k", Some(b"1"), b"3").unwrap(), None);
        assert_eq!(kv.get("k").unwrap(), Some(b"3".to_vec()));
    }

    #[test]
    fn increments_from_many_threads_are_not_lost() {
        let (_d, kv) = store();
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let kv = kv.clone();
                std::thread::spawn(move || {
                    (0..50)
                        .map(|_| kv.increment("c", 1).unwrap())
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
}
