//! Robust estimation of two-view models from correspondences: the relative pose through
//! the essential matrix, the fundamental matrix and the homography.
//!
//! The relative pose runs RANSAC with the 5-point solver. Of the four poses of the
//! essential matrix it picks the one that puts the most inliers in front of both cameras
//! (cheirality). It then refines rotation and translation direction by Gauss-Newton on the
//! Sampson errors of the inliers.

use nalgebra::{Matrix3, Rotation3, SMatrix, SVector, Vector2, Vector3};

use super::essential::{EssentialEstimator, decompose_essential, essential_from_pose};
use super::fundamental::{FundamentalEstimator, sampson_error};
use super::homography::{Homography, HomographyEstimator};
use super::ransac::{Estimator, RansacOptions, ransac};
use super::triangulate::{triangulation_angle_deg, two_view_depths};
use crate::error::{Error, Result};
use crate::recon::pose::Pose;

/// Settings of [`estimate_relative_pose`].
#[derive(Debug, Clone, PartialEq)]
pub struct RelativePoseOptions {
    /// RANSAC settings; `ransac.max_error` is the Sampson error threshold in normalized
    /// units (pixels divided by the focal length).
    pub ransac: RansacOptions,
    /// Minimum number of inliers in front of both cameras for the pose to be returned.
    pub min_num_inliers: usize,
    /// Smallest median triangulation angle, in degrees, of the inliers in front of both
    /// cameras. Pairs below it are (close to) a pure rotation, whose translation is
    /// unreliable, and fail with an error.
    pub min_median_triangulation_angle_deg: f64,
    /// Refines the pose on the inliers by minimising their Sampson errors.
    pub refine: bool,
}

impl Default for RelativePoseOptions {
    fn default() -> Self {
        Self {
            ransac: RansacOptions {
                // 1 px at a focal length of 1000 px; callers pass pixels / focal length.
                max_error: 1e-3,
                ..RansacOptions::default()
            },
            min_num_inliers: 15,
            min_median_triangulation_angle_deg: 0.5,
            refine: true,
        }
    }
}

/// The relative pose of two cameras estimated from correspondences.
#[derive(Debug, Clone)]
pub struct RelativePose {
    /// Camera 1 to camera 2: `x_cam2 = R x_cam1 + t`, with `|t| = 1` because the scale is
    /// unobservable from two views.
    pub pose: Pose,
    /// The essential matrix `[t]ₓ R` of `pose`, with singular values `(1, 1, 0)`.
    pub essential: Matrix3<f64>,
    /// Per correspondence: whether its Sampson error under `essential` is within the
    /// threshold.
    pub inliers: Vec<bool>,
    /// Number of `true` entries in `inliers`.
    pub num_inliers: usize,
    /// Inliers whose triangulation lies in front of both cameras.
    pub num_in_front: usize,
    /// Median triangulation angle in degrees of the inliers in front of both cameras.
    pub median_triangulation_angle_deg: f64,
    /// RANSAC samples drawn.
    pub num_iterations: usize,
}

/// A fundamental matrix estimated with RANSAC.
#[derive(Debug, Clone)]
pub struct FundamentalEstimate {
    /// `F` with `x2ᵀ F x1 = 0`, rank 2 and unit Frobenius norm.
    pub matrix: Matrix3<f64>,
    /// Per correspondence: whether its Sampson error is within the threshold.
    pub inliers: Vec<bool>,
    /// Number of `true` entries in `inliers`.
    pub num_inliers: usize,
}

/// A homography estimated with RANSAC.
#[derive(Debug, Clone)]
pub struct HomographyEstimate {
    /// The homography `x2 ∝ H x1` and its inverse.
    pub homography: Homography,
    /// Per correspondence: whether its symmetric transfer error is within the threshold.
    pub inliers: Vec<bool>,
    /// Number of `true` entries in `inliers`.
    pub num_inliers: usize,
}

