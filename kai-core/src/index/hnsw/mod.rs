//! A hierarchical navigable small world graph over the slots of a [`VectorStore`]
//! (Yu. A. Malkov and D. A. Yashunin, "Efficient and robust approximate nearest neighbor
//! search using Hierarchical Navigable Small World graphs", 2016).
//!
//! Each slot draws a level from an exponential distribution (scale `1 / ln m`) and has a
//! list of links on every layer up to it: up to `m` on the upper layers and `2 * m` on
//! layer 0. A search walks greedily down from the entry point, the slot with the highest
//! level, and runs a best-first search of width `ef` on layer 0. Removed slots stay in the
//! graph so it stays connected; searches walk through them but never return them.

mod insert;
mod search;
mod visited;

use std::ops::Range;

use super::config::HnswConfig;
use super::filter::CompiledFilter;
use super::metric::{Metric, NegatedDot, SquaredL2};
use super::store::VectorStore;
use super::topk::Neighbor;
use visited::VisitedPool;

/// The highest level a slot can draw. With `m = 2`, the smallest `m` accepted, a level
/// above it has probability 2^-32 per slot.
pub(crate) const MAX_LEVEL: usize = 32;

/// A 64-bit xorshift generator (Marsaglia's xorshift with Vigna's multiplicative output,
/// "xorshift64*"): small, fast and reproducible from its state.
#[derive(Debug, Clone)]
pub(crate) struct XorShift {
    state: u64,
}

impl XorShift {
    pub(crate) fn new(seed: u64) -> Self {
        // A zero state would only ever produce zeros.
        Self {
            state: if seed == 0 {
                0x9e37_79b9_7f4a_7c15
            } else {
                seed
            },
        }
    }

    pub(crate) fn state(&self) -> u64 {
        self.state
    }

    fn next_u64(&mut self) -> u64 {
        let mut x = self.state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.state = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Returns a uniform value in (0, 1].
    fn next_unit(&mut self) -> f64 {
        ((self.next_u64() >> 11) + 1) as f64 / (1u64 << 53) as f64
    }
}

/// The graph. Slot `s`'s links on layer 0 are `layer0[s * (m0 + 1)..][..m0 + 1]`: a count,
/// then the linked slots. Its upper layers use the same layout in `upper[s]`, one block
/// of `m + 1` per level from 1 up.
#[derive(Debug)]
pub(crate) struct HnswGraph {
    m: usize,
    m0: usize,
    ef_construction: usize,
    level_scale: f64,
    rng: XorShift,
    levels: Vec<u8>,
    layer0: Vec<u32>,
    upper: Vec<Box<[u32]>>,
    entry: Option<u32>,
    visited: VisitedPool,
}

/// The stored form of a graph, as the index file has it.
#[derive(Debug)]
pub(crate) struct GraphParts {
    pub(crate) rng_state: u64,
    pub(crate) levels: Vec<u8>,
    pub(crate) layer0: Vec<u32>,
    pub(crate) upper: Vec<Box<[u32]>>,
    pub(crate) entry: Option<u32>,
}

impl HnswGraph {
    pub(crate) fn new(config: &HnswConfig) -> Self {
        Self {
            m: config.m,
            m0: 2 * config.m,
            ef_construction: config.ef_construction,
            level_scale: 1.0 / (config.m as f64).ln(),
            rng: XorShift::new(config.seed),
            levels: Vec::new(),
            layer0: Vec::new(),
            upper: Vec::new(),
            entry: None,
            visited: VisitedPool::default(),
        }
    }

    /// Links the slots `new` into the graph. The store has them already, the graph not
    /// yet.
    pub(crate) fn insert(&mut self, store: &VectorStore, metric: Metric, new: Range<u32>) {
        match metric {
            Metric::L2 => self.insert_with(store, SquaredL2, new),
            Metric::Cosine | Metric::InnerProduct => self.insert_with(store, NegatedDot, new),
        }
    }

    /// Returns up to `k` slots close to `query` that are live and pass `filter`, closest
    /// first, from a search of width `max(ef, k)`.
    pub(crate) fn search(
        &self,
        store: &VectorStore,
        metric: Metric,
        query: &[f32],
        k: usize,
        ef: usize,
        filter: Option<&CompiledFilter>,
    ) -> Vec<Neighbor> {
        match metric {
            Metric::L2 => self.search_with(store, SquaredL2, query, k, ef, filter),
            Metric::Cosine | Metric::InnerProduct => {
                self.search_with(store, NegatedDot, query, k, ef, filter)
            }
        }
    }

