//! Material recognition: which catalog materials and material types a photo shows.
//!
//! A photo is screened for quality, embedded, and compared with the catalog's images. The
//! nearest images give the top-k materials, and their material types vote for the class.
//! A softmax turns the vote into confidences, with a temperature fitted on held-out
//! catalog images ([`calibration`]). A text hint, when given, joins the material ranking.
//! [`Catalog::recognize_batch`] embeds several photos in one forward pass.

mod batch;
pub mod calibration;
mod heads;

use std::collections::HashMap;

use serde::Serialize;

use crate::catalog::{Catalog, Material};
use crate::error::{Error, Result};
use crate::image::QualityReport;
use crate::index::Hit;
use calibration::{Calibration, Sample};
pub use heads::{Head, HeadManifest, HeadSpec};

/// The domain whose head, when trained, gives the material-type confidences.
pub const MATERIAL_TYPE_DOMAIN: &str = "material-type";

/// Catalog images compared with each query.
const NEIGHBOURS: usize = 25;

/// Settings of one recognition.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RecognizeOptions {
    /// Materials returned.
    pub top_k: usize,
    /// Optional text describing the material, fused into the ranking.
    pub hint: Option<String>,
    /// Share of the text hint's similarity in the fused material score, in [0, 1].
    pub hint_weight: f32,
    /// Photos whose shorter side is below this many pixels are rejected.
    pub min_resolution: u32,
    /// Below this cosine similarity to the nearest catalog image the photo is `unknown`.
    /// On the sample catalog, the query photos of materials measure 0.41 or more and photos
    /// of a cat, a cup and a rocket 0.21 or less; 0.3 sits between them.
    pub unknown_threshold: f32,
}

impl Default for RecognizeOptions {
    fn default() -> Self {
        Self {
            top_k: 5,
            hint: None,
            hint_weight: 0.3,
            min_resolution: 64,
            unknown_threshold: 0.3,
        }
    }
}

impl RecognizeOptions {
    fn validate(&self) -> Result<()> {
        if self.top_k == 0 || self.top_k > 100 {
            return Err(Error::invalid(
                "top_k",
                format!("must be between 1 and 100, got {}", self.top_k),
            ));
        }
        if !(0.0..=1.0).contains(&self.hint_weight) {
            return Err(Error::invalid(
                "hint_weight",
                format!("must be in [0, 1], got {}", self.hint_weight),
            ));
        }
        if !(-1.0..=1.0).contains(&self.unknown_threshold) {
            return Err(Error::invalid(
                "unknown_threshold",
                format!("must be in [-1, 1], got {}", self.unknown_threshold),
            ));
        }
        Ok(())
    }
}

/// A catalog material that matches the photo.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MaterialMatch {
    /// The material id.
    pub id: String,
    /// The material name.
    pub name: String,
    /// The material type.
    pub material_type: String,
    /// Cosine similarity of the photo to the material's closest image, fused with the
    /// hint's text similarity when a hint was given.
    pub score: f32,
}

/// A material type with the calibrated probability that the photo shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ClassConfidence {
    /// The material type.
    pub material_type: String,
    /// Calibrated probability, in [0, 1].
    pub confidence: f32,
}

/// The result of recognizing one photo.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Recognition {
    /// The best-matching materials, best first.
    pub materials: Vec<MaterialMatch>,
    /// Every material type of the catalog, most probable first.
    pub classes: Vec<ClassConfidence>,
    /// Whether the photo is too far from every catalog image to name a material.
    pub unknown: bool,
    /// The source of `classes`: `head` (the `material-type` head) or `neighbours` (the
    /// calibrated vote of the nearest catalog images).
    pub classified_by: &'static str,
    /// Wall time of the recognition, in milliseconds. In a batch it is the time of the
    /// steps shared by the batch (the forward pass) plus this photo's own steps.
    pub processing_time_ms: f64,
    /// The photo's quality report; its reasons are informative, not a rejection.
    pub quality: QualityReport,
}

/// Class scores of one query: for each material type of the catalog, the similarity of
/// the nearest neighbour of that type, or the lowest neighbour similarity when none of
/// the neighbours has it.
pub(crate) fn class_scores(hits: &[(f32, String)], classes: &[String]) -> Vec<f32> {
    let floor = hits.iter().map(|h| h.0).fold(f32::INFINITY, f32::min);
    let floor = if floor.is_finite() { floor } else { 0.0 };
    classes
        .iter()
        .map(|class| {
            hits.iter()
                .filter(|h| &h.1 == class)
                .map(|h| h.0)
                .fold(floor, f32::max)
        })
        .collect()
}

