//! An LRU cache of loaded embedding models, so that one process keeps a bounded number of
//! models in memory and loads each one once.
//!
//! The cache loads models by name from its [`ModelStore`]: a built-in model loads as a text
//! or image embedder by its manifest's task, and any other Hugging Face-style folder in the
//! model directory loads as a text embedder. A lookup that finds a model moves it to the
//! front, and a load beyond the capacity evicts the least recently used model. Callers get
//! `Arc`s, so a model evicted while a call still uses it is freed when that call ends.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use serde::Serialize;

use super::manifest::{Manifest, Task};
use super::store::ModelStore;
use crate::Device;
use crate::db::{now_millis, rfc3339};
use crate::device::describe;
use crate::embed::{ImageEmbedder, TextEmbedder};
use crate::error::{Error, Result};

/// A model in the cache.
#[derive(Debug, Clone)]
pub enum LoadedModel {
    /// A text embedding model.
    Text(Arc<TextEmbedder>),
    /// An image embedding model.
    Image(Arc<ImageEmbedder>),
}

impl LoadedModel {
    /// Returns the model name.
    pub fn name(&self) -> &str {
        match self {
            LoadedModel::Text(model) => model.name(),
            LoadedModel::Image(model) => model.name(),
        }
    }

    /// Returns what the model computes.
    pub fn task(&self) -> Task {
        match self {
            LoadedModel::Text(_) => Task::TextEmbedding,
            LoadedModel::Image(_) => Task::ImageEmbedding,
        }
    }

    /// Returns the length of the model's vectors.
    pub fn dimension(&self) -> usize {
        match self {
            LoadedModel::Text(model) => model.dimension(),
            LoadedModel::Image(model) => model.dimension(),
        }
    }
}

/// A loaded model as [`ModelCache::loaded`] lists it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LoadedModelInfo {
    /// The model name.
    pub name: String,
    /// `text-embedding` or `image-embedding`.
    pub task: &'static str,
    /// The length of the model's vectors.
    pub dimension: usize,
    /// The device the model runs on, such as `cpu` or `cuda:0`.
    pub device: String,
    /// Wall time of the load, in seconds.
    pub load_seconds: f64,
    /// When the model was loaded, RFC 3339 in UTC.
    pub loaded_at: String,
    /// When the model was last returned by the cache, RFC 3339 in UTC.
    pub last_used_at: String,
    /// How many lookups found the model in the cache.
    pub hits: u64,
}

/// Something that happened in a [`ModelCache`], for metrics and logs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CacheEvent<'a> {
    /// A lookup found the model loaded.
    Hit {
        /// The model name.
        name: &'a str,
    },
    /// A lookup did not find the model, so this caller loads it next (the load may still
    /// fail, for an unknown model or missing files).
    Miss {
        /// The model name.
        name: &'a str,
    },
    /// A model finished loading.
    Loaded {
        /// The model name.
        name: &'a str,
        /// Wall time of the load, in seconds.
        seconds: f64,
        /// Models in the cache afterwards.
        count: usize,
    },
    /// A model left the cache: evicted as the least recently used, or unloaded.
    Removed {
        /// The model name.
        name: &'a str,
        /// Whether the capacity forced it out (else a caller unloaded it).
        evicted: bool,
        /// Models in the cache afterwards.
        count: usize,
    },
}

/// A callback that receives every [`CacheEvent`].
pub type CacheObserver = Arc<dyn Fn(&CacheEvent<'_>) + Send + Sync>;

/// An LRU list of keyed values, most recently used first.
#[derive(Debug)]
struct Lru<V> {
    entries: Vec<(String, V)>,
    capacity: usize,
}

impl<V> Lru<V> {
    fn new(capacity: usize) -> Self {
        Self {
            entries: Vec::new(),
            capacity,
        }
    }

    /// Returns the value of `key` after moving it to the front.
    fn touch(&mut self, key: &str) -> Option<&mut V> {
        let position = self.entries.iter().position(|(k, _)| k == key)?;
        let entry = self.entries.remove(position);
        self.entries.insert(0, entry);
        self.entries.first_mut().map(|(_, value)| value)
    }

    /// Puts `key` at the front and returns the entries pushed out beyond the capacity,
    /// least recently used last.
    fn insert(&mut self, key: String, value: V) -> Vec<(String, V)> {
        self.remove(&key);
        self.entries.insert(0, (key, value));
        let keep = self.capacity.min(self.entries.len());
        self.entries.split_off(keep)
    }

    fn remove(&mut self, key: &str) -> Option<V> {
        let position = self.entries.iter().position(|(k, _)| k == key)?;
        Some(self.entries.remove(position).1)
    }

    fn len(&self) -> usize {
        self.entries.len()
    }
}

#[derive(Debug)]
struct Entry {
    model: LoadedModel,
    info: LoadedModelInfo,
}

/// A bounded LRU cache of loaded models, as the module documentation describes it.
pub struct ModelCache {
    store: ModelStore,
    device: Device,
    models: Mutex<Lru<Entry>>,
    // Loads take seconds, and the lock above is held only for lookups. Loads take turns on
    // this lock instead, so two requests for the same absent model load it once.
    loading: Mutex<()>,
    observer: Option<CacheObserver>,
}

impl std::fmt::Debug for ModelCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelCache")
            .field("store", &self.store)
            .field("device", &describe(&self.device))
            .field("capacity", &self.capacity())
            .field("loaded", &self.len())
            .finish_non_exhaustive()
    }
}