/// Checks lengths, finiteness and count of the correspondences.
fn validate(x1: &[Vector2<f64>], x2: &[Vector2<f64>], min_count: usize, model: &str) -> Result<()> {
    if x1.len() != x2.len() {
        return Err(Error::invalid(
            "x2",
            format!(
                "has {} points but x1 has {}; correspondences come in pairs",
                x2.len(),
                x1.len()
            ),
        ));
    }
    if x1.len() < min_count {
        return Err(Error::invalid(
            "x1",
            format!(
                "{} correspondences given, a {model} needs at least {min_count}",
                x1.len()
            ),
        ));
    }
    for (name, points) in [("x1", x1), ("x2", x2)] {
        if let Some(i) = points
            .iter()
            .position(|p| !p.x.is_finite() || !p.y.is_finite())
        {
            return Err(Error::invalid(
                format!("{name}[{i}]"),
                format!(
                    "coordinate ({}, {}) is not finite",
                    points[i].x, points[i].y
                ),
            ));
        }
    }
    Ok(())
}

fn validate_ransac_options(options: &RansacOptions) -> Result<()> {
    if !options.max_error.is_finite() || options.max_error <= 0.0 {
        return Err(Error::invalid(
            "max_error",
            format!("{} is not a positive finite threshold", options.max_error),
        ));
    }
    if !(0.0..1.0).contains(&options.confidence) {
        return Err(Error::invalid(
            "confidence",
            format!("{} is outside [0, 1)", options.confidence),
        ));
    }
    Ok(())
}

fn no_model_error(model: &str, count: usize) -> Error {
    Error::invalid(
        "correspondences",
        format!(
            "no {model} with enough inliers was found among {count} correspondences; \
             they may be mostly outliers or degenerate (duplicated or collinear points)"
        ),
    )
}

/// Estimates the relative pose of camera 2 with respect to camera 1 from correspondences
/// `x1[i] ↔ x2[i]` in undistorted normalized coordinates.
///
/// Fails with [`Error::InvalidInput`] for mismatched lengths, fewer than five
/// correspondences, non-finite coordinates, no essential matrix with enough inliers, fewer
/// than `options.min_num_inliers` inliers in front of both cameras, or a median
/// triangulation angle below `options.min_median_triangulation_angle_deg` (pure rotation).
pub fn estimate_relative_pose(
    x1: &[Vector2<f64>],
    x2: &[Vector2<f64>],
    options: &RelativePoseOptions,
) -> Result<RelativePose> {
    validate(
        x1,
        x2,
        EssentialEstimator::MIN_SAMPLE_SIZE,
        "essential matrix",
    )?;
    validate_ransac_options(&options.ransac)?;
    let estimator = EssentialEstimator { x1, x2 };
    let result = ransac(&estimator, &options.ransac)
        .ok_or_else(|| no_model_error("essential matrix", x1.len()))?;
    if result.num_inliers < options.min_num_inliers {
        return Err(Error::invalid(
            "correspondences",
            format!(
                "the best essential matrix has {} inliers, fewer than the minimum {}",
                result.num_inliers, options.min_num_inliers
            ),
        ));
    }

    let (mut rotation, mut translation) =
        choose_pose_by_cheirality(&result.model, x1, x2, &result.inliers)
            .ok_or_else(|| no_model_error("essential matrix", x1.len()))?;
    let threshold_sq = options.ransac.max_error * options.ransac.max_error;
    let mut inliers = result.inliers;
    if options.refine {
        let (refined_rotation, refined_translation) =
            refine_pose(&rotation, &translation, x1, x2, &inliers, threshold_sq);
        rotation = refined_rotation;
        translation = refined_translation;
        let essential = essential_from_pose(&rotation, &translation);
        for (i, inlier) in inliers.iter_mut().enumerate() {
            *inlier = sampson_error(&essential, &x1[i], &x2[i]) <= threshold_sq;
        }
    }
    let essential = essential_from_pose(&rotation, &translation);
    let num_inliers = inliers.iter().filter(|&&inlier| inlier).count();

    let center2 = -(rotation.inverse() * translation);
    let mut angles = Vec::with_capacity(num_inliers);
    for (i, _) in inliers.iter().enumerate().filter(|(_, inlier)| **inlier) {
        if let Some((depth1, depth2)) = two_view_depths(&rotation, &translation, &x1[i], &x2[i])
            && depth1 > 0.0
            && depth2 > 0.0
        {
            let point = Vector3::new(x1[i].x, x1[i].y, 1.0) * depth1;
            angles.push(triangulation_angle_deg(&Vector3::zeros(), &center2, &point));
        }
    }
    let num_in_front = angles.len();
    if num_in_front < options.min_num_inliers {
        return Err(Error::invalid(
            "correspondences",
            format!(
                "only {num_in_front} of {num_inliers} inliers triangulate in front of both cameras, \
                 fewer than the minimum {}",
                options.min_num_inliers
            ),
        ));
    }
    let median = median(&mut angles);
    if median.is_nan() || median < options.min_median_triangulation_angle_deg {
        return Err(Error::invalid(
            "correspondences",
            format!(
                "the median triangulation angle of the inliers is {median:.3} degrees, below the \
                 minimum {} degrees; the cameras share (nearly) one centre, so the translation \
                 cannot be recovered",
                options.min_median_triangulation_angle_deg
            ),
        ));
    }

    Ok(RelativePose {
        pose: Pose::from_matrix(&rotation, translation),
        essential,
        inliers,
        num_inliers,
        num_in_front,
        median_triangulation_angle_deg: median,
        num_iterations: result.num_iterations,
    })
}

