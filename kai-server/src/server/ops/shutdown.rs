//! Graceful shutdown: SIGTERM or Ctrl-C stops the listener, in-flight requests finish
//! within `KAI_SHUTDOWN_TIMEOUT_MS`, and the process exits 0.
//!
//! Shutdown is process-wide, like the signals that start it. Parts that hold connections
//! open on their own, such as the Model Context Protocol endpoint's event streams, watch
//! [`requested`] or [`subscribe`] and close them, so the server can finish draining.

use std::sync::OnceLock;
use std::time::Duration;

use tokio::sync::watch;

use crate::server::AppState;

/// Returns the process-wide shutdown flag, which turns `true` once shutdown has begun.
fn flag() -> &'static watch::Sender<bool> {
    static FLAG: OnceLock<watch::Sender<bool>> = OnceLock::new();
    FLAG.get_or_init(|| watch::Sender::new(false))
}

/// Returns a receiver whose value turns `true` once shutdown has begun.
pub fn subscribe() -> watch::Receiver<bool> {
    flag().subscribe()
}

/// Returns whether shutdown has begun.
pub fn is_requested() -> bool {
    *flag().borrow()
}

/// Completes once shutdown has begun (at once when it already has).
pub async fn requested() {
    let mut receiver = subscribe();
    // The sender lives in a static, so the channel never closes and the wait only ends
    // when the flag turns `true`.
    let _ = receiver.wait_for(|begun| *begun).await;
}

/// Begins shutdown without a signal, as SIGTERM would.
pub fn request() {
    flag().send_replace(true);
}

/// The handlers of SIGTERM and Ctrl-C (SIGINT). They are installed when this is built, so
/// a signal that arrives before the server polls [`signal`] still begins a graceful
/// shutdown instead of ending the process at once.
#[derive(Debug)]
pub struct Handlers {
    #[cfg(unix)]
    terminate: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    interrupt: Option<tokio::signal::unix::Signal>,
}

impl Handlers {
    /// Installs the handlers. Must run inside the Tokio runtime. A handler that cannot be
    /// installed is logged, and then only the other signal stops the server.
    pub fn install() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal as unix_signal};
            let install = |kind: SignalKind, name: &str| match unix_signal(kind) {
                Ok(stream) => Some(stream),
                Err(err) => {
                    tracing::error!(error = %err, signal = name, "cannot listen for a shutdown signal");
                    None
                }
            };
            Self {
                terminate: install(SignalKind::terminate(), "SIGTERM"),
                interrupt: install(SignalKind::interrupt(), "SIGINT"),
            }
        }
        #[cfg(not(unix))]
        {
            Self {}
        }
    }
}

/// Completes when the process receives SIGTERM or Ctrl-C (SIGINT), or when [`request`] is
/// called. It logs the reason and sets the shutdown flag. This is the future that
/// `axum::serve(…).with_graceful_shutdown` waits on.
pub async fn signal(state: AppState, handlers: Handlers) {
    #[cfg(unix)]
    let reason = tokio::select! {
        () = receive(handlers.interrupt) => "Ctrl-C",
        () = receive(handlers.terminate) => "SIGTERM",
        () = requested() => "a shutdown request",
    };
    #[cfg(not(unix))]
    let reason = {
        let _ = handlers;
        tokio::select! {
            result = tokio::signal::ctrl_c() => match result {
                Ok(()) => "Ctrl-C",
                Err(_) => { requested().await; "a shutdown request" }
            },
            () = requested() => "a shutdown request",
        }
    };
    tracing::info!(
        reason,
        timeout_ms = u64::try_from(state.config().shutdown_timeout.as_millis()).unwrap_or(u64::MAX),
        "shutting down: no new connections; finishing in-flight requests"
    );
    request();
}

/// Completes on the next signal of `stream`, or never without a handler.
#[cfg(unix)]
async fn receive(stream: Option<tokio::signal::unix::Signal>) {
    match stream {
        Some(mut stream) => {
            stream.recv().await;
        }
        None => std::future::pending::<()>().await,
    }
}

/// Completes `timeout` after shutdown has begun: the end of the grace period for
/// in-flight requests.
pub async fn deadline(timeout: Duration) {
    requested().await;
    tokio::time::sleep(timeout).await;
}
