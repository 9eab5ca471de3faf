//! Sentence embeddings from BERT-family models, computed the way sentence-transformers
//! computes them.

use std::path::Path;
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use tokenizers::{Encoding, Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};

use super::bert::Bert;
use super::embeddings::Embeddings;
use super::pooling::pool;
use super::text_config::TextModelSettings;
use crate::device::{describe, model_dtype};
use crate::error::{Error, Result};
use crate::models::{ModelFolder, ModelStore};

/// Inputs per forward pass when the caller does not choose. Inputs are sorted by length
/// first, so each batch pads little.
pub const DEFAULT_BATCH_SIZE: usize = 32;

/// Largest batch size [`TextEmbedder::with_batch_size`] accepts. Attention scores take
/// `batch × 12 heads × length²` floats, about 800 MB at 256 texts of 256 tokens.
pub const MAX_BATCH_SIZE: usize = 256;

/// Bytes of input kept per token of the maximum sequence length. The tokenizer processes a
/// whole text before truncating it, so without a cut a 10 MB line costs gigabytes.
/// NOTE: a text whose first `256 × max_sequence_length` bytes yield fewer tokens than the
/// maximum (long runs of whitespace, say) embeds differently from sentence-transformers.
const BYTES_PER_TOKEN: usize = 256;

/// A loaded text embedding model.
///
/// Texts are tokenized with the model's tokenizer and truncated to the model's maximum
/// sequence length, so over-long input is cut, never rejected. Each batch is padded to its
/// longest text, run through the encoder and pooled over the attention mask. For models
/// that ask for it, the vectors are scaled to unit length. The empty string is a valid input: it becomes
/// `[CLS] [SEP]` and gets the vector of that sequence, as in sentence-transformers.
pub struct TextEmbedder {
    name: String,
    model: Bert,
    tokenizer: Tokenizer,
    settings: TextModelSettings,
    device: Device,
    batch_size: usize,
}

impl std::fmt::Debug for TextEmbedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextEmbedder")
            .field("name", &self.name)
            .field("dimension", &self.dimension())
            .field("max_sequence_length", &self.settings.max_sequence_length)
            .field("pooling", &self.settings.pooling)
            .field("normalize", &self.settings.normalize)
            .field("device", &describe(&self.device))
            .finish()
    }
}

impl TextEmbedder {
    /// Resolves `model` in `store` (see [`ModelStore::resolve`]) and loads it on `device`.
    ///
    /// # Errors
    ///
    /// As [`ModelStore::resolve`] and [`TextEmbedder::load`].
    pub fn from_store(store: &ModelStore, model: &str, device: &Device) -> Result<Self> {
        Self::load(&store.resolve(model)?, device)
    }

    /// Loads a resolved model folder on `device`.
    ///
    /// # Errors
    ///
    /// Returns [`Error::Model`] naming the file that is missing or unreadable,
    /// [`Error::NotSupported`] for architectures other than BERT, and [`Error::Tensor`]
    /// when the device cannot hold the weights.
    pub fn load(folder: &ModelFolder, device: &Device) -> Result<Self> {
        let _span = tracing::info_span!("model_load", model = %folder.name).entered();
        let started = Instant::now();
        if folder
            .manifest
            .as_ref()
            .is_some_and(|m| m.task != crate::models::Task::TextEmbedding)
        {
            return Err(Error::invalid(
                "model",
                format!(
                    "`{}` is not a text embedding model; load it as an image embedding model",
                    folder.name
                ),
            ));
        }
        let settings = TextModelSettings::read(folder)?;
        let tokenizer = load_tokenizer(folder, settings.max_sequence_length)?;
        let vocabulary = tokenizer.get_vocab_size(true);
        if vocabulary > settings.bert.vocab_size {
            return Err(Error::model(
                &folder.name,
                format!(
                    "tokenizer.json has {vocabulary} tokens but config.json has vocab_size {}; \
                     the two files belong to different models",
                    settings.bert.vocab_size
                ),
            ));
        }
        let model = load_weights(folder, &settings, device)?;
        tracing::info!(
            model = %folder.name,
            device = %describe(device),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "loaded text model"
        );
        Ok(Self {
            name: folder.name.clone(),
            model,
            tokenizer,
            settings,
            device: device.clone(),
            batch_size: DEFAULT_BATCH_SIZE,
        })
    }

