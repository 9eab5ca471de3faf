//! The kai application: the `kai` command line, and later the HTTP and MCP server.
//!
//! Like the bindings, this crate contains no domain logic: it parses arguments, calls
//! kai-core, and prints results or errors.

pub mod cli;
