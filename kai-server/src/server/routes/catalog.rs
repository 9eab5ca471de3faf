//! `/api/catalog`: an overview of the store and its maintenance (`kai reindex`, the
//! recognition calibration).

use axum::Json;
use axum::extract::State;
use kai_core::recognize::calibration::Calibration;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::QueryParams;
use crate::server::AppState;
use crate::server::error::{ApiResult, ErrorBody};
use crate::server::state::blocking;

/// Returns the catalog routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(catalog_summary))
        .routes(routes!(reindex_catalog))
        .routes(routes!(calibration))
        .routes(routes!(calibrate))
}

/// The contents of the catalog and its storage.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CatalogSummary {
    /// Materials stored.
    pub materials: usize,
    /// Images stored, over all materials.
    pub images: usize,
    /// The distinct material types, sorted.
    pub material_types: Vec<String>,
    /// The text embedding model of the text vector space.
    pub text_model: String,
    /// The image embedding model of the image vector space.
    pub image_model: String,
    /// The storage of the records: `sqlite` or `postgres`.
    pub storage: &'static str,
}

/// The outcome of re-embedding the catalog.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReindexReport {
    /// Materials re-embedded.
    pub reindexed: usize,
}

/// Returns the number of materials and images, the material types and the models.
#[utoipa::path(
    get,
    path = "/api/catalog",
    tag = "catalog",
    responses(
        (status = 200, description = "The catalog's contents", body = CatalogSummary),
        (status = 503, description = "The store failed", body = ErrorBody),
    )
)]
async fn catalog_summary(State(state): State<AppState>) -> ApiResult<Json<CatalogSummary>> {
    let summary = blocking(move || {
        let catalog = state.catalog();
        Ok(CatalogSummary {
            materials: catalog.storage().count()?,
            images: catalog.storage().image_count()?,
            material_types: catalog.material_types()?,
            text_model: catalog.text_index().model().to_owned(),
            image_model: catalog.image_index().model().to_owned(),
            storage: if catalog.database().is_some() {
                "postgres"
            } else {
                "sqlite"
            },
        })
    })
    .await?;
    Ok(Json(summary))
}

/// Re-embeds every material with the configured models, rebuilds both vector spaces and
/// refits the recognition calibration, as `kai reindex` does. Other catalog requests wait
/// until it finishes.
#[utoipa::path(
    post,
    path = "/api/catalog/reindex",
    tag = "catalog",
    responses(
        (status = 200, description = "The number of materials re-embedded", body = ReindexReport),
        (status = 400, description = "A query parameter, which the route does not take", body = ErrorBody),
        (status = 503, description = "A model is missing or the store failed", body = ErrorBody),
    )
)]
async fn reindex_catalog(
    State(state): State<AppState>,
    params: QueryParams,
) -> ApiResult<Json<ReindexReport>> {
    params.only(&[])?;
    let reindexed = blocking(move || state.catalog().reindex(&mut |_| {})).await?;
    Ok(Json(ReindexReport { reindexed }))
}

/// Returns the recognition calibration: the temperature of the class vote and how well it
/// did on held-out catalog images (the default temperature before the first fit).
#[utoipa::path(
    get,
    path = "/api/catalog/calibration",
    tag = "catalog",
    responses(
        (status = 200, description = "The stored calibration", body = Calibration),
        (status = 503, description = "The calibration file is unreadable", body = ErrorBody),
    )
)]
async fn calibration(State(state): State<AppState>) -> ApiResult<Json<Calibration>> {
    Ok(Json(blocking(move || state.catalog().calibration()).await?))
}

/// Fits the recognition calibration again on the catalog's own images, as an import does
/// after it changes the catalog, and stores it.
#[utoipa::path(
    post,
    path = "/api/catalog/calibrate",
    tag = "catalog",
    responses(
        (status = 200, description = "The new calibration", body = Calibration),
        (status = 400, description = "A query parameter, which the route does not take", body = ErrorBody),
        (status = 503, description = "A model is missing or the store failed", body = ErrorBody),
    )
)]
async fn calibrate(
    State(state): State<AppState>,
    params: QueryParams,
) -> ApiResult<Json<Calibration>> {
    params.only(&[])?;
    Ok(Json(blocking(move || state.catalog().calibrate()).await?))
}
