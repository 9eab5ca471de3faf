//! `Registry`: the parameter registry. Results cross as JSON text; `kai/registry.py`
//! builds the dataclasses.

use std::collections::BTreeMap;
use std::path::PathBuf;

use kai_core::catalog::StoreOptions;
use kai_core::db::{DatabaseUrl, StorageConfig};
use kai_core::registry::{
    NewResult, ParamValue, RegistrySettings, Schema, SuggestOptions, SuggestTarget, Values,
    VersionRef, WriteOptions,
};
use numpy::PyReadonlyArray1;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyFloat, PyInt, PyString};

use crate::catalog::Catalog;
use crate::convert::{count, from_json, json};
use crate::errors::{detached, raise};

/// One result of `record_batch`: set name, scope, version, material id and metrics.
type BatchResult = (String, Option<String>, u32, String, BTreeMap<String, f64>);

/// The parameter registry of a store folder, or of a PostgreSQL database.
#[pyclass(module = "kai._kai", frozen)]
#[derive(Debug)]
pub struct Registry {
    inner: kai_core::registry::Registry,
}

impl Registry {
    /// Returns the core registry, for the bindings that resolve a set's typed options.
    pub fn inner(&self) -> &kai_core::registry::Registry {
        &self.inner
    }
}

#[pymethods]
impl Registry {
    /// Opens the registry of `store` (default `KAI_DATA_DIR`, else `./kai-data`) on the
    /// backend the environment configures, or on PostgreSQL at `database_url`. The
    /// keyword settings override `DEFAULT_PARAMETER_SET`, `SIMILARITY_THRESHOLD` and
    /// `PARAM_HISTORY_RETENTION_DAYS` and are checked by the same rules.
    #[new]
    #[pyo3(signature = (store = None, *, database_url = None, default_set = None, similarity_threshold = None, retention_days = None))]
    fn new(
        py: Python<'_>,
        store: Option<PathBuf>,
        database_url: Option<String>,
        default_set: Option<String>,
        similarity_threshold: Option<f64>,
        retention_days: Option<i64>,
    ) -> PyResult<Self> {
        let root = StoreOptions::default_root(store.as_deref());
        let inner = detached(py, || {
            let config = match database_url {
                Some(url) => StorageConfig {
                    catalog: None,
                    registry: Some(DatabaseUrl::parse("database_url", &url)?),
                },
                None => StorageConfig::from_env()?,
            };
            let overrides = [
                ("DEFAULT_PARAMETER_SET", default_set),
                (
                    "SIMILARITY_THRESHOLD",
                    similarity_threshold.map(|t| t.to_string()),
                ),
                (
                    "PARAM_HISTORY_RETENTION_DAYS",
                    retention_days.map(|d| d.to_string()),
                ),
            ];
            let settings = RegistrySettings::from_vars(|name| {
                match overrides.iter().find(|(var, _)| *var == name) {
                    Some((_, Some(value))) => Some(value.clone()),
                    _ => std::env::var(name).ok(),
                }
            })?;
            kai_core::registry::Registry::open(&root, &config, settings)
        })?;
        Ok(Self { inner })
    }

    /// Returns the set used when none is named.
    #[getter]
    fn default_set(&self) -> &str {
        &self.inner.settings().default_set
    }

    /// Returns the smallest cosine similarity at which results count for suggestions.
    #[getter]
    fn similarity_threshold(&self) -> f32 {
        self.inner.settings().similarity_threshold
    }

    /// Returns the days that superseded versions are kept.
    #[getter]
    fn retention_days(&self) -> u32 {
        self.inner.settings().retention_days
    }

    /// Lists every set's current version, as JSON.
    fn list(&self, py: Python<'_>) -> PyResult<String> {
        let sets = detached(py, || self.inner.list())?;
        json(py, &sets)
    }

    /// Returns a set version as JSON.
    #[pyo3(signature = (name, *, version = None, scope = None))]
    fn get(
        &self,
        py: Python<'_>,
        name: &str,
        version: Option<i64>,
        scope: Option<&str>,
    ) -> PyResult<String> {
        let version = version.map(|v| count(py, "version", v)).transpose()?;
        let set = detached(py, || self.inner.get(name, scope, version))?;
        json(py, &set)
    }

