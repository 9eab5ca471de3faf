//! The store folder: the database, one vector index per vector space, and image copies.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use sha2::{Digest, Sha256};

use super::images::{ImageFolder, LoadedImage, load_image};
use super::record::{Material, MaterialInput};
use super::source::{RecordError, read_catalog};
use super::sqlite::SqliteStorage;
use super::storage::{CatalogStorage, MaterialFilter, MaterialVersion, NewImage};
use crate::Device;
use crate::embed::{ImageEmbedder, TextEmbedder};
use crate::error::{Error, Result};
use crate::image::{ImageLimits, RgbImage};
use crate::index::{Filter, IndexConfig, Metadata, Metric, VectorIndex};
use crate::models::{DEFAULT_IMAGE_MODEL, DEFAULT_TEXT_MODEL, ModelStore, to_hex};
use crate::recognize::calibration::Calibration;

/// The vector space of catalog images, keyed by image key.
const IMAGE_SPACE: &str = "images";
/// The vector space of material texts, keyed by material key.
const TEXT_SPACE: &str = "texts";
/// Records embedded per batch during an import.
const IMPORT_BATCH: usize = 16;

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
        }
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

/// A material catalog with its vector spaces, in one store folder.
pub struct Catalog {
    options: StoreOptions,
    storage: Box<dyn CatalogStorage>,
    images: ImageFolder,
    image_index: VectorIndex,
    text_index: VectorIndex,
    image_embedder: OnceLock<ImageEmbedder>,
    text_embedder: OnceLock<TextEmbedder>,
}

impl std::fmt::Debug for Catalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Catalog")
            .field("root", &self.options.root)
            .field("images", &self.image_index.len())
            .field("texts", &self.text_index.len())
            .finish()
    }
}

impl Catalog {
    /// Opens the store at `options.root` with SQLite, creating it when absent.
    ///
    /// # Errors
    ///
    /// Returns [`Error::Storage`] when the database or an index file is unreadable, and
    /// [`Error::InvalidInput`] naming `kai reindex` when a vector space was built by
    /// another model than the one configured.
    pub fn open(options: StoreOptions) -> Result<Self> {
        std::fs::create_dir_all(&options.root)
            .map_err(|err| Error::io("cannot create", &options.root, err))?;
        let storage = SqliteStorage::open(&options.root.join("kai.db"))?;
        Self::with_storage(options, Box::new(storage))
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
        let storage = Box::new(SqliteStorage::open(&options.root.join("kai.db"))?);
        let images = ImageFolder::open(options.root.join("images"))?;
        let image_index = new_space(1, &options.image_model)?;
        let text_index = new_space(1, &options.text_model)?;
        Ok(Self {
            options,
            storage,
            images,
            image_index,
            text_index,
            image_embedder: OnceLock::new(),
            text_embedder: OnceLock::new(),
        })
    }

    /// Opens the store with another storage backend.
    ///
    /// # Errors
    ///
    /// As [`Catalog::open`].
    pub fn with_storage(options: StoreOptions, storage: Box<dyn CatalogStorage>) -> Result<Self> {
        let images = ImageFolder::open(options.root.join("images"))?;
        let (image_index, text_index) = load_spaces(&options, storage.as_ref())?;
        Ok(Self {
            options,
            storage,
            images,
            image_index,
            text_index,
            image_embedder: OnceLock::new(),
            text_embedder: OnceLock::new(),
        })
    }

    /// Returns the store folder.
    pub fn root(&self) -> &Path {
        &self.options.root
    }

    /// Takes the store's write lock and reloads the vector spaces, which another process
    /// may have rewritten since this catalog was opened.
    fn begin_write(&mut self) -> Result<WriteLock> {
        let lock = WriteLock::acquire(&self.options.root)?;
        let (image_index, text_index) = load_spaces(&self.options, self.storage.as_ref())?;
        self.image_index = image_index;
        self.text_index = text_index;
        Ok(lock)
    }

    /// Returns the image embedder, loading it on first use.
    pub fn image_embedder(&self) -> Result<&ImageEmbedder> {
        let o = &self.options;
        loaded(&self.image_embedder, || {
            ImageEmbedder::from_store(&o.models, &o.image_model, &o.device)
        })
    }

    /// Returns the text embedder, loading it on first use.
    pub fn text_embedder(&self) -> Result<&TextEmbedder> {
        let o = &self.options;
        loaded(&self.text_embedder, || {
            TextEmbedder::from_store(&o.models, &o.text_model, &o.device)
        })
    }

    /// Returns the vector index of catalog images.
    pub fn image_index(&self) -> &VectorIndex {
        &self.image_index
    }

    /// Returns the vector index of material texts.
    pub fn text_index(&self) -> &VectorIndex {
        &self.text_index
    }

    /// Returns the storage backend.
    pub fn storage(&self) -> &dyn CatalogStorage {
        self.storage.as_ref()
    }

    /// Returns the limits applied to images.
    pub fn limits(&self) -> &ImageLimits {
        &self.options.limits
    }

