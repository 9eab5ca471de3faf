//! Reprojection residuals and their analytic Jacobians.
//!
//! A world point `X` projects through pose `(R, t)` to `x_cam = R X + t`, to normalized
//! coordinates `n = (x/z, y/z)`, through OpenCV's radial-tangential distortion to `d`, and
//! to pixels `p = (fx d.x + cx, fy d.y + cy)`. The residual is `p - observed`, in pixels.
//!
//! Pose updates act on the left, `R ← exp([δω]×) R`, `t ← t + δt`, so
//! `∂x_cam/∂δω = -[R X]×` and `∂x_cam/∂δt = I`. The focal parameter is `fx`, with
//! `fy = fx · (fy / fx)` keeping the aspect ratio of the starting camera.

use nalgebra::{Matrix2, Matrix2x3, SMatrix, Vector2, Vector3};

use crate::recon::camera::Camera;
use crate::recon::pose::Pose;

/// Parameters per pose block: angle-axis increment, then translation.
pub(super) const POSE_PARAMS: usize = 6;
/// Intrinsic parameters per camera: focal, cx, cy, k1, k2, p1, p2.
pub(super) const INTRINSIC_PARAMS: usize = 7;
/// Pose and intrinsic parameters together: the camera side of one observation.
pub(super) const CAMERA_SIDE: usize = POSE_PARAMS + INTRINSIC_PARAMS;

/// The residual of one observation and its Jacobians.
pub(super) struct Linearization {
    /// Projected minus observed pixel.
    pub residual: Vector2<f64>,
    /// Columns 0..6: pose; 6..13: intrinsics.
    pub camera: SMatrix<f64, 2, CAMERA_SIDE>,
    /// With respect to the world point.
    pub point: Matrix2x3<f64>,
}

/// Distorted normalized coordinates of `n`, always applying the model's formula (zero
/// coefficients give the identity) so the Jacobian is right for a pinhole start too.
fn distort(camera: &Camera, n: &Vector2<f64>) -> Vector2<f64> {
    let (x, y) = (n.x, n.y);
    let r2 = x * x + y * y;
    let radial = 1.0 + camera.k1 * r2 + camera.k2 * r2 * r2;
    Vector2::new(
        x * radial + 2.0 * camera.p1 * x * y + camera.p2 * (r2 + 2.0 * x * x),
        y * radial + camera.p1 * (r2 + 2.0 * y * y) + 2.0 * camera.p2 * x * y,
    )
}

/// Computes the residual in pixels, or `None` when the point is not in front of the camera.
pub(super) fn residual(
    camera: &Camera,
    pose: &Pose,
    point: &Vector3<f64>,
    observed: &Vector2<f64>,
) -> Option<Vector2<f64>> {
    let c = pose.transform(point);
    if c.z <= f64::EPSILON {
        return None;
    }
    let d = distort(camera, &Vector2::new(c.x / c.z, c.y / c.z));
    Some(Vector2::new(camera.fx * d.x + camera.cx, camera.fy * d.y + camera.cy) - observed)
}

