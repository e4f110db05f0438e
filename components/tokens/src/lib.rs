//! `POST /v1/tokens` and `POST /v1/tokens/revoke`: the admin mints and revokes agent tokens.

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
    if req.route.ends_with("/revoke") {
        let store = match adapter::store().await {
            Ok(s) => s,
            Err(resp) => return Ok(resp),
        };
        let r = api::revoke(&store, &req, &secrets, adapter::now()).await;
        return Ok(adapter::into_response(r));
    }
    Ok(adapter::into_response(api::tokens(
        &req,
        &secrets,
        adapter::now(),
    )))
}
