//! Descriptor matching: mutual nearest neighbours that pass Lowe's ratio test.
//!
//! Squared distances come from one matrix product, `‖a‖² + ‖b‖² − 2 a·b`. The descriptors
//! are `u8`, so every product and norm is an integer below 2^24 and is exact in `f32`
//! whatever order the matrix kernel sums in: the results are exact and repeat run to run.

use candle_core::{Device, Tensor};
use rayon::prelude::*;

use super::Features;
use super::descriptor::{LENGTH, QUANTISATION_SCALE};
use crate::error::{Error, Result};

/// Query rows per matrix product, which bounds the distance block to
/// `QUERY_CHUNK × reference count` floats.
const QUERY_CHUNK: usize = 1024;

/// Settings for [`match_features`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MatchOptions {
    /// Maximum ratio of the nearest to the second-nearest descriptor distance, in (0, 1].
    /// Lowe (2004) found that 0.8 rejected 90% of false matches and fewer than 5% of
    /// correct ones on his test images.
    pub ratio: f32,
    /// Whether to keep only mutual nearest neighbours and apply the ratio test in both
    /// directions.
    pub cross_check: bool,
    /// Maximum descriptor distance, on the scale of [`FeatureMatch::distance`].
    pub max_distance: f32,
}

impl Default for MatchOptions {
    fn default() -> Self {
        Self {
            ratio: 0.8,
            cross_check: true,
            max_distance: f32::INFINITY,
        }
    }
}

/// A correspondence between feature `a` of the first set and feature `b` of the second.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FeatureMatch {
    /// Index into the first set's keypoints and descriptors.
    pub a: u32,
    /// Index into the second set's keypoints and descriptors.
    pub b: u32,
    /// Euclidean distance between the two `u8` descriptors divided by 512, the
    /// quantisation scale, so that it is the distance of the unit-length descriptors:
    /// 0 for identical ones, at most √2.
    pub distance: f32,
}

/// Matches the descriptors of `a` against those of `b`; the result is ordered by `a`.
///
/// # Errors
///
/// [`Error::InvalidInput`] when an option is out of range, [`Error::Tensor`] when the
/// matrix product fails.
pub fn match_features(
    a: &Features,
    b: &Features,
    options: &MatchOptions,
) -> Result<Vec<FeatureMatch>> {
    match_descriptors(&a.descriptors, &b.descriptors, options)
}

/// Matches two lists of descriptors; see [`match_features`].
///
/// # Errors
///
/// As for [`match_features`].
pub fn match_descriptors(
    a: &[[u8; LENGTH]],
    b: &[[u8; LENGTH]],
    options: &MatchOptions,
) -> Result<Vec<FeatureMatch>> {
    if !(options.ratio > 0.0 && options.ratio <= 1.0) {
        return Err(Error::invalid(
            "ratio",
            format!("{} is not in (0, 1]; Lowe's value is 0.8", options.ratio),
        ));
    }
    if options.max_distance.is_nan() || options.max_distance < 0.0 {
        return Err(Error::invalid(
            "max_distance",
            format!(
                "{} is not a non-negative distance; use infinity for no limit",
                options.max_distance
            ),
        ));
    }
    if a.is_empty() || b.is_empty() {
        return Ok(Vec::new());
    }
    let forward = nearest_two(a, b)?;
    let backward = if options.cross_check {
        Some(nearest_two(b, a)?)
    } else {
        None
    };
    let ratio_squared = options.ratio * options.ratio;
    let passes_ratio =
        |neighbours: &Neighbours| neighbours.best < ratio_squared * neighbours.second;

    let matches = forward
        .iter()
        .enumerate()
        .filter(|(_, neighbours)| passes_ratio(neighbours))
        .filter(|(index, neighbours)| match &backward {
            Some(backward) => {
                let reverse = &backward[neighbours.index as usize];
                reverse.index as usize == *index && passes_ratio(reverse)
            }
            None => true,
        })
        .map(|(index, neighbours)| FeatureMatch {
            a: index as u32,
            b: neighbours.index,
            distance: neighbours.best.sqrt() / QUANTISATION_SCALE,
        })
        // Compared on the reported scale, so a limit equal to a reported distance keeps
        // that match.
        .filter(|found| found.distance <= options.max_distance)
        .collect();
    Ok(matches)
}

