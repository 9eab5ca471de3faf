//! Node.js bindings for kai (N-API). Each export converts JS values, calls kai-core and
//! converts errors into `Error` objects whose `code` is the kai error code.

use std::path::PathBuf;
use std::sync::Arc;

use kai_core::{DeviceRequest, ModelStore};
use napi::bindgen_prelude::{AsyncTask, Float32Array, JsObjectValue, Object};
use napi::{Env, JsValue, Status, Task};
use napi_derive::napi;

// candle allocates and frees a large buffer per tensor operation; glibc's malloc hands
// such buffers back to the kernel each time, so every operation page-faults. mimalloc
// keeps them, which made text embedding about 40% faster in benches/text_embed.py.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn to_js_error(err: &kai_core::Error) -> napi::Error<String> {
    napi::Error::new(err.kind().code().to_owned(), err.to_string())
}

/// Builds a JS `Error` with `code` set, for rejecting a Promise from a task.
fn reject_with_code(env: &Env, err: &kai_core::Error) -> napi::Error {
    let built = env
        .create_error(napi::Error::new(Status::GenericFailure, err.to_string()))
        .and_then(|mut object: Object| {
            object.set_named_property("code", err.kind().code())?;
            Ok(object)
        });
    match built {
        Ok(object) => napi::Error::from(object.to_unknown()),
        Err(failure) => failure,
    }
}

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

    /// Embeds texts off the event loop; resolves to one Float32Array per text.
    #[napi(ts_return_type = "Promise<Float32Array[]>")]
    pub fn embed(&self, texts: Vec<String>) -> AsyncTask<EmbedTask> {
        AsyncTask::new(EmbedTask {
            embedder: Arc::clone(&self.inner),
            texts,
        })
    }
}

/// The work of one `embed` call, run on the libuv thread pool.
#[derive(Debug)]
pub struct EmbedTask {
    embedder: Arc<kai_core::TextEmbedder>,
    texts: Vec<String>,
}

impl Task for EmbedTask {
    type Output = Result<kai_core::Embeddings, kai_core::Error>;
    type JsValue = Vec<Float32Array>;

    fn compute(&mut self) -> napi::Result<Self::Output> {
        Ok(kai_core::Error::catch_panic(|| {
            self.embedder.embed(&self.texts)
        }))
    }

    fn resolve(&mut self, env: Env, output: Self::Output) -> napi::Result<Self::JsValue> {
        match output {
            Ok(vectors) => Ok(vectors
                .iter()
                .map(|v| Float32Array::new(v.to_vec()))
                .collect()),
            Err(err) => Err(reject_with_code(&env, &err)),
        }
    }
}
