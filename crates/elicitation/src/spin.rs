//! The adapter every Spin component uses: the [`Store`] over Spin's key-value interfaces, the
//! conversion between Spin's HTTP types and [`api::Request`]/[`api::Response`], secrets from Spin
//! variables, time, sleep and ids; [`events`] serves the per-agent SSE streams.

pub mod events;
pub mod mcp;
pub mod watch;

use std::time::Duration;

use http_body_util::BodyExt;
use spin_sdk::experimental::wasi::keyvalue::{atomics, batch, store as wasi_kv};
use spin_sdk::http::{BoxBody, FullBody, Request, Response, box_body};

use crate::api;
use crate::error::Error;
use crate::store::{Store, StoreError, StoreResult, Swapped};
use crate::time::Timestamp;

/// The `default` key-value store, through `spin:key-value` (async reads and writes, issued
/// concurrently where several keys are read) and `wasi:keyvalue` (increment, compare-and-swap and
/// the batch delete) — the two views Spin offers of one store. It never uses `get_many`, which
/// Spin's Redis backend cannot serve (see [`crate::store`]).
///
/// An instance opens the store once and every request it serves shares the handles: an open is a
/// host call (a `PING` to Redis on Spin's Redis backend), and a reused instance serves many
/// requests.
#[derive(Clone)]
pub struct SpinStore(std::rc::Rc<Handles>);

struct Handles {
    kv: spin_sdk::key_value::Store,
    bucket: wasi_kv::Bucket,
}

thread_local! {
    static OPENED: std::cell::RefCell<Option<SpinStore>> = const { std::cell::RefCell::new(None) };
}

fn store_err(e: impl std::fmt::Debug) -> StoreError {
    StoreError(format!("{e:?}"))
}

impl SpinStore {
    /// The `default` store, opened by the first request of this instance that needs it.
    pub async fn open_default() -> Result<Self, Error> {
        if let Some(open) = OPENED.with(|o| o.borrow().clone()) {
            return Ok(open);
        }
        let kv = spin_sdk::key_value::Store::open_default()
            .await
            .map_err(|e| Error::Storage(format!("{e:?}")))?;
        let bucket = wasi_kv::open("default").map_err(|e| Error::Storage(format!("{e:?}")))?;
        let store = Self(std::rc::Rc::new(Handles { kv, bucket }));
        OPENED.with(|o| *o.borrow_mut() = Some(store.clone()));
        Ok(store)
    }
}

impl Store for SpinStore {
    type Cas = atomics::Cas;

    async fn get(&self, key: &str) -> StoreResult<Option<Vec<u8>>> {
        self.0.kv.get(key).await.map_err(store_err)
    }

    async fn set(&self, key: &str, value: &[u8]) -> StoreResult<()> {
        self.0.kv.set(key, value).await.map_err(store_err)
    }

    async fn delete_many(&self, keys: &[String]) -> StoreResult<()> {
        if keys.is_empty() {
            return Ok(());
        }
        batch::delete_many(&self.0.bucket, keys).map_err(store_err)
    }

    async fn increment(&self, key: &str, delta: i64) -> StoreResult<i64> {
        atomics::increment(&self.0.bucket, key, delta).map_err(store_err)
    }

    async fn cas_read(&self, key: &str) -> StoreResult<(atomics::Cas, Option<Vec<u8>>)> {
        let cas = atomics::Cas::new(&self.0.bucket, key).map_err(store_err)?;
        let current = cas.current().map_err(store_err)?;
        Ok((cas, current))
    }

    async fn cas_swap(&self, cas: atomics::Cas, new: &[u8]) -> StoreResult<Swapped> {
        match atomics::swap(cas, new) {
            Ok(()) => Ok(Swapped::Done),
            Err(atomics::CasError::CasFailed(_)) => Ok(Swapped::Unsure),
            Err(atomics::CasError::StoreError(e)) => Err(store_err(e)),
        }
    }
}

