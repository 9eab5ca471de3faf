//! `/api/heads`: domain-specific classification heads trained on the catalog's image
//! embeddings, as `kai heads list|train` manage them.

use axum::Json;
use axum::extract::State;
use kai_core::recognize::{HeadManifest, HeadSpec, MATERIAL_TYPE_DOMAIN};
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{ApiJson, QueryParams};
use crate::server::AppState;
use crate::server::error::{ApiResult, ErrorBody};
use crate::server::state::blocking;

/// Returns the head routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_heads, train_head))
}

/// The target of a head to train, with the defaults of `kai heads train`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TrainHeadRequest {
    /// The head's name (default `material-type`, the head recognition uses for class
    /// confidences).
    #[serde(default = "default_domain")]
    pub domain: String,
    /// `materialType` (the default), or `property:NAME` for a property's value.
    #[serde(default = "default_label")]
    pub label: String,
    /// Only materials of this type, for subtypes within a type.
    #[serde(default)]
    pub material_type: Option<String>,
}

fn default_domain() -> String {
    MATERIAL_TYPE_DOMAIN.to_owned()
}

fn default_label() -> String {
    "materialType".to_owned()
}

/// Lists the trained heads with their held-out accuracy.
#[utoipa::path(
    get,
    path = "/api/heads",
    tag = "catalog",
    responses(
        (status = 200, description = "The heads, by domain", body = Vec<HeadManifest>),
        (status = 503, description = "A head's manifest is unreadable", body = ErrorBody),
    )
)]
async fn list_heads(State(state): State<AppState>) -> ApiResult<Json<Vec<HeadManifest>>> {
    let heads = blocking(move || state.catalog().heads()).await?;
    Ok(Json(heads))
}

/// Trains a head on the catalog's image embeddings, saves it in the store (replacing one
/// of the same domain) and reports its held-out accuracy beside the nearest-neighbour
/// vote. Other catalog requests wait while it trains.
#[utoipa::path(
    post,
    path = "/api/heads",
    tag = "catalog",
    request_body(content = TrainHeadRequest, description = "What the head predicts. An empty object `{}` trains the material-type head"),
    responses(
        (status = 200, description = "The trained head's manifest", body = HeadManifest),
        (status = 400, description = "An invalid domain or label, or too few classes or materials", body = ErrorBody),
        (status = 422, description = "The JSON does not match the request's shape", body = ErrorBody),
        (status = 503, description = "The store failed", body = ErrorBody),
    )
)]
async fn train_head(
    State(state): State<AppState>,
    params: QueryParams,
    ApiJson(request): ApiJson<TrainHeadRequest>,
) -> ApiResult<Json<HeadManifest>> {
    params.only(&[])?;
    let spec = HeadSpec {
        domain: request.domain,
        label: request.label,
        material_type: request.material_type.map(|t| t.trim().to_lowercase()),
    };
    let manifest = blocking(move || state.catalog().train_head(&spec)).await?;
    Ok(Json(manifest))
}
