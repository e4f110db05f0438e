//! `/mcp`: the MCP server (Streamable HTTP, 2025 sessions and 2026 stateless requests) over the
//! same elicitations as the HTTP API.

use elicitation::spin::mcp;
use spin_sdk::http::Request;
use spin_sdk::http_service;
use spin_sdk::wasip3::http::types::Response;

#[http_service]
async fn handle(req: Request) -> anyhow::Result<Response> {
    Ok(mcp::serve(req).await)
}
