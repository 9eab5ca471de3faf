//! Vector index: exact and approximate (HNSW) nearest-neighbour search over `f32`
//! vectors, with metadata filters and a checksummed file format.
//!
//! The catalog keeps one [`VectorIndex`] per vector space, that is per embedding model.
//! [`VectorIndex::model`] records which model produced the vectors.
//!
//! ```
//! use kai_core::index::{Filter, IndexConfig, Metadata, Metric, VectorIndex};
//!
//! let mut index = VectorIndex::new(3, Metric::Cosine, IndexConfig::default())?
//!     .with_model("all-minilm-l6-v2")?;
//! let wood = Metadata { material_type: Some("wood".into()), ..Metadata::default() };
//! index.upsert(1, &[1.0, 0.0, 0.0], wood.clone())?;
//! index.upsert(2, &[0.0, 1.0, 0.0], wood)?;
//! index.upsert(3, &[0.9, 0.1, 0.0], Metadata::default())?;
//!
//! let hits = index.search(&[1.0, 0.05, 0.0], 2, None)?;
//! assert_eq!(hits[0].id, 1);
//! let only_wood = Filter { material_type: Some("wood".into()), ..Filter::default() };
//! let hits = index.search(&[1.0, 0.05, 0.0], 2, Some(&only_wood))?;
//! assert_eq!(hits.iter().map(|hit| hit.id).collect::<Vec<_>>(), [1, 2]);
//! # Ok::<(), kai_core::Error>(())
//! ```
//!
//! # Scores
//!
//! A [`Hit`]'s score is higher for a better match under every metric: the cosine
//! similarity for [`Metric::Cosine`], the dot product for [`Metric::InnerProduct`] and the
//! negated squared Euclidean distance for [`Metric::L2`]. Equal scores are ordered by
//! insertion, older first.
//!
//! # Filtered search
//!
//! On an HNSW index, a filtered search walks the graph through every vector but admits
//! only matching ones to the results, so it keeps expanding until it has `ef_search`
//! matches. The fewer vectors match, the more of the graph that walk visits, so when a
//! filter can match at most `c` of the `n` live vectors and `c² < n · ef_search · 2m`,
//! the search instead compares the query with each matching vector, exactly. Both sides
//! estimate distance computations: the walk visits about `ef_search · n / c` vectors with
//! up to `2m` links each, the scan computes `c` distances. `c` is an upper bound from
//! per-value counts: the smallest count among the filter's conditions.
//!
//! # Speed
//!
//! The distance kernels are portable Rust that the compiler vectorises for the build
//! target, which for x86-64 is 4-wide SSE2 unless the build enables more. With
//! `RUSTFLAGS="-C target-cpu=native"` on an AVX-512 machine, `bench-vector-search` ran
//! HNSW searches 10 to 15 % faster and builds 10 % faster (see `benches/RESULTS.md`).
//!
//! # Removal
//!
//! Removing or replacing a vector leaves a tombstone: under HNSW the graph still routes
//! through it. When tombstones exceed [`IndexConfig::max_deleted_fraction`] of the
//! vectors, the index rebuilds itself from the live vectors ([`VectorIndex::compact`]),
//! which under HNSW costs as much as inserting them all again.

mod config;
mod exact;
mod filter;
mod hnsw;
mod matmul;
mod metric;
mod persist;
mod store;
mod topk;
mod vectors;

use std::collections::HashSet;
use std::fmt;
use std::path::Path;
use std::time::Instant;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use filter::CompiledFilter;
use hnsw::HnswGraph;
use store::VectorStore;
use topk::Neighbor;

pub use config::{HnswConfig, IndexConfig, IndexKind, MAX_EF, MAX_M};
pub use filter::{Filter, MAX_METADATA_STRING_BYTES, MAX_TAGS, Metadata};
pub use metric::Metric;
pub use persist::FORMAT_VERSION;
pub use store::MAX_VECTORS;
pub use vectors::MAX_DIMENSION;

/// The maximum `k` of a search.
pub const MAX_K: usize = 100_000;

/// The maximum length of a model name, in bytes.
pub const MAX_MODEL_BYTES: usize = 1024;

/// One search result.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Hit {
    /// The id given to [`VectorIndex::upsert`].
    pub id: u64,
    /// The match quality; higher is better (see the module documentation).
    pub score: f32,
}

