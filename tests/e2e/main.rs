//! End-to-end tests: the real components, served by `spin-local`, over real HTTP.
//! One test binary; each module reads as documentation of one part of the system.

mod backends;
mod clients;
mod contract;
mod foundation;
mod mcp;
mod openapi;
mod push;
