//! Two-view geometric verification: which putative matches of a pair agree with one
//! epipolar geometry. The pair's relative pose, triangulation angle and homography ratio
//! then rate it as a candidate initial pair.

use std::sync::Mutex;

use nalgebra::Vector2;
use rayon::prelude::*;

use super::extraction::ImageFeatures;
use super::matching::PairMatches;
use super::options::SfmOptions;
use crate::recon::camera::Camera;
use crate::recon::geometry::{
    RansacOptions, RelativePoseOptions, estimate_fundamental, estimate_homography,
    estimate_relative_pose,
};
use crate::recon::pose::Pose;
use crate::recon::progress::{Progress, ProgressFn, Stage};

/// The verified matches of an image pair `a < b` and its two-view geometry.
#[derive(Debug, Clone)]
pub(crate) struct VerifiedPair {
    pub a: usize,
    pub b: usize,
    /// Matches consistent with the pair's fundamental matrix, as `(keypoint in a,
    /// keypoint in b)`.
    pub matches: Vec<(u32, u32)>,
    /// The relative pose from the prior intrinsics, when one was found.
    pub geometry: Option<PairGeometry>,
}

/// The calibrated geometry of a verified pair.
#[derive(Debug, Clone)]
pub(crate) struct PairGeometry {
    /// Camera `a` to camera `b`, with a unit-length translation.
    pub relative_pose: Pose,
    /// Per entry of [`VerifiedPair::matches`]: whether it is an inlier of the essential
    /// matrix.
    pub inliers: Vec<bool>,
    /// Number of `true` entries of `inliers`.
    pub num_inliers: usize,
    /// Median triangulation angle of the inliers, in degrees.
    pub median_angle_deg: f64,
    /// Verified matches that one homography explains, as a fraction of the verified
    /// matches: near 1 for a pure rotation or a planar scene.
    pub homography_ratio: f64,
}

/// Verifies every pair of `pairs` in parallel; `cameras[i]` is the prior intrinsics of
/// image `i`. Returns the pairs with at least `options.min_pair_inliers` verified matches,
/// in the order of `pairs`.
pub(crate) fn verify_all_pairs(
    pairs: &[PairMatches],
    features: &[ImageFeatures],
    cameras: &[Camera],
    options: &SfmOptions,
    progress: ProgressFn,
) -> Vec<VerifiedPair> {
    let total = pairs.len();
    let done = Mutex::new(0usize);
    progress(Progress {
        stage: Stage::Verification,
        done: 0,
        total,
    });
    let verified: Vec<Option<VerifiedPair>> = pairs
        .par_iter()
        .enumerate()
        .map(|(index, pair)| {
            let seed = options.seed.wrapping_add(index as u64);
            let result = verify_pair(pair, features, cameras, options, seed);
            let mut done = done.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            *done += 1;
            progress(Progress {
                stage: Stage::Verification,
                done: *done,
                total,
            });
            result
        })
        .collect();
    verified.into_iter().flatten().collect()
}

fn ransac_options(options: &SfmOptions, max_error: f64, seed: u64) -> RansacOptions {
    RansacOptions {
        max_error,
        confidence: options.ransac_confidence,
        max_iterations: options.ransac_max_iterations,
        seed,
        ..RansacOptions::default()
    }
}

fn verify_pair(
    pair: &PairMatches,
    features: &[ImageFeatures],
    cameras: &[Camera],
    options: &SfmOptions,
    seed: u64,
) -> Option<VerifiedPair> {
    let keypoints_a = &features[pair.a].keypoints;
    let keypoints_b = &features[pair.b].keypoints;
    let pixels_a: Vec<Vector2<f64>> = pair
        .matches
        .iter()
        .map(|&(ka, _)| keypoints_a[ka as usize])
        .collect();
    let pixels_b: Vec<Vector2<f64>> = pair
        .matches
        .iter()
        .map(|&(_, kb)| keypoints_b[kb as usize])
        .collect();

    // The fundamental matrix needs no intrinsics, so a wrong focal length prior cannot
    // reject correct matches here.
    let fundamental = estimate_fundamental(
        &pixels_a,
        &pixels_b,
        &ransac_options(options, options.ransac_threshold_px, seed),
    )
    .ok()?;
    if fundamental.num_inliers < options.min_pair_inliers {
        return None;
    }
    let keep: Vec<usize> = (0..pair.matches.len())
        .filter(|&i| fundamental.inliers[i])
        .collect();
    let matches: Vec<(u32, u32)> = keep.iter().map(|&i| pair.matches[i]).collect();
    let inlier_a: Vec<Vector2<f64>> = keep.iter().map(|&i| pixels_a[i]).collect();
    let inlier_b: Vec<Vector2<f64>> = keep.iter().map(|&i| pixels_b[i]).collect();

    let geometry = pair_geometry(
        &inlier_a,
        &inlier_b,
        &cameras[pair.a],
        &cameras[pair.b],
        options,
        seed,
    );
    Some(VerifiedPair {
        a: pair.a,
        b: pair.b,
        matches,
        geometry,
    })
}

fn pair_geometry(
    pixels_a: &[Vector2<f64>],
    pixels_b: &[Vector2<f64>],
    camera_a: &Camera,
    camera_b: &Camera,
    options: &SfmOptions,
    seed: u64,
) -> Option<PairGeometry> {
    let normalized_a: Vec<Vector2<f64>> = pixels_a
        .iter()
        .map(|p| camera_a.pixel_to_normalized(p))
        .collect();
    let normalized_b: Vec<Vector2<f64>> = pixels_b
        .iter()
        .map(|p| camera_b.pixel_to_normalized(p))
        .collect();
    let focal = 0.5 * (camera_a.mean_focal() + camera_b.mean_focal());
    let relative = estimate_relative_pose(
        &normalized_a,
        &normalized_b,
        &RelativePoseOptions {
            ransac: ransac_options(options, options.ransac_threshold_px / focal, seed),
            min_num_inliers: options.min_pair_inliers.min(pixels_a.len()),
            // The angle is judged by initial pair selection, which reports it.
            min_median_triangulation_angle_deg: 0.0,
            refine: true,
        },
    )
    .ok()?;
    let homography_inliers = estimate_homography(
        pixels_a,
        pixels_b,
        &ransac_options(options, options.ransac_threshold_px, seed),
    )
    .map_or(0, |estimate| estimate.num_inliers);
    Some(PairGeometry {
        relative_pose: relative.pose,
        inliers: relative.inliers,
        num_inliers: relative.num_inliers,
        median_angle_deg: relative.median_triangulation_angle_deg,
        homography_ratio: homography_inliers as f64 / pixels_a.len() as f64,
    })
}