/// Clamps a cosine similarity of unit vectors to [-1, 1]. Rounding in the dot product
/// gives values such as 1.0000001 for an exact match.
pub(crate) fn cosine(similarity: f32) -> f32 {
    similarity.clamp(-1.0, 1.0)
}

impl Catalog {
    /// Returns the material of each hit, in hit order, with the hit's similarity.
    pub(crate) fn neighbour_materials(&self, hits: &[Hit]) -> Result<Vec<(Material, f32)>> {
        let mut cache: HashMap<u64, Option<Material>> = HashMap::new();
        let mut out = Vec::new();
        for hit in hits {
            let material = match cache.get(&hit.id) {
                Some(material) => material.clone(),
                None => {
                    let material = self.storage().get_by_image_key(hit.id)?;
                    cache.insert(hit.id, material.clone());
                    material
                }
            };
            if let Some(material) = material {
                out.push((material, cosine(hit.score)));
            }
        }
        Ok(out)
    }

    /// Returns the catalog's material types in alphabetical order.
    pub fn material_types(&self) -> Result<Vec<String>> {
        let mut types: Vec<String> = self
            .storage()
            .all()?
            .into_iter()
            .map(|m| m.material_type)
            .collect();
        types.sort();
        types.dedup();
        Ok(types)
    }

    /// Fits the class-vote temperature on the catalog itself: each image is classified by
    /// its neighbours among the other materials' images (leave one material out), and the
    /// temperature that best explains the true types is kept in `calibration.json`.
    ///
    /// # Errors
    ///
    /// Returns storage errors.
    pub fn calibrate(&self) -> Result<Calibration> {
        let classes = self.material_types()?;
        let mut samples = Vec::new();
        for material in self.storage().all()? {
            for image in &material.images {
                let Some(vector) = self.image_index().get(image.key)? else {
                    continue;
                };
                let hits =
                    self.image_index()
                        .search(&vector, NEIGHBOURS + material.images.len(), None)?;
                let others: Vec<(f32, String)> = self
                    .neighbour_materials(&hits)?
                    .into_iter()
                    .filter(|(m, _)| m.key != material.key)
                    .take(NEIGHBOURS)
                    .map(|(m, s)| (s, m.material_type))
                    .collect();
                let Some(truth) = classes.iter().position(|c| *c == material.material_type) else {
                    continue;
                };
                samples.push(Sample {
                    scores: class_scores(&others, &classes),
                    truth,
                });
            }
        }
        let calibration = calibration::fit(&samples);
        let path = self.root().join("calibration.json");
        let text = serde_json::to_string_pretty(&calibration).unwrap_or_default();
        crate::catalog::write_atomically(&path, text.as_bytes())?;
        Ok(calibration)
    }

    /// Returns the stored calibration, or the default temperature before the first one.
    ///
    /// # Errors
    ///
    /// Returns [`Error::Storage`] when `calibration.json` exists but is unreadable.
    pub fn calibration(&self) -> Result<Calibration> {
        let path = self.root().join("calibration.json");
        match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text).map_err(|err| {
                Error::Storage(format!(
                    "{} is not a calibration file: {err}",
                    path.display()
                ))
            }),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(Calibration::default()),
            Err(err) => Err(Error::io("cannot read", &path, err)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosine_is_clamped() {
        assert_eq!(cosine(1.000_000_1), 1.0);
        assert_eq!(cosine(-1.000_000_1), -1.0);
        assert_eq!(cosine(0.5), 0.5);
    }

    #[test]
    fn class_scores_take_the_nearest_of_each_type() {
        let hits = vec![
            (0.9, "wood".to_owned()),
            (0.7, "stone".to_owned()),
            (0.8, "wood".to_owned()),
        ];
        let classes = vec!["metal".to_owned(), "stone".to_owned(), "wood".to_owned()];
        assert_eq!(class_scores(&hits, &classes), vec![0.7, 0.7, 0.9]);
        assert_eq!(class_scores(&[], &classes), vec![0.0, 0.0, 0.0]);
    }
}