    /// Writes a new version with `values` changed; returns it as JSON.
    #[pyo3(signature = (name, values, *, scope = None, expect_version = None, author = "unknown", note = ""))]
    #[allow(clippy::too_many_arguments)]
    fn set(
        &self,
        py: Python<'_>,
        name: &str,
        values: BTreeMap<String, Bound<'_, PyAny>>,
        scope: Option<&str>,
        expect_version: Option<i64>,
        author: &str,
        note: &str,
    ) -> PyResult<String> {
        let changes = param_values(py, values)?;
        let expect_version = expect_version
            .map(|v| count(py, "expect_version", v))
            .transpose()?;
        let options = write_options(expect_version, author, note);
        let set = detached(py, || self.inner.set(name, scope, &changes, &options))?;
        json(py, &set)
    }

    /// Lists every kept version of a set, oldest first, as JSON.
    #[pyo3(signature = (name, *, scope = None))]
    fn history(&self, py: Python<'_>, name: &str, scope: Option<&str>) -> PyResult<String> {
        let history = detached(py, || self.inner.history(name, scope))?;
        json(py, &history)
    }

    /// Returns the values that differ between versions `a` and `b`, as JSON.
    #[pyo3(signature = (name, a, b, *, scope = None))]
    fn diff(
        &self,
        py: Python<'_>,
        name: &str,
        a: i64,
        b: i64,
        scope: Option<&str>,
    ) -> PyResult<String> {
        let (a, b) = (count(py, "a", a)?, count(py, "b", b)?);
        let changes = detached(py, || self.inner.diff(name, scope, a, b))?;
        json(py, &changes)
    }

    /// Writes a new version equal to version `to`; returns it as JSON.
    #[pyo3(signature = (name, to, *, scope = None, expect_version = None, author = "unknown", note = ""))]
    #[allow(clippy::too_many_arguments)]
    fn rollback(
        &self,
        py: Python<'_>,
        name: &str,
        to: i64,
        scope: Option<&str>,
        expect_version: Option<i64>,
        author: &str,
        note: &str,
    ) -> PyResult<String> {
        let to = count(py, "to", to)?;
        let expect_version = expect_version
            .map(|v| count(py, "expect_version", v))
            .transpose()?;
        let options = write_options(expect_version, author, note);
        let set = detached(py, || self.inner.rollback(name, scope, to, &options))?;
        json(py, &set)
    }

    /// Records the metrics a set version achieved on a material; returns the record as
    /// JSON.
    #[pyo3(signature = (name, material_id, metrics, *, scope = None, version = None))]
    fn record(
        &self,
        py: Python<'_>,
        name: &str,
        material_id: &str,
        metrics: BTreeMap<String, f64>,
        scope: Option<&str>,
        version: Option<i64>,
    ) -> PyResult<String> {
        let version = version.map(|v| count(py, "version", v)).transpose()?;
        let record = detached(py, || {
            self.inner
                .record(name, scope, version, material_id, &metrics)
        })?;
        json(py, &record)
    }

    /// Records many results in one transaction, all or none. Each result is a tuple
    /// (set name, scope, version, material id, metrics) naming its set version exactly.
    fn record_batch(&self, py: Python<'_>, results: Vec<BatchResult>) -> PyResult<()> {
        let results: Vec<NewResult> = results
            .into_iter()
            .map(|(name, scope, version, material_id, metrics)| NewResult {
                set: VersionRef {
                    name,
                    scope,
                    version,
                },
                material_id,
                metrics,
            })
            .collect();
        detached(py, || self.inner.record_batch(&results))
    }

    /// Resolves a set for a catalog material (its type, then its collection, then the
    /// unscoped set), as JSON.
    #[pyo3(signature = (material_id, catalog, *, set = None))]
    fn resolve(
        &self,
        py: Python<'_>,
        material_id: &str,
        catalog: &Bound<'_, Catalog>,
        set: Option<&str>,
    ) -> PyResult<String> {
        let catalog = catalog.get();
        let resolution = detached(py, || {
            self.inner
                .resolve_for_material(&*catalog.lock()?, material_id, set)
        })?;
        json(py, &resolution)
    }

    /// Resolves a set for the first of `scopes` that has a version of it, else the
    /// unscoped set, as JSON.
    #[pyo3(signature = (scopes, *, set = None))]
    fn resolve_scopes(
        &self,
        py: Python<'_>,
        scopes: Vec<String>,
        set: Option<&str>,
    ) -> PyResult<String> {
        let scopes: Vec<&str> = scopes.iter().map(String::as_str).collect();
        let resolution = detached(py, || self.inner.resolve(set, &scopes))?;
        json(py, &resolution)
    }

