//! Image embeddings and ImageNet labels from a convolutional backbone.

use std::time::Instant;

use candle_core::{D, Device, Tensor};
use serde::Serialize;

use super::efficientnet::{Backend, EfficientNetLite};
use super::embeddings::Embeddings;
use super::labels::Labels;
use crate::device::describe;
use crate::error::{Error, Result};
use crate::image::{RgbImage, preprocess_batch};
use crate::models::{ModelFolder, ModelStore, Preprocess, Task, load_pth};

/// Images per forward pass when the caller does not choose.
pub const DEFAULT_IMAGE_BATCH_SIZE: usize = 16;

/// Largest batch size [`ImageEmbedder::with_batch_size`] accepts. The widest activation of
/// EfficientNet-Lite0 takes about 4.8 MB per image, and a few are alive at once.
pub const MAX_IMAGE_BATCH_SIZE: usize = 128;

/// One class of a classifier's top-k, with its softmax probability.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Prediction {
    /// The class index in the classifier's output.
    #[serde(skip)]
    pub index: usize,
    /// The class name.
    pub label: String,
    /// The softmax probability, in [0, 1].
    pub score: f32,
}

/// Embeddings and top-k labels of a batch of images, in input order.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageEmbeddings {
    /// The L2-normalised pooled features, one row per image.
    pub vectors: Embeddings,
    /// The classifier's top-k classes per image, most probable first.
    pub labels: Vec<Vec<Prediction>>,
}

/// The raw outputs of the network for preprocessed input.
#[derive(Debug)]
pub struct RawImageOutput {
    /// Pooled features before normalisation, `[batch, dimension]`.
    pub features: Tensor,
    /// Classifier logits, `[batch, classes]`.
    pub logits: Tensor,
}

/// The networks kai implements; the manifest's `architecture` picks one.
#[derive(Debug)]
enum Network {
    EfficientNetLite(EfficientNetLite),
}

/// A loaded image embedding model.
///
/// Photos are cropped, resized and normalised as the model's manifest prescribes, run
/// through the backbone in batches, and turned into unit-length feature vectors for
/// retrieval plus the classifier's most probable labels.
#[derive(Debug)]
pub struct ImageEmbedder {
    name: String,
    network: Network,
    preprocess: Preprocess,
    labels: Labels,
    dimension: usize,
    device: Device,
    batch_size: usize,
}

impl ImageEmbedder {
    /// Resolves `model` in `store` (see [`ModelStore::resolve`]) and loads it on `device`.
    ///
    /// # Errors
    ///
    /// As [`ModelStore::resolve`] and [`ImageEmbedder::load`].
    pub fn from_store(store: &ModelStore, model: &str, device: &Device) -> Result<Self> {
        Self::load(&store.resolve(model)?, device)
    }

    /// Loads a resolved model folder on `device`.
    ///
    /// # Errors
    ///
    /// Returns [`Error::Model`] when the folder has no image-embedding manifest or its
    /// weights do not fit the architecture, and [`Error::NotSupported`] for an architecture
    /// kai does not implement.
    pub fn load(folder: &ModelFolder, device: &Device) -> Result<Self> {
        Self::load_with(folder, device, backend_for(device))
    }

    fn load_with(folder: &ModelFolder, device: &Device, backend: Backend) -> Result<Self> {
        let _span = tracing::info_span!("model_load", model = %folder.name).entered();
        let started = Instant::now();
        let Some(manifest) = folder
            .manifest
            .as_ref()
            .filter(|m| m.task == Task::ImageEmbedding)
        else {
            return Err(Error::model(
                &folder.name,
                "is not an image embedding model; image models need a built-in manifest \
                 (see `kai models list`)",
            ));
        };
        let Some(image) = &manifest.image else {
            return Err(Error::model(
                &folder.name,
                "its manifest has no [image] table",
            ));
        };
        let weights = load_pth(&folder.path.join(&image.weights), device)?;
        let network = match manifest.architecture.as_str() {
            "efficientnet-lite0" => {
                Network::EfficientNetLite(EfficientNetLite::lite0(&weights, device, backend)?)
            }
            other => {
                return Err(Error::NotSupported(format!(
                    "image architecture `{other}` of model {}; kai implements efficientnet-lite0",
                    folder.name
                )));
            }
        };
        let labels = Labels::builtin(&image.labels)?;
        let Network::EfficientNetLite(net) = &network;
        if net.classes() != labels.len() || net.features() != manifest.dimension {
            return Err(Error::model(
                &folder.name,
                format!(
                    "the weights have {} classes and {} features, but the manifest says {} \
                     labels ({}) and dimension {}",
                    net.classes(),
                    net.features(),
                    labels.len(),
                    labels.name(),
                    manifest.dimension
                ),
            ));
        }
        tracing::info!(
            model = %folder.name,
            device = %describe(device),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "loaded image model"
        );
        Ok(Self {
            name: folder.name.clone(),
            network,
            preprocess: image.preprocess.clone(),
            labels,
            dimension: manifest.dimension,
            device: device.clone(),
            batch_size: DEFAULT_IMAGE_BATCH_SIZE,
        })
    }

