//! Recognition of a batch of photos: the photos go through the image model in one forward
//! pass, then each photo's neighbours, materials and classes are found on their own.
//! [`Catalog::recognize`] is a batch of one.

use std::borrow::Cow;
use std::time::{Duration, Instant};

use super::calibration::softmax;
use super::{
    ClassConfidence, Head, MATERIAL_TYPE_DOMAIN, MaterialMatch, NEIGHBOURS, Recognition,
    RecognizeOptions, class_scores, cosine,
};
use crate::catalog::{Catalog, Material};
use crate::error::{Error, Result};
use crate::image::{QualityThresholds, RgbImage, assess};

/// The source of a batch's class confidences, read once per batch.
enum Classifier {
    /// The trained `material-type` head.
    Head(Head),
    /// The calibrated vote of the nearest catalog images over the catalog's types.
    Neighbours {
        classes: Vec<String>,
        temperature: f32,
    },
}

/// The inputs every photo of a batch shares: the options, the hint's vector and the
/// classifier.
struct Shared<'a> {
    options: &'a RecognizeOptions,
    hint: Option<Vec<f32>>,
    classifier: Classifier,
}

impl Catalog {
    /// Recognizes the material in `image`.
    ///
    /// # Errors
    ///
    /// Returns [`Error::InvalidInput`] for a photo below the minimum resolution or invalid
    /// options, and [`Error::NotFound`] when the catalog has no images to compare with.
    pub fn recognize(&self, image: &RgbImage, options: &RecognizeOptions) -> Result<Recognition> {
        self.recognize_batch(std::slice::from_ref(image), options)?
            .pop()
            .unwrap_or_else(|| {
                Err(Error::Internal(
                    "the recognition of one photo returned no result".into(),
                ))
            })
    }

    /// Recognizes the material in each of `images` with the same options, embedding the
    /// photos in one forward pass (in chunks of the image model's batch size).
    ///
    /// The result has one entry per image, in input order, each equal to what
    /// [`Catalog::recognize`] returns for that image alone, within float rounding. A photo
    /// below the minimum resolution gets its own error and the others are still
    /// recognized.
    ///
    /// # Errors
    ///
    /// The outer error fails the whole batch: [`Error::InvalidInput`] for invalid options,
    /// [`Error::NotFound`] when the catalog has no images, and model or storage errors.
    pub fn recognize_batch(
        &self,
        images: &[RgbImage],
        options: &RecognizeOptions,
    ) -> Result<Vec<Result<Recognition>>> {
        options.validate()?;
        // Models load before the clock starts, so the processing time covers the
        // recognition only.
        let image_embedder = self.image_embedder()?;
        let text_embedder = match options.hint {
            Some(_) => Some(self.text_embedder()?),
            None => None,
        };
        if images.is_empty() {
            return Ok(Vec::new());
        }
        let started = Instant::now();
        let screened: Vec<Result<()>> = images
            .iter()
            .map(|image| check_resolution(image, options))
            .collect();
        // A batch whose photos all failed the screening reports their errors, as a single
        // photo below the minimum resolution does, even from an empty catalog.
        if screened.iter().any(Result::is_ok) && self.image_index().is_empty()? {
            return Err(Error::NotFound {
                what: "catalog image",
                name: self.root().display().to_string(),
                hint: " (the catalog has no images; import one with `kai import DIR`)".into(),
            });
        }

        // Only the photos that passed the screening go through the model. The slice is
        // copied only when some photo failed it.
        let accepted: Cow<'_, [RgbImage]> = if screened.iter().all(Result::is_ok) {
            Cow::Borrowed(images)
        } else {
            Cow::Owned(
                images
                    .iter()
                    .zip(&screened)
                    .filter(|(_, screen)| screen.is_ok())
                    .map(|(image, _)| image.clone())
                    .collect(),
            )
        };
        let vectors = if accepted.is_empty() {
            None
        } else {
            Some(image_embedder.embed(&accepted)?)
        };
        let hint = match (trimmed_hint(options), &text_embedder) {
            (Some(hint), Some(embedder)) => Some(embedder.embed(&[hint])?.into_vec()),
            _ => None,
        };
        let shared = Shared {
            options,
            hint,
            classifier: self.classifier()?,
        };
        let shared_time = started.elapsed();

