//! Request bodies: JSON, `multipart/form-data`, or either, selected by `Content-Type`.

use axum::body::Bytes;
use axum::extract::multipart::MultipartError;
use axum::extract::rejection::{BytesRejection, JsonRejection};
use axum::extract::{FromRequest, Multipart, Request};
use axum::http::{HeaderMap, StatusCode, header};
use kai_core::ErrorKind;
use serde::de::DeserializeOwned;

use crate::server::error::{ApiError, ApiResult};

/// The media type of a multipart form.
const MULTIPART: &str = "multipart/form-data";

/// A JSON request body whose rejections are [`ApiError`]s.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(request, state).await {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(json_rejection("request body", rejection)),
        }
    }
}

/// Parses `bytes` as JSON of type `T`. Errors name `what`, such as a multipart field.
///
/// # Errors
///
/// Returns a 422 naming the field for JSON of the wrong shape and a 400 for malformed
/// JSON.
pub fn parse_json<T: DeserializeOwned>(what: &str, bytes: &[u8]) -> ApiResult<T> {
    axum::Json::<T>::from_bytes(bytes)
        .map(|axum::Json(value)| value)
        .map_err(|rejection| json_rejection(what, rejection))
}

/// A `multipart/form-data` request body, read with [`super::Form::read`].
#[derive(Debug)]
pub struct MultipartBody(pub Multipart);

impl<S: Send + Sync> FromRequest<S> for MultipartBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        if media_type(request.headers()) != MULTIPART {
            return Err(unsupported_media_type(MULTIPART));
        }
        read_multipart(request, state).await.map(Self)
    }
}

/// A request body that is either JSON or `multipart/form-data`.
#[derive(Debug)]
pub enum JsonOrMultipart {
    /// The bytes of a JSON body, parsed by the handler with [`parse_json`].
    Json(Bytes),
    /// A multipart body, read by the handler with [`super::Form::read`].
    Multipart(Multipart),
}

impl<S: Send + Sync> FromRequest<S> for JsonOrMultipart {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let media_type = media_type(request.headers());
        if media_type == MULTIPART {
            return read_multipart(request, state).await.map(Self::Multipart);
        }
        if media_type == "application/json" || media_type.ends_with("+json") {
            return Bytes::from_request(request, state)
                .await
                .map(Self::Json)
                .map_err(bytes_rejection);
        }
        Err(unsupported_media_type(
            "application/json or multipart/form-data",
        ))
    }
}

/// Starts reading a multipart body. A `Content-Type` without a boundary is a 400.
async fn read_multipart<S: Send + Sync>(request: Request, state: &S) -> ApiResult<Multipart> {
    Multipart::from_request(request, state)
        .await
        .map_err(|rejection| ApiError::invalid("multipart body", rejection.body_text()))
}

/// Converts a failure to read a multipart body: 413 when it is over the body limit.
pub(crate) fn multipart_error(err: MultipartError) -> ApiError {
    if err.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::too_large(
            "the multipart body is over the size limit (KAI_MAX_BODY_BYTES); send fewer or \
             smaller images, or raise the limit",
        )
    } else {
        ApiError::invalid("multipart body", err.body_text())
    }
}

/// Converts a rejection of axum's JSON extractor into kai's error body.
fn json_rejection(what: &str, rejection: JsonRejection) -> ApiError {
    match rejection {
        // The source is serde's message prefixed with the path of the field that failed.
        JsonRejection::JsonDataError(err) => {
            ApiError::unprocessable(format!("invalid {what}: {}", source_text(&err)))
        }
        JsonRejection::JsonSyntaxError(err) => {
            ApiError::invalid(what, format!("is not valid JSON: {}", source_text(&err)))
        }
        JsonRejection::MissingJsonContentType(_) => unsupported_media_type("application/json"),
        JsonRejection::BytesRejection(err) => bytes_rejection(err),
        other => ApiError::invalid(what, other.body_text()),
    }
}

/// Converts a failure to read the request body: 413 when it is over the body limit.
fn bytes_rejection(rejection: BytesRejection) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::too_large(
            "the request body is over the size limit (KAI_MAX_BODY_BYTES); send a smaller one",
        )
    } else {
        ApiError::invalid("request body", rejection.body_text())
    }
}

/// Returns a 415 for a body that is not of the media types a route accepts.
fn unsupported_media_type(accepted: &str) -> ApiError {
    ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ErrorKind::InvalidInput.code(),
        format!("unsupported request body type; send Content-Type: {accepted}"),
    )
}

/// Returns the message of an error's source, which axum's rejections prefix with their own
/// text.
fn source_text(err: &dyn std::error::Error) -> String {
    err.source()
        .map_or_else(|| err.to_string(), ToString::to_string)
}

/// Returns the lower-case media type of the `Content-Type` header, without parameters.
fn media_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .map(|value| value.trim().to_ascii_lowercase())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::{Request, StatusCode};

    use super::*;

    fn request(content_type: &str, body: &str) -> Request<Body> {
        Request::post("/")
            .header(header::CONTENT_TYPE, content_type)
            .body(Body::from(body.to_owned()))
            .expect("valid request")
    }

    #[tokio::test]
    async fn multipart_body_rejects_other_types() {
        let json = MultipartBody::from_request(request("application/json", "{}"), &()).await;
        let err = json.expect_err("JSON is not multipart");
        assert_eq!(err.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert!(
            err.message.contains("multipart/form-data"),
            "{}",
            err.message
        );

        let no_boundary = MultipartBody::from_request(request(MULTIPART, ""), &()).await;
        let err = no_boundary.expect_err("a boundary is required");
        assert_eq!(err.status, StatusCode::BAD_REQUEST);
        assert!(err.message.contains("multipart body"), "{}", err.message);
    }

    #[tokio::test]
    async fn json_or_multipart_tells_types_apart() {
        let text = JsonOrMultipart::from_request(request("text/plain", "slate"), &()).await;
        let err = text.expect_err("text is neither");
        assert_eq!(err.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert!(err.message.contains("application/json"), "{}", err.message);

        let json = request("application/merge-patch+json; charset=utf-8", "{\"a\": 1}");
        let body = JsonOrMultipart::from_request(json, &()).await;
        assert!(matches!(body, Ok(JsonOrMultipart::Json(bytes)) if bytes == "{\"a\": 1}"));

        let form = request("Multipart/Form-Data; boundary=x", "--x--\r\n");
        let body = JsonOrMultipart::from_request(form, &()).await;
        assert!(matches!(body, Ok(JsonOrMultipart::Multipart(_))));
    }

    #[test]
    fn json_errors_name_the_value() {
        let shape = parse_json::<Vec<u32>>("record", b"{\"a\": 1}").expect_err("not a list");
        assert_eq!(shape.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            shape.message.starts_with("invalid record: "),
            "{}",
            shape.message
        );

        let syntax = parse_json::<Vec<u32>>("record", b"[1,").expect_err("malformed");
        assert_eq!(syntax.status, StatusCode::BAD_REQUEST);
        assert!(
            syntax.message.contains("is not valid JSON"),
            "{}",
            syntax.message
        );
    }
}
