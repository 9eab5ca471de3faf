//! `TextEmbedder`: sentence embeddings.

use std::path::PathBuf;

use kai_core::{DeviceRequest, ModelStore};
use numpy::{IntoPyArray, PyArray1};
use pyo3::prelude::*;
use pyo3::types::PyString;

use crate::convert::{count, matrix};
use crate::errors::detached;

/// Returns the model store of `model_dir`, else of `MODEL_DIR`.
pub fn model_store(model_dir: Option<PathBuf>) -> ModelStore {
    match model_dir {
        Some(dir) => ModelStore::new(dir),
        None => ModelStore::from_env(),
    }
}

/// Opens `device` (`cpu`, `cuda:N`, `auto`), else the device of `KAI_DEVICE`.
pub fn open_device(device: Option<&str>) -> kai_core::Result<kai_core::Device> {
    let request = match device {
        Some(device) => device.parse()?,
        None => DeviceRequest::from_env()?,
    };
    request.open()
}

/// A text embedding model loaded in this process.
#[derive(Debug)]
#[pyclass(module = "kai._kai", frozen)]
pub struct TextEmbedder {
    inner: kai_core::TextEmbedder,
}

#[pymethods]
impl TextEmbedder {
    /// Loads a model by name or folder from `model_dir` (default `MODEL_DIR`, else the
    /// user cache folder) on `device` (default `KAI_DEVICE`, else auto).
    #[new]
    #[pyo3(signature = (model = kai_core::models::DEFAULT_TEXT_MODEL, *, model_dir = None, device = None, batch_size = kai_core::embed::DEFAULT_BATCH_SIZE as i64))]
    fn new(
        py: Python<'_>,
        model: &str,
        model_dir: Option<PathBuf>,
        device: Option<&str>,
        batch_size: i64,
    ) -> PyResult<Self> {
        let batch_size: usize = count(py, "batch_size", batch_size)?;
        let store = model_store(model_dir);
        let inner = detached(py, || {
            kai_core::TextEmbedder::from_store(&store, model, &open_device(device)?)?
                .with_batch_size(batch_size)
        })?;
        Ok(Self { inner })
    }

    /// Returns the model name.
    #[getter]
    fn name(&self) -> &str {
        self.inner.name()
    }

    /// Returns the length of each vector.
    #[getter]
    fn dimension(&self) -> usize {
        self.inner.dimension()
    }

    /// Returns the number of word pieces, special tokens included, after which input is cut.
    #[getter]
    fn max_sequence_length(&self) -> usize {
        self.inner.max_sequence_length()
    }

    /// Embeds one text, returning a float32 vector of shape (dimension,), or a list of
    /// texts, returning a float32 array of shape (len(texts), dimension). The GIL is
    /// released while the model runs.
    fn embed<'py>(
        &self,
        py: Python<'py>,
        texts: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        if let Ok(text) = texts.cast::<PyString>() {
            let text = text.to_str()?.to_owned();
            let vectors = detached(py, || self.inner.embed(&[text]))?;
            let vector: Bound<'py, PyArray1<f32>> = vectors.into_vec().into_pyarray(py);
            return Ok(vector.into_any());
        }
        let texts: Vec<String> = texts.extract()?;
        let vectors = detached(py, || self.inner.embed(&texts))?;
        Ok(matrix(py, vectors)?.into_any())
    }

    fn __repr__(&self) -> String {
        format!(
            "TextEmbedder(model={:?}, dimension={})",
            self.inner.name(),
            self.inner.dimension()
        )
    }
}
