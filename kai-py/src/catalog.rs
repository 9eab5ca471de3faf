//! `Catalog`: a material catalog in a store folder (or PostgreSQL), with import, search,
//! recognition and domain heads. Results cross as JSON text with the core's camelCase
//! keys, which `kai/catalog.py` turns into dataclasses.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use kai_core::catalog::{MaterialFilter, MaterialInput, Progress, SearchQuery, StoreOptions};
use kai_core::recognize::{HeadSpec, RecognizeOptions};
use pyo3::prelude::*;

use crate::batch::{extract_photos, recognize_each};
use crate::convert::{ImageSource, count, from_json, json};
use crate::errors::{detached, to_py_error};
use crate::text::{model_store, open_device};
use crate::upload::{extract_uploads, to_uploads};

/// A catalog opened from Python. The core catalog needs exclusive access for writes, so
/// it sits behind a mutex; calls hold it with the GIL released.
#[derive(Debug)]
#[pyclass(module = "kai._kai", frozen)]
pub struct Catalog {
    pub inner: Mutex<kai_core::catalog::Catalog>,
    /// The thread that owns the lock of `inner` (see [`thread_number`]), 0 when none does.
    holder: AtomicU64,
    /// The store folder, kept outside the mutex so reading it never waits for a write.
    root: PathBuf,
    /// The PostgreSQL URL with its password hidden, or `None` for an embedded store.
    database: Option<String>,
}

impl Catalog {
    fn wrap(catalog: kai_core::catalog::Catalog) -> Self {
        Self {
            root: catalog.root().to_path_buf(),
            database: catalog.database().map(ToString::to_string),
            inner: Mutex::new(catalog),
            holder: AtomicU64::new(0),
        }
    }

    /// Locks the catalog; a panic in an earlier call leaves no half-written state (every
    /// write is transactional), so a poisoned lock is still usable.
    ///
    /// Call it only with the GIL released, because progress callbacks take the GIL while
    /// the lock is held. A call from the thread that already holds the lock, which only
    /// a progress callback can make, fails with a conflict instead of waiting forever.
    pub fn lock(&self) -> kai_core::Result<CatalogGuard<'_>> {
        let me = thread_number();
        if self.holder.load(Ordering::SeqCst) == me {
            return Err(kai_core::Error::Conflict(
                "the catalog is busy with a call on this thread; a progress callback cannot \
                 use the catalog it reports on"
                    .into(),
            ));
        }
        let guard = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.holder.store(me, Ordering::SeqCst);
        Ok(CatalogGuard {
            guard,
            holder: &self.holder,
        })
    }
}

/// Exclusive access to a [`Catalog`]'s core catalog; releasing it clears the holder.
#[derive(Debug)]
pub struct CatalogGuard<'a> {
    guard: MutexGuard<'a, kai_core::catalog::Catalog>,
    holder: &'a AtomicU64,
}

impl std::ops::Deref for CatalogGuard<'_> {
    type Target = kai_core::catalog::Catalog;

    fn deref(&self) -> &Self::Target {
        &self.guard
    }
}

impl std::ops::DerefMut for CatalogGuard<'_> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.guard
    }
}

impl Drop for CatalogGuard<'_> {
    fn drop(&mut self) {
        self.holder.store(0, Ordering::SeqCst);
    }
}

/// Returns a number unique to the calling thread, never 0.
fn thread_number() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    thread_local! {
        static NUMBER: u64 = NEXT.fetch_add(1, Ordering::Relaxed);
    }
    NUMBER.with(|n| *n)
}

/// Builds the options of the store at `store` (default `KAI_DATA_DIR`, else
/// `./kai-data`) with the image limits of the environment. A `database_url` (default
/// `KAI_DATABASE_URL`) moves records and vectors to PostgreSQL.
fn store_options(
    store: Option<PathBuf>,
    model_dir: Option<PathBuf>,
    device: Option<&str>,
    database_url: Option<&str>,
) -> kai_core::Result<StoreOptions> {
    let root = StoreOptions::default_root(store.as_deref());
    let mut options = StoreOptions::new(root, model_store(model_dir), open_device(device)?);
    options.limits = kai_core::image::ImageLimits::from_env()?;
    match database_url {
        Some(url) => {
            Ok(options.with_database(kai_core::db::DatabaseUrl::parse("database_url", url)?))
        }
        None => options.with_env_database(),
    }
}

