//! The state every handler and MCP tool shares: the catalog, the registry, the model cache
//! and the configuration, with the calls both surfaces make.
//!
//! Handlers and tools only convert requests. The calls below run kai-core on the blocking
//! thread pool, so a model or a database call never stalls the async workers. Model calls
//! go through the batchers of [`super::batch`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use axum::body::Bytes;
use kai_core::catalog::{Catalog, SearchHit, SearchQuery};
use kai_core::embed::ImageEmbeddings;
use kai_core::image::{ImageLimits, QualityReport, QualityThresholds, RgbImage, assess, decode};
use kai_core::models::{
    CacheEvent, DEFAULT_IMAGE_MODEL, DEFAULT_TEXT_MODEL, LoadedModel, ModelCache,
};
use kai_core::recognize::{Recognition, RecognizeOptions};
use kai_core::recon::jobs::JobQueue;
use kai_core::registry::Registry;
use kai_core::{Device, Embeddings, Error, ImageEmbedder, Result, TextEmbedder};

mod decodes;

pub use decodes::{DecodeCounts, DecodeLimit, DecodePermit};

use super::batch::{
    self, BatchCounters, BatchKind, BatchSettings, BatchStats, Batcher, ImageJob, RecognitionJob,
    TextJob,
};
use super::config::ServerConfig;
use super::error::{ApiError, ApiResult};
use super::ops::metrics::{
    MODEL_CACHE_HITS, MODEL_CACHE_MISSES, MODEL_LOAD_SECONDS, MODELS_LOADED,
};

/// Shared server state, cheap to clone.
#[derive(Clone, Debug)]
pub struct AppState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: ServerConfig,
    device: Device,
    // The catalog is `Send` but not `Sync` (its SQLite connection), so calls take turns.
    // The recognition batcher holds a second reference. NOTE: reads take turns as well, so
    // a search waits while a recognition batch runs.
    catalog: Arc<Mutex<Catalog>>,
    registry: Arc<Registry>,
    models: Arc<ModelCache>,
    batchers: Batchers,
    decodes: DecodeLimit,
    recon: JobQueue,
    started: Instant,
}

/// Vectors of texts and the model that computed them.
#[derive(Debug, Clone)]
pub struct TextEmbeddings {
    /// The model name.
    pub model: String,
    /// One vector per text, in input order.
    pub vectors: Embeddings,
}

/// Vectors and ImageNet labels of photos and the model that computed them.
#[derive(Debug, Clone)]
pub struct ImageOutput {
    /// The model name.
    pub model: String,
    /// One vector and one list of labels per photo, in input order.
    pub output: ImageEmbeddings,
}

