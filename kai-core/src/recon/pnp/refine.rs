//! Nonlinear refinement of an absolute pose: Levenberg–Marquardt on the reprojection error
//! in normalized image coordinates, with a Huber loss.
//!
//! The rotation is updated on the manifold, `R ← exp([δω]×) R`, where `δω` is an
//! angle-axis increment, and the translation additively, `t ← t + δt`. With
//! `x_cam = R X + t` the Jacobian of `x_cam` is `-[R X]×` with respect to `δω` and the
//! identity with respect to `δt`.

use nalgebra::{Matrix2x3, Matrix6, UnitQuaternion, Vector2, Vector3, Vector6};

use crate::error::{Error, Result};
use crate::recon::pose::Pose;

/// Settings of [`refine_absolute_pose`].
#[derive(Debug, Clone, PartialEq)]
pub struct PoseRefineOptions {
    /// Iterations (accepted or rejected steps) at most.
    pub max_iterations: usize,
    /// Huber loss scale in normalized units: residuals above it count linearly. `None`
    /// uses plain least squares.
    pub huber_scale: Option<f64>,
    /// Stops when the relative decrease of the cost falls below this.
    pub function_tolerance: f64,
}

impl Default for PoseRefineOptions {
    fn default() -> Self {
        Self {
            max_iterations: 50,
            huber_scale: None,
            function_tolerance: 1e-12,
        }
    }
}

/// Refines `initial` by minimising the reprojection error of the correspondences marked in
/// `inliers`, in normalized image coordinates. Needs at least three inliers. A point that
/// falls behind the camera during the iterations adds no gradient and costs a fixed
/// penalty, so steps that push points behind the camera are rejected.
pub fn refine_absolute_pose(
    points2d: &[Vector2<f64>],
    points3d: &[Vector3<f64>],
    inliers: &[bool],
    initial: &Pose,
    options: &PoseRefineOptions,
) -> Result<Pose> {
    if points2d.len() != points3d.len() || inliers.len() != points2d.len() {
        return Err(Error::invalid(
            "inliers",
            format!(
                "lengths differ: {} 2D points, {} 3D points, {} inlier flags",
                points2d.len(),
                points3d.len(),
                inliers.len()
            ),
        ));
    }
    let indices: Vec<usize> = (0..inliers.len()).filter(|&i| inliers[i]).collect();
    if indices.len() < 3 {
        return Err(Error::invalid(
            "inliers",
            format!(
                "{} inliers; pose refinement needs at least 3",
                indices.len()
            ),
        ));
    }
    if !initial.is_finite() {
        return Err(Error::invalid(
            "initial pose",
            "contains a value that is not finite",
        ));
    }
    Ok(refine_indices(
        points2d, points3d, &indices, initial, options,
    ))
}

/// Runs the refinement on validated data.
pub(super) fn refine_indices(
    points2d: &[Vector2<f64>],
    points3d: &[Vector3<f64>],
    indices: &[usize],
    initial: &Pose,
    options: &PoseRefineOptions,
) -> Pose {
    let mut pose = *initial;
    let mut cost = total_cost(points2d, points3d, indices, &pose, options.huber_scale);
    let mut lambda = 1e-4;
    for _ in 0..options.max_iterations {
        let mut hessian = Matrix6::zeros();
        let mut gradient = Vector6::zeros();
        for &i in indices {
            let rotated = pose.rotation * points3d[i];
            let camera = rotated + pose.translation;
            if camera.z <= f64::EPSILON {
                continue;
            }
            let inv_z = 1.0 / camera.z;
            let residual = Vector2::new(camera.x * inv_z, camera.y * inv_z) - points2d[i];
            let projection = Matrix2x3::new(
                inv_z,
                0.0,
                -camera.x * inv_z * inv_z,
                0.0,
                inv_z,
                -camera.y * inv_z * inv_z,
            );
            let mut jacobian = nalgebra::Matrix2x6::zeros();
            jacobian
                .fixed_view_mut::<2, 3>(0, 0)
                .copy_from(&(projection * -rotated.cross_matrix()));
            jacobian.fixed_view_mut::<2, 3>(0, 3).copy_from(&projection);
            let weight = huber_weight(residual.norm_squared(), options.huber_scale);
            hessian += weight * jacobian.transpose() * jacobian;
            gradient -= weight * jacobian.transpose() * residual;
        }
        let mut improved = false;
        // Retry with more damping until the cost drops or damping saturates.
        while lambda < 1e10 {
            let mut damped = hessian;
            for d in 0..6 {
                damped[(d, d)] += lambda * hessian[(d, d)].max(1e-12);
            }
            let Some(step) = damped.cholesky().map(|c| c.solve(&gradient)) else {
                lambda *= 10.0;
                continue;
            };
            let candidate = apply_step(&pose, &step);
            let candidate_cost =
                total_cost(points2d, points3d, indices, &candidate, options.huber_scale);
            if candidate_cost < cost {
                let decrease = (cost - candidate_cost) / cost.max(f64::MIN_POSITIVE);
                pose = candidate;
                cost = candidate_cost;
                lambda = (lambda / 10.0).max(1e-12);
                improved = decrease > options.function_tolerance;
                break;
            }
            lambda *= 10.0;
        }
        if !improved {
            break;
        }
    }
    pose
}

fn apply_step(pose: &Pose, step: &Vector6<f64>) -> Pose {
    let delta = UnitQuaternion::from_scaled_axis(Vector3::new(step[0], step[1], step[2]));
    Pose::new(
        delta * pose.rotation,
        pose.translation + Vector3::new(step[3], step[4], step[5]),
    )
}

fn huber_weight(squared: f64, scale: Option<f64>) -> f64 {
    match scale {
        Some(s) if squared > s * s => s / squared.sqrt(),
        _ => 1.0,
    }
}

fn huber_cost(squared: f64, scale: Option<f64>) -> f64 {
    match scale {
        Some(s) if squared > s * s => 2.0 * s * squared.sqrt() - s * s,
        _ => squared,
    }
}

/// Sums the robust cost over `indices`. A point behind the camera costs as much as a
/// residual of one normalized unit (45 degrees off the optical axis), so steps that flip
/// points are not free.
fn total_cost(
    points2d: &[Vector2<f64>],
    points3d: &[Vector3<f64>],
    indices: &[usize],
    pose: &Pose,
    scale: Option<f64>,
) -> f64 {
    indices
        .iter()
        .map(|&i| {
            let camera = pose.transform(&points3d[i]);
            let squared = if camera.z <= f64::EPSILON {
                1.0
            } else {
                (Vector2::new(camera.x / camera.z, camera.y / camera.z) - points2d[i])
                    .norm_squared()
            };
            huber_cost(squared, scale)
        })
        .sum()
}
