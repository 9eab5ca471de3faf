//! Tool outputs that are not kai-core types themselves. The JSON of `embed_text` is
//! that of `kai embed text --json`.

use serde::Serialize;
use utoipa::ToSchema;

/// The output of `embed_text`.
#[derive(Debug, Serialize, ToSchema)]
pub struct EmbeddingsOutput {
    /// The text model that produced the vectors.
    pub model: String,
    /// The length of each vector.
    pub dimension: usize,
    /// One vector per text, in the order of the texts.
    pub vectors: Vec<Vec<f32>>,
}
