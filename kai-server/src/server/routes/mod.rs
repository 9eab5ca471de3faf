//! The REST routes, grouped by capability. Each module returns its part of the API with
//! the OpenAPI description of its handlers.

pub mod catalog;
pub mod extract;
pub mod heads;
pub mod health;
pub mod infer;
pub mod materials;
pub mod models;
pub mod parameters;
pub mod recon;

use utoipa_axum::router::OpenApiRouter;

use super::AppState;

/// Returns every REST route with its OpenAPI description.
pub fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(health::router())
        .merge(infer::router())
        .merge(materials::router())
        .merge(heads::router())
        .merge(catalog::router())
        .merge(parameters::router())
        .merge(models::router())
        .merge(recon::router())
}