    /// Returns the material with `id`.
    pub fn get(&self, id: &str) -> Result<Option<Material>> {
        self.storage.get(id)
    }

    /// Lists materials.
    pub fn list(
        &self,
        filter: &MaterialFilter,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<Material>> {
        self.storage.list(filter, offset, limit)
    }

    /// Returns every version of a material, oldest first.
    pub fn history(&self, id: &str) -> Result<Vec<MaterialVersion>> {
        self.storage.history(id)
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
        let _lock = self.begin_write()?;
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
                self.store_batch(std::mem::take(&mut pending), &mut report)?;
            }
            progress(Progress {
                done: done + 1,
                total,
            });
        }
        self.store_batch(pending, &mut report)?;
        self.save_indexes()?;
        let changed = !report.created.is_empty() || !report.updated.is_empty();
        if changed && self.material_types()?.len() >= 2 {
            report.calibration = Some(self.calibrate()?);
        }
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
        let hash = content_hash(&record, &images);
        if self.storage.content_hash(&record.id)?.as_deref() == Some(hash.as_str()) {
            return Ok(None);
        }
        Ok(Some((record, images, hash)))
    }

    fn store_batch(
        &mut self,
        batch: Vec<(MaterialInput, Vec<LoadedImage>, String)>,
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
        let mut next_vector = 0;
        for (record, images, hash) in batch {
            let mut stored = Vec::with_capacity(images.len());
            for image in &images {
                stored.push(NewImage {
                    path: self.images.store(image)?,
                    sha256: image.sha256.clone(),
                    width: image.pixels.width(),
                    height: image.pixels.height(),
                });
            }
            let previous = self.storage.get(&record.id)?;
            let material = self.storage.put(&record, &stored, &hash)?;
            if let Some(previous) = &previous {
                for image in &previous.images {
                    self.image_index.remove(image.key);
                }
            }
            let metadata = metadata_of(&material);
            for image in &material.images {
                let vectors = image_vectors
                    .as_ref()
                    .ok_or_else(|| Error::Internal("image vectors missing".into()))?;
                let vector = vectors
                    .get(next_vector)
                    .ok_or_else(|| Error::Internal("image vector missing".into()))?;
                next_vector += 1;
                self.image_index
                    .upsert(image.key, vector, metadata.clone())?;
            }
            let text = self.text_embedder()?.embed(&[material.embedding_text()])?;
            self.text_index
                .upsert(material.key, text.as_slice(), metadata)?;
            if previous.is_some() {
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
    /// # Errors
    ///
    /// Returns [`Error::NotFound`] for an unknown id and the validation errors of
    /// [`MaterialInput::normalized`].
    pub fn update(&mut self, record: &MaterialInput, image_folder: &Path) -> Result<Material> {
        let _lock = self.begin_write()?;
        let Some(current) = self.storage.get(record.id.trim())? else {
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
                .map(|image| load_image(&self.images.path(&image.path), &self.options.limits))
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
        let hash = content_hash(&record, &images);
        let mut report = ImportReport::default();
        self.store_batch(vec![(record.clone(), images, hash)], &mut report)?;
        self.save_indexes()?;
        self.storage.get(&record.id)?.ok_or_else(|| {
            Error::Storage(format!("material {} vanished after the update", record.id))
        })
    }

    /// Deletes a material and removes its vectors; returns whether it existed.
    ///
    /// # Errors
    ///
    /// Returns [`Error::Storage`] when the store cannot be written.
    pub fn delete(&mut self, id: &str) -> Result<bool> {
        let _lock = self.begin_write()?;
        let Some(material) = self.storage.delete(id)? else {
            return Ok(false);
        };
        for image in &material.images {
            self.image_index.remove(image.key);
        }
        self.text_index.remove(material.key);
        self.save_indexes()?;
        Ok(true)
    }

    /// Re-embeds every material with the configured models and rewrites both vector
    /// spaces, for example after changing the image or text model.
    ///
    /// # Errors
    ///
    /// Returns model and storage errors.
    pub fn reindex(&mut self, progress: &mut dyn FnMut(Progress)) -> Result<usize> {
        let _lock = WriteLock::acquire(&self.options.root)?;
        let materials = self.storage.all()?;
        let image_dimension = self.image_embedder()?.dimension();
        let text_dimension = self.text_embedder()?.dimension();
        let mut image_index = new_space(image_dimension, &self.options.image_model)?;
        let mut text_index = new_space(text_dimension, &self.options.text_model)?;
        let total = materials.len();
        for (done, chunk) in materials.chunks(IMPORT_BATCH).enumerate() {
            let mut keys = Vec::new();
            let mut pixels = Vec::new();
            for material in chunk {
                for image in &material.images {
                    pixels.push(
                        load_image(&self.images.path(&image.path), &self.options.limits)?.pixels,
                    );
                    keys.push((image.key, metadata_of(material)));
                }
            }
            if !pixels.is_empty() {
                let vectors = self.image_embedder()?.embed(&pixels)?;
                for ((key, metadata), vector) in keys.into_iter().zip(vectors.iter()) {
                    image_index.upsert(key, vector, metadata)?;
                }
            }
            let texts: Vec<String> = chunk.iter().map(Material::embedding_text).collect();
            let vectors = self.text_embedder()?.embed(&texts)?;
            for (material, vector) in chunk.iter().zip(vectors.iter()) {
                text_index.upsert(material.key, vector, metadata_of(material))?;
            }
            progress(Progress {
                done: (done * IMPORT_BATCH + chunk.len()).min(total),
                total,
            });
        }
        self.image_index = image_index;
        self.text_index = text_index;
        self.save_indexes()?;
        if self.material_types()?.len() >= 2 {
            self.calibrate()?;
        }
        Ok(total)
    }

    fn save_indexes(&self) -> Result<()> {
        self.image_index
            .save(space_path(&self.options.root, IMAGE_SPACE))?;
        self.text_index
            .save(space_path(&self.options.root, TEXT_SPACE))
    }
}

/// Returns the value in `cell`, loading it first when the cell is empty.
fn loaded<T>(cell: &OnceLock<T>, load: impl FnOnce() -> Result<T>) -> Result<&T> {
    if let Some(value) = cell.get() {
        return Ok(value);
    }
    let value = load()?;
    Ok(cell.get_or_init(|| value))
}

/// Loads both vector spaces and checks them against the database.
fn load_spaces(
    options: &StoreOptions,
    storage: &dyn CatalogStorage,
) -> Result<(VectorIndex, VectorIndex)> {
    let image_index = open_space(&options.root, IMAGE_SPACE, &options.image_model)?;
    let text_index = open_space(&options.root, TEXT_SPACE, &options.text_model)?;
    // The database commits each record before the index files are rewritten, so a
    // process killed in between leaves vectors missing. The error names the repair.
    let counts = [
        (IMAGE_SPACE, image_index.len(), storage.image_count()?),
        (TEXT_SPACE, text_index.len(), storage.count()?),
    ];
    for (space, vectors, records) in counts {
        if vectors != records {
            return Err(Error::Storage(format!(
                "vector space `{space}` of {} has {vectors} vectors for {records} stored \
                 records (an import was interrupted?); run `kai reindex`",
                options.root.display()
            )));
        }
    }
    Ok((image_index, text_index))
}

/// An exclusive hold on a store's `write.lock`, released when dropped or when the process
/// ends, so two writers never interleave their database and index updates.
#[derive(Debug)]
struct WriteLock {
    _file: std::fs::File,
}

impl WriteLock {
    fn acquire(root: &Path) -> Result<Self> {
        let path = root.join("write.lock");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|err| Error::io("cannot open", &path, err))?;
        match file.try_lock() {
            Ok(()) => Ok(Self { _file: file }),
            Err(std::fs::TryLockError::WouldBlock) => Err(Error::Conflict(format!(
                "another kai process is writing to the store {}; retry when it has finished",
                root.display()
            ))),
            Err(std::fs::TryLockError::Error(err)) => Err(Error::io("cannot lock", &path, err)),
        }
    }
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

fn space_path(root: &Path, space: &str) -> PathBuf {
    root.join("index").join(format!("{space}.kvi"))
}

fn new_space(dimension: usize, model: &str) -> Result<VectorIndex> {
    VectorIndex::new(dimension, Metric::Cosine, IndexConfig::default())?.with_model(model)
}

/// Loads a vector space, or returns `None`-like empty space sized on first insert.
fn open_space(root: &Path, space: &str, model: &str) -> Result<VectorIndex> {
    let path = space_path(root, space);
    if let Some(folder) = path.parent() {
        std::fs::create_dir_all(folder).map_err(|err| Error::io("cannot create", folder, err))?;
    }
    if !path.is_file() {
        let dimension = crate::models::Manifest::find(model).map_or(0, |m| m.dimension);
        if dimension == 0 {
            return Err(Error::invalid(
                "model",
                format!("`{model}` has no built-in manifest to size the {space} space"),
            ));
        }
        return new_space(dimension, model);
    }
    let index = VectorIndex::load(&path).map_err(|err| {
        Error::Storage(format!(
            "{err}; run `kai reindex` to rebuild the `{space}` space"
        ))
    })?;
    if index.model() != model {
        return Err(Error::invalid(
            format!("vector space `{space}`"),
            format!(
                "{} was built with model `{}`, not `{model}`; run `kai reindex` to re-embed the catalog with `{model}`",
                path.display(),
                index.model()
            ),
        ));
    }
    Ok(index)
}

/// Hashes a record's fields and its images' bytes, so re-imports skip unchanged records.
fn content_hash(record: &MaterialInput, images: &[LoadedImage]) -> String {
    let mut hasher = Sha256::new();
    let mut fields = record.clone();
    fields.images.clear();
    hasher.update(serde_json::to_vec(&fields).unwrap_or_default());
    for image in images {
        hasher.update(image.sha256.as_bytes());
    }
    to_hex(&hasher.finalize())
}
