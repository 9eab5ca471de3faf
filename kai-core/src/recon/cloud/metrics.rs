//! Distances between point sets, for scoring a reconstruction against ground truth.

use nalgebra::Vector3;
use rayon::prelude::*;

use super::KdTree;

/// The two directed halves of the Chamfer distance, as mean Euclidean (not squared)
/// nearest-neighbour distances.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChamferDistance {
    /// Mean distance from each point of `a` to its nearest point of `b` (accuracy, when `a`
    /// is the reconstruction).
    pub a_to_b: f64,
    /// Mean distance from each point of `b` to its nearest point of `a` (completeness, when
    /// `b` is the ground truth).
    pub b_to_a: f64,
}

impl ChamferDistance {
    /// Returns the symmetric Chamfer distance, the mean of the two directions.
    pub fn mean(&self) -> f64 {
        0.5 * (self.a_to_b + self.b_to_a)
    }
}

/// Computes the Chamfer distance between two point sets with one k-d tree per set.
///
/// A direction from an empty set is 0, and a direction from a non-empty set to an empty one
/// is infinite. A non-finite point has no nearest point, so a source set containing one
/// yields an infinite distance, while a non-finite point in the target set is ignored.
pub fn chamfer_distance(a: &[Vector3<f64>], b: &[Vector3<f64>]) -> ChamferDistance {
    ChamferDistance {
        a_to_b: mean_nearest_distance(a, &KdTree::new(b)),
        b_to_a: mean_nearest_distance(b, &KdTree::new(a)),
    }
}

fn mean_nearest_distance(from: &[Vector3<f64>], to: &KdTree) -> f64 {
    if from.is_empty() {
        return 0.0;
    }
    let distances: Vec<f64> = from
        .par_iter()
        .map(|p| to.nearest(p).map_or(f64::INFINITY, |(_, d)| d.sqrt()))
        .collect();
    // Summed serially so the result does not depend on the thread count.
    distances.iter().sum::<f64>() / from.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn random_points(count: usize, seed: u64) -> Vec<Vector3<f64>> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        (0..count)
            .map(|_| {
                Vector3::new(
                    rng.random_range(0.0..1.0),
                    rng.random_range(0.0..1.0),
                    rng.random_range(0.0..1.0),
                )
            })
            .collect()
    }

    fn brute_force_mean(from: &[Vector3<f64>], to: &[Vector3<f64>]) -> f64 {
        let total: f64 = from
            .iter()
            .map(|p| {
                to.iter()
                    .map(|q| (p - q).norm())
                    .fold(f64::INFINITY, f64::min)
            })
            .sum();
        total / from.len() as f64
    }

    #[test]
    fn chamfer_matches_brute_force() {
        let a = random_points(700, 1);
        let b = random_points(300, 2);
        let distance = chamfer_distance(&a, &b);
        assert!((distance.a_to_b - brute_force_mean(&a, &b)).abs() < 1e-12);
        assert!((distance.b_to_a - brute_force_mean(&b, &a)).abs() < 1e-12);
        assert!((distance.mean() - 0.5 * (distance.a_to_b + distance.b_to_a)).abs() < 1e-15);
        // More points in b cover a more densely than the reverse.
        assert!(distance.a_to_b > distance.b_to_a);
    }

    #[test]
    fn chamfer_of_shifted_copy_is_the_shift() {
        let a = vec![Vector3::new(0.0, 0.0, 0.0), Vector3::new(10.0, 0.0, 0.0)];
        let b: Vec<Vector3<f64>> = a.iter().map(|p| p + Vector3::new(0.0, 0.0, 0.25)).collect();
        let distance = chamfer_distance(&a, &b);
        assert_eq!(distance.a_to_b, 0.25);
        assert_eq!(distance.b_to_a, 0.25);
        assert_eq!(chamfer_distance(&a, &a).mean(), 0.0);
    }

    #[test]
    fn chamfer_with_empty_sets() {
        let a = random_points(5, 3);
        let one_sided = chamfer_distance(&a, &[]);
        assert_eq!(one_sided.a_to_b, f64::INFINITY);
        assert_eq!(one_sided.b_to_a, 0.0);
        assert_eq!(chamfer_distance(&[], &[]).mean(), 0.0);
    }

    #[test]
    fn chamfer_with_non_finite_points() {
        let mut a = random_points(5, 4);
        let b = random_points(5, 5);
        a[2].x = f64::NAN;
        let distance = chamfer_distance(&a, &b);
        assert_eq!(distance.a_to_b, f64::INFINITY);
        let finite: Vec<Vector3<f64>> = a.iter().copied().filter(|p| p.x.is_finite()).collect();
        assert!((distance.b_to_a - brute_force_mean(&b, &finite)).abs() < 1e-12);
    }
}
