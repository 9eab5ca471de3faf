//! `/api/parameters`: the parameter registry, with the operations of `kai params`.
//!
//! One set lives under `/api/parameters/sets/{name}`, so that a set may be named like
//! the registry-wide operations (`resolve`, `results`, `suggest`, `purge`, `schema`).
//! Bodies have the shapes of `kai params … --json`.

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use kai_core::Error;
use kai_core::registry::{
    ParamValue, ParameterSet, PurgeReport, Registry, Resolution, ResultInput, ResultRecord, Schema,
    SchemaReport, SetSummary, SuggestOptions, SuggestTarget, Suggestion, ValueChange, WriteOptions,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{
    ApiJson, ApiPath, QueryParams, expected_version, if_match_any, parse_json, versioned,
};
use crate::server::AppState;
use crate::server::error::{ApiError, ApiResult, ErrorBody};
use crate::server::state::blocking;

/// The author of a write whose request names none.
pub const DEFAULT_AUTHOR: &str = "unknown";

/// Returns the parameter registry routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_sets))
        .routes(routes!(get_set, write_set))
        .routes(routes!(set_history))
        .routes(routes!(set_diff))
        .routes(routes!(rollback_set))
        .routes(routes!(record_results))
        .routes(routes!(resolve_set))
        .routes(routes!(suggest_set))
        .routes(routes!(purge_history))
        .routes(routes!(get_schema, apply_schema))
}

/// A new version of a set: `kai params set NAME KEY=VALUE…`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SetRequest {
    /// The changed parameters and their new values, such as `{"recognition.top_k": 8}`.
    /// The others keep their current values.
    pub values: BTreeMap<String, ParamValue>,
    /// The set's scope: a material type or collection.
    #[serde(default)]
    pub scope: Option<String>,
    /// The author of the change (default `unknown`).
    #[serde(default)]
    pub author: Option<String>,
    /// The reason for the change.
    #[serde(default)]
    pub note: String,
    /// Fail with 409 unless the set is at this version (0: the set must not exist yet).
    #[serde(default)]
    pub expect_version: Option<u32>,
}

/// A rollback: `kai params rollback NAME --to N`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RollbackRequest {
    /// The version whose values the new version takes.
    pub to: u32,
    /// The set's scope.
    #[serde(default)]
    pub scope: Option<String>,
    /// The author of the change (default `unknown`).
    #[serde(default)]
    pub author: Option<String>,
    /// The reason (default `rollback to version N`).
    #[serde(default)]
    pub note: String,
    /// Fail with 409 unless the set is at this version.
    #[serde(default)]
    pub expect_version: Option<u32>,
}

/// One result to record: `kai params record NAME MATERIAL METRIC=VALUE…`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResultRequest {
    /// The set name.
    pub set: String,
    /// The set's scope.
    #[serde(default)]
    pub scope: Option<String>,
    /// The set version used (default: the current one).
    #[serde(default)]
    pub version: Option<u32>,
    /// The catalog material the set was used on.
    pub material_id: String,
    /// Metric values by name, such as `{"accuracy": 0.93}`.
    pub metrics: BTreeMap<String, f64>,
}

impl From<ResultRequest> for ResultInput {
    fn from(request: ResultRequest) -> Self {
        ResultInput {
            set: request.set,
            scope: request.scope,
            version: request.version,
            material_id: request.material_id,
            metrics: request.metrics,
        }
    }
}

/// Several results, recorded all or none.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResultBatch {
    /// The results.
    pub results: Vec<ResultRequest>,
}

/// The body of `POST /api/parameters/results`: one result, or `{"results": […]}`. The
/// handler distinguishes them by the `results` field, so errors name the failing field.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum RecordRequest {
    /// Several results.
    Batch(ResultBatch),
    /// One result.
    One(ResultRequest),
}

/// The outcome of recording a batch.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecordedBatch {
    /// Results recorded.
    pub recorded: usize,
}

/// A suggestion request: `kai params suggest MATERIAL`, or by an embedding.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SuggestRequest {
    /// The catalog material to suggest a set for.
    #[serde(default)]
    pub material_id: Option<String>,
    /// Instead of a material: an image embedding of the catalog's image model or a text
    /// embedding of its text model.
    #[serde(default)]
    pub embedding: Option<Vec<f32>>,
    /// The metric that ranks set versions (default `score`).
    #[serde(default = "default_metric")]
    pub metric: String,
    /// Rank lower metric values first, for errors and durations.
    #[serde(default)]
    pub lower_is_better: bool,
}

