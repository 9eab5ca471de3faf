//! Hybrid catalog search: keyword relevance (BM25 on SQLite, `ts_rank_cd` on PostgreSQL),
//! text-embedding similarity and image similarity, fused by reciprocal rank.

use std::collections::HashMap;

use serde::Serialize;

use super::record::Material;
use super::storage::MaterialFilter;
use super::store::{Catalog, index_filter};
use crate::error::{Error, Result};
use crate::image::RgbImage;

/// Candidates each ranking contributes before fusion.
const CANDIDATES: usize = 200;

/// Largest page a search returns.
pub const MAX_TOP_K: usize = 1000;

/// How much each ranking counts in the fusion.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct FusionWeights {
    /// Weight of keyword relevance.
    pub keyword: f32,
    /// Weight of the query text's embedding similarity.
    pub text: f32,
    /// Weight of the query image's embedding similarity.
    pub image: f32,
    /// The rank constant `k` of reciprocal rank fusion, `1 / (k + rank)`.
    pub rank_constant: f32,
}

impl Default for FusionWeights {
    fn default() -> Self {
        // 60 is the rank constant that Cormack, Clarke and Büttcher found robust when
        // they introduced reciprocal rank fusion (SIGIR 2009).
        Self {
            keyword: 1.0,
            text: 1.0,
            image: 1.0,
            rank_constant: 60.0,
        }
    }
}

impl FusionWeights {
    /// Checks each weight, and that the signals a query uses (`text`, `image`) do not all
    /// weigh 0, which would give every result the score 0.
    fn validate(&self, text: bool, image: bool) -> Result<()> {
        for (name, value) in [
            ("keyword", self.keyword),
            ("text", self.text),
            ("image", self.image),
        ] {
            if !value.is_finite() || value < 0.0 {
                return Err(Error::invalid(
                    format!("weights.{name}"),
                    format!("must be finite and at least 0, got {value}"),
                ));
            }
        }
        if !self.rank_constant.is_finite() || self.rank_constant < 0.0 {
            return Err(Error::invalid(
                "weights.rankConstant",
                format!("must be finite and at least 0, got {}", self.rank_constant),
            ));
        }
        let mut used = Vec::new();
        if text {
            used.extend([("keyword", self.keyword), ("text", self.text)]);
        }
        if image {
            used.push(("image", self.image));
        }
        if !used.is_empty() && used.iter().all(|(_, weight)| *weight == 0.0) {
            let names: Vec<&str> = used.iter().map(|(name, _)| *name).collect();
            return Err(Error::invalid(
                "weights",
                format!(
                    "{} are all 0, so every result would score 0; give at least one of them \
                     a positive weight",
                    names.join(", ")
                ),
            ));
        }
        Ok(())
    }
}

/// A catalog query: text, an image, or both, with filters and a page.
#[derive(Debug, Clone, Default)]
pub struct SearchQuery {
    /// Words and meaning to look for.
    pub text: Option<String>,
    /// A photo to find similar materials to.
    pub image: Option<RgbImage>,
    /// Only materials that pass this filter.
    pub filter: MaterialFilter,
    /// Results per page.
    pub top_k: usize,
    /// Results skipped before the page.
    pub offset: usize,
    /// Fusion weights.
    pub weights: FusionWeights,
}

/// One search result.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SearchHit {
    /// The material id.
    pub id: String,
    /// The material name.
    pub name: String,
    /// The material type.
    pub material_type: String,
    /// The fused relevance; only its order is meaningful.
    pub score: f32,
}

impl Catalog {
    /// Searches the catalog by text, by image, or both.
    ///
    /// Each signal ranks up to 200 candidates. The text gives two rankings: keyword
    /// relevance over name, description, tags and type (BM25 on SQLite, `ts_rank_cd` on
    /// PostgreSQL), and the cosine similarity of its embedding to each material's text
    /// embedding. On PostgreSQL the vector rankings are approximate (HNSW). The image ranks materials by the best cosine similarity
    /// to their images. Weighted reciprocal rank fusion merges the rankings.
    ///
    /// # Errors
    ///
    /// Returns [`Error::InvalidInput`] when the query has neither text nor image, or a
    /// page or weight is out of range.
    pub fn search(&self, query: &SearchQuery) -> Result<Vec<SearchHit>> {
        let text = query
            .text
            .as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty());
        if text.is_none() && query.image.is_none() {
            return Err(Error::invalid("query", "give a text, an image, or both"));
        }
        if query.top_k == 0 || query.top_k > MAX_TOP_K {
            return Err(Error::invalid(
                "top_k",
                format!("must be between 1 and {MAX_TOP_K}, got {}", query.top_k),
            ));
        }
        if query.offset.checked_add(query.top_k).is_none() {
            return Err(Error::invalid(
                "offset",
                format!("{} is too large to page to", query.offset),
            ));
        }
        query
            .weights
            .validate(text.is_some(), query.image.is_some())?;
        let filter = index_filter(&query.filter);

        let mut rankings: Vec<(f32, Vec<u64>)> = Vec::new();
        if let Some(text) = text {
            let keyword: Vec<u64> = self
                .storage()
                .keyword_search(text, &query.filter, CANDIDATES)?
                .into_iter()
                .map(|(key, _)| key)
                .collect();
            rankings.push((query.weights.keyword, keyword));
            if !self.text_index().is_empty()? {
                let vector = self.text_embedder()?.embed(&[text])?;
                let hits =
                    self.text_index()
                        .search(vector.as_slice(), CANDIDATES, filter.as_ref())?;
                rankings.push((query.weights.text, hits.into_iter().map(|h| h.id).collect()));
            }
        }
        if let Some(image) = &query.image
            && !self.image_index().is_empty()?
        {
            let vector = self.image_embedder()?.embed(std::slice::from_ref(image))?;
            let hits = self
                .image_index()
                .search(vector.as_slice(), CANDIDATES, filter.as_ref())?;
            let image_keys: Vec<u64> = hits.iter().map(|hit| hit.id).collect();
            let mut materials = Vec::new();
            for (_, material) in self.storage().image_owners(&image_keys)? {
                if !materials.contains(&material) {
                    materials.push(material);
                }
            }
            rankings.push((query.weights.image, materials));
        }

        let mut fused: HashMap<u64, f32> = HashMap::new();
        for (weight, ranking) in &rankings {
            for (rank, key) in ranking.iter().enumerate() {
                *fused.entry(*key).or_default() +=
                    weight / (query.weights.rank_constant + rank as f32 + 1.0);
            }
        }
        let mut ordered: Vec<(u64, f32)> = fused.into_iter().collect();
        ordered.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));

        let mut hits = Vec::new();
        for (key, score) in ordered {
            if hits.len() >= query.offset + query.top_k {
                break;
            }
            let Some(material) = self.storage().get_by_key(key)? else {
                continue;
            };
            // Every ranking was filtered in the database; a material changed since then
            // may no longer pass.
            if !query.filter.matches(&material) {
                continue;
            }
            hits.push(hit(&material, score));
        }
        Ok(hits
            .into_iter()
            .skip(query.offset)
            .take(query.top_k)
            .collect())
    }
}

/// A page of search results, the shape of `kai search --json`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SearchResults {
    /// The results, best first.
    pub results: Vec<SearchHit>,
}

fn hit(material: &Material, score: f32) -> SearchHit {
    SearchHit {
        id: material.id.clone(),
        name: material.name.clone(),
        material_type: material.material_type.clone(),
        score,
    }
}