/// Lower-cases a material type and tags as the stored records have them, so filters
/// given in any case match.
fn material_filter(
    material_type: Option<&str>,
    collection: Option<String>,
    tags: &[String],
) -> MaterialFilter {
    MaterialFilter {
        material_type: material_type.map(str::to_lowercase),
        collection_id: collection,
        tags: tags.iter().map(|tag| tag.to_lowercase()).collect(),
    }
}

/// Wraps an optional Python callable as a core progress callback. It runs while the
/// catalog is locked and the GIL released, so it takes the GIL for each call. An exception
/// it raises cannot stop the core operation, so it is reported with
/// `sys.unraisablehook` and the operation goes on.
fn progress_callback(callback: Option<Py<PyAny>>) -> impl FnMut(Progress) + Send {
    move |progress: Progress| {
        let Some(callback) = &callback else {
            return;
        };
        Python::attach(|py| {
            if let Err(err) = callback.call1(py, (progress.done, progress.total)) {
                err.write_unraisable(py, Some(callback.bind(py)));
            }
        });
    }
}

#[pymethods]
impl Catalog {
    /// Opens (creating when absent) the store at `store` (default `KAI_DATA_DIR`, else
    /// `./kai-data`); `database_url` (default `KAI_DATABASE_URL`) moves records and
    /// vectors to PostgreSQL.
    #[new]
    #[pyo3(signature = (store = None, *, model_dir = None, device = None, database_url = None))]
    fn new(
        py: Python<'_>,
        store: Option<PathBuf>,
        model_dir: Option<PathBuf>,
        device: Option<String>,
        database_url: Option<String>,
    ) -> PyResult<Self> {
        let catalog = detached(py, || {
            let options =
                store_options(store, model_dir, device.as_deref(), database_url.as_deref())?;
            kai_core::catalog::Catalog::open(options)
        })?;
        Ok(Self::wrap(catalog))
    }

    /// Opens the store without loading its vector spaces, so that `reindex` can rebuild
    /// them with the configured models after a model change.
    #[staticmethod]
    #[pyo3(signature = (store = None, *, model_dir = None, device = None, database_url = None))]
    fn open_for_reindex(
        py: Python<'_>,
        store: Option<PathBuf>,
        model_dir: Option<PathBuf>,
        device: Option<String>,
        database_url: Option<String>,
    ) -> PyResult<Self> {
        let catalog = detached(py, || {
            let options =
                store_options(store, model_dir, device.as_deref(), database_url.as_deref())?;
            kai_core::catalog::Catalog::open_for_reindex(options)
        })?;
        Ok(Self::wrap(catalog))
    }

    /// Returns the store folder.
    #[getter]
    fn root(&self) -> PathBuf {
        self.root.clone()
    }

    /// Returns the PostgreSQL URL with its password hidden, or `None` for an embedded
    /// store.
    #[getter]
    fn database(&self) -> Option<String> {
        self.database.clone()
    }