impl AppState {
    /// Opens the device, the model cache, the catalog and the registry that `config`
    /// names. The catalog takes its models from the cache, so each model is loaded once.
    ///
    /// # Errors
    ///
    /// Returns the error of the device, catalog or registry that cannot be opened.
    pub fn open(config: ServerConfig) -> Result<Self> {
        let device = config.device.open()?;
        let models = ModelCache::new(
            config.models.clone(),
            device.clone(),
            config.model_cache_size,
        )?
        .with_observer(Arc::new(record_cache_event));
        let models = Arc::new(models);

        let mut catalog = Catalog::open(config.store_options(device.clone()))?;
        catalog.use_model_cache(Arc::clone(&models))?;
        let catalog = Arc::new(Mutex::new(catalog));
        let registry = Registry::open(&config.store, &config.storage, config.registry.clone())?;
        let settings = BatchSettings {
            max_size: config.max_batch_size,
            window: config.batch_window,
        };
        let batchers = Batchers::new(settings, Arc::clone(&catalog));

        let decodes = DecodeLimit::new(config.max_concurrent_decodes);
        let recon = JobQueue::open(&config.recon_root(), config.recon_workers)?
            .with_max_images(config.recon_max_images)?;
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                device,
                catalog,
                registry: Arc::new(registry),
                models,
                batchers,
                decodes,
                recon,
                started: Instant::now(),
            }),
        })
    }

    /// Returns the configuration the server started with.
    pub fn config(&self) -> &ServerConfig {
        &self.inner.config
    }

    /// Returns the device models run on.
    pub fn device(&self) -> &Device {
        &self.inner.device
    }

    /// Returns when the server started.
    pub fn started(&self) -> Instant {
        self.inner.started
    }

    /// Returns the registry, which is safe to share between threads.
    pub fn registry(&self) -> Arc<Registry> {
        Arc::clone(&self.inner.registry)
    }

    /// Returns the cache of loaded models, shared with the catalog.
    pub fn models(&self) -> Arc<ModelCache> {
        Arc::clone(&self.inner.models)
    }

    /// Returns the queue of reconstruction jobs.
    pub fn recon(&self) -> &JobQueue {
        &self.inner.recon
    }

    /// Returns the counts of the batches of `kind` run so far.
    pub fn batch_stats(&self, kind: BatchKind) -> BatchStats {
        self.inner.batchers.counters.stats(kind)
    }

    /// Locks the catalog. A panic in an earlier call does not leave it unusable: kai-core
    /// writes are transactional, so the data behind a poisoned lock is consistent.
    pub fn catalog(&self) -> MutexGuard<'_, Catalog> {
        self.inner
            .catalog
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Returns the image limits of requests.
    pub fn image_limits(&self) -> &ImageLimits {
        &self.inner.config.image_limits
    }

    /// Returns the bound on concurrent decodes of request images. Every decode of a
    /// request image holds one of its permits.
    pub fn decode_limit(&self) -> &DecodeLimit {
        &self.inner.decodes
    }

    /// Decodes an uploaded image within the configured limits, waiting for a permit of
    /// [`AppState::decode_limit`] first. Call it on the blocking thread pool.
    ///
    /// # Errors
    ///
    /// Returns [`Error::InvalidInput`] for an empty, corrupt or oversized image.
    pub fn decode(&self, bytes: &[u8]) -> Result<RgbImage> {
        let _permit = self.decode_limit().acquire();
        decode(bytes, self.image_limits())
    }

    /// Recognizes the material in an uploaded photo. Concurrent calls are batched.
    pub async fn recognize(
        &self,
        image: Bytes,
        options: RecognizeOptions,
    ) -> ApiResult<Recognition> {
        let state = self.clone();
        let image = blocking(move || state.decode(&image)).await?;
        self.recognize_image(image, options).await
    }

    /// Recognizes the material in a decoded photo. Concurrent calls are batched.
    pub async fn recognize_image(
        &self,
        image: RgbImage,
        options: RecognizeOptions,
    ) -> ApiResult<Recognition> {
        let job = RecognitionJob { image, options };
        self.inner.batchers.recognition.submit(job).await
    }

    /// Embeds texts with the catalog's text model.
    pub async fn embed_text(&self, texts: Vec<String>) -> ApiResult<Embeddings> {
        Ok(self.embed_texts(None, texts).await?.vectors)
    }

    /// Embeds texts with `model` (the catalog's text model when `None`), loading it into
    /// the model cache when needed. Concurrent calls for one model are batched.
    pub async fn embed_texts(
        &self,
        model: Option<String>,
        texts: Vec<String>,
    ) -> ApiResult<TextEmbeddings> {
        let name = model.unwrap_or_else(|| DEFAULT_TEXT_MODEL.to_owned());
        let model = self.text_model(name).await?;
        let batcher = self.inner.batchers.text(model.name());
        let name = model.name().to_owned();
        let vectors = batcher.submit(TextJob { model, texts }).await?;
        Ok(TextEmbeddings {
            model: name,
            vectors,
        })
    }

    /// Decodes uploaded photos, embeds them with `model` (the catalog's image model when
    /// `None`) and lists each photo's `top_k` ImageNet classes. Concurrent calls for one
    /// model are batched.
    pub async fn embed_images(
        &self,
        model: Option<String>,
        images: Vec<Bytes>,
        top_k: usize,
    ) -> ApiResult<ImageOutput> {
        let name = model.unwrap_or_else(|| DEFAULT_IMAGE_MODEL.to_owned());
        let state = self.clone();
        let images = blocking(move || state.decode_all(&images)).await?;
        let model = self.image_model(name).await?;
        let batcher = self.inner.batchers.image(model.name());
        let name = model.name().to_owned();
        let job = ImageJob {
            model,
            images,
            top_k,
        };
        let output = batcher.submit(job).await?;
        Ok(ImageOutput {
            model: name,
            output,
        })
    }

    /// Returns the text model `name` from the cache. Only a load runs on the blocking
    /// thread pool, so requests for a loaded model skip that hop.
    async fn text_model(&self, name: String) -> ApiResult<Arc<TextEmbedder>> {
        let models = self.models();
        if let Some(LoadedModel::Text(model)) = models.get(&name)? {
            return Ok(model);
        }
        blocking(move || models.text(&name)).await
    }

    /// Returns the image model `name` from the cache, as [`AppState::text_model`] does.
    async fn image_model(&self, name: String) -> ApiResult<Arc<ImageEmbedder>> {
        let models = self.models();
        if let Some(LoadedModel::Image(model)) = models.get(&name)? {
            return Ok(model);
        }
        blocking(move || models.image(&name)).await
    }

    /// Decodes several uploaded photos under one permit, because the request keeps every
    /// decoded photo until the last one is decoded. An error names the photo by its
    /// 1-based position.
    fn decode_all(&self, images: &[Bytes]) -> Result<Vec<RgbImage>> {
        let several = images.len() > 1;
        let _permit = self.decode_limit().acquire();
        images
            .iter()
            .enumerate()
            .map(|(index, bytes)| {
                decode(bytes, self.image_limits()).map_err(|err| match err {
                    Error::InvalidInput { reason, .. } if several => {
                        Error::invalid(format!("image {}", index + 1), reason)
                    }
                    other => other,
                })
            })
            .collect()
    }

    /// Assesses an uploaded photo's quality.
    pub async fn quality(
        &self,
        image: Bytes,
        thresholds: QualityThresholds,
    ) -> ApiResult<QualityReport> {
        let state = self.clone();
        blocking(move || {
            thresholds.validate()?;
            assess(&state.decode(&image)?, &thresholds)
        })
        .await
    }

    /// Searches the catalog.
    pub async fn search(&self, query: SearchQuery) -> ApiResult<Vec<SearchHit>> {
        let state = self.clone();
        blocking(move || state.catalog().search(&query)).await
    }
}

