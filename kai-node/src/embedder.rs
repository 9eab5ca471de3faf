//! `TextEmbedder`: one text embedding model loaded on its own, outside any store.

use std::path::PathBuf;
use std::sync::Arc;

use kai_core::{DeviceRequest, ModelStore};
use napi::bindgen_prelude::{AsyncTask, Unknown};
use napi_derive::napi;

use crate::convert::from_js;
use crate::errors::to_js_error;
use crate::job::{Job, Vectors};

/// A text embedding model loaded in this process.
#[napi]
#[derive(Debug)]
pub struct TextEmbedder {
    inner: Arc<kai_core::TextEmbedder>,
}

#[napi]
impl TextEmbedder {
    /// Loads a model by name or folder (default `all-minilm-l6-v2`) from `modelDir`
    /// (default `MODEL_DIR`, else the user cache folder) on the device that `KAI_DEVICE`
    /// names.
    #[napi(factory)]
    pub fn load(
        model: Option<String>,
        model_dir: Option<String>,
    ) -> Result<Self, napi::Error<String>> {
        let store = match model_dir {
            Some(dir) => ModelStore::new(PathBuf::from(dir)),
            None => ModelStore::from_env(),
        };
        let model = model.unwrap_or_else(|| kai_core::models::DEFAULT_TEXT_MODEL.to_owned());
        let inner = kai_core::Error::catch_panic(|| {
            let device = DeviceRequest::from_env()?.open()?;
            kai_core::TextEmbedder::from_store(&store, &model, &device)
        })
        .map_err(|err| to_js_error(&err))?;
        Ok(Self {
            inner: Arc::new(inner),
        })
    }

    /// Returns the model name.
    #[napi(getter)]
    pub fn name(&self) -> String {
        self.inner.name().to_owned()
    }

    /// Returns the length of each vector.
    #[napi(getter)]
    pub fn dimension(&self) -> u32 {
        self.inner.dimension() as u32
    }

    /// Embeds texts off the event loop and resolves to one Float32Array per text.
    #[napi(
        ts_args_type = "texts: string[]",
        ts_return_type = "Promise<Float32Array[]>"
    )]
    pub fn embed(&self, texts: Unknown<'_>) -> AsyncTask<Job<Vectors>> {
        let embedder = Arc::clone(&self.inner);
        Job::run(from_js::<Vec<String>>("texts", texts), move |texts| {
            Ok(Vectors(embedder.embed(&texts)?))
        })
    }
}