/// Reads the request into an [`api::Request`]; a body over [`api::MAX_BODY_BYTES`] is answered with 413.
pub async fn read_request(req: Request) -> Result<api::Request, Response<BoxBody>> {
    let (parts, mut body) = req.into_parts();
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let too_large = || {
        into_response(api::Response::problem(&Error::PayloadTooLarge(
            api::MAX_BODY_BYTES,
        )))
    };
    if header("content-length")
        .and_then(|l| l.parse::<usize>().ok())
        .is_some_and(|l| l > api::MAX_BODY_BYTES)
    {
        return Err(too_large());
    }
    let mut bytes = Vec::new();
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else {
            return Err(into_response(api::Response::problem(&Error::BadRequest(
                "the body could not be read".into(),
            ))));
        };
        if let Ok(data) = frame.into_data() {
            bytes.extend_from_slice(&data);
            if bytes.len() > api::MAX_BODY_BYTES {
                return Err(too_large());
            }
        }
    }
    let params = parts
        .headers
        .iter()
        .filter_map(|(name, value)| {
            let param = name.as_str().strip_prefix("spin-path-match-")?;
            Some((param.replace('-', "_"), value.to_str().ok()?.to_string()))
        })
        .collect();
    Ok(api::Request {
        method: parts.method.as_str().to_string(),
        route: header("spin-matched-route").unwrap_or_default(),
        params,
        query: parts.uri.query().unwrap_or("").to_string(),
        authorization: header("authorization"),
        content_type: header("content-type"),
        idempotency_key: header("idempotency-key"),
        last_event_id: header("last-event-id"),
        headers: parts
            .headers
            .iter()
            .filter_map(|(n, v)| Some((n.as_str().to_string(), v.to_str().ok()?.to_string())))
            .collect(),
        body: bytes,
    })
}

/// Converts an [`api::Response`] into Spin's response type.
pub fn into_response(r: api::Response) -> Response<BoxBody> {
    let mut builder = Response::builder().status(r.status);
    for (name, value) in &r.headers {
        builder = builder.header(name, value);
    }
    builder
        .body(box_body(FullBody::new(bytes::Bytes::from(r.body))))
        .unwrap_or_else(|_| Response::new(box_body(FullBody::new(bytes::Bytes::new()))))
}

/// The secrets from Spin variables `token_secret` and `admin_token`, and the tokens' realm
/// (`token_issuer`, `token_audience`).
pub async fn secrets() -> Result<api::Secrets, Response<BoxBody>> {
    let get = |name: &'static str| async move {
        spin_sdk::variables::get(name).await.map_err(|e| {
            into_response(api::Response::problem(&Error::Storage(format!(
                "variable {name}: {e:?}"
            ))))
        })
    };
    let limits = crate::service::Limits::default();
    Ok(api::Secrets {
        limits: crate::service::Limits {
            create_rate_per_minute: number_variable(
                "create_rate_per_minute",
                limits.create_rate_per_minute,
            )
            .await,
            max_pending_per_agent: number_variable(
                "max_pending_per_agent",
                limits.max_pending_per_agent,
            )
            .await,
            retention_seconds: number_variable("retention_seconds", limits.retention_seconds).await,
        },
        token_secret: get("token_secret").await?,
        admin_token: get("admin_token").await?,
        realm: crate::token::Realm {
            issuer: get("token_issuer").await?,
            audience: get("token_audience").await?,
        },
    })
}

/// Opens the default store, or the 500 response saying why not.
pub async fn store() -> Result<SpinStore, Response<BoxBody>> {
    SpinStore::open_default()
        .await
        .map_err(|e| into_response(api::Response::problem(&e)))
}

/// A fresh unguessable id: 128 random bits from the host, base32 (lower case, no padding).
pub fn new_id() -> String {
    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    let bytes = spin_sdk::wasip3::random::random::get_random_bytes(16);
    let mut out = String::from("el_");
    let mut acc: u32 = 0;
    let mut bits = 0;
    for b in bytes {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((acc >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((acc << (5 - bits)) & 31) as usize]));
    }
    out
}

/// Sleeps `ms` milliseconds without blocking the instance's other requests.
pub async fn sleep_ms(ms: u64) {
    spin_sdk::time::sleep(Duration::from_millis(ms)).await;
}

/// The current time.
pub fn now() -> Timestamp {
    Timestamp::now()
}

/// Everything a store-backed route needs: the request, the secrets and the store — or the error response.
pub async fn prepare(
    req: Request,
) -> Result<(api::Request, api::Secrets, SpinStore), Response<BoxBody>> {
    Ok((read_request(req).await?, secrets().await?, store().await?))
}

/// A numeric Spin variable, or `default` when it is not set or not a number.
pub async fn number_variable(name: &str, default: u64) -> u64 {
    spin_sdk::variables::get(name)
        .await
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

/// Settings of the read routes.
pub async fn read_options() -> api::ReadOptions {
    api::ReadOptions {
        legacy_poll_ms: number_variable(
            "legacy_poll_ms",
            api::ReadOptions::default().legacy_poll_ms,
        )
        .await,
    }
}
