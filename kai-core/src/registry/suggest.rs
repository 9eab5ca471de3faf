//! Suggestions: the set version that performed best on materials similar to the one at
//! hand, with the results that support it.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use super::set::VersionRef;
use super::{Registry, Resolution};
use crate::catalog::Catalog;
use crate::error::{Error, Result};

/// Neighbours fetched by the first similarity search; later searches fetch four times
/// more while the farthest neighbour is still above the threshold.
const FIRST_NEIGHBOURS: usize = 64;
/// Evidence items a suggestion carries, most similar first.
const MAX_EVIDENCE: usize = 50;

/// The material to suggest parameters for.
#[derive(Debug, Clone, PartialEq)]
pub enum SuggestTarget {
    /// A catalog material, compared by its images (or its text when it has none).
    Material(String),
    /// An embedding: an image embedding of the catalog's image model, or a text
    /// embedding of its text model, distinguished by dimension.
    Embedding(Vec<f32>),
}

/// The metric that ranks set versions, and its direction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SuggestOptions {
    /// The metric that ranks set versions.
    pub metric: String,
    /// Whether a higher metric is better (accuracy) or worse (error).
    pub higher_is_better: bool,
}

impl Default for SuggestOptions {
    fn default() -> Self {
        Self {
            metric: "score".to_owned(),
            higher_is_better: true,
        }
    }
}

/// One result that supports a suggestion.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Evidence {
    /// The similar material.
    pub material_id: String,
    /// Its cosine similarity to the target.
    pub similarity: f32,
    /// The set version whose result this is.
    pub set: VersionRef,
    /// The metric's value in the result.
    pub value: f64,
}

/// A suggested set version, or the default set when no evidence qualified.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Suggestion {
    /// The suggested set version.
    pub set: VersionRef,
    /// The metric that ranked the versions.
    pub metric: String,
    /// The similarity-weighted mean of the metric over the evidence for the suggested
    /// version; `None` for the fallback.
    pub score: Option<f64>,
    /// Whether no similar material had results, so the default set was resolved.
    pub fallback: bool,
    /// The reason this set was chosen.
    pub reason: String,
    /// The results behind the suggestion (for every candidate version), most similar
    /// first, at most 50.
    pub evidence: Vec<Evidence>,
    /// The values of the suggested version.
    #[cfg_attr(
        feature = "openapi",
        schema(value_type = std::collections::BTreeMap<String, super::ParamValue>)
    )]
    pub values: super::Values,
}

impl Registry {
    /// Suggests a set version for `target`: among catalog materials whose cosine
    /// similarity to it is at least `SIMILARITY_THRESHOLD` and that have results with
    /// `options.metric`, the version with the best similarity-weighted mean metric wins.
    /// Without such evidence the default set is resolved for the target.
    ///
    /// # Errors
    ///
    /// Returns [`Error::NotFound`] for an unknown material, and
    /// [`Error::InvalidInput`] for an embedding whose dimension matches neither vector
    /// space or that contains a non-finite value.
    pub fn suggest(
        &self,
        catalog: &Catalog,
        target: &SuggestTarget,
        options: &SuggestOptions,
    ) -> Result<Suggestion> {
        super::check_name("metric", &options.metric)?;
        let neighbours = similar_materials(catalog, target, self.settings.similarity_threshold)?;
        let ids: Vec<String> = neighbours.keys().cloned().collect();
        let mut evidence: Vec<Evidence> = Vec::new();
        if !ids.is_empty() {
            for result in self.storage.results_for(&ids)? {
                let Some(value) = result.metrics.get(&options.metric) else {
                    continue;
                };
                evidence.push(Evidence {
                    similarity: neighbours[&result.material_id],
                    material_id: result.material_id,
                    set: VersionRef {
                        name: result.set,
                        scope: result.scope,
                        version: result.version,
                    },
                    value: *value,
                });
            }
        }
        let mut totals: BTreeMap<&VersionRef, (f64, f64, usize)> = BTreeMap::new();
        for item in &evidence {
            let weight = f64::from(item.similarity.max(f32::EPSILON));
            let entry = totals.entry(&item.set).or_default();
            entry.0 += weight * item.value;
            entry.1 += weight;
            entry.2 += 1;
        }
        let sign = if options.higher_is_better { 1.0 } else { -1.0 };
        let best = totals
            .iter()
            .map(|(set, (sum, weights, count))| (*set, sum / weights, *count))
            .max_by(|a, b| {
                (sign * a.1)
                    .total_cmp(&(sign * b.1))
                    .then(a.2.cmp(&b.2))
                    .then(b.0.cmp(a.0))
            })
            .map(|(set, score, count)| (set.clone(), score, count));
        evidence.sort_by(|a, b| {
            b.similarity
                .total_cmp(&a.similarity)
                .then(a.material_id.cmp(&b.material_id))
        });
        evidence.truncate(MAX_EVIDENCE);
        let threshold = self.settings.similarity_threshold;
        match best {
            Some((set, score, count)) => {
                let mut values = self
                    .get(&set.name, set.scope.as_deref(), Some(set.version))?
                    .values;
                self.fill_defaults(&mut values)?;
                Ok(Suggestion {
                    reason: format!(
                        "best mean {} ({score:.4}) over {count} results on materials at least \
                         {threshold} similar",
                        options.metric
                    ),
                    set,
                    metric: options.metric.clone(),
                    score: Some(score),
                    fallback: false,
                    evidence,
                    values,
                })
            }
            None => {
                let resolution = match target {
                    SuggestTarget::Material(id) => self.resolve_for_material(catalog, id, None)?,
                    SuggestTarget::Embedding(_) => self.resolve(None, &[])?,
                };
                Ok(fallback(resolution, &options.metric, threshold))
            }
        }
    }
}

