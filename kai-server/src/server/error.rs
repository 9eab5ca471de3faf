//! Error responses: every failure leaves the server as `{"error": {"code", "message"}}`
//! with the HTTP status of its kind in the design's error table.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use kai_core::{Error, ErrorKind};
use serde::Serialize;

/// Code of a request over a rate limit (429).
pub const RATE_LIMITED: &str = "KAI_RATE_LIMITED";
/// Code of a request without a valid bearer token (401).
pub const UNAUTHORIZED: &str = "KAI_UNAUTHORIZED";
/// Code of a request from a browser origin or to a host name that is not allowed (403).
pub const FORBIDDEN: &str = "KAI_FORBIDDEN";

/// A failed request, turned into a JSON response.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The stable code, such as `KAI_INVALID_INPUT`.
    pub code: &'static str,
    /// The message: what failed, on which value, and what to do next.
    pub message: String,
    /// Seconds after which a rate-limited client may retry.
    pub retry_after: Option<u64>,
}

/// The body of every error response.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// The error itself.
    pub error: ErrorDetail,
}

/// The code and message of an error response.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// A stable code: the Node `err.code` of the same kind, or `KAI_RATE_LIMITED`,
    /// `KAI_UNAUTHORIZED`, `KAI_FORBIDDEN`.
    pub code: String,
    /// A message for people.
    pub message: String,
}

/// The error of a response, kept in its extensions so the request log writes it once,
/// beside the request id.
#[derive(Debug, Clone)]
pub struct LoggedError {
    /// The stable code.
    pub code: &'static str,
    /// The message.
    pub message: String,
}

impl ApiError {
    /// Builds an error with a status and code of its own.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// Creates a 400 for a request that is malformed before it reaches kai-core.
    pub fn invalid(name: &str, reason: impl std::fmt::Display) -> Self {
        Error::invalid(name, reason.to_string()).into()
    }

    /// Creates a 422 for a body that is well-formed JSON or multipart but has the wrong
    /// shape.
    pub fn unprocessable(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorKind::InvalidInput.code(),
            message,
        )
    }

    /// Creates a 413 for a body or image above its limit.
    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorKind::InvalidInput.code(),
            message,
        )
    }

    /// Creates a 429 whose `Retry-After` header gives the seconds (at least 1) until the
    /// client may retry.
    pub fn rate_limited(message: impl Into<String>, retry_after_secs: u64) -> Self {
        Self {
            retry_after: Some(retry_after_secs.max(1)),
            ..Self::new(StatusCode::TOO_MANY_REQUESTS, RATE_LIMITED, message)
        }
    }
}

/// Returns the HTTP status of an error kind.
pub fn status_of(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::InvalidInput => StatusCode::BAD_REQUEST,
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::ModelNotFound | ErrorKind::Storage => StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::Conflict => StatusCode::CONFLICT,
        ErrorKind::NotSupported => StatusCode::NOT_IMPLEMENTED,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl From<Error> for ApiError {
    fn from(err: Error) -> Self {
        let kind = err.kind();
        Self::new(status_of(kind), kind.code(), err.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_owned(),
                message: self.message.clone(),
            },
        };
        let mut response = (self.status, Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response.extensions_mut().insert(LoggedError {
            code: self.code,
            message: self.message,
        });
        response
    }
}

/// The result of a handler.
pub type ApiResult<T> = Result<T, ApiError>;
