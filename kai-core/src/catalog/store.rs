//! The store. Its folder contains image copies, the calibration and trained heads. The
//! records are in SQLite in the folder or in PostgreSQL, and the two vector spaces are in
//! index files in the folder or in pgvector tables next to the records.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use sha2::{Digest, Sha256};

use super::backend::Backend;
use super::files::{empty_space, load_spaces};
use super::images::{ImageFolder, LoadedImage, load_image};
use super::postgres::{PgCatalogStorage, PgVectorSpace};
use super::record::{Material, MaterialInput};
use super::source::{CatalogSource, RecordError, read_catalog};
use super::space::{SpaceKind, VectorSpace, unit_vector};
use super::sqlite::SqliteStorage;
use super::storage::{CatalogStorage, ExpectedVersion, MaterialFilter, MaterialVersion};
use super::write::MaterialWrite;
use crate::Device;
use crate::db::{DatabaseUrl, PgPool, StorageConfig};
use crate::embed::{ImageEmbedder, TextEmbedder};
use crate::error::{Error, Result};
use crate::image::{ImageLimits, RgbImage};
use crate::index::{Filter, Metadata};
use crate::models::{DEFAULT_IMAGE_MODEL, DEFAULT_TEXT_MODEL, ModelCache, ModelStore, to_hex};
use crate::recognize::calibration::Calibration;

/// Records embedded per batch during an import.
pub(crate) const IMPORT_BATCH: usize = 16;

/// Location and models of a store.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// The store folder.
    pub root: PathBuf,
    /// Model directory for the embedding models.
    pub models: ModelStore,
    /// Device the models run on.
    pub device: Device,
    /// Image embedding model of the `images` space.
    pub image_model: String,
    /// Text embedding model of the `texts` space.
    pub text_model: String,
    /// Limits applied to every imported or queried image.
    pub limits: ImageLimits,
    /// The PostgreSQL database of the records and vectors; `None` keeps them in the
    /// store folder (SQLite and index files).
    pub database: Option<DatabaseUrl>,
}

impl StoreOptions {
    /// Returns options for the store at `root` with the default models on `device`.
    pub fn new(root: impl Into<PathBuf>, models: ModelStore, device: Device) -> Self {
        Self {
            root: root.into(),
            models,
            device,
            image_model: DEFAULT_IMAGE_MODEL.to_owned(),
            text_model: DEFAULT_TEXT_MODEL.to_owned(),
            limits: ImageLimits::default(),
            database: None,
        }
    }

    /// Keeps the records and vectors in the PostgreSQL database at `url`.
    #[must_use]
    pub fn with_database(mut self, url: DatabaseUrl) -> Self {
        self.database = Some(url);
        self
    }

    /// Sets [`StoreOptions::database`] from `KAI_DATABASE_URL`, as
    /// [`StorageConfig::from_env`] reads it; unset leaves the store embedded.
    ///
    /// # Errors
    ///
    /// Returns [`Error::InvalidInput`] naming the variable when a storage variable is
    /// malformed or contradicts another.
    pub fn with_env_database(mut self) -> Result<Self> {
        self.database = StorageConfig::from_env()?.catalog;
        Ok(self)
    }

    /// Returns the store folder of `--store`, else `KAI_DATA_DIR`, else `./kai-data`.
    pub fn default_root(explicit: Option<&Path>) -> PathBuf {
        explicit.map(Path::to_path_buf).unwrap_or_else(|| {
            std::env::var_os("KAI_DATA_DIR")
                .filter(|v| !v.is_empty())
                .map_or_else(|| PathBuf::from("kai-data"), PathBuf::from)
        })
    }
}

/// The outcome of an import, record by record.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImportReport {
    /// Ids of records stored for the first time.
    pub created: Vec<String>,
    /// Ids of records whose content changed.
    pub updated: Vec<String>,
    /// Ids of records skipped because nothing changed.
    pub unchanged: Vec<String>,
    /// Records that were not stored, with the reason.
    pub failed: Vec<RecordError>,
    /// The class-vote calibration fitted after the import, when anything changed and the
    /// catalog has at least two material types.
    pub calibration: Option<Calibration>,
}

/// Progress of a long operation, for progress bars.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Records handled so far.
    pub done: usize,
    /// Records in all.
    pub total: usize,
}

