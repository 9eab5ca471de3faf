//! Triangulation of 3D points from normalized image observations and camera poses, and the
//! checks that decide whether a triangulated point is reliable.
//!
//! Observations are undistorted normalized coordinates `(x/z, y/z)`; poses map world to
//! camera (`x_cam = R x_world + t`). The linear method is the homogeneous DLT. Each view contributes the
//! rows `x P₃ - P₁` and `y P₃ - P₂` of its projection matrix `P = [R | t]`. The point is
//! the right singular vector of the smallest singular value.

use nalgebra::{Matrix4, Rotation3, SymmetricEigen, Vector2, Vector3, Vector4};

use crate::recon::pose::Pose;

/// Settings of [`triangulate_checked`].
#[derive(Debug, Clone, PartialEq)]
pub struct TriangulationOptions {
    /// Smallest accepted triangulation angle in degrees, over the most separated pair of
    /// views. Small angles give unreliable depth.
    pub min_angle_deg: f64,
    /// Largest accepted reprojection error in every view, in normalized units (pixels
    /// divided by the focal length).
    pub max_reprojection_error: f64,
}

impl Default for TriangulationOptions {
    fn default() -> Self {
        Self {
            min_angle_deg: 1.5,
            // 4 px at a focal length of 1000 px.
            max_reprojection_error: 4e-3,
        }
    }
}

/// Triangulates one point from two views with the linear DLT; `None` when the rays are
/// parallel or the point is at infinity.
pub fn triangulate_two_view(
    pose1: &Pose,
    pose2: &Pose,
    x1: &Vector2<f64>,
    x2: &Vector2<f64>,
) -> Option<Vector3<f64>> {
    let mut ata = Matrix4::zeros();
    add_dlt_rows(&mut ata, pose1, x1);
    add_dlt_rows(&mut ata, pose2, x2);
    solve_dlt(ata)
}

/// Triangulates one point from two or more views with the linear DLT; `None` for fewer
/// than two views, mismatched lengths, non-finite input or a point at infinity.
pub fn triangulate_multi_view(
    poses: &[Pose],
    observations: &[Vector2<f64>],
) -> Option<Vector3<f64>> {
    if poses.len() < 2 || poses.len() != observations.len() {
        return None;
    }
    let mut ata = Matrix4::zeros();
    for (pose, x) in poses.iter().zip(observations) {
        add_dlt_rows(&mut ata, pose, x);
    }
    solve_dlt(ata)
}

fn add_dlt_rows(ata: &mut Matrix4<f64>, pose: &Pose, x: &Vector2<f64>) {
    let r = pose.rotation.to_rotation_matrix();
    let r = r.matrix();
    let t = &pose.translation;
    let p = |row: usize| Vector4::new(r[(row, 0)], r[(row, 1)], r[(row, 2)], t[row]);
    let (p1, p2, p3) = (p(0), p(1), p(2));
    for row in [x.x * p3 - p1, x.y * p3 - p2] {
        ata.ger(1.0, &row, &row, 1.0);
    }
}

fn solve_dlt(ata: Matrix4<f64>) -> Option<Vector3<f64>> {
    if !ata.iter().all(|v| v.is_finite()) {
        return None;
    }
    let eigen = SymmetricEigen::new(ata);
    let smallest = eigen.eigenvalues.imin();
    let h = eigen.eigenvectors.column(smallest);
    let w = h[3];
    let scale = h.norm();
    // A homogeneous coordinate this small puts the point beyond any useful depth.
    if w.abs() <= 1e-12 * scale {
        return None;
    }
    let point = Vector3::new(h[0] / w, h[1] / w, h[2] / w);
    point.iter().all(|v| v.is_finite()).then_some(point)
}

