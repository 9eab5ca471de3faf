//! `Kai`: one store's catalog, parameter registry and cache of loaded models, opened in
//! this process. The methods of each capability live in their own module.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::Instant;

use kai_core::catalog::{Catalog, StoreOptions};
use kai_core::db::{DatabaseUrl, StorageConfig};
use kai_core::image::ImageLimits;
use kai_core::models::{DEFAULT_IMAGE_MODEL, DEFAULT_TEXT_MODEL, ModelCache};
use kai_core::recon::jobs::JobQueue;
use kai_core::registry::{Registry, RegistrySettings};
use kai_core::{DeviceRequest, Error, ModelStore};
use napi::Env;
use napi::bindgen_prelude::{AsyncTask, Unknown};
use napi_derive::napi;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::convert::{from_js, options};
use crate::errors::closed;
use crate::job::{Job, Json, Outcome};

/// The folder of the store that contains the reconstruction jobs, as in kai-server.
const RECON_JOBS_DIR: &str = "recon_jobs";

/// Models the cache keeps when neither `modelCacheSize` nor `MODEL_CACHE_SIZE` is set.
const DEFAULT_MODEL_CACHE_SIZE: usize = 5;

/// The options of `Kai.open`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct OpenOptions {
    store: Option<PathBuf>,
    database_url: Option<String>,
    model_dir: Option<PathBuf>,
    device: Option<String>,
    model_cache_size: Option<usize>,
}

/// The catalog, registry and models of an open `Kai`. Calls clone the `Arc`, so `close`
/// releases the store once the calls in flight have finished.
#[derive(Debug)]
pub struct Services {
    // The catalog is `Send` but not `Sync` (its SQLite connection), so calls take turns.
    catalog: Mutex<Catalog>,
    /// The parameter registry, safe to share between threads.
    pub registry: Registry,
    /// The loaded models, shared with the catalog.
    pub models: Arc<ModelCache>,
    /// The limits of every image a call decodes.
    pub limits: ImageLimits,
    /// The store folder.
    pub root: PathBuf,
    /// The reconstruction job queue in `root`, opened by the first call that uses it.
    recon_jobs: Mutex<Option<JobQueue>>,
}

impl Services {
    /// Returns the store's reconstruction job queue, in the folder `RECON_JOBS_DIR` of
    /// the store, opening it with one worker thread on first use.
    ///
    /// NOTE: one process at a time may own a job folder, because opening it marks the
    /// jobs that another process is running as interrupted. The queue therefore opens
    /// only when a reconstruction job method is called, not when `Kai.open` runs.
    pub fn recon_jobs(&self) -> kai_core::Result<JobQueue> {
        let mut slot = self
            .recon_jobs
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(queue) = slot.as_ref() {
            return Ok(queue.clone());
        }
        let queue = JobQueue::open(&self.root.join(RECON_JOBS_DIR), 1)?;
        *slot = Some(queue.clone());
        Ok(queue)
    }

    /// Locks the catalog. A panic in an earlier call does not leave it unusable because
    /// kai-core writes are transactional, so the data behind a poisoned lock is consistent.
    pub fn catalog(&self) -> MutexGuard<'_, Catalog> {
        self.catalog.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A kai store opened in this process: its material catalog, parameter registry and a
/// cache of loaded models. Every method returns a Promise and runs its work on the
/// libuv thread pool. Errors are `Error`s whose `code` is a kai error code.
#[napi]
#[derive(Debug)]
pub struct Kai {
    services: RwLock<Option<Arc<Services>>>,
}

impl Kai {
    /// Returns what the instance holds, or the error of a closed one.
    pub fn services(&self) -> kai_core::Result<Arc<Services>> {
        self.services
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .ok_or_else(closed)
    }

    /// Returns the services with the call's one argument converted to `T`, or the error of
    /// a closed instance or of the conversion, which names the argument `name`.
    pub fn services_with<T: DeserializeOwned>(
        &self,
        name: &str,
        value: Unknown<'_>,
    ) -> kai_core::Result<(Arc<Services>, T)> {
        Ok((self.services()?, from_js(name, value)?))
    }
}

impl Outcome for Kai {
    type Js = Kai;

    fn into_js(self, _env: &Env) -> napi::Result<Self::Js> {
        Ok(self)
    }
}

#[napi]
impl Kai {
    /// Opens the store at `store` (default `KAI_DATA_DIR`, else `./kai-data`), creating it
    /// when absent, with its models from `modelDir` (default `MODEL_DIR`) on `device`
    /// (default `KAI_DEVICE`). `databaseUrl` (default `KAI_DATABASE_URL`) moves the
    /// catalog and the registry to PostgreSQL. The cache keeps `modelCacheSize` models
    /// (default `MODEL_CACHE_SIZE`, else 5). The minimum is 2, for the catalog's text and
    /// image models.
    #[napi(
        ts_args_type = "options?: KaiOpenOptions",
        ts_return_type = "Promise<Kai>"
    )]
    pub fn open(options_arg: Option<Unknown<'_>>) -> AsyncTask<Job<Kai>> {
        Job::run(options::<OpenOptions>("options", options_arg), |options| {
            let services = open_services(options)?;
            Ok(Kai {
                services: RwLock::new(Some(Arc::new(services))),
            })
        })
    }

    /// Checks that the catalog's text and image models load and that the catalog and
    /// the registry respond. Resolves with each component's outcome, as kai-server's
    /// `GET /ready` returns it, and `status` `not ready` when one failed.
    #[napi(ts_return_type = "Promise<HealthReport>")]
    pub fn health(&self) -> AsyncTask<Job<Json>> {
        Job::run(self.services(), |services| Json::of(&readiness(&services)))
    }

    /// Releases the catalog, the registry and the loaded models once the calls in flight
    /// have finished. Later calls reject with `KAI_INVALID_INPUT`.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn close(&self) -> AsyncTask<Job<()>> {
        let services = self
            .services
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        // Dropped on the thread pool because closing a store may flush files.
        Job::run(Ok(services), |services| {
            drop(services);
            Ok(())
        })
    }
}