    /// Returns the number of slots in the graph.
    pub(crate) fn slot_count(&self) -> usize {
        self.levels.len()
    }

    pub(crate) fn rng_state(&self) -> u64 {
        self.rng.state()
    }

    pub(crate) fn levels(&self) -> &[u8] {
        &self.levels
    }

    pub(crate) fn layer0(&self) -> &[u32] {
        &self.layer0
    }

    pub(crate) fn upper(&self, slot: u32) -> &[u32] {
        &self.upper[slot as usize]
    }

    pub(crate) fn entry(&self) -> Option<u32> {
        self.entry
    }

    /// Returns the bytes held by levels and links.
    pub(crate) fn memory_bytes(&self) -> usize {
        let upper: usize = self.upper.iter().map(|links| links.len() * 4 + 16).sum();
        self.levels.len() + self.layer0.len() * 4 + upper
    }

    /// Rebuilds a graph from the parts of an index file, after checking that every count,
    /// link and level is consistent with `slot_count` slots.
    ///
    /// # Errors
    ///
    /// A description of the first inconsistency.
    pub(crate) fn from_parts(
        config: &HnswConfig,
        slot_count: usize,
        parts: GraphParts,
    ) -> Result<Self, String> {
        let mut graph = Self::new(config);
        graph.rng = XorShift::new(parts.rng_state);
        graph.levels = parts.levels;
        graph.layer0 = parts.layer0;
        graph.upper = parts.upper;
        graph.entry = parts.entry;
        graph.check(slot_count)?;
        Ok(graph)
    }

    fn check(&self, slot_count: usize) -> Result<(), String> {
        if self.levels.len() != slot_count
            || self.layer0.len() != slot_count * (self.m0 + 1)
            || self.upper.len() != slot_count
        {
            return Err(format!("the graph does not have {slot_count} slots"));
        }
        let max_level = self.levels.iter().copied().max().unwrap_or(0);
        match self.entry {
            None if slot_count > 0 => return Err("the graph has no entry point".into()),
            Some(entry) if self.levels.get(entry as usize) != Some(&max_level) => {
                return Err(format!(
                    "entry point {entry} is not a slot of the top level"
                ));
            }
            _ => {}
        }
        for slot in 0..slot_count as u32 {
            let level = self.level(slot);
            if level > MAX_LEVEL || self.upper[slot as usize].len() != level * (self.m + 1) {
                return Err(format!("slot {slot} has an invalid level {level}"));
            }
            for layer in 0..=level {
                let list = self.list(slot, layer);
                let count = list[0] as usize;
                if count > list.len() - 1 {
                    return Err(format!("slot {slot} has {count} links on layer {layer}"));
                }
                let bad = list[1..=count]
                    .iter()
                    .find(|&&target| target as usize >= slot_count || self.level(target) < layer);
                if let Some(target) = bad {
                    return Err(format!(
                        "slot {slot} links to {target}, which is not a slot of layer {layer}"
                    ));
                }
            }
        }
        Ok(())
    }

    #[inline]
    fn level(&self, slot: u32) -> usize {
        usize::from(self.levels[slot as usize])
    }

    fn max_level(&self) -> usize {
        self.entry.map_or(0, |entry| self.level(entry))
    }

    /// Returns the most links a slot keeps on `layer`.
    fn capacity(&self, layer: usize) -> usize {
        if layer == 0 { self.m0 } else { self.m }
    }

    /// Returns the count and links block of `slot` on `layer`.
    #[inline]
    fn list(&self, slot: u32, layer: usize) -> &[u32] {
        if layer == 0 {
            let start = slot as usize * (self.m0 + 1);
            &self.layer0[start..start + self.m0 + 1]
        } else {
            let start = (layer - 1) * (self.m + 1);
            &self.upper[slot as usize][start..start + self.m + 1]
        }
    }

    #[inline]
    fn links(&self, slot: u32, layer: usize) -> &[u32] {
        let list = self.list(slot, layer);
        &list[1..1 + list[0] as usize]
    }