/// Returns the depths `(λ1, λ2)` along the rays `(x1, 1)` in camera 1 and `(x2, 1)` in camera 2 of
/// the midpoint triangulation, for the relative pose `x_cam2 = R x_cam1 + t`: the point is
/// `λ1 (x1, 1)` in camera 1's frame. `None` when the rays are (nearly) parallel.
pub fn two_view_depths(
    rotation: &Rotation3<f64>,
    translation: &Vector3<f64>,
    x1: &Vector2<f64>,
    x2: &Vector2<f64>,
) -> Option<(f64, f64)> {
    // Minimise |λ1 a + t - λ2 b|² over (λ1, λ2) with a = R (x1, 1) and b = (x2, 1).
    let a = rotation * Vector3::new(x1.x, x1.y, 1.0);
    let b = Vector3::new(x2.x, x2.y, 1.0);
    let (aa, bb, ab) = (a.dot(&a), b.dot(&b), a.dot(&b));
    let (at, bt) = (a.dot(translation), b.dot(translation));
    let det = aa * bb - ab * ab;
    if det.is_nan() || det <= 1e-14 * aa * bb {
        return None;
    }
    let depth1 = (ab * bt - at * bb) / det;
    let depth2 = (aa * bt - ab * at) / det;
    Some((depth1, depth2))
}

/// Returns the angle in degrees at `point` between the rays to the camera centres `center1` and
/// `center2` (all in one frame); 0 for a point at a camera centre.
pub fn triangulation_angle_deg(
    center1: &Vector3<f64>,
    center2: &Vector3<f64>,
    point: &Vector3<f64>,
) -> f64 {
    let ray1 = point - center1;
    let ray2 = point - center2;
    let denominator = ray1.norm() * ray2.norm();
    if denominator.is_nan() || denominator <= 0.0 {
        return 0.0;
    }
    (ray1.dot(&ray2) / denominator)
        .clamp(-1.0, 1.0)
        .acos()
        .to_degrees()
}

/// Returns whether `point` (world frame) lies in front of the camera, i.e. at positive depth
/// (cheirality).
pub fn has_positive_depth(pose: &Pose, point: &Vector3<f64>) -> bool {
    pose.transform(point).z > 0.0
}

/// Returns the distance between the projection of `point` (world frame) and `observation`, in
/// normalized units; `None` when the point is not in front of the camera.
pub fn reprojection_error(
    pose: &Pose,
    point: &Vector3<f64>,
    observation: &Vector2<f64>,
) -> Option<f64> {
    let p = pose.transform(point);
    if p.z.is_nan() || p.z <= 0.0 {
        return None;
    }
    Some((Vector2::new(p.x / p.z, p.y / p.z) - observation).norm())
}

