//! The receive side: `GET /v1/elicitations/:id` (with `?wait=`), `GET /v1/elicitations/:id/history`
//! `GET /v1/agents/:agent/elicitations`, and the legacy `GET /v1/agents/:agent/messages` (polling).

use elicitation::{api, spin as adapter};
use spin_sdk::http::{BoxBody, Request, Response};
use spin_sdk::http_service;

#[http_service]
async fn handle(req: Request) -> anyhow::Result<Response<BoxBody>> {
    let (req, secrets, store) = match adapter::prepare(req).await {
        Ok(x) => x,
        Err(resp) => return Ok(resp),
    };
    let opts = adapter::read_options().await;
    let resp = api::read(
        &store,
        &req,
        &secrets,
        &opts,
        adapter::now,
        adapter::sleep_ms,
        adapter::watch::until_changed,
    )
    .await;
    Ok(adapter::into_response(resp))
}
