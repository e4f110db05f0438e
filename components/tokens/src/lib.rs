//! `POST /v1/tokens`: the admin mints agent tokens.

use elicitation::{api, spin as adapter};
use spin_sdk::http::{BoxBody, Request, Response};
use spin_sdk::http_service;

#[http_service]
async fn handle(req: Request) -> anyhow::Result<Response<BoxBody>> {
    let req = match adapter::read_request(req).await {
        Ok(r) => r,
        Err(resp) => return Ok(resp),
    };
    let secrets = match adapter::secrets().await {
        Ok(s) => s,
        Err(resp) => return Ok(resp),
    };
    Ok(adapter::into_response(api::tokens(
        &req,
        &secrets,
        adapter::now(),
    )))
}
