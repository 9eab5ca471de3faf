//! Registration of one more image into the model: absolute pose from its 2D-3D
//! correspondences by PnP RANSAC, then refinement on the inliers.

use nalgebra::{Vector2, Vector3};

use super::model::Model;
use super::options::SfmOptions;
use crate::recon::pnp::{
    PnpOptions, PoseRefineOptions, estimate_absolute_pose, refine_absolute_pose,
};
use crate::recon::reconstruction::TrackElement;

/// Counts the keypoints of screened photo `photo` whose track has a 3D point.
pub(crate) fn visible_points(model: &Model, photo: usize) -> usize {
    model.tracks.track_of[photo]
        .iter()
        .flatten()
        .filter(|&&track| model.track_point[track as usize].is_some())
        .count()
}

/// Registers screened photo `photo`: estimates its pose from the 3D points its keypoints
/// observe and adds it with its inlier observations. Returns its index in the model, or
/// the reason it cannot be registered yet.
pub(crate) fn register_image(
    model: &mut Model,
    photo: usize,
    options: &SfmOptions,
) -> Result<usize, String> {
    let camera = model.rec.cameras[model.camera_of[photo]];
    let mut keypoints = Vec::new();
    let mut points2d: Vec<Vector2<f64>> = Vec::new();
    let mut points3d: Vec<Vector3<f64>> = Vec::new();
    let mut point_ids = Vec::new();
    for (keypoint, track) in model.tracks.track_of[photo].iter().enumerate() {
        let Some(point) = track.and_then(|t| model.track_point[t as usize]) else {
            continue;
        };
        keypoints.push(keypoint);
        points2d.push(camera.pixel_to_normalized(&model.features[photo].keypoints[keypoint]));
        points3d.push(model.rec.points[point].position);
        point_ids.push(point);
    }
    if points2d.len() < options.min_registration_inliers {
        return Err(format!(
            "too few 2D-3D matches ({} < {})",
            points2d.len(),
            options.min_registration_inliers
        ));
    }

    let focal = camera.mean_focal();
    let threshold = options.pnp_threshold_px / focal;
    let estimate = estimate_absolute_pose(
        &points2d,
        &points3d,
        &PnpOptions {
            max_error: threshold,
            confidence: options.ransac_confidence,
            max_iterations: options.ransac_max_iterations,
            seed: options.seed.wrapping_add(photo as u64),
            ..PnpOptions::default()
        },
    )
    .map_err(|err| format!("no pose fits its 2D-3D matches: {err}"))?;
    if estimate.num_inliers < options.min_registration_inliers {
        return Err(format!(
            "too few 2D-3D inliers ({} < {})",
            estimate.num_inliers, options.min_registration_inliers
        ));
    }
    let pose = refine_absolute_pose(
        &points2d,
        &points3d,
        &estimate.inliers,
        &estimate.pose,
        &PoseRefineOptions {
            huber_scale: Some(threshold / 2.0),
            ..PoseRefineOptions::default()
        },
    )
    .map_err(|err| format!("pose refinement failed: {err}"))?;
    if !pose.is_finite() {
        return Err("pose refinement diverged".to_owned());
    }

    let image = model.register(photo, pose);
    let max_error = options.pnp_threshold_px;
    for (index, &point) in point_ids.iter().enumerate() {
        let element = TrackElement {
            image,
            keypoint: keypoints[index],
        };
        // The refined pose decides the inliers again, so the observations agree with the
        // pose the model keeps.
        let position = model.rec.points[point].position;
        if model
            .error_px(&position, element)
            .is_some_and(|error| error <= max_error)
        {
            model.add_observation(point, element);
        }
    }
    Ok(image)
}
