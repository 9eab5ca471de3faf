//! The reconstruction while it grows: a [`Reconstruction`] of the registered images plus
//! the links between its points and the feature tracks they triangulate.
//!
//! Images are added in registration order. A deleted point keeps its slot with an empty
//! track until [`Model::compact`] removes it, so point indices stay valid within a step.

use nalgebra::{Vector2, Vector3};

use super::extraction::ImageFeatures;
use super::tracks::Tracks;
use crate::recon::camera::Camera;
use crate::recon::geometry::triangulation_angle_deg;
use crate::recon::pose::Pose;
use crate::recon::reconstruction::{Point3D, Reconstruction, RegisteredImage, TrackElement};

/// The growing reconstruction and its bookkeeping.
pub(crate) struct Model<'a> {
    /// Registered images (in registration order), cameras and points.
    pub rec: Reconstruction,
    /// Features of every screened photo.
    pub features: &'a [ImageFeatures],
    /// Tracks over the screened photos.
    pub tracks: &'a Tracks,
    /// Names of the screened photos.
    pub names: &'a [String],
    /// Camera index of each screened photo.
    pub camera_of: &'a [usize],
    /// Index in `rec.images` of each screened photo, once registered.
    pub registered: Vec<Option<usize>>,
    /// Screened photo of each registered image.
    pub source: Vec<usize>,
    /// Track that each point triangulates.
    pub point_track: Vec<usize>,
    /// Point of each track, if triangulated.
    pub track_point: Vec<Option<usize>>,
}

impl<'a> Model<'a> {
    pub(crate) fn new(
        cameras: Vec<Camera>,
        features: &'a [ImageFeatures],
        tracks: &'a Tracks,
        names: &'a [String],
        camera_of: &'a [usize],
    ) -> Self {
        Self {
            rec: Reconstruction {
                cameras,
                ..Reconstruction::default()
            },
            features,
            tracks,
            names,
            camera_of,
            registered: vec![None; features.len()],
            source: Vec::new(),
            point_track: Vec::new(),
            track_point: vec![None; tracks.len()],
        }
    }

    /// Returns the number of registered images.
    pub(crate) fn num_registered(&self) -> usize {
        self.rec.images.len()
    }

    /// Counts the points with a non-empty track.
    pub(crate) fn num_points(&self) -> usize {
        self.rec
            .points
            .iter()
            .filter(|p| !p.track.is_empty())
            .count()
    }

    /// Registers screened photo `photo` with `pose` and returns its index in `rec.images`.
    pub(crate) fn register(&mut self, photo: usize, pose: Pose) -> usize {
        let index = self.rec.images.len();
        let keypoints = self.features[photo].keypoints.clone();
        let count = keypoints.len();
        self.rec.images.push(RegisteredImage {
            name: self.names[photo].clone(),
            camera: self.camera_of[photo],
            pose,
            keypoints,
            point_ids: vec![None; count],
        });
        self.registered[photo] = Some(index);
        self.source.push(photo);
        index
    }

    /// Returns the camera of registered image `image`.
    pub(crate) fn camera(&self, image: usize) -> &Camera {
        &self.rec.cameras[self.rec.images[image].camera]
    }

    /// Returns the undistorted normalized coordinates of keypoint `keypoint` of registered
    /// image `image`, under the current intrinsics.
    pub(crate) fn normalized(&self, image: usize, keypoint: usize) -> Vector2<f64> {
        self.camera(image)
            .pixel_to_normalized(&self.rec.images[image].keypoints[keypoint])
    }

    /// Computes the reprojection error in pixels of `position` in the observation
    /// `element`, or returns `None` when the point is behind the camera.
    pub(crate) fn error_px(&self, position: &Vector3<f64>, element: TrackElement) -> Option<f64> {
        let image = &self.rec.images[element.image];
        let camera = &self.rec.cameras[image.camera];
        let projected = camera.project(&image.pose.transform(position))?;
        Some((projected - image.keypoints[element.keypoint]).norm())
    }

    /// Lists the registered observations of track `track`.
    pub(crate) fn registered_elements(&self, track: usize) -> Vec<TrackElement> {
        self.tracks.tracks[track]
            .iter()
            .filter_map(|observation| {
                self.registered[observation.image].map(|image| TrackElement {
                    image,
                    keypoint: observation.keypoint,
                })
            })
            .collect()
    }