    /// Sets how many images go through the network at once.
    ///
    /// # Errors
    ///
    /// Returns [`Error::InvalidInput`] outside 1..=[`MAX_IMAGE_BATCH_SIZE`].
    pub fn with_batch_size(mut self, batch_size: usize) -> Result<Self> {
        if batch_size == 0 || batch_size > MAX_IMAGE_BATCH_SIZE {
            return Err(Error::invalid(
                "batch_size",
                format!("must be between 1 and {MAX_IMAGE_BATCH_SIZE}, got {batch_size}"),
            ));
        }
        self.batch_size = batch_size;
        Ok(self)
    }

    /// Returns the model name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Returns the length of the output vectors.
    pub fn dimension(&self) -> usize {
        self.dimension
    }

    /// Returns the classifier's class names.
    pub fn labels(&self) -> &Labels {
        &self.labels
    }

    /// Returns the preprocessing the model expects.
    pub fn preprocess(&self) -> &Preprocess {
        &self.preprocess
    }

    /// Returns the device the model runs on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Embeds images into unit-length vectors.
    ///
    /// # Errors
    ///
    /// Returns [`Error::InvalidInput`] for an image without pixels and [`Error::Tensor`]
    /// when the device fails.
    pub fn embed(&self, images: &[RgbImage]) -> Result<Embeddings> {
        Ok(self.embed_and_classify(images, 0)?.vectors)
    }

    /// Embeds images and returns each image's `top_k` most probable classes, in one pass.
    ///
    /// # Errors
    ///
    /// As [`ImageEmbedder::embed`].
    pub fn embed_and_classify(&self, images: &[RgbImage], top_k: usize) -> Result<ImageEmbeddings> {
        let _span =
            tracing::debug_span!("embed_image", model = %self.name, count = images.len()).entered();
        let mut data = Vec::with_capacity(images.len() * self.dimension);
        let mut labels = Vec::with_capacity(images.len());
        for batch in images.chunks(self.batch_size) {
            let input = preprocess_batch(batch, &self.preprocess, &self.device)?;
            let output = self.forward(&input)?;
            for mut row in output.features.to_vec2::<f32>()? {
                // As PyTorch's `normalize`: divide by max(‖v‖, 1e-12).
                let norm = row.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
                row.iter_mut().for_each(|x| *x /= norm);
                data.extend(row);
            }
            if top_k > 0 {
                let probabilities = candle_nn::ops::softmax(&output.logits, D::Minus1)?;
                for row in probabilities.to_vec2::<f32>()? {
                    labels.push(self.top_k(&row, top_k));
                }
            } else {
                labels.extend(std::iter::repeat_n(Vec::new(), batch.len()));
            }
        }
        Ok(ImageEmbeddings {
            vectors: Embeddings::new(self.dimension, data),
            labels,
        })
    }

    /// Runs the network on an already preprocessed `[batch, 3, size, size]` tensor and
    /// returns the unnormalised features and the logits.
    ///
    /// # Errors
    ///
    /// Returns [`Error::InvalidInput`] when the tensor does not have that shape.
    pub fn forward(&self, input: &Tensor) -> Result<RawImageOutput> {
        let size = self.preprocess.image_size;
        match input.dims() {
            [batch, 3, h, w] if *batch > 0 && *h == size && *w == size => {}
            dims => {
                return Err(Error::invalid(
                    "input",
                    format!("has shape {dims:?}; expected [batch, 3, {size}, {size}]"),
                ));
            }
        }
        let _span = tracing::trace_span!("image_batch", size = input.dims()[0]).entered();
        let input = input.to_device(&self.device)?;
        let Network::EfficientNetLite(net) = &self.network;
        let output = net.forward(&input)?;
        Ok(RawImageOutput {
            features: output.features,
            logits: output.logits,
        })
    }

    fn top_k(&self, probabilities: &[f32], k: usize) -> Vec<Prediction> {
        let mut order: Vec<usize> = (0..probabilities.len()).collect();
        order.sort_by(|&a, &b| probabilities[b].total_cmp(&probabilities[a]));
        order
            .into_iter()
            .take(k)
            .map(|index| Prediction {
                index,
                label: self.labels.label(index).unwrap_or_default().to_owned(),
                score: probabilities[index],
            })
            .collect()
    }
}

/// kai's CPU kernels serve the CPU; candle's operations serve every other device.
fn backend_for(device: &Device) -> Backend {
    if device.is_cpu() {
        Backend::CpuKernels
    } else {
        Backend::Candle
    }
}

#[doc(hidden)]
/// Loads the model with candle's operations even on the CPU, so tests can compare the
/// path that GPUs take with kai's CPU kernels.
pub fn load_with_candle_ops(folder: &ModelFolder, device: &Device) -> Result<ImageEmbedder> {
    ImageEmbedder::load_with(folder, device, Backend::Candle)
}
