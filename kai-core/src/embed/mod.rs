//! Embeddings of texts (BERT family) and images (EfficientNet-Lite); both return
//! [`Embeddings`].

mod attention;
mod bert;
mod conv;
mod efficientnet;
mod embeddings;
mod gelu;
mod image;
mod labels;
mod pooling;
mod rows;
mod text;
mod text_config;

pub use embeddings::{Embeddings, cosine_similarity};
pub use image::{
    DEFAULT_IMAGE_BATCH_SIZE, ImageEmbedder, ImageEmbeddings, MAX_IMAGE_BATCH_SIZE, Prediction,
    RawImageOutput, load_with_candle_ops,
};
pub use labels::Labels;
pub use text::{DEFAULT_BATCH_SIZE, MAX_BATCH_SIZE, TextEmbedder};