/// Computes the residual and its Jacobians, or `None` when the point is not in front of
/// the camera.
pub(super) fn linearize(
    camera: &Camera,
    pose: &Pose,
    point: &Vector3<f64>,
    observed: &Vector2<f64>,
) -> Option<Linearization> {
    let rotated = pose.rotation * point;
    let c = rotated + pose.translation;
    if c.z <= f64::EPSILON {
        return None;
    }
    let inv_z = 1.0 / c.z;
    let (x, y) = (c.x * inv_z, c.y * inv_z);
    let (k1, k2, p1, p2) = (camera.k1, camera.k2, camera.p1, camera.p2);
    let r2 = x * x + y * y;
    let radial = 1.0 + k1 * r2 + k2 * r2 * r2;
    let d = Vector2::new(
        x * radial + 2.0 * p1 * x * y + p2 * (r2 + 2.0 * x * x),
        y * radial + p1 * (r2 + 2.0 * y * y) + 2.0 * p2 * x * y,
    );
    let residual =
        Vector2::new(camera.fx * d.x + camera.cx, camera.fy * d.y + camera.cy) - observed;

    // ∂d/∂n.
    let radial_slope = k1 + 2.0 * k2 * r2; // ∂radial/∂r2
    let distortion = Matrix2::new(
        radial + 2.0 * x * x * radial_slope + 2.0 * p1 * y + 6.0 * p2 * x,
        2.0 * x * y * radial_slope + 2.0 * p1 * x + 2.0 * p2 * y,
        2.0 * x * y * radial_slope + 2.0 * p1 * x + 2.0 * p2 * y,
        radial + 2.0 * y * y * radial_slope + 6.0 * p1 * y + 2.0 * p2 * x,
    );
    let focal = Matrix2::new(camera.fx, 0.0, 0.0, camera.fy);
    let normalize = Matrix2x3::new(inv_z, 0.0, -x * inv_z, 0.0, inv_z, -y * inv_z);
    // ∂p/∂x_cam.
    let chain = focal * distortion * normalize;

    let mut camera_jacobian = SMatrix::<f64, 2, CAMERA_SIDE>::zeros();
    camera_jacobian
        .fixed_view_mut::<2, 3>(0, 0)
        .copy_from(&(chain * -rotated.cross_matrix()));
    camera_jacobian
        .fixed_view_mut::<2, 3>(0, 3)
        .copy_from(&chain);

    let aspect = camera.fy / camera.fx;
    let intrinsic_columns: [(f64, f64); INTRINSIC_PARAMS] = [
        (d.x, aspect * d.y),
        (1.0, 0.0),
        (0.0, 1.0),
        (camera.fx * x * r2, camera.fy * y * r2),
        (camera.fx * x * r2 * r2, camera.fy * y * r2 * r2),
        (camera.fx * 2.0 * x * y, camera.fy * (r2 + 2.0 * y * y)),
        (camera.fx * (r2 + 2.0 * x * x), camera.fy * 2.0 * x * y),
    ];
    for (i, (u, v)) in intrinsic_columns.iter().enumerate() {
        camera_jacobian[(0, POSE_PARAMS + i)] = *u;
        camera_jacobian[(1, POSE_PARAMS + i)] = *v;
    }

    Some(Linearization {
        residual,
        camera: camera_jacobian,
        point: chain * pose.rotation.to_rotation_matrix().matrix(),
    })
}

/// Applies a step to intrinsic parameter `index` (see [`INTRINSIC_PARAMS`]).
pub(super) fn update_intrinsic(camera: &mut Camera, index: usize, delta: f64) {
    match index {
        0 => {
            let aspect = camera.fy / camera.fx;
            camera.fx += delta;
            camera.fy = camera.fx * aspect;
        }
        1 => camera.cx += delta,
        2 => camera.cy += delta,
        3 => camera.k1 += delta,
        4 => camera.k2 += delta,
        5 => camera.p1 += delta,
        _ => camera.p2 += delta,
    }
}

#[cfg(test)]
mod tests {
    use nalgebra::{UnitQuaternion, Vector3};

    use super::*;
    use crate::recon::camera::CameraModel;

    /// Checks the analytic Jacobians against central differences (test only; the solver
    /// never differentiates numerically).
    #[test]
    fn jacobians_match_finite_differences() {
        let mut camera = Camera::pinhole(800, 600, 700.0, 710.0, 401.0, 299.0);
        camera.model = CameraModel::OpenCv;
        camera.k1 = -0.1;
        camera.k2 = 0.02;
        camera.p1 = 0.003;
        camera.p2 = -0.002;
        let pose =
            Pose::from_angle_axis(&Vector3::new(0.1, -0.2, 0.3), Vector3::new(0.2, -0.1, 4.0));
        let point = Vector3::new(0.7, -0.4, 1.2);
        let observed = Vector2::new(400.0, 300.0);
        let lin = linearize(&camera, &pose, &point, &observed).expect("in front");
        let h = 1e-6;
        for k in 0..CAMERA_SIDE {
            let shifted = |sign: f64| {
                let mut cam = camera;
                let mut p = pose;
                if k < 3 {
                    let mut w = Vector3::zeros();
                    w[k] = sign * h;
                    p.rotation = UnitQuaternion::from_scaled_axis(w) * p.rotation;
                } else if k < 6 {
                    p.translation[k - 3] += sign * h;
                } else {
                    update_intrinsic(&mut cam, k - 6, sign * h);
                }
                residual(&cam, &p, &point, &observed).expect("in front")
            };
            let numeric = (shifted(1.0) - shifted(-1.0)) / (2.0 * h);
            let analytic = lin.camera.column(k);
            assert!(
                (numeric - analytic).norm() < 1e-4 * (1.0 + numeric.norm()),
                "column {k}: {numeric} vs {analytic}"
            );
        }
        for k in 0..3 {
            let mut plus = point;
            let mut minus = point;
            plus[k] += h;
            minus[k] -= h;
            let numeric = (residual(&camera, &pose, &plus, &observed).expect("front")
                - residual(&camera, &pose, &minus, &observed).expect("front"))
                / (2.0 * h);
            assert!(
                (numeric - lin.point.column(k)).norm() < 1e-4 * (1.0 + numeric.norm()),
                "point column {k}"
            );
        }
    }
}
