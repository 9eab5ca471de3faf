//! The minimal absolute-pose solver: Grunert's P3P.
//!
//! Three bearing vectors `f1, f2, f3` (unit rays in the camera frame) see world points
//! `P1, P2, P3` at unknown depths `s1, s2, s3`. With the pairwise distances
//! `a = |P2 - P3|`, `b = |P1 - P3|`, `c = |P1 - P2|` and the ray angles
//! `cos α = f2·f3`, `cos β = f1·f3`, `cos γ = f1·f2`, the law of cosines gives
//!
//! ```text
//! a² = s2² + s3² - 2 s2 s3 cos α
//! b² = s1² + s3² - 2 s1 s3 cos β
//! c² = s1² + s2² - 2 s1 s2 cos γ
//! ```
//!
//! Substituting `s2 = u s1`, `s3 = v s1` and subtracting the `c²` equation from the `a²`
//! equation (both scaled to share `s1²`) makes `u` a rational function of `v`:
//! `u = N(v) / D(v)` with `N = (K - 1) v² - 2 K cos β v + 1 + K`, `D = 2 (cos γ - v cos α)`
//! and `K = (a² - c²) / b²`. Putting `u` back into the `c²` equation gives a quartic in `v`
//! (Grunert 1841, as surveyed by Haralick et al., "Review and analysis of solutions of the
//! three point perspective pose estimation problem", IJCV 1994). Each positive real root
//! gives depths, hence the three points in the camera frame, and the pose follows from
//! aligning them with the world points (absolute orientation, Kabsch's SVD method).
//! The quartic is built here by polynomial arithmetic and solved through the eigenvalues
//! of its companion matrix, each root polished by Newton steps.

use nalgebra::{Matrix3, Matrix4, Vector2, Vector3};

use crate::recon::pose::Pose;

/// Up to four poses that map the three world points onto the three rays of the
/// normalized image points, in no particular order. Returns none for a degenerate
/// configuration (collinear or coincident world points, parallel rays).
pub fn p3p(points2d: &[Vector2<f64>; 3], points3d: &[Vector3<f64>; 3]) -> Vec<Pose> {
    let rays = points2d.map(|p| Vector3::new(p.x, p.y, 1.0).normalize());
    let [p1, p2, p3] = *points3d;

    let a2 = (p2 - p3).norm_squared();
    let b2 = (p1 - p3).norm_squared();
    let c2 = (p1 - p2).norm_squared();
    // Collinear or coincident world points have no unique pose.
    let area2 = (p2 - p1).cross(&(p3 - p1)).norm_squared();
    let scale2 = a2.max(b2).max(c2);
    if !(scale2.is_finite() && scale2 > 0.0) || area2 < 1e-12 * scale2 * scale2 {
        return Vec::new();
    }

    let cos_alpha = rays[1].dot(&rays[2]);
    let cos_beta = rays[0].dot(&rays[2]);
    let cos_gamma = rays[0].dot(&rays[1]);
    let k = (a2 - c2) / b2;
    let c_ratio = c2 / b2;

    // Polynomials in v, lowest degree first.
    let numerator = [1.0 + k, -2.0 * k * cos_beta, k - 1.0];
    let denominator = [2.0 * cos_gamma, -2.0 * cos_alpha];
    let ray13 = [1.0, -2.0 * cos_beta, 1.0];

    // c² equation times D²: N² + D² - 2 cos γ N D - (c²/b²)(1 - 2 v cos β + v²) D² = 0.
    let nn = poly_mul(&numerator, &numerator);
    let dd = poly_mul(&denominator, &denominator);
    let nd = poly_mul(&numerator, &denominator);
    let ray_dd = poly_mul(&ray13, &dd);
    let mut quartic = [0.0; 5];
    for (i, q) in quartic.iter_mut().enumerate() {
        *q = coefficient(&nn, i) + coefficient(&dd, i)
            - 2.0 * cos_gamma * coefficient(&nd, i)
            - c_ratio * coefficient(&ray_dd, i);
    }

    let mut poses = Vec::with_capacity(4);
    for v in real_roots(&quartic) {
        if v <= 0.0 {
            continue;
        }
        let d = eval(&denominator, v);
        if d.abs() < 1e-12 {
            continue;
        }
        let u = eval(&numerator, v) / d;
        let depth_denominator = 1.0 + v * v - 2.0 * v * cos_beta;
        if u <= 0.0 || depth_denominator <= 0.0 {
            continue;
        }
        let s1 = (b2 / depth_denominator).sqrt();
        let camera_points = [rays[0] * s1, rays[1] * (u * s1), rays[2] * (v * s1)];
        if let Some(pose) = align_points(points3d, &camera_points)
            && pose.is_finite()
        {
            poses.push(pose);
        }
    }
    poses
}

