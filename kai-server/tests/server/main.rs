//! The server's integration tests: the REST routes, the operational layers and the MCP
//! endpoint's HTTP checks, driven in-process through the router. The MCP protocol itself
//! is tested with the official SDKs by scripts/test_mcp.sh.

mod common;
mod health;
mod infer;
mod materials;
mod mcp;
mod models;
mod openapi;
mod ops;
mod parameters;
mod recon;
