//! The parameter registry on `Kai`: versioned parameter sets, recorded results,
//! resolution, suggestions and the schema. Results have the shapes of kai-server's
//! `/api/parameters` routes.

use std::collections::BTreeMap;

use kai_core::Error;
use kai_core::registry::{
    ParameterSet, Registry, ResultInput, Schema, SuggestOptions, SuggestTarget, Values,
    WriteOptions,
};
use napi::bindgen_prelude::{AsyncTask, Float32Array, FromNapiValue, Unknown};
use napi_derive::napi;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::convert::{from_js, from_json, options, split_field};
use crate::job::{Job, Json};
use crate::kai::{Kai, Services};

/// The scope option of the set methods.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScopeOptions {
    scope: Option<String>,
}

/// The options of `getParameters`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct GetOptions {
    scope: Option<String>,
    version: Option<u32>,
}

/// The options of a write.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct WriteRequest {
    scope: Option<String>,
    author: Option<String>,
    #[serde(default)]
    note: String,
    expect_version: Option<u32>,
}

impl WriteRequest {
    /// Splits off the scope and builds the write options. A missing or blank author is
    /// `unknown`, as in kai-server.
    fn into_parts(self) -> (Option<String>, WriteOptions) {
        let mut options = WriteOptions::default();
        if let Some(author) = self.author.filter(|a| !a.trim().is_empty()) {
            options.author = author;
        }
        options.note = self.note;
        options.expect_version = self.expect_version;
        (self.scope, options)
    }
}

/// A result to record.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ResultRequest {
    set: String,
    scope: Option<String>,
    version: Option<u32>,
    material_id: String,
    metrics: BTreeMap<String, f64>,
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

/// The outcome of `recordResults`.
#[derive(Debug, Serialize)]
struct RecordedBatch {
    recorded: usize,
}

/// The options of `resolveParameters`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ResolveRequest {
    set: Option<String>,
    #[serde(default)]
    scopes: Vec<String>,
    material_id: Option<String>,
}

/// A suggestion request, without its embedding.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SuggestRequest {
    material_id: Option<String>,
    metric: Option<String>,
    higher_is_better: Option<bool>,
}

#[napi]
impl Kai {
    /// Lists every parameter set with its current version.
    #[napi(ts_return_type = "Promise<SetSummary[]>")]
    pub fn list_parameter_sets(&self) -> AsyncTask<Job<Json>> {
        Job::run(self.services(), |services| {
            Json::of(&services.registry.list()?)
        })
    }