fn median(values: &mut [f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let middle = values.len() / 2;
    let (_, value, _) = values.select_nth_unstable_by(middle, f64::total_cmp);
    *value
}

/// Returns the decomposition of `essential` that puts the most inliers in front of both cameras,
/// with unit translation.
pub fn choose_pose_by_cheirality(
    essential: &Matrix3<f64>,
    x1: &[Vector2<f64>],
    x2: &[Vector2<f64>],
    inliers: &[bool],
) -> Option<(Rotation3<f64>, Vector3<f64>)> {
    let candidates = decompose_essential(essential)?;
    let mut best: Option<(usize, Rotation3<f64>, Vector3<f64>)> = None;
    for (rotation, translation) in candidates {
        let count = inliers
            .iter()
            .enumerate()
            .filter(|(i, inlier)| {
                **inlier
                    && two_view_depths(&rotation, &translation, &x1[*i], &x2[*i])
                        .is_some_and(|(depth1, depth2)| depth1 > 0.0 && depth2 > 0.0)
            })
            .count();
        if best
            .as_ref()
            .is_none_or(|(best_count, _, _)| count > *best_count)
        {
            best = Some((count, rotation, translation));
        }
    }
    best.map(|(_, rotation, translation)| (rotation, translation.normalize()))
}

/// Returns the signed Sampson residual of one correspondence.
#[inline]
fn signed_sampson(e: &Matrix3<f64>, x1: &Vector2<f64>, x2: &Vector2<f64>) -> f64 {
    let p1 = Vector3::new(x1.x, x1.y, 1.0);
    let p2 = Vector3::new(x2.x, x2.y, 1.0);
    let ex1 = e * p1;
    let etx2 = e.tr_mul(&p2);
    let denominator = ex1.x * ex1.x + ex1.y * ex1.y + etx2.x * etx2.x + etx2.y * etx2.y;
    if denominator.is_nan() || denominator <= 0.0 {
        return 0.0;
    }
    p2.dot(&ex1) / denominator.sqrt()
}

/// Returns the pose after applying the 5-vector `delta`: a rotation increment (angle-axis, applied
/// on the left) and a step of the translation direction in its tangent plane.
fn perturb(
    rotation: &Rotation3<f64>,
    translation: &Vector3<f64>,
    tangent: &[Vector3<f64>; 2],
    delta: &SVector<f64, 5>,
) -> (Rotation3<f64>, Vector3<f64>) {
    let increment = Rotation3::from_scaled_axis(Vector3::new(delta[0], delta[1], delta[2]));
    let moved = translation + tangent[0] * delta[3] + tangent[1] * delta[4];
    (increment * rotation, moved.normalize())
}

/// Gauss-Newton steps of the pose refinement; on the scenes of the tests it converges in
/// fewer.
const REFINE_ITERATIONS: usize = 10;

/// Refines a relative pose by Gauss-Newton (with step halving) on the Sampson residuals of
/// the inliers, over its five degrees of freedom. Returns the input when no step lowers the
/// cost.
fn refine_pose(
    rotation: &Rotation3<f64>,
    translation: &Vector3<f64>,
    x1: &[Vector2<f64>],
    x2: &[Vector2<f64>],
    inliers: &[bool],
    threshold_sq: f64,
) -> (Rotation3<f64>, Vector3<f64>) {
    let indices: Vec<usize> = (0..inliers.len()).filter(|&i| inliers[i]).collect();
    if indices.len() < 6 {
        return (*rotation, *translation);
    }
    // Residuals beyond the inlier threshold get Huber weights so that a wrongly kept
    // inlier cannot drag the solution.
    let huber = threshold_sq.sqrt();
    let cost_of = |r: &Rotation3<f64>, t: &Vector3<f64>| -> f64 {
        let e = essential_from_pose(r, t);
        indices
            .iter()
            .map(|&i| {
                let residual = signed_sampson(&e, &x1[i], &x2[i]).abs();
                if residual <= huber {
                    residual * residual
                } else {
                    huber * (2.0 * residual - huber)
                }
            })
            .sum()
    };
    let mut rotation = *rotation;
    let mut translation = *translation;
    let mut cost = cost_of(&rotation, &translation);

    // Forward differences with this step give the Jacobian of the residuals.
    let step = 1e-7;
    for _ in 0..REFINE_ITERATIONS {
        let tangent = tangent_basis(&translation);
        let e0 = essential_from_pose(&rotation, &translation);
        let perturbed: [Matrix3<f64>; 5] = std::array::from_fn(|k| {
            let mut delta = SVector::<f64, 5>::zeros();
            delta[k] = step;
            let (r, t) = perturb(&rotation, &translation, &tangent, &delta);
            essential_from_pose(&r, &t)
        });

        let mut jtj = SMatrix::<f64, 5, 5>::zeros();
        let mut jtr = SVector::<f64, 5>::zeros();
        for &i in &indices {
            let residual = signed_sampson(&e0, &x1[i], &x2[i]);
            let weight = if residual.abs() <= huber {
                1.0
            } else {
                huber / residual.abs()
            };
            let jacobian = SVector::<f64, 5>::from_fn(|k, _| {
                (signed_sampson(&perturbed[k], &x1[i], &x2[i]) - residual) / step
            });
            jtj.ger(weight, &jacobian, &jacobian, 1.0);
            jtr += jacobian * (weight * residual);
        }

        // Solve the normal equations; then halve the step until the cost decreases.
        let Some(delta) = jtj.cholesky().map(|c| -c.solve(&jtr)) else {
            break;
        };

        let mut scale = 1.0;
        let mut accepted = false;
        for _ in 0..5 {
            let (r, t) = perturb(&rotation, &translation, &tangent, &(delta * scale));
            let new_cost = cost_of(&r, &t);
            if new_cost < cost {
                let relative_decrease = (cost - new_cost) / cost.max(f64::MIN_POSITIVE);
                rotation = r;
                translation = t;
                cost = new_cost;
                // Further steps would change the pose far less than the noise does.
                accepted = relative_decrease > 1e-6;
                break;
            }
            scale *= 0.5;
        }
        if !accepted {
            break;
        }
    }
    (rotation, translation)
}

/// Two unit vectors orthogonal to `t` and to each other.
fn tangent_basis(t: &Vector3<f64>) -> [Vector3<f64>; 2] {
    let axis = if t.x.abs() < 0.9 {
        Vector3::x()
    } else {
        Vector3::y()
    };
    let b1 = t.cross(&axis).normalize();
    let b2 = t.cross(&b1).normalize();
    [b1, b2]
}

/// Estimates a fundamental matrix with RANSAC (8-point samples, MSAC, local optimisation)
/// from correspondences in any consistent coordinates. `options.max_error` is the Sampson
/// error threshold in those units.
///
/// Fails with [`Error::InvalidInput`] for mismatched lengths, fewer than eight
/// correspondences, non-finite coordinates or no fundamental matrix with enough inliers.
pub fn estimate_fundamental(
    x1: &[Vector2<f64>],
    x2: &[Vector2<f64>],
    options: &RansacOptions,
) -> Result<FundamentalEstimate> {
    validate(
        x1,
        x2,
        FundamentalEstimator::MIN_SAMPLE_SIZE,
        "fundamental matrix",
    )?;
    validate_ransac_options(options)?;
    let result = ransac(&FundamentalEstimator { x1, x2 }, options)
        .ok_or_else(|| no_model_error("fundamental matrix", x1.len()))?;
    Ok(FundamentalEstimate {
        matrix: result.model / result.model.norm(),
        inliers: result.inliers,
        num_inliers: result.num_inliers,
    })
}

/// Estimates a homography with RANSAC (4-point samples, MSAC, local optimisation) from
/// correspondences in any consistent coordinates. `options.max_error` is the threshold on
/// the square root of the symmetric transfer error in those units.
///
/// Fails with [`Error::InvalidInput`] for mismatched lengths, fewer than four
/// correspondences, non-finite coordinates or no homography with enough inliers.
pub fn estimate_homography(
    x1: &[Vector2<f64>],
    x2: &[Vector2<f64>],
    options: &RansacOptions,
) -> Result<HomographyEstimate> {
    validate(x1, x2, HomographyEstimator::MIN_SAMPLE_SIZE, "homography")?;
    validate_ransac_options(options)?;
    let result = ransac(&HomographyEstimator { x1, x2 }, options)
        .ok_or_else(|| no_model_error("homography", x1.len()))?;
    Ok(HomographyEstimate {
        homography: result.model,
        inliers: result.inliers,
        num_inliers: result.num_inliers,
    })
}

/// Returns the angle in degrees between two translation directions.
#[cfg(test)]
fn direction_error_deg(a: &Vector3<f64>, b: &Vector3<f64>) -> f64 {
    (a.normalize().dot(&b.normalize()))
        .clamp(-1.0, 1.0)
        .acos()
        .to_degrees()
}

#[cfg(test)]
mod tests {
    use super::super::test_scenes::{FOCAL, TwoViewScene};
    use super::*;
    use nalgebra::UnitQuaternion;
    use std::time::Instant;

    fn options() -> RelativePoseOptions {
        RelativePoseOptions {
            ransac: RansacOptions {
                // 1 px at the scene's focal length.
                max_error: 1.0 / FOCAL,
                seed: 42,
                ..RansacOptions::default()
            },
            ..RelativePoseOptions::default()
        }
    }

    #[test]
    fn relative_pose_accurate_with_outliers() {
        // Ten scenes of 1,000 matches, half of them outliers, 0.5 px Gaussian noise. The
        // error of a single scene varies a lot (rotation and translation trade off along a
        // shallow valley), so the tight bounds apply to the median and every scene gets a
        // bound that only catches a wrong solution.
        let mut rotation_errors = Vec::new();
        let mut translation_errors = Vec::new();
        for seed in 0..10 {
            let scene = TwoViewScene::new(200 + seed, 1000, 0.5, 0.5);
            let estimate =
                estimate_relative_pose(&scene.x1, &scene.x2, &options()).expect("relative pose");
            let rotation_error = estimate
                .pose
                .rotation
                .angle_to(&scene.pose2.rotation)
                .to_degrees();
            let translation_error =
                direction_error_deg(&estimate.pose.translation, &scene.pose2.translation);
            assert!(
                rotation_error < 0.3,
                "seed {seed}: rotation error {rotation_error} deg"
            );
            assert!(
                translation_error < 1.5,
                "seed {seed}: translation error {translation_error} deg"
            );
            assert!((estimate.pose.translation.norm() - 1.0).abs() < 1e-9);
            // With a 1 px threshold (2 sigma) about 5% of the true inliers fall outside,
            // and outliers near their epipolar line by chance fall inside.
            let true_inliers = scene.is_outlier.iter().filter(|&&o| !o).count();
            let found_true = (0..scene.x1.len())
                .filter(|&i| estimate.inliers[i] && !scene.is_outlier[i])
                .count();
            assert!(
                found_true as f64 >= 0.9 * true_inliers as f64,
                "seed {seed}: {found_true} of {true_inliers} inliers found"
            );
            let wrong = estimate.num_inliers - found_true;
            assert!(
                wrong as f64 <= 0.03 * true_inliers as f64,
                "seed {seed}: {wrong} outliers accepted"
            );
            assert!(
                estimate.num_in_front >= found_true.saturating_sub(5),
                "seed {seed}: {} in front",
                estimate.num_in_front
            );
            assert!(
                estimate.median_triangulation_angle_deg > 1.0,
                "seed {seed}: angle {}",
                estimate.median_triangulation_angle_deg
            );
            rotation_errors.push(rotation_error);
            translation_errors.push(translation_error);
        }
        let median_rotation = median(&mut rotation_errors);
        let median_translation = median(&mut translation_errors);
        assert!(
            median_rotation < 0.1,
            "median rotation error {median_rotation} deg"
        );
        assert!(
            median_translation < 0.5,
            "median translation error {median_translation} deg"
        );
    }

    #[test]
    fn relative_pose_repeats_with_same_seed() {
        let scene = TwoViewScene::new(300, 400, 0.5, 0.3);
        let a = estimate_relative_pose(&scene.x1, &scene.x2, &options()).expect("relative pose");
        let b = estimate_relative_pose(&scene.x1, &scene.x2, &options()).expect("relative pose");
        assert_eq!(a.pose, b.pose);
        assert_eq!(a.inliers, b.inliers);
        assert_eq!(a.num_iterations, b.num_iterations);
    }

    #[test]
    fn relative_pose_fast_on_thousand_matches() {
        let scene = TwoViewScene::new(301, 1000, 0.5, 0.25);
        let start = Instant::now();
        let estimate =
            estimate_relative_pose(&scene.x1, &scene.x2, &options()).expect("relative pose");
        let elapsed = start.elapsed();
        let rotation_error = estimate
            .pose
            .rotation
            .angle_to(&scene.pose2.rotation)
            .to_degrees();
        assert!(rotation_error < 0.1, "rotation error {rotation_error} deg");
        // Debug builds are about 20 times slower than release builds; the release target
        // is well under 10 ms.
        let limit_ms = if cfg!(debug_assertions) { 1000 } else { 10 };
        assert!(elapsed.as_millis() < limit_ms, "took {elapsed:?}");
    }

    #[test]
    fn relative_pose_rejects_pure_rotation() {
        // Every point on a plane, camera 2 only rotated: an essential matrix fits any
        // translation, and the triangulation angles are near zero.
        let scene = TwoViewScene::new(302, 200, 0.5, 0.0);
        let rotation = scene.pose2.rotation;
        let x2: Vec<Vector2<f64>> = scene
            .x1
            .iter()
            .map(|p| {
                let ray = rotation * Vector3::new(p.x, p.y, 1.0);
                Vector2::new(ray.x / ray.z, ray.y / ray.z)
            })
            .collect();
        let error = estimate_relative_pose(&scene.x1, &x2, &options()).expect_err("pure rotation");
        assert_eq!(error.kind(), crate::error::ErrorKind::InvalidInput);
    }

    /// Correspondences and a phrase the error message must contain.
    type BadCase = (Vec<Vector2<f64>>, Vec<Vector2<f64>>, &'static str);

    #[test]
    fn relative_pose_rejects_bad_input() {
        let scene = TwoViewScene::new(303, 20, 0.0, 0.0);
        let cases: Vec<BadCase> = vec![
            (scene.x1[..4].to_vec(), scene.x2[..4].to_vec(), "at least 5"),
            (scene.x1.clone(), scene.x2[..19].to_vec(), "has 19 points"),
            (
                vec![scene.x1[0]; 20],
                vec![scene.x2[0]; 20],
                "no essential matrix",
            ),
            (
                {
                    let mut x = scene.x1.clone();
                    x[3].y = f64::NAN;
                    x
                },
                scene.x2.clone(),
                "x1[3]",
            ),
            (
                scene.x1.clone(),
                {
                    let mut x = scene.x2.clone();
                    x[5].x = f64::INFINITY;
                    x
                },
                "x2[5]",
            ),
        ];
        for (x1, x2, expected) in cases {
            let error = estimate_relative_pose(&x1, &x2, &options()).expect_err(expected);
            assert!(
                error.to_string().contains(expected),
                "{error} does not mention {expected}"
            );
        }
    }

    #[test]
    fn fundamental_ransac_finds_inliers() {
        let scene = TwoViewScene::new(304, 300, 0.5, 0.3);
        let (p1, p2) = scene.pixels();
        let ransac_options = RansacOptions {
            max_error: 2.0,
            seed: 3,
            ..RansacOptions::default()
        };
        let estimate = estimate_fundamental(&p1, &p2, &ransac_options).expect("fundamental matrix");
        let true_inliers = scene.is_outlier.iter().filter(|&&o| !o).count();
        let found_true = (0..p1.len())
            .filter(|&i| estimate.inliers[i] && !scene.is_outlier[i])
            .count();
        assert!(
            found_true as f64 >= 0.95 * true_inliers as f64,
            "{found_true} of {true_inliers}"
        );
        assert!(estimate.matrix.determinant().abs() < 1e-9);
    }

    #[test]
    fn homography_ransac_finds_plane() {
        let scene = TwoViewScene::new(305, 300, 0.0, 0.0);
        let rotation = scene.pose2.rotation;
        // Pure rotation: x2 ∝ R x1 for every point, plus 30% random outliers.
        let mut x2: Vec<Vector2<f64>> = scene
            .x1
            .iter()
            .map(|p| {
                let ray = rotation * Vector3::new(p.x, p.y, 1.0);
                Vector2::new(ray.x / ray.z, ray.y / ray.z)
            })
            .collect();
        for i in (0..x2.len()).step_by(3) {
            x2[i] = Vector2::new(0.3 - x2[i].y, x2[i].x * 0.5);
        }
        let ransac_options = RansacOptions {
            max_error: 1e-3,
            seed: 5,
            ..RansacOptions::default()
        };
        let estimate = estimate_homography(&scene.x1, &x2, &ransac_options).expect("homography");
        assert_eq!(estimate.num_inliers, 200);
        let truth = rotation.to_rotation_matrix().into_inner();
        let h = estimate.homography.matrix;
        let distance = (h / h.norm() - truth / truth.norm())
            .norm()
            .min((h / h.norm() + truth / truth.norm()).norm());
        assert!(distance < 1e-9, "distance to true homography {distance}");
        assert!(estimate_homography(&scene.x1[..3], &x2[..3], &ransac_options).is_err());
    }

    #[test]
    fn two_view_models_keep_rotation_quaternion_unit() {
        let scene = TwoViewScene::new(306, 100, 0.0, 0.0);
        let estimate =
            estimate_relative_pose(&scene.x1, &scene.x2, &options()).expect("relative pose");
        let quaternion: UnitQuaternion<f64> = estimate.pose.rotation;
        assert!((quaternion.norm() - 1.0).abs() < 1e-12);
        assert!(estimate.pose.rotation_angle_to(&scene.pose2) < 1e-6);
    }
}
