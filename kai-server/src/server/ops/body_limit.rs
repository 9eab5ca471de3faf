//! The request body limit (`KAI_MAX_BODY_BYTES`), enforced before any route reads the
//! body, so every route rejects an oversized body with the same 413, however it reads it.

use std::pin::Pin;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::server::error::ApiError;

/// Reads and drops the body of a request that is rejected before its route reads it
/// (over a rate limit, without a valid token). A client still sending its upload would
/// otherwise see the connection reset and lose the error response. A body declared
/// larger than `limit` is left unread, and the connection closes as it would for 413.
pub async fn discard(request: Request, limit: usize) {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared.is_some_and(|length| length > u64::try_from(limit).unwrap_or(u64::MAX)) {
        return;
    }
    // An error here means the client stopped sending or went over the limit. Either way
    // there is nothing left to wait for.
    let _ = axum::body::to_bytes(request.into_body(), limit).await;
}

/// Rejects a body above `limit` bytes with 413.
///
/// A body of known length (a `Content-Length` header) is checked before it is read.
/// A body of unknown length (chunked transfer) is read here, up to the limit, and handed
/// on in memory. The MCP transport reads bodies itself and would turn an overflow while
/// reading into a 500.
pub async fn enforce(State(limit): State<usize>, request: Request, next: Next) -> Response {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok())
        .or_else(|| request.body().size_hint().exact());
    let limit_u64 = u64::try_from(limit).unwrap_or(u64::MAX);
    match declared {
        Some(length) if length > limit_u64 => too_large(limit).into_response(),
        // The server stops reading a body at its declared length, so it cannot grow.
        Some(_) => next.run(request).await,
        None => {
            let (parts, body) = request.into_parts();
            match read_up_to(body, limit).await {
                Ok(bytes) => {
                    next.run(Request::from_parts(parts, Body::from(bytes)))
                        .await
                }
                Err(error) => error.into_response(),
            }
        }
    }
}

/// Returns the 413 of a body above `limit` bytes.
pub fn too_large(limit: usize) -> ApiError {
    ApiError::too_large(format!(
        "request body is larger than the limit of {limit} bytes (KAI_MAX_BODY_BYTES); \
         send a smaller body"
    ))
}

/// Reads a body of unknown length, failing as soon as it passes `limit` bytes.
async fn read_up_to(mut body: Body, limit: usize) -> Result<Bytes, ApiError> {
    let mut buffer = Vec::new();
    loop {
        let frame = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await;
        match frame {
            None => return Ok(Bytes::from(buffer)),
            Some(Err(err)) => {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    kai_core::ErrorKind::InvalidInput.code(),
                    format!("failed to read the request body: {err}"),
                ));
            }
            Some(Ok(frame)) => {
                // Trailers carry no body bytes and are dropped.
                let Ok(data) = frame.into_data() else {
                    continue;
                };
                if buffer.len() + data.len() > limit {
                    return Err(too_large(limit));
                }
                buffer.extend_from_slice(&data);
            }
        }
    }
}
