//! Voxel-grid down-sampling: one averaged point per occupied cube of a regular grid.

use nalgebra::Vector3;
use rayon::prelude::*;

use super::PointCloud;
use crate::error::{Error, Result};

/// Maximum number of voxels along one axis. Below 2^52 an `f64` still represents every
/// integer exactly, so each point's voxel coordinate is exact and fits an `i64`.
const MAX_VOXELS_PER_AXIS: f64 = 4_503_599_627_370_496.0;

/// Replaces the points in each occupied voxel of edge `voxel_size` by their average.
///
/// The grid starts at the cloud's minimum corner. Each output point averages the positions
/// and colours (rounded to the nearest integer) of its voxel. When the cloud has normals, the
/// output normal is the renormalised sum of the voxel's normals, or the normal of the voxel's
/// first point when the sum is zero (opposite normals cancel). Output points are ordered by
/// voxel coordinate (x, then y, then z), so the result does not depend on the input order of
/// the voxels.
///
/// Returns an error when `voxel_size` is not a positive finite number, when the cloud fails
/// [`PointCloud::validate`], or when the grid would have more than 2^52 voxels along an axis.
pub fn voxel_down_sample(cloud: &PointCloud, voxel_size: f64) -> Result<PointCloud> {
    if !voxel_size.is_finite() || voxel_size <= 0.0 {
        return Err(Error::invalid(
            "voxel size",
            format!("{voxel_size} is not a positive finite number"),
        ));
    }
    cloud.validate()?;
    let Some((min, max)) = cloud.bounding_box() else {
        return Ok(PointCloud {
            normals: cloud.normals.as_ref().map(|_| Vec::new()),
            ..PointCloud::default()
        });
    };
    for (axis, name) in ["x", "y", "z"].into_iter().enumerate() {
        let voxels = (max[axis] - min[axis]) / voxel_size;
        if !voxels.is_finite() || voxels >= MAX_VOXELS_PER_AXIS {
            return Err(Error::invalid(
                "voxel size",
                format!(
                    "{voxel_size} splits the cloud's extent of {} along {name} into more than \
                     2^52 voxels; use a larger voxel size",
                    max[axis] - min[axis]
                ),
            ));
        }
    }

    let mut keyed: Vec<([i64; 3], usize)> = cloud
        .positions
        .par_iter()
        .enumerate()
        .map(|(index, p)| (voxel_key(p, &min, voxel_size), index))
        .collect();
    // Sorting by (key, index) groups each voxel's points in input order, deterministically.
    keyed.par_sort_unstable();

    let groups: Vec<&[([i64; 3], usize)]> = keyed.chunk_by(|a, b| a.0 == b.0).collect();
    let averaged: Vec<VoxelAverage> = groups
        .par_iter()
        .map(|group| average_voxel(cloud, group))
        .collect();

    let mut result = PointCloud {
        positions: Vec::with_capacity(averaged.len()),
        colors: Vec::with_capacity(averaged.len()),
        normals: cloud
            .normals
            .as_ref()
            .map(|_| Vec::with_capacity(averaged.len())),
    };
    for (position, color, normal) in averaged {
        result.positions.push(position);
        result.colors.push(color);
        if let (Some(normals), Some(normal)) = (result.normals.as_mut(), normal) {
            normals.push(normal);
        }
    }
    Ok(result)
}

/// The mean position, colour and (when the cloud has normals) normal of one voxel.
type VoxelAverage = (Vector3<f64>, [u8; 3], Option<Vector3<f64>>);

fn voxel_key(p: &Vector3<f64>, min: &Vector3<f64>, voxel_size: f64) -> [i64; 3] {
    // The extent check bounds each quotient below 2^52, so the casts are exact.
    [
        ((p.x - min.x) / voxel_size).floor() as i64,
        ((p.y - min.y) / voxel_size).floor() as i64,
        ((p.z - min.z) / voxel_size).floor() as i64,
    ]
}

