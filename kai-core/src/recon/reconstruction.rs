//! A sparse reconstruction: calibrated cameras, posed images and 3D points with their
//! tracks, plus the photos that could not be registered and why.

use nalgebra::{Vector2, Vector3};
use serde::{Deserialize, Serialize};

use super::camera::Camera;
use super::pose::Pose;

/// One observation of a 3D point: keypoint `keypoint` of image `image`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TrackElement {
    /// Index into [`Reconstruction::images`].
    pub image: usize,
    /// Index into that image's [`RegisteredImage::keypoints`].
    pub keypoint: usize,
}

/// A triangulated 3D point.
#[derive(Debug, Clone, PartialEq)]
pub struct Point3D {
    /// Position in world coordinates.
    pub position: Vector3<f64>,
    /// Colour sampled from the photos, RGB.
    pub color: [u8; 3],
    /// Mean reprojection error over the track, in pixels.
    pub error: f64,
    /// The observations that see the point (at least two).
    pub track: Vec<TrackElement>,
}

/// A photo with an estimated pose.
#[derive(Debug, Clone, PartialEq)]
pub struct RegisteredImage {
    /// File name of the photo.
    pub name: String,
    /// Index into [`Reconstruction::cameras`].
    pub camera: usize,
    /// World-to-camera pose.
    pub pose: Pose,
    /// Keypoint positions in pixels of the original photo.
    pub keypoints: Vec<Vector2<f64>>,
    /// For each keypoint, the index into [`Reconstruction::points`] it observes, if any.
    pub point_ids: Vec<Option<usize>>,
}

/// A photo the reconstruction left out, with the reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UnregisteredImage {
    /// File name of the photo.
    pub name: String,
    /// Reason it was left out, for example "blurry" from quality screening or "too few
    /// matches to registered images (12 < 30)".
    pub reason: String,
}

/// Cameras, posed images and 3D points.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reconstruction {
    /// Intrinsics, which images refer to by index.
    pub cameras: Vec<Camera>,
    /// Registered photos.
    pub images: Vec<RegisteredImage>,
    /// Triangulated points.
    pub points: Vec<Point3D>,
    /// Photos that were screened out or could not be registered.
    pub unregistered: Vec<UnregisteredImage>,
}

/// Counts and errors that describe a reconstruction, in the shape every surface reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReconstructionSummary {
    /// Number of photos given to the reconstruction.
    pub images: usize,
    /// Number of photos with an estimated pose.
    pub registered_images: usize,
    /// Number of triangulated 3D points.
    pub points: usize,
    /// Number of observations over all points.
    pub observations: usize,
    /// Mean number of observations per point.
    pub mean_track_length: f64,
    /// Mean reprojection error over the observations in front of their camera, in pixels.
    pub mean_reprojection_error: f64,
    /// Photos left out, with the reason for each.
    pub unregistered: Vec<UnregisteredImage>,
}

impl Reconstruction {
    /// Computes the reprojection error of point `point` in the observation `element`, in
    /// pixels, or returns `None` when the point is behind the camera.
    pub fn reprojection_error(&self, point: usize, element: TrackElement) -> Option<f64> {
        let image = &self.images[element.image];
        let camera = &self.cameras[image.camera];
        let projected = camera.project(&image.pose.transform(&self.points[point].position))?;
        Some((projected - image.keypoints[element.keypoint]).norm())
    }

    /// Computes the mean reprojection error in pixels over the observations in front of
    /// their camera (0 when there are none).
    pub fn mean_reprojection_error(&self) -> f64 {
        let mut sum = 0.0;
        let mut count = 0usize;
        for (index, point) in self.points.iter().enumerate() {
            for element in &point.track {
                if let Some(error) = self.reprojection_error(index, *element) {
                    sum += error;
                    count += 1;
                }
            }
        }
        if count == 0 { 0.0 } else { sum / count as f64 }
    }

    /// Counts the observations over all points.
    pub fn num_observations(&self) -> usize {
        self.points.iter().map(|p| p.track.len()).sum()
    }

    /// Builds the summary of counts and errors of this reconstruction.
    pub fn summary(&self) -> ReconstructionSummary {
        let observations = self.num_observations();
        ReconstructionSummary {
            images: self.images.len() + self.unregistered.len(),
            registered_images: self.images.len(),
            points: self.points.len(),
            observations,
            mean_track_length: if self.points.is_empty() {
                0.0
            } else {
                observations as f64 / self.points.len() as f64
            },
            mean_reprojection_error: self.mean_reprojection_error(),
            unregistered: self.unregistered.clone(),
        }
    }
}