/// The body of `POST /api/parameters/purge`: no fields, because the retention is the
/// server's PARAM_HISTORY_RETENTION_DAYS.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PurgeRequest {}

fn default_metric() -> String {
    SuggestOptions::default().metric
}

/// Lists every parameter set with its current version.
#[utoipa::path(
    get,
    path = "/api/parameters",
    tag = "parameters",
    responses(
        (status = 200, description = "Every set's current version", body = Vec<SetSummary>),
        (status = 503, description = "The registry's storage failed", body = ErrorBody),
    )
)]
async fn list_sets(State(state): State<AppState>) -> ApiResult<Json<Vec<SetSummary>>> {
    let registry = state.registry();
    Ok(Json(blocking(move || registry.list()).await?))
}

/// Returns a version of a set (the current one unless `version` is given). Its `ETag` is
/// the version.
#[utoipa::path(
    get,
    path = "/api/parameters/sets/{name}",
    tag = "parameters",
    params(
        ("name" = String, Path, description = "The set name, such as standard"),
        ("scope" = Option<String>, Query, description = "The set's scope: a material type or collection"),
        ("version" = Option<u32>, Query, description = "The version (default: the current one)"),
    ),
    responses(
        (status = 200, description = "The set version", body = ParameterSet,
            headers(("ETag" = String, description = "The version, quoted"))),
        (status = 400, description = "An invalid name, scope or version", body = ErrorBody),
        (status = 404, description = "No such set or version", body = ErrorBody),
        (status = 503, description = "The registry's storage failed", body = ErrorBody),
    )
)]
async fn get_set(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
    params: QueryParams,
) -> ApiResult<(HeaderMap, Json<ParameterSet>)> {
    params.only(&["scope", "version"])?;
    let scope = params.text("scope")?;
    let version = params.number::<u32>("version")?;
    let registry = state.registry();
    let set = blocking(move || registry.get(&name, scope.as_deref(), version)).await?;
    Ok(versioned(set.version, set))
}

/// Writes a new version of a set with the given values changed. A new set starts from
/// the unscoped set of its name, or from the schema's defaults.
#[utoipa::path(
    put,
    path = "/api/parameters/sets/{name}",
    tag = "parameters",
    params(
        ("name" = String, Path, description = "The set name"),
        ("scope" = Option<String>, Query, description = "The set's scope, as the body's `scope`. Give it in only one of the two places"),
        ("If-Match" = Option<String>, Header, description = "The ETag of the version the change was made to, as expectVersion, or `*` for any version of an existing set"),
    ),
    request_body = SetRequest,
    responses(
        (status = 200, description = "The new version", body = ParameterSet,
            headers(("ETag" = String, description = "The new version, quoted"))),
        (status = 400, description = "An unknown parameter, a value its rule rejects, or an unknown query parameter", body = ErrorBody),
        (status = 404, description = "If-Match is * and the set does not exist", body = ErrorBody),
        (status = 409, description = "The set is at another version than expected", body = ErrorBody),
        (status = 422, description = "The JSON does not match the request's shape", body = ErrorBody),
        (status = 503, description = "The registry's storage failed", body = ErrorBody),
    )
)]
async fn write_set(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
    headers: HeaderMap,
    params: QueryParams,
    ApiJson(request): ApiJson<SetRequest>,
) -> ApiResult<(HeaderMap, Json<ParameterSet>)> {
    let SetRequest {
        values,
        scope,
        author,
        note,
        expect_version,
    } = request;
    let scope = write_scope(&params, scope)?;
    let must_exist = if_match_any(&headers)?;
    let options = write_options(&headers, expect_version, author, note)?;
    write_version(&state, move |registry| {
        if must_exist {
            registry.get(&name, scope.as_deref(), None)?;
        }
        registry.set(&name, scope.as_deref(), &values, &options)
    })
    .await
}

/// Lists every kept version of a set, oldest first.
#[utoipa::path(
    get,
    path = "/api/parameters/sets/{name}/history",
    tag = "parameters",
    params(
        ("name" = String, Path, description = "The set name"),
        ("scope" = Option<String>, Query, description = "The set's scope"),
    ),
    responses(
        (status = 200, description = "The versions, oldest first", body = Vec<ParameterSet>),
        (status = 400, description = "An invalid name or scope", body = ErrorBody),
        (status = 404, description = "No such set", body = ErrorBody),
        (status = 503, description = "The registry's storage failed", body = ErrorBody),
    )
)]
async fn set_history(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
    params: QueryParams,
) -> ApiResult<Json<Vec<ParameterSet>>> {
    params.only(&["scope"])?;
    let scope = params.text("scope")?;
    let registry = state.registry();
    Ok(Json(
        blocking(move || registry.history(&name, scope.as_deref())).await?,
    ))
}

