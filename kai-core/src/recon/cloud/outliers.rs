//! Outlier removal by neighbour statistics, as applied to dense clouds before meshing.

use rayon::prelude::*;

use super::{KdTree, PointCloud};
use crate::error::{Error, Result};

/// Returns the indices, in increasing order, of the points whose mean distance to their
/// `neighbors` nearest other points is at most `mean + std_ratio * std`, where the mean and
/// sample standard deviation are taken over all points.
///
/// Points in a cloud with fewer than `neighbors + 1` points use all other points. A cloud
/// with at most one point is kept whole, because no distance exists to judge it by.
///
/// Returns an error when `neighbors` is 0, when `std_ratio` is negative or not finite, or when
/// the cloud fails [`PointCloud::validate`].
pub fn statistical_outliers(
    cloud: &PointCloud,
    neighbors: usize,
    std_ratio: f64,
) -> Result<Vec<usize>> {
    if neighbors == 0 {
        return Err(Error::invalid(
            "outlier neighbors",
            "0 neighbours give no distance; use at least 1",
        ));
    }
    if !std_ratio.is_finite() || std_ratio < 0.0 {
        return Err(Error::invalid(
            "outlier std ratio",
            format!("{std_ratio} is not a finite number of at least 0"),
        ));
    }
    cloud.validate()?;
    if cloud.len() <= 1 {
        return Ok((0..cloud.len()).collect());
    }

    let tree = KdTree::new(&cloud.positions);
    let mean_distances: Vec<f64> = cloud
        .positions
        .par_iter()
        .enumerate()
        .map(|(index, p)| {
            let found = tree.knn_excluding(p, neighbors, Some(index));
            found.iter().map(|&(_, d)| d.sqrt()).sum::<f64>() / found.len() as f64
        })
        .collect();

    // Summed serially so the threshold does not depend on the thread count.
    let count = mean_distances.len() as f64;
    let mean = mean_distances.iter().sum::<f64>() / count;
    let variance = mean_distances
        .iter()
        .map(|d| (d - mean) * (d - mean))
        .sum::<f64>()
        / (count - 1.0);
    let threshold = mean + std_ratio * variance.sqrt();
    Ok(mean_distances
        .iter()
        .enumerate()
        .filter(|&(_, &d)| d <= threshold)
        .map(|(index, _)| index)
        .collect())
}