/// Triangulates a point from two or more views and accepts it only when it is in front of
/// every camera, reprojects within `options.max_reprojection_error` in every view and has a
/// triangulation angle of at least `options.min_angle_deg` for some pair of views.
pub fn triangulate_checked(
    poses: &[Pose],
    observations: &[Vector2<f64>],
    options: &TriangulationOptions,
) -> Option<Vector3<f64>> {
    let point = triangulate_multi_view(poses, observations)?;
    for (pose, observation) in poses.iter().zip(observations) {
        let error = reprojection_error(pose, &point, observation)?;
        if error.is_nan() || error > options.max_reprojection_error {
            return None;
        }
    }
    let centers: Vec<Vector3<f64>> = poses.iter().map(Pose::center).collect();
    let mut max_angle = 0.0f64;
    for i in 0..centers.len() {
        for j in i + 1..centers.len() {
            max_angle = max_angle.max(triangulation_angle_deg(&centers[i], &centers[j], &point));
        }
    }
    (max_angle >= options.min_angle_deg).then_some(point)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn project(pose: &Pose, point: &Vector3<f64>) -> Vector2<f64> {
        let p = pose.transform(point);
        Vector2::new(p.x / p.z, p.y / p.z)
    }

    fn three_cameras() -> [Pose; 3] {
        [
            Pose::identity(),
            Pose::from_angle_axis(
                &Vector3::new(0.02, -0.15, 0.01),
                Vector3::new(-1.0, 0.05, 0.1),
            ),
            Pose::from_angle_axis(
                &Vector3::new(-0.03, 0.12, -0.02),
                Vector3::new(0.9, -0.1, 0.2),
            ),
        ]
    }

    #[test]
    fn two_view_is_exact_without_noise() {
        let poses = three_cameras();
        let mut rng = ChaCha8Rng::seed_from_u64(21);
        for _ in 0..100 {
            let point = Vector3::new(
                rng.random_range(-2.0..2.0),
                rng.random_range(-2.0..2.0),
                rng.random_range(4.0..8.0),
            );
            let x1 = project(&poses[0], &point);
            let x2 = project(&poses[1], &point);
            let estimate = triangulate_two_view(&poses[0], &poses[1], &x1, &x2).expect("point");
            assert!(
                (estimate - point).norm() < 1e-9,
                "error {}",
                (estimate - point).norm()
            );
        }
    }

    #[test]
    fn multi_view_is_accurate_with_noise() {
        let poses = three_cameras();
        let mut rng = ChaCha8Rng::seed_from_u64(22);
        let mut total_error = 0.0;
        for _ in 0..200 {
            let point = Vector3::new(
                rng.random_range(-2.0..2.0),
                rng.random_range(-2.0..2.0),
                rng.random_range(4.0..8.0),
            );
            // 0.5 px of noise at a focal length of 1000 px.
            let observations: Vec<Vector2<f64>> = poses
                .iter()
                .map(|pose| {
                    project(pose, &point)
                        + Vector2::new(rng.random_range(-5e-4..5e-4), rng.random_range(-5e-4..5e-4))
                })
                .collect();
            let estimate = triangulate_multi_view(&poses, &observations).expect("point");
            let relative = (estimate - point).norm() / point.norm();
            assert!(relative < 0.01, "relative error {relative}");
            total_error += relative;
        }
        assert!(
            total_error / 200.0 < 2e-3,
            "mean relative error {}",
            total_error / 200.0
        );
    }

    #[test]
    fn two_view_depths_match_truth() {
        let poses = three_cameras();
        let point = Vector3::new(0.3, -0.4, 5.0);
        let x1 = project(&poses[0], &point);
        let x2 = project(&poses[1], &point);
        let (depth1, depth2) = two_view_depths(
            &poses[1].rotation.to_rotation_matrix(),
            &poses[1].translation,
            &x1,
            &x2,
        )
        .expect("depths");
        assert!((depth1 - 5.0).abs() < 1e-9, "depth1 {depth1}");
        assert!(
            (depth2 - poses[1].transform(&point).z).abs() < 1e-9,
            "depth2 {depth2}"
        );
    }

    #[test]
    fn checks_reject_bad_points() {
        let poses = three_cameras();
        let options = TriangulationOptions::default();
        let point = Vector3::new(0.3, -0.4, 5.0);
        let observations: Vec<_> = poses.iter().map(|pose| project(pose, &point)).collect();
        let accepted = triangulate_checked(&poses, &observations, &options).expect("good point");
        assert!((accepted - point).norm() < 1e-9);

        // A 20 px mismatch in one view fails the reprojection check.
        let mut wrong = observations.clone();
        wrong[2].x += 0.02;
        assert!(triangulate_checked(&poses, &wrong, &options).is_none());

        // A distant point has a triangulation angle of about 0.4 degrees.
        let far = Vector3::new(0.0, 0.0, 300.0);
        let far_observations: Vec<_> = poses.iter().map(|pose| project(pose, &far)).collect();
        assert!(triangulate_checked(&poses, &far_observations, &options).is_none());

        // A point behind the cameras fails cheirality.
        let behind = Vector3::new(0.1, 0.2, -5.0);
        assert!(!has_positive_depth(&poses[0], &behind));
        assert!(reprojection_error(&poses[0], &behind, &observations[0]).is_none());

        // NaN observations give no point.
        let mut nan = observations.clone();
        nan[0].x = f64::NAN;
        assert!(triangulate_multi_view(&poses, &nan).is_none());
        assert!(triangulate_multi_view(&poses[..1], &observations[..1]).is_none());
    }

    #[test]
    fn triangulation_angle_of_right_angle() {
        let angle = triangulation_angle_deg(
            &Vector3::new(-1.0, 0.0, 0.0),
            &Vector3::new(1.0, 0.0, 0.0),
            &Vector3::new(0.0, 0.0, 1.0),
        );
        assert!((angle - 90.0).abs() < 1e-9, "angle {angle}");
    }
}
