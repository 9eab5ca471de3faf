//! Multipart forms of the inference routes: photos in `image` fields, options in text
//! fields, each bounded in size while it is read.

use std::collections::HashMap;
use std::str::FromStr;

use axum::body::Bytes;
use axum::extract::Multipart;
use axum::extract::multipart::{MultipartError, MultipartRejection};
use kai_core::ErrorKind;

use crate::server::error::{ApiError, ApiResult};

/// The name of the field that carries a photo.
pub const IMAGE_FIELD: &str = "image";

/// Largest text field in bytes. Option values and hints are far shorter.
const MAX_TEXT_FIELD_BYTES: usize = 16 * 1024;

/// The parts of one multipart request: its photos in order and its text fields by name.
#[derive(Debug)]
pub struct Form {
    images: Vec<Bytes>,
    fields: HashMap<String, String>,
}

/// The fields and limits of a route's form.
#[derive(Debug, Clone, Copy)]
pub struct FormSpec<'a> {
    /// Names of the text fields the route reads.
    pub fields: &'a [&'a str],
    /// Photos per request at most.
    pub max_images: usize,
    /// Encoded bytes per photo at most (`KAI_MAX_IMAGE_BYTES`).
    pub max_image_bytes: u64,
}

impl Form {
    /// Reads every part of `multipart`, rejecting unknown fields, repeated text fields,
    /// too many photos and parts over their size limit as soon as they arrive.
    ///
    /// # Errors
    ///
    /// Returns 413 for a part or a photo count over its limit. Returns 422 for an unknown
    /// or repeated field, or a second photo where one is allowed. A malformed body gets
    /// the multipart parser's status: 400, or 413 over the body limit.
    pub async fn read(
        multipart: Result<Multipart, MultipartRejection>,
        spec: &FormSpec<'_>,
    ) -> ApiResult<Self> {
        let mut multipart = multipart.map_err(|rejection| {
            ApiError::new(
                rejection.status(),
                ErrorKind::InvalidInput.code(),
                format!(
                    "invalid body: {}; send multipart/form-data with the photo in the `{IMAGE_FIELD}` field",
                    rejection.body_text()
                ),
            )
        })?;
        let mut form = Form {
            images: Vec::new(),
            fields: HashMap::new(),
        };
        while let Some(mut field) = multipart.next_field().await.map_err(multipart_error)? {
            let name = field.name().unwrap_or_default().to_owned();
            if name == IMAGE_FIELD {
                if form.images.len() == spec.max_images {
                    return Err(too_many_images(spec.max_images));
                }
                let position = form.images.len() + 1;
                let limit = usize::try_from(spec.max_image_bytes).unwrap_or(usize::MAX);
                let bytes = read_limited(&mut field, limit, || {
                    format!(
                        "image {position} is larger than {limit} bytes (KAI_MAX_IMAGE_BYTES); \
                         send a smaller photo"
                    )
                })
                .await?;
                form.images.push(bytes);
            } else if spec.fields.contains(&name.as_str()) {
                let bytes = read_limited(&mut field, MAX_TEXT_FIELD_BYTES, || {
                    format!("field `{name}` is larger than {MAX_TEXT_FIELD_BYTES} bytes")
                })
                .await?;
                let text = String::from_utf8(bytes.to_vec()).map_err(|_| {
                    ApiError::invalid(&format!("field `{name}`"), "is not UTF-8 text")
                })?;
                if form.fields.insert(name.clone(), text).is_some() {
                    return Err(ApiError::unprocessable(format!(
                        "field `{name}` is given more than once; send it once"
                    )));
                }
            } else {
                return Err(ApiError::unprocessable(format!(
                    "unknown field `{name}`; this route accepts `{IMAGE_FIELD}`{}",
                    spec.fields
                        .iter()
                        .map(|field| format!(", `{field}`"))
                        .collect::<String>()
                )));
            }
        }
        Ok(form)
    }

    /// Takes the request's one photo.
    ///
    /// # Errors
    ///
    /// Returns 422 naming the `image` field when it is missing or repeated.
    pub fn one_image(&mut self) -> ApiResult<Bytes> {
        match self.images.len() {
            0 => Err(missing_image()),
            1 => Ok(self.images.remove(0)),
            _ => Err(too_many_images(1)),
        }
    }

    /// Takes the request's photos, at least one.
    ///
    /// # Errors
    ///
    /// Returns 422 naming the `image` field when there is none.
    pub fn images(&mut self) -> ApiResult<Vec<Bytes>> {
        if self.images.is_empty() {
            return Err(missing_image());
        }
        Ok(std::mem::take(&mut self.images))
    }

    /// Returns the text field `name`, if the request has it.
    pub fn text(&self, name: &str) -> Option<&str> {
        self.fields.get(name).map(String::as_str)
    }

    /// Parses the text field `name` as a `T`, described to the client as `expected`.
    ///
    /// # Errors
    ///
    /// Returns 400 naming the field and its value when it does not parse.
    pub fn parse<T: FromStr>(&self, name: &str, expected: &str) -> ApiResult<Option<T>> {
        let Some(text) = self.text(name) else {
            return Ok(None);
        };
        text.trim().parse().map(Some).map_err(|_| {
            ApiError::invalid(name, format!("must be {expected}, got `{}`", shorten(text)))
        })
    }
}

/// Reads a part to its end, failing as soon as it passes `limit` bytes.
async fn read_limited(
    field: &mut axum::extract::multipart::Field<'_>,
    limit: usize,
    message: impl FnOnce() -> String,
) -> ApiResult<Bytes> {
    let mut data = Vec::new();
    while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
        if data.len() + chunk.len() > limit {
            return Err(ApiError::too_large(message()));
        }
        data.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(data))
}

fn multipart_error(err: MultipartError) -> ApiError {
    ApiError::new(
        err.status(),
        ErrorKind::InvalidInput.code(),
        format!("invalid multipart body: {}", err.body_text()),
    )
}

/// Builds a 422 for a second photo on a route that takes one, else a 413 over the photo
/// count.
fn too_many_images(max_images: usize) -> ApiError {
    if max_images == 1 {
        return ApiError::unprocessable(format!(
            "the request has more than one `{IMAGE_FIELD}` field; this route takes one photo"
        ));
    }
    ApiError::too_large(format!(
        "the request has more than {max_images} `{IMAGE_FIELD}` fields; send at most \
         {max_images} photos per request"
    ))
}

fn missing_image() -> ApiError {
    ApiError::unprocessable(format!(
        "missing field `{IMAGE_FIELD}`: send the photo as a multipart file field named `{IMAGE_FIELD}`"
    ))
}

/// Returns `text` cut to a length that fits in an error message.
fn shorten(text: &str) -> String {
    const MAX_CHARS: usize = 40;
    if text.chars().count() <= MAX_CHARS {
        return text.to_owned();
    }
    let head: String = text.chars().take(MAX_CHARS).collect();
    format!("{head}…")
}
