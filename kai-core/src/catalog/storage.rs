//! The storage interface of the catalog, so SQLite and PostgreSQL can serve one
//! [`super::Catalog`].

use serde::Serialize;

use super::record::{Material, MaterialInput};
use crate::error::Result;

/// Maximum number of distinct query words that keyword search looks for. Each becomes one
/// OR term, and the engines' cost grows with the number of terms.
pub const MAX_QUERY_WORDS: usize = 64;

/// Returns the distinct lower-case words of `text` (runs of letters and digits), in order
/// of first appearance, at most [`MAX_QUERY_WORDS`] of them.
pub(crate) fn query_words(text: &str) -> Vec<String> {
    let mut words: Vec<String> = Vec::new();
    for word in text.split(|c: char| !c.is_alphanumeric()) {
        if word.is_empty() {
            continue;
        }
        let word = word.to_lowercase();
        if !words.contains(&word) {
            words.push(word);
            if words.len() == MAX_QUERY_WORDS {
                break;
            }
        }
    }
    words
}

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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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

/// The version a write expects to replace, so a write prepared from a record that another
/// writer changed in the meantime fails instead of overwriting that change.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ExpectedVersion {
    /// Write whatever is stored (create or replace).
    #[default]
    Any,
    /// The material must not exist yet.
    Absent,
    /// The stored material must be at this version.
    Exactly(u32),
}

impl ExpectedVersion {
    /// Checks the stored version (`None` when the material is absent) against the
    /// expectation.
    ///
    /// # Errors
    ///
    /// Returns [`crate::Error::Conflict`] naming `id`, both versions and what to do.
    pub fn check(self, id: &str, stored: Option<u32>) -> Result<()> {
        if let (Self::Absent, Some(version)) = (self, stored) {
            return Err(crate::Error::Conflict(format!(
                "material `{id}` already exists (version {version}); replace it or choose \
                 another id"
            )));
        }
        let stored_text = stored.map_or_else(|| "absent".to_owned(), |v| format!("at version {v}"));
        let expected_text = match self {
            Self::Any => return Ok(()),
            Self::Absent if stored.is_none() => return Ok(()),
            Self::Exactly(v) if stored == Some(v) => return Ok(()),
            Self::Absent => "absent".to_owned(),
            Self::Exactly(v) => format!("at version {v}"),
        };
        Err(crate::Error::Conflict(format!(
            "material `{id}` is {stored_text}, but the write expected it {expected_text}; \
             another writer changed it, so read it again and retry"
        )))
    }
}

/// The storage backend of the catalog's records.
pub trait CatalogStorage: Send {
    /// Returns the material with `id`.
    fn get(&self, id: &str) -> Result<Option<Material>>;

    /// Returns the material whose numeric key is `key`.
    fn get_by_key(&self, key: u64) -> Result<Option<Material>>;

    /// Returns the material that owns the image whose key is `image_key`.
    fn get_by_image_key(&self, image_key: u64) -> Result<Option<Material>>;

    /// Returns the key of the material that owns each image of `image_keys`, in the
    /// order given; images that no longer exist are left out.
    fn image_owners(&self, image_keys: &[u64]) -> Result<Vec<(u64, u64)>> {
        let mut owners = Vec::with_capacity(image_keys.len());
        for key in image_keys {
            if let Some(material) = self.get_by_image_key(*key)? {
                owners.push((*key, material.key));
            }
        }
        Ok(owners)
    }

    /// Returns the ids of the materials whose keys are `keys`, as `(key, id)` pairs in
    /// the order of `keys`; unknown keys are left out.
    fn material_ids(&self, keys: &[u64]) -> Result<Vec<(u64, String)>> {
        let mut ids = Vec::with_capacity(keys.len());
        for key in keys {
            if let Some(material) = self.get_by_key(*key)? {
                ids.push((*key, material.id));
            }
        }
        Ok(ids)
    }

    /// Returns the content hash recorded for `id`, to skip unchanged records on import.
    fn content_hash(&self, id: &str) -> Result<Option<String>>;

    /// Creates or replaces a material and its images in one transaction, and records the
    /// new version in the history.
    ///
    /// # Errors
    ///
    /// Returns [`crate::Error::Conflict`] when the stored version does not match
    /// `expected`, and [`crate::Error::Storage`] when the database fails.
    fn put(
        &mut self,
        record: &MaterialInput,
        images: &[NewImage],
        content_hash: &str,
        expected: ExpectedVersion,
    ) -> Result<Material>;

    /// Deletes a material and its images, records the deletion, and returns what was
    /// deleted.
    fn delete(&mut self, id: &str) -> Result<Option<Material>> {
        self.delete_expecting(id, ExpectedVersion::Any)
    }

    /// Deletes a material as [`CatalogStorage::delete`] does if its stored version
    /// passes `expected`. The check and the deletion run in one transaction, so no other
    /// writer changes the material between them. An absent material returns `None`
    /// for any `expected`.
    ///
    /// # Errors
    ///
    /// Returns [`crate::Error::Conflict`] when the stored version does not match
    /// `expected`, and [`crate::Error::Storage`] when the database fails.
    fn delete_expecting(&mut self, id: &str, expected: ExpectedVersion)
    -> Result<Option<Material>>;

    /// Lists materials in id order.
    fn list(&self, filter: &MaterialFilter, offset: usize, limit: usize) -> Result<Vec<Material>>;

    /// Returns the number of materials.
    fn count(&self) -> Result<usize>;

    /// Returns the number of stored images.
    fn image_count(&self) -> Result<usize>;

    /// Returns every version of `id`, oldest first, including deletions.
    fn history(&self, id: &str) -> Result<Vec<MaterialVersion>>;

    /// Returns every id that has a history, deleted materials included, in id order.
    fn history_ids(&self) -> Result<Vec<String>>;

    /// Ranks the materials that pass `filter` by keyword relevance to `query`, matching
    /// any of its words, and returns material keys with scores, higher is better. The
    /// filter is applied in the database, so a selective filter still fills `limit`.
    fn keyword_search(
        &self,
        query: &str,
        filter: &MaterialFilter,
        limit: usize,
    ) -> Result<Vec<(u64, f32)>>;

    /// Returns every stored material, for re-embedding.
    fn all(&self) -> Result<Vec<Material>> {
        self.list(&MaterialFilter::default(), 0, usize::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_words_are_distinct_and_capped() {
        assert_eq!(query_words("Brick, brick BRICK wall!"), ["brick", "wall"]);
        let many: String = (0..500).map(|i| format!("w{i} ")).collect();
        assert_eq!(query_words(&many).len(), MAX_QUERY_WORDS);
        assert_eq!(query_words(&"brick ".repeat(200_000)), ["brick"]);
    }
}