/// Returns the parameters whose values differ between two versions of a set.
#[utoipa::path(
    get,
    path = "/api/parameters/sets/{name}/diff",
    tag = "parameters",
    params(
        ("name" = String, Path, description = "The set name"),
        ("from" = u32, Query, description = "The first version"),
        ("to" = u32, Query, description = "The second version"),
        ("scope" = Option<String>, Query, description = "The set's scope"),
    ),
    responses(
        (status = 200, description = "The differing parameters, by name", body = Vec<ValueChange>),
        (status = 400, description = "A missing or invalid version, name or scope", body = ErrorBody),
        (status = 404, description = "No such set or version", body = ErrorBody),
        (status = 503, description = "The registry's storage failed", body = ErrorBody),
    )
)]
async fn set_diff(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
    params: QueryParams,
) -> ApiResult<Json<Vec<ValueChange>>> {
    params.only(&["from", "to", "scope"])?;
    let required = |key: &str| -> ApiResult<u32> {
        params.number::<u32>(key)?.ok_or_else(|| {
            ApiError::invalid(
                &format!("query parameter {key}"),
                "is missing; give the versions to compare as from=N&to=M",
            )
        })
    };
    let (from, to) = (required("from")?, required("to")?);
    let scope = params.text("scope")?;
    let registry = state.registry();
    Ok(Json(
        blocking(move || registry.diff(&name, scope.as_deref(), from, to)).await?,
    ))
}

/// Writes a new version of a set equal to an earlier one.
#[utoipa::path(
    post,
    path = "/api/parameters/sets/{name}/rollback",
    tag = "parameters",
    params(
        ("name" = String, Path, description = "The set name"),
        ("scope" = Option<String>, Query, description = "The set's scope, as the body's `scope`. Give it in only one of the two places"),
        ("If-Match" = Option<String>, Header, description = "The ETag of the version the change was made to, as expectVersion, or `*` for any version"),
    ),
    request_body = RollbackRequest,
    responses(
        (status = 200, description = "The new version", body = ParameterSet,
            headers(("ETag" = String, description = "The new version, quoted"))),
        (status = 400, description = "An invalid name, scope, author or note, or an unknown query parameter", body = ErrorBody),
        (status = 404, description = "No such set, or the version was purged", body = ErrorBody),
        (status = 409, description = "The set is at another version than expected", body = ErrorBody),
        (status = 422, description = "The JSON does not match the request's shape", body = ErrorBody),
        (status = 503, description = "The registry's storage failed", body = ErrorBody),
    )
)]
async fn rollback_set(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
    headers: HeaderMap,
    params: QueryParams,
    ApiJson(request): ApiJson<RollbackRequest>,
) -> ApiResult<(HeaderMap, Json<ParameterSet>)> {
    let RollbackRequest {
        to,
        scope,
        author,
        note,
        expect_version,
    } = request;
    let scope = write_scope(&params, scope)?;
    let options = write_options(&headers, expect_version, author, note)?;
    write_version(&state, move |registry| {
        registry.rollback(&name, scope.as_deref(), to, &options)
    })
    .await
}

