//! kai-core errors as `kai.errors` exceptions, and the wrapper that runs core calls with
//! the GIL released.

use kai_core::ErrorKind;
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;

/// Converts a kai-core error into the matching `kai.errors` exception.
pub fn to_py_error(py: Python<'_>, err: &kai_core::Error) -> PyErr {
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

/// Runs `f` with the GIL released, turning a panic into an internal error and any error
/// into its `kai.errors` exception.
pub fn detached<T: Send>(
    py: Python<'_>,
    f: impl FnOnce() -> kai_core::Result<T> + Send,
) -> PyResult<T> {
    py.detach(|| kai_core::Error::catch_panic(f))
        .map_err(|err| to_py_error(py, &err))
}

/// Converts a core error raised while holding the GIL.
pub fn raise<T>(py: Python<'_>, result: kai_core::Result<T>) -> PyResult<T> {
    result.map_err(|err| to_py_error(py, &err))
}