/// A material catalog with its vector spaces.
///
/// The store folder contains imported images (`images/`), the recognition calibration
/// (`calibration.json`) and trained heads (`heads/`) on both backends. Records and
/// vectors live in the folder too (`kai.db`, `index/*.kvi`), unless
/// [`StoreOptions::database`] moves them to PostgreSQL.
pub struct Catalog {
    pub(crate) options: StoreOptions,
    pub(crate) backend: Backend,
    pub(crate) images: ImageFolder,
    pub(crate) image_space: VectorSpace,
    pub(crate) text_space: VectorSpace,
    image_embedder: OnceLock<Arc<ImageEmbedder>>,
    text_embedder: OnceLock<Arc<TextEmbedder>>,
    // When set, the embedders come from this shared cache on every use instead of the
    // two cells above, so the process keeps one copy of each model and the cache's
    // capacity covers the catalog's models too.
    model_cache: Option<Arc<ModelCache>>,
}

impl std::fmt::Debug for Catalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Catalog")
            .field("root", &self.options.root)
            .field("database", &self.options.database)
            .field("images", &self.image_space)
            .field("texts", &self.text_space)
            .finish()
    }
}

impl Catalog {
    /// Opens the store at `options.root`, creating it when absent, with its records in
    /// PostgreSQL when [`StoreOptions::database`] is set and in SQLite otherwise.
    ///
    /// # Errors
    ///
    /// Returns [`Error::Storage`] when the database or an index file is unreadable, and
    /// [`Error::InvalidInput`] naming `kai reindex` when a vector space was built by
    /// another model than the one configured.
    pub fn open(options: StoreOptions) -> Result<Self> {
        std::fs::create_dir_all(&options.root)
            .map_err(|err| Error::io("cannot create", &options.root, err))?;
        if let Some(url) = &options.database {
            let pool = PgPool::open(url)?;
            return Self::with_pool(options, pool);
        }
        let storage = SqliteStorage::open(&options.root.join("kai.db"))?;
        Self::with_storage(options, Box::new(storage))
    }

    /// Opens the store with its records and vectors in the PostgreSQL database behind
    /// `pool`, so several catalogs (or the registry) can share one pool.
    ///
    /// # Errors
    ///
    /// As [`Catalog::open`].
    pub fn with_pool(mut options: StoreOptions, pool: PgPool) -> Result<Self> {
        options.database = Some(pool.url().clone());
        Self::postgres(options, pool, true)
    }

    fn postgres(options: StoreOptions, pool: PgPool, check_models: bool) -> Result<Self> {
        let images = ImageFolder::open(options.root.join("images"))?;
        let space = |kind: SpaceKind, model: &str| -> Result<VectorSpace> {
            let handle = PgVectorSpace::open(&pool, kind, check_models.then_some(model))?;
            Ok(VectorSpace::postgres(kind, model, handle))
        };
        let image_space = space(SpaceKind::Images, &options.image_model)?;
        let text_space = space(SpaceKind::Texts, &options.text_model)?;
        Ok(Self {
            backend: Backend::Postgres(PgCatalogStorage::new(pool)),
            options,
            images,
            image_space,
            text_space,
            image_embedder: OnceLock::new(),
            text_embedder: OnceLock::new(),
            model_cache: None,
        })
    }

    /// Opens the store without loading its vector spaces, which [`Catalog::reindex`] then
    /// rebuilds; this is how a store moves to another embedding model.
    ///
    /// # Errors
    ///
    /// Returns [`Error::Storage`] when the database is unreadable.
    pub fn open_for_reindex(options: StoreOptions) -> Result<Self> {
        std::fs::create_dir_all(&options.root)
            .map_err(|err| Error::io("cannot create", &options.root, err))?;
        if let Some(url) = &options.database {
            let pool = PgPool::open(url)?;
            return Self::postgres(options, pool, false);
        }
        let storage = Box::new(SqliteStorage::open(&options.root.join("kai.db"))?);
        let images = ImageFolder::open(options.root.join("images"))?;
        let image_space = empty_space(SpaceKind::Images, &options.image_model)?;
        let text_space = empty_space(SpaceKind::Texts, &options.text_model)?;
        Ok(Self {
            options,
            backend: Backend::Embedded(storage),
            images,
            image_space,
            text_space,
            image_embedder: OnceLock::new(),
            text_embedder: OnceLock::new(),
            model_cache: None,
        })
    }

