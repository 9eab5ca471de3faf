//! Models: manifests, the model directory, fetching and checksum verification.
//!
//! A model lives in `MODEL_DIR/<name>/` as a Hugging Face-style folder (config.json,
//! model.safetensors, tokenizer.json, …). Models with a built-in [`Manifest`] are fetched
//! by [`fetch`] and verified against their checksums on every load; any other folder with
//! the required files loads unverified.

mod fetch;
mod manifest;
mod store;

pub use fetch::{FetchOptions, FetchReport, fetch};
pub use manifest::{Manifest, ModelFile, Pooling, Source, Task};
pub use store::{
    ModelEntry, ModelFolder, ModelState, ModelStore, REQUIRED_FILES, sha256_file, verify,
};

/// The text embedding model used when the caller names none.
pub const DEFAULT_TEXT_MODEL: &str = "all-minilm-l6-v2";
