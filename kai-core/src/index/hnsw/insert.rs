//! Building the graph: new slots are linked in batches whose searches run in parallel.
//!
//! Each batch runs in two phases. First every new slot, in parallel, searches the graph
//! as it was before the batch and also compares itself with the batch's earlier slots,
//! then picks its links with the selection heuristic. Then every slot that one of those
//! links points to, again in parallel, adds the link back and prunes its list with the
//! same heuristic when it overflows. Both phases read only the graph from before the
//! phase, so the result does not depend on the number of threads. A slot compares itself
//! with every earlier slot of its batch directly, so it misses only what the links of
//! those slots would have changed in its search of the graph.

use std::ops::Range;

use rayon::prelude::*;

use super::HnswGraph;
use super::search::touch;
use crate::index::metric::Distance;
use crate::index::store::VectorStore;
use crate::index::topk::Neighbor;

/// The largest batch. Comparing each slot with its batch's earlier slots costs
/// `batch² / 2` distances per batch, small beside the searches at this size.
const MAX_BATCH: usize = 256;

/// The graph size per slot of batch: a batch is at most 1/16 of the slots already linked,
/// so early slots, whose neighbourhoods change most, join in small batches.
const GRAPH_SLOTS_PER_BATCH_SLOT: usize = 16;

/// The links a new slot picked, per layer from 0 up.
type NewLinks = Vec<Vec<u32>>;

impl HnswGraph {
    pub(super) fn insert_with<D>(&mut self, store: &VectorStore, distance: D, new: Range<u32>)
    where
        D: Distance,
    {
        debug_assert_eq!(new.start as usize, self.slot_count());
        for _ in new.clone() {
            self.add_slot();
        }
        let mut next = new.start;
        while next < new.end {
            let size = (next as usize / GRAPH_SLOTS_PER_BATCH_SLOT).clamp(1, MAX_BATCH);
            let end = new.end.min(next + size as u32);
            self.insert_batch(store, distance, next..end);
            next = end;
        }
    }

    fn insert_batch<D>(&mut self, store: &VectorStore, distance: D, batch: Range<u32>)
    where
        D: Distance,
    {
        if self.entry.is_none() {
            // The first slot has nothing to link to; it becomes the entry point, and the
            // rest of its batch links to it.
            self.entry = Some(batch.start);
            if batch.len() == 1 {
                return;
            }
        }

        let chosen: Vec<NewLinks> = batch
            .clone()
            .into_par_iter()
            .map(|slot| self.pick_links(store, distance, slot, batch.start))
            .collect();
        for (slot, layers) in batch.clone().zip(&chosen) {
            for (layer, links) in layers.iter().enumerate() {
                self.set_links(slot, layer, links);
            }
        }

        self.add_reverse_links(store, distance, batch.clone(), &chosen);

        for slot in batch {
            if self.level(slot) > self.max_level() {
                self.entry = Some(slot);
            }
        }
    }

    /// Returns the links of the new `slot` on each of its layers: the heuristic's pick
    /// from a search of width `ef_construction` in the graph, plus the batch's slots
    /// before it on that layer.
    fn pick_links<D>(
        &self,
        store: &VectorStore,
        distance: D,
        slot: u32,
        batch_start: u32,
    ) -> NewLinks
    where
        D: Distance,
    {
        let query = store.vector(slot);
        let level = self.level(slot);
        let mut links = vec![Vec::new(); level + 1];
        // The graph's entry point is a batch member only in the first batch, whose
        // members then link to nothing but each other.
        let graph_top = match self.entry {
            Some(entry) if entry < batch_start => Some(self.max_level()),
            _ => None,
        };
        let mut start = self.descend(store, distance, query, level);
        let mut visited = self.visited.take();

        for layer in (0..=level).rev() {
            let mut candidates = match (graph_top, start) {
                (Some(top), Some(from)) if layer <= top => {
                    let found = self.search_layer(
                        store,
                        distance,
                        query,
                        &[from],
                        self.ef_construction,
                        layer,
                        |_| true,
                        &mut visited,
                    );
                    // The closest slot of this layer starts the search one layer down.
                    start = found.first().copied();
                    found
                }
                _ => Vec::new(),
            };
            candidates.extend(
                (batch_start..slot)
                    .filter(|&other| self.level(other) >= layer)
                    .map(|other| {
                        Neighbor::new(distance.between(query, store.vector(other)), other)
                    }),
            );
            candidates.sort_unstable();
            candidates.truncate(self.ef_construction);
            links[layer] = self.select_links(store, distance, &candidates, self.m);
        }
        self.visited.give_back(visited);
        links
    }