    /// Imports `folder` (`catalog.json` or `catalog.csv` plus images); returns the import
    /// report as JSON. Records that fail are listed in the report, not raised.
    /// `progress` is called with (records done, records in all) after each record.
    #[pyo3(signature = (folder, progress = None))]
    fn import_folder(
        &self,
        py: Python<'_>,
        folder: PathBuf,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<String> {
        let mut report_progress = progress_callback(progress);
        let report = detached(py, || self.lock()?.import(&folder, &mut report_progress))?;
        json(py, &report)
    }

    /// Searches by text, image or both; returns the hits as a JSON list. `weights` is
    /// JSON of the fusion weights (camelCase keys; missing ones keep their defaults).
    #[pyo3(signature = (text = None, image = None, material_type = None, tags = Vec::new(), collection = None, top_k = 10, offset = 0, weights = None))]
    #[allow(clippy::too_many_arguments)]
    fn search(
        &self,
        py: Python<'_>,
        text: Option<String>,
        image: Option<&Bound<'_, PyAny>>,
        material_type: Option<&str>,
        tags: Vec<String>,
        collection: Option<String>,
        top_k: i64,
        offset: i64,
        weights: Option<&str>,
    ) -> PyResult<String> {
        let top_k: usize = count(py, "top_k", top_k)?;
        let offset: usize = count(py, "offset", offset)?;
        let source = image.map(ImageSource::extract).transpose()?;
        let weights = match weights {
            Some(text) => from_json(py, "weights", text)?,
            None => Default::default(),
        };
        let filter = material_filter(material_type, collection, &tags);
        let hits = detached(py, || {
            let catalog = self.lock()?;
            let image = source.map(|s| s.load(catalog.limits())).transpose()?;
            let query = SearchQuery {
                text,
                image,
                filter,
                top_k,
                offset,
                weights,
            };
            catalog.search(&query)
        })?;
        json(py, &hits)
    }

    /// Recognizes the material in `image`; `options` is JSON of the recognition options
    /// (camelCase keys; missing ones keep their defaults). Returns the recognition as JSON.
    #[pyo3(signature = (image, options = None))]
    fn recognize(
        &self,
        py: Python<'_>,
        image: &Bound<'_, PyAny>,
        options: Option<&str>,
    ) -> PyResult<String> {
        let source = ImageSource::extract(image)?;
        let options: RecognizeOptions = match options {
            Some(text) => from_json(py, "options", text)?,
            None => RecognizeOptions::default(),
        };
        let recognition = detached(py, || {
            let catalog = self.lock()?;
            let image = source.load(catalog.limits())?;
            catalog.recognize(&image, &options)
        })?;
        json(py, &recognition)
    }

    /// Recognizes the material in each of `images` (a list) with the same options, in one
    /// forward pass per image-model batch. Returns one entry per photo, in order: the
    /// recognition as JSON text, or the `kai.errors` exception of that photo, whose
    /// message names it as `images[INDEX]`.
    #[pyo3(signature = (images, options = None))]
    fn recognize_batch(
        &self,
        py: Python<'_>,
        images: Vec<Bound<'_, PyAny>>,
        options: Option<&str>,
    ) -> PyResult<Vec<Py<PyAny>>> {
        let sources = extract_photos(&images);
        let options: RecognizeOptions = match options {
            Some(text) => from_json(py, "options", text)?,
            None => RecognizeOptions::default(),
        };
        let results = detached(py, || {
            let catalog = self.lock()?;
            recognize_each(&catalog, sources, &options)
        })?;
        results
            .into_iter()
            .map(|result| match result {
                Ok(recognition) => Ok(json(py, &recognition)?
                    .into_pyobject(py)?
                    .into_any()
                    .unbind()),
                Err(err) => Ok(to_py_error(py, &err).into_value(py).into_any()),
            })
            .collect()
    }

    /// Returns the material with `id` as JSON, or `None`.
    fn get(&self, py: Python<'_>, id: &str) -> PyResult<Option<String>> {
        let material = detached(py, || self.lock()?.get(id))?;
        material.map(|m| json(py, &m)).transpose()
    }

    /// Lists materials that pass the filter, in id order; returns a JSON list.
    #[pyo3(signature = (material_type = None, collection = None, tags = Vec::new(), offset = 0, limit = 100))]
    fn list(
        &self,
        py: Python<'_>,
        material_type: Option<&str>,
        collection: Option<String>,
        tags: Vec<String>,
        offset: i64,
        limit: i64,
    ) -> PyResult<String> {
        let offset: usize = count(py, "offset", offset)?;
        let limit: usize = count(py, "limit", limit)?;
        let filter = material_filter(material_type, collection, &tags);
        let materials = detached(py, || self.lock()?.list(&filter, offset, limit))?;
        json(py, &materials)
    }

    /// Replaces a material's fields from `record` (JSON of one record as in
    /// `catalog.json`); new image paths are relative to `image_folder`. Returns the
    /// stored material as JSON.
    fn update(&self, py: Python<'_>, record: &str, image_folder: PathBuf) -> PyResult<String> {
        let record: MaterialInput = from_json(py, "record", record)?;
        let material = detached(py, || self.lock()?.update(&record, &image_folder))?;
        json(py, &material)
    }

    /// Creates a material from `record` (JSON of one record as in `catalog.json`, without
    /// `images`) and `images` (a list of images, stored in that order). Every image is read
    /// and decoded before anything is written. Returns the stored material as JSON.
    #[pyo3(signature = (record, images = Vec::new()))]
    fn create(
        &self,
        py: Python<'_>,
        record: &str,
        images: Vec<Bound<'_, PyAny>>,
    ) -> PyResult<String> {
        let record: MaterialInput = from_json(py, "record", record)?;
        let sources = extract_uploads(py, &images)?;
        let material = detached(py, || {
            let mut catalog = self.lock()?;
            let uploads = to_uploads(sources, catalog.limits())?;
            catalog.create_uploaded(&record, &uploads)
        })?;
        json(py, &material)
    }

    /// Replaces a material's fields from `record` and, when given, its images: the
    /// record's `images` are stored paths to keep and `images` are new ones after them.
    /// Fails unless the material is at `expect_version`, when given. Every image is read
    /// and decoded before anything is written. Returns the stored material as JSON.
    #[pyo3(signature = (record, images = Vec::new(), expect_version = None))]
    fn replace(
        &self,
        py: Python<'_>,
        record: &str,
        images: Vec<Bound<'_, PyAny>>,
        expect_version: Option<i64>,
    ) -> PyResult<String> {
        let record: MaterialInput = from_json(py, "record", record)?;
        let expected: Option<u32> = expect_version
            .map(|version| count(py, "expect_version", version))
            .transpose()?;
        let sources = extract_uploads(py, &images)?;
        let material = detached(py, || {
            let mut catalog = self.lock()?;
            let uploads = to_uploads(sources, catalog.limits())?;
            catalog.replace_uploaded(&record, &uploads, expected)
        })?;
        json(py, &material)
    }

    /// Deletes a material and its vectors; returns whether it existed.
    fn delete(&self, py: Python<'_>, id: &str) -> PyResult<bool> {
        detached(py, || self.lock()?.delete(id))
    }

    /// Returns every version of a material, oldest first, as a JSON list.
    fn history(&self, py: Python<'_>, id: &str) -> PyResult<String> {
        let history = detached(py, || self.lock()?.history(id))?;
        json(py, &history)
    }

    /// Returns the catalog's material types in alphabetical order.
    fn material_types(&self, py: Python<'_>) -> PyResult<Vec<String>> {
        detached(py, || self.lock()?.material_types())
    }

    /// Returns the absolute path of a stored image from its path relative to the store.
    fn image_path(&self, py: Python<'_>, relative: &str) -> PyResult<PathBuf> {
        detached(py, || Ok(self.lock()?.image_path(relative)))
    }

    /// Trains, evaluates and saves a domain head; returns its manifest as JSON.
    #[pyo3(signature = (domain, label, material_type = None))]
    fn train_head(
        &self,
        py: Python<'_>,
        domain: String,
        label: String,
        material_type: Option<&str>,
    ) -> PyResult<String> {
        let spec = HeadSpec {
            domain,
            label,
            material_type: material_type.map(str::to_lowercase),
        };
        let manifest = detached(py, || self.lock()?.train_head(&spec))?;
        json(py, &manifest)
    }

    /// Returns the manifests of the trained heads as a JSON list.
    fn heads(&self, py: Python<'_>) -> PyResult<String> {
        let heads = detached(py, || self.lock()?.heads())?;
        json(py, &heads)
    }

    /// Fits the class-vote temperature on the catalog; returns the calibration as JSON.
    fn calibrate(&self, py: Python<'_>) -> PyResult<String> {
        let calibration = detached(py, || self.lock()?.calibrate())?;
        json(py, &calibration)
    }

    /// Returns the stored calibration (the default before any) as JSON.
    fn calibration(&self, py: Python<'_>) -> PyResult<String> {
        let calibration = detached(py, || self.lock()?.calibration())?;
        json(py, &calibration)
    }

    /// Re-embeds every material with the configured models and rewrites both vector
    /// spaces; returns the number of materials. `progress` is called with (materials
    /// done, materials in all) after each batch.
    #[pyo3(signature = (progress = None))]
    fn reindex(&self, py: Python<'_>, progress: Option<Py<PyAny>>) -> PyResult<usize> {
        let mut report_progress = progress_callback(progress);
        detached(py, || self.lock()?.reindex(&mut report_progress))
    }

    fn __repr__(&self) -> String {
        match &self.database {
            Some(url) => format!("Catalog(store={:?}, database={url:?})", self.root),
            None => format!("Catalog(store={:?})", self.root),
        }
    }
}

pub fn register(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_class::<Catalog>()
}
