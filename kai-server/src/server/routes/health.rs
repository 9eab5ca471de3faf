//! `/health` (liveness) and `/ready` (readiness) for Kubernetes probes.
//!
//! Liveness checks nothing but the process, so a slow model or database never gets the
//! pod restarted. Readiness checks that the catalog's default embedding models are loaded
//! and that the catalog and the registry respond to a cheap query. Each check runs on the
//! blocking pool with `KAI_READY_TIMEOUT_MS` to respond, so a probe returns even while a
//! long write holds the catalog lock.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use tokio::task::JoinHandle;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::server::AppState;

/// Readiness checks that may wait on the blocking pool at once. A check that timed out
/// keeps its thread until the component responds, so probes against a stuck component
/// would otherwise take a new thread each time.
const MAX_PENDING_CHECKS: usize = 16;

static PENDING_CHECKS: AtomicUsize = AtomicUsize::new(0);

/// Returns the health routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(health))
        .routes(routes!(ready))
}

/// The liveness response.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Health {
    /// Always `ok`: the process serves requests.
    pub status: &'static str,
    /// The kai-server version.
    pub version: &'static str,
    /// Seconds since the server state was opened.
    pub uptime_seconds: f64,
}

/// The readiness response.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Readiness {
    /// `ready` when every component passed, else `not ready`.
    pub status: &'static str,
    /// The kai-server version.
    pub version: &'static str,
    /// Each component's check.
    pub components: Vec<ComponentCheck>,
}

/// The outcome of one component's readiness check.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ComponentCheck {
    /// `text-model`, `image-model`, `catalog` or `registry`.
    pub name: &'static str,
    /// `ok`, `failed` or `timeout`.
    pub status: CheckStatus,
    /// The value checked, or the reason the check failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// How long the check took, in milliseconds.
    pub duration_ms: f64,
}

/// The outcome of a component check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum CheckStatus {
    /// The component responded.
    Ok,
    /// The component returned an error.
    Failed,
    /// The component did not respond within `KAI_READY_TIMEOUT_MS`.
    Timeout,
}

/// Reports that the process is up. It checks no dependency.
#[utoipa::path(
    get,
    path = "/health",
    tag = "health",
    responses((status = 200, description = "The process is up", body = Health))
)]
async fn health(State(state): State<AppState>) -> Json<Health> {
    Json(Health {
        status: "ok",
        version: env!("CARGO_PKG_VERSION"),
        uptime_seconds: state.started().elapsed().as_secs_f64(),
    })
}

/// Reports whether the server can serve requests: the default models loaded and the
/// catalog and registry reachable, each within `KAI_READY_TIMEOUT_MS`.
#[utoipa::path(
    get,
    path = "/ready",
    tag = "health",
    responses(
        (status = 200, description = "Every component passed", body = Readiness),
        (status = 503, description = "A component failed or timed out", body = Readiness),
    )
)]
async fn ready(State(state): State<AppState>) -> (StatusCode, Json<Readiness>) {
    let timeout = state.config().ready_timeout;
    // A model that the cache evicted is loaded again here, so readiness returns once it
    // is back. MODEL_CACHE_SIZE is at least 2, so the two loads cannot evict each other.
    let (text, image) = default_models(&state);
    let models = state.models();
    let text_check = check("text-model", timeout, move || {
        models.text(&text)?;
        Ok(text)
    });

    let models = state.models();
    let image_check = check("image-model", timeout, move || {
        models.image(&image)?;
        Ok(image)
    });

    let catalog = state.clone();
    let catalog_check = check("catalog", timeout, move || {
        let count = catalog.catalog().storage().count()?;
        Ok(format!("{count} materials"))
    });

    let registry = state.registry();
    let registry_check = check("registry", timeout, move || {
        let sets = registry.list()?.len();
        Ok(format!("{sets} parameter sets"))
    });

    let (text, image, catalog, registry) =
        tokio::join!(text_check, image_check, catalog_check, registry_check);
    let components = vec![text, image, catalog, registry];

    let all_ok = components.iter().all(|c| c.status == CheckStatus::Ok);
    let status = if all_ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = Readiness {
        status: if all_ok { "ready" } else { "not ready" },
        version: env!("CARGO_PKG_VERSION"),
        components,
    };
    (status, Json(body))
}

/// Loads the catalog's default text and image models in the background, so `/ready`
/// passes without waiting for a request to load them. Call it from within the tokio
/// runtime. The handle completes when both loads have finished or failed.
pub fn warm_up(state: &AppState) -> JoinHandle<()> {
    let (text, image) = default_models(state);
    let models = state.models();
    tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        let loaded = models.text(&text).and_then(|_| models.image(&image));
        match loaded {
            Ok(_) => tracing::info!(
                text_model = %text,
                image_model = %image,
                seconds = started.elapsed().as_secs_f64(),
                "default models ready"
            ),
            Err(err) => tracing::warn!(
                code = err.kind().code(),
                error = %err,
                "cannot load the default models; /ready reports them as failed until they load"
            ),
        }
    })
}

/// Returns the names of the catalog's text and image models.
fn default_models(state: &AppState) -> (String, String) {
    let options = state.config().store_options(state.device().clone());
    (options.text_model, options.image_model)
}

/// Runs `probe` on the blocking pool and reports its outcome within `timeout`.
async fn check<F>(name: &'static str, timeout: Duration, probe: F) -> ComponentCheck
where
    F: FnOnce() -> kai_core::Result<String> + Send + 'static,
{
    let started = Instant::now();
    let report = |status, message: String| ComponentCheck {
        name,
        status,
        message: Some(message),
        duration_ms: started.elapsed().as_secs_f64() * 1000.0,
    };
    let Some(pending) = PendingCheck::acquire() else {
        return report(
            CheckStatus::Timeout,
            format!(
                "{MAX_PENDING_CHECKS} earlier checks are still waiting for their components; \
                 not checked"
            ),
        );
    };
    let task = tokio::task::spawn_blocking(move || {
        // Released when the probe returns, not when the request gives up on it.
        let _pending = pending;
        probe()
    });
    match tokio::time::timeout(timeout, task).await {
        Ok(Ok(Ok(message))) => report(CheckStatus::Ok, message),
        Ok(Ok(Err(err))) => report(CheckStatus::Failed, err.to_string()),
        Ok(Err(err)) => report(CheckStatus::Failed, format!("the check failed: {err}")),
        Err(_) => report(
            CheckStatus::Timeout,
            format!(
                "no response within {} ms (KAI_READY_TIMEOUT_MS)",
                timeout.as_millis()
            ),
        ),
    }
}

/// One slot of [`MAX_PENDING_CHECKS`], released on drop.
struct PendingCheck;

impl PendingCheck {
    fn acquire() -> Option<Self> {
        PENDING_CHECKS
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < MAX_PENDING_CHECKS).then_some(n + 1)
            })
            .ok()
            .map(|_| Self)
    }
}

impl Drop for PendingCheck {
    fn drop(&mut self) {
        PENDING_CHECKS.fetch_sub(1, Ordering::AcqRel);
    }
}