/// Records how set versions performed on catalog materials: one result, or a batch that
/// is recorded all or none.
#[utoipa::path(
    post,
    path = "/api/parameters/results",
    tag = "parameters",
    request_body = RecordRequest,
    responses(
        (status = 201, description = "The result recorded, for one result", body = ResultRecord),
        (status = 200, description = "The number recorded, for a batch", body = RecordedBatch),
        (status = 400, description = "No metrics, a bad metric name or a value that is not finite", body = ErrorBody),
        (status = 404, description = "An unknown set version or material", body = ErrorBody),
        (status = 422, description = "The JSON does not match the request's shape", body = ErrorBody),
        (status = 503, description = "The storage failed", body = ErrorBody),
    )
)]
async fn record_results(
    State(state): State<AppState>,
    params: QueryParams,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Response> {
    params.only(&[])?;
    // Parsed again from bytes so that a shape error names the field's path.
    let bytes = serde_json::to_vec(&body)
        .map_err(|err| Error::Internal(format!("cannot encode a parsed body: {err}")))?;
    let request = if body.get("results").is_some() {
        RecordRequest::Batch(parse_json("results batch", &bytes)?)
    } else {
        RecordRequest::One(parse_json("result", &bytes)?)
    };
    match request {
        RecordRequest::One(result) => {
            let recorded = blocking(move || {
                state
                    .registry()
                    .record_result(&result.into(), |id| known_material(&state, id))
            })
            .await?;
            Ok((StatusCode::CREATED, Json(recorded)).into_response())
        }
        RecordRequest::Batch(batch) => {
            let recorded = blocking(move || {
                let inputs = batch.results.into_iter().map(ResultInput::from).collect();
                state
                    .registry()
                    .record_results(inputs, |id| known_material(&state, id))
            })
            .await?;
            Ok(Json(RecordedBatch { recorded }).into_response())
        }
    }
}

/// Resolves the set version that applies to a material, or to the first of some scopes
/// that has one, else the unscoped set.
#[utoipa::path(
    get,
    path = "/api/parameters/resolve",
    tag = "parameters",
    params(
        ("set" = Option<String>, Query, description = "The set name (default: DEFAULT_PARAMETER_SET)"),
        ("materialId" = Option<String>, Query, description = "The catalog material: its type's scope, then its collection's"),
        ("scope" = Option<Vec<String>>, Query, description = "Scopes to try in order, instead of a material. Repeat the parameter for several scopes"),
    ),
    responses(
        (status = 200, description = "The set version that applies, with every value", body = Resolution),
        (status = 400, description = "Both a material and scopes, or an invalid name", body = ErrorBody),
        (status = 404, description = "An unknown set or material", body = ErrorBody),
        (status = 503, description = "The storage failed", body = ErrorBody),
    )
)]
async fn resolve_set(
    State(state): State<AppState>,
    params: QueryParams,
) -> ApiResult<Json<Resolution>> {
    params.only(&["set", "materialId", "scope"])?;
    let set = params.text("set")?;
    let material = params.text("materialId")?;
    let scopes = params.all("scope");
    if material.is_some() && !scopes.is_empty() {
        return Err(ApiError::invalid(
            "query parameter scope",
            "cannot be combined with materialId, whose type and collection are the scopes",
        ));
    }
    let resolution = blocking(move || {
        let registry = state.registry();
        match material {
            Some(id) => registry.resolve_for_material(&state.catalog(), &id, set.as_deref()),
            None => {
                let scopes: Vec<&str> = scopes.iter().map(String::as_str).collect();
                registry.resolve(set.as_deref(), &scopes)
            }
        }
    })
    .await?;
    Ok(Json(resolution))
}

/// Suggests the set version that performed best on materials similar to a catalog
/// material or an embedding. Without such results it suggests the default set.
#[utoipa::path(
    post,
    path = "/api/parameters/suggest",
    tag = "parameters",
    request_body = SuggestRequest,
    responses(
        (status = 200, description = "The suggested version, its values and the evidence", body = Suggestion),
        (status = 400, description = "Neither or both of materialId and embedding, or an embedding of the wrong dimension", body = ErrorBody),
        (status = 404, description = "An unknown material, or no default set", body = ErrorBody),
        (status = 422, description = "The JSON does not match the request's shape", body = ErrorBody),
        (status = 503, description = "The storage failed", body = ErrorBody),
    )
)]
async fn suggest_set(
    State(state): State<AppState>,
    params: QueryParams,
    ApiJson(request): ApiJson<SuggestRequest>,
) -> ApiResult<Json<Suggestion>> {
    params.only(&[])?;
    let target = match (request.material_id, request.embedding) {
        (Some(id), None) => SuggestTarget::Material(id),
        (None, Some(embedding)) => SuggestTarget::Embedding(embedding),
        _ => {
            return Err(ApiError::invalid(
                "suggest request",
                "give exactly one of materialId and embedding",
            ));
        }
    };
    let options = SuggestOptions {
        metric: request.metric,
        higher_is_better: !request.lower_is_better,
    };
    let suggestion = blocking(move || {
        let registry = state.registry();
        registry.suggest(&state.catalog(), &target, &options)
    })
    .await?;
    Ok(Json(suggestion))
}

