//! `kai-server`: kai's REST API and Model Context Protocol endpoint on axum.
//!
//! [`router`] builds the whole application from an [`AppState`]; [`main`] reads the
//! environment, opens the state, listens and shuts down gracefully on SIGTERM.

pub mod batch;
pub mod config;
pub mod error;
pub mod mcp;
pub mod openapi;
pub mod ops;
pub mod routes;
pub mod state;

use std::future::IntoFuture;
use std::net::SocketAddr;
use std::process::ExitCode;

use axum::Router;

pub use config::ServerConfig;
pub use state::AppState;

/// Builds the application: the REST routes, `/openapi.json`, `/mcp` when the agent API is
/// enabled, and the operational layers (limits, auth, metrics, logs) around them.
pub fn router(state: AppState) -> Router {
    let (api, doc) = routes::api().split_for_parts();
    let mut app = api.merge(openapi::router(doc));
    if state.config().enable_agent_api {
        app = app.merge(mcp::router(&state));
    }
    ops::layers(app, &state).with_state(state)
}

/// Text `kai-server --help` prints: the server takes its settings from the environment.
const USAGE: &str = "\
kai-server: the kai REST API and Model Context Protocol server

Usage: kai-server [--help | --version]

Every setting comes from environment variables, so the same image runs unchanged in a
container: KAI_BIND_ADDRESS and MCP_SERVER_PORT (default 0.0.0.0 and 8000),
KAI_DATA_DIR (the store folder, default ./kai-data), KAI_DATABASE_URL (PostgreSQL),
MODEL_DIR, LOG_LEVEL, JWT_SECRET and the others listed in the README's Configuration
section. The server stops on SIGTERM or
Ctrl-C after finishing the requests in flight.
";

/// Handles the command-line arguments: `Some(exit code)` when the process should exit
/// without serving (help, version or an unknown argument), `None` to start the server.
fn command_line(mut args: impl Iterator<Item = String>) -> Option<ExitCode> {
    let first = args.next()?;
    match first.as_str() {
        "-h" | "--help" => {
            print!("{USAGE}");
            Some(ExitCode::SUCCESS)
        }
        "-V" | "--version" => {
            println!("kai-server {}", env!("CARGO_PKG_VERSION"));
            Some(ExitCode::SUCCESS)
        }
        other => {
            eprintln!(
                "error: unexpected argument `{other}`; kai-server takes its settings from \
                 environment variables (see `kai-server --help`)"
            );
            Some(ExitCode::from(2))
        }
    }
}

/// Reads the configuration, opens the state and serves until SIGTERM or Ctrl-C.
pub fn main() -> ExitCode {
    if let Some(code) = command_line(std::env::args().skip(1)) {
        return code;
    }
    let config = match ServerConfig::from_env() {
        Ok(config) => config,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::from(err.kind().exit_code());
        }
    };
    ops::logging::init(&config);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            tracing::error!(error = %err, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    let served = runtime.block_on(serve(config));
    // A model call still running on the blocking pool must not hold the exit past the
    // shutdown timeout that serve() already waited out.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(code = err.kind().code(), error = %err, "kai-server stopped");
            ExitCode::from(err.kind().exit_code())
        }
    }
}

/// Names `KAI_DATA_DIR` in an error about the store folder itself, so an operator knows
/// which setting to fix.
fn name_store_variable(err: kai_core::Error, store: &std::path::Path) -> kai_core::Error {
    match err {
        kai_core::Error::Io { path, source, .. } if path == store => kai_core::Error::Io {
            op: "cannot use the store folder (KAI_DATA_DIR)",
            path,
            source,
        },
        other => other,
    }
}

/// Opens the state from `config` and serves on `config.listen` until a shutdown signal.
///
/// # Errors
///
/// Returns the error that kept the state from opening or the listener from binding.
pub async fn serve(config: ServerConfig) -> kai_core::Result<()> {
    // The metrics recorder goes in first, so nothing recorded while the state opens is lost.
    ops::metrics::handle();
    let listen = config.listen;
    let store = config.store.clone();
    let state = tokio::task::spawn_blocking(move || AppState::open(config))
        .await
        .map_err(|err| kai_core::Error::Internal(err.to_string()))?
        .map_err(|err| name_store_variable(err, &store))?;

    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|err| kai_core::Error::io("cannot listen on", listen.to_string(), err))?;
    // The signal handlers are installed before the "kai-server listening" log line, which
    // supervisors and tests wait for, so a SIGTERM sent right after it shuts down gracefully.
    let handlers = ops::shutdown::Handlers::install();
    tracing::info!(address = %listen, version = env!("CARGO_PKG_VERSION"), "kai-server listening");
    // /ready turns ready once the default models are loaded, without waiting for a request.
    routes::health::warm_up(&state);

    let grace = state.config().shutdown_timeout;
    let app = router(state.clone()).into_make_service_with_connect_info::<SocketAddr>();
    let server = axum::serve(listener, app)
        .with_graceful_shutdown(ops::shutdown::signal(state, handlers))
        .into_future();

    // After a shutdown signal the listener is closed at once. Requests already running get
    // `KAI_SHUTDOWN_TIMEOUT_MS` to finish before the server stops without them.
    tokio::select! {
        served = server => {
            served.map_err(|err| kai_core::Error::io("cannot serve on", listen.to_string(), err))?;
        }
        () = ops::shutdown::deadline(grace) => {
            tracing::warn!(
                timeout_ms = u64::try_from(grace.as_millis()).unwrap_or(u64::MAX),
                "in-flight requests did not finish within KAI_SHUTDOWN_TIMEOUT_MS; stopping without them"
            );
        }
    }
    tracing::info!("kai-server stopped");
    Ok(())
}
