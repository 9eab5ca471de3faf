//! The JSON error body for error responses that did not come from
//! [`ApiError`]: the router's 404 and 405, axum's extractor rejections and the body
//! limit's 413, which are plain text or empty otherwise.
//!
//! NOTE: hyper rejects a request line longer than 65,534 bytes with an empty 414, and a
//! header section over its limit with 431, before any service runs. So no layer here can
//! give those a JSON body, log them or count them in `/metrics`.

use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use kai_core::ErrorKind;

use super::body_limit;
use super::route_class::RouteClass;
use crate::server::error::{ApiError, FORBIDDEN, LoggedError, RATE_LIMITED, UNAUTHORIZED};

/// Maximum size of a plain-text rejection that is read back as the message. Those of axum
/// are one line.
const MAX_PLAIN_BODY: usize = 16 * 1024;

/// Maximum length, in characters, of a message taken from a plain-text rejection.
const MAX_MESSAGE_CHARS: usize = 500;

/// Replaces a plain-text or empty error response with the JSON error body of its status.
///
/// `/mcp` keeps its responses as they are, because MCP clients read the transport's own
/// error bodies. `max_body_bytes` is the request body limit that a 413 names.
pub async fn normalize(
    State(max_body_bytes): State<usize>,
    request: Request,
    next: Next,
) -> Response {
    if RouteClass::of(request.uri().path()) == RouteClass::Agent {
        return next.run(request).await;
    }
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let response = next.run(request).await;
    if !needs_body(&response) {
        return response;
    }

    let (parts, body) = response.into_parts();
    let text = match to_bytes(body, MAX_PLAIN_BODY).await {
        Ok(bytes) => String::from_utf8_lossy(&bytes).trim().to_owned(),
        Err(_) => String::new(),
    };
    let allowed = parts
        .headers
        .get(header::ALLOW)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("");
    let status = parts.status;
    let message = match status {
        StatusCode::NOT_FOUND if text.is_empty() => {
            format!("no route matches {method} {path}; /openapi.json lists the routes")
        }
        StatusCode::METHOD_NOT_ALLOWED if allowed.is_empty() => {
            // axum adds `Allow` after this layer. `list_allowed_methods` completes the
            // message once it is there.
            format!("method {method} is not allowed on {path}")
        }
        StatusCode::METHOD_NOT_ALLOWED => {
            format!("method {method} is not allowed on {path}; allowed methods: {allowed}")
        }
        StatusCode::PAYLOAD_TOO_LARGE => body_limit::too_large(max_body_bytes).message,
        _ if text.is_empty() => status
            .canonical_reason()
            .unwrap_or("request failed")
            .to_owned(),
        _ => text.chars().take(MAX_MESSAGE_CHARS).collect(),
    };

    let incomplete = status == StatusCode::METHOD_NOT_ALLOWED && allowed.is_empty();
    let error = ApiError::new(status, code_of(status), message.clone());
    let mut rebuilt = rebuild(&parts.headers, error);
    if incomplete {
        rebuilt
            .extensions_mut()
            .insert(MethodNotAllowed { message });
    }
    rebuilt
}

/// The message of a 405 that [`normalize`] built before the `Allow` header was set.
#[derive(Debug, Clone)]
struct MethodNotAllowed {
    message: String,
}

/// Adds the allowed methods to the message of a 405 from [`normalize`].
///
/// axum's router sets `Allow` on a 405 after the layers of the route have run, so this
/// must wrap the whole router rather than its routes. The request log, which runs
/// inside, records the message without the list.
pub async fn list_allowed_methods(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let Some(MethodNotAllowed { message }) = response.extensions().get().cloned() else {
        return response;
    };
    let Some(allowed) = response
        .headers()
        .get(header::ALLOW)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
    else {
        return response;
    };
    let error = ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        code_of(StatusCode::METHOD_NOT_ALLOWED),
        format!("{message}; allowed methods: {allowed}"),
    );
    rebuild(response.headers(), error)
}

/// Returns the response of `error` with the headers of the response it replaces, such as
/// `Allow`, `WWW-Authenticate` and the CORS headers. The new body sets its own type and
/// length.
fn rebuild(headers: &axum::http::HeaderMap, error: ApiError) -> Response {
    let mut rebuilt = error.into_response();
    for (name, value) in headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            rebuilt.headers_mut().insert(name.clone(), value.clone());
        }
    }
    rebuilt
}

/// Returns whether `response` is an error without a JSON error body of ours.
fn needs_body(response: &Response<Body>) -> bool {
    if !(response.status().is_client_error() || response.status().is_server_error()) {
        return false;
    }
    if response.extensions().get::<LoggedError>().is_some() {
        return false;
    }
    match response.headers().get(header::CONTENT_TYPE) {
        None => true,
        Some(value) => value
            .to_str()
            .is_ok_and(|value| value.starts_with("text/plain")),
    }
}

/// Returns the error code of a status, following the error table of the REST API.
fn code_of(status: StatusCode) -> &'static str {
    match status {
        StatusCode::NOT_FOUND => ErrorKind::NotFound.code(),
        StatusCode::CONFLICT => ErrorKind::Conflict.code(),
        StatusCode::UNAUTHORIZED => UNAUTHORIZED,
        StatusCode::FORBIDDEN => FORBIDDEN,
        StatusCode::TOO_MANY_REQUESTS => RATE_LIMITED,
        StatusCode::NOT_IMPLEMENTED => ErrorKind::NotSupported.code(),
        status if status.is_client_error() => ErrorKind::InvalidInput.code(),
        _ => ErrorKind::Internal.code(),
    }
}