/// A vector in the index with its metadata, as [`VectorIndex::get`] returns it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredVector<'a> {
    /// The stored components; unit length under [`Metric::Cosine`].
    pub vector: &'a [f32],
    /// The metadata given at insertion.
    pub metadata: Metadata,
}

/// Nearest-neighbour search over vectors of one dimension, compared with one metric.
pub struct VectorIndex {
    dimension: usize,
    metric: Metric,
    config: IndexConfig,
    model: String,
    store: VectorStore,
    graph: Option<HnswGraph>,
}

/// The execution plan of one search, chosen after the inputs are checked.
enum Plan {
    /// No live vector can match.
    Empty,
    Exact(Option<CompiledFilter>),
    Graph(Option<CompiledFilter>),
}

impl VectorIndex {
    /// Creates an empty index for vectors of `dimension` components.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] when `dimension` is 0 or above [`MAX_DIMENSION`], or when a
    /// parameter of `config` is out of range.
    pub fn new(dimension: usize, metric: Metric, config: IndexConfig) -> Result<Self> {
        vectors::check_dimension(dimension)?;
        config.validate()?;
        Ok(Self::from_parts(
            dimension,
            metric,
            config,
            String::new(),
            VectorStore::new(dimension),
            config.hnsw_config().map(HnswGraph::new),
        ))
    }

    fn from_parts(
        dimension: usize,
        metric: Metric,
        config: IndexConfig,
        model: String,
        store: VectorStore,
        graph: Option<HnswGraph>,
    ) -> Self {
        Self {
            dimension,
            metric,
            config,
            model,
            store,
            graph,
        }
    }

    /// Records `model` as the embedding model that produced the vectors. The index file
    /// keeps it.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] when the name is longer than [`MAX_MODEL_BYTES`].
    pub fn with_model(mut self, model: impl Into<String>) -> Result<Self> {
        let model = model.into();
        if model.len() > MAX_MODEL_BYTES {
            return Err(Error::invalid(
                "model",
                format!(
                    "the name is {} bytes long; the maximum is {MAX_MODEL_BYTES}",
                    model.len()
                ),
            ));
        }
        self.model = model;
        Ok(self)
    }

    /// Returns the embedding model recorded with [`VectorIndex::with_model`], or an empty
    /// string.
    pub fn model(&self) -> &str {
        &self.model
    }

    pub fn dimension(&self) -> usize {
        self.dimension
    }

    pub fn metric(&self) -> Metric {
        self.metric
    }

    pub fn config(&self) -> &IndexConfig {
        &self.config
    }

    /// Returns the number of live vectors.
    pub fn len(&self) -> usize {
        self.store.live_count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Returns the number of removed or replaced vectors still held as tombstones.
    pub fn deleted_count(&self) -> usize {
        self.store.deleted_count()
    }

    pub fn contains(&self, id: u64) -> bool {
        self.store.slot_of(id).is_some()
    }

    /// Returns the ids of the live vectors, in insertion order.
    pub fn ids(&self) -> impl Iterator<Item = u64> + '_ {
        self.store.live_ids()
    }

