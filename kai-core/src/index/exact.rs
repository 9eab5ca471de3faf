//! Exact search: the query is compared with every live vector.
//!
//! Large scans split the slots into ranges that rayon runs in parallel. Each range keeps
//! its own top-k heap, and the heaps merge at the end. Batches compare a tile of vectors
//! that fits the L1 cache with a block of queries that fits the L2 cache. Each vector thus
//! comes from main memory once per query block, not once per query.

use std::ops::Range;

use rayon::prelude::*;

use super::filter::CompiledFilter;
use super::metric::{Distance, Metric, NegatedDot, SquaredL2};
use super::store::VectorStore;
use super::topk::{Neighbor, TopK};

/// Below this many `f32` values compared (about 1 MiB), one thread scans everything,
/// because splitting costs more than it saves.
const PARALLEL_MIN_VALUES: usize = 1 << 18;

/// Ranges per thread, so threads that finish early take over remaining ranges.
const RANGES_PER_THREAD: usize = 4;

/// Bytes of vectors compared with each query block before moving on; about half of a
/// 32 KiB L1 data cache.
const TILE_BYTES: usize = 16 * 1024;

/// Bytes of queries compared with each tile; a quarter of a 1 MiB L2 cache.
const QUERY_BLOCK_BYTES: usize = 256 * 1024;

/// Returns the `k` live vectors closest to `query` that pass `filter`, closest first.
pub(crate) fn search(
    store: &VectorStore,
    metric: Metric,
    query: &[f32],
    k: usize,
    filter: Option<&CompiledFilter>,
) -> Vec<Neighbor> {
    match metric {
        Metric::L2 => search_with(store, SquaredL2, query, k, filter),
        Metric::Cosine | Metric::InnerProduct => search_with(store, NegatedDot, query, k, filter),
    }
}

/// Returns, per query of the row-major `queries`, what [`search`] returns.
pub(crate) fn search_batch(
    store: &VectorStore,
    metric: Metric,
    queries: &[f32],
    k: usize,
    filter: Option<&CompiledFilter>,
) -> Vec<Vec<Neighbor>> {
    match metric {
        Metric::L2 => search_batch_with(store, SquaredL2, queries, k, filter),
        Metric::Cosine | Metric::InnerProduct => {
            search_batch_with(store, NegatedDot, queries, k, filter)
        }
    }
}

fn search_with<D>(
    store: &VectorStore,
    distance: D,
    query: &[f32],
    k: usize,
    filter: Option<&CompiledFilter>,
) -> Vec<Neighbor>
where
    D: Distance,
{
    let ranges = split_slots(store.slot_count(), store.dimension());
    let scan_range = |range: &Range<usize>| {
        let mut top = TopK::new(k);
        scan(store, distance, query, range.clone(), filter, &mut top);
        top
    };
    let top = if ranges.len() == 1 {
        scan_range(&ranges[0])
    } else {
        ranges
            .par_iter()
            .map(scan_range)
            .reduce(|| TopK::new(k), TopK::merge)
    };
    top.into_sorted()
}

/// Pushes the live, matching slots of `range` into `top`.
#[inline]
fn scan<D>(
    store: &VectorStore,
    distance: D,
    query: &[f32],
    range: Range<usize>,
    filter: Option<&CompiledFilter>,
    top: &mut TopK,
) where
    D: Distance,
{
    let dimension = store.dimension();
    let vectors = &store.vectors()[range.start * dimension..range.end * dimension];
    let deleted = &store.deleted()[range.clone()];
    let rows = &store.metadata().rows()[range.clone()];
    for (offset, ((vector, &is_deleted), row)) in vectors
        .chunks_exact(dimension)
        .zip(deleted)
        .zip(rows)
        .enumerate()
    {
        if is_deleted || filter.is_some_and(|filter| !filter.matches(row)) {
            continue;
        }
        let value = distance.between(query, vector);
        if value <= top.bound() {
            top.push(Neighbor::new(value, (range.start + offset) as u32));
        }
    }
}

fn search_batch_with<D>(
    store: &VectorStore,
    distance: D,
    queries: &[f32],
    k: usize,
    filter: Option<&CompiledFilter>,
) -> Vec<Vec<Neighbor>>
where
    D: Distance,
{
    let dimension = store.dimension();
    let query_count = queries.len() / dimension;
    let ranges = split_slots(store.slot_count(), dimension * query_count);
    let scan_range = |range: &Range<usize>| {
        let mut tops = vec![TopK::new(k); query_count];
        scan_tiles(store, distance, queries, range.clone(), filter, &mut tops);
        tops
    };
    let merge = |left: Vec<TopK>, right: Vec<TopK>| -> Vec<TopK> {
        left.into_iter()
            .zip(right)
            .map(|(a, b)| a.merge(b))
            .collect()
    };
    let tops = if ranges.len() == 1 {
        scan_range(&ranges[0])
    } else {
        ranges
            .par_iter()
            .map(scan_range)
            .reduce(|| vec![TopK::new(k); query_count], merge)
    };
    tops.into_iter().map(TopK::into_sorted).collect()
}

