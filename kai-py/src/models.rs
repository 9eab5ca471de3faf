//! Model listing and fetching, as `kai models list` and `kai models fetch` do them.
//! Results cross as JSON text; `kai/models.py` builds the dataclasses.

use std::path::PathBuf;

use kai_core::models::{
    DEFAULT_IMAGE_MODEL, DEFAULT_TEXT_MODEL, FetchOptions, FetchReport, ModelEntry, ModelState,
    Task,
};
use pyo3::prelude::*;
use serde::Serialize;

use crate::convert::json;
use crate::errors::detached;
use crate::text::model_store;

/// The model directory and its models.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Listing {
    model_dir: String,
    models: Vec<ModelJson>,
}

/// One model, in the shape of `kai models list --json`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ModelJson {
    name: String,
    state: &'static str,
    problem_files: Vec<String>,
    builtin: bool,
    /// `text-embedding` or `image-embedding`; folders without a manifest load as text
    /// models.
    task: &'static str,
    dimension: Option<usize>,
    license: Option<String>,
    path: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct FetchedJson {
    name: String,
    path: String,
    downloaded: bool,
    written: Vec<String>,
}

fn model_json(entry: ModelEntry) -> ModelJson {
    let (state, problem_files) = match entry.state {
        ModelState::Ready => ("ready", Vec::new()),
        ModelState::Unverified => ("unverified", Vec::new()),
        ModelState::Missing(files) => ("missing", files),
        ModelState::Corrupt(files) => ("corrupt", files),
    };
    let manifest = entry.manifest;
    ModelJson {
        name: entry.name,
        state,
        problem_files,
        builtin: manifest.is_some(),
        task: match manifest.as_ref().map(|m| m.task) {
            Some(Task::ImageEmbedding) => "image-embedding",
            Some(Task::TextEmbedding) | None => "text-embedding",
        },
        dimension: manifest.as_ref().map(|m| m.dimension),
        license: manifest.map(|m| m.license),
        path: entry.path.display().to_string(),
    }
}

/// Lists the built-in models and the other model folders of `model_dir` (default
/// `MODEL_DIR`, else the user cache folder) with their state, as JSON. Checksums are
/// computed with the GIL released.
#[pyfunction]
#[pyo3(signature = (model_dir = None))]
fn list_models(py: Python<'_>, model_dir: Option<PathBuf>) -> PyResult<String> {
    let store = model_store(model_dir);
    let models = detached(py, || store.list())?;
    let listing = Listing {
        model_dir: store.root().display().to_string(),
        models: models.into_iter().map(model_json).collect(),
    };
    json(py, &listing)
}

/// Fetches a built-in model into `model_dir` unless it is already present and verified;
/// returns the report as JSON. The download runs pip with the GIL released.
#[pyfunction]
#[pyo3(signature = (name, *, model_dir = None))]
fn fetch_model(py: Python<'_>, name: &str, model_dir: Option<PathBuf>) -> PyResult<String> {
    let store = model_store(model_dir);
    let report: FetchReport = detached(py, || {
        kai_core::models::fetch(&store, name, &FetchOptions::default())
    })?;
    json(
        py,
        &FetchedJson {
            name: report.name,
            path: report.path.display().to_string(),
            downloaded: report.downloaded,
            written: report.written,
        },
    )
}

pub fn register(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_function(wrap_pyfunction!(list_models, module)?)?;
    module.add_function(wrap_pyfunction!(fetch_model, module)?)?;
    module.add("DEFAULT_TEXT_MODEL", DEFAULT_TEXT_MODEL)?;
    module.add("DEFAULT_IMAGE_MODEL", DEFAULT_IMAGE_MODEL)?;
    Ok(())
}
