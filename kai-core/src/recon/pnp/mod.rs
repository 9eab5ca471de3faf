//! Absolute pose from 2D-3D correspondences (perspective-n-point).
//!
//! [`estimate_absolute_pose`] runs seeded RANSAC over the P3P minimal solver in [`p3p`],
//! scores hypotheses with MSAC (each correspondence costs its squared reprojection error,
//! truncated at the squared threshold), re-estimates every new best hypothesis from its
//! inliers (local optimisation) and stops adaptively. The winner is refined over its
//! inliers by [`refine_absolute_pose`]. Image points are undistorted normalized
//! coordinates, so thresholds are in normalized units (pixels divided by the focal length).

mod p3p;
mod refine;
#[cfg(test)]
mod tests;

use nalgebra::{Vector2, Vector3};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

pub use p3p::p3p;
pub use refine::{PoseRefineOptions, refine_absolute_pose};

use crate::error::{Error, Result};
use crate::recon::pose::Pose;

/// Correspondences needed at least: three for the minimal solver, one more to tell its
/// up to four solutions apart.
pub const MIN_CORRESPONDENCES: usize = 4;

/// Settings of [`estimate_absolute_pose`].
#[derive(Debug, Clone, PartialEq)]
pub struct PnpOptions {
    /// Inlier threshold on the reprojection error, in normalized units.
    pub max_error: f64,
    /// Probability that at least one sample was free of outliers when sampling stops.
    pub confidence: f64,
    /// Samples drawn at least, even when the adaptive count is lower.
    pub min_iterations: usize,
    /// Samples drawn at most.
    pub max_iterations: usize,
    /// Seed of the ChaCha8 generator that draws the samples.
    pub seed: u64,
    /// Re-estimates every new best pose from its inliers (LO-RANSAC).
    pub local_optimization: bool,
}

impl Default for PnpOptions {
    fn default() -> Self {
        Self {
            max_error: 4.0 / 1000.0,
            confidence: 0.9999,
            min_iterations: 50,
            max_iterations: 10_000,
            seed: 0,
            local_optimization: true,
        }
    }
}

/// The result of [`estimate_absolute_pose`].
#[derive(Debug, Clone, PartialEq)]
pub struct AbsolutePose {
    /// World-to-camera pose.
    pub pose: Pose,
    /// For each correspondence, whether its reprojection error is within the threshold.
    pub inliers: Vec<bool>,
    /// Number of `true` entries in `inliers`.
    pub num_inliers: usize,
}

/// Local-optimisation rounds per new best hypothesis.
const LO_ROUNDS: usize = 3;
/// Gauss–Newton iterations inside one local-optimisation round.
const LO_ITERATIONS: usize = 5;