impl ModelCache {
    /// Creates an empty cache that loads models from `store` onto `device` and keeps at
    /// most `capacity` of them.
    ///
    /// # Errors
    ///
    /// Returns [`Error::InvalidInput`] for a capacity of 0.
    pub fn new(store: ModelStore, device: Device, capacity: usize) -> Result<Self> {
        if capacity == 0 {
            return Err(Error::invalid(
                "capacity",
                "must be at least 1 model, got 0",
            ));
        }
        Ok(Self {
            store,
            device,
            models: Mutex::new(Lru::new(capacity)),
            loading: Mutex::new(()),
            observer: None,
        })
    }

    /// Sends every [`CacheEvent`] to `observer`, for example to record metrics.
    #[must_use]
    pub fn with_observer(mut self, observer: CacheObserver) -> Self {
        self.observer = Some(observer);
        self
    }

    /// Returns the model directory models load from.
    pub fn store(&self) -> &ModelStore {
        &self.store
    }

    /// Returns the device models load onto.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Returns the largest number of models kept loaded.
    pub fn capacity(&self) -> usize {
        self.lock().capacity
    }

    /// Returns the number of models loaded now.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Returns whether no model is loaded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Returns the model `name` when it is loaded and moves it to the front. Loads nothing.
    ///
    /// # Errors
    ///
    /// Returns [`Error::InvalidInput`] when `name` is empty or a path.
    pub fn get(&self, name: &str) -> Result<Option<LoadedModel>> {
        let key = self.key_of(name)?;
        let found = self.lookup(&key);
        if found.is_some() {
            self.emit(&CacheEvent::Hit { name: &key });
        }
        Ok(found)
    }

    /// Returns the model `name`, loading it first when it is not in the cache.
    ///
    /// # Errors
    ///
    /// Returns [`Error::InvalidInput`] when `name` is empty or a path,
    /// [`Error::NotFound`] when the model directory has no such model, and the errors of
    /// [`TextEmbedder::load`] and [`ImageEmbedder::load`], such as [`Error::Model`] for
    /// missing or corrupt files.
    pub fn load(&self, name: &str) -> Result<LoadedModel> {
        self.load_as(name, None)
    }

    /// Returns the text embedding model `name`, loading it first when needed.
    ///
    /// # Errors
    ///
    /// As [`ModelCache::load`], and [`Error::InvalidInput`] when `name` is an image model.
    pub fn text(&self, name: &str) -> Result<Arc<TextEmbedder>> {
        match self.load_as(name, Some(Task::TextEmbedding))? {
            LoadedModel::Text(model) => Ok(model),
            LoadedModel::Image(model) => Err(wrong_task(model.name(), Task::TextEmbedding)),
        }
    }

    /// Returns the image embedding model `name`, loading it first when needed.
    ///
    /// # Errors
    ///
    /// As [`ModelCache::load`], and [`Error::InvalidInput`] when `name` is a text model.
    pub fn image(&self, name: &str) -> Result<Arc<ImageEmbedder>> {
        match self.load_as(name, Some(Task::ImageEmbedding))? {
            LoadedModel::Image(model) => Ok(model),
            LoadedModel::Text(model) => Err(wrong_task(model.name(), Task::ImageEmbedding)),
        }
    }