    /// Returns version `options.version` of a set (default: the current one).
    #[napi(
        ts_args_type = "name: string, options?: GetParametersOptions",
        ts_return_type = "Promise<ParameterSet>"
    )]
    pub fn get_parameters(
        &self,
        name: Unknown<'_>,
        options_arg: Option<Unknown<'_>>,
    ) -> AsyncTask<Job<Json>> {
        let prepared = (|| {
            let name: String = from_js("name", name)?;
            let options: GetOptions = options("options", options_arg)?;
            Ok((self.services()?, name, options))
        })();
        Job::run(prepared, |(services, name, options)| {
            let set = services
                .registry
                .get(&name, options.scope.as_deref(), options.version)?;
            Json::of(&set)
        })
    }

    /// Writes a new version of a set with `values` changed. A new set starts from the
    /// unscoped set of its name, or from the schema's defaults. Rejects with
    /// `KAI_CONFLICT` unless the set is at `options.expectVersion`, when given, where 0
    /// means the set must not exist yet.
    #[napi(
        ts_args_type = "name: string, values: Record<string, ParamValue>, options?: WriteParametersOptions",
        ts_return_type = "Promise<ParameterSet>"
    )]
    pub fn set_parameters(
        &self,
        name: Unknown<'_>,
        values: Unknown<'_>,
        options_arg: Option<Unknown<'_>>,
    ) -> AsyncTask<Job<Json>> {
        self.write_set(
            name,
            ("values", values),
            options_arg,
            |registry, name, scope, values: Values, options| {
                registry.set(name, scope, &values, options)
            },
        )
    }

    /// Lists every kept version of a set, oldest first.
    #[napi(
        ts_args_type = "name: string, options?: ScopeOptions",
        ts_return_type = "Promise<ParameterSet[]>"
    )]
    pub fn parameter_history(
        &self,
        name: Unknown<'_>,
        options_arg: Option<Unknown<'_>>,
    ) -> AsyncTask<Job<Json>> {
        let prepared = (|| {
            let name: String = from_js("name", name)?;
            let options: ScopeOptions = options("options", options_arg)?;
            Ok((self.services()?, name, options))
        })();
        Job::run(prepared, |(services, name, options)| {
            Json::of(&services.registry.history(&name, options.scope.as_deref())?)
        })
    }

    /// Returns the parameters whose values differ between versions `from` and `to`.
    #[napi(
        ts_args_type = "name: string, from: number, to: number, options?: ScopeOptions",
        ts_return_type = "Promise<ValueChange[]>"
    )]
    pub fn diff_parameters(
        &self,
        name: Unknown<'_>,
        from: Unknown<'_>,
        to: Unknown<'_>,
        options_arg: Option<Unknown<'_>>,
    ) -> AsyncTask<Job<Json>> {
        let prepared = (|| {
            let name: String = from_js("name", name)?;
            let from: u32 = from_js("from", from)?;
            let to: u32 = from_js("to", to)?;
            let options: ScopeOptions = options("options", options_arg)?;
            Ok((self.services()?, name, from, to, options))
        })();
        Job::run(prepared, |(services, name, from, to, options)| {
            let changes = services
                .registry
                .diff(&name, options.scope.as_deref(), from, to)?;
            Json::of(&changes)
        })
    }

    /// Writes a new version of a set equal to version `to`.
    #[napi(
        ts_args_type = "name: string, to: number, options?: WriteParametersOptions",
        ts_return_type = "Promise<ParameterSet>"
    )]
    pub fn rollback_parameters(
        &self,
        name: Unknown<'_>,
        to: Unknown<'_>,
        options_arg: Option<Unknown<'_>>,
    ) -> AsyncTask<Job<Json>> {
        self.write_set(
            name,
            ("to", to),
            options_arg,
            |registry, name, scope, to: u32, options| registry.rollback(name, scope, to, options),
        )
    }

    /// Records how a set version (default: the current one) performed on a catalog
    /// material.
    #[napi(
        ts_args_type = "result: ResultInput",
        ts_return_type = "Promise<ResultRecord>"
    )]
    pub fn record_result(&self, result: Unknown<'_>) -> AsyncTask<Job<Json>> {
        let prepared = (|| {
            let result: ResultRequest = from_js("result", result)?;
            Ok((self.services()?, result))
        })();
        Job::run(prepared, |(services, result)| {
            let record = services
                .registry
                .record_result(&result.into(), |id| known_material(&services, id))?;
            Json::of(&record)
        })
    }

    /// Records several results in one transaction, all or none.
    #[napi(
        ts_args_type = "results: ResultInput[]",
        ts_return_type = "Promise<RecordedBatch>"
    )]
    pub fn record_results(&self, results: Unknown<'_>) -> AsyncTask<Job<Json>> {
        let prepared = (|| {
            let results: Vec<ResultRequest> = from_js("results", results)?;
            Ok((self.services()?, results))
        })();
        Job::run(prepared, |(services, results)| {
            let inputs = results.into_iter().map(ResultInput::from).collect();
            let recorded = services
                .registry
                .record_results(inputs, |id| known_material(&services, id))?;
            Json::of(&RecordedBatch { recorded })
        })
    }

    /// Resolves the set (default `DEFAULT_PARAMETER_SET`) that applies to a catalog
    /// material (its type, then its collection) or to the first of `scopes` that has a
    /// version of it, else the unscoped set.
    #[napi(
        ts_args_type = "options?: ResolveOptions",
        ts_return_type = "Promise<Resolution>"
    )]
    pub fn resolve_parameters(&self, options_arg: Option<Unknown<'_>>) -> AsyncTask<Job<Json>> {
        let prepared = (|| {
            let request: ResolveRequest = options("options", options_arg)?;
            if request.material_id.is_some() && !request.scopes.is_empty() {
                return Err(Error::invalid(
                    "options.scopes",
                    "cannot be combined with materialId, whose type and collection are the \
                     scopes",
                ));
            }
            Ok((self.services()?, request))
        })();
        Job::run(prepared, |(services, request)| {
            let set = request.set.as_deref();
            let resolution = match request.material_id {
                Some(id) => {
                    services
                        .registry
                        .resolve_for_material(&services.catalog(), &id, set)?
                }
                None => {
                    let scopes: Vec<&str> = request.scopes.iter().map(String::as_str).collect();
                    services.registry.resolve(set, &scopes)?
                }
            };
            Json::of(&resolution)
        })
    }

    /// Suggests the set version that performed best on catalog materials similar to
    /// `target.materialId` or `target.embedding`, or the default set without such results.
    #[napi(
        ts_args_type = "target: SuggestTarget",
        ts_return_type = "Promise<Suggestion>"
    )]
    pub fn suggest_parameters(&self, target: Unknown<'_>) -> AsyncTask<Job<Json>> {
        let prepared = (|| {
            let (fields, embedding) = split_field("target", Some(target), "embedding")?;
            let request: SuggestRequest = from_json("target", fields)?;
            let embedding = embedding.map(embedding_from_js).transpose()?;
            let target = match (request.material_id, embedding) {
                (Some(id), None) => SuggestTarget::Material(id),
                (None, Some(vector)) => SuggestTarget::Embedding(vector),
                _ => {
                    return Err(Error::invalid(
                        "target",
                        "give exactly one of materialId and embedding",
                    ));
                }
            };
            let defaults = SuggestOptions::default();
            let options = SuggestOptions {
                metric: request.metric.unwrap_or(defaults.metric),
                higher_is_better: request
                    .higher_is_better
                    .unwrap_or(defaults.higher_is_better),
            };
            Ok((self.services()?, target, options))
        })();
        Job::run(prepared, |(services, target, options)| {
            let suggestion = services
                .registry
                .suggest(&services.catalog(), &target, &options)?;
            Json::of(&suggestion)
        })
    }

    /// Deletes versions older than `PARAM_HISTORY_RETENTION_DAYS` that are neither current
    /// nor referenced by a result.
    #[napi(ts_return_type = "Promise<PurgeReport>")]
    pub fn purge_parameters(&self) -> AsyncTask<Job<Json>> {
        Job::run(self.services(), |services| {
            Json::of(&services.registry.purge()?)
        })
    }

    /// Returns every parameter's definition.
    #[napi(ts_return_type = "Promise<ParameterSchema>")]
    pub fn parameter_schema(&self) -> AsyncTask<Job<Json>> {
        Job::run(self.services(), |services| {
            Json::of(&services.registry.schema()?)
        })
    }

    /// Adds or replaces the definitions `schema` gives. Parameters it does not mention
    /// keep theirs. Nothing changes when a definition is inconsistent or rejects a
    /// current value.
    #[napi(
        ts_args_type = "schema: ParameterSchema",
        ts_return_type = "Promise<SchemaReport>"
    )]
    pub fn apply_parameter_schema(&self, schema: Unknown<'_>) -> AsyncTask<Job<Json>> {
        let prepared = (|| {
            let schema: Schema = from_js("schema", schema)?;
            Ok((self.services()?, schema))
        })();
        Job::run(prepared, |(services, schema)| {
            Json::of(&services.registry.apply_schema(&schema)?)
        })
    }
}