        let mut next_vector = 0;
        let mut results = Vec::with_capacity(images.len());
        for (image, screen) in images.iter().zip(screened) {
            if let Err(err) = screen {
                results.push(Err(err));
                continue;
            }
            let vector = vectors
                .as_ref()
                .and_then(|vectors| vectors.get(next_vector))
                .ok_or_else(|| Error::Internal("an image vector of the batch is missing".into()))?;
            next_vector += 1;
            results.push(self.recognize_embedded(image, vector, &shared, shared_time));
        }
        Ok(results)
    }

    /// Recognizes one photo of a batch from its image vector.
    fn recognize_embedded(
        &self,
        image: &RgbImage,
        vector: &[f32],
        shared: &Shared<'_>,
        shared_time: Duration,
    ) -> Result<Recognition> {
        let started = Instant::now();
        let quality = assess(image, &QualityThresholds::default())?;
        let hits = self.image_index().search(vector, NEIGHBOURS, None)?;
        let neighbours = self.neighbour_materials(&hits)?;
        let best = self.rank_materials(&neighbours, shared)?;
        let nearest = neighbours.first().map_or(-1.0, |n| n.1);
        let (classes, classified_by) = classify(vector, &neighbours, &shared.classifier)?;
        let options = shared.options;
        Ok(Recognition {
            materials: best
                .into_iter()
                .take(options.top_k)
                .map(|(m, score)| MaterialMatch {
                    id: m.id,
                    name: m.name,
                    material_type: m.material_type,
                    score,
                })
                .collect(),
            classes,
            unknown: nearest < options.unknown_threshold,
            classified_by,
            processing_time_ms: (shared_time + started.elapsed()).as_secs_f64() * 1e3,
            quality,
        })
    }

    /// Returns each neighbour material once with its best similarity, fused with the
    /// hint's text similarity when there is a hint, best first.
    fn rank_materials(
        &self,
        neighbours: &[(Material, f32)],
        shared: &Shared<'_>,
    ) -> Result<Vec<(Material, f32)>> {
        let mut best: Vec<(Material, f32)> = Vec::new();
        for (material, score) in neighbours {
            match best.iter_mut().find(|(m, _)| m.key == material.key) {
                Some(entry) => entry.1 = entry.1.max(*score),
                None => best.push((material.clone(), *score)),
            }
        }
        if let Some(query) = &shared.hint {
            let weight = shared.options.hint_weight;
            for (material, score) in &mut best {
                if let Some(text) = self.text_index().get(material.key)? {
                    let similarity = cosine(text.iter().zip(query).map(|(a, b)| a * b).sum());
                    *score = (1.0 - weight) * *score + weight * similarity;
                }
            }
        }
        best.sort_by(|a, b| b.1.total_cmp(&a.1));
        Ok(best)
    }

    /// Reads the `material-type` head, or else the catalog's types and calibration.
    fn classifier(&self) -> Result<Classifier> {
        Ok(match self.head(MATERIAL_TYPE_DOMAIN)? {
            Some(head) => Classifier::Head(head),
            None => Classifier::Neighbours {
                classes: self.material_types()?,
                temperature: self.calibration()?.temperature,
            },
        })
    }
}

/// Returns the material-type confidences of one photo, most probable first, and their
/// source (`head` or `neighbours`).
fn classify(
    vector: &[f32],
    neighbours: &[(Material, f32)],
    classifier: &Classifier,
) -> Result<(Vec<ClassConfidence>, &'static str)> {
    let (classes, confidences, classified_by) = match classifier {
        Classifier::Head(head) => {
            let probabilities = head.classify(vector)?;
            (&head.manifest.classes, probabilities, "head")
        }
        Classifier::Neighbours {
            classes,
            temperature,
        } => {
            let typed: Vec<(f32, String)> = neighbours
                .iter()
                .map(|(m, s)| (*s, m.material_type.clone()))
                .collect();
            let confidences = softmax(&class_scores(&typed, classes), *temperature);
            (classes, confidences, "neighbours")
        }
    };
    let mut classes: Vec<ClassConfidence> = classes
        .iter()
        .zip(confidences)
        .map(|(material_type, confidence)| ClassConfidence {
            material_type: material_type.clone(),
            confidence,
        })
        .collect();
    classes.sort_by(|a, b| b.confidence.total_cmp(&a.confidence));
    Ok((classes, classified_by))
}

/// Rejects a photo whose shorter side is below the options' minimum resolution.
fn check_resolution(image: &RgbImage, options: &RecognizeOptions) -> Result<()> {
    if image.width().min(image.height()) < options.min_resolution {
        return Err(Error::invalid(
            "image",
            format!(
                "is {}×{} pixels; recognition needs at least {} pixels on the shorter side",
                image.width(),
                image.height(),
                options.min_resolution
            ),
        ));
    }
    Ok(())
}

/// Returns the hint without surrounding whitespace, or `None` when nothing is left.
fn trimmed_hint(options: &RecognizeOptions) -> Option<&str> {
    options
        .hint
        .as_deref()
        .map(str::trim)
        .filter(|hint| !hint.is_empty())
}