    /// Returns the vector stored under `id` and its metadata.
    pub fn get(&self, id: u64) -> Option<StoredVector<'_>> {
        let slot = self.store.slot_of(id)?;
        Some(StoredVector {
            vector: self.store.vector(slot),
            metadata: self.store.metadata().decode(slot),
        })
    }

    /// Returns an estimate of the memory used by vectors, ids, metadata and links, in bytes.
    pub fn memory_bytes(&self) -> usize {
        self.store.memory_bytes() + self.graph.as_ref().map_or(0, HnswGraph::memory_bytes)
    }

    /// Returns the search width of an HNSW index, or `None` for an exact index.
    pub fn ef_search(&self) -> Option<usize> {
        self.config.hnsw_config().map(|hnsw| hnsw.ef_search)
    }

    /// Sets the search width of an HNSW index: higher raises recall and costs time.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] when `ef_search` is 0 or above [`MAX_EF`], or when the index
    /// is exact.
    pub fn set_ef_search(&mut self, ef_search: usize) -> Result<()> {
        config::validate_ef_search(ef_search)?;
        match &mut self.config.kind {
            IndexKind::Hnsw(hnsw) => {
                hnsw.ef_search = ef_search;
                Ok(())
            }
            IndexKind::Exact => Err(Error::invalid(
                "ef_search",
                "applies to HNSW indexes only, and this index is exact",
            )),
        }
    }

    /// Inserts `vector` under `id`, or replaces the vector and metadata stored under it.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] when the vector's length differs from the dimension, a
    /// component is NaN or infinite, the vector is zero under [`Metric::Cosine`], the
    /// metadata exceeds [`MAX_TAGS`] or [`MAX_METADATA_STRING_BYTES`], or the index has
    /// [`MAX_VECTORS`] slots. The index is unchanged then.
    pub fn upsert(&mut self, id: u64, vector: &[f32], metadata: Metadata) -> Result<()> {
        let vector = vectors::prepare(self.metric, self.dimension, "vector", vector)?;
        metadata.validate("metadata")?;
        self.check_capacity(1)?;

        self.store.remove(id);
        let slot = self.store.push(id, &vector, &metadata);
        if let Some(graph) = &mut self.graph {
            graph.insert(&self.store, self.metric, slot..slot + 1);
        }
        self.compact_if_needed();
        Ok(())
    }

    /// Inserts or replaces many vectors at once. Under HNSW the graph links them in
    /// parallel. `vectors` has one row per id, row-major. `metadata` is `None` for empty
    /// metadata or has one entry per id.
    ///
    /// # Errors
    ///
    /// As [`VectorIndex::upsert`], naming the row, and also when the counts of ids, rows
    /// and metadata differ or an id appears twice. Nothing is inserted then.
    pub fn upsert_batch(
        &mut self,
        ids: &[u64],
        vectors: &[f32],
        metadata: Option<&[Metadata]>,
    ) -> Result<()> {
        let rows = vectors::prepare_rows(self.metric, self.dimension, "vectors", vectors)?;
        let row_count = rows.len() / self.dimension;
        if ids.len() != row_count {
            return Err(Error::invalid(
                "ids",
                format!("has {} ids for {row_count} vector rows", ids.len()),
            ));
        }
        if let Some(metadata) = metadata {
            if metadata.len() != ids.len() {
                return Err(Error::invalid(
                    "metadata",
                    format!("has {} entries for {} ids", metadata.len(), ids.len()),
                ));
            }
            for (row, entry) in metadata.iter().enumerate() {
                entry.validate(&format!("metadata[{row}]"))?;
            }
        }
        let mut seen = HashSet::with_capacity(ids.len());
        if let Some(id) = ids.iter().find(|&&id| !seen.insert(id)) {
            return Err(Error::invalid(
                "ids",
                format!("id {id} appears more than once in one batch"),
            ));
        }
        self.check_capacity(ids.len())?;

        let empty = Metadata::default();
        let first = self.store.slot_count() as u32;
        for (row, (&id, vector)) in ids
            .iter()
            .zip(rows.chunks_exact(self.dimension))
            .enumerate()
        {
            self.store.remove(id);
            let entry = metadata.map_or(&empty, |metadata| &metadata[row]);
            self.store.push(id, vector, entry);
        }
        let end = self.store.slot_count() as u32;
        if let Some(graph) = &mut self.graph {
            graph.insert(&self.store, self.metric, first..end);
        }
        self.compact_if_needed();
        Ok(())
    }

    /// Removes the vector stored under `id` and returns whether there was one.
    pub fn remove(&mut self, id: u64) -> bool {
        let removed = self.store.remove(id).is_some();
        if removed {
            self.compact_if_needed();
        }
        removed
    }

    /// Rebuilds the index from its live vectors, dropping tombstones; under HNSW this
    /// relinks every vector. Does nothing when there is no tombstone.
    pub fn compact(&mut self) {
        if self.store.deleted_count() == 0 {
            return;
        }
        let started = Instant::now();
        let removed = self.store.deleted_count();
        self.store = self.store.compacted();
        if let Some(hnsw) = self.config.hnsw_config() {
            let mut graph = HnswGraph::new(hnsw);
            graph.insert(&self.store, self.metric, 0..self.store.slot_count() as u32);
            self.graph = Some(graph);
        }
        tracing::debug!(
            removed,
            live = self.store.live_count(),
            seconds = started.elapsed().as_secs_f64(),
            "compacted vector index"
        );
    }

    /// Returns the `k` vectors closest to `query` that pass `filter`, best first; fewer
    /// when fewer match. Under HNSW the result is approximate (see the module
    /// documentation for filters).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] when `k` is 0 or above [`MAX_K`], the query's length
    /// differs from the dimension, a component is NaN or infinite, the query is zero under
    /// [`Metric::Cosine`], or the filter exceeds [`MAX_TAGS`] or
    /// [`MAX_METADATA_STRING_BYTES`]. An empty index returns no hits, not an error.
    pub fn search(&self, query: &[f32], k: usize, filter: Option<&Filter>) -> Result<Vec<Hit>> {
        self.search_one(query, k, filter, false)
    }

    /// Returns what [`VectorIndex::search`] returns, computed exactly under HNSW too.
    ///
    /// # Errors
    ///
    /// As [`VectorIndex::search`].
    pub fn search_exact(
        &self,
        query: &[f32],
        k: usize,
        filter: Option<&Filter>,
    ) -> Result<Vec<Hit>> {
        self.search_one(query, k, filter, true)
    }

    /// Returns [`VectorIndex::search`]'s hits for each row of the row-major `queries`.
    /// HNSW indexes search the queries in parallel. Exact searches of 16 queries or more
    /// without a filter screen candidates with matrix products and score the best again
    /// with the kernels of single searches. Other exact searches compare each vector with
    /// a block of queries while it is in cache.
    ///
    /// # Errors
    ///
    /// As [`VectorIndex::search`], naming the row, and when the length of `queries` is
    /// not a multiple of the dimension. [`Error::Tensor`] when a matrix product fails,
    /// which is a bug.
    pub fn search_batch(
        &self,
        queries: &[f32],
        k: usize,
        filter: Option<&Filter>,
    ) -> Result<Vec<Vec<Hit>>> {
        self.search_many(queries, k, filter, false)
    }

    /// Returns what [`VectorIndex::search_batch`] returns, computed exactly under HNSW too.
    ///
    /// # Errors
    ///
    /// As [`VectorIndex::search_batch`].
    pub fn search_exact_batch(
        &self,
        queries: &[f32],
        k: usize,
        filter: Option<&Filter>,
    ) -> Result<Vec<Vec<Hit>>> {
        self.search_many(queries, k, filter, true)
    }

    /// Writes the index to `path` atomically; see [`FORMAT_VERSION`] for the format.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when the file cannot be written; an existing file is then unchanged.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        persist::save(self, path.as_ref())
    }

    /// Reads an index written by [`VectorIndex::save`], with its graph, so nothing is
    /// rebuilt.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] naming the path when the file cannot be read, is not an index file,
    /// has another format version, is truncated, fails its checksum, or has
    /// inconsistent counts or links.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        persist::load(path.as_ref())
    }

    fn search_one(
        &self,
        query: &[f32],
        k: usize,
        filter: Option<&Filter>,
        exact: bool,
    ) -> Result<Vec<Hit>> {
        check_k(k)?;
        let query = vectors::prepare(self.metric, self.dimension, "query", query)?;
        let neighbors = match self.plan(filter, exact)? {
            Plan::Empty => Vec::new(),
            Plan::Exact(filter) => {
                exact::search(&self.store, self.metric, &query, k, filter.as_ref())
            }
            Plan::Graph(filter) => self.graph_search(&query, k, filter.as_ref()),
        };
        Ok(self.hits(neighbors))
    }

    fn search_many(
        &self,
        queries: &[f32],
        k: usize,
        filter: Option<&Filter>,
        exact: bool,
    ) -> Result<Vec<Vec<Hit>>> {
        check_k(k)?;
        let rows = vectors::prepare_rows(self.metric, self.dimension, "queries", queries)?;
        let query_count = rows.len() / self.dimension;
        let results = match self.plan(filter, exact)? {
            Plan::Empty => vec![Vec::new(); query_count],
            Plan::Exact(None) if query_count >= matmul::MIN_QUERIES => {
                matmul::search_batch(&self.store, self.metric, &rows, k)?
            }
            Plan::Exact(filter) => {
                exact::search_batch(&self.store, self.metric, &rows, k, filter.as_ref())
            }
            Plan::Graph(filter) => rows
                .par_chunks_exact(self.dimension)
                .map(|query| self.graph_search(query, k, filter.as_ref()))
                .collect(),
        };
        Ok(results
            .into_iter()
            .map(|neighbors| self.hits(neighbors))
            .collect())
    }

    fn graph_search(
        &self,
        query: &[f32],
        k: usize,
        filter: Option<&CompiledFilter>,
    ) -> Vec<Neighbor> {
        match (&self.graph, self.ef_search()) {
            (Some(graph), Some(ef)) => graph.search(&self.store, self.metric, query, k, ef, filter),
            _ => exact::search(&self.store, self.metric, query, k, filter),
        }
    }

    /// Decides how a search runs; see the module documentation for the rule.
    fn plan(&self, filter: Option<&Filter>, exact: bool) -> Result<Plan> {
        if let Some(filter) = filter {
            filter.validate()?;
        }
        let live = self.store.live_count();
        if live == 0 {
            return Ok(Plan::Empty);
        }
        let compiled = match filter {
            Some(filter) if !filter.is_empty() => {
                match self.store.metadata().compile(filter, live) {
                    Some(compiled) if compiled.max_matches > 0 => Some(compiled),
                    _ => return Ok(Plan::Empty),
                }
            }
            _ => None,
        };
        let (Some(hnsw), false) = (self.config.hnsw_config(), exact) else {
            return Ok(Plan::Exact(compiled));
        };
        if let Some(filter) = &compiled {
            let matches = filter.max_matches as f64;
            let walk = live as f64 * hnsw.ef_search as f64 * (2 * hnsw.m) as f64;
            if matches * matches < walk {
                return Ok(Plan::Exact(compiled));
            }
        }
        Ok(Plan::Graph(compiled))
    }

    fn hits(&self, neighbors: Vec<Neighbor>) -> Vec<Hit> {
        neighbors
            .into_iter()
            .map(|neighbor| Hit {
                id: self.store.id(neighbor.slot),
                score: -neighbor.distance,
            })
            .collect()
    }

    fn check_capacity(&self, added: usize) -> Result<()> {
        if self.store.slot_count() + added > MAX_VECTORS {
            return Err(Error::invalid(
                "vector",
                format!(
                    "the index has {} slots and cannot take {added} more; the maximum \
                     is {MAX_VECTORS}, removed vectors included until compact() runs",
                    self.store.slot_count()
                ),
            ));
        }
        Ok(())
    }

    fn compact_if_needed(&mut self) {
        let deleted = self.store.deleted_count() as f64;
        if deleted > f64::from(self.config.max_deleted_fraction) * self.store.slot_count() as f64 {
            self.compact();
        }
    }
}