    /// Adds a point triangulating `track`, observed by `elements`.
    pub(crate) fn add_point(
        &mut self,
        track: usize,
        position: Vector3<f64>,
        elements: Vec<TrackElement>,
    ) -> usize {
        let index = self.rec.points.len();
        for element in &elements {
            self.rec.images[element.image].point_ids[element.keypoint] = Some(index);
        }
        self.rec.points.push(Point3D {
            position,
            color: [0, 0, 0],
            error: 0.0,
            track: elements,
        });
        self.point_track.push(track);
        self.track_point[track] = Some(index);
        index
    }

    /// Adds the observation `element` to point `point`.
    pub(crate) fn add_observation(&mut self, point: usize, element: TrackElement) {
        self.rec.images[element.image].point_ids[element.keypoint] = Some(point);
        self.rec.points[point].track.push(element);
    }

    /// Deletes point `point`, leaving an empty slot.
    pub(crate) fn delete_point(&mut self, point: usize) {
        let track = std::mem::take(&mut self.rec.points[point].track);
        for element in track {
            self.rec.images[element.image].point_ids[element.keypoint] = None;
        }
        self.track_point[self.point_track[point]] = None;
    }

    /// Removes the observations of `point` for which `reject` returns true, and the point when
    /// fewer than two remain. Returns the number of observations removed.
    pub(crate) fn remove_observations_where(
        &mut self,
        point: usize,
        mut reject: impl FnMut(&Self, TrackElement) -> bool,
    ) -> usize {
        let track = std::mem::take(&mut self.rec.points[point].track);
        let before = track.len();
        let mut kept = Vec::with_capacity(before);
        for element in track {
            if reject(self, element) {
                self.rec.images[element.image].point_ids[element.keypoint] = None;
            } else {
                kept.push(element);
            }
        }
        let removed = before - kept.len();
        self.rec.points[point].track = kept;
        if self.rec.points[point].track.len() < 2 {
            let remaining = self.rec.points[point].track.len();
            self.delete_point(point);
            return removed + remaining;
        }
        removed
    }

    /// Computes the maximum triangulation angle in degrees between any two observations of
    /// `position` by `elements`.
    pub(crate) fn max_angle_deg(&self, position: &Vector3<f64>, elements: &[TrackElement]) -> f64 {
        let centers: Vec<Vector3<f64>> = elements
            .iter()
            .map(|e| self.rec.images[e.image].pose.center())
            .collect();
        let mut max_angle = 0.0f64;
        for i in 0..centers.len() {
            for j in i + 1..centers.len() {
                max_angle =
                    max_angle.max(triangulation_angle_deg(&centers[i], &centers[j], position));
            }
        }
        max_angle
    }

    /// Removes the empty point slots, renumbering the points.
    pub(crate) fn compact(&mut self) {
        let mut new_index = vec![None; self.rec.points.len()];
        let mut points = Vec::with_capacity(self.rec.points.len());
        let mut point_track = Vec::with_capacity(self.rec.points.len());
        for (old, point) in std::mem::take(&mut self.rec.points).into_iter().enumerate() {
            if point.track.is_empty() {
                continue;
            }
            new_index[old] = Some(points.len());
            point_track.push(self.point_track[old]);
            points.push(point);
        }
        for image in &mut self.rec.images {
            for id in &mut image.point_ids {
                *id = id.and_then(|old| new_index[old]);
            }
        }
        for slot in &mut self.track_point {
            *slot = slot.and_then(|old| new_index[old]);
        }
        self.rec.points = points;
        self.point_track = point_track;
    }

    /// Lists the registered images that share the most points with registered image
    /// `image`, most shared first, at most `count`.
    pub(crate) fn most_connected(&self, image: usize, count: usize) -> Vec<usize> {
        let mut shared = vec![0usize; self.rec.images.len()];
        for point in self.rec.images[image].point_ids.iter().flatten() {
            for element in &self.rec.points[*point].track {
                shared[element.image] += 1;
            }
        }
        shared[image] = 0;
        let mut neighbours: Vec<usize> = (0..shared.len()).filter(|&i| shared[i] > 0).collect();
        neighbours.sort_by(|&a, &b| shared[b].cmp(&shared[a]).then(a.cmp(&b)));
        neighbours.truncate(count);
        neighbours
    }
}
