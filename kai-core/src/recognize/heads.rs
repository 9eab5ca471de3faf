//! Domain-specific heads: small classifiers trained on the catalog's image embeddings.
//!
//! A head is a softmax linear layer over the image embedding, trained with AdamW on the
//! images of the materials in its domain. The domain names what is predicted: the
//! material type, or a property such as `species` within one material type. Materials are
//! split into training and held-out sets with all images of a material on one side, so
//! the held-out accuracy measures photos of materials the head has never seen. The same
//! split scores the nearest-neighbour vote for comparison. A head is saved as safetensors with a
//! JSON manifest in `<store>/heads/<domain>/`.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use serde::{Deserialize, Serialize};

use super::calibration::{self, Sample, softmax};
use crate::catalog::{Catalog, Material, write_atomically};
use crate::error::{Error, Result};

/// Full-batch training steps.
const STEPS: usize = 300;

/// The target of a head.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HeadSpec {
    /// The head's name, a folder name under `heads/`.
    pub domain: String,
    /// `materialType`, or `property:NAME` for a property's value.
    pub label: String,
    /// Only materials of this type take part, for subtypes within a type.
    pub material_type: Option<String>,
}

/// A head's manifest, `head.json`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HeadManifest {
    /// The head's target.
    pub spec: HeadSpec,
    /// Class names in output order.
    pub classes: Vec<String>,
    /// The image model whose embeddings the head reads.
    pub image_model: String,
    /// Length of those embeddings.
    pub dimension: usize,
    /// Softmax temperature fitted on the held-out images.
    pub temperature: f32,
    /// Held-out top-1 accuracy of the head.
    pub heldout_accuracy: f32,
    /// Held-out top-1 accuracy of the nearest-neighbour vote on the same split.
    pub neighbour_accuracy: f32,
    /// Images used for training.
    pub training_images: usize,
    /// Images held out.
    pub heldout_images: usize,
}

/// A trained head, ready to classify embeddings.
#[derive(Debug)]
pub struct Head {
    /// The manifest.
    pub manifest: HeadManifest,
    weight: Tensor,
    bias: Tensor,
}

impl Head {
    /// Returns calibrated class probabilities for one unit-length embedding.
    ///
    /// # Errors
    ///
    /// Returns [`Error::InvalidInput`] when the embedding has the wrong length.
    pub fn classify(&self, embedding: &[f32]) -> Result<Vec<f32>> {
        if embedding.len() != self.manifest.dimension {
            return Err(Error::invalid(
                "embedding",
                format!(
                    "has {} values, the head expects {}",
                    embedding.len(),
                    self.manifest.dimension
                ),
            ));
        }
        let logits = logits(&self.weight, &self.bias, embedding)?;
        Ok(softmax(&logits, self.manifest.temperature))
    }
}

fn logits(weight: &Tensor, bias: &Tensor, embedding: &[f32]) -> Result<Vec<f32>> {
    let x = Tensor::from_slice(embedding, (1, embedding.len()), &Device::Cpu)?;
    Ok(x.matmul(&weight.t()?)?
        .broadcast_add(bias)?
        .squeeze(0)?
        .to_vec1()?)
}

fn label_of(material: &Material, spec: &HeadSpec) -> Option<String> {
    if spec
        .material_type
        .as_ref()
        .is_some_and(|t| *t != material.material_type)
    {
        return None;
    }
    match spec.label.strip_prefix("property:") {
        None => Some(material.material_type.clone()),
        Some(property) => material.properties.get(property).map(|v| match v {
            serde_json::Value::String(s) => s.to_lowercase(),
            other => other.to_string(),
        }),
    }
}

fn check_domain(domain: &str) -> Result<()> {
    let valid = !domain.is_empty()
        && domain.len() <= 64
        && domain
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'));
    if valid {
        Ok(())
    } else {
        Err(Error::invalid(
            "domain",
            format!("`{domain}` must be 1 to 64 letters, digits, `-` or `_`"),
        ))
    }
}

/// Puts every fifth material (by id order) in the held-out set, so the split is the same
/// from run to run.
fn held_out(index: usize) -> bool {
    index % 5 == 4
}

impl Catalog {
    fn heads_folder(&self) -> PathBuf {
        self.root().join("heads")
    }