    /// Adds the link back from every slot that a new slot of `batch` links to, pruning
    /// lists that overflow.
    fn add_reverse_links<D>(
        &mut self,
        store: &VectorStore,
        distance: D,
        batch: Range<u32>,
        chosen: &[NewLinks],
    ) where
        D: Distance,
    {
        // (target, layer, source) triples, sorted so each target's layer forms one run.
        let mut reverse: Vec<(u32, u8, u32)> = batch
            .zip(chosen)
            .flat_map(|(source, layers)| {
                layers.iter().enumerate().flat_map(move |(layer, links)| {
                    links
                        .iter()
                        .map(move |&target| (target, layer as u8, source))
                })
            })
            .collect();
        reverse.sort_unstable();
        let groups: Vec<&[(u32, u8, u32)]> =
            reverse.chunk_by(|a, b| a.0 == b.0 && a.1 == b.1).collect();

        let updated: Vec<(u32, usize, Vec<u32>)> = groups
            .par_iter()
            .map(|group| {
                let (target, layer, _) = group[0];
                let layer = usize::from(layer);
                let sources = group.iter().map(|&(_, _, source)| source);
                (
                    target,
                    layer,
                    self.merged_links(store, distance, target, layer, sources),
                )
            })
            .collect();
        for (target, layer, links) in updated {
            self.set_links(target, layer, &links);
        }
    }

    /// Returns the links of `target` on `layer` with `sources` added, pruned by the
    /// heuristic when they exceed the layer's capacity.
    fn merged_links<D>(
        &self,
        store: &VectorStore,
        distance: D,
        target: u32,
        layer: usize,
        sources: impl Iterator<Item = u32>,
    ) -> Vec<u32>
    where
        D: Distance,
    {
        let mut links = self.links(target, layer).to_vec();
        for source in sources {
            if source != target && !links.contains(&source) {
                links.push(source);
            }
        }
        let capacity = self.capacity(layer);
        if links.len() <= capacity {
            return links;
        }
        let base = store.vector(target);
        std::hint::black_box(touch(store, &links));
        let mut candidates: Vec<Neighbor> = links
            .iter()
            .map(|&link| Neighbor::new(distance.between(base, store.vector(link)), link))
            .collect();
        candidates.sort_unstable();
        self.select_links(store, distance, &candidates, capacity)
    }

    /// Picks up to `max` links from `candidates`, sorted closest first, with the
    /// heuristic of Malkov and Yashunin. A candidate is selected only when it is closer to
    /// the base than to every candidate selected before it. Links thus spread in all
    /// directions instead of crowding into the nearest cluster. Fewer than `max`
    /// candidates are all selected.
    fn select_links<D>(
        &self,
        store: &VectorStore,
        distance: D,
        candidates: &[Neighbor],
        max: usize,
    ) -> Vec<u32>
    where
        D: Distance,
    {
        if candidates.len() < max {
            return candidates.iter().map(|candidate| candidate.slot).collect();
        }
        let mut selected: Vec<u32> = Vec::with_capacity(max);
        for candidate in candidates {
            if selected.len() == max {
                break;
            }
            let vector = store.vector(candidate.slot);
            let diverse = selected
                .iter()
                .all(|&other| distance.between(vector, store.vector(other)) >= candidate.distance);
            if diverse {
                selected.push(candidate.slot);
            }
        }
        selected
    }
}
