//! Similarity alignment of two point sets (Umeyama, "Least-squares estimation of
//! transformation parameters between two point patterns", IEEE PAMI 1991), used to compare
//! a reconstruction, which is defined only up to a similarity, with ground truth.

use nalgebra::{Matrix3, Rotation3, UnitQuaternion, Vector3};

use crate::error::{Error, Result};
use crate::recon::pose::Pose;
use crate::recon::reconstruction::Reconstruction;

/// A similarity transform `y = scale * rotation * x + translation`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Similarity {
    /// Uniform scale factor (positive).
    pub scale: f64,
    /// Rotation applied before scaling.
    pub rotation: UnitQuaternion<f64>,
    /// Translation applied last.
    pub translation: Vector3<f64>,
}

impl Similarity {
    /// Maps a point.
    pub fn transform_point(&self, point: &Vector3<f64>) -> Vector3<f64> {
        self.scale * (self.rotation * point) + self.translation
    }

    /// Maps a world-to-camera pose of the source frame to the same camera in the target
    /// frame. The camera frame is scaled with the world, so projections do not change.
    pub fn transform_pose(&self, pose: &Pose) -> Pose {
        let rotation = pose.rotation * self.rotation.inverse();
        let translation = self.scale * pose.translation - rotation * self.translation;
        Pose::new(rotation, translation)
    }

    /// Maps every pose and point of `reconstruction`.
    pub fn transform_reconstruction(&self, reconstruction: &mut Reconstruction) {
        for image in &mut reconstruction.images {
            image.pose = self.transform_pose(&image.pose);
        }
        for point in &mut reconstruction.points {
            point.position = self.transform_point(&point.position);
        }
    }
}

/// Finds the similarity that maps `source` onto `target` with the least sum of squared
/// distances.
///
/// # Errors
///
/// [`Error::InvalidInput`] when the sets differ in length, have fewer than 3 points,
/// contain a value that is not finite, or when `source` has all its points at one place.
pub fn umeyama(source: &[Vector3<f64>], target: &[Vector3<f64>]) -> Result<Similarity> {
    if source.len() != target.len() {
        return Err(Error::invalid(
            "alignment points",
            format!(
                "{} source points but {} target points; the sets must pair up",
                source.len(),
                target.len()
            ),
        ));
    }
    if source.len() < 3 {
        return Err(Error::invalid(
            "alignment points",
            format!(
                "{} pairs given; a similarity needs at least 3",
                source.len()
            ),
        ));
    }
    if source
        .iter()
        .chain(target)
        .any(|p| p.iter().any(|v| !v.is_finite()))
    {
        return Err(Error::invalid(
            "alignment points",
            "a coordinate is not finite",
        ));
    }

    let n = source.len() as f64;
    let mean_source = source.iter().sum::<Vector3<f64>>() / n;
    let mean_target = target.iter().sum::<Vector3<f64>>() / n;
    let mut covariance = Matrix3::zeros();
    let mut source_variance = 0.0;
    for (x, y) in source.iter().zip(target) {
        let xc = x - mean_source;
        let yc = y - mean_target;
        covariance += yc * xc.transpose();
        source_variance += xc.norm_squared();
    }
    covariance /= n;
    source_variance /= n;
    if source_variance <= f64::EPSILON {
        return Err(Error::invalid(
            "alignment points",
            "the source points all coincide, so no scale or rotation is defined",
        ));
    }

    let svd = covariance.svd(true, true);
    let (Some(u), Some(v_t)) = (svd.u, svd.v_t) else {
        return Err(Error::invalid(
            "alignment points",
            "the singular value decomposition of the covariance failed",
        ));
    };
    // A reflection in U Vᵀ is turned into a rotation by flipping the axis of the smallest
    // singular value, which costs the least.
    let mut signs = Vector3::new(1.0, 1.0, 1.0);
    if u.determinant() * v_t.determinant() < 0.0 {
        signs.z = -1.0;
    }
    let rotation_matrix = u * Matrix3::from_diagonal(&signs) * v_t;
    let scale = svd.singular_values.component_mul(&signs).sum() / source_variance;
    let rotation =
        UnitQuaternion::from_rotation_matrix(&Rotation3::from_matrix_unchecked(rotation_matrix));
    let translation = mean_target - scale * (rotation * mean_source);
    Ok(Similarity {
        scale,
        rotation,
        translation,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovers_known_similarity() {
        let truth = Similarity {
            scale: 2.5,
            rotation: UnitQuaternion::from_scaled_axis(Vector3::new(0.3, -0.8, 1.1)),
            translation: Vector3::new(1.0, -2.0, 0.5),
        };
        let source: Vec<_> = (0..10)
            .map(|i| {
                let t = f64::from(i);
                Vector3::new(t.sin(), (1.3 * t).cos(), 0.1 * t * t)
            })
            .collect();
        let target: Vec<_> = source.iter().map(|p| truth.transform_point(p)).collect();
        let found = umeyama(&source, &target).expect("aligned");
        assert!((found.scale - truth.scale).abs() < 1e-9);
        assert!(found.rotation.angle_to(&truth.rotation) < 1e-9);
        assert!((found.translation - truth.translation).norm() < 1e-9);
    }

    #[test]
    fn pose_transform_keeps_projections() {
        let similarity = Similarity {
            scale: 0.5,
            rotation: UnitQuaternion::from_scaled_axis(Vector3::new(0.1, 0.2, -0.3)),
            translation: Vector3::new(0.2, 0.0, 3.0),
        };
        let pose =
            Pose::from_angle_axis(&Vector3::new(-0.2, 0.4, 0.1), Vector3::new(0.0, 1.0, 4.0));
        let point = Vector3::new(0.3, -0.2, 1.0);
        let before = pose.transform(&point);
        let after = similarity
            .transform_pose(&pose)
            .transform(&similarity.transform_point(&point));
        let ratio = after / similarity.scale - before;
        assert!(ratio.norm() < 1e-12);
    }

    #[test]
    fn degenerate_sets_fail() {
        let one = vec![Vector3::new(1.0, 1.0, 1.0); 4];
        assert!(umeyama(&one, &one).is_err());
        assert!(umeyama(&one[..2], &one[..2]).is_err());
        assert!(umeyama(&one, &one[..3]).is_err());
    }
}
