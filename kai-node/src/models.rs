//! The models on `Kai`: the model folder's models, loading and unloading them in the
//! cache, and fetching built-in ones. Results have the shapes of kai-server's
//! `/api/models` routes and of `kai models fetch --json`.

use kai_core::Error;
use kai_core::models::{FetchOptions, LoadedModelInfo, Manifest, ModelSummary, fetch};
use napi::bindgen_prelude::{AsyncTask, Unknown};
use napi_derive::napi;
use serde::Serialize;

use crate::job::{Job, Json};
use crate::kai::Kai;

/// One model of the listing.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ModelListing {
    #[serde(flatten)]
    summary: ModelSummary,
    /// Whether the model is in the cache now.
    loaded: bool,
}

/// The models of the model folder and the cache.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ModelList {
    model_dir: String,
    cache_size: usize,
    models: Vec<ModelListing>,
    /// The loaded models, most recently used first.
    loaded: Vec<LoadedModelInfo>,
}

/// The outcome of a load.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct LoadOutcome {
    model: LoadedModelInfo,
    already_loaded: bool,
    /// Names of the loaded models afterwards, most recently used first.
    loaded: Vec<String>,
}

/// The outcome of an unload.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct UnloadOutcome {
    name: String,
    unloaded: bool,
}

#[napi]
impl Kai {
    /// Lists the built-in models and the other model folders with their state (checksums
    /// are verified), and the models loaded in the cache.
    #[napi(ts_return_type = "Promise<ModelList>")]
    pub fn list_models(&self) -> AsyncTask<Job<Json>> {
        Job::run(self.services(), |services| {
            let models = &services.models;
            let entries = models.store().list()?;
            let loaded = models.loaded();
            let listing = entries
                .into_iter()
                .map(|entry| {
                    let summary = ModelSummary::from(entry);
                    let loaded = loaded.iter().any(|info| info.name == summary.name);
                    ModelListing { summary, loaded }
                })
                .collect();
            Json::of(&ModelList {
                model_dir: models.store().root().display().to_string(),
                cache_size: models.capacity(),
                models: listing,
                loaded,
            })
        })
    }

    /// Loads a model into the cache, evicting the least recently used model when the
    /// cache is full.
    #[napi(ts_args_type = "name: string", ts_return_type = "Promise<LoadOutcome>")]
    pub fn load_model(&self, name: Unknown<'_>) -> AsyncTask<Job<Json>> {
        let prepared = self.services_with::<String>("name", name);
        Job::run(prepared, |(services, name)| {
            let models = &services.models;
            let (model, already_loaded) = match models.get(&name)? {
                Some(model) => (model, true),
                None => (models.load(&name)?, false),
            };
            let loaded = models.loaded();
            let info = loaded
                .iter()
                .find(|info| info.name == model.name())
                .cloned()
                .ok_or_else(|| {
                    // Only a concurrent load or unload can remove the model this quickly.
                    Error::Conflict(format!(
                        "model `{}` was loaded but left the cache at once, because other \
                         calls loaded or unloaded models; retry",
                        model.name()
                    ))
                })?;
            Json::of(&LoadOutcome {
                model: info,
                already_loaded,
                loaded: loaded.into_iter().map(|info| info.name).collect(),
            })
        })
    }

    /// Removes a model from the cache at once, but calls that already use it finish with
    /// it. Rejects with `KAI_NOT_FOUND` for a name that is neither a built-in model nor a
    /// model folder.
    #[napi(
        ts_args_type = "name: string",
        ts_return_type = "Promise<UnloadOutcome>"
    )]
    pub fn unload_model(&self, name: Unknown<'_>) -> AsyncTask<Job<Json>> {
        let prepared = self.services_with::<String>("name", name);
        Job::run(prepared, |(services, name)| {
            let models = &services.models;
            let unloaded = models.unload(&name)?;
            if !unloaded
                && Manifest::find(&name).is_none()
                && !models.store().folder(&name).is_dir()
            {
                return Err(Error::NotFound {
                    what: "model",
                    hint: format!(
                        " (neither a built-in model ({}) nor a folder in {})",
                        Manifest::builtin_names().join(", "),
                        models.store().root().display()
                    ),
                    name,
                });
            }
            Json::of(&UnloadOutcome { name, unloaded })
        })
    }

    /// Downloads a built-in model into the model folder with pip (`KAI_PYTHON`, else
    /// `python3`) unless its files are already present and verified.
    #[napi(ts_args_type = "name: string", ts_return_type = "Promise<FetchReport>")]
    pub fn fetch_model(&self, name: Unknown<'_>) -> AsyncTask<Job<Json>> {
        let prepared = self.services_with::<String>("name", name);
        Job::run(prepared, |(services, name)| {
            let report = fetch(services.models.store(), &name, &FetchOptions::default())?;
            Json::of(&report)
        })
    }
}
