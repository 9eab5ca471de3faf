//! Exhaustive descriptor matching over every pair of photos: mutual nearest neighbours
//! that pass Lowe's ratio test in both directions.
//!
//! The rule is that of [`crate::recon::features::match_descriptors`], but both directions
//! come from one matrix product per pair instead of two. Each row of the product gives a
//! feature of the first image its two nearest neighbours. A running minimum over the rows
//! gives every feature of the second image its two. Squared distances
//! `‖a‖² + ‖b‖² − 2 a·b` of `u8` descriptors are integers below 2^24, so they are exact in
//! `f32` whatever order the matrix kernel sums in, and the matches repeat run to run.

use std::sync::Mutex;

use candle_core::{Device, Tensor};
use rayon::prelude::*;

use super::extraction::ImageFeatures;
use crate::error::Result;
use crate::recon::features::DESCRIPTOR_LENGTH;
use crate::recon::progress::{Progress, ProgressFn, Stage};

/// Rows of the first image per matrix product, which bounds the product block to
/// `ROW_CHUNK × (features of the second image)` floats.
const ROW_CHUNK: usize = 1024;

/// The putative matches of one image pair, `a < b`, as `(keypoint in a, keypoint in b)`.
#[derive(Debug, Clone)]
pub(crate) struct PairMatches {
    pub a: usize,
    pub b: usize,
    pub matches: Vec<(u32, u32)>,
}

/// One image's descriptors as an `n × 128` matrix and its contiguous transpose, with
/// their squared norms.
struct DescriptorMatrix {
    matrix: Tensor,
    transposed: Tensor,
    norms: Vec<f32>,
}

impl DescriptorMatrix {
    fn new(descriptors: &[[u8; DESCRIPTOR_LENGTH]]) -> Result<Self> {
        let floats: Vec<f32> = descriptors
            .iter()
            .flatten()
            .map(|&v| f32::from(v))
            .collect();
        let norms = descriptors
            .iter()
            .map(|d| d.iter().map(|&v| f32::from(v) * f32::from(v)).sum())
            .collect();
        let matrix =
            Tensor::from_vec(floats, (descriptors.len(), DESCRIPTOR_LENGTH), &Device::Cpu)?;
        let transposed = matrix.t()?.contiguous()?;
        Ok(Self {
            matrix,
            transposed,
            norms,
        })
    }

    fn len(&self) -> usize {
        self.norms.len()
    }
}

/// The two nearest neighbours of a feature by squared descriptor distance; ties go to the
/// lower index.
#[derive(Debug, Clone, Copy)]
struct Nearest {
    index: u32,
    best: f32,
    second: f32,
}

impl Nearest {
    const EMPTY: Self = Self {
        index: 0,
        best: f32::INFINITY,
        second: f32::INFINITY,
    };

    fn offer(&mut self, index: u32, distance: f32) {
        if distance < self.best {
            self.second = self.best;
            self.best = distance;
            self.index = index;
        } else if distance < self.second {
            self.second = distance;
        }
    }
}

/// Matches every pair of images, in parallel over pairs. Pairs with fewer than
/// `min_matches` matches are dropped, since verification could not accept them.
pub(crate) fn match_all_pairs(
    features: &[ImageFeatures],
    ratio: f32,
    min_matches: usize,
    progress: ProgressFn,
) -> Result<Vec<PairMatches>> {
    let matrices: Vec<DescriptorMatrix> = features
        .iter()
        .map(|f| DescriptorMatrix::new(&f.descriptors))
        .collect::<Result<_>>()?;
    let pairs: Vec<(usize, usize)> = (0..features.len())
        .flat_map(|a| (a + 1..features.len()).map(move |b| (a, b)))
        .collect();
    let total = pairs.len();
    let done = Mutex::new(0usize);
    progress(Progress {
        stage: Stage::Matching,
        done: 0,
        total,
    });
    let matched: Vec<Option<PairMatches>> = pairs
        .par_iter()
        .map(|&(a, b)| {
            let found = match_pair(&matrices[a], &matrices[b], ratio)?;
            let mut done = done.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            *done += 1;
            progress(Progress {
                stage: Stage::Matching,
                done: *done,
                total,
            });
            Ok((found.len() >= min_matches).then_some(PairMatches {
                a,
                b,
                matches: found,
            }))
        })
        .collect::<Result<_>>()?;
    Ok(matched.into_iter().flatten().collect())
}

/// Finds the mutual nearest neighbours of `a` and `b` that pass the ratio test both ways,
/// ordered by the feature of `a`.
fn match_pair(a: &DescriptorMatrix, b: &DescriptorMatrix, ratio: f32) -> Result<Vec<(u32, u32)>> {
    if a.len() == 0 || b.len() == 0 {
        return Ok(Vec::new());
    }
    let mut forward = Vec::with_capacity(a.len());
    let mut backward = vec![Nearest::EMPTY; b.len()];
    for start in (0..a.len()).step_by(ROW_CHUNK) {
        let rows = ROW_CHUNK.min(a.len() - start);
        let products: Vec<f32> = a
            .matrix
            .narrow(0, start, rows)?
            .matmul(&b.transposed)?
            .flatten_all()?
            .to_vec1()?;
        for (offset, row) in products.chunks_exact(b.len()).enumerate() {
            let index_a = start + offset;
            let norm_a = a.norms[index_a];
            let mut nearest = Nearest::EMPTY;
            for (index_b, ((&product, &norm_b), column)) in row
                .iter()
                .zip(&b.norms)
                .zip(backward.iter_mut())
                .enumerate()
            {
                let distance = norm_a + norm_b - 2.0 * product;
                nearest.offer(index_b as u32, distance);
                column.offer(index_a as u32, distance);
            }
            forward.push(nearest);
        }
    }
    let ratio_squared = ratio * ratio;
    let passes = |nearest: &Nearest| nearest.best < ratio_squared * nearest.second;
    Ok(forward
        .iter()
        .enumerate()
        .filter(|(index_a, nearest)| {
            let reverse = &backward[nearest.index as usize];
            passes(nearest) && passes(reverse) && reverse.index as usize == *index_a
        })
        .map(|(index_a, nearest)| (index_a as u32, nearest.index))
        .collect())
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;
    use crate::recon::features::{MatchOptions, match_descriptors};

    #[test]
    fn one_product_equals_two_way_matcher() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let a: Vec<[u8; DESCRIPTOR_LENGTH]> = (0..1500)
            .map(|_| std::array::from_fn(|_| rng.random_range(0..=90u8)))
            .collect();
        // Half of b are perturbed copies of a, half are unrelated.
        let b: Vec<[u8; DESCRIPTOR_LENGTH]> = (0..1300)
            .map(|i| {
                if i % 2 == 0 {
                    a[(i * 7) % a.len()].map(|v| v.saturating_add(rng.random_range(0..6u8)))
                } else {
                    std::array::from_fn(|_| rng.random_range(0..=90u8))
                }
            })
            .collect();
        let ours = match_pair(
            &DescriptorMatrix::new(&a).expect("matrix"),
            &DescriptorMatrix::new(&b).expect("matrix"),
            0.8,
        )
        .expect("matched");
        let theirs: Vec<(u32, u32)> = match_descriptors(&a, &b, &MatchOptions::default())
            .expect("matched")
            .iter()
            .map(|m| (m.a, m.b))
            .collect();
        assert!(ours.len() > 500, "{} matches", ours.len());
        assert_eq!(ours, theirs);
    }
}