fn coefficient(poly: &[f64], i: usize) -> f64 {
    poly.get(i).copied().unwrap_or(0.0)
}

fn poly_mul(a: &[f64], b: &[f64]) -> Vec<f64> {
    let mut out = vec![0.0; a.len() + b.len() - 1];
    for (i, x) in a.iter().enumerate() {
        for (j, y) in b.iter().enumerate() {
            out[i + j] += x * y;
        }
    }
    out
}

fn eval(poly: &[f64], x: f64) -> f64 {
    poly.iter().rev().fold(0.0, |acc, c| acc * x + c)
}

/// Real roots of a polynomial of degree at most four (coefficients lowest degree first),
/// from the companion matrix's eigenvalues, polished by Newton's method.
fn real_roots(poly: &[f64; 5]) -> Vec<f64> {
    let magnitude = poly.iter().fold(0.0f64, |m, c| m.max(c.abs()));
    if !(magnitude.is_finite() && magnitude > 0.0) {
        return Vec::new();
    }
    // Drop leading coefficients that are zero relative to the rest.
    let mut degree = 4;
    while degree > 0 && poly[degree].abs() <= 1e-14 * magnitude {
        degree -= 1;
    }
    let candidates: Vec<f64> = match degree {
        0 => Vec::new(),
        1 => vec![-poly[0] / poly[1]],
        _ => {
            let mut companion = Matrix4::zeros();
            for i in 1..degree {
                companion[(i, i - 1)] = 1.0;
            }
            for i in 0..degree {
                companion[(i, degree - 1)] = -poly[i] / poly[degree];
            }
            let block = companion.view((0, 0), (degree, degree)).clone_owned();
            block
                .complex_eigenvalues()
                .iter()
                .filter(|z| z.im.abs() <= 1e-6 * (1.0 + z.re.abs()))
                .map(|z| z.re)
                .collect()
        }
    };
    let derivative: Vec<f64> = (1..=degree).map(|i| i as f64 * poly[i]).collect();
    candidates
        .into_iter()
        .map(|mut x| {
            for _ in 0..8 {
                let slope = eval(&derivative, x);
                if slope == 0.0 {
                    break;
                }
                let step = eval(&poly[..=degree], x) / slope;
                x -= step;
                if step.abs() <= 1e-15 * (1.0 + x.abs()) {
                    break;
                }
            }
            x
        })
        .filter(|x| x.is_finite())
        .collect()
}

/// Computes the rigid transform that maps `world` onto `camera` in the least-squares sense
/// (Kabsch: SVD of the cross-covariance, with the reflection removed).
pub(super) fn align_points(world: &[Vector3<f64>], camera: &[Vector3<f64>]) -> Option<Pose> {
    let n = world.len() as f64;
    let world_mean = world.iter().sum::<Vector3<f64>>() / n;
    let camera_mean = camera.iter().sum::<Vector3<f64>>() / n;
    let mut covariance = Matrix3::zeros();
    for (w, c) in world.iter().zip(camera) {
        covariance += (c - camera_mean) * (w - world_mean).transpose();
    }
    let svd = covariance.svd(true, true);
    let u = svd.u?;
    let v_t = svd.v_t?;
    let mut correction = Matrix3::identity();
    if (u * v_t).determinant() < 0.0 {
        correction[(2, 2)] = -1.0;
    }
    let rotation = nalgebra::Rotation3::from_matrix_unchecked(u * correction * v_t);
    let translation = camera_mean - rotation * world_mean;
    Some(Pose::from_matrix(&rotation, translation))
}
