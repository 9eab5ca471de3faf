//! Python bindings for kai, compiled into the module `kai._kai`. Each function converts
//! Python values, calls kai-core with the GIL released, and raises the exception class of
//! the kai error kind (defined in `kai/errors.py`). Structured results cross as JSON text,
//! which the pure-Python layer in `python/kai` turns into dataclasses; vectors cross as
//! numpy arrays without a copy.

mod batch;
mod catalog;
mod convert;
mod errors;
mod image;
mod model;
mod models;
mod recon;
mod registry;
mod text;
mod upload;

use pyo3::prelude::*;

// candle allocates and frees a large buffer per tensor operation; glibc's malloc hands
// such buffers back to the kernel each time, so every operation page-faults. mimalloc
// keeps them, which made text embedding about 40% faster in benches/text_embed.py.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[pymodule]
fn _kai(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_class::<text::TextEmbedder>()?;
    image::register(module)?;
    catalog::register(module)?;
    registry::register(module)?;
    models::register(module)?;
    recon::register(module)?;
    model::register(module)?;
    module.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