    /// Removes the model `name` from the cache and returns whether it was loaded. Calls
    /// that still hold the model finish with it.
    ///
    /// # Errors
    ///
    /// Returns [`Error::InvalidInput`] when `name` is empty or a path.
    pub fn unload(&self, name: &str) -> Result<bool> {
        let key = self.key_of(name)?;
        let (removed, count) = {
            let mut models = self.lock();
            let removed = models.remove(&key).is_some();
            (removed, models.len())
        };
        if removed {
            tracing::info!(model = %key, loaded = count, "unloaded model");
            self.emit(&CacheEvent::Removed {
                name: &key,
                evicted: false,
                count,
            });
        }
        Ok(removed)
    }

    /// Lists the loaded models, most recently used first.
    pub fn loaded(&self) -> Vec<LoadedModelInfo> {
        self.lock()
            .entries
            .iter()
            .map(|(_, entry)| entry.info.clone())
            .collect()
    }

    fn load_as(&self, name: &str, expected: Option<Task>) -> Result<LoadedModel> {
        let key = self.key_of(name)?;
        if let Some(found) = self.lookup(&key) {
            self.emit(&CacheEvent::Hit { name: &key });
            return Ok(found);
        }
        let _turn = self
            .loading
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Another caller may have loaded the model while this one waited for its turn. That
        // counts as a hit, so misses match the loads they start.
        if let Some(found) = self.lookup(&key) {
            self.emit(&CacheEvent::Hit { name: &key });
            return Ok(found);
        }
        self.emit(&CacheEvent::Miss { name: &key });

        let started = Instant::now();
        let model = self.load_model(&key, expected)?;
        let seconds = started.elapsed().as_secs_f64();
        let now = rfc3339(now_millis());
        let info = LoadedModelInfo {
            name: model.name().to_owned(),
            task: task_name(model.task()),
            dimension: model.dimension(),
            device: describe(&self.device),
            load_seconds: seconds,
            loaded_at: now.clone(),
            last_used_at: now,
            hits: 0,
        };

        let (evicted, count) = {
            let mut models = self.lock();
            let entry = Entry {
                model: model.clone(),
                info,
            };
            let evicted = models.insert(key.clone(), entry);
            (evicted, models.len())
        };

        tracing::info!(model = %key, seconds, loaded = count, "loaded model into the cache");
        self.emit(&CacheEvent::Loaded {
            name: &key,
            seconds,
            count,
        });
        for (name, _) in evicted {
            tracing::info!(model = %name, loaded = count, "evicted the least recently used model");
            self.emit(&CacheEvent::Removed {
                name: &name,
                evicted: true,
                count,
            });
        }
        Ok(model)
    }

    /// Loads `key` from the model directory as the model its manifest (or folder) makes it.
    fn load_model(&self, key: &str, expected: Option<Task>) -> Result<LoadedModel> {
        // A built-in manifest names the task before any file is read, so a request for the
        // wrong kind fails without loading anything. Folders without a manifest are BERT
        // text models.
        let task = Manifest::find(key).map_or(Task::TextEmbedding, |m| m.task);
        if let Some(expected) = expected
            && expected != task
        {
            return Err(wrong_task(key, expected));
        }
        let folder = self.store.resolve(key)?;
        Ok(match task {
            Task::TextEmbedding => {
                LoadedModel::Text(Arc::new(TextEmbedder::load(&folder, &self.device)?))
            }
            Task::ImageEmbedding => {
                LoadedModel::Image(Arc::new(ImageEmbedder::load(&folder, &self.device)?))
            }
        })
    }

    /// Returns the key `name` is cached under. A name already in the cache is its own
    /// key, which skips [`Manifest::find`] and its parse of every built-in manifest.
    fn key_of(&self, name: &str) -> Result<String> {
        let name = check_name(name)?;
        if self.lock().entries.iter().any(|(key, _)| key == name) {
            return Ok(name.to_owned());
        }
        Ok(Manifest::find(name).map_or_else(|| name.to_owned(), |m| m.name))
    }

    fn lookup(&self, key: &str) -> Option<LoadedModel> {
        let mut models = self.lock();
        let entry = models.touch(key)?;
        entry.info.hits += 1;
        entry.info.last_used_at = rfc3339(now_millis());
        Some(entry.model.clone())
    }

    fn lock(&self) -> MutexGuard<'_, Lru<Entry>> {
        // Every change to the list is a single push, remove or split, so a panic elsewhere
        // cannot leave it half-changed.
        self.models
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn emit(&self, event: &CacheEvent<'_>) {
        if let Some(observer) = &self.observer {
            observer(event);
        }
    }
}