    /// Suggests the set version that performed best on similar catalog materials, as
    /// JSON. `target` is a material id or an embedding.
    #[pyo3(signature = (target, catalog, *, metric = "score", lower_is_better = false))]
    fn suggest(
        &self,
        py: Python<'_>,
        target: &Bound<'_, PyAny>,
        catalog: &Bound<'_, Catalog>,
        metric: &str,
        lower_is_better: bool,
    ) -> PyResult<String> {
        let target = suggest_target(target)?;
        let options = SuggestOptions {
            metric: metric.to_owned(),
            higher_is_better: !lower_is_better,
        };
        let catalog = catalog.get();
        let suggestion = detached(py, || {
            self.inner.suggest(&*catalog.lock()?, &target, &options)
        })?;
        json(py, &suggestion)
    }

    /// Deletes superseded versions older than the retention period; returns the report
    /// as JSON.
    fn purge(&self, py: Python<'_>) -> PyResult<String> {
        let report = detached(py, || self.inner.purge())?;
        json(py, &report)
    }

    /// Returns the schema as JSON.
    fn schema(&self, py: Python<'_>) -> PyResult<String> {
        let schema = detached(py, || self.inner.schema())?;
        json(py, &schema)
    }

    /// Applies a schema file (TOML, else JSON); returns the report as JSON.
    fn apply_schema_file(&self, py: Python<'_>, path: PathBuf) -> PyResult<String> {
        let report = detached(py, || self.inner.apply_schema(&Schema::from_file(&path)?))?;
        json(py, &report)
    }

    /// Applies a schema given as JSON text; returns the report as JSON.
    fn apply_schema_json(&self, py: Python<'_>, schema: &str) -> PyResult<String> {
        let schema: Schema = from_json(py, "schema", schema)?;
        let report = detached(py, || self.inner.apply_schema(&schema))?;
        json(py, &report)
    }

    fn __repr__(&self) -> String {
        format!(
            "Registry(default_set={:?})",
            self.inner.settings().default_set
        )
    }
}

fn write_options(expect_version: Option<u32>, author: &str, note: &str) -> WriteOptions {
    WriteOptions {
        expect_version,
        author: author.to_owned(),
        note: note.to_owned(),
    }
}

/// Converts Python values to parameter values; the schema checks them in the core.
fn param_values(py: Python<'_>, values: BTreeMap<String, Bound<'_, PyAny>>) -> PyResult<Values> {
    values
        .into_iter()
        .map(|(name, value)| Ok((name.clone(), param_value(py, &name, &value)?)))
        .collect()
}

fn param_value(py: Python<'_>, name: &str, value: &Bound<'_, PyAny>) -> PyResult<ParamValue> {
    // bool before int: Python's bool is a subclass of int.
    if let Ok(flag) = value.cast::<PyBool>() {
        return Ok(ParamValue::Bool(flag.is_true()));
    }
    if value.is_instance_of::<PyInt>() {
        if let Ok(number) = value.extract::<i64>() {
            return Ok(ParamValue::Int(number));
        }
        return raise(
            py,
            Err(kai_core::Error::invalid(
                format!("parameter {name}"),
                format!("{value} does not fit in a 64-bit integer"),
            )),
        );
    }
    if value.is_instance_of::<PyFloat>() {
        return Ok(ParamValue::Float(value.extract::<f64>()?));
    }
    if let Ok(text) = value.cast::<PyString>() {
        return Ok(ParamValue::Text(text.to_str()?.to_owned()));
    }
    let kind = value
        .get_type()
        .name()
        .map_or_else(|_| "unknown".to_owned(), |n| n.to_string());
    raise(
        py,
        Err(kai_core::Error::invalid(
            format!("parameter {name}"),
            format!("a {kind} is not a parameter value; pass a bool, int, float or str"),
        )),
    )
}

/// Reads a material id (`str`) or an embedding (a 1-D float32 array or a sequence of
/// numbers).
fn suggest_target(target: &Bound<'_, PyAny>) -> PyResult<SuggestTarget> {
    let py = target.py();
    if let Ok(id) = target.cast::<PyString>() {
        return Ok(SuggestTarget::Material(id.to_str()?.to_owned()));
    }
    if let Ok(array) = target.extract::<PyReadonlyArray1<'_, f32>>() {
        return Ok(SuggestTarget::Embedding(array.as_array().to_vec()));
    }
    match target.extract::<Vec<f32>>() {
        Ok(vector) => Ok(SuggestTarget::Embedding(vector)),
        Err(_) => raise(
            py,
            Err(kai_core::Error::invalid(
                "target",
                "pass a material id (str) or an embedding (a 1-D float32 numpy array or a \
                 list of floats)",
            )),
        ),
    }
}

pub fn register(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_class::<Registry>()
}
