//! Cross-origin resource sharing for browser clients, from `KAI_ALLOWED_ORIGINS`.

use std::time::Duration;

use axum::http::{HeaderName, HeaderValue, Method, header};
use tower_http::cors::{AllowOrigin, CorsLayer};

use super::origin::AllowedOrigins;
use super::request_id::REQUEST_ID;
use crate::server::ServerConfig;

/// How long a browser may cache a preflight response.
const PREFLIGHT_MAX_AGE: Duration = Duration::from_secs(3600);

/// Builds the CORS layer: the configured origins ([`AllowedOrigins`]), the methods of the
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

/// Returns the allowed origins as tower-http checks them: `*` sends
/// `Access-Control-Allow-Origin: *`, and otherwise each request's `Origin` is matched by
/// [`AllowedOrigins`], the same rules `/mcp` applies, and echoed when it is allowed.
fn allowed_origins(origins: &[String]) -> AllowOrigin {
    let allowed = AllowedOrigins::parse(origins);
    if allowed.allows_any() {
        return AllowOrigin::any();
    }
    AllowOrigin::predicate(move |origin: &HeaderValue, _| {
        origin.to_str().is_ok_and(|origin| allowed.allows(origin))
    })
}