/// Returns the indices, in increasing order, of the points that have at least
/// `min_neighbors` other points within `radius` (inclusive).
///
/// Other points at the same position count as neighbours. Returns an error when `radius` is
/// not a positive finite number or when the cloud fails [`PointCloud::validate`].
pub fn radius_outliers(
    cloud: &PointCloud,
    radius: f64,
    min_neighbors: usize,
) -> Result<Vec<usize>> {
    if !radius.is_finite() || radius <= 0.0 {
        return Err(Error::invalid(
            "outlier radius",
            format!("{radius} is not a positive finite number"),
        ));
    }
    cloud.validate()?;
    let tree = KdTree::new(&cloud.positions);
    let keep: Vec<bool> = cloud
        .positions
        .par_iter()
        .map(|p| {
            // The point itself is always within the radius, so it must find one more.
            tree.within_radius(p, radius).len() > min_neighbors
        })
        .collect();
    Ok(keep
        .iter()
        .enumerate()
        .filter(|&(_, &kept)| kept)
        .map(|(index, _)| index)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use nalgebra::Vector3;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// Samples a noisy unit sphere of `surface` points followed by `planted` outliers that
    /// lie at least 0.3 away from it, inside the cube of side 4 around it.
    fn sphere_with_outliers(surface: usize, planted: usize, seed: u64) -> PointCloud {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut positions = Vec::with_capacity(surface + planted);
        while positions.len() < surface {
            let v: Vector3<f64> = Vector3::new(
                rng.random_range(-1.0..1.0),
                rng.random_range(-1.0..1.0),
                rng.random_range(-1.0..1.0),
            );
            let norm: f64 = v.norm();
            if norm > 0.1 && norm <= 1.0 {
                let radius = 1.0 + rng.random_range(-0.005..0.005);
                positions.push(v / norm * radius);
            }
        }
        while positions.len() < surface + planted {
            let v: Vector3<f64> = Vector3::new(
                rng.random_range(-2.0..2.0),
                rng.random_range(-2.0..2.0),
                rng.random_range(-2.0..2.0),
            );
            if (v.norm() - 1.0).abs() > 0.3 {
                positions.push(v);
            }
        }
        PointCloud {
            colors: vec![[200, 100, 50]; positions.len()],
            positions,
            normals: None,
        }
    }

    /// Returns (recall, precision) of the removed points as outlier detections, given that
    /// indices from `first_outlier` on are the planted outliers.
    fn recall_precision(kept: &[usize], total: usize, first_outlier: usize) -> (f64, f64) {
        let mut is_kept = vec![false; total];
        for &i in kept {
            is_kept[i] = true;
        }
        let removed: Vec<usize> = (0..total).filter(|&i| !is_kept[i]).collect();
        let true_positives = removed.iter().filter(|&&i| i >= first_outlier).count() as f64;
        let recall = true_positives / (total - first_outlier) as f64;
        let precision = if removed.is_empty() {
            1.0
        } else {
            true_positives / removed.len() as f64
        };
        (recall, precision)
    }

    #[test]
    fn statistical_filter_finds_planted_outliers() {
        let cloud = sphere_with_outliers(4000, 80, 1);
        let kept = statistical_outliers(&cloud, 20, 1.0).unwrap();
        assert!(kept.windows(2).all(|w| w[0] < w[1]));
        let (recall, precision) = recall_precision(&kept, cloud.len(), 4000);
        eprintln!("recall {recall}, precision {precision}");
        assert!(recall >= 0.95, "recall {recall}");
        assert!(precision >= 0.9, "precision {precision}");
    }

    #[test]
    fn radius_filter_finds_planted_outliers() {
        let cloud = sphere_with_outliers(4000, 80, 2);
        // 4000 points on a sphere of area 4 pi give about 22 points within 0.15 of each point.
        let kept = radius_outliers(&cloud, 0.15, 5).unwrap();
        assert!(kept.windows(2).all(|w| w[0] < w[1]));
        let (recall, precision) = recall_precision(&kept, cloud.len(), 4000);
        eprintln!("recall {recall}, precision {precision}");
        assert!(recall >= 0.95, "recall {recall}");
        assert!(precision >= 0.99, "precision {precision}");
    }

    #[test]
    fn statistical_filter_matches_definition() {
        // Four points on a line at 0, 1, 2 and 10: with one neighbour the mean distances are
        // 1, 1, 1 and 8, so mean = 2.75 and sample std = 3.5.
        let positions = [0.0, 1.0, 2.0, 10.0]
            .map(|x| Vector3::new(x, 0.0, 0.0))
            .to_vec();
        let cloud = PointCloud {
            colors: vec![[0; 3]; 4],
            positions,
            normals: None,
        };
        assert_eq!(statistical_outliers(&cloud, 1, 1.0).unwrap(), vec![0, 1, 2]);
        // 2.75 + 1.5 * 3.5 = 8 keeps the far point, exactly at the threshold.
        assert_eq!(
            statistical_outliers(&cloud, 1, 1.5).unwrap(),
            vec![0, 1, 2, 3]
        );
    }

    #[test]
    fn duplicates_count_as_radius_neighbours() {
        let positions = vec![
            Vector3::zeros(),
            Vector3::zeros(),
            Vector3::new(5.0, 0.0, 0.0),
        ];
        let cloud = PointCloud {
            colors: vec![[0; 3]; 3],
            positions,
            normals: None,
        };
        assert_eq!(radius_outliers(&cloud, 0.5, 1).unwrap(), vec![0, 1]);
        assert_eq!(radius_outliers(&cloud, 0.5, 0).unwrap(), vec![0, 1, 2]);
        assert_eq!(radius_outliers(&cloud, 5.0, 2).unwrap(), vec![0, 1, 2]);
    }

    #[test]
    fn tiny_clouds_are_kept() {
        let empty = PointCloud::default();
        assert!(statistical_outliers(&empty, 5, 2.0).unwrap().is_empty());
        assert!(radius_outliers(&empty, 1.0, 5).unwrap().is_empty());
        let single = PointCloud {
            positions: vec![Vector3::zeros()],
            colors: vec![[0; 3]],
            normals: None,
        };
        assert_eq!(statistical_outliers(&single, 5, 2.0).unwrap(), vec![0]);
    }

    #[test]
    fn invalid_parameters_are_rejected() {
        let cloud = sphere_with_outliers(30, 0, 3);
        let message = statistical_outliers(&cloud, 0, 1.0)
            .unwrap_err()
            .to_string();
        assert!(message.contains("outlier neighbors"), "{message}");
        for ratio in [-0.5, f64::NAN, f64::INFINITY] {
            let message = statistical_outliers(&cloud, 5, ratio)
                .unwrap_err()
                .to_string();
            assert!(message.contains(&format!("{ratio}")), "{message}");
        }
        for radius in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            let message = radius_outliers(&cloud, radius, 3).unwrap_err().to_string();
            assert!(message.contains(&format!("{radius} is not")), "{message}");
        }
        let mut bad = cloud.clone();
        bad.colors.pop();
        assert!(statistical_outliers(&bad, 5, 1.0).is_err());
        assert!(radius_outliers(&bad, 1.0, 1).is_err());
    }
}
