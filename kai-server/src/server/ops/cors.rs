//! Cross-origin resource sharing for browser clients, from `KAI_ALLOWED_ORIGINS`.

use std::time::Duration;

use axum::http::{HeaderName, HeaderValue, Method, header};
use tower_http::cors::{AllowOrigin, CorsLayer};

use super::request_id::REQUEST_ID;
use crate::server::ServerConfig;

/// How long a browser may cache a preflight response.
const PREFLIGHT_MAX_AGE: Duration = Duration::from_secs(3600);

/// Builds the CORS layer: the configured origins (`*` allows any), the methods of the
/// REST API, and the request and response headers that the REST API and the Model
/// Context Protocol's Streamable HTTP transport use.
///
/// A preflight from an origin that is not allowed gets a response without
/// `Access-Control-Allow-Origin`, so the browser blocks the request. Credentials (cookies)
/// are not allowed, because authentication is a bearer token.
pub fn layer(config: &ServerConfig) -> CorsLayer {
    CorsLayer::new()
        .allow_origin(allowed_origins(&config.allowed_origins))
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
            Method::OPTIONS,
        ])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::ACCEPT,
            HeaderName::from_static("last-event-id"),
            REQUEST_ID,
            HeaderName::from_static("mcp-session-id"),
            HeaderName::from_static("mcp-protocol-version"),
            HeaderName::from_static("mcp-method"),
            HeaderName::from_static("mcp-name"),
        ])
        .expose_headers([
            REQUEST_ID,
            header::RETRY_AFTER,
            header::WWW_AUTHENTICATE,
            HeaderName::from_static("mcp-session-id"),
        ])
        .max_age(PREFLIGHT_MAX_AGE)
}

/// Returns the allowed origins. A trailing `/` is dropped because browsers send origins
/// without one. An entry that is not a valid header value can never match an `Origin`
/// header, so it is left out with a warning.
fn allowed_origins(origins: &[String]) -> AllowOrigin {
    if origins.iter().any(|origin| origin == "*") {
        return AllowOrigin::any();
    }
    let values: Vec<HeaderValue> = origins
        .iter()
        .map(|origin| origin.trim_end_matches('/'))
        .filter_map(|origin| match HeaderValue::from_str(origin) {
            Ok(value) => Some(value),
            Err(_) => {
                tracing::warn!(
                    origin = %origin.escape_debug(),
                    "KAI_ALLOWED_ORIGINS entry is not a valid origin; it is ignored"
                );
                None
            }
        })
        .collect();
    AllowOrigin::list(values)
}