/// Returns the name `task` has in listings: `text-embedding` or `image-embedding`.
pub fn task_name(task: Task) -> &'static str {
    match task {
        Task::TextEmbedding => "text-embedding",
        Task::ImageEmbedding => "image-embedding",
    }
}

/// Checks that `name` names a model rather than a path, and returns it trimmed.
fn check_name(name: &str) -> Result<&str> {
    let name = name.trim();
    if name.is_empty() {
        return Err(Error::invalid(
            "model",
            "the name is empty; give a built-in model name or a folder name in the model directory",
        ));
    }
    if name.contains(['/', '\\']) || name.starts_with('.') {
        return Err(Error::invalid(
            "model",
            format!(
                "`{name}` is a path; the model cache loads models by name from the model \
                 directory, so copy the folder there and give its name"
            ),
        ));
    }
    Ok(name)
}

fn wrong_task(name: &str, expected: Task) -> Error {
    let actual = match expected {
        Task::TextEmbedding => Task::ImageEmbedding,
        Task::ImageEmbedding => Task::TextEmbedding,
    };
    Error::invalid(
        "model",
        format!(
            "`{name}` has the task {}, but this call needs a model with the task {}",
            task_name(actual),
            task_name(expected)
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys<V>(lru: &Lru<V>) -> Vec<&str> {
        lru.entries.iter().map(|(k, _)| k.as_str()).collect()
    }

    #[test]
    fn lru_evicts_the_least_recently_used() {
        let mut lru = Lru::new(2);
        assert!(lru.insert("a".into(), 1).is_empty());
        assert!(lru.insert("b".into(), 2).is_empty());
        assert_eq!(keys(&lru), ["b", "a"]);

        assert_eq!(lru.touch("a"), Some(&mut 1));
        assert_eq!(keys(&lru), ["a", "b"]);

        let evicted = lru.insert("c".into(), 3);
        assert_eq!(evicted, vec![("b".to_owned(), 2)]);
        assert_eq!(keys(&lru), ["c", "a"]);
    }

    #[test]
    fn lru_reinsert_replaces_without_evicting() {
        let mut lru = Lru::new(2);
        lru.insert("a".into(), 1);
        lru.insert("b".into(), 2);
        assert!(lru.insert("a".into(), 10).is_empty());
        assert_eq!(keys(&lru), ["a", "b"]);
        assert_eq!(lru.touch("a"), Some(&mut 10));
    }

    #[test]
    fn lru_remove_and_missing_keys() {
        let mut lru = Lru::new(3);
        lru.insert("a".into(), 1);
        assert_eq!(lru.touch("zzz"), None);
        assert_eq!(lru.remove("zzz"), None);
        assert_eq!(lru.remove("a"), Some(1));
        assert_eq!(lru.len(), 0);
    }

    #[test]
    fn cache_keys_reject_paths() {
        let cache = ModelCache::new(ModelStore::new("unused"), Device::Cpu, 1).expect("cache");
        for name in ["", "  ", "../etc", "/etc/passwd", "a/b", "a\\b", ".hidden"] {
            let err = cache.key_of(name).expect_err(name);
            assert_eq!(err.kind(), crate::ErrorKind::InvalidInput, "{name}");
        }
        assert_eq!(
            cache.key_of("ALL-MiniLM-L6-v2").ok().as_deref(),
            Some("all-minilm-l6-v2")
        );
        assert_eq!(cache.key_of(" my-bert ").ok().as_deref(), Some("my-bert"));
    }

    #[test]
    fn zero_capacity_is_rejected() {
        let err = ModelCache::new(ModelStore::new("unused"), Device::Cpu, 0).expect_err("0");
        assert!(err.to_string().contains("capacity"), "{err}");
    }

    #[test]
    fn missing_models_fail_without_entering_the_cache() {
        let dir = tempfile::tempdir().expect("temporary folder");
        let cache = ModelCache::new(ModelStore::new(dir.path()), Device::Cpu, 2).expect("cache");
        let missing = cache.load("all-minilm-l6-v2").expect_err("not fetched");
        assert_eq!(missing.kind(), crate::ErrorKind::ModelNotFound);
        let unknown = cache.load("no-such-model").expect_err("unknown");
        assert_eq!(unknown.kind(), crate::ErrorKind::NotFound);
        let wrong = cache
            .text("efficientnet-lite0")
            .expect_err("an image model");
        assert_eq!(wrong.kind(), crate::ErrorKind::InvalidInput);
        assert!(cache.is_empty());
        assert!(!cache.unload("all-minilm-l6-v2").expect("a valid name"));
    }
}