/// Estimates the world-to-camera pose that projects `points3d` (world coordinates) onto
/// `points2d` (undistorted normalized coordinates), robust to outliers.
///
/// Fails when fewer than [`MIN_CORRESPONDENCES`] are given, the lengths differ, a value is
/// not finite, the options are out of range, the 3D points are collinear, or no sample
/// yields a pose with at least [`MIN_CORRESPONDENCES`] inliers.
pub fn estimate_absolute_pose(
    points2d: &[Vector2<f64>],
    points3d: &[Vector3<f64>],
    options: &PnpOptions,
) -> Result<AbsolutePose> {
    validate(points2d, points3d, options)?;
    let n = points2d.len();
    let threshold2 = options.max_error * options.max_error;
    let mut rng = ChaCha8Rng::seed_from_u64(options.seed);

    let mut best: Option<(Pose, f64)> = None;
    let mut required = options.max_iterations;
    let mut iteration = 0;
    while iteration
        < options
            .max_iterations
            .min(required.max(options.min_iterations))
    {
        iteration += 1;
        let sample = rand::seq::index::sample(&mut rng, n, 3);
        let (i, j, k) = (sample.index(0), sample.index(1), sample.index(2));
        let hypotheses = p3p(
            &[points2d[i], points2d[j], points2d[k]],
            &[points3d[i], points3d[j], points3d[k]],
        );
        for hypothesis in hypotheses {
            let (score, inliers) = msac_score(points2d, points3d, &hypothesis, threshold2);
            if best.as_ref().is_some_and(|(_, s)| score >= *s) {
                continue;
            }
            let (pose, score, inliers) = if options.local_optimization {
                local_optimization(points2d, points3d, hypothesis, score, inliers, threshold2)
            } else {
                (hypothesis, score, inliers)
            };
            best = Some((pose, score));
            required = required_iterations(inliers, n, options.confidence);
        }
    }

    let Some((pose, score)) = best else {
        return Err(Error::invalid(
            "points3d",
            format!("no pose found from {n} correspondences: every sample was degenerate"),
        ));
    };
    // Final refinement over the inliers, robust to the ones near the threshold.
    let inlier_indices = inlier_indices(points2d, points3d, &pose, threshold2);
    let refined = if inlier_indices.len() >= MIN_CORRESPONDENCES {
        let refine_options = PoseRefineOptions {
            huber_scale: Some(options.max_error),
            ..PoseRefineOptions::default()
        };
        refine::refine_indices(points2d, points3d, &inlier_indices, &pose, &refine_options)
    } else {
        pose
    };
    let (refined_score, _) = msac_score(points2d, points3d, &refined, threshold2);
    let pose = if refined_score <= score {
        refined
    } else {
        pose
    };

    let inliers: Vec<bool> = (0..n)
        .map(|i| squared_error(&pose, &points2d[i], &points3d[i]) < threshold2)
        .collect();
    let num_inliers = inliers.iter().filter(|&&b| b).count();
    if num_inliers < MIN_CORRESPONDENCES {
        return Err(Error::invalid(
            "points2d",
            format!(
                "no pose found: the best pose has {num_inliers} of {n} inliers within \
                 max_error {} (need {MIN_CORRESPONDENCES})",
                options.max_error
            ),
        ));
    }
    Ok(AbsolutePose {
        pose,
        inliers,
        num_inliers,
    })
}

fn validate(
    points2d: &[Vector2<f64>],
    points3d: &[Vector3<f64>],
    options: &PnpOptions,
) -> Result<()> {
    if points2d.len() != points3d.len() {
        return Err(Error::invalid(
            "points2d",
            format!(
                "{} 2D points but {} 3D points; they must pair up",
                points2d.len(),
                points3d.len()
            ),
        ));
    }
    if points2d.len() < MIN_CORRESPONDENCES {
        return Err(Error::invalid(
            "points2d",
            format!(
                "{} correspondences; absolute pose needs at least {MIN_CORRESPONDENCES}",
                points2d.len()
            ),
        ));
    }
    if let Some(i) = points2d
        .iter()
        .position(|p| !p.iter().all(|v| v.is_finite()))
    {
        return Err(Error::invalid(
            "points2d",
            format!("point {i} is not finite: {:?}", points2d[i]),
        ));
    }
    if let Some(i) = points3d
        .iter()
        .position(|p| !p.iter().all(|v| v.is_finite()))
    {
        return Err(Error::invalid(
            "points3d",
            format!("point {i} is not finite: {:?}", points3d[i]),
        ));
    }
    if !(options.max_error.is_finite() && options.max_error > 0.0) {
        return Err(Error::invalid(
            "max_error",
            format!("{} must be a positive finite number", options.max_error),
        ));
    }
    if !(options.confidence > 0.0 && options.confidence < 1.0) {
        return Err(Error::invalid(
            "confidence",
            format!("{} must lie strictly between 0 and 1", options.confidence),
        ));
    }
    if options.max_iterations == 0 {
        return Err(Error::invalid(
            "max_iterations",
            "0; at least one sample is needed",
        ));
    }
    if are_collinear(points3d) {
        return Err(Error::invalid(
            "points3d",
            "all points are collinear (or coincide), so the rotation about their line is undetermined",
        ));
    }
    Ok(())
}

