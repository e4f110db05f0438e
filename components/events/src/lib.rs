//! `GET /v1/agents/:agent/events`: the agent's event log as Server-Sent Events, live, resumable.

use elicitation::spin::events;
use spin_sdk::http::{BoxBody, Request, Response};
use spin_sdk::http_service;

#[http_service]
async fn handle(req: Request) -> anyhow::Result<Response<BoxBody>> {
    Ok(events::serve(req).await)
}