fn fallback(resolution: Resolution, metric: &str, threshold: f32) -> Suggestion {
    Suggestion {
        set: VersionRef {
            name: resolution.name,
            scope: resolution.scope,
            version: resolution.version,
        },
        metric: metric.to_owned(),
        score: None,
        fallback: true,
        reason: format!(
            "no other material at least {threshold} similar has a result with metric \
             `{metric}`; using the default set"
        ),
        evidence: Vec::new(),
        values: resolution.values,
    }
}

/// The vector space a similarity search runs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Space {
    Images,
    Texts,
}

/// Returns the materials at least `threshold` similar to `target`, with their
/// similarity (the best over their images in the image space), excluding the target.
fn similar_materials(
    catalog: &Catalog,
    target: &SuggestTarget,
    threshold: f32,
) -> Result<HashMap<String, f32>> {
    let (space, query, exclude) = query_of(catalog, target)?;
    let index = match space {
        Space::Images => catalog.image_index(),
        Space::Texts => catalog.text_index(),
    };
    let total = index.len()?;
    let mut k = FIRST_NEIGHBOURS.min(total);
    let hits = loop {
        let hits = index.search(&query, k.max(1), None)?;
        let exhausted = hits.len() < k || k >= total;
        let below = hits.last().is_none_or(|h| h.score < threshold);
        if exhausted || below {
            break hits;
        }
        k = (k * 4).min(total);
    };
    let hits: Vec<_> = hits.into_iter().filter(|h| h.score >= threshold).collect();
    let keys: Vec<u64> = hits.iter().map(|h| h.id).collect();
    // Image hits map to their materials first; one query per batch, not per hit.
    let material_keys: HashMap<u64, u64> = match space {
        Space::Images => catalog.storage().image_owners(&keys)?.into_iter().collect(),
        Space::Texts => keys.iter().map(|k| (*k, *k)).collect(),
    };
    let mut wanted: Vec<u64> = material_keys.values().copied().collect();
    wanted.sort_unstable();
    wanted.dedup();
    let ids: HashMap<u64, String> = catalog
        .storage()
        .material_ids(&wanted)?
        .into_iter()
        .collect();
    let mut materials: HashMap<String, f32> = HashMap::new();
    for hit in hits {
        let Some(id) = material_keys.get(&hit.id).and_then(|key| ids.get(key)) else {
            continue;
        };
        if Some(id) == exclude.as_ref() {
            continue;
        }
        let entry = materials.entry(id.clone()).or_insert(hit.score);
        *entry = entry.max(hit.score);
    }
    Ok(materials)
}

/// Returns the space, the query vector and the material to leave out for `target`.
fn query_of(
    catalog: &Catalog,
    target: &SuggestTarget,
) -> Result<(Space, Vec<f32>, Option<String>)> {
    match target {
        SuggestTarget::Material(id) => {
            let material = catalog.get(id)?.ok_or_else(|| Error::NotFound {
                what: "material",
                name: id.clone(),
                hint: String::new(),
            })?;
            let mut vectors = Vec::new();
            for image in &material.images {
                if let Some(vector) = catalog.image_index().get(image.key)? {
                    vectors.push(vector);
                }
            }
            if let Some(mean) = unit_mean(&vectors) {
                return Ok((Space::Images, mean, Some(material.id)));
            }
            let text = catalog.text_index().get(material.key)?.ok_or_else(|| {
                Error::Storage(format!(
                    "material {id} has no stored vectors; run `kai reindex`"
                ))
            })?;
            Ok((Space::Texts, text, Some(material.id)))
        }
        SuggestTarget::Embedding(vector) => {
            if let Some((i, v)) = vector.iter().enumerate().find(|(_, v)| !v.is_finite()) {
                return Err(Error::invalid(
                    "embedding",
                    format!("component {i} is {v}, not a finite number"),
                ));
            }
            let image = catalog.image_index().dimension()?;
            let text = catalog.text_index().dimension()?;
            let space = if Some(vector.len()) == image {
                Space::Images
            } else if Some(vector.len()) == text {
                Space::Texts
            } else {
                let show =
                    |d: Option<usize>| d.map_or_else(|| "none yet".to_owned(), |d| d.to_string());
                return Err(Error::invalid(
                    "embedding",
                    format!(
                        "has {} dimensions; expected {} (image model) or {} (text model)",
                        vector.len(),
                        show(image),
                        show(text)
                    ),
                ));
            };
            Ok((space, vector.clone(), None))
        }
    }
}

/// Returns the mean of `vectors` scaled to unit length, or `None` for no vectors.
fn unit_mean(vectors: &[Vec<f32>]) -> Option<Vec<f32>> {
    let first = vectors.first()?;
    let mut mean = vec![0.0f32; first.len()];
    for vector in vectors {
        for (m, v) in mean.iter_mut().zip(vector) {
            *m += v;
        }
    }
    let norm = mean.iter().map(|v| v * v).sum::<f32>().sqrt();
    if norm > 0.0 {
        mean.iter_mut().for_each(|v| *v /= norm);
    }
    Some(mean)
}
