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

/// Completes when the process receives SIGTERM or Ctrl-C (SIGINT), or when [`request`] is
/// called. It logs the reason and sets the shutdown flag. This is the future that
/// `axum::serve(…).with_graceful_shutdown` waits on.
pub async fn signal(state: AppState) {
    let reason = tokio::select! {
        () = ctrl_c() => "Ctrl-C",
        () = terminate() => "SIGTERM",
        () = requested() => "a shutdown request",
    };
    tracing::info!(
        reason,
        timeout_ms = u64::try_from(state.config().shutdown_timeout.as_millis()).unwrap_or(u64::MAX),
        "shutting down: no new connections; finishing in-flight requests"
    );
    request();
}

/// Completes `timeout` after shutdown has begun: the end of the grace period for
/// in-flight requests.
pub async fn deadline(timeout: Duration) {
    requested().await;
    tokio::time::sleep(timeout).await;
}

/// Completes on Ctrl-C, or never when the handler cannot be installed.
async fn ctrl_c() {
    if let Err(err) = tokio::signal::ctrl_c().await {
        tracing::error!(error = %err, "cannot listen for Ctrl-C; only SIGTERM stops the server");
        std::future::pending::<()>().await;
    }
}

/// Completes on SIGTERM, the signal Kubernetes sends before it kills a pod, or never
/// where there is no such signal or its handler cannot be installed.
async fn terminate() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal as unix_signal};
        match unix_signal(SignalKind::terminate()) {
            Ok(mut stream) => {
                stream.recv().await;
                return;
            }
            Err(err) => {
                tracing::error!(error = %err, "cannot listen for SIGTERM; only Ctrl-C stops the server");
            }
        }
    }
    std::future::pending::<()>().await;
}