    /// Opens the store with another storage backend for the records; the vector spaces
    /// are index files in the store folder.
    ///
    /// # Errors
    ///
    /// As [`Catalog::open`].
    pub fn with_storage(options: StoreOptions, storage: Box<dyn CatalogStorage>) -> Result<Self> {
        let images = ImageFolder::open(options.root.join("images"))?;
        let (image_space, text_space) = load_spaces(
            &options.root,
            &options.image_model,
            &options.text_model,
            storage.as_ref(),
        )?;
        Ok(Self {
            options,
            backend: Backend::Embedded(storage),
            images,
            image_space,
            text_space,
            image_embedder: OnceLock::new(),
            text_embedder: OnceLock::new(),
            model_cache: None,
        })
    }

    /// Returns the store folder.
    pub fn root(&self) -> &Path {
        &self.options.root
    }

    /// Returns the PostgreSQL database of the records, or `None` for an embedded store.
    pub fn database(&self) -> Option<&DatabaseUrl> {
        self.options.database.as_ref()
    }

    /// Takes the embedders from `cache` from now on, instead of loading its own copies.
    /// The cache must load from the catalog's model directory onto its device.
    ///
    /// # Errors
    ///
    /// Returns [`Error::InvalidInput`] when the cache's model directory or device differ
    /// from the catalog's, or when a configured model is a path, which the cache does not
    /// load.
    pub fn use_model_cache(&mut self, cache: Arc<ModelCache>) -> Result<()> {
        let o = &self.options;
        if cache.store() != &o.models {
            return Err(Error::invalid(
                "model cache",
                format!(
                    "loads from {}, but the catalog's models are in {}",
                    cache.store().root().display(),
                    o.models.root().display()
                ),
            ));
        }
        if !cache.device().same_device(&o.device) {
            return Err(Error::invalid(
                "model cache",
                "loads models onto another device than the catalog's",
            ));
        }
        for model in [&o.image_model, &o.text_model] {
            if model.contains(['/', '\\']) {
                return Err(Error::invalid(
                    "model cache",
                    format!("cannot load the catalog's model `{model}`, which is a path"),
                ));
            }
        }
        self.model_cache = Some(cache);
        Ok(())
    }

    /// Returns the image embedder, loading it on first use (or from the model cache).
    pub fn image_embedder(&self) -> Result<Arc<ImageEmbedder>> {
        let o = &self.options;
        if let Some(cache) = &self.model_cache {
            return cache.image(&o.image_model);
        }
        loaded(&self.image_embedder, || {
            ImageEmbedder::from_store(&o.models, &o.image_model, &o.device).map(Arc::new)
        })
    }

    /// Returns the text embedder, loading it on first use (or from the model cache).
    pub fn text_embedder(&self) -> Result<Arc<TextEmbedder>> {
        let o = &self.options;
        if let Some(cache) = &self.model_cache {
            return cache.text(&o.text_model);
        }
        loaded(&self.text_embedder, || {
            TextEmbedder::from_store(&o.models, &o.text_model, &o.device).map(Arc::new)
        })
    }

    /// Returns the vector space of catalog images, keyed by image key.
    pub fn image_index(&self) -> &VectorSpace {
        &self.image_space
    }

    /// Returns the vector space of material texts, keyed by material key.
    pub fn text_index(&self) -> &VectorSpace {
        &self.text_space
    }

    /// Returns the storage backend of the records.
    pub fn storage(&self) -> &dyn CatalogStorage {
        self.backend.storage()
    }

    /// Returns the limits applied to images.
    pub fn limits(&self) -> &ImageLimits {
        &self.options.limits
    }

    /// Returns the material with `id`.
    pub fn get(&self, id: &str) -> Result<Option<Material>> {
        self.storage().get(id)
    }