/// Deletes versions older than PARAM_HISTORY_RETENTION_DAYS that are neither current nor
/// referenced by a result.
#[utoipa::path(
    post,
    path = "/api/parameters/purge",
    tag = "parameters",
    request_body(content = inline(PurgeRequest), description = "Empty, or an empty JSON object"),
    responses(
        (status = 200, description = "The versions deleted", body = PurgeReport),
        (status = 400, description = "A query parameter, or a body that is not JSON", body = ErrorBody),
        (status = 422, description = "A body field: the retention is PARAM_HISTORY_RETENTION_DAYS, not a request option", body = ErrorBody),
        (status = 503, description = "The registry's storage failed", body = ErrorBody),
    )
)]
async fn purge_history(
    State(state): State<AppState>,
    params: QueryParams,
    body: Bytes,
) -> ApiResult<Json<PurgeReport>> {
    // The purge takes no options, so a client that sends one (such as `olderThanDays`)
    // learns that it was not applied instead of purging with the configured retention.
    params.only(&[])?;
    if !body.trim_ascii().is_empty() {
        parse_json::<PurgeRequest>("purge request", &body)?;
    }
    let registry = state.registry();
    Ok(Json(blocking(move || registry.purge()).await?))
}

/// Returns every parameter's definition.
#[utoipa::path(
    get,
    path = "/api/parameters/schema",
    tag = "parameters",
    responses(
        (status = 200, description = "The schema", body = Schema),
        (status = 503, description = "The registry's storage failed", body = ErrorBody),
    )
)]
async fn get_schema(State(state): State<AppState>) -> ApiResult<Json<Schema>> {
    let registry = state.registry();
    Ok(Json(blocking(move || registry.schema()).await?))
}

/// Adds or replaces the definitions in the body. Parameters it does not mention keep
/// theirs. Nothing changes when a definition is inconsistent or rejects a current value.
#[utoipa::path(
    put,
    path = "/api/parameters/schema",
    tag = "parameters",
    request_body = Schema,
    responses(
        (status = 200, description = "The parameters added, changed and unchanged", body = SchemaReport),
        (status = 400, description = "An inconsistent definition, or one that a set's current value breaks", body = ErrorBody),
        (status = 422, description = "The JSON does not match the schema's shape", body = ErrorBody),
        (status = 503, description = "The registry's storage failed", body = ErrorBody),
    )
)]
async fn apply_schema(
    State(state): State<AppState>,
    params: QueryParams,
    ApiJson(schema): ApiJson<Schema>,
) -> ApiResult<Json<SchemaReport>> {
    params.only(&[])?;
    let registry = state.registry();
    Ok(Json(
        blocking(move || registry.apply_schema(&schema)).await?,
    ))
}

/// Returns the scope of a set write: the body's `scope`, else the `scope` query
/// parameter. Other query parameters are rejected, so none is silently ignored.
///
/// # Errors
///
/// Returns a 400 for another query parameter, or when the body and the query give
/// different scopes.
fn write_scope(params: &QueryParams, in_body: Option<String>) -> ApiResult<Option<String>> {
    params.only(&["scope"])?;
    let in_query = params.text("scope")?;
    match (in_body, in_query) {
        (Some(body), Some(query)) if body.trim() != query => Err(ApiError::invalid(
            "scope",
            format!("`{body}` in the body differs from `{query}` in the query string; give one"),
        )),
        (body, query) => Ok(body.or(query)),
    }
}

/// Builds the options of a write: the expected version from `If-Match` or the request,
/// and the author, [`DEFAULT_AUTHOR`] when the request names none.
fn write_options(
    headers: &HeaderMap,
    expect_version: Option<u32>,
    author: Option<String>,
    note: String,
) -> ApiResult<WriteOptions> {
    Ok(WriteOptions {
        expect_version: expected_version(headers, expect_version)?,
        author: author
            .filter(|a| !a.trim().is_empty())
            .unwrap_or_else(|| DEFAULT_AUTHOR.to_owned()),
        note,
    })
}

/// Runs a registry write on the blocking pool and returns the new version with its
/// `ETag`.
async fn write_version(
    state: &AppState,
    write: impl FnOnce(&Registry) -> kai_core::Result<ParameterSet> + Send + 'static,
) -> ApiResult<(HeaderMap, Json<ParameterSet>)> {
    let registry = state.registry();
    let set = blocking(move || write(&registry)).await?;
    Ok(versioned(set.version, set))
}

/// Returns whether `id` is a catalog material, locking the catalog for the lookup only.
fn known_material(state: &AppState, id: &str) -> kai_core::Result<bool> {
    Ok(state.catalog().get(id)?.is_some())
}
