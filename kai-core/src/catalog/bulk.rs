//! Storing materials with embeddings that the caller computed, for users who bring their
//! own models and for loading large catalogs quickly.

use std::collections::HashSet;
use std::path::Path;

use super::images::load_image;
use super::record::{Material, MaterialInput};
use super::space::unit_vector;
use super::storage::ExpectedVersion;
use super::store::{Catalog, content_hash};
use super::write::MaterialWrite;
use crate::error::{Error, Result};

/// Maximum number of materials in one [`Catalog::put_embedded`] call.
pub const MAX_EMBEDDED_BATCH: usize = 10_000;

/// A material with vectors that the caller computed, for [`Catalog::put_embedded`].
///
/// The vectors must come from the models the store is configured with
/// ([`super::StoreOptions::image_model`] and [`super::StoreOptions::text_model`]), which
/// the vector spaces record: searches compare them with vectors of those models. A model
/// without a built-in manifest is fine; its space takes the dimension of the first
/// vector stored.
#[derive(Debug, Clone, PartialEq)]
pub struct EmbeddedMaterial {
    /// The record; `record.images` names image files relative to the folder given to
    /// [`Catalog::put_embedded`].
    pub record: MaterialInput,
    /// The embedding of the material's text; scaled to unit length when stored.
    pub text_vector: Vec<f32>,
    /// One embedding per entry of `record.images`, in the same order.
    pub image_vectors: Vec<Vec<f32>>,
    /// The version the write expects to replace; [`ExpectedVersion::Any`] creates or
    /// replaces.
    pub expected: ExpectedVersion,
}

impl Catalog {
    /// Stores materials with caller-supplied vectors, without loading an embedding model.
    ///
    /// Every record, image and vector is checked before anything is written, so invalid
    /// input leaves the catalog unchanged. Images are copied into the store like an
    /// import copies them. On PostgreSQL the whole batch commits in one transaction. An
    /// embedded store commits each material in turn and rewrites its index files once at
    /// the end, so pass batches of a few thousand for speed.
    ///
    /// # Errors
    ///
    /// Returns [`Error::InvalidInput`] naming the material and the value when a batch is
    /// larger than [`MAX_EMBEDDED_BATCH`], an id appears twice, a record is invalid, the
    /// number of image vectors differs from the number of images, or a vector has the
    /// wrong dimension, a NaN or infinite component, or zero length.
    /// Returns [`Error::Conflict`] when a stored version differs from
    /// [`EmbeddedMaterial::expected`], and storage errors.
    pub fn put_embedded(
        &mut self,
        materials: &[EmbeddedMaterial],
        image_folder: &Path,
    ) -> Result<Vec<Material>> {
        if materials.len() > MAX_EMBEDDED_BATCH {
            return Err(Error::invalid(
                "materials",
                format!(
                    "{} materials in one batch, over the limit of {MAX_EMBEDDED_BATCH}; \
                     split them into smaller batches",
                    materials.len()
                ),
            ));
        }
        if materials.is_empty() {
            return Ok(Vec::new());
        }
        self.with_write(|catalog| {
            let writes = catalog.check_embedded(materials, image_folder)?;
            catalog.write_materials(writes)
        })
    }

    /// Checks every material of a batch and copies its images; returns the writes.
    fn check_embedded(
        &self,
        materials: &[EmbeddedMaterial],
        image_folder: &Path,
    ) -> Result<Vec<MaterialWrite>> {
        let mut image_dimension = self.image_space.dimension()?;
        let mut text_dimension = self.text_space.dimension()?;
        let mut ids = HashSet::new();
        let mut checked = Vec::with_capacity(materials.len());
        for material in materials {
            let record = material.record.normalized()?;
            let id = &record.id;
            if !ids.insert(id.clone()) {
                return Err(Error::invalid(
                    "materials",
                    format!("material `{id}` appears twice in one batch"),
                ));
            }
            if material.image_vectors.len() != record.images.len() {
                return Err(Error::invalid(
                    format!("material `{id}`"),
                    format!(
                        "has {} images but {} image vectors; give one vector per image",
                        record.images.len(),
                        material.image_vectors.len()
                    ),
                ));
            }
            let text_vector = unit_vector(
                &format!("text vector of material `{id}`"),
                &material.text_vector,
                text_dimension,
            )?;
            text_dimension = Some(text_vector.len());
            let mut image_vectors = Vec::with_capacity(record.images.len());
            for (path, vector) in record.images.iter().zip(&material.image_vectors) {
                let name = format!("vector of image `{path}` of material `{id}`");
                let unit = unit_vector(&name, vector, image_dimension)?;
                image_dimension = Some(unit.len());
                image_vectors.push(unit);
            }
            checked.push((record, text_vector, image_vectors, material));
        }

        let mut writes = Vec::with_capacity(checked.len());
        for (record, text_vector, image_vectors, material) in checked {
            let mut loaded = Vec::with_capacity(record.images.len());
            for path in &record.images {
                loaded.push(load_image(&image_folder.join(path), &self.options.limits)?);
            }
            let mut supplied: Vec<&[f32]> = vec![&material.text_vector];
            supplied.extend(material.image_vectors.iter().map(Vec::as_slice));
            let hash = content_hash(&record, &loaded, &supplied);
            let images = loaded
                .iter()
                .map(|image| self.images.store_new(image))
                .collect::<Result<Vec<_>>>()?;
            writes.push(MaterialWrite {
                record,
                images,
                content_hash: hash,
                expected: material.expected,
                text_vector,
                image_vectors,
            });
        }
        Ok(writes)
    }
}
