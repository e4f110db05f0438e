//! `POST /v1/elicitations/:id/response` (the addressee answers) and
//! `POST /v1/elicitations/:id/withdraw` (the requester withdraws).

use elicitation::{api, spin as adapter};
use spin_sdk::http::{BoxBody, Request, Response};
use spin_sdk::http_service;

#[http_service]
async fn handle(req: Request) -> anyhow::Result<Response<BoxBody>> {
    let (req, secrets, store) = match adapter::prepare(req).await {
        Ok(x) => x,
        Err(resp) => return Ok(resp),
    };
    Ok(adapter::into_response(
        api::respond_route(&store, &req, &secrets, adapter::now()).await,
    ))
}
