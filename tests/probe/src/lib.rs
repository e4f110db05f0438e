//! Test probe served by `tests/probe/spin.toml`:
//! - `/probe/headers`, `/items/:item_id`, `/exact`: the request's URI and `spin-*` headers as JSON;
//! - `/probe/kv/<label>`: opens store `<label>`, answers 200 or 403 (`access-denied`) / 404 (`no-such-store`);
//! - `/probe/variable/<name>`: the component variable's value, 404 if undefined;
//! - `/probe/env/<name>`: an environment variable from the manifest;
//! - `/probe/hold/<ms>`: answers after `ms` milliseconds (to fill a capped component's instances);
//! - `/probe/panic`: traps.

use spin_sdk::http::{BoxBody, FullBody, Request, Response, box_body};
use spin_sdk::http_service;
use spin_sdk::key_value::{Error as KvError, Store};

fn reply(status: u16, body: String) -> Response<BoxBody> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(box_body(FullBody::new(bytes::Bytes::from(body))))
        .unwrap_or_else(|_| Response::new(box_body(FullBody::new(bytes::Bytes::new()))))
}

#[http_service]
async fn handle(req: Request) -> anyhow::Result<Response<BoxBody>> {
    let path = req.uri().path().to_string();
    if let Some(label) = path.strip_prefix("/probe/kv/") {
        return Ok(match Store::open(label).await {
            Ok(_) => reply(200, "\"opened\"".into()),
            Err(KvError::AccessDenied) => reply(403, "\"access-denied\"".into()),
            Err(KvError::NoSuchStore) => reply(404, "\"no-such-store\"".into()),
            Err(e) => reply(500, serde_json::json!(format!("{e:?}")).to_string()),
        });
    }
    if let Some(name) = path.strip_prefix("/probe/variable/") {
        return Ok(match spin_sdk::variables::get(name).await {
            Ok(v) => reply(200, serde_json::json!(v).to_string()),
            Err(e) => reply(404, serde_json::json!(format!("{e:?}")).to_string()),
        });
    }
    if let Some(name) = path.strip_prefix("/probe/env/") {
        return Ok(reply(
            200,
            serde_json::json!(std::env::var(name).ok()).to_string(),
        ));
    }
    if let Some(ms) = path.strip_prefix("/probe/hold/") {
        let ms: u64 = ms.parse().unwrap_or(0);
        spin_sdk::time::sleep(std::time::Duration::from_millis(ms)).await;
        return Ok(reply(200, serde_json::json!(ms).to_string()));
    }
    if path == "/probe/panic" {
        panic!("probe asked to trap");
    }
    let headers: serde_json::Map<String, serde_json::Value> = req
        .headers()
        .iter()
        .filter(|(n, _)| n.as_str().starts_with("spin-"))
        .map(|(n, v)| (n.to_string(), serde_json::json!(v.to_str().unwrap_or(""))))
        .collect();
    Ok(reply(
        200,
        serde_json::json!({ "uri": req.uri().to_string(), "headers": headers }).to_string(),
    ))
}