    /// Trains, evaluates and saves a head.
    ///
    /// # Errors
    ///
    /// Returns [`Error::InvalidInput`] for an invalid spec or when the domain has fewer
    /// than two classes or no held-out images.
    pub fn train_head(&self, spec: &HeadSpec) -> Result<HeadManifest> {
        check_domain(&spec.domain)?;
        if spec.label != "materialType" && !spec.label.starts_with("property:") {
            return Err(Error::invalid(
                "label",
                format!("`{}` must be `materialType` or `property:NAME`", spec.label),
            ));
        }
        let mut examples: Vec<(Vec<f32>, String, bool)> = Vec::new();
        let mut labelled = 0;
        for material in self.storage().all()? {
            let Some(label) = label_of(&material, spec) else {
                continue;
            };
            let heldout = held_out(labelled);
            labelled += 1;
            for image in &material.images {
                if let Some(vector) = self.image_index().get(image.key)? {
                    examples.push((vector, label.clone(), heldout));
                }
            }
        }
        let classes: Vec<String> = examples
            .iter()
            .map(|e| e.1.clone())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        if classes.len() < 2 {
            return Err(Error::invalid(
                "domain",
                format!(
                    "`{}` has {} class(es) in the catalog; a head needs at least 2",
                    spec.domain,
                    classes.len()
                ),
            ));
        }
        let (train, test): (Vec<_>, Vec<_>) = examples.into_iter().partition(|e| !e.2);
        if test.is_empty() || train.is_empty() {
            return Err(Error::invalid(
                "domain",
                format!(
                    "`{}` has too few materials to hold some out; import at least 5",
                    spec.domain
                ),
            ));
        }
        let class_of = |label: &str| classes.iter().position(|c| c == label).unwrap_or(0);
        let dimension = train[0].0.len();
        let (weight, bias) = fit(&train, &classes, dimension, &class_of)?;

        // Held-out scores of the head (logits) and of the neighbour vote over training images.
        let mut head_samples = Vec::new();
        let mut neighbour_correct = 0;
        for (vector, label, _) in &test {
            let truth = class_of(label);
            head_samples.push(Sample {
                scores: logits(&weight, &bias, vector)?,
                truth,
            });
            let nearest = train
                .iter()
                .map(|(v, l, _)| (v.iter().zip(vector).map(|(a, b)| a * b).sum::<f32>(), l))
                .max_by(|a, b| a.0.total_cmp(&b.0))
                .map(|(_, l)| class_of(l));
            neighbour_correct += usize::from(nearest == Some(truth));
        }
        let fitted = calibration::fit(&head_samples);
        let manifest = HeadManifest {
            spec: spec.clone(),
            classes,
            image_model: self.image_index().model().to_owned(),
            dimension,
            temperature: fitted.temperature,
            heldout_accuracy: fitted.accuracy.unwrap_or(0.0),
            neighbour_accuracy: neighbour_correct as f32 / test.len() as f32,
            training_images: train.len(),
            heldout_images: test.len(),
        };
        let folder = self.heads_folder().join(&spec.domain);
        let tensors = [("weight", weight), ("bias", bias)];
        let bytes = safetensors_bytes(&tensors)?;
        write_atomically(&folder.join("head.safetensors"), &bytes)?;
        let json = serde_json::to_vec_pretty(&manifest).unwrap_or_default();
        write_atomically(&folder.join("head.json"), &json)?;
        Ok(manifest)
    }

    /// Lists the trained heads of the store.
    ///
    /// # Errors
    ///
    /// Returns [`Error::Storage`] for an unreadable manifest.
    pub fn heads(&self) -> Result<Vec<HeadManifest>> {
        let folder = self.heads_folder();
        let Ok(entries) = std::fs::read_dir(&folder) else {
            return Ok(Vec::new());
        };
        let mut manifests = Vec::new();
        for entry in entries.flatten() {
            let path = entry.path().join("head.json");
            if path.is_file() {
                manifests.push(read_manifest(&path)?);
            }
        }
        manifests.sort_by(|a, b| a.spec.domain.cmp(&b.spec.domain));
        Ok(manifests)
    }

