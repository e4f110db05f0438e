//! `GET /v1/agents/:agent/events`: the agent's event log as Server-Sent Events, live, resumable.

use elicitation::spin::events;
use spin_sdk::http::Request;
use spin_sdk::http_service;
use spin_sdk::wasip3::http::types::Response;

#[http_service]
async fn handle(req: Request) -> anyhow::Result<Response> {
    Ok(events::serve(req).await)
}