/// The two nearest references of one query, by squared `u8`-scale distance.
#[derive(Debug, Clone, Copy)]
struct Neighbours {
    index: u32,
    best: f32,
    second: f32,
}

/// Returns, for every query, its nearest and second-nearest reference; ties go to the
/// lower index, and `second` is infinite when there is one reference.
fn nearest_two(queries: &[[u8; LENGTH]], references: &[[u8; LENGTH]]) -> Result<Vec<Neighbours>> {
    let to_floats = |descriptors: &[[u8; LENGTH]]| -> Vec<f32> {
        descriptors
            .iter()
            .flatten()
            .map(|&value| value as f32)
            .collect()
    };
    let squared_norm = |descriptor: &[u8; LENGTH]| {
        descriptor
            .iter()
            .map(|&v| (v as u32 * v as u32) as f32)
            .sum::<f32>()
    };
    let reference_floats = to_floats(references);
    let reference_norms: Vec<f32> = references.iter().map(squared_norm).collect();
    let reference_matrix =
        Tensor::from_slice(&reference_floats, (references.len(), LENGTH), &Device::Cpu)?;
    let reference_transposed = reference_matrix.t()?;

    let mut result = Vec::with_capacity(queries.len());
    for chunk in queries.chunks(QUERY_CHUNK) {
        let query_matrix =
            Tensor::from_slice(&to_floats(chunk), (chunk.len(), LENGTH), &Device::Cpu)?;
        let products: Vec<f32> = query_matrix
            .matmul(&reference_transposed)?
            .flatten_all()?
            .to_vec1()?;
        let neighbours: Vec<Neighbours> = products
            .par_chunks_exact(references.len())
            .zip(chunk.par_iter())
            .map(|(row, query)| {
                let query_norm = squared_norm(query);
                let mut nearest = Neighbours {
                    index: 0,
                    best: f32::INFINITY,
                    second: f32::INFINITY,
                };
                for (index, (&product, &norm)) in row.iter().zip(&reference_norms).enumerate() {
                    let distance = query_norm + norm - 2.0 * product;
                    if distance < nearest.best {
                        nearest.second = nearest.best;
                        nearest.best = distance;
                        nearest.index = index as u32;
                    } else if distance < nearest.second {
                        nearest.second = distance;
                    }
                }
                nearest
            })
            .collect();
        result.extend(neighbours);
    }
    Ok(result)
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;

    fn random_descriptors(rng: &mut ChaCha8Rng, count: usize) -> Vec<[u8; LENGTH]> {
        (0..count)
            .map(|_| std::array::from_fn(|_| rng.random_range(0..=120u8)))
            .collect()
    }

    /// Copies of `originals` in reverse order with small seeded perturbations.
    fn perturbed_reverse(rng: &mut ChaCha8Rng, originals: &[[u8; LENGTH]]) -> Vec<[u8; LENGTH]> {
        originals
            .iter()
            .rev()
            .map(|descriptor| {
                descriptor.map(|value| value.saturating_add(rng.random_range(0..4u8)))
            })
            .collect()
    }

    #[test]
    fn perturbed_copies_match_their_originals() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let a = random_descriptors(&mut rng, 300);
        let b = perturbed_reverse(&mut rng, &a);
        let matches = match_descriptors(&a, &b, &MatchOptions::default()).unwrap();
        assert_eq!(matches.len(), 300);
        for found in &matches {
            assert_eq!(found.b as usize, 299 - found.a as usize);
            assert!(found.distance < 0.1, "distance {}", found.distance);
        }
    }

    #[test]
    fn distances_equal_direct_computation() {
        let mut rng = ChaCha8Rng::seed_from_u64(8);
        let a = random_descriptors(&mut rng, 40);
        let b = perturbed_reverse(&mut rng, &a);
        let matches = match_descriptors(&a, &b, &MatchOptions::default()).unwrap();
        assert!(!matches.is_empty());
        for found in matches {
            let direct: u32 = a[found.a as usize]
                .iter()
                .zip(&b[found.b as usize])
                .map(|(&x, &y)| (x as i32 - y as i32).pow(2) as u32)
                .sum();
            let expected = (direct as f32).sqrt() / QUANTISATION_SCALE;
            assert_eq!(found.distance, expected);
        }
    }

    #[test]
    fn ambiguous_match_fails_ratio_test() {
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let a = random_descriptors(&mut rng, 1);
        // Two equally near references: the ratio of distances is 1.
        let mut near = a[0];
        near[0] = near[0].saturating_add(5);
        let mut other = a[0];
        other[1] = other[1].saturating_add(5);
        let matches = match_descriptors(&a, &[near, other], &MatchOptions::default()).unwrap();
        assert!(matches.is_empty(), "{matches:?}");
    }

    #[test]
    fn matching_is_symmetric_with_cross_check() {
        let mut rng = ChaCha8Rng::seed_from_u64(10);
        let a = random_descriptors(&mut rng, 200);
        let mut b = perturbed_reverse(&mut rng, &a[..150]);
        b.extend(random_descriptors(&mut rng, 100));
        let forward = match_descriptors(&a, &b, &MatchOptions::default()).unwrap();
        let mut backward: Vec<(u32, u32)> = match_descriptors(&b, &a, &MatchOptions::default())
            .unwrap()
            .into_iter()
            .map(|found| (found.b, found.a))
            .collect();
        backward.sort_unstable();
        let forward: Vec<(u32, u32)> = forward
            .into_iter()
            .map(|found| (found.a, found.b))
            .collect();
        assert_eq!(forward, backward);
        assert_eq!(forward.len(), 150);
    }

    #[test]
    fn max_distance_filters_matches() {
        let mut rng = ChaCha8Rng::seed_from_u64(12);
        let a = random_descriptors(&mut rng, 100);
        let b = perturbed_reverse(&mut rng, &a);
        let all = match_descriptors(&a, &b, &MatchOptions::default()).unwrap();
        let limit = median_distance(&all);
        let options = MatchOptions {
            max_distance: limit,
            ..MatchOptions::default()
        };
        let limited = match_descriptors(&a, &b, &options).unwrap();
        let expected: Vec<FeatureMatch> = all
            .into_iter()
            .filter(|found| found.distance <= limit)
            .collect();
        assert!(!limited.is_empty());
        assert!(limited.len() < 100, "{} matches", limited.len());
        assert_eq!(limited, expected);
    }

    fn median_distance(matches: &[FeatureMatch]) -> f32 {
        let mut distances: Vec<f32> = matches.iter().map(|found| found.distance).collect();
        distances.sort_by(f32::total_cmp);
        distances[distances.len() / 2]
    }

    #[test]
    fn empty_sets_give_no_matches() {
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let a = random_descriptors(&mut rng, 5);
        assert!(
            match_descriptors(&a, &[], &MatchOptions::default())
                .unwrap()
                .is_empty()
        );
        assert!(
            match_descriptors(&[], &a, &MatchOptions::default())
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn invalid_ratio_is_rejected() {
        for ratio in [0.0, 1.5, f32::NAN] {
            let options = MatchOptions {
                ratio,
                ..MatchOptions::default()
            };
            let error = match_descriptors(&[], &[], &options).unwrap_err();
            assert!(error.to_string().contains("ratio"), "{error}");
        }
    }
}
