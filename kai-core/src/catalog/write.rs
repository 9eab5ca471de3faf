//! One material write with its vectors, as both backends store it: the embedded store
//! writes the record to its database and the vectors to its index files, the PostgreSQL
//! store writes all of it in one transaction.

use super::record::MaterialInput;
use super::storage::{ExpectedVersion, NewImage};

/// A checked record with its stored images and unit-length vectors, ready to store.
#[derive(Debug, Clone)]
pub(crate) struct MaterialWrite {
    /// The record in its normalized form.
    pub record: MaterialInput,
    /// The images, already copied into the store's images folder.
    pub images: Vec<NewImage>,
    /// Hash of the record and its image bytes, to skip unchanged records on import.
    pub content_hash: String,
    /// The version the write expects to replace.
    pub expected: ExpectedVersion,
    /// The text vector, at unit length.
    pub text_vector: Vec<f32>,
    /// One vector per entry of `images`, at unit length.
    pub image_vectors: Vec<Vec<f32>>,
}

/// Returns the history snapshot of a record: its fields, with the stored image paths.
pub(crate) fn snapshot(record: &MaterialInput, images: &[NewImage]) -> serde_json::Value {
    let mut value = serde_json::to_value(record).unwrap_or(serde_json::Value::Null);
    value["images"] = serde_json::to_value(images.iter().map(|i| &i.path).collect::<Vec<_>>())
        .unwrap_or(serde_json::Value::Null);
    value
}