    /// Sets how many texts go through the encoder at once.
    ///
    /// # Errors
    ///
    /// Returns [`Error::InvalidInput`] for 0.
    pub fn with_batch_size(mut self, batch_size: usize) -> Result<Self> {
        if batch_size == 0 || batch_size > MAX_BATCH_SIZE {
            return Err(Error::invalid(
                "batch_size",
                format!("must be between 1 and {MAX_BATCH_SIZE}, got {batch_size}"),
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
        self.settings.bert.hidden_size
    }

    /// Returns the number of tokens, special tokens included, beyond which input is cut.
    pub fn max_sequence_length(&self) -> usize {
        self.settings.max_sequence_length
    }

    /// Returns whether output vectors have unit length.
    pub fn normalizes(&self) -> bool {
        self.settings.normalize
    }

    /// Returns the device the model runs on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Embeds texts, returning one vector per text in input order.
    ///
    /// The result does not depend on how texts are grouped: batched and one-at-a-time
    /// calls agree within float rounding.
    ///
    /// # Errors
    ///
    /// Returns [`Error::Tokenizer`] or [`Error::Tensor`] when the model fails.
    pub fn embed<S: AsRef<str>>(&self, texts: &[S]) -> Result<Embeddings> {
        let _span =
            tracing::debug_span!("embed_text", model = %self.name, count = texts.len()).entered();
        let dimension = self.dimension();
        if texts.is_empty() {
            return Ok(Embeddings::new(dimension, Vec::new()));
        }

        let max_bytes = self.settings.max_sequence_length * BYTES_PER_TOKEN;
        let inputs: Vec<&str> = texts.iter().map(|t| clip(t.as_ref(), max_bytes)).collect();
        let encodings = self
            .tokenizer
            .encode_batch(inputs, true)
            .map_err(|err| Error::Tokenizer(err.to_string()))?;

        // Longest first, so each batch contains texts of similar length and pads little.
        let mut order: Vec<usize> = (0..encodings.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(encodings[i].len()));

        let mut data = vec![0f32; texts.len() * dimension];
        for batch in order.chunks(self.batch_size) {
            let members: Vec<&Encoding> = batch.iter().map(|&i| &encodings[i]).collect();
            let vectors = self.forward(&members)?;
            for (row, &index) in vectors.chunks_exact(dimension).zip(batch) {
                data[index * dimension..(index + 1) * dimension].copy_from_slice(row);
            }
        }
        Ok(Embeddings::new(dimension, data))
    }

    /// Embeds one text.
    ///
    /// # Errors
    ///
    /// As [`TextEmbedder::embed`].
    pub fn embed_one(&self, text: &str) -> Result<Vec<f32>> {
        Ok(self.embed(&[text])?.into_vec())
    }

    /// Runs one padded batch through the encoder and pools it; returns rows in batch order.
    fn forward(&self, batch: &[&Encoding]) -> Result<Vec<f32>> {
        let length = batch.iter().map(|e| e.len()).max().unwrap_or(0);
        let _span = tracing::trace_span!("embed_batch", size = batch.len(), length).entered();

        let mut ids = Vec::with_capacity(batch.len() * length);
        let mut type_ids = Vec::with_capacity(batch.len() * length);
        for encoding in batch {
            let padding = std::iter::repeat_n(0, length - encoding.len());
            ids.extend(encoding.get_ids().iter().copied().chain(padding.clone()));
            type_ids.extend(encoding.get_type_ids().iter().copied().chain(padding));
        }
        let shape = (batch.len(), length);
        let ids = Tensor::from_vec(ids, shape, &self.device)?;
        let type_ids = Tensor::from_vec(type_ids, shape, &self.device)?;

        let lengths: Vec<usize> = batch.iter().map(|e| e.len()).collect();
        let hidden = self.model.forward(&ids, &type_ids, &lengths)?;
        let hidden = hidden
            .to_dtype(DType::F32)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        Ok(pool(
            &hidden,
            length,
            self.dimension(),
            &lengths,
            self.settings.pooling,
            self.settings.normalize,
        ))
    }
}

/// Returns the longest prefix of `text` of at most `max_bytes` bytes that ends on a
/// character boundary.
fn clip(text: &str, max_bytes: usize) -> &str {
    if text.len() <= max_bytes {
        return text;
    }
    let mut end = max_bytes;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

fn load_tokenizer(folder: &ModelFolder, max_sequence_length: usize) -> Result<Tokenizer> {
    let path = folder.path.join("tokenizer.json");
    let mut tokenizer = Tokenizer::from_file(&path).map_err(|err| {
        Error::model(
            &folder.name,
            format!("cannot load {}: {err}", path.display()),
        )
    })?;
    // tokenizer.json files often pad and truncate to a fixed length (128 for
    // all-MiniLM-L6-v2); kai truncates at the model's max_seq_length and pads per batch.
    tokenizer.with_padding(None);
    tokenizer
        .with_truncation(Some(TruncationParams {
            max_length: max_sequence_length,
            strategy: TruncationStrategy::LongestFirst,
            stride: 0,
            direction: TruncationDirection::Right,
        }))
        .map_err(|err| Error::model(&folder.name, format!("invalid truncation: {err}")))?;
    Ok(tokenizer)
}

fn load_weights(
    folder: &ModelFolder,
    settings: &TextModelSettings,
    device: &Device,
) -> Result<Bert> {
    let path = folder.path.join("model.safetensors");
    let tensors = candle_core::safetensors::load(&path, device)
        .map_err(|err| corrupt_weights(folder, &path, &err))?;
    let vb = VarBuilder::from_tensors(tensors, model_dtype(device), device);
    Bert::load(vb, &settings.bert).map_err(|err| corrupt_weights(folder, &path, &err))
}

fn corrupt_weights(folder: &ModelFolder, path: &Path, err: &candle_core::Error) -> Error {
    let fix = if folder.manifest.is_some() {
        format!("; run `kai models fetch {}`", folder.name)
    } else {
        String::new()
    };
    Error::model(
        &folder.name,
        format!("cannot load weights from {}: {err}{fix}", path.display()),
    )
}
