//! Model listing and fetching, as `kai models list` and `kai models fetch` do them.
//! Results cross as JSON text; `kai/models.py` builds the dataclasses.

use std::path::PathBuf;

use kai_core::models::{
    DEFAULT_IMAGE_MODEL, DEFAULT_TEXT_MODEL, FetchOptions, FetchReport, ModelSummary,
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
    models: Vec<ModelSummary>,
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
        models: models.into_iter().map(ModelSummary::from).collect(),
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
    json(py, &report)
}

pub fn register(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_function(wrap_pyfunction!(list_models, module)?)?;
    module.add_function(wrap_pyfunction!(fetch_model, module)?)?;
    module.add("DEFAULT_TEXT_MODEL", DEFAULT_TEXT_MODEL)?;
    module.add("DEFAULT_IMAGE_MODEL", DEFAULT_IMAGE_MODEL)?;
    Ok(())
}
