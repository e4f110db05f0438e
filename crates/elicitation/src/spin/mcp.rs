//! `/mcp` on Spin: runs [`crate::mcp`] with the instance's store, clock and change watcher, and
//! opens the SSE response a 2025 `relay_to_human` answers with. Everything it decides is in the
//! domain; this is the glue.

use spin_sdk::http::{IntoResponse, Request};
use spin_sdk::wasip3::http::types::Response as WasiResponse;
use spin_sdk::wasip3::http_compat::BodyWriter;

use super::events::{internal, open_sse, to_wasi};
use super::{SpinStore, new_id, number_variable, prepare, read_options, sleep_ms};
use crate::api;
use crate::mcp::{self, Env, Reply, relay};
use crate::time::Timestamp;
use crate::wait::Changes;

/// The platform the gateway runs on.
struct SpinEnv(SpinStore);

impl Changes for SpinEnv {
    fn until_changed(&self, agents: Vec<String>, since: i64, ms: u64) -> impl Future<Output = ()> {
        super::watch::until_changed(agents, since, ms)
    }
}

impl Env for SpinEnv {
    type Store = SpinStore;
    fn store(&self) -> &SpinStore {
        &self.0
    }
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
    fn new_id(&self) -> String {
        new_id()
    }
    fn sleep(&self, ms: u64) -> impl Future<Output = ()> {
        sleep_ms(ms)
    }
}

/// The gateway's settings from Spin variables.
async fn settings(secrets: api::Secrets) -> mcp::Settings {
    let origins = spin_sdk::variables::get("mcp_allowed_origins")
        .await
        .unwrap_or_default();
    mcp::Settings {
        secrets,
        allowed_origins: origins
            .split(',')
            .map(str::trim)
            .filter(|o| !o.is_empty())
            .map(str::to_string)
            .collect(),
        session_ttl_seconds: number_variable("mcp_session_ttl_seconds", 86_400)
            .await
            .max(1),
        read: read_options().await,
    }
}

/// Serves one request to `/mcp`.
pub async fn serve(req: Request) -> WasiResponse {
    let (req, secrets, store) = match prepare(req).await {
        Ok(x) => x,
        Err(resp) => {
            return resp
                .into_response()
                .unwrap_or_else(|_| to_wasi(internal("response")));
        }
    };
    let settings = settings(secrets).await;
    let env = SpinEnv(store);
    match mcp::handle(&env, &req, &settings).await {
        Reply::Done(resp) => to_wasi(resp),
        Reply::Stream(job) => stream(env, *job),
    }
}

/// The SSE body of one relay, written by a task of its own.
struct Sse(BodyWriter);

impl relay::Outbound for Sse {
    async fn send(&mut self, message: &serde_json::Value) -> bool {
        let frame = format!("event: message\ndata: {message}\n\n");
        self.0
            .stream_writer
            .write_all(frame.into_bytes())
            .await
            .is_empty()
    }
}

fn stream(env: SpinEnv, job: relay::Streamed) -> WasiResponse {
    let Some((body, response)) = open_sse() else {
        return to_wasi(internal("stream headers"));
    };
    spin_sdk::wasip3::spawn(async move {
        let mut out = Sse(body);
        job.run(&env, &mut out).await;
        let BodyWriter {
            stream_writer,
            result_writer,
            ..
        } = out.0;
        drop(stream_writer);
        let _ = result_writer.write(Ok(None)).await;
    });
    response
}
