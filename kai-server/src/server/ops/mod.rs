//! The operational layers around the application: request ids, the request log,
//! Prometheus metrics, CORS, JSON error bodies, rate limits, bearer authentication and
//! the request body limit. Logging set-up and graceful shutdown live here too.

pub mod auth;
pub mod body_limit;
pub mod cors;
pub mod error_body;
pub mod logging;
pub mod metrics;
pub mod origin;
pub mod rate_limit;
pub mod request_id;
pub mod request_log;
pub mod route_class;
pub mod shutdown;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware::{from_fn, from_fn_with_state};
use axum::routing::get;

use super::AppState;

/// Adds `GET /metrics` and wraps the application in the operational layers.
///
/// A request passes them in this order: request id, request log, metrics, CORS (which
/// responds to preflights itself), JSON error bodies, rate limit, bearer auth (when
/// `JWT_SECRET` is set), body limit, then the route. The log and the metrics sit outside
/// everything that can reject a request, so rejections are logged and counted too.
///
/// axum applies these layers to each route, inside the router. One more layer wraps the
/// router itself, because only there a 405 has its `Allow` header.
pub fn layers(app: Router<AppState>, state: &AppState) -> Router<AppState> {
    let config = state.config();
    // Install the recorder before any route records a metric.
    metrics::handle();
    let limit = config.max_body_bytes;
    // `DefaultBodyLimit` replaces axum's 2 MiB default for its extractors (`Json`,
    // `Bytes`, `Multipart`), and `body_limit` bounds every body before any route runs.
    let mut app = app
        .route("/metrics", get(metrics::render))
        .layer(DefaultBodyLimit::max(limit))
        .layer(from_fn_with_state(limit, body_limit::enforce));
    if let Some(secret) = &config.jwt_secret {
        // The configuration rejects an empty JWT_SECRET, so the secret has bytes.
        let auth = auth::BearerAuth::new(secret, limit).expect("JWT_SECRET is not empty");
        app = app.layer(from_fn_with_state(Arc::new(auth), auth::require_bearer));
    }
    let limits = Arc::new(rate_limit::RateLimits::from_config(config));
    let routed = app
        .layer(from_fn_with_state(limits, rate_limit::enforce))
        .layer(from_fn_with_state(limit, error_body::normalize))
        .layer(cors::layer(config))
        .layer(from_fn(metrics::track))
        .layer(from_fn(request_log::log))
        .layer(from_fn(request_id::assign))
        .with_state(state.clone());
    Router::new()
        .fallback_service(routed)
        .layer(from_fn(error_body::list_allowed_methods))
}