    /// Loads the head of `domain`, or `None` when none was trained. A head trained on
    /// another image model is an error, since its input would not match.
    ///
    /// # Errors
    ///
    /// Returns [`Error::Storage`] for unreadable files and [`Error::InvalidInput`] naming
    /// `kai heads train` for a head of another model.
    pub fn head(&self, domain: &str) -> Result<Option<Head>> {
        check_domain(domain)?;
        let folder = self.heads_folder().join(domain);
        let manifest_path = folder.join("head.json");
        if !manifest_path.is_file() {
            return Ok(None);
        }
        let manifest = read_manifest(&manifest_path)?;
        if manifest.image_model != self.image_index().model() {
            return Err(Error::invalid(
                format!("head `{domain}`"),
                format!(
                    "was trained on `{}` embeddings, but the store uses `{}`; run `kai heads train --domain {domain}`",
                    manifest.image_model,
                    self.image_index().model()
                ),
            ));
        }
        let tensors = candle_core::safetensors::load(folder.join("head.safetensors"), &Device::Cpu)
            .map_err(|err| Error::Storage(format!("head `{domain}`: {err}")))?;
        let get = |name: &str| {
            tensors
                .get(name)
                .cloned()
                .ok_or_else(|| Error::Storage(format!("head `{domain}` has no `{name}` tensor")))
        };
        let (weight, bias) = (get("weight")?, get("bias")?);
        if weight.dims() != [manifest.classes.len(), manifest.dimension]
            || bias.dims() != [manifest.classes.len()]
        {
            return Err(Error::Storage(format!(
                "head `{domain}`: tensor shapes do not match head.json"
            )));
        }
        Ok(Some(Head {
            manifest,
            weight,
            bias,
        }))
    }
}

fn read_manifest(path: &Path) -> Result<HeadManifest> {
    let text = std::fs::read_to_string(path).map_err(|err| Error::io("cannot read", path, err))?;
    serde_json::from_str(&text)
        .map_err(|err| Error::Storage(format!("{} is not a head manifest: {err}", path.display())))
}

/// Trains the softmax layer with full-batch AdamW from zero weights, which makes the result
/// the same from run to run.
fn fit(
    train: &[(Vec<f32>, String, bool)],
    classes: &[String],
    dimension: usize,
    class_of: &dyn Fn(&str) -> usize,
) -> Result<(Tensor, Tensor)> {
    let device = Device::Cpu;
    let data: Vec<f32> = train.iter().flat_map(|e| e.0.iter().copied()).collect();
    let x = Tensor::from_vec(data, (train.len(), dimension), &device)?;
    let targets: Vec<u32> = train.iter().map(|e| class_of(&e.1) as u32).collect();
    let y = Tensor::from_vec(targets, train.len(), &device)?;
    let weight = Var::zeros((classes.len(), dimension), DType::F32, &device)?;
    let bias = Var::zeros(classes.len(), DType::F32, &device)?;
    let params = ParamsAdamW {
        lr: 0.05,
        weight_decay: 1e-3,
        ..Default::default()
    };
    let mut optimizer = AdamW::new(vec![weight.clone(), bias.clone()], params)?;
    for _ in 0..STEPS {
        let logits = x.matmul(&weight.t()?)?.broadcast_add(bias.as_tensor())?;
        let loss = candle_nn::loss::cross_entropy(&logits, &y)?;
        optimizer.backward_step(&loss)?;
    }
    Ok((weight.as_tensor().clone(), bias.as_tensor().clone()))
}

fn safetensors_bytes(tensors: &[(&str, Tensor)]) -> Result<Vec<u8>> {
    let dir = tempfile::tempdir().map_err(|err| {
        Error::io(
            "cannot create a temporary folder in",
            std::env::temp_dir(),
            err,
        )
    })?;
    let path = dir.path().join("head.safetensors");
    let map: std::collections::HashMap<String, Tensor> = tensors
        .iter()
        .map(|(n, t)| ((*n).to_owned(), t.clone()))
        .collect();
    candle_core::safetensors::save(&map, &path)?;
    std::fs::read(&path).map_err(|err| Error::io("cannot read", &path, err))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domain_names_are_checked() {
        assert!(check_domain("material-type").is_ok());
        assert!(check_domain("../etc").is_err());
        assert!(check_domain("").is_err());
    }

    #[test]
    fn fit_separates_two_classes() {
        let train: Vec<(Vec<f32>, String, bool)> = (0..20)
            .map(|i| {
                let a = i % 2 == 0;
                (
                    vec![if a { 1.0 } else { 0.1 }, if a { 0.1 } else { 1.0 }],
                    if a { "a" } else { "b" }.to_owned(),
                    false,
                )
            })
            .collect();
        let classes = vec!["a".to_owned(), "b".to_owned()];
        let class_of = |l: &str| usize::from(l == "b");
        let (w, b) = fit(&train, &classes, 2, &class_of).unwrap();
        let scores = logits(&w, &b, &[1.0, 0.1]).unwrap();
        assert!(scores[0] > scores[1]);
        let scores = logits(&w, &b, &[0.1, 1.0]).unwrap();
        assert!(scores[1] > scores[0]);
    }
}
