//! The storage interface of the catalog, so SQLite and PostgreSQL can serve one
//! [`super::Catalog`].

use serde::Serialize;

use super::record::{Material, MaterialInput};
use crate::error::Result;

/// An image ready to be recorded: already copied into the store's images folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewImage {
    /// Path relative to the store's `images` folder.
    pub path: String,
    /// SHA-256 of the file.
    pub sha256: String,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
}

/// A filter on material listings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MaterialFilter {
    /// Only this material type (lower case).
    pub material_type: Option<String>,
    /// Only this collection.
    pub collection_id: Option<String>,
    /// Only materials that have every one of these tags.
    pub tags: Vec<String>,
}

impl MaterialFilter {
    /// Returns whether `material` passes the filter.
    pub fn matches(&self, material: &Material) -> bool {
        self.material_type
            .as_ref()
            .is_none_or(|t| *t == material.material_type)
            && self
                .collection_id
                .as_ref()
                .is_none_or(|c| Some(c) == material.collection_id.as_ref())
            && self.tags.iter().all(|t| material.tags.contains(t))
    }
}

/// One entry of a material's history.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MaterialVersion {
    /// Version number.
    pub version: u32,
    /// `created`, `updated` or `deleted`.
    pub change: String,
    /// Time of the change, RFC 3339 in UTC.
    pub changed_at: String,
    /// The record as it was after the change (before it, for `deleted`).
    pub record: serde_json::Value,
}

/// The storage backend of the catalog's records.
pub trait CatalogStorage: Send {
    /// Returns the material with `id`.
    fn get(&self, id: &str) -> Result<Option<Material>>;

    /// Returns the material whose numeric key is `key`.
    fn get_by_key(&self, key: u64) -> Result<Option<Material>>;

    /// Returns the material that owns the image whose key is `image_key`.
    fn get_by_image_key(&self, image_key: u64) -> Result<Option<Material>>;

    /// Returns the content hash recorded for `id`, to skip unchanged records on import.
    fn content_hash(&self, id: &str) -> Result<Option<String>>;

    /// Creates or replaces a material and its images in one transaction, and records the
    /// new version in the history.
    fn put(
        &mut self,
        record: &MaterialInput,
        images: &[NewImage],
        content_hash: &str,
    ) -> Result<Material>;

    /// Deletes a material and its images, records the deletion, and returns what was
    /// deleted.
    fn delete(&mut self, id: &str) -> Result<Option<Material>>;

    /// Lists materials in id order.
    fn list(&self, filter: &MaterialFilter, offset: usize, limit: usize) -> Result<Vec<Material>>;

    /// Returns the number of materials.
    fn count(&self) -> Result<usize>;

    /// Returns the number of stored images.
    fn image_count(&self) -> Result<usize>;

    /// Returns every version of `id`, oldest first, including deletions.
    fn history(&self, id: &str) -> Result<Vec<MaterialVersion>>;

    /// Ranks materials by BM25 keyword relevance to `query`; returns material keys with
    /// scores, higher is better.
    fn keyword_search(&self, query: &str, limit: usize) -> Result<Vec<(u64, f32)>>;

    /// Returns every stored material, for re-embedding.
    fn all(&self) -> Result<Vec<Material>> {
        self.list(&MaterialFilter::default(), 0, usize::MAX)
    }
}