impl fmt::Debug for VectorIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VectorIndex")
            .field("dimension", &self.dimension)
            .field("metric", &self.metric)
            .field("config", &self.config)
            .field("model", &self.model)
            .field("len", &self.len())
            .field("deleted", &self.deleted_count())
            .finish()
    }
}

fn check_k(k: usize) -> Result<()> {
    if k == 0 {
        return Err(Error::invalid("k", "must be at least 1"));
    }
    if k > MAX_K {
        return Err(Error::invalid(
            "k",
            format!("{k} exceeds the maximum of {MAX_K}"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_is_send_and_sync() {
        fn shareable<T: Send + Sync>() {}
        shareable::<VectorIndex>();
    }

    #[test]
    fn plan_scans_exactly_when_few_vectors_match() {
        let mut index = VectorIndex::new(2, Metric::L2, IndexConfig::default()).unwrap();
        for id in 0..3_000u64 {
            let tags = if id % 100 == 0 {
                vec!["rare".to_owned()]
            } else {
                Vec::new()
            };
            let metadata = Metadata {
                tags,
                ..Metadata::default()
            };
            index.upsert(id, &[id as f32, 1.0], metadata).unwrap();
        }
        let rare = Filter {
            tags: vec!["rare".into()],
            ..Filter::default()
        };
        let unknown = Filter {
            tags: vec!["unknown".into()],
            ..Filter::default()
        };
        assert!(matches!(
            index.plan(None, false).unwrap(),
            Plan::Graph(None)
        ));
        assert!(matches!(index.plan(None, true).unwrap(), Plan::Exact(None)));
        assert!(matches!(
            index.plan(Some(&rare), false).unwrap(),
            Plan::Exact(Some(_))
        ));
        assert!(matches!(
            index.plan(Some(&unknown), false).unwrap(),
            Plan::Empty
        ));
        assert!(matches!(
            index.plan(Some(&Filter::default()), false).unwrap(),
            Plan::Graph(None)
        ));
    }
}
