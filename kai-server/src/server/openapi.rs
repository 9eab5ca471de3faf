//! `/openapi.json`: the OpenAPI document of the REST API, generated from the handlers'
//! `#[utoipa::path]` annotations and their request and response types.

use axum::Router;
use axum::body::Bytes;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use kai_core::Error;
use utoipa::openapi::{InfoBuilder, LicenseBuilder, OpenApi};
use utoipa::{PartialSchema, ToSchema};

use super::AppState;
use super::error::{ApiError, ErrorBody, ErrorDetail};

/// Returns `doc` with kai-server's title, version and description, and the error body's
/// schemas, which every error response refers to.
pub fn document(mut doc: OpenApi) -> OpenApi {
    doc.info = InfoBuilder::new()
        .title("kai-server")
        .version(env!("CARGO_PKG_VERSION"))
        .description(Some(
            "Material recognition, embeddings, catalog search and the parameter registry \
             of kai. Every error response is `{\"error\": {\"code\", \"message\"}}`; the \
             code is one of KAI_INVALID_INPUT, KAI_NOT_FOUND, KAI_MODEL_NOT_FOUND, \
             KAI_CONFLICT, KAI_STORAGE, KAI_NOT_SUPPORTED, KAI_INTERNAL, KAI_RATE_LIMITED, \
             KAI_UNAUTHORIZED and KAI_FORBIDDEN.",
        ))
        .license(Some(
            LicenseBuilder::new()
                .name("Apache-2.0")
                .identifier(Some("Apache-2.0"))
                .build(),
        ))
        .build();
    let mut components = doc.components.take().unwrap_or_default();
    let mut schemas = Vec::new();
    ErrorBody::schemas(&mut schemas);
    schemas.push((ErrorBody::name().into_owned(), ErrorBody::schema()));
    schemas.push((ErrorDetail::name().into_owned(), ErrorDetail::schema()));
    for (name, schema) in schemas {
        components.schemas.entry(name).or_insert(schema);
    }
    doc.components = Some(components);
    doc
}

/// Serves the OpenAPI document at `/openapi.json`; it is encoded once, here.
pub fn router(doc: OpenApi) -> Router<AppState> {
    let encoded = document(doc).to_json().map(Bytes::from).map_err(|err| {
        tracing::error!(error = %err, "cannot encode the OpenAPI document");
        err.to_string()
    });
    Router::new().route(
        "/openapi.json",
        get(move || {
            let encoded = encoded.clone();
            async move { serve(encoded) }
        }),
    )
}

fn serve(encoded: Result<Bytes, String>) -> Response {
    match encoded {
        Ok(bytes) => ([(header::CONTENT_TYPE, "application/json")], bytes).into_response(),
        Err(message) => ApiError::from(Error::Internal(format!(
            "cannot encode the OpenAPI document: {message}"
        )))
        .into_response(),
    }
}