/// Opens the model cache, the catalog (which takes its models from the cache) and the
/// registry, as kai-server does at start-up.
fn open_services(options: OpenOptions) -> kai_core::Result<Services> {
    let root = StoreOptions::default_root(options.store.as_deref());
    let models = match options.model_dir {
        Some(dir) => ModelStore::new(dir),
        None => ModelStore::from_env(),
    };
    let device = match options.device.as_deref() {
        Some(device) => device.parse::<DeviceRequest>()?,
        None => DeviceRequest::from_env()?,
    }
    .open()?;
    let cache_size = model_cache_size(options.model_cache_size)?;
    let storage = match options.database_url.as_deref() {
        Some(url) => {
            let url = DatabaseUrl::parse("databaseUrl", url)?;
            StorageConfig {
                catalog: Some(url.clone()),
                registry: Some(url),
            }
        }
        None => StorageConfig::from_env()?,
    };

    let limits = ImageLimits::from_env()?;
    let mut store = StoreOptions::new(&root, models.clone(), device.clone());
    store.limits = limits;
    if let Some(url) = &storage.catalog {
        store = store.with_database(url.clone());
    }
    let models = Arc::new(ModelCache::new(models, device, cache_size)?);
    let mut catalog = Catalog::open(store)?;
    catalog.use_model_cache(Arc::clone(&models))?;
    let registry = Registry::open(&root, &storage, RegistrySettings::from_env()?)?;
    Ok(Services {
        catalog: Mutex::new(catalog),
        registry,
        models,
        limits,
        root,
        recon_jobs: Mutex::new(None),
    })
}

/// Returns the cache size: `requested`, else `MODEL_CACHE_SIZE`, else the default.
fn model_cache_size(requested: Option<usize>) -> kai_core::Result<usize> {
    let (size, source) = match requested {
        Some(size) => (size, "modelCacheSize"),
        None => match std::env::var("MODEL_CACHE_SIZE") {
            Ok(text) if !text.trim().is_empty() => {
                let size = text.trim().parse::<usize>().map_err(|_| {
                    Error::invalid(
                        "MODEL_CACHE_SIZE",
                        format!("must be a whole number of models, got `{text}`"),
                    )
                })?;
                (size, "MODEL_CACHE_SIZE")
            }
            _ => (DEFAULT_MODEL_CACHE_SIZE, "MODEL_CACHE_SIZE"),
        },
    };
    // The catalog keeps its text and image model loaded, so a cache of one would evict
    // one of them on every recognition or search.
    if size < 2 {
        return Err(Error::invalid(
            source,
            format!("must be at least 2 (the catalog's text and image models), got {size}"),
        ));
    }
    Ok(size)
}

/// The outcome of `health`, in the shape of kai-server's `GET /ready`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Readiness {
    status: &'static str,
    version: &'static str,
    components: Vec<ComponentCheck>,
}

/// The outcome of one component's check.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ComponentCheck {
    name: &'static str,
    /// `ok` or `failed`.
    status: &'static str,
    /// The value checked, or the reason the check failed.
    message: String,
    duration_ms: f64,
}

/// Runs each component's check in turn.
fn readiness(services: &Services) -> Readiness {
    let components = vec![
        check("text-model", || {
            services.models.text(DEFAULT_TEXT_MODEL)?;
            Ok(DEFAULT_TEXT_MODEL.to_owned())
        }),
        check("image-model", || {
            services.models.image(DEFAULT_IMAGE_MODEL)?;
            Ok(DEFAULT_IMAGE_MODEL.to_owned())
        }),
        check("catalog", || {
            let count = services.catalog().storage().count()?;
            Ok(format!("{count} materials"))
        }),
        check("registry", || {
            let sets = services.registry.list()?.len();
            Ok(format!("{sets} parameter sets"))
        }),
    ];
    let ready = components.iter().all(|c| c.status == "ok");
    Readiness {
        status: if ready { "ready" } else { "not ready" },
        version: env!("CARGO_PKG_VERSION"),
        components,
    }
}

fn check(name: &'static str, probe: impl FnOnce() -> kai_core::Result<String>) -> ComponentCheck {
    let started = Instant::now();
    let (status, message) = match kai_core::Error::catch_panic(probe) {
        Ok(message) => ("ok", message),
        Err(err) => ("failed", err.to_string()),
    };
    ComponentCheck {
        name,
        status,
        message,
        duration_ms: started.elapsed().as_secs_f64() * 1000.0,
    }
}
