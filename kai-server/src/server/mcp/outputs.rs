//! Tool outputs that are not kai-core types themselves. The JSON of `embed_text` is
//! that of `kai embed text --json`.

use serde::Serialize;
use utoipa::ToSchema;

/// The output of `get_reconstruction_file`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReconFileOutput {
    /// The job's id.
    pub id: String,
    /// The file's name, from the job's `files`.
    pub name: String,
    /// The media type: `model/gltf-binary` for GLB files, `text/plain` for the COLMAP
    /// text files, `application/octet-stream` for PLY.
    pub mime_type: String,
    /// The file's size in bytes.
    pub size: u64,
    /// The file's bytes in standard base64 with padding.
    pub data_base64: String,
}

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
