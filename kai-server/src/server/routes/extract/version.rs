//! Record versions in `If-Match` and `ETag` headers, for optimistic concurrency.

use axum::Json;
use axum::http::{HeaderMap, HeaderValue, header};

use crate::server::error::{ApiError, ApiResult};

/// Returns the version that an `If-Match` header names (`"3"`, `W/"3"` or `3`), if any.
///
/// # Errors
///
/// Returns a 400 for a header that names no single version.
fn if_match_version(headers: &HeaderMap) -> ApiResult<Option<u32>> {
    let Some(value) = headers.get(header::IF_MATCH) else {
        return Ok(None);
    };
    let text = value.to_str().unwrap_or_default().trim();
    let tag = text.strip_prefix("W/").unwrap_or(text).trim_matches('"');
    tag.parse::<u32>().map(Some).map_err(|_| {
        ApiError::invalid(
            "If-Match header",
            format!("`{text}` is not a version; send the ETag of a response, such as \"3\""),
        )
    })
}

/// Combines the expected version of an `If-Match` header with one given in the request.
///
/// # Errors
///
/// Returns a 400 when both are given and differ.
pub fn expected_version(headers: &HeaderMap, in_request: Option<u32>) -> ApiResult<Option<u32>> {
    match (if_match_version(headers)?, in_request) {
        (Some(header), Some(requested)) if header != requested => Err(ApiError::invalid(
            "expectVersion",
            format!("{requested} differs from version {header} in the If-Match header; give one"),
        )),
        (header, requested) => Ok(header.or(requested)),
    }
}

/// Returns the response parts of a record version: its `ETag` header and its JSON body.
pub fn versioned<T>(version: u32, body: T) -> (HeaderMap, Json<T>) {
    let mut headers = HeaderMap::new();
    headers.insert(header::ETAG, etag(version));
    (headers, Json(body))
}

/// Returns the `ETag` header value of a record version.
fn etag(version: u32) -> HeaderValue {
    // Digits in quotes are always a valid header value, so the fallback is never taken.
    HeaderValue::try_from(format!("\"{version}\""))
        .unwrap_or_else(|_| HeaderValue::from_static("\"\""))
}
