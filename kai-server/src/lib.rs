//! The kai application: the `kai` command line and the `kai-server` HTTP and Model Context
//! Protocol server.
//!
//! Like the bindings, this crate contains no domain logic: it parses arguments and
//! requests, calls kai-core, and returns results or errors.

pub mod cli;
pub mod server;