/// True when the points' spread perpendicular to their main direction is negligible.
fn are_collinear(points: &[Vector3<f64>]) -> bool {
    let mean = points.iter().sum::<Vector3<f64>>() / points.len() as f64;
    let mut scatter = nalgebra::Matrix3::zeros();
    for p in points {
        let d = p - mean;
        scatter += d * d.transpose();
    }
    let mut eigenvalues = scatter.symmetric_eigenvalues();
    eigenvalues
        .as_mut_slice()
        .sort_by(|a, b| b.partial_cmp(a).unwrap_or(std::cmp::Ordering::Equal));
    eigenvalues[0].is_nan() || eigenvalues[0] <= 0.0 || eigenvalues[1] <= 1e-12 * eigenvalues[0]
}

/// Returns the squared reprojection error in normalized units, infinite behind the camera.
fn squared_error(pose: &Pose, point2d: &Vector2<f64>, point3d: &Vector3<f64>) -> f64 {
    let camera = pose.transform(point3d);
    if camera.z <= f64::EPSILON {
        return f64::INFINITY;
    }
    (Vector2::new(camera.x / camera.z, camera.y / camera.z) - point2d).norm_squared()
}

/// Returns the MSAC cost of `pose` and its inlier count.
fn msac_score(
    points2d: &[Vector2<f64>],
    points3d: &[Vector3<f64>],
    pose: &Pose,
    threshold2: f64,
) -> (f64, usize) {
    let mut score = 0.0;
    let mut inliers = 0;
    for (p2, p3) in points2d.iter().zip(points3d) {
        let e = squared_error(pose, p2, p3);
        if e < threshold2 {
            score += e;
            inliers += 1;
        } else {
            score += threshold2;
        }
    }
    (score, inliers)
}

fn inlier_indices(
    points2d: &[Vector2<f64>],
    points3d: &[Vector3<f64>],
    pose: &Pose,
    threshold2: f64,
) -> Vec<usize> {
    (0..points2d.len())
        .filter(|&i| squared_error(pose, &points2d[i], &points3d[i]) < threshold2)
        .collect()
}

/// Re-estimates `pose` from its inliers by a few Gauss–Newton iterations, repeating while
/// the MSAC cost drops.
fn local_optimization(
    points2d: &[Vector2<f64>],
    points3d: &[Vector3<f64>],
    mut pose: Pose,
    mut score: f64,
    mut inliers: usize,
    threshold2: f64,
) -> (Pose, f64, usize) {
    let options = PoseRefineOptions {
        max_iterations: LO_ITERATIONS,
        ..PoseRefineOptions::default()
    };
    for _ in 0..LO_ROUNDS {
        let indices = inlier_indices(points2d, points3d, &pose, threshold2);
        if indices.len() < 6 {
            break;
        }
        let candidate = refine::refine_indices(points2d, points3d, &indices, &pose, &options);
        let (candidate_score, candidate_inliers) =
            msac_score(points2d, points3d, &candidate, threshold2);
        if candidate_score >= score {
            break;
        }
        pose = candidate;
        score = candidate_score;
        inliers = candidate_inliers;
    }
    (pose, score, inliers)
}

/// Samples needed so that one of them is all inliers with probability `confidence`.
fn required_iterations(inliers: usize, total: usize, confidence: f64) -> usize {
    let ratio = inliers as f64 / total as f64;
    let all_inliers = ratio.powi(3);
    if all_inliers >= 1.0 {
        return 0;
    }
    if all_inliers <= 0.0 {
        return usize::MAX;
    }
    let n = (1.0 - confidence).ln() / (1.0 - all_inliers).ln();
    if n.is_finite() {
        n.ceil() as usize
    } else {
        usize::MAX
    }
}
