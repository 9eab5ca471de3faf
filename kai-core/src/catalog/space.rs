//! The catalog's two vector spaces: `images`, keyed by image key, and `texts`, keyed by
//! material key. An embedded store keeps each space in an index file of the store folder.
//! A PostgreSQL store keeps it in a pgvector table next to the records.

use super::postgres::PgVectorSpace;
use crate::error::{Error, Result};
use crate::index::{Filter, Hit, IndexConfig, MAX_DIMENSION, Metadata, Metric, VectorIndex};

/// One of the catalog's two vector spaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpaceKind {
    /// Image embeddings, one per stored image, keyed by [`super::ImageRef::key`].
    Images,
    /// Text embeddings, one per material, keyed by [`super::Material::key`].
    Texts,
}

impl SpaceKind {
    /// Returns the space's name, as recorded in index file names and in PostgreSQL.
    pub fn name(self) -> &'static str {
        match self {
            Self::Images => "images",
            Self::Texts => "texts",
        }
    }
}

/// One vector space of a catalog, with the embedding model that produced its vectors.
///
/// Vectors are compared by cosine similarity and stored at unit length. Searches on a
/// PostgreSQL store are approximate (pgvector's HNSW index) and read the database each
/// time, so they see other processes' writes. Searches on an embedded store read the
/// index file as loaded when the catalog was opened or last written.
pub struct VectorSpace {
    kind: SpaceKind,
    model: String,
    backend: SpaceBackend,
}

enum SpaceBackend {
    /// An index file; `None` until the first vector arrives when the model has no
    /// built-in manifest to give the dimension.
    File(Option<Box<VectorIndex>>),
    Postgres(PgVectorSpace),
}

impl std::fmt::Debug for VectorSpace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let backend = match &self.backend {
            SpaceBackend::File(_) => "file",
            SpaceBackend::Postgres(_) => "postgres",
        };
        f.debug_struct("VectorSpace")
            .field("kind", &self.kind)
            .field("model", &self.model)
            .field("backend", &backend)
            .finish()
    }
}

impl VectorSpace {
    pub(crate) fn file(kind: SpaceKind, model: &str, index: Option<VectorIndex>) -> Self {
        Self {
            kind,
            model: model.to_owned(),
            backend: SpaceBackend::File(index.map(Box::new)),
        }
    }

    pub(crate) fn postgres(kind: SpaceKind, model: &str, space: PgVectorSpace) -> Self {
        Self {
            kind,
            model: model.to_owned(),
            backend: SpaceBackend::Postgres(space),
        }
    }

    /// Returns which space this is.
    pub fn kind(&self) -> SpaceKind {
        self.kind
    }

    /// Returns the embedding model whose vectors the space contains.
    pub fn model(&self) -> &str {
        &self.model
    }

    /// Returns the number of components of the space's vectors, or `None` while the
    /// space is empty and its model has no built-in manifest.
    ///
    /// # Errors
    ///
    /// Returns [`Error::Storage`] when the database cannot be read.
    pub fn dimension(&self) -> Result<Option<usize>> {
        match &self.backend {
            SpaceBackend::File(index) => Ok(index.as_deref().map(VectorIndex::dimension)),
            SpaceBackend::Postgres(space) => Ok(space
                .recorded()?
                .map(|(_, dimension)| dimension)
                .or_else(|| manifest_dimension(&self.model))),
        }
    }

    /// Returns the number of stored vectors.
    ///
    /// # Errors
    ///
    /// Returns [`Error::Storage`] when the database cannot be read.
    pub fn len(&self) -> Result<usize> {
        match &self.backend {
            SpaceBackend::File(index) => Ok(index.as_deref().map_or(0, VectorIndex::len)),
            SpaceBackend::Postgres(space) => space.len(),
        }
    }

    /// Returns whether the space has no vectors.
    ///
    /// # Errors
    ///
    /// As [`VectorSpace::len`].
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// Returns the unit-length vector stored under `key`.
    ///
    /// # Errors
    ///
    /// Returns [`Error::Storage`] when the database cannot be read.
    pub fn get(&self, key: u64) -> Result<Option<Vec<f32>>> {
        match &self.backend {
            SpaceBackend::File(index) => Ok(index
                .as_ref()
                .and_then(|index| index.get(key))
                .map(|stored| stored.vector.to_vec())),
            SpaceBackend::Postgres(space) => space.get(key),
        }
    }

    /// Returns the `k` keys whose vectors are most similar to `query` among those whose
    /// material passes `filter`, best first, with their cosine similarity as the score.
    ///
    /// # Errors
    ///
    /// Returns [`Error::InvalidInput`] when `k` is 0 or the query's length differs from
    /// the space's dimension or has a NaN or infinite component, and [`Error::Storage`]
    /// when the database cannot be read.
    pub fn search(&self, query: &[f32], k: usize, filter: Option<&Filter>) -> Result<Vec<Hit>> {
        match &self.backend {
            SpaceBackend::File(None) => Ok(Vec::new()),
            SpaceBackend::File(Some(index)) => index.search(query, k, filter),
            SpaceBackend::Postgres(space) => space.search(query, k, filter, false),
        }
    }

