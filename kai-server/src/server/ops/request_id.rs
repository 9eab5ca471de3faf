//! Request ids: each request gets one, from its `x-request-id` header or generated, and
//! the response echoes it, so a client can quote the id that the server's logs show.

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;

/// The header that carries the request id both ways.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Maximum length of a client-chosen id. A longer one is replaced by a generated id.
const MAX_LEN: usize = 128;

/// The id of the current request, in the request's extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub String);

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Keeps the client's `x-request-id` when it is 1 to 128 printable ASCII characters
/// without spaces, otherwise generates a UUID v4, and echoes it in the response.
pub async fn assign(mut request: Request, next: Next) -> Response {
    let supplied = request
        .headers()
        .get(&REQUEST_ID)
        .and_then(|value| value.to_str().ok())
        .filter(|id| is_acceptable(id))
        .map(str::to_owned);
    let id = supplied.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    // Both ids are printable ASCII, which every header value accepts.
    let value = HeaderValue::from_str(&id).unwrap_or_else(|_| HeaderValue::from_static("-"));
    request.headers_mut().insert(REQUEST_ID, value.clone());
    request.extensions_mut().insert(RequestId(id));
    let mut response = next.run(request).await;
    response.headers_mut().insert(REQUEST_ID, value);
    response
}

/// Returns whether a client-supplied id is short and safe to write into a log line.
fn is_acceptable(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_LEN && id.bytes().all(|b| b.is_ascii_graphic())
}