    /// Lists materials.
    pub fn list(
        &self,
        filter: &MaterialFilter,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<Material>> {
        self.storage().list(filter, offset, limit)
    }

    /// Returns every version of a material, oldest first; empty when no material ever
    /// had `id`.
    pub fn history(&self, id: &str) -> Result<Vec<MaterialVersion>> {
        self.storage().history(id)
    }

    /// Returns every version of a material, oldest first, deleted materials included.
    ///
    /// # Errors
    ///
    /// Returns [`Error::NotFound`] when no material ever had `id`.
    pub fn history_or_not_found(&self, id: &str) -> Result<Vec<MaterialVersion>> {
        let history = self.history(id)?;
        if history.is_empty() {
            return Err(Error::NotFound {
                what: "material",
                name: id.to_owned(),
                hint: String::new(),
            });
        }
        Ok(history)
    }

    /// Returns the absolute path of a stored image.
    pub fn image_path(&self, relative: &str) -> PathBuf {
        self.images.path(relative)
    }

    /// Imports the catalog folder `folder` (`catalog.json` or `catalog.csv` plus images).
    ///
    /// Records whose fields and image bytes are unchanged since the last import are
    /// skipped. A record with a bad field, a missing or undecodable image is reported in
    /// [`ImportReport::failed`] and the others are still imported. Each stored record is
    /// written in one transaction, so none is left half-written.
    ///
    /// # Errors
    ///
    /// Returns an error when the catalog file as a whole is unreadable, a model cannot be
    /// loaded, or the store cannot be written.
    pub fn import(
        &mut self,
        folder: &Path,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<ImportReport> {
        let source = read_catalog(folder)?;
        let mut report =
            self.with_write(|catalog| catalog.import_records(folder, source, progress))?;
        let changed = !report.created.is_empty() || !report.updated.is_empty();
        if changed && self.material_types()?.len() >= 2 {
            report.calibration = Some(self.calibrate()?);
        }
        Ok(report)
    }

    /// Stores the changed records of `source`, in batches of [`IMPORT_BATCH`].
    fn import_records(
        &mut self,
        folder: &Path,
        source: CatalogSource,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<ImportReport> {
        let mut report = ImportReport {
            failed: source.errors,
            ..Default::default()
        };
        let total = source.records.len();
        let mut pending: Vec<(MaterialInput, Vec<LoadedImage>, String)> = Vec::new();
        for (done, record) in source.records.iter().enumerate() {
            match self.prepare(folder, record) {
                Ok(None) => report.unchanged.push(record.id.trim().to_owned()),
                Ok(Some(prepared)) => pending.push(prepared),
                Err(err) => report.failed.push(RecordError {
                    record: record.id.clone(),
                    message: err.to_string(),
                }),
            }
            if pending.len() == IMPORT_BATCH {
                self.store_batch(
                    std::mem::take(&mut pending),
                    ExpectedVersion::Any,
                    &mut report,
                )?;
            }
            progress(Progress {
                done: done + 1,
                total,
            });
        }
        self.store_batch(pending, ExpectedVersion::Any, &mut report)?;
        Ok(report)
    }

    /// Reads and checks one record; returns `None` when it is stored unchanged.
    fn prepare(
        &self,
        folder: &Path,
        record: &MaterialInput,
    ) -> Result<Option<(MaterialInput, Vec<LoadedImage>, String)>> {
        let record = record.normalized()?;
        let images = record
            .images
            .iter()
            .map(|relative| load_image(&folder.join(relative), &self.options.limits))
            .collect::<Result<Vec<_>>>()?;
        let hash = content_hash(&record, &images, &[]);
        if self.storage().content_hash(&record.id)?.as_deref() == Some(hash.as_str()) {
            return Ok(None);
        }
        Ok(Some((record, images, hash)))
    }

    /// Embeds a batch of records and stores each in its own transaction.
    pub(super) fn store_batch(
        &mut self,
        batch: Vec<(MaterialInput, Vec<LoadedImage>, String)>,
        expected: ExpectedVersion,
        report: &mut ImportReport,
    ) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let pixels: Vec<RgbImage> = batch
            .iter()
            .flat_map(|(_, images, _)| images.iter().map(|i| i.pixels.clone()))
            .collect();
        let image_vectors = if pixels.is_empty() {
            None
        } else {
            Some(self.image_embedder()?.embed(&pixels)?)
        };
        let texts: Vec<String> = batch.iter().map(|(r, _, _)| r.embedding_text()).collect();
        let text_vectors = self.text_embedder()?.embed(&texts)?;
        let mut next_image = 0;
        for ((record, images, hash), text_vector) in batch.into_iter().zip(text_vectors.iter()) {
            let mut stored = Vec::with_capacity(images.len());
            let mut vectors = Vec::with_capacity(images.len());
            for image in &images {
                stored.push(self.images.store_new(image)?);
                let vector = image_vectors
                    .as_ref()
                    .and_then(|vectors| vectors.get(next_image))
                    .ok_or_else(|| Error::Internal("image vector missing".into()))?;
                next_image += 1;
                vectors.push(unit_vector("image embedding", vector, None)?);
            }
            let existed = self.storage().content_hash(&record.id)?.is_some();
            let write = MaterialWrite {
                text_vector: unit_vector("text embedding", text_vector, None)?,
                image_vectors: vectors,
                images: stored,
                content_hash: hash,
                expected,
                record,
            };
            let material = self.write_materials(vec![write])?.remove(0);
            if existed {
                report.updated.push(material.id);
            } else {
                report.created.push(material.id);
            }
        }
        Ok(())
    }

    /// Replaces a stored material's fields (its images stay unless `record.images` names
    /// new ones, relative to `image_folder`).
    ///
    /// The write expects the version read at the start, so when another writer changes
    /// the material meanwhile, this update fails instead of overwriting that change.
    ///
    /// # Errors
    ///
    /// Returns [`Error::NotFound`] for an unknown id, the validation errors of
    /// [`MaterialInput::normalized`], and [`Error::Conflict`] when the material changed
    /// during the update.
    pub fn update(&mut self, record: &MaterialInput, image_folder: &Path) -> Result<Material> {
        self.with_write(|catalog| catalog.update_record(record, image_folder))
    }

    fn update_record(&mut self, record: &MaterialInput, image_folder: &Path) -> Result<Material> {
        let Some(current) = self.storage().get(record.id.trim())? else {
            return Err(Error::NotFound {
                what: "material",
                name: record.id.clone(),
                hint: String::new(),
            });
        };
        let mut record = record.normalized()?;
        let images: Vec<LoadedImage> = if record.images.is_empty() {
            current
                .images
                .iter()
                .map(|image| self.images.load(&image.path, &self.options.limits))
                .collect::<Result<_>>()?
        } else {
            record
                .images
                .iter()
                .map(|relative| load_image(&image_folder.join(relative), &self.options.limits))
                .collect::<Result<_>>()?
        };
        if record.images.is_empty() {
            record.images = current.images.iter().map(|i| i.path.clone()).collect();
        }
        let hash = content_hash(&record, &images, &[]);
        let mut report = ImportReport::default();
        let expected = ExpectedVersion::Exactly(current.version);
        self.store_batch(vec![(record.clone(), images, hash)], expected, &mut report)?;
        self.storage().get(&record.id)?.ok_or_else(|| {
            Error::Storage(format!("material {} vanished after the update", record.id))
        })
    }

    /// Deletes a material and removes its vectors; returns whether it existed.
    ///
    /// # Errors
    ///
    /// Returns [`Error::Storage`] when the store cannot be written.
    pub fn delete(&mut self, id: &str) -> Result<bool> {
        self.delete_expecting(id, None)
    }

    /// Deletes a material as [`Catalog::delete`] does, but with `expected_version` only
    /// while it is at that version. The storage checks the version in the deletion's
    /// transaction.
    ///
    /// # Errors
    ///
    /// Returns [`Error::Conflict`] when the material is at another version, and
    /// [`Error::Storage`] when the store cannot be written.
    pub fn delete_expecting(&mut self, id: &str, expected_version: Option<u32>) -> Result<bool> {
        let expected = expected_version.map_or(ExpectedVersion::Any, ExpectedVersion::Exactly);
        self.with_write(|catalog| catalog.delete_material(id, expected))
    }
}

/// Returns the value in `cell`, loading it first when the cell is empty.
fn loaded<T>(cell: &OnceLock<Arc<T>>, load: impl FnOnce() -> Result<Arc<T>>) -> Result<Arc<T>> {
    if let Some(value) = cell.get() {
        return Ok(Arc::clone(value));
    }
    let value = load()?;
    Ok(Arc::clone(cell.get_or_init(|| value)))
}

/// Returns the metadata the vector indexes filter on.
pub(crate) fn metadata_of(material: &Material) -> Metadata {
    Metadata {
        material_type: Some(material.material_type.clone()),
        collection: material.collection_id.clone(),
        tags: material.tags.clone(),
    }
}

/// Converts a listing filter into the vector index's filter.
pub(crate) fn index_filter(filter: &MaterialFilter) -> Option<Filter> {
    if filter == &MaterialFilter::default() {
        return None;
    }
    Some(Filter {
        material_type: filter.material_type.clone(),
        collection: filter.collection_id.clone(),
        tags: filter.tags.clone(),
    })
}

/// Hashes a record's fields, its images' bytes and any caller-supplied vectors, so
/// re-imports skip unchanged records and a model-embedded import replaces records that
/// came with their own vectors.
pub(crate) fn content_hash(
    record: &MaterialInput,
    images: &[LoadedImage],
    vectors: &[&[f32]],
) -> String {
    let mut hasher = Sha256::new();
    let mut fields = record.clone();
    fields.images.clear();
    hasher.update(serde_json::to_vec(&fields).unwrap_or_default());
    for image in images {
        hasher.update(image.sha256.as_bytes());
    }
    for vector in vectors {
        for component in *vector {
            hasher.update(component.to_le_bytes());
        }
    }
    to_hex(&hasher.finalize())
}
