//! Record versions in `If-Match` and `ETag` headers, for optimistic concurrency.

use axum::Json;
use axum::http::{HeaderMap, HeaderValue, header};

use crate::server::error::{ApiError, ApiResult};

/// The condition of an `If-Match` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum IfMatch {
    /// No header.
    Absent,
    /// `*`: any version of an existing record.
    Any,
    /// One version: `"3"`, `W/"3"` or `3`.
    Version(u32),
}

/// Parses the `If-Match` header.
///
/// # Errors
///
/// Returns a 400 for a header that is neither `*` nor a single version.
fn if_match(headers: &HeaderMap) -> ApiResult<IfMatch> {
    let Some(value) = headers.get(header::IF_MATCH) else {
        return Ok(IfMatch::Absent);
    };
    let text = value.to_str().unwrap_or_default().trim();
    if text == "*" {
        return Ok(IfMatch::Any);
    }
    let tag = text.strip_prefix("W/").unwrap_or(text).trim_matches('"');
    tag.parse::<u32>().map(IfMatch::Version).map_err(|_| {
        ApiError::invalid(
            "If-Match header",
            format!(
                "`{text}` is not a version; send the ETag of a response, such as \"3\", or * \
                 for any version"
            ),
        )
    })
}

/// Returns whether the `If-Match` header is `*`, which requires that the record exists at
/// any version.
///
/// # Errors
///
/// Returns a 400 for a header that is neither `*` nor a single version.
pub fn if_match_any(headers: &HeaderMap) -> ApiResult<bool> {
    Ok(if_match(headers)? == IfMatch::Any)
}

/// Combines the expected version of an `If-Match` header with one given in the request.
/// `If-Match: *` names no version.
///
/// # Errors
///
/// Returns a 400 when both are given and differ.
pub fn expected_version(headers: &HeaderMap, in_request: Option<u32>) -> ApiResult<Option<u32>> {
    let header = match if_match(headers)? {
        IfMatch::Version(version) => Some(version),
        // Routes that need the record to exist check that themselves.
        IfMatch::Absent | IfMatch::Any => None,
    };
    match (header, in_request) {
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
