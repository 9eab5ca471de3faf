//! Models: manifests, the model directory, fetching, checksum verification and an LRU
//! cache of loaded models ([`ModelCache`]).
//!
//! A model lives in `MODEL_DIR/<name>/` as a Hugging Face-style folder (config.json,
//! model.safetensors, tokenizer.json, …). Models with a built-in [`Manifest`] are fetched
//! by [`fetch`] and verified against their checksums on every load; any other folder with
//! the required files loads unverified.

mod cache;
mod fetch;
mod manifest;
mod pth;
mod store;

pub use cache::{CacheEvent, CacheObserver, LoadedModel, LoadedModelInfo, ModelCache, task_name};
pub use fetch::{FetchOptions, FetchReport, fetch};
pub use manifest::{
    ImageSection, Interpolation, Manifest, ModelFile, Pooling, Preprocess, Source, Task,
    TextSection,
};
pub use pth::load_pth;
pub(crate) use store::to_hex;
pub use store::{
    ModelEntry, ModelFolder, ModelState, ModelStore, ModelSummary, REQUIRED_FILES, sha256_file,
    verify,
};

/// The text embedding model used when the caller names none.
pub const DEFAULT_TEXT_MODEL: &str = "all-minilm-l6-v2";

/// The image embedding model used when the caller names none.
pub const DEFAULT_IMAGE_MODEL: &str = "efficientnet-lite0";
