//! Re-embedding a whole catalog with the configured models, for example after a model
//! change.

use super::backend::Backend;
use super::files::{WriteLock, empty_space};
use super::postgres::{PgCatalogStorage, PgVectorSpace, vectors};
use super::record::Material;
use super::space::{SpaceKind, VectorSpace, unit_vector};
use super::store::{Catalog, IMPORT_BATCH, Progress, metadata_of};
use crate::db::postgres::pg_error;
use crate::error::Result;
use crate::image::RgbImage;

/// The vectors of one chunk of materials: `(image key, material, vector)` per image and
/// one text vector per material.
type ChunkVectors<'a> = (Vec<(u64, &'a Material, Vec<f32>)>, Vec<Vec<f32>>);

impl Catalog {
    /// Re-embeds every material with the configured models and rewrites both vector
    /// spaces, for example after changing the image or text model.
    ///
    /// An embedded store holds its write lock meanwhile. A PostgreSQL store rewrites the
    /// spaces in one transaction under the catalog's exclusive lock, so other writers
    /// wait until it commits and searches see the old vectors until then.
    ///
    /// # Errors
    ///
    /// Returns model and storage errors.
    pub fn reindex(&mut self, progress: &mut dyn FnMut(Progress)) -> Result<usize> {
        let total = match &self.backend {
            Backend::Embedded(_) => self.reindex_files(progress)?,
            Backend::Postgres(storage) => {
                let storage = storage.clone();
                self.reindex_postgres(&storage, progress)?
            }
        };
        if self.material_types()?.len() >= 2 {
            self.calibrate()?;
        }
        Ok(total)
    }

    fn reindex_files(&mut self, progress: &mut dyn FnMut(Progress)) -> Result<usize> {
        let _lock = WriteLock::acquire(&self.options.root)?;
        let materials = self.storage().all()?;
        let mut images = empty_space(SpaceKind::Images, &self.options.image_model)?;
        let mut texts = empty_space(SpaceKind::Texts, &self.options.text_model)?;
        let total = materials.len();
        for (done, chunk) in materials.chunks(IMPORT_BATCH).enumerate() {
            let (image_vectors, text_vectors) = self.embed_chunk(chunk)?;
            for (key, material, vector) in image_vectors {
                images.upsert_file(key, &vector, metadata_of(material))?;
            }
            for (material, vector) in chunk.iter().zip(text_vectors) {
                texts.upsert_file(material.key, &vector, metadata_of(material))?;
            }
            progress(Progress {
                done: (done * IMPORT_BATCH + chunk.len()).min(total),
                total,
            });
        }
        self.image_space = images;
        self.text_space = texts;
        self.finish_write()?;
        Ok(total)
    }

    fn reindex_postgres(
        &mut self,
        storage: &PgCatalogStorage,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<usize> {
        let image_dimension = self.image_embedder()?.dimension();
        let text_dimension = self.text_embedder()?.dimension();
        let mut connection = storage.pool().get()?;
        let mut tx = connection
            .transaction()
            .map_err(|err| pg_error("cannot start a transaction", err))?;
        super::postgres::lock_exclusive(&mut tx)?;
        // Read after taking the lock: writers wait for it, so no material appears or
        // changes between this read and the commit.
        let materials = self.storage().all()?;
        let image_model = self.options.image_model.clone();
        let text_model = self.options.text_model.clone();
        vectors::reset_space(&mut tx, SpaceKind::Images, &image_model, image_dimension)?;
        vectors::reset_space(&mut tx, SpaceKind::Texts, &text_model, text_dimension)?;
        let total = materials.len();
        for (done, chunk) in materials.chunks(IMPORT_BATCH).enumerate() {
            let (image_vectors, text_vectors) = self.embed_chunk(chunk)?;
            for (key, material, vector) in image_vectors {
                vectors::put_image_vector(&mut tx, key as i64, material.key as i64, &vector)?;
            }
            for (material, vector) in chunk.iter().zip(text_vectors) {
                vectors::put_text_vector(&mut tx, material.key as i64, &vector)?;
            }
            progress(Progress {
                done: (done * IMPORT_BATCH + chunk.len()).min(total),
                total,
            });
        }
        vectors::build_index(&mut tx, SpaceKind::Images)?;
        vectors::build_index(&mut tx, SpaceKind::Texts)?;
        tx.commit()
            .map_err(|err| pg_error("cannot commit the re-embedded vectors", err))?;
        let pool = storage.pool();
        self.image_space = VectorSpace::postgres(
            SpaceKind::Images,
            &image_model,
            PgVectorSpace::open(pool, SpaceKind::Images, Some(&image_model))?,
        );
        self.text_space = VectorSpace::postgres(
            SpaceKind::Texts,
            &text_model,
            PgVectorSpace::open(pool, SpaceKind::Texts, Some(&text_model))?,
        );
        Ok(total)
    }

    /// Embeds the stored images and texts of `chunk`.
    fn embed_chunk<'a>(&self, chunk: &'a [Material]) -> Result<ChunkVectors<'a>> {
        let mut keys = Vec::new();
        let mut pixels: Vec<RgbImage> = Vec::new();
        for material in chunk {
            for image in &material.images {
                pixels.push(self.images.load(&image.path, &self.options.limits)?.pixels);
                keys.push((image.key, material));
            }
        }
        let mut image_vectors = Vec::with_capacity(keys.len());
        if !pixels.is_empty() {
            let vectors = self.image_embedder()?.embed(&pixels)?;
            for ((key, material), vector) in keys.into_iter().zip(vectors.iter()) {
                image_vectors.push((key, material, unit_vector("image embedding", vector, None)?));
            }
        }
        let texts: Vec<String> = chunk.iter().map(Material::embedding_text).collect();
        let text_vectors = self
            .text_embedder()?
            .embed(&texts)?
            .iter()
            .map(|vector| unit_vector("text embedding", vector, None))
            .collect::<Result<_>>()?;
        Ok((image_vectors, text_vectors))
    }
}
