//! `ImageEmbedder` (image embeddings and ImageNet labels) and `assess_quality`.

use std::path::PathBuf;

use kai_core::embed::{DEFAULT_IMAGE_BATCH_SIZE, Prediction};
use kai_core::image::{ImageLimits, QualityThresholds, RgbImage};
use kai_core::models::DEFAULT_IMAGE_MODEL;
use numpy::PyArray2;
use pyo3::prelude::*;

use crate::convert::{ImageSource, count, extract_images, from_json, json, matrix};
use crate::errors::detached;
use crate::text::{model_store, open_device};

/// Decodes every image within the limits of `KAI_MAX_IMAGE_BYTES` and
/// `KAI_MAX_IMAGE_PIXELS`; call it with the GIL released.
pub fn load_all(sources: Vec<ImageSource>) -> kai_core::Result<Vec<RgbImage>> {
    let limits = ImageLimits::from_env()?;
    sources
        .into_iter()
        .map(|source| source.load(&limits))
        .collect()
}

/// An image embedding model loaded in this process.
#[derive(Debug)]
#[pyclass(module = "kai._kai", frozen)]
pub struct ImageEmbedder {
    inner: kai_core::ImageEmbedder,
}

#[pymethods]
impl ImageEmbedder {
    /// Loads a model by name or folder from `model_dir` (default `MODEL_DIR`, else the
    /// user cache folder) on `device` (default `KAI_DEVICE`, else auto).
    #[new]
    #[pyo3(signature = (model = DEFAULT_IMAGE_MODEL, *, model_dir = None, device = None, batch_size = DEFAULT_IMAGE_BATCH_SIZE as i64))]
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
            kai_core::ImageEmbedder::from_store(&store, model, &open_device(device)?)?
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

    /// Returns the number of classes the classifier names.
    #[getter]
    fn num_classes(&self) -> usize {
        self.inner.labels().len()
    }

    /// Decodes and embeds images; returns a float32 array of shape (n, dimension) with
    /// unit-length rows. The GIL is released while images decode and the model runs.
    fn embed<'py>(
        &self,
        py: Python<'py>,
        images: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let sources = extract_images(images)?;
        let vectors = detached(py, || self.inner.embed(&load_all(sources)?))?;
        matrix(py, vectors)
    }

    /// Decodes and embeds images and names each image's `top_k` most probable classes in
    /// the same pass; returns the vectors and the labels as JSON
    /// (`[[{"label", "score"}, …], …]`).
    fn embed_and_classify<'py>(
        &self,
        py: Python<'py>,
        images: &Bound<'py, PyAny>,
        top_k: i64,
    ) -> PyResult<(Bound<'py, PyArray2<f32>>, String)> {
        let top_k: usize = count(py, "top_k", top_k)?;
        let sources = extract_images(images)?;
        let output = detached(py, || {
            self.inner.embed_and_classify(&load_all(sources)?, top_k)
        })?;
        let labels: &[Vec<Prediction>] = &output.labels;
        let labels = json(py, &labels)?;
        Ok((matrix(py, output.vectors)?, labels))
    }

    fn __repr__(&self) -> String {
        format!(
            "ImageEmbedder(model={:?}, dimension={})",
            self.inner.name(),
            self.inner.dimension()
        )
    }
}

/// Returns the default quality thresholds as JSON, with camelCase keys.
#[pyfunction]
fn default_quality_thresholds(py: Python<'_>) -> PyResult<String> {
    json(py, &QualityThresholds::default())
}

/// Decodes one image and measures its quality against `thresholds` (JSON with camelCase
/// keys; missing fields keep their defaults); returns the report as JSON. The GIL is
/// released while the image decodes and is measured.
#[pyfunction]
#[pyo3(signature = (image, thresholds = None))]
fn assess_quality(
    py: Python<'_>,
    image: &Bound<'_, PyAny>,
    thresholds: Option<&str>,
) -> PyResult<String> {
    let source = ImageSource::extract(image)?;
    let thresholds: QualityThresholds = match thresholds {
        Some(text) => from_json(py, "thresholds", text)?,
        None => QualityThresholds::default(),
    };
    let report = detached(py, || {
        let image = source.load(&ImageLimits::from_env()?)?;
        kai_core::image::assess(&image, &thresholds)
    })?;
    json(py, &report)
}

pub fn register(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_class::<ImageEmbedder>()?;
    module.add_function(wrap_pyfunction!(assess_quality, module)?)?;
    module.add_function(wrap_pyfunction!(default_quality_thresholds, module)?)
}
