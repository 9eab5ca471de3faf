//! Settings of a text embedding model, read from its manifest or, for other Hugging Face
//! folders, from the sentence-transformers files beside the weights.

use std::fs;
use std::path::Path;

use candle_transformers::models::bert;
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::models::{ModelFolder, Pooling};

/// Settings that turn a text model's token vectors into one vector per text.
#[derive(Debug, Clone)]
pub(crate) struct TextModelSettings {
    pub bert: bert::Config,
    pub max_sequence_length: usize,
    pub pooling: Pooling,
    pub normalize: bool,
}

#[derive(Deserialize)]
struct ModelType {
    model_type: Option<String>,
    #[serde(default)]
    architectures: Vec<String>,
}

#[derive(Deserialize)]
struct SentenceBertConfig {
    max_seq_length: Option<usize>,
}

#[derive(Deserialize)]
struct PoolingConfig {
    #[serde(default)]
    pooling_mode_cls_token: bool,
    #[serde(default)]
    pooling_mode_mean_tokens: bool,
    #[serde(default)]
    pooling_mode_max_tokens: bool,
    #[serde(default)]
    pooling_mode_mean_sqrt_len_tokens: bool,
    #[serde(default)]
    pooling_mode_weightedmean_tokens: bool,
    #[serde(default)]
    pooling_mode_lasttoken: bool,
}

#[derive(Deserialize)]
struct ModuleEntry {
    #[serde(rename = "type")]
    kind: String,
}

impl TextModelSettings {
    /// Reads the settings of `folder`.
    pub fn read(folder: &ModelFolder) -> Result<Self> {
        let config_path = folder.path.join("config.json");
        let config_text = read_text(folder, &config_path)?;
        let model_type: ModelType = parse_json(folder, &config_path, &config_text)?;
        let is_bert = model_type.model_type.as_deref() == Some("bert")
            || (model_type.model_type.is_none()
                && model_type
                    .architectures
                    .iter()
                    .any(|a| a.starts_with("Bert")));
        if !is_bert {
            return Err(Error::NotSupported(format!(
                "model `{}` has model_type `{}`; text embeddings support the BERT family \
                 (model_type `bert`)",
                folder.name,
                model_type.model_type.as_deref().unwrap_or("unknown")
            )));
        }
        let bert: bert::Config = parse_json(folder, &config_path, &config_text)?;
        if bert.hidden_size == 0 || bert.num_attention_heads == 0 {
            return Err(Error::model(
                &folder.name,
                format!(
                    "{} has hidden_size or num_attention_heads 0",
                    config_path.display()
                ),
            ));
        }
        if bert.max_position_embeddings < 2 {
            return Err(Error::model(
                &folder.name,
                format!(
                    "{} has max_position_embeddings {}; a BERT input needs at least 2 \
                     positions, for [CLS] and [SEP]",
                    config_path.display(),
                    bert.max_position_embeddings
                ),
            ));
        }

        let (max_sequence_length, pooling, normalize) = match &folder.manifest {
            Some(m) => match &m.text {
                Some(text) => (text.max_sequence_length, text.pooling, text.normalize),
                None => {
                    return Err(Error::model(
                        &folder.name,
                        format!("is a {:?} model, not a text embedding model", m.task),
                    ));
                }
            },
            None => (
                sentence_bert_max_length(folder)?.unwrap_or(bert.max_position_embeddings),
                folder_pooling(folder)?,
                folder_normalizes(folder)?,
            ),
        };
        if let Some(manifest) = &folder.manifest
            && manifest.dimension != bert.hidden_size
        {
            return Err(Error::model(
                &folder.name,
                format!(
                    "config.json has hidden_size {} but the manifest says dimension {}",
                    bert.hidden_size, manifest.dimension
                ),
            ));
        }
        if max_sequence_length < 2 {
            return Err(Error::model(
                &folder.name,
                format!(
                    "max_seq_length {max_sequence_length} is below 2, the length of \
                     [CLS] [SEP] alone"
                ),
            ));
        }
        Ok(Self {
            max_sequence_length: max_sequence_length.min(bert.max_position_embeddings),
            bert,
            pooling,
            normalize,
        })
    }
}

fn sentence_bert_max_length(folder: &ModelFolder) -> Result<Option<usize>> {
    let path = folder.path.join("sentence_bert_config.json");
    if !path.is_file() {
        return Ok(None);
    }
    let config: SentenceBertConfig = parse_json(folder, &path, &read_text(folder, &path)?)?;
    Ok(config.max_seq_length)
}

/// Follows the sentence-transformers pooling module when present; mean pooling otherwise,
/// which is what sentence-transformers applies to a plain transformer folder too.
fn folder_pooling(folder: &ModelFolder) -> Result<Pooling> {
    let path = folder.path.join("1_Pooling").join("config.json");
    if !path.is_file() {
        return Ok(Pooling::Mean);
    }
    let config: PoolingConfig = parse_json(folder, &path, &read_text(folder, &path)?)?;
    let modes = [
        ("pooling_mode_cls_token", config.pooling_mode_cls_token),
        ("pooling_mode_mean_tokens", config.pooling_mode_mean_tokens),
        ("pooling_mode_max_tokens", config.pooling_mode_max_tokens),
        (
            "pooling_mode_mean_sqrt_len_tokens",
            config.pooling_mode_mean_sqrt_len_tokens,
        ),
        (
            "pooling_mode_weightedmean_tokens",
            config.pooling_mode_weightedmean_tokens,
        ),
        ("pooling_mode_lasttoken", config.pooling_mode_lasttoken),
    ];
    let enabled: Vec<&str> = modes
        .iter()
        .filter(|(_, on)| *on)
        .map(|(name, _)| *name)
        .collect();
    // sentence-transformers concatenates the vectors of several enabled modes; kai
    // supports exactly one of the three common modes.
    match enabled.as_slice() {
        ["pooling_mode_cls_token"] => Ok(Pooling::Cls),
        ["pooling_mode_mean_tokens"] => Ok(Pooling::Mean),
        ["pooling_mode_max_tokens"] => Ok(Pooling::Max),
        _ => Err(Error::NotSupported(format!(
            "model `{}`: {} enables [{}]; kai supports exactly one of \
             pooling_mode_mean_tokens, pooling_mode_cls_token and pooling_mode_max_tokens",
            folder.name,
            path.display(),
            enabled.join(", ")
        ))),
    }
}

fn folder_normalizes(folder: &ModelFolder) -> Result<bool> {
    let path = folder.path.join("modules.json");
    if !path.is_file() {
        return Ok(false);
    }
    let modules: Vec<ModuleEntry> = parse_json(folder, &path, &read_text(folder, &path)?)?;
    Ok(modules.iter().any(|m| m.kind.ends_with(".Normalize")))
}

fn read_text(folder: &ModelFolder, path: &Path) -> Result<String> {
    fs::read_to_string(path).map_err(|err| {
        Error::model(
            &folder.name,
            format!("cannot read {}: {err}", path.display()),
        )
    })
}

fn parse_json<T: for<'de> Deserialize<'de>>(
    folder: &ModelFolder,
    path: &Path,
    text: &str,
) -> Result<T> {
    serde_json::from_str(text).map_err(|err| {
        Error::model(
            &folder.name,
            format!("{} is not valid: {err}", path.display()),
        )
    })
}
