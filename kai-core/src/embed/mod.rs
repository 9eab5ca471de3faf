//! Embeddings: text (BERT family) now, images later; both return [`Embeddings`].

mod attention;
mod bert;
mod embeddings;
mod gelu;
mod pooling;
mod rows;
mod text;
mod text_config;

pub use embeddings::{Embeddings, cosine_similarity};
pub use text::{DEFAULT_BATCH_SIZE, MAX_BATCH_SIZE, TextEmbedder};
