//! Python bindings for kai, compiled into the module `kai._kai`. Each function converts
//! Python values, calls kai-core with the GIL released, and raises the exception class of
//! the kai error kind (defined in `kai/errors.py`).

use std::path::PathBuf;

use kai_core::{DeviceRequest, ErrorKind, ModelStore};
use numpy::{IntoPyArray, PyArray1, PyArray2, PyArrayMethods};
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;

// candle allocates and frees a large buffer per tensor operation; glibc's malloc hands
// such buffers back to the kernel each time, so every operation page-faults. mimalloc
// keeps them, which made text embedding about 40% faster in benches/text_embed.py.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Converts a kai-core error into the matching `kai.errors` exception.
fn to_py_error(py: Python<'_>, err: &kai_core::Error) -> PyErr {
    let class = match err.kind() {
        ErrorKind::InvalidInput => "InvalidInputError",
        ErrorKind::NotFound => "NotFoundError",
        ErrorKind::ModelNotFound => "ModelNotFoundError",
        ErrorKind::Conflict => "ConflictError",
        ErrorKind::Storage => "StorageError",
        ErrorKind::NotSupported => "NotSupportedError",
        ErrorKind::Internal => "KaiError",
    };
    let message = err.to_string();
    let built = py
        .import("kai.errors")
        .and_then(|module| module.getattr(class))
        .and_then(|class| class.call1((message.clone(),)));
    match built {
        Ok(exception) => PyErr::from_value(exception),
        Err(_) => PyRuntimeError::new_err(message),
    }
}

/// A text embedding model loaded in this process.
#[pyclass(module = "kai._kai", frozen)]
struct TextEmbedder {
    inner: kai_core::TextEmbedder,
}

#[pymethods]
impl TextEmbedder {
    /// Loads a model by name or folder from `model_dir` (default `MODEL_DIR`, else the
    /// user cache folder) on `device` (default `KAI_DEVICE`, else auto).
    #[new]
    #[pyo3(signature = (model = kai_core::models::DEFAULT_TEXT_MODEL, *, model_dir = None, device = None, batch_size = kai_core::embed::DEFAULT_BATCH_SIZE))]
    fn new(
        py: Python<'_>,
        model: &str,
        model_dir: Option<PathBuf>,
        device: Option<&str>,
        batch_size: usize,
    ) -> PyResult<Self> {
        let store = match model_dir {
            Some(dir) => ModelStore::new(dir),
            None => ModelStore::from_env(),
        };
        let loaded = py.detach(|| {
            kai_core::Error::catch_panic(|| {
                let request = match device {
                    Some(device) => device.parse()?,
                    None => DeviceRequest::from_env()?,
                };
                kai_core::TextEmbedder::from_store(&store, model, &request.open()?)?
                    .with_batch_size(batch_size)
            })
        });
        let inner = loaded.map_err(|err| to_py_error(py, &err))?;
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

    /// Embeds texts; returns a float32 array of shape (len(texts), dimension). The GIL is
    /// released while the model runs.
    fn embed<'py>(
        &self,
        py: Python<'py>,
        texts: Vec<String>,
    ) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let vectors = py
            .detach(|| kai_core::Error::catch_panic(|| self.inner.embed(&texts)))
            .map_err(|err| to_py_error(py, &err))?;
        let rows = vectors.len();
        let dimension = vectors.dimension();
        // The buffer moves into numpy without a copy; reshape only changes the view.
        let flat: Bound<'py, PyArray1<f32>> = vectors.into_vec().into_pyarray(py);
        flat.reshape([rows, dimension])
    }

    fn __repr__(&self) -> String {
        format!(
            "TextEmbedder(model={:?}, dimension={})",
            self.inner.name(),
            self.inner.dimension()
        )
    }
}

#[pymodule]
fn _kai(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_class::<TextEmbedder>()?;
    module.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
