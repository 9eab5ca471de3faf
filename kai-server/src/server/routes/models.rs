//! `/api/models`: the models in the model directory, and loading and unloading them in the
//! server's LRU cache of at most `MODEL_CACHE_SIZE` models.
//!
//! The listing has the shape of `kai models list --json`, with each model's `loaded` flag
//! and the cache's entries added. The embedding routes also load models on demand, so a
//! load here only warms the cache.

use axum::Json;
use axum::extract::State;
use kai_core::Error;
use kai_core::models::{LoadedModelInfo, Manifest, ModelSummary};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{ApiPath, QueryParams};
use crate::server::AppState;
use crate::server::error::{ApiError, ApiResult, ErrorBody};
use crate::server::state::blocking;

/// Returns the model routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_models))
        .routes(routes!(load_model))
        .routes(routes!(unload_model))
}

/// One model of the listing.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModelListing {
    /// The model as `kai models list --json` lists it.
    #[serde(flatten)]
    pub summary: ModelSummary,
    /// Whether the model is in the server's cache now.
    pub loaded: bool,
}

/// The models of the model directory and the cache.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModelList {
    /// The model directory (`MODEL_DIR`).
    pub model_dir: String,
    /// Maximum number of models the cache keeps (`MODEL_CACHE_SIZE`).
    pub cache_size: usize,
    /// The built-in models, then every other model folder.
    pub models: Vec<ModelListing>,
    /// The loaded models, most recently used first.
    pub loaded: Vec<LoadedModelInfo>,
}

/// The outcome of a load.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LoadOutcome {
    /// The loaded model.
    pub model: LoadedModelInfo,
    /// Whether the model was in the cache before the request.
    pub already_loaded: bool,
    /// Names of the loaded models afterwards, most recently used first. A model that is
    /// gone was evicted as the least recently used.
    pub loaded: Vec<String>,
}

/// The outcome of an unload.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UnloadOutcome {
    /// The model name as given.
    pub name: String,
    /// Whether the model was loaded, and so was removed from the cache.
    pub unloaded: bool,
}

/// Lists the models in the model directory, with their state and whether they are loaded.
#[utoipa::path(
    get,
    path = "/api/models",
    tag = "models",
    responses(
        (status = 200, description = "The models and the cache", body = ModelList),
        (status = 503, description = "The model directory cannot be read", body = ErrorBody),
    )
)]
async fn list_models(State(state): State<AppState>) -> ApiResult<Json<ModelList>> {
    let models = state.models();
    // Listing verifies every built-in model's checksums, so it reads the files.
    let entries = {
        let models = state.models();
        blocking(move || models.store().list()).await?
    };
    let loaded = models.loaded();
    let listing = entries
        .into_iter()
        .map(|entry| {
            let summary = ModelSummary::from(entry);
            let loaded = loaded.iter().any(|info| info.name == summary.name);
            ModelListing { summary, loaded }
        })
        .collect();
    Ok(Json(ModelList {
        model_dir: models.store().root().display().to_string(),
        cache_size: models.capacity(),
        models: listing,
        loaded,
    }))
}

/// Loads a model into the cache, evicting the least recently used model when the cache
/// is full.
#[utoipa::path(
    post,
    path = "/api/models/{name}/load",
    tag = "models",
    params(("name" = String, Path, description = "A built-in model or a folder name in the model directory")),
    responses(
        (status = 200, description = "The model is loaded", body = LoadOutcome),
        (status = 400, description = "The name is empty or a path, or a query parameter is given", body = ErrorBody),
        (status = 404, description = "No such model in the model directory", body = ErrorBody),
        (status = 503, description = "The model's files are missing or corrupt", body = ErrorBody),
    )
)]
async fn load_model(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
    params: QueryParams,
) -> ApiResult<Json<LoadOutcome>> {
    params.only(&[])?;
    let models = state.models();
    let (model, already_loaded) = blocking(move || {
        if let Some(model) = models.get(&name)? {
            return Ok((model, true));
        }
        Ok((models.load(&name)?, false))
    })
    .await?;
    let loaded = state.models().loaded();
    let info = loaded
        .iter()
        .find(|info| info.name == model.name())
        .cloned()
        .ok_or_else(|| {
            // Only a concurrent load or unload can remove the model this quickly.
            ApiError::from(Error::Conflict(format!(
                "model `{}` was loaded but left the cache at once, because other requests \
                 loaded or unloaded models; retry",
                model.name()
            )))
        })?;
    Ok(Json(LoadOutcome {
        model: info,
        already_loaded,
        loaded: loaded.into_iter().map(|info| info.name).collect(),
    }))
}

/// Removes a model from the cache. Requests that use it finish first.
#[utoipa::path(
    post,
    path = "/api/models/{name}/unload",
    tag = "models",
    params(("name" = String, Path, description = "A built-in model or a folder name in the model directory")),
    responses(
        (status = 200, description = "The model is not loaded any more", body = UnloadOutcome),
        (status = 400, description = "The name is empty or a path, or a query parameter is given", body = ErrorBody),
        (status = 404, description = "No such model in the model directory", body = ErrorBody),
    )
)]
async fn unload_model(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
    params: QueryParams,
) -> ApiResult<Json<UnloadOutcome>> {
    params.only(&[])?;
    let models = state.models();
    let unloaded = models.unload(&name)?;
    if !unloaded && Manifest::find(&name).is_none() && !models.store().folder(&name).is_dir() {
        return Err(Error::NotFound {
            what: "model",
            name,
            hint: format!(
                " (neither a built-in model ({}) nor a folder in {})",
                Manifest::builtin_names().join(", "),
                models.store().root().display()
            ),
        }
        .into());
    }
    Ok(Json(UnloadOutcome { name, unloaded }))
}
