//! Request extractors that reject with kai's JSON error body instead of axum's plain text.
//!
//! A JSON body of the wrong shape is a 422 that names the field. Malformed JSON and bad
//! query parameters are 400s that name the value. A body over the size limit is a 413,
//! and a body of another media type is a 415.

use std::str::FromStr;

use axum::body::Bytes;
use axum::extract::multipart::MultipartError;
use axum::extract::rejection::{BytesRejection, JsonRejection, PathRejection};
use axum::extract::{FromRequest, FromRequestParts, Multipart, Path, Query, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use kai_core::ErrorKind;
use serde::de::DeserializeOwned;

use crate::server::error::{ApiError, ApiResult};

/// A JSON request body; rejections are [`ApiError`]s.
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

/// Parses `bytes` as JSON of type `T`; errors name `what`, such as a multipart field.
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

/// Converts a rejection of axum's JSON extractor into kai's error body.
pub fn json_rejection(what: &str, rejection: JsonRejection) -> ApiError {
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
pub fn bytes_rejection(rejection: BytesRejection) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::too_large(
            "the request body is over the size limit (KAI_MAX_BODY_BYTES); send a smaller one",
        )
    } else {
        ApiError::invalid("request body", rejection.body_text())
    }
}

/// Converts a failure to read a multipart body: 413 when it is over the body limit.
pub fn multipart_error(err: MultipartError) -> ApiError {
    if err.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::too_large(
            "the multipart body is over the size limit (KAI_MAX_BODY_BYTES); send smaller \
             images",
        )
    } else {
        ApiError::invalid("multipart body", err.body_text())
    }
}

/// Returns a 415 for a body that is not of the media types a route accepts.
pub fn unsupported_media_type(accepted: &str) -> ApiError {
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

/// A path parameter; rejections are [`ApiError`]s.
#[derive(Debug, Clone)]
pub struct ApiPath<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(value)) => Ok(Self(value)),
            Err(PathRejection::FailedToDeserializePathParams(err)) => {
                Err(ApiError::invalid("path", err.body_text()))
            }
            Err(other) => Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                ErrorKind::Internal.code(),
                other.body_text(),
            )),
        }
    }
}

/// The query string as name and value pairs, so that a parameter may repeat (`tag=a&tag=b`)
/// and a bad value is reported with its parameter's name.
#[derive(Debug, Clone, Default)]
pub struct QueryParams(Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for QueryParams {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Query::<Vec<(String, String)>>::from_request_parts(parts, state).await {
            Ok(Query(pairs)) => Ok(Self(pairs)),
            Err(rejection) => Err(ApiError::invalid("query string", rejection.body_text())),
        }
    }
}

impl QueryParams {
    /// Rejects parameters other than `known`, so a misspelt filter is not silently
    /// ignored.
    ///
    /// # Errors
    ///
    /// Returns a 400 naming the unknown parameter and the known ones.
    pub fn only(&self, known: &[&str]) -> ApiResult<&Self> {
        match self
            .0
            .iter()
            .find(|(name, _)| !known.contains(&name.as_str()))
        {
            Some((name, _)) => Err(ApiError::invalid(
                "query parameter",
                format!("`{name}` is not one of {}", known.join(", ")),
            )),
            None => Ok(self),
        }
    }

    /// Returns the value of `name`; an empty value counts as absent.
    ///
    /// # Errors
    ///
    /// Returns a 400 when the parameter is given more than once.
    pub fn text(&self, name: &str) -> ApiResult<Option<String>> {
        let mut values = self.all(name).into_iter();
        let first = values.next();
        if values.next().is_some() {
            return Err(ApiError::invalid(
                &format!("query parameter {name}"),
                "is given more than once; give it once",
            ));
        }
        Ok(first)
    }

