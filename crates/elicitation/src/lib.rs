//! The Lighthouse elicitation domain, shared by every component and tested natively.
//!
//! Agent A asks agent B a question with a JSON schema for the answer (the MCP form subset); B answers
//! once (accept with content, decline, cancel); both learn of every change through their event logs.
//!
//! - [`model`] — the elicitation record, answers, audit entries, events;
//! - [`schema`] — the MCP 2025-11-25 form-schema subset and answer validation;
//! - [`service`] — the operations and their rules (exactly-once answers, exact expiry, idempotency);
//! - [`log`] — each agent's gap-free event log; [`changes`] — the feed of which agents changed;
//!   [`keys`] — where everything lives in the store; [`due`] — deadlines by the second, which the
//!   expiry and retention passes walk;
//! - [`store`] — the storage trait (key-value plus atomics) and an in-memory implementation;
//! - [`token`] — HS256 agent tokens; [`error`] — every failure and its problem document;
//! - [`outlet`] — when an event stream is cut (a client that stopped reading, never a host stall);
//! - [`wait`] — reads that wait for a change (the HTTP `?wait=`, the MCP tools' waits);
//! - [`mcp`] — the MCP server at `/mcp`: both protocol eras, the tools, the relay to humans;
//! - [`api`] — the HTTP routes as plain functions; `spin` (feature `spin`) — the adapter the
//!   components use to run them on Spin.

#![allow(async_fn_in_trait)]

pub mod api;
pub mod changes;
pub mod due;
pub mod error;
pub mod keys;
pub mod log;
pub mod mcp;
pub mod model;
pub mod outlet;
pub mod schema;
pub mod service;
#[cfg(test)]
mod sim;
pub mod sse;
pub mod store;
pub mod time;
pub mod token;
pub mod wait;

#[cfg(feature = "spin")]
pub mod spin;

pub use error::Error;
pub use time::Timestamp;