/// Compares each query with the live, matching slots of `range`, tile by tile.
fn scan_tiles<D>(
    store: &VectorStore,
    distance: D,
    queries: &[f32],
    range: Range<usize>,
    filter: Option<&CompiledFilter>,
    tops: &mut [TopK],
) where
    D: Distance,
{
    let dimension = store.dimension();
    let row_bytes = dimension * size_of::<f32>();
    let tile_slots = (TILE_BYTES / row_bytes).max(1);
    let block_queries = (QUERY_BLOCK_BYTES / row_bytes).max(1);
    let mut admitted = Vec::with_capacity(tile_slots);

    for (block, block_tops) in queries
        .chunks(block_queries * dimension)
        .zip(tops.chunks_mut(block_queries))
    {
        for tile_start in range.clone().step_by(tile_slots) {
            let tile_end = (tile_start + tile_slots).min(range.end);
            admitted.clear();
            admitted.extend((tile_start as u32..tile_end as u32).filter(|&slot| {
                !store.is_deleted(slot)
                    && filter.is_none_or(|filter| filter.matches(store.metadata().row(slot)))
            }));
            for (query, top) in block.chunks_exact(dimension).zip(block_tops.iter_mut()) {
                for &slot in &admitted {
                    let value = distance.between(query, store.vector(slot));
                    if value <= top.bound() {
                        top.push(Neighbor::new(value, slot));
                    }
                }
            }
        }
    }
}

/// Splits `0..slots` into ranges for parallel scans; one range when the scan is small.
/// `values_per_slot` is the number of `f32` values compared per slot.
fn split_slots(slots: usize, values_per_slot: usize) -> Vec<Range<usize>> {
    let threads = rayon::current_num_threads();
    if threads == 1 || slots.saturating_mul(values_per_slot) < PARALLEL_MIN_VALUES {
        return std::iter::once(0..slots).collect();
    }
    let count = (threads * RANGES_PER_THREAD).min(slots);
    let per_range = slots.div_ceil(count);
    (0..slots)
        .step_by(per_range)
        .map(|start| start..(start + per_range).min(slots))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::filter::{Filter, Metadata};

    fn store(count: usize, dimension: usize) -> VectorStore {
        let mut store = VectorStore::new(dimension);
        for i in 0..count {
            let vector: Vec<f32> = (0..dimension)
                .map(|d| (((i * 31 + d * 17) % 97) as f32 - 48.0) / 48.0)
                .collect();
            let metadata = Metadata {
                collection: Some(if i % 3 == 0 { "a" } else { "b" }.to_owned()),
                ..Metadata::default()
            };
            store.push(i as u64, &vector, &metadata);
        }
        store
    }

    fn brute_force(store: &VectorStore, metric: Metric, query: &[f32], k: usize) -> Vec<Neighbor> {
        let mut all: Vec<Neighbor> = (0..store.slot_count() as u32)
            .filter(|&slot| !store.is_deleted(slot))
            .map(|slot| Neighbor::new(metric.distance(query, store.vector(slot)), slot))
            .collect();
        all.sort();
        all.truncate(k);
        all
    }

    #[test]
    fn parallel_scan_equals_brute_force() {
        let mut store = store(5000, 70);
        store.remove(3);
        store.remove(4000);
        let query: Vec<f32> = (0..70).map(|d| (d as f32 * 0.37).sin()).collect();
        for metric in Metric::ALL {
            assert_eq!(
                search(&store, metric, &query, 12, None),
                brute_force(&store, metric, &query, 12)
            );
        }
    }

    #[test]
    fn batch_equals_single_queries() {
        let store = store(3000, 33);
        let queries: Vec<f32> = (0..33 * 40).map(|i| (i as f32 * 0.11).cos()).collect();
        let filter = store
            .metadata()
            .compile(
                &Filter {
                    collection: Some("a".into()),
                    ..Filter::default()
                },
                store.live_count(),
            )
            .unwrap();
        for filter in [None, Some(&filter)] {
            let batch = search_batch(&store, Metric::L2, &queries, 5, filter);
            for (query, hits) in queries.chunks_exact(33).zip(&batch) {
                assert_eq!(*hits, search(&store, Metric::L2, query, 5, filter));
            }
        }
    }

    #[test]
    fn filter_admits_only_matches() {
        let store = store(300, 8);
        let filter = store
            .metadata()
            .compile(
                &Filter {
                    collection: Some("a".into()),
                    ..Filter::default()
                },
                store.live_count(),
            )
            .unwrap();
        let hits = search(&store, Metric::InnerProduct, &[1.0; 8], 500, Some(&filter));
        assert_eq!(hits.len(), 100);
        assert!(hits.iter().all(|hit| hit.slot % 3 == 0));
    }

    #[test]
    fn split_covers_every_slot_once() {
        for slots in [0, 1, 7, 1000, 123_457] {
            let ranges = split_slots(slots, 1000);
            let covered: usize = ranges.iter().map(|range| range.len()).sum();
            assert_eq!(covered, slots);
            assert!(ranges.windows(2).all(|pair| pair[0].end == pair[1].start));
        }
    }
}
