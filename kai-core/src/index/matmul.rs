//! Exact batch search through matrix products.
//!
//! candle's CPU matrix product (the `gemm` crate, which picks AVX2 or AVX-512 kernels at
//! run time) computes the dot products of a block of queries with a block of vectors far
//! faster than the portable kernels in [`super::metric`]. Those products only screen
//! candidates, because their rounding differs from the kernels': each query keeps its
//! `k + SCREEN_MARGIN` best candidates, which the kernels then score again. Results and
//! scores thus equal those of [`super::exact::search`].

use candle_core::{Device, Tensor};
use rayon::prelude::*;

use super::metric::{Metric, dot, l2_squared};
use super::store::VectorStore;
use super::topk::{Neighbor, TopK};
use crate::error::Result;

/// Batches of at least this many queries go through matrix products. Below it, the
/// vectors' trip from memory dominates and the portable kernels keep up.
pub(crate) const MIN_QUERIES: usize = 16;

/// Candidates screened beyond `k` per query. A true result is lost only when more than
/// this many other vectors come within rounding error of the `k`-th best score.
const SCREEN_MARGIN: usize = 16;

/// Vectors per matrix product: 4096 rows of 384 dimensions are 6 MiB.
const BLOCK_SLOTS: usize = 4096;

/// Queries per matrix product, which bounds the score block to 16 MiB.
const QUERY_CHUNK: usize = 1024;

/// Returns, for each row of the row-major `queries`, the `k` live vectors closest to it,
/// closest first.
///
/// # Errors
///
/// [`crate::Error::Tensor`] when candle's matrix product fails.
pub(crate) fn search_batch(
    store: &VectorStore,
    metric: Metric,
    queries: &[f32],
    k: usize,
) -> Result<Vec<Vec<Neighbor>>> {
    let dimension = store.dimension();
    let mut results = Vec::with_capacity(queries.len() / dimension);
    for chunk in queries.chunks(QUERY_CHUNK * dimension) {
        let screened = screen(store, metric, chunk, k + SCREEN_MARGIN)?;
        let rescored: Vec<Vec<Neighbor>> = screened
            .into_par_iter()
            .zip(chunk.par_chunks_exact(dimension))
            .map(|(candidates, query)| rescore(store, metric, query, candidates, k))
            .collect();
        results.extend(rescored);
    }
    Ok(results)
}

/// Returns the `keep` best live candidates of each query by matrix-product scores.
fn screen(store: &VectorStore, metric: Metric, queries: &[f32], keep: usize) -> Result<Vec<TopK>> {
    let dimension = store.dimension();
    let query_count = queries.len() / dimension;
    let query_matrix = Tensor::from_slice(queries, (query_count, dimension), &Device::Cpu)?;
    let mut tops = vec![TopK::new(keep); query_count];

    for block_start in (0..store.slot_count()).step_by(BLOCK_SLOTS) {
        let block_end = (block_start + BLOCK_SLOTS).min(store.slot_count());
        let rows = block_end - block_start;
        let vectors = &store.vectors()[block_start * dimension..block_end * dimension];
        let block = Tensor::from_slice(vectors, (rows, dimension), &Device::Cpu)?;
        let products: Vec<f32> = query_matrix.matmul(&block.t()?)?.flatten_all()?.to_vec1()?;
        // ‖q - x‖² = ‖x‖² - 2 q·x + ‖q‖², and ‖q‖² is the same for every candidate.
        let squared_norms: Vec<f32> = match metric {
            Metric::L2 => vectors.chunks_exact(dimension).map(|x| dot(x, x)).collect(),
            Metric::Cosine | Metric::InnerProduct => Vec::new(),
        };
        let deleted = &store.deleted()[block_start..block_end];

        tops.par_iter_mut()
            .zip(products.par_chunks_exact(rows))
            .for_each(|(top, products)| {
                for (offset, &product) in products.iter().enumerate() {
                    if deleted[offset] {
                        continue;
                    }
                    let distance = match metric {
                        Metric::L2 => squared_norms[offset] - 2.0 * product,
                        Metric::Cosine | Metric::InnerProduct => -product,
                    };
                    if distance <= top.bound() {
                        top.push(Neighbor::new(distance, (block_start + offset) as u32));
                    }
                }
            });
    }
    Ok(tops)
}

/// Scores `candidates` with the metric's kernel and returns the best `k`.
fn rescore(
    store: &VectorStore,
    metric: Metric,
    query: &[f32],
    candidates: TopK,
    k: usize,
) -> Vec<Neighbor> {
    let mut scored: Vec<Neighbor> = candidates
        .into_sorted()
        .into_iter()
        .map(|candidate| {
            let vector = store.vector(candidate.slot);
            let distance = match metric {
                Metric::L2 => l2_squared(query, vector),
                Metric::Cosine | Metric::InnerProduct => -dot(query, vector),
            };
            Neighbor::new(distance, candidate.slot)
        })
        .collect();
    scored.sort_unstable();
    scored.truncate(k);
    scored
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::exact;
    use crate::index::filter::Metadata;

    #[test]
    fn matches_kernel_search_for_each_metric() {
        let dimension = 48;
        let mut store = VectorStore::new(dimension);
        for i in 0..9_000u64 {
            let vector: Vec<f32> = (0..dimension)
                .map(|d| (i as f32 * 0.618 + d as f32 * 1.7).sin())
                .collect();
            store.push(i, &vector, &Metadata::default());
        }
        store.remove(17);
        let queries: Vec<f32> = (0..dimension * 40)
            .map(|i| (i as f32 * 0.37).cos())
            .collect();
        for metric in Metric::ALL {
            let expected = exact::search_batch(&store, metric, &queries, 10, None);
            let got = search_batch(&store, metric, &queries, 10).unwrap();
            assert_eq!(got, expected, "{metric}");
        }
    }
}