    /// Returns what [`VectorSpace::search`] returns, computed by comparing the query with
    /// every vector that passes the filter.
    ///
    /// # Errors
    ///
    /// As [`VectorSpace::search`].
    pub fn search_exact(
        &self,
        query: &[f32],
        k: usize,
        filter: Option<&Filter>,
    ) -> Result<Vec<Hit>> {
        match &self.backend {
            SpaceBackend::File(None) => Ok(Vec::new()),
            SpaceBackend::File(Some(index)) => index.search_exact(query, k, filter),
            SpaceBackend::Postgres(space) => space.search(query, k, filter, true),
        }
    }

    /// Returns the file index, for the writes of an embedded store.
    pub(crate) fn file_index(&self) -> Option<&VectorIndex> {
        match &self.backend {
            SpaceBackend::File(index) => index.as_deref(),
            SpaceBackend::Postgres(_) => None,
        }
    }

    /// Inserts or replaces a vector of a file-backed space, creating the index with the
    /// vector's dimension when the space had none.
    pub(crate) fn upsert_file(
        &mut self,
        key: u64,
        vector: &[f32],
        metadata: Metadata,
    ) -> Result<()> {
        let SpaceBackend::File(index) = &mut self.backend else {
            return Err(Error::Internal(
                "a PostgreSQL vector space was written as a file".into(),
            ));
        };
        let index = match index {
            Some(index) => index,
            None => index.insert(Box::new(new_index(vector.len(), &self.model)?)),
        };
        index.upsert(key, vector, metadata)
    }

    /// Removes a vector from a file-backed space.
    pub(crate) fn remove_file(&mut self, key: u64) {
        if let SpaceBackend::File(Some(index)) = &mut self.backend {
            index.remove(key);
        }
    }
}

/// Returns an empty cosine index of `dimension` that records `model`.
pub(crate) fn new_index(dimension: usize, model: &str) -> Result<VectorIndex> {
    VectorIndex::new(dimension, Metric::Cosine, IndexConfig::default())?.with_model(model)
}

/// Returns the output dimension of `model` when it has a built-in manifest.
pub(crate) fn manifest_dimension(model: &str) -> Option<usize> {
    crate::models::Manifest::find(model)
        .map(|manifest| manifest.dimension)
        .filter(|dimension| *dimension > 0)
}

/// Checks a caller's vector and returns it scaled to unit length.
///
/// `name` names the vector in errors, e.g. "text vector of material `oak`". `dimension`
/// is the space's dimension when it has one.
///
/// # Errors
///
/// Returns [`Error::InvalidInput`] naming `name` and the offending value when the length
/// differs from `dimension` (or is 0 or above [`MAX_DIMENSION`]), a component is NaN or
/// infinite, or every component is 0.
pub(crate) fn unit_vector(
    name: &str,
    vector: &[f32],
    dimension: Option<usize>,
) -> Result<Vec<f32>> {
    if let Some(dimension) = dimension
        && vector.len() != dimension
    {
        return Err(Error::invalid(
            name,
            format!(
                "has {} components, but the vector space has dimension {dimension}",
                vector.len()
            ),
        ));
    }
    if vector.is_empty() || vector.len() > MAX_DIMENSION {
        return Err(Error::invalid(
            name,
            format!("has {} components; give 1 to {MAX_DIMENSION}", vector.len()),
        ));
    }
    if let Some(position) = vector.iter().position(|x| !x.is_finite()) {
        return Err(Error::invalid(
            name,
            format!(
                "component {position} is {}; every component must be a finite number",
                vector[position]
            ),
        ));
    }
    let norm = vector
        .iter()
        .map(|x| f64::from(*x) * f64::from(*x))
        .sum::<f64>()
        .sqrt();
    if norm == 0.0 || !norm.is_finite() {
        return Err(Error::invalid(
            name,
            format!("has length {norm}; cosine similarity needs a nonzero, finite length"),
        ));
    }
    Ok(vector
        .iter()
        .map(|x| (f64::from(*x) / norm) as f32)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_vector_scales_and_rejects() {
        let unit = unit_vector("v", &[3.0, 4.0], Some(2)).unwrap();
        assert!((unit[0] - 0.6).abs() < 1e-6, "{unit:?}");
        assert!((unit[1] - 0.8).abs() < 1e-6, "{unit:?}");
        let err = unit_vector("text vector of `oak`", &[1.0, f32::NAN], None).unwrap_err();
        assert!(err.to_string().contains("component 1 is NaN"), "{err}");
        assert!(err.to_string().contains("`oak`"), "{err}");
        let err = unit_vector("v", &[1.0, f32::INFINITY], None).unwrap_err();
        assert!(err.to_string().contains("inf"), "{err}");
        let err = unit_vector("v", &[1.0, 2.0, 3.0], Some(2)).unwrap_err();
        assert!(err.to_string().contains("has 3 components"), "{err}");
        let err = unit_vector("v", &[0.0, 0.0], None).unwrap_err();
        assert!(err.to_string().contains("length 0"), "{err}");
        assert!(unit_vector("v", &[], None).is_err());
    }
}
