//! Two-view geometry for structure from motion: fundamental, essential and homography
//! matrices, robust estimation with RANSAC, relative pose and triangulation.
//!
//! Essential matrices, relative poses and triangulation work on undistorted normalized
//! coordinates `(x/z, y/z)`, so their thresholds are in normalized units (pixels divided by
//! the focal length). Fundamental matrices and homographies accept any consistent
//! coordinates, pixels included, with thresholds in the same units.

pub mod essential;
pub mod fundamental;
pub mod homography;
pub mod ransac;
pub mod relative_pose;
pub mod triangulate;

pub use essential::{decompose_essential, eight_point_essential, essential_from_pose, five_point};
pub use fundamental::{eight_point, sampson_error};
pub use homography::{Homography, homography_dlt};
pub use ransac::{Estimator, RansacOptions, RansacResult, ransac};
pub use relative_pose::{
    FundamentalEstimate, HomographyEstimate, RelativePose, RelativePoseOptions,
    estimate_fundamental, estimate_homography, estimate_relative_pose,
};
pub use triangulate::{
    TriangulationOptions, has_positive_depth, reprojection_error, triangulate_checked,
    triangulate_multi_view, triangulate_two_view, triangulation_angle_deg,
};

/// Seeded synthetic two-view scenes with known ground truth for the tests of this module.
#[cfg(test)]
pub(crate) mod test_scenes {
    use nalgebra::{Matrix3, Vector2, Vector3};
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::essential::essential_from_pose;
    use crate::recon::pose::Pose;

    /// Focal length in pixels of the simulated cameras; the image is 1000 x 1000 px with the
    /// principal point at its centre.
    pub const FOCAL: f64 = 1000.0;

    /// Random points 4 to 8 units in front of camera 1 (identity pose) seen by camera 2
    /// (`pose2`, unit baseline), as normalized coordinates with optional Gaussian noise and
    /// outliers.
    pub struct TwoViewScene {
        pub x1: Vec<Vector2<f64>>,
        pub x2: Vec<Vector2<f64>>,
        /// Points in camera 1's frame (the world frame).
        pub points: Vec<Vector3<f64>>,
        /// Camera 1 to camera 2.
        pub pose2: Pose,
        /// Whether correspondence `i` was replaced by a random outlier.
        pub is_outlier: Vec<bool>,
    }

    fn gaussian(rng: &mut ChaCha8Rng) -> f64 {
        // Box-Muller transform.
        let u1: f64 = rng.random_range(f64::EPSILON..1.0);
        let u2: f64 = rng.random_range(0.0..1.0);
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }

    fn random_unit_vector(rng: &mut ChaCha8Rng) -> Vector3<f64> {
        loop {
            let v = Vector3::new(gaussian(rng), gaussian(rng), gaussian(rng));
            if v.norm() > 1e-3 {
                return v.normalize();
            }
        }
    }

    fn in_image(p: &Vector3<f64>) -> bool {
        p.z > 0.1 && (p.x / p.z).abs() < 0.5 && (p.y / p.z).abs() < 0.5
    }

    impl TwoViewScene {
        /// Generates a scene of `count` correspondences with noise of standard deviation `noise_px`
        /// pixels and each correspondence an outlier with probability `outlier_ratio`.
        pub fn new(seed: u64, count: usize, noise_px: f64, outlier_ratio: f64) -> Self {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            // A rotation of 5 to 20 degrees about a random axis and a unit translation in a
            // random direction, forward motion included.
            let axis = random_unit_vector(&mut rng);
            let angle = rng.random_range(5.0f64..20.0).to_radians();
            let rotation = nalgebra::UnitQuaternion::from_scaled_axis(axis * angle);
            let pose2 = Pose::new(rotation, random_unit_vector(&mut rng));
            let noise = noise_px / FOCAL;
            let mut scene = Self {
                x1: Vec::with_capacity(count),
                x2: Vec::with_capacity(count),
                points: Vec::with_capacity(count),
                pose2,
                is_outlier: Vec::with_capacity(count),
            };
            while scene.points.len() < count {
                let point = Vector3::new(
                    rng.random_range(-2.0..2.0),
                    rng.random_range(-2.0..2.0),
                    rng.random_range(4.0..8.0),
                );
                let in_camera2 = pose2.transform(&point);
                if !in_image(&point) || !in_image(&in_camera2) {
                    continue;
                }
                let mut x1 = Vector2::new(point.x / point.z, point.y / point.z);
                let mut x2 = Vector2::new(in_camera2.x / in_camera2.z, in_camera2.y / in_camera2.z);
                x1 += Vector2::new(gaussian(&mut rng), gaussian(&mut rng)) * noise;
                x2 += Vector2::new(gaussian(&mut rng), gaussian(&mut rng)) * noise;
                let outlier = rng.random_bool(outlier_ratio);
                if outlier {
                    x2 = Vector2::new(rng.random_range(-0.5..0.5), rng.random_range(-0.5..0.5));
                }
                scene.x1.push(x1);
                scene.x2.push(x2);
                scene.points.push(point);
                scene.is_outlier.push(outlier);
            }
            scene
        }

        /// Returns the true essential matrix `[t]ₓ R`.
        pub fn essential(&self) -> Matrix3<f64> {
            essential_from_pose(
                &self.pose2.rotation.to_rotation_matrix(),
                &self.pose2.translation,
            )
        }

        /// Returns the correspondences in pixels.
        pub fn pixels(&self) -> (Vec<Vector2<f64>>, Vec<Vector2<f64>>) {
            let to_pixel = |p: &Vector2<f64>| p * FOCAL + Vector2::new(500.0, 500.0);
            (
                self.x1.iter().map(to_pixel).collect(),
                self.x2.iter().map(to_pixel).collect(),
            )
        }
    }
}
