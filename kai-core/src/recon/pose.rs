//! Rigid camera poses in COLMAP's convention: a pose maps world points into the camera
//! frame, `x_cam = R * x_world + t`, so the camera centre is `-Rᵀ t`.

use nalgebra::{Rotation3, UnitQuaternion, Vector3};

/// A world-to-camera rigid transform.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pose {
    /// Rotation from world axes to camera axes.
    pub rotation: UnitQuaternion<f64>,
    /// Translation applied after the rotation, in world units.
    pub translation: Vector3<f64>,
}

impl Default for Pose {
    fn default() -> Self {
        Self::identity()
    }
}

impl Pose {
    /// Returns the pose of a camera at the world origin looking down the world's +z axis.
    pub fn identity() -> Self {
        Self {
            rotation: UnitQuaternion::identity(),
            translation: Vector3::zeros(),
        }
    }

    /// Builds a pose from its rotation and translation.
    pub fn new(rotation: UnitQuaternion<f64>, translation: Vector3<f64>) -> Self {
        Self {
            rotation,
            translation,
        }
    }

    /// Builds a pose from a rotation matrix (which must be orthonormal) and a translation.
    pub fn from_matrix(rotation: &Rotation3<f64>, translation: Vector3<f64>) -> Self {
        Self::new(UnitQuaternion::from_rotation_matrix(rotation), translation)
    }

    /// Builds a pose from an angle-axis vector (direction = axis, norm = angle in radians),
    /// the minimal parameterisation that bundle adjustment optimises.
    pub fn from_angle_axis(angle_axis: &Vector3<f64>, translation: Vector3<f64>) -> Self {
        Self::new(UnitQuaternion::from_scaled_axis(*angle_axis), translation)
    }

    /// Builds the pose of a camera at `center` with world-to-camera rotation `rotation`.
    pub fn from_center(rotation: UnitQuaternion<f64>, center: &Vector3<f64>) -> Self {
        Self::new(rotation, -(rotation * center))
    }

    /// Returns the rotation as an angle-axis vector (radians).
    pub fn angle_axis(&self) -> Vector3<f64> {
        self.rotation.scaled_axis()
    }

    /// Returns the rotation as a 3x3 matrix.
    pub fn rotation_matrix(&self) -> Rotation3<f64> {
        self.rotation.to_rotation_matrix()
    }

    /// Maps a world point into the camera frame.
    pub fn transform(&self, point: &Vector3<f64>) -> Vector3<f64> {
        self.rotation * point + self.translation
    }

    /// Returns the camera centre in world coordinates.
    pub fn center(&self) -> Vector3<f64> {
        -(self.rotation.inverse() * self.translation)
    }

    /// Returns the unit viewing direction (the camera's +z axis) in world coordinates.
    pub fn viewing_direction(&self) -> Vector3<f64> {
        self.rotation.inverse() * Vector3::z()
    }

    /// Returns the camera-to-world transform.
    pub fn inverse(&self) -> Self {
        let rotation = self.rotation.inverse();
        Self::new(rotation, -(rotation * self.translation))
    }

    /// `self ∘ other`: first `other`, then `self`. With `other` world-to-camera-1 and
    /// `self` camera-1-to-camera-2, the result is world-to-camera-2.
    pub fn compose(&self, other: &Pose) -> Self {
        Self::new(
            self.rotation * other.rotation,
            self.rotation * other.translation + self.translation,
        )
    }

    /// Returns the pose of `other`'s camera relative to this one, which maps this camera's
    /// frame into `other`'s frame.
    pub fn relative_to(&self, other: &Pose) -> Self {
        other.compose(&self.inverse())
    }

    /// Returns the angle in degrees between this pose's rotation and `other`'s.
    pub fn rotation_angle_to(&self, other: &Pose) -> f64 {
        self.rotation.angle_to(&other.rotation).to_degrees()
    }

    /// True when every component is finite.
    pub fn is_finite(&self) -> bool {
        self.rotation.coords.iter().all(|v| v.is_finite())
            && self.translation.iter().all(|v| v.is_finite())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Pose {
        Pose::from_angle_axis(&Vector3::new(0.1, -0.3, 0.2), Vector3::new(1.0, 2.0, -0.5))
    }

    #[test]
    fn center_maps_to_camera_origin() {
        let pose = sample();
        assert!(pose.transform(&pose.center()).norm() < 1e-12);
    }

    #[test]
    fn inverse_composes_to_identity() {
        let pose = sample();
        let id = pose.compose(&pose.inverse());
        assert!(id.translation.norm() < 1e-12);
        assert!(id.rotation.angle() < 1e-12);
    }

    #[test]
    fn relative_pose_chains_world_to_second_camera() {
        let a = sample();
        let b = Pose::from_angle_axis(&Vector3::new(-0.2, 0.1, 0.05), Vector3::new(0.0, 1.0, 3.0));
        let rel = a.relative_to(&b);
        let x = Vector3::new(0.3, -1.2, 4.0);
        assert!((rel.transform(&a.transform(&x)) - b.transform(&x)).norm() < 1e-12);
    }

    #[test]
    fn angle_axis_round_trips() {
        let pose = sample();
        let back = Pose::from_angle_axis(&pose.angle_axis(), pose.translation);
        assert!(pose.rotation_angle_to(&back) < 1e-9);
    }
}