    fn set_links(&mut self, slot: u32, layer: usize, links: &[u32]) {
        debug_assert!(links.len() <= self.capacity(layer));
        let list = if layer == 0 {
            let start = slot as usize * (self.m0 + 1);
            &mut self.layer0[start..start + self.m0 + 1]
        } else {
            let start = (layer - 1) * (self.m + 1);
            &mut self.upper[slot as usize][start..start + self.m + 1]
        };
        list[0] = links.len() as u32;
        list[1..1 + links.len()].copy_from_slice(links);
    }

    /// Appends a slot without links, at a level drawn from the generator.
    fn add_slot(&mut self) {
        let level = ((-self.rng.next_unit().ln()) * self.level_scale) as usize;
        let level = level.min(MAX_LEVEL);
        self.levels.push(level as u8);
        self.layer0.resize(self.layer0.len() + self.m0 + 1, 0);
        self.upper
            .push(vec![0; level * (self.m + 1)].into_boxed_slice());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xorshift_is_reproducible_and_in_range() {
        let mut a = XorShift::new(7);
        let mut b = XorShift::new(7);
        for _ in 0..1000 {
            let value = a.next_unit();
            assert_eq!(value, b.next_unit());
            assert!(value > 0.0, "{value}");
            assert!(value <= 1.0, "{value}");
        }
        assert_ne!(XorShift::new(0).next_u64(), 0);
    }

    fn random_store(count: usize, dimension: usize) -> VectorStore {
        let mut generator = XorShift::new(99);
        let mut store = VectorStore::new(dimension);
        for id in 0..count as u64 {
            let vector: Vec<f32> = (0..dimension)
                .map(|_| generator.next_unit() as f32)
                .collect();
            store.push(id, &vector, &crate::index::filter::Metadata::default());
        }
        store
    }

    #[test]
    fn built_graph_is_consistent_and_reproducible() {
        let store = random_store(2_000, 8);
        let config = HnswConfig {
            m: 6,
            ef_construction: 40,
            ..HnswConfig::default()
        };
        let mut first = HnswGraph::new(&config);
        first.insert(&store, Metric::L2, 0..1_000);
        first.insert(&store, Metric::L2, 1_000..2_000);
        first.check(2_000).unwrap();
        assert!((0..2_000).all(|slot| !first.links(slot, 0).is_empty()));

        let mut second = HnswGraph::new(&config);
        second.insert(&store, Metric::L2, 0..1_000);
        second.insert(&store, Metric::L2, 1_000..2_000);
        assert_eq!(first.levels, second.levels);
        assert_eq!(first.layer0, second.layer0);
        assert_eq!(first.entry, second.entry);
    }

    #[test]
    fn from_parts_rejects_bad_links() {
        let store = random_store(50, 4);
        let config = HnswConfig::default();
        let mut graph = HnswGraph::new(&config);
        graph.insert(&store, Metric::L2, 0..50);
        let parts = || GraphParts {
            rng_state: graph.rng_state(),
            levels: graph.levels.clone(),
            layer0: graph.layer0.clone(),
            upper: graph.upper.clone(),
            entry: graph.entry,
        };
        assert!(HnswGraph::from_parts(&config, 50, parts()).is_ok());

        let mut outside = parts();
        outside.layer0[1] = 50;
        let err = HnswGraph::from_parts(&config, 50, outside).unwrap_err();
        assert!(err.contains("links to 50"), "{err}");

        let mut overfull = parts();
        overfull.layer0[0] = 99;
        let err = HnswGraph::from_parts(&config, 50, overfull).unwrap_err();
        assert!(err.contains("99 links"), "{err}");

        let mut no_entry = parts();
        no_entry.entry = None;
        assert!(HnswGraph::from_parts(&config, 50, no_entry).is_err());
    }

    #[test]
    fn levels_follow_the_exponential_distribution() {
        let mut graph = HnswGraph::new(&HnswConfig::default());
        for _ in 0..100_000 {
            graph.add_slot();
        }
        // With m = 16, a slot reaches level 1 with probability 1/16.
        let above_zero = graph.levels.iter().filter(|&&level| level > 0).count();
        assert!((5_500..7_000).contains(&above_zero), "{above_zero}");
        assert!(graph.check(100_000).is_err(), "no entry point yet");
    }
}