fn average_voxel(cloud: &PointCloud, group: &[([i64; 3], usize)]) -> VoxelAverage {
    let count = group.len() as f64;
    let mut position_sum = Vector3::zeros();
    let mut color_sum = [0u64; 3];
    for &(_, index) in group {
        position_sum += cloud.positions[index];
        for (channel, sum) in color_sum.iter_mut().enumerate() {
            *sum += u64::from(cloud.colors[index][channel]);
        }
    }
    let color = color_sum.map(|sum| (sum as f64 / count).round() as u8);
    let normal = cloud.normals.as_ref().map(|normals| {
        let sum: Vector3<f64> = group.iter().map(|&(_, index)| normals[index]).sum();
        sum.try_normalize(f64::EPSILON)
            .unwrap_or(normals[group[0].1])
    });
    (position_sum / count, color, normal)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;
    use std::collections::BTreeMap;

    fn random_cloud(count: usize, seed: u64) -> PointCloud {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let positions = (0..count)
            .map(|_| {
                Vector3::new(
                    rng.random_range(-1.0..1.0),
                    rng.random_range(0.0..2.0),
                    rng.random_range(5.0..5.5),
                )
            })
            .collect();
        let colors = (0..count).map(|_| rng.random()).collect();
        let normals = (0..count)
            .map(|_| {
                Vector3::new(
                    rng.random_range(0.1..1.0),
                    rng.random_range(-1.0..1.0),
                    rng.random_range(-1.0..1.0),
                )
                .normalize()
            })
            .collect();
        PointCloud {
            positions,
            colors,
            normals: Some(normals),
        }
    }

    #[test]
    fn down_sample_matches_reference_average() {
        let cloud = random_cloud(5000, 1);
        let size = 0.2;
        let sampled = voxel_down_sample(&cloud, size).unwrap();

        // Independent reference: a BTreeMap from voxel key to member indices.
        let (min, _) = cloud.bounding_box().unwrap();
        let mut voxels: BTreeMap<[i64; 3], Vec<usize>> = BTreeMap::new();
        for (i, p) in cloud.positions.iter().enumerate() {
            let key = [0, 1, 2].map(|a| ((p[a] - min[a]) / size).floor() as i64);
            voxels.entry(key).or_default().push(i);
        }
        assert_eq!(sampled.len(), voxels.len());
        assert!(sampled.validate().is_ok());

        let normals = cloud.normals.as_ref().unwrap();
        let sampled_normals = sampled.normals.as_ref().unwrap();
        for (out, members) in voxels.values().enumerate() {
            let n = members.len() as f64;
            let mean: Vector3<f64> = members
                .iter()
                .map(|&i| cloud.positions[i])
                .sum::<Vector3<f64>>()
                / n;
            assert!(
                (sampled.positions[out] - mean).norm() < 1e-12,
                "voxel {out} position"
            );
            for channel in 0..3 {
                let mean_channel = members
                    .iter()
                    .map(|&i| f64::from(cloud.colors[i][channel]))
                    .sum::<f64>()
                    / n;
                assert_eq!(
                    sampled.colors[out][channel],
                    mean_channel.round() as u8,
                    "voxel {out} colour"
                );
            }
            let normal: Vector3<f64> = members
                .iter()
                .map(|&i| normals[i])
                .sum::<Vector3<f64>>()
                .normalize();
            assert!(
                (sampled_normals[out] - normal).norm() < 1e-12,
                "voxel {out} normal"
            );
            assert!((sampled_normals[out].norm() - 1.0).abs() < 1e-12);
        }
    }

    #[test]
    fn down_sample_ignores_input_order() {
        let cloud = random_cloud(2000, 2);
        let reversed: Vec<usize> = (0..cloud.len()).rev().collect();
        let a = voxel_down_sample(&cloud, 0.3).unwrap();
        let b = voxel_down_sample(&cloud.select(&reversed), 0.3).unwrap();
        assert_eq!(a.len(), b.len());
        assert_eq!(a.colors, b.colors);
        for (p, q) in a.positions.iter().zip(&b.positions) {
            assert!((p - q).norm() < 1e-12);
        }
    }

    #[test]
    fn opposite_normals_fall_back_to_first() {
        let cloud = PointCloud {
            positions: vec![Vector3::new(0.0, 0.0, 0.0), Vector3::new(0.1, 0.0, 0.0)],
            colors: vec![[0, 0, 0], [255, 255, 1]],
            normals: Some(vec![Vector3::z(), -Vector3::z()]),
        };
        let sampled = voxel_down_sample(&cloud, 1.0).unwrap();
        assert_eq!(sampled.len(), 1);
        assert_eq!(sampled.positions[0], Vector3::new(0.05, 0.0, 0.0));
        assert_eq!(sampled.colors[0], [128, 128, 1]);
        assert_eq!(sampled.normals.unwrap()[0], Vector3::z());
    }

    #[test]
    fn down_sample_without_normals_or_points() {
        let mut cloud = random_cloud(100, 3);
        cloud.normals = None;
        let sampled = voxel_down_sample(&cloud, 10.0).unwrap();
        assert_eq!(sampled.len(), 1);
        assert_eq!(sampled.normals, None);

        let empty = voxel_down_sample(&PointCloud::default(), 1.0).unwrap();
        assert!(empty.is_empty());
        assert_eq!(empty.normals, None);
    }

    #[test]
    fn invalid_voxel_sizes_are_rejected() {
        let cloud = random_cloud(10, 4);
        for size in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            let message = voxel_down_sample(&cloud, size).unwrap_err().to_string();
            assert!(message.contains("voxel size"), "{message}");
            assert!(message.contains(&format!("{size}")), "{message}");
        }
    }

    #[test]
    fn overflowing_grid_is_rejected() {
        let mut cloud = random_cloud(10, 5);
        cloud.positions[0].y = 1e300;
        cloud.positions[1].y = -1e300;
        let message = voxel_down_sample(&cloud, 1e-3).unwrap_err().to_string();
        assert!(message.contains("along y"), "{message}");
        assert!(message.contains("0.001"), "{message}");

        // The extent itself overflows to infinity here.
        cloud.positions[0].y = f64::MAX;
        cloud.positions[1].y = -f64::MAX;
        let message = voxel_down_sample(&cloud, 1.0).unwrap_err().to_string();
        assert!(message.contains("inf"), "{message}");
    }

    #[test]
    fn invalid_cloud_is_rejected() {
        let mut cloud = random_cloud(10, 6);
        cloud.positions[4].z = f64::NAN;
        let message = voxel_down_sample(&cloud, 0.1).unwrap_err().to_string();
        assert!(message.contains("position 4"), "{message}");
    }
}