/// The batchers of one server: one per text model, one per image model, and one for
/// recognition, which always runs the catalog's image model.
struct Batchers {
    settings: BatchSettings,
    counters: BatchCounters,
    text: Mutex<HashMap<String, Arc<Batcher<TextJob, Embeddings>>>>,
    image: Mutex<HashMap<String, Arc<Batcher<ImageJob, ImageEmbeddings>>>>,
    recognition: Batcher<RecognitionJob, Recognition>,
}

impl std::fmt::Debug for Batchers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batchers")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Batchers {
    fn new(settings: BatchSettings, catalog: Arc<Mutex<Catalog>>) -> Self {
        let counters = BatchCounters::default();
        let recognition = Batcher::new(
            BatchKind::Recognition,
            settings,
            counters.clone(),
            move |jobs| batch::recognize(&catalog, jobs),
        );
        Self {
            settings,
            counters,
            text: Mutex::new(HashMap::new()),
            image: Mutex::new(HashMap::new()),
            recognition,
        }
    }

    /// Returns the batcher of the text model `name`. Names come from loaded models, so
    /// the map contains at most one batcher per model folder.
    fn text(&self, name: &str) -> Arc<Batcher<TextJob, Embeddings>> {
        let mut batchers = self.text.lock().unwrap_or_else(PoisonError::into_inner);
        let batcher = batchers.entry(name.to_owned()).or_insert_with(|| {
            Arc::new(Batcher::new(
                BatchKind::Text,
                self.settings,
                self.counters.clone(),
                batch::embed_texts,
            ))
        });
        Arc::clone(batcher)
    }

    /// Returns the batcher of the image model `name`.
    fn image(&self, name: &str) -> Arc<Batcher<ImageJob, ImageEmbeddings>> {
        let mut batchers = self.image.lock().unwrap_or_else(PoisonError::into_inner);
        let batcher = batchers.entry(name.to_owned()).or_insert_with(|| {
            Arc::new(Batcher::new(
                BatchKind::Image,
                self.settings,
                self.counters.clone(),
                batch::embed_images,
            ))
        });
        Arc::clone(batcher)
    }
}

/// Records a model cache event in the Prometheus metrics.
fn record_cache_event(event: &CacheEvent<'_>) {
    match *event {
        CacheEvent::Hit { .. } => metrics::counter!(MODEL_CACHE_HITS).increment(1),
        CacheEvent::Miss { .. } => metrics::counter!(MODEL_CACHE_MISSES).increment(1),
        CacheEvent::Loaded {
            name,
            seconds,
            count,
        } => {
            metrics::histogram!(MODEL_LOAD_SECONDS, "model" => name.to_owned()).record(seconds);
            metrics::gauge!(MODELS_LOADED).set(count as f64);
        }
        CacheEvent::Removed { count, .. } => {
            metrics::gauge!(MODELS_LOADED).set(count as f64);
        }
    }
}

/// Runs `f` on the blocking thread pool. A panic in `f` becomes an internal error.
///
/// # Errors
///
/// Returns the error of `f`, or [`Error::Internal`] when it panicked.
pub async fn blocking<T, F>(f: F) -> ApiResult<T>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T> + Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result.map_err(ApiError::from),
        Err(err) => Err(Error::Internal(format!("a request handler failed: {err}")).into()),
    }
}
