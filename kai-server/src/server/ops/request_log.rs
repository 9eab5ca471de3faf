//! The request log: one line per request. For an error response the line also has the
//! code and message that [`ApiError`](crate::server::error::ApiError) left in the response
//! extensions, so handlers do not log the errors they return and each one appears once,
//! beside its request id.

use std::time::Instant;

use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

use super::metrics::route_label;
use super::rate_limit::client_ip;
use super::request_id::RequestId;
use crate::server::error::LoggedError;

/// Returns whether `path` is a health probe or a metrics scrape.
fn is_probe(path: &str) -> bool {
    matches!(path, "/health" | "/ready" | "/metrics")
}

/// Logs each request when its response head is ready. 5xx other than 501 log at error
/// level, and 4xx and 501 at warn. A 429 logs at info, because the rate limiter rejecting
/// a burst is expected. The rest log at info, with probes and scrapes at debug.
///
/// A 501 is a request for a format this build does not support, such as a HEIC image
/// without the `heif` feature, so it follows from the client's input, not a server fault. Log lines written while the request runs carry its
/// id through the `request` span.
pub async fn log(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let route = route_label(&request);
    // The path only: a query string may carry values a client considers private.
    let path = request.uri().path().to_owned();
    let request_id = request
        .extensions()
        .get::<RequestId>()
        .map_or_else(String::new, |id| id.0.clone());
    let client = client_ip(&request);
    let span = tracing::info_span!("request", request_id = %request_id);
    let response = next.run(request).instrument(span).await;

    let status = response.status();
    let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let error = response.extensions().get::<LoggedError>();
    let code = error.map(|error| error.code);
    let message = error.map(|error| error.message.as_str());
    macro_rules! request_line {
        ($level:expr) => {
            tracing::event!(
                $level,
                request_id = %request_id,
                method = %method,
                route = %route,
                path = %path,
                status = status.as_u16(),
                duration_ms,
                client = client.map(tracing::field::display),
                code,
                error = message,
                "request finished"
            )
        };
    }
    if status.is_server_error() && status != StatusCode::NOT_IMPLEMENTED {
        request_line!(tracing::Level::ERROR);
    } else if (status.is_client_error() && status != StatusCode::TOO_MANY_REQUESTS)
        || status == StatusCode::NOT_IMPLEMENTED
    {
        request_line!(tracing::Level::WARN);
    } else if is_probe(&path) {
        // Kubernetes probes and Prometheus scrapes arrive every few seconds. At info they
        // would drown the requests people read logs for.
        request_line!(tracing::Level::DEBUG);
    } else {
        request_line!(tracing::Level::INFO);
    }
    response
}
