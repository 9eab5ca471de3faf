//! Request extractors that reject with kai's JSON error body instead of axum's plain text.
//!
//! The statuses are the same on every route. Malformed JSON or multipart, and bad path or
//! query parameters, are 400s that name the value. A well-formed body of the wrong shape
//! (a JSON field of the wrong type, an unknown, repeated or missing form field) is a 422
//! that names the field. A body over `KAI_MAX_BODY_BYTES` or a photo over
//! `KAI_MAX_IMAGE_BYTES` is a 413, and a body of another media type is a 415.

mod body;
mod form;
mod params;
mod version;

pub(crate) use body::multipart_error;
pub use body::{ApiJson, JsonOrMultipart, MultipartBody, parse_json};
pub(crate) use form::read_limited;
pub use form::{FilePart, Form, FormSpec};
pub use params::{ApiPath, QueryParams};
pub use version::{expected_version, if_match_any, versioned};
