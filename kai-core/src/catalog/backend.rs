//! The write path of a catalog's records and vectors. An embedded store writes records to
//! its database and vectors to index files under the store's write lock. A PostgreSQL
//! store writes both in one database transaction.

use super::files::{WriteLock, load_spaces, save_space};
use super::postgres::PgCatalogStorage;
use super::record::Material;
use super::storage::{CatalogStorage, ExpectedVersion};
use super::store::{Catalog, metadata_of};
use super::write::MaterialWrite;
use crate::error::Result;

/// The records' backend.
pub(crate) enum Backend {
    /// Records in a [`CatalogStorage`] (SQLite unless the caller gave another); vectors
    /// in the store folder's index files.
    Embedded(Box<dyn CatalogStorage>),
    /// Records and vectors in PostgreSQL.
    Postgres(PgCatalogStorage),
}

impl Backend {
    pub(crate) fn storage(&self) -> &dyn CatalogStorage {
        match self {
            Self::Embedded(storage) => storage.as_ref(),
            Self::Postgres(storage) => storage,
        }
    }
}

impl Catalog {
    /// Prepares a write. An embedded store takes its write lock and reloads the index
    /// files, which another process may have rewritten since this catalog read them. A
    /// PostgreSQL store needs neither, because its transactions serialize writers.
    pub(crate) fn begin_write(&mut self) -> Result<Option<WriteLock>> {
        let Backend::Embedded(storage) = &self.backend else {
            return Ok(None);
        };
        let lock = WriteLock::acquire(&self.options.root)?;
        let (images, texts) = load_spaces(
            &self.options.root,
            &self.options.image_model,
            &self.options.text_model,
            storage.as_ref(),
        )?;
        self.image_space = images;
        self.text_space = texts;
        Ok(Some(lock))
    }

    /// Runs `write` between [`Catalog::begin_write`] and [`Catalog::finish_write`]. The
    /// index files are rewritten even when `write` fails, because an embedded store has
    /// committed the records stored before the failure and their vectors must match.
    pub(crate) fn with_write<T>(
        &mut self,
        write: impl FnOnce(&mut Self) -> Result<T>,
    ) -> Result<T> {
        let _lock = self.begin_write()?;
        let result = write(self);
        let finished = self.finish_write();
        let value = result?;
        finished?;
        Ok(value)
    }

    /// Ends a write: an embedded store rewrites its index files.
    pub(crate) fn finish_write(&self) -> Result<()> {
        if let Backend::Embedded(_) = self.backend {
            save_space(&self.options.root, &self.image_space)?;
            save_space(&self.options.root, &self.text_space)?;
        }
        Ok(())
    }

    /// Stores checked materials with their vectors; call between
    /// [`Catalog::begin_write`] and [`Catalog::finish_write`].
    ///
    /// On PostgreSQL all of `writes` commit in one transaction or none does. An embedded
    /// store commits each record in its own transaction, so a failure leaves the earlier
    /// ones stored, and their vectors reach the index files at [`Catalog::finish_write`].
    pub(crate) fn write_materials(&mut self, writes: Vec<MaterialWrite>) -> Result<Vec<Material>> {
        let storage = match &mut self.backend {
            Backend::Postgres(storage) => {
                let models = (
                    self.options.image_model.as_str(),
                    self.options.text_model.as_str(),
                );
                return storage.write_all(&writes, models);
            }
            Backend::Embedded(storage) => storage,
        };
        let mut materials = Vec::with_capacity(writes.len());
        for write in writes {
            let previous = storage.get(&write.record.id)?;
            let material = storage.put(
                &write.record,
                &write.images,
                &write.content_hash,
                write.expected,
            )?;
            for image in previous.iter().flat_map(|p| &p.images) {
                self.image_space.remove_file(image.key);
            }
            let metadata = metadata_of(&material);
            for (image, vector) in material.images.iter().zip(&write.image_vectors) {
                self.image_space
                    .upsert_file(image.key, vector, metadata.clone())?;
            }
            self.text_space
                .upsert_file(material.key, &write.text_vector, metadata)?;
            materials.push(material);
        }
        Ok(materials)
    }

    /// Deletes a material with its vectors if its version passes `expected`; returns
    /// whether it existed.
    pub(crate) fn delete_material(&mut self, id: &str, expected: ExpectedVersion) -> Result<bool> {
        let storage: &mut dyn CatalogStorage = match &mut self.backend {
            Backend::Embedded(storage) => storage.as_mut(),
            // The vectors go with the row (ON DELETE CASCADE) in the same transaction.
            Backend::Postgres(storage) => {
                return Ok(storage.delete_expecting(id, expected)?.is_some());
            }
        };
        let Some(material) = storage.delete_expecting(id, expected)? else {
            return Ok(false);
        };
        for image in &material.images {
            self.image_space.remove_file(image.key);
        }
        self.text_space.remove_file(material.key);
        Ok(true)
    }
}