impl Kai {
    /// Converts the arguments of a set write (the set name, `argument` and the write
    /// options) and runs `write` with them on the thread pool.
    fn write_set<T: DeserializeOwned + Send + 'static>(
        &self,
        name: Unknown<'_>,
        (argument_name, argument): (&str, Unknown<'_>),
        options_arg: Option<Unknown<'_>>,
        write: impl FnOnce(
            &Registry,
            &str,
            Option<&str>,
            T,
            &WriteOptions,
        ) -> kai_core::Result<ParameterSet>
        + Send
        + 'static,
    ) -> AsyncTask<Job<Json>> {
        let prepared = (|| {
            let name: String = from_js("name", name)?;
            let argument: T = from_js(argument_name, argument)?;
            let request: WriteRequest = options("options", options_arg)?;
            Ok((self.services()?, name, argument, request))
        })();
        Job::run(prepared, |(services, name, argument, request)| {
            let (scope, options) = request.into_parts();
            let set = write(
                &services.registry,
                &name,
                scope.as_deref(),
                argument,
                &options,
            )?;
            Json::of(&set)
        })
    }
}

/// Reads an embedding: a Float32Array or an array of numbers.
fn embedding_from_js(value: Unknown<'_>) -> kai_core::Result<Vec<f32>> {
    match Float32Array::from_unknown(value) {
        Ok(vector) => Ok(vector.to_vec()),
        Err(_) => from_js("target.embedding", value),
    }
}

/// Returns whether `id` is a catalog material, locking the catalog for the lookup only.
fn known_material(services: &Services, id: &str) -> kai_core::Result<bool> {
    Ok(services.catalog().get(id)?.is_some())
}
