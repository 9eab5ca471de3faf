//! Camera placement: a ring of cameras around the objects, or a camera that only turns.

use nalgebra::{Rotation3, UnitQuaternion, Vector3};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::recon::pose::Pose;

/// Nearest distance from the aim point on the orbit ring, in world units; the farthest is
/// this times the scene's distance ratio.
const NEAREST_DISTANCE: f64 = 3.4;
/// Elevation of orbit cameras above the ground, in degrees.
const ELEVATION_DEGREES: (f64, f64) = (22.0, 42.0);
/// Where the pure-rotation camera stands and how far it turns (pan, tilt) in degrees.
const ROTATION_CENTER: [f64; 3] = [0.0, -4.2, 1.8];
const ROTATION_PAN_DEGREES: f64 = 25.0;
const ROTATION_TILT_DEGREES: f64 = 10.0;

/// How the cameras move between images.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CameraRig {
    /// Cameras on a ring around the objects at varying distance and height, aimed at
    /// them: the capture structure from motion expects.
    Orbit,
    /// One camera centre, turning between images: no baseline, so no depth can be
    /// triangulated (a degenerate capture).
    PureRotation,
}

/// The parameters of camera placement.
#[derive(Debug, Clone, Copy)]
pub(super) struct RigSettings {
    pub rig: CameraRig,
    pub images: usize,
    pub distance_ratio: f64,
    pub max_roll_degrees: f64,
    pub arc_degrees: f64,
}

/// The world-to-camera poses of every image.
pub(super) fn place_cameras(
    settings: &RigSettings,
    target: &Vector3<f64>,
    rng: &mut ChaCha8Rng,
) -> Vec<Pose> {
    (0..settings.images)
        .map(|index| {
            let roll = random_symmetric(rng, settings.max_roll_degrees).to_radians();
            let (center, aim) = match settings.rig {
                CameraRig::Orbit => orbit_position(settings, index, target, rng),
                CameraRig::PureRotation => rotation_position(target, rng),
            };
            look_at(&center, &aim, roll)
        })
        .collect()
}

/// A camera on the ring: azimuths spread evenly over the arc (with jitter of a quarter
/// step), distance and elevation drawn at random, aim jittered around the target.
fn orbit_position(
    settings: &RigSettings,
    index: usize,
    target: &Vector3<f64>,
    rng: &mut ChaCha8Rng,
) -> (Vector3<f64>, Vector3<f64>) {
    let arc = settings.arc_degrees.to_radians();
    let full_circle = settings.arc_degrees >= 360.0;
    let slots = if full_circle {
        settings.images
    } else {
        settings.images.saturating_sub(1).max(1)
    };
    let step = arc / slots as f64;
    // The arc is centred on -y, so a back wall at +y faces every camera.
    let start = -std::f64::consts::FRAC_PI_2 - 0.5 * arc;
    let azimuth =
        start + step * index as f64 + random_symmetric(rng, 0.25 * step.to_degrees()).to_radians();
    let elevation = rng
        .random_range(ELEVATION_DEGREES.0..ELEVATION_DEGREES.1)
        .to_radians();
    let distance = NEAREST_DISTANCE * rng.random_range(1.0..=settings.distance_ratio);
    let direction = Vector3::new(
        elevation.cos() * azimuth.cos(),
        elevation.cos() * azimuth.sin(),
        elevation.sin(),
    );
    let aim = target
        + Vector3::new(
            random_symmetric(rng, 0.12),
            random_symmetric(rng, 0.12),
            random_symmetric(rng, 0.08),
        );
    (aim + direction * distance, aim)
}

/// The fixed camera centre, aimed at the target turned by a random pan and tilt.
fn rotation_position(target: &Vector3<f64>, rng: &mut ChaCha8Rng) -> (Vector3<f64>, Vector3<f64>) {
    let center = Vector3::from(ROTATION_CENTER);
    let pan = random_symmetric(rng, ROTATION_PAN_DEGREES).to_radians();
    let tilt = random_symmetric(rng, ROTATION_TILT_DEGREES).to_radians();
    let forward = target - center;
    let turned = Rotation3::from_axis_angle(&Vector3::z_axis(), pan) * forward;
    let side = turned.cross(&Vector3::z());
    let tilted = match nalgebra::Unit::try_new(side, 1e-12) {
        Some(axis) => Rotation3::from_axis_angle(&axis, tilt) * turned,
        None => turned,
    };
    (center, center + tilted)
}

/// The pose of a camera at `center` looking at `aim` with world +z up in the image
/// (camera -y), then turned by `roll` radians about its optical axis.
fn look_at(center: &Vector3<f64>, aim: &Vector3<f64>, roll: f64) -> Pose {
    let forward = (aim - center).normalize();
    let right = forward.cross(&Vector3::z()).normalize();
    let down = forward.cross(&right);
    // Rows are the camera axes in world coordinates: x right, y down, z forward.
    let rotation = Rotation3::from_matrix_unchecked(nalgebra::Matrix3::from_rows(&[
        right.transpose(),
        down.transpose(),
        forward.transpose(),
    ]));
    let roll = Rotation3::from_axis_angle(&Vector3::z_axis(), roll);
    Pose::from_center(
        UnitQuaternion::from_rotation_matrix(&(roll * rotation)),
        center,
    )
}

/// A uniform draw from `[-limit, limit]`, or 0 when `limit` is 0.
fn random_symmetric(rng: &mut ChaCha8Rng, limit: f64) -> f64 {
    if limit > 0.0 {
        rng.random_range(-limit..=limit)
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn look_at_puts_aim_on_optical_axis_and_up_in_image() {
        let center = Vector3::new(3.0, -2.0, 1.5);
        let aim = Vector3::new(0.0, 0.0, 0.4);
        let pose = look_at(&center, &aim, 0.0);
        let in_camera = pose.transform(&aim);
        assert!(
            in_camera.x.abs() < 1e-12 && in_camera.y.abs() < 1e-12,
            "{in_camera:?}"
        );
        assert!(in_camera.z > 0.0);
        // A point above the aim appears higher in the image: smaller camera y.
        let above = pose.transform(&(aim + Vector3::z()));
        assert!(above.y < 0.0, "{above:?}");
        assert!((pose.center() - center).norm() < 1e-12);
    }
}