    /// Returns every non-empty value of `name`, in order.
    pub fn all(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(key, value)| key == name && !value.trim().is_empty())
            .map(|(_, value)| value.trim().to_owned())
            .collect()
    }

    /// Parses the value of `name` as a number.
    ///
    /// # Errors
    ///
    /// Returns a 400 naming the parameter and the value that is not a number.
    pub fn number<T: FromStr>(&self, name: &str) -> ApiResult<Option<T>> {
        let Some(text) = self.text(name)? else {
            return Ok(None);
        };
        text.parse::<T>().map(Some).map_err(|_| {
            ApiError::invalid(
                &format!("query parameter {name}"),
                format!("`{text}` is not a non-negative whole number"),
            )
        })
    }
}

/// A request body that is either JSON or `multipart/form-data`.
#[derive(Debug)]
pub enum JsonOrMultipart {
    /// The bytes of a JSON body, parsed by the handler with [`parse_json`].
    Json(Bytes),
    /// A multipart body, read by the handler with [`read_parts`].
    Multipart(Multipart),
}

impl<S: Send + Sync> FromRequest<S> for JsonOrMultipart {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let media_type = media_type(request.headers());
        if media_type == "multipart/form-data" {
            return Multipart::from_request(request, state)
                .await
                .map(Self::Multipart)
                .map_err(|rejection| ApiError::invalid("multipart body", rejection.body_text()));
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

/// Returns the lower-case media type of the `Content-Type` header, without parameters.
fn media_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .map(|value| value.trim().to_ascii_lowercase())
        .unwrap_or_default()
}

/// One part of a multipart body.
#[derive(Debug, Clone)]
pub struct Part {
    /// The field name.
    pub name: String,
    /// The file name, for file parts.
    pub file_name: Option<String>,
    /// The content.
    pub bytes: Bytes,
}

impl Part {
    /// Returns the content as text.
    ///
    /// # Errors
    ///
    /// Returns a 400 naming the field when the content is not UTF-8.
    pub fn text(&self) -> ApiResult<&str> {
        std::str::from_utf8(&self.bytes).map_err(|_| {
            ApiError::invalid(
                &format!("multipart field {}", self.name),
                "is not UTF-8 text",
            )
        })
    }
}

/// Reads every part of a multipart body, at most `max_parts` of them; the body limit
/// bounds their total size.
///
/// # Errors
///
/// Returns a 400 for a malformed body or too many parts, and a 413 for a body over the
/// limit.
pub async fn read_parts(mut multipart: Multipart, max_parts: usize) -> ApiResult<Vec<Part>> {
    let mut parts = Vec::new();
    while let Some(field) = multipart.next_field().await.map_err(multipart_error)? {
        if parts.len() == max_parts {
            return Err(ApiError::invalid(
                "multipart body",
                format!("has more than {max_parts} parts"),
            ));
        }
        let name = field.name().unwrap_or_default().to_owned();
        let file_name = field.file_name().map(str::to_owned);
        let bytes = field.bytes().await.map_err(multipart_error)?;
        parts.push(Part {
            name,
            file_name,
            bytes,
        });
    }
    Ok(parts)
}

/// Rejects parts whose field names are not in `known`.
///
/// # Errors
///
/// Returns a 400 naming the unexpected field and the known ones.
pub fn check_part_names(parts: &[Part], known: &[&str]) -> ApiResult<()> {
    match parts.iter().find(|p| !known.contains(&p.name.as_str())) {
        Some(part) => Err(ApiError::invalid(
            "multipart body",
            format!("field `{}` is not one of {}", part.name, known.join(", ")),
        )),
        None => Ok(()),
    }
}

/// Returns the version that an `If-Match` header names (`"3"`, `W/"3"` or `3`), if any.
///
/// # Errors
///
/// Returns a 400 for a header that names no single version.
pub fn if_match_version(headers: &HeaderMap) -> ApiResult<Option<u32>> {
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

/// Returns the `ETag` header value of a record version.
pub fn etag(version: u32) -> HeaderValue {
    // Digits in quotes are always a valid header value, so the fallback is never taken.
    HeaderValue::try_from(format!("\"{version}\""))
        .unwrap_or_else(|_| HeaderValue::from_static("\"\""))
}
