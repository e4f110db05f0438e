//! `POST /v1/elicitations`: an agent asks another agent.

use elicitation::{api, spin as adapter};
use spin_sdk::http::{BoxBody, Request, Response};
use spin_sdk::http_service;

#[http_service]
async fn handle(req: Request) -> anyhow::Result<Response<BoxBody>> {
    let (req, secrets, store) = match adapter::prepare(req).await {
        Ok(x) => x,
        Err(resp) => return Ok(resp),
    };
    let resp = api::create(&store, &req, &secrets, adapter::now(), adapter::new_id()).await;
    Ok(adapter::into_response(resp))
}
